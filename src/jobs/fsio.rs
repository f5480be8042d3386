//! Low-level file and process helpers for the job store: the 0700 directory, 0600 atomic
//! writes through unique temp files, ownership-lock probes, and the checks that prove a recorded
//! child is still the process we started (start time and environment marker) before we signal
//! it.
//!
//! Every file is opened with `O_NONBLOCK | O_NOFOLLOW` and checked to be a regular file before
//! it is read or locked: a FIFO, a device or a symlink planted under a job's name must never
//! block the store or make it read without end. What is read of one record is capped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fs2::FileExt;

use crate::process::procfs;

/// The jobs directory: created 0700, an existing one left as it is (it may be shared, and even
/// a read-only command opens the store). Our job files are 0600 either way.
pub(super) use crate::fsutil::ensure_private_dir;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The most of one job file that is read: twice the largest result a child may print (JSON
/// escaping) plus room for the rest of the record.
pub(super) fn max_record_bytes() -> u64 {
    let result = crate::process::Limits::from_env().max_output as u64;
    result.saturating_mul(2).saturating_add(1 << 20)
}

/// Opens `path` for reading or writing without following a symlink and without blocking on a
/// FIFO, and refuses anything but a regular file.
fn open_regular(path: &Path, write: bool) -> io::Result<File> {
    let f = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is a symbolic link, not a regular file", path.display()),
            ),
            Some(libc::ENXIO) => not_regular(path, "a FIFO or socket"),
            _ => e,
        })?;
    let kind = f.metadata()?.file_type();
    if kind.is_file() {
        return Ok(f);
    }
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(not_regular(path, what))
}

fn not_regular(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is {what}, not a regular file", path.display()),
    )
}

/// The bytes of the job file at `path` (`None` when there is none), refusing anything but a
/// regular file of at most `max_record_bytes`.
pub(super) fn read_record(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match open_regular(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let cap = max_record_bytes();
    let size = f.metadata()?.len();
    if size > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{size} bytes, over the {cap}-byte limit on a job record"),
        ));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // The file may grow after the fstat; never read past the cap.
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("over the {cap}-byte limit on a job record"),
        ));
    }
    Ok(Some(bytes))
}

/// The temp file `atomic_write` uses for `<stem>.json`: `.<stem>.<pid>.<counter>.tmp`.
fn temp_name(stem: &str, pid: u32, n: u64) -> String {
    format!(".{stem}.{pid}.{n}.tmp")
}

/// Whether `name` is a temp file `atomic_write` makes for a job file (see [`temp_name`]), so a
/// sweep removes only our own leftovers and never someone else's dotfile in a shared directory.
pub(super) fn is_job_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = inner.split('.');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    parts.next().is_some_and(super::model::valid_id)
        && digits(parts.next())
        && digits(parts.next())
        && parts.next().is_none()
}

/// Writes `bytes` to `path` so readers see the old or the new file, never a mix, through a temp
/// file unique to this process and call (SPEC §12 item 21).
pub(super) fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(temp_name(&stem, std::process::id(), n));
    crate::fsutil::replace_file(path, &tmp, bytes, false).map_err(|(_, e)| e)
}

/// How often `create_locked` starts over because its new file was swept before it was locked.
const CREATE_ATTEMPTS: usize = 8;
/// How long `create_locked` waits out probes that hold its brand-new lock for an instant.
const PROBE_PATIENCE: Duration = Duration::from_secs(2);

/// Creates a new lock file 0600 and locks it exclusively. `create_new` because a job's
/// ownership lock must be a file nobody else can already hold.
///
/// Between the create and the lock the file is unlocked, so a sweep may remove it (under its
/// own lock, see [`remove_if_unheld`]); locking that unlinked inode would look to every other
/// process like no owner at all. So once locked, the path must still name our inode, else we
/// start over with a fresh file. And since probes lock the file for an instant, a busy lock is
/// waited out briefly rather than failing the create.
pub(super) fn create_locked(path: &Path) -> io::Result<File> {
    for _ in 0..CREATE_ATTEMPTS {
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        #[cfg(test)]
        run_before_lock_hook(path);
        lock_past_probes(&f)?;
        if names(path, &f)? {
            return Ok(f);
        }
    }
    Err(io::Error::other(format!(
        "lock file {} was removed each time it was created",
        path.display()
    )))
}

fn lock_past_probes(f: &File) -> io::Result<()> {
    let deadline = Instant::now() + PROBE_PATIENCE;
    if crate::fsutil::lock_exclusive_until(f, deadline, Duration::from_millis(2))? {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "lock file stayed busy",
        ))
    }
}

