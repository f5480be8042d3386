//! `completion/complete`: agent names for prompt arguments and the `agents/{name}` template,
//! group names for the `groups/{name}` template,
//! job ids (newest first) for the `jobs/{id}` and `results/{id}` templates, filtered by the
//! typed prefix. `fan_out`'s `agents` is a comma-separated list: its last item is completed and
//! the items before it are kept. At most 100 values, with `total` and `hasMore`.

use serde_json::{Value, json};

use super::prompts::{self, split_names};
use super::resources::{RpcResult, SCHEME, invalid};
use crate::app::App;

/// MCP's cap on values in one answer.
const MAX_VALUES: usize = 100;

fn agent_names(app: &App) -> Vec<String> {
    app.config()
        .map(|c| c.agents.names().map(str::to_string).collect())
        .unwrap_or_default()
}

fn group_names(app: &App) -> Vec<String> {
    app.config()
        .map(|c| c.groups.names().map(str::to_string).collect())
        .unwrap_or_default()
}

fn job_ids(app: &App) -> Vec<String> {
    app.jobs()
        .ok()
        .and_then(|s| s.list(None).ok())
        .map(|l| l.jobs.into_iter().map(|j| j.id).collect())
        .unwrap_or_default()
}

/// What a reference's argument completes to, before filtering.
enum Source {
    Agents,
    Groups,
    /// A comma-separated list of agents.
    AgentList,
    Jobs,
    Nothing,
}

fn source(reference: &Value, argument: &str) -> Result<Source, (super::msg::ErrorCode, String)> {
    match reference.get("type").and_then(Value::as_str) {
        Some("ref/prompt") => {
            let name = reference.get("name").and_then(Value::as_str).unwrap_or("");
            if prompts::lookup(name).is_none() {
                return Err(invalid(format!("Invalid params: unknown prompt {name:?}")));
            }
            Ok(match argument {
                "agent" => Source::Agents,
                "agents" => Source::AgentList,
                _ => Source::Nothing,
            })
        }
        Some("ref/resource") => {
            let uri = reference.get("uri").and_then(Value::as_str).unwrap_or("");
            let template = uri.strip_prefix(SCHEME).unwrap_or("");
            Ok(match (template, argument) {
                ("agents/{name}", "name") => Source::Agents,
                ("groups/{name}", "name") => Source::Groups,
                ("jobs/{id}" | "results/{id}", "id") => Source::Jobs,
                ("agents/{name}" | "groups/{name}" | "jobs/{id}" | "results/{id}", _) => {
                    Source::Nothing
                }
                _ => {
                    return Err(invalid(format!(
                        "Invalid params: unknown resource template {uri:?}"
                    )));
                }
            })
        }
        _ => Err(invalid(
            "Invalid params: ref must be {\"type\": \"ref/prompt\", \"name\"} or {\"type\": \"ref/resource\", \"uri\"}",
        )),
    }
}

/// `completion/complete`.
pub fn complete(app: &App, params: &Value) -> RpcResult {
    let reference = params.get("ref").unwrap_or(&Value::Null);
    let argument = params.get("argument").unwrap_or(&Value::Null);
    let (Some(name), Some(value)) = (
        argument.get("name").and_then(Value::as_str),
        argument.get("value").and_then(Value::as_str),
    ) else {
        return Err(invalid(
            "Invalid params: argument must be {\"name\": string, \"value\": string}",
        ));
    };
    let (kept, prefix, candidates) = match source(reference, name)? {
        Source::Agents => (String::new(), value, agent_names(app)),
        Source::Groups => (String::new(), value, group_names(app)),
        Source::Jobs => (String::new(), value, job_ids(app)),
        Source::AgentList => {
            let (before, last) = value.rsplit_once(',').unwrap_or(("", value));
            let chosen = split_names(before);
            let kept: String = chosen.iter().map(|n| format!("{n},")).collect();
            let rest = agent_names(app)
                .into_iter()
                .filter(|n| !chosen.contains(n))
                .collect();
            (kept, last.trim_start(), rest)
        }
        Source::Nothing => (String::new(), value, Vec::new()),
    };
    let matching: Vec<String> = candidates
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .map(|c| format!("{kept}{c}"))
        .collect();
    let total = matching.len();
    let values: Vec<String> = matching.into_iter().take(MAX_VALUES).collect();
    Ok(json!({ "completion": {
        "values": values,
        "total": total,
        "hasMore": total > MAX_VALUES,
    }}))
}
