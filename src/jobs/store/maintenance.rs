//! The job store's upkeep: `gc` (old terminal jobs, corrupt files, crashed writers' temp files,
//! unheld lock files), retention (`purge_older_than_days`) and recovery of the jobs a dead
//! server left (`recover_abandoned`), with the marker-checked kill of their leftovers.

use super::*;

impl JobStore {
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
    pub(super) fn sweep_leftovers(&self) {
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
pub(super) fn mark_abandoned(job: &mut Job) {
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

/// Kills the child group a dead owner left behind, if the job recorded one and it is provably
/// the same process (pid and start time both match).
pub(super) fn kill_orphan(job: &Job) {
    if let (Some(pgid), Some(started)) = (job.child_pgid, job.child_started) {
        fsio::kill_group_if_same(pgid, started, job.child_marker.as_deref());
    }
}
