//! The job commands of the CLI: `jobs`, `job ID`, `cancel ID` and `gc`. Each has a
//! `CommandSpec` with its `HELP_*` text and a lexopt parser called after the subcommand word;
//! one `run` executes a parsed command against the jobs directory and prints through `Io`. The
//! storage rules live in `jobs`; this file only parses and formats.

use std::io;
use std::path::Path;
use std::time::Duration;

use lexopt::prelude::*;

use super::jobs_view::{local_time, one_line, render_job};
use super::{
    Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, help, int_in_range, option_with, print_json,
};
use crate::config;
use crate::jobs::{self, CancelOutcome, Job, JobStore, Status, summary, valid_id};

pub const JOBS: CommandSpec = CommandSpec {
    name: "jobs",
    summary: "List async jobs and stored results",
    help: HELP_JOBS,
    parse: parse_jobs,
};
pub const JOB: CommandSpec = CommandSpec {
    name: "job",
    summary: "Show one job with its progress and result",
    help: HELP_JOB,
    parse: parse_job,
};
pub const CANCEL: CommandSpec = CommandSpec {
    name: "cancel",
    summary: "Cancel a pending or running job",
    help: HELP_CANCEL,
    parse: parse_cancel,
};
pub const GC: CommandSpec = CommandSpec {
    name: "gc",
    summary: "Delete old finished jobs",
    help: HELP_GC,
    parse: parse_gc,
};

const HELP_JOBS: &str = "\
Usage: agent-dispatch jobs [OPTIONS]

  List async jobs and result references, newest first.

Options:
  --status STATUS  Only jobs in this status: pending, running, done, failed, cancelled.
  --agent NAME     Only jobs of this agent (exact name; removed agents too).
  --limit N        Show at most N jobs (1-1000) [default: 50]
  --json           Print a JSON array of job summaries (as the dispatch_jobs tool returns).
  -h, --help       Show this message and exit.
";

const HELP_JOB: &str = "\
Usage: agent-dispatch job [OPTIONS] ID

  Show one job: its fields, progress tail and a preview of its result.

Options:
  --json      Print the full job record as JSON, result untruncated.
  -h, --help  Show this message and exit.
";

const HELP_CANCEL: &str = "\
Usage: agent-dispatch cancel ID

  Cancel a pending or running job. A running job is marked cancelled first, then its claude
  process is stopped by the server that runs it; this command waits up to 10 s for that.

Options:
  -h, --help  Show this message and exit.
";

const HELP_GC: &str = "\
Usage: agent-dispatch gc [--days N | --all] [--dry-run [--json]]

  Delete finished (done, failed, cancelled) jobs. Pending and running jobs are never deleted.

Options:
  --days N    Delete finished jobs older than N days (must be > 0) [default: 7]
  --all       Delete every finished job, whatever its age.
  --dry-run   List the jobs that would be deleted; delete nothing.
  --json      With --dry-run: print {would_delete, jobs: [summaries]} as JSON.
  -h, --help  Show this message and exit.
";

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;
const DEFAULT_GC_DAYS: f64 = 7.0;
/// Characters of the task the `jobs` table prints.
const TABLE_TASK_CHARS: usize = 60;
/// How long `cancel` waits for the owner of a running job to stop its child.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

/// A parsed job command. Plain data: nothing has touched the disk yet.
#[derive(Clone, Debug, PartialEq)]
pub enum JobsCommand {
    List {
        status: Option<Status>,
        agent: Option<String>,
        limit: usize,
        json: bool,
    },
    Show {
        id: String,
        json: bool,
    },
    Cancel {
        id: String,
    },
    /// `max_age_days: None` is `--all`.
    Gc {
        max_age_days: Option<f64>,
        dry_run: bool,
        json: bool,
    },
}

