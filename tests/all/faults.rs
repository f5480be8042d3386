//! Fault injection through the real binary, as a client would meet it: misbehaving children
//! (hangs, ignored SIGTERM, crashes, floods, garbage, huge output), a server killed mid-work,
//! several processes editing the same files, failing saves, fuzzed JSON-RPC and hostile values.
//! Every case checks that the server keeps answering, the caller gets a clear error, nothing is
//! lost, and no child, grandchild or zombie is left behind. `make test-faults` runs only this.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::mcp::McpClient;
use crate::util::{TestEnv, wait_until};
use serde_json::{Value, json};

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
            wait_until(Duration::from_secs(5), || !crate::util::pid_alive(pid)),
            "child {pid} survived"
        );
        if let Some(g) = run["grandchild_pid"].as_i64() {
            assert!(
                wait_until(Duration::from_secs(5), || !crate::util::pid_alive(g)),
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

/// Calls `tool` and returns the payload and how long the call took. The response deadline only
/// catches a hang, so it leaves room for a loaded 2-core machine.
fn timed_call(c: &mut McpClient, tool: &str, args: Value) -> (Value, Duration) {
    let started = Instant::now();
    let id = c.request("tools/call", json!({"name": tool, "arguments": args}));
    let resp = c.response_for(&json!(id), Duration::from_secs(300));
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
            // Not killed before its time; how soon after is make bench's business.
            assert!(took >= Duration::from_secs(1), "{tool}: {took:?}");
        },
    );
}

#[test]
fn child_that_answers_then_hangs_keeps_the_answer_and_is_stopped() {
    each_mode(
        "f-linger",
        1,
        json!({"hang": true, "grandchild": true, "result": "the answer"}),
        |tool, doc, _| {
            assert_eq!(doc["success"], true, "{tool}: {doc}");
            assert_eq!(doc["result"], "the answer");
            assert!(
                doc["hint"].as_str().unwrap().contains("still running"),
                "{tool}: {doc}"
            );
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
            McpClient::tool_payload(&c.response_for(&json!(id), Duration::from_secs(60)));
        assert_eq!(doc["error_type"], "timeout", "{tool}: {doc}");
        for key in ["pid", "grandchild_pid"] {
            let pid = run[key].as_i64().unwrap();
            assert!(
                !crate::util::pid_alive(pid),
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
            let (doc, _) = timed_call(&mut c, tool, json!({"agent": "alpha", "task": "t"}));
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
    let (doc, _) = timed_call(&mut c, "dispatch", json!({"agent": "alpha", "task": "t"}));
    assert_eq!(doc["success"], true, "{}", brief(&doc));
    let text = doc["result"].as_str().unwrap();
    assert_eq!(text.len(), 50 * 1024 * 1024);
    assert!(text.bytes().all(|b| b == b'x' || b == b'\n'));
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
        wait_until(Duration::from_secs(2), || !crate::util::pid_alive(pid)),
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
        wait_until(Duration::from_secs(2), || !crate::util::pid_alive(pid)),
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

// ---------------------------------------------------------------------------------------------
// Fuzzed JSON-RPC.

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "Z", "0", " ", "-", "--", "..", "/", "\\", "\"", "'", "{", "}", "[", "]", ":",
            ",", "é", "日本", "🦀", "\u{0}", "\u{7f}", "\u{feff}", "\u{202e}", "\t", "\r", "%2f",
            "~", "$HOME", "`", "alpha", "ghost", "-p", "--model", "null",
        ];
        (0..self.below(12)).map(|_| *self.pick(PIECES)).collect()
    }

    /// Any JSON value, nested at most `depth` deep.
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 7 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(*self.pick(&[0i64, -1, 1, i64::MAX, i64::MIN, 42, 9_007_199_254_740_993])),
            3 => json!(*self.pick(&[0.5f64, -0.0, 1e308, -1e308, 3.25, 1e-300])),
            4 => json!(u64::MAX),
            5 | 6 => json!(self.text()),
            7 => Value::Array((0..self.below(4)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut m = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    m.insert(self.text(), self.value(depth - 1));
                }
                Value::Object(m)
            }
        }
    }
}

