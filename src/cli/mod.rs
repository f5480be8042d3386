//! The command line (SPEC §9). Each command lives in its own module as a `const HELP`, a lexopt
//! parse function and a `run` body; [`COMMANDS`] lists them for dispatch and for the top-level
//! help. Adding a command is one [`Command`] variant, one `COMMANDS` row and one arm in [`run`].
//!
//! Parsing is pure: `--help` short-circuits before anything touches the config or the disk.
//! Commands print only through [`Io`], never `println!`. Exit codes: 0 success, 1 handled
//! error, 2 usage error. The same table feeds `--help`, `help COMMAND` and `completions SHELL`,
//! so the three cannot drift apart.

mod backends_check;
mod completions;
mod doctor;
mod group;
mod host;
mod init;
mod jobs_cmd;
mod jobs_view;
mod manage;
mod output;
mod probe;
mod serve;
mod show;
mod stats_cmd;
mod test_cmd;

use std::ffi::OsString;
use std::io::{self, Write};

use lexopt::prelude::*;

pub use output::{Color, Io, PipeGuard, color_wanted};

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A parsed command line: plain data, checked against the config only when run.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Print this text on stdout and exit 0.
    Help(String),
    Version,
    /// `init [--force]`: `force` replaces an existing Claude Code registration.
    Init {
        force: bool,
    },
    Add(manage::AddArgs),
    Update(manage::UpdateArgs),
    Remove(String),
    List {
        json: bool,
    },
    Describe {
        name: String,
        json: bool,
    },
    Doctor(doctor::DoctorArgs),
    Jobs(jobs_cmd::JobsCommand),
    Serve,
    Test(test_cmd::TestArgs),
    Group(group::GroupCommand),
    Stats(stats_cmd::StatsArgs),
    Completions(completions::Shell),
}

/// One subcommand: its name, one-line summary, help text and parser.
pub struct CommandSpec {
    pub name: &'static str,
    pub summary: &'static str,
    /// Starts with the `Usage:` line, which usage errors repeat.
    pub help: &'static str,
    pub parse: fn(&mut lexopt::Parser) -> Result<Command, lexopt::Error>,
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .finish()
    }
}

impl CommandSpec {
    fn usage_line(&self) -> &'static str {
        self.help.lines().next().unwrap_or("")
    }
}

/// Every command, in the order the help lists them.
pub const COMMANDS: &[CommandSpec] = &[
    init::SPEC,
    manage::ADD,
    manage::UPDATE,
    manage::REMOVE,
    show::LIST,
    show::DESCRIBE,
    group::SPEC,
    test_cmd::SPEC,
    doctor::SPEC,
    serve::SPEC,
    jobs_cmd::JOBS,
    jobs_cmd::JOB,
    jobs_cmd::CANCEL,
    jobs_cmd::GC,
    stats_cmd::SPEC,
    completions::SPEC,
    completions::HELP_SPEC,
];

const USAGE: &str = "Usage: agent-dispatch [OPTIONS] COMMAND [ARGS]...";

fn top_help() -> String {
    let mut s = format!(
        "{USAGE}\n\n  Dispatch tasks to Claude Code agents living in other project directories.\n\n\
         Options:\n  --version   Show the version and exit.\n  -h, --help  Show this message and exit.\n\n\
         Commands:\n"
    );
    let width = COMMANDS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in COMMANDS {
        s.push_str(&format!("  {:width$}  {}\n", c.name, c.summary));
    }
    s.push_str("\nRun 'agent-dispatch COMMAND --help' for the options of a command.\n");
    s
}

/// A bad command line: the message and, when known, the command whose usage to repeat.
#[derive(Debug)]
pub struct UsageError {
    pub command: Option<&'static CommandSpec>,
    pub message: String,
}

impl UsageError {
    fn new(command: Option<&'static CommandSpec>, message: impl Into<String>) -> Self {
        UsageError {
            command,
            message: message.into(),
        }
    }
}

