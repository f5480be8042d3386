//! The job tools over MCP: async dispatch, status with live progress, wait, cancel, listing,
//! result refs, gc, recovery after a killed server, and several processes sharing one store.


use std::time::{Duration, Instant};

use serde_json::{Value, json};
use crate::util::TestEnv;
use crate::util::mcp::McpClient;

fn agents(env: &TestEnv, settings: &str) {
    let a = env.project("alpha");
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\n{settings}",
        a.display()
    ));
}

fn client(env: &TestEnv, step: Value) -> McpClient {
    let mut c = McpClient::start_with(env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", step.to_string());
    });
    c.initialize("2025-11-25");
    c
}

/// Serialises the load-heavy test with the latency-sensitive one: tests in one binary run in
/// parallel, and 200 jobs on a 2-core machine would otherwise distort a latency measurement.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

fn start(c: &mut McpClient, task: &str) -> String {
    let (doc, is_error) = c.call("dispatch_async", json!({"agent": "alpha", "task": task}));
    assert!(!is_error, "{doc}");
    assert_eq!(doc["status"], "pending");
    assert_eq!(doc["agent"], "alpha");
    doc["job_id"].as_str().unwrap().to_string()
}

#[test]
fn async_flow_shows_progress_and_wait_returns_when_the_job_ends() {
    let env = TestEnv::new("jobs-flow");
    agents(&env, "");
    let mut c = client(
        &env,
        json!({"delay": 0.4, "progress": ["step one", "step two", "step three"]}),
    );
    let id = start(&mut c, "long job");
    // Progress shows while the child still runs.
    let mut seen_running_progress = false;
    assert!(wait_until(Duration::from_secs(10), || {
        let (doc, _) = c.call("dispatch_status", json!({"job_id": id}));
        if doc["status"] == "running" && doc["progress"].as_array().is_some_and(|p| !p.is_empty()) {
            seen_running_progress = true;
        }
        seen_running_progress || doc["status"] == "done"
    }));
    assert!(
        seen_running_progress,
        "no progress was visible while the job ran"
    );
    let (jobs, _) = c.call("dispatch_jobs", json!({"status": "running"}));
    if let Some(j) = jobs.as_array().unwrap().first() {
        assert!(j["last_progress"].is_string(), "{j}");
    }
    let started = Instant::now();
    let (doc, _) = c.call(
        "dispatch_wait",
        json!({"job_id": id, "timeout_seconds": 30}),
    );
    assert_eq!(doc["status"], "done", "{doc}");
    assert!(doc.get("timed_out_waiting").is_none());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(doc["result"]["success"], true);
    assert!(
        doc["progress"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "step three")
    );
    assert!(doc["completed_at"].as_f64().unwrap() >= doc["started_at"].as_f64().unwrap());
    // Runs in stream mode.
    let argv = env.claude_runs()[0]["argv"].clone();
    assert!(argv.as_array().unwrap().contains(&json!("stream-json")));
    let (full, _) = c.call("fetch_result", json!({"ref": id, "max_chars": 4}));
    assert_eq!(full["result"], "done");
    assert_eq!(full["truncated"], true);
    assert!(full["full_size"].as_u64().unwrap() > 4);
}

