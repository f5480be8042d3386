//! What one connection negotiated, and the MCP features that depend on it: resources (with
//! subscriptions), prompts and completions from protocol 2025-03-26 on, structured tool results
//! (`outputSchema`, `structuredContent`, `resource_link` items) from 2025-06-18 on. A client
//! that negotiates 2024-11-05 gets exactly the server it got before these existed: the same
//! capabilities, tools without `outputSchema`, results with one text item, and -32601 for the
//! methods below. Also the router for those methods, so the loop adds one match arm.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::Sender;
use serde_json::{Value, json};

use super::msg::{ErrorCode, Outgoing, RequestId};
use super::resources::{self, RpcResult, invalid};
use super::watch::Watch;
use super::{completion, prompts};
use crate::app::App;

/// First revision with resources, prompts and the `completions` capability as we serve them.
const EXTENDED_SINCE: &str = "2025-03-26";
/// First revision with `outputSchema`, `structuredContent` and `resource_link`.
const STRUCTURED_SINCE: &str = "2025-06-18";

#[derive(Default)]
pub struct Session {
    /// The `protocolVersion` of our `initialize` answer; `None` before it.
    version: Mutex<Option<String>>,
    watch: Watch,
    /// Requests answered on a thread of their own right now (see [`answer`]).
    off_loop: Arc<AtomicUsize>,
}

/// At most this many requests of a connection run off the loop at once; more wait their turn
/// on the loop itself, so the threads stay bounded.
const MAX_OFF_LOOP: usize = 4;

impl Session {
    fn version(&self) -> Option<String> {
        self.version
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Revisions are dates, so they order as strings.
    fn since(&self, revision: &str) -> bool {
        self.version().is_some_and(|v| v.as_str() >= revision)
    }

    /// Resources, prompts and completions are on.
    pub fn extended(&self) -> bool {
        self.since(EXTENDED_SINCE)
    }

    /// Tools declare `outputSchema` and results carry `structuredContent` and resource links.
    pub fn structured(&self) -> bool {
        self.since(STRUCTURED_SINCE)
    }

    /// Records our `initialize` answer and, when resources are on, starts the watcher that
    /// sends `notifications/resources/*` on `out`.
    pub fn initialized(&self, answer: &Value, app: &Arc<App>, out: &Sender<Outgoing>) {
        let version = answer.get("protocolVersion").and_then(Value::as_str);
        *self.version.lock().unwrap_or_else(PoisonError::into_inner) = version.map(str::to_string);
        if self.extended() {
            self.watch.start(Arc::clone(app), out.clone());
        }
    }
}

/// The capabilities `initialize` adds for `version` to the base `tools` and `logging`.
pub fn capabilities(version: &str) -> Option<Value> {
    (version >= EXTENDED_SINCE).then(|| {
        json!({
            "resources": { "subscribe": true, "listChanged": true },
            "prompts": { "listChanged": false },
            "completions": {},
        })
    })
}

/// Adds the capabilities of [`capabilities`] to an `initialize` answer.
pub fn extend_initialize(answer: &mut Value) {
    let version = answer
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let (Some(extra), Some(Value::Object(caps))) =
        (capabilities(version), answer.get_mut("capabilities"))
        && let Value::Object(extra) = extra
    {
        caps.extend(extra);
    }
}

/// Answers one of the resource, prompt or completion methods on `out`. The ones that may read a
/// lot from disk (`resources/read` of a many-megabyte result, a completion listing every job)
/// run on a thread of their own, as tools do, so `ping` and cancellations are not held up.
pub fn answer(
    session: &Session,
    app: &Arc<App>,
    out: &Sender<Outgoing>,
    id: RequestId,
    method: &str,
    params: Value,
) {
    let send = |out: &Sender<Outgoing>, id: RequestId, outcome: RpcResult| {
        let _ = out.send(match outcome {
            Ok(result) => Outgoing::Result { id, result },
            Err((code, message)) => Outgoing::error(Some(id), code, message),
        });
    };
    let heavy = matches!(method, "resources/read" | "completion/complete");
    let counter = &session.off_loop;
    if heavy && counter.fetch_add(1, Ordering::SeqCst) < MAX_OFF_LOOP {
        let (app, out, counter) = (Arc::clone(app), out.clone(), Arc::clone(counter));
        let method = method.to_string();
        let (worker_id, worker_params) = (id.clone(), params.clone());
        let spawned = std::thread::Builder::new()
            .name("mcp-read".into())
            .spawn(move || {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        match method.as_str() {
                            "resources/read" => resources::read(&app, &worker_params),
                            _ => completion::complete(&app, &worker_params),
                        }
                    }))
                    .unwrap_or_else(|_| {
                        Err((
                            ErrorCode::InternalError,
                            format!("Internal error in {method}; the server keeps running"),
                        ))
                    });
                send(&out, worker_id, outcome);
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_ok() {
            return;
        }
    }
    if heavy {
        counter.fetch_sub(1, Ordering::SeqCst);
    }
    send(out, id, route(session, app, method, &params));
}

/// The answer to one of the resource, prompt or completion methods.
pub fn route(session: &Session, app: &App, method: &str, params: &Value) -> RpcResult {
    match method {
        "resources/list" => resources::list(app, params),
        "resources/templates/list" => resources::templates(params),
        "resources/read" => resources::read(app, params),
        "resources/subscribe" => {
            let uri = resources::subscribable(app, params)?;
            let raw = params.get("uri").and_then(Value::as_str).unwrap_or("");
            let seen = resources::fingerprint(app, &uri);
            session
                .watch
                .subscribe(raw, uri, seen)
                .map_err(|m| invalid(format!("Invalid params: {m}")))?;
            Ok(json!({}))
        }
        "resources/unsubscribe" => {
            let Some(raw) = params.get("uri").and_then(Value::as_str) else {
                return Err(invalid("Invalid params: a string \"uri\" is required"));
            };
            // Unsubscribing from something not subscribed is harmless: the end state is the same.
            session.watch.unsubscribe(raw);
            Ok(json!({}))
        }
        "prompts/list" => prompts::list(),
        "prompts/get" => prompts::get(app, params),
        "completion/complete" => completion::complete(app, params),
        _ => Err((
            ErrorCode::MethodNotFound,
            format!("Method not found: {method}"),
        )),
    }
}
