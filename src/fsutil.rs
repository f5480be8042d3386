//! File primitives shared by the two stores that must survive crashes and concurrent writers,
//! `config` (agents.yaml) and `jobs` (one file per job): private directories, replace-by-rename
//! writes through a caller-named temp file, and waiting for an advisory lock. Each store keeps
//! its own naming, locking policy and error type; only the mechanics live here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use fs2::FileExt;

/// Creates `dir` (and any missing parents) 0700. An existing directory keeps its mode: it may
/// be shared (`$HOME`, `/tmp`), and SPEC §12 item 19 is exactly that mistake.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {
            // Ours, just made: undo whatever the umask took away from the owner.
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Which step of [`replace_file`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteStep {
    CreateTemp,
    Write,
    Rename,
}

/// Replaces `target` with `bytes` so readers see the old or the new file, never a mix: `tmp`
/// (a name unique to this writer, in the same directory) is created 0600, written, fsynced and
/// renamed over `target`. On failure the temp file is removed. With `sync_dir`, the directory
/// is fsynced too, so the rename itself survives a crash.
pub fn replace_file(
    target: &Path,
    tmp: &Path,
    bytes: &[u8],
    sync_dir: bool,
) -> Result<(), (WriteStep, io::Error)> {
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(tmp)
            .map_err(|e| (WriteStep::CreateTemp, e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| (WriteStep::Write, e))?;
        fs::rename(tmp, target).map_err(|e| (WriteStep::Rename, e))
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
        return written;
    }
    if sync_dir && let Some(dir) = target.parent() {
        // Failure here loses nothing already visible.
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Takes an exclusive lock on `file`, retrying every `poll` while another holder has it, until
/// `deadline`. `Ok(false)` means the deadline passed; other lock errors are returned.
pub fn lock_exclusive_until(file: &File, deadline: Instant, poll: Duration) -> io::Result<bool> {
    let contended = fs2::lock_contended_error().raw_os_error();
    loop {
        match file.try_lock_exclusive() {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == contended => {
                if Instant::now() >= deadline {
                    return Ok(false);
                }
                std::thread::sleep(poll);
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ad-fsutil-{name}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn private_dir_is_0700_when_made_and_untouched_when_present() {
        let d = scratch("dir");
        ensure_private_dir(&d.join("a/b")).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&d.join("a/b")), 0o700);
        fs::set_permissions(d.join("a/b"), fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&d.join("a/b")).unwrap();
        assert_eq!(mode(&d.join("a/b")), 0o755);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn replace_file_is_private_and_cleans_up_a_failed_temp() {
        let d = scratch("write");
        fs::create_dir_all(&d).unwrap();
        let target = d.join("f");
        replace_file(&target, &d.join(".f.tmp"), b"one", true).unwrap();
        replace_file(&target, &d.join(".f.tmp"), b"two", false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A rename onto a directory fails after the temp exists: the temp must be gone.
        fs::create_dir(d.join("dir")).unwrap();
        fs::write(d.join("dir/x"), b"x").unwrap();
        let err = replace_file(&d.join("dir"), &d.join(".dir.tmp"), b"z", false).unwrap_err();
        assert_eq!(err.0, WriteStep::Rename);
        assert!(!d.join(".dir.tmp").exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn lock_wait_gives_up_at_the_deadline() {
        let d = scratch("lock");
        fs::create_dir_all(&d).unwrap();
        let p = d.join("l");
        let held = File::create(&p).unwrap();
        held.lock_exclusive().unwrap();
        let other = File::open(&p).unwrap();
        let start = Instant::now();
        let got = lock_exclusive_until(
            &other,
            start + Duration::from_millis(50),
            Duration::from_millis(5),
        )
        .unwrap();
        assert!(!got);
        drop(held);
        assert!(
            lock_exclusive_until(
                &other,
                Instant::now() + Duration::from_secs(1),
                Duration::from_millis(5)
            )
            .unwrap()
        );
        let _ = fs::remove_dir_all(&d);
    }
}
