//! Turning what `claude` printed into a `DispatchResult` (SPEC §5.5–§5.10, §13 0.11/0.12):
//! the json document or the stream-json events, error classification, the permission, denial
//! and budget hints, denied-tool extraction and `response_format=json` parsing.
//!
//! Everything here is a pure function of the child's output: no process, no clock. Output is
//! untrusted, so every shape is tolerated (SPEC §12 items 9–11) and nothing here panics.

use crate::text::{first_chars, json_type};
use serde_json::{Map, Value};

use crate::pyfmt;
use crate::result::{DispatchResult, ErrorType};

/// What the runner knew when it started the child.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub agent: &'a str,
    /// The resume id or the pre-generated uuid; `None` after the old-CLI retry.
    pub session_id: Option<&'a str>,
    /// `response_format == "json"`.
    pub want_json: bool,
    /// The effective `--max-budget-usd`, if any.
    pub budget: Option<f64>,
}

const PERMISSION_MARKERS: &[&str] = &[
    "permission denied",
    "not allowed",
    "not permitted",
    "disallowed tool",
    "permission mode",
    "not have permission",
    "tool is not available",
    "tool_use is not allowed",
    "unauthorized",
];

const OLD_CLI_MARKERS: &[&str] = &[
    "unknown option",
    "unrecognized option",
    "unknown argument",
    "unexpected argument",
];

/// SPEC §5.10 bounds on untrusted denial lists.
const MAX_DENIED: usize = 10;
const MAX_DENIED_NAME: usize = 100;
/// SPEC §13 0.11: `errors` entries used as the error text.
const MAX_ERRORS: usize = 5;
const MAX_ERROR_CHARS: usize = 300;
/// SPEC §5.6: stream progress text is cut to this many characters.
pub const MAX_PROGRESS_CHARS: usize = 500;

/// The account's session or rate limit (0.16.0's list), checked before the permission words.
const USAGE_LIMIT_MARKERS: &[&str] = &[
    "session limit",
    "usage limit",
    "rate limit",
    "rate_limit",
    "too many requests",
    "quota exceeded",
];

/// SPEC §5.7 plus 0.16.0: `usage_limit` for the account's limit, `permission` when the text
/// mentions a known refusal, else `cli_error`.
pub fn classify(text: &str) -> ErrorType {
    let lower = text.to_lowercase();
    if USAGE_LIMIT_MARKERS.iter().any(|m| lower.contains(m)) {
        ErrorType::UsageLimit
    } else if PERMISSION_MARKERS.iter().any(|m| lower.contains(m)) {
        ErrorType::Permission
    } else {
        ErrorType::CliError
    }
}

/// The advice appended to an error of a text-classified kind (`None` when it has none).
pub fn classification_hint(agent: &str, kind: ErrorType, text: &str) -> Option<String> {
    match kind {
        ErrorType::Permission => Some(permission_hint(agent)),
        ErrorType::UsageLimit => Some(usage_limit_hint(text)),
        _ => None,
    }
}

/// An account-wide limit: when it resets, and why another agent will not help.
pub fn usage_limit_hint(text: &str) -> String {
    let lower = text.to_lowercase();
    let when = lower
        .find("reset")
        .map(|at| {
            let rest = &text[at..];
            let rest = rest.split_once(char::is_whitespace).map_or("", |(_, r)| r);
            let rest = rest.strip_prefix("at ").unwrap_or(rest);
            let end = rest.find(['\n', '.']).unwrap_or(rest.len());
            first_chars(rest[..end].trim(), 40).to_string()
        })
        .filter(|w| !w.is_empty())
        .map(|w| format!(" It resets {w}."))
        .unwrap_or_default();
    format!(
        "\n\nHint: this is the account's usage limit, not this agent's.{when} Every agent shares it, so dispatching another agent (or retrying now) fails the same way: wait for the reset, or lower settings.max_concurrency."
    )
}

/// SPEC §5.5: stderr of a CLI that does not know `--session-id`.
pub fn is_old_cli_rejection(stderr: &str) -> bool {
    let lower = stderr.to_lowercase();
    lower.contains("--session-id") && OLD_CLI_MARKERS.iter().any(|m| lower.contains(m))
}

/// SPEC §5.8: appended to `error` whenever `error_type` is `permission`.
pub fn permission_hint(agent: &str) -> String {
    format!(
        "\n\nHint: Agent '{agent}' was denied a tool or action. Configure its permissions in agents.yaml, for example:\n  agent-dispatch update {agent} --permission-mode bypassPermissions\n  agent-dispatch update {agent} --allowed-tools Bash,Read,Edit,Write,Glob,Grep"
    )
}

