//! Running one dispatch: pre-flight checks (SPEC §5.1), the `claude` command line, the
//! supervised child process and the parsing of its output into a `DispatchResult`.
//!
//! The entry point is `run(&DispatchRequest, OutputMode, Hooks) -> DispatchResult`. It never
//! panics and never returns before the child (and its whole process group) has been reaped, so a
//! caller holding a `limiter::Permit` across the call holds it exactly as long as the child lives.

use crate::cancel::Cancel;
use crate::config::{AgentConfig, Settings};

/// One dispatch to one agent, fully resolved (timeout override already applied to `agent`).
#[derive(Clone, Debug)]
pub struct DispatchRequest {
    pub agent_name: String,
    pub agent: AgentConfig,
    pub settings: Settings,
    pub task: String,
    pub context: Option<String>,
    pub caller: Option<String>,
    pub goal: Option<String>,
    pub response_format: Option<String>,
    /// Resume this session with `--resume`; `None` starts a fresh one with `--session-id`.
    pub resume_session: Option<String>,
}

impl DispatchRequest {
    pub fn new(agent_name: &str, agent: AgentConfig, settings: Settings, task: &str) -> Self {
        DispatchRequest {
            agent_name: agent_name.to_string(),
            agent,
            settings,
            task: task.to_string(),
            context: None,
            caller: None,
            goal: None,
            response_format: None,
            resume_session: None,
        }
    }
}

/// `--output-format json` (one document at exit) or `stream-json --verbose` (live events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    Json,
    Stream,
}

/// Optional ways for the caller to observe and stop a run.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Tripping it kills the child's process group; the result then has `error_type: cancelled`.
    pub cancel: Option<&'a Cancel>,
    /// Stream mode: called with each progress line the moment the child emits it.
    pub on_progress: Option<&'a mut dyn FnMut(&str)>,
    /// Called once per spawned child with its pid (which is also its process-group id).
    pub on_spawn: Option<&'a mut dyn FnMut(u32)>,
}
