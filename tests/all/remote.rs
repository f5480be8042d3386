//! Remote agents against a real OpenSSH server on 127.0.0.1 that each test starts and stops
//! itself: a throwaway host key and user key in the test's temporary directory, an sshd_config
//! pointing only there, `sshd -D` as the test's child (killed on drop). The "remote" project is
//! a temporary directory and the remote `claude` is `fixtures/fake-claude`, found through the
//! PATH the test's sshd gives its sessions (`SetEnv PATH=…`: ssh does not forward ours). The
//! fake reads its step from `.fake-claude-step.json` in the project and logs each run (argv,
//! cwd, depth, pid, grandchild pid) to `.fake-claude-log.jsonl` there, which is how these tests
//! see what reached the far side. Needs `/usr/sbin/sshd` (installed by `.ci/run`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::mcp::McpClient;
use crate::util::sshd::{Sshd, keygen};
use crate::util::{TestEnv, fake_claude, pid_alive, run, wait_until};

/// A test world: the environment, its sshd, a remote project `far` (on 127.0.0.1 over ssh) and
/// a local project `near`.
struct World {
    env: TestEnv,
    sshd: Sshd,
    far: PathBuf,
}

fn world(name: &str, far_extra: &str, settings_extra: &str) -> World {
    let env = TestEnv::new(name);
    let links = [
        ("claude", fake_claude()),
        ("gemini", fake_claude().with_file_name("fake-gemini")),
    ];
    // The sessions' HOME is ours, so a `~/…` directory is tested against a known place.
    let rhome = env.root.join("rhome");
    std::fs::create_dir_all(&rhome).unwrap();
    let set_env = format!("GEMINI_API_KEY=fake-key HOME={}", rhome.display());
    let sshd = Sshd::start(&env.root, &links, &set_env);
    let far = env.project("far");
    let near = env.project("near");
    let world = World { env, sshd, far };
    world.env.write_config(&format!(
        "agents:\n  far:\n    directory: {}\n    host: 127.0.0.1\n{far_extra}  near:\n    directory: {}\nsettings:\n  ssh_command: {}\n{settings_extra}",
        world.far.display(),
        near.display(),
        world.sshd.ssh_command(),
    ));
    world
}

impl Drop for World {
    /// The control-socket directory may be a short one outside the test root (the root is too
    /// deep for a socket path); it goes too.
    fn drop(&mut self) {
        let dir = agent_dispatch::remote::control_dir(&self.env.config);
        if let Some(sockets) = agent_dispatch::remote::usable_control_dir(&dir)
            && !sockets.starts_with(&self.env.root)
        {
            let _ = std::fs::remove_dir_all(sockets);
        }
    }
}

impl World {
    /// The step the remote fake plays (it cannot see our environment, only its directory).
    fn remote_step(&self, step: Value) {
        std::fs::write(self.far.join(".fake-claude-step.json"), step.to_string()).unwrap();
    }

