//! The `agent-dispatch` binary: hand the command line to `cli::main` and exit with its code.
//! Printing goes through explicit writers, so stdout can never be written by accident (it will
//! carry the MCP protocol under `serve`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    // Unlocked handles: a command may hand stdout to another thread (the MCP writer).
    let code = agent_dispatch::cli::main(args, &mut std::io::stdout(), &mut std::io::stderr());
    ExitCode::from(code)
}
