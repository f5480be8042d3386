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

impl crate::schema::Schema for ErrorType {
    fn schema() -> Value {
        use ErrorType::*;
        let all = [
            Permission, Timeout, Recursion, NotFound, CliError, Budget, Cancelled, UsageLimit,
        ];
        let names: Vec<&str> = all.iter().map(|t| t.as_str()).collect();
        crate::schema::one_of_strings(&names)
    }
}

impl DispatchResult {
    /// The properties every result-shaped object shares (a `RefPayload` copies most of them).
    pub(crate) fn common_properties() -> Vec<(&'static str, Value)> {
        use crate::schema::{Schema, array, boolean, integer, number, string};
        vec![
            ("agent", string()),
            ("success", boolean()),
            ("session_id", string()),
            ("cost_usd", number()),
            ("duration_ms", integer()),
            ("num_turns", integer()),
            ("error", string()),
            ("error_type", ErrorType::schema()),
            ("parsed_result", crate::schema::any()),
            ("denied_tools", array(string())),
            ("hint", string()),
            ("budget_exceeded", boolean()),
            ("outcome", Outcome::schema()),
            ("tokens", TokenUsage::schema()),
        ]
    }
}

impl crate::schema::Schema for TokenUsage {
    fn schema() -> Value {
        use crate::schema::integer;
        crate::schema::object(
            &[
                ("input_tokens", integer()),
                ("output_tokens", integer()),
                ("cached_input_tokens", integer()),
            ],
            &["input_tokens", "output_tokens"],
        )
    }
}

impl crate::schema::Schema for DispatchResult {
    fn schema() -> Value {
        let mut props = DispatchResult::common_properties();
        props.push(("result", crate::schema::string()));
        crate::schema::object(&props, &["agent", "success", "result"])
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

    #[test]
    fn every_field_is_in_the_schema() {
        use crate::schema::{Schema, validate};
        let full = DispatchResult {
            agent: "a".into(),
            success: false,
            result: "r".into(),
            session_id: Some("s".into()),
            cost_usd: Some(0.1),
            duration_ms: Some(3),
            num_turns: Some(2),
            error: Some("e".into()),
            error_type: Some(ErrorType::Budget),
            parsed_result: Some(serde_json::json!({"k": [1]})),
            denied_tools: Some(vec!["Bash".into()]),
            hint: Some("h".into()),
            budget_exceeded: true,
            outcome: Some(Outcome::Partial),
            tokens: Some(TokenUsage {
                input_tokens: 1,
                output_tokens: 2,
                cached_input_tokens: Some(0),
            }),
        };
        assert_eq!(validate(&DispatchResult::schema(), &full.to_json()), Ok(()));
        let mut v = full.to_json();
        v["surprise"] = serde_json::json!(1);
        assert!(validate(&DispatchResult::schema(), &v).is_err());
    }
}
