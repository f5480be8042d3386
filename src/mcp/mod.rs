//! `agent-dispatch serve`: the MCP server loop. It owns the handshake, the map of in-flight
//! requests, one worker thread per `tools/call`, cancellation and shutdown. Framing lives in
//! `transport`, wire types in `msg`, and everything a tool does in `tools`.
//!
//! The loop itself never blocks on tool work: `initialize`, `ping`, `tools/list` and
//! `logging/setLevel` are answered inline, so `ping` is answered while dispatches run.
//!
//! Bounds (see `outbox`): the loop reads no new request while `outbox::MAX_RESPONSES` responses
//! wait for a client that is not reading. Shutdown (stdin EOF, a signal, or a client that closed
//! stdout) kills running children and returns within `SHUTDOWN_GRACE` + `WRITER_GRACE` whatever
//! the client does: a writer blocked on a full stdout is abandoned, never waited for.

mod completion;
pub mod msg;
pub mod outbox;
pub mod output;
mod prompts;
pub mod resources;
pub mod session;
pub mod tools;
pub mod transport;
mod watch;

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use serde_json::{Value, json};

use crate::cancel::Cancel;
use crate::log;
use msg::{ErrorCode, Incoming, Outgoing, RequestId};
use outbox::Outbox;
use tools::{Server, ToolCtx};
use transport::{Inbound, IoThreads};

/// Protocol revisions we speak, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// How long shutdown waits for running calls to kill and reap their children.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1700);
/// How long shutdown then waits for the writer to hand the last responses to the client.
const WRITER_GRACE: Duration = Duration::from_millis(200);
/// Where servers keep their child ledgers (`process::ledger`), inside the jobs directory.
pub const LEDGER_DIR: &str = "ledgers";
/// Messages in flight between tools and the outbox pump.
const OUT_CHANNEL: usize = 1024;
/// How often the loop wakes to see whether the outbox has room again.
const TICK: Duration = Duration::from_millis(20);

