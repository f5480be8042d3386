//! The environment marker every supervised child carries, and finding processes by it.
//!
//! `Supervised::spawn` sets `AGENT_DISPATCH_CHILD=<token>` (a fresh uuid) on each child; every
//! descendant inherits it, including those that leave the process group (`setsid`, a double
//! fork into a new group). `kill_marked` finds them in `/proc/<pid>/environ` and kills them, so
//! a dispatch ends with all of its descendants. A record that asks for a kill is checked with
//! `carries_marker` first: a pid names our child only if its environment says so (and its start
//! time matches, which the caller checks). A descendant that execs with a scrubbed environment
//! loses the marker; it is then only reached through the process group.

use super::procfs;

/// The variable that marks a dispatched child and its descendants.
pub const MARKER_VAR: &str = "AGENT_DISPATCH_CHILD";

/// How many scan-and-kill rounds `kill_marked` makes (a forking escapee may add processes
/// between a scan and its kill).
const ROUNDS: usize = 5;

/// A fresh token for one child.
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The marker token in `pid`'s environment, if it has one we may read.
pub fn marker_of(pid: u32) -> Option<String> {
    let env = procfs::environ(pid)?;
    let prefix = format!("{MARKER_VAR}=");
    env.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_string)
}

/// True when `pid` carries a marker: exactly `token` when given, any marker otherwise (a record
/// written before markers were recorded).
pub fn carries_marker(pid: u32, token: Option<&str>) -> bool {
    match (marker_of(pid), token) {
        (Some(found), Some(want)) => found == want,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Pids (other than this process) whose environment carries exactly `token`.
pub fn find_marked(token: &str) -> Vec<i32> {
    let me = std::process::id();
    let entry = format!("{MARKER_VAR}={token}");
    let mut found = Vec::new();
    for pid in procfs::pids() {
        if pid == me {
            continue;
        }
        let marked = procfs::environ(pid)
            .is_some_and(|env| env.split(|&b| b == 0).any(|kv| kv == entry.as_bytes()));
        if marked && let Ok(p) = i32::try_from(pid) {
            found.push(p);
        }
    }
    found
}

/// SIGKILLs every process carrying `token`; returns how many were signalled. An empty token
/// matches nothing.
pub fn kill_marked(token: &str) -> usize {
    if token.is_empty() {
        return 0;
    }
    let mut killed = std::collections::HashSet::new();
    for _ in 0..ROUNDS {
        let pids = find_marked(token);
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            // SAFETY: kill(2) on one pid; no memory is involved. The pid carried our token a
            // moment ago; a process that exits in between leaves a zombie (no reuse until
            // reaped) or ESRCH.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                killed.insert(pid);
            }
        }
    }
    killed.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn marked_processes_are_found_and_killed_unmarked_ones_are_not() {
        let token = new_token();
        let mut marked = Command::new("sleep")
            .arg("30")
            .env(MARKER_VAR, &token)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut plain = Command::new("sleep")
            .arg("30")
            .env_remove(MARKER_VAR)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        assert_eq!(marker_of(marked.id()).as_deref(), Some(token.as_str()));
        assert!(carries_marker(marked.id(), Some(&token)));
        assert!(!carries_marker(marked.id(), Some("other")));
        assert!(!carries_marker(plain.id(), None));
        assert_eq!(find_marked(&token), vec![marked.id() as i32]);
        assert_eq!(kill_marked(&token), 1);
        assert!(marked.wait().unwrap().code().is_none());
        assert_eq!(kill_marked(""), 0);
        let _ = plain.kill();
        let _ = plain.wait();
    }

    use crate::process::testkit::{SMALL, far, sh_limited};
    use crate::process::{Outcome, StdoutMode};

    #[test]
    fn escaped_descendants_die_with_the_dispatch_and_the_marker_is_set() {
        // setsid and a double fork into a new group: both leave the process group.
        for escape in [
            "setsid sleep 3600",
            "sh -c 'set -m; sleep 3600 & echo $! >&3' 3>&1",
        ] {
            let script =
                format!("echo $AGENT_DISPATCH_CHILD; {escape} & echo $!; sleep 0.2; echo done");
            let child = sh_limited(&script, StdoutMode::Lines, SMALL);
            let token = child.marker().to_string();
            let mut lines = Vec::new();
            let f = child.wait(far(), None, &mut |l| {
                lines.push(String::from_utf8_lossy(l).into_owned())
            });
            assert_eq!(f.outcome, Outcome::Exited);
            assert_eq!(lines.first(), Some(&token), "the child carries its marker");
            assert!(find_marked(&token).is_empty(), "{escape}: an escapee lives");
        }
    }
}
