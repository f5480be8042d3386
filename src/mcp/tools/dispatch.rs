//! The tools that run agents synchronously: `dispatch`, `dispatch_session`, `dispatch_parallel`,
//! `dispatch_stream` and `dispatch_dialogue` (SPEC §7.5 tools 3–7, §7.6). Every child they start
//! goes through `run_agent`, which takes a slot of the server's one `Limiter` and holds it until
//! `claude::run` has reaped the child.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde_json::{Value, json};

use super::ask::{Ask, Call};
use super::async_jobs::store_ref;
use super::{
    Args, ToolCtx, ToolError, ToolResult, bool_of, clamp_summary_chars, find_agent, int_of,
};
use crate::claude::{self, DispatchRequest, Hooks, OutputMode};
use crate::config::{AgentConfig, Config};
use crate::result::{DispatchResult, ErrorType};
use crate::text::first_chars;

/// Runs one child under the concurrency gate. The permit lives until `claude::run` returns, and
/// `claude::run` returns only after the child's process group has been reaped.
fn run_agent<'a>(
    ctx: &'a ToolCtx,
    req: &DispatchRequest,
    mode: OutputMode,
    on_progress: Option<&'a mut dyn FnMut(&str)>,
) -> DispatchResult {
    let Some(_permit) = ctx.server.limiter.acquire(&ctx.cancel) else {
        return DispatchResult::failure(
            &req.agent_name,
            ErrorType::Cancelled,
            "Cancelled before the agent started",
        );
    };
    if ctx.server.is_stopping() {
        return DispatchResult::failure(
            &req.agent_name,
            ErrorType::Cancelled,
            "The server is shutting down",
        );
    }
    let hooks = Hooks {
        cancel: Some(&ctx.cancel),
        on_progress,
        on_spawn: None,
    };
    // One keep-alive ticker per request is enough (parallel items share the request).
    let Some(_claim) = ctx.claim_heartbeat() else {
        return claude::run(req, mode, hooks);
    };
    // A client that asked for progress resets its request timeout on each notification
    // (Claude Code does), so a long silent run gets a heartbeat while the child lives.
    let every = ctx.server.heartbeat;
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    std::thread::scope(|scope| {
        let started = std::time::Instant::now();
        let agent = req.agent_name.as_str();
        let ticker = std::thread::Builder::new()
            .name("dispatch-heartbeat".into())
            .spawn_scoped(scope, move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    done_rx.recv_timeout(every)
                {
                    ctx.progress_only(&format!(
                        "[{agent}] still working ({}s)",
                        started.elapsed().as_secs()
                    ));
                }
            });
        let result = claude::run(req, mode, hooks);
        drop(done_tx);
        if let Ok(t) = ticker {
            let _ = t.join();
        }
        result
    })
}

fn with_cached_flag(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("cached".into(), json!(true));
    }
    v
}

/// Looks the call up in the cache (when enabled), else runs it and stores a clean success.
fn cached_or_run(
    ctx: &ToolCtx,
    config: &Config,
    call: &Call,
    agent: AgentConfig,
) -> (DispatchResult, bool) {
    let name = call.name.as_str();
    let enabled = config.settings.cache.enabled;
    let key = call.ask.cache_key(name, &agent, &config.settings);
    if enabled && let Some(hit) = ctx.server.cache().get(&key) {
        ctx.log(&format!("Cache hit for {name} — returning cached result"));
        return (hit, true);
    }
    let req = call.request(agent, &config.settings);
    ctx.log(&format!(
        "Dispatching to {name}: {}...",
        first_chars(&call.ask.task, 80)
    ));
    let result = run_agent(ctx, &req, OutputMode::Json, None);
    if enabled {
        ctx.server.cache().put(key, &result);
    }
    (result, false)
}

pub fn dispatch(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let call = Call::from_args(args)?;
    let return_ref = args.boolean("return_ref")?;
    let summary_chars = clamp_summary_chars(args.int("summary_chars")?);
    let (config, agent) = call.resolve(ctx)?;
    let (result, cached) = cached_or_run(ctx, &config, &call, agent);
    // SPEC §12 item 16: return_ref is honoured on a cache hit too.
    Ok(respond(
        ctx,
        &call.ask,
        &result,
        cached,
        return_ref.then_some(summary_chars),
    ))
}

/// The response for one dispatch: the result, or its reference payload when `ref_summary` is
/// given, marked `cached` on a hit. A result that could not be stored as a ref is returned
/// whole with `ref_error`: the run happened and was paid for, so it is never thrown away.
fn respond(
    ctx: &ToolCtx,
    ask: &Ask,
    result: &DispatchResult,
    cached: bool,
    ref_summary: Option<usize>,
) -> Value {
    let out = match ref_summary.map(|chars| store_ref(ctx, ask, result, chars)) {
        Some(Ok(payload)) => payload,
        Some(Err(e)) => {
            let mut full = result.to_json();
            full["ref_error"] = json!(e.message);
            full
        }
        None => result.to_json(),
    };
    if cached { with_cached_flag(out) } else { out }
}