/// SPEC §5.8: the `hint` of a success whose tool calls were partly denied.
pub fn denial_hint(agent: &str, denied: &[String]) -> String {
    let names = denied.join(", ");
    let csv = denied.join(",");
    format!(
        "{n} tool call(s) were denied by permissions: {names}. The result may be incomplete. To allow them, call update_agent(name='{agent}', allowed_tools='{csv}') or set permission_mode='bypassPermissions', or run: agent-dispatch update {agent} --allowed-tools {csv}",
        n = denied.len()
    )
}

/// SPEC §13 0.11: how to recover from a run the CLI stopped at its spending cap.
pub fn budget_stop_hint(agent: &str, budget: Option<f64>, session_id: Option<&str>) -> String {
    let raise = match budget {
        Some(b) if b.is_finite() && b > 0.0 => format!(
            "raise the cap (agent-dispatch update {agent} --max-budget {})",
            pyfmt::float(b * 2.0)
        ),
        _ => format!("raise the cap (agent-dispatch update {agent} --max-budget <usd>)"),
    };
    let mut hint = format!(
        "The claude CLI stopped this run at its --max-budget-usd cap. To recover: {raise}, pick a cheaper model (agent-dispatch update {agent} --model haiku)"
    );
    match session_id {
        Some(sid) => hint.push_str(&format!(
            ", or resume the session to continue: dispatch_session(agent='{agent}', task='Continue where you left off', session_id='{sid}')."
        )),
        None => hint.push('.'),
    }
    hint
}

/// SPEC §13 0.7: a success that cost more than the configured budget.
pub fn over_budget_hint(agent: &str, cost: f64, budget: f64) -> String {
    format!(
        "This run cost ${cost:.4} which exceeds the budget of ${} (the CLI checks the cap between turns). Raise it (agent-dispatch update {agent} --max-budget <usd>) or pick a cheaper model.",
        pyfmt::float(budget)
    )
}

/// SPEC §5.5 timeout text, with the resumable session when there is one.
pub fn timeout_result(agent: &str, secs: u64, session_id: Option<&str>) -> DispatchResult {
    let mut error = format!(
        "Agent '{agent}' timed out after {secs}s. Options: pass timeout_seconds= for a longer one-off run, use dispatch_async for fire-and-forget, or raise the agent default (agent-dispatch update {agent} --timeout {}).",
        secs.saturating_mul(2)
    );
    if let Some(sid) = session_id {
        error.push_str(&resume_note(agent, sid));
    }
    let mut r = DispatchResult::failure(agent, ErrorType::Timeout, error);
    r.session_id = session_id.map(str::to_string);
    r
}

/// The caller tripped the cancel flag; the child's group was killed.
pub fn cancelled_result(agent: &str, session_id: Option<&str>) -> DispatchResult {
    let mut error =
        format!("Dispatch to agent '{agent}' was cancelled; its claude process was stopped.");
    if let Some(sid) = session_id {
        error.push_str(&resume_note(agent, sid));
    }
    let mut r = DispatchResult::failure(agent, ErrorType::Cancelled, error);
    r.session_id = session_id.map(str::to_string);
    r
}

fn resume_note(agent: &str, sid: &str) -> String {
    format!(
        " Partial work may be resumable: dispatch_session(agent='{agent}', task='Continue where you left off', session_id='{sid}')."
    )
}

/// Json mode: the whole of stdout after the child exited with `code` (SPEC §5.5).
pub fn finish_json(ctx: &Ctx<'_>, code: i32, stdout: &[u8], stderr: &str) -> DispatchResult {
    // SPEC §12 item 11: one bad byte must not lose the answer.
    let text = String::from_utf8_lossy(stdout);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        let err = stderr.trim();
        // SPEC §12 item 9: exit 0 with nothing printed is a failure, not an empty success.
        let error = match (err.is_empty(), code) {
            (false, _) => err.to_string(),
            (true, 0) => "claude exited with code 0 but printed no result".to_string(),
            (true, rc) => format!("claude exited with code {rc}"),
        };
        return classified_failure(ctx.agent, error, String::new(), None);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(obj)) => {
            let r = from_result_object(ctx, &obj, Some(code));
            if r.success && code != 0 && !is_complete_answer(&obj) {
                // Some JSON object and a failing exit is a crash, not an empty answer.
                return incomplete_exit(ctx, code, trimmed, stderr);
            }
            r
        }
        Ok(other) => {
            let error = format!(
                "claude printed JSON that is not an object ({}) (exit code {code})",
                json_type(&other)
            );
            let mut r = DispatchResult::failure(ctx.agent, ErrorType::CliError, error);
            r.result = trimmed.to_string();
            r
        }
        Err(_) if code == 0 => {
            let mut r = success(ctx.agent, trimmed.to_string());
            r.session_id = ctx.session_id.map(str::to_string);
            if ctx.want_json {
                r.parsed_result = parse_structured(trimmed);
            }
            r
        }
        Err(_) => classified_failure(ctx.agent, trimmed.to_string(), trimmed.to_string(), None),
    }
}

