//! `groups:` (0.16.0): named working sets of agents for work that spans projects. A group is a
//! description, not an engine: `description` is for the orchestrating caller and never reaches
//! a member; `shared_context` is facts for members, prepended to the context of a dispatch made
//! with `group=`; `members` name agents, each with an optional `use_for` routing hint.
//!
//! A member naming an agent that does not exist ("dangling") never fails a load — removing a
//! shared agent must not brick every command — it is reported by `doctor` and the group views.

use serde::{Deserialize, Serialize};

use super::{Config, lenient, validate_agent_name};
use crate::pyfmt;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Orchestrator-facing: how to coordinate the group. Never sent to a member.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub description: String,
    /// Member-facing facts, prepended to the context of every dispatch made with this group.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub shared_context: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "members"
    )]
    pub members: Vec<GroupMember>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    #[serde(deserialize_with = "member_agent")]
    pub agent: String,
    /// When to pick this member within the group. Descriptive only.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub use_for: String,
}

/// `members: null` is an empty list.
fn members<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<GroupMember>, D::Error> {
    Ok(Option::<Vec<GroupMember>>::deserialize(d)?.unwrap_or_default())
}

/// A member names an agent with the agent-name rules (0.16.0 refuses the file otherwise).
fn member_agent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let name = lenient::string(d)?;
    validate_agent_name(&name).map_err(serde::de::Error::custom)?;
    Ok(name)
}

impl Config {
    /// The error for a group name this config does not have, listing the ones it has.
    pub fn unknown_group(&self, group: &str) -> String {
        let names: Vec<&str> = self.groups.names().collect();
        let available = if names.is_empty() {
            "(none configured)".to_string()
        } else {
            names.join(", ")
        };
        format!(
            "Unknown group: {}. Available: {available}",
            pyfmt::repr(group)
        )
    }
}

impl Group {
    pub fn has_member(&self, agent: &str) -> bool {
        self.member(agent).is_some()
    }

    pub fn member(&self, agent: &str) -> Option<&GroupMember> {
        self.members.iter().find(|m| m.agent == agent)
    }

