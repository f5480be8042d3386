//! MCP resources: `agent-dispatch://agents/{name}` and `agent-dispatch://groups/{name}` (what
//! `inspect_agent` and `inspect_group` return, listed by `resources/list`), `agent-dispatch://jobs/{id}` (a job record) and
//! `agent-dispatch://results/{id}` (a stored result's text, `text/markdown`), the last two offered
//! as resource templates. Also the `resource_link` items a tool result carries, and the
//! fingerprint of a resource that the subscription watcher (`watch`) compares between polls.

use serde_json::{Value, json};

use super::msg::ErrorCode;
use super::tools;
use crate::app::App;
use crate::jobs::{self, Job};

pub const SCHEME: &str = "agent-dispatch://";
/// Agents per `resources/list` page.
const PAGE: usize = 100;
/// `preview_lines` of the agent resource: `inspect_agent`'s default.
const PREVIEW_LINES: i64 = 40;

/// A request's outcome: the result, or a JSON-RPC error.
pub type RpcResult = Result<Value, (ErrorCode, String)>;

pub fn invalid(message: impl Into<String>) -> (ErrorCode, String) {
    (ErrorCode::InvalidParams, message.into())
}

fn not_found(uri: &str, why: &str) -> (ErrorCode, String) {
    (
        ErrorCode::ResourceNotFound,
        format!("Resource not found: {uri} ({why})"),
    )
}

/// One of our resources, named by its URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri {
    Agent(String),
    Group(String),
    Job(String),
    Result(String),
}

impl Uri {
    pub fn parse(uri: &str) -> Option<Uri> {
        let rest = uri.strip_prefix(SCHEME)?;
        let (kind, key) = rest.split_once('/')?;
        let key = decode(key)?;
        if key.is_empty() {
            return None;
        }
        match kind {
            "agents" => Some(Uri::Agent(key)),
            "groups" => Some(Uri::Group(key)),
            "jobs" if jobs::valid_id(&key) => Some(Uri::Job(key)),
            "results" if jobs::valid_id(&key) => Some(Uri::Result(key)),
            _ => None,
        }
    }

