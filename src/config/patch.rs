//! Rules for changing agents that the CLI and the MCP tools share: name validation (SPEC §2.3),
//! the permission modes today's claude accepts, the tool-list and label CSVs (§7.5 #8 step 5)
//! and [`AgentPatch`], the field-by-field update both `update` surfaces build with their own
//! argument semantics.

use super::AgentConfig;
use crate::backend::Backend;
use crate::pyfmt;

/// Refuses an agent whose settings its backend cannot honour (e.g. a spending cap for Codex),
/// so `add` and `update` never store a configuration every dispatch would refuse.
pub fn check_backend(name: &str, agent: &AgentConfig) -> Result<(), String> {
    match agent.backend.cli().unsupported(agent) {
        Some(why) => Err(format!("Agent '{name}': {why}")),
        None => Ok(()),
    }
}

/// The values `claude --permission-mode` accepts (claude 2.1.x), sorted as messages list them.
/// The reference only warned about others; we refuse them, because claude refuses them and every
/// dispatch to that agent would fail.
pub const PERMISSION_MODES: [&str; 7] = [
    "acceptEdits",
    "auto",
    "bypassPermissions",
    "default",
    "dontAsk",
    "manual",
    "plan",
];

/// `^[a-zA-Z0-9][a-zA-Z0-9_-]*$`, checked when an agent is added.
pub fn validate_agent_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid agent name: {}. Use only letters, digits, hyphens and underscores, \
             starting with a letter or digit.",
            pyfmt::repr(name)
        ))
    }
}

/// `Ok` for one of [`PERMISSION_MODES`] (surrounding blanks ignored) or a blank mode, which
/// means "not set"; otherwise the message every surface shows, listing the valid ones.
pub fn validate_permission_mode(mode: &str) -> Result<(), String> {
    let mode = mode.trim();
    if mode.is_empty() || PERMISSION_MODES.contains(&mode) {
        return Ok(());
    }
    Err(format!(
        "Invalid permission_mode: {}. Valid values: {}",
        pyfmt::repr(mode),
        PERMISSION_MODES.join(", ")
    ))
}

/// A tool list given as text: `""` → `None` (inherit); otherwise split on `,`, trim, drop empty
/// items, so `" , "` is an explicit empty list.
pub fn parse_tool_csv(csv: &str) -> Option<Vec<String>> {
    if csv.is_empty() {
        return None;
    }
    Some(
        csv.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// Capability labels given as text (`docker_logs, deploy_debug`): split on `,`, trimmed, empty
/// items and repeats dropped. Like the reference, the snake_case convention is not enforced.
pub fn parse_labels(csv: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for label in csv.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !out.iter().any(|l| l == label) {
            out.push(label.to_string());
        }
    }
    out
}

/// Changes to one agent. `None` leaves a field alone; for the clearable fields `Some(None)`
/// clears (for tool lists: back to inheriting the settings default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentPatch {
    pub description: Option<String>,
    pub timeout: Option<u64>,
    pub max_budget_usd: Option<Option<f64>>,
    pub model: Option<Option<String>>,
    pub permission_mode: Option<Option<String>>,
    pub allowed_tools: Option<Option<Vec<String>>>,
    pub disallowed_tools: Option<Option<Vec<String>>>,
    pub backend: Option<Backend>,
    /// `Some(vec![])` clears.
    pub capabilities: Option<Vec<String>>,
    pub risky_capabilities: Option<Vec<String>>,
    /// `Some(String::new())` clears.
    pub instructions: Option<String>,
    /// `Some(None)` makes the agent local again.
    pub host: Option<Option<String>>,
}

impl AgentPatch {
    /// True when applying it would change nothing ("Nothing to update").
    pub fn is_empty(&self) -> bool {
        *self == AgentPatch::default()
    }

