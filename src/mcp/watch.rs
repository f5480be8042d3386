//! The subscription watcher of one connection: a registry of subscribed resource URIs (at most
//! `MAX_SUBSCRIPTIONS`) and one thread that polls them and the agent roster, sending
//! `notifications/resources/updated` when a subscribed resource's fingerprint changes and
//! `notifications/resources/list_changed` when agents are added or removed. It polls files, not
//! in-process events, so a job run by another server process and an edit of `agents.yaml` by the
//! CLI are noticed too. The thread ends when the application stops (`App::stopping`) or the
//! client is gone; every wait is a short sleep, so it never holds shutdown up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde_json::json;

use super::msg::Outgoing;
use super::resources::{Uri, fingerprint};
use crate::app::App;

/// Subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// How often the watched files are looked at (`AGENT_DISPATCH_WATCH_SECS`, default 0.5 s).
const DEFAULT_POLL: Duration = Duration::from_millis(500);
/// The longest single sleep, so a stop is seen promptly.
const SLICE: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct Watch {
    /// Subscribed URI → its fingerprint when last looked at.
    subs: Arc<Mutex<HashMap<String, (Uri, String)>>>,
    started: AtomicBool,
}

impl Watch {
    /// Starts the watcher thread once per connection; later calls do nothing.
    pub fn start(&self, app: Arc<App>, out: Sender<Outgoing>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let subs = Arc::clone(&self.subs);
        let poll = crate::env::secs(
            "AGENT_DISPATCH_WATCH_SECS",
            DEFAULT_POLL,
            Duration::from_secs(60),
        );
        let spawned = thread::Builder::new()
            .name("mcp-watch".into())
            .spawn(move || run(&app, &out, &subs, poll));
        if let Err(e) = spawned {
            crate::log::warn(&format!("resource watcher not started: {e}"));
            self.started.store(false, Ordering::SeqCst);
        }
    }

    /// Adds (or refreshes) a subscription; an error when the connection already holds the most.
    pub fn subscribe(&self, raw: &str, uri: Uri, seen: String) -> Result<(), String> {
        let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        if !subs.contains_key(raw) && subs.len() >= MAX_SUBSCRIPTIONS {
            return Err(format!(
                "Too many subscriptions ({MAX_SUBSCRIPTIONS}); unsubscribe from one first"
            ));
        }
        subs.insert(raw.to_string(), (uri, seen));
        Ok(())
    }

    /// Removes a subscription; false when there was none.
    pub fn unsubscribe(&self, raw: &str) -> bool {
        let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        subs.remove(raw).is_some()
    }
}

fn agent_names(app: &App) -> Option<Vec<String>> {
    let config = app.config().ok()?;
    Some(config.agents.names().map(str::to_string).collect())
}

fn run(
    app: &App,
    out: &Sender<Outgoing>,
    subs: &Mutex<HashMap<String, (Uri, String)>>,
    poll: Duration,
) {
    let mut agents = agent_names(app);
    let mut next = Instant::now() + poll;
    while !app.is_stopping() {
        thread::sleep(SLICE.min(poll));
        if Instant::now() < next {
            continue;
        }
        next = Instant::now() + poll;
        let now = agent_names(app);
        if now.is_some() && agents.is_some() && now != agents {
            let sent = out.send(Outgoing::Notification {
                method: "notifications/resources/list_changed",
                params: json!({}),
            });
            if sent.is_err() {
                return;
            }
        }
        if now.is_some() {
            agents = now;
        }
        // Look at the files without holding the lock, then record what changed.
        let watched: Vec<(String, Uri)> = subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(raw, (uri, _))| (raw.clone(), uri.clone()))
            .collect();
        for (raw, uri) in watched {
            let print = fingerprint(app, &uri);
            let changed = {
                let mut subs = subs.lock().unwrap_or_else(PoisonError::into_inner);
                match subs.get_mut(&raw) {
                    Some((_, seen)) if *seen != print => {
                        *seen = print;
                        true
                    }
                    _ => false,
                }
            };
            if changed {
                let sent = out.send(Outgoing::Notification {
                    method: "notifications/resources/updated",
                    params: json!({ "uri": raw }),
                });
                if sent.is_err() {
                    return;
                }
            }
        }
    }
}