    pub fn to_uri(&self) -> String {
        match self {
            Uri::Agent(name) => format!("{SCHEME}agents/{}", encode(name)),
            Uri::Group(name) => format!("{SCHEME}groups/{}", encode(name)),
            Uri::Job(id) => format!("{SCHEME}jobs/{id}"),
            Uri::Result(id) => format!("{SCHEME}results/{id}"),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (agent names made by hand in
/// `agents.yaml` may hold anything).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if bytes[i] == b'/' {
            return None;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn app_error(e: crate::app::Error) -> (ErrorCode, String) {
    (ErrorCode::InternalError, e.message)
}

/// The `cursor` of a paginated list: an offset we handed out as `nextCursor`.
fn cursor(params: &Value) -> Result<usize, (ErrorCode, String)> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| invalid(format!("Invalid params: unknown cursor {s:?}"))),
        Some(_) => Err(invalid("Invalid params: cursor must be a string")),
    }
}

/// `resources/list`: one resource per configured agent, then one per group, `PAGE` at a time.
pub fn list(app: &App, params: &Value) -> RpcResult {
    let start = cursor(params)?;
    let config = app.config().map_err(app_error)?;
    let agents = config.agents.iter().map(|(name, agent)| {
        json!({
            "uri": Uri::Agent(name.to_string()).to_uri(),
            "name": name,
            "title": format!("Agent {name}"),
            "description": agent.description,
            "mimeType": "application/json",
        })
    });
    let groups = config.groups.iter().map(|(name, group)| {
        json!({
            "uri": Uri::Group(name.to_string()).to_uri(),
            "name": format!("group:{name}"),
            "title": format!("Group {name}"),
            "description": group.description,
            "mimeType": "application/json",
        })
    });
    let total = config.agents.len() + config.groups.len();
    let resources: Vec<Value> = agents.chain(groups).skip(start).take(PAGE).collect();
    let mut out = json!({ "resources": resources });
    if start + PAGE < total {
        out["nextCursor"] = json!((start + PAGE).to_string());
    }
    Ok(out)
}

/// `resources/templates/list`: agents, job records and results by name or id.
pub fn templates(params: &Value) -> RpcResult {
    if cursor(params)? > 0 {
        return Ok(json!({ "resourceTemplates": [] }));
    }
    Ok(json!({ "resourceTemplates": [
        {
            "uriTemplate": format!("{SCHEME}agents/{{name}}"),
            "name": "agent",
            "title": "Agent",
            "description": "An agent's configuration and project, as inspect_agent shows it",
            "mimeType": "application/json",
        },
        {
            "uriTemplate": format!("{SCHEME}groups/{{name}}"),
            "name": "group",
            "title": "Group",
            "description": "A group of agents, as inspect_group shows it",
            "mimeType": "application/json",
        },
        {
            "uriTemplate": format!("{SCHEME}jobs/{{id}}"),
            "name": "job",
            "title": "Job record",
            "description": "An async job or stored result: status, timestamps, progress and, once finished, the result",
            "mimeType": "application/json",
        },
        {
            "uriTemplate": format!("{SCHEME}results/{{id}}"),
            "name": "result",
            "title": "Result text",
            "description": "The full text of a finished job or return_ref result",
            "mimeType": "text/markdown",
        },
    ]}))
}

fn uri_param(params: &Value) -> Result<(String, Uri), (ErrorCode, String)> {
    let Some(raw) = params.get("uri").and_then(Value::as_str) else {
        return Err(invalid("Invalid params: a string \"uri\" is required"));
    };
    match Uri::parse(raw) {
        Some(uri) => Ok((raw.to_string(), uri)),
        None => Err(not_found(raw, "not an agent-dispatch resource")),
    }
}

fn read_job(app: &App, uri: &str, id: &str) -> Result<Job, (ErrorCode, String)> {
    let store = app.jobs().map_err(app_error)?;
    match store.get(id) {
        Ok(Some(job)) => Ok(job),
        Ok(None) => Err(not_found(uri, "no such job")),
        Err(e) => Err((ErrorCode::InternalError, e.to_string())),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// `resources/read`.
pub fn read(app: &App, params: &Value) -> RpcResult {
    let (raw, uri) = uri_param(params)?;
    let (mime, text) = match &uri {
        Uri::Agent(name) => {
            let config = app.config().map_err(app_error)?;
            if config.agent(name).is_none() {
                return Err(not_found(&raw, "no such agent"));
            }
            let doc = tools::inspect(app, name, PREVIEW_LINES)
                .map_err(|e| (ErrorCode::InternalError, e.message))?;
            ("application/json", pretty(&doc))
        }
        Uri::Group(name) => {
            let config = app.config().map_err(app_error)?;
            if config.group(name).is_none() {
                return Err(not_found(&raw, "no such group"));
            }
            let doc = tools::inspect_group_doc(app, name)
                .map_err(|e| (ErrorCode::InternalError, e.message))?;
            ("application/json", pretty(&doc))
        }
        Uri::Job(id) => (
            "application/json",
            pretty(&read_job(app, &raw, id)?.to_json()),
        ),
        Uri::Result(id) => {
            let job = read_job(app, &raw, id)?;
            let Some(result) = &job.result else {
                return Err(not_found(
                    &raw,
                    &format!("job is {} and has no result yet", job.status),
                ));
            };
            let text = match (&result.error, result.result.is_empty()) {
                (Some(err), true) => format!("Error: {err}"),
                _ => result.result.clone(),
            };
            ("text/markdown", text)
        }
    };
    Ok(json!({ "contents": [{ "uri": raw, "mimeType": mime, "text": text }] }))
}

/// What a subscription compares between polls: changes when the resource does (for a job, its
/// status or progress; for a result, its completion; for an agent, its configuration).
pub fn fingerprint(app: &App, uri: &Uri) -> String {
    match uri {
        Uri::Agent(name) => match app.config() {
            Ok(config) => config
                .agent(name)
                .and_then(|a| serde_json::to_string(a).ok())
                .unwrap_or_else(|| "absent".into()),
            Err(e) => format!("unreadable: {}", e.message),
        },
        Uri::Group(name) => match app.config() {
            Ok(config) => config
                .group(name)
                .and_then(|g| serde_json::to_string(g).ok())
                .unwrap_or_else(|| "absent".into()),
            Err(e) => format!("unreadable: {}", e.message),
        },
        Uri::Job(id) | Uri::Result(id) => {
            let job = app.jobs().ok().and_then(|s| s.get(id).ok().flatten());
            let Some(job) = job else {
                return "absent".into();
            };
            if matches!(uri, Uri::Result(_)) {
                return format!("{}|{:?}", job.status, job.completed_at);
            }
            let progress = job.progress.as_ref();
            format!(
                "{}|{:?}|{:?}|{:?}|{}|{:?}",
                job.status,
                job.started_at,
                job.completed_at,
                job.progress_updated_at,
                progress.map_or(0, Vec::len),
                progress.and_then(|p| p.last()),
            )
        }
    }
}

/// The uri and whether it exists now, for `resources/subscribe`.
pub fn subscribable(app: &App, params: &Value) -> Result<Uri, (ErrorCode, String)> {
    let (raw, uri) = uri_param(params)?;
    if fingerprint(app, &uri) == "absent" {
        return Err(not_found(&raw, "nothing to watch there"));
    }
    Ok(uri)
}

fn result_link(id: &str) -> Value {
    json!({
        "type": "resource_link",
        "uri": Uri::Result(id.to_string()).to_uri(),
        "name": format!("result-{id}"),
        "title": format!("Result {id}"),
        "description": "The full result text",
        "mimeType": "text/markdown",
    })
}

/// `resource_link` content items for a tool's document: every stored result a reply refers
/// to (`return_ref`), and an async job's record and future result.
pub fn links(tool: &str, doc: &Value) -> Vec<Value> {
    let refs = |v: &Value| v.get("ref").and_then(Value::as_str).map(result_link);
    match tool {
        "dispatch" => refs(doc).into_iter().collect(),
        "dispatch_parallel" => {
            let items = doc
                .get("individual_results")
                .unwrap_or(doc)
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            items.iter().filter_map(refs).collect()
        }
        "dispatch_async" => match doc.get("job_id").and_then(Value::as_str) {
            Some(id) => vec![
                json!({
                    "type": "resource_link",
                    "uri": Uri::Job(id.to_string()).to_uri(),
                    "name": format!("job-{id}"),
                    "title": format!("Job {id}"),
                    "description": "The job record; subscribe to hear when it changes",
                    "mimeType": "application/json",
                }),
                result_link(id),
            ],
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_refuse_what_is_not_ours() {
        let id = "a".repeat(32);
        for uri in [
            Uri::Agent("web-app_2".into()),
            Uri::Agent("odd name/é".into()),
            Uri::Group("shop".into()),
            Uri::Job(id.clone()),
            Uri::Result(id.clone()),
        ] {
            assert_eq!(Uri::parse(&uri.to_uri()), Some(uri.clone()));
        }
        assert_eq!(
            Uri::Agent("odd name/é".into()).to_uri(),
            "agent-dispatch://agents/odd%20name%2F%C3%A9"
        );
        for bad in [
            "agent-dispatch://jobs/../x".to_string(),
            "agent-dispatch://jobs/ABC".into(),
            "agent-dispatch://agents/".into(),
            "agent-dispatch://agents/a/b".into(),
            "agent-dispatch://groups/".into(),
            "agent-dispatch://teams/x".into(),
            "file:///etc/passwd".into(),
            format!("agent-dispatch://results/{id}%"),
        ] {
            assert_eq!(Uri::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn links_point_at_refs_and_jobs() {
        let id = "b".repeat(32);
        let one = links("dispatch", &json!({"ref": id, "agent": "a"}));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0]["uri"], format!("agent-dispatch://results/{id}"));
        let many = links(
            "dispatch_parallel",
            &json!([{"ref": id}, {"result": "inline"}, {"ref": id}]),
        );
        assert_eq!(many.len(), 2);
        let agg = links(
            "dispatch_parallel",
            &json!({"individual_results": [{"ref": id}], "aggregated": {}}),
        );
        assert_eq!(agg.len(), 1);
        assert_eq!(links("dispatch_async", &json!({"job_id": id})).len(), 2);
        assert!(links("dispatch", &json!({"result": "x"})).is_empty());
    }
}
