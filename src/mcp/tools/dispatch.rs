//! The tools that run agents synchronously, as thin adapters over `app`: `dispatch`,
//! `dispatch_session`, `dispatch_stream` (one pipeline run each), `dispatch_parallel` (items
//! validated here, run by `app::fanout`) and `dispatch_dialogue` (`app::dialogue`).

use serde_json::Value;

use super::ask::Call;
use super::{Args, ToolCtx, ToolError, ToolResult, bool_of, clamp_summary_chars, int_of, to_doc};
use crate::app::fanout::{self, Item};
use crate::app::{Dispatch, Kind, dialogue, pipeline};
use crate::ask::{Ask, ResponseFormat};
use crate::config::Config;

/// Resolves the call's agent and runs it once as `kind`.
fn run_call(ctx: &ToolCtx, mut call: Call, kind: Kind, ref_summary: Option<usize>) -> ToolResult {
    let target = call.target(ctx)?;
    let dispatch = Dispatch {
        target,
        ask: call.ask,
        kind,
    };
    let ran = pipeline::run(ctx.app(), &dispatch, ctx);
    // SPEC §12 item 16: return_ref is honoured on a cache hit too.
    to_doc(&pipeline::reply(ctx.app(), &dispatch.ask, ran, ref_summary))
}

pub fn dispatch(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let call = Call::from_args(args)?;
    let return_ref = args.boolean("return_ref")?;
    let summary_chars = clamp_summary_chars(args.int("summary_chars")?);
    run_call(
        ctx,
        call,
        Kind::OneShot,
        return_ref.then_some(summary_chars),
    )
}

pub fn dispatch_session(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let call = Call::from_args(args)?;
    let session_id = args.opt_string("session_id")?;
    run_call(ctx, call, Kind::Session(session_id), None)
}

pub fn dispatch_stream(ctx: &ToolCtx, args: &Args) -> ToolResult {
    run_call(ctx, Call::from_args(args)?, Kind::Stream, None)
}

// ---------------------------------------------------------------------------------------------
// dispatch_parallel

/// Python type names, as the reference's messages show them.
fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python `repr()` of a JSON value, close enough for error messages.
fn py_value_repr(v: &Value) -> String {
    match v {
        Value::String(s) => crate::pyfmt::repr(s),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

/// Python `int()` of a JSON value: integers, floats (truncated), booleans, digit strings.
fn py_int(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(i64::from(*b)),
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 9.0e18)
                .map(|f| f.trunc() as i64)
        }),
        Value::String(_) => int_of(v),
        _ => None,
    }
}

/// Every item of `dispatches`, validated and resolved; the first bad item refuses the call.
fn parse_items(ctx: &ToolCtx, config: &Config, raw: &str) -> Result<Vec<Item>, ToolError> {
    let parsed: Value = serde_json::from_str(raw)
        .map_err(|e| ToolError::new(format!("Invalid JSON in dispatches: {e}")))?;
    let list = match parsed {
        Value::Array(a) if !a.is_empty() => a,
        _ => return Err(ToolError::new("dispatches must be a non-empty JSON array")),
    };
    let cap = 100.max(config.settings.max_concurrency.saturating_mul(20));
    if list.len() > cap {
        return Err(ToolError::new(format!(
            "Too many dispatches: {} > {cap}. Split into multiple calls or raise settings.max_concurrency.",
            list.len()
        )));
    }
    let mut items = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let Value::Object(obj) = entry else {
            return Err(ToolError::new(format!(
                "dispatches[{i}] must be an object, got {}",
                py_type(entry)
            )));
        };
        let (Some(agent_v), Some(task_v)) = (obj.get("agent"), obj.get("task")) else {
            return Err(ToolError::new(format!(
                "dispatches[{i}] must have 'agent' and 'task' keys"
            )));
        };
        let text = |field: &str, v: &Value| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(ToolError::new(format!(
                "dispatches[{i}].{field} must be a string, got {}",
                py_type(other)
            ))),
        };
        let name = text("agent", agent_v)?;
        let task = text("task", task_v)?;
        if config.agent(&name).is_none() {
            return Err(crate::app::unknown_agent(config, &name));
        }
        let number = |field: &str| -> Result<Option<i64>, ToolError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => py_int(v).map(Some).ok_or_else(|| {
                    ToolError::new(format!(
                        "dispatches[{i}].{field} must be a number, got {}",
                        py_value_repr(v)
                    ))
                }),
            }
        };
        let timeout_seconds = number("timeout_seconds")?.unwrap_or(0);
        let summary_chars = clamp_summary_chars(number("summary_chars")?.unwrap_or(500));
        let opt_text = |field: &str| -> Result<Option<String>, ToolError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
                Some(other) => Err(ToolError::new(format!(
                    "dispatches[{i}].{field} must be a string, got {}",
                    py_type(other)
                ))),
            }
        };
        let mut ask = Ask {
            task,
            context: opt_text("context")?,
            caller: opt_text("caller")?,
            goal: opt_text("goal")?,
            response_format: ResponseFormat::parse(opt_text("response_format")?.as_deref()),
        };
        // One item outside its group refuses the whole call, before anything runs.
        if let Some(group) = opt_text("group")? {
            crate::app::join_group(config, &group, &name, &mut ask)
                .map_err(|e| ToolError::new(format!("dispatches[{i}]: {}", e.message)))?;
        }
        // SPEC §12 item 28: "false" is false, not a truthy string.
        let return_ref = match obj.get("return_ref") {
            None | Some(Value::Null) => false,
            Some(v) => bool_of(v).ok_or_else(|| {
                ToolError::new(format!(
                    "dispatches[{i}].return_ref must be a boolean, got {}",
                    py_value_repr(v)
                ))
            })?,
        };
        let target = ctx.app().target(config, &name, timeout_seconds)?;
        items.push(Item {
            dispatch: Dispatch {
                target,
                ask,
                kind: Kind::OneShot,
            },
            ref_summary: return_ref.then_some(summary_chars),
        });
    }
    Ok(items)
}

pub fn dispatch_parallel(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let raw = args.string("dispatches")?;
    let aggregate = args.opt_string("aggregate")?;
    let config = ctx.app().config()?;
    let items = parse_items(ctx, &config, &raw)?;
    let aggregator = match &aggregate {
        Some(name) => Some(ctx.app().target(&config, name, 0)?),
        None => None,
    };
    to_doc(&fanout::run(ctx.app(), &items, aggregator, ctx))
}

// ---------------------------------------------------------------------------------------------
// dispatch_dialogue

pub fn dispatch_dialogue(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let requester = args.string("requester")?;
    let responder = args.string("responder")?;
    let topic = args.string("topic")?;
    let max_rounds = args.int("max_rounds")?.clamp(1, 10) as u32;
    let config = ctx.app().config()?;
    let requester = ctx.app().target(&config, &requester, 0)?;
    let responder = ctx.app().target(&config, &responder, 0)?;
    to_doc(&dialogue::run(
        ctx.app(),
        requester,
        responder,
        &topic,
        max_rounds,
        ctx,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn py_int_follows_python_int() {
        assert_eq!(py_int(&json!(5)), Some(5));
        assert_eq!(py_int(&json!(12.7)), Some(12));
        assert_eq!(py_int(&json!(true)), Some(1));
        assert_eq!(py_int(&json!(" 900 ")), Some(900));
        assert_eq!(py_int(&json!("12.5")), None);
        assert_eq!(py_int(&json!("")), None);
        assert_eq!(py_int(&json!([])), None);
    }
}
