//! The on-disk `Job` record (SPEC §2.6), its `Status`, id validation, and the two read-only
//! views the MCP tools return (`dispatch_jobs` summaries, `fetch_result`). Nothing here touches
//! the filesystem; storage and transitions live in `jobs::store`.

use crate::ask::Ask;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::result::DispatchResult;
use crate::schema::Schema;
use crate::text::first_chars;

/// Where a job is in its life. The last three are terminal: nothing moves a job out of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Running,
        Status::Done,
        Status::Failed,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Done | Status::Failed | Status::Cancelled)
    }

    /// The `dispatch_jobs` / `jobs --status` filter: trimmed, lower-cased, empty = every status.
    /// The error is the message SPEC tool 15 returns.
    pub fn parse_filter(raw: &str) -> Result<Option<Status>, String> {
        let wanted = raw.trim().to_lowercase();
        if wanted.is_empty() {
            return Ok(None);
        }
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == wanted)
            .map(Some)
            .ok_or_else(|| {
                format!(
                    "Invalid status: '{raw}'. Use one of: cancelled, done, failed, pending, running or empty."
                )
            })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One async job or `return_ref` reference. Fields serialise in SPEC §2.6 order, absent ones
/// omitted. Beyond the spec the record keeps what SPEC §12 items 4 and 24 say is missing:
/// `response_format` and the effective `timeout` (so a job can be understood and re-dispatched
/// from its file alone), and who runs it: `owner_pid` (the server process holding the job's
/// ownership lock, for diagnostics only — liveness is decided by the lock, never by the pid) and
/// `child_pgid` + `child_started` (the `claude` child's process group and its start time in
/// clock ticks since boot, so a later process can prove a still-running orphan is really ours
/// before killing it, see `store::kill_orphan`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub agent: String,
    pub task: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<String>,
    /// Effective timeout in seconds (the agent's, or the per-call override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    pub status: Status,
    pub created_at: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<DispatchResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_updated_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_pgid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_started: Option<u64>,
    /// The child's `AGENT_DISPATCH_CHILD` marker: a kill from this record needs the process to
    /// carry exactly this value (see `process::marker`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_marker: Option<String>,
}

impl crate::schema::Schema for Status {
    fn schema() -> Value {
        let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
        crate::schema::one_of_strings(&names)
    }
}

impl crate::schema::Schema for Job {
    fn schema() -> Value {
        use crate::schema::{array, integer, number, object, string};
        object(
            &[
                ("id", string()),
                ("agent", string()),
                ("task", string()),
                ("context", string()),
                ("caller", string()),
                ("goal", string()),
                ("response_format", string()),
                ("timeout", integer()),
                ("status", Status::schema()),
                ("created_at", number()),
                ("started_at", number()),
                ("completed_at", number()),
                ("result", DispatchResult::schema()),
                ("error", string()),
                ("progress", array(string())),
                ("progress_updated_at", number()),
                ("owner_pid", integer()),
                ("child_pgid", integer()),
                ("child_started", integer()),
                ("child_marker", string()),
            ],
            &["id", "agent", "task", "status", "created_at"],
        )
    }
}

/// What `JobStore::create` needs. Empty strings are "not given" (SPEC §0) and are dropped.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    pub agent: String,
    pub ask: Ask,
    pub timeout: Option<u64>,
}

/// Characters kept of each progress line and lines kept in the rolling tail (SPEC §8.5, §10).
pub const PROGRESS_LINE_CHARS: usize = 300;
pub const PROGRESS_LINES: usize = 20;
/// `task` in a `dispatch_jobs` summary is cut to this many characters (SPEC tool 15).
pub const SUMMARY_TASK_CHARS: usize = 120;

