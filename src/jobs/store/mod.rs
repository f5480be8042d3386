//! `JobStore`: one JSON file per job in one directory that several server processes and the
//! CLI share (SPEC §8, §12 items 21–23).
//!
//! Rules that make sharing safe:
//! - Ids are validated before any path is built, so nothing outside the directory is touched.
//! - Every write goes through `fsio::atomic_write`; readers never lock and never see a torn file.
//! - Every transition is read-check-write under the directory lock (`.store.lock`), so a finished
//!   job is never resurrected and a cancel is never overwritten by a late finish.
//! - Ownership is a lock, not a guess: whoever runs a job holds `<id>.lock` from before the job
//!   file exists until after its terminal write. A non-terminal job nobody holds is abandoned.
//!   A lock file is only ever unlinked by someone holding its lock (`fsio::remove_if_unheld`,
//!   or the owner on release), and a creator checks after locking that its file is still the
//!   one at the path, so a sweep can never leave a live job holding an unlinked lock.
//!
//! In-process bookkeeping (which jobs this process runs, and a condition variable that wakes
//! `wait` the instant a local transition makes a job terminal) lives here too. Running a job is
//! `jobs::worker`.

use crate::ask::{Ask, ResponseFormat};
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::Error;
use super::fsio;
use super::model::{Job, NewJob, Status, new_id, now, valid_id};
use crate::cancel::Cancel;
use crate::result::DispatchResult;

/// How often `wait` and `wait_released` re-read state owned by another process.
const POLL: Duration = Duration::from_millis(100);
/// Temp files older than this are leftovers of a crashed writer; `gc` removes them.
const STALE_TEMP: Duration = Duration::from_secs(3600);
const STORE_LOCK: &str = ".store.lock";

/// Jobs this process runs, and a counter bumped on every local terminal write or release.
#[derive(Default)]
struct Local {
    owned: HashMap<String, Cancel>,
    generation: u64,
}

struct Shared {
    dir: PathBuf,
    local: Mutex<Local>,
    changed: Condvar,
}

/// A handle on one jobs directory. Cheap to clone; clones share the in-process registry.
#[derive(Clone)]
pub struct JobStore(Arc<Shared>);

/// `list`: the jobs (newest first) and the files that were skipped, with why.
#[derive(Debug, Default)]
pub struct Listing {
    pub jobs: Vec<Job>,
    pub skipped: Vec<(String, String)>,
    /// The skipped files named like a job (`<id>.json`) that hold no valid record for that name:
    /// ours but unusable, so `gc` may remove them once old enough.
    pub corrupt: Vec<String>,
}

/// What `cancel` did. `AlreadyTerminal` carries the status the job already had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    NotFound,
    /// Was pending: it will never start.
    Cancelled,
    /// Was running: marked cancelled, and its child is being killed by its owner (or was killed
    /// here, when the owner is gone and the recorded child is provably ours).
    CancelledRunning,
    AlreadyTerminal(Status),
}

impl CancelOutcome {
    /// The `outcome` value of `dispatch_cancel`.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelOutcome::NotFound => "not_found",
            CancelOutcome::Cancelled => "cancelled",
            CancelOutcome::CancelledRunning => "cancelled_running",
            CancelOutcome::AlreadyTerminal(_) => "already_terminal",
        }
    }

    /// The job's status after the call (`None` when there is no job).
    pub fn status(self) -> Option<Status> {
        match self {
            CancelOutcome::NotFound => None,
            CancelOutcome::Cancelled | CancelOutcome::CancelledRunning => Some(Status::Cancelled),
            CancelOutcome::AlreadyTerminal(s) => Some(s),
        }
    }
}

/// Proof that this process runs a job: the held `<id>.lock` plus the job's `Cancel`. Made by
/// `JobStore::create` before the job file exists, so a queued job is never taken for abandoned.
/// Dropping it removes the lock file, releases the lock and wakes waiters; do that only after
/// the job's terminal write (the worker does).
pub struct OwnershipGuard {
    id: String,
    lock: Option<File>,
    lock_path: PathBuf,
    cancel: Cancel,
    store: JobStore,
}

impl OwnershipGuard {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Tripped by an in-process `cancel` of this job; the worker also trips it when it sees a
    /// cancel written by another process.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    pub fn store(&self) -> &JobStore {
        &self.store
    }
}

