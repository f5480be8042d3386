//! The figures. Each `Figure` runs its workload against one `World` (one server) and returns
//! rows of medians; the same code measures ours and the Python references, and any baseline a
//! figure is compared with (a bare spawn of the fake claude, the ideal schedule) is measured in
//! the same run. A server that cannot do a workload yields `Value::Na` with the reason.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::client::{Client, Reply};
use crate::scale;
use crate::stats::{Unit, Value, median, ms};
use crate::sys;
use crate::world::{self, Sizes, World};

/// Which way is good for a row, for the reader of the comparison table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Better {
    Lower,
    Higher,
    /// A baseline or a count: informative, not a score.
    Neither,
}

pub struct Row {
    pub label: String,
    pub value: Value,
    pub better: Better,
}

pub fn row(label: impl Into<String>, value: Value, better: Better) -> Row {
    Row {
        label: label.into(),
        value,
        better,
    }
}

pub struct Figure {
    /// `BENCH_ONLY=<id>` runs just this figure.
    pub id: &'static str,
    pub title: &'static str,
    /// How many measured runs each median is over.
    pub runs: fn(&Sizes) -> usize,
    pub run: fn(&World, &Sizes) -> Vec<Row>,
}

pub const FIGURES: &[Figure] = &[
    Figure {
        id: "cold_start",
        runs: |s| s.cold_runs,
        title: "cold start: spawn `serve` → `initialize` response",
        run: cold_start,
    },
    Figure {
        id: "round_trips",
        runs: |s| s.rt_runs,
        title: "round trips with 50 configured agents",
        run: round_trips,
    },
    Figure {
        id: "dispatch",
        runs: |s| s.overhead_runs,
        title: "dispatch overhead: MCP `dispatch` minus a bare spawn of the fake claude",
        run: dispatch_overhead,
    },
    Figure {
        id: "parallel",
        runs: |s| s.parallel_runs,
        title: "`dispatch_parallel` against the ideal schedule",
        run: parallel,
    },
    Figure {
        id: "stream",
        runs: |s| s.stream_runs,
        title: "`dispatch_stream` of a big transcript",
        run: stream,
    },
    Figure {
        id: "huge",
        runs: |s| s.huge_runs,
        title: "a 50 MiB result through `dispatch`",
        run: huge,
    },
    Figure {
        id: "rss",
        runs: |s| s.rss_runs,
        title: "peak RSS of the server, idle and under simultaneous calls",
        run: rss,
    },
    Figure {
        id: "jobs",
        runs: |s| s.jobs_runs,
        title: "job store: listing, status, fetch, wait",
        run: jobs,
    },
    Figure {
        id: "cli_test",
        runs: |s| s.overhead_runs,
        title: "`agent-dispatch test` (CLI, one process per dispatch) against a bare spawn",
        run: cli_test,
    },
    Figure {
        id: "cancel",
        runs: |s| s.cancel_runs,
        title: "`dispatch_cancel` of a running job",
        run: cancel,
    },
    Figure {
        id: "dispatch_compiled",
        runs: |s| s.scale_runs,
        title: "dispatch overhead over a compiled stand-in for claude, 50 and 500 agents",
        run: scale::dispatch_compiled,
    },
    Figure {
        id: "cli_test_compiled",
        runs: |s| s.scale_cli_runs,
        title: "`agent-dispatch test` over a compiled stand-in for claude, 50 and 500 agents",
        run: scale::cli_test_compiled,
    },
    Figure {
        id: "list_agents_scale",
        runs: |s| s.scale_runs,
        title: "`list_agents` with 50 and with 500 agents",
        run: scale::list_agents_scale,
    },
    Figure {
        id: "gate",
        runs: |s| s.overhead_runs,
        title: "machine gate (`machine_max_concurrency`): cost per dispatch, slot handoff",
        run: crate::gate::gate,
    },
    Figure {
        id: "backend_overhead",
        runs: |s| s.overhead_runs,
        title: "dispatch overhead per backend: MCP `dispatch` minus a bare spawn of the same fake",
        run: crate::backends::backend_overhead,
    },
    Figure {
        id: "stalled_client",
        runs: |_| 1,
        title: "a client that stops reading under many chatty streams (goal: < 64 MiB, exit < 2 s)",
        run: crate::hostile::stalled_client,
    },
    Figure {
        id: "flood",
        runs: |_| 1,
        title: "a child flooding stdout (goal: < 128 MiB)",
        run: crate::hostile::flood,
    },
];

