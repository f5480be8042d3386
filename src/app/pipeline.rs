//! The dispatch pipeline: cache → permit → keep-alive → child → (ref). Every way of running an
//! agent goes through here — `dispatch`, `dispatch_session`, `dispatch_stream`, parallel items,
//! the aggregator, dialogue turns, background jobs (`background`) and the CLI's `test` — so a
//! rule added to the pipeline holds for all of them. What happens along the way reaches the
//! caller through an `Observer`, which the MCP layer and the CLI each implement.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use serde_json::Value;

use super::{App, Error};
use crate::ask::Ask;
use crate::cache::CacheKey;
use crate::cancel::Cancel;
use crate::claude::{DispatchRequest, Hooks, OutputMode};
use crate::config::{AgentConfig, Settings};
use crate::gate::{self, Queued};
use crate::journal::Entry;
use crate::limiter::Permit;
use crate::protocol::Outcome;
use crate::result::{DispatchResult, ErrorType};
use crate::text::first_chars;

/// Who watches a dispatch: where its log and progress lines go, and what stops it.
pub trait Observer: Sync {
    /// Tripping it stops the run (kills the child's process group).
    fn cancel(&self) -> &Cancel;
    /// A line a person wants to see (dispatch started, cache hit, aggregating…).
    fn log(&self, _line: &str) {}
    /// One progress line of a streaming child of `agent`, as the child printed it.
    fn progress(&self, _agent: &str, _line: &str) {}
    /// The right to send this call's keep-alives while a child works silently: `None` when
    /// nobody listens, or another run of the same call (a parallel item) already sends them.
    fn claim_keepalive(&self) -> Option<KeepaliveClaim<'_>> {
        None
    }
    /// A keep-alive that carries no news (sent every `App::heartbeat` to the claim holder).
    fn keepalive(&self, _line: &str) {}
}

/// Held by the one run of a call that sends its keep-alives; dropping it releases the right.
pub struct KeepaliveClaim<'a>(&'a AtomicBool);

impl<'a> KeepaliveClaim<'a> {
    /// Takes the right guarded by `flag`, unless someone holds it.
    pub fn take(flag: &'a AtomicBool) -> Option<KeepaliveClaim<'a>> {
        (!flag.swap(true, Ordering::SeqCst)).then_some(KeepaliveClaim(flag))
    }
}

impl Drop for KeepaliveClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The agent a dispatch runs, resolved by `App::target`.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    /// As configured: the cache fingerprint, so a one-off timeout does not split the cache.
    pub configured: AgentConfig,
    /// As it runs: the per-call timeout override applied.
    pub agent: AgentConfig,
    pub settings: Settings,
}

/// Which way of dispatching this is; it decides caching, output mode and what is announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `dispatch` and parallel items: served from the cache when enabled.
    OneShot,
    /// `dispatch_session`: a new session, or `Some(id)` to resume one. Never cached.
    Session(Option<String>),
    /// `dispatch_stream`: progress lines go to the observer as they happen. Never cached.
    Stream,
    /// An aggregator or a dialogue turn (optionally resuming): announced by its caller.
    Quiet(Option<String>),
    /// The CLI's `test`: no cache, JSON or streamed output.
    Test { stream: bool },
}

/// One dispatch: who, what, and how.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub target: Target,
    pub ask: Ask,
    pub kind: Kind,
}

impl Dispatch {
    fn mode(&self) -> OutputMode {
        match self.kind {
            Kind::Stream | Kind::Test { stream: true } => OutputMode::Stream,
            _ => OutputMode::Json,
        }
    }

    fn resume(&self) -> Option<String> {
        match &self.kind {
            Kind::Session(id) | Kind::Quiet(id) => id.clone().filter(|s| !s.is_empty()),
            _ => None,
        }
    }

    /// The key of a cacheable dispatch (one-shot, cache enabled), else `None`.
    fn cache_key(&self) -> Option<CacheKey> {
        let t = &self.target;
        (self.kind == Kind::OneShot && t.settings.cache.enabled).then(|| CacheKey {
            agent: t.name.clone(),
            agent_fingerprint: fingerprint(&t.configured, &t.settings),
            ask: self.ask.clone(),
        })
    }

