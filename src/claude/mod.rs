//! Running one dispatch: pre-flight checks (SPEC §5.1), the `claude` command line, the
//! supervised child process and the parsing of its output into a `DispatchResult`.
//!
//! The entry point is `run(&DispatchRequest, OutputMode, Hooks) -> DispatchResult`. It never
//! panics and never returns before the child (and its whole process group) has been reaped, so a
//! caller holding a `limiter::Permit` across the call holds it exactly as long as the child lives.
//!
//! Two of its rules are shared with other modules so they exist once: `find_on_path` (the CLI
//! looks up `claude` and itself the same way) and `effective_timeout` (job records store it).

pub mod argv;
pub mod output;


use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::cancel::Cancel;
use crate::config::{AgentConfig, Settings};
use crate::log;
use crate::result::{DispatchResult, ErrorType};

use argv::{ClaudeArgs, SessionArg};
use output::{Ctx, StreamLine};
use crate::process::{ChildSpec, Outcome, StdoutMode, Supervised};

/// One dispatch to one agent, fully resolved (timeout override already applied to `agent`).
#[derive(Clone, Debug)]
pub struct DispatchRequest {
    pub agent_name: String,
    pub agent: AgentConfig,
    pub settings: Settings,
    pub task: String,
    pub context: Option<String>,
    pub caller: Option<String>,
    pub goal: Option<String>,
    pub response_format: Option<String>,
    /// Resume this session with `--resume`; `None` starts a fresh one with `--session-id`.
    pub resume_session: Option<String>,
}

impl DispatchRequest {
    pub fn new(agent_name: &str, agent: AgentConfig, settings: Settings, task: &str) -> Self {
        DispatchRequest {
            agent_name: agent_name.to_string(),
            agent,
            settings,
            task: task.to_string(),
            context: None,
            caller: None,
            goal: None,
            response_format: None,
            resume_session: None,
        }
    }
}

/// `--output-format json` (one document at exit) or `stream-json --verbose` (live events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    Json,
    Stream,
}

/// Optional ways for the caller to observe and stop a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Tripping it kills the child's process group; the result then has `error_type: cancelled`.
    pub cancel: Option<&'a Cancel>,
    /// Stream mode: called with each progress line the moment the child emits it.
    pub on_progress: Option<&'a mut dyn FnMut(&str)>,
    /// Called once per spawned child with its pid (which is also its process-group id).
    pub on_spawn: Option<&'a mut dyn FnMut(u32)>,
}

/// The environment variable that carries the dispatch depth across processes (SPEC §10).
pub const DEPTH_VAR: &str = "AGENT_DISPATCH_DEPTH";

/// Runs one dispatch to completion. Never panics; returns only after the child's process group
/// has been killed or has exited and the leader has been reaped.
pub fn run(req: &DispatchRequest, mode: OutputMode, mut hooks: Hooks<'_>) -> DispatchResult {
    let name = req.agent_name.as_str();

    // SPEC §5.1, in this order: depth, `claude` on PATH, directory, argv.
    let depth = match current_depth() {
        Ok(d) => d,
        Err(e) => return DispatchResult::failure(name, ErrorType::Recursion, e),
    };
    let max = i64::from(req.settings.max_dispatch_depth);
    if depth >= max {
        return DispatchResult::failure(
            name,
            ErrorType::Recursion,
            format!(
                "Dispatch depth {depth} >= max {max}. Agents appear to be dispatching to each other in a loop (A -> B -> A) or nesting too deeply; refusing to start another claude. Raise settings.max_dispatch_depth in agents.yaml if this nesting is intended."
            ),
        );
    }
    let Some(claude) = find_on_path("claude") else {
        return DispatchResult::failure(
            name,
            ErrorType::NotFound,
            "Claude CLI not found in PATH. Install: https://docs.anthropic.com/en/docs/claude-code",
        );
    };
    let dir = &req.agent.directory;
    if !dir.is_dir() {
        return DispatchResult::failure(
            name,
            ErrorType::NotFound,
            format!("Directory does not exist: {}", dir.display()),
        );
    }

    let prompt = argv::build_prompt(
        &req.task,
        req.context.as_deref(),
        req.caller.as_deref(),
        req.goal.as_deref(),
        req.response_format.as_deref(),
    );
    let session = match req.resume_session.as_deref() {
        Some(id) if !id.is_empty() => SessionArg::Resume(id.to_string()),
        // Pre-generated so that a run that times out can still be resumed (SPEC §5.3).
        _ => SessionArg::Fresh(uuid::Uuid::new_v4().to_string()),
    };
    let mut args = match argv::build_args(&prompt, &session, &req.agent, &req.settings, mode) {
        Ok(a) => a,
        Err(e) => return DispatchResult::failure(name, ErrorType::CliError, e.to_string()),
    };
    let (SessionArg::Resume(id) | SessionArg::Fresh(id)) = &session;
    let mut session_id = Some(id.clone());
    let timeout_secs = effective_timeout(&req.agent, &req.settings);
    let child_depth = (depth.max(-1) + 1).to_string();
    let budget = argv::effective_budget(&req.agent, &req.settings);

    // At most two attempts: the second only for a CLI that predates `--session-id`
    // (SPEC §5.5, §12 item 14).
    let mut retried = false;
    loop {
        let ctx = Ctx {
            agent: name,
            session_id: session_id.as_deref(),
            want_json: req.response_format.as_deref() == Some("json"),
            budget,
        };
        let attempt = Attempt {
            claude: &claude,
            args: &args,
            dir,
            depth: &child_depth,
            timeout_secs,
            mode,
        };
        match attempt.run(&ctx, &mut hooks) {
            Ran::Done(result) => return result,
            Ran::OldCli(result) => {
                if retried || !args.has_session_id() {
                    return result;
                }
                log::warn(&format!(
                    "claude rejected --session-id (old CLI?); retrying agent '{name}' once without it; this run will not be resumable after a timeout"
                ));
                retried = true;
                args = args.without_session_id();
                session_id = None;
            }
        }
    }
}

