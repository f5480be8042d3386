//! The usage journal: one JSON line per dispatch in `usage.jsonl` next to the config (upstream
//! 0.15 format, so the Python and the Rust servers of one machine share one file). This module
//! owns the line format, the append, the rotation and the tolerant read; `journal::stats` owns
//! the aggregation (`stats`, `typical`, the timeout hint).
//!
//! Line: `{"t":…,"agent":…,"ok":…,"cost":…,"ms":…,"turns":…,"outcome":…,"err":…,"cached":true,
//! "caller":…}` with absent fields omitted (as upstream writes them) and `cached` only when true.
//!
//! Concurrency: every writer (the CLI, each `serve`, upstream's Python servers) appends with ONE
//! `write` to an `O_APPEND` descriptor, and a line is capped at [`MAX_LINE_BYTES`], far below
//! `PIPE_BUF`: Linux serialises appends to one inode, so lines never interleave. Appends take no
//! lock on purpose: the Python writers take none, so a lock could not exclude them, and a journal
//! write must never wait. Rotation (rename to `.1` at [`ROTATE_AT_BYTES`]) is the one step that
//! needs exclusion among our writers, or two of them would each rename and the second would
//! throw away the generation the first kept; it runs under a non-blocking fs2 lock on
//! `usage.jsonl.lock` and re-checks the size once it holds it. A writer that loses the race
//! skips rotating; the next append tries again.

pub mod stats;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs2::FileExt;
use serde::Serialize;
use serde_json::Value;

use crate::result::DispatchResult;

pub use stats::{
    Profile, Report, Stats, Typical, profile, profiles_at, suggested_timeout, summarize,
    timeout_hint, typical,
};

/// One record must fit one atomic append; half of `PIPE_BUF` (4096) leaves room to spare.
pub const MAX_LINE_BYTES: usize = 2048;
/// Rotate at about 10k records; with the `.1` generation the journal stays under ~4 MB.
pub const ROTATE_AT_BYTES: u64 = 2_000_000;
/// `stats` reads at most this much of each generation: the tail is what "recently" means.
pub const STATS_TAIL_BYTES: u64 = 512 * 1024;
/// Field caps, as upstream applies them.
const AGENT_MAX_CHARS: usize = 100;
const OUTCOME_MAX_CHARS: usize = 20;
const ERR_MAX_CHARS: usize = 40;
const CALLER_MAX_CHARS: usize = 60;

/// The environment variable that moves the journal (tests, or a shared location).
pub const PATH_ENV: &str = "AGENT_DISPATCH_USAGE_LOG";

/// Where the journal of the config at `config_path` lives: `$AGENT_DISPATCH_USAGE_LOG`, else
/// `usage.jsonl` next to the config.
pub fn journal_path(config_path: &Path) -> PathBuf {
    match std::env::var_os(PATH_ENV) {
        Some(p) if !p.is_empty() => crate::config::expand_tilde(Path::new(&p)),
        _ => config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("usage.jsonl"),
    }
}

/// `settings.usage_log` of the config file at `config_path` (default on; unreadable → on).
/// Read straight from the YAML so the CLI honours the switch whichever version wrote it.
pub fn enabled_in(config_path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(config_path) else {
        return true;
    };
    let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
        return true;
    };
    !matches!(
        doc.get("settings").and_then(|s| s.get("usage_log")),
        Some(serde_yaml_ng::Value::Bool(false))
    )
}

/// The previous generation of `path`: `usage.jsonl.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".1");
    path.with_file_name(name)
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

/// One dispatch as the journal records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Entry {
    /// Epoch seconds when the dispatch finished.
    pub t: u64,
    pub agent: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns: Option<u64>,
    /// `done`, `partial` or `blocked` once results carry an outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// The error type (`timeout`, `permission`, …) of a failed dispatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn capped(text: &str, max_chars: usize) -> String {
    crate::text::first_chars(text, max_chars).to_string()
}

