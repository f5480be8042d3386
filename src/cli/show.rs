//! `list` and `describe` (SPEC §9.5, §9.7): read-only views of the config. A missing or
//! unreadable agent directory is shown, never fatal.

use std::io;
use std::path::Path;

use super::{
    Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, agent_not_found, parse_name_only,
    parse_no_args,
};
use crate::config::{self, AgentConfig, Config, DEFAULT_AGENT_TIMEOUT};
use crate::pyfmt;

pub const LIST: CommandSpec = CommandSpec {
    name: "list",
    summary: "List configured agents",
    help: LIST_HELP,
    parse: |p| parse_no_args(p, &LIST, Command::List),
};

const LIST_HELP: &str = "\
Usage: agent-dispatch list [OPTIONS]

  List every configured agent with its directory status, description and settings.

Options:
  -h, --help  Show this message and exit.
";

pub const DESCRIBE: CommandSpec = CommandSpec {
    name: "describe",
    summary: "Show everything about one agent",
    help: DESCRIBE_HELP,
    parse: |p| {
        Ok(match parse_name_only(p, &DESCRIBE)? {
            Ok(name) => Command::Describe(name),
            Err(help) => help,
        })
    },
};

const DESCRIBE_HELP: &str = "\
Usage: agent-dispatch describe [OPTIONS] NAME

  Show the full configuration of agent NAME and which project files it has.

Options:
  -h, --help  Show this message and exit.
";

/// What a look at an agent directory found.
pub(super) enum DirStatus {
    Ok,
    NotFound,
    Unreadable(io::Error),
}

impl DirStatus {
    pub(super) fn of(dir: &Path) -> DirStatus {
        match crate::detect::directory_health(dir) {
            Ok(true) => DirStatus::Ok,
            Ok(false) => DirStatus::NotFound,
            Err(e) => DirStatus::Unreadable(e),
        }
    }

    fn tag(&self, io: &Io) -> String {
        match self {
            DirStatus::Ok => io.tint(Color::Green, "[OK]"),
            DirStatus::NotFound => io.tint(Color::Red, "[NOT FOUND]"),
            DirStatus::Unreadable(_) => io.tint(Color::Red, "[UNREADABLE]"),
        }
    }
}

fn load(io: &mut Io) -> io::Result<Result<Config, u8>> {
    match Config::load(&config::config_path()) {
        Ok(c) => Ok(Ok(c)),
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

pub fn run_list(io: &mut Io) -> io::Result<u8> {
    let config = match load(io)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if config.agents.is_empty() {
        io.say("No agents configured. Run: agent-dispatch add <name> <directory>")?;
        return Ok(EXIT_OK);
    }
    for (name, agent) in config.agents.iter() {
        let tag = DirStatus::of(&agent.directory).tag(io);
        let bold = io.tint(Color::Bold, name);
        io.say(&format!("  {bold} {tag}"))?;
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

pub fn run_describe(io: &mut Io, name: &str) -> io::Result<u8> {
    let config = match load(io)? {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(agent) = config.agent(name) else {
        io.error(&agent_not_found(name))?;
        return Ok(EXIT_ERROR);
    };
    describe_agent(io, name, agent)?;
    Ok(EXIT_OK)
}

fn describe_agent(io: &mut Io, name: &str, agent: &AgentConfig) -> io::Result<()> {
    let tag = DirStatus::of(&agent.directory).tag(io);
    let bold = io.tint(Color::Bold, name);
    io.say(&format!("{bold} {tag}"))?;
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
        .filter(|f| agent.directory.join(f).exists())
        .collect();
    if !present.is_empty() {
        io.say(&format!("  project files:    {}", present.join(", ")))?;
    }
    Ok(())
}
