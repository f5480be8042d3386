//! `agent-dispatch stats [--days N] [--agent NAME] [--json]`: what dispatches actually cost and
//! took, read from the usage journal (`journal`). A table for people; for scripts the same
//! numbers as `journal::Report` JSON, which is an object even when the journal is empty.

use std::io;

use lexopt::prelude::*;

use super::{
    Color, Command, CommandSpec, EXIT_OK, Io, help, int_in_range, option_with, print_json,
};
use crate::config;
use crate::journal::{self, Filter, Stats, stats::summarize};

pub const SPEC: CommandSpec = CommandSpec {
    name: "stats",
    summary: "Show dispatch spend, durations and outcomes per agent",
    help: HELP,
    parse,
};

const HELP: &str = "\
Usage: agent-dispatch stats [OPTIONS]

  Show what dispatches cost and took, per agent and in total, from the usage journal
  (usage.jsonl next to the config). Cache hits are counted apart from real runs.

Options:
  --days N      Only count the last N days (0-36500; 0 means everything) [default: 0]
  --agent NAME  Only this agent.
  --json        Print the report as JSON (an object even when nothing is recorded).
  -h, --help    Show this message and exit.

Environment:
  AGENT_DISPATCH_USAGE_LOG  Journal file [default: usage.jsonl next to the config]
";

/// Longest window `--days` accepts: a hundred years is "everything" with a bound.
const MAX_DAYS: i64 = 36_500;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsArgs {
    pub days: u64,
    pub agent: Option<String>,
    pub json: bool,
}

fn parse(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut args = StatsArgs::default();
    while let Some(arg) = p.next()? {
        match arg {
            Long("days") => {
                let n = option_with(p, "--days", |t| int_in_range(t, 0, MAX_DAYS))?;
                args.days = n.unsigned_abs();
            }
            Long("agent") => args.agent = Some(p.value()?.string()?),
            Long("json") => args.json = true,
            Short('h') | Long("help") => return Ok(help(&SPEC)),
            other => return Err(other.unexpected()),
        }
    }
    Ok(Command::Stats(args))
}

/// Milliseconds as people read them: `850ms`, `42s`, `3m20s`.
fn human_ms(ms: u64) -> String {
    let secs = ms / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if secs < 90 {
        format!("{:.0}s", ms as f64 / 1000.0)
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

fn counts(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(io: &mut Io, args: &StatsArgs) -> io::Result<u8> {
    let path = journal::journal_path(&config::config_path());
    let filter = Filter {
        days: args.days,
        agent: args.agent.as_deref(),
    };
    let records = journal::load(&path, &filter, journal::STATS_TAIL_BYTES);
    let report = summarize(&records);
    let gate = crate::gate::status(&config::config_path()).ok();
    if args.json {
        let mut doc = serde_json::to_value(&report).unwrap_or_default();
        if let (Some(g), Some(obj)) = (&gate, doc.as_object_mut()) {
            obj.insert(
                "machine_gate".into(),
                serde_json::json!({"in_use": g.in_use, "configured": g.configured, "waiting": g.waiting}),
            );
        }
        print_json(io, &doc)?;
        return Ok(EXIT_OK);
    }
    if let Some(g) = &gate {
        io.say(&gate_line(g))?;
    }
    if records.is_empty() {
        let who = args
            .agent
            .as_deref()
            .map_or_else(String::new, |a| format!(" for agent '{a}'"));
        let window = if args.days > 0 {
            format!(" in the last {} day(s)", args.days)
        } else {
            String::new()
        };
        io.say(&format!("No dispatches recorded{who}{window}."))?;
        io.say(&format!("    Journal: {}", path.display()))?;
        io.say("    (Recording is off if settings.usage_log is false in agents.yaml.)")?;
        return Ok(EXIT_OK);
    }
    let window = if args.days > 0 {
        format!("last {} day(s)", args.days)
    } else {
        "all recorded".to_string()
    };
    let head = io.tint(Color::Bold, &format!("Usage ({window})"));
    io.say(&head)?;
    let t = &report.total;
    let cached = if t.cached_hits > 0 {
        format!(", {} served from cache", t.cached_hits)
    } else {
        String::new()
    };
    io.say(&format!("  dispatches: {}{cached}", t.dispatches))?;
    io.say(&format!("  spend:      ${:.4}", t.cost_usd))?;
    if let (Some(m), Some(p), Some(x)) = (t.median_ms, t.p90_ms, t.max_ms) {
        io.say(&format!(
            "  duration:   median {}, p90 {}, max {}",
            human_ms(m),
            human_ms(p),
            human_ms(x)
        ))?;
    }
    if !t.outcomes.is_empty() {
        io.say(&format!("  outcomes:   {}", counts(&t.outcomes)))?;
    }
    if !t.errors.is_empty() {
        io.say_in(
            Color::Yellow,
            &format!("  failures:   {}", counts(&t.errors)),
        )?;
    }
    io.say("")?;
    let head = io.tint(Color::Bold, "Per agent");
    io.say(&head)?;
    let width = report
        .agents
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    for (name, s) in &report.agents {
        agent_line(io, name, s, width)?;
    }
    io.say("")?;
    io.say(&format!("Journal: {}", path.display()))?;
    Ok(EXIT_OK)
}

/// The machine gate right now: how many of its slots live children hold, and who waits.
fn gate_line(g: &crate::gate::Status) -> String {
    if g.configured == 0 {
        return "Machine gate: off (settings.machine_max_concurrency: 0)".to_string();
    }
    format!(
        "Machine gate: {} of {} slots in use, {} waiting",
        g.in_use, g.configured, g.waiting
    )
}

fn agent_line(io: &mut Io, name: &str, s: &Stats, width: usize) -> io::Result<()> {
    let runs = if s.dispatches == 1 { "run " } else { "runs" };
    let mut line = format!(
        "  {name:<width$}  {:>4} {runs}  ${:>8.4}",
        s.dispatches, s.cost_usd
    );
    if let (Some(m), Some(p)) = (s.median_ms, s.p90_ms) {
        line.push_str(&format!(
            "  median {:>6}  p90 {:>6}",
            human_ms(m),
            human_ms(p)
        ));
    }
    writeln!(io.out, "{line}")?;
    let mut detail = Vec::new();
    if !s.outcomes.is_empty() {
        detail.push(counts(&s.outcomes));
    }
    if !s.errors.is_empty() {
        detail.push(io.tint(Color::Yellow, &format!("failed: {}", counts(&s.errors))));
    }
    if s.cached_hits > 0 {
        detail.push(format!("{} cached", s.cached_hits));
    }
    if !detail.is_empty() {
        io.say(&format!("      {}", detail.join("  |  ")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(42_000), "42s");
        assert_eq!(human_ms(200_000), "3m20s");
    }

    #[test]
    fn days_are_range_checked_and_named() {
        let mut p = lexopt::Parser::from_args(["--days", "-1"]);
        let e = parse(&mut p).unwrap_err().to_string();
        assert!(e.contains("'--days'") && e.contains("0<=x<=36500"), "{e}");
        let mut p = lexopt::Parser::from_args(["--days", "3", "--agent", "a", "--json"]);
        assert_eq!(
            parse(&mut p).unwrap(),
            Command::Stats(StatsArgs {
                days: 3,
                agent: Some("a".into()),
                json: true
            })
        );
    }
}
