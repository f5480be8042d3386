//! What a single-agent dispatch tool reads before it runs anything: the ask (`task`, `context`,
//! `caller`, `goal`, `response_format`) and, for the tools taking `agent` and
//! `timeout_seconds`, the agent resolved by the application (`Call::target`).

use super::{Args, ToolCtx, ToolError};
use crate::app::{self, Target};
use crate::ask::{Ask, ResponseFormat};

pub fn ask_from_args(args: &Args) -> Result<Ask, ToolError> {
    Ok(Ask {
        task: args.string("task")?,
        context: args.opt_string("context")?,
        caller: args.opt_string("caller")?,
        goal: args.opt_string("goal")?,
        response_format: ResponseFormat::parse(args.opt_string("response_format")?.as_deref()),
    })
}

/// One dispatch to one named agent: `agent`, the ask, `timeout_seconds` and `group`.
pub struct Call {
    pub name: String,
    pub ask: Ask,
    pub timeout_seconds: i64,
    pub group: Option<String>,
}

impl Call {
    pub fn from_args(args: &Args) -> Result<Call, ToolError> {
        Ok(Call {
            name: args.string("agent")?,
            ask: ask_from_args(args)?,
            timeout_seconds: args.int("timeout_seconds")?,
            group: args.opt_string("group")?,
        })
    }

    /// The agent, from the current config, ready to run (override applied), with the group's
    /// shared context joined to the ask when the call names a group.
    pub fn target(&mut self, ctx: &ToolCtx) -> Result<Target, ToolError> {
        let config = ctx.app().config()?;
        let target = ctx
            .app()
            .target(&config, &self.name, self.timeout_seconds)?;
        if let Some(group) = &self.group {
            app::join_group(&config, group, &self.name, &mut self.ask)?;
        }
        Ok(target)
    }
}
