//! Changing `agents.yaml` safely (SPEC §3.3, fixing §12 items 18–19): every mutation is one
//! read-modify-write under an exclusive `flock` on a sibling lock file, so concurrent CLI and
//! server edits never lose each other's changes; the new text goes to a unique temp file in the
//! same directory (created 0600, fsynced) that is renamed over the old one, so a crash leaves
//! either the old or the new file, never half of one. A file that fails to load is never
//! written. A symlinked config stays a symlink: the rename targets the file it points to.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs2::FileExt;

use super::{Config, Error};
use crate::fsutil::{self, WriteStep};

/// How long a mutation waits for another process's lock before giving up.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a mutation did not happen. In every case the file on disk is unchanged.
#[derive(Debug)]
pub enum MutateError {
    /// The existing file could not be read or parsed.
    Load(Error),
    /// The change itself was refused; the text is the caller's own message.
    Rejected(String),
    /// Another process held the lock for the whole wait.
    LockTimeout { lock: PathBuf, waited: Duration },
    /// Creating the directory, locking, or writing failed.
    Io {
        path: PathBuf,
        action: &'static str,
        err: io::Error,
    },
    /// The config could not be turned into YAML (e.g. a directory path that is not UTF-8).
    Serialize { path: PathBuf, message: String },
}