/// `^[0-9a-f]{32}$`: the only ids that are ever turned into paths (SPEC §8.2).
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh id: a v4 uuid as 32 lowercase hex characters.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Unix epoch seconds with sub-second precision (SPEC §0).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl Job {
    pub(crate) fn from_new(id: String, new: NewJob, at: f64) -> Job {
        Job {
            id,
            agent: new.agent,
            task: new.ask.task,
            context: non_empty(new.ask.context),
            caller: non_empty(new.ask.caller),
            goal: non_empty(new.ask.goal),
            response_format: non_empty(new.ask.response_format.as_str().map(str::to_string)),
            timeout: new.timeout,
            status: Status::Pending,
            created_at: at,
            started_at: None,
            completed_at: None,
            result: None,
            error: None,
            progress: None,
            progress_updated_at: None,
            owner_pid: None,
            child_pgid: None,
            child_started: None,
            child_marker: None,
        }
    }

    /// The full record as `dispatch_status` returns it.
    pub fn to_json(&self) -> Value {
        // A struct of plain fields always serialises.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// `completed_at`, else `created_at`: the age gc and retention go by (SPEC §8.7).
    pub fn finished_or_created(&self) -> f64 {
        self.completed_at.unwrap_or(self.created_at)
    }

    /// The `error_type` a summary shows for a job with an `error`. SPEC §12 item 30: 0.6.0 calls
    /// every result-less failure `cli_error`; a cancelled job says `cancelled` here, the same
    /// value a cancelled synchronous dispatch reports.
    pub fn error_type(&self) -> Option<&'static str> {
        self.error.as_ref()?;
        Some(match (&self.result, self.status) {
            (Some(r), _) => r.error_type.map_or("cli_error", |t| t.as_str()),
            (None, Status::Cancelled) => "cancelled",
            (None, _) => "cli_error",
        })
    }
}

/// One `dispatch_jobs` entry (SPEC tool 15): id, agent, status, task (120 chars), created_at,
/// started_at / completed_at if set, success and cost_usd from the result, `last_progress` only
/// while running, `error_type` whenever the job has an error.
pub fn summary(job: &Job) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(job.id));
    m.insert("agent".into(), json!(job.agent));
    m.insert("status".into(), json!(job.status));
    m.insert(
        "task".into(),
        json!(first_chars(&job.task, SUMMARY_TASK_CHARS)),
    );
    m.insert("created_at".into(), json!(job.created_at));
    if let Some(t) = job.started_at {
        m.insert("started_at".into(), json!(t));
    }
    if let Some(t) = job.completed_at {
        m.insert("completed_at".into(), json!(t));
    }
    if let Some(r) = &job.result {
        m.insert("success".into(), json!(r.success));
        if let Some(c) = r.cost_usd {
            m.insert("cost_usd".into(), json!(c));
        }
        if let Some(o) = r.outcome {
            m.insert("outcome".into(), json!(o));
        }
    }
    let last = job.progress.as_ref().and_then(|p| p.last());
    if let (Status::Running, Some(last)) = (job.status, last) {
        m.insert("last_progress".into(), json!(last));
    }
    if let Some(t) = job.error_type() {
        m.insert("error_type".into(), json!(t));
    }
    Value::Object(m)
}

/// The schema of a [`summary`].
pub fn summary_schema() -> Value {
    use crate::schema::{boolean, number, object, string};
    object(
        &[
            ("id", string()),
            ("agent", string()),
            ("status", Status::schema()),
            ("task", string()),
            ("created_at", number()),
            ("started_at", number()),
            ("completed_at", number()),
            ("success", boolean()),
            ("cost_usd", number()),
            ("last_progress", string()),
            ("error_type", crate::result::ErrorType::schema()),
            ("outcome", crate::protocol::Outcome::schema()),
        ],
        &["id", "agent", "status", "task", "created_at"],
    )
}

/// The schema of a [`fetch_view`]: the job while it has no result, else the result (cut).
pub fn fetch_view_schema() -> Value {
    use crate::schema::{any_of, boolean, extend, integer};
    any_of(vec![
        Job::schema(),
        extend(
            DispatchResult::schema(),
            &[("truncated", boolean()), ("full_size", integer())],
            &[],
        ),
    ])
}

