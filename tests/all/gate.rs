//! The machine gate (`settings.machine_max_concurrency`) across real `serve` processes: the cap
//! holds for children of different servers, counted by the fake claude itself (each run keeps a
//! file in `FAKE_CLAUDE_LIVE_DIR` while it lives and logs how many it saw at its start), and a
//! server killed while its child holds a slot gives the slot back.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::mcp::{McpClient, READ_TIMEOUT};
use crate::util::{TestEnv, pid_alive, run, wait_until};
use agent_dispatch::cancel::Cancel;
use agent_dispatch::gate::{MachineGate, Status};

const LONG: Duration = Duration::from_secs(120);

fn config(env: &TestEnv, slots: usize) {
    let dir = env.project("alpha");
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\nsettings:\n  max_concurrency: 5\n  \
         machine_max_concurrency: {slots}\n  cache:\n    enabled: false\n",
        dir.display()
    ));
}

/// Where the servers of `env` keep the gate (`AGENT_DISPATCH_STATE_DIR`, set by `server`).
fn state_dir(env: &TestEnv) -> PathBuf {
    env.root.join("state")
}

fn gate_status(env: &TestEnv, slots: usize) -> Status {
    MachineGate::new(state_dir(env).join("gate"), slots)
        .status()
        .unwrap()
}

fn server(env: &TestEnv, step: Value, live_dir: Option<&Path>) -> McpClient {
    let mut c = McpClient::start_with(env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", step.to_string())
            .env("AGENT_DISPATCH_STATE_DIR", state_dir(env));
        if let Some(d) = live_dir {
            cmd.env("FAKE_CLAUDE_LIVE_DIR", d);
        }
    });
    c.initialize("2025-11-25");
    c
}

fn dispatch(c: &mut McpClient, task: &str) -> i64 {
    c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": task}}),
    )
}

fn succeeded(c: &mut McpClient, id: i64) -> Value {
    let (doc, is_error) = McpClient::tool_payload(&c.response_for(&json!(id), LONG));
    assert!(!is_error && doc["success"] == true, "{doc}");
    doc
}

#[test]
fn four_servers_never_run_more_children_than_the_machine_slots() {
    let env = TestEnv::new("gate-cap");
    config(&env, 3);
    let live = env.root.join("live");
    std::fs::create_dir_all(&live).unwrap();
    // Long enough that, without the gate, the 12 runs would overlap far beyond 3.
    let step = json!({"sleep": 0.5, "result": "ok"});
    let mut servers: Vec<McpClient> = (0..4)
        .map(|_| server(&env, step.clone(), Some(&live)))
        .collect();
    // 3 each, all sent before any answer is read: 12 dispatches in flight at once, and each
    // server alone (max_concurrency 5) would start all 3 of its own.
    let mut pending = Vec::new();
    for round in 0..3 {
        for (s, c) in servers.iter_mut().enumerate() {
            pending.push((s, dispatch(c, &format!("task {s}.{round}"))));
        }
    }
    for (s, id) in pending {
        succeeded(&mut servers[s], id);
    }
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 12, "every dispatch ran once");
    let peak = runs.iter().filter_map(|r| r["live"].as_u64()).max();
    assert!(
        peak.is_some_and(|p| (1..=3).contains(&p)),
        "children alive at once: {peak:?}"
    );
    let status = gate_status(&env, 3);
    assert_eq!((status.in_use, status.waiting), (0, 0));
    assert!(
        state_dir(&env).join("gate").join("slot-0.lock").exists(),
        "the gate lives in AGENT_DISPATCH_STATE_DIR"
    );
}

#[test]
fn a_server_killed_while_holding_the_slot_frees_it_for_another_server() {
    let env = TestEnv::new("gate-kill");
    config(&env, 1);
    let mut holder = server(&env, json!({"hang": true}), None);
    let mut other = server(&env, json!({"result": "after the holder"}), None);

    let _never_answered = dispatch(&mut holder, "hold the only slot");
    assert!(wait_until(LONG, || env.claude_runs().len() == 1));
    let holder_child = env.claude_runs()[0]["pid"].as_i64().unwrap();
    assert_eq!(gate_status(&env, 1).in_use, 1);

    // The other server queues a sync dispatch and an async job for the one slot.
    let waiting = dispatch(&mut other, "wait for the slot");
    assert!(wait_until(LONG, || gate_status(&env, 1).waiting == 1));
    // The sync caller is told why it waits (no response can arrive before the holder dies,
    // so reading messages here loses none).
    let told = |c: &McpClient| {
        c.notifications.iter().any(|n| {
            n["params"]["data"]
                .as_str()
                .is_some_and(|d| d.contains("[alpha] waiting for a machine slot: 1 of 1 in use"))
        })
    };
    assert!(wait_until(LONG, || {
        other.next_message(Duration::from_millis(50));
        told(&other)
    }));
    let (job, is_error) = other.call(
        "dispatch_async",
        json!({"agent": "alpha", "task": "queued job"}),
    );
    assert!(!is_error, "{job}");
    let job_id = job["job_id"].as_str().unwrap().to_string();
    // The job says where it stands while it waits, and stays pending.
    let mut status = Value::Null;
    assert!(wait_until(LONG, || {
        status = other.call("dispatch_status", json!({"job_id": job_id})).0;
        status["progress"].as_array().is_some_and(|p| {
            p.iter().any(|l| {
                l.as_str()
                    .is_some_and(|l| l.contains("waiting for a machine slot"))
            })
        })
    }));
    assert_eq!(status["status"], "pending", "{status}");
    assert_eq!(env.claude_runs().len(), 1, "nothing started past the gate");

    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    // Its child dies with it, and its slot goes to the other server's two runs in turn.
    assert!(wait_until(LONG, || !pid_alive(holder_child)));
    let doc = succeeded(&mut other, waiting);
    assert_eq!(doc["result"], "after the holder");
    let (done, _) = other.call(
        "dispatch_wait",
        json!({"job_id": job_id, "timeout_seconds": READ_TIMEOUT.as_secs() / 2}),
    );
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(env.claude_runs().len(), 3);
    assert!(wait_until(LONG, || gate_status(&env, 1).in_use == 0));
}