#[test]
fn wait_wakes_at_once_not_on_a_polling_tick() {
    let _alone = exclusive();
    let env = TestEnv::new("jobs-wake");
    agents(&env, "");
    let mut c = client(&env, json!({"sleep": 1.0}));
    let id = start(&mut c, "short");
    let started = Instant::now();
    let (doc, _) = c.call(
        "dispatch_wait",
        json!({"job_id": id, "timeout_seconds": 20}),
    );
    assert_eq!(doc["status"], "done");
    let completed = doc["completed_at"].as_f64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The response left within a fraction of a second of the job's terminal write.
    assert!(
        now - completed < 0.25,
        "wait returned {:.3}s after completion",
        now - completed
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let (doc, _) = c.call("dispatch_wait", json!({"job_id": id, "timeout_seconds": 0}));
    assert_eq!(doc["status"], "done");
}

#[test]
fn wait_times_out_and_the_job_keeps_running() {
    let env = TestEnv::new("jobs-wto");
    agents(&env, "");
    let mut c = client(&env, json!({"sleep": 3}));
    let id = start(&mut c, "slow");
    let started = Instant::now();
    let (doc, _) = c.call("dispatch_wait", json!({"job_id": id, "timeout_seconds": 1}));
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(doc["timed_out_waiting"], true);
    assert!(doc["status"] == "running" || doc["status"] == "pending");
    let (doc, _) = c.call(
        "dispatch_wait",
        json!({"job_id": id, "timeout_seconds": 30}),
    );
    assert_eq!(doc["status"], "done");
}

#[test]
fn cancel_pending_and_running_jobs() {
    let env = TestEnv::new("jobs-cancel");
    agents(&env, "settings:\n  max_concurrency: 1\n");
    let mut c = client(&env, json!({"sleep": 60, "grandchild": true}));
    let running = start(&mut c, "first");
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let queued = start(&mut c, "second");
    let (doc, _) = c.call("dispatch_status", json!({"job_id": queued}));
    assert_eq!(doc["status"], "pending", "the gate holds it: {doc}");

    let (doc, _) = c.call("dispatch_cancel", json!({"job_id": queued}));
    assert_eq!(
        doc,
        json!({"job_id": queued, "outcome": "cancelled", "status": "cancelled"})
    );

    let run = env.claude_runs()[0].clone();
    let (doc, _) = c.call("dispatch_cancel", json!({"job_id": running}));
    assert_eq!(doc["outcome"], "cancelled_running", "{doc}");
    assert_eq!(doc["status"], "cancelled");
    for key in ["pid", "grandchild_pid"] {
        let pid = run[key].as_i64().unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || !crate::util::pid_alive(pid)),
            "{key} survived the cancel"
        );
    }
    let (doc, _) = c.call(
        "dispatch_wait",
        json!({"job_id": running, "timeout_seconds": 10}),
    );
    assert_eq!(
        doc["status"], "cancelled",
        "a late finish must not overwrite a cancel: {doc}"
    );
    let (doc, _) = c.call("dispatch_cancel", json!({"job_id": running}));
    assert_eq!(doc["outcome"], "already_terminal");
    // The cancelled pending job never started a child.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(env.claude_runs().len(), 1);
    let (jobs, _) = c.call("dispatch_jobs", json!({"status": "cancelled"}));
    assert_eq!(jobs.as_array().unwrap().len(), 2);
}

#[test]
fn ids_are_validated_before_touching_disk() {
    let env = TestEnv::new("jobs-ids");
    agents(&env, "");
    let mut c = McpClient::ready(&env);
    for bad in [
        "../x",
        "does-not-exist",
        &"A".repeat(32),
        &format!("{}/", "a".repeat(31)),
        "..%2f..",
        "",
    ] {
        for (tool, key) in [
            ("dispatch_status", "job_id"),
            ("fetch_result", "ref"),
            ("dispatch_cancel", "job_id"),
        ] {
            let (doc, is_error) = c.call(tool, json!({key: bad}));
            assert!(is_error, "{tool} {bad}");
            assert!(
                doc["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("Invalid ref/job_id format:"),
                "{tool} {bad}: {doc}"
            );
        }
    }
    let absent = "a".repeat(32);
    let (doc, _) = c.call("dispatch_status", json!({"job_id": absent}));
    assert_eq!(doc["error"], format!("Job not found: {absent}"));
    let (doc, _) = c.call("fetch_result", json!({"ref": absent}));
    assert_eq!(doc["error"], format!("Ref not found: {absent}"));
    let (doc, _) = c.call("dispatch_cancel", json!({"job_id": absent}));
    assert_eq!(doc["error"], format!("Job not found: {absent}"));
}

#[test]
fn return_ref_stores_the_result_and_returns_a_summary() {
    let env = TestEnv::new("jobs-ref");
    agents(&env, "");
    let mut c = client(&env, json!({"result": "a long answer with many words"}));
    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "t", "return_ref": true, "summary_chars": 6}),
    );
    assert_eq!(doc["summary"], "a long");
    assert_eq!(doc["size"], 29);
    assert!(doc.get("result").is_none());
    let r = doc["ref"].as_str().unwrap().to_string();
    let (full, _) = c.call("fetch_result", json!({"ref": r}));
    assert_eq!(full["result"], "a long answer with many words");
    // Cache hit: the ref is honoured and a new reference is stored.
    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "t", "return_ref": true, "summary_chars": 1}),
    );
    assert_eq!(doc["cached"], true);
    assert_eq!(doc["summary"], "a");
    assert_ne!(doc["ref"].as_str().unwrap(), r);
    // Parallel items.
    let items = json!([{"agent": "alpha", "task": "p", "return_ref": true, "summary_chars": 3}, {"agent": "alpha", "task": "q", "return_ref": "false"}]);
    let (doc, _) = c.call(
        "dispatch_parallel",
        json!({"dispatches": items.to_string()}),
    );
    assert_eq!(doc[0]["summary"], "a l", "{doc}");
    assert!(doc[0]["ref"].is_string());
    assert_eq!(doc[1]["result"], "a long answer with many words");
    let (jobs, _) = c.call("dispatch_jobs", json!({}));
    assert_eq!(jobs.as_array().unwrap().len(), 3, "{jobs}");
    let (jobs, _) = c.call("dispatch_jobs", json!({"limit": -10}));
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    let (doc, is_error) = c.call("dispatch_jobs", json!({"status": "Bogus"}));
    assert!(is_error);
    assert_eq!(
        doc["error"],
        "Invalid status: 'Bogus'. Use one of: cancelled, done, failed, pending, running or empty."
    );
}

