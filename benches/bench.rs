//! `cargo bench --bench bench` (or `make bench`): what agent-dispatch adds on top of the child.
//!
//! For each workload in `WORKLOADS` it times (a) a bare spawn of `fixtures/fake-claude` with the
//! argv, cwd and output a dispatch would produce, reading all of its stdout, and (b)
//! `agent-dispatch test` dispatching to the same fake. Runs alternate between (a) and (b) so
//! drift on a shared machine hits both alike. Prints a Markdown report for BENCHMARKS.md.
//! Under `cargo test` (no `--bench` argument) each side runs once as a smoke test.
//! `BENCH_RUNS` overrides the number of runs per side (default 30, minimum 20).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[path = "../tests/util/mod.rs"]
mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::TestEnv;

/// One thing to measure. Add a row to measure something new.
struct Workload {
    name: &'static str,
    /// What the fake claude does (`FAKE_CLAUDE_STEP`).
    step: &'static str,
    stream: bool,
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "json, short answer",
        step: r#"{"result": "It is a small project."}"#,
        stream: false,
    },
    Workload {
        name: "stream-json, 2 progress lines",
        step: r#"{"result": "It is a small project.", "progress": ["Looking", "tool:Read"]}"#,
        stream: true,
    },
    Workload {
        name: "json, 1 MiB answer",
        step: r#"{"huge_mb": 1}"#,
        stream: false,
    },
];

const TASK: &str = "What project is this? Describe in one sentence.";

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it,
    // and then one run of each side per workload checks that the bench still works.
    let smoke = !std::env::args().any(|a| a == "--bench");
    if smoke {
        let env = TestEnv::new("bench-smoke");
        let dir = env.project("proj");
        env.write_config(&format!(
            "agents:\n  proj:\n    directory: {}\n",
            dir.display()
        ));
        for w in WORKLOADS {
            time_bare(&env, &dir, w);
            time_dispatch(&env, w);
        }
        return;
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(20);
    let env = TestEnv::new("bench");
    let dir = env.project("proj");
    env.write_config(&format!(
        "agents:\n  proj:\n    directory: {}\n",
        dir.display()
    ));

    println!("## Dispatch overhead ({runs} runs per side, medians)\n");
    println!("- command: `make bench` (`cargo bench --bench bench`)");
    println!("- date: {}", date());
    println!("- machine: {}", machine());
    println!();
    println!("| workload | bare fake claude | agent-dispatch test | ratio | difference |");
    println!("|---|---:|---:|---:|---:|");
    for w in WORKLOADS {
        let mut bare = Vec::with_capacity(runs);
        let mut dispatched = Vec::with_capacity(runs);
        // One warm-up of each so page cache and Python's bytecode cache are hot for both.
        time_bare(&env, &dir, w);
        time_dispatch(&env, w);
        for _ in 0..runs {
            bare.push(time_bare(&env, &dir, w));
            dispatched.push(time_dispatch(&env, w));
        }
        let (a, b) = (median(&mut bare), median(&mut dispatched));
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.2}x | {:+.1} ms |",
            w.name,
            ms(a),
            ms(b),
            b.as_secs_f64() / a.as_secs_f64(),
            ms(b) - ms(a)
        );
    }
    let _ = std::fs::write(&env.log, "");
}

fn time_bare(env: &TestEnv, dir: &std::path::Path, w: &Workload) -> Duration {
    let format = if w.stream { "stream-json" } else { "json" };
    let mut c = Command::new(util::fake_claude());
    env.apply(&mut c);
    c.args(["-p", TASK, "--output-format", format, "--session-id"])
        .arg(uuid::Uuid::new_v4().to_string())
        .args(if w.stream {
            &["--verbose"][..]
        } else {
            &[][..]
        })
        .current_dir(dir)
        .env("AGENT_DISPATCH_DEPTH", "1")
        .env("FAKE_CLAUDE_STEP", w.step)
        .stdin(Stdio::null());
    timed(&mut c)
}

fn time_dispatch(env: &TestEnv, w: &Workload) -> Duration {
    let mut c = env.cmd();
    c.args(["test", "proj", TASK])
        .args(if w.stream { &["--stream"][..] } else { &[][..] })
        .env("FAKE_CLAUDE_STEP", w.step)
        .stdin(Stdio::null());
    timed(&mut c)
}

fn timed(c: &mut Command) -> Duration {
    let start = Instant::now();
    let out = c.output().expect("spawn");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("nproc {cpus}, {mem_gib:.1} GiB memory, {model}")
}
