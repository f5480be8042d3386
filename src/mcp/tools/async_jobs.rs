//! The job tools: `dispatch_async`, `dispatch_status`, `dispatch_wait`, `dispatch_cancel`,
//! `dispatch_jobs`, `fetch_result` and `dispatch_gc` (SPEC §7.5 tools 11–17), plus the
//! reference payload that `return_ref` turns a result into (SPEC §7.4). The job lifecycle itself
//! (ownership, progress tail, cancel watching) lives in `crate::jobs`; these are thin adapters.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::ask::{Ask, Call};
use super::{Args, ToolCtx, ToolError, ToolResult};
use crate::claude::{self, OutputMode};
use crate::jobs::{self, JobStore, NewJob, Status};
use crate::result::DispatchResult;
use crate::text::first_chars;

/// A job-store failure as a tool error: the message names the id or path.
pub fn store_error(e: jobs::Error) -> ToolError {
    if e.is_invalid_id() {
        return ToolError::new(e.to_string());
    }
    if e.is_corrupt() {
        return ToolError::new(e.to_string()).with_hint(
            "The job file is corrupt; delete or move it (dispatch_gc removes corrupt job files \
             older than max_age_days).",
        );
    }
    ToolError::new(e.to_string()).with_hint(
        "The jobs directory could not be used. Check its permissions and free space \
         (AGENT_DISPATCH_JOBS_DIR, else jobs/ next to agents.yaml).",
    )
}

/// SPEC §7.3: a well-formed id or the standard error, before any filesystem access.
fn checked_id(args: &Args, name: &str) -> Result<String, ToolError> {
    let id = args.string(name)?;
    if !jobs::valid_id(&id) {
        return Err(ToolError::new(jobs::Error::InvalidId(id).to_string()));
    }
    Ok(id)
}

fn not_found(label: &str, id: &str) -> ToolError {
    ToolError::new(format!("{label} not found: {id}"))
}

/// SPEC §7.4: what `return_ref` returns instead of the full result.
pub fn ref_payload(job_id: &str, r: &DispatchResult, summary_chars: usize) -> Value {
    let size = r.result.chars().count();
    let mut out = Map::new();
    out.insert("ref".into(), json!(job_id));
    out.insert("agent".into(), json!(r.agent));
    out.insert("success".into(), json!(r.success));
    out.insert("size".into(), json!(size));
    out.insert("summary_chars".into(), json!(size.min(summary_chars)));
    out.insert(
        "summary".into(),
        json!(first_chars(&r.result, summary_chars)),
    );
    let full = r.to_json();
    for key in [
        "session_id",
        "cost_usd",
        "duration_ms",
        "num_turns",
        "error",
        "error_type",
        "denied_tools",
        "hint",
        "budget_exceeded",
        "parsed_result",
    ] {
        if let Some(v) = full.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Persists `result` as a finished job and returns the reference payload.
pub fn store_ref(
    ctx: &ToolCtx,
    ask: &Ask,
    result: &DispatchResult,
    summary_chars: usize,
) -> Result<Value, ToolError> {
    let store = ctx.server.jobs()?;
    let job = store
        .create_completed(
            &result.agent,
            &ask.task,
            ask.context.as_deref(),
            ask.caller.as_deref(),
            ask.goal.as_deref(),
            result,
        )
        .map_err(store_error)?;
    Ok(ref_payload(&job.id, result, summary_chars))
}

pub fn dispatch_async(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let call = Call::from_args(args)?;
    let (config, agent) = call.resolve(ctx)?;
    let req = call.request(agent, &config.settings);
    let store = ctx.server.jobs()?;
    let ask = &call.ask;
    let (job, owner) = store
        .create(NewJob {
            agent: call.name.clone(),
            task: ask.task.clone(),
            context: ask.context.clone(),
            caller: ask.caller.clone(),
            goal: ask.goal.clone(),
            response_format: ask.response_format.clone(),
            timeout: Some(claude::effective_timeout(&req.agent, &req.settings)),
        })
        .map_err(store_error)?;
    let server = ctx.server.clone();
    let started = ctx.server.spawn_job(&job.id, move || {
        let outcome = jobs::run_job(owner, &server.limiter, server.stopping(), |hooks| {
            claude::run(&req, OutputMode::Stream, hooks)
        });
        if let Err(e) = outcome {
            crate::log::error(&format!("async job failed to record its outcome: {e}"));
        }
    });
    if let Err(e) = started {
        // The owner guard went down with the closure; mark the job so it is not left pending.
        let _ = store.fail(&job.id, &format!("Could not start a worker thread: {e}"));
        return Err(ToolError::new(format!(
            "could not start a worker thread: {e}"
        )));
    }
    let name = &call.name;
    ctx.log(&format!("Started async dispatch {} to {name}", job.id));
    Ok(json!({ "job_id": job.id, "status": "pending", "agent": name }))
}

fn read_job(store: &JobStore, id: &str, label: &str) -> Result<jobs::Job, ToolError> {
    store
        .get(id)
        .map_err(store_error)?
        .ok_or_else(|| not_found(label, id))
}

pub fn dispatch_status(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "job_id")?;
    let store = ctx.server.jobs()?;
    Ok(read_job(&store, &id, "Job")?.to_json())
}

pub fn dispatch_wait(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "job_id")?;
    let secs = args.int("timeout_seconds")?.clamp(1, 3600);
    let store = ctx.server.jobs()?;
    let deadline = Instant::now() + Duration::from_secs(secs as u64);
    // Wait in slices so a cancelled request (or shutdown) stops waiting promptly; a job that
    // finishes in this process wakes the wait at once.
    let mut last_beat = Instant::now();
    let job = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let job = store
            .wait(&id, left.min(Duration::from_secs(1)))
            .map_err(store_error)?;
        let job = job.ok_or_else(|| not_found("Job", &id))?;
        if job.status.is_terminal() || left.is_zero() || ctx.cancel.is_tripped() {
            break job;
        }
        // Keep a progress-tracking client from giving up on a long wait.
        if last_beat.elapsed() >= ctx.server.heartbeat {
            last_beat = Instant::now();
            let latest = job
                .progress
                .as_ref()
                .and_then(|p| p.last())
                .map(String::as_str)
                .unwrap_or("");
            ctx.progress_only(&format!("job {id} still {}: {latest}", job.status.as_str()));
        }
    };
    let mut out = job.to_json();
    if !job.status.is_terminal() {
        out["timed_out_waiting"] = json!(true);
        ctx.log(&format!(
            "dispatch_wait timed out for {id} after {secs}s (job still {})",
            job.status.as_str()
        ));
    }
    Ok(out)
}