/// Runs the server on the process's stdin/stdout until stdin closes, the client closes stdout,
/// or SIGTERM/SIGINT/SIGHUP.
pub fn serve_stdio(config_path: PathBuf) -> io::Result<()> {
    let signals = crate::signals::install();
    // Children of a server that was SIGKILLed are killed before this one starts its own.
    let ledgers = crate::config::jobs_dir(&config_path).join(LEDGER_DIR);
    let leftovers = crate::process::ledger::sweep(&ledgers);
    if leftovers > 0 {
        log::info(&format!(
            "killed {leftovers} leftover process(es) of a server that died without cleaning up"
        ));
    }
    if let Err(e) = crate::process::ledger::install(&ledgers) {
        log::warn(&format!("no child ledger in {}: {e}", ledgers.display()));
    }
    let server = Arc::new(Server::start(config_path));
    let stdin = io::BufReader::with_capacity(1024 * 1024, io::stdin());
    // The writer owns its own descriptor for stdout, not `io::stdout()`: nothing else can take
    // the lock it would hold while blocked on a client that does not read.
    // SAFETY: dup(2) of fd 1 has no memory effects; the new descriptor is owned by the `File`.
    let fd: RawFd = unsafe { libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let stdout = unsafe { std::fs::File::from_raw_fd(fd) };
    let fds = Fds {
        stdin: 0,
        stdout: fd,
    };
    serve(server, stdin, stdout, Some(fds), signals)
}

/// The descriptors behind a `serve` loop's streams, watched for a client that went away.
#[derive(Clone, Copy, Debug)]
pub struct Fds {
    pub stdin: RawFd,
    pub stdout: RawFd,
}

/// The loop, over any byte streams (tests drive it with pipes). `fds` are the descriptors behind
/// them, watched so a client that closes stdout, or closes stdin while leaving answers unread, is
/// noticed although nothing is written or read.
pub fn serve<R, W>(
    server: Arc<Server>,
    input: R,
    output: W,
    fds: Option<Fds>,
    signals: Option<Receiver<i32>>,
) -> io::Result<()>
where
    R: BufRead + Send + 'static,
    W: Write + Send + 'static,
{
    let outbox = Arc::new(Outbox::default());
    // Bounded, so producers faster than the pump wait a moment instead of growing a queue; the
    // pump itself never blocks (the outbox drops or queues), so that wait is always short.
    let (out_tx, out_rx) = crossbeam_channel::bounded::<Outgoing>(OUT_CHANNEL);
    let (in_tx, in_rx) = crossbeam_channel::bounded::<Inbound>(64);
    let (failed_tx, failed_rx) = crossbeam_channel::bounded::<io::Error>(1);
    let io_threads = IoThreads {
        writer: transport::spawn_writer(
            output,
            fds.map(|f| f.stdout),
            Arc::clone(&outbox),
            failed_tx,
        )?,
        pump: transport::spawn_pump(out_rx, Arc::clone(&outbox))?,
        reader: transport::spawn_reader(input, transport::MAX_LINE_BYTES, in_tx)?,
    };
    let signals = signals.unwrap_or_else(crossbeam_channel::never);
    let paused = crossbeam_channel::never::<Inbound>();

    let mut looper = Loop {
        server,
        out: out_tx,
        in_flight: Arc::new(Mutex::new(HashMap::new())),
    };
    let mut client_gone: Option<io::Error> = None;
    loop {
        // Backpressure: while the client leaves responses unread, read no more requests.
        let input = if outbox.has_room() {
            &in_rx
        } else {
            // The reader may be blocked handing us a request, so it cannot see the end of
            // stdin: a client that closed stdin and reads nothing is gone.
            if fds.is_some_and(|f| transport::hung_up(f.stdin)) {
                log::info("stdin closed while answers wait unread; shutting down");
                break;
            }
            &paused
        };
        select! {
            recv(input) -> m => match m {
                Ok(Inbound::Message(incoming)) => looper.handle(incoming),
                Ok(Inbound::Reply(reply)) => {
                    let _ = looper.out.send(reply);
                }
                Ok(Inbound::Closed) | Err(_) => {
                    log::info("stdin closed; shutting down");
                    break;
                }
            },
            recv(failed_rx) -> e => {
                let e = e.unwrap_or_else(|_| io::Error::other("writer ended"));
                log::warn(&format!("cannot write to the client ({e}); shutting down"));
                client_gone = Some(e);
                break;
            },
            recv(signals) -> sig => {
                log::info(&format!("received signal {}; shutting down", sig.unwrap_or(0)));
                break;
            },
            default(TICK) => {},
        }
    }
    looper.shutdown();
    drop(looper);
    let joined = io_threads.join(&outbox, Instant::now() + WRITER_GRACE);
    let unsent = outbox.queued();
    match (client_gone, joined) {
        // The client went away: its write error is the report, and not a server failure.
        (Some(_), _) => Ok(()),
        (None, Err(e)) => {
            log::warn(&format!("{e}; {unsent} message(s) unsent"));
            Ok(())
        }
        (None, Ok(())) => Ok(()),
    }
}

/// Running `tools/call` requests and the flag that cancels each. Shared with the workers: a
/// worker queues its response and frees its id under one lock, so a client that re-sends an id
/// the moment it reads the response always finds it free.
type InFlight = Arc<Mutex<HashMap<RequestId, Cancel>>>;

fn lock(in_flight: &InFlight) -> MutexGuard<'_, HashMap<RequestId, Cancel>> {
    in_flight.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Loop {
    server: Arc<Server>,
    out: Sender<Outgoing>,
    in_flight: InFlight,
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
        // Whatever the method: two responses must never carry one id.
        if lock(&self.in_flight).contains_key(&id) {
            return self.reply_err(
                id,
                ErrorCode::InvalidRequest,
                "Invalid Request: this id is already in use",
            );
        }
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
            if let Some(cancel) = target.and_then(|id| lock(&self.in_flight).get(&id).cloned()) {
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
        let in_flight = Arc::clone(&self.in_flight);
        let worker_id = id.clone();
        // Registered before the worker starts: the worker frees it under the same lock.
        lock(&self.in_flight).insert(id.clone(), cancel);
        let spawned = thread::Builder::new()
            .name(format!("mcp-call-{id}"))
            .spawn(move || {
                let outcome = catch_unwind(AssertUnwindSafe(|| tools::call(tool, &ctx, &args)));
                let mut running = lock(&in_flight);
                // A cancelled request gets no response (MCP cancellation).
                if !ctx.cancel.is_tripped() {
                    let result = match outcome {
                        Ok(r) => tools::call_result(r),
                        Err(_) => tools::call_result(Err(tools::ToolError::new(format!(
                            "Internal error in tool '{}'; the server keeps running",
                            tool.name
                        )))),
                    };
                    // Queued in order before the id is freed (both under the lock).
                    let _ = out.send(Outgoing::Result {
                        id: worker_id.clone(),
                        result,
                    });
                }
                running.remove(&worker_id);
            });
        if let Err(e) = spawned {
            lock(&self.in_flight).remove(&id);
            self.reply_err(
                id,
                ErrorCode::InternalError,
                format!("could not start a worker thread: {e}"),
            );
        }
    }

    /// Stops every running call (their children's process groups are killed by the runner) and
    /// waits a bounded time for them to reap.
    fn shutdown(&mut self) {
        self.server.app.shutdown();
        for cancel in lock(&self.in_flight).values() {
            cancel.trip();
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        loop {
            let running = lock(&self.in_flight).len();
            if running == 0 && !self.server.app.busy() {
                break;
            }
            if Instant::now() >= deadline {
                log::warn(&format!("{running} call(s) still running at exit"));
                break;
            }
            thread::sleep(Duration::from_millis(10));
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
