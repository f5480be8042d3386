//! The `agent-dispatch` binary: parse the command line, run it, map errors to exit codes.

#![deny(clippy::print_stdout)]

use std::io::Write;
use std::process::ExitCode;

use agent_dispatch::cli::test_cmd;

fn main() -> ExitCode {
    let mut parser = lexopt::Parser::from_env();
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let code = match parser.next() {
        Ok(Some(lexopt::Arg::Value(cmd))) if cmd == "test" => match test_cmd::parse(&mut parser) {
            Ok(args) => test_cmd::execute(&args, &mut stdout, &mut stderr),
            Err(e) => {
                let _ = writeln!(stderr, "Error: {e}\n\n{}", test_cmd::HELP);
                2
            }
        },
        _ => {
            let _ = writeln!(
                stderr,
                "usage: agent-dispatch test NAME [TASK] [--stream] [--timeout N]"
            );
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
