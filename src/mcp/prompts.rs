//! MCP prompts: workflows a person starts by hand (Claude Code shows them as slash commands,
//! `/mcp__agent-dispatch__ask`). Each expands into one user message that tells the model which
//! agent-dispatch tools to call and with what. Agent names are checked against the current
//! config, so a typo is an error before the model does anything.

use serde_json::{Map, Value, json};

use super::resources::{RpcResult, invalid};
use crate::app::App;

/// One prompt argument: name, description, required.
type Arg = (&'static str, &'static str, bool);

pub struct Prompt {
    pub name: &'static str,
    title: &'static str,
    description: &'static str,
    pub args: &'static [Arg],
}

pub static PROMPTS: &[Prompt] = &[
    Prompt {
        name: "ask",
        title: "Ask an agent",
        description: "Hand one task to one agent (dispatch) and report its answer",
        args: &[
            ("agent", "The agent to ask (see list_agents)", true),
            ("task", "What the agent should do", true),
        ],
    },
    Prompt {
        name: "fan_out",
        title: "Ask several agents",
        description: "Put one task to several agents at once (dispatch_parallel) and merge their answers",
        args: &[
            ("task", "What every agent should do", true),
            (
                "agents",
                "Comma-separated agent names; empty asks every configured agent",
                false,
            ),
        ],
    },
    Prompt {
        name: "review_with",
        title: "Review with an agent",
        description: "Have an agent review something from its project's point of view and act on the findings",
        args: &[
            ("agent", "The reviewing agent", true),
            (
                "what",
                "What to review: a diff, a design, a plan, file paths",
                true,
            ),
        ],
    },
];

pub fn lookup(name: &str) -> Option<&'static Prompt> {
    PROMPTS.iter().find(|p| p.name == name)
}

/// `prompts/list` (a handful of prompts: one page).
pub fn list() -> RpcResult {
    let prompts: Vec<Value> = PROMPTS
        .iter()
        .map(|p| {
            let args: Vec<Value> = p
                .args
                .iter()
                .map(|(name, description, required)| {
                    json!({"name": name, "description": description, "required": required})
                })
                .collect();
            json!({
                "name": p.name,
                "title": p.title,
                "description": p.description,
                "arguments": args,
            })
        })
        .collect();
    Ok(json!({ "prompts": prompts }))
}

/// Splits `a, b,,c` into names.
pub fn split_names(csv: &str) -> Vec<String> {
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_agents(app: &App, names: &[String]) -> Result<(), (super::msg::ErrorCode, String)> {
    let config = app.config().map_err(|e| invalid(e.message))?;
    match names.iter().find(|n| config.agent(n).is_none()) {
        Some(bad) => Err(invalid(crate::app::unknown_agent(&config, bad).message)),
        None => Ok(()),
    }
}

/// `prompts/get`.
pub fn get(app: &App, params: &Value) -> RpcResult {
    let name = params.get("name").and_then(Value::as_str).unwrap_or("");
    let Some(prompt) = lookup(name) else {
        return Err(invalid(format!("Invalid params: unknown prompt {name:?}")));
    };
    let empty = Map::new();
    let given = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(invalid("Invalid params: arguments must be an object")),
    };
    let arg = |key: &str| -> Result<String, (super::msg::ErrorCode, String)> {
        let value = match given.get(key) {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.trim(),
            Some(_) => {
                return Err(invalid(format!(
                    "Invalid params: argument {key:?} must be a string"
                )));
            }
        };
        let required = prompt.args.iter().any(|(n, _, r)| *n == key && *r);
        if required && value.is_empty() {
            return Err(invalid(format!(
                "Invalid params: prompt {name:?} needs argument {key:?}"
            )));
        }
        Ok(value.to_string())
    };
    let text = match prompt.name {
        "ask" => {
            let (agent, task) = (arg("agent")?, arg("task")?);
            check_agents(app, std::slice::from_ref(&agent))?;
            format!(
                "Use the agent-dispatch MCP server to ask the agent \"{agent}\".\n\n\
                 1. Call the `dispatch` tool with agent=\"{agent}\", task set to the task below, caller set to \
                 who you are and goal set to why you ask. Pass return_ref=true if you expect a long answer \
                 (then read it with `fetch_result` or the resource link in the result).\n\
                 2. If the result has denied_tools or a hint, tell me what permission is missing \
                 instead of retrying blindly. If it timed out, resume it with `dispatch_session` and the \
                 returned session_id.\n\
                 3. Report the agent's answer to me, with its cost.\n\nTask:\n{task}"
            )
        }
        "fan_out" => {
            let (task, agents) = (arg("task")?, split_names(&arg("agents")?));
            check_agents(app, &agents)?;
            let who = if agents.is_empty() {
                "every agent that `list_agents` returns".to_string()
            } else {
                agents
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "Use the agent-dispatch MCP server to put one task to several agents at once.\n\n\
                 1. Call `dispatch_parallel` with dispatches set to a JSON array holding one \
                 {{\"agent\": …, \"task\": …}} object for each of: {who}. Use the task below for each.\n\
                 2. Compare the answers: where they agree, where they conflict, and what each agent alone \
                 knew. Name any agent that failed and why.\n\
                 3. Give me one merged answer.\n\nTask:\n{task}"
            )
        }
        _ => {
            let (agent, what) = (arg("agent")?, arg("what")?);
            check_agents(app, std::slice::from_ref(&agent))?;
            format!(
                "Use the agent-dispatch MCP server to have the agent \"{agent}\" review the following from \
                 its project's point of view.\n\n\
                 1. Gather what the reviewer needs (the diff, the files, the plan) and call `dispatch` with \
                 agent=\"{agent}\", a task asking for a review that lists concrete problems and suggested \
                 fixes, the material as context, caller set to who you are and goal set to what the change \
                 is for.\n\
                 2. For a long back-and-forth, continue with `dispatch_session` and the returned session_id.\n\
                 3. Summarise the findings for me and say which ones you will act on.\n\nWhat to review:\n{what}"
            )
        }
    };
    Ok(json!({
        "description": prompt.description,
        "messages": [{ "role": "user", "content": { "type": "text", "text": text } }],
    }))
}
