//! Hostile clients, children and disks (issue 12): one test per class of failure, each asserting
//! the bound that must hold (peak memory read from /proc, processes left, the server exited at
//! all, records terminal), never how fast something happened. Deadlines below are generous
//! hang detectors, not speed requirements.

use std::io::Write;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::mcp::McpClient;
use crate::util::{TestEnv, pid_alive};

/// Hang detector: a server that does not exit within this is stuck (the goal is 2 s).
const WATCHDOG: Duration = Duration::from_secs(30);

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A kB figure (`VmHWM`, `VmRSS`) from /proc/<pid>/status, in MiB.
fn status_mib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn one_agent(env: &TestEnv, settings: &str) {
    let dir = env.project("alpha");
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\n    description: Alpha\n{settings}",
        dir.display()
    ));
}

fn line(v: &Value) -> Vec<u8> {
    let mut l = serde_json::to_vec(v).unwrap();
    l.push(b'\n');
    l
}

fn init_lines() -> Vec<u8> {
    let mut b = line(&json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}));
    b.extend(line(
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ));
    b
}

/// A server whose client writes but does not read (yet): stdout stays in the pipe.
struct Stalled {
    child: Child,
    stdout: Option<ChildStdout>,
    /// Lines the feeding thread managed to write (it blocks when the server stops reading).
    fed: Arc<AtomicUsize>,
}

impl Stalled {
    fn start(env: &TestEnv, step: Option<Value>) -> (Stalled, ChildStdin) {
        let mut cmd = env.cmd();
        cmd.arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(env.root.join("server.err")).unwrap());
        if let Some(s) = step {
            cmd.env("FAKE_CLAUDE_STEP", s.to_string());
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take();
        let stdin = child.stdin.take().unwrap();
        (
            Stalled {
                child,
                stdout,
                fed: Arc::new(AtomicUsize::new(0)),
            },
            stdin,
        )
    }

    /// Writes `lines` from a thread (it may block for good: the server stops reading).
    fn feed(&self, mut stdin: ChildStdin, lines: Vec<Vec<u8>>, close: bool) {
        let fed = Arc::clone(&self.fed);
        thread::spawn(move || {
            for l in lines {
                if stdin.write_all(&l).is_err() {
                    return;
                }
                fed.fetch_add(1, Ordering::SeqCst);
            }
            let _ = stdin.flush();
            if !close {
                // Keep stdin open until the server is gone.
                thread::sleep(Duration::from_secs(120));
            }
        });
    }