impl Entry {
    /// The record of `result`, stamped now. `caller` is who asked (the MCP client's name);
    /// `cached` marks a cache hit, which `stats` counts apart from real runs. A cache hit cost
    /// nothing and took no time now, so (as upstream writes it) it carries no cost, ms or turns:
    /// a naive sum over the file must not count the original run twice.
    pub fn from_result(result: &DispatchResult, caller: Option<&str>, cached: bool) -> Entry {
        if cached {
            return Entry {
                t: now_secs(),
                agent: capped(&result.agent, AGENT_MAX_CHARS),
                ok: result.success,
                cached: true,
                caller: caller
                    .filter(|c| !c.is_empty())
                    .map(|c| capped(c, CALLER_MAX_CHARS)),
                ..Entry::default()
            };
        }
        Entry {
            t: now_secs(),
            agent: capped(&result.agent, AGENT_MAX_CHARS),
            ok: result.success,
            cost: result
                .cost_usd
                .map(|c| (c * 1e6).round() / 1e6)
                .filter(|c| c.is_finite()),
            ms: result.duration_ms,
            turns: result.num_turns,
            outcome: None,
            err: result.error_type.map(|e| capped(e.as_str(), ERR_MAX_CHARS)),
            cached,
            caller: caller
                .filter(|c| !c.is_empty())
                .map(|c| capped(c, CALLER_MAX_CHARS)),
        }
    }

    /// Sets the outcome (`done` / `partial` / `blocked`) the result reported, if any.
    pub fn with_outcome(mut self, outcome: Option<&str>) -> Entry {
        self.outcome = outcome
            .filter(|o| !o.is_empty())
            .map(|o| capped(o, OUTCOME_MAX_CHARS));
        self
    }

    /// Fills `ms` with the wall time when the CLI reported no duration, so a timeout shows as
    /// "took its whole budget" instead of a hole in the data. A cache hit keeps no duration.
    pub fn with_wall_time(mut self, wall: Duration) -> Entry {
        if self.ms.is_none() && !self.cached {
            self.ms = Some(u64::try_from(wall.as_millis()).unwrap_or(u64::MAX));
        }
        self
    }

    /// The line as written, newline included; `None` when even without `caller` it would not
    /// fit one atomic append (atomicity beats completeness).
    pub fn to_line(&self) -> Option<Vec<u8>> {
        let encode = |e: &Entry| {
            serde_json::to_vec(e).ok().map(|mut v| {
                v.push(b'\n');
                v
            })
        };
        let line = encode(self)?;
        if line.len() <= MAX_LINE_BYTES {
            return Some(line);
        }
        let short = Entry {
            caller: None,
            ..self.clone()
        };
        encode(&short).filter(|l| l.len() <= MAX_LINE_BYTES)
    }
}

/// Where dispatches are recorded, or nowhere (`settings.usage_log: false`).
#[derive(Debug)]
pub struct Journal {
    path: Option<PathBuf>,
    warned: AtomicBool,
}

impl Journal {
    /// The journal of the config at `config_path`; disabled when `settings_enabled` is false.
    pub fn for_config(config_path: &Path, settings_enabled: bool) -> Journal {
        Journal {
            path: settings_enabled.then(|| journal_path(config_path)),
            warned: AtomicBool::new(false),
        }
    }

    /// A journal at an explicit path (tests, tools).
    pub fn at(path: PathBuf) -> Journal {
        Journal {
            path: Some(path),
            warned: AtomicBool::new(false),
        }
    }

    /// The file written, or `None` when recording is off.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Appends `entry`. Never fails the caller: the first failure is logged as a warning, later
    /// ones are silent (a full disk must not flood the server log once per dispatch).
    pub fn record(&self, entry: &Entry) {
        if let Err(e) = self.try_record(entry)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            let at = self
                .path
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string());
            crate::log::warn(&format!(
                "could not record usage in {at}: {e} (further failures are not reported)"
            ));
        }
    }

    /// Appends `entry`, reporting why it could not.
    pub fn try_record(&self, entry: &Entry) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let line = entry.to_line().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "record longer than one append")
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::fsutil::ensure_private_dir(dir)?;
        }
        rotate_if_large(path, ROTATE_AT_BYTES);
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)?;
        // One write call: the whole concurrency story (see the module doc).
        let n = file.write(&line)?;
        if n != line.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short append"));
        }
        Ok(())
    }
}