    fn remote_runs(&self) -> Vec<Value> {
        std::fs::read_to_string(self.far.join(".fake-claude-log.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn client(&self) -> McpClient {
        let mut c = McpClient::start(&self.env);
        c.initialize("2025-11-25");
        c
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

/// Waits until the remote run's process and its grandchild are gone.
fn assert_remote_tree_gone(run: &Value) {
    let pid = run["pid"].as_i64().expect("pid logged");
    assert!(
        wait_until(Duration::from_secs(30), || !pid_alive(pid)),
        "remote claude {pid} survived"
    );
    if let Some(gc) = run["grandchild_pid"].as_i64() {
        assert!(
            wait_until(Duration::from_secs(30), || !pid_alive(gc)),
            "remote grandchild {gc} survived"
        );
    }
}

const HOSTILE: &str = "it's \"quoted\" $HOME ${PATH} `id` $(whoami) \\ back\nnew line\n\ttab; rm -rf / & | > * ünïcödé 日本語 🚀 '\\''";

#[test]
fn a_remote_run_resumes_and_a_hostile_task_arrives_byte_for_byte() {
    let w = world("rm-fresh", "", "");
    w.remote_step(json!({"result": "remote answer"}));
    let mut c = w.client();
    let (doc, is_error) = c.call("dispatch", json!({"agent": "far", "task": HOSTILE}));
    assert!(!is_error, "{doc}");
    assert_eq!(doc["success"], true, "{doc}");
    assert_eq!(doc["result"], "remote answer");
    let session = doc["session_id"].as_str().unwrap().to_string();
    let runs = w.remote_runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let a = argv(&runs[0]);
    let prompt = &a[a.iter().position(|x| x == "-p").unwrap() + 1];
    assert!(prompt.contains(HOSTILE), "{prompt:?}");
    assert!(has_pair(&a, "--session-id", &session), "{a:?}");
    // The depth crossed the ssh hop, and the run happened in the remote directory.
    assert_eq!(runs[0]["depth"], "1");
    assert_eq!(runs[0]["cwd"].as_str().unwrap(), w.far.to_str().unwrap());
    // Nothing ran locally.
    assert!(w.env.claude_runs().is_empty());

    let (doc, _) = c.call(
        "dispatch_session",
        json!({"agent": "far", "task": "more", "session_id": session}),
    );
    assert_eq!(doc["success"], true, "{doc}");
    assert_eq!(doc["session_id"], session.as_str());
    let a = argv(&w.remote_runs()[1]);
    assert!(has_pair(&a, "--resume", &session), "{a:?}");
}

fn has_pair(a: &[String], flag: &str, value: &str) -> bool {
    a.windows(2).any(|w| w[0] == flag && w[1] == value)
}

#[test]
fn streaming_progress_comes_over_ssh() {
    let w = world("rm-stream", "", "");
    w.remote_step(json!({"progress": ["reading the code", "tool:Read"], "result": "streamed"}));
    let mut c = w.client();
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch_stream", "arguments": {"agent": "far", "task": "t"}, "_meta": {"progressToken": 3}}),
    );
    let (doc, _) = McpClient::tool_payload(&c.response(id));
    assert_eq!(doc["result"], "streamed", "{doc}");
    let messages = c.log_messages();
    assert!(
        messages.iter().any(|m| m.contains("reading the code")),
        "{messages:?}"
    );
    // The group marker never leaks into what the caller sees.
    assert!(!format!("{doc}{messages:?}").contains("agent-dispatch-remote"));
}

#[test]
fn cancelling_an_async_job_kills_the_remote_group() {
    let w = world("rm-cancel", "", "");
    w.remote_step(json!({"hang": true, "grandchild": true}));
    let mut c = w.client();
    let (doc, _) = c.call("dispatch_async", json!({"agent": "far", "task": "long"}));
    let id = doc["job_id"].as_str().unwrap().to_string();
    assert!(
        wait_until(Duration::from_secs(60), || w
            .remote_runs()
            .first()
            .is_some_and(|r| r["grandchild_pid"].is_i64())),
        "the remote run did not start"
    );
    let run = w.remote_runs()[0].clone();
    assert!(pid_alive(run["pid"].as_i64().unwrap()));
    // Cancelled from another server process sharing the job store.
    let mut other = w.client();
    let (doc, _) = other.call("dispatch_cancel", json!({"job_id": id}));
    assert!(
        doc["status"] == "cancelled" || doc["cancelled"] == true,
        "{doc}"
    );
    assert!(wait_until(Duration::from_secs(60), || {
        let (job, _) = c.call("dispatch_status", json!({"job_id": id}));
        job["status"] == "cancelled"
    }));
    assert_remote_tree_gone(&run);
}

#[test]
fn a_timeout_kills_the_remote_group() {
    // Long enough for the remote run to start on a loaded machine before it is stopped.
    let w = world("rm-timeout", "    timeout: 5\n", "");
    w.remote_step(json!({"sleep": 600, "grandchild": true}));
    let mut c = w.client();
    let (doc, _) = c.call("dispatch", json!({"agent": "far", "task": "long"}));
    assert_eq!(doc["error_type"], "timeout", "{doc}");
    let runs = w.remote_runs();
    assert_eq!(runs.len(), 1);
    assert_remote_tree_gone(&runs[0]);
}

#[test]
fn a_host_that_is_down_is_not_found_and_a_refused_key_is_permission() {
    let w = world("rm-down", "", "");
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stranger = w.sshd.dir.join("stranger_key");
    keygen(&stranger);
    for (ssh, expect, words) in [
        (
            w.sshd.ssh_command_with(&w.sshd.key, closed),
            "not_found",
            "Connection refused",
        ),
        (
            w.sshd.ssh_command_with(&stranger, w.sshd.port),
            "permission",
            "Permission denied",
        ),
    ] {
        let mut c = McpClient::start_with(&w.env, |cmd| {
            cmd.env("AGENT_DISPATCH_SSH_COMMAND", &ssh);
        });
        c.initialize("2025-11-25");
        let (doc, _) = c.call("dispatch", json!({"agent": "far", "task": "t"}));
        assert_eq!(doc["success"], false, "{doc}");
        assert_eq!(doc["error_type"], expect, "{doc}");
        assert!(doc["error"].as_str().unwrap().contains(words), "{doc}");
        assert!(
            doc["hint"].as_str().unwrap().contains("ssh 127.0.0.1 true"),
            "{doc}"
        );
        // doctor says the same about the agent, and fails.
        let out = run(w
            .env
            .cmd()
            .arg("doctor")
            .env("AGENT_DISPATCH_SSH_COMMAND", &ssh));
        assert_eq!(out.code, 1, "{}", out.stdout);
        assert!(
            out.stdout.contains("far: ssh to 127.0.0.1 failed") && out.stdout.contains(words),
            "{}",
            out.stdout
        );
    }
    assert!(w.remote_runs().is_empty());
}

#[test]
fn a_missing_remote_directory_is_not_found() {
    let w = world("rm-nodir", "", "");
    std::fs::remove_dir_all(&w.far).unwrap();
    let mut c = w.client();
    let (doc, _) = c.call("dispatch", json!({"agent": "far", "task": "t"}));
    assert_eq!(doc["error_type"], "not_found", "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("Directory does not exist on 127.0.0.1"),
        "{doc}"
    );
}

#[test]
fn parallel_runs_over_a_local_and_a_remote_agent() {
    let w = world("rm-par", "", "");
    w.remote_step(json!({"result": "from far"}));
    let mut c = McpClient::start_with(&w.env, |cmd| {
        cmd.env(
            "FAKE_CLAUDE_STEP",
            json!({"result": "from near"}).to_string(),
        );
    });
    c.initialize("2025-11-25");
    let items = json!([{"agent": "near", "task": "a"}, {"agent": "far", "task": "b"}]).to_string();
    let (doc, is_error) = c.call("dispatch_parallel", json!({"dispatches": items}));
    assert!(!is_error, "{doc}");
    let results = doc.as_array().expect("one result per item");
    assert_eq!(results[0]["result"], "from near", "{doc}");
    assert_eq!(results[1]["result"], "from far", "{doc}");
    assert_eq!(w.remote_runs().len(), 1);
    assert_eq!(w.env.claude_runs().len(), 1);
}

#[test]
fn add_checks_and_describes_over_ssh_and_list_describe_doctor_show_the_host() {
    let w = world("rm-add", "", "");
    let proj = w.env.project("remote-proj");
    std::fs::write(
        proj.join("README.md"),
        "# Title\n\nA billing service that reconciles invoices nightly.\n",
    )
    .unwrap();
    std::fs::write(proj.join("Cargo.toml"), "[package]\n").unwrap();
    // scp style: DEST:DIR, DIR being a path on the host.
    let out = run(w
        .env
        .cmd()
        .args(["add", "bill", &format!("127.0.0.1:{}", proj.display())]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("A billing service that reconciles invoices nightly. | Stack: Rust"),
        "{}",
        out.stdout
    );
    let yaml = w.env.read_config();
    assert!(yaml.contains("host: 127.0.0.1"), "{yaml}");
    // The URL form, as git writes it; a dispatch reaches the host through it too.
    let out = run(w.env.cmd().args([
        "add",
        "bill2",
        &format!("ssh://127.0.0.1{}", proj.display()),
    ]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(w.env.read_config().contains("host: ssh://127.0.0.1"));
    let out = run(w.env.cmd().args(["test", "bill2", "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // --host with a directory that is not there: refused, nothing written.
    let out = run(w
        .env
        .cmd()
        .args(["add", "ghost", "/nonexistent/x", "--host", "127.0.0.1"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Directory does not exist on 127.0.0.1"),
        "{}",
        out.stderr
    );
    assert!(!w.env.read_config().contains("ghost"));

    // The CLI's own dispatch (`test`) runs there too.
    let out = run(w.env.cmd().args(["test", "bill", "--json"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["success"], true, "{v}");

    let out = run(w.env.cmd().args(["list"]));
    assert!(
        out.stdout.contains("[REMOTE 127.0.0.1]") && out.stdout.contains("host: 127.0.0.1"),
        "{}",
        out.stdout
    );
    let out = run(w.env.cmd().args(["describe", "bill", "--json"]));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["host"], "127.0.0.1");
    assert_eq!(v["directory_status"], "remote");

    let out = run(w.env.cmd().args(["doctor"]));
    assert!(
        out.stdout.contains("bill: 127.0.0.1:") && out.stdout.contains("claude at "),
        "{}",
        out.stdout
    );

    // update --host none makes it local again; a host that reads as an option is refused.
    let out = run(w
        .env
        .cmd()
        .args(["update", "bill", "--host", "-oProxyCommand=x"]));
    assert_eq!(out.code, 1, "{}", out.stdout);
    let out = run(w.env.cmd().args(["update", "bill", "--host", "none"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(w.env.cmd().args(["describe", "bill", "--json"]));
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v.get("host").is_none(), "{v}");
}

#[test]
fn mcp_add_update_list_and_inspect_know_the_host() {
    let w = world("rm-mcpadd", "", "");
    let proj = w.env.project("svc");
    std::fs::write(proj.join("CLAUDE.md"), "# Svc\nOwns the payments API.\n").unwrap();
    let mut c = w.client();
    let (doc, is_error) = c.call(
        "add_agent",
        json!({"name": "svc", "directory": proj.display().to_string(), "host": "127.0.0.1"}),
    );
    assert!(!is_error, "{doc}");
    fits_add(&mut c, &doc);
    assert_eq!(doc["host"], "127.0.0.1");
    assert_eq!(doc["description"], "Owns the payments API.");
    let (doc, is_error) = c.call(
        "add_agent",
        json!({"name": "nope", "directory": "/nonexistent/y", "host": "127.0.0.1"}),
    );
    assert!(is_error, "{doc}");
    let id = c.request("tools/list", json!({}));
    let tools = c.response(id)["result"]["tools"].clone();
    let schema_of = |name: &str| {
        let t = tools.as_array().unwrap().iter().find(|t| t["name"] == name);
        let schema = t.unwrap()["outputSchema"].clone();
        assert!(schema.is_object(), "{name} declares no output schema");
        schema
    };
    let fits = |name: &str, doc: &Value| {
        let doc = if doc.is_array() {
            json!({"items": doc})
        } else {
            doc.clone()
        };
        if let Err(e) = agent_dispatch::schema::validate(&schema_of(name), &doc) {
            panic!("{name}: {e}\n{doc}");
        }
    };
    let (doc, _) = c.call("list_agents", json!({}));
    fits("list_agents", &doc);
    let svc = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "svc")
        .unwrap()
        .clone();
    assert_eq!(svc["host"], "127.0.0.1", "{svc}");
    assert_eq!(svc["healthy"], "REMOTE", "{svc}");
    let out = run(w.env.cmd().args(["group", "add", "pay", "--member", "svc"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let (doc, _) = c.call("list_groups", json!({}));
    fits("list_groups", &doc);
    assert_eq!(doc[0]["members"][0]["healthy"], "REMOTE", "{doc}");
    let (doc, _) = c.call("inspect_agent", json!({"name": "svc"}));
    fits("inspect_agent", &doc);
    assert_eq!(doc["healthy"], true, "{doc}");
    assert!(
        doc["remote_program"].as_str().unwrap().ends_with("/claude"),
        "{doc}"
    );
    let (doc, _) = c.call("update_agent", json!({"name": "svc", "host": "none"}));
    assert_eq!(doc["fields"], json!(["host"]), "{doc}");
    let (doc, _) = c.call("inspect_agent", json!({"name": "svc"}));
    assert!(doc.get("host").is_none(), "{doc}");
}

#[test]
fn a_gemini_agent_runs_remotely_with_its_own_variables() {
    let w = world("rm-gem", "", "");
    let gem = w.env.project("gem");
    std::fs::write(
        gem.join(".fake-gemini-step.json"),
        json!({"result": "gemini far"}).to_string(),
    )
    .unwrap();
    let yaml = w.env.read_config().replacen(
        "agents:\n",
        &format!(
            "agents:\n  gem:\n    directory: {}\n    host: 127.0.0.1\n    backend: gemini\n",
            gem.display()
        ),
        1,
    );
    w.env.write_config(&yaml);
    let mut c = w.client();
    let (doc, _) = c.call("dispatch", json!({"agent": "gem", "task": "t"}));
    assert_eq!(doc["result"], "gemini far", "{doc}");
    let log = std::fs::read_to_string(gem.join(".fake-gemini-log.jsonl")).unwrap();
    let run: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(run["depth"], "1", "{run}");
    assert_eq!(run["env"]["GEMINI_CLI_NO_RELAUNCH"], "true", "{run}");
}

#[test]
fn cache_journal_and_dialogue_work_across_the_ssh_hop() {
    let w = world("rm-misc", "", "");
    w.remote_step(json!({"result": "What table?"}));
    let mut c = McpClient::start_with(&w.env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", json!({"result": "orders"}).to_string());
    });
    c.initialize("2025-11-25");
    let (first, _) = c.call("dispatch", json!({"agent": "far", "task": "same"}));
    let (second, _) = c.call("dispatch", json!({"agent": "far", "task": "same"}));
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(w.remote_runs().len(), 1);
    let journal = w.env.config.with_file_name("usage.jsonl");
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(
            &journal
        )
        .is_ok_and(|j| j.contains("\"far\""))),
        "no journal line for the remote agent"
    );

    let (doc, _) = c.call(
        "dispatch_dialogue",
        json!({"requester": "near", "responder": "far", "topic": "slow query", "max_rounds": 2}),
    );
    assert_eq!(doc["rounds"], 2, "{doc}");
    assert_eq!(doc["conversation"][0]["role"], "responder");
    assert_eq!(doc["conversation"][1]["message"], "orders", "{doc}");
    // The responder's second turn resumed its first session, on the remote host.
    let runs = w.remote_runs();
    assert_eq!(runs.len(), 3, "{runs:?}");
    let a1 = argv(&runs[1]);
    let a2 = argv(&runs[2]);
    let sid = &a1[a1.iter().position(|x| x == "--session-id").unwrap() + 1];
    assert!(has_pair(&a2, "--resume", sid), "{a2:?}");
}

#[test]
fn a_kill_finds_the_remote_run_even_after_a_stderr_flood_pushed_out_the_group_marker() {
    // More stderr than the supervisor keeps: the marker line is gone by the time of the kill,
    // and the run is found by the id in its environment instead.
    let w = world("rm-flood", "    timeout: 5\n", "");
    w.remote_step(json!({"stderr_bytes": 400_000, "sleep": 600, "grandchild": true}));
    let mut c = w.client();
    let (doc, _) = c.call("dispatch", json!({"agent": "far", "task": "long"}));
    assert_eq!(doc["error_type"], "timeout", "{doc}");
    let runs = w.remote_runs();
    assert_eq!(runs.len(), 1);
    assert_remote_tree_gone(&runs[0]);
}

/// `add_agent`'s answer matches its declared output schema.
fn fits_add(c: &mut McpClient, doc: &Value) {
    let id = c.request("tools/list", json!({}));
    let tools = c.response(id)["result"]["tools"].clone();
    let t = tools
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "add_agent");
    let schema = t.unwrap()["outputSchema"].clone();
    assert!(schema.is_object(), "add_agent declares no output schema");
    if let Err(e) = agent_dispatch::schema::validate(&schema, doc) {
        panic!("add_agent: {e}\n{doc}");
    }
}

#[test]
fn a_remote_child_stopped_for_its_output_is_stopped_on_the_host_too() {
    let w = world("rm-cap", "", "");
    // 4 MiB of answer against a 1 MiB cap, then the child hangs with a grandchild.
    w.remote_step(json!({"huge_mb": 4, "hang": true, "grandchild": true}));
    let mut c = McpClient::start_with(&w.env, |cmd| {
        cmd.env("AGENT_DISPATCH_MAX_OUTPUT_BYTES", "1048576");
    });
    c.initialize("2025-11-25");
    let (doc, _) = c.call("dispatch", json!({"agent": "far", "task": "big"}));
    assert_eq!(doc["success"], false, "{:.300}", doc.to_string());
    let runs = w.remote_runs();
    assert_eq!(runs.len(), 1);
    assert_remote_tree_gone(&runs[0]);
}

#[test]
fn a_tilde_directory_is_expanded_on_the_host_not_here() {
    let w = world("rm-tilde", "", "");
    let remote_home = w.env.root.join("rhome");
    let proj = remote_home.join("my proj");
    std::fs::create_dir_all(&proj).unwrap();
    std::fs::write(
        proj.join(".fake-claude-step.json"),
        json!({"result": "home"}).to_string(),
    )
    .unwrap();
    let out = run(w.env.cmd().args(["add", "homey", "127.0.0.1:~/my proj"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    // Stored as written: `~` belongs to the host.
    assert!(
        w.env.read_config().contains("directory: ~/my proj"),
        "{}",
        w.env.read_config()
    );
    let mut c = w.client();
    let (doc, _) = c.call("dispatch", json!({"agent": "homey", "task": "t"}));
    assert_eq!(doc["result"], "home", "{doc}");
    let log = std::fs::read_to_string(proj.join(".fake-claude-log.jsonl")).unwrap();
    let run: Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(run["cwd"].as_str().unwrap(), proj.to_str().unwrap());
}
