//! The `agent-dispatch` binary: parse the command line, run it, map errors to exit codes.

#![deny(clippy::print_stdout)]

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::SUCCESS
}
