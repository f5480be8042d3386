//! The job tools: `dispatch_async`, `dispatch_status`, `dispatch_wait`, `dispatch_cancel`,
//! `dispatch_jobs`, `fetch_result` and `dispatch_gc` (SPEC §7.5 tools 11–17). Starting and
//! waiting are `app::background`'s; the rest are reads and writes of the job store. These are
//! thin adapters.

use std::time::Duration;

use serde_json::{Value, json};

use super::ask::Call;
use super::{Args, ToolCtx, ToolError, ToolResult};
use crate::app::{Observer, background};
use crate::jobs::{self, JobStore, Status};

fn store_error(e: jobs::Error) -> ToolError {
    ToolError::from_store(e)
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

pub fn dispatch_async(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let mut call = Call::from_args(args)?;
    let target = call.target(ctx)?;
    let id = background::start(ctx.app(), target, call.ask)?;
    let name = &call.name;
    ctx.log(&format!("Started async dispatch {id} to {name}"));
    Ok(json!({ "job_id": id, "status": "pending", "agent": name }))
}

fn read_job(store: &JobStore, id: &str, label: &str) -> Result<jobs::Job, ToolError> {
    store
        .get(id)
        .map_err(store_error)?
        .ok_or_else(|| not_found(label, id))
}

pub fn dispatch_status(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "job_id")?;
    let store = ctx.app().jobs()?;
    Ok(read_job(&store, &id, "Job")?.to_json())
}

pub fn dispatch_wait(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "job_id")?;
    let secs = args.int("timeout_seconds")?.clamp(1, 3600);
    let waited = background::wait(ctx.app(), &id, Duration::from_secs(secs as u64), ctx)?;
    let mut out = waited.job.to_json();
    if waited.timed_out {
        out["timed_out_waiting"] = json!(true);
        ctx.log(&format!(
            "dispatch_wait timed out for {id} after {secs}s (job still {})",
            waited.job.status.as_str()
        ));
    }
    Ok(out)
}

pub fn dispatch_cancel(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "job_id")?;
    let store = ctx.app().jobs()?;
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
    let agent = args.opt_string("agent")?;
    let store = ctx.app().jobs()?;
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
        listing
            .jobs
            .iter()
            .filter(|j| agent.as_ref().is_none_or(|a| j.agent == *a))
            .take(limit)
            .map(jobs::summary)
            .collect(),
    ))
}

pub fn fetch_result(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let id = checked_id(args, "ref")?;
    let max_chars = args.int("max_chars")?;
    let store = ctx.app().jobs()?;
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
    let store = ctx.app().jobs()?;
    if args.boolean("dry_run")? {
        // What `gc` would take: terminal jobs finished before the cutoff. Nothing is deleted.
        let cutoff = jobs::model::now() - secs;
        let listing = store.list(None).map_err(store_error)?;
        let ids: Vec<&str> = listing
            .jobs
            .iter()
            .filter(|j| j.status.is_terminal() && j.finished_or_created() < cutoff)
            .map(|j| j.id.as_str())
            .collect();
        return Ok(json!({
            "dry_run": true,
            "would_purge": ids.len(),
            "job_ids": ids,
            "max_age_days": days,
        }));
    }
    let purged = store.gc(secs).map_err(store_error)?;
    ctx.log(&format!(
        "Purged {purged} terminal jobs older than {}d",
        crate::pyfmt::float(days)
    ));
    Ok(json!({ "purged": purged, "max_age_days": days }))
}