    pub fn request(&self) -> DispatchRequest {
        let t = &self.target;
        let mut req = DispatchRequest::new(
            &t.name,
            t.agent.clone(),
            t.settings.clone(),
            self.ask.clone(),
        );
        req.resume_session = self.resume();
        req
    }

    /// The line that says a dispatch is starting, if this kind announces itself.
    fn announcement(&self) -> Option<String> {
        let (name, task) = (&self.target.name, first_chars(&self.ask.task, 80));
        match &self.kind {
            Kind::OneShot => Some(format!("Dispatching to {name}: {task}...")),
            Kind::Session(Some(id)) if !id.is_empty() => Some(format!(
                "Dispatching to {name} (resuming {}...): {task}...",
                first_chars(id, 12)
            )),
            Kind::Session(_) => Some(format!("Dispatching to {name} (new session): {task}...")),
            Kind::Stream => Some(format!("Dispatching (stream) to {name}: {task}...")),
            Kind::Quiet(_) | Kind::Test { .. } => None,
        }
    }
}

/// Everything about an agent's configuration that changes what a dispatch does. Part of the
/// cache key, so an edit made by any process (CLI, another server) never serves a stale answer.
fn fingerprint(agent: &AgentConfig, s: &Settings) -> String {
    serde_json::json!([
        agent,
        s.default_max_budget_usd,
        s.default_permission_mode,
        s.default_allowed_tools,
        s.default_disallowed_tools,
        s.dispatch_protocol
    ])
    .to_string()
}

/// What a dispatch produced, and whether the cache produced it.
#[derive(Clone, Debug)]
pub struct Ran {
    pub result: DispatchResult,
    pub cached: bool,
}

/// Runs `d` to completion: from the cache when it may, else a child under a permit.
pub fn run(app: &App, d: &Dispatch, obs: &dyn Observer) -> Ran {
    let key = d.cache_key();
    if let Some(hit) = key.as_ref().and_then(|k| app.cache().get(k)) {
        obs.log(&format!(
            "Cache hit for {} — returning cached result",
            d.target.name
        ));
        let entry = journal_entry(&hit, d.ask.caller.as_deref(), true);
        app.record(&d.target.settings, &entry);
        return Ran {
            result: hit,
            cached: true,
        };
    }
    if let Some(line) = d.announcement() {
        obs.log(&line);
    }
    let result = gated(app, d, obs);
    if let Some(key) = key {
        app.cache().put(key, &result);
    }
    Ran {
        result,
        cached: false,
    }
}

/// Waits for the right to start a child — a permit of the process's limiter, then a slot of
/// the machine gate when it is on — and runs the child while holding both.
fn gated(app: &App, d: &Dispatch, obs: &dyn Observer) -> DispatchResult {
    let name = d.target.name.as_str();
    // A wait for another process's children can be long: the caller hears once why, and a
    // keep-alive with its place in the queue every heartbeat (the claim is taken at the first
    // wait and kept for the run).
    let every = app.heartbeat();
    let (mut claim, mut claimed, mut told) = (None, false, false);
    let mut last_beat = std::time::Instant::now();
    let mut on_wait = |q: Queued| {
        if !told {
            told = true;
            obs.log(&format!("[{name}] {}", q.describe()));
        }
        if !claimed {
            claimed = true;
            claim = obs.claim_keepalive();
        }
        if claim.is_some() && last_beat.elapsed() >= every {
            last_beat = std::time::Instant::now();
            obs.keepalive(&format!("[{name}] {}", q.describe()));
        }
    };
    let permit = match gate::admit(app.limiter(), app.gate(), obs.cancel(), &mut on_wait) {
        Ok(Some(permit)) => permit,
        Ok(None) => {
            return DispatchResult::failure(
                name,
                ErrorType::Cancelled,
                "Cancelled before the agent started",
            );
        }
        Err(e) => {
            return DispatchResult {
                hint: Some(format!(
                    "Make {} writable (or set {} to a writable directory), or turn the machine \
                     gate off with settings.machine_max_concurrency: 0.",
                    app.gate().dir().display(),
                    gate::STATE_DIR_ENV
                )),
                ..DispatchResult::failure(name, ErrorType::CliError, e.to_string())
            };
        }
    };
    if app.is_stopping() {
        return DispatchResult::failure(name, ErrorType::Cancelled, "The server is shutting down");
    }
    let req = d.request();
    let mode = d.mode();
    let mut forward = |line: &str| obs.progress(name, line);
    let hooks = Hooks {
        cancel: Some(obs.cancel()),
        on_progress: (mode == OutputMode::Stream).then_some(&mut forward as &mut dyn FnMut(&str)),
        on_spawn: None,
    };
    let claim = if claimed {
        claim
    } else {
        obs.claim_keepalive()
    };
    let Some(_claim) = claim else {
        return child(app, &permit, &req, mode, hooks);
    };
    // A client that asked for progress resets its request timeout on each notification
    // (Claude Code does), so a long silent run gets a keep-alive while the child lives.
    let every = app.heartbeat();
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    std::thread::scope(|scope| {
        let started = std::time::Instant::now();
        let ticker = std::thread::Builder::new()
            .name("dispatch-heartbeat".into())
            .spawn_scoped(scope, move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    done_rx.recv_timeout(every)
                {
                    obs.keepalive(&format!(
                        "[{name}] still working ({}s)",
                        started.elapsed().as_secs()
                    ));
                }
            });
        let result = child(app, &permit, &req, mode, hooks);
        drop(done_tx);
        if let Ok(t) = ticker {
            let _ = t.join();
        }
        result
    })
}

