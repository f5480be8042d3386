//! OpenAI Codex (`codex exec`) as a backend. The command line, the mapping of an agent's
//! settings onto Codex's sandbox flags, and the reading of its `--json` events into a
//! `DispatchResult`. Facts about the CLI: shared/codex-cli-samples (codex-cli 0.169.0).
//!
//! - A fresh run: `codex exec --json --skip-git-repo-check <sandbox> [-m M] PROMPT`; Codex picks
//!   the thread id itself and reports it in `thread.started`.
//! - A resume: `codex exec <sandbox> resume ID --json --skip-git-repo-check [-m M] PROMPT`
//!   (`--sandbox` is not a `resume` option, so it goes before `resume`). Codex silently starts
//!   a new thread for an id it does not know unless that id is a UUID, so the thread it reports
//!   is checked against the one asked for.
//! - Permission modes map onto the sandbox: `bypassPermissions` →
//!   `--dangerously-bypass-approvals-and-sandbox`; `acceptEdits` and `auto` →
//!   `--sandbox workspace-write`; anything else (`default`, `plan`, `dontAsk`, `manual`) →
//!   `--sandbox read-only`, which is also what `codex exec` does without a flag.
//! - Codex has no per-tool allow or deny lists and no spending cap: an agent that sets them is
//!   refused at `add`/`update` and at dispatch. It reports tokens, not a cost.

use serde_json::Value;

use super::events::{self, EventParser};
use super::{Backend, CodingCli, Launch, refuse_flag};
use crate::claude::Hooks;
use crate::config::AgentConfig;
use crate::result::{DispatchResult, ErrorType, TokenUsage};
use crate::text::first_chars;

pub struct Codex;

impl CodingCli for Codex {
    fn backend(&self) -> Backend {
        Backend::Codex
    }

    fn install_hint(&self) -> &'static str {
        "Codex CLI not found in PATH. Install: npm install -g @openai/codex (or set settings.backends.codex.command)"
    }

    fn unsupported(&self, agent: &AgentConfig) -> Option<String> {
        if agent.max_budget_usd.is_some_and(|b| b != 0.0) {
            return Some(
                "The codex backend has no spending cap: remove max_budget_usd (agent-dispatch update NAME --max-budget 0)".into(),
            );
        }
        let listed = |l: &Option<Vec<String>>| l.as_ref().is_some_and(|l| !l.is_empty());
        if listed(&agent.allowed_tools) || listed(&agent.disallowed_tools) {
            return Some(
                "The codex backend has no per-tool allow or deny lists: clear allowed_tools and disallowed_tools and choose a permission_mode (default/plan = read-only sandbox, acceptEdits = workspace-write, bypassPermissions = no sandbox)".into(),
            );
        }
        None
    }

    fn args(&self, launch: &Launch<'_>) -> Result<Vec<String>, String> {
        let mut args = vec!["exec".to_string()];
        let sandbox: &[&str] = match launch.permission_mode() {
            Some("bypassPermissions") => &["--dangerously-bypass-approvals-and-sandbox"],
            Some("acceptEdits" | "auto") => &["--sandbox", "workspace-write"],
            _ => &["--sandbox", "read-only"],
        };
        args.extend(sandbox.iter().map(|s| s.to_string()));
        if let Some(id) = launch.resume() {
            refuse_flag("session_id", id, "codex")?;
            args.push("resume".into());
            args.push(id.to_string());
        }
        args.push("--json".into());
        args.push("--skip-git-repo-check".into());
        if let Some(m) = launch.model() {
            refuse_flag("model", m, "codex")?;
            args.push("--model".into());
            args.push(m.to_string());
        }
        args.push(crate::claude::argv::prompt_value(&launch.prompt));
        Ok(args)
    }

    fn run(&self, launch: &Launch<'_>, hooks: Hooks<'_>) -> DispatchResult {
        let args = match self.args(launch) {
            Ok(a) => a,
            Err(e) => return DispatchResult::failure(launch.agent(), ErrorType::CliError, e),
        };
        let mut parser = Events {
            agent: launch.agent().to_string(),
            asked_thread: launch.resume().map(str::to_string),
            ..Events::default()
        };
        events::run_lines(launch, &args, &[], &mut parser, hooks)
    }
}

