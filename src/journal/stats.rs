//! Aggregating the usage journal: the `stats` report (per agent and in total), the compact
//! `typical` profile that discovery (`list_agents`, `inspect_agent`) shows once an agent has
//! [`MIN_SAMPLES`] runs, and the `timeout_seconds` a timeout error suggests. Numbers follow
//! upstream 0.16 exactly (nearest-rank percentiles with Python's rounding, the same field
//! names and omissions), so `stats --json` reads the same from either version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use serde::Serialize;

use super::{Filter, Record, journal_path, load};

/// Below this many live runs there is no "typical": a timeout sized off two points is noise.
pub const MIN_SAMPLES: u64 = 3;
/// Discovery reads a shorter tail than `stats`: it runs on every `list_agents`.
pub const PROFILE_TAIL_BYTES: u64 = 128 * 1024;
/// Journal numbers beyond these are mangled records, not measurements (a dispatch is capped at
/// 7200 s; no run costs a million dollars), so sums stay finite by construction.
const MAX_PLAUSIBLE_MS: f64 = 1e9;
const MAX_PLAUSIBLE_COST_USD: f64 = 1e6;

/// One agent's (or everything's) numbers. Optional fields are absent when there is no data.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Real runs (cache hits excluded).
    pub dispatches: u64,
    pub cached_hits: u64,
    pub ok: u64,
    pub failed: u64,
    pub cost_usd: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, u64>,
    /// Failures by error type.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
}

/// `stats --json`: totals and agents ordered by spend, then volume, then name.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub total: Stats,
    /// Serialised as a JSON object in this order.
    #[serde(serialize_with = "ordered_map")]
    pub agents: Vec<(String, Stats)>,
}

fn ordered_map<S: serde::Serializer>(
    agents: &[(String, Stats)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(agents.iter().map(|(name, stats)| (name, stats)))
}

/// Rounds like Python's `round(x, digits)` for the values that occur here.
fn round_to(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round_ties_even() / scale
}

/// Nearest-rank percentile of a non-empty list, index computed as upstream does (Python's
/// `round` rounds half to even, hence `round_ties_even`).
pub fn percentile(values: &[f64], pct: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = (pct / 100.0 * n as f64 + 0.5).round_ties_even() as i64 - 1;
    let idx = rank.clamp(0, n as i64 - 1) as usize;
    sorted[idx]
}

/// Aggregates records into one [`Stats`].
pub fn aggregate(records: &[&Record]) -> Stats {
    let live: Vec<&&Record> = records.iter().filter(|r| !r.cached).collect();
    let plausible = |v: Option<f64>, ceiling: f64| v.filter(|n| (0.0..ceiling).contains(n));
    let durations: Vec<f64> = live
        .iter()
        .filter_map(|r| plausible(r.ms, MAX_PLAUSIBLE_MS))
        .collect();
    let costs: Vec<f64> = live
        .iter()
        .filter_map(|r| plausible(r.cost, MAX_PLAUSIBLE_COST_USD))
        .collect();
    let mut s = Stats {
        dispatches: live.len() as u64,
        cached_hits: (records.len() - live.len()) as u64,
        ..Stats::default()
    };
    for r in &live {
        if r.ok {
            s.ok += 1;
        }
        if let Some(o) = &r.outcome {
            *s.outcomes.entry(o.clone()).or_default() += 1;
        }
        if let Some(e) = &r.err {
            *s.errors.entry(e.clone()).or_default() += 1;
        }
    }
    s.failed = s.dispatches - s.ok;
    if !costs.is_empty() {
        s.cost_usd = round_to(costs.iter().sum(), 4);
        s.median_cost_usd = Some(round_to(percentile(&costs, 50.0), 4));
        s.max_cost_usd = Some(round_to(costs.iter().copied().fold(0.0, f64::max), 4));
    }
    if !durations.is_empty() {
        s.median_ms = Some(percentile(&durations, 50.0) as u64);
        s.p90_ms = Some(percentile(&durations, 90.0) as u64);
        s.max_ms = Some(durations.iter().copied().fold(0.0, f64::max) as u64);
    }
    s
}

/// Totals plus a per-agent breakdown.
pub fn summarize(records: &[Record]) -> Report {
    let all: Vec<&Record> = records.iter().collect();
    let mut by_agent: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_agent.entry(r.agent.as_str()).or_default().push(r);
    }
    let mut agent_stats: Vec<(String, Stats)> = by_agent
        .into_iter()
        .map(|(name, rows)| (name.to_string(), aggregate(&rows)))
        .collect();
    agent_stats.sort_by(|(an, a), (bn, b)| {
        b.cost_usd
            .total_cmp(&a.cost_usd)
            .then(b.dispatches.cmp(&a.dispatches))
            .then(an.cmp(bn))
    });
    Report {
        total: aggregate(&all),
        agents: agent_stats,
    }
}

