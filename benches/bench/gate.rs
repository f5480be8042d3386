//! The machine gate's figure (`settings.machine_max_concurrency`): what it costs a dispatch, and
//! what handing a slot from one server to another costs.
//!
//! - Cost: the same sequential `dispatch` on a server with the gate off and one with it on
//!   (uncontended: one look at the queue, one slot lock), interleaved call by call in one run;
//!   and one acquire + release timed in this process, which the round trips' noise hides.
//! - Handoff: the same `n` dispatches, all sent at once, serialised through one slot: by one
//!   server's own limiter (`max_concurrency: 1`, a condition variable wakes the next) and by the
//!   gate across two servers (`machine_max_concurrency: 1`; a waiter notices a freed slot at its
//!   next look, ~10 ms later for the head of the queue). The difference per dispatch is the
//!   price of polling.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use agent_dispatch::cancel::Cancel;
use agent_dispatch::gate::MachineGate;

use crate::client::Client;
use crate::stats::{Unit, Value, median, ms};
use crate::workloads::{Better, Row, row};
use crate::world::{self, Server, Sizes, World};

const IN_PROCESS_RUNS: usize = 1000;

pub fn gate(w: &World, s: &Sizes) -> Vec<Row> {
    if w.server != Server::Ours {
        let why = "n/a — no machine-wide gate";
        return [
            "`dispatch`, gate off",
            "`dispatch`, gate on (uncontended)",
            "gate cost per dispatch (difference)",
        ]
        .iter()
        .map(|l| row(*l, Value::Na(why.into()), Better::Lower))
        .collect();
    }
    let mut rows = cost(w, s);
    rows.extend(handoff(w, s));
    rows
}

/// A copy of the world's config in a directory of its own (so each has its own gate), with
/// `max_concurrency` and `machine_max_concurrency` set.
fn config(w: &World, name: &str, local: usize, machine: usize) -> PathBuf {
    let text = std::fs::read_to_string(&w.config).expect("config");
    let (head, agents) = text.split_once("agents:\n").expect("agents section");
    let settings = head
        .lines()
        .filter(|l| !l.trim_start().starts_with("max_concurrency:") && *l != "settings:")
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let path = w.env.root.join("gate-bench").join(name).join("agents.yaml");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("config dir");
    std::fs::write(
        &path,
        format!(
            "settings:\n  max_concurrency: {local}\n  machine_max_concurrency: {machine}\n\
             {settings}agents:\n{agents}"
        ),
    )
    .expect("config");
    path
}

fn dispatch(c: &mut Client, task: &str) -> i64 {
    c.start_call("dispatch", json!({"agent": world::QUICK, "task": task}))
}

fn finish(c: &mut Client, id: i64) -> Instant {
    let r = c.finish_call(id, super::workloads::LONG);
    assert_eq!(r.doc["success"], true, "{:.300}", r.doc.to_string());
    r.at
}

fn cost(w: &World, s: &Sizes) -> Vec<Row> {
    let mut off = w.start_with(&config(w, "off", 4, 0), None);
    let mut on = w.start_with(&config(w, "on", 4, 4), None);
    let (mut t_off, mut t_on) = (Vec::new(), Vec::new());
    for i in 0..s.overhead_runs + 1 {
        let t0 = Instant::now();
        let id = dispatch(&mut off, &format!("off {i}"));
        let a = finish(&mut off, id) - t0;
        let t0 = Instant::now();
        let id = dispatch(&mut on, &format!("on {i}"));
        let b = finish(&mut on, id) - t0;
        // Run 0 warms the page cache and creates the gate's files.
        if i > 0 {
            t_off.push(ms(a));
            t_on.push(ms(b));
        }
    }
    off.close();
    on.close();
    let (a, b) = (median(t_off), median(t_on));
    let gate = MachineGate::new(w.env.root.join("gate-bench").join("in-process"), 4);
    let mut alone = Vec::new();
    for _ in 0..IN_PROCESS_RUNS {
        let t0 = Instant::now();
        let slot = gate.acquire(&Cancel::new(), &mut |_| {}).expect("gate");
        drop(slot);
        alone.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    vec![
        row(
            "`dispatch`, gate off",
            Value::Num(a, Unit::Ms),
            Better::Neither,
        ),
        row(
            "`dispatch`, gate on (uncontended)",
            Value::Num(b, Unit::Ms),
            Better::Lower,
        ),
        row(
            "gate cost per dispatch (difference)",
            Value::Num(b - a, Unit::Ms),
            Better::Lower,
        ),
        row(
            format!("one acquire + release in-process, 4 free slots, µs ({IN_PROCESS_RUNS} runs)"),
            Value::Num(median(alone), Unit::Count),
            Better::Lower,
        ),
    ]
}

/// Sends `n` dispatches spread over `servers` at once and returns the wall time until the last
/// answer.
fn serialised(servers: &mut [Client], n: usize, tag: &str) -> f64 {
    let t0 = Instant::now();
    let k = servers.len();
    let ids: Vec<(usize, i64)> = (0..n)
        .map(|i| (i % k, dispatch(&mut servers[i % k], &format!("{tag} {i}"))))
        .collect();
    let last = ids
        .into_iter()
        .map(|(s, id)| finish(&mut servers[s], id))
        .max()
        .expect("some dispatches");
    ms(last - t0)
}

fn handoff(w: &World, s: &Sizes) -> Vec<Row> {
    let n = s.parallel_concurrency;
    let runs = (s.overhead_runs / 3).max(1);
    let local = config(w, "local-1", 1, 0);
    let machine = config(w, "machine-1", n, 1);
    let mut one = [w.start_with(&local, None)];
    let mut two = [w.start_with(&machine, None), w.start_with(&machine, None)];
    let (mut by_limiter, mut by_gate) = (Vec::new(), Vec::new());
    for i in 0..runs + 1 {
        let a = serialised(&mut one, n, &format!("limiter {i}"));
        let b = serialised(&mut two, n, &format!("gate {i}"));
        if i > 0 {
            by_limiter.push(a);
            by_gate.push(b);
        }
    }
    for c in one.into_iter().chain(two) {
        c.close();
    }
    let (a, b) = (median(by_limiter), median(by_gate));
    let label = format!("{n} dispatches through 1 slot");
    vec![
        row(
            format!("{label}: 1 server, max_concurrency 1, wall"),
            Value::Num(a, Unit::Ms),
            Better::Neither,
        ),
        row(
            format!("{label}: 2 servers, machine_max_concurrency 1, wall"),
            Value::Num(b, Unit::Ms),
            Better::Lower,
        ),
        row(
            format!("{label}: gate handoff per dispatch (difference ÷ {n})"),
            Value::Num((b - a) / n as f64, Unit::Ms),
            Better::Lower,
        ),
    ]
}
