//! `RunEnv`: what a child's environment takes from ours — the `PATH` its CLI is looked up on
//! and the dispatch depth it inherits (SPEC §10). Read once from the process by whoever starts
//! the application (`RunEnv::from_process`) and injected from there, so nothing below reads the
//! ambient environment and tests build their own without touching the process's variables.

use std::ffi::OsString;
use std::path::PathBuf;

/// The environment variable that carries the dispatch depth across processes (SPEC §10).
pub const DEPTH_VAR: &str = "AGENT_DISPATCH_DEPTH";

#[derive(Clone, Debug)]
pub struct RunEnv {
    /// Where CLIs are looked up (`PATH` at start-up).
    pub path: Option<OsString>,
    /// Our own depth: `Err` with the reason when `AGENT_DISPATCH_DEPTH` is malformed, which
    /// refuses every dispatch (fail closed: a garbled depth must not reset a loop's count).
    pub depth: Result<u32, String>,
    /// `AGENT_DISPATCH_SSH_COMMAND`: the ssh program and options for remote agents, overriding
    /// `settings.ssh_command` as `GIT_SSH_COMMAND` does for git.
    pub ssh_command: Option<String>,
    /// Where remote agents' ControlMaster sockets live (`ssh/` next to the config; the `App`
    /// fills it in); `None` runs ssh without connection sharing.
    pub ssh_control_dir: Option<PathBuf>,
}

impl RunEnv {
    pub fn from_process() -> RunEnv {
        RunEnv {
            path: std::env::var_os("PATH"),
            depth: parse_depth(std::env::var_os(DEPTH_VAR).as_deref()),
            ssh_command: std::env::var("AGENT_DISPATCH_SSH_COMMAND")
                .ok()
                .filter(|c| !c.trim().is_empty()),
            ssh_control_dir: None,
        }
    }

    /// A run environment with this `PATH` and depth 0 (tests, benchmarks).
    pub fn with_path(path: impl Into<OsString>) -> RunEnv {
        RunEnv {
            path: Some(path.into()),
            depth: Ok(0),
            ssh_command: None,
            ssh_control_dir: None,
        }
    }

    /// The first executable `name` on our `PATH`, as an absolute path (it becomes argv[0]).
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        find_on(self.path.as_deref()?, name)
    }
}

/// The depth in `raw`: absent is 0; anything but a plain decimal number up to 1000 is refused.
pub fn parse_depth(raw: Option<&std::ffi::OsStr>) -> Result<u32, String> {
    let Some(raw) = raw else { return Ok(0) };
    let text = raw
        .to_str()
        .ok_or_else(|| format!("{DEPTH_VAR} is not valid UTF-8"))?;
    let trimmed = text.trim();
    match trimmed.parse::<u32>() {
        Ok(n) if n <= 1000 && trimmed.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "{DEPTH_VAR}={:?} is not a dispatch depth (a whole number from 0 to 1000)",
            crate::text::first_chars(text, 40)
        )),
    }
}

/// The first executable `name` in the directories of `path`.
pub fn find_on(path: &std::ffi::OsStr, name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    for dir in std::env::split_paths(path) {
        // An empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            if candidate.is_absolute() {
                return Some(candidate);
            }
            return std::env::current_dir().ok().map(|cwd| cwd.join(candidate));
        }
    }
    None
}

/// `name` on the process's own `PATH` (the CLI's checks, which run no dispatch).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    find_on(&std::env::var_os("PATH")?, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn depth_fails_closed() {
        assert_eq!(parse_depth(None), Ok(0));
        assert_eq!(parse_depth(Some(OsStr::new("3"))), Ok(3));
        assert_eq!(parse_depth(Some(OsStr::new(" 2 "))), Ok(2));
        for bad in ["abc", "-1", "+1", "", "99999999999999999999", "1001", "1.5"] {
            assert!(parse_depth(Some(OsStr::new(bad))).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lookup_uses_the_injected_path() {
        assert!(find_on_path("sh").is_some_and(|p| p.is_absolute()));
        let env = RunEnv::with_path("/nonexistent-dir");
        assert!(env.find("sh").is_none());
        assert!(find_on_path("definitely-not-a-real-program-xyz").is_none());
    }
}
