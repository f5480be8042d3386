//! Operations through the binary, part two: the truthful `doctor` (`--json`, `--strict`, a
//! closed stdout), `init --force`, every `--json` output parsed, and the CLI habits (bare help,
//! `help CMD`, option errors that name the option, completions from the command table).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::ops::{ad, check, doctor_json, json_of, with_agent};
use crate::util::{TestEnv, run};

/// A script that runs this binary: a working registration that is not this binary.
fn wrapper(env: &TestEnv) -> PathBuf {
    let p = env.root.join("wrapped-agent-dispatch");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nexec '{}' \"$@\"\n",
            crate::util::bin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

#[test]
fn doctor_tells_the_truth_about_the_registration() {
    let env = TestEnv::new("ops-doctor");
    let dir = env.project("p");
    env.write_config(&format!(
        "agents:\n  p:\n    directory: {}\n",
        dir.display()
    ));
    let listed = |cmd: &str, status: &str| format!("agent-dispatch: {cmd} serve - {status}\n");
    let registration = |report: &Value| check(report, "MCP registration")[0].clone();

    // This very binary, connected: all good.
    let me = crate::util::bin().display().to_string();
    let (code, report) = doctor_json(
        &env,
        &[("FAKE_CLAUDE_MCP_LIST", &listed(&me, "✓ Connected"))],
    );
    let reg = registration(&report);
    assert_eq!(reg["status"], "ok", "{report}");
    assert!(
        reg["message"].as_str().unwrap().contains("answers"),
        "{reg}"
    );
    assert_eq!(report["schema_version"], 1);
    assert_eq!(code, if report["issues"] == 0 { 0 } else { 1 });

    // A registration to a binary that does not exist fails, exit 1.
    let gone = listed("/nonexistent/agent-dispatch", "✗ Failed to connect");
    let (code, report) = doctor_json(&env, &[("FAKE_CLAUDE_MCP_LIST", &gone)]);
    assert_eq!(code, 1);
    assert_eq!(report["status"], "fail");
    let reg = registration(&report);
    assert_eq!(reg["status"], "fail");
    assert!(
        reg["message"].as_str().unwrap().contains("does not exist"),
        "{reg}"
    );
    assert!(
        reg["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "Fix: agent-dispatch init --force")
    );
    let text = run(env.cmd().env("FAKE_CLAUDE_MCP_LIST", &gone).arg("doctor"));
    assert_eq!(text.code, 1);
    assert!(
        text.stdout
            .contains("[FAIL] agent-dispatch is registered, but its command does not exist")
    );

    // Something that is not an MCP server fails too, whatever Claude Code says.
    let (code, report) = doctor_json(
        &env,
        &[("FAKE_CLAUDE_MCP_LIST", &listed("/bin/cat", "✓ Connected"))],
    );
    assert_eq!(code, 1);
    assert!(
        registration(&report)["message"]
            .as_str()
            .unwrap()
            .contains("does not answer MCP")
    );

    // Claude Code's own verdict counts even when the command starts.
    let (code, _) = doctor_json(
        &env,
        &[("FAKE_CLAUDE_MCP_LIST", &listed(&me, "✗ Failed to connect"))],
    );
    assert_eq!(code, 1);

    // Another binary that works: a warning, which --strict turns into exit 1.
    let other = listed(&wrapper(&env).display().to_string(), "✓ Connected");
    let (_, report) = doctor_json(&env, &[("FAKE_CLAUDE_MCP_LIST", &other)]);
    let regs = check(&report, "MCP registration");
    assert_eq!(regs[0]["status"], "ok", "{report}");
    assert_eq!(regs[1]["status"], "warn");
    assert!(
        regs[1]["message"]
            .as_str()
            .unwrap()
            .contains("not this binary")
    );
    let strict = run(env
        .cmd()
        .env("FAKE_CLAUDE_MCP_LIST", &other)
        .args(["doctor", "--strict"]));
    assert_eq!(strict.code, 1, "{}", strict.stdout);

    // `doctor | head`: a closed stdout does not turn the failure into success.
    let mut c = env.cmd();
    c.env("FAKE_CLAUDE_MCP_LIST", &gone)
        .arg("doctor")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn init_force_replaces_the_registration() {
    let env = TestEnv::new("ops-init");
    std::os::unix::fs::symlink(crate::util::bin(), env.bin_dir.join("agent-dispatch")).unwrap();
    let out = ad(&env, ["init", "--force"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let argvs: Vec<Value> = env
        .claude_runs()
        .into_iter()
        .map(|r| r["argv"].clone())
        .collect();
    assert_eq!(
        argvs[0],
        json!(["mcp", "remove", "agent-dispatch", "--scope", "user"])
    );
    assert_eq!(argvs[1][1], "add-json");
    assert!(
        out.stdout
            .contains("Registered MCP server with Claude Code (user scope).")
    );
}

fn job_store(env: &TestEnv) -> agent_dispatch::jobs::JobStore {
    agent_dispatch::jobs::JobStore::open(&env.config.parent().unwrap().join("jobs")).unwrap()
}

#[test]
fn every_json_output_parses() {
    let env = TestEnv::new("ops-json");
    with_agent(&env);

    let list = json_of(&ad(&env, ["list", "--json"]));
    assert_eq!(list[0]["name"], "a");
    assert_eq!(list[0]["description"], "test agent");
    let missing = ad(&env, ["describe", "nope", "--json"]);
    assert_eq!(missing.code, 1);
    assert!(
        json_of(&missing)["error"]
            .as_str()
            .unwrap()
            .contains("not found")
    );

    let store = job_store(&env);
    let long = "r".repeat(5000);
    let result = agent_dispatch::result::DispatchResult {
        agent: "a".into(),
        success: true,
        result: long.clone(),
        ..Default::default()
    };
    let job = store
        .create_completed("a", &agent_dispatch::ask::Ask::task("task one"), &result)
        .unwrap();
    store
        .create_completed("b", &agent_dispatch::ask::Ask::task("task two"), &result)
        .unwrap();
    let jobs = json_of(&ad(&env, ["jobs", "--json"]));
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    let only_a = json_of(&ad(&env, ["jobs", "--json", "--agent", "a"]));
    assert_eq!(only_a.as_array().unwrap().len(), 1);
    assert_eq!(only_a[0]["id"], job.id.as_str());
    let full = json_of(&ad(&env, ["job", &job.id, "--json"]));
    assert_eq!(full["result"]["result"], long.as_str());
    let gone = ad(&env, ["job", "0123456789abcdef0123456789abcdef", "--json"]);
    assert_eq!(gone.code, 1);
    assert!(json_of(&gone)["error"].is_string());
    let dry = json_of(&ad(&env, ["gc", "--all", "--dry-run", "--json"]));
    assert_eq!(dry["would_delete"], 2);
    assert_eq!(dry["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(
        json_of(&ad(&env, ["jobs", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let tested = ad(&env, ["test", "a", "hi", "--json"]);
    assert_eq!(tested.code, 0, "{}", tested.stderr);
    let r = json_of(&tested);
    assert_eq!(
        (r["agent"].clone(), r["success"].clone()),
        (json!("a"), json!(true))
    );

    let streamed = ad(&env, ["test", "a", "hi", "--stream", "--json"]);
    assert_eq!(streamed.code, 0, "{}", streamed.stderr);
    let events: Vec<Value> = streamed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.len() >= 2, "{events:?}");
    assert!(
        events[..events.len() - 1]
            .iter()
            .all(|e| e["event"] == "progress")
    );
    let last = events.last().unwrap();
    assert_eq!(last["event"], "result");
    assert_eq!(last["result"]["success"], true);

    let unknown = ad(&env, ["test", "zzz", "--json"]);
    assert_eq!(unknown.code, 1);
    assert!(json_of(&unknown)["error"].is_string());

    let (_, doctor) = doctor_json(&env, &[]);
    for key in ["schema_version", "status", "issues", "warnings", "checks"] {
        assert!(doctor.get(key).is_some(), "{key}: {doctor}");
    }
    for c in doctor["checks"].as_array().unwrap() {
        assert!(["ok", "warn", "fail"].contains(&c["status"].as_str().unwrap()));
        assert!(c["section"].is_string() && c["message"].is_string() && c["details"].is_array());
    }
    let stats = json_of(&ad(&env, ["stats", "--json"]));
    assert_eq!(stats["total"]["dispatches"], 2);

    // A broken config is still a JSON answer for the commands that read it.
    env.write_config("agents: [\n");
    for args in [&["list", "--json"][..], &["describe", "a", "--json"]] {
        let out = run(env.cmd().args(args));
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            json_of(&out)["error"]
                .as_str()
                .unwrap()
                .contains("not valid YAML")
        );
    }
}

#[test]
fn cli_habits() {
    let env = TestEnv::new("ops-habits");
    let top = ad(&env, ["--help"]);
    let bare = ad(&env, []);
    assert_eq!((bare.code, &bare.stdout), (0, &top.stdout));
    assert_eq!(ad(&env, ["help"]).stdout, top.stdout);
    assert_eq!(
        ad(&env, ["help", "jobs"]).stdout,
        ad(&env, ["jobs", "--help"]).stdout
    );
    assert_eq!(ad(&env, ["help", "nope"]).code, 2);

    let cases: [(&[&str], &str); 5] = [
        (
            &["jobs", "--limit", "0"],
            "Invalid value for '--limit': 0 is not in the range 1<=x<=1000.",
        ),
        (&["jobs", "--limit", "1001"], "Invalid value for '--limit'"),
        (
            &["test", "a", "--timeout", "x"],
            "Invalid value for '--timeout': 'x' is not a valid integer.",
        ),
        (
            &["add", "a", "/tmp", "--timeout", "x"],
            "Invalid value for '--timeout'",
        ),
        (&["gc", "--days", "soon"], "Invalid value for '--days'"),
    ];
    for (args, expected) in cases {
        let out = run(env.cmd().args(args));
        assert_eq!(out.code, 2, "{args:?}");
        assert!(out.stderr.contains(expected), "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.matches("Error:").count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
    }

    for shell in ["bash", "zsh", "fish"] {
        let out = ad(&env, ["completions", shell]);
        assert_eq!(out.code, 0);
        for command in ["stats", "doctor", "completions", "help"] {
            assert!(out.stdout.contains(command), "{shell}: {command}");
        }
        for long in ["json", "strict", "dry-run", "agent", "force"] {
            let spelled = if shell == "fish" {
                format!("-l {long}")
            } else {
                format!("--{long}")
            };
            assert!(out.stdout.contains(&spelled), "{shell}: {spelled}");
        }
        if let Ok(mut sh) = Command::new(shell)
            .arg("-n")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            sh.stdin
                .take()
                .unwrap()
                .write_all(out.stdout.as_bytes())
                .unwrap();
            let checked = sh.wait_with_output().unwrap();
            assert!(
                checked.status.success(),
                "{shell}: {}",
                String::from_utf8_lossy(&checked.stderr)
            );
        }
    }
    assert_eq!(ad(&env, ["completions", "tcsh"]).code, 2);
}
