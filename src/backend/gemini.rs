//! Google Gemini CLI (`gemini -p`) as a backend. The command line, the mapping of an agent's
//! settings onto Gemini's approval modes, and the reading of its `-o stream-json` events (used
//! in both output modes: one parser, and progress is simply not forwarded in json mode) into a
//! `DispatchResult`. Facts about the CLI: shared/gemini-cli-samples (gemini-cli 0.61.0).
//!
//! - A fresh run: `gemini -p PROMPT -o stream-json --skip-trust --session-id UUID
//!   [--approval-mode M] [-m MODEL] [--allowed-tools T,...]`: the session id is ours, so a run
//!   that times out can be resumed; a resume passes `--resume ID` instead of `--session-id`.
//! - `GEMINI_CLI_NO_RELAUNCH=true`: the CLI otherwise re-spawns itself behind a launcher that
//!   ignores SIGTERM; the process group is killed either way, this keeps it one process.
//! - `--skip-trust`: the agent's directory is trusted by being configured; without it headless
//!   runs stop with exit 55 in any folder not trusted interactively.
//! - Permission modes: `bypassPermissions` → `yolo`; `acceptEdits`, `auto` → `auto_edit`;
//!   `plan` → `plan`; anything else → `default` (tools that need approval are not offered).
//! - `allowed_tools` map to `--allowed-tools` (deprecated upstream in favour of policy files,
//!   still honoured); Gemini has no deny list and no spending cap, so `disallowed_tools` and
//!   `max_budget_usd` are refused. It reports tokens, not a cost.

use std::collections::HashMap;

use serde_json::Value;

use super::events::{self, EventParser};
use super::{Backend, CodingCli, Launch, refuse_flag};
use crate::claude::Hooks;
use crate::config::AgentConfig;
use crate::result::{DispatchResult, ErrorType, TokenUsage};

pub struct Gemini;

impl CodingCli for Gemini {
    fn backend(&self) -> Backend {
        Backend::Gemini
    }

    fn install_hint(&self) -> &'static str {
        "Gemini CLI not found in PATH. Install: npm install -g @google/gemini-cli (or set settings.backends.gemini.command)"
    }

    fn unsupported(&self, agent: &AgentConfig) -> Option<String> {
        if agent.max_budget_usd.is_some_and(|b| b != 0.0) {
            return Some(
                "The gemini backend has no spending cap: remove max_budget_usd (agent-dispatch update NAME --max-budget 0)".into(),
            );
        }
        if agent
            .disallowed_tools
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        {
            return Some(
                "The gemini backend has no deny list: clear disallowed_tools, and list what it may use in allowed_tools or pick a permission_mode (plan = read-only, default = no tools that need approval)".into(),
            );
        }
        None
    }

    fn args(&self, launch: &Launch<'_>) -> Result<Vec<String>, String> {
        let mut args = vec![
            "-p".to_string(),
            crate::claude::argv::prompt_value(&launch.prompt),
            "-o".into(),
            "stream-json".into(),
            "--skip-trust".into(),
        ];
        match launch.resume() {
            Some(id) => {
                refuse_flag("session_id", id, "gemini")?;
                args.push("--resume".into());
                args.push(id.to_string());
            }
            None => {
                args.push("--session-id".into());
                args.push(launch.fresh_id.clone());
            }
        }
        let approval = match launch.permission_mode() {
            Some("bypassPermissions") => "yolo",
            Some("acceptEdits" | "auto") => "auto_edit",
            Some("plan") => "plan",
            _ => "default",
        };
        args.push("--approval-mode".into());
        args.push(approval.into());
        if let Some(m) = launch.model() {
            refuse_flag("model", m, "gemini")?;
            args.push("--model".into());
            args.push(m.to_string());
        }
        if let Some(tools) = launch
            .req
            .agent
            .allowed_tools
            .as_ref()
            .filter(|t| !t.is_empty())
        {
            for t in tools {
                refuse_flag("allowed tool", t, "gemini")?;
            }
            args.push("--allowed-tools".into());
            args.push(tools.join(","));
        }
        Ok(args)
    }

    fn run(&self, launch: &Launch<'_>, hooks: Hooks<'_>) -> DispatchResult {
        let args = match self.args(launch) {
            Ok(a) => a,
            Err(e) => return DispatchResult::failure(launch.agent(), ErrorType::CliError, e),
        };
        let mut parser = Events {
            agent: launch.agent().to_string(),
            session_id: Some(
                launch
                    .resume()
                    .map_or_else(|| launch.fresh_id.clone(), str::to_string),
            ),
            ..Events::default()
        };
        let env = [("GEMINI_CLI_NO_RELAUNCH", "true".to_string())];
        events::run_lines(launch, &args, &env, &mut parser, hooks)
    }
}

