//! The supervised run of a CLI that reports on stdout as JSON lines (Codex `--json`, Gemini
//! `-o stream-json`): spawn under `process::Supervised`, hand each line to the backend's
//! `EventParser`, and turn the way the wait ended into a `DispatchResult`. Supervision is the
//! same as claude's; only the reading of lines differs per backend.

use std::time::{Duration, Instant};

use super::Launch;
use crate::claude::output::{self, parse_structured};
use crate::claude::{Hooks, OutputMode};
use crate::process::{ChildSpec, Outcome, StdoutMode};
use crate::result::{DispatchResult, ErrorType};

/// What a backend reads out of its CLI's event lines.
pub(super) trait EventParser {
    /// One line of stdout; progress worth showing goes to `progress`.
    fn line(&mut self, line: &[u8], progress: &mut dyn FnMut(&str));
    /// The session (thread) id seen or chosen so far: a timed-out run can be resumed with it.
    fn session_id(&self) -> Option<String>;
    /// True once a complete answer arrived (it then wins over a late kill).
    fn answered(&self) -> bool;
    /// The result after the child ended with `code` (or after a kill, when `answered`).
    fn finish(&mut self, code: i32, stderr: &str) -> DispatchResult;
}

/// Runs `launch` with `args` and `extra_env`, reading stdout line by line into `parser`.
pub(super) fn run_lines(
    launch: &Launch<'_>,
    args: &[String],
    extra_env: &[(&'static str, String)],
    parser: &mut dyn EventParser,
    mut hooks: Hooks<'_>,
) -> DispatchResult {
    let agent = launch.agent();
    let mut env = launch.env();
    env.extend(extra_env.iter().cloned());
    let spec = ChildSpec {
        program: launch.program,
        args,
        cwd: &launch.req.agent.directory,
        env: &env,
    };
    let child = match crate::remote::spawn(launch.remote.as_ref(), &spec, StdoutMode::Lines) {
        Ok(c) => c,
        Err(e) => {
            let kind = match e.kind() {
                std::io::ErrorKind::NotFound => ErrorType::NotFound,
                std::io::ErrorKind::PermissionDenied => ErrorType::Permission,
                _ => ErrorType::CliError,
            };
            let mut error = format!("Failed to start {}: {e}", launch.program.display());
            if e.raw_os_error() == Some(libc::E2BIG) {
                error.push_str(crate::claude::PROMPT_TOO_LONG);
            }
            return DispatchResult::failure(agent, kind, error);
        }
    };
    if let Some(cb) = hooks.on_spawn.as_mut() {
        cb(child.pid());
    }
    let now = Instant::now();
    let deadline = now
        .checked_add(Duration::from_secs(launch.timeout_secs))
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)));
    let stream = launch.mode == OutputMode::Stream;
    let on_progress = &mut hooks.on_progress;
    let mut on_line = |line: &[u8]| {
        let mut forward = |text: &str| {
            if stream && let Some(cb) = on_progress.as_mut() {
                cb(crate::text::first_chars(text, output::MAX_PROGRESS_CHARS));
            }
        };
        parser.line(line, &mut forward);
    };
    let finished = match child.wait(agent, deadline, hooks.cancel, &mut on_line) {
        Ok(f) => f,
        Err(transport) => return *transport,
    };
    let session = parser.session_id();
    let mut result = match finished.outcome {
        Outcome::Cancelled => stopped(agent, ErrorType::Cancelled, launch, session.as_deref()),
        Outcome::TimedOut if parser.answered() => output::answered_before_kill(
            parser.finish(finished.code, &finished.stderr),
            launch.timeout_secs,
        ),
        Outcome::TimedOut => stopped(agent, ErrorType::Timeout, launch, session.as_deref()),
        Outcome::Exited => parser.finish(finished.code, &finished.stderr),
    };
    if result.success && launch.req.ask.response_format.is_json() {
        result.parsed_result = parse_structured(&result.result);
    }
    result
}

/// A run we stopped: by timeout (with the claude-compatible wording) or by cancel.
fn stopped(
    agent: &str,
    why: ErrorType,
    launch: &Launch<'_>,
    session: Option<&str>,
) -> DispatchResult {
    let mut r = match why {
        ErrorType::Timeout => output::timeout_result(agent, launch.timeout_secs, session),
        _ => output::cancelled_result(agent, session),
    };
    if let Some(e) = r.error.as_mut() {
        *e = e.replace(
            "its claude process",
            &format!("its {} process", launch.req.agent.backend),
        );
    }
    r
}

/// The last `max` characters of `stderr`, trimmed: where a CLI's final error message is.
pub(super) fn stderr_tail(stderr: &str, max: usize) -> String {
    let trimmed = stderr.trim();
    let count = trimmed.chars().count();
    if count <= max {
        return trimmed.to_string();
    }
    trimmed.chars().skip(count - max).collect()
}

/// A resume of a session the CLI does not know: `not_found`, with the way forward.
pub(super) fn unknown_session(agent: &str, error: String, why: &str) -> DispatchResult {
    let mut r = DispatchResult::failure(agent, ErrorType::NotFound, error);
    r.hint = Some(format!(
        "That session does not exist{why}; start a new one without session_id."
    ));
    r
}

/// Marks a success as degraded by calls the CLI refused: `denied_tools` and the hint that says
/// how to allow them. No-op without refusals.
pub(super) fn with_denied(
    r: &mut DispatchResult,
    denied: Vec<String>,
    hint: impl FnOnce(&str) -> String,
) {
    if denied.is_empty() {
        return;
    }
    let summary = format!(
        "{} call(s) were refused: {}",
        denied.len(),
        denied.join(", ")
    );
    r.hint = Some(hint(&summary));
    r.denied_tools = Some(denied);
}

/// A failure classified from its text (permission words → `permission`), keeping the session.
pub(super) fn failure(agent: &str, mut error: String, session: Option<String>) -> DispatchResult {
    let kind = output::classify(&error);
    if let Some(hint) = output::classification_hint(agent, kind, &error) {
        error.push_str(&hint);
    }
    let mut r = DispatchResult::failure(agent, kind, error);
    r.session_id = session;
    r
}

/// Hands `lines` to `parser` as if a child printed them; the progress it forwarded (tests).
#[cfg(test)]
pub(super) fn feed(parser: &mut dyn EventParser, lines: &[&str]) -> Vec<String> {
    let mut seen = Vec::new();
    for l in lines {
        parser.line(l.as_bytes(), &mut |p: &str| seen.push(p.to_string()));
    }
    seen
}
