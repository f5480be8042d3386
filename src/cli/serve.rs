//! `agent-dispatch serve`: hand the process's stdin/stdout to the MCP server (SPEC §9.10), listed
//! in the live-server registry (`registry`) for its whole life.

use std::io;

use super::{Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, parse_no_args};
use crate::{config, log, mcp, registry};

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
  AGENT_DISPATCH_SERVERS_DIR  Live-server registry [default: servers/ next to the config]
";

/// stdout belongs to the server's writer thread from here on; `io` is only used for errors.
/// The server is in the live-server registry for exactly as long as `serve_stdio` runs.
pub fn run(io: &mut Io) -> io::Result<u8> {
    let config_path = config::config_path();
    // A diagnostics file must never stop the server: a failure is one warning.
    let registration = match registry::register(&config_path) {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn(&format!(
                "could not register in the live-server registry: {e}"
            ));
            None
        }
    };
    let served = mcp::serve_stdio(config_path);
    drop(registration);
    match served {
        Ok(()) => Ok(EXIT_OK),
        Err(e) => {
            log::error(&format!("server failed: {e}"));
            io.error(&format!("Error: the MCP server failed: {e}"))?;
            Ok(EXIT_ERROR)
        }
    }
}
