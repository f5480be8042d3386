//! The tool table and what every tool shares: the per-server state (`Server`, including its
//! one-time start: config read once, job recovery and retention), the per-call context
//! (`ToolCtx`: logging, progress, cancellation), typed argument access checked against each
//! tool's declared parameters (`Args`), the error envelope (`ToolError`) and the shared parameter
//! rules of SPEC §7.3. One `Param` list per tool feeds both `tools/list` (the JSON Schema) and
//! argument parsing, so the two cannot drift apart.

mod ask;
mod async_jobs;
mod dispatch;
mod manage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crossbeam_channel::Sender;
use serde_json::{Map, Value, json};

use super::msg::Outgoing;
use crate::cache::Cache;
use crate::cancel::Cancel;
use crate::config::{self, AgentConfig, Config};
use crate::jobs::JobStore;
use crate::limiter::Limiter;
use crate::log;
use crate::pyfmt;
use crate::text::json_type;

/// State shared by every call of one server process.
pub struct Server {
    pub config_path: PathBuf,
    /// The one concurrency gate for every `claude` child this process starts.
    pub limiter: Limiter,
    cache: Mutex<Cache>,
    /// Minimum level of `notifications/message` the client wants (index into `LEVELS`).
    log_level: AtomicU8,
    /// Tripped at shutdown so queued work gives up instead of starting children.
    stopping: Cancel,
    /// The job store, opened on first successful use; its directory is fixed from then on
    /// (SPEC §8.1). A failed open is retried on the next call, so fixing the permissions works
    /// without a restart.
    jobs: Mutex<Option<JobStore>>,
    /// Async job threads still running in this process.
    job_threads: Arc<AtomicUsize>,
    /// How often a silent run sends a keep-alive progress notification to a client that asked
    /// for progress (`AGENT_DISPATCH_HEARTBEAT_SECS`, default 15).
    pub heartbeat: Duration,
}

impl Server {
    /// The server for `config_path`, ready to serve. `agents.yaml` is read once here, for the
    /// start-up settings; every call reloads it (SPEC §3.2). Before returning it fails the jobs
    /// whose owning server died (nobody holds their lock), then applies
    /// `settings.job_retention_days`. A broken jobs directory or config is logged, never fatal.
    pub fn start(config_path: PathBuf) -> Server {
        let settings = Config::load(&config_path)
            .map(|c| c.settings)
            .unwrap_or_default();
        let server = Server {
            limiter: Limiter::new(settings.max_concurrency),
            cache: Mutex::new(Cache::new(settings.cache.ttl, settings.cache.max_size)),
            config_path,
            log_level: AtomicU8::new(1),
            stopping: Cancel::new(),
            jobs: Mutex::new(None),
            job_threads: Arc::new(AtomicUsize::new(0)),
            heartbeat: heartbeat_interval(),
        };
        server.tidy_jobs(settings.job_retention_days);
        server
    }

    fn tidy_jobs(&self, days: u64) {
        let store = match self.jobs() {
            Ok(s) => s,
            Err(e) => return log::warn(&format!("jobs directory unusable: {}", e.message)),
        };
        match store.recover_abandoned() {
            Ok(0) => {}
            Ok(n) => log::info(&format!("Marked {n} abandoned job(s) as failed")),
            Err(e) => log::warn(&format!("job recovery failed: {e}")),
        }
        if days > 0 {
            match store.purge_older_than_days(days) {
                Ok(n) if n > 0 => log::info(&format!(
                    "Purged {n} terminal job(s) older than {days} day(s)"
                )),
                Ok(_) => {}
                Err(e) => log::warn(&format!("job retention purge failed: {e}")),
            }
        }
    }

    /// Called when the server stops: nothing new may start, and async jobs stop their children.
    pub fn shutdown(&self) {
        self.stopping.trip();
    }

    /// True while async job threads of this process are still winding down.
    pub fn busy(&self) -> bool {
        self.job_threads.load(Ordering::SeqCst) > 0
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_tripped()
    }

    pub fn stopping(&self) -> &Cancel {
        &self.stopping
    }

