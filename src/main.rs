//! The `agent-dispatch` binary: parse the command line, run it, map errors to exit codes.

#![deny(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("serve") => {
            match agent_dispatch::mcp::serve_stdio(agent_dispatch::config::config_path()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    agent_dispatch::log::error(&format!("server failed: {e}"));
                    ExitCode::FAILURE
                }
            }
        }
        _ => ExitCode::from(2),
    }
}