    /// Waits until feeding stopped making progress (the server stopped reading) or finished.
    fn settle(&self, total: usize) {
        let mut last = usize::MAX;
        let deadline = Instant::now() + WATCHDOG;
        loop {
            thread::sleep(Duration::from_millis(1500));
            let now = self.fed.load(Ordering::SeqCst);
            if now == total || now == last || Instant::now() > deadline {
                return;
            }
            last = now;
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Reads what the server writes until `responses` responses arrived (or the watchdog).
    fn drain(&mut self, responses: usize, keep_responses: bool) -> (usize, Vec<Value>) {
        use std::io::BufRead;
        let out = self.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + WATCHDOG * 4;
        let mut messages = Vec::new();
        let mut seen = 0;
        while seen < responses {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(l) = rx.recv_timeout(left) else { break };
            // Responses are counted, not parsed (thousands of tool lists are many megabytes).
            if l.starts_with(r#"{"jsonrpc":"2.0","id":"#) {
                seen += 1;
                if keep_responses {
                    messages.push(serde_json::from_str(&l).unwrap());
                }
            } else {
                messages.push(serde_json::from_str(&l).unwrap());
            }
        }
        (seen, messages)
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tools_list(id: usize) -> Vec<u8> {
    line(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
}

/// Class 1: a client that stopped reading (stdout full) then signals or closes stdin. The server
/// must still exit; WATCHDOG only detects a hang (the goal, 2 s, is measured by `make bench`).
#[test]
fn shutdown_completes_while_stdout_is_blocked() {
    let env = TestEnv::new("hostile-shutdown");
    one_agent(&env, "");
    for how in ["TERM", "INT", "HUP", "eof"] {
        let (mut server, stdin) = Stalled::start(&env, None);
        let mut lines = vec![init_lines()];
        // 300 requests (15 KB) fit in the stdin pipe, so the client really gets to close it;
        // their answers (4 MB of tool lists) are far more than the stdout pipe holds.
        lines.extend((1..300).map(tools_list));
        server.feed(stdin, lines, how == "eof");
        server.settle(300);
        if how != "eof" {
            let sig = match how {
                "TERM" => libc::SIGTERM,
                "INT" => libc::SIGINT,
                _ => libc::SIGHUP,
            };
            // SAFETY: signalling our own child.
            unsafe { libc::kill(server.pid() as i32, sig) };
        }
        let exited = server.exited_within(WATCHDOG);
        if !exited {
            let pid = server.pid();
            let mut threads = String::new();
            for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
                let t = t.unwrap().path();
                threads.push_str(&format!(
                    "{} {} | ",
                    std::fs::read_to_string(t.join("comm"))
                        .unwrap_or_default()
                        .trim(),
                    std::fs::read_to_string(t.join("wchan")).unwrap_or_default()
                ));
            }
            let err = std::fs::read_to_string(env.root.join("server.err")).unwrap_or_default();
            panic!("{how}: server still running with a blocked stdout: {threads}\n{err}");
        }
    }
}

/// Class 2: thousands of unread `tools/list` requests (5,000 answers are 75 MB of JSON, more as
/// values in memory). The server stops reading instead of queueing them all, memory stays
/// bounded, and once the client reads, every response arrives.
#[test]
fn unread_responses_keep_memory_bounded_and_none_is_dropped() {
    let env = TestEnv::new("hostile-unread");
    one_agent(&env, "");
    let (mut server, stdin) = Stalled::start(&env, None);
    let total = 5_000;
    let mut lines = vec![init_lines()];
    lines.extend((1..=total).map(tools_list));
    // stdin stays open: a client that closes it while reading nothing is gone.
    server.feed(stdin, lines, false);
    server.settle(total + 1);
    let peak = status_mib(server.pid(), "VmHWM");
    assert!(peak > 0, "no VmHWM for the server");
    assert!(peak < 64, "peak RSS {peak} MiB with an unread backlog");
    let (responses, _) = server.drain(total + 1, false);
    assert_eq!(responses, total + 1, "every request answered exactly once");
}

/// Class 2: many chatty streams and a client that does not read. Progress beyond the bound is
/// dropped and counted, the client is told, memory stays bounded, every response arrives.
#[test]
fn chatty_streams_to_a_stalled_client_are_coalesced_and_counted() {
    let env = TestEnv::new("hostile-chatty");
    one_agent(&env, "settings:\n  max_concurrency: 50\n");
    let calls = 40;
    let (mut server, stdin) =
        Stalled::start(&env, Some(json!({"progress_count": 3000, "result": "ok"})));
    let mut lines = vec![init_lines()];
    lines.extend((1..=calls).map(|i| {
        line(&json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
            "params": {"name": "dispatch_stream", "arguments": {"agent": "alpha", "task": format!("t{i}")},
                       "_meta": {"progressToken": i}}}))
    }));
    // stdin stays open: a client that closes it is gone, and its dispatches are stopped.
    server.feed(stdin, lines, false);
    // Every child ran to the end (the log has one line per run) while nobody read.
    wait_until("all children logged", WATCHDOG, || {
        env.claude_runs().len() == calls
    });
    thread::sleep(Duration::from_secs(3));
    let peak = status_mib(server.pid(), "VmHWM");
    assert!(peak < 64, "peak RSS {peak} MiB under a stalled client");
    let (_, messages) = server.drain(calls + 1, true);
    let responses: Vec<&Value> = messages.iter().filter(|m| m.get("id").is_some()).collect();
    assert_eq!(
        responses.len(),
        calls + 1,
        "initialize + every call answered"
    );
    for r in &responses[1..] {
        let (doc, is_error) = McpClient::tool_payload(r);
        assert!(!is_error && doc["success"] == true, "{doc}");
    }
    let skipped = messages.iter().any(|m| {
        m["method"] == "notifications/message"
            && m["params"]["data"]
                .as_str()
                .is_some_and(|d| d.contains("progress messages skipped"))
    });
    let notes: Vec<&Value> = messages.iter().filter(|m| m.get("id").is_none()).collect();
    assert!(
        skipped,
        "the client was not told what it missed: {} notifications, first {:?}",
        notes.len(),
        notes.first()
    );
}

/// Class 1: a client that closes its end of our stdout but keeps stdin open is gone: the server
/// stops and kills the children whose answers could never arrive.
#[test]
fn closed_stdout_stops_the_server_and_its_children() {
    let env = TestEnv::new("hostile-epipe");
    one_agent(&env, "");
    let (mut server, stdin) = Stalled::start(&env, Some(json!({"hang": true})));
    let call = line(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "dispatch", "arguments": {"agent": "alpha", "task": "t"}}}));
    server.feed(stdin, vec![init_lines(), call], false);
    wait_until("the child to start", WATCHDOG, || {
        !env.claude_runs().is_empty()
    });
    let child_pid = env.claude_runs()[0]["pid"].as_i64().unwrap();
    drop(server.stdout.take());
    assert!(
        server.exited_within(WATCHDOG),
        "server kept running for a client that closed stdout"
    );
    wait_until("the child to die", WATCHDOG, || !pid_alive(child_pid));
}

