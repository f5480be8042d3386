//! What `doctor` learns about the Claude Code registration: the `agent-dispatch` entry of
//! `claude mcp list` (and, when it answers, `claude mcp get agent-dispatch` for the exact command
//! and arguments), and a probe that starts the registered command as Claude Code does — a stdio
//! child sent an MCP `initialize` — to see that it really answers and which server it is.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wait_timeout::ChildExt;

/// The registration as the claude CLI reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Registered {
    pub command: String,
    pub args: Vec<String>,
    /// Claude Code's own health check: `Some(true)` for `✓ Connected`, `Some(false)` for
    /// `✗ Failed to connect` (or any other status), `None` when it printed none.
    pub connected: Option<bool>,
    pub status: Option<String>,
}

fn status_connected(status: &str) -> bool {
    let s = status.trim();
    (s.contains('✓') || s.contains('✔')) && s.contains("Connected")
}

/// The `agent-dispatch: CMD ARGS… - STATUS` line of `claude mcp list`.
pub fn from_list(stdout: &str) -> Option<Registered> {
    let line = stdout.lines().find_map(|l| {
        l.strip_prefix("agent-dispatch")
            .filter(|rest| rest.starts_with(':') || rest.starts_with(char::is_whitespace))
    })?;
    let rest = line.trim_start_matches(':').trim();
    let (cmdline, status) = match rest.rsplit_once(" - ") {
        Some((c, s)) => (c, Some(s.trim().to_string())),
        None => (rest, None),
    };
    let mut words = cmdline.split_whitespace().map(str::to_string);
    Some(Registered {
        command: words.next().unwrap_or_default(),
        args: words.collect(),
        connected: status.as_deref().map(status_connected),
        status,
    })
}

/// The `Status:`, `Command:` and `Args:` lines of `claude mcp get agent-dispatch`.
pub fn from_get(stdout: &str) -> Option<Registered> {
    let field = |name: &str| {
        stdout.lines().find_map(|l| {
            l.trim()
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    };
    let command = field("Command").filter(|c| !c.is_empty())?;
    let status = field("Status");
    Some(Registered {
        command,
        args: field("Args")
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        connected: status.as_deref().map(status_connected),
        status,
    })
}

/// `command` as the OS would run it: a path as given, a bare name looked up on PATH.
pub fn resolve(command: &str) -> Option<PathBuf> {
    if command.contains('/') {
        let p = crate::config::expand_tilde(Path::new(command));
        return p.is_file().then_some(p);
    }
    crate::claude::find_on_path(command)
}

/// True when `a` and `b` are the same file (after symlinks).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// What starting the registered command found.
#[derive(Debug, PartialEq)]
pub enum Probe {
    /// It answered `initialize` as `name` `version`.
    Answered { name: String, version: String },
    /// It could not be started at all.
    SpawnFailed(String),
    /// It started but gave no valid `initialize` answer before it exited or the deadline.
    NoAnswer(String),
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"agent-dispatch-doctor","version":"1"}}}"#;

/// Starts `command args…` with piped stdio, sends `initialize`, and waits up to `timeout` for
/// the answer. The child is stopped afterwards (stdin closed, then killed if it lingers).
pub fn probe(command: &Path, args: &[String], timeout: Duration) -> Probe {
    let mut child = match Command::new(command)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Probe::SpawnFailed(e.to_string()),
    };
    let (tx, rx) = crossbeam_channel::bounded::<Option<String>>(1);
    if let Some(stdout) = child.stdout.take() {
        // Detached: it ends when the child's stdout closes, which the kill below guarantees.
        let _ = std::thread::Builder::new()
            .name("doctor-probe".into())
            .spawn(move || {
                let mut reader = BufReader::new(stdout).take(1024 * 1024);
                let mut line = String::new();
                let got = reader.read_line(&mut line).ok().filter(|n| *n > 0);
                let _ = tx.send(got.map(|_| line));
            });
    }
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(format!("{INITIALIZE}\n").as_bytes());
        let _ = stdin.flush();
        let answer = rx.recv_timeout(timeout);
        drop(stdin);
        let verdict = match answer {
            Ok(Some(line)) => parse_answer(&line),
            Ok(None) => Probe::NoAnswer("it exited without answering".to_string()),
            Err(_) => Probe::NoAnswer(format!("no answer within {}s", timeout.as_secs_f64())),
        };
        stop(&mut child);
        return verdict;
    }
    stop(&mut child);
    Probe::NoAnswer("its stdin could not be opened".to_string())
}

fn stop(child: &mut std::process::Child) {
    if !matches!(child.wait_timeout(Duration::from_secs(5)), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn parse_answer(line: &str) -> Probe {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return Probe::NoAnswer("it printed something that is not JSON-RPC".to_string());
    };
    match v.pointer("/result/serverInfo") {
        Some(info) => Probe::Answered {
            name: info["name"].as_str().unwrap_or("?").to_string(),
            version: info["version"].as_str().unwrap_or("?").to_string(),
        },
        None => Probe::NoAnswer(format!("it answered initialize without serverInfo: {line}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_and_get_lines() {
        let r = from_list(
            "x: y - ✓ Connected\nagent-dispatch: /bin/agent-dispatch serve - ✗ Failed to connect\n",
        )
        .unwrap();
        assert_eq!(r.command, "/bin/agent-dispatch");
        assert_eq!(r.args, ["serve"]);
        assert_eq!(r.connected, Some(false));
        assert_eq!(
            from_list("agent-dispatch: ad serve - ✔ Connected")
                .unwrap()
                .connected,
            Some(true)
        );
        assert!(from_list("agent-dispatcher: x\n").is_none());
        let g = from_get(
            "agent-dispatch:\n  Scope: User config\n  Status: ✓ Connected\n  Type: stdio\n  \
             Command: /a b/agent-dispatch\n  Args: serve\n",
        )
        .unwrap();
        assert_eq!(g.command, "/a b/agent-dispatch");
        assert_eq!(g.connected, Some(true));
        assert!(from_get("").is_none());
    }

    #[test]
    fn probing_a_missing_or_silent_command() {
        assert!(matches!(
            probe(Path::new("/nonexistent/ad"), &[], Duration::from_secs(5)),
            Probe::SpawnFailed(_)
        ));
        assert!(matches!(
            probe(Path::new("/bin/true"), &[], Duration::from_secs(5)),
            Probe::NoAnswer(_)
        ));
    }
}
