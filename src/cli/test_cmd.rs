//! `agent-dispatch test NAME [TASK] [--stream] [--timeout N]` (SPEC §9.8): dispatch one task to
//! one agent straight through the runner (no cache, no limiter) and print the outcome with a
//! diagnosis. Owns its lexopt loop, its help text and its output; the config is loaded here.

use std::io::Write;

use super::output::{Color, color_wanted, paint};

use crate::cancel::Cancel;
use crate::claude::{self, DispatchRequest, Hooks, OutputMode};
use crate::config::{self, Config};
use crate::result::{DispatchResult, ErrorType};

pub const DEFAULT_TASK: &str = "What project is this? Describe in one sentence.";

pub const HELP: &str = "\
Usage: agent-dispatch test [OPTIONS] NAME [TASK]

  Test an agent by dispatching a task to it, exactly as the MCP tools would (no cache, no
  concurrency limit). TASK defaults to: What project is this? Describe in one sentence.

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
    /// `-h`/`--help` was given: print `HELP` and exit 0, whatever else was given.
    pub help: bool,
}

/// Parses the arguments after the word `test`.
pub fn parse(parser: &mut lexopt::Parser) -> Result<TestArgs, lexopt::Error> {
    use lexopt::prelude::*;
    let mut name: Option<String> = None;
    let mut task: Option<String> = None;
    let mut stream = false;
    let mut timeout = None;
    let mut help = false;
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => help = true,
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
    if help {
        return Ok(TestArgs {
            name: name.unwrap_or_default(),
            task: task.unwrap_or_else(|| DEFAULT_TASK.to_string()),
            stream,
            timeout,
            help,
        });
    }
    Ok(TestArgs {
        name: name.ok_or("missing argument NAME")?,
        task: task.unwrap_or_else(|| DEFAULT_TASK.to_string()),
        stream,
        timeout,
        help,
    })
}

/// Runs the command and returns its exit code. Colour is used only on a terminal without
/// `NO_COLOR`.
pub fn execute(args: &TestArgs, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    let out_colour = Colour(color_wanted(1));
    let err_colour = Colour(color_wanted(2));
    // A closed stdout (e.g. `| head`) is not worth a panic; the exit code still tells.
    run(args, stdout, stderr, out_colour, err_colour).unwrap_or(1)
}

fn run(
    args: &TestArgs,
    out: &mut dyn Write,
    err: &mut dyn Write,
    colour: Colour,
    err_colour: Colour,
) -> std::io::Result<i32> {
    if args.help {
        out.write_all(HELP.as_bytes())?;
        return Ok(0);
    }
    let path = config::config_path();
    let config = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            writeln!(out, "{}", colour.red(&config_error_text(&e)))?;
            return Ok(1);
        }
    };
    let name = args.name.as_str();
    let Some(agent) = config.agent(name) else {
        writeln!(
            out,
            "Agent '{name}' not found. Run 'agent-dispatch list' to see agents."
        )?;
        return Ok(1);
    };
    let mut agent = agent.clone();
    if let Some(t) = args.timeout {
        agent.timeout = t;
    }
    writeln!(
        out,
        "Dispatching to '{name}' ({})...",
        agent.directory.display()
    )?;
    writeln!(out, "Task: {}", args.task)?;
    writeln!(out, "---")?;
    out.flush()?;

    let req = DispatchRequest::new(name, agent, config.settings.clone(), &args.task);
    // Ctrl-C, a closed terminal or SIGTERM must stop the child's whole process group (it runs
    // in its own group, so the terminal's signal never reaches it) rather than orphan it.
    let interrupted = Cancel::new();
    if let Some(signals) = crate::signals::install() {
        let flag = interrupted.clone();
        // Detached on purpose: it waits for a signal that may never come.
        let _ = std::thread::Builder::new()
            .name("test-signals".into())
            .spawn(move || {
                if signals.recv().is_ok() {
                    flag.trip();
                }
            });
    }
    let result = if args.stream {
        let mut on_progress = |line: &str| {
            // Written and flushed per line so a pipe sees progress while the child runs.
            let _ = writeln!(err, "{}", err_colour.cyan(&format!("  -> {line}")));
            let _ = err.flush();
        };
        let hooks = Hooks {
            cancel: Some(&interrupted),
            on_progress: Some(&mut on_progress),
            ..Hooks::default()
        };
        claude::run(&req, OutputMode::Stream, hooks)
    } else {
        let hooks = Hooks {
            cancel: Some(&interrupted),
            ..Hooks::default()
        };
        claude::run(&req, OutputMode::Json, hooks)
    };
    let code = report(name, &result, out, colour)?;
    Ok(if interrupted.is_tripped() {
        EXIT_INTERRUPTED
    } else {
        code
    })
}

