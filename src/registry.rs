//! The live-server registry (upstream 0.15 format): each `agent-dispatch serve` writes
//! `servers/<pid>.json` (`{"pid", "version", "started_at", "config"}`, plus our `exe`) next to
//! the config and holds an exclusive fs2 lock on that file for its whole life. Liveness is the
//! lock, never the pid: a reader that can take the lock holds the file of a server that is gone
//! (even one SIGKILLed before it could clean up), and deletes it; a recycled pid cannot fool it.
//! fs2 locks with `flock`, as upstream's `fcntl.flock` does, so both versions see each other.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fs2::FileExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Moves the registry (tests, or a shared location).
pub const DIR_ENV: &str = "AGENT_DISPATCH_SERVERS_DIR";
/// Entries read per `live_servers` call: a registry is a handful of files, never thousands.
const MAX_ENTRIES: usize = 1000;
/// An entry file is a few hundred bytes; refuse to read anything much bigger.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// `$AGENT_DISPATCH_SERVERS_DIR`, else `servers/` next to the config.
pub fn servers_dir(config_path: &Path) -> PathBuf {
    match std::env::var_os(DIR_ENV) {
        Some(p) if !p.is_empty() => crate::config::expand_tilde(Path::new(&p)),
        _ => config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("servers"),
    }
}

/// One registered server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerEntry {
    pub pid: u32,
    pub version: String,
    /// Epoch seconds (a float, as upstream writes it).
    pub started_at: f64,
    pub config: String,
    /// The binary this server runs (ours only; upstream entries have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
}

/// This process's registration: the entry file, kept open so its lock lives as long as the
/// server. Dropping it releases the lock and removes the file.
#[derive(Debug)]
pub struct Registration {
    path: PathBuf,
    file: File,
}

impl Registration {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = FileExt::unlock(&self.file);
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Announces this process as a live server of the config at `config_path`.
pub fn register(config_path: &Path) -> io::Result<Registration> {
    let dir = servers_dir(config_path);
    crate::fsutil::ensure_private_dir(&dir)?;
    let pid = std::process::id();
    let path = dir.join(format!("{pid}.json"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)?;
    // A pid cannot collide with a live self, so this only fails on a filesystem without locks.
    file.try_lock_exclusive()?;
    file.set_len(0)?;
    let entry = ServerEntry {
        pid,
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: now(),
        config: config_path.display().to_string(),
        exe: std::env::current_exe()
            .ok()
            .map(|p| p.display().to_string()),
    };
    let bytes = serde_json::to_vec(&entry).map_err(io::Error::other)?;
    file.write_all(&bytes)?;
    file.flush()?;
    Ok(Registration { path, file })
}

/// True when nobody holds the lock of the entry at `path` (its server is gone).
fn is_stale(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        return true;
    };
    match file.try_lock_exclusive() {
        Ok(()) => {
            let _ = FileExt::unlock(&file);
            true
        }
        Err(_) => false,
    }
}

fn read_entry(path: &Path) -> Option<ServerEntry> {
    let meta = fs::metadata(path).ok()?;
    if meta.len() > MAX_ENTRY_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
    let obj = value.as_object()?;
    let num = |k: &str| match obj.get(k)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let pid = num("pid").filter(|p| *p >= 1.0 && *p <= f64::from(u32::MAX))? as u32;
    let text = |k: &str| match obj.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    Some(ServerEntry {
        pid,
        version: text("version").unwrap_or_else(|| "unknown".to_string()),
        started_at: num("started_at").filter(|t| t.is_finite()).unwrap_or(0.0),
        config: text("config").unwrap_or_default(),
        exe: text("exe"),
    })
}

/// The live servers registered in `dir`, newest first. Files whose lock is free belong to
/// servers that are gone and are deleted when `prune`. Never fails: an unreadable registry is
/// an empty one.
pub fn live_servers(dir: &Path, prune: bool) -> Vec<ServerEntry> {
    let Ok(read) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .take(MAX_ENTRIES)
        .collect();
    paths.sort();
    let mut out = Vec::new();
    for path in paths {
        if is_stale(&path) {
            if prune {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        // A locked but unparsable entry is live yet tells us nothing: skip, keep the file.
        if let Some(e) = read_entry(&path) {
            out.push(e);
        }
    }
    out.sort_by(|a, b| b.started_at.total_cmp(&a.started_at));
    out
}

/// Compares dotted versions numerically (`0.10.0` > `0.9.1`); a non-numeric part compares as 0.
pub fn version_older(version: &str, than: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(version) < parts(than)
}

/// `3m`, `2h`, `5d`: how long ago `epoch` was.
pub fn age(epoch: f64) -> String {
    let delta = (now() - epoch).max(0.0) as u64;
    match delta {
        d if d < 60 => format!("{d}s"),
        d if d < 3600 => format!("{}m", d / 60),
        d if d < 86_400 => format!("{}h", d / 3600),
        d => format!("{}d", d / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_older("0.9.1", "0.10.0"));
        assert!(!version_older("0.10.0", "0.9.1"));
        assert!(!version_older("0.1.0", "0.1.0"));
        assert!(version_older("unknown", "0.1.0"));
    }

    #[test]
    fn entries_read_leniently_and_stale_ones_go() {
        let dir = std::env::temp_dir().join(format!("ad-registry-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        // Upstream shape, nobody holding the lock: stale.
        fs::write(
            dir.join("1.json"),
            r#"{"pid": 1, "version": "0.16.0", "started_at": 1.5, "config": "/c"}"#,
        )
        .unwrap();
        assert_eq!(read_entry(&dir.join("1.json")).unwrap().version, "0.16.0");
        assert!(live_servers(&dir, true).is_empty());
        assert!(!dir.join("1.json").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
