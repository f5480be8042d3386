//! The in-memory result cache of `dispatch` and `dispatch_parallel` items (SPEC §6), with the
//! fixes of SPEC §12 items 3 and 15: settings changes resize it instead of wiping it, an agent's
//! entries can be dropped when the agent is edited, and the key carries a fingerprint of the
//! agent's configuration so an edit made by another process can never serve a stale answer.
//! Degraded results (denied tools, over budget) and failures are never stored.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::ask::Ask;
use crate::result::DispatchResult;

/// What identifies a cacheable dispatch: the agent, its configuration and the ask. `Ask` holds
/// `""` as `None`, so absent and empty collide (SPEC §6).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub agent: String,
    /// The agent's configuration as it was when the result was produced.
    pub agent_fingerprint: String,
    pub ask: Ask,
}

struct Entry {
    result: DispatchResult,
    stored_at: Instant,
    /// Position in `order`; a re-store moves the entry to the back.
    seq: u64,
}

pub struct Cache {
    ttl: Duration,
    max_size: usize,
    entries: HashMap<CacheKey, Entry>,
    /// Insertion order for FIFO eviction: seq → key.
    order: BTreeMap<u64, CacheKey>,
    next_seq: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
}

impl Cache {
    pub fn new(ttl_secs: u64, max_size: usize) -> Self {
        Cache {
            ttl: Duration::from_secs(ttl_secs),
            max_size: max_size.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            hits: 0,
            misses: 0,
            evictions: 0,
        }
    }

    /// Applies new settings without dropping live entries (beyond what a smaller size forces).
    pub fn configure(&mut self, ttl_secs: u64, max_size: usize) {
        self.ttl = Duration::from_secs(ttl_secs);
        self.max_size = max_size.max(1);
        while self.entries.len() > self.max_size {
            self.evict_oldest();
        }
    }

