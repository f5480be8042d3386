//! The runner end to end: `agent-dispatch test` against the fake claude (each test in its own
//! temporary world), plus a few in-process `claude::run` calls for cancellation and hooks.


use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use agent_dispatch::cancel::Cancel;
use agent_dispatch::claude::{self, DispatchRequest, Hooks, OutputMode};
use agent_dispatch::config::{AgentConfig, Settings};
use agent_dispatch::result::ErrorType;
use serde_json::Value;
use crate::util::{Out, TestEnv, pid_alive, run};

/// A world with one agent `proj` (plus optional YAML lines under it).
fn world(name: &str, agent_extra: &str) -> (TestEnv, PathBuf) {
    let env = TestEnv::new(name);
    let dir = env.project("proj");
    env.write_config(&format!(
        "agents:\n  proj:\n    directory: {}\n{agent_extra}",
        dir.display()
    ));
    (env, dir)
}

fn test_cmd(env: &TestEnv, step: &str, args: &[&str]) -> Out {
    let mut c = env.cmd();
    c.arg("test").arg("proj").args(args);
    if !step.is_empty() {
        c.env("FAKE_CLAUDE_STEP", step);
    }
    run(&mut c)
}

fn argv_of(run: &Value) -> Vec<String> {
    run["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn success_runs_in_the_agent_dir_with_depth_null_stdin_and_fresh_session() {
    let (env, dir) = world("ok", "");
    let out = test_cmd(&env, r#"{"result": "It is a test project."}"#, &["hello"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout,
        format!(
            "Dispatching to 'proj' ({})...\nTask: hello\n---\nIt is a test project.\n\n--- Cost: $0.0100 | Turns: 1\n",
            dir.display()
        )
    );
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r["cwd"].as_str().unwrap(), dir.to_str().unwrap());
    assert_eq!(r["depth"], "1");
    assert_eq!(r["stdin"], "eof");
    // Own process group: the child leads it.
    assert_eq!(r["pid"], r["pgid"]);
    let argv = argv_of(r);
    assert_eq!(argv[..4], ["-p", "hello", "--output-format", "json"]);
    assert_eq!(argv[4], "--session-id");
    assert!(uuid::Uuid::parse_str(&argv[5]).is_ok());
    assert_eq!(argv.len(), 6);
}

