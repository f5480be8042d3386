//! Figures for hostile clients and children (issue 12): peak RSS of a server whose client stops
//! reading while many chatty streams run, the time it then takes to exit on SIGTERM with its
//! stdout still blocked, and peak RSS while a child floods stdout.

use std::io::Write;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::stats::{Unit, Value};
use crate::sys;
use crate::workloads::{Better, Row};
use crate::world::{self, Server, Sizes, World};

/// The references have no such bounds: a 2 GiB flood or a 30 s stall would take gigabytes of
/// this shared machine, so these figures run against ours only.
const OURS_ONLY: &str = "not run: unbounded in the reference";

fn not_run(labels: &[String]) -> Vec<Row> {
    labels
        .iter()
        .map(|l| row(l.clone(), Value::Na(OURS_ONLY.into()), Better::Lower))
        .collect()
}

const LONG: Duration = Duration::from_secs(600);

fn row(label: String, value: Value, better: Better) -> Row {
    Row {
        label,
        value,
        better,
    }
}

/// `stall_calls` `dispatch_stream` calls to a chatty agent, and a client that reads nothing for
/// `stall_secs`; then SIGTERM while stdout is still blocked.
pub fn stalled_client(w: &World, s: &Sizes) -> Vec<Row> {
    let what = format!(
        "{} chatty `dispatch_stream` calls, client not reading for {} s",
        s.stall_calls, s.stall_secs
    );
    let labels = [
        format!("{what}: server peak RSS"),
        format!("{what}: SIGTERM → exit with stdout blocked"),
    ];
    if w.server != Server::Ours {
        return not_run(&labels);
    }
    let mut cmd = w.serve_cmd(&w.config_wide, None);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("spawn serve");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin");
    // Held, never read, until the server is gone.
    let stdout = child.stdout.take();
    let calls = s.stall_calls;
    let feeder = thread::spawn(move || {
        let mut send = |v: serde_json::Value| {
            let mut l = serde_json::to_vec(&v).expect("json");
            l.push(b'\n');
            stdin.write_all(&l).is_ok()
        };
        send(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "bench", "version": "0"}}}));
        send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        for i in 1..=calls {
            let ok = send(json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "dispatch_stream",
                           "arguments": {"agent": world::CHATTY, "task": world::TASK},
                           "_meta": {"progressToken": i}}}));
            if !ok {
                return;
            }
        }
        // Keep stdin open: the client is slow, not gone.
        thread::sleep(Duration::from_secs(3600));
    });
    drop(feeder);
    thread::sleep(Duration::from_secs_f64(s.stall_secs));
    let peak = sys::peak_rss_mib(pid);
    let t0 = Instant::now();
    // SAFETY: signalling the child we spawned.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = t0 + Duration::from_secs(60);
    let mut exit = Value::Na("still running after 60 s".into());
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            exit = Value::Num(t0.elapsed().as_secs_f64(), Unit::S);
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(stdout);
    let [rss_label, exit_label] = labels;
    vec![
        row(rss_label, Value::Num(peak, Unit::Mib), Better::Lower),
        row(exit_label, exit, Better::Lower),
    ]
}

/// A child that floods stdout: non-JSON in json mode, one endless line in stream mode.
pub fn flood(w: &World, s: &Sizes) -> Vec<Row> {
    let mut rows = Vec::new();
    let cases = [
        (
            world::FLOOD,
            "dispatch",
            format!("{} MiB of non-JSON (json mode)", s.flood_mib),
        ),
        (
            world::ENDLESS,
            "dispatch_stream",
            "one endless line (stream mode)".to_string(),
        ),
    ];
    for (agent, tool, what) in cases {
        let labels = [
            format!("{what}: server peak RSS"),
            format!("{what}: wall until the error"),
        ];
        if w.server != Server::Ours {
            rows.extend(not_run(&labels));
            continue;
        }
        let mut c = w.start();
        let t0 = Instant::now();
        let r = c.call(tool, json!({"agent": agent, "task": world::TASK}), LONG);
        let wall = (r.at - t0).as_secs_f64();
        let peak = sys::peak_rss_mib(c.pid());
        c.close();
        rows.push(row(
            format!("{what}: server peak RSS"),
            Value::Num(peak, Unit::Mib),
            Better::Lower,
        ));
        rows.push(row(
            format!("{what}: wall until the error"),
            Value::Num(wall, Unit::S),
            Better::Lower,
        ));
    }
    rows
}
