//! The `agent-dispatch` binary: parse the command line, run it, map errors to exit codes.

#![deny(clippy::print_stdout)]

use std::io::Write;
use std::process::ExitCode;

use agent_dispatch::cli::jobs_cmd;
use agent_dispatch::config;

fn main() -> ExitCode {
    let mut parser = lexopt::Parser::from_env();
    let mut stderr = std::io::stderr();
    let word = match parser.next() {
        Ok(Some(lexopt::Arg::Value(v))) => v.to_string_lossy().into_owned(),
        _ => {
            let _ = writeln!(stderr, "Usage: agent-dispatch <jobs|job|cancel|gc> ...");
            return ExitCode::from(2);
        }
    };
    let parsed = match word.as_str() {
        "jobs" => jobs_cmd::parse_jobs(&mut parser),
        "job" => jobs_cmd::parse_job(&mut parser),
        "cancel" => jobs_cmd::parse_cancel(&mut parser),
        "gc" => jobs_cmd::parse_gc(&mut parser),
        other => {
            let _ = writeln!(stderr, "Error: unknown command {other:?}");
            return ExitCode::from(2);
        }
    };
    let cmd = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(stderr, "Error: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = config::jobs_dir(&config::config_path());
    let code = jobs_cmd::execute(&cmd, &dir, &mut std::io::stdout().lock(), &mut stderr);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