pub fn dispatch_session(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let call = Call::from_args(args)?;
    let session_id = args.opt_string("session_id")?;
    let (config, agent) = call.resolve(ctx)?;
    let (name, task80) = (&call.name, first_chars(&call.ask.task, 80));
    match &session_id {
        Some(sid) => ctx.log(&format!(
            "Dispatching to {name} (resuming {}...): {task80}...",
            first_chars(sid, 12)
        )),
        None => ctx.log(&format!("Dispatching to {name} (new session): {task80}...")),
    }
    let mut req = call.request(agent, &config.settings);
    req.resume_session = session_id;
    Ok(run_agent(ctx, &req, OutputMode::Json, None).to_json())
}

pub fn dispatch_stream(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let call = Call::from_args(args)?;
    let (config, agent) = call.resolve(ctx)?;
    let name = &call.name;
    ctx.log(&format!(
        "Dispatching (stream) to {name}: {}...",
        first_chars(&call.ask.task, 80)
    ));
    let req = call.request(agent, &config.settings);
    let mut forward = |line: &str| ctx.notify(&format!("[{name}] {}", first_chars(line, 300)));
    Ok(run_agent(ctx, &req, OutputMode::Stream, Some(&mut forward)).to_json())
}

// ---------------------------------------------------------------------------------------------
// dispatch_parallel

/// One validated item of `dispatches`.
struct Item {
    call: Call,
    agent: AgentConfig,
    return_ref: bool,
    summary_chars: usize,
}

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

fn parse_items(config: &Config, raw: &str) -> Result<Vec<Item>, ToolError> {
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
        let agent = find_agent(config, &name)?;
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
        let ask = Ask {
            task,
            context: opt_text("context")?,
            caller: opt_text("caller")?,
            goal: opt_text("goal")?,
            response_format: opt_text("response_format")?,
        };
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
        items.push(Item {
            call: Call {
                name,
                ask,
                timeout_seconds,
            },
            agent,
            return_ref,
            summary_chars,
        });
    }
    Ok(items)
}

fn run_item(ctx: &ToolCtx, config: &Config, item: &Item) -> Value {
    let (result, cached) = cached_or_run(ctx, config, &item.call, item.agent.clone());
    respond(
        ctx,
        &item.call.ask,
        &result,
        cached,
        item.return_ref.then_some(item.summary_chars),
    )
}

const AGGREGATE_TASK: &str = "Synthesize the results below into a single coherent answer. Highlight key findings, \
note any conflicts between agents, and provide actionable conclusions.";

/// The aggregator's context: one section per item, its result, else its summary (ref items),
/// else its error.
fn aggregate_context(results: &[Value]) -> String {
    let sections: Vec<String> = results
        .iter()
        .map(|r| {
            let agent = r.get("agent").and_then(Value::as_str).unwrap_or("?");
            let ok = r.get("success").and_then(Value::as_bool).unwrap_or(false);
            let text = |k: &str| r.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            let body = match (text("result"), text("summary"), text("error")) {
                (Some(result), _, _) => result.to_string(),
                (None, Some(summary), _) => {
                    format!(
                        "(preview of a stored result, ref {})\n{summary}",
                        text("ref").unwrap_or("?")
                    )
                }
                (None, None, Some(error)) => error.to_string(),
                _ => String::new(),
            };
            format!(
                "## Agent: {agent} [{}]\n{body}",
                if ok { "OK" } else { "FAILED" }
            )
        })
        .collect();
    sections.join("\n\n")
}

pub fn dispatch_parallel(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let raw = args.string("dispatches")?;
    let aggregate = args.opt_string("aggregate")?;
    let config = ctx.server.load_config()?;
    let items = parse_items(&config, &raw)?;
    let aggregator = match &aggregate {
        Some(name) => Some(find_agent(&config, name)?),
        None => None,
    };
    let names: Vec<&str> = items.iter().map(|i| i.call.name.as_str()).collect();
    ctx.log(&format!("Dispatching in parallel to: {}", names.join(", ")));

    let results: Vec<Value> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| {
                let config = &config;
                std::thread::Builder::new()
                    .name("dispatch-parallel-item".into())
                    .spawn_scoped(scope, move || {
                        catch_unwind(AssertUnwindSafe(|| run_item(ctx, config, item)))
                    })
            })
            .collect();
        handles
            .into_iter()
            .zip(&items)
            .map(|(handle, item)| {
                let outcome = match handle {
                    Ok(h) => h.join().ok().and_then(Result::ok),
                    Err(e) => {
                        return item_failure(
                            &item.call.name,
                            &format!("could not start a thread: {e}"),
                        );
                    }
                };
                outcome.unwrap_or_else(|| {
                    item_failure(&item.call.name, "the dispatch failed unexpectedly")
                })
            })
            .collect()
    });

    let (Some(agg_name), Some(agg_agent)) = (aggregate, aggregator) else {
        return Ok(Value::Array(results));
    };
    ctx.log(&format!("Aggregating results via {agg_name}..."));
    let ask = Ask {
        task: AGGREGATE_TASK.to_string(),
        context: Some(aggregate_context(&results)),
        caller: Some("dispatch_parallel".into()),
        goal: Some("aggregate parallel dispatch results".into()),
        response_format: None,
    };
    let aggregated = run_agent(
        ctx,
        &ask.request(&agg_name, agg_agent, &config.settings),
        OutputMode::Json,
        None,
    );
    Ok(json!({ "individual_results": results, "aggregated": aggregated.to_json() }))
}