#[test]
fn the_cli_waits_for_a_slot_and_doctor_shows_the_slots() {
    let env = TestEnv::new("gate-cli");
    config(&env, 1);
    let cli = |args: &[&str]| {
        let mut c = env.cmd();
        c.args(args)
            .env("AGENT_DISPATCH_STATE_DIR", state_dir(&env))
            .env("FAKE_CLAUDE_STEP", json!({"result": "cli ran"}).to_string());
        c
    };
    let doctor = run(&mut cli(&["doctor"]));
    assert!(
        doctor.stdout.contains("Machine gate: 0 of 1 slots in use"),
        "{}",
        doctor.stdout
    );
    // This test process holds the only slot, as another server's child would.
    let gate = MachineGate::new(state_dir(&env).join("gate"), 1);
    let slot = gate.acquire(&Cancel::new(), &mut |_| {}).unwrap().unwrap();
    let doctor = run(&mut cli(&["doctor"]));
    assert!(
        doctor.stdout.contains("Machine gate: 1 of 1 slots in use"),
        "{}",
        doctor.stdout
    );
    let test = cli(&["test", "alpha", "hello"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(LONG, || gate_status(&env, 1).waiting == 1));
    // (`doctor` ran `claude mcp list`; the fake logs that too.)
    let dispatched = || {
        env.claude_runs()
            .iter()
            .filter(|r| r["argv"][0] == "-p")
            .count()
    };
    assert_eq!(dispatched(), 0, "nothing started past the gate");
    drop(slot);
    let out = test.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("cli ran"), "{stdout}");
    assert!(
        stderr.contains("[alpha] waiting for a machine slot: 1 of 1 in use, 0 waiting ahead"),
        "{stderr}"
    );
    assert_eq!(dispatched(), 1);
}

#[test]
fn a_dispatch_from_inside_a_dispatched_agent_passes_the_gate() {
    let env = TestEnv::new("gate-nested");
    config(&env, 1);
    // The ancestor's child holds the only slot; a server it started (depth 1) must not wait
    // for it, or N agents dispatching once more would deadlock on their own slots.
    let gate = MachineGate::new(state_dir(&env).join("gate"), 1);
    let _ancestor = gate.acquire(&Cancel::new(), &mut |_| {}).unwrap().unwrap();
    let mut nested = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", json!({"result": "nested"}).to_string())
            .env("AGENT_DISPATCH_STATE_DIR", state_dir(&env))
            .env("AGENT_DISPATCH_DEPTH", "1");
    });
    nested.initialize("2025-11-25");
    let id = dispatch(&mut nested, "from inside an agent");
    assert_eq!(succeeded(&mut nested, id)["result"], "nested");
    assert_eq!(env.claude_runs()[0]["depth"], "2");
}

#[test]
fn stats_shows_the_slots_in_use() {
    let env = TestEnv::new("gate-stats");
    config(&env, 2);
    let gate = MachineGate::new(state_dir(&env).join("gate"), 2);
    let held = gate.acquire(&Cancel::new(), &mut |_| {}).unwrap().unwrap();
    let stats = |json: bool| {
        let mut c = env.cmd();
        c.arg("stats")
            .env("AGENT_DISPATCH_STATE_DIR", state_dir(&env));
        if json {
            c.arg("--json");
        }
        run(&mut c)
    };
    let out = stats(false);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("Machine gate: 1 of 2 slots in use, 0 waiting\n"),
        "{}",
        out.stdout
    );
    let out = stats(true);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        doc["machine_gate"],
        json!({"in_use": 1, "configured": 2, "waiting": 0})
    );
    drop(held);
}