/// Renames `path` to `path.1` once it reaches `max_bytes`. Best-effort; see the module doc for
/// why it holds the lock file and re-checks the size.
pub fn rotate_if_large(path: &Path, max_bytes: u64) {
    if fs::metadata(path).map_or(true, |m| m.len() < max_bytes) {
        return;
    }
    let Ok(lock) = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path(path))
    else {
        return;
    };
    if lock.try_lock_exclusive().is_err() {
        return;
    }
    if fs::metadata(path).is_ok_and(|m| m.len() >= max_bytes) {
        let _ = fs::rename(path, rotated_path(path));
    }
    let _ = FileExt::unlock(&lock);
}

/// One journal line as read back: only the fields aggregation uses, leniently decoded (a line
/// a person or another version wrote may carry strings where numbers belong).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub t: f64,
    pub agent: String,
    pub ok: bool,
    pub cost: Option<f64>,
    pub ms: Option<f64>,
    pub outcome: Option<String>,
    pub err: Option<String>,
    pub cached: bool,
}

/// A finite number from a number or a numeric string, as upstream's `as_float` reads one.
fn number(v: Option<&Value>) -> Option<f64> {
    let n = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// Python truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

impl Record {
    /// Parses one line; `None` for a torn, hand-mangled or foreign line.
    pub fn parse(line: &str) -> Option<Record> {
        let Value::Object(map) = serde_json::from_str::<Value>(line.trim()).ok()? else {
            return None;
        };
        let agent = match map.get("agent")? {
            Value::String(s) => s.clone(),
            Value::Null => "None".to_string(),
            other => other.to_string(),
        };
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        Some(Record {
            t: number(map.get("t")).unwrap_or(0.0),
            agent,
            ok: truthy(map.get("ok")),
            cost: number(map.get("cost")),
            ms: number(map.get("ms")),
            outcome: text("outcome"),
            err: text("err"),
            cached: truthy(map.get("cached")),
        })
    }
}

/// The last `max_bytes` of `path` as whole lines (a first line cut by the seek is dropped).
fn read_tail(path: &Path, max_bytes: u64) -> Vec<String> {
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let size = file.metadata().map_or(0, |m| m.len());
    let partial = size > max_bytes;
    if partial && file.seek(SeekFrom::Start(size - max_bytes)).is_err() {
        return Vec::new();
    }
    let mut raw = Vec::new();
    if file.take(max_bytes).read_to_end(&mut raw).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&raw);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if partial && !lines.is_empty() {
        lines.remove(0);
    }
    lines
}

/// What to read: the last `days` days (0: all of the tail), one agent or all.
#[derive(Clone, Debug, Default)]
pub struct Filter<'a> {
    pub days: u64,
    pub agent: Option<&'a str>,
}

