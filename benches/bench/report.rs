//! The Markdown report: a header saying when, where and what was measured, then one table per
//! figure with a column per server, the ratio of each reference to ours, and the command that
//! reproduces the figure.

use crate::stats::Value;
use crate::sys;
use crate::workloads::{Better, Figure, Row};
use crate::world::{Server, Sizes};

pub fn header(servers: &[Server], sizes: &Sizes, versions: &[String]) {
    let compare = servers.len() > 1;
    let title = if compare {
        "Side by side with the Python reference"
    } else {
        "MCP server figures"
    };
    println!("## {title}\n");
    println!("- command: `{}`", whole_command(servers));
    println!("- date: {}", sys::date());
    println!("- machine: {}", sys::machine());
    println!(
        "- child: `fixtures/fake-claude` under {} (cache disabled in the config; no \
         stdin probe, `FAKE_CLAUDE_LOG=off`)",
        sys::python_version()
    );
    for (s, v) in servers.iter().zip(versions) {
        println!("- {}: `{}` ({v})", s.label(), s.program().display());
    }
    println!(
        "- sizes: {} agents, {} stream events, {} MiB result, {} job files, {} simultaneous calls",
        sizes.agents, sizes.stream_events, sizes.huge_mb, sizes.job_files, sizes.rss_calls
    );
    println!("- every figure is a median over the runs given; ratios are reference ÷ ours\n");
}

fn whole_command(servers: &[Server]) -> String {
    if servers.len() > 1 {
        "make bench-compare".into()
    } else {
        "make bench".into()
    }
}

fn figure_command(servers: &[Server], f: &Figure) -> String {
    format!("{} BENCH_ONLY={}", whole_command(servers), f.id)
}

/// One figure's table; `rows[i]` are server i's rows (the same labels in the same order).
pub fn figure(servers: &[Server], sizes: &Sizes, f: &Figure, rows: &[Vec<Row>]) {
    println!("### {}\n", f.title);
    println!(
        "{} runs; reproduce: `{}`\n",
        (f.runs)(sizes),
        figure_command(servers, f)
    );
    let mut head = String::from("| figure |");
    let mut rule = String::from("|---|");
    for s in servers {
        head.push_str(&format!(" {} |", s.label()));
        rule.push_str("---:|");
    }
    for s in &servers[1..] {
        head.push_str(&format!(" {} ÷ ours |", s.label()));
        rule.push_str("---:|");
    }
    if servers.len() > 1 {
        head.push_str(" better |");
        rule.push_str("---|");
    }
    println!("{head}\n{rule}");
    for (i, first) in rows[0].iter().enumerate() {
        let mut line = format!("| {} |", first.label);
        for r in rows {
            line.push_str(&format!(
                " {} |",
                r.get(i).map_or("?".into(), |x| x.value.render())
            ));
        }
        let ours = first.value.num();
        for r in &rows[1..] {
            let theirs = r.get(i).and_then(|x| x.value.num());
            line.push_str(&format!(" {} |", ratio(ours, theirs, first.better)));
        }
        if servers.len() > 1 {
            line.push_str(match first.better {
                Better::Lower => " lower |",
                Better::Higher => " higher |",
                Better::Neither => " — |",
            });
        }
        println!("{line}");
    }
    println!();
}

fn ratio(ours: Option<f64>, theirs: Option<f64>, better: Better) -> String {
    match (ours, theirs) {
        (Some(o), Some(t)) if better != Better::Neither && o > 0.0 && t.is_finite() => {
            format!("{:.2}x", t / o)
        }
        (Some(_), Some(_)) => "—".into(),
        _ => "n/a".into(),
    }
}

/// Rows when a server could not run a figure at all (it panicked): every label n/a.
pub fn failed_rows(like: &[Row], why: &str) -> Vec<Row> {
    like.iter()
        .map(|r| Row {
            label: r.label.clone(),
            value: Value::Na(why.to_string()),
            better: r.better,
        })
        .collect()
}