fn parse_jobs(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut status = None;
    let mut agent = None;
    let mut limit = DEFAULT_LIMIT;
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("status") => {
                let raw: String = p.value()?.string()?;
                status = Status::parse_filter(&raw).map_err(lexopt::Error::from)?;
            }
            Long("agent") => agent = Some(p.value()?.string()?),
            Long("limit") => {
                // The range the help states is the range accepted.
                let n = option_with(p, "--limit", |t| int_in_range(t, 1, MAX_LIMIT as i64))?;
                limit = usize::try_from(n).unwrap_or(DEFAULT_LIMIT);
            }
            Long("json") => json = true,
            Short('h') | Long("help") => return Ok(help(&JOBS)),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Jobs(JobsCommand::List {
        status,
        agent,
        limit,
        json,
    }))
}

/// Reads the one ID argument and checks its format before anything touches the disk; the
/// command is `make(id)`, or the help of `spec`.
fn parse_id(
    p: &mut lexopt::Parser,
    spec: &CommandSpec,
    make: fn(String, bool) -> JobsCommand,
) -> Result<Command, lexopt::Error> {
    let mut id = None;
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Value(v) if id.is_none() => id = Some(v.string()?),
            // Only `job` lists --json in its help; `cancel` refuses it like any unknown option.
            Long("json") if spec.name == JOB.name => json = true,
            Short('h') | Long("help") => return Ok(help(spec)),
            _ => return Err(arg.unexpected()),
        }
    }
    let id = id.ok_or_else(|| lexopt::Error::from("missing argument ID".to_string()))?;
    if !valid_id(&id) {
        return Err(jobs::Error::InvalidId(id).to_string().into());
    }
    Ok(Command::Jobs(make(id, json)))
}

fn parse_job(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    parse_id(p, &JOB, |id, json| JobsCommand::Show { id, json })
}

fn parse_cancel(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    parse_id(p, &CANCEL, |id, _| JobsCommand::Cancel { id })
}

fn parse_gc(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut days = None;
    let mut all = false;
    let mut dry_run = false;
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("days") => {
                let d = option_with(p, "--days", |t| {
                    t.trim()
                        .parse::<f64>()
                        .map_err(|_| format!("'{t}' is not a valid number of days."))
                })?;
                days = Some(d);
            }
            Long("all") => all = true,
            Long("dry-run") => dry_run = true,
            Long("json") => json = true,
            Short('h') | Long("help") => return Ok(help(&GC)),
            _ => return Err(arg.unexpected()),
        }
    }
    if json && !dry_run {
        return Err("--json needs --dry-run (a real gc prints one line)"
            .to_string()
            .into());
    }
    let gc = |max_age_days| {
        Ok(Command::Jobs(JobsCommand::Gc {
            max_age_days,
            dry_run,
            json,
        }))
    };
    match (days, all) {
        (Some(_), true) => Err("--days and --all can not be combined".to_string().into()),
        (None, true) => gc(None),
        (Some(d), false) if d.is_nan() || d <= 0.0 => Err(
            "--days must be > 0 (use --all to delete every finished job)"
                .to_string()
                .into(),
        ),
        (Some(d), false) if !(d * 86_400.0).is_finite() => {
            Err("--days is too large".to_string().into())
        }
        (d, false) => gc(Some(d.unwrap_or(DEFAULT_GC_DAYS))),
    }
}

/// Runs `cmd` against the jobs directory of the configured `agents.yaml`; returns the exit code
/// (0 ok, 1 failed).
pub fn run(io: &mut Io, cmd: &JobsCommand) -> io::Result<u8> {
    let dir = config::jobs_dir(&config::config_path());
    run_in(io, cmd, &dir)
}

