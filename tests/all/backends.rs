//! Codex and Gemini agents end to end through the binary (MCP and the CLI), against the fakes in
//! `fixtures/` that imitate the real CLIs: the command line each backend runs, sessions,
//! streaming progress, jobs and cancel, timeouts and crashes, settings a CLI cannot honour, and
//! a fan-out that mixes backends. Plus the dispatch protocol and outcomes on the claude side.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::mcp::McpClient;
use crate::util::{TestEnv, pid_alive, run, wait_until};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A world with a claude agent `cl`, a codex agent `cx` and a gemini agent `gm` (each with its
/// own project), `extra` YAML appended under `agents:`, and the three fakes on PATH.
struct World {
    env: TestEnv,
    codex_log: PathBuf,
    gemini_log: PathBuf,
}

fn world(name: &str, agent_extra: &str, settings: &str) -> World {
    let env = TestEnv::new(name);
    for (fake, cli) in [("fake-codex", "codex"), ("fake-gemini", "gemini")] {
        std::os::unix::fs::symlink(fixture(fake), env.bin_dir.join(cli)).unwrap();
    }
    let (cl, cx, gm) = (env.project("cl"), env.project("cx"), env.project("gm"));
    env.write_config(&format!(
        "agents:\n  cl:\n    directory: {}\n  cx:\n    directory: {}\n    backend: codex\n{agent_extra}  gm:\n    directory: {}\n    backend: gemini\n{settings}",
        cl.display(),
        cx.display(),
        gm.display()
    ));
    let codex_log = env.root.join("codex-log.jsonl");
    let gemini_log = env.root.join("gemini-log.jsonl");
    World {
        env,
        codex_log,
        gemini_log,
    }
}

impl World {
    fn client(&self, codex_step: Value, gemini_step: Value) -> McpClient {
        let mut c =
            McpClient::start_with(&self.env, |cmd| self.tweak(cmd, &codex_step, &gemini_step));
        c.initialize("2025-11-25");
        c
    }

    fn tweak(&self, cmd: &mut std::process::Command, codex_step: &Value, gemini_step: &Value) {
        cmd.env("FAKE_CODEX_LOG", &self.codex_log)
            .env("FAKE_GEMINI_LOG", &self.gemini_log)
            .env("FAKE_CODEX_STEP", codex_step.to_string())
            .env("FAKE_GEMINI_STEP", gemini_step.to_string())
            .env("GEMINI_API_KEY", "test-key");
    }

    fn runs(path: &Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn codex_runs(&self) -> Vec<Value> {
        Self::runs(&self.codex_log)
    }

    fn gemini_runs(&self) -> Vec<Value> {
        Self::runs(&self.gemini_log)
    }
}

/// Starts a long job on `agent`, waits until its record shows `progress`, cancels it, and
/// returns the run the fake logged.
fn job_progresses_then_cancels(
    c: &mut McpClient,
    agent: &str,
    progress: &str,
    runs: impl Fn() -> Vec<Value>,
) -> Value {
    let (doc, _) = c.call("dispatch_async", json!({"agent": agent, "task": "long"}));
    let id = doc["job_id"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let (job, _) = c.call("dispatch_status", json!({"job_id": id}));
            job["progress"]
                .as_array()
                .is_some_and(|p| p.iter().any(|l| l == progress))
        }),
        "no progress from the {agent} job"
    );
    let (doc, _) = c.call("dispatch_cancel", json!({"job_id": id}));
    assert_eq!(doc["outcome"], "cancelled_running", "{doc}");
    runs()[0].clone()
}

/// The fake's process and the grandchild it forked are both gone.
fn assert_no_process_left(run: &Value) {
    for key in ["pid", "grandchild_pid"] {
        let pid = run[key].as_i64().unwrap();
        assert!(
            wait_until(Duration::from_secs(30), || !pid_alive(pid)),
            "{key} survived"
        );
    }
}

