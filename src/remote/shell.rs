//! The one command string a remote agent's `ssh` runs, and the POSIX-shell quoting it is built
//! from. The remote login shell parses exactly one string (ssh joins its arguments with spaces
//! and hands them to `$SHELL -c`), so every value from a dispatch — the task inside the argv, the
//! environment, the directory — is single-quoted here with `'` written as `'\''`: inside single
//! quotes a POSIX shell interprets nothing, so the remote CLI gets each argument byte for byte.
//! Only `~` and `~user` prefixes are left for the remote shell to expand, and only when the user
//! name is made of characters that cannot mean anything else to a shell.

/// Marks the lines this crate's remote script writes on stderr (stripped before a backend reads
/// stderr).
pub const MARK: &str = "agent-dispatch-remote:";
/// `MARK` + `pgid=N`: the remote process group, written just before the CLI starts.
pub const PGID: &str = "agent-dispatch-remote:pgid=";
/// The agent's directory is not there (or not enterable) on the host.
pub const NO_DIRECTORY: &str = "agent-dispatch-remote:no-directory";
/// The backend's program is not on the remote `PATH`.
pub const NO_PROGRAM: &str = "agent-dispatch-remote:no-program";

/// `s` as one word for a POSIX shell, interpreting nothing.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// A remote path as a shell word: `~` and `~/rest` become `"$HOME"` and `"$HOME"/'rest'`,
/// `~user/rest` keeps its unquoted `~user` (expanded there) when `user` is a plain login name;
/// everything else is quoted whole.
pub fn remote_path(path: &str) -> String {
    if path == "~" {
        return "\"$HOME\"".to_string();
    }
    if let Some(rest) = path.strip_prefix("~/") {
        return format!("\"$HOME\"/{}", quote(rest));
    }
    if let Some(tail) = path.strip_prefix('~') {
        let (user, rest) = tail.split_once('/').unwrap_or((tail, ""));
        let plain = !user.is_empty()
            && !user.starts_with('-')
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if plain {
            return if rest.is_empty() {
                format!("~{user}")
            } else {
                format!("~{user}/{}", quote(rest))
            };
        }
    }
    quote(path)
}

/// True for a name `env` and a shell accept as a variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The remote command: enter `dir`, check `program` is there, report the process group, then
/// `exec env VARS… program ARGS…`. sshd starts each session's command in a new session (it
/// calls `setsid`), and every step here `exec`s, so the CLI keeps the pid the script reports and
/// that pid is its process group: `kill -- -PGID` reaches the CLI and all it started.
pub fn run_command(dir: &str, program: &str, args: &[String], env: &[(&str, String)]) -> String {
    let prog = remote_path(program);
    let mut cmd = format!(
        "cd {dir} 2>/dev/null || {{ echo '{NO_DIRECTORY}' >&2; exit 1; }}; \
         command -v {prog} >/dev/null 2>&1 || {{ echo '{NO_PROGRAM}' >&2; exit 127; }}; \
         echo \"{PGID}$$\" >&2; exec env",
        dir = remote_path(dir),
    );
    for (name, value) in env.iter().filter(|(n, _)| is_env_name(n)) {
        cmd.push(' ');
        cmd.push_str(&quote(&format!("{name}={value}")));
    }
    cmd.push(' ');
    // A program word holding '=' would be read by env as one more assignment.
    if program.contains('=') {
        cmd.push_str("-- ");
    }
    cmd.push_str(&prog);
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    cmd
}

/// The variable that tags every process of one remote run (inherited by all it starts).
pub const RUN_ID_VAR: &str = "AGENT_DISPATCH_RUN_ID";

/// The remote command that stops a run: SIGTERM to process group `pgid` (when the marker was
/// seen) and to every process whose environment holds `RUN_ID_VAR=run_id` (found through
/// `/proc`, where there is one), up to ~2 s for them to go, then SIGKILL to whatever is left.
/// Always exits 0 (a run already gone is the usual case).
pub fn kill_command(pgid: Option<u32>, run_id: &str) -> String {
    let group = pgid.map(|p| p.to_string()).unwrap_or_default();
    let tag = quote(&format!("{RUN_ID_VAR}={run_id}"));
    format!(
        "P={group}; T={tag}; \
         tagged() {{ for d in /proc/[0-9]*; do grep -qsxzF \"$T\" \"$d/environ\" && echo \"${{d#/proc/}}\"; done; }}; \
         sig() {{ [ -n \"$P\" ] && kill -\"$1\" -- -\"$P\" 2>/dev/null; for p in $(tagged); do kill -\"$1\" \"$p\" 2>/dev/null; done; return 0; }}; \
         alive() {{ [ -n \"$P\" ] && kill -0 -- -\"$P\" 2>/dev/null && return 0; [ -n \"$(tagged)\" ]; }}; \
         sig TERM; i=0; while alive && [ $i -lt 10 ]; do sleep 0.2 2>/dev/null || sleep 1; i=$((i+1)); done; \
         sig KILL; exit 0"
    )
}

