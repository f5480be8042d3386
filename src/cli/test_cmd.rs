//! `agent-dispatch test NAME [TASK] [--stream] [--timeout N] [--json]` (SPEC §9.8): dispatch one
//! task to one agent through the application's pipeline (never cached; recorded in the usage
//! journal like every dispatch) and print the outcome with a diagnosis (or as JSON). Owns its
//! `CommandSpec` (lexopt loop, help text) and its output, printed through
//! `Io`; the config is loaded here.

use std::io;

use super::output::{one_error_prefix, paint};
use super::{
    Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, agent_not_found, help, int_in_range,
    option_with, print_json,
};

use crate::app::{App, Dispatch, Kind, Observer, pipeline};
use crate::ask::Ask;
use crate::cancel::Cancel;
use crate::config;
use crate::journal;
use crate::result::{DispatchResult, ErrorType};
use crate::runenv::RunEnv;

/// The terminal as the run's observer: progress lines travel to the printing thread.
struct Terminal {
    cancel: Cancel,
    lines: crossbeam_channel::Sender<String>,
}

impl Observer for Terminal {
    fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    fn progress(&self, _agent: &str, line: &str) {
        let _ = self.lines.send(line.to_string());
    }

    /// Only a wait for a machine slot is logged for this kind of dispatch: say why it waits.
    fn log(&self, line: &str) {
        let _ = self.lines.send(line.to_string());
    }
}

pub const SPEC: CommandSpec = CommandSpec {
    name: "test",
    summary: "Dispatch a task to an agent and print the result",
    help: HELP,
    parse,
};

pub const DEFAULT_TASK: &str = "What project is this? Describe in one sentence.";

pub const HELP: &str = "\
Usage: agent-dispatch test [OPTIONS] NAME [TASK]

  Test an agent by dispatching a task to it, exactly as the MCP tools would (no cache; only
  settings.machine_max_concurrency, when set, can make it wait for a slot). TASK defaults to:
  What project is this? Describe in one sentence.

  Every run is recorded in the usage journal (see 'agent-dispatch stats').