pub const LONG: Duration = Duration::from_secs(600);
const SHORT: Duration = Duration::from_secs(60);

/// The document of a successful dispatch, or the server's error text.
fn dispatched(r: &Reply) -> Result<(), String> {
    if let Some(e) = r.error() {
        return Err(e);
    }
    match r.doc.get("success") {
        Some(serde_json::Value::Bool(true)) => Ok(()),
        _ => Err(format!("dispatch failed: {:.300}", r.doc.to_string())),
    }
}

fn na_rows(labels: &[(&str, Better)], why: &str) -> Vec<Row> {
    labels
        .iter()
        .map(|(l, b)| row(*l, Value::Na(why.to_string()), *b))
        .collect()
}

fn cold_start(w: &World, s: &Sizes) -> Vec<Row> {
    let mut times = Vec::new();
    for _ in 0..s.cold_runs {
        let t0 = Instant::now();
        let mut c = Client::spawn(w.serve_cmd(&w.config, None));
        let at = c.initialize();
        times.push(ms(at - t0));
        c.close();
    }
    vec![row(
        "cold start (spawn → initialize response)",
        Value::Num(median(times), Unit::Ms),
        Better::Lower,
    )]
}

fn round_trips(w: &World, s: &Sizes) -> Vec<Row> {
    let mut c = w.start();
    let mut tools_list = Vec::new();
    let mut list = Vec::new();
    let mut inspect = Vec::new();
    for i in 0..s.rt_runs + 2 {
        let t0 = Instant::now();
        let id = c.request("tools/list", json!({}));
        let (at, resp) = c.response(id, SHORT);
        assert!(
            resp["result"]["tools"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "{resp}"
        );
        let t1 = Instant::now();
        let r = c.call("list_agents", json!({}), SHORT);
        let n = r.doc.as_array().map_or(0, Vec::len);
        assert_eq!(n, s.agents, "list_agents: {:.300}", r.doc.to_string());
        let t2 = Instant::now();
        let r2 = c.call("inspect_agent", json!({"name": world::QUICK}), SHORT);
        assert_eq!(r2.doc["name"], world::QUICK, "{:.300}", r2.doc.to_string());
        // The first two rounds warm caches (and Python's lazy imports); they are not counted.
        if i >= 2 {
            tools_list.push(ms(at - t0));
            list.push(ms(r.at - t1));
            inspect.push(ms(r2.at - t2));
        }
    }
    c.close();
    vec![
        row(
            "`tools/list`",
            Value::Num(median(tools_list), Unit::Ms),
            Better::Lower,
        ),
        row(
            format!("`list_agents` ({} agents)", s.agents),
            Value::Num(median(list), Unit::Ms),
            Better::Lower,
        ),
        row(
            "`inspect_agent` (40-line previews)",
            Value::Num(median(inspect), Unit::Ms),
            Better::Lower,
        ),
    ]
}

fn time_output(cmd: &mut std::process::Command) -> f64 {
    let t0 = Instant::now();
    let out = cmd.output().expect("spawn fake claude");
    let t = ms(t0.elapsed());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

fn dispatch_overhead(w: &World, s: &Sizes) -> Vec<Row> {
    let mut c = w.start();
    let (mut bare, mut mcp) = (Vec::new(), Vec::new());
    for i in 0..s.overhead_runs + 1 {
        let b = time_output(&mut w.bare_fake(world::QUICK, false));
        let t0 = Instant::now();
        let r = c.call(
            "dispatch",
            json!({"agent": world::QUICK, "task": world::TASK}),
            SHORT,
        );
        if let Err(e) = dispatched(&r) {
            panic!("{}: dispatch failed: {e}", w.server.id());
        }
        // Run 0 warms the page cache and Python's bytecode cache for both sides.
        if i > 0 {
            bare.push(b);
            mcp.push(ms(r.at - t0));
        }
    }
    c.close();
    let (b, m) = (median(bare), median(mcp));
    vec![
        row(
            "bare spawn of the fake claude",
            Value::Num(b, Unit::Ms),
            Better::Neither,
        ),
        row(
            "MCP `dispatch` round trip",
            Value::Num(m, Unit::Ms),
            Better::Lower,
        ),
        row(
            "dispatch overhead (difference)",
            Value::Num(m - b, Unit::Ms),
            Better::Lower,
        ),
    ]
}

fn parallel(w: &World, s: &Sizes) -> Vec<Row> {
    let ideal = (s.parallel_items as f64 / s.parallel_concurrency as f64).ceil() * s.parallel_sleep;
    let items: Vec<_> = (0..s.parallel_items)
        .map(|i| json!({"agent": world::SLEEPY, "task": format!("item {i}")}))
        .collect();
    let dispatches = serde_json::to_string(&items).expect("items");
    let mut c = w.start();
    let (mut walls, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..s.parallel_runs {
        bare.push(bare_schedule(w, s));
        let t0 = Instant::now();
        let r = c.call("dispatch_parallel", json!({"dispatches": dispatches}), LONG);
        let wall = (r.at - t0).as_secs_f64();
        let arr = r
            .doc
            .as_array()
            .unwrap_or_else(|| panic!("{:.300}", r.doc.to_string()));
        assert_eq!(arr.len(), s.parallel_items);
        let failed = arr.iter().filter(|x| x["success"] != true).count();
        assert_eq!(failed, 0, "{}: {:.300}", w.server.id(), r.doc.to_string());
        walls.push(wall);
    }
    c.close();
    let wall = median(walls);
    let label = format!(
        "{} items × {} s child at max_concurrency {}",
        s.parallel_items, s.parallel_sleep, s.parallel_concurrency
    );
    vec![
        row(
            format!("{label}: ideal"),
            Value::Num(ideal, Unit::S),
            Better::Neither,
        ),
        row(
            format!("{label}: bare fake claudes, same schedule"),
            Value::Num(median(bare), Unit::S),
            Better::Neither,
        ),
        row(
            format!("{label}: wall"),
            Value::Num(wall, Unit::S),
            Better::Lower,
        ),
        row(
            format!("{label}: over ideal"),
            Value::Num(wall - ideal, Unit::S),
            Better::Lower,
        ),
    ]
}

/// The parallel workload without any server: `parallel_concurrency` threads spawning the fake
/// claude until `parallel_items` have run. What the children alone cost on this machine.
fn bare_schedule(w: &World, s: &Sizes) -> f64 {
    let next = AtomicUsize::new(0);
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..s.parallel_concurrency {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < s.parallel_items {
                    time_output(&mut w.bare_fake(world::SLEEPY, false));
                }
            });
        }
    });
    t0.elapsed().as_secs_f64()
}

