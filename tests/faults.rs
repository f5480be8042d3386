//! Fault injection through the real binary, as a client would meet it: misbehaving children
//! (hangs, ignored SIGTERM, crashes, floods, garbage, huge output), a server killed mid-work,
//! several processes editing the same files, failing saves, fuzzed JSON-RPC and hostile values.
//! Every case checks that the server keeps answering, the caller gets a clear error, nothing is
//! lost, and no child, grandchild or zombie is left behind. `make test-faults` runs only this.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::TestEnv;
use util::mcp::McpClient;

// ---------------------------------------------------------------------------------------------
// Process inspection: what is left after a case.

/// (state, ppid, pgid) of a process from /proc, or None when it no longer exists.
fn proc_stat(pid: i64) -> Option<(char, i64, i64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgid = f.next()?.parse().ok()?;
    Some((state, ppid, pgid))
}

fn all_pids() -> Vec<i64> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process whose parent is `pid`, with its state (zombies included). The kernel here has
/// no `/proc/<pid>/task/*/children`, so this scans /proc.
fn children_of(pid: i64) -> Vec<(i64, char)> {
    all_pids()
        .into_iter()
        .filter_map(|p| match proc_stat(p) {
            Some((state, ppid, _)) if ppid == pid => Some((p, state)),
            _ => None,
        })
        .collect()
}

/// Live (non-zombie) members of a process group.
fn live_group_members(pgid: i64) -> Vec<i64> {
    all_pids()
        .into_iter()
        .filter(|&p| matches!(proc_stat(p), Some((s, _, g)) if g == pgid && s != 'Z' && s != 'X'))
        .collect()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Asserts that every child the fake claude logged is gone with its whole process group, and
/// that `server` (when given) has no children at all: neither live ones nor unreaped zombies.
/// Orphaned grandchildren are re-parented to PID 1; in this sandbox PID 1 does not reap, so a
/// killed grandchild may linger as a zombie of PID 1. That is dead, and not ours to reap, so
/// only "alive" (running or sleeping) counts for them.
fn assert_no_leftovers(env: &TestEnv, server: Option<u32>) {
    for run in env.claude_runs() {
        let pid = run["pid"].as_i64().unwrap();
        let pgid = run["pgid"].as_i64().unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || !util::pid_alive(pid)),
            "child {pid} survived"
        );
        if let Some(g) = run["grandchild_pid"].as_i64() {
            assert!(
                wait_until(Duration::from_secs(5), || !util::pid_alive(g)),
                "grandchild {g} survived"
            );
        }
        assert!(
            wait_until(Duration::from_secs(5), || live_group_members(pgid)
                .is_empty()),
            "process group {pgid} still has members: {:?}",
            live_group_members(pgid)
        );
    }
    if let Some(server) = server {
        let server = i64::from(server);
        assert!(
            wait_until(Duration::from_secs(5), || children_of(server).is_empty()),
            "server {server} still has children (Z = zombie): {:?}",
            children_of(server)
        );
    }
}

/// The server answers `ping` promptly.
fn assert_answers(c: &mut McpClient) {
    let id = c.request("ping", json!({}));
    let r = c.response_for(&json!(id), Duration::from_secs(10));
    assert_eq!(r["result"], json!({}), "{r}");
}

// ---------------------------------------------------------------------------------------------
// Set-up.

/// A config with agent `alpha` whose own timeout is `timeout` seconds (MCP clamps a per-call
/// `timeout_seconds` to at least 10 s, but the agent's configured timeout may be small).
fn one_agent(env: &TestEnv, timeout: u64) {
    let a = env.project("alpha");
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\n    timeout: {timeout}\n",
        a.display()
    ));
}

fn client(env: &TestEnv, step: &Value) -> McpClient {
    let mut c = McpClient::start_with(env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", step.to_string());
    });
    c.initialize("2025-11-25");
    c
}