/// Whether `path` (not following a symlink) is the very inode `f` has open.
fn names(path: &Path, f: &File) -> io::Result<bool> {
    let ours = f.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(m.dev() == ours.dev() && m.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the lock file at `path` if nobody holds it; returns whether it did. The unlink
/// happens while this probe holds the lock, and only if the path still names the inode it
/// locked: a creator that opened the file but has not locked it yet then finds it gone once it
/// can lock, and makes a fresh one ([`create_locked`]); an owner's lock is never removed.
pub(super) fn remove_if_unheld(path: &Path) -> bool {
    let Ok(f) = open_regular(path, false) else {
        return false;
    };
    if f.try_lock_exclusive().is_err() {
        return false;
    }
    names(path, &f).unwrap_or(false) && fs::remove_file(path).is_ok()
}

/// How long a transition waits for the directory lock before reporting it busy.
const STORE_LOCK_PATIENCE: Duration = Duration::from_secs(30);

/// Opens (creating it if needed) and takes an exclusive lock of `path`, waiting at most
/// `STORE_LOCK_PATIENCE`. Something other than a regular file under that name (a FIFO, a
/// symlink: nobody can hold a lock through it) is removed and a fresh lock file made; a
/// directory is reported.
pub(super) fn lock_blocking(path: &Path) -> io::Result<File> {
    let f = match open_lock(path) {
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            if fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
                crate::log::warn(&format!("{e}; replacing it"));
                fs::remove_file(path)?;
            }
            open_lock(path)?
        }
        other => other?,
    };
    let deadline = Instant::now() + STORE_LOCK_PATIENCE;
    if crate::fsutil::lock_exclusive_until(&f, deadline, Duration::from_millis(5))? {
        Ok(f)
    } else {
        Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{} stayed locked for {STORE_LOCK_PATIENCE:?}",
                path.display()
            ),
        ))
    }
}

fn open_lock(path: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open_regular(path, true),
        Err(e) => Err(e),
    }
}

/// Whether some open file description holds the lock at `path`. Never creates the file, so a
/// probe can not bring back a lock file its owner already removed; a missing file is unheld.
/// An error other than contention counts as held: when in doubt, leave the job alone.
pub(super) fn lock_is_held(path: &Path) -> bool {
    let f = match open_regular(path, false) {
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
    procfs::stat(pid).map(|s| s.start)
}

/// Kills the process group `pgid` only if its leader is still the process that was recorded:
/// same pid, same start time *and* it carries the dispatch marker (`marker`, the recorded
/// token, when the record has one), so neither a recycled pid nor a hand-written record can aim
/// the signal at a process we did not start. When the leader is gone, only its provable
/// leftovers are killed (see [`kill_leaderless_members`]). Returns whether a signal was sent.
pub(super) fn kill_group_if_same(pgid: u32, started: u64, marker: Option<&str>) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    // SAFETY: getpgrp has no preconditions.
    let own_group = unsafe { libc::getpgrp() };
    if raw <= 1 || raw == own_group || pgid == std::process::id() {
        return false;
    }
    match process_start_time(pgid) {
        // SAFETY: kill with a negative pid signals a process group; no memory is involved.
        Some(t) if t == started && crate::process::marker::carries_marker(pgid, marker) => unsafe {
            libc::kill(-raw, libc::SIGKILL) == 0
        },
        Some(_) => false,
        None => kill_leaderless_members(raw, started, marker),
    }
}

/// A dispatched `claude` dies with the server that spawned it (PR_SET_PDEATHSIG), so after a
/// crash the recorded leader is usually gone while its own children (MCP servers, shells) may
/// still sit in its process group. The group id alone proves nothing once the leader is gone,
/// so a member is killed only when it is in the group, started no earlier than the recorded
/// leader, and carries the dispatch marker every dispatched child and its descendants inherit.
fn kill_leaderless_members(pgid: i32, started: u64, marker: Option<&str>) -> bool {
    let mut signalled = false;
    for pid in procfs::pids() {
        let Some(stat) = procfs::stat(pid).filter(procfs::Stat::is_live) else {
            continue;
        };
        if stat.pgid != pgid || stat.start < started {
            continue;
        }
        let ours = crate::process::marker::carries_marker(pid, marker);
        // SAFETY: kill(2) on a single pid; no memory is involved.
        if ours
            && let Ok(raw) = i32::try_from(pid)
            && unsafe { libc::kill(raw, libc::SIGKILL) } == 0
        {
            signalled = true;
        }
    }
    signalled
}

#[cfg(test)]
pub(super) type Hook = Box<dyn FnOnce(&Path)>;

#[cfg(test)]
thread_local! {
    /// Runs once, on this thread, between `create_locked`'s create and its lock: lets tests put
    /// a concurrent probe or sweep exactly into that window.
    pub(super) static BEFORE_LOCK: std::cell::RefCell<Option<Hook>> =
        std::cell::RefCell::new(None);
}