fn run_in(io: &mut Io, cmd: &JobsCommand, dir: &Path) -> io::Result<u8> {
    let as_json = matches!(
        cmd,
        JobsCommand::List { json: true, .. }
            | JobsCommand::Show { json: true, .. }
            | JobsCommand::Gc { json: true, .. }
    );
    // A script reading --json gets its error as JSON too.
    let fail = |io: &mut Io, message: &str| {
        if as_json {
            print_json(io, &serde_json::json!({ "error": message }))?;
            return Ok(EXIT_ERROR);
        }
        fail(io, message)
    };
    let store = match JobStore::open(dir) {
        Ok(s) => s,
        Err(e) => return fail(io, &e.to_string()),
    };
    let done = match cmd {
        JobsCommand::List {
            status,
            agent,
            limit,
            json,
        } => {
            let filter = ListFilter {
                status: *status,
                agent: agent.as_deref(),
                limit: *limit,
            };
            if *json {
                list_json(io, &store, &filter)
            } else {
                list(io, &store, &filter)
            }
        }
        JobsCommand::Show { id, json } => show(io, &store, id, *json),
        JobsCommand::Cancel { id } => cancel(io, &store, id),
        JobsCommand::Gc {
            max_age_days,
            dry_run: false,
            ..
        } => gc(io, &store, *max_age_days),
        JobsCommand::Gc {
            max_age_days,
            dry_run: true,
            json,
        } => gc_dry_run(io, &store, *max_age_days, *json),
    };
    match done {
        Ok(code) => Ok(code),
        Err(Failure::Store(e)) => fail(io, &e.to_string()),
        Err(Failure::Output(e)) => Err(e),
    }
}

/// Why a job command stopped early: the store failed (reported as `Error: …`, exit 1), or its
/// output could not be written (left to `cli::main`'s policy).
enum Failure {
    Store(jobs::Error),
    Output(io::Error),
}

