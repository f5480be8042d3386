//! Running one async job (SPEC §8.5, with SPEC §12 items 4 and 22 fixed): wait for a limiter
//! permit and a machine slot (`gate::admit`) while `pending`, move to `running`, call the
//! dispatch closure with hooks that record the child and keep a rolling progress tail, then
//! store the result. A watcher thread turns a cancel written to the job file (by the CLI or
//! another server process) or a server shutdown into a tripped `Cancel`, which makes the runner
//! kill the child's process group.
//!
//! The runner itself (`claude::run`) is not called here: the caller passes it in as a closure
//! that receives the permit the job waited for, so this module owns only the job's lifecycle.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::Error;
use super::model::{Job, PROGRESS_LINE_CHARS, PROGRESS_LINES};
use super::store::{JobStore, OwnershipGuard};
use crate::cancel::Cancel;
use crate::claude::Hooks;
use crate::gate::{self, MachineGate, Queued};
use crate::limiter::{Limiter, Permit};
use crate::result::{DispatchResult, ErrorType};
use crate::text::first_chars;

/// At most one progress write per this interval; the first line is written at once (SPEC §8.5).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// How often the watcher looks at the job file for a cancel from another process.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Tries of a lifecycle write before giving up on it, and the pause before the first retry
/// (doubled each time): a full disk or a directory briefly made read-only must not lose a
/// finished job's result.
const WRITE_ATTEMPTS: u32 = 4;
const FIRST_RETRY_AFTER: Duration = Duration::from_millis(50);
/// When neither a step nor the failure saying so can be stored, the pause between further
/// tries starts here and doubles up to `LAST_RESORT_MAX`, until the disk allows or shutdown.
const LAST_RESORT_FIRST: Duration = Duration::from_millis(250);
const LAST_RESORT_MAX: Duration = Duration::from_secs(1);

const SHUTDOWN_BEFORE_START: &str = "The agent-dispatch server that queued this job shut down \
     before it started. Re-dispatch if still needed.";
const SHUTDOWN_WHILE_RUNNING: &str = "The agent-dispatch server that ran this job shut down \
     before it finished. Re-dispatch if still needed.";