    pub fn get(&mut self, key: &CacheKey) -> Option<DispatchResult> {
        let fresh = match self.entries.get(key) {
            Some(e) => e.stored_at.elapsed() <= self.ttl,
            None => {
                self.misses += 1;
                return None;
            }
        };
        if !fresh {
            self.remove(key);
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        self.entries.get(key).map(|e| e.result.clone())
    }

    /// Stores a result if it is worth serving again: a clean success only.
    pub fn put(&mut self, key: CacheKey, result: &DispatchResult) {
        if !is_cacheable(result) {
            return;
        }
        if let Some(old) = self.entries.get(&key) {
            self.order.remove(&old.seq);
        } else if self.entries.len() >= self.max_size {
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, key.clone());
        self.entries.insert(
            key,
            Entry {
                result: result.clone(),
                stored_at: Instant::now(),
                seq,
            },
        );
    }

    /// Drops every entry of one agent (after it was added, updated or removed).
    pub fn invalidate_agent(&mut self, agent: &str) -> usize {
        let doomed: Vec<CacheKey> = self
            .entries
            .keys()
            .filter(|k| k.agent == agent)
            .cloned()
            .collect();
        for k in &doomed {
            self.remove(k);
        }
        doomed.len()
    }

    /// Empties the cache and resets the counters; returns how many entries were dropped.
    pub fn clear(&mut self) -> usize {
        let n = self.entries.len();
        self.entries.clear();
        self.order.clear();
        self.hits = 0;
        self.misses = 0;
        self.evictions = 0;
        n
    }

    /// SPEC §6 stats, after purging expired entries.
    pub fn stats(&mut self) -> Value {
        let ttl = self.ttl;
        let expired: Vec<CacheKey> = self
            .entries
            .iter()
            .filter(|(_, e)| e.stored_at.elapsed() > ttl)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &expired {
            self.remove(k);
        }
        let lookups = self.hits + self.misses;
        let hit_rate = if lookups == 0 {
            0.0
        } else {
            (self.hits as f64 / lookups as f64 * 1000.0).round() / 1000.0
        };
        json!({
            "size": self.entries.len(),
            "max_size": self.max_size,
            "hits": self.hits,
            "misses": self.misses,
            "evictions": self.evictions,
            "hit_rate": hit_rate,
            "ttl": self.ttl.as_secs(),
        })
    }

    /// The schema of [`Cache::stats`].
    pub fn stats_schema() -> Value {
        use crate::schema::{integer, number, object};
        let fields = ["size", "max_size", "hits", "misses", "evictions", "ttl"];
        let mut props: Vec<(&str, Value)> = fields.iter().map(|f| (*f, integer())).collect();
        props.push(("hit_rate", number()));
        let mut required = fields.to_vec();
        required.push("hit_rate");
        object(&props, &required)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(e) = self.entries.remove(key) {
            self.order.remove(&e.seq);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.order.pop_first() {
            self.entries.remove(&key);
            self.evictions += 1;
        }
    }
}

/// SPEC §12 item 15: a result with denied tools or over budget is an answer the caller will want
/// to retry after fixing permissions or the budget, so it is not stored.
pub fn is_cacheable(r: &DispatchResult) -> bool {
    r.success
        && r.denied_tools.as_ref().is_none_or(Vec::is_empty)
        && !r.budget_exceeded
        // An agent that says it did not finish must be asked again, not answered from memory.
        && r.outcome.is_none_or(|o| !o.is_unfinished())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(task: &str) -> CacheKey {
        CacheKey {
            agent: "a".into(),
            agent_fingerprint: "f".into(),
            ask: Ask::task(task),
        }
    }

    fn ok(text: &str) -> DispatchResult {
        DispatchResult {
            agent: "a".into(),
            success: true,
            result: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn hit_and_miss_are_counted() {
        let mut c = Cache::new(300, 10);
        assert!(c.get(&key("t")).is_none());
        c.put(key("t"), &ok("r"));
        assert_eq!(c.get(&key("t")).map(|r| r.result), Some("r".into()));
        let s = c.stats();
        assert_eq!(
            (s["hits"].as_u64(), s["misses"].as_u64()),
            (Some(1), Some(1))
        );
        assert_eq!(s["hit_rate"].as_f64(), Some(0.5));
    }

    #[test]
    fn failures_and_degraded_results_are_not_stored() {
        let mut c = Cache::new(300, 10);
        c.put(
            key("fail"),
            &DispatchResult {
                success: false,
                ..ok("x")
            },
        );
        c.put(
            key("denied"),
            &DispatchResult {
                denied_tools: Some(vec!["Bash".into()]),
                ..ok("x")
            },
        );
        c.put(
            key("budget"),
            &DispatchResult {
                budget_exceeded: true,
                ..ok("x")
            },
        );
        assert!(c.is_empty());
    }

    #[test]
    fn fifo_eviction_and_refresh_without_eviction() {
        let mut c = Cache::new(300, 2);
        c.put(key("1"), &ok("1"));
        c.put(key("2"), &ok("2"));
        c.put(key("1"), &ok("1b")); // refresh: no eviction, moves to the back
        assert_eq!(c.stats()["evictions"], 0);
        c.put(key("3"), &ok("3")); // evicts "2", the oldest write
        assert!(c.get(&key("2")).is_none());
        assert_eq!(c.get(&key("1")).map(|r| r.result), Some("1b".into()));
        assert_eq!(c.stats()["evictions"], 1);
    }

    #[test]
    fn zero_ttl_expires_and_invalidation_is_per_agent() {
        let mut c = Cache::new(0, 10);
        c.put(key("t"), &ok("r"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get(&key("t")).is_none());
        let mut c = Cache::new(300, 10);
        c.put(key("t"), &ok("r"));
        c.put(
            CacheKey {
                agent: "b".into(),
                ..key("t")
            },
            &ok("r"),
        );
        assert_eq!(c.invalidate_agent("a"), 1);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn shrinking_evicts_down_to_size_and_clear_resets() {
        let mut c = Cache::new(300, 5);
        for i in 0..5 {
            c.put(key(&i.to_string()), &ok("x"));
        }
        c.configure(300, 2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.clear(), 2);
        assert_eq!(c.stats()["evictions"], 0);
    }
}