fn stream(w: &World, s: &Sizes) -> Vec<Row> {
    let n = s.stream_events as f64;
    let mut c = w.start();
    let (mut bare, mut rate, mut delivered, mut nrate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.stream_runs {
        bare.push(n / (time_output(&mut w.bare_fake(world::STREAM, true)) / 1000.0));
        let before = c.notifications;
        let t0 = Instant::now();
        let r = c.call(
            "dispatch_stream",
            json!({"agent": world::STREAM, "task": world::TASK}),
            LONG,
        );
        let wall = (r.at - t0).as_secs_f64();
        if let Err(e) = dispatched(&r) {
            panic!("{}: dispatch_stream failed: {e}", w.server.id());
        }
        let got = (c.notifications - before) as f64;
        rate.push(n / wall);
        delivered.push(got);
        nrate.push(got / wall);
    }
    c.close();
    let events = format!("{} events", s.stream_events);
    vec![
        row(
            format!("{events}: bare fake claude, events/s"),
            Value::Num(median(bare), Unit::PerSec),
            Better::Neither,
        ),
        row(
            format!("{events}: `dispatch_stream`, events/s"),
            Value::Num(median(rate), Unit::PerSec),
            Better::Higher,
        ),
        row(
            format!("{events}: notifications delivered"),
            Value::Num(median(delivered), Unit::Count),
            Better::Higher,
        ),
        row(
            format!("{events}: notifications/s to the client"),
            Value::Num(median(nrate), Unit::PerSec),
            Better::Higher,
        ),
    ]
}

fn huge(w: &World, s: &Sizes) -> Vec<Row> {
    let (mut walls, mut peaks) = (Vec::new(), Vec::new());
    let want = s.huge_mb * 1024 * 1024;
    for _ in 0..s.huge_runs {
        // A fresh server per run: its peak RSS is this result's alone.
        let mut c = w.start();
        let t0 = Instant::now();
        let r = c.call(
            "dispatch",
            json!({"agent": world::HUGE, "task": world::TASK}),
            LONG,
        );
        walls.push((r.at - t0).as_secs_f64());
        peaks.push(sys::peak_rss_mib(c.pid()));
        if let Err(e) = dispatched(&r) {
            let labels = [("wall", Better::Lower), ("peak RSS", Better::Lower)];
            return na_rows(&labels, &format!("dispatch failed: {:.120}", e));
        }
        let len = r.doc["result"].as_str().map_or(0, str::len);
        assert!(len >= want, "{}: result of {len} bytes", w.server.id());
        c.close();
    }
    let label = format!("{} MiB result", s.huge_mb);
    vec![
        row(
            format!("{label}: wall"),
            Value::Num(median(walls), Unit::S),
            Better::Lower,
        ),
        row(
            format!("{label}: server peak RSS"),
            Value::Num(median(peaks), Unit::Mib),
            Better::Lower,
        ),
    ]
}

fn rss(w: &World, s: &Sizes) -> Vec<Row> {
    let (mut idle, mut busy, mut walls) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..s.rss_runs {
        let mut c = w.start_with(&w.config_wide, None);
        let r = c.call("list_agents", json!({}), SHORT);
        assert!(r.doc.is_array());
        idle.push(sys::peak_rss_mib(c.pid()));
        let t0 = Instant::now();
        let ids: Vec<i64> = (0..s.rss_calls)
            .map(|i| {
                c.start_call(
                    "dispatch",
                    json!({"agent": world::SLOW, "task": format!("call {i}")}),
                )
            })
            .collect();
        let mut last = t0;
        for id in ids {
            let r = c.finish_call(id, LONG);
            if let Err(e) = dispatched(&r) {
                panic!("{}: dispatch failed: {e}", w.server.id());
            }
            last = last.max(r.at);
        }
        walls.push((last - t0).as_secs_f64());
        busy.push(sys::peak_rss_mib(c.pid()));
        c.close();
    }
    let calls = format!(
        "{} simultaneous `dispatch` calls ({} s child)",
        s.rss_calls, s.rss_sleep
    );
    vec![
        row(
            "peak RSS idle (after `initialize` + `list_agents`)",
            Value::Num(median(idle), Unit::Mib),
            Better::Lower,
        ),
        row(
            format!("peak RSS with {calls}"),
            Value::Num(median(busy), Unit::Mib),
            Better::Lower,
        ),
        row(
            format!("wall time of {calls}"),
            Value::Num(median(walls), Unit::S),
            Better::Lower,
        ),
    ]
}

fn epoch(at: Instant) -> f64 {
    let now = SystemTime::now();
    let back = Instant::now().saturating_duration_since(at);
    (now - back)
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn jobs(w: &World, s: &Sizes) -> Vec<Row> {
    let files = format!("{} job files", s.job_files);
    // Cold start too: a server may scan the store before it answers.
    let t0 = Instant::now();
    let mut c = Client::spawn(w.serve_cmd(&w.config, Some(&w.many_jobs)));
    let up = ms(c.initialize() - t0);
    let (mut list, mut status, mut fetch) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..s.jobs_runs + 1 {
        let t0 = Instant::now();
        let r = c.call("dispatch_jobs", json!({}), LONG);
        let n = r.doc.as_array().map_or(0, Vec::len);
        assert_eq!(n, 50.min(s.job_files), "{:.300}", r.doc.to_string());
        if i > 0 {
            list.push(ms(r.at - t0));
        }
    }
    for i in 0..s.status_runs + 1 {
        let t0 = Instant::now();
        let r = c.call("dispatch_status", json!({"job_id": w.some_job}), SHORT);
        assert_eq!(r.doc["status"], "done", "{:.300}", r.doc.to_string());
        let t1 = Instant::now();
        let f = c.call("fetch_result", json!({"ref": w.some_job}), SHORT);
        assert_eq!(f.doc["success"], true, "{:.300}", f.doc.to_string());
        if i > 0 {
            status.push(ms(r.at - t0));
            fetch.push(ms(f.at - t1));
        }
    }
    c.close();

    let mut c = w.start();
    let mut wait = Vec::new();
    for _ in 0..s.wait_runs {
        let r = c.call(
            "dispatch_async",
            json!({"agent": world::WAIT, "task": world::TASK}),
            SHORT,
        );
        let id = r.doc["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", r.doc))
            .to_string();
        let r = c.call(
            "dispatch_wait",
            json!({"job_id": id, "timeout_seconds": 60}),
            SHORT,
        );
        assert_eq!(r.doc["status"], "done", "{:.300}", r.doc.to_string());
        let done = r.doc["completed_at"].as_f64().expect("completed_at");
        wait.push((epoch(r.at) - done) * 1000.0);
    }
    c.close();
    vec![
        row(
            format!("cold start with {files}"),
            Value::Num(up, Unit::Ms),
            Better::Lower,
        ),
        row(
            format!("`dispatch_jobs` (limit 50) over {files}"),
            Value::Num(median(list), Unit::Ms),
            Better::Lower,
        ),
        row(
            format!("`dispatch_status` with {files}"),
            Value::Num(median(status), Unit::Ms),
            Better::Lower,
        ),
        row(
            format!("`fetch_result` with {files}"),
            Value::Num(median(fetch), Unit::Ms),
            Better::Lower,
        ),
        row(
            "`dispatch_wait`: job completion → response",
            Value::Num(median(wait), Unit::Ms),
            Better::Lower,
        ),
    ]
}

fn cancel(w: &World, s: &Sizes) -> Vec<Row> {
    let labels = [
        (
            "cancel a running job: `dispatch_cancel` response",
            Better::Lower,
        ),
        ("cancel a running job: call → child gone", Better::Lower),
    ];
    let mut c = w.start();
    let (mut times, mut replies) = (Vec::new(), Vec::new());
    for _ in 0..s.cancel_runs {
        let before = w.live_children();
        let r = c.call(
            "dispatch_async",
            json!({"agent": world::HANG, "task": world::TASK}),
            SHORT,
        );
        let id = r.doc["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", r.doc))
            .to_string();
        // Running, with its child alive: only then is this the hard case.
        let deadline = Instant::now() + SHORT;
        let pid = loop {
            let st = c.call("dispatch_status", json!({"job_id": id}), SHORT);
            let fresh: Vec<u32> = w
                .live_children()
                .into_iter()
                .filter(|p| !before.contains(p))
                .collect();
            if st.doc["status"] == "running" && fresh.len() == 1 {
                break fresh[0];
            }
            assert!(Instant::now() < deadline, "job never ran: {}", st.doc);
            std::thread::sleep(Duration::from_millis(20));
        };
        let t0 = Instant::now();
        let r = c.call("dispatch_cancel", json!({"job_id": id}), SHORT);
        let outcome = r.doc["outcome"].as_str().unwrap_or("").to_string();
        if outcome == "running" {
            // The reference refuses; end the child we caused ourselves, by its pid.
            // SAFETY: kill(2) on a pid this bench's server spawned and that is still alive.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            c.close();
            return na_rows(&labels, "refuses: a running job cannot be cancelled");
        }
        assert!(outcome.starts_with("cancelled"), "{}", r.doc);
        replies.push(ms(r.at - t0));
        while sys::alive(pid) {
            assert!(t0.elapsed() < SHORT, "child {pid} survived the cancel");
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(ms(t0.elapsed()));
    }
    c.close();
    vec![
        row(
            labels[0].0,
            Value::Num(median(replies), Unit::Ms),
            Better::Lower,
        ),
        row(
            labels[1].0,
            Value::Num(median(times), Unit::Ms),
            Better::Lower,
        ),
    ]
}

fn cli_test(w: &World, s: &Sizes) -> Vec<Row> {
    let cases = [
        ("json, short answer", world::QUICK, false),
        ("stream-json, 2 progress lines", world::STREAM2, true),
        ("json, 1 MiB answer", world::MIB, false),
    ];
    let mut rows = Vec::new();
    for (name, agent, stream) in cases {
        let (mut bare, mut cli) = (Vec::new(), Vec::new());
        for i in 0..s.overhead_runs + 1 {
            let b = time_output(&mut w.bare_fake(agent, stream));
            let mut cmd = w.cli();
            cmd.args(["test", agent, world::TASK]);
            if stream {
                cmd.arg("--stream");
            }
            let t = time_output(&mut cmd);
            if i > 0 {
                bare.push(b);
                cli.push(t);
            }
        }
        let (b, t) = (median(bare), median(cli));
        rows.push(row(
            format!("{name}: bare fake claude"),
            Value::Num(b, Unit::Ms),
            Better::Neither,
        ));
        rows.push(row(
            format!("{name}: `agent-dispatch test`"),
            Value::Num(t, Unit::Ms),
            Better::Lower,
        ));
        rows.push(row(
            format!("{name}: difference"),
            Value::Num(t - b, Unit::Ms),
            Better::Lower,
        ));
    }
    rows
}
