//! `list` and `describe` (SPEC §9.5, §9.7): read-only views of the config, as text or `--json`
//! (with the journal's `typical` numbers). A missing or unreadable agent directory is shown,
//! never fatal.

use std::io;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, agent_not_found};
use crate::config::{self, AgentConfig, Config, DEFAULT_AGENT_TIMEOUT};
use crate::{journal, pyfmt};

pub const LIST: CommandSpec = CommandSpec {
    name: "list",
    summary: "List configured agents",
    help: LIST_HELP,
    parse: |p| {
        Ok(match super::parse_json_only(p, &LIST)? {
            Ok(json) => Command::List { json },
            Err(help) => help,
        })
    },
};

const LIST_HELP: &str = "\
Usage: agent-dispatch list [OPTIONS]

  List every configured agent with its directory status, description and settings.

Options:
  --json      Print a JSON array of agents (config fields, name, directory_status, typical).
  -h, --help  Show this message and exit.
";

pub const DESCRIBE: CommandSpec = CommandSpec {
    name: "describe",
    summary: "Show everything about one agent",
    help: DESCRIBE_HELP,
    parse: parse_describe,
};

const DESCRIBE_HELP: &str = "\
Usage: agent-dispatch describe [OPTIONS] NAME

  Show the full configuration of agent NAME and which project files it has.

Options:
  --json      Print one JSON object (config fields, name, directory_status, project_files,
              typical).
  -h, --help  Show this message and exit.
";

fn parse_describe(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut name = None;
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(super::help(&DESCRIBE)),
            Long("json") => json = true,
            Value(v) if name.is_none() => name = Some(v.string()?),
            other => return Err(other.unexpected()),
        }
    }
    let name = name.ok_or("Missing argument 'NAME'.")?;
    Ok(Command::Describe { name, json })
}

/// What a look at an agent directory found.
pub(super) enum DirStatus {
    /// On another host: not looked at here (`doctor` checks it over ssh).
    Remote(String),
    Ok,
    NotFound,
    Unreadable(io::Error),
}

impl DirStatus {
    /// `of` the agent's directory, or `Remote` for an agent on another host.
    pub(super) fn for_agent(agent: &AgentConfig) -> DirStatus {
        match agent.remote_host() {
            Some(host) => DirStatus::Remote(host.to_string()),
            None => DirStatus::of(&agent.directory),
        }
    }

    pub(super) fn of(dir: &Path) -> DirStatus {
        match crate::detect::directory_health(dir) {
            Ok(true) => DirStatus::Ok,
            Ok(false) => DirStatus::NotFound,
            Err(e) => DirStatus::Unreadable(e),
        }
    }

    /// `ok`, `not_found` or `unreadable`, as `--json` reports it.
    fn as_str(&self) -> &'static str {
        match self {
            DirStatus::Remote(_) => "remote",
            DirStatus::Ok => "ok",
            DirStatus::NotFound => "not_found",
            DirStatus::Unreadable(_) => "unreadable",
        }
    }

    fn tag(&self, io: &Io) -> String {
        match self {
            DirStatus::Remote(host) => io.tint(Color::Green, &format!("[REMOTE {host}]")),
            DirStatus::Ok => io.tint(Color::Green, "[OK]"),
            DirStatus::NotFound => io.tint(Color::Red, "[NOT FOUND]"),
            DirStatus::Unreadable(_) => io.tint(Color::Red, "[UNREADABLE]"),
        }
    }
}

/// The config, or the exit code after saying why not (as `{"error"}` on stdout for `--json`).
fn load(io: &mut Io, as_json: bool) -> io::Result<Result<Config, u8>> {
    match Config::load(&config::config_path()) {
        Ok(c) => Ok(Ok(c)),
        Err(e) if as_json => {
            let message = format!("{}\n{}", e.headline(), e.details());
            super::print_json(io, &json!({ "error": message }))?;
            Ok(Err(EXIT_ERROR))
        }
        Err(e) => super::print_config_error(io, &e).map(Err),
    }
}

fn tool_list(tools: &[String]) -> String {
    if tools.is_empty() {
        "(none)".to_string()
    } else {
        tools.join(", ")
    }
}

/// An agent as `--json` shows it: its config fields as stored, then `name`,
/// `directory_status` and, once the journal has 3 runs of it, `typical`.
fn agent_json(name: &str, agent: &AgentConfig, typical: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    if let Ok(Value::Object(fields)) = serde_json::to_value(agent) {
        m.extend(fields);
    }
    m.insert(
        "directory_status".into(),
        json!(DirStatus::for_agent(agent).as_str()),
    );
    if let Some(t) = typical {
        m.insert("typical".into(), t);
    }
    Value::Object(m)
}

