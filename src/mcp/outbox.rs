//! `Outbox`: everything waiting to be written to the client, with a fixed memory bound.
//!
//! Responses are never dropped: the serve loop stops reading requests while `MAX_RESPONSES` of
//! them wait (the reader then blocks on stdin, which is the client's backpressure). Progress and
//! log notifications of a client that does not read are dropped once `MAX_NOTIFICATIONS` wait,
//! and counted; when the writer gets going again it first tells the client how many it skipped.
//! After a write failure the outbox refuses everything: the client is gone.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::json;

use super::msg::Outgoing;

/// Queued responses at which the serve loop stops reading new requests.
pub const MAX_RESPONSES: usize = 32;
/// Queued notifications beyond which new ones are dropped (a progress line is under 1 KiB).
pub const MAX_NOTIFICATIONS: usize = 256;

#[derive(Default)]
struct State {
    queue: VecDeque<Outgoing>,
    responses: usize,
    notifications: usize,
    skipped_progress: u64,
    skipped_messages: u64,
    /// No more messages will come (shutdown); the writer drains what is queued and stops.
    closed: bool,
    /// The writer failed; nothing can reach the client any more.
    failed: bool,
}

/// What the writer should do next.
#[derive(Debug)]
pub enum Next {
    Write(Outgoing),
    /// Nothing arrived within the wait.
    Idle,
    /// Closed and drained.
    Done,
}

#[derive(Default)]
pub struct Outbox {
    state: Mutex<State>,
    changed: Condvar,
}

fn is_notification(m: &Outgoing) -> bool {
    matches!(m, Outgoing::Notification { .. })
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message`, or drops and counts it if it is a notification and the queue of
    /// notifications is full. Never blocks.
    pub fn push(&self, message: Outgoing) {
        let mut s = self.lock();
        if s.failed {
            return;
        }
        if let Outgoing::Notification { method, .. } = &message {
            if s.notifications >= MAX_NOTIFICATIONS {
                if *method == "notifications/progress" {
                    s.skipped_progress += 1;
                } else {
                    s.skipped_messages += 1;
                }
                return;
            }
            s.notifications += 1;
        } else {
            s.responses += 1;
        }
        s.queue.push_back(message);
        drop(s);
        self.changed.notify_all();
    }

    /// False while so many responses wait that reading more requests would only queue more.
    pub fn has_room(&self) -> bool {
        let s = self.lock();
        s.failed || s.responses < MAX_RESPONSES
    }

    /// Messages waiting (for logs at exit).
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// No more messages: the writer drains the queue and ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The client is gone: drop everything queued and refuse what comes.
    pub fn fail(&self) {
        let mut s = self.lock();
        s.failed = true;
        s.queue.clear();
        s.responses = 0;
        s.notifications = 0;
        drop(s);
        self.changed.notify_all();
    }

    /// The next message to write, waiting at most `wait`. A count of skipped notifications is
    /// reported (as a `notifications/message` warning) before the first message after the skip.
    pub fn next(&self, wait: Duration) -> Next {
        let mut s = self.lock();
        if s.queue.is_empty() && !s.closed && !s.failed {
            s = self
                .changed
                .wait_timeout(s, wait)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        if s.failed {
            return Next::Done;
        }
        if s.skipped_progress + s.skipped_messages > 0 {
            let text = skipped_text(s.skipped_progress, s.skipped_messages);
            s.skipped_progress = 0;
            s.skipped_messages = 0;
            return Next::Write(Outgoing::Notification {
                method: "notifications/message",
                params: json!({"level": "warning", "logger": "agent-dispatch", "data": text}),
            });
        }
        match s.queue.pop_front() {
            Some(m) => {
                if is_notification(&m) {
                    s.notifications -= 1;
                } else {
                    s.responses -= 1;
                }
                Next::Write(m)
            }
            None if s.closed => Next::Done,
            None => Next::Idle,
        }
    }

    /// True when nothing is queued (the writer flushes then).
    pub fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }
}

fn skipped_text(progress: u64, messages: u64) -> String {
    let mut parts = Vec::new();
    if progress > 0 {
        parts.push(format!("{progress} progress messages skipped"));
    }
    if messages > 0 {
        parts.push(format!("{messages} log messages skipped"));
    }
    format!(
        "{} (the client was not reading fast enough)",
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::msg::RequestId;

    fn progress(n: u64) -> Outgoing {
        Outgoing::Notification {
            method: "notifications/progress",
            params: json!({"progress": n}),
        }
    }

    fn take(o: &Outbox) -> Vec<Outgoing> {
        let mut v = Vec::new();
        while let Next::Write(m) = o.next(Duration::ZERO) {
            v.push(m);
        }
        v
    }

    #[test]
    fn notifications_over_the_bound_are_counted_and_reported_responses_kept() {
        let o = Outbox::default();
        for n in 0..(MAX_NOTIFICATIONS as u64 + 10) {
            o.push(progress(n));
        }
        for i in 0..100 {
            o.push(Outgoing::Result {
                id: RequestId::Int(i),
                result: json!({}),
            });
        }
        assert!(!o.has_room());
        let out = take(&o);
        // The skip notice comes first, then every queued notification and all 100 responses.
        assert_eq!(out.len(), 1 + MAX_NOTIFICATIONS + 100);
        let Outgoing::Notification { params, .. } = &out[0] else {
            panic!("{:?}", out[0]);
        };
        assert_eq!(
            params["data"],
            "10 progress messages skipped (the client was not reading fast enough)"
        );
        assert!(o.has_room());
    }

    #[test]
    fn closed_outbox_drains_then_ends_and_failed_refuses() {
        let o = Outbox::default();
        o.push(progress(1));
        o.close();
        assert!(matches!(o.next(Duration::ZERO), Next::Write(_)));
        assert!(matches!(o.next(Duration::ZERO), Next::Done));
        let f = Outbox::default();
        f.fail();
        f.push(progress(2));
        assert!(matches!(f.next(Duration::ZERO), Next::Done));
    }
}
