//! The ledger: which supervised children this server has alive, on disk, so that children of a
//! server killed outright (SIGKILL, OOM) can be found and killed by the next server or `doctor`.
//!
//! PR_SET_PDEATHSIG already kills a direct child with its server, but not the child's own
//! children (MCP servers, shells, escapees). Each server keeps one file,
//! `<dir>/<pid>.ledger`, holding one line `<marker token> <child pid>` per live child, and an
//! exclusive flock on it for its whole life. `sweep` takes every ledger whose lock nobody holds
//! (its server is gone), kills every process still carrying one of its tokens
//! (`marker::kill_marked`: the token is a fresh uuid, so the match is proof) and removes it.
//!
//! Wiring: call `install(dir)` once when a server starts (after `sweep(dir)`); from then on
//! every `Supervised` child is noted and forgotten automatically. Without `install` nothing is
//! written (CLI commands, tests).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use fs2::FileExt;

use super::marker;

/// The most of one ledger file `sweep` reads (a line is under 60 bytes).
const MAX_LEDGER_BYTES: u64 = 1 << 20;

struct Ledger {
    path: PathBuf,
    /// Open and flocked for the life of the process.
    file: File,
    live: BTreeMap<String, u32>,
}

static LEDGER: OnceLock<Mutex<Ledger>> = OnceLock::new();

/// Starts this process's ledger in `dir` (created 0700 if missing). Idempotent: a second call
/// keeps the first ledger.
pub fn install(dir: &Path) -> io::Result<()> {
    if LEDGER.get().is_some() {
        return Ok(());
    }
    crate::fsutil::ensure_private_dir(dir)?;
    let path = dir.join(format!("{}.ledger", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    file.try_lock_exclusive()?;
    let _ = LEDGER.set(Mutex::new(Ledger {
        path,
        file,
        live: BTreeMap::new(),
    }));
    Ok(())
}

/// Notes a live child (called by `Supervised::spawn`). Best effort: a failed write is logged.
pub(super) fn note_spawn(token: &str, pid: u32) {
    update(|live| {
        live.insert(token.to_string(), pid);
    });
}

/// Forgets a child whose dispatch ended (called when a `Supervised` is finished or dropped).
pub(super) fn note_end(token: &str) {
    update(|live| {
        live.remove(token);
    });
}

fn update(change: impl FnOnce(&mut BTreeMap<String, u32>)) {
    let Some(ledger) = LEDGER.get() else { return };
    let mut l = ledger.lock().unwrap_or_else(PoisonError::into_inner);
    change(&mut l.live);
    let text: String = l
        .live
        .iter()
        .map(|(token, pid)| format!("{token} {pid}\n"))
        .collect();
    // Rewritten in place: a rename would leave our lock on the old inode.
    let written = (|| {
        l.file.set_len(0)?;
        l.file.rewind()?;
        l.file.write_all(text.as_bytes())
    })();
    if let Err(e) = written {
        crate::log::warn(&format!(
            "could not update the child ledger {}: {e}",
            l.path.display()
        ));
    }
}

/// Kills the leftovers of every server whose ledger in `dir` is unlocked (that server is gone)
/// and removes those ledgers. Returns how many processes were killed. Never blocks: a locked
/// ledger belongs to a live server and is skipped; anything but a regular file is ignored.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "ledger") {
            continue;
        }
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        if !file.metadata().is_ok_and(|m| m.is_file()) || file.try_lock_exclusive().is_err() {
            continue;
        }
        let mut text = String::new();
        let _ = io::Read::read_to_string(&mut io::Read::take(&file, MAX_LEDGER_BYTES), &mut text);
        for token in text.lines().filter_map(|l| l.split_whitespace().next()) {
            // Only uuid-shaped tokens: a torn or planted line must not widen the match.
            if token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
                killed += marker::kill_marked(token);
            }
        }
        let _ = fs::remove_file(&path);
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn an_unlocked_ledger_has_its_marked_processes_killed_and_is_removed() {
        let dir = std::env::temp_dir().join(format!("ad-ledger-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let token = marker::new_token();
        let mut orphan = Command::new("sleep")
            .arg("30")
            .env(marker::MARKER_VAR, &token)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let dead_server = dir.join("999999.ledger");
        fs::write(&dead_server, format!("{token} 1\nnot-a-token 2\n")).unwrap();
        // A ledger still locked by its (live) server is left alone.
        let live_server = dir.join("1.ledger");
        fs::write(&live_server, format!("{token} 1\n")).unwrap();
        let held = File::open(&live_server).unwrap();
        held.lock_exclusive().unwrap();

        assert_eq!(sweep(&dir), 1);
        assert!(
            orphan.wait().unwrap().code().is_none(),
            "killed by a signal"
        );
        assert!(!dead_server.exists());
        assert!(live_server.exists());
        drop(held);
        let _ = fs::remove_dir_all(&dir);
    }
}
