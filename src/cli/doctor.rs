//! `doctor` (SPEC §9.9, upstream 0.16): checks the claude CLI, this binary on PATH, the live
//! servers of the registry, the config, the Claude Code registration and every agent directory.
//! The registration check tells the truth: it starts the registered command as Claude Code
//! would and reads Claude Code's own `✓ Connected`, and says whether it is this binary.
//! `[WARN]` lines count warnings, `[FAIL]` lines count issues; exit 1 on an issue (with
//! `--strict`, on a warning too). `--json` prints the same checks as one object.

use std::io;
use std::path::Path;
use std::time::Duration;

use lexopt::prelude::*;
use serde::Serialize;

use super::host::{self, RunError};
use super::probe::{self, Probe, Registered};
use super::show::DirStatus;
use super::{Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, help, print_json};
use crate::config::{self, Config, InvalidKind};
use crate::{claude, registry};

pub const SPEC: CommandSpec = CommandSpec {
    name: "doctor",
    summary: "Check the installation, registration, servers, config and agents",
    help: HELP,
    parse,
};

const HELP: &str = "\
Usage: agent-dispatch doctor [OPTIONS]

  Check that the claude CLI is installed, which agent-dispatch servers are running (and which
  of them run an older binary), that the config loads, that the Claude Code registration
  starts and answers as this binary, and that every agent directory exists.

Options:
  --json      Print the report as JSON: {schema_version, status, issues, warnings, checks}.
  --strict    Exit 1 on warnings as well as on failures.
  -h, --help  Show this message and exit.

Exit codes:
  0  every check passed (warnings allowed unless --strict)
  1  a check failed (or, with --strict, warned)

Environment:
  AGENT_DISPATCH_MCP_LIST_TIMEOUT  Seconds to wait for 'claude mcp list' [default: 10]
";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DoctorArgs {
    pub json: bool,
    pub strict: bool,
}

fn parse(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut args = DoctorArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("json") => args.json = true,
            Long("strict") => args.strict = true,
            Short('h') | Long("help") => return Ok(help(&SPEC)),
            other => return Err(other.unexpected()),
        }
    }
    Ok(Command::Doctor(args))
}

const MCP_LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the registered command gets to answer `initialize`.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

