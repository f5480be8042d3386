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

    /// Deletes terminal jobs whose `completed_at` (else `created_at`) is more than
    /// `max_age_secs` ago; `max_age_secs <= 0` deletes every terminal job. Pending and running
    /// jobs are never deleted. Corrupt job files (`<id>.json` holding no valid record for that
    /// id) last written more than `max_age_secs` ago go too, logged but not counted. Also
    /// removes temp files left by crashed writers and lock files nobody holds whose job is
    /// gone. Returns the number of jobs deleted.
    pub fn gc(&self, max_age_secs: f64) -> Result<usize, Error> {
        let cutoff = now() - max_age_secs.max(0.0);
        let all = max_age_secs <= 0.0;
        let listing = self.scan(None)?;
        let _lock = self.lock_store()?;
        let mut purged = 0;
        for job in listing.jobs {
            if !job.status.is_terminal() || !(all || job.finished_or_created() < cutoff) {
                continue;
            }
            let path = self.job_path(&job.id)?;
            #[cfg(test)]
            run_before_unlink_hook(&path);
            match fs::remove_file(&path) {
                Ok(()) => purged += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // SPEC §8.7: logged, not counted, and the rest are still collected.
                Err(e) => crate::log::warn(&format!("gc could not remove {}: {e}", path.display())),
            }
        }
        // Not counted: the count is of finished jobs, and these never were jobs we can show.
        for name in &listing.corrupt {
            self.remove_corrupt(name, cutoff, all);
        }
        self.sweep_leftovers();
        Ok(purged)
    }

    /// Removes the corrupt job file `name` if it was last written before `cutoff` (or `all`)
    /// and still does not parse; called under the directory lock. A corrupt file can never
    /// become a job again, and left alone it makes every lookup of its id fail for good.
    fn remove_corrupt(&self, name: &str, cutoff: f64, all: bool) {
        let path = self.0.dir.join(name);
        let id = name.trim_end_matches(".json");
        let age_ok = all
            || fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .is_some_and(|t| t.as_secs_f64() < cutoff);
        if !age_ok || !matches!(self.read(&path, id), Err(Error::Corrupt { .. })) {
            return;
        }
        match fs::remove_file(&path) {
            Ok(()) => crate::log::info(&format!("gc removed corrupt job file {}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => crate::log::warn(&format!("gc could not remove {}: {e}", path.display())),
        }
    }

    /// Best-effort removal of stale temp files and unheld lock files without a live job.
    fn sweep_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.0.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if fsio::is_job_temp_name(name) {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > STALE_TEMP);
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            } else if let Some(id) = name.strip_suffix(".lock") {
                if !valid_id(id) {
                    continue;
                }
                // A raw read: settling an abandoned job would take the store lock we hold.
                let live_job = matches!(
                    self.read(&entry.path().with_extension("json"), id),
                    Ok(Some(j)) if !j.status.is_terminal()
                );
                if !live_job && !self.running_here(id) {
                    // Probe-and-unlink in one step under the lock: a check followed by a plain
                    // unlink could remove the file a creator is just about to lock.
                    fsio::remove_if_unheld(&entry.path());
                }
            }
        }
    }

    /// `settings.job_retention_days` at server start: 0 keeps everything.
    pub fn purge_older_than_days(&self, days: u64) -> Result<usize, Error> {
        if days == 0 {
            return Ok(0);
        }
        self.gc(days as f64 * 86_400.0)
    }

    /// Marks `failed` every pending or running job whose ownership lock nobody holds: the
    /// process that ran it is gone (the OS dropped its lock). Jobs owned by a live process are
    /// left alone however old they are. A provably-ours orphaned child group is killed. Returns
    /// how many jobs were failed.
    pub fn recover_abandoned(&self) -> Result<usize, Error> {
        let listing = self.scan(None)?;
        let mut recovered = 0;
        for candidate in listing.jobs {
            if candidate.status.is_terminal() || self.owned(&candidate.id)? {
                continue;
            }
            if self.abandon_if_unowned(&candidate.id)?.1 {
                recovered += 1;
            }
        }
        Ok(recovered)
    }
}

