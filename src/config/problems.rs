//! What is wrong with a config that loads: values the loader accepts (so one bad entry never
//! bricks every command) but that would make dispatches fail or mislead a caller. Pure: the
//! caller (`doctor`) prints them; each comes with the command that fixes it.

use super::{Config, PERMISSION_MODES, validate_permission_mode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something will fail until it is fixed (`doctor` exits 1).
    Fail,
    /// Works, but is probably not what the user meant.
    Warn,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub message: String,
    /// A command (or the edit) that makes the problem go away.
    pub fix: String,
}

/// Every problem in `config`, in file order: agents' permission modes, the settings default,
/// then groups (dangling members fail, empty groups warn).
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    let valid = PERMISSION_MODES.join(", ");
    for (name, agent) in config.agents.iter() {
        if let Some(mode) = &agent.permission_mode
            && validate_permission_mode(mode).is_err()
        {
            out.push(Problem {
                severity: Severity::Fail,
                message: format!(
                    "{name}: permission_mode '{mode}' is not one claude accepts; \
                     every dispatch to it fails"
                ),
                fix: format!(
                    "agent-dispatch update {name} --permission-mode default \
                     (valid: {valid}; 'none' clears)"
                ),
            });
        }
    }
    if let Some(mode) = &config.settings.default_permission_mode
        && validate_permission_mode(mode).is_err()
    {
        out.push(Problem {
            severity: Severity::Fail,
            message: format!("settings.default_permission_mode '{mode}' is not one claude accepts"),
            fix: format!(
                "edit default_permission_mode under settings: in agents.yaml (valid: {valid}), \
                 or delete the line"
            ),
        });
    }
    for (name, group) in config.groups.iter() {
        let dangling = group.dangling_members(config);
        if !dangling.is_empty() {
            let removes: Vec<String> = dangling
                .iter()
                .map(|m| format!("--remove-member {m}"))
                .collect();
            out.push(Problem {
                severity: Severity::Fail,
                message: format!(
                    "group {name}: member(s) {} are not configured agents",
                    dangling.join(", ")
                ),
                fix: format!(
                    "agent-dispatch group update {name} {} (or add the agent back: \
                     agent-dispatch add {} DIRECTORY)",
                    removes.join(" "),
                    dangling[0]
                ),
            });
        } else if group.members.is_empty() {
            out.push(Problem {
                severity: Severity::Warn,
                message: format!("group {name}: no members"),
                fix: format!(
                    "agent-dispatch group update {name} --member AGENT[:use_for] \
                     (or agent-dispatch group remove {name})"
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn each_problem_names_its_fix() {
        let c = Config::parse(
            Path::new("a.yaml"),
            b"agents:\n  a:\n    directory: /a\n    permission_mode: yolo\n  b:\n    directory: /b\n    \
              permission_mode: acceptEdits\ngroups:\n  ok:\n    members: [{agent: b}]\n  \
              lost:\n    members: [{agent: b}, {agent: gone}]\n  empty: {}\n\
              settings:\n  default_permission_mode: sudo\n",
        )
        .unwrap();
        let p = problems(&c);
        let summary: Vec<(Severity, &str)> =
            p.iter().map(|p| (p.severity, p.fix.as_str())).collect();
        assert_eq!(p.len(), 4, "{p:#?}");
        assert_eq!(summary[0].0, Severity::Fail);
        assert!(p[0].message.starts_with("a: permission_mode 'yolo'"));
        assert!(
            summary[0]
                .1
                .starts_with("agent-dispatch update a --permission-mode")
        );
        assert!(p[1].message.contains("default_permission_mode 'sudo'"));
        assert_eq!(summary[2].0, Severity::Fail);
        assert!(p[2].message.contains("gone"), "{}", p[2].message);
        assert!(
            summary[2]
                .1
                .starts_with("agent-dispatch group update lost --remove-member gone")
        );
        assert_eq!(summary[3].0, Severity::Warn);
        assert!(
            summary[3]
                .1
                .starts_with("agent-dispatch group update empty --member")
        );
        assert!(problems(&Config::default()).is_empty());
    }
}
