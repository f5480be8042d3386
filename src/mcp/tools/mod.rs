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
mod table;

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
    /// What the connection negotiated, and its resource subscriptions.
    pub session: super::session::Session,
}

impl Server {
    /// The server for `config_path`, its children inheriting this process's environment.
    pub fn start(config_path: PathBuf) -> Server {
        Server {
            app: Arc::new(App::start(config_path, RunEnv::from_process())),
            log_level: AtomicU8::new(INFO),
            session: super::session::Session::default(),
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

/// A tool's document, with what this connection also gets for it: from protocol 2025-06-18 on,
/// `structuredContent` (see `mcp::output`) and `resource_link` items for stored results.
pub struct Output {
    doc: Value,
    structured: Option<Value>,
    links: Vec<Value>,
}

impl Output {
    fn new(tool: &Tool, doc: Value, structured: bool) -> Output {
        if !structured {
            return Output {
                doc,
                structured: None,
                links: Vec::new(),
            };
        }
        Output {
            structured: Some(super::output::structured(&doc)),
            links: super::resources::links(tool.name, &doc),
            doc,
        }
    }
}

/// The `tools/call` result for a tool's outcome: one text item holding the JSON document, then
/// any resource links, and the structured copy when the connection has them. Errors carry the
/// text alone.
pub fn call_result(outcome: Result<Output, ToolError>) -> Value {
    let (out, is_error) = match outcome {
        Ok(out) => (out, false),
        Err(e) => (
            Output {
                doc: error_doc(&e),
                structured: None,
                links: Vec::new(),
            },
            true,
        ),
    };
    let doc = &out.doc;
    let text = serde_json::to_string_pretty(doc).unwrap_or_else(|_| doc.to_string());
    let mut content = vec![json!({ "type": "text", "text": text })];
    content.extend(out.links);
    match out.structured {
        Some(structured) => json!({
            "content": content,
            "structuredContent": structured,
            "isError": is_error,
        }),
        None => json!({ "content": content, "isError": is_error }),
    }
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
        json!({
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        })
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

pub use table::INSTRUCTIONS;

pub fn list() -> Vec<Value> {
    table::TOOLS.iter().map(Tool::to_json).collect()
}

/// `tools/list` for clients of protocol 2025-06-18 and later: each tool with its `outputSchema`.
/// Built once per process: the table and the schemas are fixed.
pub fn list_structured() -> Vec<Value> {
    static LISTED: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    LISTED
        .get_or_init(|| {
            table::TOOLS
                .iter()
                .map(|tool| {
                    let mut v = tool.to_json();
                    if let Some(schema) = super::output::schema_for(tool.name) {
                        v["outputSchema"] = schema;
                    }
                    v
                })
                .collect()
        })
        .clone()
}

pub use manage::{inspect, inspect_group_doc};

/// Runs `tool` on `raw` arguments, refusing any argument its schema does not list (a typo such
/// as `dry-run` must not silently turn into the destructive default).
pub fn call(
    tool: &'static Tool,
    ctx: &ToolCtx,
    raw: &Map<String, Value>,
) -> Result<Output, ToolError> {
    if let Some(unknown) = raw
        .keys()
        .find(|k| !tool.params.iter().any(|p| p.name == *k))
    {
        let valid: Vec<&str> = tool.params.iter().map(|p| p.name).collect();
        let valid = if valid.is_empty() {
            "none".to_string()
        } else {
            valid.join(", ")
        };
        return Err(ToolError::new(format!(
            "Unknown argument '{unknown}' for {}. Valid arguments: {valid}",
            tool.name
        )));
    }
    let doc = (tool.call)(ctx, &Args::new(tool, raw))?;
    Ok(Output::new(tool, doc, ctx.server.session.structured()))
}

pub fn lookup(name: &str) -> Option<&'static Tool> {
    table::TOOLS.iter().find(|t| t.name == name)
}