/// Tools that answer without spawning anything in a config with no agents.
const CHEAP_TOOLS: &[&str] = &[
    "list_agents",
    "inspect_agent",
    "cache_stats",
    "dispatch_jobs",
    "dispatch_status",
    "fetch_result",
    "dispatch_cancel",
    "dispatch",
    "dispatch_stream",
    "dispatch_session",
    "dispatch_async",
    "dispatch_parallel",
    "dispatch_wait",
    "no_such_tool",
    "-rf",
];

fn tool_args(rng: &mut Rng) -> Value {
    let mut args = serde_json::Map::new();
    let keys = [
        "agent",
        "task",
        "name",
        "job_id",
        "ref",
        "status",
        "limit",
        "timeout_seconds",
        "session_id",
        "dispatches",
        "preview_lines",
        "max_chars",
        "caller",
        "goal",
    ];
    for _ in 0..rng.below(5) {
        let k = *rng.pick(&keys);
        let v = match rng.below(4) {
            0 => json!("ghost"),
            1 => json!(format!("{:032x}", rng.next())),
            2 => json!(format!(
                "[{{\"agent\":\"ghost\",\"task\":\"{}\"}}]",
                rng.below(9)
            )),
            _ => rng.value(2),
        };
        args.insert(k.to_string(), v);
    }
    Value::Object(args)
}

fn request(rng: &mut Rng, id: Value) -> Value {
    let (method, params) = match rng.below(20) {
        0..=5 => ("ping", json!({})),
        6..=11 => (
            "tools/call",
            json!({"name": rng.pick(CHEAP_TOOLS), "arguments": tool_args(rng)}),
        ),
        12 => ("tools/list", json!({})),
        13 => (
            "initialize",
            json!({"protocolVersion": rng.pick(&["2025-11-25", "2024-11-05", "x"]), "capabilities": rng.value(2)}),
        ),
        14 => (
            "logging/setLevel",
            json!({"level": rng.pick(&["debug", "info", "loud", "warning"])}),
        ),
        15 => ("resources/list", json!({})),
        _ => ("no/such/method", rng.value(2)),
    };
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// One line of input (no newline in it).
fn fuzz_line(rng: &mut Rng, n: u64) -> Vec<u8> {
    let id = if rng.below(2) == 0 {
        json!(n as i64 + 1)
    } else {
        json!(format!("r{n}"))
    };
    let mut line = match rng.below(16) {
        // Valid requests.
        0..=5 => serde_json::to_vec(&request(rng, id)).unwrap(),
        // Byte-level mutations of a valid request.
        6..=9 => {
            let mut b = serde_json::to_vec(&request(rng, id)).unwrap();
            for _ in 0..=rng.below(3) {
                let len = b.len();
                match rng.below(6) {
                    0 => {
                        let i = rng.below(len);
                        b[i] ^= 1 << rng.below(8);
                    }
                    1 => b.truncate(rng.below(len)),
                    2 => {
                        let i = rng.below(len + 1);
                        b.insert(i, rng.next() as u8);
                    }
                    3 => {
                        let i = rng.below(len);
                        let j = (i + rng.below(8)).min(len);
                        b.drain(i..j);
                    }
                    4 => {
                        let i = rng.below(len + 1);
                        b.splice(i..i, [0xff, 0xfe, 0xc3, 0x28]);
                    }
                    _ => {
                        let i = rng.below(len);
                        let j = (i + rng.below(16)).min(len);
                        let span = b[i..j].to_vec();
                        b.splice(i..i, span);
                    }
                }
                if b.is_empty() {
                    break;
                }
            }
            b
        }
        // Structural mutations: wrong types, missing fields, deep nesting, huge numbers.
        10..=12 => {
            let mut v = request(rng, id);
            match rng.below(9) {
                0 => v["id"] = rng.value(1),
                1 => v["method"] = rng.value(1),
                2 => v["params"] = rng.value(2),
                3 => v["jsonrpc"] = rng.value(0),
                4 => {
                    v.as_object_mut().unwrap().remove("jsonrpc");
                }
                5 => {
                    v.as_object_mut().unwrap().remove("method");
                }
                6 => v["result"] = rng.value(1),
                7 => {
                    let depth = 50 + rng.below(200);
                    let nested = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
                    let mut s = serde_json::to_string(&v).unwrap();
                    s.truncate(s.len() - 1);
                    s.push_str(&format!(",\"x\":{nested}}}"));
                    return s.into_bytes();
                }
                _ => {
                    let s = serde_json::to_string(&v).unwrap();
                    let big = rng.pick(&[
                        "1e400",
                        "-1e400",
                        "123456789012345678901234567890",
                        "1.0",
                        "-0",
                    ]);
                    return s.replacen(&v["id"].to_string(), big, 1).into_bytes();
                }
            }
            serde_json::to_vec(&v).unwrap()
        }
        // Notifications.
        13 => {
            let method = *rng.pick(&[
                "notifications/initialized",
                "notifications/cancelled",
                "notifications/progress",
                "notifications/whatever",
            ]);
            serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": method, "params": {"requestId": format!("zz{n}"), "x": rng.value(2)}}))
                .unwrap()
        }
        // Junk.
        14 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        _ => rng
            .pick(&[
                &b"null"[..],
                b"[]",
                b"42",
                b"\"str\"",
                b"{}",
                b"   ",
                b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
                b"{\"jsonrpc\":\"2.0\"}",
            ])
            .to_vec(),
    };
    // One line each: a newline would split it into two inputs.
    for b in &mut line {
        if *b == b'\n' {
            *b = b' ';
        }
    }
    line
}

/// What the server must do with a line, decided independently of the server's code.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Exactly one response carrying this id (its JSON text).
    Answer(String),
    /// One error response with id null.
    NullError,
    /// No response: blank line, notification, or a response-shaped message.
    Silent,
}