/// `AGENT_DISPATCH_DEPTH` of this process (`depth::parse_depth`: fails closed on a malformed
/// value, with the message for a `recursion` failure).
fn current_depth() -> Result<i64, String> {
    crate::depth::parse_depth(std::env::var_os(DEPTH_VAR).as_deref()).map(i64::from)
}

/// The timeout a run of `agent` gets, in seconds: its own, else `settings.default_timeout` when
/// 0, never below 1. Job records store this same number, so they show what the child got.
pub fn effective_timeout(agent: &AgentConfig, settings: &Settings) -> u64 {
    let t = if agent.timeout == 0 {
        settings.default_timeout
    } else {
        agent.timeout
    };
    t.max(1)
}

/// The first executable `name` on `PATH`, as an absolute path (it becomes argv[0]).
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        // An empty PATH entry means the current directory.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            if candidate.is_absolute() {
                return Some(candidate);
            }
            return std::env::current_dir().ok().map(|cwd| cwd.join(candidate));
        }
    }
    None
}

/// One spawn of `claude`.
struct Attempt<'a> {
    claude: &'a Path,
    args: &'a ClaudeArgs,
    dir: &'a Path,
    depth: &'a str,
    timeout_secs: u64,
    mode: OutputMode,
}

enum Ran {
    Done(DispatchResult),
    /// The CLI refused `--session-id` as unknown; the result is what to return if no retry.
    OldCli(DispatchResult),
}

impl Attempt<'_> {
    fn run(&self, ctx: &Ctx<'_>, hooks: &mut Hooks<'_>) -> Ran {
        let env = [(DEPTH_VAR, self.depth.to_string())];
        let spec = ChildSpec {
            program: self.claude,
            args: &self.args.args,
            cwd: self.dir,
            env: &env,
        };
        let stdout_mode = match self.mode {
            OutputMode::Json => StdoutMode::Whole,
            OutputMode::Stream => StdoutMode::Lines,
        };
        let child = match Supervised::spawn(&spec, stdout_mode) {
            Ok(c) => c,
            Err(e) => return Ran::Done(spawn_failure(ctx.agent, self.claude, &e)),
        };
        if let Some(cb) = hooks.on_spawn.as_mut() {
            cb(child.pid());
        }
        // A timeout too large for the clock (a hand-written `timeout: 18446744073709551615`)
        // means "no practical limit", not a panic.
        let now = Instant::now();
        let deadline = now
            .checked_add(Duration::from_secs(self.timeout_secs))
            .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)));
        let mut last_result: Option<Map<String, Value>> = None;
        let on_progress = &mut hooks.on_progress;
        let mut on_line = |line: &[u8]| match output::parse_stream_line(line) {
            StreamLine::Progress(lines) => {
                if let Some(cb) = on_progress.as_mut() {
                    for l in &lines {
                        cb(l);
                    }
                }
            }
            StreamLine::Result(obj) => last_result = Some(obj),
            StreamLine::Ignored => {}
        };
        let finished = child.wait(deadline, hooks.cancel, &mut on_line);

        let killed = finished.outcome != Outcome::Exited;
        let result = match self.mode {
            // A killed child counts only if it had already printed a whole answer; that one
            // parse is also the answer's parse.
            OutputMode::Json if killed => json_object_answer(&finished.stdout)
                .map(|obj| output::from_result_object(ctx, &obj, Some(finished.code))),
            OutputMode::Json => {
                let old_cli = finished.code != 0
                    && finished.stdout.trim_ascii().is_empty()
                    && output::is_old_cli_rejection(&finished.stderr);
                let r = output::finish_json(ctx, finished.code, &finished.stdout, &finished.stderr);
                if old_cli {
                    return Ran::OldCli(r);
                }
                Some(r)
            }
            OutputMode::Stream => {
                if killed && last_result.is_none() {
                    None
                } else {
                    let old_cli = !killed
                        && last_result.is_none()
                        && finished.code != 0
                        && output::is_old_cli_rejection(&finished.stderr);
                    let r = output::finish_stream(
                        ctx,
                        finished.code,
                        last_result.as_ref(),
                        &finished.stderr,
                    );
                    if old_cli {
                        return Ran::OldCli(r);
                    }
                    Some(r)
                }
            }
        };
        Ran::Done(match (finished.outcome, result) {
            (Outcome::Cancelled, _) => output::cancelled_result(ctx.agent, ctx.session_id),
            (Outcome::TimedOut, Some(r)) => output::answered_before_kill(r, self.timeout_secs),
            (Outcome::TimedOut, None) => {
                output::timeout_result(ctx.agent, self.timeout_secs, ctx.session_id)
            }
            (Outcome::Exited, Some(r)) => r,
            // Unreachable by construction (an exited child always has a result), but a
            // result must be produced without panicking.
            (Outcome::Exited, None) => DispatchResult::failure(
                ctx.agent,
                ErrorType::CliError,
                format!("claude exited with code {}", finished.code),
            ),
        })
    }
}