/// Calls `tool` and returns the payload and how long the call took.
fn timed_call(c: &mut McpClient, tool: &str, args: Value) -> (Value, Duration) {
    let started = Instant::now();
    let id = c.request("tools/call", json!({"name": tool, "arguments": args}));
    let resp = c.response_for(&json!(id), Duration::from_secs(60));
    (McpClient::tool_payload(&resp).0, started.elapsed())
}

/// A document cut short enough for an assertion message.
fn brief(doc: &Value) -> String {
    let s = doc.to_string();
    match s.char_indices().nth(400) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s,
    }
}

fn error_text(doc: &Value) -> &str {
    doc["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error text in {doc}"))
}

// ---------------------------------------------------------------------------------------------
// Misbehaving children.

const MODES: [&str; 2] = ["dispatch", "dispatch_stream"];

/// Runs one dispatch per output mode against a fresh server whose child behaves as `step`, checks
/// each answer with `check`, then that nothing is left and the server still answers.
fn each_mode(name: &str, timeout: u64, step: Value, check: impl Fn(&str, &Value, Duration)) {
    let env = TestEnv::new(name);
    one_agent(&env, timeout);
    let mut c = client(&env, &step);
    for tool in MODES {
        let (doc, took) = timed_call(&mut c, tool, json!({"agent": "alpha", "task": "t"}));
        check(tool, &doc, took);
        assert_eq!(doc["agent"], "alpha", "{tool}: {doc}");
    }
    assert_eq!(env.claude_runs().len(), MODES.len());
    assert_no_leftovers(&env, Some(c.child.id()));
    assert_answers(&mut c);
}

#[test]
fn hung_child_is_killed_at_the_agent_timeout_with_its_group() {
    each_mode(
        "f-hang",
        1,
        json!({"sleep": 3600, "grandchild": true}),
        |tool, doc, took| {
            assert_eq!(doc["success"], false, "{tool}: {doc}");
            assert_eq!(doc["error_type"], "timeout", "{tool}: {doc}");
            assert!(
                error_text(doc).starts_with("Agent 'alpha' timed out after 1s."),
                "{tool}: {doc}"
            );
            // A timeout stays resumable.
            assert!(doc["session_id"].is_string(), "{tool}: {doc}");
            assert!(
                took >= Duration::from_secs(1) && took < Duration::from_secs(4),
                "{tool}: {took:?}"
            );
        },
    );
}

#[test]
fn child_that_answers_then_hangs_keeps_the_answer_and_is_stopped() {
    each_mode(
        "f-linger",
        1,
        json!({"hang": true, "grandchild": true, "result": "the answer"}),
        |tool, doc, took| {
            assert_eq!(doc["success"], true, "{tool}: {doc}");
            assert_eq!(doc["result"], "the answer");
            assert!(
                doc["hint"].as_str().unwrap().contains("still running"),
                "{tool}: {doc}"
            );
            assert!(took < Duration::from_secs(4), "{tool}: {took:?}");
        },
    );
}

#[test]
fn child_ignoring_sigterm_gets_sigkill() {
    let env = TestEnv::new("f-noterm");
    one_agent(&env, 1);
    let mut c = client(
        &env,
        &json!({"ignore_term": true, "sleep": 3600, "grandchild": true}),
    );
    for tool in MODES {
        let before = env.claude_runs().len();
        let started = Instant::now();
        let id = c.request(
            "tools/call",
            json!({"name": tool, "arguments": {"agent": "alpha", "task": "t"}}),
        );
        assert!(wait_until(Duration::from_secs(5), || env
            .claude_runs()
            .len()
            > before));
        let run = env.claude_runs()[before].clone();
        // The fault is real: both processes have SIGTERM (bit 15 → mask 0x4000) ignored.
        for key in ["pid", "grandchild_pid"] {
            let pid = run[key].as_i64().unwrap();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let ign = status
                .lines()
                .find_map(|l| l.strip_prefix("SigIgn:"))
                .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
                .unwrap();
            assert_ne!(
                ign & (1 << (libc::SIGTERM - 1)),
                0,
                "{key} does not ignore SIGTERM"
            );
        }
        let (doc, _) =
            McpClient::tool_payload(&c.response_for(&json!(id), Duration::from_secs(20)));
        let took = started.elapsed();
        assert_eq!(doc["error_type"], "timeout", "{tool}: {doc}");
        assert!(took < Duration::from_secs(4), "{tool}: {took:?}");
        for key in ["pid", "grandchild_pid"] {
            let pid = run[key].as_i64().unwrap();
            assert!(
                !util::pid_alive(pid),
                "{tool}: {key} {pid} outlived the response"
            );
        }
    }
    assert_no_leftovers(&env, Some(c.child.id()));
    assert_answers(&mut c);
}

