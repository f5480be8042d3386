//! `doctor` (SPEC §9.9): checks the claude CLI, this binary on PATH, the config, the Claude Code
//! registration and every agent directory. `[WARN]` lines count warnings, `[FAIL]` lines count
//! issues; the exit code is 1 exactly when there is an issue.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::host::{self, RunError};
use super::show::DirStatus;
use super::{Color, Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, parse_no_args};
use crate::claude;
use crate::config::{self, Config, InvalidKind};

pub const SPEC: CommandSpec = CommandSpec {
    name: "doctor",
    summary: "Check the installation, registration, config and agents",
    help: HELP,
    parse: |p| parse_no_args(p, &SPEC, Command::Doctor),
};

const HELP: &str = "\
Usage: agent-dispatch doctor [OPTIONS]

  Check that the claude CLI is installed, that agent-dispatch is registered with Claude Code,
  that the config loads, and that every agent directory exists. Exits 1 if any check fails
  (warnings alone exit 0).

Options:
  -h, --help  Show this message and exit.

Environment:
  AGENT_DISPATCH_MCP_LIST_TIMEOUT  Seconds to wait for 'claude mcp list' [default: 10]
";

const MCP_LIST_TIMEOUT: Duration = Duration::from_secs(10);

fn mcp_list_timeout() -> Duration {
    crate::env::secs(
        "AGENT_DISPATCH_MCP_LIST_TIMEOUT",
        MCP_LIST_TIMEOUT,
        Duration::from_secs(3600),
    )
}

/// Counts as it prints.
struct Report<'a, 'b> {
    io: &'a mut Io<'b>,
    issues: usize,
    warnings: usize,
}

impl Report<'_, '_> {
    fn section(&mut self, title: &str) -> io::Result<()> {
        let t = self.io.tint(Color::Bold, title);
        self.io.say(&t)
    }
    fn ok(&mut self, text: &str) -> io::Result<()> {
        let tag = self.io.tint(Color::Green, "[OK]");
        self.io.say(&format!("  {tag} {text}"))
    }
    fn warn(&mut self, text: &str) -> io::Result<()> {
        self.warnings += 1;
        let tag = self.io.tint(Color::Yellow, "[WARN]");
        self.io.say(&format!("  {tag} {text}"))
    }
    fn fail(&mut self, text: &str) -> io::Result<()> {
        self.issues += 1;
        let tag = self.io.tint(Color::Red, "[FAIL]");
        self.io.say(&format!("  {tag} {text}"))
    }
    /// A follow-up line under the previous check.
    fn more(&mut self, text: &str) -> io::Result<()> {
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

/// `^agent-dispatch[:\s]` on any line of `claude mcp list` output.
pub(super) fn lists_agent_dispatch(stdout: &str) -> bool {
    stdout.lines().any(|l| {
        l.strip_prefix("agent-dispatch")
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c == ':' || c.is_whitespace())
    })
}

pub fn run(io: &mut Io) -> io::Result<u8> {
    let mut r = Report {
        io,
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

    r.io.say("")?;
    r.section("Config")?;
    let path = config::config_path();
    let config = check_config(&mut r, &path)?;
    // Leftovers of a server that was killed outright (its child ledger is unlocked).
    let ledgers = config::jobs_dir(&path).join(crate::mcp::LEDGER_DIR);
    let leftovers = crate::process::ledger::sweep(&ledgers);
    if leftovers > 0 {
        r.warn(&format!(
            "Killed {leftovers} leftover process(es) of an agent-dispatch server that died without cleaning up"
        ))?;
    }

    r.io.say("")?;
    r.section("MCP registration")?;
    match &claude {
        None => r.warn("Skipped (claude CLI missing)")?,
        Some(claude) => check_registration(&mut r, claude)?,
    }

    r.io.say("")?;
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
    Ok(if r.issues > 0 { EXIT_ERROR } else { EXIT_OK })
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

fn check_registration(r: &mut Report, claude: &Path) -> io::Result<()> {
    let args = ["mcp".to_string(), "list".to_string()];
    match host::run_captured(claude, &args, mcp_list_timeout()) {
        Ok(c) if c.success() && lists_agent_dispatch(&c.stdout) => {
            r.ok("agent-dispatch is registered with Claude Code")
        }
        Ok(_) => {
            r.warn("agent-dispatch is not registered with Claude Code")?;
            r.more("Run: agent-dispatch init")
        }
        Err(RunError::TimedOut(_)) => {
            r.warn("Could not check MCP registration: claude mcp list timed out")
        }
        Err(e) => r.warn(&format!("Could not check MCP registration: {e}")),
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
    fn registration_line_must_start_the_line() {
        assert!(lists_agent_dispatch(
            "x: y\nagent-dispatch: /bin/agent-dispatch serve - ✓ Connected\n"
        ));
        assert!(lists_agent_dispatch("agent-dispatch /x serve\n"));
        assert!(!lists_agent_dispatch(
            "other: /home/u/agent-dispatch/bin serve\n"
        ));
        assert!(!lists_agent_dispatch("agent-dispatcher: x\n"));
        assert!(!lists_agent_dispatch("agent-dispatch"));
        assert!(!lists_agent_dispatch(""));
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "issue"), "1 issue");
        assert_eq!(plural(2, "warning"), "2 warnings");
    }
}
