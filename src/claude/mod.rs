//! Running one dispatch: pre-flight checks (SPEC §5.1), the `claude` command line, the
//! supervised child process and the parsing of its output into a `DispatchResult`.
//!
//! The entry point is `run(&Permit, &RunEnv, &DispatchRequest, OutputMode, Hooks)`. Holding a
//! `limiter::Permit` is the price of starting a child, so no path can run one outside the
//! concurrency gate; the child's environment (where `claude` is, the depth it inherits) comes from
//! the injected `RunEnv`, never from this process's variables. `run` never panics and never
//! returns before the child (and its whole process group) has been reaped, so the permit is held
//! exactly as long as the child lives.

pub mod argv;
pub mod output;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::ask::Ask;
use crate::backend::{Backend, CodingCli, Launch};
use crate::cancel::Cancel;
use crate::config::{AgentConfig, Settings};
use crate::log;
use crate::result::{DispatchResult, ErrorType};
pub use crate::runenv::{DEPTH_VAR, find_on_path};

use crate::process::{ChildSpec, Outcome, StdoutMode, Supervised};
use argv::{ClaudeArgs, SessionArg};
use output::{Ctx, StreamLine};

/// One dispatch to one agent, fully resolved (timeout override already applied to `agent`).
#[derive(Clone, Debug)]
pub struct DispatchRequest {
    pub agent_name: String,
    pub agent: AgentConfig,
    pub settings: Settings,
    pub ask: Ask,
    /// Resume this session with `--resume`; `None` starts a fresh one with `--session-id`.
    pub resume_session: Option<String>,
}

impl DispatchRequest {
    pub fn new(agent_name: &str, agent: AgentConfig, settings: Settings, ask: Ask) -> Self {
        DispatchRequest {
            agent_name: agent_name.to_string(),
            agent,
            settings,
            ask,
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

/// The Claude Code CLI (`claude -p`): the first backend, and the one the others imitate.
pub struct Claude;

impl Claude {
    fn session(launch: &Launch<'_>) -> SessionArg {
        match launch.resume() {
            Some(id) => SessionArg::Resume(id.to_string()),
            None => SessionArg::Fresh(launch.fresh_id.clone()),
        }
    }

    fn claude_args(launch: &Launch<'_>) -> Result<ClaudeArgs, argv::ArgvError> {
        let req = launch.req;
        let mut args = argv::build_args(
            &launch.prompt,
            &Self::session(launch),
            &req.agent,
            &req.settings,
            launch.mode,
        )?;
        // On resumes too: the CLI does not keep an appended system prompt in the session.
        if let Some(system) = &launch.system_prompt {
            args.append_system_prompt(system);
        }
        Ok(args)
    }
}

impl CodingCli for Claude {
    fn backend(&self) -> Backend {
        Backend::Claude
    }

    fn install_hint(&self) -> &'static str {
        "Claude CLI not found in PATH. Install: https://docs.anthropic.com/en/docs/claude-code"
    }

    fn unsupported(&self, _agent: &AgentConfig) -> Option<String> {
        None
    }

    fn args(&self, launch: &Launch<'_>) -> Result<Vec<String>, String> {
        Self::claude_args(launch)
            .map(|a| a.args)
            .map_err(|e| e.to_string())
    }

    fn run(&self, launch: &Launch<'_>, mut hooks: Hooks<'_>) -> DispatchResult {
        let (req, mode, name) = (launch.req, launch.mode, launch.agent());
        let dir = &req.agent.directory;
        let session = Self::session(launch);
        let mut args = match Self::claude_args(launch) {
            Ok(a) => a,
            Err(e) => return DispatchResult::failure(name, ErrorType::CliError, e.to_string()),
        };
        let (SessionArg::Resume(id) | SessionArg::Fresh(id)) = &session;
        let mut session_id = Some(id.clone());
        let timeout_secs = launch.timeout_secs;
        let budget = argv::effective_budget(&req.agent, &req.settings);
        let claude = launch.program;
        let child_depth = launch.child_depth.clone();

        // At most two attempts: the second only for a CLI that predates `--session-id`
        // (SPEC §5.5, §12 item 14).
        let mut retried = false;
        loop {
            let ctx = Ctx {
                agent: name,
                session_id: session_id.as_deref(),
                want_json: req.ask.response_format.is_json(),
                budget,
            };
            let attempt = Attempt {
                claude,
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
        let mut a = AgentConfig::new(std::path::PathBuf::from("/"));
        let s = Settings {
            default_timeout: 42,
            ..Settings::default()
        };
        assert_eq!(effective_timeout(&a, &s), 300);
        a.timeout = 0;
        assert_eq!(effective_timeout(&a, &s), 42);
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
