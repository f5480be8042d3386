//! Running one async job (SPEC §8.5, with SPEC §12 items 4 and 22 fixed): wait for a limiter
//! permit while `pending`, move to `running`, call the dispatch closure with hooks that record
//! the child and keep a rolling progress tail, then store the result. A watcher thread turns a
//! cancel written to the job file (by the CLI or another server process) or a server shutdown
//! into a tripped `Cancel`, which makes the runner kill the child's process group.
//!
//! The runner itself (`claude::run`) is not called here: the caller passes it in as a closure,
//! so this module owns only the job's lifecycle.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use super::Error;
use super::model::{Job, PROGRESS_LINE_CHARS, PROGRESS_LINES, cut_chars};
use super::store::{JobStore, OwnershipGuard};
use crate::cancel::Cancel;
use crate::claude::Hooks;
use crate::limiter::Limiter;
use crate::result::{DispatchResult, ErrorType};

/// At most one progress write per this interval; the first line is written at once (SPEC §8.5).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often the watcher looks at the job file for a cancel from another process.
const WATCH_EVERY: Duration = Duration::from_millis(200);

const SHUTDOWN_BEFORE_START: &str = "The agent-dispatch server that queued this job shut down \
     before it started. Re-dispatch if still needed.";
const SHUTDOWN_WHILE_RUNNING: &str = "The agent-dispatch server that ran this job shut down \
     before it finished. Re-dispatch if still needed.";

/// Runs the job `owner` proves we own and returns its final record. Blocks for the job's whole
/// life; call it on a thread of its own. `shutdown` is the server-wide stop flag: when tripped,
/// the job is stopped and marked `failed`. `dispatch` receives the hooks to pass to the runner
/// and must not return before its child has been reaped. The ownership lock is released (and
/// waiters woken) only after the terminal write.
pub fn run_job<F>(
    owner: OwnershipGuard,
    limiter: &Limiter,
    shutdown: &Cancel,
    dispatch: F,
) -> Result<Option<Job>, Error>
where
    F: FnOnce(Hooks<'_>) -> DispatchResult,
{
    let store = owner.store().clone();
    let id = owner.id().to_string();
    let cancel = owner.cancel().clone();
    let tail = Progress::default();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let outcome = thread::scope(|s| {
        let job = Running {
            store: &store,
            id: &id,
            cancel: &cancel,
            shutdown,
            tail: &tail,
        };
        let watcher_job = job;
        // Without a watcher, in-process cancels still work; only cross-process ones are slower
        // (they are then noticed when the runner returns).
        let watcher = thread::Builder::new()
            .name(format!("job-watch-{}", &id[..8]))
            .spawn_scoped(s, move || watcher_job.watch(&stop_rx));
        let outcome = job.drive(limiter, dispatch);
        drop(stop_tx);
        if let Ok(h) = watcher {
            let _ = h.join();
        }
        outcome
    });
    drop(owner);
    outcome
}

/// The rolling tail: the last `PROGRESS_LINES` lines, each cut to `PROGRESS_LINE_CHARS`.
#[derive(Default)]
struct Progress(Mutex<Tail>);

#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    dirty: bool,
    last_write: Option<Instant>,
}

/// Everything one running job's threads share.
#[derive(Clone, Copy)]
struct Running<'a> {
    store: &'a JobStore,
    id: &'a str,
    cancel: &'a Cancel,
    shutdown: &'a Cancel,
    tail: &'a Progress,
}

impl Running<'_> {
    fn drive<F>(&self, limiter: &Limiter, dispatch: F) -> Result<Option<Job>, Error>
    where
        F: FnOnce(Hooks<'_>) -> DispatchResult,
    {
        // Stays `pending` while queued; a cancel (or shutdown) wakes the acquire.
        let Some(permit) = limiter.acquire(self.cancel) else {
            if self.shutdown.is_tripped() {
                self.store.fail(self.id, SHUTDOWN_BEFORE_START)?;
            }
            return self.store.get(self.id);
        };
        if self.store.mark_running(self.id)?.is_none() {
            // Cancelled (or removed) while queued: never start it.
            return self.store.get(self.id);
        }
        let mut on_progress = |line: &str| {
            self.push(line);
            self.flush(false);
        };
        let mut on_spawn = |pid: u32| {
            // Best effort: without the record a dead owner's orphan just can't be killed later.
            let _ = self.store.record_child(self.id, pid);
        };
        let hooks = Hooks {
            cancel: Some(self.cancel),
            on_progress: Some(&mut on_progress),
            on_spawn: Some(&mut on_spawn),
        };
        let ran = catch_unwind(AssertUnwindSafe(|| dispatch(hooks)));
        self.flush(true);
        match ran {
            Ok(result) => {
                let stopped_by_shutdown =
                    self.shutdown.is_tripped() && result.error_type == Some(ErrorType::Cancelled);
                if stopped_by_shutdown {
                    self.store.fail(self.id, SHUTDOWN_WHILE_RUNNING)?;
                } else {
                    // Refused when the job was cancelled meanwhile: the cancel stands.
                    self.store.finish(self.id, &result)?;
                }
            }
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                self.store
                    .fail(self.id, &format!("Worker crashed: {text}"))?;
            }
        }
        // The child has been reaped (the runner's contract), so the slot can go now.
        drop(permit);
        self.store.get(self.id)
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &str) {
        let mut tail = self.tail();
        tail.lines
            .push_back(cut_chars(line, PROGRESS_LINE_CHARS).to_string());
        while tail.lines.len() > PROGRESS_LINES {
            tail.lines.pop_front();
        }
        tail.dirty = true;
    }

    /// Writes the tail if it changed and (unless `force`) the last write is a second old. The
    /// tail stays locked during the write so two writers can not store an older tail last.
    fn flush(&self, force: bool) {
        let mut tail = self.tail();
        let due = tail
            .last_write
            .is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        if !tail.dirty || !(force || due) {
            return;
        }
        let lines: Vec<String> = tail.lines.iter().cloned().collect();
        tail.dirty = false;
        tail.last_write = Some(Instant::now());
        // Best effort: a failed progress write must not fail the job.
        let _ = self.store.update_progress(self.id, &lines);
    }

    /// Until `stop` closes: trip the job's cancel when the server shuts down or the job file
    /// says the job is over (cancelled by another process, or deleted), and write progress that
    /// arrived since the last write once it is due, so a quiet child's last lines still show.
    fn watch(&self, stop: &Receiver<()>) {
        loop {
            match stop.recv_timeout(WATCH_EVERY) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            if self.shutdown.is_tripped() {
                self.cancel.trip();
            }
            if !self.cancel.is_tripped() {
                match self.store.get(self.id) {
                    Ok(Some(job)) if !job.status.is_terminal() => {}
                    Ok(_) => self.cancel.trip(),
                    // Unreadable for a moment (e.g. permissions): keep running.
                    Err(_) => {}
                }
            }
            self.flush(false);
        }
    }
}
