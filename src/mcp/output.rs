//! Structured tool results (MCP 2025-06-18 and later): each tool's `outputSchema`, built from
//! the schemas of the types its handler serialises (`impl Schema` next to `DispatchResult`,
//! `Reply`, `FanOut`, `Dialogue`, `Job`, …) plus the small documents the management tools build
//! inline, and the `structuredContent` that goes with a result.
//!
//! MCP requires `structuredContent` to be an object. Where a tool's document is an array
//! (`list_agents`, `dispatch_jobs`, `dispatch_parallel` without `aggregate`) the text stays the
//! array, as it always was, and `structuredContent` wraps it as `{"items": [...]}`. Tool errors
//! (`isError: true`) carry no `structuredContent`: their schema is not the tool's, and clients
//! (the Python SDK among them) do not validate error results.

use serde_json::{Value, json};

use crate::app::dialogue::Dialogue;
use crate::app::fanout::FanOut;
use crate::app::pipeline::Reply;
use crate::cache::Cache;
use crate::jobs::{self, Job};
use crate::schema::{
    Schema, any_of, array, boolean, extend, integer, number, object, one_of_strings, string,
};

/// `{"type": "object", ...}` at the root, as MCP requires of an `outputSchema`.
fn root(mut schema: Value) -> Value {
    if schema.get("type").is_none()
        && let Value::Object(m) = &mut schema
    {
        m.insert("type".into(), json!("object"));
    }
    schema
}

fn items(item: Value) -> Value {
    object(&[("items", array(item))], &["items"])
}

/// `healthy` is a boolean, or "UNREADABLE" when the directory cannot be read.
fn health() -> Value {
    any_of(vec![boolean(), one_of_strings(&["UNREADABLE"])])
}

/// What every agent view carries about its settings (`insert_tools` in the handlers).
fn tool_lists() -> [(&'static str, Value); 6] {
    [
        ("backend", one_of_strings(&["claude", "codex", "gemini"])),
        ("permission_mode", string()),
        ("allowed_tools", array(string())),
        ("disallowed_tools", array(string())),
        ("capabilities", array(string())),
        ("risky_capabilities", array(string())),
    ]
}

/// `typical`: an agent's median and p90 seconds and median cost, from the usage journal.
fn typical() -> Value {
    object(
        &[
            ("median_seconds", number()),
            ("p90_seconds", number()),
            ("median_cost_usd", number()),
        ],
        &[],
    )
}

fn group_member(details: bool) -> Value {
    let mut props = vec![
        ("agent", string()),
        ("use_for", string()),
        ("unknown", boolean()),
        ("healthy", health()),
    ];
    if details {
        props.push(("directory", string()));
        props.push(("description", string()));
    }
    object(&props, &["agent"])
}

fn agent_entry() -> Value {
    let mut props = vec![
        ("name", string()),
        ("directory", string()),
        ("description", string()),
        ("healthy", health()),
        ("has_claude_md", boolean()),
        ("has_mcp_config", boolean()),
        ("mcp_servers", array(string())),
        ("stacks", array(string())),
        ("dbs", array(string())),
        ("typical", typical()),
    ];
    props.extend(tool_lists());
    object(&props, &["name", "directory", "description", "healthy"])
}

/// What `inspect_agent` (and the `agent-dispatch://agents/{name}` resource) returns.
pub fn inspection() -> Value {
    let mut props = vec![
        ("name", string()),
        ("directory", string()),
        ("description", string()),
        ("timeout", integer()),
        ("model", string()),
        ("max_budget_usd", number()),
        ("healthy", health()),
        ("mcp_servers", array(string())),
        ("stacks", array(string())),
        ("dbs", array(string())),
        ("has_claude_md", boolean()),
        ("has_readme", boolean()),
        ("has_mcp_config", boolean()),
        ("claude_md_preview", string()),
        ("claude_md_truncated", boolean()),
        ("readme_preview", string()),
        ("readme_truncated", boolean()),
        ("instructions", string()),
        ("typical", typical()),
    ];
    props.extend(tool_lists());
    object(
        &props,
        &["name", "directory", "description", "timeout", "healthy"],
    )
}

fn cache_disabled() -> Value {
    object(
        &[("enabled", json!({"const": false})), ("message", string())],
        &["enabled", "message"],
    )
}

/// The `outputSchema` of the tool called `name`; `None` for a tool this table does not know
/// (a test checks that every tool in the table has one).
pub fn schema_for(name: &str) -> Option<Value> {
    let schema = match name {
        "list_agents" => items(agent_entry()),
        "inspect_agent" => inspection(),
        "list_groups" => items(object(
            &[
                ("name", string()),
                ("description", string()),
                ("shared_context_present", boolean()),
                ("member_count", integer()),
                ("members", array(group_member(false))),
            ],
            &[
                "name",
                "description",
                "shared_context_present",
                "member_count",
                "members",
            ],
        )),
        "inspect_group" => object(
            &[
                ("name", string()),
                ("description", string()),
                ("shared_context", string()),
                ("member_count", integer()),
                ("members", array(group_member(true))),
            ],
            &[
                "name",
                "description",
                "shared_context",
                "member_count",
                "members",
            ],
        ),
        "dispatch" | "dispatch_session" | "dispatch_stream" => Reply::schema(),
        "dispatch_parallel" => FanOut::schema(),
        "dispatch_dialogue" => Dialogue::schema(),
        "add_agent" => {
            let mut props = vec![
                ("added", string()),
                ("directory", string()),
                ("description", string()),
            ];
            props.extend(tool_lists());
            object(&props, &["added", "directory", "description"])
        }
        "remove_agent" => object(&[("removed", string())], &["removed"]),
        "update_agent" => object(
            &[("updated", string()), ("fields", array(string()))],
            &["updated", "fields"],
        ),
        "dispatch_async" => object(
            &[
                ("job_id", string()),
                ("status", one_of_strings(&["pending"])),
                ("agent", string()),
            ],
            &["job_id", "status", "agent"],
        ),
        "dispatch_status" => Job::schema(),
        "dispatch_wait" => extend(Job::schema(), &[("timed_out_waiting", boolean())], &[]),
        "dispatch_cancel" => object(
            &[
                ("job_id", string()),
                (
                    "outcome",
                    one_of_strings(&["cancelled", "cancelled_running", "already_terminal"]),
                ),
                ("status", jobs::Status::schema()),
            ],
            &["job_id", "outcome", "status"],
        ),
        "dispatch_jobs" => items(jobs::model::summary_schema()),
        "fetch_result" => jobs::model::fetch_view_schema(),
        "dispatch_gc" => any_of(vec![
            object(
                &[
                    ("dry_run", json!({"const": true})),
                    ("would_purge", integer()),
                    ("job_ids", array(string())),
                    ("max_age_days", number()),
                ],
                &["dry_run", "would_purge", "job_ids", "max_age_days"],
            ),
            object(
                &[("purged", integer()), ("max_age_days", number())],
                &["purged", "max_age_days"],
            ),
        ]),
        "cache_stats" => any_of(vec![Cache::stats_schema(), cache_disabled()]),
        "cache_clear" => any_of(vec![
            object(&[("cleared", integer())], &["cleared"]),
            cache_disabled(),
        ]),
        _ => return None,
    };
    Some(root(schema))
}

/// The `structuredContent` for a tool's document: the document, or `{"items": doc}` for an array.
pub fn structured(doc: &Value) -> Value {
    match doc {
        Value::Array(_) => json!({ "items": doc }),
        other => other.clone(),
    }
}