/// Splits our marker lines out of a remote run's stderr: the process group (if reported), the
/// failure marker (if any), and the rest. Everything before the group marker was written by ssh
/// itself (host-key notices and the like), not by the CLI, and is dropped with it.
pub fn split_stderr(stderr: &str) -> (Option<u32>, Option<&'static str>, String) {
    let mut pgid = None;
    let mut failure = None;
    let mut kept: Vec<&str> = Vec::new();
    for line in stderr.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some(n) = bare.strip_prefix(PGID) {
            pgid = n.trim().parse().ok();
            kept.clear();
        } else if bare == NO_DIRECTORY {
            failure = Some(NO_DIRECTORY);
        } else if bare == NO_PROGRAM {
            failure = Some(NO_PROGRAM);
        } else {
            kept.push(line);
        }
    }
    (pgid, failure, kept.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Runs `script` under /bin/sh and returns stdout: the quoting is proven by a real shell.
    fn sh(script: &str) -> String {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoted_words_reach_a_real_shell_byte_for_byte() {
        let hostile = [
            "plain",
            "",
            "it's",
            "'",
            "''\\'",
            "$HOME `id` $(id) ${x:-y}",
            "a\nb\n\n",
            "tab\there ; rm -rf / & | > < * ? [a] ~ #",
            "\"double\" \\back\\slash",
            "ünïcödé — 日本語 🚀",
            "-n",
            "--flag=value",
        ];
        for word in hostile {
            let printed = sh(&format!("printf '%s' {}", quote(word)));
            assert_eq!(printed, word, "{word:?}");
        }
    }

    #[test]
    fn tilde_expands_remotely_and_only_as_a_prefix() {
        let home = sh("printf '%s' \"$HOME\"");
        assert_eq!(sh(&format!("printf '%s' {}", remote_path("~"))), home);
        assert_eq!(
            sh(&format!("printf '%s' {}", remote_path("~/a b/$x"))),
            format!("{home}/a b/$x")
        );
        assert_eq!(
            sh(&format!("printf '%s' {}", remote_path("/x/~/y"))),
            "/x/~/y"
        );
        // `~$(id)` is not a login name: quoted whole, never run.
        assert_eq!(
            sh(&format!("printf '%s' {}", remote_path("~$(id)/x"))),
            "~$(id)/x"
        );
        assert_eq!(remote_path("~root/p q"), "~root/'p q'");
    }

    #[test]
    fn run_command_execs_with_exact_argv_env_and_reports_the_group() {
        let dir = std::env::temp_dir();
        let args = vec![
            "-c".to_string(),
            "printf '%s|' \"$0\" \"$V\" \"$@\"".to_string(),
        ];
        let mut args = args;
        args.extend(["x".to_string(), "it's $HOME\n`id`".to_string()]);
        let cmd = run_command(
            &dir.display().to_string(),
            "sh",
            &args,
            &[
                ("V", "v'1 $x".to_string()),
                ("bad name", "ignored".to_string()),
            ],
        );
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "x|v'1 $x|it's $HOME\n`id`|"
        );
        let (pgid, failure, rest) = split_stderr(&String::from_utf8_lossy(&out.stderr));
        assert!(pgid.is_some());
        assert_eq!(failure, None);
        assert_eq!(rest, "");
    }

    #[test]
    fn missing_directory_and_program_are_reported_by_marker() {
        let cmd = run_command("/nonexistent/agent-dispatch-x", "sh", &[], &[]);
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        let (_, failure, _) = split_stderr(&String::from_utf8_lossy(&out.stderr));
        assert_eq!(failure, Some(NO_DIRECTORY));
        let cmd = run_command("/", "agent-dispatch-no-such-cli", &[], &[]);
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        let (pgid, failure, _) = split_stderr(&String::from_utf8_lossy(&out.stderr));
        assert_eq!((pgid, failure), (None, Some(NO_PROGRAM)));
    }

    #[test]
    fn the_kill_finds_a_tagged_process_without_the_group() {
        if !Path::new("/proc/self/environ").exists() {
            return;
        }
        let id = "test-kill-tag-0001";
        let mut child = Command::new("sleep")
            .arg("30")
            .env(RUN_ID_VAR, id)
            .spawn()
            .unwrap();
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(kill_command(None, id))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
    }

    #[test]
    fn ssh_noise_before_the_group_marker_is_dropped() {
        let (pgid, _, rest) = split_stderr(
            "Warning: Permanently added '[127.0.0.1]:2222' to the list of known hosts.\r\nagent-dispatch-remote:pgid=42\nreal error\n",
        );
        assert_eq!(pgid, Some(42));
        assert_eq!(rest, "real error\n");
    }
}