/// Class 6: an id is free as soon as its response is read, and an id in use is refused with
/// -32600 whatever the method.
#[test]
fn ids_are_free_once_answered_and_running_ids_are_refused() {
    let env = TestEnv::new("hostile-ids");
    one_agent(&env, "");
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", json!({"sleep": 2}).to_string());
    });
    c.initialize("2025-11-25");
    for _ in 0..300 {
        c.send(&json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "list_agents", "arguments": {}}}));
        let r = c.response_for(&json!(7), WATCHDOG);
        assert!(r.get("error").is_none(), "a freed id was refused: {r}");
    }
    c.send(
        &json!({"jsonrpc": "2.0", "id": "run", "method": "tools/call",
        "params": {"name": "dispatch", "arguments": {"agent": "alpha", "task": "t"}}}),
    );
    wait_until("the child to start", WATCHDOG, || {
        !env.claude_runs().is_empty()
    });
    c.send(&json!({"jsonrpc": "2.0", "id": "run", "method": "ping"}));
    let refused = c.response_for(&json!("run"), WATCHDOG);
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    let answered = c.response_for(&json!("run"), WATCHDOG);
    assert!(answered.get("result").is_some(), "{answered}");
    let extra = c.unclaimed_responses(Duration::from_millis(500));
    assert!(extra.is_empty(), "more than two responses: {extra:?}");
}

/// Class 10: a malformed depth refuses to dispatch (it used to count as 0), and no child starts.
#[test]
fn malformed_depth_fails_closed() {
    let env = TestEnv::new("hostile-depth");
    one_agent(&env, "");
    for bad in ["abc", "-1", "12345678901234567890"] {
        let mut c = McpClient::start_with(&env, |cmd| {
            cmd.env("AGENT_DISPATCH_DEPTH", bad);
        });
        c.initialize("2025-11-25");
        let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
        assert_eq!(doc["success"], false, "{bad}: {doc}");
        assert_eq!(doc["error_type"], "recursion", "{bad}: {doc}");
        assert!(
            doc["error"]
                .as_str()
                .is_some_and(|e| e.contains("AGENT_DISPATCH_DEPTH")),
            "{doc}"
        );
    }
    assert!(env.claude_runs().is_empty(), "a child was started");
}