#[test]
fn crashing_child_gives_a_clear_error() {
    // Killed by SIGSEGV after half a line of output.
    each_mode(
        "f-segv",
        30,
        json!({"stdout_raw": "{\"type\":\"sys", "signal": libc::SIGSEGV}),
        |tool, doc, _| {
            assert_eq!(doc["success"], false, "{tool}: {doc}");
            assert_eq!(doc["error_type"], "cli_error", "{tool}: {doc}");
            let expected = if tool == "dispatch" {
                // SPEC §5.6 item 2: non-JSON output with a failing exit is the error text.
                "{\"type\":\"sys"
            } else {
                "No result received (exit code -11)"
            };
            assert_eq!(error_text(doc), expected, "{tool}: {doc}");
        },
    );
    // Killed outright with nothing on stdout or stderr.
    each_mode(
        "f-kill9",
        30,
        json!({"stdout_raw": "", "signal": libc::SIGKILL}),
        |tool, doc, _| {
            assert_eq!(doc["success"], false, "{tool}: {doc}");
            let expected = if tool == "dispatch" {
                "claude exited with code -9"
            } else {
                "No result received (exit code -9)"
            };
            assert_eq!(error_text(doc), expected, "{tool}: {doc}");
        },
    );
    // A clean failing exit with a message on stderr.
    each_mode(
        "f-exit2",
        30,
        json!({"stdout_raw": "", "exit": 2, "stderr": "fatal: boom\n"}),
        |tool, doc, _| {
            assert_eq!(doc["success"], false, "{tool}: {doc}");
            assert_eq!(error_text(doc), "fatal: boom", "{tool}: {doc}");
        },
    );
}

/// Peak resident memory of a process in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn stderr_flood_is_drained_and_bounded() {
    const FLOOD: u64 = 20_000_000;
    for (name, step) in [
        (
            "f-flood-ok",
            json!({"stderr_bytes": FLOOD, "result": "fine"}),
        ),
        (
            "f-flood-fail",
            json!({"stderr_bytes": FLOOD, "stdout_raw": "", "exit": 1}),
        ),
    ] {
        let env = TestEnv::new(name);
        one_agent(&env, 30);
        let mut c = client(&env, &step);
        for tool in MODES {
            let (doc, took) = timed_call(&mut c, tool, json!({"agent": "alpha", "task": "t"}));
            assert!(took < Duration::from_secs(20), "{tool}: {took:?}");
            if step.get("result").is_some() {
                assert_eq!(doc["success"], true, "{tool}");
                assert_eq!(doc["result"], "fine");
            } else {
                assert_eq!(doc["success"], false, "{tool}");
                // Only the tail of stderr is kept, not 20 MB.
                let e = error_text(&doc);
                assert!(
                    e.starts_with("eeee") && e.len() <= 64 * 1024,
                    "{tool}: {} bytes",
                    e.len()
                );
            }
        }
        // 40 MB went through the server's pipes; it held only a bounded tail of them.
        let peak = peak_rss_kib(c.child.id());
        assert!(peak < 100 * 1024, "server peak RSS {peak} KiB");
        assert_no_leftovers(&env, Some(c.child.id()));
        assert_answers(&mut c);
    }
}

