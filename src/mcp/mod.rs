//! `agent-dispatch serve`: the MCP server loop. It owns the handshake, the map of in-flight
//! requests, one worker thread per `tools/call`, cancellation and shutdown. Framing lives in
//! `transport`, wire types in `msg`, and everything a tool does in `tools`.
//!
//! The loop itself never blocks on tool work: `initialize`, `ping`, `tools/list` and
//! `logging/setLevel` are answered inline, so `ping` is answered while dispatches run.

mod completion;
pub mod msg;
pub mod output;
mod prompts;
pub mod resources;
pub mod session;
pub mod tools;
pub mod transport;
mod watch;

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use serde_json::{Value, json};

use crate::cancel::Cancel;
use crate::log;
use msg::{ErrorCode, Incoming, Outgoing, RequestId};
use tools::{Server, ToolCtx};
use transport::Inbound;

/// Protocol revisions we speak, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// How long shutdown waits for running calls to kill and reap their children.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1800);

/// Runs the server on the process's stdin/stdout until stdin closes or SIGTERM/SIGINT/SIGHUP.
pub fn serve_stdio(config_path: PathBuf) -> io::Result<()> {
    let signals = crate::signals::install();
    let server = Arc::new(Server::start(config_path));
    let stdin = io::BufReader::with_capacity(1024 * 1024, io::stdin());
    serve(server, stdin, io::stdout(), signals)
}

/// The loop, over any byte streams (tests drive it with pipes).
pub fn serve<R, W>(
    server: Arc<Server>,
    input: R,
    output: W,
    signals: Option<Receiver<i32>>,
) -> io::Result<()>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let (out_tx, out_rx) = crossbeam_channel::unbounded::<Outgoing>();
    let (in_tx, in_rx) = crossbeam_channel::bounded::<Inbound>(64);
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<RequestId>();
    let writer = transport::spawn_writer(output, out_rx)?;
    let _reader = transport::spawn_reader(input, transport::MAX_LINE_BYTES, in_tx, out_tx.clone())?;
    let signals = signals.unwrap_or_else(crossbeam_channel::never);

    let mut looper = Loop {
        server,
        out: out_tx,
        done_tx,
        in_flight: HashMap::new(),
    };
    loop {
        select! {
            recv(in_rx) -> m => match m {
                Ok(Inbound::Message(incoming)) => looper.handle(incoming),
                Ok(Inbound::Closed) | Err(_) => {
                    log::info("stdin closed; shutting down");
                    break;
                }
            },
            recv(done_rx) -> id => {
                if let Ok(id) = id {
                    looper.in_flight.remove(&id);
                }
            },
            recv(signals) -> sig => {
                log::info(&format!("received signal {}; shutting down", sig.unwrap_or(0)));
                break;
            },
        }
    }
    looper.shutdown(&done_rx);
    drop(looper);
    // The writer ends once the last sender is gone; a worker stuck past the grace period still
    // holds one, so do not wait for it forever.
    let deadline = Instant::now() + Duration::from_millis(200);
    while !writer.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    if writer.is_finished() {
        return writer.join().unwrap_or(Ok(()));
    }
    Ok(())
}

struct Loop {
    server: Arc<Server>,
    out: Sender<Outgoing>,
    done_tx: Sender<RequestId>,
    /// Running `tools/call` requests and the flag that cancels each.
    in_flight: HashMap<RequestId, Cancel>,
}

impl Loop {
    fn handle(&mut self, incoming: Incoming) {
        match incoming {
            Incoming::Request { id, method, params } => self.request(id, &method, params),
            Incoming::Notification { method, params } => self.notification(&method, &params),
            Incoming::Response => {}
        }
    }

    fn reply(&self, id: RequestId, result: Value) {
        let _ = self.out.send(Outgoing::Result { id, result });
    }

    fn reply_err(&self, id: RequestId, code: ErrorCode, message: impl Into<String>) {
        let _ = self.out.send(Outgoing::error(Some(id), code, message));
    }