/// What the stream-json events said so far.
#[derive(Default)]
struct Events {
    agent: String,
    session_id: Option<String>,
    /// Assistant text since the last tool result: what `-o json` would call `response`.
    answer: String,
    /// Assistant deltas not yet shown as progress: the CLI emits one `message` per API stream
    /// chunk (a few words), so they are shown as one line when something else happens.
    unshown: String,
    /// `status` of the `result` event, and its error message.
    result: Option<Result<(), String>>,
    tools: HashMap<String, String>,
    denied: Vec<String>,
    tokens: Option<TokenUsage>,
    tool_calls: u64,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Words in a tool error that mean the tool was refused rather than failed.
fn is_refusal(error: &Value) -> bool {
    let words = format!(
        "{} {}",
        text(error, "type").unwrap_or(""),
        text(error, "message").unwrap_or("")
    )
    .to_lowercase();
    [
        "denied",
        "not allowed",
        "rejected",
        "declined",
        "permission",
    ]
    .iter()
    .any(|w| words.contains(w))
}

impl EventParser for Events {
    fn line(&mut self, line: &[u8], progress: &mut dyn FnMut(&str)) {
        let Ok(event) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let kind = text(&event, "type").unwrap_or("");
        let assistant = kind == "message" && text(&event, "role") == Some("assistant");
        if !assistant {
            let pending = std::mem::take(&mut self.unshown);
            if !pending.trim().is_empty() {
                progress(pending.trim());
            }
        }
        match kind {
            "init" => {
                if let Some(id) = text(&event, "session_id") {
                    self.session_id = Some(id.to_string());
                }
            }
            "message" if text(&event, "role") == Some("assistant") => {
                let content = text(&event, "content").unwrap_or("");
                self.answer.push_str(content);
                self.unshown.push_str(content);
            }
            "tool_use" => {
                let name = text(&event, "tool_name").unwrap_or("?");
                if let Some(id) = text(&event, "tool_id") {
                    self.tools.insert(id.to_string(), name.to_string());
                }
                self.tool_calls += 1;
                progress(&format!("Using tool: {name}"));
            }
            "tool_result" => {
                self.answer.clear();
                if text(&event, "status") == Some("error")
                    && event.get("error").is_some_and(is_refusal)
                {
                    let id = text(&event, "tool_id").unwrap_or("");
                    let name = self
                        .tools
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| id.to_string());
                    self.denied
                        .push(crate::text::first_chars(&name, 100).to_string());
                }
            }
            "result" => {
                let stats = event.get("stats").unwrap_or(&Value::Null);
                let n = |k: &str| stats.get(k).and_then(Value::as_u64);
                self.tokens = Some(TokenUsage {
                    input_tokens: n("input_tokens").unwrap_or(0),
                    output_tokens: n("output_tokens").unwrap_or(0),
                    cached_input_tokens: n("cached"),
                });
                self.result = Some(match text(&event, "status") {
                    Some("success") => Ok(()),
                    _ => Err(event
                        .get("error")
                        .and_then(|e| text(e, "message"))
                        .unwrap_or("gemini reported an error")
                        .to_string()),
                });
            }
            _ => {}
        }
    }

    fn session_id(&self) -> Option<String> {
        self.session_id.clone()
    }

    fn answered(&self) -> bool {
        matches!(self.result, Some(Ok(())))
    }