/// Fails a job whose owner is gone, saying in which state it was left.
fn mark_abandoned(job: &mut Job) {
    let who = match job.owner_pid {
        Some(pid) => format!("the agent-dispatch server that ran this job (pid {pid})"),
        None => "the agent-dispatch server that ran this job".to_string(),
    };
    let when = if job.status == Status::Pending {
        "before it started"
    } else {
        "before it finished"
    };
    job.error = Some(format!(
        "Abandoned in '{}': {who} exited {when}. Re-dispatch if still needed.",
        job.status
    ));
    job.status = Status::Failed;
    job.completed_at = Some(now());
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

/// Kills the child group a dead owner left behind, if the job recorded one and it is provably
/// the same process (pid and start time both match).
fn kill_orphan(job: &Job) {
    if let (Some(pgid), Some(started)) = (job.child_pgid, job.child_started) {
        fsio::kill_group_if_same(pgid, started, job.child_marker.as_deref());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ErrorType;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static N: AtomicUsize = AtomicUsize::new(0);

    /// A fresh jobs directory, removed on drop.
    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let n = N.fetch_add(1, Ordering::SeqCst);
            let d =
                std::env::temp_dir().join(format!("ad-store-{name}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            Dir(d.join("jobs"))
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            if let Some(p) = self.0.parent() {
                let _ = fs::remove_dir_all(p);
            }
        }
    }

    fn new_job(task: &str) -> NewJob {
        NewJob {
            agent: "a".into(),
            ask: crate::ask::Ask::task(task),
            ..NewJob::default()
        }
    }

    fn ok(agent: &str) -> DispatchResult {
        DispatchResult {
            agent: agent.into(),
            success: true,
            result: "fine".into(),
            ..Default::default()
        }
    }

    /// Writes a job file as a dead process would have left it: no lock file.
    fn plant(store: &JobStore, status: Status, created_at: f64) -> Job {
        let mut job = Job::from_new(new_id(), new_job("planted"), created_at);
        job.status = status;
        job.owner_pid = Some(999_999);
        if status.is_terminal() {
            job.completed_at = Some(created_at);
        }
        store.write(&job).unwrap();
        job
    }

    #[test]
    fn create_is_owned_private_and_released_on_drop() {
        let d = Dir::new("create");
        let store = JobStore::open(&d.0).unwrap();
        let (job, guard) = store.create(new_job("t")).unwrap();
        assert_eq!(job.status, Status::Pending);
        assert_eq!(job.owner_pid, Some(std::process::id()));
        let path = store.job_path(&job.id).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&d.0).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(store.running_here(&job.id));
        assert!(store.owned(&job.id).unwrap());
        // Another store in this process (a distinct registry) still sees the lock.
        let other = JobStore::open(&d.0).unwrap();
        assert!(!other.running_here(&job.id));
        assert!(other.owned(&job.id).unwrap());
        drop(guard);
        assert!(!store.owned(&job.id).unwrap());
        assert!(!store.lock_path(&job.id).exists());
        // Timestamps are compared loosely: serde_json's float parsing may differ in the last bit.
        // Released without a terminal write: its worker is gone, so a reader fails it.
        let back = store.get(&job.id).unwrap().unwrap();
        assert_eq!((back.id, back.status), (job.id, Status::Failed));
        assert!((back.created_at - job.created_at).abs() < 1e-3);
        assert!(back.error.unwrap().starts_with("Abandoned in 'pending'"));
    }

    #[test]
    fn invalid_ids_are_refused_before_touching_disk() {
        let d = Dir::new("ids");
        let store = JobStore::open(&d.0).unwrap();
        // With the directory gone, any filesystem access would be an Io error instead.
        fs::remove_dir_all(&d.0).unwrap();
        let upper = "A".repeat(32);
        for bad in ["../x", upper.as_str(), "", "../../etc/passwd"] {
            assert!(store.get(bad).unwrap_err().is_invalid_id());
            assert!(store.cancel(bad).unwrap_err().is_invalid_id());
            assert!(store.mark_running(bad).unwrap_err().is_invalid_id());
            assert!(store.fail(bad, "x").unwrap_err().is_invalid_id());
            assert!(store.wait(bad, Duration::ZERO).unwrap_err().is_invalid_id());
            assert!(store.owned(bad).unwrap_err().is_invalid_id());
        }
        assert!(!d.0.exists(), "nothing may have been created");
        let msg = store.get("../x").unwrap_err().to_string();
        assert_eq!(
            msg,
            "Invalid ref/job_id format: '../x' (expected a 32-char hex id)"
        );
        assert_eq!(
            store.get(&"a".repeat(32)).map_err(|e| e.to_string()),
            Ok(None)
        );
    }

    #[test]
    fn transitions_never_resurrect_or_overwrite_a_terminal_job() {
        let d = Dir::new("transitions");
        let store = JobStore::open(&d.0).unwrap();
        let (job, _g) = store.create(new_job("t")).unwrap();
        let id = job.id.as_str();
        assert!(store.finish(id, &ok("a")).unwrap().is_some());
        assert!(store.mark_running(id).unwrap().is_none());
        assert!(store.fail(id, "late").unwrap().is_none());
        assert!(store.update_progress(id, &["x".into()]).unwrap().is_none());
        let done = store.get(id).unwrap().unwrap();
        assert_eq!(done.status, Status::Done);
        assert!(done.progress.is_none());
        assert_eq!(
            store.cancel(id).unwrap(),
            CancelOutcome::AlreadyTerminal(Status::Done)
        );

        let (job, _g2) = store.create(new_job("t2")).unwrap();
        let id = job.id.as_str();
        assert_eq!(store.cancel(id).unwrap(), CancelOutcome::Cancelled);
        assert!(store.mark_running(id).unwrap().is_none());
        assert!(store.finish(id, &ok("a")).unwrap().is_none());
        let j = store.get(id).unwrap().unwrap();
        assert_eq!(j.status, Status::Cancelled);
        assert_eq!(j.error.as_deref(), Some("Cancelled before execution"));
        assert!(j.result.is_none());
        assert_eq!(store.cancel(&new_id()).unwrap(), CancelOutcome::NotFound);
    }

    #[test]
    fn progress_survives_finish_and_failure_keeps_result() {
        let d = Dir::new("progress");
        let store = JobStore::open(&d.0).unwrap();
        let (job, _g) = store.create(new_job("t")).unwrap();
        let id = job.id.as_str();
        assert!(store.mark_running(id).unwrap().is_some());
        assert!(
            store.mark_running(id).unwrap().is_none(),
            "only pending starts"
        );
        store.update_progress(id, &["one".into()]).unwrap();
        let failed = DispatchResult::failure("a", ErrorType::Timeout, "too slow");
        let j = store.finish(id, &failed).unwrap().unwrap();
        assert_eq!(j.status, Status::Failed);
        assert_eq!(j.error.as_deref(), Some("too slow"));
        assert_eq!(j.progress, Some(vec!["one".to_string()]));
        assert_eq!(j.result, Some(failed));
    }

    #[test]
    fn create_completed_is_a_finished_reference() {
        let d = Dir::new("completed");
        let store = JobStore::open(&d.0).unwrap();
        let j = store
            .create_completed(
                "a",
                &crate::ask::Ask {
                    context: Some("ctx".into()),
                    goal: Some(String::new()),
                    ..crate::ask::Ask::task("t")
                },
                &ok("a"),
            )
            .unwrap();
        assert_eq!(j.status, Status::Done);
        assert_eq!(j.started_at, j.completed_at);
        assert_eq!(j.context.as_deref(), Some("ctx"));
        assert!(j.goal.is_none());
        assert!(!store.lock_path(&j.id).exists());
        let bad = DispatchResult::failure("a", ErrorType::CliError, "boom");
        let j = store
            .create_completed("a", &crate::ask::Ask::task("t"), &bad)
            .unwrap();
        assert_eq!(j.status, Status::Failed);
        assert_eq!(j.error.as_deref(), Some("boom"));
        assert_eq!(store.get(&j.id).unwrap().unwrap().result, j.result);
    }

    #[test]
    fn list_skips_and_reports_corrupt_and_foreign_files() {
        let d = Dir::new("list");
        let store = JobStore::open(&d.0).unwrap();
        let old = plant(&store, Status::Done, 100.0);
        let (new, _g) = store.create(new_job("new")).unwrap();
        let corrupt = format!("{}.json", new_id());
        fs::write(d.0.join(&corrupt), b"{\"id\": ").unwrap();
        fs::write(d.0.join("notes.json"), b"{}").unwrap();
        let mismatched = format!("{}.json", new_id());
        fs::copy(store.job_path(&old.id).unwrap(), d.0.join(&mismatched)).unwrap();
        fs::write(d.0.join("README"), b"hi").unwrap();
        fs::write(d.0.join(format!(".{}.1.2.tmp", new_id())), b"{").unwrap();

        let listing = store.list(None).unwrap();
        let ids: Vec<&str> = listing.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, [new.id.as_str(), old.id.as_str()], "newest first");
        let mut names: Vec<&str> = listing.skipped.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        let mut want = vec![corrupt.as_str(), mismatched.as_str(), "notes.json"];
        want.sort();
        assert_eq!(names, want);
        assert!(store.get(corrupt.trim_end_matches(".json")).is_err());

        let done = store.list(Some(Status::Done)).unwrap();
        assert_eq!(done.jobs.len(), 1);
        assert_eq!(done.jobs[0].id, old.id);
    }

    #[test]
    fn gc_keeps_pending_and_running_jobs() {
        let d = Dir::new("gc");
        let store = JobStore::open(&d.0).unwrap();
        let long_ago = now() - 30.0 * 86_400.0;
        let old_done = plant(&store, Status::Done, long_ago);
        let old_cancelled = plant(&store, Status::Cancelled, long_ago);
        let old_running = plant(&store, Status::Running, long_ago);
        let old_pending = plant(&store, Status::Pending, long_ago);
        let fresh_failed = plant(&store, Status::Failed, now());
        assert_eq!(store.purge_older_than_days(0).unwrap(), 0);
        assert_eq!(store.purge_older_than_days(7).unwrap(), 2);
        assert!(store.get(&old_done.id).unwrap().is_none());
        assert!(store.get(&old_cancelled.id).unwrap().is_none());
        // Read raw: a plain `get` would fail these abandoned plants on the spot.
        let left: Vec<(String, Status)> = store
            .scan(None)
            .unwrap()
            .jobs
            .into_iter()
            .map(|j| (j.id, j.status))
            .collect();
        assert_eq!(left.len(), 3);
        assert!(left.contains(&(old_running.id.clone(), Status::Running)));
        assert!(left.contains(&(old_pending.id.clone(), Status::Pending)));
        assert!(left.contains(&(fresh_failed.id.clone(), Status::Failed)));
        assert_eq!(store.gc(0.0).unwrap(), 1, "--all takes every terminal job");
        assert_eq!(store.list(None).unwrap().jobs.len(), 2);
    }

    #[test]
    fn gc_sweeps_unheld_lock_files_of_finished_jobs_only() {
        let d = Dir::new("sweep");
        let store = JobStore::open(&d.0).unwrap();
        // A lock file left by a crashed owner whose job was later recovered and finished.
        let finished = plant(&store, Status::Failed, now());
        fs::write(store.lock_path(&finished.id), b"").unwrap();
        let stray = store.lock_path(&new_id());
        fs::write(&stray, b"").unwrap();
        let (live, _guard) = store.create(new_job("live")).unwrap();
        let fresh_tmp = d.0.join(format!(".{}.1.1.tmp", new_id()));
        fs::write(&fresh_tmp, b"{").unwrap();
        assert_eq!(store.gc(3600.0).unwrap(), 0);
        assert!(!store.lock_path(&finished.id).exists());
        assert!(!stray.exists());
        assert!(
            store.lock_path(&live.id).exists(),
            "a held lock is never swept"
        );
        assert!(
            fresh_tmp.exists(),
            "a temp file may belong to a write in progress"
        );
    }

    #[test]
    fn gc_leaves_foreign_temp_files_and_survives_a_failed_unlink() {
        let d = Dir::new("gc-foreign");
        let store = JobStore::open(&d.0).unwrap();
        let long_ago = now() - 30.0 * 86_400.0;
        let stuck = plant(&store, Status::Done, long_ago);
        let gone = plant(&store, Status::Done, long_ago);
        let ours = d.0.join(format!(".{}.1.2.tmp", new_id()));
        let theirs = [d.0.join(".editor-swap.tmp"), d.0.join(".X0-lock.tmp")];
        let hour_ago = SystemTime::now() - Duration::from_secs(7200);
        for p in theirs.iter().chain([&ours]) {
            fs::write(p, b"x").unwrap();
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(hour_ago)
                .unwrap();
        }
        // gc's unlink of the first job file fails (a directory now sits at its path).
        BEFORE_UNLINK.with(|h| {
            *h.borrow_mut() = Some(Box::new(|path: &Path| {
                fs::remove_file(path).unwrap();
                fs::create_dir(path).unwrap();
                fs::write(path.join("x"), b"").unwrap();
            }))
        });
        assert_eq!(store.gc(86_400.0).unwrap(), 1);
        let left = [&stuck.id, &gone.id]
            .iter()
            .filter(|id| store.job_path(id).unwrap().exists())
            .count();
        assert_eq!(left, 1, "one failed unlink must not stop the rest");
        assert!(!ours.exists(), "our stale temp file is swept");
        for p in &theirs {
            assert!(p.exists(), "{} is not ours", p.display());
        }
    }

    #[test]
    fn gc_removes_old_corrupt_job_files_only() {
        let d = Dir::new("gc-corrupt");
        let store = JobStore::open(&d.0).unwrap();
        let old_corrupt = d.0.join(format!("{}.json", new_id()));
        let fresh_corrupt = d.0.join(format!("{}.json", new_id()));
        let foreign = d.0.join("notes.json");
        let copied = d.0.join(format!("{}.json", new_id()));
        let kept = plant(&store, Status::Done, now());
        fs::copy(store.job_path(&kept.id).unwrap(), &copied).unwrap();
        fs::write(&old_corrupt, b"{\"id\": ").unwrap();
        fs::write(&fresh_corrupt, b"{\"id\": ").unwrap();
        fs::write(&foreign, b"{").unwrap();
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400);
        for p in [&old_corrupt, &foreign, &copied] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(two_days_ago)
                .unwrap();
        }
        let err = store.get(old_corrupt.file_stem().unwrap().to_str().unwrap());
        assert!(err.unwrap_err().is_corrupt());
        assert_eq!(store.gc(86_400.0).unwrap(), 0, "corrupt files are not jobs");
        assert!(!old_corrupt.exists());
        assert!(
            !copied.exists(),
            "a record under another id's name is corrupt too"
        );
        assert!(fresh_corrupt.exists(), "younger than the threshold");
        assert!(foreign.exists(), "not named like a job file: not ours");
        assert!(store.get(&kept.id).unwrap().is_some());
        assert_eq!(
            store.gc(0.0).unwrap(),
            1,
            "--all: every terminal job and corrupt file"
        );
        assert!(!fresh_corrupt.exists());
        assert!(foreign.exists());
    }

    /// The job file a `create` on this thread is about to make, once its lock file exists.
    fn in_create_window(hook: impl FnOnce(&Path) + 'static) {
        fsio::BEFORE_LOCK.with(|h| *h.borrow_mut() = Some(Box::new(hook)));
    }

    #[test]
    fn a_sweep_between_create_and_lock_cannot_orphan_a_live_job() {
        let d = Dir::new("sweep-race");
        let store = JobStore::open(&d.0).unwrap();
        // Another process's gc (its own registry) sweeps while the lock file is new and unlocked.
        let other = JobStore::open(&d.0).unwrap();
        let sweeper = other.clone();
        in_create_window(move |_| sweeper.sweep_leftovers());
        let (live, _guard) = store.create(new_job("live")).unwrap();
        store.mark_running(&live.id).unwrap();
        assert!(
            other.owned(&live.id).unwrap(),
            "the live job's lock must be the file at its path"
        );
        assert_eq!(other.recover_abandoned().unwrap(), 0);
        assert_eq!(
            store.get(&live.id).unwrap().unwrap().status,
            Status::Running
        );
        assert_eq!(
            other.cancel(&live.id).unwrap(),
            CancelOutcome::CancelledRunning
        );
        assert!(
            store.lock_path(&live.id).exists(),
            "a cancel from outside leaves the owner's lock to the owner"
        );
    }

    #[test]
    fn a_probe_holding_the_new_lock_for_a_moment_does_not_fail_create() {
        let d = Dir::new("probe-race");
        let store = JobStore::open(&d.0).unwrap();
        // `lock_is_held` briefly takes the lock it probes; a create must wait that out.
        in_create_window(|path| {
            let f = fs::File::open(path).unwrap();
            fs2::FileExt::try_lock_exclusive(&f).unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                drop(f);
            });
        });
        let (job, _guard) = store.create(new_job("x")).unwrap();
        assert!(JobStore::open(&d.0).unwrap().owned(&job.id).unwrap());
    }

    #[test]
    fn recovery_fails_only_unowned_jobs() {
        let d = Dir::new("recover");
        let store = JobStore::open(&d.0).unwrap();
        let dead_running = plant(&store, Status::Running, now());
        let dead_pending = plant(&store, Status::Pending, now() - 7200.0);
        let dead_done = plant(&store, Status::Done, now() - 7200.0);
        let (live, _guard) = store.create(new_job("live")).unwrap();
        store.mark_running(&live.id).unwrap();
        // A fresh store (as at server start) must see the live lock held.
        let restarted = JobStore::open(&d.0).unwrap();
        assert_eq!(restarted.recover_abandoned().unwrap(), 2);
        let j = restarted.get(&dead_running.id).unwrap().unwrap();
        assert_eq!(j.status, Status::Failed);
        assert_eq!(
            j.error.as_deref(),
            Some(
                "Abandoned in 'running': the agent-dispatch server that ran this job \
                 (pid 999999) exited before it finished. Re-dispatch if still needed."
            )
        );
        let j = restarted.get(&dead_pending.id).unwrap().unwrap();
        assert_eq!(j.status, Status::Failed);
        assert!(j.error.unwrap().contains("before it started"));
        assert_eq!(
            restarted.get(&dead_done.id).unwrap().unwrap().status,
            Status::Done
        );
        assert_eq!(
            restarted.get(&live.id).unwrap().unwrap().status,
            Status::Running
        );
        assert_eq!(restarted.recover_abandoned().unwrap(), 0);
    }

    #[test]
    fn readers_fail_abandoned_jobs_and_never_owned_ones() {
        let d = Dir::new("readers");
        let store = JobStore::open(&d.0).unwrap();
        let dead_running = plant(&store, Status::Running, now());
        fs::write(store.lock_path(&dead_running.id), b"").unwrap();
        let dead_pending = plant(&store, Status::Pending, now());
        // Queued here, its worker not started yet: owned from creation on.
        let (queued, _guard) = store.create(new_job("queued")).unwrap();
        let elsewhere = JobStore::open(&d.0).unwrap();

        let j = elsewhere.get(&dead_running.id).unwrap().unwrap();
        assert_eq!(j.status, Status::Failed);
        assert!(j.error.unwrap().starts_with("Abandoned in 'running'"));
        assert!(
            !store.lock_path(&dead_running.id).exists(),
            "the stale lock goes"
        );
        let j = elsewhere
            .wait(&dead_pending.id, Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(j.status, Status::Failed, "wait returns at once");
        for s in [&store, &elsewhere] {
            assert_eq!(s.get(&queued.id).unwrap().unwrap().status, Status::Pending);
            let listing = s.list(None).unwrap();
            let statuses: Vec<Status> = listing.jobs.iter().map(|j| j.status).collect();
            assert_eq!(statuses.len(), 3);
            assert_eq!(statuses.iter().filter(|&&s| s == Status::Failed).count(), 2);
        }
        let planted = plant(&store, Status::Running, now());
        let running = elsewhere.list(Some(Status::Running)).unwrap();
        assert!(running.jobs.is_empty(), "an abandoned job is not running");
        assert_eq!(
            elsewhere.get(&planted.id).unwrap().unwrap().status,
            Status::Failed
        );
        // Cancel, with no reader before it, also finds the worker gone.
        let unread = plant(&store, Status::Running, now());
        assert_eq!(
            elsewhere.cancel(&unread.id).unwrap(),
            CancelOutcome::AlreadyTerminal(Status::Failed)
        );
        let j = store.get(&unread.id).unwrap().unwrap();
        assert!(j.error.unwrap().starts_with("Abandoned in 'running'"));
        assert_eq!(
            elsewhere.cancel(&queued.id).unwrap(),
            CancelOutcome::Cancelled
        );
    }

    #[test]
    fn wait_wakes_at_once_on_a_local_finish() {
        let d = Dir::new("wait");
        let store = JobStore::open(&d.0).unwrap();
        let (job, guard) = store.create(new_job("t")).unwrap();
        let started = Instant::now();
        let timed_out = store.wait(&job.id, Duration::from_millis(150)).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(timed_out.unwrap().status, Status::Pending);

        let s2 = store.clone();
        let id = job.id.clone();
        let finisher = thread::spawn(move || {
            thread::sleep(Duration::from_millis(250));
            s2.finish(&id, &ok("a")).unwrap();
            let finished = Instant::now();
            thread::sleep(Duration::from_millis(500));
            drop(guard);
            finished
        });
        let j = store
            .wait(&job.id, Duration::from_secs(10))
            .unwrap()
            .unwrap();
        let woke = Instant::now();
        let finished = finisher.join().unwrap();
        assert_eq!(j.status, Status::Done);
        // Far below the 100 ms poll: the condition variable woke us.
        assert!(woke.duration_since(finished) < Duration::from_millis(40));
        assert!(store.wait(&new_id(), Duration::ZERO).unwrap().is_none());
    }

    use std::thread;
}
