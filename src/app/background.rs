//! Background dispatches (`dispatch_async`, SPEC §8): a job record is created and owned by this
//! process, and a thread of the `App` runs it through the job worker (which waits for the permit
//! while the job is `pending`) and the pipeline's `child`. Also the bounded wait on a job that
//! `dispatch_wait` offers, with keep-alives for an observer that wants them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pipeline::{self, Observer, Target};
use super::{App, Error};
use crate::ask::Ask;
use crate::claude::{DispatchRequest, OutputMode};
use crate::jobs::{self, Job, NewJob};

/// Starts `ask` on `target` in the background and returns the new job's id at once.
pub fn start(app: &Arc<App>, target: Target, ask: Ask) -> Result<String, Error> {
    let store = app.jobs()?;
    let (job, owner) = store
        .create(NewJob {
            agent: target.name.clone(),
            ask: ask.clone(),
            timeout: Some(crate::claude::effective_timeout(
                &target.agent,
                &target.settings,
            )),
        })
        .map_err(Error::from_store)?;
    let req = DispatchRequest::new(&target.name, target.agent, target.settings, ask);
    let worker_app = Arc::clone(app);
    let started = app.spawn_job(&job.id, move || {
        let app = &*worker_app;
        let (limiter, gate) = (app.limiter(), app.gate());
        let outcome = jobs::run_job(owner, limiter, gate, app.stopping(), |permit, hooks| {
            pipeline::child(app, permit, &req, OutputMode::Stream, hooks)
        });
        if let Err(e) = outcome {
            crate::log::error(&format!("async job failed to record its outcome: {e}"));
        }
    });
    if let Err(e) = started {
        // The owner guard went down with the closure; mark the job so it is not left pending.
        let _ = store.fail(&job.id, &format!("Could not start a worker thread: {e}"));
        return Err(Error::new(format!("could not start a worker thread: {e}")));
    }
    Ok(job.id)
}

/// A job after `wait`: terminal, or still going when the wait ran out.
pub struct Waited {
    pub job: Job,
    pub timed_out: bool,
}

/// Blocks until job `id` is terminal, `timeout` passes, or the observer cancels.
pub fn wait(app: &App, id: &str, timeout: Duration, obs: &dyn Observer) -> Result<Waited, Error> {
    let store = app.jobs()?;
    let deadline = Instant::now() + timeout;
    let not_found = || Error::new(format!("Job not found: {id}"));
    // Wait in slices so a cancelled request (or shutdown) stops waiting promptly; a job that
    // finishes in this process wakes the wait at once.
    let claim = obs.claim_keepalive();
    let mut last_beat = Instant::now();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let job = store
            .wait(id, left.min(Duration::from_secs(1)))
            .map_err(Error::from_store)?
            .ok_or_else(not_found)?;
        if job.status.is_terminal() || left.is_zero() || obs.cancel().is_tripped() {
            let timed_out = !job.status.is_terminal();
            return Ok(Waited { job, timed_out });
        }
        // Keep a progress-tracking client from giving up on a long wait.
        if claim.is_some() && last_beat.elapsed() >= app.heartbeat() {
            last_beat = Instant::now();
            let latest = job
                .progress
                .as_ref()
                .and_then(|p| p.last())
                .map(String::as_str)
                .unwrap_or("");
            obs.keepalive(&format!("job {id} still {}: {latest}", job.status.as_str()));
        }
    }
}
