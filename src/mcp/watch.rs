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
        // The roster as of now, read before the thread starts, so an edit made right after
        // `initialize` is a change and not the starting point.
        let agents = agent_names(&app);
        let poll = crate::env::secs(
            "AGENT_DISPATCH_WATCH_SECS",
            DEFAULT_POLL,
            Duration::from_secs(60),
        );
        let spawned = thread::Builder::new()
            .name("mcp-watch".into())
            .spawn(move || run(&app, &out, &subs, agents, poll));
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
    mut agents: Option<Vec<String>>,
    poll: Duration,
) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runenv::RunEnv;

    #[test]
    fn the_watcher_reports_a_new_agent_and_stops_with_the_app() {
        let dir = std::env::temp_dir().join(format!("ad-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let config = dir.join("agents.yaml");
        std::fs::write(&config, "agents:\n  a:\n    directory: /tmp\n").unwrap_or_default();
        let app = Arc::new(App::new(config.clone(), RunEnv::from_process()));
        let (tx, rx) = crossbeam_channel::unbounded();
        let watch = Watch::default();
        watch.start(Arc::clone(&app), tx);
        let tmp = dir.join("next.yaml");
        std::fs::write(
            &tmp,
            "agents:\n  a:\n    directory: /tmp\n  b:\n    directory: /tmp\n",
        )
        .unwrap_or_default();
        std::fs::rename(&tmp, &config).unwrap_or_default();
        let heard = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            matches!(&heard, Ok(Outgoing::Notification { method, .. }) if *method == "notifications/resources/list_changed"),
            "{heard:?}"
        );
        app.shutdown();
        // Its sender is the only one left: the channel disconnects once the thread has ended.
        let end = Instant::now() + Duration::from_secs(60);
        let stopped = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break true,
                _ if Instant::now() > end => break false,
                _ => {}
            }
        };
        assert!(stopped, "the watcher outlived the app's stop");
        assert!(
            watch
                .subscribe("x", Uri::Agent("a".into()), String::new())
                .is_ok()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn subscriptions_are_capped_per_connection() {
        let watch = Watch::default();
        for i in 0..MAX_SUBSCRIPTIONS {
            assert!(
                watch
                    .subscribe(&format!("u{i}"), Uri::Agent(format!("a{i}")), String::new())
                    .is_ok()
            );
        }
        assert!(
            watch
                .subscribe("one-more", Uri::Agent("z".into()), String::new())
                .is_err()
        );
        assert!(
            watch
                .subscribe("u0", Uri::Agent("a0".into()), String::new())
                .is_ok(),
            "re-subscribing is no new entry"
        );
        assert!(watch.unsubscribe("u1"));
        assert!(
            watch
                .subscribe("one-more", Uri::Agent("z".into()), String::new())
                .is_ok()
        );
    }
}