impl From<jobs::Error> for Failure {
    fn from(e: jobs::Error) -> Self {
        Failure::Store(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

fn fail(io: &mut Io, message: &str) -> io::Result<u8> {
    io.error(&format!("Error: {message}"))?;
    Ok(EXIT_ERROR)
}

/// Which jobs `jobs` shows.
struct ListFilter<'a> {
    status: Option<Status>,
    agent: Option<&'a str>,
    limit: usize,
}

/// The jobs matching `filter`, newest first, uncut; skipped files are warned about on stderr.
fn matching(io: &mut Io, store: &JobStore, filter: &ListFilter) -> Result<Vec<Job>, Failure> {
    let listing = store.list(filter.status)?;
    for (name, reason) in &listing.skipped {
        io.warn(&format!(
            "Warning: skipped {}: {reason}",
            store.dir().join(name).display()
        ))?;
    }
    Ok(listing
        .jobs
        .into_iter()
        .filter(|j| filter.agent.is_none_or(|a| j.agent == a))
        .collect())
}

fn list_json(io: &mut Io, store: &JobStore, filter: &ListFilter) -> Result<u8, Failure> {
    let jobs = matching(io, store, filter)?;
    let shown: Vec<serde_json::Value> = jobs.iter().take(filter.limit).map(summary).collect();
    print_json(io, &shown)?;
    Ok(EXIT_OK)
}

fn list(io: &mut Io, store: &JobStore, filter: &ListFilter) -> Result<u8, Failure> {
    let jobs = matching(io, store, filter)?;
    let limit = filter.limit;
    if jobs.is_empty() {
        match filter.status {
            Some(s) => io.say(&format!("No {s} jobs."))?,
            None => io.say("No jobs.")?,
        }
        return Ok(EXIT_OK);
    }
    let shown = &jobs[..jobs.len().min(limit)];
    let agent_width = shown
        .iter()
        .map(|j| j.agent.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    writeln!(
        io.out,
        "{:<32}  {:<9}  {:<agent_width$}  {:<19}  TASK",
        "ID", "STATUS", "AGENT", "CREATED"
    )?;
    for j in shown {
        writeln!(
            io.out,
            "{:<32}  {:<9}  {:<agent_width$}  {:<19}  {}",
            j.id,
            j.status.as_str(),
            j.agent,
            local_time(j.created_at),
            one_line(&j.task, TABLE_TASK_CHARS)
        )?;
    }
    if jobs.len() > shown.len() {
        io.say(&format!(
            "({} more; use --limit to see them)",
            jobs.len() - shown.len()
        ))?;
    }
    Ok(EXIT_OK)
}

fn show(io: &mut Io, store: &JobStore, id: &str, as_json: bool) -> Result<u8, Failure> {
    let Some(job) = store.get(id)? else {
        if as_json {
            print_json(
                io,
                &serde_json::json!({"error": format!("Job not found: {id}")}),
            )?;
            return Ok(EXIT_ERROR);
        }
        return Ok(fail(io, &format!("Job not found: {id}"))?);
    };
    if as_json {
        print_json(io, &job.to_json())?;
        return Ok(EXIT_OK);
    }
    io.out
        .write_all(render_job(&job, store.owned(id)?).as_bytes())?;
    Ok(EXIT_OK)
}
fn cancel(io: &mut Io, store: &JobStore, id: &str) -> Result<u8, Failure> {
    match store.cancel(id)? {
        CancelOutcome::NotFound => return Ok(fail(io, &format!("Job not found: {id}"))?),
        CancelOutcome::Cancelled => io.say(&format!("Cancelled pending job {id}."))?,
        CancelOutcome::CancelledRunning => {
            if store.wait_released(id, CANCEL_WAIT)? {
                io.say(&format!(
                    "Cancelled running job {id}; its process has stopped."
                ))?;
            } else {
                io.warn(&format!(
                    "Warning: the server running job {id} has not stopped it after {}s.",
                    CANCEL_WAIT.as_secs()
                ))?;
                io.say(&format!("Cancelled running job {id}."))?;
            }
        }
        CancelOutcome::AlreadyTerminal(s) => {
            io.say(&format!("Job {id} is already {s}; nothing to cancel."))?;
        }
    }
    Ok(EXIT_OK)
}

fn gc(io: &mut Io, store: &JobStore, max_age_days: Option<f64>) -> Result<u8, Failure> {
    let n = store.gc(max_age_days.map_or(0.0, |d| d * 86_400.0))?;
    let noun = if n == 1 { "job" } else { "jobs" };
    match max_age_days {
        Some(d) => io.say(&format!("Purged {n} finished {noun} older than {d} days."))?,
        None => io.say(&format!("Purged {n} finished {noun}."))?,
    }
    Ok(EXIT_OK)
}

/// `gc --dry-run`: the jobs `gc` would delete, by the store's own rule (finished, and finished
/// or created before the cutoff; `--all`: every finished job).
fn gc_dry_run(
    io: &mut Io,
    store: &JobStore,
    max_age_days: Option<f64>,
    as_json: bool,
) -> Result<u8, Failure> {
    let cutoff = max_age_days.map(|d| jobs::model::now() - d * 86_400.0);
    let listing = store.list(None)?;
    let doomed: Vec<&Job> = listing
        .jobs
        .iter()
        .filter(|j| j.status.is_terminal() && cutoff.is_none_or(|c| j.finished_or_created() < c))
        .collect();
    if as_json {
        let jobs: Vec<serde_json::Value> = doomed.iter().map(|j| summary(j)).collect();
        print_json(
            io,
            &serde_json::json!({"would_delete": doomed.len(), "jobs": jobs}),
        )?;
        return Ok(EXIT_OK);
    }
    for j in &doomed {
        io.say(&format!(
            "{}  {}  {}  {}",
            j.id,
            j.status.as_str(),
            j.agent,
            one_line(&j.task, TABLE_TASK_CHARS)
        ))?;
    }
    let noun = if doomed.len() == 1 { "job" } else { "jobs" };
    io.say(&format!(
        "Would delete {} finished {noun}. No jobs deleted.",
        doomed.len()
    ))?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job command, or `Err` with the usage error (or the help text, prefixed `help:`).
    fn parse(
        f: fn(&mut lexopt::Parser) -> Result<Command, lexopt::Error>,
        args: &[&str],
    ) -> Result<JobsCommand, String> {
        let mut p = lexopt::Parser::from_args(args.iter().copied());
        match f(&mut p).map_err(|e| e.to_string())? {
            Command::Jobs(cmd) => Ok(cmd),
            Command::Help(text) => Err(format!("help:{text}")),
            other => Err(format!("not a job command: {other:?}")),
        }
    }

    #[test]
    fn jobs_flags() {
        let list = |status, agent: Option<&str>, limit, json| JobsCommand::List {
            status,
            agent: agent.map(str::to_string),
            limit,
            json,
        };
        assert_eq!(parse(parse_jobs, &[]), Ok(list(None, None, 50, false)));
        assert_eq!(
            parse(
                parse_jobs,
                &["--status", "Running", "--limit=7", "--agent", "a", "--json"]
            ),
            Ok(list(Some(Status::Running), Some("a"), 7, true))
        );
        // The range the help states is enforced, and the error names the option.
        for bad in ["0", "1001", "-10", "x"] {
            let e = parse(parse_jobs, &["--limit", bad]).unwrap_err();
            assert!(e.starts_with("Invalid value for '--limit': "), "{e}");
        }
        assert!(
            parse(parse_jobs, &["--limit", "0"])
                .unwrap_err()
                .contains("1<=x<=1000")
        );
        assert!(
            parse(parse_jobs, &["--status", "bogus"])
                .unwrap_err()
                .contains("Invalid status: 'bogus'")
        );
        assert!(parse(parse_jobs, &["extra"]).is_err());
        assert_eq!(parse(parse_jobs, &["-h"]), Err(format!("help:{HELP_JOBS}")));
    }

    #[test]
    fn ids_are_checked_at_parse_time() {
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            parse(parse_job, &[id]),
            Ok(JobsCommand::Show {
                id: id.into(),
                json: false
            })
        );
        assert_eq!(
            parse(parse_job, &[id, "--json"]),
            Ok(JobsCommand::Show {
                id: id.into(),
                json: true
            })
        );
        assert!(parse(parse_cancel, &[id, "--json"]).is_err());
        assert_eq!(
            parse(parse_cancel, &[id]),
            Ok(JobsCommand::Cancel { id: id.into() })
        );
        let upper = id.to_uppercase();
        for bad in ["../x", upper.as_str()] {
            let e = parse(parse_cancel, &[bad]).unwrap_err();
            assert!(e.contains("Invalid ref/job_id format"), "{e}");
        }
        assert!(
            parse(parse_job, &[])
                .unwrap_err()
                .contains("missing argument ID")
        );
        assert!(parse(parse_job, &[id, id]).is_err());
        assert_eq!(
            parse(parse_cancel, &["--help"]),
            Err(format!("help:{HELP_CANCEL}"))
        );
    }

    #[test]
    fn gc_flags() {
        let gc = |max_age_days, dry_run, json| JobsCommand::Gc {
            max_age_days,
            dry_run,
            json,
        };
        assert_eq!(parse(parse_gc, &[]), Ok(gc(Some(7.0), false, false)));
        assert_eq!(
            parse(parse_gc, &["--days", "0.5"]),
            Ok(gc(Some(0.5), false, false))
        );
        assert_eq!(
            parse(parse_gc, &["--all", "--dry-run", "--json"]),
            Ok(gc(None, true, true))
        );
        assert!(
            parse(parse_gc, &["--json"])
                .unwrap_err()
                .contains("--dry-run")
        );
        assert!(
            parse(parse_gc, &["--days", "x"])
                .unwrap_err()
                .contains("Invalid value for '--days'")
        );
        for refused in [&["--days", "0"][..], &["--days=-1"], &["--days", "NaN"]] {
            assert!(
                parse(parse_gc, refused)
                    .unwrap_err()
                    .contains("must be > 0")
            );
        }
        assert!(
            parse(parse_gc, &["--days", "1e308"])
                .unwrap_err()
                .contains("too large")
        );
        assert!(parse(parse_gc, &["--days", "3", "--all"]).is_err());
    }
}
