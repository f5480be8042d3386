//! `agent-dispatch test NAME [TASK] [--stream] [--timeout N]` (SPEC §9.8): dispatch one task to
//! one agent through the application's pipeline (never cached) and print the outcome with a
//! diagnosis. Owns its `CommandSpec` (lexopt loop, help text) and its output, printed through
//! `Io`; the config is loaded here.

use std::io;

use super::output::paint;
use super::{Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, agent_not_found, help};

use crate::app::{App, Dispatch, Kind, Observer, pipeline};
use crate::ask::Ask;
use crate::cancel::Cancel;
use crate::config::{self, Config};
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

Options:
  --stream     Use stream-json and print each progress line to stderr as it happens.
  --timeout N  Timeout in seconds for this run only (no clamp); the config is unchanged.
  -h, --help   Show this message and exit.

Exit codes:
  0    the agent answered
  1    the dispatch failed (the error and a diagnosis are printed), the agent is unknown, or
       the config could not be loaded
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
}

/// Parses the arguments after the word `test`. `-h`/`--help` wins over anything after it.
fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    use lexopt::prelude::*;
    let mut name: Option<String> = None;
    let mut task: Option<String> = None;
    let mut stream = false;
    let mut timeout = None;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(&SPEC)),
            Long("stream") => stream = true,
            Long("timeout") => {
                let n: u64 = parser.value()?.parse()?;
                // SPEC §9.8: only a positive value overrides.
                timeout = (n > 0).then_some(n);
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
    }))
}

/// Runs the command and returns its exit code.
pub fn run(io: &mut Io, args: &TestArgs) -> io::Result<u8> {
    let path = config::config_path();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            io.say_in(Color::Red, &config_error_text(&e))?;
            return Ok(EXIT_ERROR);
        }
    };
    let name = args.name.as_str();
    if config.agent(name).is_none() {
        io.say(&agent_not_found(name))?;
        return Ok(EXIT_ERROR);
    }
    let timeout = args
        .timeout
        .map_or(0, |t| i64::try_from(t).unwrap_or(i64::MAX));
    let app = App::new(path, RunEnv::from_process());
    let mut target = match app.target(&config, name, 0) {
        Ok(t) => t,
        Err(e) => {
            io.say(&e.message)?;
            return Ok(EXIT_ERROR);
        }
    };
    // SPEC §9.8: the CLI's override is taken as given, not clamped like a tool's.
    if timeout > 0 {
        target.agent.timeout = timeout as u64;
    }
    io.say(&format!(
        "Dispatching to '{name}' ({})...",
        target.agent.directory.display()
    ))?;
    io.say(&format!("Task: {}", args.task))?;
    io.say("---")?;
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
    // arrive (flushed per line, so a pipe sees progress while the child runs).
    let (err, err_color) = (&mut *io.err, io.err_color);
    let print = |err: &mut dyn io::Write, line: String| {
        let _ = writeln!(
            err,
            "{}",
            paint(err_color, Color::Cyan, &format!("  -> {line}"))
        );
        let _ = err.flush();
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
                recv(lines_rx) -> line => if let Ok(line) = line { print(err, line) },
                recv(done_rx) -> _ => break,
            }
        }
        lines_rx.try_iter().for_each(|line| print(err, line));
        run.join().unwrap_or_else(|_| {
            DispatchResult::failure(name, ErrorType::CliError, "the run failed unexpectedly")
        })
    });
    let code = report(io, name, &result)?;
    Ok(if terminal.cancel.is_tripped() {
        EXIT_INTERRUPTED
    } else {
        code
    })
}

/// Exit code after Ctrl-C / SIGTERM / SIGHUP stopped the run (128 + SIGINT, as shells report).
const EXIT_INTERRUPTED: u8 = 130;

fn report(io: &mut Io, name: &str, r: &DispatchResult) -> io::Result<u8> {
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
    io.say_in(Color::Red, &format!("Error: {error}"))?;
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
            io.say(&format!(
                "  agent-dispatch test {name} --timeout 600    # one-off"
            ))?;
            io.say(&format!(
                "  agent-dispatch update {name} --timeout 600  # permanent"
            ))?;
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
        let code = report(&mut io, "p", r).unwrap();
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
