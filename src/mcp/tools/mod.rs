//! The MCP adapter over the application core: the tool table (one `Param` list per tool feeds
//! both `tools/list`'s JSON Schema and argument reading, so the two cannot drift apart), typed
//! argument access (`Args`), the per-call context (`ToolCtx`, the `Observer` of the calls it
//! runs: log lines, progress and keep-alives as notifications, cancellation) and the rendering of
//! typed results and errors as `tools/call` results. Nothing here decides how a dispatch runs;
//! that is `app`'s job.

mod ask;
mod async_jobs;
mod dispatch;
mod manage;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crossbeam_channel::Sender;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::msg::Outgoing;
use crate::app::pipeline::KeepaliveClaim;
use crate::app::{self, App, Observer};
use crate::cancel::Cancel;
use crate::log;
use crate::runenv::RunEnv;
use crate::text::json_type;

/// What one MCP server process shares between calls: the application and what the client asked
/// of this connection (the log level).
pub struct Server {
    pub app: Arc<App>,
    /// Minimum level of `notifications/message` the client wants (index into `LEVELS`).
    log_level: AtomicU8,
}

impl Server {
    /// The server for `config_path`, its children inheriting this process's environment.
    pub fn start(config_path: PathBuf) -> Server {
        Server {
            app: Arc::new(App::start(config_path, RunEnv::from_process())),
            log_level: AtomicU8::new(INFO),
        }
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
    pub server: Arc<Server>,
    /// Tripped by `notifications/cancelled` or shutdown.
    pub cancel: Cancel,
    out: Sender<Outgoing>,
    progress_token: Option<Value>,
    /// The last progress number sent. Numbering and sending happen under this lock so that
    /// notifications from several threads (stream lines, keep-alives, parallel items) reach the
    /// client in increasing order, as MCP requires.
    progress: Mutex<u64>,
    /// Set while one of this request's runs sends keep-alives, so parallel items share one.
    keepalive_taken: AtomicBool,
}

impl ToolCtx {
    pub fn new(
        server: Arc<Server>,
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
            keepalive_taken: AtomicBool::new(false),
        }
    }

    pub fn app(&self) -> &Arc<App> {
        &self.server.app
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

    /// A `notifications/progress` only (no log line): keep-alives that carry no news.
    fn progress_only(&self, message: &str) {
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

impl Observer for ToolCtx {
    fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// A log line the SPEC names: to the client and to stderr.
    fn log(&self, line: &str) {
        log::info(line);
        self.notify(line);
    }

    fn progress(&self, agent: &str, line: &str) {
        self.notify(&format!(
            "[{agent}] {}",
            crate::text::first_chars(line, 300)
        ));
    }

    fn claim_keepalive(&self) -> Option<KeepaliveClaim<'_>> {
        self.progress_token.as_ref()?;
        KeepaliveClaim::take(&self.keepalive_taken)
    }

    fn keepalive(&self, line: &str) {
        self.progress_only(line);
    }
}

/// A tool-level failure: a result with `isError: true` carrying `{"error": …, "hint"?: …}`.
/// Argument errors are made here; everything else comes from the application.
pub type ToolError = app::Error;

pub type ToolResult = Result<Value, ToolError>;

/// A typed result as a tool's JSON document.
pub fn to_doc(view: &impl Serialize) -> ToolResult {
    serde_json::to_value(view)
        .map_err(|e| ToolError::new(format!("could not encode the result: {e}")))
}

fn error_doc(e: &ToolError) -> Value {
    let mut v = json!({ "error": e.message });
    if let Some(h) = &e.hint {
        v["hint"] = json!(h);
    }
    v
}

/// The `tools/call` result for a tool's outcome: one text item holding the JSON document.
pub fn call_result(outcome: ToolResult) -> Value {
    let (doc, is_error) = match outcome {
        Ok(v) => (v, false),
        Err(e) => (error_doc(&e), true),
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