/// Runs the job `owner` proves we own and returns its final record. Blocks for the job's whole
/// life; call it on a thread of its own. Its child needs a `limiter` permit and a `gate` slot;
/// while it waits for the slot, its place in the machine's queue is its progress. `shutdown`
/// is the server-wide stop flag: when tripped, the job is stopped and marked `failed`.
/// `dispatch` receives the hooks to pass to the runner and must not return before its child
/// has been reaped. The ownership lock is released (and
/// waiters woken) only after the terminal write.
pub fn run_job<F>(
    owner: OwnershipGuard,
    limiter: &Limiter,
    gate: &MachineGate,
    shutdown: &Cancel,
    dispatch: F,
) -> Result<Option<Job>, Error>
where
    F: FnOnce(&Permit, Hooks<'_>) -> DispatchResult,
{
    let store = owner.store().clone();
    let id = owner.id().to_string();
    let cancel = owner.cancel().clone();
    let tail = Progress::default();
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let (nudge_tx, nudge_rx) = crossbeam_channel::bounded::<()>(1);
    let outcome = thread::scope(|s| {
        let job = Running {
            store: &store,
            id: &id,
            cancel: &cancel,
            shutdown,
            tail: &tail,
            nudge: &nudge_tx,
        };
        let watcher_job = job;
        // Without a watcher, in-process cancels still work; only cross-process ones are slower
        // (they are then noticed when the runner returns).
        let watcher = thread::Builder::new()
            .name(format!("job-watch-{}", &id[..8]))
            .spawn_scoped(s, move || watcher_job.watch(&stop_rx, &nudge_rx));
        let outcome = job.drive(limiter, gate, dispatch);
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
    /// Wakes the watcher to write new progress, so the supervising thread never waits on the
    /// job store's lock while the child's output piles up.
    nudge: &'a Sender<()>,
}

impl Running<'_> {
    fn drive<F>(
        &self,
        limiter: &Limiter,
        gate: &MachineGate,
        dispatch: F,
    ) -> Result<Option<Job>, Error>
    where
        F: FnOnce(&Permit, Hooks<'_>) -> DispatchResult,
    {
        // Stays `pending` while queued; a cancel (or shutdown) wakes the acquire.
        let mut shown = None;
        let mut on_wait = |q: Queued| {
            if shown != Some(q) {
                shown = Some(q);
                self.push(&q.describe());
                let _ = self.nudge.try_send(());
            }
        };
        let admitted = match gate::admit(limiter, gate, self.cancel, &mut on_wait) {
            Ok(admitted) => admitted,
            Err(e) => {
                let message = e.to_string();
                self.record("the gate error", || self.store.fail(self.id, &message))?;
                return self.store.get(self.id);
            }
        };
        let Some(permit) = admitted else {
            if self.shutdown.is_tripped() {
                self.record("the shutdown", || {
                    self.store.fail(self.id, SHUTDOWN_BEFORE_START)
                })?;
            }
            return self.store.get(self.id);
        };
        if self.shutdown.is_tripped() {
            // The slot may have been freed by another job stopping for the same shutdown.
            self.record("the shutdown", || {
                self.store.fail(self.id, SHUTDOWN_BEFORE_START)
            })?;
            return self.store.get(self.id);
        }
        let started = self.record("the job's start", || self.store.mark_running(self.id))?;
        if started.is_none() {
            // Cancelled (or removed) while queued, or its start could not be stored (then it
            // was failed instead): never start it.
            return self.store.get(self.id);
        }
        let mut on_progress = |line: &str| {
            self.push(line);
            // A full channel means a wake-up is already pending.
            let _ = self.nudge.try_send(());
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
        let ran = catch_unwind(AssertUnwindSafe(|| dispatch(&permit, hooks)));
        // The child has been reaped (the runner's contract): the slot goes now, not after the
        // result's writes (which may retry for a while).
        drop(permit);
        self.flush(true);
        match ran {
            Ok(result) => {
                let stopped_by_shutdown =
                    self.shutdown.is_tripped() && result.error_type == Some(ErrorType::Cancelled);
                if stopped_by_shutdown {
                    self.record("the shutdown", || {
                        self.store.fail(self.id, SHUTDOWN_WHILE_RUNNING)
                    })?;
                } else {
                    // Refused when the job was cancelled meanwhile: the cancel stands.
                    self.record("the result", || self.store.finish(self.id, &result))?;
                }
            }
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                let message = format!("Worker crashed: {text}");
                self.record("the worker crash", || self.store.fail(self.id, &message))?;
            }
        }
        self.store.get(self.id)
    }

    /// Stores a lifecycle step with `write`, retrying I/O failures with backoff. If it still
    /// can not be stored, the job is failed with `could not record <what>: <error>` instead
    /// (a small write that may well succeed where a big result did not), and `Ok(None)` says
    /// the step did not happen. When even that fails (a full disk, an unusable store lock),
    /// the job stays owned, so no reader calls it abandoned while this server lives, and both
    /// writes are tried again until one lands. Only a shutdown ends that with the error; the
    /// job is then left unowned and non-terminal, which every reader treats as abandoned.
    fn record(
        &self,
        what: &str,
        write: impl Fn() -> Result<Option<Job>, Error>,
    ) -> Result<Option<Job>, Error> {
        let err = match with_retries(&write) {
            Ok(job) => return Ok(job),
            Err(err) => err,
        };
        let message = format!("could not record {what}: {err}");
        if with_retries(&|| self.store.fail(self.id, &message)).is_ok() {
            return Ok(None);
        }
        crate::log::error(&format!(
            "job {}: {message}; trying again until the jobs directory accepts it",
            self.id
        ));
        let mut pause = LAST_RESORT_FIRST;
        loop {
            let until = Instant::now() + pause;
            while Instant::now() < until {
                if self.shutdown.is_tripped() {
                    return Err(err);
                }
                thread::sleep(Duration::from_millis(25));
            }
            if let Ok(job) = write() {
                return Ok(job);
            }
            if self.store.fail(self.id, &message).is_ok() {
                return Ok(None);
            }
            pause = (pause * 2).min(LAST_RESORT_MAX);
        }
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        self.tail.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &str) {
        let mut tail = self.tail();
        tail.lines
            .push_back(first_chars(line, PROGRESS_LINE_CHARS).to_string());
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

    /// Until `stop` closes: write progress when nudged (at once for the first line, then at
    /// most once per `PROGRESS_EVERY`), and on every tick trip the job's cancel when the server
    /// shuts down or the job file says the job is over (cancelled by another process, or
    /// deleted), then write progress that arrived since the last write once it is due, so a
    /// quiet child's last lines still show.
    fn watch(&self, stop: &Receiver<()>, nudged: &Receiver<()>) {
        let mut last_check = Instant::now();
        loop {
            crossbeam_channel::select! {
                recv(stop) -> _ => return,
                recv(nudged) -> _ => {},
                default(WATCH_EVERY) => {},
            }
            // Checked on time even while a chatty child keeps nudging.
            if last_check.elapsed() >= WATCH_EVERY {
                last_check = Instant::now();
                self.check_still_wanted();
            }
            self.flush(false);
        }
    }

    fn check_still_wanted(&self) {
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
    }
}

/// `write`, tried up to `WRITE_ATTEMPTS` times while it fails with an I/O error.
fn with_retries(write: &dyn Fn() -> Result<Option<Job>, Error>) -> Result<Option<Job>, Error> {
    let mut pause = FIRST_RETRY_AFTER;
    for _ in 1..WRITE_ATTEMPTS {
        match write() {
            Err(Error::Io { .. }) => {
                thread::sleep(pause);
                pause *= 2;
            }
            done => return done,
        }
    }
    write()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::model::{NewJob, Status};
    use crate::jobs::store::{CancelOutcome, fail_next_writes};
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    fn off() -> MachineGate {
        MachineGate::off()
    }

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let n = N.fetch_add(1, Ordering::SeqCst);
            let d =
                std::env::temp_dir().join(format!("ad-worker-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            Dir(d)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn new_job() -> NewJob {
        NewJob {
            agent: "a".into(),
            ask: crate::ask::Ask::task("t"),
            ..NewJob::default()
        }
    }

    fn success() -> DispatchResult {
        DispatchResult {
            agent: "a".into(),
            success: true,
            result: "all good".into(),
            ..Default::default()
        }
    }

    /// A dispatch that runs until cancelled (or 10 s), like a runner killing its child.
    fn until_cancelled(_: &Permit, hooks: Hooks<'_>) -> DispatchResult {
        let cancel = hooks.cancel.cloned().unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cancel.is_tripped() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        DispatchResult::failure("a", ErrorType::Cancelled, "cancelled")
    }

    fn wait_status(store: &JobStore, id: &str, want: Status) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while store.get(id).unwrap().unwrap().status != want {
            assert!(Instant::now() < deadline, "job never became {want}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn runs_to_done_with_a_bounded_progress_tail() {
        let d = Dir::new("done");
        let store = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        let final_job = run_job(
            owner,
            &Limiter::new(1),
            &off(),
            &Cancel::new(),
            |_, mut hooks| {
                if let Some(spawn) = hooks.on_spawn.as_mut() {
                    spawn(std::process::id());
                }
                let progress = hooks.on_progress.as_mut().unwrap();
                progress(&"x".repeat(1000));
                for i in 0..25 {
                    progress(&format!("line {i}"));
                }
                success()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(final_job.status, Status::Done);
        assert_eq!(final_job.result, Some(success()));
        let progress = final_job.progress.unwrap();
        assert_eq!(progress.len(), 20);
        assert_eq!(progress[0], "line 5");
        assert_eq!(progress[19], "line 24");
        assert_eq!(final_job.child_pgid, Some(std::process::id()));
        assert!(final_job.child_started.is_some());
        assert!(!store.owned(&job.id).unwrap());
    }

    #[test]
    fn progress_shows_while_running_first_line_at_once() {
        let d = Dir::new("progress");
        let store = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        let saw_first = AtomicBool::new(false);
        let release = AtomicBool::new(false);
        let wait_for = |flag: &AtomicBool| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
        };
        thread::scope(|s| {
            let worker = s.spawn(|| {
                run_job(
                    owner,
                    &Limiter::new(1),
                    &off(),
                    &Cancel::new(),
                    |_, mut hooks| {
                        let progress = hooks.on_progress.as_mut().unwrap();
                        progress("first");
                        // "second" comes only after the test saw "first" on disk, so the order the
                        // test observes does not depend on how fast this machine is.
                        wait_for(&saw_first);
                        progress("second");
                        wait_for(&release);
                        success()
                    },
                )
            });
            let read = || {
                store
                    .get(&job.id)
                    .unwrap()
                    .unwrap()
                    .progress
                    .unwrap_or_default()
            };
            // The first line is written at once, without waiting for the 1 s interval.
            let deadline = Instant::now() + Duration::from_millis(900);
            while read().is_empty() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(read(), vec!["first".to_string()]);
            saw_first.store(true, Ordering::SeqCst);
            // "second" arrived within the interval; the watcher writes it once the interval has
            // passed even though the child went quiet.
            let deadline = Instant::now() + Duration::from_secs(5);
            while read().len() < 2 && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(read(), vec!["first".to_string(), "second".to_string()]);
            let summary = crate::jobs::summary(&store.get(&job.id).unwrap().unwrap());
            assert_eq!(summary["last_progress"], "second");
            release.store(true, Ordering::SeqCst);
            let done = worker.join().unwrap().unwrap().unwrap();
            assert_eq!(done.status, Status::Done);
        });
    }

    #[test]
    fn in_process_cancel_of_a_running_job_stops_it_and_sticks() {
        let d = Dir::new("cancel-running");
        let store = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        thread::scope(|s| {
            let worker = s.spawn(|| {
                run_job(
                    owner,
                    &Limiter::new(1),
                    &off(),
                    &Cancel::new(),
                    until_cancelled,
                )
            });
            wait_status(&store, &job.id, Status::Running);
            assert!(store.running_here(&job.id));
            let started = Instant::now();
            assert_eq!(
                store.cancel(&job.id).unwrap(),
                CancelOutcome::CancelledRunning
            );
            assert!(
                store
                    .wait_released(&job.id, Duration::from_secs(5))
                    .unwrap()
            );
            assert!(
                started.elapsed() < Duration::from_millis(150),
                "tripped at once"
            );
            let j = worker.join().unwrap().unwrap().unwrap();
            assert_eq!(j.status, Status::Cancelled);
            assert_eq!(j.error.as_deref(), Some("Cancelled while running"));
            assert!(j.result.is_none(), "the late finish was refused");
        });
    }

    #[test]
    fn cancel_from_another_store_reaches_the_owner_through_the_file() {
        let d = Dir::new("cancel-file");
        let store = JobStore::open(&d.0).unwrap();
        // A second handle has its own registry: to it, the job is run by someone else.
        let elsewhere = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        thread::scope(|s| {
            let worker = s.spawn(|| {
                run_job(
                    owner,
                    &Limiter::new(1),
                    &off(),
                    &Cancel::new(),
                    until_cancelled,
                )
            });
            wait_status(&store, &job.id, Status::Running);
            assert!(!elsewhere.running_here(&job.id));
            assert_eq!(
                elsewhere.cancel(&job.id).unwrap(),
                CancelOutcome::CancelledRunning
            );
            assert!(
                elsewhere
                    .wait_released(&job.id, Duration::from_secs(5))
                    .unwrap()
            );
            let j = worker.join().unwrap().unwrap().unwrap();
            assert_eq!(j.status, Status::Cancelled);
        });
    }

    #[test]
    fn cancel_while_queued_never_starts_the_job() {
        let d = Dir::new("cancel-pending");
        let store = JobStore::open(&d.0).unwrap();
        let limiter = Limiter::new(1);
        let _busy = limiter.acquire(&Cancel::new());
        let (job, owner) = store.create(new_job()).unwrap();
        let called = AtomicBool::new(false);
        thread::scope(|s| {
            let worker = s.spawn(|| {
                run_job(owner, &limiter, &off(), &Cancel::new(), |_, _| {
                    called.store(true, Ordering::SeqCst);
                    success()
                })
            });
            thread::sleep(Duration::from_millis(50));
            assert_eq!(store.get(&job.id).unwrap().unwrap().status, Status::Pending);
            assert_eq!(store.cancel(&job.id).unwrap(), CancelOutcome::Cancelled);
            let j = worker.join().unwrap().unwrap().unwrap();
            assert_eq!(j.status, Status::Cancelled);
        });
        assert!(!called.load(Ordering::SeqCst));
        assert!(!store.owned(&job.id).unwrap());
    }

    #[test]
    fn a_final_write_that_fails_for_a_moment_is_retried() {
        let d = Dir::new("retry");
        let store = JobStore::open(&d.0).unwrap();
        let (_, owner) = store.create(new_job()).unwrap();
        let j = run_job(owner, &Limiter::new(1), &off(), &Cancel::new(), |_, _| {
            fail_next_writes(WRITE_ATTEMPTS - 1);
            success()
        })
        .unwrap()
        .unwrap();
        assert_eq!(j.status, Status::Done);
        assert_eq!(j.result, Some(success()));
    }

    #[test]
    fn a_result_that_can_not_be_stored_fails_the_job_saying_why() {
        let d = Dir::new("unstorable");
        let store = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        let j = run_job(owner, &Limiter::new(1), &off(), &Cancel::new(), |_, _| {
            fail_next_writes(WRITE_ATTEMPTS);
            success()
        })
        .unwrap()
        .unwrap();
        assert_eq!(j.status, Status::Failed);
        let error = j.error.unwrap();
        assert!(
            error.starts_with("could not record the result: jobs store at "),
            "{error}"
        );
        assert!(error.contains("ermission denied"), "{error}");
        assert!(!store.owned(&job.id).unwrap());
    }

    #[test]
    fn a_job_whose_final_writes_fail_stays_owned_until_the_disk_allows() {
        let d = Dir::new("full-disk");
        let store = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        let (observer, id) = (store.clone(), job.id.clone());
        // Sampled while the worker is still retrying (it needs about 3 s to use up the
        // failures below); a reader must see a running, owned job, not an abandoned one.
        let seen = thread::spawn(move || {
            thread::sleep(Duration::from_millis(1000));
            let status = observer.get(&id).unwrap().map(|j| j.status);
            (observer.owned(&id).unwrap(), status)
        });
        let j = run_job(owner, &Limiter::new(1), &off(), &Cancel::new(), |_, _| {
            // Both rounds of retries, then three more tries of the result and its failure.
            fail_next_writes(2 * WRITE_ATTEMPTS + 6);
            success()
        })
        .unwrap()
        .unwrap();
        fail_next_writes(0);
        assert_eq!(
            j.status,
            Status::Done,
            "the result landed once the disk allowed"
        );
        assert_eq!(seen.join().unwrap(), (true, Some(Status::Running)));
    }

    #[test]
    fn a_job_whose_every_final_write_fails_is_not_left_running() {
        let d = Dir::new("unwritable");
        let store = JobStore::open(&d.0).unwrap();
        let (job, owner) = store.create(new_job()).unwrap();
        let shutdown = Cancel::new();
        let stopper = shutdown.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(1500));
            stopper.trip();
        });
        let out = run_job(owner, &Limiter::new(1), &off(), &shutdown, |_, _| {
            fail_next_writes(u32::MAX);
            success()
        });
        fail_next_writes(0);
        assert!(out.is_err(), "the result could not be stored anywhere");
        // The worker is gone and its lock with it: readers see the job ended, not running.
        assert!(!store.owned(&job.id).unwrap());
        let j = store.get(&job.id).unwrap().unwrap();
        assert_eq!(j.status, Status::Failed);
        assert!(j.error.unwrap().starts_with("Abandoned in 'running'"));
        assert_eq!(
            store.cancel(&job.id).unwrap(),
            CancelOutcome::AlreadyTerminal(Status::Failed)
        );
        assert!(!d.0.join(format!("{}.lock", job.id)).exists());
    }

    #[test]
    fn a_panicking_dispatch_fails_the_job() {
        let d = Dir::new("panic");
        let store = JobStore::open(&d.0).unwrap();
        let (_, owner) = store.create(new_job()).unwrap();
        let j = run_job(
            owner,
            &Limiter::new(1),
            &off(),
            &Cancel::new(),
            |_, _| -> DispatchResult { panic!("boom") },
        )
        .unwrap()
        .unwrap();
        assert_eq!(j.status, Status::Failed);
        assert_eq!(j.error.as_deref(), Some("Worker crashed: boom"));
    }

    #[test]
    fn shutdown_stops_running_and_queued_jobs() {
        let d = Dir::new("shutdown");
        let store = JobStore::open(&d.0).unwrap();
        let limiter = Limiter::new(1);
        let shutdown = Cancel::new();
        let (running, owner1) = store.create(new_job()).unwrap();
        let (queued, owner2) = store.create(new_job()).unwrap();
        thread::scope(|s| {
            let w1 = s.spawn(|| run_job(owner1, &limiter, &off(), &shutdown, until_cancelled));
            wait_status(&store, &running.id, Status::Running);
            let w2 = s.spawn(|| run_job(owner2, &limiter, &off(), &shutdown, until_cancelled));
            thread::sleep(Duration::from_millis(30));
            shutdown.trip();
            let j1 = w1.join().unwrap().unwrap().unwrap();
            let j2 = w2.join().unwrap().unwrap().unwrap();
            assert_eq!(j1.status, Status::Failed);
            assert!(j1.error.unwrap().contains("shut down before it finished"));
            assert_eq!(j2.status, Status::Failed);
            assert!(j2.error.unwrap().contains("shut down before it started"));
        });
        assert_eq!(
            store.get(&queued.id).unwrap().unwrap().status,
            Status::Failed
        );
    }
}