pub fn dispatch_cancel(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "job_id")?;
    let store = ctx.server.jobs()?;
    let outcome = store.cancel(&id).map_err(store_error)?;
    let Some(status) = outcome.status() else {
        return Err(not_found("Job", &id));
    };
    ctx.log(&format!("Cancel {id}: {}", outcome.as_str()));
    Ok(json!({ "job_id": id, "outcome": outcome.as_str(), "status": status.as_str() }))
}

pub fn dispatch_jobs(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let filter = Status::parse_filter(&args.string("status")?).map_err(ToolError::new)?;
    let limit = args.int("limit")?.clamp(1, 1000) as usize;
    let store = ctx.server.jobs()?;
    let listing = store.list(filter).map_err(store_error)?;
    if !listing.skipped.is_empty() {
        let names: Vec<String> = listing
            .skipped
            .iter()
            .map(|(f, why)| format!("{f} ({why})"))
            .collect();
        ctx.log(&format!(
            "Skipped {} unreadable file(s) in the jobs directory: {}",
            names.len(),
            names.join(", ")
        ));
    }
    Ok(Value::Array(
        listing.jobs.iter().take(limit).map(jobs::summary).collect(),
    ))
}

pub fn fetch_result(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "ref")?;
    let max_chars = args.int("max_chars")?;
    let store = ctx.server.jobs()?;
    Ok(jobs::fetch_view(&read_job(&store, &id, "Ref")?, max_chars))
}

pub fn dispatch_gc(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let days = args.number("max_age_days")?;
    if days.is_nan() || days <= 0.0 {
        return Err(ToolError::new("max_age_days must be > 0"));
    }
    let secs = days * 86_400.0;
    if !secs.is_finite() {
        return Err(ToolError::new("max_age_days is too large (non-finite)"));
    }
    let store = ctx.server.jobs()?;
    let purged = store.gc(secs).map_err(store_error)?;
    ctx.log(&format!(
        "Purged {purged} terminal jobs older than {}d",
        crate::pyfmt::float(days)
    ));
    Ok(json!({ "purged": purged, "max_age_days": days }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_payload_inlines_a_summary_and_never_the_full_text() {
        let r = DispatchResult {
            agent: "db".into(),
            success: true,
            result: "big-db".into(),
            session_id: Some("s".into()),
            cost_usd: Some(0.5),
            ..Default::default()
        };
        let p = ref_payload("ab", &r, 3);
        assert_eq!(p["summary"], "big");
        assert_eq!(p["size"], 6);
        assert_eq!(p["summary_chars"], 3);
        assert_eq!(p["session_id"], "s");
        assert!(p.get("result").is_none());
        let p = ref_payload("ab", &r, 0);
        assert_eq!(
            (p["summary"].as_str(), p["summary_chars"].as_u64()),
            (Some(""), Some(0))
        );
    }
}