    /// Member names that are not agents of `config`: sorted, each once.
    pub fn dangling_members(&self, config: &Config) -> Vec<String> {
        let mut out: Vec<String> = self
            .members
            .iter()
            .filter(|m| !config.agents.contains(&m.agent))
            .map(|m| m.agent.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The text a dispatch with this group prepends to its context; `None` when blank.
    pub fn shared_context(&self) -> Option<&str> {
        Some(self.shared_context.trim()).filter(|t| !t.is_empty())
    }
}

impl Config {
    /// The group a dispatch with `group=NAME` to `agent` uses, or the tool error to return: an
    /// unknown group (listing the others), an empty group, or an agent that is not a member
    /// (listing the members). Check every item before running any (0.16.0 rejects a whole
    /// `dispatch_parallel` call for one bad item).
    pub fn group_for_dispatch(&self, group: &str, agent: &str) -> Result<&Group, String> {
        let Some(g) = self.group(group) else {
            return Err(self.unknown_group(group));
        };
        if g.has_member(agent) {
            return Ok(g);
        }
        if g.members.is_empty() {
            return Err(format!(
                "Group {} has no members yet. Add some with \
                 'agent-dispatch group update {group} --member AGENT'.",
                pyfmt::repr(group)
            ));
        }
        let members: Vec<&str> = g.members.iter().map(|m| m.agent.as_str()).collect();
        Err(format!(
            "Agent {} is not a member of group {}. Members: {}",
            pyfmt::repr(agent),
            pyfmt::repr(group),
            members.join(", ")
        ))
    }
}

impl Group {
    /// The context a member receives for a dispatch with this group (0.16.0's layout): the
    /// shared context as a labelled block, then the call's own context. Without shared context
    /// the call's context is returned unchanged, so `group=` adds nothing it does not need.
    /// Folding it into the context also gives each group its own cache entries.
    pub fn merge_context(&self, group_name: &str, context: &str) -> String {
        let Some(shared) = self.shared_context() else {
            return context.to_string();
        };
        let label = format!("Shared context (group {}):", pyfmt::repr(group_name));
        match context.trim() {
            "" => format!("{label}\n{shared}"),
            own => format!("{label}\n{shared}\n\n{own}"),
        }
    }
}

/// Group names follow the agent-name rule (0.16.0): they label text sent to members.
pub fn validate_group_name(name: &str) -> Result<(), String> {
    validate_agent_name(name).map_err(|e| e.replacen("agent name", "group name", 1))
}

/// `AGENT` or `AGENT:use for this` as the CLI's `--member` takes it. The agent name is checked
/// with the agent-name rules; the hint is trimmed and may contain further colons.
pub fn parse_member_spec(spec: &str) -> Result<GroupMember, String> {
    let (agent, use_for) = match spec.split_once(':') {
        Some((a, u)) => (a.trim(), u.trim()),
        None => (spec.trim(), ""),
    };
    validate_agent_name(agent)?;
    Ok(GroupMember {
        agent: agent.to_string(),
        use_for: use_for.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::InvalidKind;

    fn parse(yaml: &str) -> Result<Config, crate::config::Error> {
        Config::parse(Path::new("a.yaml"), yaml.as_bytes())
    }

    #[test]
    fn groups_load_in_order_with_dangling_members() {
        let c = parse(
            "agents:\n  web:\n    directory: /w\ngroups:\n  shop:\n    description: how\n    \
             shared_context: facts\n    members:\n    - agent: web\n      use_for: code\n    \
             - agent: gone\n    - agent: gone\n  empty:\n",
        )
        .unwrap();
        let names: Vec<&str> = c.groups.names().collect();
        assert_eq!(names, ["shop", "empty"]);
        let shop = c.group("shop").unwrap();
        assert!(shop.has_member("web"));
        assert!(!shop.has_member("nope"));
        assert_eq!(shop.member("web").unwrap().use_for, "code");
        assert_eq!(shop.dangling_members(&c), ["gone"]);
        assert_eq!(shop.shared_context(), Some("facts"));
        assert_eq!(c.group("empty"), Some(&Group::default()));
        assert_eq!(c.groups_with_member("gone"), ["shop"]);
    }

    #[test]
    fn bad_group_and_member_names_refuse_the_file() {
        for yaml in [
            "groups:\n  'bad name':\n    members: []\n",
            "groups:\n  g:\n    members:\n    - agent: 'a b'\n",
            "groups:\n  g:\n    members:\n    - use_for: x\n",
            "groups:\n  g:\n    members: web\n",
        ] {
            let e = parse(yaml).unwrap_err();
            assert_eq!(e.kind(), Some(InvalidKind::Schema), "{yaml}: {e}");
        }
    }

    #[test]
    fn dispatch_checks_membership_and_merges_shared_context() {
        let c = parse(
            "agents:\n  web:\n    directory: /w\n  api:\n    directory: /a\ngroups:\n  shop:\n    \
             shared_context: '  Stack: prod  '\n    members: [{agent: web}]\n  idle: {}\n",
        )
        .unwrap();
        let shop = c.group_for_dispatch("shop", "web").unwrap();
        assert_eq!(
            shop.merge_context("shop", " look at logs "),
            "Shared context (group 'shop'):\nStack: prod\n\nlook at logs"
        );
        assert_eq!(
            shop.merge_context("shop", ""),
            "Shared context (group 'shop'):\nStack: prod"
        );
        assert_eq!(Group::default().merge_context("g", " as is "), " as is ");
        assert_eq!(
            c.group_for_dispatch("shop", "api").unwrap_err(),
            "Agent 'api' is not a member of group 'shop'. Members: web"
        );
        assert_eq!(
            c.group_for_dispatch("nosuch", "web").unwrap_err(),
            "Unknown group: 'nosuch'. Available: shop, idle"
        );
        assert!(
            c.group_for_dispatch("idle", "web")
                .unwrap_err()
                .starts_with("Group 'idle' has no members yet.")
        );
        assert!(
            Config::default()
                .group_for_dispatch("g", "a")
                .unwrap_err()
                .ends_with("Available: (none configured)")
        );
    }

    #[test]
    fn member_specs() {
        assert_eq!(
            parse_member_spec("web: front end: css").unwrap(),
            GroupMember {
                agent: "web".into(),
                use_for: "front end: css".into()
            }
        );
        assert_eq!(parse_member_spec(" api ").unwrap().use_for, "");
        assert!(parse_member_spec("a b:x").is_err());
        assert!(parse_member_spec(":x").is_err());
    }
}