/// `fetch_result` (SPEC tool 16): the whole job when it has no result yet (or never will);
/// otherwise the stored result, cut to `max_chars` characters when `max_chars > 0` and longer,
/// with `truncated: true` and `full_size` (the original length in characters).
pub fn fetch_view(job: &Job, max_chars: i64) -> Value {
    let Some(result) = &job.result else {
        return job.to_json();
    };
    let mut v = result.to_json();
    let limit = usize::try_from(max_chars.max(0)).unwrap_or(usize::MAX);
    if limit > 0 {
        let full_size = result.result.chars().count();
        if let (true, Value::Object(m)) = (full_size > limit, &mut v) {
            m.insert("result".into(), json!(first_chars(&result.result, limit)));
            m.insert("truncated".into(), json!(true));
            m.insert("full_size".into(), json!(full_size));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::ErrorType;

    fn job() -> Job {
        Job::from_new(
            new_id(),
            NewJob {
                agent: "a".into(),
                ask: Ask {
                    context: Some(String::new()),
                    ..Ask::task("t")
                },
                ..NewJob::default()
            },
            1.5,
        )
    }

    #[test]
    fn ids() {
        assert!(valid_id(&new_id()));
        assert!(valid_id(&"a".repeat(32)));
        for bad in [
            "",
            "../x",
            &"A".repeat(32),
            &"a".repeat(31),
            &"a".repeat(33),
            &format!("{}/", "a".repeat(31)),
            "..%2f..%2f0000000000000000000000",
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn serialises_in_spec_order_without_absent_fields() {
        let j = job();
        let text = serde_json::to_string(&j).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"id":"{}","agent":"a","task":"t","status":"pending","created_at":1.5}}"#,
                j.id
            )
        );
    }

    #[test]
    fn status_filter() {
        assert_eq!(Status::parse_filter(" Running "), Ok(Some(Status::Running)));
        assert_eq!(Status::parse_filter(""), Ok(None));
        let err = Status::parse_filter("nope").unwrap_err();
        assert_eq!(
            err,
            "Invalid status: 'nope'. Use one of: cancelled, done, failed, pending, running or empty."
        );
    }

    #[test]
    fn summary_shape() {
        let mut j = job();
        j.task = "é".repeat(200);
        j.status = Status::Running;
        j.progress = Some(vec!["one".into(), "two".into()]);
        let s = summary(&j);
        assert_eq!(s["task"].as_str().unwrap().chars().count(), 120);
        assert_eq!(s["last_progress"], "two");
        assert!(s.get("error_type").is_none());

        j.status = Status::Done;
        j.result = Some(DispatchResult {
            agent: "a".into(),
            success: true,
            cost_usd: Some(0.5),
            ..Default::default()
        });
        let s = summary(&j);
        assert!(s.get("last_progress").is_none());
        assert_eq!(s["success"], true);
        assert_eq!(s["cost_usd"], 0.5);

        j.result = None;
        j.status = Status::Cancelled;
        j.error = Some("Cancelled before execution".into());
        assert_eq!(summary(&j)["error_type"], "cancelled");
        j.status = Status::Failed;
        assert_eq!(summary(&j)["error_type"], "cli_error");
        j.result = Some(DispatchResult::failure("a", ErrorType::Timeout, "slow"));
        assert_eq!(summary(&j)["error_type"], "timeout");
    }

    #[test]
    fn views_match_their_schemas() {
        use crate::schema::validate;
        let mut j = job();
        j.context = Some("c".into());
        j.caller = Some("c".into());
        j.goal = Some("g".into());
        j.response_format = Some("json".into());
        j.timeout = Some(30);
        j.status = Status::Running;
        j.started_at = Some(2.0);
        j.progress = Some(vec!["p".into()]);
        j.progress_updated_at = Some(2.5);
        j.owner_pid = Some(1);
        j.child_pgid = Some(2);
        j.child_started = Some(3);
        j.child_marker = Some("m".into());
        assert_eq!(validate(&Job::schema(), &j.to_json()), Ok(()));
        assert_eq!(validate(&summary_schema(), &summary(&j)), Ok(()));
        assert_eq!(validate(&fetch_view_schema(), &fetch_view(&j, 0)), Ok(()));
        j.status = Status::Failed;
        j.completed_at = Some(3.0);
        j.error = Some("e".into());
        j.result = Some(DispatchResult {
            result: "long text".into(),
            cost_usd: Some(0.2),
            ..DispatchResult::failure("a", ErrorType::Timeout, "slow")
        });
        assert_eq!(validate(&Job::schema(), &j.to_json()), Ok(()));
        assert_eq!(validate(&summary_schema(), &summary(&j)), Ok(()));
        assert_eq!(validate(&fetch_view_schema(), &fetch_view(&j, 2)), Ok(()));
    }

    #[test]
    fn fetch_view_truncates_on_chars() {
        let mut j = job();
        assert_eq!(fetch_view(&j, 0)["status"], "pending");
        j.result = Some(DispatchResult {
            agent: "a".into(),
            success: true,
            result: "ééééé".into(),
            ..Default::default()
        });
        let v = fetch_view(&j, 2);
        assert_eq!(v["result"], "éé");
        assert_eq!(v["truncated"], true);
        assert_eq!(v["full_size"], 5);
        let v = fetch_view(&j, 5);
        assert_eq!(v["result"], "ééééé");
        assert!(v.get("truncated").is_none());
        assert_eq!(fetch_view(&j, -3)["result"], "ééééé");
    }
}