/// The one place a dispatch's child is started: every path (including background jobs, whose
/// permit comes from the job worker) ends here, so what happens after a run — the journal
/// line — happens once.
pub fn child(
    app: &App,
    permit: &Permit,
    req: &DispatchRequest,
    mode: OutputMode,
    hooks: Hooks<'_>,
) -> DispatchResult {
    let started = std::time::Instant::now();
    let result = crate::backend::run(permit, app.run_env(), req, mode, hooks);
    let entry =
        journal_entry(&result, req.ask.caller.as_deref(), false).with_wall_time(started.elapsed());
    app.record(&req.settings, &entry);
    result
}

fn journal_entry(result: &DispatchResult, caller: Option<&str>, cached: bool) -> Entry {
    Entry::from_result(result, caller, cached).with_outcome(result.outcome.map(Outcome::as_str))
}

// ---------------------------------------------------------------------------------------------
// What goes back to the caller.

/// One dispatch as the caller receives it: the whole result, or a reference to it.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Full(Full),
    Ref(RefPayload),
}

#[derive(Clone, Debug, Serialize)]
pub struct Full {
    #[serde(flatten)]
    pub result: DispatchResult,
    /// Set when `return_ref` was asked for but the result could not be stored: the run
    /// happened and was paid for, so it is returned whole rather than thrown away.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ref_error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

/// SPEC §7.4: what `return_ref` returns instead of the full result.
#[derive(Clone, Debug, Serialize)]
pub struct RefPayload {
    #[serde(rename = "ref")]
    pub reference: String,
    pub agent: String,
    pub success: bool,
    /// Characters in the full result.
    pub size: usize,
    pub summary_chars: usize,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<ErrorType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denied_tools: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub budget_exceeded: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed_result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
}

impl RefPayload {
    pub fn new(reference: String, r: &DispatchResult, summary_chars: usize) -> RefPayload {
        let size = r.result.chars().count();
        RefPayload {
            reference,
            agent: r.agent.clone(),
            success: r.success,
            size,
            summary_chars: size.min(summary_chars),
            summary: first_chars(&r.result, summary_chars).to_string(),
            session_id: r.session_id.clone(),
            cost_usd: r.cost_usd,
            duration_ms: r.duration_ms,
            num_turns: r.num_turns,
            error: r.error.clone(),
            error_type: r.error_type,
            denied_tools: r.denied_tools.clone(),
            hint: r.hint.clone(),
            budget_exceeded: r.budget_exceeded,
            parsed_result: r.parsed_result.clone(),
            outcome: r.outcome,
            cached: false,
        }
    }
}

impl Reply {
    pub fn agent(&self) -> &str {
        match self {
            Reply::Full(f) => &f.result.agent,
            Reply::Ref(r) => &r.agent,
        }
    }