    /// The job store (`AGENT_DISPATCH_JOBS_DIR`, else `jobs/` next to the config).
    pub fn jobs(&self) -> Result<JobStore, ToolError> {
        let mut slot = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(store) = slot.as_ref() {
            return Ok(store.clone());
        }
        let store = JobStore::open(&config::jobs_dir(&self.config_path)).map_err(|e| {
            ToolError::new(e.to_string()).with_hint(
                "Set AGENT_DISPATCH_JOBS_DIR to a writable directory, or fix the permissions.",
            )
        })?;
        *slot = Some(store.clone());
        Ok(store)
    }

    /// Runs an async job on a thread of its own, counted so shutdown can wait for it.
    pub fn spawn_job(&self, id: &str, work: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let counter = Arc::clone(&self.job_threads);
        counter.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("job-{}", &id[..8.min(id.len())]))
            .spawn(move || {
                // Detached: the job store's ownership lock, not a JoinHandle, tracks its life.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.job_threads.fetch_sub(1, Ordering::SeqCst);
        }
        spawned.map(|_| ())
    }

    /// Reloads `agents.yaml` (SPEC §3.2: on every call) and applies live settings.
    pub fn load_config(&self) -> Result<Config, ToolError> {
        let config = Config::load(&self.config_path).map_err(|e| {
            ToolError::new(e.to_string()).with_hint(format!(
                "Fix the file (or move it aside and run `agent-dispatch init`); `agent-dispatch doctor` \
                 shows the problem. Path: {}",
                self.config_path.display()
            ))
        })?;
        self.limiter.set_capacity(config.settings.max_concurrency);
        self.cache()
            .configure(config.settings.cache.ttl, config.settings.cache.max_size);
        Ok(config)
    }