/// The JSON object stdout holds, if it is one complete object: an answer that arrived before a
/// kill. Decoded and trimmed as `output::finish_json` does, so both read the same answer.
fn json_object_answer(stdout: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(String::from_utf8_lossy(stdout).trim()) {
        // An init event or other JSON is no answer: the kill stays a timeout.
        Ok(Value::Object(obj)) if output::is_complete_answer(&obj) => Some(obj),
        _ => None,
    }
}

/// SPEC §5.6 / §12 item 11: spawn failures are classified the same way in both modes.
fn spawn_failure(agent: &str, program: &Path, e: &std::io::Error) -> DispatchResult {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => ErrorType::NotFound,
        std::io::ErrorKind::PermissionDenied => ErrorType::Permission,
        _ => ErrorType::CliError,
    };
    let mut error = format!("Failed to start {}: {e}", program.display());
    if e.raw_os_error() == Some(libc::E2BIG) {
        // The prompt travels as one argv element, which Linux caps at 128 KiB; a caller that
        // only sees "Argument list too long" cannot tell what to change.
        error.push_str(PROMPT_TOO_LONG);
    }
    DispatchResult::failure(agent, kind, error)
}

/// Appended to a spawn failure with E2BIG.
pub const PROMPT_TOO_LONG: &str = ". The prompt (task, context and goal) is too long for one \
    command-line argument (Linux allows 128 KiB). Send a shorter task, or write the material to \
    a file in the agent's directory and ask the agent to read it.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_falls_back_to_settings() {
        let mut a = AgentConfig::new(PathBuf::from("/"));
        let s = Settings {
            default_timeout: 42,
            ..Settings::default()
        };
        assert_eq!(effective_timeout(&a, &s), 300);
        a.timeout = 0;
        assert_eq!(effective_timeout(&a, &s), 42);
    }

    #[test]
    fn path_lookup_finds_sh() {
        assert!(find_on_path("sh").is_some_and(|p| p.is_absolute()));
        assert!(find_on_path("definitely-not-a-real-program-xyz").is_none());
    }

    #[test]
    fn spawn_errors_are_classified() {
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        let r = spawn_failure("a", Path::new("/x/claude"), &nf);
        assert_eq!(r.error_type, Some(ErrorType::NotFound));
        assert!(
            r.error
                .unwrap_or_default()
                .starts_with("Failed to start /x/claude: ")
        );
        let pd = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            spawn_failure("a", Path::new("c"), &pd).error_type,
            Some(ErrorType::Permission)
        );
        let big = std::io::Error::from_raw_os_error(libc::E2BIG);
        let r = spawn_failure("a", Path::new("c"), &big);
        assert!(r.error.unwrap_or_default().ends_with(PROMPT_TOO_LONG));
        let other = std::io::Error::other("weird");
        assert_eq!(
            spawn_failure("a", Path::new("c"), &other).error_type,
            Some(ErrorType::CliError)
        );
    }

    #[test]
    fn json_answer_detection() {
        assert!(json_object_answer(b" {\"result\": \"x\"}\n").is_some());
        assert!(json_object_answer(b"{\"type\": \"system\"}").is_none());
        assert!(json_object_answer(b"{\"result\": ").is_none());
        assert!(json_object_answer(b"").is_none());
    }
}