fn expect(line: &[u8]) -> Expect {
    let t = line.trim_ascii();
    if t.is_empty() {
        return Expect::Silent;
    }
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(t) else {
        return Expect::NullError;
    };
    let id = match o.get("id") {
        None => None,
        Some(Value::Number(n)) if n.as_i64().is_some() => Some(n.to_string()),
        Some(v @ Value::String(_)) => Some(v.to_string()),
        Some(_) => return Expect::NullError,
    };
    let jsonrpc = o.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    match (id, o.get("method")) {
        (Some(id), _) if !jsonrpc => Expect::Answer(id),
        (Some(_), None) if o.contains_key("result") || o.contains_key("error") => Expect::Silent,
        (Some(id), _) => Expect::Answer(id),
        (None, Some(Value::String(_))) if jsonrpc => Expect::Silent,
        (None, _) => Expect::NullError,
    }
}

/// A well-formed JSON-RPC 2.0 response (not a notification).
fn assert_valid_response(v: &Value) {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(o.get("jsonrpc"), Some(&json!("2.0")), "{v}");
    assert!(o.contains_key("id"), "{v}");
    assert!(
        matches!(o["id"], Value::Null | Value::String(_)) || o["id"].as_i64().is_some(),
        "{v}"
    );
    match (o.get("result"), o.get("error")) {
        (Some(r), None) => {
            assert!(!o["id"].is_null(), "a result with id null: {v}");
            assert!(r.is_object(), "{v}");
        }
        (None, Some(e)) => {
            assert!(e["code"].as_i64().is_some(), "{v}");
            assert!(e["message"].is_string(), "{v}");
        }
        _ => panic!("needs exactly one of result and error: {v}"),
    }
}