/// `version` as `--version` prints it.
pub fn version_line() -> String {
    format!("agent-dispatch, version {}", env!("CARGO_PKG_VERSION"))
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Command, UsageError> {
    let mut p = lexopt::Parser::from_args(args);
    let first = p.next().map_err(|e| UsageError::new(None, e.to_string()))?;
    match first {
        // A bare `agent-dispatch` is someone asking what this is.
        None => Ok(Command::Help(top_help())),
        Some(Long("help") | Short('h')) => Ok(Command::Help(top_help())),
        Some(Long("version") | Short('V')) => Ok(Command::Version),
        Some(Value(v)) => {
            let name = v.to_string_lossy();
            let spec = COMMANDS
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| UsageError::new(None, format!("No such command '{name}'.")))?;
            (spec.parse)(&mut p).map_err(|e| UsageError::new(Some(spec), e.to_string()))
        }
        Some(other) => Err(UsageError::new(None, other.unexpected().to_string())),
    }
}

/// Parses and runs; returns the exit code. A closed stdout (`agent-dispatch list | head -1`)
/// is a normal way to stop reading: the command still runs to its end (writes to the closed
/// pipe are dropped by [`PipeGuard`]) and its own exit code stands, so `doctor | head` fails
/// when a check fails and succeeds when none does.
pub fn main(args: Vec<OsString>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut guarded = PipeGuard::new(out);
    let mut io = Io {
        out: &mut guarded,
        err,
        out_color: color_wanted(1),
        err_color: color_wanted(2),
    };
    let result = match parse(args) {
        Ok(cmd) => run(cmd, &mut io),
        Err(e) => print_usage_error(&mut io, &e),
    };
    let result = result.and_then(|code| io.out.flush().map(|()| code));
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(io.err, "Error: cannot write output: {e}");
            EXIT_ERROR
        }
    }
}

/// Runs a parsed command.
pub fn run(cmd: Command, io: &mut Io) -> io::Result<u8> {
    match cmd {
        Command::Help(text) => {
            write!(io.out, "{text}")?;
            Ok(EXIT_OK)
        }
        Command::Version => {
            io.say(&version_line())?;
            Ok(EXIT_OK)
        }
        Command::Init { force } => init::run(io, force),
        Command::Add(args) => manage::run_add(io, args),
        Command::Update(args) => manage::run_update(io, args),
        Command::Remove(name) => manage::run_remove(io, &name),
        Command::List { json } => show::run_list(io, json),
        Command::Describe { name, json } => show::run_describe(io, &name, json),
        Command::Doctor(args) => doctor::run(io, &args),
        Command::Serve => serve::run(io),
        Command::Test(args) => test_cmd::run(io, &args),
        Command::Jobs(cmd) => jobs_cmd::run(io, &cmd),
        Command::Group(cmd) => group::run(io, cmd),
        Command::Stats(args) => stats_cmd::run(io, &args),
        Command::Completions(shell) => completions::run(io, shell),
    }
}

fn print_usage_error(io: &mut Io, e: &UsageError) -> io::Result<u8> {
    match e.command {
        Some(spec) => {
            io.note(spec.usage_line())?;
            io.note(&format!(
                "Try 'agent-dispatch {} --help' for help.\n",
                spec.name
            ))?;
        }
        None => {
            io.note(USAGE)?;
            io.note("Try 'agent-dispatch --help' for help.\n")?;
        }
    }
    io.error(&format!("Error: {}", e.message))?;
    Ok(EXIT_USAGE)
}

/// A usage error found while running (e.g. `add` given a directory that does not exist).
fn usage_error_at_run(io: &mut Io, spec: &'static CommandSpec, message: String) -> io::Result<u8> {
    print_usage_error(io, &UsageError::new(Some(spec), message))
}

/// The help text as a `Command`, for `-h`/`--help` inside a command's parser.
fn help(spec: &CommandSpec) -> Command {
    Command::Help(spec.help.to_string())
}

/// Parses a command that takes no arguments.
fn parse_no_args(
    p: &mut lexopt::Parser,
    spec: &CommandSpec,
    cmd: Command,
) -> Result<Command, lexopt::Error> {
    if let Some(arg) = p.next()? {
        return match arg {
            Short('h') | Long("help") => Ok(help(spec)),
            other => Err(other.unexpected()),
        };
    }
    Ok(cmd)
}

