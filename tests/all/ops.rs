//! Operations through the binary: the usage journal (`test` writes it, `stats` reads it,
//! rotation under concurrent writers), `typical` in `list --json`, the live-server registry,
//! the truthful `doctor` (and `--json`/`--strict`/closed stdout), `init --force`, every `--json`
//! output parsed, and the CLI habits (bare help, `help CMD`, named option errors,
//! completions from the command table).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fs2::FileExt;
use serde_json::{Value, json};

use crate::util::mcp::McpClient;
use crate::util::{Out, TestEnv, run};

fn ad<const N: usize>(env: &TestEnv, args: [&str; N]) -> Out {
    let out = run(env.cmd().args(args));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

fn json_of(out: &Out) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} / {:?}", out.stdout, out.stderr))
}

fn journal(env: &TestEnv) -> PathBuf {
    env.config.parent().unwrap().join("usage.jsonl")
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

/// A config with agent `a` in a fresh project directory.
fn with_agent(env: &TestEnv) -> PathBuf {
    let dir = env.project("a");
    env.write_config(&format!(
        "agents:\n  a:\n    directory: {}\n    description: test agent\n",
        dir.display()
    ));
    dir
}

/// Polls `check` until it holds; generous, because the machine may be loaded.
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn test_runs_are_journaled_and_typical_appears_at_three() {
    let env = TestEnv::new("ops-journal");
    with_agent(&env);
    for i in 1..=3 {
        let out = ad(&env, ["test", "a", "hello"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let lines = lines_of(&journal(&env));
        assert_eq!(lines.len(), i);
        let listed = json_of(&ad(&env, ["list", "--json"]));
        let typical = &listed[0]["typical"];
        if i < 3 {
            assert!(typical.is_null(), "typical at {i} runs: {listed}");
        } else {
            assert_eq!(
                typical,
                &json!({"median_seconds": 1.2, "p90_seconds": 1.2, "median_cost_usd": 0.01})
            );
        }
    }
    let lines = lines_of(&journal(&env));
    let first = lines[0].as_object().unwrap();
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(keys, ["t", "agent", "ok", "cost", "ms", "turns"]);
    assert_eq!(lines[0]["agent"], "a");
    assert_eq!(lines[0]["ok"], true);
    assert_eq!(lines[0]["ms"], 1234);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(journal(&env)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let described = json_of(&ad(&env, ["describe", "a", "--json"]));
    assert_eq!(described["typical"]["dispatches"], 3);
    assert_eq!(described["name"], "a");
    assert_eq!(described["directory_status"], "ok");

    // settings.usage_log: false turns recording off.
    let yaml = env.read_config() + "settings:\n  usage_log: false\n";
    env.write_config(&yaml);
    assert_eq!(ad(&env, ["test", "a"]).code, 0);
    assert_eq!(lines_of(&journal(&env)).len(), 3);
}

#[test]
fn stats_json_numbers_come_from_the_journal() {
    let env = TestEnv::new("ops-stats");
    env.write_config("agents: {}\n");
    let path = journal(&env);
    let empty = json_of(&ad(&env, ["stats", "--json"]));
    assert_eq!(empty["total"]["dispatches"], 0);
    assert_eq!(empty["agents"], json!({}));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = now - 10 * 86_400;
    let rotated = format!(r#"{{"t":{old},"agent":"web","ok":true,"cost":0.5,"ms":9000}}"#);
    std::fs::write(path.with_file_name("usage.jsonl.1"), rotated + "\n").unwrap();
    let current = [
        format!(r#"{{"t":{now},"agent":"web","ok":true,"cost":0.25,"ms":1000,"outcome":"done"}}"#),
        format!(r#"{{"t":{now},"agent":"web","ok":false,"ms":3000,"err":"timeout"}}"#),
        format!(r#"{{"t":{now},"agent":"web","ok":true,"cached":true}}"#),
        format!(r#"{{"t":{now},"agent":"api","ok":true,"cost":0.1,"ms":500}}"#),
        "{torn".to_string(),
        "[]".to_string(),
    ];
    std::fs::write(&path, current.join("\n") + "\n").unwrap();

    let all = json_of(&ad(&env, ["stats", "--json"]));
    let web = &all["agents"]["web"];
    assert_eq!(web["dispatches"], 3);
    assert_eq!(web["cached_hits"], 1);
    assert_eq!(
        (web["ok"].clone(), web["failed"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(web["cost_usd"], 0.75);
    assert_eq!(web["median_ms"], 3000);
    assert_eq!(web["p90_ms"], 9000);
    assert_eq!(web["errors"], json!({"timeout": 1}));
    assert_eq!(web["outcomes"], json!({"done": 1}));
    assert_eq!(all["total"]["dispatches"], 4);
    assert_eq!(all["total"]["cost_usd"], 0.85);
    // Ordered by spend.
    let names: Vec<&String> = all["agents"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["web", "api"]);

    let recent = json_of(&ad(
        &env,
        ["stats", "--json", "--days", "1", "--agent", "web"],
    ));
    assert_eq!(recent["total"]["dispatches"], 2);
    assert_eq!(recent["agents"].as_object().unwrap().len(), 1);

    let text = ad(&env, ["stats"]);
    assert_eq!(text.code, 0);
    assert!(
        text.stdout.contains("dispatches: 4, 1 served from cache"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("timeout 1"), "{}", text.stdout);
    let bad = ad(&env, ["stats", "--days", "-1"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("Invalid value for '--days'"),
        "{}",
        bad.stderr
    );
}

#[test]
fn concurrent_writers_rotate_once_and_tear_nothing() {
    let env = TestEnv::new("ops-rotate");
    with_agent(&env);
    let path = journal(&env);
    // Just under the 2 MB rotation size, so the writers below cross it mid-run.
    let filler = r#"{"t":1,"agent":"old","ok":true,"ms":1}"#;
    let per_line = filler.len() + 1;
    let prefill = (2_000_000 - 3 * per_line) / per_line;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("{filler}\n").repeat(prefill)).unwrap();

    const WRITERS: usize = 6;
    const RUNS_EACH: usize = 4;
    let children: Vec<_> = (0..WRITERS)
        .map(|_| {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(format!(
                    "for i in $(seq {RUNS_EACH}); do \"$0\" test a x >/dev/null || exit 1; done"
                ))
                .arg(crate::util::bin())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            env.apply(&mut c);
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rotated = lines_of(&path.with_file_name("usage.jsonl.1"));
    let current = lines_of(&path);
    let old = |v: &Vec<Value>| v.iter().filter(|l| l["agent"] == "old").count();
    // One rotation: every prefilled line survived in `.1`, and nothing was lost or torn.
    assert_eq!(old(&rotated), prefill);
    assert_eq!(old(&current), 0);
    assert_eq!(rotated.len() + current.len(), prefill + WRITERS * RUNS_EACH);
    assert!(!current.is_empty());
    let stats = json_of(&ad(&env, ["stats", "--json", "--agent", "a"]));
    assert_eq!(stats["total"]["dispatches"], WRITERS * RUNS_EACH);
}

fn servers_dir(env: &TestEnv) -> PathBuf {
    env.config.parent().unwrap().join("servers")
}

fn doctor_json(env: &TestEnv, extra: &[(&str, &str)]) -> (i32, Value) {
    let mut c = env.cmd();
    c.args(["doctor", "--json"]);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = run(&mut c);
    (out.code, json_of(&out))
}

fn check<'a>(report: &'a Value, section: &str) -> Vec<&'a Value> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["section"] == section)
        .collect()
}

#[test]
fn live_servers_are_registered_and_a_killed_one_disappears() {
    let env = TestEnv::new("ops-registry");
    env.write_config("agents: {}\n");
    let mut one = McpClient::ready(&env);
    let mut two = McpClient::ready(&env);
    let dir = servers_dir(&env);
    let pids = [one.child.id(), two.child.id()];
    for pid in pids {
        let entry: Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{pid}.json"))).unwrap())
                .unwrap();
        assert_eq!(entry["pid"], pid);
        assert_eq!(entry["version"], env!("CARGO_PKG_VERSION"));
        assert!(entry["started_at"].as_f64().unwrap() > 1.0e9);
        assert_eq!(entry["config"], env.config.display().to_string());
    }
    let (_, report) = doctor_json(&env, &[]);
    let servers = check(&report, "Running servers");
    assert!(
        servers[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("2 server process(es) registered"),
        "{report}"
    );

    // An upstream-format entry of an older version, alive (its lock held here).
    let older = dir.join("1.json");
    std::fs::write(
        &older,
        r#"{"pid": 1, "version": "0.0.1", "started_at": 1000.0, "config": "/x"}"#,
    )
    .unwrap();
    let held = std::fs::File::open(&older).unwrap();
    held.lock_exclusive().unwrap();

    // SIGKILL: no chance to clean up; the free lock is what tells the reader.
    one.child.kill().unwrap();
    one.child.wait().unwrap();
    let (_, report) = doctor_json(&env, &[]);
    let servers = check(&report, "Running servers");
    assert!(
        servers[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("2 server process(es) registered"),
        "{report}"
    );
    let warn = servers.iter().find(|c| c["status"] == "warn").unwrap();
    assert!(
        warn["message"]
            .as_str()
            .unwrap()
            .contains("1 server(s) still executing older code")
    );
    assert!(
        warn["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("pid 1: 0.0.1, up ")),
        "{warn}"
    );
    assert!(!dir.join(format!("{}.json", pids[0])).exists());
    assert!(dir.join(format!("{}.json", pids[1])).exists());
    drop(held);

    // A clean exit removes the entry too.
    two.close(Duration::from_secs(30));
    wait_until("the second entry to go", || {
        !dir.join(format!("{}.json", pids[1])).exists()
    });
}

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
        .create_completed("a", "task one", None, None, None, &result)
        .unwrap();
    store
        .create_completed("b", "task two", None, None, None, &result)
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
