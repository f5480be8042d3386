//! Writing `agents.yaml` back without losing what this version does not understand. A newer
//! reference (or a hand edit) may put keys anywhere — top level, `settings`, an agent, a group,
//! a group member — and a save must keep them, in place, so two tools can share one file.
//!
//! The rule, applied level by level: a value that did not change since the file was read is
//! written exactly as it was read (`timeout: "30"` stays a string, an agent inheriting from a
//! `<<:` merge keeps inheriting); a changed value is written as the model renders it; a key the
//! model dropped (an agent removed, a field cleared) goes; any other key stays where it was.
//! Group members are matched by their `agent` name, so editing one member keeps the unknown
//! keys of the others. YAML comments and anchors are not kept: the parser does not report them.

use std::sync::Arc;

use serde_yaml_ng::{Mapping, Value};

use super::Config;

/// The document a [`Config`] was read from; `None` for a config built in memory.
#[derive(Clone, Default)]
pub(super) struct Origin(Option<Arc<Value>>);

impl Origin {
    pub(super) fn of(raw: Value) -> Origin {
        Origin(Some(Arc::new(raw)))
    }

    /// `typed` (the model rendered as YAML) laid over the document it was read from.
    pub(super) fn overlay(&self, typed: Value) -> Result<Value, serde_yaml_ng::Error> {
        let Some(raw) = &self.0 else {
            return Ok(typed);
        };
        // What the model looked like when read: parse the same document again. Only saves pay.
        let mut merged = Value::clone(raw);
        merged.apply_merge()?;
        let read: Option<Config> = serde_yaml_ng::from_value(merged)?;
        let read = serde_yaml_ng::to_value(read.unwrap_or_default())?;
        Ok(overlay(raw, &read, &typed))
    }
}

/// Every config compares equal whatever file it came from: the origin is not part of its value.
impl PartialEq for Origin {
    fn eq(&self, _: &Origin) -> bool {
        true
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Origin(file)"
        } else {
            "Origin(new)"
        })
    }
}

/// `raw` as written, `read` the model's rendering of it, `new` the model's rendering now.
fn overlay(raw: &Value, read: &Value, new: &Value) -> Value {
    if read == new {
        return raw.clone();
    }
    match (raw, read, new) {
        (Value::Mapping(r), Value::Mapping(o), Value::Mapping(n)) => Value::Mapping(maps(r, o, n)),
        (Value::Sequence(r), Value::Sequence(o), Value::Sequence(n)) if is_member_list(n) => {
            Value::Sequence(members(r, o, n))
        }
        _ => new.clone(),
    }
}

fn maps(raw: &Mapping, read: &Mapping, new: &Mapping) -> Mapping {
    // A key the model dropped is written as `null` where a merge could otherwise supply it.
    let merges = raw.keys().any(|k| key_text(k).as_deref() == Some("<<"));
    let mut out = Mapping::new();
    for (key, raw_value) in raw {
        let text = key_text(key);
        let was = text.as_deref().and_then(|t| lookup(read, t));
        match text.as_deref().and_then(|t| lookup(new, t)) {
            Some(now) => {
                let was = was.cloned().unwrap_or(Value::Null);
                out.insert(key.clone(), overlay(raw_value, &was, now));
            }
            None if was.is_some() => {
                if merges {
                    out.insert(key.clone(), Value::Null);
                }
            }
            None => {
                out.insert(key.clone(), raw_value.clone());
            }
        }
    }
    for (key, now) in new {
        let Some(text) = key_text(key) else { continue };
        if lookup(raw, &text).is_some() {
            continue;
        }
        match lookup(read, &text) {
            // Rendered from a default the file never spelled out, and still the default.
            Some(was) if was == now => {}
            // A section the file left to defaults: only what changed in it.
            Some(Value::Mapping(was)) => match now {
                Value::Mapping(n) => {
                    out.insert(key.clone(), Value::Mapping(maps(&Mapping::new(), was, n)));
                }
                _ => {
                    out.insert(key.clone(), now.clone());
                }
            },
            _ => {
                out.insert(key.clone(), now.clone());
            }
        }
    }
    if merges {
        for key in read.keys() {
            let Some(text) = key_text(key) else { continue };
            if lookup(new, &text).is_none() && lookup(raw, &text).is_none() {
                out.insert(key.clone(), Value::Null);
            }
        }
    }
    out
}

/// A list of group members: mappings that each name an `agent`.
fn is_member_list(items: &[Value]) -> bool {
    items
        .iter()
        .all(|i| i.as_mapping().is_some_and(|m| lookup(m, "agent").is_some()))
}

fn member_name(item: &Value) -> Option<String> {
    item.as_mapping()
        .and_then(|m| lookup(m, "agent"))
        .and_then(key_text)
}

/// New members in their new order; each one that was already there keeps its unknown keys.
fn members(raw: &[Value], read: &[Value], new: &[Value]) -> Vec<Value> {
    // `read` was rendered from `raw` item by item, so the two line up by index.
    let mut unused: Vec<Option<(&Value, &Value)>> = raw.iter().zip(read).map(Some).collect();
    new.iter()
        .map(|item| {
            let name = member_name(item);
            let found = unused.iter_mut().find(|slot| {
                slot.is_some_and(|(_, was)| name.is_some() && member_name(was) == name)
            });
            match found.and_then(Option::take) {
                Some((raw_item, was)) => overlay(raw_item, was, item),
                None => item.clone(),
            }
        })
        .collect()
}