/// Exit code after Ctrl-C / SIGTERM / SIGHUP stopped the run (128 + SIGINT, as shells report).
const EXIT_INTERRUPTED: i32 = 130;

fn report(
    name: &str,
    r: &DispatchResult,
    out: &mut dyn Write,
    colour: Colour,
) -> std::io::Result<i32> {
    if r.success {
        writeln!(out, "{}", r.result)?;
        if let Some(hint) = &r.hint {
            writeln!(out)?;
            writeln!(out, "{}", colour.yellow(&format!("Note: {hint}")))?;
        }
        if let Some(cost) = r.cost_usd {
            let turns = r
                .num_turns
                .map_or_else(|| "None".to_string(), |n| n.to_string());
            writeln!(out, "\n--- Cost: ${cost:.4} | Turns: {turns}")?;
        }
        out.flush()?;
        return Ok(0);
    }
    let error = r.error.as_deref().unwrap_or("unknown error");
    writeln!(out, "{}", colour.red(&format!("Error: {error}")))?;
    match r.error_type {
        Some(ErrorType::Permission) => {
            writeln!(out)?;
            writeln!(out, "{}", colour.yellow("Diagnosis: permission error"))?;
            writeln!(out, "The agent was denied a tool or action. To fix:")?;
            writeln!(
                out,
                "  agent-dispatch update {name} --permission-mode bypassPermissions"
            )?;
            writeln!(
                out,
                "  agent-dispatch update {name} --allowed-tools Bash,Read,Edit,Write"
            )?;
        }
        Some(ErrorType::Timeout) => {
            writeln!(out)?;
            writeln!(out, "{}", colour.yellow("Diagnosis: timeout"))?;
            writeln!(
                out,
                "  agent-dispatch test {name} --timeout 600    # one-off"
            )?;
            writeln!(
                out,
                "  agent-dispatch update {name} --timeout 600  # permanent"
            )?;
        }
        Some(ErrorType::Budget) => {
            writeln!(out)?;
            writeln!(out, "{}", colour.yellow("Diagnosis: spend cap reached"))?;
            writeln!(
                out,
                "The claude CLI stopped the session at --max-budget-usd."
            )?;
            writeln!(
                out,
                "  agent-dispatch update {name} --max-budget 2.0  # raise the cap"
            )?;
            writeln!(
                out,
                "  agent-dispatch update {name} --model haiku     # cheaper model"
            )?;
            if let Some(sid) = &r.session_id {
                writeln!(out, "  Resumable session: {sid}")?;
            }
        }
        _ => {
            if let Some(hint) = &r.hint {
                writeln!(out)?;
                writeln!(out, "{}", colour.yellow(&format!("Note: {hint}")))?;
            }
        }
    }
    out.flush()?;
    Ok(1)
}

/// SPEC §9.1: `Error: config at <path> has an invalid schema:` / `is not valid YAML:` + details.
fn config_error_text(e: &config::Error) -> String {
    format!("Error: {}\n{}", e.headline(), e.details())
}

/// Whether to colour one stream (the shared policy of `cli::output`).
#[derive(Clone, Copy, Debug)]
struct Colour(bool);

impl Colour {
    fn red(self, t: &str) -> String {
        paint(self.0, Color::Red, t)
    }
    fn yellow(self, t: &str) -> String {
        paint(self.0, Color::Yellow, t)
    }
    fn cyan(self, t: &str) -> String {
        paint(self.0, Color::Cyan, t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<TestArgs, lexopt::Error> {
        let mut p = lexopt::Parser::from_args(args.iter().copied());
        parse(&mut p)
    }

    #[test]
    fn defaults_and_options() {
        let a = parse_str(&["proj"]).unwrap();
        assert_eq!(a.name, "proj");
        assert_eq!(a.task, DEFAULT_TASK);
        assert!(!a.stream && !a.help);
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
        assert!(parse_str(&["--help"]).unwrap().help);
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
        let mut out = Vec::new();
        assert_eq!(report("p", &r, &mut out, Colour(false)).unwrap(), 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "answer\n\nNote: look\n\n--- Cost: $0.0123 | Turns: 3\n"
        );
    }

    #[test]
    fn report_failures_with_diagnosis() {
        let mut r = DispatchResult::failure("p", ErrorType::Timeout, "timed out");
        let mut out = Vec::new();
        assert_eq!(report("p", &r, &mut out, Colour(false)).unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Error: timed out\n\nDiagnosis: timeout\n"));
        assert!(text.contains("agent-dispatch test p --timeout 600"));
        r.error_type = Some(ErrorType::Budget);
        let mut out = Vec::new();
        report("p", &r, &mut out, Colour(true)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\x1b[33mDiagnosis: spend cap reached\x1b[0m"));
        assert!(text.starts_with("\x1b[31mError: timed out\x1b[0m\n"));
    }
}