#[test]
fn garbage_truncated_and_invalid_utf8_output() {
    let truncated = "{\"type\":\"system\",\"subtype\":\"init\"}\n{\"type\":\"assistant\",\"message\":{\"role\":\"ass";
    // Plain text on stdout: the json mode takes it as the answer (SPEC §5.6 item 2), the stream
    // mode finds no result event.
    each_mode(
        "f-garbage",
        30,
        json!({"stdout_raw": "this is not json\n<html>\n"}),
        |tool, doc, _| {
            if tool == "dispatch" {
                assert_eq!(doc["success"], true, "{doc}");
                assert_eq!(doc["result"], "this is not json\n<html>");
            } else {
                assert_eq!(doc["success"], false, "{doc}");
                assert_eq!(error_text(doc), "No result received (exit code 0)");
            }
        },
    );
    each_mode(
        "f-garbage-fail",
        30,
        json!({"stdout_raw": "\u{1b}[31mgarbage\u{0}\n", "exit": 3}),
        |tool, doc, _| {
            assert_eq!(doc["success"], false, "{tool}: {doc}");
            assert!(!error_text(doc).is_empty(), "{tool}: {doc}");
        },
    );
    each_mode(
        "f-trunc",
        30,
        json!({"stdout_raw": truncated}),
        |tool, doc, _| {
            if tool == "dispatch" {
                assert_eq!(doc["result"], truncated, "{doc}");
            } else {
                assert_eq!(doc["success"], false, "{doc}");
                assert_eq!(error_text(doc), "No result received (exit code 0)");
            }
        },
    );
    // A result event whose text holds bytes that are not UTF-8 (é in Latin-1, then 0xff).
    let mut raw =
        br#"{"type":"result","subtype":"success","is_error":false,"result":"caf"#.to_vec();
    raw.extend_from_slice(b"\xe9 \xff\"}\n");
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    each_mode("f-utf8", 30, json!({"stdout_hex": hex}), |tool, doc, _| {
        assert_eq!(doc["success"], true, "{tool}: {doc}");
        assert_eq!(doc["result"], "caf\u{fffd} \u{fffd}", "{tool}: {doc}");
    });
}

#[test]
fn fifty_megabyte_result_arrives_whole() {
    let env = TestEnv::new("f-huge");
    one_agent(&env, 60);
    let mut c = client(&env, &json!({"huge_mb": 50}));
    let (doc, took) = timed_call(&mut c, "dispatch", json!({"agent": "alpha", "task": "t"}));
    assert_eq!(doc["success"], true, "{}", brief(&doc));
    let text = doc["result"].as_str().unwrap();
    assert_eq!(text.len(), 50 * 1024 * 1024);
    assert!(text.bytes().all(|b| b == b'x' || b == b'\n'));
    assert!(took < Duration::from_secs(40), "{took:?}");
    // The same answer by reference: a short summary now, all of it on request.
    let (doc, _) = timed_call(
        &mut c,
        "dispatch",
        json!({"agent": "alpha", "task": "u", "return_ref": true, "summary_chars": 10}),
    );
    assert_eq!(doc["summary"], "xxxxxxxxxx", "{}", brief(&doc));
    assert_eq!(doc["size"], 50 * 1024 * 1024);
    let (full, _) = timed_call(
        &mut c,
        "fetch_result",
        json!({"ref": doc["ref"], "max_chars": 1000}),
    );
    assert_eq!(full["truncated"], true);
    assert_eq!(full["result"].as_str().unwrap().len(), 1000);
    assert_no_leftovers(&env, Some(c.child.id()));
    assert_answers(&mut c);
}

// ---------------------------------------------------------------------------------------------
// A server killed mid-work.