impl std::fmt::Display for MutateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MutateError::Load(e) => write!(f, "{e}"),
            MutateError::Rejected(msg) => f.write_str(msg),
            MutateError::LockTimeout { lock, waited } => write!(
                f,
                "config is locked by another process (waited {}s for {}); try again",
                waited.as_secs(),
                lock.display()
            ),
            MutateError::Io { path, action, err } => {
                write!(f, "could not {action} {}: {err}", path.display())
            }
            MutateError::Serialize { path, message } => {
                write!(f, "could not write config {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for MutateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MutateError::Load(e) => Some(e),
            MutateError::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Load → `f` → save, all under the config lock (waiting at most [`LOCK_TIMEOUT`]). A load error
/// or an `Err` from `f` aborts with nothing written. Inside `f`, agent directories are as
/// written in the file (not resolved), so untouched entries keep their `~/…` form.
pub fn mutate<T>(
    path: &Path,
    f: impl FnOnce(&mut Config) -> Result<T, String>,
) -> Result<T, MutateError> {
    mutate_with_timeout(path, LOCK_TIMEOUT, f)
}

/// [`mutate`] with a chosen lock wait.
pub fn mutate_with_timeout<T>(
    path: &Path,
    wait: Duration,
    f: impl FnOnce(&mut Config) -> Result<T, String>,
) -> Result<T, MutateError> {
    locked(path, wait, |target| {
        let mut config = Config::load_as_written(path).map_err(MutateError::Load)?;
        let out = f(&mut config).map_err(MutateError::Rejected)?;
        write_atomic(target, &config)?;
        Ok(out)
    })
}

/// Creates the file with the default config unless it exists (SPEC §9.2 step 1). Returns
/// whether it was created. An existing file is never touched, even a broken one.
pub fn init_file(path: &Path) -> Result<bool, MutateError> {
    locked(path, LOCK_TIMEOUT, |target| {
        if fs::symlink_metadata(target).is_ok() {
            return Ok(false);
        }
        write_atomic(target, &Config::default())?;
        Ok(true)
    })
}

/// Runs `body` with the resolved target path while holding the lock.
fn locked<T>(
    path: &Path,
    wait: Duration,
    body: impl FnOnce(&Path) -> Result<T, MutateError>,
) -> Result<T, MutateError> {
    let target = follow_symlinks(path);
    let dir = parent_dir(&target);
    ensure_dir(&dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "agents.yaml".to_string());
    let lock_path = dir.join(format!(".{name}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|err| MutateError::Io {
            path: lock_path.clone(),
            action: "open lock file",
            err,
        })?;
    acquire(&lock, &lock_path, wait)?;
    let out = body(&target);
    // Closing the file releases the flock; say so explicitly for readers.
    let _ = FileExt::unlock(&lock);
    out
}

fn acquire(lock: &File, lock_path: &Path, wait: Duration) -> Result<(), MutateError> {
    let locked =
        fsutil::lock_exclusive_until(lock, Instant::now() + wait, Duration::from_millis(10))
            .map_err(|err| MutateError::Io {
                path: lock_path.to_path_buf(),
                action: "lock",
                err,
            })?;
    if locked {
        Ok(())
    } else {
        Err(MutateError::LockTimeout {
            lock: lock_path.to_path_buf(),
            waited: wait,
        })
    }
}

/// The file a symlink chain ends at (which need not exist yet).
fn follow_symlinks(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match fs::read_link(&p) {
            Ok(next) if next.is_absolute() => p = next,
            Ok(next) => p = parent_dir(&p).join(next),
            Err(_) => break,
        }
    }
    p
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Creates missing directories 0700. An existing directory keeps its mode: it may be a shared
/// one such as `$HOME` (SPEC §12 item 19).
fn ensure_dir(dir: &Path) -> Result<(), MutateError> {
    fsutil::ensure_private_dir(dir).map_err(|err| MutateError::Io {
        path: dir.to_path_buf(),
        action: "create directory",
        err,
    })
}

fn write_atomic(target: &Path, config: &Config) -> Result<(), MutateError> {
    let text = config.to_yaml().map_err(|e| MutateError::Serialize {
        path: target.to_path_buf(),
        message: e.to_string(),
    })?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent_dir(target).join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    fsutil::replace_file(target, &tmp, text.as_bytes(), true).map_err(|(step, err)| {
        MutateError::Io {
            path: target.to_path_buf(),
            action: match step {
                WriteStep::CreateTemp => "create a temporary file next to",
                WriteStep::Write => "write",
                WriteStep::Rename => "replace",
            },
            err,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ad-store-{name}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_dir_and_file() {
        let root = scratch("modes");
        let path = root.join("new").join("agents.yaml");
        mutate(&path, |c| {
            c.agents.insert("a".into(), AgentConfig::new("/tmp".into()));
            Ok(())
        })
        .unwrap();
        assert_eq!(mode(&root.join("new")), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert!(fs::read_to_string(&path).unwrap().contains("a:"));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn existing_directory_keeps_its_mode() {
        let root = scratch("shared");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        mutate(&root.join("agents.yaml"), |_| Ok(())).unwrap();
        assert_eq!(mode(&root), 0o755);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn rejected_and_unparsable_leave_the_file_alone() {
        let root = scratch("reject");
        let path = root.join("agents.yaml");
        fs::write(&path, "agents: [\n").unwrap();
        let e = mutate(&path, |_| Ok(())).unwrap_err();
        assert!(matches!(e, MutateError::Load(_)), "{e}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "agents: [\n");

        fs::write(&path, "# mine\nagents: {}\n").unwrap();
        let e = mutate(&path, |_| Err::<(), _>("no".to_string())).unwrap_err();
        assert_eq!(e.to_string(), "no");
        assert_eq!(fs::read_to_string(&path).unwrap(), "# mine\nagents: {}\n");
        let leftovers: Vec<_> = fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn symlinked_config_stays_a_symlink() {
        let root = scratch("link");
        let real = root.join("real.yaml");
        fs::write(&real, "agents: {}\n").unwrap();
        let link = root.join("agents.yaml");
        std::os::unix::fs::symlink("real.yaml", &link).unwrap();
        mutate(&link, |c| {
            c.agents.insert("x".into(), AgentConfig::new("/".into()));
            Ok(())
        })
        .unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(fs::read_to_string(&real).unwrap().contains("x:"));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn lock_wait_is_bounded() {
        let root = scratch("lock");
        let path = root.join("agents.yaml");
        let held = File::create(root.join(".agents.yaml.lock")).unwrap();
        held.lock_exclusive().unwrap();
        let start = Instant::now();
        let e = mutate_with_timeout(&path, Duration::from_millis(150), |_| Ok(())).unwrap_err();
        assert!(matches!(e, MutateError::LockTimeout { .. }), "{e}");
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert!(!path.exists());
        FileExt::unlock(&held).unwrap();
        mutate_with_timeout(&path, Duration::from_millis(150), |_| Ok(())).unwrap();
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn concurrent_threads_lose_nothing() {
        let root = scratch("threads");
        let path = root.join("agents.yaml");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || {
                    mutate(path, |c| {
                        c.agents
                            .insert(format!("a{i}"), AgentConfig::new("/".into()));
                        Ok(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(Config::load(&path).unwrap().agents.len(), 8);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn init_file_never_overwrites() {
        let root = scratch("init");
        let path = root.join("agents.yaml");
        assert!(init_file(&path).unwrap());
        let fresh = fs::read_to_string(&path).unwrap();
        assert!(fresh.starts_with("agents: {}\nsettings:\n  default_timeout: 300\n"));
        fs::write(&path, "broken: [").unwrap();
        assert!(!init_file(&path).unwrap());
        assert_eq!(fs::read_to_string(&path).unwrap(), "broken: [");
        fs::remove_dir_all(root).unwrap();
    }
}