fn argv(run: &Value) -> Vec<String> {
    run["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn has_pair(argv: &[String], flag: &str, value: &str) -> bool {
    argv.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn codex_runs_fresh_and_resumes_its_thread() {
    let w = world("be-codex", "", "");
    let mut c = w.client(
        json!({"result": "Codex says hi", "commands": ["ls"], "thread_id": "0199aaaa-0000-7000-8000-000000000001"}),
        json!({}),
    );
    let (doc, is_error) = c.call("dispatch", json!({"agent": "cx", "task": "list files"}));
    assert!(!is_error, "{doc}");
    assert_eq!(doc["success"], true, "{doc}");
    assert_eq!(doc["result"], "Codex says hi");
    assert_eq!(doc["session_id"], "0199aaaa-0000-7000-8000-000000000001");
    assert!(doc["tokens"]["input_tokens"].as_u64().is_some(), "{doc}");
    let run = &w.codex_runs()[0];
    let a = argv(run);
    assert_eq!(a[0], "exec", "{a:?}");
    assert!(has_pair(&a, "--sandbox", "read-only"), "{a:?}");
    assert!(a.contains(&"--json".to_string()) && a.contains(&"--skip-git-repo-check".to_string()));
    // The recursion guard counts across backends.
    assert_eq!(run["depth"], "1");
    // No system-prompt flag in codex: the protocol leads the prompt.
    assert!(
        a.last().unwrap().starts_with("## Dispatch protocol"),
        "{a:?}"
    );

    let (doc, _) = c.call(
        "dispatch_session",
        json!({"agent": "cx", "task": "more", "session_id": "0199aaaa-0000-7000-8000-000000000001"}),
    );
    assert_eq!(doc["success"], true, "{doc}");
    assert_eq!(doc["session_id"], "0199aaaa-0000-7000-8000-000000000001");
    let a = argv(&w.codex_runs()[1]);
    let at = a.iter().position(|x| x == "resume").expect("resume");
    assert_eq!(a[at + 1], "0199aaaa-0000-7000-8000-000000000001");
    // --sandbox is not a resume option: it stands before `resume`.
    assert!(
        a.iter().position(|x| x == "--sandbox").unwrap() < at,
        "{a:?}"
    );
}

#[test]
fn codex_permission_modes_map_to_the_sandbox() {
    for (mode, expect) in [
        ("acceptEdits", vec!["--sandbox", "workspace-write"]),
        (
            "bypassPermissions",
            vec!["--dangerously-bypass-approvals-and-sandbox"],
        ),
        ("plan", vec!["--sandbox", "read-only"]),
    ] {
        let w = world("be-cxperm", &format!("    permission_mode: {mode}\n"), "");
        let mut c = w.client(json!({}), json!({}));
        let (doc, _) = c.call("dispatch", json!({"agent": "cx", "task": "t"}));
        assert_eq!(doc["success"], true, "{mode}: {doc}");
        let a = argv(&w.codex_runs()[0]);
        let found = a.windows(expect.len()).any(|win| win == expect.as_slice());
        assert!(found, "{mode}: {a:?}");
    }
}

#[test]
fn codex_stream_shows_progress_and_a_failed_turn_is_reported() {
    let w = world("be-cxstream", "", "");
    let mut c = w.client(
        json!({"commands": ["cargo test"], "reasoning": "**Running the tests**", "result": "green"}),
        json!({}),
    );
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch_stream", "arguments": {"agent": "cx", "task": "t"}, "_meta": {"progressToken": 7}}),
    );
    let (doc, _) = McpClient::tool_payload(&c.response(id));
    assert_eq!(doc["result"], "green", "{doc}");
    let messages = c.log_messages();
    assert!(
        messages.iter().any(|m| m == "[cx] Running: cargo test"),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m == "[cx] green"), "{messages:?}");

    let w = world("be-cxfail", "", "");
    let mut c = w.client(
        json!({"fail": "model exploded", "thread_id": "0199bbbb-0000-7000-8000-000000000002"}),
        json!({}),
    );
    let (doc, _) = c.call("dispatch", json!({"agent": "cx", "task": "t"}));
    assert_eq!(doc["success"], false);
    assert_eq!(doc["error_type"], "cli_error");
    assert!(
        doc["error"].as_str().unwrap().contains("model exploded"),
        "{doc}"
    );
    assert_eq!(doc["session_id"], "0199bbbb-0000-7000-8000-000000000002");
}

