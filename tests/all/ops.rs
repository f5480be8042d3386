//! Operations through the binary, part one: the usage journal (`test` writes it, `stats` reads
//! it, rotation under concurrent CLI and server writers), `typical` in `list --json` and the live-server
//! registry as `doctor --json` reports it. `ops_cli` has the rest of the CLI; both share the
//! helpers here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fs2::FileExt;
use serde_json::{Value, json};

use crate::util::mcp::McpClient;
use crate::util::{Out, TestEnv, run};

pub(crate) fn ad<const N: usize>(env: &TestEnv, args: [&str; N]) -> Out {
    let out = run(env.cmd().args(args));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

pub(crate) fn json_of(out: &Out) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?} / {:?}", out.stdout, out.stderr))
}

pub(crate) fn journal(env: &TestEnv) -> PathBuf {
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
pub(crate) fn with_agent(env: &TestEnv) -> PathBuf {
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

    // CLI `test` loops and MCP servers write at once.
    const CLI_WRITERS: usize = 4;
    const SERVERS: usize = 2;
    const WRITERS: usize = CLI_WRITERS + SERVERS;
    const RUNS_EACH: usize = 4;
    let mut servers: Vec<McpClient> = (0..SERVERS).map(|_| McpClient::ready(&env)).collect();
    let children: Vec<_> = (0..CLI_WRITERS)
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
    std::thread::scope(|scope| {
        for (n, server) in servers.iter_mut().enumerate() {
            scope.spawn(move || {
                for i in 0..RUNS_EACH {
                    // Distinct tasks: no cache hit, every call runs a child.
                    let (doc, _) = server.call(
                        "dispatch",
                        json!({"agent": "a", "task": format!("s{n}-{i}")}),
                    );
                    assert_eq!(doc["success"], true, "{doc}");
                }
            });
        }
    });
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

pub(crate) fn doctor_json(env: &TestEnv, extra: &[(&str, &str)]) -> (i32, Value) {
    let mut c = env.cmd();
    c.args(["doctor", "--json"]);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = run(&mut c);
    (out.code, json_of(&out))
}

pub(crate) fn check<'a>(report: &'a Value, section: &str) -> Vec<&'a Value> {
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

#[test]
fn list_agents_and_inspect_agent_carry_typical_from_three_runs() {
    let env = TestEnv::new("ops-typical-mcp");
    with_agent(&env);
    let mut c = McpClient::ready(&env);
    for i in 0..3 {
        let (list, _) = c.call("list_agents", json!({}));
        assert!(
            list[0].get("typical").is_none(),
            "typical after {i} runs: {list}"
        );
        let (doc, _) = c.call("dispatch", json!({"agent": "a", "task": format!("t{i}")}));
        assert_eq!(doc["success"], true, "{doc}");
    }
    let (list, _) = c.call("list_agents", json!({}));
    let typical = &list[0]["typical"];
    assert!(typical["median_seconds"].is_number(), "{list}");
    assert!(
        typical["p90_seconds"].is_number() && typical["median_cost_usd"].is_number(),
        "{list}"
    );
    let (doc, _) = c.call("inspect_agent", json!({"name": "a"}));
    assert_eq!(doc["typical"], *typical, "{doc}");
}