    /// Applies the patch; returns the names of the fields it set, in SPEC §7.5 #10 order.
    pub fn apply(&self, agent: &mut AgentConfig) -> Vec<&'static str> {
        let mut fields = Vec::new();
        if let Some(d) = &self.description {
            agent.description = d.clone();
            fields.push("description");
        }
        if let Some(t) = self.timeout {
            agent.timeout = t;
            fields.push("timeout");
        }
        if let Some(b) = self.max_budget_usd {
            agent.max_budget_usd = b;
            fields.push("max_budget_usd");
        }
        if let Some(m) = &self.model {
            agent.model = m.clone();
            fields.push("model");
        }
        if let Some(p) = &self.permission_mode {
            agent.permission_mode = p.clone();
            fields.push("permission_mode");
        }
        if let Some(t) = &self.allowed_tools {
            agent.allowed_tools = t.clone();
            fields.push("allowed_tools");
        }
        if let Some(t) = &self.disallowed_tools {
            agent.disallowed_tools = t.clone();
            fields.push("disallowed_tools");
        }
        if let Some(b) = self.backend {
            agent.backend = b;
            fields.push("backend");
        }
        if let Some(c) = &self.capabilities {
            agent.capabilities = c.clone();
            fields.push("capabilities");
        }
        if let Some(c) = &self.risky_capabilities {
            agent.risky_capabilities = c.clone();
            fields.push("risky_capabilities");
        }
        if let Some(i) = &self.instructions {
            agent.instructions = i.clone();
            fields.push("instructions");
        }
        if let Some(h) = &self.host {
            agent.host = h.clone();
            fields.push("host");
        }
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn agent_names_follow_the_pattern() {
        for ok in ["a", "A1", "my-agent_2", "0x"] {
            assert_eq!(validate_agent_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "_a", "a b", "a/b", "é", "a.b", "a\n"] {
            let err = validate_agent_name(bad).unwrap_err();
            assert!(err.starts_with("Invalid agent name: '"), "{err}");
        }
        assert!(
            validate_agent_name("a b")
                .unwrap_err()
                .starts_with("Invalid agent name: 'a b'.")
        );
    }

    #[test]
    fn permission_modes_of_todays_claude() {
        for ok in [
            "",
            "  ",
            " plan ",
            "acceptEdits",
            "auto",
            "dontAsk",
            "manual",
        ] {
            assert_eq!(validate_permission_mode(ok), Ok(()), "{ok:?}");
        }
        for bad in ["yolo", "acceptedits", "Plan", "bypass"] {
            assert!(validate_permission_mode(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_permission_mode(" yolo ").unwrap_err(),
            "Invalid permission_mode: 'yolo'. Valid values: acceptEdits, auto, \
             bypassPermissions, default, dontAsk, manual, plan"
        );
    }

    #[test]
    fn labels_are_trimmed_and_deduplicated() {
        assert_eq!(parse_labels(""), Vec::<String>::new());
        assert_eq!(parse_labels(" , "), Vec::<String>::new());
        assert_eq!(
            parse_labels("docker_logs, deploy_debug,,docker_logs"),
            ["docker_logs", "deploy_debug"]
        );
    }

    #[test]
    fn tool_csv_is_tri_state() {
        assert_eq!(parse_tool_csv(""), None);
        assert_eq!(parse_tool_csv(" , "), Some(vec![]));
        assert_eq!(
            parse_tool_csv("Bash, Read,,Edit "),
            Some(vec!["Bash".into(), "Read".into(), "Edit".into()])
        );
    }

    #[test]
    fn patch_reports_fields_in_order_and_clears() {
        let mut a = AgentConfig::new(PathBuf::from("/x"));
        a.model = Some("opus".into());
        a.allowed_tools = Some(vec!["Bash".into()]);
        let p = AgentPatch {
            disallowed_tools: Some(Some(vec![])),
            model: Some(None),
            description: Some("d".into()),
            allowed_tools: Some(None),
            timeout: Some(60),
            ..AgentPatch::default()
        };
        assert_eq!(
            p.apply(&mut a),
            [
                "description",
                "timeout",
                "model",
                "allowed_tools",
                "disallowed_tools"
            ]
        );
        assert_eq!(a.model, None);
        assert_eq!(a.allowed_tools, None);
        assert_eq!(a.disallowed_tools, Some(vec![]));
        assert_eq!(a.timeout, 60);
        assert!(AgentPatch::default().is_empty());
        assert!(!p.is_empty());
    }
}