    fn request(&mut self, id: RequestId, method: &str, params: Value) {
        match method {
            "initialize" => {
                let answer = initialize_result(&params);
                let server = &self.server;
                server.session.initialized(&answer, &server.app, &self.out);
                self.reply(id, answer)
            }
            "tools/list" if self.server.session.structured() => {
                self.reply(id, json!({ "tools": tools::list_structured() }))
            }
            "resources/list"
            | "resources/templates/list"
            | "resources/read"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | "prompts/list"
            | "prompts/get"
            | "completion/complete"
                if self.server.session.extended() =>
            {
                let server = &self.server;
                session::answer(&server.session, &server.app, &self.out, id, method, params);
            }
            "ping" => self.reply(id, json!({})),
            "tools/list" => self.reply(id, json!({ "tools": tools::list() })),
            "tools/call" => self.tools_call(id, params),
            "logging/setLevel" => match params.get("level").and_then(Value::as_str) {
                Some(level) if self.server.set_log_level(level) => self.reply(id, json!({})),
                _ => self.reply_err(
                    id,
                    ErrorCode::InvalidParams,
                    "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency",
                ),
            },
            _ => self.reply_err(id, ErrorCode::MethodNotFound, format!("Method not found: {method}")),
        }
    }

    fn notification(&mut self, method: &str, params: &Value) {
        if method == "notifications/cancelled" {
            let target = params.get("requestId").and_then(RequestId::from_value);
            if let Some(cancel) = target.and_then(|id| self.in_flight.get(&id)) {
                // The worker sees the flag, kills its children and sends no response.
                cancel.trip();
            }
        }
        // notifications/initialized and anything unknown need no action.
    }

    fn tools_call(&mut self, id: RequestId, params: Value) {
        let Some(name) = params.get("name").and_then(Value::as_str) else {
            return self.reply_err(
                id,
                ErrorCode::InvalidParams,
                "Invalid params: tools/call needs a string \"name\"",
            );
        };
        let Some(tool) = tools::lookup(name) else {
            return self.reply_err(
                id,
                ErrorCode::InvalidParams,
                format!("Unknown tool: {name}"),
            );
        };
        let args = match params.get("arguments") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => {
                return self.reply_err(
                    id,
                    ErrorCode::InvalidParams,
                    "Invalid params: \"arguments\" must be an object",
                );
            }
        };
        if self.in_flight.contains_key(&id) {
            return self.reply_err(
                id,
                ErrorCode::InvalidRequest,
                "Invalid Request: this id is already in use",
            );
        }
        let progress_token = params
            .get("_meta")
            .and_then(|m| m.get("progressToken"))
            .cloned();
        let cancel = Cancel::new();
        let ctx = ToolCtx::new(
            Arc::clone(&self.server),
            self.out.clone(),
            progress_token,
            cancel.clone(),
        );
        let out = self.out.clone();
        let done = self.done_tx.clone();
        let worker_id = id.clone();
        let spawned = thread::Builder::new()
            .name(format!("mcp-call-{id}"))
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| tools::call(tool, &ctx, &args)));
                // A cancelled request gets no response (MCP cancellation).
                if !ctx.cancel.is_tripped() {
                    let result = match outcome {
                        Ok(r) => tools::call_result(r),
                        Err(_) => tools::call_result(Err(tools::ToolError::new(format!(
                            "Internal error in tool '{}'; the server keeps running",
                            tool.name
                        )))),
                    };
                    let _ = out.send(Outgoing::Result {
                        id: worker_id.clone(),
                        result,
                    });
                }
                let _ = done.send(worker_id);
            });
        match spawned {
            Ok(_) => {
                self.in_flight.insert(id, cancel);
            }
            Err(e) => self.reply_err(
                id,
                ErrorCode::InternalError,
                format!("could not start a worker thread: {e}"),
            ),
        }
    }

    /// Stops every running call (their children's process groups are killed by the runner) and
    /// waits a bounded time for them to reap.
    fn shutdown(&mut self, done_rx: &Receiver<RequestId>) {
        self.server.app.shutdown();
        for cancel in self.in_flight.values() {
            cancel.trip();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while !self.in_flight.is_empty() || self.server.app.busy() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn(&format!(
                    "{} call(s) still running at exit",
                    self.in_flight.len()
                ));
                break;
            }
            if let Ok(id) = done_rx.recv_timeout(left.min(Duration::from_millis(50))) {
                self.in_flight.remove(&id);
            }
        }
    }
}

fn initialize_result(params: &Value) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = PROTOCOL_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .copied()
        .unwrap_or(PROTOCOL_VERSIONS[0]);
    let mut answer = json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false }, "logging": {} },
        "serverInfo": {
            "name": "agent-dispatch",
            "title": "Agent Dispatch",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": tools::INSTRUCTIONS,
    });
    // Resources, prompts and completions, for the revisions that have them.
    session::extend_initialize(&mut answer);
    answer
}
