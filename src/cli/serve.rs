//! `agent-dispatch serve`: hand the process's stdin/stdout to the MCP server (SPEC §9.10).

use std::io;

use super::{Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, parse_no_args};
use crate::{config, log, mcp};

pub const SPEC: CommandSpec = CommandSpec {
    name: "serve",
    summary: "Run the MCP server on stdio (Claude Code starts this)",
    help: HELP,
    parse: |p| parse_no_args(p, &SPEC, Command::Serve),
};

const HELP: &str = "\
Usage: agent-dispatch serve [OPTIONS]

  Run the MCP server on stdin/stdout (JSON-RPC, one message per line). Claude Code starts it
  after 'agent-dispatch init' registered it; logs go to stderr. Stops on stdin EOF, SIGTERM,
  SIGINT or SIGHUP, killing any running claude process groups first.

Options:
  -h, --help  Show this message and exit.

Environment:
  AGENT_DISPATCH_CONFIG    Config file [default: ~/.config/agent-dispatch/agents.yaml]
  AGENT_DISPATCH_JOBS_DIR  Job store [default: jobs/ next to the config]
";

/// stdout belongs to the server's writer thread from here on; `io` is only used for errors.
pub fn run(io: &mut Io) -> io::Result<u8> {
    match mcp::serve_stdio(config::config_path()) {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            log::error(&format!("server failed: {e}"));
            io.error(&format!("Error: the MCP server failed: {e}"))?;
            Ok(EXIT_ERROR)
        }
    }
}