#[cfg(test)]
fn run_before_lock_hook(path: &Path) {
    if let Some(hook) = BEFORE_LOCK.with(|h| h.borrow_mut().take()) {
        hook(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

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
    fn temp_names_are_recognised_exactly() {
        let id = "0123456789abcdef0123456789abcdef";
        assert!(is_job_temp_name(&temp_name(id, 42, 7)));
        for foreign in [
            ".X11-unix.tmp",
            ".session.tmp",
            &format!(".{id}.tmp"),
            &format!(".{id}.1.tmp"),
            &format!(".{id}.1.2.3.tmp"),
            &format!(".{id}.1.x.tmp"),
            &format!("{id}.1.2.tmp"),
            &format!(".{}.1.2.tmp", id.to_uppercase()),
        ] {
            assert!(!is_job_temp_name(foreign), "{foreign}");
        }
    }

    #[test]
    fn only_a_directory_we_create_is_made_private() {
        let d = scratch("modes");
        let shared = d.join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private_dir(&shared).unwrap();
        let mode = fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "an existing directory keeps its mode");
        let fresh = d.join("a").join("b");
        ensure_private_dir(&fresh).unwrap();
        for p in [&fresh, &d.join("a")] {
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let file = d.join("f");
        fs::write(&file, b"").unwrap();
        assert!(
            ensure_private_dir(&file).is_err(),
            "a file is not a directory"
        );
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
    fn removal_only_of_an_unheld_lock_and_a_swept_creator_starts_over() {
        let d = scratch("remove");
        let p = d.join("b.lock");
        assert!(!remove_if_unheld(&p));
        let held = create_locked(&p).unwrap();
        assert!(!remove_if_unheld(&p), "a held lock is never removed");
        assert!(p.exists());
        drop(held);
        // A process spawned by another test at this moment shares our descriptors between its
        // fork and exec, and with them the lock; give such a window a moment to close.
        let removed = (0..100).any(|_| {
            remove_if_unheld(&p) || {
                std::thread::sleep(std::time::Duration::from_millis(10));
                false
            }
        });
        assert!(removed);
        assert!(!p.exists());

        // The sweep wins the window between create and lock: the creator must not keep the
        // unlinked inode.
        BEFORE_LOCK.with(|h| {
            *h.borrow_mut() = Some(Box::new(|path: &Path| assert!(remove_if_unheld(path))))
        });
        let f = create_locked(&p).unwrap();
        assert!(names(&p, &f).unwrap());
        assert!(lock_is_held(&p));
        let _ = fs::remove_dir_all(&d);
    }

    /// A shell in its own group that leaves a `sleep` behind in that group and exits; returns
    /// (group, leader start time, sleep pid).
    fn orphan_in_group(marked: bool) -> (u32, u64, i32) {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo $!; read _"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .process_group(0);
        if marked {
            cmd.env(crate::process::marker::MARKER_VAR, "t1");
        } else {
            cmd.env_remove(crate::process::marker::MARKER_VAR);
        }
        let mut child = cmd.spawn().unwrap();
        let pgid = child.id();
        let started = process_start_time(pgid).unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        drop(child.stdin.take());
        child.wait().unwrap();
        (pgid, started, line.trim().parse().unwrap())
    }

    fn live(pid: i32) -> bool {
        u32::try_from(pid).is_ok_and(procfs::live)
    }

    #[test]
    fn leaderless_group_loses_only_marked_members() {
        let (pgid, started, sleeper) = orphan_in_group(true);
        assert!(live(sleeper));
        assert!(!kill_group_if_same(pgid, started + 1_000_000, None));
        assert!(
            !kill_group_if_same(pgid, started, Some("t2")),
            "another token"
        );
        assert!(kill_group_if_same(pgid, started, Some("t1")));
        let gone = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !live(sleeper)
        });
        assert!(gone, "marked leftover survived");

        let (pgid, started, sleeper) = orphan_in_group(false);
        assert!(
            !kill_group_if_same(pgid, started, None),
            "unmarked process killed"
        );
        assert!(live(sleeper));
        // SAFETY: cleaning up the sleep this test started.
        unsafe { libc::kill(sleeper, libc::SIGKILL) };
    }

    #[test]
    fn start_time_of_self_and_refusals() {
        assert!(process_start_time(std::process::id()).is_some());
        assert!(!kill_group_if_same(std::process::id(), 0, None));
        assert!(!kill_group_if_same(1, 0, None));
        // A live group whose recorded start time does not match is left alone.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id();
        let real = process_start_time(pid).unwrap();
        assert!(!kill_group_if_same(pid, real + 1, None));
        // The right start time but no marker: a record cannot aim at a process we did not start.
        assert!(!kill_group_if_same(pid, real, None));
        assert!(child.try_wait().unwrap().is_none());
        let _ = child.kill();
        let _ = child.wait();
    }
}
