//! Unit tests of the job store: ownership, transitions, listing, gc and recovery.

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
        let d = std::env::temp_dir().join(format!("ad-store-{name}-{}-{n}", std::process::id()));
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