/// Records of both generations (`.1` first), oldest first, each generation's last `max_bytes`.
/// Corrupt lines are skipped.
pub fn load(path: &Path, filter: &Filter, max_bytes: u64) -> Vec<Record> {
    let cutoff = (filter.days > 0).then(|| now_secs() as f64 - filter.days as f64 * 86_400.0);
    let mut lines = read_tail(&rotated_path(path), max_bytes);
    lines.extend(read_tail(path, max_bytes));
    lines
        .iter()
        .filter_map(|l| Record::parse(l))
        .filter(|r| cutoff.is_none_or(|c| r.t >= c))
        .filter(|r| filter.agent.is_none_or(|a| r.agent == a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ErrorType;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ad-journal-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d.join("usage.jsonl")
    }

    #[test]
    fn line_format_matches_upstream() {
        let r = DispatchResult {
            agent: "web".into(),
            success: true,
            cost_usd: Some(0.123_456_789),
            duration_ms: Some(4200),
            num_turns: Some(3),
            ..Default::default()
        };
        let mut e = Entry::from_result(&r, Some("claude-code"), false);
        e.t = 1_700_000_000;
        assert_eq!(
            String::from_utf8(e.to_line().unwrap()).unwrap(),
            "{\"t\":1700000000,\"agent\":\"web\",\"ok\":true,\"cost\":0.123457,\"ms\":4200,\
             \"turns\":3,\"caller\":\"claude-code\"}\n"
        );
        let f = DispatchResult::failure("web", ErrorType::Timeout, "slow");
        let mut e = Entry::from_result(&f, None, false)
            .with_outcome(Some("partial"))
            .with_wall_time(Duration::from_millis(1500));
        e.t = 1;
        assert_eq!(
            String::from_utf8(e.to_line().unwrap()).unwrap(),
            "{\"t\":1,\"agent\":\"web\",\"ok\":false,\"ms\":1500,\"outcome\":\"partial\",\
             \"err\":\"timeout\"}\n"
        );
        let mut hit = Entry::from_result(&r, Some("web"), true);
        hit.t = 2;
        assert_eq!(
            String::from_utf8(hit.to_line().unwrap()).unwrap(),
            "{\"t\":2,\"agent\":\"web\",\"ok\":true,\"cached\":true,\"caller\":\"web\"}\n"
        );
    }

    #[test]
    fn long_fields_are_capped_to_one_atomic_append() {
        let r = DispatchResult {
            agent: "a".repeat(5000),
            ..Default::default()
        };
        let e = Entry::from_result(&r, Some(&"c".repeat(5000)), false);
        let line = e.to_line().unwrap();
        assert!(line.len() <= MAX_LINE_BYTES);
        let back = Record::parse(std::str::from_utf8(&line).unwrap()).unwrap();
        assert_eq!(back.agent.len(), AGENT_MAX_CHARS);
    }

    #[test]
    fn records_rotate_and_read_back_skipping_junk() {
        let path = temp("rotate");
        let j = Journal::at(path.clone());
        let r = DispatchResult {
            agent: "x".into(),
            success: true,
            duration_ms: Some(10),
            ..Default::default()
        };
        j.try_record(&Entry::from_result(&r, None, false)).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{torn\n[1]\n{\"no_agent\":1}\n\n")
            .unwrap();
        rotate_if_large(&path, 1);
        assert!(!path.exists());
        assert!(rotated_path(&path).exists());
        j.try_record(&Entry::from_result(&r, None, true)).unwrap();
        let all = load(&path, &Filter::default(), STATS_TAIL_BYTES);
        assert_eq!(all.len(), 2);
        assert!(!all[0].cached && all[1].cached);
        assert!(
            load(
                &path,
                &Filter {
                    days: 0,
                    agent: Some("y")
                },
                1 << 20
            )
            .is_empty()
        );
        let _ = fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn lenient_fields() {
        let r = Record::parse(r#"{"agent":"a","t":"12","ok":1,"ms":"1e3","cost":"x"}"#).unwrap();
        assert_eq!((r.t, r.ok, r.ms, r.cost), (12.0, true, Some(1000.0), None));
        assert!(Record::parse("{\"t\":1}").is_none());
    }

    #[test]
    fn a_disabled_or_unwritable_journal_never_fails_the_caller() {
        let off = Journal::for_config(Path::new("/x/agents.yaml"), false);
        assert!(off.path().is_none());
        off.record(&Entry::default());
        let bad = Journal::at(PathBuf::from("/proc/definitely/not/here/usage.jsonl"));
        bad.record(&Entry::default());
        bad.record(&Entry::default());
        assert!(bad.warned.load(Ordering::Relaxed));
    }
}