/// True when `obj` is a result document (`"type": "result"` or a `result` field), not merely
/// some JSON the child printed (an init event, `{"foo":1}`). Only such an object can turn a
/// non-zero exit or a kill into a success.
pub fn is_complete_answer(obj: &Map<String, Value>) -> bool {
    obj.get("type").and_then(Value::as_str) == Some("result") || obj.contains_key("result")
}

/// A child that printed a JSON object that is no result and exited with `code` != 0.
fn incomplete_exit(ctx: &Ctx<'_>, code: i32, printed: &str, stderr: &str) -> DispatchResult {
    let err = stderr.trim();
    let mut error = format!(
        "claude exited with code {code} without a result; it printed: {}",
        first_chars(printed, 200)
    );
    if !err.is_empty() {
        error.push_str("; stderr: ");
        error.push_str(first_chars(err, 1000));
    }
    classified_failure(ctx.agent, error, String::new(), ctx.session_id)
}

/// Stream mode after the child exited without being killed (SPEC §5.6).
pub fn finish_stream(
    ctx: &Ctx<'_>,
    code: i32,
    result_event: Option<&Map<String, Value>>,
    stderr: &str,
) -> DispatchResult {
    match result_event {
        Some(obj) => from_result_object(ctx, obj, None),
        None => {
            let err = stderr.trim();
            let error = if err.is_empty() {
                format!("No result received (exit code {code})")
            } else {
                err.to_string()
            };
            // A crash mid-stream stays resumable.
            classified_failure(ctx.agent, error, String::new(), ctx.session_id)
        }
    }
}

/// A result that arrived before a timeout kill wins over the timeout (SPEC §12 item 7).
pub fn answered_before_kill(mut r: DispatchResult, secs: u64) -> DispatchResult {
    if r.success {
        let note = format!(
            "The agent answered, but its process was still running at the {secs}s timeout and was stopped."
        );
        r.hint = Some(match r.hint.take() {
            Some(h) => format!("{h} {note}"),
            None => note,
        });
    }
    r
}

/// One result object (the json document or a stream `result` event), SPEC §5.5 step 3.
/// `code` is the exit code in json mode; stream mode reports none in its fallback text.
pub fn from_result_object(
    ctx: &Ctx<'_>,
    obj: &Map<String, Value>,
    code: Option<i32>,
) -> DispatchResult {
    let denied = denied_tools(obj.get("permission_denials"));
    let session_id = obj
        .get("session_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or(ctx.session_id)
        .map(str::to_string);
    let cost = obj
        .get("total_cost_usd")
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite());
    let mut r = DispatchResult {
        agent: ctx.agent.to_string(),
        session_id,
        cost_usd: cost,
        duration_ms: obj.get("duration_ms").and_then(as_count),
        num_turns: obj.get("num_turns").and_then(as_count),
        ..DispatchResult::default()
    };

    let result_text = match obj.get("result") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // SPEC §12 item 10: a non-string result is malformed output, reported, not a crash.
        Some(other) => {
            r.result = other.to_string();
            r.error = Some(format!(
                "claude returned a result that is not a string ({})",
                json_type(other)
            ));
            r.error_type = Some(ErrorType::CliError);
            r.denied_tools = denied;
            return r;
        }
    };

    let str_field = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("");
    let budget_stop = str_field("subtype") == "error_max_budget_usd"
        || str_field("terminal_reason") == "budget_exhausted";

    if budget_stop || truthy(obj.get("is_error")) {
        let detail = if result_text.is_empty() {
            error_details(obj)
        } else {
            Some(result_text.clone())
        };
        r.result = result_text;
        if budget_stop {
            let reason = detail.unwrap_or_else(|| "error_max_budget_usd".to_string());
            let cap = match ctx.budget {
                Some(b) => format!(" of ${}", pyfmt::float(b)),
                None => String::new(),
            };
            r.error = Some(format!(
                "Agent '{}' stopped at its spending cap{cap}: {reason}",
                ctx.agent
            ));
            r.error_type = Some(ErrorType::Budget);
            r.budget_exceeded = true;
            r.hint = Some(budget_stop_hint(
                ctx.agent,
                ctx.budget,
                r.session_id.as_deref(),
            ));
        } else {
            let mut error = detail.unwrap_or_else(|| match code {
                Some(rc) => format!(
                    "Agent '{}' reported an error with no details (exit code {rc})",
                    ctx.agent
                ),
                None => format!("Agent '{}' reported an error with no details", ctx.agent),
            });
            // Precedence (SPEC §13 0.11): budget > denied tools > text classification.
            let kind = if denied.is_some() {
                ErrorType::Permission
            } else {
                classify(&error)
            };
            if let Some(hint) = classification_hint(ctx.agent, kind, &error) {
                error.push_str(&hint);
            }
            r.error = Some(error);
            r.error_type = Some(kind);
        }
        r.denied_tools = denied;
        return r;
    }

    r.success = true;
    if ctx.want_json {
        r.parsed_result = parse_structured(&result_text);
    }
    r.result = result_text;
    let mut hints = Vec::new();
    if let Some(d) = &denied {
        hints.push(denial_hint(ctx.agent, d));
    }
    if let (Some(c), Some(b)) = (cost, ctx.budget)
        && c > b
    {
        r.budget_exceeded = true;
        hints.push(over_budget_hint(ctx.agent, c, b));
    }
    if !hints.is_empty() {
        r.hint = Some(hints.join(" "));
    }
    r.denied_tools = denied;
    r
}

