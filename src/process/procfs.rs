//! The little of Linux `/proc` the supervision and the job store read: which pids exist, a
//! process's state, group and start time (`/proc/<pid>/stat`), and its environment. One parser,
//! so the one subtlety — the command name in field 2 may itself hold `) ` — is handled once.

use std::fs;

/// What `/proc/<pid>/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: char,
    /// Field 5: the process group.
    pub pgid: i32,
    /// Field 22: start time in clock ticks since boot.
    pub start: u64,
}

impl Stat {
    /// Neither a zombie nor dead.
    pub fn is_live(&self) -> bool {
        !matches!(self.state, 'Z' | 'X')
    }
}

/// The stat of `pid`, `None` where there is no such process or no procfs.
pub fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Split at the last parenthesis: the fields after the command name start with the state.
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgid = fields.nth(1)?.parse().ok()?;
    // Start time is field 22; fields 3 to 5 are consumed.
    let start = fields.nth(16)?.parse().ok()?;
    Some(Stat { state, pgid, start })
}

/// True while `pid` exists and is neither a zombie nor dead.
pub fn live(pid: u32) -> bool {
    stat(pid).is_some_and(|s| s.is_live())
}

/// The NUL-separated `KEY=value` environment of `pid`, if we may read it.
pub fn environ(pid: u32) -> Option<Vec<u8>> {
    fs::read(format!("/proc/{pid}/environ")).ok()
}

/// Every pid in `/proc` (none where there is no procfs).
pub fn pids() -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert!(s.is_live());
        // SAFETY: getpgrp has no preconditions.
        assert_eq!(s.pgid, unsafe { libc::getpgrp() });
        assert!(pids().contains(&me));
        assert!(environ(me).is_some());
        assert_eq!(stat(u32::MAX), None);
    }
}