impl Drop for OwnershipGuard {
    fn drop(&mut self) {
        // Remove before unlocking: a probe that opens the path afterwards finds nothing (unheld),
        // and one that opened it before sees our lock until we close it.
        let _ = fs::remove_file(&self.lock_path);
        drop(self.lock.take());
        let mut local = self.store.local();
        local.owned.remove(&self.id);
        local.generation += 1;
        self.store.0.changed.notify_all();
    }
}

impl std::fmt::Debug for OwnershipGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnershipGuard")
            .field("id", &self.id)
            .finish()
    }
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore")
            .field("dir", &self.0.dir)
            .finish()
    }
}

impl JobStore {
    /// Opens the jobs directory, creating it 0700 if missing (an existing one keeps its mode).
    pub fn open(dir: &Path) -> Result<JobStore, Error> {
        fsio::ensure_private_dir(dir).map_err(|err| Error::io(dir, err))?;
        Ok(JobStore(Arc::new(Shared {
            dir: dir.to_path_buf(),
            local: Mutex::new(Local::default()),
            changed: Condvar::new(),
        })))
    }

    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    fn local(&self) -> MutexGuard<'_, Local> {
        self.0.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.local().generation += 1;
        self.0.changed.notify_all();
    }

    /// The file of job `id`; refuses anything but a 32-hex id before building a path.
    pub fn job_path(&self, id: &str) -> Result<PathBuf, Error> {
        if !valid_id(id) {
            return Err(Error::InvalidId(id.to_string()));
        }
        Ok(self.0.dir.join(format!("{id}.json")))
    }

    fn lock_path(&self, id: &str) -> PathBuf {
        self.0.dir.join(format!("{id}.lock"))
    }

    /// The directory-wide transition lock, held until the returned file is dropped.
    fn lock_store(&self) -> Result<File, Error> {
        let p = self.0.dir.join(STORE_LOCK);
        self.in_dir(|| fsio::lock_blocking(&p))
            .map_err(|err| Error::io(&p, err))
    }

    /// Runs `op`; if it failed because the jobs directory was removed under us, makes the
    /// directory again and runs `op` once more (a deleted directory must not break every job
    /// tool until someone recreates it by hand).
    fn in_dir<T>(&self, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && !self.0.dir.is_dir() => {
                crate::log::warn(&format!(
                    "jobs directory {} was removed; creating it again",
                    self.0.dir.display()
                ));
                fsio::ensure_private_dir(&self.0.dir)?;
                op()
            }
            other => other,
        }
    }

    fn read(&self, path: &Path, id: &str) -> Result<Option<Job>, Error> {
        let bytes = match fsio::read_record(path) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(err) => return Err(Error::io(path, err)),
        };
        parse_job(&bytes, id)
            .map(Some)
            .map_err(|message| Error::Corrupt {
                path: path.to_path_buf(),
                message,
            })
    }

    fn write(&self, job: &Job) -> Result<(), Error> {
        let path = self.job_path(&job.id)?;
        #[cfg(test)]
        if take_injected_write_failure() {
            return Err(Error::io(&path, io::ErrorKind::PermissionDenied.into()));
        }
        let bytes = serde_json::to_vec_pretty(job).map_err(|e| Error::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        self.in_dir(|| fsio::atomic_write(&path, &bytes))
            .map_err(|err| Error::io(&path, err))
    }

    /// A new `pending` job owned by this process. The ownership lock is taken before the job
    /// file is written, so no other process can ever see this job unowned while we live.
    pub fn create(&self, new: NewJob) -> Result<(Job, OwnershipGuard), Error> {
        let mut job = Job::from_new(new_id(), new, now());
        job.owner_pid = Some(std::process::id());
        let lock_path = self.lock_path(&job.id);
        let lock = self
            .in_dir(|| fsio::create_locked(&lock_path))
            .map_err(|err| Error::io(&lock_path, err))?;
        let cancel = Cancel::new();
        let guard = OwnershipGuard {
            id: job.id.clone(),
            lock: Some(lock),
            lock_path,
            cancel: cancel.clone(),
            store: self.clone(),
        };
        self.local().owned.insert(job.id.clone(), cancel);
        // On error the guard drops here and takes the lock file with it.
        self.write(&job)?;
        Ok((job, guard))
    }

    /// An already-finished job holding `result` (`return_ref`, SPEC §8.3): `done` or `failed`
    /// by `result.success`, started and completed now.
    /// The response format is not stored: a ref records what was asked, not how to parse it.
    pub fn create_completed(
        &self,
        agent: &str,
        ask: &Ask,
        result: &DispatchResult,
    ) -> Result<Job, Error> {
        let at = now();
        let new = NewJob {
            agent: agent.to_string(),
            ask: Ask {
                response_format: ResponseFormat::Text,
                ..ask.clone()
            },
            timeout: None,
        };
        let mut job = Job::from_new(new_id(), new, at);
        job.status = if result.success {
            Status::Done
        } else {
            Status::Failed
        };
        job.started_at = Some(at);
        job.completed_at = Some(at);
        if !result.success {
            job.error = result.error.clone();
        }
        job.result = Some(result.clone());
        self.write(&job)?;
        Ok(job)
    }

    /// The job, `None` when there is no such file. An invalid id is refused without touching
    /// the disk; a file that does not parse is `Error::Corrupt`. A pending or running job
    /// whose ownership lock nobody holds is abandoned (its worker is gone, SPEC §12 item 23):
    /// it is failed on the spot, as at server start, so no reader ever waits on it.
    pub fn get(&self, id: &str) -> Result<Option<Job>, Error> {
        let path = self.job_path(id)?;
        Ok(self.read(&path, id)?.and_then(|job| self.settle(job)))
    }

    /// A reader's view of `job`: itself, unless it is non-terminal and unowned; then it is
    /// failed as abandoned (under the store lock, re-checked there). A job this process (or
    /// any live one) created holds its lock from before its file existed until after its
    /// terminal write, so a queued or running job is never taken for abandoned. If the failure
    /// cannot be stored, the reader still sees the job as failed. `None`: deleted meanwhile.
    fn settle(&self, job: Job) -> Option<Job> {
        if job.status.is_terminal() || self.owned(&job.id).unwrap_or(true) {
            return Some(job);
        }
        match self.abandon_if_unowned(&job.id) {
            Ok((now, _)) => now,
            Err(e) => {
                crate::log::warn(&format!(
                    "could not record abandoned job {} as failed: {e}",
                    job.id
                ));
                let mut job = job;
                mark_abandoned(&mut job);
                Some(job)
            }
        }
    }

    /// Fails job `id` if, under the store lock, it is still non-terminal and nobody holds its
    /// ownership lock; then kills its provably-ours orphaned child group and removes the stale
    /// lock file. Returns the job as it now is (`None` if gone) and whether this call failed it.
    fn abandon_if_unowned(&self, id: &str) -> Result<(Option<Job>, bool), Error> {
        let path = self.job_path(id)?;
        let lock = self.lock_store()?;
        let Some(mut job) = self.read(&path, id)? else {
            return Ok((None, false));
        };
        if job.status.is_terminal() || self.owned(id)? {
            return Ok((Some(job), false));
        }
        mark_abandoned(&mut job);
        self.write(&job)?;
        drop(lock);
        kill_orphan(&job);
        fsio::remove_if_unheld(&self.lock_path(id));
        self.notify();
        Ok((Some(job), true))
    }

    /// Every job (optionally of one status), newest first. One directory scan, no locks: each
    /// file is replaced atomically, so a plain read always sees a whole record. Files that are
    /// not `<32-hex>.json` jobs are listed in `skipped`; temp and lock files are ignored. An
    /// abandoned job is failed first, as in [`JobStore::get`].
    pub fn list(&self, filter: Option<Status>) -> Result<Listing, Error> {
        let mut listing = self.scan(None)?;
        listing.jobs = std::mem::take(&mut listing.jobs)
            .into_iter()
            .filter_map(|job| self.settle(job))
            .filter(|job| filter.is_none_or(|s| s == job.status))
            .collect();
        Ok(listing)
    }

    /// [`JobStore::list`] as the files are, abandoned jobs included.
    fn scan(&self, filter: Option<Status>) -> Result<Listing, Error> {
        let dir = &self.0.dir;
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Listing::default()),
            Err(err) => return Err(Error::io(dir, err)),
        };
        let mut out = Listing::default();
        for entry in entries {
            let entry = entry.map_err(|err| Error::io(dir, err))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            if !valid_id(stem) {
                out.skipped
                    .push((name.to_string(), "not a job file name".to_string()));
                continue;
            }
            let bytes = match fsio::read_record(&entry.path()) {
                Ok(Some(b)) => b,
                // Deleted by gc between the scan and the read.
                Ok(None) => continue,
                Err(e) => {
                    out.skipped.push((name.to_string(), e.to_string()));
                    continue;
                }
            };
            match parse_job(&bytes, stem) {
                Ok(job) if filter.is_none_or(|s| s == job.status) => out.jobs.push(job),
                Ok(_) => {}
                Err(reason) => {
                    out.corrupt.push(name.to_string());
                    out.skipped.push((name.to_string(), reason));
                }
            }
        }
        out.corrupt.sort();
        out.jobs.sort_by(|a, b| {
            b.created_at
                .total_cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out.skipped.sort();
        Ok(out)
    }

    /// Read-check-write of one job under the directory lock. `change` returns false to refuse;
    /// then nothing is written and the result is `None` (as for a missing job).
    fn transition(
        &self,
        id: &str,
        change: impl FnOnce(&mut Job) -> bool,
    ) -> Result<Option<Job>, Error> {
        let path = self.job_path(id)?;
        let lock = self.lock_store()?;
        let Some(mut job) = self.read(&path, id)? else {
            return Ok(None);
        };
        if !change(&mut job) {
            return Ok(None);
        }
        self.write(&job)?;
        drop(lock);
        if job.status.is_terminal() {
            self.notify();
        }
        Ok(Some(job))
    }

    /// `pending` → `running`. Refuses every other status (SPEC §12 item 22): a cancelled or
    /// finished job is never started.
    pub fn mark_running(&self, id: &str) -> Result<Option<Job>, Error> {
        self.transition(id, |job| {
            if job.status != Status::Pending {
                return false;
            }
            job.status = Status::Running;
            job.started_at = Some(now());
            job.owner_pid = Some(std::process::id());
            true
        })
    }

    /// Records the running job's child (pid = process group id) and its start time.
    pub fn record_child(&self, id: &str, pid: u32) -> Result<Option<Job>, Error> {
        let started = fsio::process_start_time(pid);
        // The child has exec'd by now (spawn returns after exec), so this is its own marker.
        let marker = crate::process::marker::marker_of(pid);
        self.transition(id, |job| {
            if job.status != Status::Running {
                return false;
            }
            job.child_pgid = Some(pid);
            job.child_started = started;
            job.child_marker = marker;
            true
        })
    }

    /// Replaces the progress tail. Refused for terminal jobs (SPEC §8.4).
    pub fn update_progress(&self, id: &str, lines: &[String]) -> Result<Option<Job>, Error> {
        self.transition(id, |job| {
            if job.status.is_terminal() {
                return false;
            }
            job.progress = Some(lines.to_vec());
            job.progress_updated_at = Some(now());
            true
        })
    }

    /// Stores the result: `done` or `failed` by `result.success`. Refused for terminal jobs, so
    /// a late finish never overwrites a cancel. Progress already written survives.
    pub fn finish(&self, id: &str, result: &DispatchResult) -> Result<Option<Job>, Error> {
        self.transition(id, |job| {
            if job.status.is_terminal() {
                return false;
            }
            job.status = if result.success {
                Status::Done
            } else {
                Status::Failed
            };
            job.completed_at = Some(now());
            job.error = if result.success {
                None
            } else {
                result.error.clone()
            };
            job.result = Some(result.clone());
            true
        })
    }

    /// `failed` with `message` and no result. Refused for terminal jobs.
    pub fn fail(&self, id: &str, message: &str) -> Result<Option<Job>, Error> {
        self.transition(id, |job| {
            if job.status.is_terminal() {
                return false;
            }
            job.status = Status::Failed;
            job.completed_at = Some(now());
            job.error = Some(message.to_string());
            true
        })
    }

    /// Cancels a pending or running job: it is marked `cancelled` first, then stopped. A job run
    /// by this process has its `Cancel` tripped at once; one run by another live process is
    /// stopped by that process, which watches its job file; one whose owner is gone has its
    /// recorded child group killed here, but only if that process is provably still the same.
    /// Use `wait_released` to wait until the child is really gone.
    pub fn cancel(&self, id: &str) -> Result<CancelOutcome, Error> {
        let path = self.job_path(id)?;
        let lock = self.lock_store()?;
        let Some(mut job) = self.read(&path, id)? else {
            return Ok(CancelOutcome::NotFound);
        };
        if !job.status.is_terminal() && !self.owned(id)? {
            // Its worker is gone: it ended as abandoned, whatever the caller wanted.
            drop(lock);
            return Ok(match self.abandon_if_unowned(id)? {
                (Some(job), _) => CancelOutcome::AlreadyTerminal(job.status),
                (None, _) => CancelOutcome::NotFound,
            });
        }
        let outcome = match job.status {
            s if s.is_terminal() => return Ok(CancelOutcome::AlreadyTerminal(s)),
            Status::Pending => {
                job.error = Some("Cancelled before execution".to_string());
                CancelOutcome::Cancelled
            }
            _ => {
                job.error = Some("Cancelled while running".to_string());
                CancelOutcome::CancelledRunning
            }
        };
        job.status = Status::Cancelled;
        job.completed_at = Some(now());
        self.write(&job)?;
        let orphan = !self.running_here(id) && !fsio::lock_is_held(&self.lock_path(id));
        drop(lock);
        if let Some(cancel) = self.local().owned.get(id) {
            cancel.trip();
        }
        if orphan {
            kill_orphan(&job);
            fsio::remove_if_unheld(&self.lock_path(id));
        }
        self.notify();
        Ok(outcome)
    }

    /// True while this process holds the job's ownership lock.
    pub fn running_here(&self, id: &str) -> bool {
        self.local().owned.contains_key(id)
    }

    /// True while some process (this one included) holds the job's ownership lock, i.e. its
    /// worker (and any child) may still be alive.
    pub fn owned(&self, id: &str) -> Result<bool, Error> {
        self.job_path(id)?;
        Ok(self.running_here(id) || fsio::lock_is_held(&self.lock_path(id)))
    }

    /// Blocks until the job is terminal or `timeout` passes, and returns the job as last read
    /// (still non-terminal on timeout; `None` if it does not exist). A job that finishes in this
    /// process wakes the waiter at once; others are re-read every 100 ms.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<Option<Job>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read the counter before the file so a change in between is never missed.
            let seen = self.local().generation;
            let Some(job) = self.get(id)? else {
                return Ok(None);
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if job.status.is_terminal() || left.is_zero() {
                return Ok(Some(job));
            }
            self.wait_for_change(seen, left.min(POLL));
        }
    }

    /// Blocks until nobody holds the job's ownership lock (its worker has reaped its child and
    /// let go) or `timeout` passes; returns whether it was released.
    pub fn wait_released(&self, id: &str, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let seen = self.local().generation;
            if !self.owned(id)? {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.wait_for_change(seen, left.min(POLL));
        }
    }

    fn wait_for_change(&self, seen: u64, slice: Duration) {
        let local = self.local();
        if local.generation == seen {
            let _ = self
                .0
                .changed
                .wait_timeout(local, slice)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Runs once, on this thread, just before `gc` unlinks a job file: lets a test make that
    /// unlink fail.
    static BEFORE_UNLINK: std::cell::RefCell<Option<fsio::Hook>> =
        std::cell::RefCell::new(None);
}

#[cfg(test)]
thread_local! {
    /// How many of this thread's next job-file writes fail (as on a read-only directory).
    static FAILING_WRITES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Makes this thread's next `n` job-file writes fail with a permission error.
#[cfg(test)]
pub(super) fn fail_next_writes(n: u32) {
    FAILING_WRITES.with(|c| c.set(n));
}

#[cfg(test)]
fn take_injected_write_failure() -> bool {
    FAILING_WRITES.with(|c| {
        let n = c.get();
        c.set(n.saturating_sub(1));
        n > 0
    })
}

#[cfg(test)]
fn run_before_unlink_hook(path: &Path) {
    if let Some(hook) = BEFORE_UNLINK.with(|h| h.borrow_mut().take()) {
        hook(path);
    }
}

/// Parses a job file whose name says it holds `id`. A file whose record names another id is
/// foreign (copied or planted) and refused, so ids stay one-to-one with paths.
fn parse_job(bytes: &[u8], id: &str) -> Result<Job, String> {
    let job: Job = serde_json::from_slice(bytes).map_err(|e| format!("not a job record: {e}"))?;
    if job.id != id {
        return Err(format!("records id {:?}, not its file name", job.id));
    }
    Ok(job)
}

mod maintenance;
use maintenance::{kill_orphan, mark_abandoned};
#[cfg(test)]
mod tests;