#[test]
fn fuzzed_json_rpc_lines_all_get_valid_answers() {
    let lines_total: u64 = std::env::var("FAULTS_FUZZ_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let env = TestEnv::new("f-fuzz");
    // No agents: no tool call can start a child, so the run stays fast.
    env.write_config("agents: {}\n");
    let started = Instant::now();
    let mut c = McpClient::ready(&env);
    let mut rng = Rng(0x5eed_f00d_2026);
    let mut expected: HashMap<String, usize> = HashMap::new();
    let (mut null_errors, mut silent, mut n) = (0usize, 0usize, 0u64);
    let mut batch = Vec::with_capacity(1 << 20);
    let mut sent = 0u64;
    while sent < lines_total {
        let line = fuzz_line(&mut rng, n);
        n += 1;
        let what = expect(&line);
        if let Expect::Answer(id) = &what {
            // Ids stay unique so each answer can be matched; a mutation that lands on a used id
            // or on the namespace the cancel notifications aim at is redrawn.
            if expected.contains_key(id) || id.starts_with("\"zz") {
                continue;
            }
        }
        match what {
            Expect::Answer(id) => {
                expected.insert(id, 0);
            }
            Expect::NullError => null_errors += 1,
            Expect::Silent => silent += 1,
        }
        batch.extend_from_slice(&line);
        batch.push(b'\n');
        sent += 1;
        if batch.len() > 256 * 1024 {
            c.send_raw(&batch);
            batch.clear();
        }
    }
    c.send_raw(&batch);

    let want = expected.len() + null_errors;
    let (mut got, mut got_null, mut notifications) = (0usize, 0usize, 0usize);
    let mut codes: HashMap<i64, usize> = HashMap::new();
    while got < want {
        let Some(msg) = c.next_message(Duration::from_secs(30)) else {
            panic!("stalled after {got} of {want} responses");
        };
        if msg.get("method").is_some() && msg.get("id").is_none() {
            notifications += 1;
            continue;
        }
        assert_valid_response(&msg);
        got += 1;
        if let Some(code) = msg["error"]["code"].as_i64() {
            *codes.entry(code).or_default() += 1;
        }
        if msg["id"].is_null() {
            let code = msg["error"]["code"].as_i64().unwrap();
            assert!(code == -32700 || code == -32600, "{msg}");
            got_null += 1;
        } else {
            let key = msg["id"].to_string();
            let seen = expected
                .get_mut(&key)
                .unwrap_or_else(|| panic!("answer for an id never sent: {msg}"));
            *seen += 1;
            assert_eq!(*seen, 1, "two answers for {key}");
        }
    }
    assert_eq!(got_null, null_errors);
    assert!(expected.values().all(|&s| s == 1));
    // Nothing more is coming: no extra answers, and the server is still up and serving.
    assert_answers(&mut c);
    let extra = c.unclaimed_responses(Duration::from_millis(300));
    assert!(extra.is_empty(), "unexpected extra responses: {extra:?}");
    assert!(c.child.try_wait().unwrap().is_none(), "server exited");
    assert_no_leftovers(&env, Some(c.child.id()));
    eprintln!(
        "FUZZ lines={sent} answered_by_id={} null_id_errors={null_errors} silent={silent} \
         notifications={notifications} error_codes={codes:?} secs={:.1}",
        expected.len(),
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// Saves that fail.

/// Makes every write past `bytes` into a regular file fail with EFBIG, as a full disk fails
/// with ENOSPC: the temp file is created, then the write fails. Tests run as root here, and
/// root ignores directory permissions (a chmod 0500 directory stays writable), but
/// RLIMIT_FSIZE binds root too. SIGXFSZ is ignored so the write returns an error instead of
/// killing the process; both settings survive exec.
fn limit_file_size(cmd: &mut Command, bytes: u64) {
    // SAFETY: setrlimit and signal are async-signal-safe; nothing is allocated after fork.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

fn temp_leftovers(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn failed_saves_keep_the_old_config_byte_for_byte() {
    let env = TestEnv::new("f-full");
    one_agent(&env, 300);
    let before = std::fs::read(&env.config).unwrap();
    let dir = env.config.parent().unwrap().to_path_buf();
    let beta = env.project("beta");

    // CLI: update and add both fail, say why, and change nothing.
    for args in [
        vec!["update", "alpha", "--timeout", "99"],
        vec!["add", "beta", beta.to_str().unwrap(), "-d", "Beta"],
        vec!["remove", "alpha"],
    ] {
        let mut cmd = env.cmd();
        cmd.args(&args);
        // Below the smallest config a save can write ("agents: {}\n" once `alpha` is gone).
        limit_file_size(&mut cmd, 4);
        let out = crate::util::run(&mut cmd);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("could not write") && out.stderr.contains("agents.yaml"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(std::fs::read(&env.config).unwrap(), before, "{args:?}");
        assert!(
            temp_leftovers(&dir).is_empty(),
            "{:?}",
            temp_leftovers(&dir)
        );
    }

    // MCP: the same through a server that cannot write, which keeps serving.
    let mut c = McpClient::start_with(&env, |cmd| limit_file_size(cmd, 4));
    c.initialize("2025-11-25");
    let (doc, is_error) = c.call("update_agent", json!({"name": "alpha", "timeout": 99}));
    assert!(is_error, "{doc}");
    assert!(error_text(&doc).contains("could not write"), "{doc}");
    let (doc, is_error) = c.call("add_agent", json!({"name": "beta", "directory": beta}));
    assert!(is_error, "{doc}");
    assert!(error_text(&doc).contains("could not write"), "{doc}");
    // A job that cannot be recorded is refused, not silently lost.
    let (doc, is_error) = c.call("dispatch_async", json!({"agent": "alpha", "task": "t"}));
    assert!(is_error, "{doc}");
    assert!(error_text(&doc).contains("File too large"), "{doc}");
    let jobs_dir = dir.join("jobs");
    let left: Vec<_> = std::fs::read_dir(&jobs_dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        // The child ledger directory (`process::ledger`) is server state, not a job.
        left.iter()
            .all(|n| n.ends_with(".lock") || n == agent_dispatch::mcp::LEDGER_DIR),
        "a failed job write left files behind: {left:?}"
    );
    let (jobs, _) = c.call("dispatch_jobs", json!({}));
    assert_eq!(jobs, json!([]), "a refused job must not be listed");
    assert_eq!(std::fs::read(&env.config).unwrap(), before);
    assert!(
        temp_leftovers(&dir).is_empty(),
        "{:?}",
        temp_leftovers(&dir)
    );
    assert_answers(&mut c);
    let (doc, _) = c.call("inspect_agent", json!({"name": "alpha"}));
    assert_eq!(doc["timeout"], 300);
    assert_no_leftovers(&env, Some(c.child.id()));

    // With room again the same edit goes through: the limit was the only obstacle.
    let out = crate::util::run(env.cmd().args(["update", "alpha", "--timeout", "99"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.read_config().contains("timeout: 99"));
}

// ---------------------------------------------------------------------------------------------
// Hostile values.

#[test]
fn hostile_values_are_refused_before_anything_runs() {
    let env = TestEnv::new("f-hostile");
    one_agent(&env, 30);
    let mut c = McpClient::ready(&env);

    // Values that would become claude flags never reach a child.
    for sid in ["-x", "--dangerously-skip-permissions", "-"] {
        let (doc, _) = c.call(
            "dispatch_session",
            json!({"agent": "alpha", "task": "t", "session_id": sid}),
        );
        assert_eq!(doc["error_type"], "cli_error", "{doc}");
        assert!(
            error_text(&doc).starts_with("Refusing to dispatch:"),
            "{doc}"
        );
    }
    for (field, value) in [
        ("model", "--evil"),
        ("allowed_tools", "-rf,Read"),
        ("disallowed_tools", "--help"),
        ("permission_mode", "-x"),
    ] {
        let (doc, is_error) = c.call("update_agent", json!({"name": "alpha", field: value}));
        if field == "permission_mode" {
            // Refused when set (not a mode claude accepts); the argv guard still covers a
            // hand-written one (claude::argv unit tests).
            assert!(is_error, "{doc}");
            assert!(
                error_text(&doc).starts_with("Invalid permission_mode: '-x'."),
                "{doc}"
            );
            continue;
        }
        assert!(!is_error, "{field}: {doc}");
        let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
        assert_eq!(doc["success"], false, "{field}: {doc}");
        assert!(
            error_text(&doc).starts_with("Refusing to dispatch:")
                && error_text(&doc).contains("'-"),
            "{field}: {doc}"
        );
        let clear = if field.ends_with("tools") || field == "model" || field == "permission_mode" {
            "none"
        } else {
            ""
        };
        c.call("update_agent", json!({"name": "alpha", field: clear}));
    }
    assert!(
        env.claude_runs().is_empty(),
        "a hostile value reached a child"
    );

    // Job ids that could leave the jobs directory are refused before touching the disk.
    let upper = "ABCDEF0123456789ABCDEF0123456789".to_string();
    for bad in [
        "..",
        "../agents",
        "../../etc/passwd",
        "a/b",
        "/etc/passwd",
        upper.as_str(),
        "%2e%2e",
        "a\\b",
    ] {
        for (tool, key) in [
            ("dispatch_status", "job_id"),
            ("dispatch_wait", "job_id"),
            ("dispatch_cancel", "job_id"),
            ("fetch_result", "ref"),
        ] {
            let (doc, is_error) = c.call(tool, json!({key: bad}));
            assert!(is_error, "{tool} {bad}");
            assert!(
                error_text(&doc).starts_with("Invalid ref/job_id format:"),
                "{tool} {bad}: {doc}"
            );
        }
        for cmd in ["job", "cancel"] {
            let out = crate::util::run(env.cmd().args([cmd, bad]));
            assert_ne!(out.code, 0, "{cmd} {bad}");
            assert!(
                out.stderr.contains("Invalid"),
                "{cmd} {bad}: {}",
                out.stderr
            );
        }
    }

    // Agent names with path separators or dots are refused by every door.
    let dir = env.project("target");
    for bad in [
        "../evil",
        "a/b",
        "a\\b",
        ".",
        "..",
        "/abs",
        "-rf",
        "name with space",
    ] {
        let (doc, is_error) = c.call("add_agent", json!({"name": bad, "directory": dir}));
        assert!(is_error, "{bad}");
        assert!(
            // Names are quoted Python-style, so a backslash shows doubled.
            error_text(&doc).starts_with("Invalid agent name: '"),
            "{bad}: {doc}"
        );
        let out = crate::util::run(env.cmd().args(["add", bad, dir.to_str().unwrap()]));
        assert_ne!(out.code, 0, "add {bad}");
        let (doc, is_error) = c.call("dispatch", json!({"agent": bad, "task": "t"}));
        assert!(is_error, "{bad}: {doc}");
        assert!(error_text(&doc).starts_with("Unknown agent: '"), "{doc}");
    }
    let (list, _) = c.call("list_agents", json!({}));
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    // A 10 MB prompt crosses the transport intact and fails with advice, not a bare errno.
    let (doc, _) = timed_call(
        &mut c,
        "dispatch",
        json!({"agent": "alpha", "task": "x".repeat(10 * 1024 * 1024)}),
    );
    assert_eq!(doc["success"], false);
    let e = error_text(&doc);
    assert!(
        e.contains("Argument list too long")
            && e.contains("too long for one command-line argument"),
        "{e}"
    );
    assert!(env.claude_runs().is_empty());
    assert_answers(&mut c);
    assert_no_leftovers(&env, Some(c.child.id()));
}

// ---------------------------------------------------------------------------------------------
// Many processes, one config and one job store.

#[test]
fn three_servers_and_the_cli_edit_config_and_jobs_concurrently() {
    let secs: u64 = std::env::var("FAULTS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let env = TestEnv::new("f-soak");
    let base = env.project("base");
    let shared = env.project("shared");
    env.write_config(&format!(
        "agents:\n  base:\n    directory: {}\nsettings:\n  max_concurrency: 3\n",
        base.display()
    ));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let step = json!({"sleep": 0.2, "progress": ["working"]});
    let mut servers: Vec<McpClient> = (0..3).map(|_| client(&env, &step)).collect();
    let server_pids: Vec<u32> = servers.iter().map(|c| c.child.id()).collect();
    let all_jobs = std::sync::Mutex::new(Vec::<String>::new());
    let (edits, cancels) = (
        std::sync::atomic::AtomicUsize::new(0),
        std::sync::atomic::AtomicUsize::new(0),
    );
    let bump = |a: &std::sync::atomic::AtomicUsize| {
        a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };

    let kept: Vec<String> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for (i, mut c) in servers.drain(..).enumerate() {
            let (shared, all_jobs, edits, cancels) = (&shared, &all_jobs, &edits, &cancels);
            handles.push(s.spawn(move || {
                let mut kept = Vec::new();
                let mut k = 0;
                while Instant::now() < deadline {
                    let name = format!("s{i}-{k}");
                    let (doc, e) = c.call(
                        "add_agent",
                        json!({"name": name, "directory": shared, "description": "d"}),
                    );
                    assert!(!e, "{doc}");
                    let (doc, e) = c.call("update_agent", json!({"name": name, "timeout": 5 + k}));
                    assert!(!e, "{doc}");
                    edits.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                    if k % 3 == 0 {
                        let (doc, e) = c.call("remove_agent", json!({"name": name}));
                        assert!(!e, "{doc}");
                        bump(edits);
                    } else {
                        kept.push(name);
                    }
                    let (doc, e) = c.call(
                        "dispatch_async",
                        json!({"agent": "base", "task": format!("{i}/{k}")}),
                    );
                    assert!(!e, "{doc}");
                    let id = doc["job_id"].as_str().unwrap().to_string();
                    // Cancel someone else's job now and then, whoever owns it.
                    let victim = {
                        let mut jobs = all_jobs.lock().unwrap();
                        jobs.push(id);
                        (k % 4 == 1).then(|| jobs[jobs.len() / 2].clone())
                    };
                    if let Some(v) = victim {
                        let (doc, e) = c.call("dispatch_cancel", json!({"job_id": v}));
                        assert!(!e, "{doc}");
                        bump(cancels);
                    }
                    k += 1;
                }
                (kept, c)
            }));
        }
        let mut cli = Vec::new();
        for j in 0..2 {
            let (env, shared, all_jobs, edits, cancels) =
                (&env, &shared, &all_jobs, &edits, &cancels);
            cli.push(s.spawn(move || {
                let mut kept = Vec::new();
                let mut k = 0;
                while Instant::now() < deadline {
                    let name = format!("c{j}-{k}");
                    let out = crate::util::run(env.cmd().args([
                        "add",
                        &name,
                        shared.to_str().unwrap(),
                        "-d",
                        "d",
                    ]));
                    assert_eq!(out.code, 0, "add {name}: {}", out.stderr);
                    let out = crate::util::run(env.cmd().args(["update", &name, "--timeout", "7"]));
                    assert_eq!(out.code, 0, "update {name}: {}", out.stderr);
                    edits.fetch_add(2, std::sync::atomic::Ordering::Relaxed);
                    if k % 3 == 1 {
                        let out = crate::util::run(env.cmd().args(["remove", &name]));
                        assert_eq!(out.code, 0, "remove {name}: {}", out.stderr);
                        bump(edits);
                    } else {
                        kept.push(name);
                    }
                    let victim = all_jobs.lock().unwrap().iter().rev().nth(k % 5).cloned();
                    if let Some(v) = victim {
                        let out = crate::util::run(env.cmd().args(["cancel", &v]));
                        assert!(out.code == 0 || out.code == 1, "cancel: {}", out.stderr);
                        bump(cancels);
                    }
                    let out = crate::util::run(env.cmd().args(["jobs", "--limit", "5"]));
                    assert_eq!(out.code, 0, "jobs: {}", out.stderr);
                    k += 1;
                }
                kept
            }));
        }
        let mut kept = vec!["base".to_string()];
        for h in handles {
            let (names, c) = h.join().unwrap();
            kept.extend(names);
            servers.push(c);
        }
        for h in cli {
            kept.extend(h.join().unwrap());
        }
        kept
    });

    // Every job ends, in exactly one terminal state, recorded in valid JSON.
    let ids = all_jobs.into_inner().unwrap();
    let mut states: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let (doc, _) = timed_call(
            &mut servers[0],
            "dispatch_wait",
            json!({"job_id": id, "timeout_seconds": 60}),
        );
        let st = doc["status"].as_str().unwrap().to_string();
        assert!(st == "done" || st == "cancelled", "{id}: {doc}");
        *states.entry(st).or_default() += 1;
    }
    let jobs_dir = env.config.parent().unwrap().join("jobs");
    let mut files = 0;
    for entry in std::fs::read_dir(&jobs_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.ends_with(".tmp"), "temp file left: {name}");
        if name.ends_with(".json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                ["done", "cancelled"].contains(&v["status"].as_str().unwrap()),
                "{v}"
            );
            files += 1;
        }
    }
    assert_eq!(files, ids.len());

    // The config parses and holds exactly the agents that were added and not removed.
    let yaml: Value = serde_yaml_ng::from_str(&env.read_config()).unwrap();
    let mut have: Vec<String> = yaml["agents"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut want = kept;
    have.sort();
    want.sort();
    assert_eq!(have, want);
    for c in &mut servers {
        assert_answers(c);
    }
    for (c, pid) in servers.iter().zip(&server_pids) {
        assert_eq!(c.child.id(), *pid);
        assert_no_leftovers(&env, Some(*pid));
    }
    let runs = env.claude_runs().len();
    eprintln!(
        "SOAK secs={secs} config_edits={} jobs={} cancels={} children={runs} states={states:?} agents={}",
        edits.into_inner(),
        ids.len(),
        cancels.into_inner(),
        have.len()
    );
}
