//! Low-level file and process helpers for the job store: the 0700 directory, 0600 atomic
//! writes through unique temp files, ownership-lock probes, and the process start-time check
//! that proves a recorded child is still the process we started before we signal it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use fs2::FileExt;

/// Creates `dir` (and parents) 0700 and tightens an existing one to 0700, best effort: the
/// files inside hold full task and result text (SPEC §10).
pub(super) fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    Ok(())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` so readers see the old or the new file, never a mix: a temp file
/// unique to this process and call (SPEC §12 item 21), created 0600, fsynced, then renamed over.
pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{stem}.{}.{n}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Creates a new lock file 0600 and locks it exclusively. `create_new` because a job's
/// ownership lock must be a file nobody else can already hold.
pub(super) fn create_locked(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.try_lock_exclusive()?;
    Ok(f)
}

/// Opens (creating it if needed) and blocks on an exclusive lock of `path`.
pub(super) fn lock_blocking(path: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    f.lock_exclusive()?;
    Ok(f)
}

/// Whether some open file description holds the lock at `path`. Never creates the file, so a
/// probe can not bring back a lock file its owner already removed; a missing file is unheld.
/// An error other than contention counts as held: when in doubt, leave the job alone.
pub(super) fn lock_is_held(path: &Path) -> bool {
    let f = match OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    // flock locks belong to the open file description, so this probe conflicts with the owner
    // even when the owner is another thread of this very process. The lock (if we got it) is
    // released when `f` is closed.
    f.try_lock_exclusive().is_err()
}

/// The start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), or `None`
/// where there is no such process or no procfs.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is parenthesised and may itself contain ") ", so split at the
    // last parenthesis; the state (field 3) is then the first word.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills the process group `pgid` only if its leader is still the process that was recorded
/// (same pid *and* same start time), so a recycled pid is never signalled. Returns whether a
/// signal was sent.
pub(super) fn kill_group_if_same(pgid: u32, started: u64) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    // SAFETY: getpgrp has no preconditions.
    let own_group = unsafe { libc::getpgrp() };
    if raw <= 1 || raw == own_group || pgid == std::process::id() {
        return false;
    }
    if process_start_time(pgid) != Some(started) {
        return false;
    }
    // SAFETY: kill with a negative pid signals a process group; no memory is involved.
    unsafe { libc::kill(-raw, libc::SIGKILL) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ad-fsio-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        ensure_private_dir(&d).unwrap();
        d
    }

    #[test]
    fn atomic_write_is_private_and_leaves_no_temp() {
        let d = scratch("write");
        let p = d.join("x.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn probe_sees_a_lock_held_in_this_process() {
        let d = scratch("probe");
        let p = d.join("a.lock");
        assert!(!lock_is_held(&p));
        assert!(!p.exists(), "a probe must not create the file");
        let held = create_locked(&p).unwrap();
        assert!(lock_is_held(&p));
        assert!(create_locked(&p).is_err());
        drop(held);
        assert!(!lock_is_held(&p));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn start_time_of_self_and_refusals() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(!kill_group_if_same(std::process::id(), 0));
        assert!(!kill_group_if_same(1, 0));
        // A live group whose recorded start time does not match is left alone.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        let real = process_start_time(pid).unwrap();
        assert!(!kill_group_if_same(pid, real + 1));
        assert!(child.try_wait().unwrap().is_none());
        let _ = child.kill();
        let _ = child.wait();
    }
}