fn lookup<'a>(map: &'a Mapping, text: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| key_text(k).as_deref() == Some(text))
        .map(|(_, v)| v)
}

/// A scalar key as the loader reads it (`123:` names agent "123").
fn key_text(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{AgentConfig, Config, Group, GroupMember};

    fn parse(yaml: &str) -> Config {
        Config::parse(Path::new("a.yaml"), yaml.as_bytes()).unwrap()
    }

    fn yaml(yaml: &str) -> serde_yaml_ng::Value {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const RICH: &str = "\
future_top: {x: 1}
agents:
  alpha:
    directory: /a
    timeout: '30'
    future_agent: [1, 2]
    capabilities: [docker_logs]
  beta:
    directory: /b
groups:
  shop:
    description: d
    future_group: true
    members:
    - agent: alpha
      use_for: code
      future_member: 7
    - agent: beta
settings:
  future_setting: keep
  dispatch_protocol: false
  cache:
    enabled: yes
    future_cache: 1
";

    #[test]
    fn an_untouched_config_is_written_as_read() {
        let c = parse(RICH);
        assert_eq!(yaml(&c.to_yaml().unwrap()), yaml(RICH));
    }

    #[test]
    fn changes_keep_unknown_keys_at_every_level() {
        let mut c = parse(RICH);
        c.agents.get_mut("alpha").unwrap().model = Some("opus".into());
        c.agents.remove("beta");
        c.agents
            .insert("gamma".into(), AgentConfig::new("/g".into()));
        let g = c.groups.get_mut("shop").unwrap();
        g.shared_context = "facts".into();
        g.members.reverse();
        g.members.push(GroupMember {
            agent: "gamma".into(),
            use_for: String::new(),
        });
        c.settings.usage_log = false;
        let out = yaml(&c.to_yaml().unwrap());
        assert_eq!(out["future_top"], yaml("{x: 1}"));
        let alpha = &out["agents"]["alpha"];
        assert_eq!(
            alpha["timeout"],
            yaml("'30'"),
            "unchanged values stay as written"
        );
        assert_eq!(alpha["future_agent"], yaml("[1, 2]"));
        assert_eq!(alpha["model"], yaml("opus"));
        assert!(out["agents"].get("beta").is_none());
        assert_eq!(out["agents"]["gamma"]["directory"], yaml("/g"));
        let shop = &out["groups"]["shop"];
        assert_eq!(shop["future_group"], yaml("true"));
        assert_eq!(shop["shared_context"], yaml("facts"));
        assert_eq!(shop["members"][0], yaml("{agent: beta}"));
        assert_eq!(
            shop["members"][1],
            yaml("{agent: alpha, use_for: code, future_member: 7}")
        );
        assert_eq!(shop["members"][2], yaml("{agent: gamma}"));
        let s = &out["settings"];
        assert_eq!(s["future_setting"], yaml("keep"));
        assert_eq!(s["cache"]["enabled"], yaml("yes"));
        assert_eq!(s["cache"]["future_cache"], yaml("1"));
        assert_eq!(s["usage_log"], yaml("false"));
        assert_eq!(s["dispatch_protocol"], yaml("false"));
        let back = parse(&c.to_yaml().unwrap());
        assert_eq!(back, c, "the model reads back what it wrote");
    }

    #[test]
    fn a_file_without_settings_stays_without_them() {
        let mut c = parse("agents:\n  a:\n    directory: /a\n");
        c.agents.get_mut("a").unwrap().timeout = 5;
        let text = c.to_yaml().unwrap();
        assert_eq!(text, "agents:\n  a:\n    directory: /a\n    timeout: 5\n");
        c.settings.cache.ttl = 9;
        let out = yaml(&c.to_yaml().unwrap());
        assert_eq!(out["settings"], yaml("{cache: {ttl: 9}}"));
    }

    #[test]
    fn a_cleared_field_inherited_through_a_merge_is_written_as_null() {
        let mut c = parse("x: &d\n  model: haiku\n  directory: /t\nagents:\n  a:\n    <<: *d\n");
        assert_eq!(c.agent("a").unwrap().model.as_deref(), Some("haiku"));
        c.agents.get_mut("a").unwrap().model = None;
        let back = parse(&c.to_yaml().unwrap());
        assert_eq!(back.agent("a").unwrap().model, None);
        assert_eq!(back.agent("a").unwrap().directory, Path::new("/t"));
    }

    #[test]
    fn numeric_names_are_matched_as_text() {
        let mut c = parse("agents:\n  123:\n    directory: /a\n    x: 1\n");
        c.agents.get_mut("123").unwrap().timeout = 7;
        let text = c.to_yaml().unwrap();
        let back = parse(&text);
        assert_eq!(back.agents.len(), 1, "{text}");
        assert_eq!(back.agent("123").unwrap().timeout, 7);
        assert!(text.contains("x: 1"), "{text}");
    }

    #[test]
    fn a_new_group_is_written_without_empty_fields() {
        let mut c = parse("agents: {}\n");
        c.groups.insert(
            "g".into(),
            Group {
                members: vec![GroupMember {
                    agent: "a".into(),
                    use_for: String::new(),
                }],
                ..Group::default()
            },
        );
        assert_eq!(
            c.to_yaml().unwrap(),
            "agents: {}\ngroups:\n  g:\n    members:\n    - agent: a\n"
        );
    }
}