/// SPEC §13 0.11: the CLI's own reason when `result` is empty: up to 5 `errors` entries of up
/// to 300 characters, else a non-success `subtype`.
fn error_details(obj: &Map<String, Value>) -> Option<String> {
    if let Some(Value::Array(errors)) = obj.get("errors") {
        let parts: Vec<String> = errors
            .iter()
            .filter_map(|e| {
                let s = match e {
                    Value::String(s) => s.trim().to_string(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (!s.is_empty()).then(|| first_chars(&s, MAX_ERROR_CHARS).to_string())
            })
            .take(MAX_ERRORS)
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    match obj.get("subtype").and_then(Value::as_str) {
        Some(s) if !s.is_empty() && s != "success" => {
            Some(first_chars(s, MAX_ERROR_CHARS).to_string())
        }
        _ => None,
    }
}

fn success(agent: &str, result: String) -> DispatchResult {
    DispatchResult {
        agent: agent.to_string(),
        success: true,
        result,
        ..DispatchResult::default()
    }
}

/// A failure classified from its text, with the permission hint appended when it applies.
fn classified_failure(
    agent: &str,
    mut error: String,
    result: String,
    session_id: Option<&str>,
) -> DispatchResult {
    let kind = classify(&error);
    if let Some(hint) = classification_hint(agent, kind, &error) {
        error.push_str(&hint);
    }
    let mut r = DispatchResult::failure(agent, kind, error);
    r.result = result;
    r.session_id = session_id.map(str::to_string);
    r
}

/// SPEC §5.10: bounded, de-duplicated tool names from `permission_denials`.
pub fn denied_tools(v: Option<&Value>) -> Option<Vec<String>> {
    let list = v?.as_array()?;
    let mut out: Vec<String> = Vec::new();
    for entry in list {
        let name = match entry {
            Value::Object(m) => ["tool_name", "tool"]
                .iter()
                .filter_map(|k| m.get(*k))
                .find(|v| truthy(Some(v)))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "unknown".to_string()),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let name = first_chars(&name, MAX_DENIED_NAME).to_string();
        if !out.contains(&name) {
            out.push(name);
            if out.len() == MAX_DENIED {
                break;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// SPEC §5.9: soft parsing of a structured answer; fences are tolerated, failure is `None`.
pub fn parse_structured(text: &str) -> Option<Value> {
    let mut t = text.trim();
    let unfenced;
    if t.starts_with("```") {
        let mut lines: Vec<&str> = t.split('\n').skip(1).collect();
        if lines.last().is_some_and(|l| l.trim().starts_with("```")) {
            lines.pop();
        }
        unfenced = lines.join("\n");
        t = unfenced.trim();
    }
    if t.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(t) {
        Ok(Value::Null) | Err(_) => None,
        Ok(v) => Some(v),
    }
}

/// One stream-json line, as far as the runner cares.
#[derive(Debug, PartialEq)]
pub enum StreamLine {
    /// Progress texts from an `assistant` event (text blocks, `Using tool: <name>`).
    Progress(Vec<String>),
    /// A `result` event (a later one replaces an earlier one).
    Result(Map<String, Value>),
    /// Blank, not JSON, not an object, or an event type nobody reads.
    Ignored,
}

/// Parses one stream-json line (SPEC §5.6), tolerating any malformed shape (SPEC §12 item 10).
pub fn parse_stream_line(line: &[u8]) -> StreamLine {
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        return StreamLine::Ignored;
    }
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(trimmed).or_else(|_| {
        // Invalid UTF-8 inside a line: decode lossily rather than drop the event.
        serde_json::from_str::<Value>(&String::from_utf8_lossy(trimmed))
    }) else {
        return StreamLine::Ignored;
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("result") => StreamLine::Result(obj),
        Some("assistant") => {
            let blocks = obj
                .get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_array);
            let mut out = Vec::new();
            for block in blocks.into_iter().flatten() {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(text) = block.get("text").and_then(Value::as_str)
                            && !text.is_empty()
                        {
                            out.push(first_chars(text, MAX_PROGRESS_CHARS).to_string());
                        }
                    }
                    Some("tool_use") => {
                        let name = match block.get("name") {
                            Some(Value::String(s)) => s.clone(),
                            None | Some(Value::Null) => "?".to_string(),
                            Some(other) => other.to_string(),
                        };
                        out.push(format!("Using tool: {name}"));
                    }
                    _ => {}
                }
            }
            if out.is_empty() {
                StreamLine::Ignored
            } else {
                StreamLine::Progress(out)
            }
        }
        _ => StreamLine::Ignored,
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// A non-negative integral count (`duration_ms`, `num_turns`); anything else is dropped.
fn as_count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1e18)
            .map(|f| f as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accounts_limit_is_its_own_kind_with_the_reset_time() {
        let text = "You've hit your session limit · resets 6pm (Asia/Almaty)";
        assert_eq!(classify(text), ErrorType::UsageLimit);
        let hint = usage_limit_hint(text);
        assert!(hint.contains("It resets 6pm (Asia/Almaty)."), "{hint}");
        assert!(hint.contains("another agent"), "{hint}");
        assert_eq!(classify("429 Too Many Requests"), ErrorType::UsageLimit);
        assert_eq!(classify("Permission denied"), ErrorType::Permission);
    }
    use serde_json::json;

    const SAMPLE_JSON: &str = include_str!("../../fixtures/samples/print-json-error.json");
    const SAMPLE_STREAM: &str =
        include_str!("../../fixtures/samples/print-stream-json-verbose-error.jsonl");

    fn ctx() -> Ctx<'static> {
        Ctx {
            agent: "proj",
            session_id: Some("gen-uuid"),
            want_json: false,
            budget: None,
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn classifier_markers() {
        assert_eq!(classify("Permission denied: Bash"), ErrorType::Permission);
        assert_eq!(classify("TOOL_USE IS NOT ALLOWED"), ErrorType::Permission);
        assert_eq!(classify("Unauthorized"), ErrorType::Permission);
        assert_eq!(classify("segfault"), ErrorType::CliError);
        assert_eq!(classify(""), ErrorType::CliError);
    }

    #[test]
    fn real_json_sample_is_an_error_with_its_text() {
        let r = finish_json(&ctx(), 1, SAMPLE_JSON.as_bytes(), "");
        assert!(!r.success);
        assert_eq!(
            r.error.as_deref(),
            Some("Not logged in · Please run /login")
        );
        assert_eq!(r.error_type, Some(ErrorType::CliError));
        assert_eq!(
            r.session_id.as_deref(),
            Some("f3b3e46d-6c75-4b52-8e9f-4090fe8b140a")
        );
        assert_eq!(r.cost_usd, Some(0.0));
        assert_eq!(r.duration_ms, Some(207));
        assert_eq!(r.num_turns, Some(1));
        assert_eq!(r.denied_tools, None);
        assert!(!r.budget_exceeded);
    }

    #[test]
    fn real_stream_sample_gives_progress_then_result() {
        let mut progress = Vec::new();
        let mut result = None;
        for line in SAMPLE_STREAM.lines() {
            match parse_stream_line(line.as_bytes()) {
                StreamLine::Progress(p) => progress.extend(p),
                StreamLine::Result(m) => result = Some(m),
                StreamLine::Ignored => {}
            }
        }
        assert_eq!(progress, ["Not logged in · Please run /login"]);
        let r = finish_stream(&ctx(), 1, result.as_ref(), "");
        assert!(!r.success);
        assert_eq!(
            r.error.as_deref(),
            Some("Not logged in · Please run /login")
        );
        assert_eq!(
            r.session_id.as_deref(),
            Some("11111111-2222-4333-8444-555555555555")
        );
    }

    #[test]
    fn success_uses_json_session_and_copies_numbers() {
        let o = obj(
            json!({"result": "hi", "session_id": "s1", "total_cost_usd": 0.02,
            "duration_ms": 10, "num_turns": 2.0, "is_error": false}),
        );
        let r = from_result_object(&ctx(), &o, Some(0));
        assert!(r.success);
        assert_eq!(r.result, "hi");
        assert_eq!(r.session_id.as_deref(), Some("s1"));
        assert_eq!(r.num_turns, Some(2));
        let o = obj(json!({"result": "hi", "session_id": 5, "duration_ms": "x"}));
        let r = from_result_object(&ctx(), &o, Some(0));
        assert_eq!(r.session_id.as_deref(), Some("gen-uuid"));
        assert_eq!(r.duration_ms, None);
    }

    #[test]
    fn is_error_without_details() {
        for result in [json!(""), Value::Null] {
            let o = obj(json!({"is_error": true, "result": result}));
            let r = from_result_object(&ctx(), &o, Some(1));
            assert_eq!(r.error_type, Some(ErrorType::CliError));
            assert_eq!(
                r.error.as_deref(),
                Some("Agent 'proj' reported an error with no details (exit code 1)")
            );
            assert_eq!(r.result, "");
        }
        let o = obj(json!({"is_error": 1}));
        let r = from_result_object(&ctx(), &o, None);
        assert_eq!(
            r.error.as_deref(),
            Some("Agent 'proj' reported an error with no details")
        );
    }

    #[test]
    fn empty_result_uses_errors_then_subtype() {
        let long = "e".repeat(1000);
        let o = obj(
            json!({"is_error": true, "subtype": "error_during_execution",
            "errors": ["a", long, 3, "b", "c", "d", "e"]}),
        );
        let r = from_result_object(&ctx(), &o, Some(1));
        let e = r.error.unwrap_or_default();
        assert_eq!(e, format!("a; {}; 3; b; c", "e".repeat(300)));
        let o = obj(json!({"is_error": true, "subtype": "error_max_turns"}));
        let r = from_result_object(&ctx(), &o, Some(1));
        assert_eq!(r.error.as_deref(), Some("error_max_turns"));
    }

    #[test]
    fn denied_tools_force_permission_with_hint() {
        let o = obj(
            json!({"is_error": true, "result": "could not finish the task",
            "permission_denials": [{"tool_name": "Edit"}]}),
        );
        let r = from_result_object(&ctx(), &o, Some(1));
        assert_eq!(r.error_type, Some(ErrorType::Permission));
        assert_eq!(r.denied_tools, Some(vec!["Edit".to_string()]));
        let e = r.error.unwrap_or_default();
        assert!(e.starts_with("could not finish the task\n\nHint: Agent 'proj'"));
        assert!(e.contains("bypassPermissions") && e.contains("allowed-tools"));
        assert_eq!(r.hint, None);
    }

    #[test]
    fn success_with_denials_keeps_success_and_hints() {
        let o = obj(json!({"result": "partial",
            "permission_denials": [{"tool_name": "Bash"}, {"tool_name": "WebFetch"}, {"tool_name": "Bash"}]}));
        let r = from_result_object(&ctx(), &o, Some(0));
        assert!(r.success);
        assert_eq!(
            r.denied_tools,
            Some(vec!["Bash".to_string(), "WebFetch".to_string()])
        );
        let h = r.hint.unwrap_or_default();
        assert!(h.starts_with("2 tool call(s) were denied by permissions: Bash, WebFetch."));
        assert!(h.contains("incomplete") && h.contains("'proj'") && h.contains("Bash,WebFetch"));
    }

    #[test]
    fn denied_tool_bounds_and_shapes() {
        let v = json!(["Bash", {"tool": "Read"}, {"junk": 1}, {"tool_name": ""}]);
        assert_eq!(
            denied_tools(Some(&v)),
            Some(vec!["Bash".into(), "Read".into(), "unknown".into()])
        );
        let many: Vec<Value> = (0..500)
            .map(|i| json!({"tool_name": format!("T{i}")}))
            .collect();
        assert_eq!(
            denied_tools(Some(&Value::Array(many))).map(|d| d.len()),
            Some(10)
        );
        let long = json!([{"tool_name": "é".repeat(5000)}]);
        assert_eq!(
            denied_tools(Some(&long)).map(|d| d[0].chars().count()),
            Some(100)
        );
        assert_eq!(denied_tools(Some(&json!([]))), None);
        assert_eq!(denied_tools(Some(&json!("Bash"))), None);
        assert_eq!(denied_tools(None), None);
    }

    #[test]
    fn budget_stop_beats_denials_and_reads_errors() {
        let c = Ctx {
            budget: Some(0.5),
            ..ctx()
        };
        let o = obj(
            json!({"type": "result", "subtype": "error_max_budget_usd", "is_error": true,
            "session_id": "s9", "errors": ["Reached maximum budget ($0.5)"],
            "permission_denials": ["Bash"]}),
        );
        let r = from_result_object(&c, &o, Some(1));
        assert!(!r.success);
        assert_eq!(r.error_type, Some(ErrorType::Budget));
        assert!(r.budget_exceeded);
        assert_eq!(
            r.error.as_deref(),
            Some("Agent 'proj' stopped at its spending cap of $0.5: Reached maximum budget ($0.5)")
        );
        assert_eq!(r.denied_tools, Some(vec!["Bash".to_string()]));
        let h = r.hint.unwrap_or_default();
        assert!(h.contains("--max-budget 1.0") && h.contains("--model") && h.contains("'s9'"));
        // No errors list and no result: the subtype is the reason.
        let o = obj(json!({"subtype": "error_max_budget_usd"}));
        let r = from_result_object(&ctx(), &o, Some(1));
        assert_eq!(r.error_type, Some(ErrorType::Budget));
        assert!(
            r.error
                .unwrap_or_default()
                .ends_with(": error_max_budget_usd")
        );
        let o = obj(json!({"is_error": true, "terminal_reason": "budget_exhausted", "result": ""}));
        assert_eq!(
            from_result_object(&ctx(), &o, Some(1)).error_type,
            Some(ErrorType::Budget)
        );
    }

    #[test]
    fn success_over_budget_is_flagged() {
        let c = Ctx {
            budget: Some(0.01),
            ..ctx()
        };
        let o = obj(json!({"result": "ok", "total_cost_usd": 0.03}));
        let r = from_result_object(&c, &o, Some(0));
        assert!(r.success && r.budget_exceeded);
        assert!(r.hint.unwrap_or_default().contains("$0.0300"));
        let o = obj(json!({"result": "ok", "total_cost_usd": 0.005}));
        let r = from_result_object(&c, &o, Some(0));
        assert!(!r.budget_exceeded && r.hint.is_none());
    }

    #[test]
    fn malformed_outputs_are_clean_failures() {
        let r = finish_json(&ctx(), 0, b"[1, 2]", "");
        assert_eq!(r.error_type, Some(ErrorType::CliError));
        assert!(
            r.error
                .unwrap_or_default()
                .contains("not an object (array)")
        );
        let r = finish_json(&ctx(), 0, br#"{"result": {"a": 1}}"#, "");
        assert!(!r.success);
        assert_eq!(r.result, r#"{"a":1}"#);
        let r = finish_json(&ctx(), 0, b"", "");
        assert!(!r.success);
        assert_eq!(
            r.error.as_deref(),
            Some("claude exited with code 0 but printed no result")
        );
        let r = finish_json(&ctx(), 0, b"  \n", "warning: whatever");
        assert_eq!(r.error.as_deref(), Some("warning: whatever"));
    }

    #[test]
    fn an_object_that_is_no_result_is_a_failure_on_a_bad_exit() {
        let r = finish_json(&ctx(), 1, br#"{"foo":1}"#, "");
        assert!(!r.success, "{r:?}");
        assert!(
            r.error
                .unwrap_or_default()
                .contains("exited with code 1 without a result")
        );
        let killed = finish_json(&ctx(), -15, br#"{"type":"system","subtype":"init"}"#, "");
        assert!(!killed.success);
        // A real result document still counts on a failing exit (its own is_error decides).
        let done = finish_json(&ctx(), 1, br#"{"type":"result","result":"ok"}"#, "");
        assert!(done.success);
        assert!(is_complete_answer(&obj(json!({"result": ""}))));
        assert!(!is_complete_answer(&obj(json!({"type": "assistant"}))));
    }

    #[test]
    fn exit_code_paths() {
        let r = finish_json(&ctx(), 2, b"", "  boom\n");
        assert_eq!(r.error.as_deref(), Some("boom"));
        assert_eq!(r.session_id, None);
        let r = finish_json(&ctx(), 2, b"", "");
        assert_eq!(r.error.as_deref(), Some("claude exited with code 2"));
        let r = finish_json(&ctx(), 1, b"", "Error: permission denied for Bash");
        assert_eq!(r.error_type, Some(ErrorType::Permission));
        assert!(r.error.unwrap_or_default().contains("Hint: Agent 'proj'"));
    }

    #[test]
    fn plain_text_fallback() {
        let r = finish_json(&ctx(), 0, b"  hello there \n", "");
        assert!(r.success);
        assert_eq!(r.result, "hello there");
        assert_eq!(r.session_id.as_deref(), Some("gen-uuid"));
        let r = finish_json(&ctx(), 3, b"garbage", "");
        assert!(!r.success);
        assert_eq!(r.result, "garbage");
        assert_eq!(r.error.as_deref(), Some("garbage"));
        let r = finish_json(&ctx(), 0, b"ok \xff\xfe", "");
        assert_eq!(r.result, "ok \u{fffd}\u{fffd}");
    }

    #[test]
    fn structured_parsing() {
        assert_eq!(
            parse_structured(r#"{"count": 3}"#),
            Some(json!({"count": 3}))
        );
        assert_eq!(
            parse_structured("```json\n{\"a\": 1}\n```"),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            parse_structured("```\n[1, 2, 3]\n```"),
            Some(json!([1, 2, 3]))
        );
        assert_eq!(parse_structured("42"), Some(json!(42)));
        assert_eq!(parse_structured("null"), None);
        assert_eq!(parse_structured("Here you go"), None);
        assert_eq!(parse_structured("```python\nprint(1)\n```"), None);
        assert_eq!(parse_structured(""), None);
        let c = Ctx {
            want_json: true,
            ..ctx()
        };
        let o = obj(json!({"result": "```json\n{\"x\": true}\n```"}));
        assert_eq!(
            from_result_object(&c, &o, Some(0)).parsed_result,
            Some(json!({"x": true}))
        );
    }

    #[test]
    fn stream_lines_are_tolerant() {
        assert_eq!(parse_stream_line(b""), StreamLine::Ignored);
        assert_eq!(parse_stream_line(b"not json"), StreamLine::Ignored);
        assert_eq!(parse_stream_line(b"[1]"), StreamLine::Ignored);
        assert_eq!(
            parse_stream_line(br#"{"type":"assistant","message":"x"}"#),
            StreamLine::Ignored
        );
        assert_eq!(
            parse_stream_line(br#"{"type":"assistant","message":{"content":[1,{"type":"tool_use"},{"type":"text","text":""}]}}"#),
            StreamLine::Progress(vec!["Using tool: ?".into()])
        );
        let long = format!(
            r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"{}"}}]}}}}"#,
            "ü".repeat(900)
        );
        match parse_stream_line(long.as_bytes()) {
            StreamLine::Progress(p) => assert_eq!(p[0].chars().count(), 500),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_stream_line(b"{\"type\":\"result\",\"result\":\"a\xffb\"}"),
            StreamLine::Result(_)
        ));
    }

    #[test]
    fn stream_without_result_is_resumable_failure() {
        let r = finish_stream(&ctx(), 0, None, "");
        assert_eq!(r.error.as_deref(), Some("No result received (exit code 0)"));
        assert_eq!(r.session_id.as_deref(), Some("gen-uuid"));
    }

    #[test]
    fn timeout_and_cancel_texts() {
        let r = timeout_result("proj", 30, Some("sid-1"));
        let e = r.error.unwrap_or_default();
        assert!(e.starts_with("Agent 'proj' timed out after 30s. Options: pass timeout_seconds="));
        assert!(e.contains("agent-dispatch update proj --timeout 60)."));
        assert!(e.ends_with("dispatch_session(agent='proj', task='Continue where you left off', session_id='sid-1')."));
        assert_eq!(r.session_id.as_deref(), Some("sid-1"));
        let r = timeout_result("proj", 30, None);
        assert!(!r.error.unwrap_or_default().contains("dispatch_session"));
        let r = cancelled_result("proj", Some("s"));
        assert_eq!(r.error_type, Some(ErrorType::Cancelled));
    }

    #[test]
    fn old_cli_pattern() {
        assert!(is_old_cli_rejection("error: unknown option '--session-id'"));
        assert!(is_old_cli_rejection("Unexpected argument: --SESSION-ID"));
        assert!(!is_old_cli_rejection("error: unknown option '--bogus-opt'"));
        assert!(!is_old_cli_rejection(
            "Error: Session ID x is already in use. --session-id"
        ));
    }
}