fn item_failure(agent: &str, error: &str) -> Value {
    DispatchResult::failure(agent, ErrorType::CliError, error).to_json()
}

// ---------------------------------------------------------------------------------------------
// dispatch_dialogue

const MARKER: &str = "[RESOLVED]";

fn initial_prompt(other: &str, topic: &str) -> String {
    format!(
        "You are starting a collaborative dialogue with agent '{other}'.\nProvide your analysis or ask \
         questions. When you have a complete answer and no further questions, end your response with \
         {MARKER}.\n\nTopic:\n{topic}"
    )
}

fn reply_prompt(other: &str, message: &str) -> String {
    format!(
        "Agent '{other}' responds:\n\n{message}\n\nContinue the discussion. If you have a complete answer \
         and no further questions, end your response with {MARKER}."
    )
}

pub fn dispatch_dialogue(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let requester = args.string("requester")?;
    let responder = args.string("responder")?;
    let topic = args.string("topic")?;
    let max_rounds = args.int("max_rounds")?.clamp(1, 10);
    let config = ctx.server.load_config()?;
    let requester_cfg = find_agent(&config, &requester)?;
    let responder_cfg = find_agent(&config, &responder)?;
    ctx.log(&format!(
        "Starting dialogue: {requester} <-> {responder} (max {max_rounds} rounds)"
    ));

    let goal = first_chars(&topic, 200).to_string();
    let mut sessions: [Option<String>; 2] = [None, None]; // [responder, requester]
    let mut total_cost = 0.0f64;
    let mut total_ms = 0u64;
    let mut conversation: Vec<Value> = Vec::new();
    let mut last_message = String::new();
    let mut finished: Option<DispatchResult> = None;

    'rounds: for round in 1..=max_rounds {
        for (turn, (name, cfg, other, role)) in [
            (&responder, &responder_cfg, &requester, "responder"),
            (&requester, &requester_cfg, &responder, "requester"),
        ]
        .into_iter()
        .enumerate()
        {
            let task = if round == 1 && turn == 0 {
                initial_prompt(other, &topic)
            } else {
                reply_prompt(other, &last_message)
            };
            let mut req = DispatchRequest::new(name, cfg.clone(), config.settings.clone(), &task);
            req.caller = Some(other.to_string());
            req.goal = Some(goal.clone());
            req.resume_session = sessions[turn].clone();
            let r = run_agent(ctx, &req, OutputMode::Json, None);
            if r.session_id.is_some() {
                sessions[turn] = r.session_id.clone();
            }
            total_cost += r.cost_usd.unwrap_or(0.0);
            total_ms += r.duration_ms.unwrap_or(0);
            let mut entry = json!({
                "agent": name,
                "role": role,
                "round": round,
                "message": r.result,
                "cost_usd": r.cost_usd,
            });
            if !r.success {
                entry["error"] = json!(r.error);
                entry["error_type"] = json!(r.error_type);
            }
            conversation.push(entry);
            ctx.log(&format!(
                "[round {round}] {name}: {}...",
                first_chars(&r.result, 120)
            ));
            last_message = r.result.clone();
            if r.result.contains(MARKER) || !r.success || ctx.cancel.is_tripped() {
                finished = Some(r);
                break 'rounds;
            }
        }
    }

    let (resolved, mut final_answer) = match &finished {
        Some(r) => {
            let resolved = r.result.contains(MARKER);
            let answer = match (&r.error, r.success) {
                (Some(err), false) => err.clone(),
                _ => r.result.replace(MARKER, "").trim().to_string(),
            };
            (resolved, answer)
        }
        None => (false, String::new()),
    };
    if final_answer.is_empty()
        && let Some(last) = conversation.last()
    {
        final_answer = last["message"].as_str().unwrap_or_default().to_string();
    }
    let rounds = conversation
        .last()
        .and_then(|e| e["round"].as_i64())
        .unwrap_or(0);
    Ok(json!({
        "resolved": resolved,
        "rounds": rounds,
        "total_cost_usd": (total_cost * 10_000.0).round() / 10_000.0,
        "total_duration_ms": total_ms,
        "final_answer": final_answer,
        "conversation": conversation,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn aggregate_context_uses_result_then_summary_then_error() {
        let ctx = aggregate_context(&[
            json!({"agent": "a", "success": true, "result": "A says"}),
            json!({"agent": "b", "success": true, "ref": "r1", "summary": "B prev"}),
            json!({"agent": "c", "success": false, "result": "", "error": "boom"}),
        ]);
        assert!(ctx.starts_with("## Agent: a [OK]\nA says\n\n## Agent: b [OK]\n(preview"));
        assert!(ctx.contains("B prev"));
        assert!(ctx.ends_with("## Agent: c [FAILED]\nboom"));
    }
}