Options:
  --stream     Use stream-json and print each progress line to stderr as it happens.
  --timeout N  Timeout in seconds for this run only (0-86400; 0 keeps the agent's own).
  --json       Print only the DispatchResult as JSON on stdout. With --stream, print one JSON
               event per line as it happens ({\"event\": \"progress\", \"message\": ...}), then
               {\"event\": \"result\", \"result\": {...}}.
  -h, --help   Show this message and exit.

Exit codes:
  0    the agent answered
  1    the dispatch failed (the error and a diagnosis are printed), the agent is unknown, or
       the config could not be loaded (with --json: {\"error\": ...} on stdout)
  2    usage error (unknown option, missing NAME, bad --timeout value)
  130  interrupted (Ctrl-C, SIGTERM, SIGHUP): the claude process group was stopped first
";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestArgs {
    pub name: String,
    pub task: String,
    pub stream: bool,
    /// Seconds; `None` keeps the agent's own timeout (0 on the command line means the same).
    pub timeout: Option<u64>,
    pub json: bool,
}

/// The longest one-off `--timeout` (a day): beyond that a typo is likelier than intent.
const MAX_TIMEOUT: i64 = 86_400;

/// Parses the arguments after the word `test`. `-h`/`--help` wins over anything after it.
fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut name: Option<String> = None;
    let mut task: Option<String> = None;
    let mut stream = false;
    let mut timeout = None;
    let mut json = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(&SPEC)),
            Long("stream") => stream = true,
            Long("json") => json = true,
            Long("timeout") => {
                let n = option_with(parser, "--timeout", |t| int_in_range(t, 0, MAX_TIMEOUT))?;
                // SPEC §9.8: only a positive value overrides.
                timeout = (n > 0).then_some(n.unsigned_abs());
            }
            Value(v) if name.is_none() => name = Some(v.string()?),
            Value(v) if task.is_none() => task = Some(v.string()?),
            _ => return Err(arg.unexpected()),
        }
    }
    Ok(Command::Test(TestArgs {
        name: name.ok_or("missing argument NAME")?,
        task: task.unwrap_or_else(|| DEFAULT_TASK.to_string()),
        stream,
        timeout,
        json,
    }))
}

/// Says why the command stopped before dispatching: JSON `{"error"}` on stdout with `--json`.
fn refuse(io: &mut Io, args: &TestArgs, message: &str) -> io::Result<u8> {
    if args.json {
        print_json(io, &serde_json::json!({ "error": message }))?;
    } else {
        io.say_in(Color::Red, message)?;
    }
    Ok(EXIT_ERROR)
}

/// Runs the command and returns its exit code.
pub fn run(io: &mut Io, args: &TestArgs) -> io::Result<u8> {
    // The application's snapshot is the one read of agents.yaml, and only this agent's
    // directory is resolved, however many agents there are.
    let app = App::new(config::config_path(), RunEnv::from_process());
    let config = match app.load_config() {
        Ok(c) => c,
        Err(e) => return refuse(io, args, &config_error_text(&e)),
    };
    let name = args.name.as_str();
    if config.agent(name).is_none() {
        if args.json {
            return refuse(io, args, &agent_not_found(name));
        }
        io.say(&agent_not_found(name))?;
        return Ok(EXIT_ERROR);
    }
    let mut target = match app.target(&config, name, 0) {
        Ok(t) => t,
        Err(e) => return refuse(io, args, &e.message),
    };
    // SPEC §9.8: the CLI's override is taken as given, not clamped like a tool's.
    if let Some(t) = args.timeout {
        target.agent.timeout = t;
    }
    if !args.json {
        io.say(&format!(
            "Dispatching to '{name}' ({})...",
            target.agent.directory.display()
        ))?;
        io.say(&format!("Task: {}", args.task))?;
        io.say("---")?;
    }
    io.out.flush()?;

    // Ctrl-C, a closed terminal or SIGTERM must stop the child's whole process group (it runs
    // in its own group, so the terminal's signal never reaches it) rather than orphan it.
    let (lines_tx, lines_rx) = crossbeam_channel::unbounded::<String>();
    let terminal = Terminal {
        cancel: Cancel::new(),
        lines: lines_tx,
    };
    if let Some(signals) = crate::signals::install() {
        let flag = terminal.cancel.clone();
        // Detached on purpose: it waits for a signal that may never come.
        let _ = std::thread::Builder::new()
            .name("test-signals".into())
            .spawn(move || {
                if signals.recv().is_ok() {
                    flag.trip();
                }
            });
    }
    let dispatch = Dispatch {
        target,
        ask: Ask::task(args.task.clone()),
        kind: Kind::Test {
            stream: args.stream,
        },
    };
    // The run happens on a scoped thread; this one prints its progress lines the moment they
    // arrive, flushed per line so a pipe sees progress while the child runs: JSON events on
    // stdout with --json, else arrows on stderr.
    let (out, err, err_color, as_json) = (&mut *io.out, &mut *io.err, io.err_color, args.json);
    let mut print = |line: String| {
        if as_json {
            let event = serde_json::json!({"event": "progress", "message": line});
            let _ = writeln!(out, "{event}");
            let _ = out.flush();
        } else {
            let _ = writeln!(
                err,
                "{}",
                paint(err_color, Color::Cyan, &format!("  -> {line}"))
            );
            let _ = err.flush();
        }
    };
    let result = std::thread::scope(|scope| {
        let (terminal, app, dispatch) = (&terminal, &app, &dispatch);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(1);
        let run = scope.spawn(move || {
            let result = pipeline::run(app, dispatch, terminal).result;
            let _ = done_tx.send(());
            result
        });
        loop {
            crossbeam_channel::select! {
                recv(lines_rx) -> line => if let Ok(line) = line { print(line) },
                recv(done_rx) -> _ => break,
            }
        }
        lines_rx.try_iter().for_each(&mut print);
        run.join().unwrap_or_else(|_| {
            DispatchResult::failure(name, ErrorType::CliError, "the run failed unexpectedly")
        })
    });
    let code = if args.json {
        let code = if result.success { EXIT_OK } else { EXIT_ERROR };
        if args.stream {
            let event = serde_json::json!({"event": "result", "result": &result});
            writeln!(io.out, "{event}")?;
        } else {
            print_json(io, &result)?;
        }
        code
    } else {
        let suggested = journal::suggested_timeout(app.config_path(), name);
        report(io, name, &result, suggested)?
    };
    Ok(if terminal.cancel.is_tripped() {
        EXIT_INTERRUPTED
    } else {
        code
    })
}

/// Exit code after Ctrl-C / SIGTERM / SIGHUP stopped the run (128 + SIGINT, as shells report).
const EXIT_INTERRUPTED: u8 = 130;

/// Prints the outcome with a diagnosis; `suggested_timeout` comes from the agent's journal p90.
fn report(
    io: &mut Io,
    name: &str,
    r: &DispatchResult,
    suggested_timeout: Option<u64>,
) -> io::Result<u8> {
    if r.success {
        io.say(&r.result)?;
        if let Some(hint) = &r.hint {
            io.say("")?;
            io.say_in(Color::Yellow, &format!("Note: {hint}"))?;
        }
        if let Some(cost) = r.cost_usd {
            let turns = r
                .num_turns
                .map_or_else(|| "None".to_string(), |n| n.to_string());
            io.say(&format!("\n--- Cost: ${cost:.4} | Turns: {turns}"))?;
        }
        io.out.flush()?;
        return Ok(EXIT_OK);
    }
    let error = r.error.as_deref().unwrap_or("unknown error");
    io.say_in(Color::Red, &one_error_prefix(&format!("Error: {error}")))?;
    match r.error_type {
        Some(ErrorType::Permission) => {
            io.say("")?;
            io.say_in(Color::Yellow, "Diagnosis: permission error")?;
            io.say("The agent was denied a tool or action. To fix:")?;
            io.say(&format!(
                "  agent-dispatch update {name} --permission-mode bypassPermissions"
            ))?;
            io.say(&format!(
                "  agent-dispatch update {name} --allowed-tools Bash,Read,Edit,Write"
            ))?;
        }
        Some(ErrorType::Timeout) => {
            io.say("")?;
            io.say_in(Color::Yellow, "Diagnosis: timeout")?;
            let n = suggested_timeout.unwrap_or(600);
            io.say(&format!(
                "  agent-dispatch test {name} --timeout {n}    # one-off"
            ))?;
            io.say(&format!(
                "  agent-dispatch update {name} --timeout {n}  # permanent"
            ))?;
            if suggested_timeout.is_some() {
                io.say(&format!(
                    "  ({n}s is 50% over the p90 of this agent's recorded runs.)"
                ))?;
            }
        }
        Some(ErrorType::Budget) => {
            io.say("")?;
            io.say_in(Color::Yellow, "Diagnosis: spend cap reached")?;
            io.say("The claude CLI stopped the session at --max-budget-usd.")?;
            io.say(&format!(
                "  agent-dispatch update {name} --max-budget 2.0  # raise the cap"
            ))?;
            io.say(&format!(
                "  agent-dispatch update {name} --model haiku     # cheaper model"
            ))?;
            if let Some(sid) = &r.session_id {
                io.say(&format!("  Resumable session: {sid}"))?;
            }
        }
        _ => {
            if let Some(hint) = &r.hint {
                io.say("")?;
                io.say_in(Color::Yellow, &format!("Note: {hint}"))?;
            }
        }
    }
    io.out.flush()?;
    Ok(EXIT_ERROR)
}

/// SPEC §9.1: `Error: config at <path> has an invalid schema:` / `is not valid YAML:` + details.
fn config_error_text(e: &config::Error) -> String {
    format!("Error: {}\n{}", e.headline(), e.details())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_command(args: &[&str]) -> Result<Command, lexopt::Error> {
        let mut p = lexopt::Parser::from_args(args.iter().copied());
        parse(&mut p)
    }

    fn parse_str(args: &[&str]) -> Result<TestArgs, lexopt::Error> {
        match parse_command(args)? {
            Command::Test(a) => Ok(a),
            other => Err(format!("not a test command: {other:?}").into()),
        }
    }

    /// Runs `report` into a buffer, with or without colour; returns the code and stdout.
    fn report_text(r: &DispatchResult, color: bool) -> (u8, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut out,
            err: &mut err,
            out_color: color,
            err_color: false,
        };
        let code = report(&mut io, "p", r, None).unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn defaults_and_options() {
        let a = parse_str(&["proj"]).unwrap();
        assert_eq!(a.name, "proj");
        assert_eq!(a.task, DEFAULT_TASK);
        assert!(!a.stream);
        assert_eq!(a.timeout, None);
        let a = parse_str(&["proj", "do it", "--stream", "--timeout", "5"]).unwrap();
        assert_eq!(a.task, "do it");
        assert!(a.stream);
        assert_eq!(a.timeout, Some(5));
        assert_eq!(parse_str(&["p", "--timeout=0"]).unwrap().timeout, None);
    }

    #[test]
    fn usage_errors() {
        assert_eq!(
            parse_str(&[]).unwrap_err().to_string(),
            "missing argument NAME"
        );
        assert!(parse_str(&["p", "--timeout", "abc"]).is_err());
        assert!(parse_str(&["p", "--timeout", "-3"]).is_err());
        assert!(parse_str(&["p", "t", "extra"]).is_err());
        assert!(parse_str(&["p", "--bogus"]).is_err());
        assert_eq!(
            parse_command(&["--help"]).unwrap(),
            Command::Help(HELP.to_string())
        );
    }

    #[test]
    fn report_success_with_hint_and_cost() {
        let r = DispatchResult {
            agent: "p".into(),
            success: true,
            result: "answer".into(),
            hint: Some("look".into()),
            cost_usd: Some(0.01234),
            num_turns: Some(3),
            ..Default::default()
        };
        assert_eq!(
            report_text(&r, false),
            (
                0,
                "answer\n\nNote: look\n\n--- Cost: $0.0123 | Turns: 3\n".to_string()
            )
        );
    }

    #[test]
    fn report_failures_with_diagnosis() {
        let mut r = DispatchResult::failure("p", ErrorType::Timeout, "timed out");
        let (code, text) = report_text(&r, false);
        assert_eq!(code, 1);
        assert!(text.starts_with("Error: timed out\n\nDiagnosis: timeout\n"));
        assert!(text.contains("agent-dispatch test p --timeout 600"));
        r.error_type = Some(ErrorType::Budget);
        let (_, text) = report_text(&r, true);
        assert!(text.contains("\x1b[33mDiagnosis: spend cap reached\x1b[0m"));
        assert!(text.starts_with("\x1b[31mError: timed out\x1b[0m\n"));
    }
}