fn mcp_list_timeout() -> Duration {
    crate::env::secs(
        "AGENT_DISPATCH_MCP_LIST_TIMEOUT",
        MCP_LIST_TIMEOUT,
        Duration::from_secs(3600),
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

/// One check as `--json` reports it.
#[derive(Debug, Serialize)]
struct Check {
    section: String,
    status: Status,
    message: String,
    details: Vec<String>,
}

/// `doctor --json` (schema_version 1, as upstream 0.16 prints it).
#[derive(Debug, Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    status: Status,
    issues: usize,
    warnings: usize,
    checks: &'a [Check],
}

/// Collects the checks, printing each as it is made unless the output is JSON.
pub(super) struct Report<'a, 'b> {
    io: &'a mut Io<'b>,
    json: bool,
    section: String,
    checks: Vec<Check>,
    issues: usize,
    warnings: usize,
}

impl Report<'_, '_> {
    fn section(&mut self, title: &str) -> io::Result<()> {
        if !self.json {
            if !self.checks.is_empty() {
                self.io.say("")?;
            }
            let t = self.io.tint(Color::Bold, title);
            self.io.say(&t)?;
        }
        self.section = title.to_string();
        Ok(())
    }
    fn check(&mut self, status: Status, text: &str) -> io::Result<()> {
        let (tag, color) = match status {
            Status::Ok => ("[OK]", Color::Green),
            Status::Warn => {
                self.warnings += 1;
                ("[WARN]", Color::Yellow)
            }
            Status::Fail => {
                self.issues += 1;
                ("[FAIL]", Color::Red)
            }
        };
        self.checks.push(Check {
            section: self.section.clone(),
            status,
            message: text.to_string(),
            details: Vec::new(),
        });
        if self.json {
            return Ok(());
        }
        let tag = self.io.tint(color, tag);
        self.io.say(&format!("  {tag} {text}"))
    }
    pub(super) fn ok(&mut self, text: &str) -> io::Result<()> {
        self.check(Status::Ok, text)
    }
    pub(super) fn warn(&mut self, text: &str) -> io::Result<()> {
        self.check(Status::Warn, text)
    }
    pub(super) fn fail(&mut self, text: &str) -> io::Result<()> {
        self.check(Status::Fail, text)
    }
    /// A follow-up line under the previous check.
    pub(super) fn more(&mut self, text: &str) -> io::Result<()> {
        if let Some(last) = self.checks.last_mut() {
            last.details.push(text.to_string());
        }
        if self.json {
            return Ok(());
        }
        self.io.say(&format!("         {text}"))
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

pub fn run(io: &mut Io, args: &DoctorArgs) -> io::Result<u8> {
    let mut r = Report {
        io,
        json: args.json,
        section: String::new(),
        checks: Vec::new(),
        issues: 0,
        warnings: 0,
    };

    r.section("Environment")?;
    let claude = claude::find_on_path("claude");
    match &claude {
        Some(p) => r.ok(&format!("claude CLI: {}", p.display()))?,
        None => {
            r.fail("claude CLI not found on PATH")?;
            r.more("Install it: https://docs.anthropic.com/en/docs/claude-code")?;
        }
    }
    match claude::find_on_path("agent-dispatch") {
        Some(p) => r.ok(&format!("agent-dispatch CLI: {}", p.display()))?,
        None => r.warn("agent-dispatch not on PATH (MCP server still works via absolute path)")?,
    }

    let path = config::config_path();
    r.section("Running servers")?;
    check_servers(&mut r, &path)?;

    r.section("Config")?;
    let config = check_config(&mut r, &path)?;
    if config.is_some() {
        match crate::gate::slots_in_use(&path) {
            Ok((_, 0)) => r.ok("Machine gate: off (settings.machine_max_concurrency: 0)")?,
            Ok((used, n)) => r.ok(&format!("Machine gate: {used} of {n} slots in use"))?,
            Err(e) => r.warn(&e.to_string())?,
        }
    }
    // Leftovers of a server that was killed outright (its child ledger is unlocked).
    let ledgers = config::jobs_dir(&path).join(crate::mcp::LEDGER_DIR);
    let leftovers = crate::process::ledger::sweep(&ledgers);
    if leftovers > 0 {
        r.warn(&format!(
            "Killed {leftovers} leftover process(es) of an agent-dispatch server that died without cleaning up"
        ))?;
    }

    if let Some(c) = &config {
        r.section("Backends")?;
        super::backends_check::check(&mut r, c)?;
    }

    r.section("MCP registration")?;
    match &claude {
        None => r.warn("Skipped (claude CLI missing)")?,
        Some(claude) => check_registration(&mut r, claude)?,
    }

    r.section("Agents")?;
    match &config {
        None => r.warn("Skipped (config could not be loaded)")?,
        Some(c) if c.agents.is_empty() => {
            r.warn("No agents configured. Add one: agent-dispatch add <name> <directory>")?
        }
        Some(c) => {
            for (name, agent) in c.agents.iter() {
                check_agent(&mut r, name, &agent.directory)?;
            }
        }
    }
    // Permission modes claude refuses, dangling or empty groups (config::problems).
    for p in config.as_ref().map(config::problems).unwrap_or_default() {
        match p.severity {
            config::Severity::Fail => r.fail(&p.message)?,
            config::Severity::Warn => r.warn(&p.message)?,
        }
        r.more(&format!("Fix: {}", p.fix))?;
    }

    let failed = r.issues > 0 || (args.strict && r.warnings > 0);
    let code = if failed { EXIT_ERROR } else { EXIT_OK };
    if args.json {
        let status = if r.issues > 0 {
            Status::Fail
        } else if r.warnings > 0 {
            Status::Warn
        } else {
            Status::Ok
        };
        let report = JsonReport {
            schema_version: 1,
            status,
            issues: r.issues,
            warnings: r.warnings,
            checks: &r.checks,
        };
        print_json(r.io, &report)?;
        return Ok(code);
    }
    r.io.say("")?;
    if r.issues == 0 && r.warnings == 0 {
        r.io.say_in(Color::Green, "All checks passed.")?;
    } else {
        let mut parts = Vec::new();
        if r.issues > 0 {
            parts.push(plural(r.issues, "issue"));
        }
        if r.warnings > 0 {
            parts.push(plural(r.warnings, "warning"));
        }
        let color = if r.issues > 0 {
            Color::Red
        } else {
            Color::Yellow
        };
        r.io.say_in(color, &parts.join(", "))?;
    }
    Ok(code)
}

/// True when `entry` runs older code than this binary: an older version, or this very binary
/// file replaced (rebuilt, reinstalled) since the server started.
fn runs_older_code(entry: &registry::ServerEntry, me: Option<&Path>) -> bool {
    let mine = env!("CARGO_PKG_VERSION");
    if registry::version_older(&entry.version, mine) {
        return true;
    }
    if entry.version != mine {
        return false;
    }
    let (Some(exe), Some(me)) = (entry.exe.as_deref(), me) else {
        return false;
    };
    let replaced_after_start = std::fs::metadata(exe)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|t| t.as_secs_f64() > entry.started_at);
    probe::same_file(Path::new(exe), me) && replaced_after_start
}

fn check_servers(r: &mut Report, config_path: &Path) -> io::Result<()> {
    let live = registry::live_servers(&registry::servers_dir(config_path), true);
    let mine = env!("CARGO_PKG_VERSION");
    if live.is_empty() {
        r.ok("No agent-dispatch server is registered as running")?;
    } else {
        let mut by_version: std::collections::BTreeMap<&str, usize> = Default::default();
        for e in &live {
            *by_version.entry(e.version.as_str()).or_default() += 1;
        }
        let versions: Vec<String> = by_version
            .iter()
            .map(|(v, n)| format!("{n}x {v}"))
            .collect();
        r.ok(&format!(
            "{} server process(es) registered: {}",
            live.len(),
            versions.join(", ")
        ))?;
        for e in &live {
            r.more(&format!(
                "pid {}: {}, up {}",
                e.pid,
                e.version,
                registry::age(e.started_at)
            ))?;
        }
    }
    r.more("Lower bound: only servers started on a version with the registry register here.")?;
    let me = std::env::current_exe().ok();
    let older: Vec<&registry::ServerEntry> = live
        .iter()
        .filter(|e| runs_older_code(e, me.as_deref()))
        .collect();
    if !older.is_empty() {
        r.warn(&format!(
            "{} server(s) still executing older code than this binary ({mine})",
            older.len()
        ))?;
        r.more("A server keeps its code for life: an upgrade reaches an open Claude Code")?;
        r.more("session only when that session restarts. Restart them to pick it up.")?;
        for e in older {
            r.more(&format!(
                "pid {}: {}, up {}",
                e.pid,
                e.version,
                registry::age(e.started_at)
            ))?;
        }
    }
    Ok(())
}

/// Finds the registration through `claude mcp list` (and `mcp get` for the exact command),
/// then checks it three ways: Claude Code's own status, whether the command starts and
/// answers `initialize`, and whether it is this binary.
fn check_registration(r: &mut Report, claude: &Path) -> io::Result<()> {
    let args = ["mcp".to_string(), "list".to_string()];
    let listed = match host::run_captured(claude, &args, mcp_list_timeout()) {
        Ok(c) if c.success() => probe::from_list(&c.stdout),
        Ok(_) => None,
        Err(RunError::TimedOut(_)) => {
            return r.warn("Could not check MCP registration: claude mcp list timed out");
        }
        Err(e) => return r.warn(&format!("Could not check MCP registration: {e}")),
    };
    let Some(listed) = listed else {
        r.warn("agent-dispatch is not registered with Claude Code")?;
        return r.more("Run: agent-dispatch init");
    };
    // `mcp list` joins command and arguments with spaces; when that does not name a program
    // (a path with a space in it), `mcp get` has them apart.
    let reg = if probe::resolve(&listed.command).is_some() {
        listed
    } else {
        let get = ["mcp", "get", "agent-dispatch"].map(String::from);
        match host::run_captured(claude, &get, mcp_list_timeout()) {
            Ok(c) if c.success() => probe::from_get(&c.stdout).unwrap_or(listed),
            _ => listed,
        }
    };
    check_registered_command(r, &reg)
}

fn check_registered_command(r: &mut Report, reg: &Registered) -> io::Result<()> {
    let shown = std::iter::once(reg.command.as_str())
        .chain(reg.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let fix = "Fix: agent-dispatch init --force";
    let Some(exe) = probe::resolve(&reg.command) else {
        r.fail(&format!(
            "agent-dispatch is registered, but its command does not exist: {shown}"
        ))?;
        if let Some(s) = &reg.status {
            r.more(&format!("Claude Code reports: {s}"))?;
        }
        return r.more(fix);
    };
    match probe::probe(&exe, &reg.args, PROBE_TIMEOUT) {
        Probe::Answered { name, version } => {
            if reg.connected == Some(false) {
                r.fail(&format!(
                    "agent-dispatch starts, but Claude Code cannot connect to it: {shown}"
                ))?;
                r.more(&format!(
                    "Claude Code reports: {}",
                    reg.status.as_deref().unwrap_or("?")
                ))?;
                return r.more(fix);
            }
            r.ok(&format!(
                "agent-dispatch is registered with Claude Code and answers: {shown} \
                 ({name} {version})"
            ))?;
            let this = std::env::current_exe().ok();
            if !this.as_deref().is_some_and(|me| probe::same_file(&exe, me)) {
                let me = this
                    .as_deref()
                    .map_or_else(|| "?".to_string(), |p| p.display().to_string());
                r.warn(&format!(
                    "The registration runs {}, not this binary ({me})",
                    exe.display()
                ))?;
                r.more("To register this binary: agent-dispatch init --force")?;
            }
            Ok(())
        }
        Probe::SpawnFailed(why) => {
            r.fail(&format!(
                "agent-dispatch is registered, but its command cannot start: {shown}"
            ))?;
            r.more(&why)?;
            r.more(fix)
        }
        Probe::NoAnswer(why) => {
            r.fail(&format!(
                "agent-dispatch is registered, but its command does not answer MCP: {shown}"
            ))?;
            r.more(&why)?;
            r.more(fix)
        }
    }
}

fn check_config(r: &mut Report, path: &Path) -> io::Result<Option<Config>> {
    if let Err(e) = std::fs::symlink_metadata(path)
        && e.kind() == io::ErrorKind::NotFound
    {
        r.warn(&format!("Config not found: {}", path.display()))?;
        r.more("Run: agent-dispatch init")?;
        return Ok(None);
    }
    match Config::load(path) {
        Ok(c) => {
            let n = c.agents.len();
            let noun = if n == 1 { "agent" } else { "agents" };
            r.ok(&format!("Config: {} ({n} {noun})", path.display()))?;
            Ok(Some(c))
        }
        Err(e) => {
            let what = match e.kind() {
                Some(InvalidKind::Schema) => "Config schema invalid",
                Some(InvalidKind::Syntax) => "Config not valid YAML",
                Some(InvalidKind::Encoding) => "Config not valid UTF-8",
                None => "Config unreadable",
            };
            r.fail(&format!("{what}: {}", path.display()))?;
            for line in e.details().lines() {
                r.more(line)?;
            }
            Ok(None)
        }
    }
}

fn check_agent(r: &mut Report, name: &str, dir: &Path) -> io::Result<()> {
    match DirStatus::of(dir) {
        DirStatus::NotFound => r.fail(&format!("{name}: directory missing - {}", dir.display()))?,
        DirStatus::Unreadable(e) => r.fail(&format!("{name}: directory unreadable - {e}"))?,
        DirStatus::Ok => match std::fs::read_dir(dir) {
            Err(e) => r.fail(&format!("{name}: directory unreadable - {e}"))?,
            Ok(_) => {
                let found: Vec<&str> = ["CLAUDE.md", ".mcp.json"]
                    .into_iter()
                    .filter(|f| dir.join(f).exists())
                    .collect();
                let suffix = if found.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", found.join(", "))
                };
                r.ok(&format!("{name}: {}{suffix}", dir.display()))?;
            }
        },
    }
    // SPEC §12 item 29: hand-edited names the tools could never create deserve a mention.
    if config::validate_agent_name(name).is_err() {
        r.warn(&format!(
            "{name}: name has characters 'agent-dispatch add' would refuse \
             (use letters, digits, '-' and '_')"
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "issue"), "1 issue");
        assert_eq!(plural(2, "warning"), "2 warnings");
    }

    #[test]
    fn older_code_is_an_older_version() {
        let entry = |v: &str| registry::ServerEntry {
            pid: 1,
            version: v.into(),
            started_at: 0.0,
            config: String::new(),
            exe: None,
        };
        assert!(runs_older_code(&entry("0.0.1"), None));
        assert!(!runs_older_code(&entry(env!("CARGO_PKG_VERSION")), None));
        assert!(!runs_older_code(&entry("99.0.0"), None));
    }
}