/// What an agent usually takes and costs, as `list_agents` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Typical {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub median_cost_usd: Option<f64>,
}

/// The fuller profile `inspect_agent` shows (upstream's `typical` there).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub dispatches: u64,
    #[serde(flatten)]
    pub typical: Typical,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outcomes: BTreeMap<String, u64>,
}

fn profile_of(s: &Stats) -> Option<Profile> {
    (s.dispatches >= MIN_SAMPLES).then(|| Profile {
        dispatches: s.dispatches,
        typical: Typical {
            median_seconds: s.median_ms.map(|m| round_to(m as f64 / 1000.0, 1)),
            p90_seconds: s.p90_ms.map(|m| round_to(m as f64 / 1000.0, 1)),
            median_cost_usd: s.median_cost_usd,
        },
        failed: (s.failed > 0).then_some(s.failed),
        outcomes: s.outcomes.clone(),
    })
}

/// The journal's identity right now: a dispatch always grows the file, so size and mtime change
/// whenever its contents do.
type Fingerprint = (PathBuf, u64, u128);

fn fingerprint(path: &Path) -> Fingerprint {
    let meta = std::fs::metadata(path).ok();
    let size = meta.as_ref().map_or(u64::MAX, |m| m.len());
    let mtime = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    (path.to_path_buf(), size, mtime)
}

/// One slot: there is one journal per process, and discovery asks for every agent in turn.
static PROFILES: Mutex<Option<(Fingerprint, BTreeMap<String, Profile>)>> = Mutex::new(None);

/// Every agent's profile from one read of the journal at `journal`, memoised on its size and
/// mtime.
pub fn profiles_at(journal: &Path) -> BTreeMap<String, Profile> {
    let key = fingerprint(journal);
    if let Ok(memo) = PROFILES.lock()
        && let Some((k, v)) = memo.as_ref()
        && *k == key
    {
        return v.clone();
    }
    let records = load(journal, &Filter::default(), PROFILE_TAIL_BYTES);
    let mut by_agent: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in &records {
        by_agent.entry(r.agent.as_str()).or_default().push(r);
    }
    let out: BTreeMap<String, Profile> = by_agent
        .into_iter()
        .filter_map(|(n, rows)| profile_of(&aggregate(&rows)).map(|p| (n.to_string(), p)))
        .collect();
    if let Ok(mut memo) = PROFILES.lock() {
        *memo = Some((key, out.clone()));
    }
    out
}

/// The full profile of `agent` in the journal of the config at `config_path`.
pub fn profile(config_path: &Path, agent: &str) -> Option<Profile> {
    profiles_at(&journal_path(config_path)).remove(agent)
}

/// `{median_seconds, p90_seconds, median_cost_usd}` of `agent` once it has [`MIN_SAMPLES`] real
/// runs in the journal of the config at `config_path`.
pub fn typical(config_path: &Path, agent: &str) -> Option<Typical> {
    profile(config_path, agent).map(|p| p.typical)
}

/// A `timeout_seconds` that would have covered this agent's p90 with 50% to spare, rounded up
/// to 30 s (at least 30); `None` without enough history.
pub fn suggested_timeout(config_path: &Path, agent: &str) -> Option<u64> {
    let p90 = typical(config_path, agent)?.p90_seconds?;
    Some(pad_p90(p90))
}

fn pad_p90(p90_seconds: f64) -> u64 {
    let padded = p90_seconds * 1.5;
    (((padded + 29.0) / 30.0).floor() * 30.0).max(30.0) as u64
}