pub fn run_list(io: &mut Io, as_json: bool) -> io::Result<u8> {
    let config = match load(io, as_json)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if as_json {
        let path = config::config_path();
        let profiles = if journal::enabled_in(&path) {
            journal::stats::profiles_at(&journal::journal_path(&path))
        } else {
            Default::default()
        };
        let agents: Vec<Value> = config
            .agents
            .iter()
            .map(|(name, agent)| {
                let typical = profiles
                    .get(name)
                    .and_then(|p| serde_json::to_value(&p.typical).ok());
                agent_json(name, agent, typical)
            })
            .collect();
        super::print_json(io, &agents)?;
        return Ok(EXIT_OK);
    }
    if config.agents.is_empty() {
        io.say("No agents configured. Run: agent-dispatch add <name> <directory>")?;
        return Ok(EXIT_OK);
    }
    for (name, agent) in config.agents.iter() {
        let tag = DirStatus::for_agent(agent).tag(io);
        let bold = io.tint(Color::Bold, name);
        io.say(&format!("  {bold} {tag}"))?;
        if let Some(host) = agent.remote_host() {
            io.say(&format!("    host: {host}"))?;
        }
        io.say(&format!("    dir:  {}", agent.directory.display()))?;
        io.say(&format!("    desc: {}", agent.description))?;
        let mut parts = Vec::new();
        if agent.timeout != DEFAULT_AGENT_TIMEOUT {
            parts.push(format!("timeout={}s", agent.timeout));
        }
        if let Some(m) = &agent.model {
            parts.push(format!("model={m}"));
        }
        if let Some(b) = agent.max_budget_usd.filter(|b| *b != 0.0) {
            parts.push(format!("budget=${}", pyfmt::float(b)));
        }
        if !parts.is_empty() {
            io.say(&format!("    config: {}", parts.join(", ")))?;
        }
        if let Some(m) = agent.permission_mode.as_deref().filter(|m| !m.is_empty()) {
            io.say(&format!("    permission_mode: {m}"))?;
        }
        if let Some(t) = &agent.allowed_tools {
            io.say(&format!("    allowed_tools: {}", tool_list(t)))?;
        }
        if let Some(t) = &agent.disallowed_tools {
            io.say(&format!("    disallowed_tools: {}", tool_list(t)))?;
        }
        for (key, labels) in [
            ("capabilities", &agent.capabilities),
            ("risky_capabilities", &agent.risky_capabilities),
        ] {
            if !labels.is_empty() {
                io.say(&format!("    {key}: {}", labels.join(", ")))?;
            }
        }
        io.say("")?;
    }
    Ok(EXIT_OK)
}

fn render_tools(tools: &Option<Vec<String>>) -> String {
    match tools {
        None => "(inherit defaults)".to_string(),
        Some(t) if t.is_empty() => "(none \u{2014} explicit override)".to_string(),
        Some(t) => t.join(", "),
    }
}

/// The files `describe` reports, in its order.
const PROJECT_FILES: [&str; 5] = [
    "CLAUDE.md",
    ".mcp.json",
    "README.md",
    "pyproject.toml",
    "package.json",
];

pub fn run_describe(io: &mut Io, name: &str, as_json: bool) -> io::Result<u8> {
    let config = match load(io, as_json)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(agent) = config.agent(name) else {
        if as_json {
            super::print_json(io, &json!({"error": agent_not_found(name)}))?;
        } else {
            io.error(&agent_not_found(name))?;
        }
        return Ok(EXIT_ERROR);
    };
    if as_json {
        let path = config::config_path();
        let typical = journal::enabled_in(&path)
            .then(|| journal::stats::profile(&path, name))
            .flatten()
            .and_then(|p| serde_json::to_value(p).ok());
        let mut v = agent_json(name, agent, typical);
        let files: Vec<&str> = PROJECT_FILES
            .into_iter()
            .filter(|f| agent.remote_host().is_none() && agent.directory.join(f).exists())
            .collect();
        v["project_files"] = json!(files);
        super::print_json(io, &v)?;
        return Ok(EXIT_OK);
    }
    describe_agent(io, name, agent)?;
    Ok(EXIT_OK)
}

fn describe_agent(io: &mut Io, name: &str, agent: &AgentConfig) -> io::Result<()> {
    let tag = DirStatus::for_agent(agent).tag(io);
    let bold = io.tint(Color::Bold, name);
    io.say(&format!("{bold} {tag}"))?;
    if let Some(host) = agent.remote_host() {
        io.say(&format!("  host:             {host}"))?;
    }
    io.say(&format!(
        "  directory:        {}",
        agent.directory.display()
    ))?;
    io.say(&format!("  description:      {}", agent.description))?;
    io.say(&format!("  timeout:          {}s", agent.timeout))?;
    if let Some(m) = &agent.model {
        io.say(&format!("  model:            {m}"))?;
    }
    if let Some(b) = agent.max_budget_usd {
        io.say(&format!("  max_budget_usd:   ${}", pyfmt::float(b)))?;
    }
    if let Some(m) = agent.permission_mode.as_deref().filter(|m| !m.is_empty()) {
        io.say(&format!("  permission_mode:  {m}"))?;
    }
    if !agent.capabilities.is_empty() {
        io.say(&format!(
            "  capabilities:     {}",
            agent.capabilities.join(", ")
        ))?;
    }
    if !agent.risky_capabilities.is_empty() {
        io.say(&format!(
            "  risky_caps:       {}",
            agent.risky_capabilities.join(", ")
        ))?;
    }
    for (i, line) in agent.instructions().unwrap_or("").lines().enumerate() {
        let label = if i == 0 { "instructions:" } else { "" };
        io.say(&format!("  {label:<17} {line}"))?;
    }
    io.say(&format!(
        "  allowed_tools:    {}",
        render_tools(&agent.allowed_tools)
    ))?;
    io.say(&format!(
        "  disallowed_tools: {}",
        render_tools(&agent.disallowed_tools)
    ))?;
    let present: Vec<&str> = PROJECT_FILES
        .into_iter()
        .filter(|f| agent.remote_host().is_none() && agent.directory.join(f).exists())
        .collect();
    if !present.is_empty() {
        io.say(&format!("  project files:    {}", present.join(", ")))?;
    }
    Ok(())
}