#[test]
fn codex_timeout_and_crash_leave_no_process() {
    let w = world("be-cxkill", "    timeout: 1\n", "");
    let mut c = w.client(json!({"sleep": 600, "grandchild": true}), json!({}));
    let (doc, _) = c.call("dispatch", json!({"agent": "cx", "task": "t"}));
    assert_eq!(doc["error_type"], "timeout", "{doc}");
    let run = &w.codex_runs()[0];
    assert_no_process_left(run);

    let w = world("be-cxcrash", "", "");
    let mut c = w.client(json!({"signal": 9}), json!({}));
    let (doc, _) = c.call("dispatch", json!({"agent": "cx", "task": "t"}));
    assert_eq!(doc["success"], false, "{doc}");
    let w = world("be-cxgarbage", "", "");
    let mut c = w.client(
        json!({"stdout_raw": "this is not json\n{\"half\":"}),
        json!({}),
    );
    let (doc, _) = c.call("dispatch", json!({"agent": "cx", "task": "t"}));
    assert_eq!(doc["success"], false, "{doc}");
}

#[test]
fn gemini_runs_with_our_session_and_resumes_it() {
    let w = world("be-gemini", "", "");
    let mut c = w.client(
        json!({}),
        json!({"result": "Gemini answer", "preamble": "Let me check.", "tools": [{"name": "run_shell_command", "params": {"command": "ls"}, "status": "success", "output": "a"}]}),
    );
    let (doc, _) = c.call("dispatch", json!({"agent": "gm", "task": "what is here"}));
    assert_eq!(doc["success"], true, "{doc}");
    assert_eq!(doc["result"], "Gemini answer");
    let run = &w.gemini_runs()[0];
    let a = argv(run);
    assert!(
        has_pair(&a, "-o", "stream-json") && a.contains(&"--skip-trust".to_string()),
        "{a:?}"
    );
    assert!(has_pair(&a, "--approval-mode", "default"), "{a:?}");
    let sid = &a[a.iter().position(|x| x == "--session-id").unwrap() + 1];
    assert_eq!(doc["session_id"], sid.as_str());
    assert_eq!(run["env"]["GEMINI_CLI_NO_RELAUNCH"], "true", "{run}");

    let (doc, _) = c.call(
        "dispatch_session",
        json!({"agent": "gm", "task": "go on", "session_id": sid}),
    );
    assert_eq!(doc["session_id"], sid.as_str(), "{doc}");
    assert!(has_pair(&argv(&w.gemini_runs()[1]), "--resume", sid));

    // An unknown session is a not_found with a way forward.
    let w = world("be-gmresume", "", "");
    let mut c = w.client(json!({}), json!({"unknown_session": true}));
    let (doc, _) = c.call(
        "dispatch_session",
        json!({"agent": "gm", "task": "go on", "session_id": "no-such-session"}),
    );
    assert_eq!(doc["error_type"], "not_found", "{doc}");
}