/// The sentence a timeout error appends: `Recent runs of this agent suggest
/// timeout_seconds=N (50% over its measured p90).`; `None` when there is no history or the
/// timeout that just expired was already at least that long (it failed for another reason).
pub fn timeout_hint(config_path: &Path, agent: &str, timeout_seconds: u64) -> Option<String> {
    let n = suggested_timeout(config_path, agent).filter(|n| *n > timeout_seconds)?;
    Some(format!(
        "Recent runs of this agent suggest timeout_seconds={n} (50% over its measured p90)."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(agent: &str, ok: bool, ms: f64, cost: f64) -> Record {
        Record {
            agent: agent.into(),
            ok,
            ms: Some(ms),
            cost: Some(cost),
            ..Record::default()
        }
    }

    #[test]
    fn percentiles_round_like_python() {
        // n=4, p50: round(2.5) is 2 in Python, so the 2nd value.
        assert_eq!(percentile(&[4.0, 1.0, 3.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 90.0), 3.0);
        assert_eq!(percentile(&[7.0], 90.0), 7.0);
    }

    #[test]
    fn summary_counts_and_orders() {
        let mut rs = vec![
            rec("a", true, 1000.0, 0.5),
            rec("a", false, 3000.0, 0.1),
            rec("b", true, 2000.0, 1.0),
            rec("b", true, 1e12, 1e9),
        ];
        rs[1].err = Some("timeout".into());
        rs[0].outcome = Some("done".into());
        rs.push(Record {
            cached: true,
            ..rec("a", true, 1.0, 0.0)
        });
        let r = summarize(&rs);
        assert_eq!(r.total.dispatches, 4);
        assert_eq!(r.total.cached_hits, 1);
        assert_eq!(r.total.cost_usd, 1.6);
        let names: Vec<&str> = r.agents.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        let json = serde_json::to_value(&r).unwrap();
        let keys: Vec<&String> = json["agents"].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["b", "a"]);
        let a = &r.agents[1].1;
        assert_eq!((a.ok, a.failed), (1, 1));
        assert_eq!(a.errors.get("timeout"), Some(&1));
        // n=2: Python rounds 1.5 to 2, so the median is the upper value.
        assert_eq!(a.median_ms, Some(3000));
        assert_eq!(a.p90_ms, Some(3000));
        // The implausible 1e12 ms / 1e9 USD line is dropped from the numbers, not the count.
        assert_eq!(r.agents[0].1.max_ms, Some(2000));
        assert_eq!(r.agents[0].1.dispatches, 2);
    }

    #[test]
    fn profiles_need_three_runs() {
        let two = [rec("a", true, 1000.0, 0.5), rec("a", true, 1000.0, 0.5)];
        let refs: Vec<&Record> = two.iter().collect();
        assert!(profile_of(&aggregate(&refs)).is_none());
        let three = [
            rec("a", true, 1000.0, 0.5),
            rec("a", true, 2000.0, 0.25),
            rec("a", false, 60_000.0, 0.0),
        ];
        let refs: Vec<&Record> = three.iter().collect();
        let p = profile_of(&aggregate(&refs)).unwrap();
        assert_eq!(
            serde_json::to_string(&p.typical).unwrap(),
            r#"{"median_seconds":2.0,"p90_seconds":60.0,"median_cost_usd":0.25}"#
        );
        assert_eq!(p.failed, Some(1));
    }

    #[test]
    fn typical_and_the_timeout_hint_follow_the_file() {
        let dir = std::env::temp_dir().join(format!("ad-typical-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("agents.yaml");
        let line = |ms: u64| format!("{{\"t\":1,\"agent\":\"slow\",\"ok\":true,\"ms\":{ms}}}\n");
        let journal = dir.join("usage.jsonl");
        std::fs::write(&journal, line(60_000).repeat(2)).unwrap();
        assert_eq!(typical(&config, "slow"), None);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        std::io::Write::write_all(&mut f, line(60_000).as_bytes()).unwrap();
        // The append changed the size, so the memo cannot answer from the 2-run state.
        assert_eq!(typical(&config, "slow").unwrap().p90_seconds, Some(60.0));
        assert_eq!(suggested_timeout(&config, "slow"), Some(90));
        assert_eq!(timeout_hint(&config, "slow", 300), None);
        assert_eq!(
            timeout_hint(&config, "slow", 60).unwrap(),
            "Recent runs of this agent suggest timeout_seconds=90 (50% over its measured p90)."
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn padded_timeouts() {
        assert_eq!(pad_p90(1.0), 30);
        assert_eq!(pad_p90(60.0), 90);
        assert_eq!(pad_p90(61.0), 120);
    }
}