/// Class 10: a config that is a symlink to a large non-YAML file is not echoed whole in errors.
#[test]
fn config_errors_quote_a_bounded_excerpt() {
    let env = TestEnv::new("hostile-cfg");
    let big = env.root.join("big.txt");
    std::fs::write(&big, "q".repeat(2_000_000)).unwrap();
    std::fs::create_dir_all(env.config.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&big, &env.config).unwrap();
    let mut c = McpClient::ready(&env);
    let id = c.request(
        "tools/call",
        json!({"name": "list_agents", "arguments": {}}),
    );
    let resp = c.response(id);
    let text = resp.to_string();
    assert!(text.len() < 4_000, "a {}-byte error", text.len());
    assert!(text.contains("more characters not shown"), "{text}");
}

/// A ready client whose fake claude follows `step`, with extra server environment.
fn client(env: &TestEnv, step: Value, vars: &[(&str, &str)]) -> McpClient {
    let mut c = McpClient::start_with(env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", step.to_string());
        for (k, v) in vars {
            cmd.env(k, v);
        }
    });
    c.initialize("2025-11-25");
    c
}

/// Class 3: output past a cap stops the child with an error naming the cap, memory stays
/// bounded, and no process is left. The caps are lowered here so the floods stay small; the
/// 2 GiB flood against the defaults is in `make bench`.
#[test]
fn child_output_past_a_cap_is_stopped_with_a_clear_error() {
    let env = TestEnv::new("hostile-flood");
    one_agent(&env, "");
    let caps = [
        ("AGENT_DISPATCH_MAX_OUTPUT_BYTES", "8M"),
        ("AGENT_DISPATCH_MAX_LINE_BYTES", "4M"),
    ];
    let cases = [
        (
            "dispatch",
            json!({"flood_bytes": 300_000_000u64}),
            "more than 8 MiB",
        ),
        (
            "dispatch_stream",
            json!({"endless_line": true}),
            "longer than 4 MiB",
        ),
    ];
    for (tool, step, says) in cases {
        let mut c = client(&env, step, &caps);
        let (doc, _) = c.call(tool, json!({"agent": "alpha", "task": "t"}));
        assert_eq!(doc["success"], false, "{doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| e.contains(says)),
            "{tool}: {doc}"
        );
        let peak = status_mib(c.child.id(), "VmHWM");
        assert!(peak < 64, "{tool}: peak RSS {peak} MiB");
        let runs = env.claude_runs();
        let pid = runs.last().unwrap()["pid"].as_i64().unwrap();
        wait_until("the flooding child to die", WATCHDOG, || !pid_alive(pid));
    }
}

/// Class 7: some JSON and a failing exit is a failure; a child stopped (SIGSTOP) after an init
/// line until the timeout is a timeout, in both output modes.
#[test]
fn child_outcomes_need_a_complete_result() {
    let env = TestEnv::new("hostile-outcome");
    one_agent(&env, "");
    let mut c = client(&env, json!({"json": {"foo": 1}, "exit": 1}), &[]);
    let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
    assert_eq!(doc["success"], false, "{doc}");
    drop(c);

    let init = r#"{"type":"system","subtype":"init","session_id":"s"}"#;
    let stopped = [
        (
            "dispatch",
            json!({"stdout_raw": format!("{init}\n"), "stop_self": true}),
        ),
        (
            "dispatch_stream",
            json!({"events": [init], "stop_self": true}),
        ),
    ];
    for (tool, step) in stopped {
        let mut c = client(&env, step, &[]);
        let (doc, _) = c.call(
            tool,
            json!({"agent": "alpha", "task": "t", "timeout_seconds": 2}),
        );
        assert_eq!(doc["success"], false, "{tool}: {doc}");
        assert_eq!(doc["error_type"], "timeout", "{tool}: {doc}");
        let pid = env.claude_runs().last().unwrap()["pid"].as_i64().unwrap();
        wait_until("the stopped child to die", WATCHDOG, || !pid_alive(pid));
    }
}

fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Class 9: descendants that leave the process group (setsid, double fork) die with their
/// dispatch, and the dispatch's reader threads do not outlive it.
#[test]
fn escaped_descendants_die_with_their_dispatch() {
    let env = TestEnv::new("hostile-escape");
    one_agent(&env, "");
    for how in ["setsid", "double_fork"] {
        let mut c = client(&env, json!({"escape": how, "result": "ok"}), &[]);
        let baseline = thread_count(c.child.id());
        let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
        assert_eq!(doc["success"], true, "{how}: {doc}");
        let escaped = env.claude_runs().last().unwrap()["escaped_pid"]
            .as_i64()
            .unwrap();
        wait_until("the escapee to die", WATCHDOG, || !pid_alive(escaped));
        wait_until("the reader threads to end", WATCHDOG, || {
            thread_count(c.child.id()) <= baseline
        });
    }
}

fn jobs_dir(env: &TestEnv) -> std::path::PathBuf {
    env.config.parent().unwrap().join("jobs")
}

fn mkfifo(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs a CLI command under the watchdog; true if it finished.
fn cli_finishes(env: &TestEnv, args: &[&str]) -> bool {
    let mut child = env
        .cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WATCHDOG;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

fn async_job(c: &mut McpClient) -> String {
    let (doc, _) = c.call("dispatch_async", json!({"agent": "alpha", "task": "t"}));
    doc["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{doc}"))
        .to_string()
}

fn job_status(c: &mut McpClient, id: &str) -> Value {
    c.call("dispatch_status", json!({"job_id": id})).0
}

/// Class 4: FIFOs, a symlink to /dev/zero and an oversized file under job names, and a FIFO
/// as the store lock: the server still starts and answers, the CLI finishes, memory stays
/// bounded, and a job still ends.
#[test]
fn hostile_files_in_the_jobs_directory_are_skipped() {
    let env = TestEnv::new("hostile-jobdir");
    one_agent(&env, "");
    let dir = jobs_dir(&env);
    std::fs::create_dir_all(&dir).unwrap();
    let id = |n: u8| format!("{:032x}", n);
    mkfifo(&dir.join(format!("{}.json", id(1))));
    std::os::unix::fs::symlink("/dev/zero", dir.join(format!("{}.json", id(2)))).unwrap();
    // 10 MB, over the record cap derived from a 1 MiB output cap.
    std::fs::write(dir.join(format!("{}.json", id(3))), vec![b' '; 10_000_000]).unwrap();
    mkfifo(&dir.join(".store.lock"));
    let caps = [("AGENT_DISPATCH_MAX_OUTPUT_BYTES", "1M")];
    let mut c = client(&env, json!({"result": "ok"}), &caps);
    let (listing, _) = c.call("dispatch_jobs", json!({}));
    assert!(listing.is_array() || listing.is_object(), "{listing}");
    let job = async_job(&mut c);
    wait_until("the job to end", WATCHDOG, || {
        job_status(&mut c, &job)["status"] == "done"
    });
    let peak = status_mib(c.child.id(), "VmHWM");
    assert!(peak < 64, "peak RSS {peak} MiB");
    for args in [&["jobs"][..], &["gc", "--all"][..]] {
        assert!(
            cli_finishes(&env, args),
            "{args:?} hung on the jobs directory"
        );
    }
}

/// Class 4: a jobs directory removed while the server runs is made again.
#[test]
fn a_removed_jobs_directory_is_recreated() {
    let env = TestEnv::new("hostile-jobrm");
    one_agent(&env, "");
    let mut c = client(&env, json!({"result": "ok"}), &[]);
    let first = async_job(&mut c);
    wait_until("the first job to end", WATCHDOG, || {
        job_status(&mut c, &first)["status"] == "done"
    });
    std::fs::remove_dir_all(jobs_dir(&env)).unwrap();
    let second = async_job(&mut c);
    wait_until("the second job to end", WATCHDOG, || {
        job_status(&mut c, &second)["status"] == "done"
    });
}

/// Class 5: a hand-written `running` record that names an unrelated process group (with its
/// real start time) does not make a read-only `jobs` kill it.
#[test]
fn a_forged_record_cannot_steer_a_kill() {
    use std::os::unix::process::CommandExt;
    let env = TestEnv::new("hostile-forged");
    one_agent(&env, "");
    let mut victim = std::process::Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = victim.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let started: u64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let dir = jobs_dir(&env);
    std::fs::create_dir_all(&dir).unwrap();
    let id = "ab".repeat(16);
    let record = json!({"id": id, "agent": "alpha", "task": "t", "status": "running",
        "created_at": 1.0, "started_at": 1.0, "owner_pid": 999_999,
        "child_pgid": pid, "child_started": started});
    std::fs::write(dir.join(format!("{id}.json")), record.to_string()).unwrap();
    assert!(cli_finishes(&env, &["jobs"]));
    thread::sleep(Duration::from_millis(300));
    assert!(
        victim.try_wait().unwrap().is_none(),
        "an unrelated process was killed"
    );
    let _ = victim.kill();
    let _ = victim.wait();
}

/// Class 8: when the result cannot be recorded (the store lock is unusable), the job is not
/// reported as crashed while its server lives, and it ends terminal once the disk allows.
#[test]
fn an_unrecordable_result_is_not_reported_as_a_crash() {
    let env = TestEnv::new("hostile-unrecordable");
    one_agent(&env, "");
    let mut c = client(&env, json!({"result": "ok", "sleep": 2}), &[]);
    let job = async_job(&mut c);
    wait_until("the job to run", WATCHDOG, || {
        job_status(&mut c, &job)["status"] == "running"
    });
    let lock = jobs_dir(&env).join(".store.lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir(&lock).unwrap();
    // The child finishes meanwhile; its result cannot be written.
    thread::sleep(Duration::from_secs(4));
    let (doc, _) = c.call(
        "dispatch_wait",
        json!({"job_id": job, "timeout_seconds": 1}),
    );
    let text = doc.to_string();
    assert!(!text.contains("exited before"), "{text}");
    std::fs::remove_dir(&lock).unwrap();
    wait_until("the job to end", WATCHDOG, || {
        let s = job_status(&mut c, &job);
        s["status"] == "done" || s["status"] == "failed"
    });
}

/// Class 9: after `kill -9` of a server, the descendants of its synchronous dispatches (its
/// direct child dies by PDEATHSIG, theirs do not) are killed by the next server to start.
#[test]
fn leftovers_of_a_killed_server_are_killed_by_the_next_one() {
    let env = TestEnv::new("hostile-ledger");
    one_agent(&env, "");
    let step = json!({"grandchild": true, "escape": "setsid", "hang": true});
    let (mut server, stdin) = Stalled::start(&env, Some(step));
    let call = line(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "dispatch", "arguments": {"agent": "alpha", "task": "t"}}}));
    server.feed(stdin, vec![init_lines(), call], false);
    wait_until("the child to start", WATCHDOG, || {
        !env.claude_runs().is_empty()
    });
    let run = env.claude_runs()[0].clone();
    let leftovers = [
        run["grandchild_pid"].as_i64().unwrap(),
        run["escaped_pid"].as_i64().unwrap(),
    ];
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    thread::sleep(Duration::from_millis(300));
    assert!(
        leftovers.iter().all(|p| pid_alive(*p)),
        "the scenario needs survivors of the server's death"
    );
    let _next = McpClient::ready(&env);
    for pid in leftovers {
        wait_until("a leftover to be killed", WATCHDOG, || !pid_alive(pid));
    }
}
