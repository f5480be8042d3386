//! The few outside programs the CLI touches (`claude mcp …`): finding an executable on PATH and
//! running one with captured output and a deadline. The child gets its own process group so a
//! timeout can kill anything it started too; stdout and stderr are drained on their own threads
//! so a chatty child cannot block on a full pipe.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use wait_timeout::ChildExt;

/// The first executable regular file called `name` in `$PATH`, made absolute.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .map(|p| std::path::absolute(&p).unwrap_or(p))
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A finished child's exit status and lossily decoded output.
pub struct Captured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug)]
pub enum RunError {
    Spawn(io::Error),
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "could not start: {e}"),
            RunError::TimedOut(d) => write!(f, "timed out after {}s", d.as_secs_f64()),
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static, name: &str) -> Option<thread::JoinHandle<Vec<u8>>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
        .ok()
}

fn collect(handle: Option<thread::JoinHandle<Vec<u8>>>) -> String {
    let bytes = handle.and_then(|h| h.join().ok()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `program args…` with stdin closed, waiting at most `timeout`.
pub fn run_captured(
    program: &Path,
    args: &[&OsStr],
    timeout: Duration,
) -> Result<Captured, RunError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(RunError::Spawn)?;
    let out = child.stdout.take().and_then(|p| drain(p, "host-stdout"));
    let err = child.stderr.take().and_then(|p| drain(p, "host-stderr"));
    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) | Err(_) => {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) with a negative pid signals the child's own process group.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
            }
            let _ = child.kill();
            let _ = child.wait();
            // The group is dead, so the pipes close and the readers end; join them anyway.
            let _ = (collect(out), collect(err));
            return Err(RunError::TimedOut(timeout));
        }
    };
    Ok(Captured {
        status,
        stdout: collect(out),
        stderr: collect(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_times_out() {
        let sh = Path::new("/bin/sh");
        let c = run_captured(
            sh,
            &[
                OsStr::new("-c"),
                OsStr::new("echo out; echo err >&2; exit 3"),
            ],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(c.status.code(), Some(3));
        assert_eq!(c.stdout, "out\n");
        assert_eq!(c.stderr, "err\n");
        let start = std::time::Instant::now();
        let e = run_captured(
            sh,
            &[OsStr::new("-c"), OsStr::new("sleep 5 & sleep 5")],
            Duration::from_millis(200),
        );
        assert!(matches!(e, Err(RunError::TimedOut(_))));
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(matches!(
            run_captured(Path::new("/nonexistent/x"), &[], Duration::from_secs(1)),
            Err(RunError::Spawn(_))
        ));
    }

    #[test]
    fn path_lookup_finds_sh() {
        assert!(find_on_path("sh").is_some_and(|p| p.is_absolute()));
        assert!(find_on_path("definitely-not-a-real-program-xyz").is_none());
    }
}
