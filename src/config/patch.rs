//! Rules for changing agents that the CLI and the MCP tools share: name validation (SPEC §2.3),
//! permission-mode warnings (§2.4), the tool-list CSV (§7.5 #8 step 5) and [`AgentPatch`], the
//! field-by-field update both `update` surfaces build with their own argument semantics.

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

/// The permission modes SPEC §2.4 knows, sorted as the warning lists them.
pub const KNOWN_PERMISSION_MODES: [&str; 3] = ["bypassPermissions", "default", "plan"];

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

/// `Some(warning)` for a non-blank mode outside [`KNOWN_PERMISSION_MODES`]; never an error.
pub fn permission_mode_warning(mode: &str) -> Option<String> {
    let mode = mode.trim();
    if mode.is_empty() || KNOWN_PERMISSION_MODES.contains(&mode) {
        return None;
    }
    Some(format!(
        "Unknown permission_mode: {}. Known values: {}",
        pyfmt::repr(mode),
        KNOWN_PERMISSION_MODES.join(", ")
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
    fn permission_mode_warnings() {
        assert_eq!(permission_mode_warning(""), None);
        assert_eq!(permission_mode_warning("  "), None);
        assert_eq!(permission_mode_warning(" plan "), None);
        assert_eq!(
            permission_mode_warning(" yolo ").as_deref(),
            Some("Unknown permission_mode: 'yolo'. Known values: bypassPermissions, default, plan")
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