    pub fn success(&self) -> bool {
        match self {
            Reply::Full(f) => f.result.success,
            Reply::Ref(r) => r.success,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Reply::Full(f) => f.result.outcome,
            Reply::Ref(r) => r.outcome,
        }
    }
}

impl crate::schema::Schema for Full {
    fn schema() -> Value {
        use crate::schema::{boolean, extend, string};
        extend(
            DispatchResult::schema(),
            &[("ref_error", string()), ("cached", boolean())],
            &[],
        )
    }
}

impl crate::schema::Schema for RefPayload {
    fn schema() -> Value {
        use crate::schema::{boolean, integer, object, string};
        let mut props = DispatchResult::common_properties();
        props.extend([
            ("ref", string()),
            ("size", integer()),
            ("summary_chars", integer()),
            ("summary", string()),
            ("cached", boolean()),
        ]);
        object(
            &props,
            &[
                "ref",
                "agent",
                "success",
                "size",
                "summary_chars",
                "summary",
            ],
        )
    }
}

impl crate::schema::Schema for Reply {
    fn schema() -> Value {
        crate::schema::any_of(vec![Full::schema(), RefPayload::schema()])
    }
}

/// The reply to a finished dispatch: the result itself, or (with `ref_summary`) the result
/// stored as a finished job and a summary of `ref_summary` characters with its ref.
pub fn reply(app: &App, ask: &Ask, ran: Ran, ref_summary: Option<usize>) -> Reply {
    let Some(chars) = ref_summary else {
        return Reply::Full(Full {
            result: ran.result,
            ref_error: None,
            cached: ran.cached,
        });
    };
    match store_ref(app, ask, &ran.result) {
        Ok(id) => Reply::Ref(RefPayload {
            cached: ran.cached,
            ..RefPayload::new(id, &ran.result, chars)
        }),
        Err(e) => Reply::Full(Full {
            result: ran.result,
            ref_error: Some(e.message),
            cached: ran.cached,
        }),
    }
}

/// Persists `result` as a finished job (SPEC §8.3) and returns its id.
fn store_ref(app: &App, ask: &Ask, result: &DispatchResult) -> Result<String, Error> {
    let job = app
        .jobs()?
        .create_completed(&result.agent, ask, result)
        .map_err(Error::from_store)?;
    Ok(job.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn ref_payload_inlines_a_summary_and_never_the_full_text() {
        let r = DispatchResult {
            agent: "db".into(),
            success: true,
            result: "big-db".into(),
            session_id: Some("s".into()),
            cost_usd: Some(0.5),
            ..Default::default()
        };
        let p = serde_json::to_value(RefPayload::new("ab".into(), &r, 3)).unwrap_or_default();
        assert_eq!(p["summary"], "big");
        assert_eq!(p["size"], 6);
        assert_eq!(p["summary_chars"], 3);
        assert_eq!(p["session_id"], "s");
        assert!(p.get("result").is_none());
        let p = serde_json::to_value(RefPayload::new("ab".into(), &r, 0)).unwrap_or_default();
        assert_eq!(
            (p["summary"].as_str(), p["summary_chars"].as_u64()),
            (Some(""), Some(0))
        );
    }

    #[test]
    fn replies_match_their_schema() {
        let r = DispatchResult {
            agent: "a".into(),
            success: false,
            result: "x".into(),
            error: Some("e".into()),
            error_type: Some(ErrorType::Timeout),
            budget_exceeded: true,
            parsed_result: Some(serde_json::json!(1)),
            denied_tools: Some(vec!["Bash".into()]),
            hint: Some("h".into()),
            duration_ms: Some(1),
            num_turns: Some(1),
            ..Default::default()
        };
        let full = Reply::Full(Full {
            result: r.clone(),
            ref_error: Some("disk".into()),
            cached: true,
        });
        let reference = Reply::Ref(RefPayload {
            cached: true,
            ..RefPayload::new("ab".into(), &r, 1)
        });
        for reply in [full, reference] {
            let v = serde_json::to_value(&reply).unwrap_or_default();
            assert_eq!(crate::schema::validate(&Reply::schema(), &v), Ok(()), "{v}");
        }
    }

    #[test]
    fn a_full_reply_keeps_the_result_order_then_flags() {
        let r = Reply::Full(Full {
            result: DispatchResult {
                agent: "a".into(),
                success: true,
                result: "x".into(),
                ..Default::default()
            },
            ref_error: Some("disk".into()),
            cached: true,
        });
        assert_eq!(
            serde_json::to_string(&r).unwrap_or_default(),
            r#"{"agent":"a","success":true,"result":"x","ref_error":"disk","cached":true}"#
        );
    }
}
