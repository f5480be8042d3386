//! The config snapshot: `agents.yaml` is parsed again only when the file changed (device, inode,
//! size, modification and change times), and agent directories are resolved only for the agents
//! a call uses. So a dispatch costs the same with 5 agents or 500, and still sees every edit made
//! by the CLI or another server (SPEC §3.2) on its next call.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use crate::config::{self, Config};

/// What identifies one version of the file. Our own writes replace the file by rename (a new
/// inode); the times catch an editor writing in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl Stamp {
    /// `None` when the file is missing (the default config) or cannot be read.
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }
}

#[derive(Default)]
pub struct Snapshot {
    current: Mutex<Option<(Option<Stamp>, Arc<Config>)>>,
}

/// What `Snapshot::get` found.
pub struct Loaded {
    pub config: Arc<Config>,
    /// True when the file was (re)read by this call: live settings should be applied again.
    pub changed: bool,
}

impl Snapshot {
    /// The config as written (directories not yet resolved), read again only if the file
    /// changed since the last call. A file that fails to parse is an error every time, and
    /// the last good version is not served in its place: the user should see the problem.
    pub fn get(&self, path: &Path) -> Result<Loaded, config::Error> {
        // Stat before reading: a change that lands between the two is read again next time
        // rather than hidden behind the new stamp.
        let stamp = Stamp::of(path);
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, config)) = current.as_ref()
            && stamp.is_some()
            && *seen == stamp
        {
            return Ok(Loaded {
                config: Arc::clone(config),
                changed: false,
            });
        }
        *current = None;
        let config = Arc::new(Config::load_as_written(path)?);
        *current = Some((stamp, Arc::clone(&config)));
        Ok(Loaded {
            config,
            changed: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_again_only_after_a_change() {
        let dir = std::env::temp_dir().join(format!("ad-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("agents.yaml");
        std::fs::write(&path, "agents:\n  a:\n    directory: /tmp\n").unwrap_or_default();
        let snap = Snapshot::default();
        let first = snap.get(&path).map(|l| l.changed);
        let second = snap.get(&path).map(|l| l.changed);
        assert!(matches!((first, second), (Ok(true), Ok(false))));
        // A rename-replace (how every write of ours lands) is a new inode.
        let tmp = dir.join("next.yaml");
        std::fs::write(&tmp, "agents:\n  b:\n    directory: /tmp\n").unwrap_or_default();
        std::fs::rename(&tmp, &path).unwrap_or_default();
        let third = snap.get(&path);
        assert!(
            third
                .as_ref()
                .is_ok_and(|l| l.changed && l.config.agent("b").is_some())
        );
        std::fs::write(&path, "agents: [").unwrap_or_default();
        assert!(snap.get(&path).is_err());
        assert!(snap.get(&path).is_err(), "a broken file stays an error");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