    fn finish(&mut self, code: i32, stderr: &str) -> DispatchResult {
        let agent = self.agent.as_str();
        if self.answered() && code == 0 {
            let mut r = DispatchResult {
                agent: agent.to_string(),
                success: true,
                result: self.answer.trim().to_string(),
                session_id: self.session_id.clone(),
                num_turns: Some(self.tool_calls + 1),
                tokens: self.tokens,
                ..DispatchResult::default()
            };
            events::with_denied(&mut r, std::mem::take(&mut self.denied), |refused| {
                format!(
                    "{refused}. The result may be incomplete. To allow them, list them in allowed_tools (agent-dispatch update {agent} --allowed-tools ...) or set permission_mode bypassPermissions for trusted projects."
                )
            });
            return r;
        }
        let tail = events::stderr_tail(stderr, 2000);
        if code == 42 && tail.contains("Error resuming session") {
            return events::unknown_session(agent, tail, " for this project");
        }
        let error = match &self.result {
            Some(Err(message)) => message.clone(),
            _ if code == 41 => format!(
                "gemini is not signed in (exit 41): {}",
                if tail.is_empty() {
                    "no auth method"
                } else {
                    &tail
                }
            ),
            _ if !tail.is_empty() => tail,
            _ => format!("gemini exited with code {code} without a result"),
        };
        events::failure(agent, error, self.session_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> (Events, Vec<String>) {
        let mut e = Events {
            agent: "gm".into(),
            ..Events::default()
        };
        let seen = events::feed(&mut e, lines);
        (e, seen)
    }

    #[test]
    fn the_answer_is_the_text_after_the_last_tool() {
        let (mut e, progress) = feed(&[
            r#"{"type":"init","session_id":"s-1","model":"auto"}"#,
            r#"{"type":"message","role":"user","content":"list"}"#,
            r#"{"type":"message","role":"assistant","content":"Let me look.","delta":true}"#,
            r#"{"type":"tool_use","tool_name":"run_shell_command","tool_id":"t1","parameters":{}}"#,
            r#"{"type":"tool_result","tool_id":"t1","status":"success","output":"a"}"#,
            r#"{"type":"message","role":"assistant","content":"Two files.","delta":true}"#,
            r#"{"type":"result","status":"success","stats":{"input_tokens":2700,"output_tokens":90}}"#,
        ]);
        assert_eq!(
            progress,
            [
                "Let me look.",
                "Using tool: run_shell_command",
                "Two files."
            ]
        );
        let r = e.finish(0, "");
        assert!(r.success);
        assert_eq!(r.result, "Two files.");
        assert_eq!(r.session_id.as_deref(), Some("s-1"));
        assert_eq!(r.tokens.map(|t| t.input_tokens), Some(2700));
    }

    #[test]
    fn deltas_are_one_progress_line_per_message() {
        // As gemini 0.61.0 streams an answer that arrived in two API chunks.
        let (_, progress) = feed(&[
            r#"{"type":"message","role":"assistant","content":"Found th","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":"e marker.","delta":true}"#,
            r#"{"type":"tool_use","tool_name":"read_file","tool_id":"r1","parameters":{}}"#,
            r#"{"type":"message","role":"assistant","content":"Done","delta":true}"#,
            r#"{"type":"message","role":"assistant","content":".","delta":true}"#,
            r#"{"type":"result","status":"success","stats":{}}"#,
        ]);
        assert_eq!(
            progress,
            ["Found the marker.", "Using tool: read_file", "Done."]
        );
    }

    #[test]
    fn an_api_error_result_is_a_failure() {
        let (mut e, _) = feed(&[
            r#"{"type":"init","session_id":"s-2"}"#,
            r#"{"type":"result","status":"error","error":{"type":"unknown","message":"[API Error: 400]"},"stats":{}}"#,
        ]);
        let r = e.finish(144, "");
        assert!(!r.success);
        assert_eq!(r.error.as_deref(), Some("[API Error: 400]"));
        assert_eq!(r.session_id.as_deref(), Some("s-2"));
    }

    #[test]
    fn a_refused_tool_is_reported() {
        let (mut e, _) = feed(&[
            r#"{"type":"tool_use","tool_name":"write_file","tool_id":"w"}"#,
            r#"{"type":"tool_result","tool_id":"w","status":"error","error":{"type":"permission_denied","message":"denied"}}"#,
            r#"{"type":"message","role":"assistant","content":"Could not write.","delta":true}"#,
            r#"{"type":"result","status":"success","stats":{}}"#,
        ]);
        let r = e.finish(0, "");
        assert_eq!(r.denied_tools, Some(vec!["write_file".to_string()]));
        assert!(r.hint.is_some());
    }

    #[test]
    fn a_sigterm_exit_zero_without_result_is_not_a_success() {
        let (mut e, _) = feed(&[r#"{"type":"init","session_id":"s"}"#]);
        assert!(!e.finish(0, "").success);
    }
}
