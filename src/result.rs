//! `DispatchResult`: the one value every dispatch produces (SPEC §2.5), shared by the runner,
//! the cache, the job store and the MCP tools. Field order is the serialisation order; absent
//! optional fields are omitted, never `null`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::Outcome;

/// Why a dispatch failed. The wire strings come from here and nowhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    Permission,
    Timeout,
    Recursion,
    NotFound,
    CliError,
    /// The CLI stopped at `--max-budget-usd` (`subtype: error_max_budget_usd`).
    Budget,
    /// The run was cancelled by the caller (MCP cancellation or `dispatch_cancel`).
    Cancelled,
    /// The account's session or rate limit: every agent shares it, so another agent will not
    /// help; it clears at a stated time.
    UsageLimit,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Permission => "permission",
            ErrorType::Timeout => "timeout",
            ErrorType::Recursion => "recursion",
            ErrorType::NotFound => "not_found",
            ErrorType::CliError => "cli_error",
            ErrorType::Budget => "budget",
            ErrorType::Cancelled => "cancelled",
            ErrorType::UsageLimit => "usage_limit",
        }
    }
}

impl std::fmt::Display for ErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DispatchResult {
    pub agent: String,
    pub success: bool,
    #[serde(default)]
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parsed_result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denied_tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Set when the CLI stopped at the budget cap or reported a cost above it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub budget_exceeded: bool,
    /// The agent's own verdict from its final `STATUS:` line (the dispatch protocol asks for
    /// one); never changes `success`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Token counts, from a CLI that reports tokens rather than a cost (Codex, Gemini).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenUsage>,
}

/// What a run used, in tokens, as its CLI reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
}

impl DispatchResult {
    /// A failure with no output from the CLI (pre-flight refusals, spawn errors, timeouts).
    pub fn failure(agent: &str, error_type: ErrorType, error: impl Into<String>) -> Self {
        DispatchResult {
            agent: agent.to_string(),
            success: false,
            error: Some(error.into()),
            error_type: Some(error_type),
            ..DispatchResult::default()
        }
    }

    pub fn to_json(&self) -> Value {
        // A struct of plain fields always serialises.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_are_omitted_and_order_is_kept() {
        let r = DispatchResult {
            agent: "a".into(),
            success: true,
            result: "hi".into(),
            session_id: Some("s".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap_or_default(),
            r#"{"agent":"a","success":true,"result":"hi","session_id":"s"}"#
        );
    }

    #[test]
    fn failure_carries_error_type_string() {
        let r = DispatchResult::failure("a", ErrorType::NotFound, "gone");
        let v = r.to_json();
        assert_eq!(v["error_type"], "not_found");
        assert_eq!(v["success"], false);
        assert_eq!(v["result"], "");
    }
}
