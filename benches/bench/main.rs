//! `cargo bench --bench bench` (`make bench`, `make bench-compare`): what agent-dispatch costs,
//! measured from the outside through its MCP stdio interface with the fake claude as the child,
//! and optionally the same workloads against the Python reference releases.
//!
//! Environment:
//! - `BENCH_SERVERS`: comma list of `ours` and `ref-<version>` (a virtualenv in
//!   `target/ref-<version>`, made by `make bench-compare`); default `ours`.
//! - `BENCH_ONLY`: comma list of figure ids (see `workloads::FIGURES`); default all.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) every figure runs once against our
//! server with tiny sizes, as a smoke test that never needs the Python virtualenvs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

#[path = "../../tests/all/util/mod.rs"]
mod util;

mod backends;
mod client;
mod gate;
mod hostile;
mod report;
mod scale;
mod stats;
mod sys;
mod workloads;
mod world;

use std::panic::{AssertUnwindSafe, catch_unwind};

use workloads::FIGURES;
use world::{Server, Sizes, World};

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let sizes = if smoke { Sizes::smoke() } else { Sizes::full() };
    let servers: Vec<Server> = if smoke {
        vec![Server::Ours]
    } else {
        let list = std::env::var("BENCH_SERVERS").unwrap_or_else(|_| "ours".into());
        let parsed: Vec<Server> = list.split(',').filter_map(Server::parse).collect();
        assert!(
            parsed.first() == Some(&Server::Ours),
            "BENCH_SERVERS must start with `ours` (the ratios are against it): {list}"
        );
        parsed
    };
    for s in &servers {
        assert!(
            s.program().exists(),
            "{} not found; `make bench-compare` creates the reference virtualenvs",
            s.program().display()
        );
    }
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let figures: Vec<_> = FIGURES
        .iter()
        .filter(|f| only.as_ref().is_none_or(|o| o.iter().any(|x| x == f.id)))
        .collect();
    assert!(
        !figures.is_empty(),
        "BENCH_ONLY names no figure; ids: {}",
        ids()
    );

    let worlds: Vec<World> = servers
        .iter()
        .map(|s| World::new(s.clone(), &sizes))
        .collect();
    if smoke {
        for f in &figures {
            let rows = (f.run)(&worlds[0], &sizes);
            assert!(!rows.is_empty(), "{} produced no rows", f.id);
        }
        println!(
            "bench smoke: {} figures ran once against our server",
            figures.len()
        );
        return;
    }
    let versions: Vec<String> = worlds.iter().map(version).collect();
    report::header(&servers, &sizes, &versions);
    for f in figures {
        // Interleaved by figure, so drift on a shared machine hits every server alike.
        let mut rows = Vec::new();
        for w in &worlds {
            eprintln!("bench: {} on {}", f.id, w.server.id());
            let t0 = std::time::Instant::now();
            let got = catch_unwind(AssertUnwindSafe(|| (f.run)(w, &sizes)));
            eprintln!(
                "bench: {} on {} took {:.1?}",
                f.id,
                w.server.id(),
                t0.elapsed()
            );
            match got {
                Ok(r) => rows.push(r),
                Err(e) => {
                    let why = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    let why: String = why.chars().take(160).collect();
                    // Ours must work; a reference failing a workload is a finding.
                    assert!(w.server != Server::Ours, "{} failed on ours: {why}", f.id);
                    rows.push(Vec::new());
                    let n = rows.len() - 1;
                    rows[n] = report::failed_rows(
                        &rows[0],
                        &format!("failed: {}", why.replace('|', "/").replace('\n', " ")),
                    );
                }
            }
        }
        report::figure(&servers, &sizes, f, &rows);
    }
}

fn ids() -> String {
    FIGURES.iter().map(|f| f.id).collect::<Vec<_>>().join(", ")
}

fn version(w: &World) -> String {
    let out = w.cli().arg("--version").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