#[test]
fn argv_carries_budget_model_permissions_and_tools_in_order() {
    let (env, _dir) = world(
        "argv",
        "    max_budget_usd: 1\n    model: sonnet\n    permission_mode: plan\n    allowed_tools: [Read, 'Bash(git diff)']\n    disallowed_tools: [Write]\n",
    );
    let out = test_cmd(&env, "", &["t"]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let argv = argv_of(&env.claude_runs()[0]);
    assert_eq!(
        argv[6..],
        [
            "--max-budget-usd",
            "1.0",
            "--model",
            "sonnet",
            "--permission-mode",
            "plan",
            "--allowedTools",
            "Read",
            "--allowedTools",
            "Bash(git diff)",
            "--disallowedTools",
            "Write"
        ]
    );
}

#[test]
fn injected_flag_in_config_is_refused_without_spawning() {
    let (env, _dir) = world("inject", "    model: --dangerously-skip-permissions\n");
    let out = test_cmd(&env, "", &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains(
        "Error: Refusing to dispatch: model '--dangerously-skip-permissions' starts with '-'"
    ));
    assert!(env.claude_runs().is_empty());
}

#[test]
fn task_starting_with_dash_reaches_the_fake_as_the_p_value() {
    let (env, _dir) = world("dash", "");
    let out = test_cmd(&env, "", &["--", "--permission-mode=bypassPermissions"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let argv = argv_of(&env.claude_runs()[0]);
    assert_eq!(argv[0], "-p");
    assert_eq!(argv[1].trim_start(), "--permission-mode=bypassPermissions");
    assert!(!argv[1].starts_with('-'));
    // No permission mode slipped in as a flag of its own.
    assert!(!argv.iter().any(|a| a == "--permission-mode"));
    assert!(
        out.stdout
            .contains("done:  --permission-mode=bypassPermissions")
    );
}

#[test]
fn is_error_is_a_failure_with_the_cli_text() {
    let (env, _dir) = world("iserr", "");
    let out = test_cmd(
        &env,
        r#"{"is_error": true, "result": "model overloaded"}"#,
        &[],
    );
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("---\nError: model overloaded\n"));
    assert!(!out.stdout.contains("Diagnosis"));
}

#[test]
fn denied_tools_on_success_print_a_note() {
    let (env, _dir) = world("denied", "");
    let step = r#"{"result": "partial answer", "permission_denials": [{"tool_name": "Bash"}, {"tool_name": "Edit"}]}"#;
    let out = test_cmd(&env, step, &[]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains(
        "partial answer\n\nNote: 2 tool call(s) were denied by permissions: Bash, Edit."
    ));
    assert!(out.stdout.contains("incomplete"));
}

#[test]
fn permission_error_carries_hint_and_diagnosis() {
    let (env, _dir) = world("perm", "");
    let step =
        r#"{"stdout_raw": "", "stderr": "Error: permission denied for tool Bash\n", "exit": 1}"#;
    let out = test_cmd(&env, step, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains(
        "Error: Error: permission denied for tool Bash\n\nHint: Agent 'proj' was denied"
    ));
    assert!(out.stdout.contains("Diagnosis: permission error"));
    assert!(
        out.stdout
            .contains("agent-dispatch update proj --permission-mode bypassPermissions")
    );
}

#[test]
fn crash_reports_stderr() {
    let (env, _dir) = world("crash", "");
    let step = r#"{"stdout_raw": "", "stderr": "Segmentation fault (core dumped)\n", "exit": 139}"#;
    let out = test_cmd(&env, step, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("Error: Segmentation fault (core dumped)\n")
    );
    let step = r#"{"stdout_raw": "", "exit": 3}"#;
    let out = test_cmd(&env, step, &[]);
    assert!(out.stdout.contains("Error: claude exited with code 3\n"));
    // SPEC §12 item 9: exit 0 with nothing printed is not an empty success.
    let out = test_cmd(&env, r#"{"stdout_raw": ""}"#, &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout
            .contains("Error: claude exited with code 0 but printed no result")
    );
}

#[test]
fn garbage_and_invalid_utf8_stdout_are_handled() {
    let (env, _dir) = world("garbage", "");
    let out = test_cmd(&env, r#"{"stdout_raw": "<<not json>>", "exit": 2}"#, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("Error: <<not json>>\n"));
    let out = test_cmd(&env, r#"{"stdout_raw": "[1, 2, 3]"}"#, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("not an object (array)"));
    // "ok " + 0xff + "!" with exit 0: a plain-text success, decoded lossily.
    let out = test_cmd(&env, r#"{"stdout_hex": "6f6b20ff21"}"#, &[]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("ok \u{fffd}!\n"));
}

#[test]
fn fifty_megabyte_result_arrives_whole() {
    let (env, _dir) = world("huge", "");
    let out = test_cmd(&env, r#"{"huge_mb": 50}"#, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body = out.stdout.split("---\n").nth(1).unwrap();
    let result = body.split("\n\n--- Cost").next().unwrap();
    assert_eq!(result.len(), 50 * 1024 * 1024);
}

#[test]
fn old_cli_is_retried_exactly_once_without_session_id() {
    let (env, _dir) = world("oldcli", "");
    let out = test_cmd(
        &env,
        r#"{"reject_session_id": true, "result": "old but fine"}"#,
        &[],
    );
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("old but fine"));
    assert!(out.stderr.contains("retrying agent 'proj' once"));
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 2);
    assert!(argv_of(&runs[0]).contains(&"--session-id".to_string()));
    assert!(!argv_of(&runs[1]).contains(&"--session-id".to_string()));

    // The retry fails the same way: still only two runs, in both modes.
    for mode in [&[][..], &["--stream"][..]] {
        let plan = env.root.join("plan.json");
        let _ = std::fs::remove_file(env.root.join("plan.json.count"));
        std::fs::write(
            &plan,
            r#"{"default": {"stdout_raw": "", "stderr": "error: unknown option '--session-id'\n", "exit": 1}}"#,
        )
        .unwrap();
        let before = env.claude_runs().len();
        let mut c = env.cmd();
        c.args(["test", "proj"])
            .args(mode)
            .env("FAKE_CLAUDE_PLAN", &plan);
        let out = run(&mut c);
        assert_eq!(out.code, 1);
        assert!(out.stdout.contains("unknown option '--session-id'"));
        assert_eq!(env.claude_runs().len() - before, 2, "mode {mode:?}");
    }

    // An unrelated error is not retried.
    let before = env.claude_runs().len();
    let out = test_cmd(
        &env,
        r#"{"stdout_raw": "", "stderr": "error: unknown option '--bogus-opt'\n", "exit": 1}"#,
        &[],
    );
    assert_eq!(out.code, 1);
    assert_eq!(env.claude_runs().len() - before, 1);
}

#[test]
fn timeout_kills_the_grandchild_and_reports_a_resumable_session() {
    let (env, _dir) = world("timeout", "");
    for mode in [&["--timeout", "1"][..], &["--timeout", "1", "--stream"][..]] {
        let before = env.claude_runs().len();
        let start = Instant::now();
        let out = test_cmd(&env, r#"{"grandchild": true, "sleep": 60}"#, mode);
        let elapsed = start.elapsed();
        assert_eq!(out.code, 1, "{}", out.stdout);
        assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        let runs = env.claude_runs();
        let r = &runs[before];
        let argv = argv_of(r);
        let sid = &argv[argv.iter().position(|a| a == "--session-id").unwrap() + 1];
        assert!(
            out.stdout
                .contains("Error: Agent 'proj' timed out after 1s.")
        );
        assert!(out.stdout.contains("timeout_seconds"));
        assert!(out.stdout.contains(&format!(
            "dispatch_session(agent='proj', task='Continue where you left off', session_id='{sid}')"
        )));
        assert!(out.stdout.contains("Diagnosis: timeout"));
        let pid = r["pid"].as_i64().unwrap();
        let grandchild = r["grandchild_pid"].as_i64().unwrap();
        assert!(!pid_alive(pid), "claude {pid} survived");
        assert!(!pid_alive(grandchild), "grandchild {grandchild} survived");
    }
}

#[test]
fn answer_before_a_hang_wins_over_the_timeout() {
    let (env, _dir) = world("late", "");
    let out = test_cmd(
        &env,
        r#"{"result": "answered", "hang": true}"#,
        &["--timeout", "1"],
    );
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("answered\n\nNote: The agent answered, but its process")
    );
    let pid = env.claude_runs()[0]["pid"].as_i64().unwrap();
    assert!(!pid_alive(pid));
}

#[test]
fn stderr_flood_does_not_deadlock() {
    let (env, _dir) = world("flood", "");
    for mode in [&[][..], &["--stream"][..]] {
        let start = Instant::now();
        let out = test_cmd(
            &env,
            r#"{"stderr_bytes": 1048576, "result": "survived"}"#,
            mode,
        );
        assert_eq!(out.code, 0, "{}", out.stdout);
        assert!(out.stdout.contains("survived"));
        assert!(start.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn recursion_is_refused_before_spawning() {
    let (env, _dir) = world("depth", "settings:\n  max_dispatch_depth: 3\n");
    let mut c = env.cmd();
    c.args(["test", "proj"]).env("AGENT_DISPATCH_DEPTH", "3");
    let out = run(&mut c);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("Error: Dispatch depth 3 >= max 3."));
    assert!(out.stdout.contains("settings.max_dispatch_depth"));
    assert!(env.claude_runs().is_empty());

    // Depth is passed on as parent + 1.
    let mut c = env.cmd();
    c.args(["test", "proj"]).env("AGENT_DISPATCH_DEPTH", "1");
    assert_eq!(run(&mut c).code, 0);
    assert_eq!(env.claude_runs().last().unwrap()["depth"], "2");
    // A non-integer fails closed (issue 12): refused, nothing spawned.
    let runs = env.claude_runs().len();
    let mut c = env.cmd();
    c.args(["test", "proj"])
        .env("AGENT_DISPATCH_DEPTH", "not_a_number");
    let out = run(&mut c);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("AGENT_DISPATCH_DEPTH"),
        "{}",
        out.stdout
    );
    assert_eq!(env.claude_runs().len(), runs);
}

#[test]
fn budget_stop_prints_its_diagnosis() {
    let (env, _dir) = world("budget", "    max_budget_usd: 0.5\n");
    let step = r#"{"subtype": "error_max_budget_usd", "is_error": true, "omit": ["result"], "errors": ["Reached maximum budget ($0.5)"]}"#;
    let out = test_cmd(&env, step, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains(
        "Error: Agent 'proj' stopped at its spending cap of $0.5: Reached maximum budget ($0.5)"
    ));
    assert!(out.stdout.contains("Diagnosis: spend cap reached"));
}

#[test]
fn unknown_agent_missing_claude_and_bad_config() {
    let (env, dir) = world("errors", "");
    let mut c = env.cmd();
    c.args(["test", "nope"]);
    let out = run(&mut c);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout,
        "Agent 'nope' not found. Run 'agent-dispatch list' to see agents.\n"
    );

    env.without_claude();
    // Only our bin dir and system directories: the in-process tests below put another fake on
    // this test binary's own PATH, which `TestEnv` would otherwise pass on.
    let mut c = env.cmd();
    c.args(["test", "proj"]).env("PATH", env.path_var());
    let out = run(&mut c);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("Error: Claude CLI not found in PATH. Install: https://docs.anthropic.com/en/docs/claude-code"));

    std::fs::remove_dir_all(&dir).unwrap();
    env.write_config(&format!(
        "agents:\n  proj:\n    directory: {}\n",
        dir.display()
    ));
    let out = test_cmd(&env, "", &[]);
    assert_eq!(out.code, 1);

    env.write_config("agents: [1]\n");
    let out = test_cmd(&env, "", &[]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.starts_with(&format!(
        "Error: config at {} has an invalid schema:",
        env.config.display()
    )));

    env.write_config("settings: 'unterminated\n");
    let out = test_cmd(&env, "", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.starts_with(&format!(
            "Error: config at {} is not valid YAML:",
            env.config.display()
        )),
        "{}",
        out.stdout
    );

    let mut c = env.cmd();
    c.args(["test", "proj", "--timeout", "soon"]);
    assert_eq!(run(&mut c).code, 2);
    let mut c = env.cmd();
    c.args(["test", "--help"]);
    let out = run(&mut c);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("Exit codes:"));
}

#[test]
fn stream_progress_is_printed_while_the_child_still_runs() {
    let (env, _dir) = world("stream", "");
    let mut c = env.cmd();
    c.args(["test", "proj", "--stream"])
        .env(
            "FAKE_CLAUDE_STEP",
            r#"{"progress": ["first step", "tool:Grep"], "sleep": 2, "result": "streamed"}"#,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let at = start.elapsed();
    assert_eq!(first, "  -> first step");
    // The fake logs itself before printing anything, so its pid is known by now.
    let pid = env.claude_runs()[0]["pid"].as_i64().unwrap();
    assert!(pid_alive(pid), "the line arrived only after claude exited");
    assert!(at < Duration::from_secs(2), "{at:?}");
    assert_eq!(lines.next().unwrap().unwrap(), "  -> Using tool: Grep");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("---\nstreamed\n"));
}

// In-process `claude::run`: PATH is set once for this test binary to a directory whose
// `claude` is the fake; each agent directory carries its own `.fake-claude-step.json`.

fn in_process_path() {
    static ONCE: OnceLock<PathBuf> = OnceLock::new();
    ONCE.get_or_init(|| {
        let bin = std::env::temp_dir().join(format!("ad-runner-bin-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap();
        let link = bin.join("claude");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(crate::util::fake_claude(), &link).unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // SAFETY: set once, before any in-process dispatch in this binary; the other tests
        // give their children an explicit PATH.
        unsafe {
            std::env::set_var("PATH", path);
            std::env::remove_var("AGENT_DISPATCH_DEPTH");
            std::env::remove_var("FAKE_CLAUDE_STEP");
            std::env::remove_var("FAKE_CLAUDE_PLAN");
            std::env::remove_var("FAKE_CLAUDE_LOG");
        }
        bin
    });
}

fn agent_with_step(env: &TestEnv, step: &str) -> AgentConfig {
    let dir = env.project("proj");
    std::fs::write(dir.join(".fake-claude-step.json"), step).unwrap();
    AgentConfig::new(dir)
}

fn cwd_runs(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join(".fake-claude-log.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn cancel_kills_the_group_and_reports_cancelled() {
    in_process_path();
    let env = TestEnv::new("cancel");
    let agent = agent_with_step(&env, r#"{"grandchild": true, "sleep": 60}"#);
    let dir = agent.directory.clone();
    let req = DispatchRequest::new("proj", agent, Settings::default(), "wait forever");
    let cancel = Cancel::new();
    let tripper = cancel.clone();
    let mut spawned = Vec::new();
    let mut on_spawn = |pid: u32| spawned.push(pid);
    let handle = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        tripper.trip();
    });
    let start = Instant::now();
    let r = claude::run(
        &req,
        OutputMode::Json,
        Hooks {
            cancel: Some(&cancel),
            on_spawn: Some(&mut on_spawn),
            ..Hooks::default()
        },
    );
    handle.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(4));
    assert_eq!(r.error_type, Some(ErrorType::Cancelled));
    assert!(r.session_id.is_some());
    let runs = cwd_runs(&dir);
    assert_eq!(spawned, [runs[0]["pid"].as_u64().unwrap() as u32]);
    assert!(!pid_alive(runs[0]["pid"].as_i64().unwrap()));
    assert!(!pid_alive(runs[0]["grandchild_pid"].as_i64().unwrap()));
}

#[test]
fn progress_callback_fires_before_the_child_exits() {
    in_process_path();
    let env = TestEnv::new("progress");
    let agent = agent_with_step(
        &env,
        r#"{"progress": ["thinking", "tool:Read"], "sleep": 1, "result": "ok"}"#,
    );
    let dir = agent.directory.clone();
    let mut req = DispatchRequest::new("proj", agent, Settings::default(), "go");
    req.caller = Some("tester".into());
    let mut seen: Vec<(String, bool)> = Vec::new();
    let mut on_progress = |line: &str| {
        let pid = cwd_runs(&dir)[0]["pid"].as_i64().unwrap();
        seen.push((line.to_string(), pid_alive(pid)));
    };
    let r = claude::run(
        &req,
        OutputMode::Stream,
        Hooks {
            on_progress: Some(&mut on_progress),
            ..Hooks::default()
        },
    );
    assert!(r.success, "{r:?}");
    assert_eq!(
        seen,
        [
            ("thinking".to_string(), true),
            ("Using tool: Read".to_string(), true)
        ]
    );
    let argv = argv_of(&cwd_runs(&env.project("proj"))[0]);
    assert_eq!(argv[1], "## Dispatched by\ntester\n\n## Task\ngo");
    assert_eq!(argv.last().map(String::as_str), Some("--verbose"));
}

#[test]
fn resume_uses_resume_flag_and_keeps_the_session() {
    in_process_path();
    let env = TestEnv::new("resume");
    let agent = agent_with_step(&env, r#"{"result": "continued"}"#);
    let dir = agent.directory.clone();
    let mut req = DispatchRequest::new("proj", agent, Settings::default(), "more");
    req.resume_session = Some("sess-123".into());
    let r = claude::run(&req, OutputMode::Json, Hooks::default());
    assert!(r.success);
    assert_eq!(r.session_id.as_deref(), Some("sess-123"));
    let argv = argv_of(&cwd_runs(&dir)[0]);
    assert_eq!(argv[4..], ["--resume", "sess-123"]);
}

#[test]
fn ctrl_c_on_test_stops_the_child_group_and_exits_130() {
    let (env, _dir) = world("ctrlc", "");
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let _ = std::fs::remove_file(&env.log);
        let mut child = env
            .cmd()
            .args(["test", "proj", "hang"])
            .env("FAKE_CLAUDE_STEP", r#"{"sleep": 60, "grandchild": true}"#)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while env.claude_runs().is_empty() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "child never started"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let run = env.claude_runs()[0].clone();
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "signal {signal}");
        for key in ["pid", "grandchild_pid"] {
            let pid = run[key].as_i64().unwrap();
            let gone = (0..100).any(|_| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                !crate::util::pid_alive(pid)
            });
            assert!(gone, "{key} {pid} outlived the interrupted test command");
        }
    }
}