#[test]
fn gc_validates_and_keeps_live_jobs() {
    let env = TestEnv::new("jobs-gc");
    agents(&env, "");
    let mut c = McpClient::ready(&env);
    let (doc, _) = c.call("dispatch_gc", json!({"max_age_days": 0}));
    assert_eq!(doc["error"], "max_age_days must be > 0");
    let (doc, _) = c.call("dispatch_gc", json!({"max_age_days": 1e308}));
    assert_eq!(doc["error"], "max_age_days is too large (non-finite)");
    c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "t", "return_ref": true}),
    );
    let (doc, _) = c.call("dispatch_gc", json!({"max_age_days": 1}));
    assert_eq!(doc, json!({"purged": 0, "max_age_days": 1.0}));
    std::thread::sleep(Duration::from_millis(150));
    let (doc, _) = c.call("dispatch_gc", json!({"max_age_days": 0.000001}));
    assert_eq!(doc["purged"], 1);
}

#[test]
fn corrupt_and_foreign_files_are_skipped() {
    let env = TestEnv::new("jobs-corrupt");
    agents(&env, "");
    let jobs_dir = env.config.parent().unwrap().join("jobs");
    std::fs::create_dir_all(&jobs_dir).unwrap();
    std::fs::write(
        jobs_dir.join(format!("{}.json", "b".repeat(32))),
        "{not json",
    )
    .unwrap();
    std::fs::write(jobs_dir.join("notes.json"), "{}").unwrap();
    let mut c = McpClient::ready(&env);
    c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "t", "return_ref": true}),
    );
    let (jobs, is_error) = c.call("dispatch_jobs", json!({}));
    assert!(!is_error, "{jobs}");
    assert_eq!(jobs.as_array().unwrap().len(), 1);
    // Looking the corrupt job up says so, rather than blaming the directory's permissions.
    let (doc, is_error) = c.call("dispatch_status", json!({"job_id": "b".repeat(32)}));
    assert!(is_error, "{doc}");
    assert!(
        doc["error"].as_str().unwrap().contains("unreadable"),
        "{doc}"
    );
    assert!(
        doc["hint"]
            .as_str()
            .unwrap()
            .contains("corrupt; delete or move it"),
        "{doc}"
    );
    assert!(c.notifications.iter().any(|n| {
        n["params"]["data"]
            .as_str()
            .is_some_and(|d| d.contains("Skipped"))
    }));
}

#[test]
fn a_killed_server_leaves_jobs_that_the_next_server_fails_while_live_ones_are_untouched() {
    let env = TestEnv::new("jobs-recover");
    agents(&env, "");
    let mut doomed = client(&env, json!({"sleep": 60}));
    let orphan = start(&mut doomed, "orphaned");
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let mut live = client(&env, json!({"sleep": 60}));
    let kept = start(&mut live, "kept");
    assert!(wait_until(Duration::from_secs(10), || env
        .claude_runs()
        .len()
        == 2));
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(doomed.child.id() as i32, libc::SIGKILL) };
    let _ = doomed.child.wait();

    let mut fresh = McpClient::ready(&env);
    let (doc, _) = fresh.call("dispatch_status", json!({"job_id": orphan}));
    assert_eq!(doc["status"], "failed", "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("exited"), "{doc}");
    let (doc, _) = fresh.call("dispatch_status", json!({"job_id": kept}));
    assert_eq!(
        doc["status"], "running",
        "a job owned by a live server was touched: {doc}"
    );
    // And the live owner can still be asked, from the other server, to cancel it.
    let (doc, _) = fresh.call("dispatch_cancel", json!({"job_id": kept}));
    assert_eq!(doc["outcome"], "cancelled_running");
    let (doc, _) = live.call(
        "dispatch_wait",
        json!({"job_id": kept, "timeout_seconds": 10}),
    );
    assert_eq!(doc["status"], "cancelled");
    let pid = env.claude_runs()[1]["pid"].as_i64().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !crate::util::pid_alive(pid)));
    assert!(env.read_config().contains("alpha"), "agents.yaml intact");
}