/// What the `--json` events said so far.
#[derive(Default)]
struct Events {
    agent: String,
    /// The thread a resume asked for.
    asked_thread: Option<String>,
    thread_id: Option<String>,
    /// The text of the last `agent_message`: the answer.
    last_message: Option<String>,
    completed: bool,
    failed: Option<String>,
    /// The last `error` event (Codex also uses them for retries and warnings).
    last_error: Option<String>,
    declined: Vec<String>,
    usage: Option<TokenUsage>,
    turns: u64,
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl EventParser for Events {
    fn line(&mut self, line: &[u8], progress: &mut dyn FnMut(&str)) {
        let Ok(event) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        let item = event.get("item").unwrap_or(&Value::Null);
        match text(&event, "type").unwrap_or("") {
            "thread.started" => self.thread_id = text(&event, "thread_id").map(str::to_string),
            "turn.started" => self.turns += 1,
            "item.started" => match text(item, "type").unwrap_or("") {
                "command_execution" => progress(&format!(
                    "Running: {}",
                    text(item, "command").unwrap_or("?")
                )),
                "file_change" => {
                    let paths: Vec<&str> = item
                        .get("changes")
                        .and_then(Value::as_array)
                        .map(|c| c.iter().filter_map(|c| text(c, "path")).collect())
                        .unwrap_or_default();
                    progress(&format!("Editing: {}", paths.join(", ")));
                }
                "mcp_tool_call" => progress(&format!(
                    "Using tool: {}.{}",
                    text(item, "server").unwrap_or("?"),
                    text(item, "tool").unwrap_or("?")
                )),
                _ => {}
            },
            "item.completed" => match text(item, "type").unwrap_or("") {
                "agent_message" => {
                    let message = text(item, "text").unwrap_or("").to_string();
                    progress(&message);
                    self.last_message = Some(message);
                }
                "reasoning" => progress(text(item, "text").unwrap_or("")),
                "command_execution" if text(item, "status") == Some("declined") => {
                    let command = text(item, "command").unwrap_or("command");
                    self.declined.push(first_chars(command, 100).to_string());
                }
                _ => {}
            },
            "turn.completed" => {
                self.completed = true;
                let usage = event.get("usage").unwrap_or(&Value::Null);
                let n = |k: &str| usage.get(k).and_then(Value::as_u64);
                self.usage = Some(TokenUsage {
                    input_tokens: n("input_tokens").unwrap_or(0),
                    output_tokens: n("output_tokens").unwrap_or(0),
                    cached_input_tokens: n("cached_input_tokens"),
                });
            }
            "turn.failed" => {
                let message = event.get("error").and_then(|e| text(e, "message"));
                self.failed = Some(message.unwrap_or("the turn failed").to_string());
            }
            "error" => self.last_error = text(&event, "message").map(str::to_string),
            _ => {}
        }
    }

    fn session_id(&self) -> Option<String> {
        self.thread_id.clone().or_else(|| self.asked_thread.clone())
    }

    fn answered(&self) -> bool {
        self.completed && self.failed.is_none()
    }

    fn finish(&mut self, code: i32, stderr: &str) -> DispatchResult {
        let agent = self.agent.as_str();
        if let (Some(asked), Some(got)) = (&self.asked_thread, &self.thread_id)
            && asked != got
        {
            let mut r = DispatchResult::failure(
                agent,
                ErrorType::NotFound,
                format!(
                    "codex has no session '{asked}' and started a new one ({got}) instead of resuming it"
                ),
            );
            r.session_id = Some(got.clone());
            r.hint = Some(format!(
                "Continue with dispatch_session(agent='{agent}', session_id='{got}') or start over without a session_id."
            ));
            return r;
        }
        if self.answered() && code == 0 {
            let mut r = DispatchResult {
                agent: agent.to_string(),
                success: true,
                result: self.last_message.clone().unwrap_or_default(),
                session_id: self.thread_id.clone(),
                num_turns: Some(self.turns.max(1)),
                tokens: self.usage,
                ..DispatchResult::default()
            };
            events::with_denied(&mut r, std::mem::take(&mut self.declined), |refused| {
                format!(
                    "{refused} (declined by the sandbox). The result may be incomplete. To allow them, set a wider permission_mode (agent-dispatch update {agent} --permission-mode acceptEdits, or bypassPermissions for trusted projects)."
                )
            });
            return r;
        }
        let tail = events::stderr_tail(stderr, 2000);
        if tail.contains("no rollout found for thread id") {
            return events::unknown_session(agent, tail, " (or was ephemeral)");
        }
        let error = self
            .failed
            .clone()
            .or_else(|| self.last_error.clone())
            .or_else(|| (!tail.is_empty()).then(|| tail.clone()))
            .unwrap_or_else(|| format!("codex exited with code {code} without finishing the turn"));
        // A thread that started stays resumable.
        events::failure(agent, error, self.thread_id.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> (Events, Vec<String>) {
        let mut e = Events {
            agent: "cx".into(),
            ..Events::default()
        };
        let seen = events::feed(&mut e, lines);
        (e, seen)
    }

    #[test]
    fn a_successful_run_reads_the_last_message_thread_and_tokens() {
        let (mut e, progress) = feed(&[
            r#"{"type":"thread.started","thread_id":"t-1"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.started","item":{"id":"item_1","type":"command_execution","command":"/bin/bash -lc ls","status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"All good."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":2400,"cached_input_tokens":2048,"output_tokens":80}}"#,
        ]);
        assert_eq!(progress, ["Running: /bin/bash -lc ls", "All good."]);
        let r = e.finish(0, "Reading additional input from stdin...");
        assert!(r.success, "{r:?}");
        assert_eq!(r.result, "All good.");
        assert_eq!(r.session_id.as_deref(), Some("t-1"));
        assert_eq!(r.tokens.map(|t| t.output_tokens), Some(80));
    }

    #[test]
    fn a_failed_turn_is_a_resumable_failure() {
        let (mut e, _) = feed(&[
            r#"{"type":"thread.started","thread_id":"t-2"}"#,
            r#"{"type":"error","message":"Reconnecting... 1/5"}"#,
            r#"{"type":"turn.failed","error":{"message":"rate limit exceeded"}}"#,
        ]);
        let r = e.finish(1, "");
        assert!(!r.success);
        // The account's limit, with the advice that goes with it.
        assert_eq!(r.error_type, Some(ErrorType::UsageLimit));
        assert!(
            r.error
                .unwrap_or_default()
                .starts_with("rate limit exceeded\n\nHint:")
        );
        assert_eq!(r.session_id.as_deref(), Some("t-2"));
    }

    #[test]
    fn a_resume_that_started_another_thread_is_refused() {
        let mut e = Events {
            agent: "cx".into(),
            asked_thread: Some("wanted".into()),
            ..Events::default()
        };
        for l in [
            r#"{"type":"thread.started","thread_id":"other"}"#,
            r#"{"type":"item.completed","item":{"type":"agent_message","text":"hi"}}"#,
            r#"{"type":"turn.completed","usage":{}}"#,
        ] {
            e.line(l.as_bytes(), &mut |_: &str| {});
        }
        let r = e.finish(0, "");
        assert_eq!(r.error_type, Some(ErrorType::NotFound));
        assert_eq!(r.session_id.as_deref(), Some("other"));
    }

    #[test]
    fn exit_zero_without_a_completed_turn_is_a_failure() {
        let (mut e, _) = feed(&[r#"{"type":"thread.started","thread_id":"t"}"#, "garbage"]);
        let r = e.finish(0, "");
        assert!(!r.success);
        assert!(
            r.error
                .unwrap_or_default()
                .contains("without finishing the turn")
        );
    }
}