    pub fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `logging/setLevel`: false (and no change) when `level` is not an MCP level name.
    pub fn set_log_level(&self, level: &str) -> bool {
        match level_rank(level) {
            Some(rank) => {
                self.log_level.store(rank, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

fn heartbeat_interval() -> Duration {
    crate::env::secs(
        "AGENT_DISPATCH_HEARTBEAT_SECS",
        Duration::from_secs(15),
        Duration::from_secs(3600),
    )
}

/// Notification levels, lowest first (MCP logging).
const LEVELS: &[&str] = &[
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];
const INFO: u8 = 1;

fn level_rank(level: &str) -> Option<u8> {
    LEVELS
        .iter()
        .position(|l| *l == level)
        .and_then(|i| u8::try_from(i).ok())
}

/// What a tool can do besides returning: talk to the client while it works.
pub struct ToolCtx {
    pub server: std::sync::Arc<Server>,
    /// Tripped by `notifications/cancelled` or shutdown.
    pub cancel: Cancel,
    out: Sender<Outgoing>,
    progress_token: Option<Value>,
    /// The last progress number sent. Numbering and sending happen under this lock so that
    /// notifications from several threads (stream lines, keep-alives, parallel items) reach the
    /// client in increasing order, as MCP requires.
    progress: Mutex<u64>,
    /// Set while one of this request's runs sends keep-alives, so parallel items share one.
    heartbeat_taken: AtomicBool,
}

impl ToolCtx {
    pub fn new(
        server: std::sync::Arc<Server>,
        out: Sender<Outgoing>,
        progress_token: Option<Value>,
        cancel: Cancel,
    ) -> ToolCtx {
        ToolCtx {
            server,
            cancel,
            out,
            progress_token,
            progress: Mutex::new(0),
            heartbeat_taken: AtomicBool::new(false),
        }
    }

    /// A log line the SPEC names: to the client and to stderr.
    pub fn log(&self, message: &str) {
        log::info(message);
        self.notify(message);
    }

    /// A progress line: to the client only, as `notifications/message` (if the client's level
    /// allows info) and, when the request carried a progress token, as `notifications/progress`
    /// (which resets the client's request timeout).
    pub fn notify(&self, message: &str) {
        if self.server.log_level.load(Ordering::Relaxed) <= INFO {
            let _ = self.out.send(Outgoing::Notification {
                method: "notifications/message",
                params: json!({"level": "info", "logger": "agent-dispatch", "data": message}),
            });
        }
        self.progress_only(message);
    }

    /// The right to send this request's keep-alives, if the client asked for progress and no
    /// other run of the request (a parallel item) holds it. Dropping the claim releases it.
    pub fn claim_heartbeat(&self) -> Option<HeartbeatClaim<'_>> {
        if self.progress_token.is_none() || self.heartbeat_taken.swap(true, Ordering::SeqCst) {
            return None;
        }
        Some(HeartbeatClaim(&self.heartbeat_taken))
    }

    /// A `notifications/progress` only (no log line): keep-alives that carry no news.
    pub fn progress_only(&self, message: &str) {
        if let Some(token) = &self.progress_token {
            let mut last = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
            *last += 1;
            let _ = self.out.send(Outgoing::Notification {
                method: "notifications/progress",
                params: json!({"progressToken": token, "progress": *last, "message": message}),
            });
        }
    }
}

/// Held by the one run of a request that sends its keep-alives; see `ToolCtx::claim_heartbeat`.
pub struct HeartbeatClaim<'a>(&'a AtomicBool);

impl Drop for HeartbeatClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The agent called `name` in `config`, or the SPEC §7.3 unknown-agent error.
pub fn find_agent(config: &Config, name: &str) -> Result<AgentConfig, ToolError> {
    config
        .agent(name)
        .cloned()
        .ok_or_else(|| unknown_agent(config, name))
}

fn unknown_agent(config: &Config, name: &str) -> ToolError {
    let available: Vec<&str> = config.agents.names().collect();
    let list = if available.is_empty() {
        "(none configured)".to_string()
    } else {
        available.join(", ")
    };
    ToolError::new(format!(
        "Unknown agent: {}. Available: {list}",
        pyfmt::repr(name)
    ))
}

/// A tool-level failure: a result with `isError: true` carrying `{"error": …, "hint"?: …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError {
    pub message: String,
    pub hint: Option<String>,
}

impl ToolError {
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> ToolError {
        self.hint = Some(hint.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut v = json!({ "error": self.message });
        if let Some(h) = &self.hint {
            v["hint"] = json!(h);
        }
        v
    }
}

pub type ToolResult = Result<Value, ToolError>;

/// The `tools/call` result for a tool's outcome: one text item holding the JSON document.
pub fn call_result(outcome: ToolResult) -> Value {
    let (doc, is_error) = match outcome {
        Ok(v) => (v, false),
        Err(e) => (e.to_json(), true),
    };
    let text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string());
    json!({ "content": [{ "type": "text", "text": text }], "isError": is_error })
}

// ---------------------------------------------------------------------------------------------
// Parameters and the schema.

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Str(&'static str),
    Int(i64),
    Num(f64),
    Bool(bool),
    /// Required string: no default.
    ReqStr,
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
}

const fn p(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param {
        name,
        kind,
        description,
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Annotations {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

pub struct Tool {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    pub params: &'static [Param],
    pub annotations: Annotations,
    pub call: fn(&ToolCtx, &Args) -> ToolResult,
}

impl Tool {
    fn schema(&self) -> Value {
        let mut props = Map::new();
        let mut required = Vec::new();
        for param in self.params {
            let (ty, default) = match param.kind {
                Kind::ReqStr => {
                    required.push(json!(param.name));
                    ("string", None)
                }
                Kind::Str(d) => ("string", Some(json!(d))),
                Kind::Int(d) => ("integer", Some(json!(d))),
                Kind::Num(d) => ("number", Some(json!(d))),
                Kind::Bool(d) => ("boolean", Some(json!(d))),
            };
            let mut prop = json!({ "type": ty, "description": param.description });
            if let Some(d) = default {
                prop["default"] = d;
            }
            props.insert(param.name.to_string(), prop);
        }
        json!({ "type": "object", "properties": props, "required": required })
    }

    fn to_json(&self) -> Value {
        let a = self.annotations;
        json!({
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.schema(),
            "annotations": {
                "title": self.title,
                "readOnlyHint": a.read_only,
                "destructiveHint": a.destructive,
                "idempotentHint": a.idempotent,
                "openWorldHint": a.open_world,
            },
        })
    }
}

/// Arguments of one call, read through the tool's declared parameters.
pub struct Args<'a> {
    tool: &'static Tool,
    raw: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    pub fn new(tool: &'static Tool, raw: &'a Map<String, Value>) -> Args<'a> {
        Args { tool, raw }
    }

    fn param(&self, name: &str) -> &'static Param {
        // Handlers only ask for parameters they declared; a typo is a programming error that the
        // golden tools/list test and the per-tool tests catch, so fall back to a dummy.
        static MISSING: Param = p("?", Kind::Str(""), "");
        self.tool
            .params
            .iter()
            .find(|p| p.name == name)
            .unwrap_or(&MISSING)
    }

    /// The argument as given, treating `null` as absent.
    pub fn value(&self, name: &str) -> Option<&'a Value> {
        self.raw.get(name).filter(|v| !v.is_null())
    }

    fn type_error(name: &str, want: &str, got: &Value) -> ToolError {
        ToolError::new(format!(
            "Argument '{name}' must be {want}, got {} ({got})",
            json_type(got)
        ))
    }

    /// A string parameter; the declared default when absent. Missing required → error.
    pub fn string(&self, name: &str) -> Result<String, ToolError> {
        match (self.value(name), self.param(name).kind) {
            (Some(Value::String(s)), _) => Ok(s.clone()),
            (Some(v), _) => Err(Self::type_error(name, "a string", v)),
            (None, Kind::ReqStr) => Err(ToolError::new(format!(
                "Missing required argument '{name}'"
            ))),
            (None, Kind::Str(d)) => Ok(d.to_string()),
            (None, _) => Ok(String::new()),
        }
    }

    /// A string where `""` means "not given" (SPEC §0).
    pub fn opt_string(&self, name: &str) -> Result<Option<String>, ToolError> {
        Ok(Some(self.string(name)?).filter(|s| !s.is_empty()))
    }

    /// An integer parameter. Integral floats and numeric strings are accepted, as the
    /// reference's lax validation does; fractions, booleans and other types are not.
    pub fn int(&self, name: &str) -> Result<i64, ToolError> {
        let default = match self.param(name).kind {
            Kind::Int(d) => d,
            _ => 0,
        };
        match self.value(name) {
            None => Ok(default),
            Some(v) => int_of(v).ok_or_else(|| Self::type_error(name, "an integer", v)),
        }
    }

    pub fn number(&self, name: &str) -> Result<f64, ToolError> {
        let default = match self.param(name).kind {
            Kind::Num(d) => d,
            _ => 0.0,
        };
        match self.value(name) {
            None => Ok(default),
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| ToolError::new(format!("Argument '{name}' is out of range"))),
            Some(Value::String(s)) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| Self::type_error(name, "a number", &Value::String(s.clone()))),
            Some(v) => Err(Self::type_error(name, "a number", v)),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<bool, ToolError> {
        let default = match self.param(name).kind {
            Kind::Bool(d) => d,
            _ => false,
        };
        match self.value(name) {
            None => Ok(default),
            Some(v) => bool_of(v).ok_or_else(|| Self::type_error(name, "a boolean", v)),
        }
    }
}

/// Lax integer reading (an integer, an integral float, or a string of digits).
pub fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

pub fn bool_of(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Some(true),
            "false" | "no" | "off" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// SPEC §7.3: a per-call timeout override. `<= 0` keeps the agent's own; otherwise [10, 7200].
pub fn apply_timeout_override(agent: &mut AgentConfig, timeout_seconds: i64) {
    if timeout_seconds > 0 {
        agent.timeout = timeout_seconds.clamp(10, 7200) as u64;
    }
}

/// SPEC §7.3: `summary_chars` clamped to [0, 100000].
pub fn clamp_summary_chars(n: i64) -> usize {
    n.clamp(0, 100_000) as usize
}

// ---------------------------------------------------------------------------------------------
// The table.

const DISPATCHES: Annotations = Annotations {
    read_only: false,
    destructive: true,
    idempotent: false,
    open_world: true,
};
const READS: Annotations = Annotations {
    read_only: true,
    destructive: false,
    idempotent: true,
    open_world: false,
};

const AGENT: Param = p(
    "agent",
    Kind::ReqStr,
    "Name of a configured agent (see list_agents)",
);
const TASK: Param = p(
    "task",
    Kind::ReqStr,
    "What the agent should do, in plain language",
);
const CONTEXT: Param = p(
    "context",
    Kind::Str(""),
    "Background the agent needs (facts, snippets, constraints)",
);
const CALLER: Param = p(
    "caller",
    Kind::Str(""),
    "Who is asking (your project or agent name); shown to the agent",
);
const GOAL: Param = p(
    "goal",
    Kind::Str(""),
    "The larger goal this task serves; shown to the agent",
);
const RESPONSE_FORMAT: Param = p(
    "response_format",
    Kind::Str(""),
    "\"json\" asks the agent for a single JSON value and adds it as parsed_result",
);
const TIMEOUT_SECONDS: Param = p(
    "timeout_seconds",
    Kind::Int(0),
    "One-off timeout in seconds, clamped to [10, 7200]; 0 keeps the agent's own",
);
const RETURN_REF: Param = p(
    "return_ref",
    Kind::Bool(false),
    "Store the full result and return only a summary and a ref for fetch_result",
);
const JOB_ID: Param = p(
    "job_id",
    Kind::ReqStr,
    "The job id returned by dispatch_async (32 lowercase hex characters)",
);
const SUMMARY_CHARS: Param = p(
    "summary_chars",
    Kind::Int(500),
    "With return_ref: characters of the result to inline, [0, 100000]",
);

pub static TOOLS: &[Tool] = &[
    Tool {
        name: "list_agents",
        title: "List agents",
        description: "List the configured agents with their directories, descriptions, health, MCP servers, \
                      stacks, databases and tool permissions. Cheap: no subprocess.",
        params: &[],
        annotations: READS,
        call: manage::list_agents,
    },
    Tool {
        name: "inspect_agent",
        title: "Inspect an agent",
        description: "Look at one agent's project without running it: configuration, MCP servers, stacks, \
                      databases and previews of CLAUDE.md and README.md.",
        params: &[
            p("name", Kind::ReqStr, "Agent name"),
            p(
                "preview_lines",
                Kind::Int(40),
                "Lines of CLAUDE.md/README.md to preview, [0, 200]; 0 omits previews",
            ),
        ],
        annotations: READS,
        call: manage::inspect_agent,
    },
    Tool {
        name: "dispatch",
        title: "Dispatch a task",
        description: "Run a one-shot task in an agent's project (a `claude -p` session in its directory, with \
                      its CLAUDE.md, MCP servers and tools) and return the result. Identical successful \
                      requests are served from a short-lived cache.",
        params: &[
            AGENT,
            TASK,
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            RETURN_REF,
            SUMMARY_CHARS,
            TIMEOUT_SECONDS,
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch,
    },
    Tool {
        name: "dispatch_session",
        title: "Dispatch in a session",
        description: "Multi-turn work with one agent: omit session_id to start a session, pass the returned \
                      session_id to continue it. Also resumes a timed-out dispatch (task: \"Continue where \
                      you left off\"). Never cached.",
        params: &[
            AGENT,
            TASK,
            p(
                "session_id",
                Kind::Str(""),
                "Session to resume; empty starts a new one",
            ),
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            TIMEOUT_SECONDS,
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_session,
    },
    Tool {
        name: "dispatch_parallel",
        title: "Dispatch in parallel",
        description: "Run several dispatches at once. `dispatches` is a JSON array string of objects with \
                      agent and task (and optionally context, caller, goal, response_format, return_ref, \
                      summary_chars, timeout_seconds). Everything is validated before anything runs. With \
                      `aggregate`, that agent synthesises the results into one answer.",
        params: &[
            p(
                "dispatches",
                Kind::ReqStr,
                "JSON array of {agent, task, ...} objects",
            ),
            p(
                "aggregate",
                Kind::Str(""),
                "Agent that synthesises all results into one answer",
            ),
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_parallel,
    },
    Tool {
        name: "dispatch_stream",
        title: "Dispatch with live progress",
        description: "Like dispatch, but streams the agent's progress (its messages and tool calls) as log and \
                      progress notifications while it works. Never cached.",
        params: &[
            AGENT,
            TASK,
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            TIMEOUT_SECONDS,
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_stream,
    },
    Tool {
        name: "dispatch_dialogue",
        title: "Two-agent dialogue",
        description: "Let two agents talk until the responder (the expert) and the requester (the one with the \
                      problem) resolve the topic, marked by [RESOLVED], or max_rounds runs out.",
        params: &[
            p("requester", Kind::ReqStr, "Agent with the problem"),
            p(
                "responder",
                Kind::ReqStr,
                "Agent with the expertise; speaks first",
            ),
            p("topic", Kind::ReqStr, "What they should work out"),
            p(
                "max_rounds",
                Kind::Int(3),
                "Rounds of responder + requester turns, [1, 10]",
            ),
        ],
        annotations: DISPATCHES,
        call: dispatch::dispatch_dialogue,
    },
    Tool {
        name: "add_agent",
        title: "Add an agent",
        description: "Register a project directory as an agent. Without a description one is generated from \
                      CLAUDE.md, README.md, pyproject.toml, package.json and the detected stack.",
        params: &[
            p(
                "name",
                Kind::ReqStr,
                "Letters, digits, '-' and '_', starting with a letter or digit",
            ),
            p(
                "directory",
                Kind::ReqStr,
                "Project directory (~ is expanded)",
            ),
            p(
                "description",
                Kind::Str(""),
                "What the agent knows; empty generates one",
            ),
            p("timeout", Kind::Int(0), "Timeout in seconds; 0 means 300"),
            p(
                "max_budget_usd",
                Kind::Num(0.0),
                "Spending cap per dispatch in USD; 0 means none",
            ),
            p(
                "permission_mode",
                Kind::Str(""),
                "default, plan or bypassPermissions",
            ),
            p(
                "allowed_tools",
                Kind::Str(""),
                "Comma-separated tools the agent may use (e.g. Read,Grep,Bash(git *))",
            ),
            p(
                "disallowed_tools",
                Kind::Str(""),
                "Comma-separated tools the agent may not use",
            ),
        ],
        annotations: Annotations {
            read_only: false,
            destructive: false,
            idempotent: false,
            open_world: false,
        },
        call: manage::add_agent,
    },
    Tool {
        name: "remove_agent",
        title: "Remove an agent",
        description: "Remove an agent from the configuration (its directory is not touched).",
        params: &[p("name", Kind::ReqStr, "Agent name")],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: manage::remove_agent,
    },
    Tool {
        name: "update_agent",
        title: "Update an agent",
        description: "Change an agent's settings. Only non-empty arguments act; \"none\" clears model, \
                      permission_mode and the tool lists (which then inherit the defaults); a negative \
                      max_budget_usd clears the budget.",
        params: &[
            p("name", Kind::ReqStr, "Agent name"),
            p("description", Kind::Str(""), "New description"),
            p(
                "timeout",
                Kind::Int(0),
                "New timeout in seconds; 0 leaves it",
            ),
            p(
                "max_budget_usd",
                Kind::Num(0.0),
                "New budget in USD; negative clears; 0 leaves it",
            ),
            p("model", Kind::Str(""), "Model name; \"none\" clears"),
            p(
                "permission_mode",
                Kind::Str(""),
                "default, plan or bypassPermissions; \"none\" clears",
            ),
            p(
                "allowed_tools",
                Kind::Str(""),
                "Comma-separated tools; \"none\" clears",
            ),
            p(
                "disallowed_tools",
                Kind::Str(""),
                "Comma-separated tools; \"none\" clears",
            ),
        ],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: manage::update_agent,
    },
    Tool {
        name: "dispatch_async",
        title: "Start a background dispatch",
        description: "Start a dispatch in the background and return a job_id at once. Poll with \
                      dispatch_status, block with dispatch_wait, stop with dispatch_cancel. The job \
                      survives in the job store and shows live progress while it runs.",
        params: &[
            AGENT,
            TASK,
            CONTEXT,
            CALLER,
            GOAL,
            RESPONSE_FORMAT,
            TIMEOUT_SECONDS,
        ],
        annotations: DISPATCHES,
        call: async_jobs::dispatch_async,
    },
    Tool {
        name: "dispatch_status",
        title: "Job status",
        description: "The full record of a job: status, timestamps, the last 20 progress lines and, once \
                      finished, the result.",
        params: &[JOB_ID],
        annotations: READS,
        call: async_jobs::dispatch_status,
    },
    Tool {
        name: "dispatch_wait",
        title: "Wait for a job",
        description: "Block until a job finishes or timeout_seconds pass, then return its record \
                      (with timed_out_waiting: true if it is still running; the job keeps going).",
        params: &[
            JOB_ID,
            p(
                "timeout_seconds",
                Kind::Int(60),
                "How long to wait, clamped to [1, 3600]",
            ),
        ],
        annotations: READS,
        call: async_jobs::dispatch_wait,
    },
    Tool {
        name: "dispatch_cancel",
        title: "Cancel a job",
        description: "Cancel a pending or running job. A running job is marked cancelled first, then its \
                      claude process group is killed (by whichever server process runs it). outcome is \
                      cancelled, cancelled_running, already_terminal.",
        params: &[JOB_ID],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: async_jobs::dispatch_cancel,
    },
    Tool {
        name: "dispatch_jobs",
        title: "List jobs",
        description: "Recent jobs and stored results, newest first, with status, task, cost, error_type and \
                      the latest progress line of running jobs.",
        params: &[
            p(
                "status",
                Kind::Str(""),
                "Only this status: pending, running, done, failed, cancelled; empty = all",
            ),
            p("limit", Kind::Int(50), "At most this many, [1, 1000]"),
        ],
        annotations: READS,
        call: async_jobs::dispatch_jobs,
    },
    Tool {
        name: "fetch_result",
        title: "Fetch a stored result",
        description: "The full result behind a ref (from return_ref) or an async job_id; max_chars > 0 cuts \
                      the text and reports truncated and full_size.",
        params: &[
            p(
                "ref",
                Kind::ReqStr,
                "The ref or job_id (32 lowercase hex characters)",
            ),
            p(
                "max_chars",
                Kind::Int(0),
                "Return at most this many characters of result; 0 = all",
            ),
        ],
        annotations: READS,
        call: async_jobs::fetch_result,
    },
    Tool {
        name: "dispatch_gc",
        title: "Purge old jobs",
        description: "Delete finished jobs (done, failed, cancelled) older than max_age_days. Pending and \
                      running jobs are never deleted.",
        params: &[p(
            "max_age_days",
            Kind::Num(7.0),
            "Age threshold in days; must be > 0",
        )],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: async_jobs::dispatch_gc,
    },
    Tool {
        name: "cache_stats",
        title: "Cache statistics",
        description: "Size, hits, misses, evictions, hit rate and TTL of the dispatch result cache.",
        params: &[],
        annotations: READS,
        call: manage::cache_stats,
    },
    Tool {
        name: "cache_clear",
        title: "Clear the cache",
        description: "Drop every cached dispatch result and reset the counters.",
        params: &[],
        annotations: Annotations {
            read_only: false,
            destructive: true,
            idempotent: true,
            open_world: false,
        },
        call: manage::cache_clear,
    },
];

pub fn list() -> Vec<Value> {
    TOOLS.iter().map(Tool::to_json).collect()
}

pub fn lookup(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Sent in the `initialize` result: how a calling model should use this server.
pub const INSTRUCTIONS: &str = "\
agent-dispatch delegates tasks to Claude Code agents that live in other project directories. Each \
agent runs with its own CLAUDE.md, MCP servers and tools, so dispatch when a task needs another \
project's files, tools or knowledge; do the work yourself when it does not.

How to use it:
1. list_agents to see who is available (cheap, no subprocess).
2. inspect_agent for a closer look at one project without running it.
3. dispatch for one-shot work (identical successful requests are cached briefly).
4. dispatch_session for multi-turn work: pass back the session_id it returns.
5. dispatch_parallel to ask several agents at once; aggregate= lets one agent merge the answers.
6. dispatch_stream to watch progress live on long tasks.
7. dispatch_dialogue to let two agents work a problem out between them.
Always pass caller (who you are) and goal (why you ask): the agent sees both.

TIMEOUTS: pass timeout_seconds for long tasks. A timed-out dispatch returns a session_id; resume it \
with dispatch_session(agent, task=\"Continue where you left off\", session_id=...).

PERMISSIONS: denied_tools plus a hint in a result mean the answer may be incomplete. Grant the tools \
with update_agent(name, allowed_tools=...) or permission_mode=\"bypassPermissions\" for trusted \
projects, then retry.

ASYNC: dispatch_async starts a job and returns a job_id at once; dispatch_status shows its \
progress, dispatch_wait blocks until it finishes, dispatch_cancel stops it (pending or running), \
dispatch_jobs lists recent jobs, dispatch_gc purges old ones.

SAVING CONTEXT: pass return_ref=true to dispatch or to dispatch_parallel items to get a short \
summary plus a ref instead of a long result; fetch_result(ref) returns the full text when needed.

MANAGING AGENTS: add_agent, update_agent, remove_agent; cache_stats and cache_clear for the result \
cache.";