#[test]
fn two_servers_and_the_cli_share_one_job_store() {
    let _alone = exclusive();
    let env = TestEnv::new("jobs-hammer");
    agents(&env, "settings:\n  max_concurrency: 6\n");
    let step = json!({"sleep": 0.05, "progress": ["working"]});
    let mut a = client(&env, step.clone());
    let mut b = client(&env, step);
    let mut ids = Vec::new();
    for i in 0..100 {
        ids.push(start(&mut a, &format!("a{i}")));
        ids.push(start(&mut b, &format!("b{i}")));
    }
    // Random-ish cancels from the CLI and from the other server, while jobs run.
    let mut cancels = Vec::new();
    for (n, id) in ids.iter().enumerate().filter(|(n, _)| n % 7 == 3) {
        if n % 2 == 0 {
            let out = crate::util::run(env.cmd().args(["cancel", id.as_str()]));
            assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
        } else {
            let (doc, is_error) = a.call("dispatch_cancel", json!({"job_id": id}));
            assert!(!is_error, "{doc}");
        }
        cancels.push(id.clone());
    }
    for id in &ids {
        let (doc, _) = a.call(
            "dispatch_wait",
            json!({"job_id": id, "timeout_seconds": 120}),
        );
        let status = doc["status"].as_str().unwrap().to_string();
        assert!(
            ["done", "cancelled", "failed"].contains(&status.as_str()),
            "{id}: {doc}"
        );
        if status == "failed" {
            panic!("no job should fail here: {doc}");
        }
    }
    let jobs_dir = env.config.parent().unwrap().join("jobs");
    let mut files = 0;
    for entry in std::fs::read_dir(&jobs_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            assert!(
                ["done", "cancelled"].contains(&v["status"].as_str().unwrap()),
                "{v}"
            );
            files += 1;
        }
    }
    assert_eq!(files, 200);
    let out = crate::util::run(env.cmd().args(["jobs", "--limit", "1000"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!cancels.is_empty());
}

#[test]
fn a_long_wait_keeps_a_progress_tracking_client_alive() {
    let env = TestEnv::new("jobs-waitbeat");
    agents(&env, "");
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env(
            "FAKE_CLAUDE_STEP",
            json!({"sleep": 2.5, "progress": []}).to_string(),
        )
        .env("AGENT_DISPATCH_HEARTBEAT_SECS", "0.5");
    });
    c.initialize("2025-11-25");
    let id = start(&mut c, "slow");
    let req = c.request(
        "tools/call",
        json!({"name": "dispatch_wait", "arguments": {"job_id": id, "timeout_seconds": 30}, "_meta": {"progressToken": 7}}),
    );
    let (doc, _) = McpClient::tool_payload(&c.response(req));
    assert_eq!(doc["status"], "done");
    let beats = c
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress" && n["params"]["progressToken"] == 7)
        .count();
    assert!(beats >= 1, "{:?}", c.notifications);
}

#[test]
fn retention_purges_old_finished_jobs_at_start_and_keeps_the_rest() {
    let env = TestEnv::new("jobs-retention");
    agents(&env, "settings:\n  job_retention_days: 2\n");
    let mut c = McpClient::ready(&env);
    let (old, _) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "old", "return_ref": true}),
    );
    let (fresh, _) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "fresh", "return_ref": true}),
    );
    drop(c);
    let jobs_dir = env.config.parent().unwrap().join("jobs");
    let old_path = jobs_dir.join(format!("{}.json", old["ref"].as_str().unwrap()));
    let mut job: Value =
        serde_json::from_str(&std::fs::read_to_string(&old_path).unwrap()).unwrap();
    let three_days_ago = job["completed_at"].as_f64().unwrap() - 3.0 * 86_400.0;
    for key in ["created_at", "started_at", "completed_at"] {
        job[key] = json!(three_days_ago);
    }
    std::fs::write(&old_path, serde_json::to_vec_pretty(&job).unwrap()).unwrap();

    let mut c = McpClient::ready(&env);
    let (doc, _) = c.call("fetch_result", json!({"ref": old["ref"]}));
    assert!(
        doc["error"].as_str().unwrap().starts_with("Ref not found"),
        "{doc}"
    );
    let (doc, _) = c.call("fetch_result", json!({"ref": fresh["ref"]}));
    assert_eq!(doc["success"], true, "{doc}");
}