/// Parses a command whose only argument is an agent NAME.
fn parse_name_only(
    p: &mut lexopt::Parser,
    spec: &CommandSpec,
) -> Result<Result<String, Command>, lexopt::Error> {
    let mut name = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Err(help(spec))),
            Value(v) if name.is_none() => name = Some(v.string()?),
            other => return Err(other.unexpected()),
        }
    }
    name.map(Ok)
        .ok_or_else(|| "Missing argument 'NAME'.".into())
}

/// Parses a command whose only option is `--json`; `true` when it was given.
fn parse_json_only(
    p: &mut lexopt::Parser,
    spec: &CommandSpec,
) -> Result<Result<bool, Command>, lexopt::Error> {
    let mut json = false;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Err(help(spec))),
            Long("json") => json = true,
            other => return Err(other.unexpected()),
        }
    }
    Ok(Ok(json))
}

/// The value of option `name`, converted by `convert`; a failure names the option and says
/// what was expected (`Invalid value for '--limit': 0 is not in the range 1<=x<=1000.`).
fn option_with<T>(
    p: &mut lexopt::Parser,
    name: &str,
    convert: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, lexopt::Error> {
    let raw = p.value()?;
    let text = raw.to_string_lossy();
    convert(&text).map_err(|why| format!("Invalid value for '{name}': {why}").into())
}

/// A whole number in `lo..=hi`, in click's words when it is not one.
fn int_in_range(text: &str, lo: i64, hi: i64) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} is not in the range {lo}<=x<={hi}.")),
        Err(_) => Err(format!("'{text}' is not a valid integer.")),
    }
}

/// Pretty JSON and a newline on stdout: every `--json` output goes through here.
fn print_json(io: &mut Io, value: &impl serde::Serialize) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    writeln!(io.out, "{text}")
}

/// What the CLI says when NAME is not a configured agent.
fn agent_not_found(name: &str) -> String {
    format!("Agent '{name}' not found. Run 'agent-dispatch list' to see agents.")
}

/// Prints a config load failure as SPEC §9.1 words it.
fn print_config_error(io: &mut Io, e: &crate::config::Error) -> io::Result<u8> {
    io.error(&format!("Error: {}", e.headline()))?;
    io.note(&format!("  {}", e.details()))?;
    Ok(EXIT_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, UsageError> {
        parse(line.split_whitespace().map(OsString::from).collect())
    }

    #[test]
    fn top_level() {
        assert_eq!(p("--version").unwrap(), Command::Version);
        match p("--help").unwrap() {
            Command::Help(t) => {
                assert!(t.contains("  add "));
                assert!(t.contains("  doctor "));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p("").unwrap(), Command::Help(top_help()));
        assert!(
            p("frobnicate")
                .unwrap_err()
                .message
                .contains("No such command 'frobnicate'")
        );
        assert!(p("--bogus").is_err());
    }

    #[test]
    fn every_command_has_help_starting_with_usage() {
        for c in COMMANDS {
            assert!(
                c.help
                    .starts_with(&format!("Usage: agent-dispatch {}", c.name)),
                "{}",
                c.name
            );
            assert_eq!(
                p(&format!("{} --help", c.name)).unwrap(),
                Command::Help(c.help.to_string())
            );
            assert_eq!(
                p(&format!("{} -h", c.name)).unwrap(),
                Command::Help(c.help.to_string())
            );
        }
    }

    #[test]
    fn simple_commands() {
        assert_eq!(p("list").unwrap(), Command::List { json: false });
        assert_eq!(p("list --json").unwrap(), Command::List { json: true });
        assert_eq!(p("init").unwrap(), Command::Init { force: false });
        assert_eq!(p("init --force").unwrap(), Command::Init { force: true });
        assert!(p("list extra").is_err());
        assert_eq!(p("remove a").unwrap(), Command::Remove("a".into()));
        assert_eq!(
            p("describe a --json").unwrap(),
            Command::Describe {
                name: "a".into(),
                json: true
            }
        );
        let e = p("describe").unwrap_err();
        assert_eq!(e.command.map(|c| c.name), Some("describe"));
        assert!(e.message.contains("NAME"));
        assert!(p("remove a b").is_err());
    }
}