#[test]
fn gemini_approval_and_tools_map_and_unsupported_settings_are_refused() {
    let w = world("be-gmperm", "", "");
    let out = run(w.env.cmd().args([
        "update",
        "gm",
        "--permission-mode",
        "bypassPermissions",
        "--allowed-tools",
        "read_file,glob",
    ]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let mut c = w.client(json!({}), json!({}));
    let (doc, _) = c.call("dispatch", json!({"agent": "gm", "task": "t"}));
    assert_eq!(doc["success"], true, "{doc}");
    let a = argv(&w.gemini_runs()[0]);
    assert!(has_pair(&a, "--approval-mode", "yolo"), "{a:?}");
    assert!(has_pair(&a, "--allowed-tools", "read_file,glob"), "{a:?}");

    let before = w.env.read_config();
    let out = run(w.env.cmd().args(["update", "gm", "--max-budget", "2"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stderr.contains("no spending cap"), "{}", out.stderr);
    let out = run(w
        .env
        .cmd()
        .args(["update", "cx", "--allowed-tools", "Bash"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no per-tool allow or deny lists"),
        "{}",
        out.stderr
    );
    assert_eq!(
        w.env.read_config(),
        before,
        "a refused update wrote the file"
    );
    let (doc, is_error) = c.call(
        "add_agent",
        json!({"name": "cx2", "directory": w.env.project("cx").display().to_string(), "backend": "codex", "max_budget_usd": 1.0}),
    );
    assert!(
        is_error && doc["error"].as_str().unwrap().contains("no spending cap"),
        "{doc}"
    );
    let (doc, is_error) = c.call("update_agent", json!({"name": "cl", "backend": "cursor"}));
    assert!(
        is_error
            && doc["error"]
                .as_str()
                .unwrap()
                .contains("claude, codex, gemini"),
        "{doc}"
    );
    let out = run(w.env.cmd().args([
        "add",
        "g2",
        w.env.project("gm").to_str().unwrap(),
        "--backend",
        "gemini",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(w.env.read_config().contains("backend: gemini"));
    let (doc, _) = c.call("inspect_agent", json!({"name": "g2"}));
    assert_eq!(doc["backend"], "gemini", "{doc}");
}

#[test]
fn a_parallel_call_mixes_backends_with_a_gemini_aggregator() {
    let w = world("be-mix", "", "");
    let mut c = McpClient::start_with(&w.env, |cmd| {
        w.tweak(
            cmd,
            &json!({"result": "from codex"}),
            &json!({"result": "merged by gemini"}),
        );
        cmd.env(
            "FAKE_CLAUDE_STEP",
            json!({"result": "from claude"}).to_string(),
        );
    });
    c.initialize("2025-11-25");
    let items = json!([{"agent": "cl", "task": "a"}, {"agent": "cx", "task": "b"}]).to_string();
    let (doc, is_error) = c.call(
        "dispatch_parallel",
        json!({"dispatches": items, "aggregate": "gm"}),
    );
    assert!(!is_error, "{doc}");
    let results = doc["individual_results"].as_array().unwrap();
    assert_eq!(results[0]["result"], "from claude", "{doc}");
    assert_eq!(results[1]["result"], "from codex", "{doc}");
    assert_eq!(doc["aggregated"]["result"], "merged by gemini", "{doc}");
    let prompt = argv(&w.gemini_runs()[0]);
    let text = &prompt[prompt.iter().position(|x| x == "-p").unwrap() + 1];
    assert!(
        text.contains("## Agent: cl [OK]\nfrom claude")
            && text.contains("## Agent: cx [OK]\nfrom codex"),
        "{text}"
    );
}

#[test]
fn async_jobs_of_other_backends_stream_progress_and_cancel_cleanly() {
    let w = world("be-jobs", "", "");
    let mut c = w.client(
        json!({"commands": ["sleep-ish"], "sleep": 600, "grandchild": true}),
        json!({}),
    );
    let run = job_progresses_then_cancels(&mut c, "cx", "Running: sleep-ish", || w.codex_runs());
    assert_no_process_left(&run);
}

#[test]
fn the_cli_test_command_runs_every_backend() {
    let w = world("be-cli", "", "");
    for (agent, step_var, step) in [
        ("cx", "FAKE_CODEX_STEP", json!({"result": "codex ok"})),
        ("gm", "FAKE_GEMINI_STEP", json!({"result": "gemini ok"})),
    ] {
        let mut cmd = w.env.cmd();
        w.tweak(&mut cmd, &json!({}), &json!({}));
        cmd.env(step_var, step.to_string())
            .args(["test", agent, "hello", "--stream"]);
        let out = run(&mut cmd);
        assert_eq!(out.code, 0, "{agent}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains(
                &format!("{agent} ok")
                    .replace("cx", "codex")
                    .replace("gm", "gemini")
            ),
            "{}",
            out.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The dispatch protocol and outcomes (claude).

fn claude_argv(env: &TestEnv, n: usize) -> Vec<String> {
    argv(&env.claude_runs()[n])
}

fn system_prompt_of(argv: &[String]) -> Option<String> {
    argv.iter()
        .position(|a| a == "--append-system-prompt")
        .map(|i| argv[i + 1].clone())
}

#[test]
fn the_protocol_and_instructions_reach_claude_and_outcomes_are_lifted() {
    let w = world("be-proto", "", "");
    let cl = w.env.project("cl");
    w.env.write_config(&format!(
        "agents:\n  cl:\n    directory: {}\n    instructions: Never push to main.\n",
        cl.display()
    ));
    let mut c = McpClient::start_with(&w.env, |cmd| {
        cmd.env(
            "FAKE_CLAUDE_STEP",
            json!({"result": "Half of it.\n\nSTATUS: partial"}).to_string(),
        );
    });
    c.initialize("2025-11-25");
    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "cl", "task": "t", "caller": "web"}),
    );
    assert_eq!(doc["success"], true, "{doc}");
    assert_eq!(doc["result"], "Half of it.");
    assert_eq!(doc["outcome"], "partial");
    let hint = doc["hint"].as_str().unwrap();
    assert!(
        hint.contains("dispatch_session(agent='cl'")
            && hint.contains(doc["session_id"].as_str().unwrap()),
        "{hint}"
    );
    let system = system_prompt_of(&claude_argv(&w.env, 0)).expect("--append-system-prompt");
    assert!(system.starts_with("## Dispatch protocol"), "{system}");
    assert!(system.contains("\"web\"") && system.contains("STATUS: done"));
    assert!(
        system.ends_with("## Standing instructions for \"cl\"\nNever push to main."),
        "{system}"
    );
    // Never mixed into the task.
    let a = claude_argv(&w.env, 0);
    assert!(!a[a.iter().position(|x| x == "-p").unwrap() + 1].contains("Dispatch protocol"));
    // An unfinished outcome is not cached: the same call runs again.
    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "cl", "task": "t", "caller": "web"}),
    );
    assert!(doc.get("cached").is_none(), "{doc}");
    assert_eq!(w.env.claude_runs().len(), 2);
    // A ref payload and the job summary carry it too.
    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "cl", "task": "t2", "return_ref": true}),
    );
    assert_eq!(doc["outcome"], "partial", "{doc}");
    let (jobs, _) = c.call("dispatch_jobs", json!({}));
    assert_eq!(jobs[0]["outcome"], "partial", "{jobs}");
    // JSON replies are not asked for a STATUS line.
    c.call(
        "dispatch",
        json!({"agent": "cl", "task": "t3", "response_format": "json"}),
    );
    let system = system_prompt_of(&claude_argv(&w.env, 3)).unwrap();
    assert!(!system.contains("STATUS"), "{system}");

    // Switched off, only the instructions remain; with neither, no flag at all.
    w.env.write_config(&format!(
        "agents:\n  cl:\n    directory: {}\nsettings:\n  dispatch_protocol: false\n",
        cl.display()
    ));
    c.call("dispatch", json!({"agent": "cl", "task": "t4"}));
    assert_eq!(system_prompt_of(&claude_argv(&w.env, 4)), None);
}

#[test]
fn an_account_limit_is_a_usage_limit_with_the_reset_time() {
    let w = world("be-limit", "", "");
    let mut c = McpClient::start_with(&w.env, |cmd| {
        cmd.env(
            "FAKE_CLAUDE_STEP",
            json!({"is_error": true, "result": "You've hit your session limit · resets 6pm (Asia/Almaty)"}).to_string(),
        );
    });
    c.initialize("2025-11-25");
    let (doc, _) = c.call("dispatch", json!({"agent": "cl", "task": "t"}));
    assert_eq!(doc["error_type"], "usage_limit", "{doc}");
    let e = doc["error"].as_str().unwrap();
    assert!(
        e.contains("It resets 6pm (Asia/Almaty).") && e.contains("another agent"),
        "{e}"
    );
}

#[test]
fn doctor_checks_each_backend_in_use() {
    let w = world("be-doctor", "", "");
    let doctor = |extra: &[(&str, &str)]| {
        let mut cmd = w.env.cmd();
        cmd.arg("doctor");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run(&mut cmd)
    };
    let out = doctor(&[]);
    assert!(
        out.stdout.contains("[OK] claude: ") && out.stdout.contains("(2.1.330 (Claude Code))"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("[OK] codex: ") && out.stdout.contains("(codex-cli 0.169.0)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[OK] gemini: "), "{}", out.stdout);
    assert!(
        !out.stdout.contains("--append-system-prompt"),
        "{}",
        out.stdout
    );

    let out = doctor(&[("FAKE_CLAUDE_OLD_HELP", "1")]);
    assert!(
        out.stdout
            .contains("[WARN] claude --help does not list --append-system-prompt"),
        "{}",
        out.stdout
    );
    std::fs::remove_file(w.env.bin_dir.join("gemini")).unwrap();
    let out = doctor(&[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("[FAIL] gemini: not found (1 agent(s) use it)"),
        "{}",
        out.stdout
    );
}

#[test]
fn gemini_streams_times_out_crashes_and_cancels_cleanly() {
    let w = world("be-gmstream", "", "");
    let mut c = w.client(
        json!({}),
        json!({"preamble": "Looking.", "tools": [{"name": "read_file", "params": {"path": "a"}, "status": "success", "output": "x"}], "result": "Read it."}),
    );
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch_stream", "arguments": {"agent": "gm", "task": "t"}, "_meta": {"progressToken": "g"}}),
    );
    let (doc, _) = McpClient::tool_payload(&c.response(id));
    assert_eq!(doc["result"], "Read it.", "{doc}");
    let messages = c.log_messages();
    assert!(
        messages.iter().any(|m| m == "[gm] Using tool: read_file"),
        "{messages:?}"
    );

    // A timeout: the whole group goes, and the session we chose stays resumable.
    let w = world("be-gmkill", "    timeout: 1\n", "");
    let w_gm = w.env.project("gm");
    w.env.write_config(&format!(
        "agents:\n  gm:\n    directory: {}\n    backend: gemini\n    timeout: 1\n",
        w_gm.display()
    ));
    let mut c = w.client(json!({}), json!({"sleep": 600, "grandchild": true}));
    let (doc, _) = c.call("dispatch", json!({"agent": "gm", "task": "t"}));
    assert_eq!(doc["error_type"], "timeout", "{doc}");
    let run = &w.gemini_runs()[0];
    let a = argv(run);
    let sid = &a[a.iter().position(|x| x == "--session-id").unwrap() + 1];
    assert_eq!(doc["session_id"], sid.as_str(), "{doc}");
    assert_no_process_left(run);

    for (name, step) in [
        ("be-gmcrash", json!({"signal": 9})),
        ("be-gmgarbage", json!({"stdout_raw": "<html>oops</html>\n"})),
        (
            "be-gmapi",
            json!({"api_error": {"message": "bad request", "status": 400}}),
        ),
    ] {
        let w = world(name, "", "");
        let mut c = w.client(json!({}), step.clone());
        let (doc, _) = c.call("dispatch", json!({"agent": "gm", "task": "t"}));
        assert_eq!(doc["success"], false, "{step}: {doc}");
    }

    // An async job: progress while it runs, then a cancel that leaves nothing behind.
    let w = world("be-gmjob", "", "");
    let mut c = w.client(
        json!({}),
        json!({"tools": [{"name": "glob", "params": {}, "status": "success", "output": ""}], "sleep": 600, "grandchild": true}),
    );
    let run = job_progresses_then_cancels(&mut c, "gm", "Using tool: glob", || w.gemini_runs());
    assert_no_process_left(&run);
}
