//! What a single-agent dispatch tool reads before it runs anything: the text fields of the ask
//! (`Ask`) and, for the tools taking `agent`/`task`/`timeout_seconds` parameters, the shared
//! opening (`Call`: parse the arguments, load the config, find the agent, apply the per-call
//! timeout override of SPEC §7.3). Running, caching policy and responses stay with the tools.

use serde_json::json;

use super::{Args, ToolCtx, ToolError, apply_timeout_override, find_agent};
use crate::cache::CacheKey;
use crate::claude::DispatchRequest;
use crate::config::{AgentConfig, Config, Settings};

/// The text fields of one dispatch as the caller gave them (`""` already turned into `None`).
#[derive(Clone, Debug, Default)]
pub struct Ask {
    pub task: String,
    pub context: Option<String>,
    pub caller: Option<String>,
    pub goal: Option<String>,
    pub response_format: Option<String>,
}

impl Ask {
    pub fn from_args(args: &Args) -> Result<Ask, ToolError> {
        Ok(Ask {
            task: args.string("task")?,
            context: args.opt_string("context")?,
            caller: args.opt_string("caller")?,
            goal: args.opt_string("goal")?,
            response_format: args.opt_string("response_format")?,
        })
    }

    pub fn request(&self, name: &str, agent: AgentConfig, settings: &Settings) -> DispatchRequest {
        let mut req = DispatchRequest::new(name, agent, settings.clone(), &self.task);
        req.context = self.context.clone();
        req.caller = self.caller.clone();
        req.goal = self.goal.clone();
        req.response_format = self.response_format.clone();
        req
    }

    pub fn cache_key(&self, name: &str, agent: &AgentConfig, settings: &Settings) -> CacheKey {
        let s = |o: &Option<String>| o.clone().unwrap_or_default();
        CacheKey {
            agent: name.to_string(),
            agent_fingerprint: fingerprint(agent, settings),
            task: self.task.clone(),
            context: s(&self.context),
            caller: s(&self.caller),
            goal: s(&self.goal),
            response_format: s(&self.response_format),
        }
    }
}

/// Everything about an agent's configuration that changes what a dispatch does. Part of the cache
/// key, so an edit made by any process (CLI, another server) never serves a stale answer.
fn fingerprint(agent: &AgentConfig, s: &Settings) -> String {
    json!([
        agent,
        s.default_max_budget_usd,
        s.default_permission_mode,
        s.default_allowed_tools,
        s.default_disallowed_tools
    ])
    .to_string()
}

/// One dispatch to one named agent: `agent`, the ask and `timeout_seconds`.
#[derive(Clone, Debug)]
pub struct Call {
    pub name: String,
    pub ask: Ask,
    pub timeout_seconds: i64,
}

impl Call {
    pub fn from_args(args: &Args) -> Result<Call, ToolError> {
        Ok(Call {
            name: args.string("agent")?,
            ask: Ask::from_args(args)?,
            timeout_seconds: args.int("timeout_seconds")?,
        })
    }

    /// Loads `agents.yaml` (SPEC §3.2: on every call) and finds the agent, as configured: the
    /// cache key is taken from the configured agent, so the override is applied by `request`.
    pub fn resolve(&self, ctx: &ToolCtx) -> Result<(Config, AgentConfig), ToolError> {
        let config = ctx.server.load_config()?;
        let agent = find_agent(&config, &self.name)?;
        Ok((config, agent))
    }

    /// The request to run, with the per-call timeout override applied to `agent`.
    pub fn request(&self, mut agent: AgentConfig, settings: &Settings) -> DispatchRequest {
        apply_timeout_override(&mut agent, self.timeout_seconds);
        self.ask.request(&self.name, agent, settings)
    }
}
