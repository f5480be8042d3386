//! `init [--force]` (SPEC §9.2): create the default config if there is none, then register the
//! server with Claude Code through `claude mcp add-json … --scope user` (`--force` removes an
//! existing registration first). Every failure after the config step is a printed warning with
//! exit 0, as in the reference, followed by the exact command that registers by hand.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::host::{self, RunError};
use super::{Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, help};
use crate::{claude, config};

pub const SPEC: CommandSpec = CommandSpec {
    name: "init",
    summary: "Create the config and register the MCP server with Claude Code",
    help: HELP,
    parse,
};

fn parse(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut force = false;
    while let Some(arg) = p.next()? {
        match arg {
            Long("force") => force = true,
            Short('h') | Long("help") => return Ok(help(&SPEC)),
            other => return Err(other.unexpected()),
        }
    }
    Ok(Command::Init { force })
}

const HELP: &str = "\
Usage: agent-dispatch init [OPTIONS]

  Create ~/.config/agent-dispatch/agents.yaml (or $AGENT_DISPATCH_CONFIG) if it does not exist,
  then register 'agent-dispatch serve' with Claude Code at user scope:

    claude mcp add-json agent-dispatch '{\"type\": \"stdio\", ...}' --scope user

  An existing registration is kept (and reported); --force replaces it, e.g. after the binary
  moved or when 'agent-dispatch doctor' says the registered command cannot start.

Options:
  --force     Replace an existing 'agent-dispatch' registration.
  -h, --help  Show this message and exit.
";

/// `claude mcp add-json` normally answers within seconds; never hang `init` on it.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(60);

/// The server entry Claude Code stores, spaced like Python's `json.dumps`.
pub(super) fn server_json(exe: &Path) -> String {
    let command = serde_json::Value::String(exe.to_string_lossy().into_owned());
    format!(r#"{{"type": "stdio", "command": {command}, "args": ["serve"]}}"#)
}

/// The command that registers `json` by hand, quoted for a POSIX shell.
pub(super) fn manual_command(json: &str) -> String {
    let quoted = json.replace('\'', "'\\''");
    format!("claude mcp add-json agent-dispatch '{quoted}' --scope user")
}

pub fn run(io: &mut Io, force: bool) -> io::Result<u8> {
    let path = config::config_path();
    match config::init_file(&path) {
        Ok(true) => io.say_in(Color::Green, &format!("Created config: {}", path.display()))?,
        Ok(false) => io.say(&format!("Config already exists: {}", path.display()))?,
        Err(e) => {
            io.error(&format!("Error: {e}"))?;
            return Ok(EXIT_ERROR);
        }
    }
    let Some(claude) = claude::find_on_path("claude") else {
        io.warn("Warning: claude CLI not found. Register MCP server manually.")?;
        return Ok(EXIT_OK);
    };
    let Some(exe) = claude::find_on_path("agent-dispatch") else {
        io.warn(
            "Warning: agent-dispatch not found in PATH. Install it (make install puts it in \
             ~/.local/bin) and re-run 'agent-dispatch init'.",
        )?;
        return Ok(EXIT_OK);
    };
    let json = server_json(&exe);
    if force {
        // Either scope may hold the old entry; a missing one is not an error here.
        let remove = ["mcp", "remove", "agent-dispatch", "--scope", "user"].map(String::from);
        let _ = host::run_captured(&claude, &remove, REGISTER_TIMEOUT);
    }
    let args = [
        "mcp",
        "add-json",
        "agent-dispatch",
        &json,
        "--scope",
        "user",
    ]
    .map(String::from);
    let failure = match host::run_captured(&claude, &args, REGISTER_TIMEOUT) {
        Ok(c) if c.success() => None,
        Ok(c) => Some(c.stderr.trim().to_string()),
        Err(e @ RunError::TimedOut(_)) => Some(format!("claude mcp add-json {e}")),
        Err(e) => Some(e.to_string()),
    };
    match failure {
        None => {
            io.say_in(
                Color::Green,
                "Registered MCP server with Claude Code (user scope).",
            )?;
            io.say("")?;
            io.say("Next steps:")?;
            io.say("  agent-dispatch add <name> <directory>   # register a project as an agent")?;
            io.say("  agent-dispatch list                     # see what is configured")?;
            io.say("  agent-dispatch test <name>              # check that an agent answers")?;
        }
        Some(why) if why.contains("already exists") => {
            io.warn("agent-dispatch is already registered with Claude Code; kept as it is.")?;
            io.say("To replace it (e.g. after the binary moved): agent-dispatch init --force")?;
            io.say("Check that it starts: agent-dispatch doctor")?;
        }
        Some(why) => {
            io.warn(&format!("Failed to register MCP server: {why}"))?;
            io.say("Register it by hand with:")?;
            io.say(&format!("  {}", manual_command(&json)))?;
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_spaced_like_python_and_escaped() {
        assert_eq!(
            server_json(Path::new("/usr/bin/agent-dispatch")),
            r#"{"type": "stdio", "command": "/usr/bin/agent-dispatch", "args": ["serve"]}"#
        );
        assert!(server_json(Path::new("/a \"b\"/x")).contains(r#""/a \"b\"/x""#));
    }

    #[test]
    fn manual_command_is_shell_quoted() {
        assert_eq!(
            manual_command(&server_json(Path::new("/it's/ad"))),
            r#"claude mcp add-json agent-dispatch '{"type": "stdio", "command": "/it'\''s/ad", "args": ["serve"]}' --scope user"#
        );
    }
}