fn sigkill(c: &mut McpClient) {
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(c.child.id() as i32, libc::SIGKILL) };
    let _ = c.child.wait();
}

#[test]
fn server_killed_mid_async_job_leaves_jobs_accounted_for_and_config_intact() {
    let env = TestEnv::new("f-kill-async");
    one_agent(&env, 600);
    // One slot: the second job is still queued (pending) when the server dies.
    let yaml = env.read_config() + "settings:\n  max_concurrency: 1\n";
    env.write_config(&yaml);
    let mut doomed = client(&env, &json!({"sleep": 3600, "grandchild": true}));
    let mut ids = Vec::new();
    for task in ["running one", "queued one"] {
        let (doc, _) = timed_call(
            &mut doomed,
            "dispatch_async",
            json!({"agent": "alpha", "task": task}),
        );
        ids.push(doc["job_id"].as_str().unwrap().to_string());
    }
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let (doc, _) = timed_call(&mut doomed, "dispatch_status", json!({"job_id": ids[1]}));
    assert_eq!(doc["status"], "pending", "{doc}");
    let run = env.claude_runs()[0].clone();
    sigkill(&mut doomed);
    assert_eq!(env.read_config(), yaml, "config changed by a crash");
    // The child dies with its server at once, before anyone else looks.
    let pid = run["pid"].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(2), || !util::pid_alive(pid)),
        "claude outlived its SIGKILLed server"
    );

    // The next server accounts for both jobs and kills the recorded group's leftovers.
    let mut fresh = client(&env, &json!({}));
    let expected = [
        ("running", "exited before it finished"),
        ("pending", "exited before it started"),
    ];
    for (id, (state, words)) in ids.iter().zip(expected) {
        let (doc, _) = timed_call(&mut fresh, "dispatch_status", json!({"job_id": id}));
        assert_eq!(doc["status"], "failed", "{doc}");
        let e = error_text(&doc);
        assert!(
            e.starts_with(&format!("Abandoned in '{state}'")) && e.contains(words),
            "{doc}"
        );
    }
    let (jobs, _) = timed_call(&mut fresh, "dispatch_jobs", json!({}));
    assert_eq!(jobs.as_array().unwrap().len(), 2, "{jobs}");
    assert_no_leftovers(&env, Some(fresh.child.id()));
    assert_eq!(env.read_config(), yaml);
    assert_eq!(env.claude_runs().len(), 1, "the queued job never started");
    assert_answers(&mut fresh);
}

#[test]
fn server_killed_mid_dispatch_takes_its_child_along() {
    let env = TestEnv::new("f-kill-sync");
    one_agent(&env, 600);
    let yaml = env.read_config();
    let mut doomed = client(&env, &json!({"sleep": 3600, "grandchild": true}));
    doomed.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "t"}}),
    );
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let run = env.claude_runs()[0].clone();
    sigkill(&mut doomed);
    assert_eq!(env.read_config(), yaml, "config changed by a crash");
    let pid = run["pid"].as_i64().unwrap();
    assert!(
        wait_until(Duration::from_secs(2), || !util::pid_alive(pid)),
        "claude outlived its SIGKILLed server"
    );
    // A synchronous dispatch leaves no record on disk, so a grandchild that ignores the EOF
    // on its stdin (a real claude's MCP servers exit on it; the fake's `sleep` does not) cannot
    // be found by a later server. Clean it up here rather than leak it into CI.
    let grandchild = run["grandchild_pid"].as_i64().unwrap();
    // SAFETY: kill(2) on the `sleep` this test's fake started.
    unsafe { libc::kill(grandchild as i32, libc::SIGKILL) };
    let mut fresh = client(&env, &json!({}));
    assert_answers(&mut fresh);
    let (doc, _) = timed_call(&mut fresh, "list_agents", json!({}));
    assert_eq!(doc[0]["name"], "alpha");
    assert_no_leftovers(&env, Some(fresh.child.id()));
}
