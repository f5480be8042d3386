//! End-to-end tests of the CLI: the real binary, a temporary HOME, the fake claude on PATH.


use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::util::{Out, TestEnv, run};

fn ad<I, S>(env: &TestEnv, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run(env.cmd().args(args));
    assert!(
        !out.stderr.contains("panicked"),
        "binary panicked: {}",
        out.stderr
    );
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A PATH with the env's bin dir and python3 (the fake claude needs it) but nothing else, so a
/// developer's own `agent-dispatch` cannot leak in.
fn minimal_path(env: &TestEnv) -> String {
    let python_dir = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join("python3").exists()))
        .unwrap_or_else(|| PathBuf::from("/usr/bin"));
    format!("{}:{}:/bin", env.bin_dir.display(), python_dir.display())
}

fn link_self_into_path(env: &TestEnv) {
    std::os::unix::fs::symlink(crate::util::bin(), env.bin_dir.join("agent-dispatch")).unwrap();
}

#[test]
fn version_and_help_for_every_command() {
    let env = TestEnv::new("help");
    let v = ad(&env, ["--version"]);
    assert_eq!(v.code, 0);
    assert_eq!(
        v.stdout,
        format!("agent-dispatch, version {}\n", env!("CARGO_PKG_VERSION"))
    );
    let top = ad(&env, ["--help"]);
    assert_eq!(top.code, 0);
    for cmd in [
        "init", "add", "update", "remove", "list", "describe", "doctor",
    ] {
        assert!(
            top.stdout.contains(&format!("\n  {cmd} ")),
            "{cmd} missing from help"
        );
        let h = ad(&env, [cmd, "--help"]);
        assert_eq!(h.code, 0, "{cmd}");
        assert!(
            h.stdout
                .starts_with(&format!("Usage: agent-dispatch {cmd}")),
            "{cmd}: {}",
            h.stdout
        );
    }
    // Help never touches the config.
    assert!(!env.config.exists());
    let bad = ad(&env, ["frobnicate"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("No such command 'frobnicate'"));
    assert_eq!(ad(&env, Vec::<&str>::new()).code, 2);
    assert_eq!(ad(&env, ["list", "--bogus"]).code, 2);
}

#[test]
fn add_list_describe_update_remove_round_trip() {
    let env = TestEnv::new("roundtrip");
    let dir = env.project("my project");
    std::fs::write(dir.join("CLAUDE.md"), "# Proj\nHandles the widgets.\n").unwrap();
    let dir_s = dir.to_str().unwrap();

    let add = ad(
        &env,
        [
            "add",
            "web",
            dir_s,
            "--timeout",
            "60",
            "--model",
            "opus",
            "--max-budget-usd",
            "2",
            "--permission-mode",
            "plan",
            "--allowed-tools",
            " , ",
            "--disallowed-tools",
            "Bash, Edit",
        ],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    assert!(
        add.stdout
            .contains("Auto-generated description: Handles the widgets.")
    );
    assert!(add.stdout.contains(&format!(
        "Added agent 'web' -> {}",
        dir.canonicalize().unwrap().display()
    )));

    let list = ad(&env, ["list"]);
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains("  web [OK]\n"), "{}", list.stdout);
    assert!(list.stdout.contains("    desc: Handles the widgets.\n"));
    assert!(
        list.stdout
            .contains("    config: timeout=60s, model=opus, budget=$2.0\n")
    );
    assert!(list.stdout.contains("    permission_mode: plan\n"));
    assert!(list.stdout.contains("    allowed_tools: (none)\n"));
    assert!(list.stdout.contains("    disallowed_tools: Bash, Edit\n"));

    let d = ad(&env, ["describe", "web"]);
    assert_eq!(d.code, 0);
    assert!(d.stdout.starts_with("web [OK]\n"), "{}", d.stdout);
    assert!(d.stdout.contains("  timeout:          60s\n"));
    assert!(d.stdout.contains("  model:            opus\n"));
    assert!(d.stdout.contains("  max_budget_usd:   $2.0\n"));
    assert!(
        d.stdout
            .contains("  allowed_tools:    (none \u{2014} explicit override)\n")
    );
    assert!(d.stdout.contains("  disallowed_tools: Bash, Edit\n"));
    assert!(d.stdout.contains("  project files:    CLAUDE.md\n"));

    let nothing = ad(&env, ["update", "web"]);
    assert_eq!(nothing.code, 1);
    assert!(
        nothing
            .stderr
            .contains("Nothing to update. Pass at least one option (see --help).")
    );

    let u = ad(
        &env,
        [
            "update",
            "web",
            "--model",
            "none",
            "--max-budget",
            "0",
            "--allowed-tools",
            "none",
            "--disallowed-tools",
            "",
            "--permission-mode",
            " bypassPermissions ",
            "-d",
            "",
            "--timeout",
            "0",
        ],
    );
    assert_eq!(u.code, 0, "{}", u.stderr);
    assert_eq!(
        u.stdout,
        "Updated agent 'web': description, timeout, max_budget_usd, model, permission_mode, \
         allowed_tools, disallowed_tools\n"
    );
    let yaml = env.read_config();
    assert!(!yaml.contains("model"), "{yaml}");
    assert!(!yaml.contains("max_budget_usd"), "{yaml}");
    assert!(!yaml.contains("allowed_tools:\n"), "{yaml}");
    assert!(
        yaml.contains("permission_mode: bypassPermissions"),
        "{yaml}"
    );
    assert!(yaml.contains("timeout: 0"), "{yaml}");
    let d = ad(&env, ["describe", "web"]);
    assert!(
        d.stdout
            .contains("  allowed_tools:    (inherit defaults)\n")
    );
    assert!(
        d.stdout
            .contains("  disallowed_tools: (inherit defaults)\n")
    );
    assert!(!d.stdout.contains("model:"));

    let u = ad(
        &env,
        [
            "update",
            "web",
            "--allowed-tools",
            "Read,Grep",
            "--permission-mode",
            "yolo",
        ],
    );
    assert_eq!(u.code, 0);
    assert!(u.stderr.contains(
        "Warning: Unknown permission_mode: 'yolo'. Known values: bypassPermissions, default, plan"
    ));
    assert!(
        ad(&env, ["list"])
            .stdout
            .contains("    allowed_tools: Read, Grep\n")
    );

    let missing = ad(&env, ["update", "nope", "--model", "x"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("Agent 'nope' not found. Run 'agent-dispatch list' to see agents.")
    );
    let missing = ad(&env, ["describe", "nope"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("Agent 'nope' not found."));

    let dup = ad(&env, ["add", "web", dir_s]);
    assert_eq!(dup.code, 1);
    assert!(
        dup.stderr
            .contains("Agent 'web' already exists. Use 'agent-dispatch remove web' first.")
    );

    let rm = ad(&env, ["remove", "web"]);
    assert_eq!(rm.code, 0);
    assert_eq!(rm.stdout, "Removed agent 'web'.\n");
    let rm = ad(&env, ["remove", "web"]);
    assert_eq!(rm.code, 1);
    assert!(rm.stderr.contains("Agent 'web' not found."));
    let list = ad(&env, ["list"]);
    assert_eq!(list.code, 0);
    assert_eq!(
        list.stdout,
        "No agents configured. Run: agent-dispatch add <name> <directory>\n"
    );
}

#[test]
fn add_keeps_explicit_empty_description_and_default_timeout() {
    let env = TestEnv::new("emptydesc");
    let dir = env.project("p");
    let out = ad(
        &env,
        [
            "add",
            "a",
            dir.to_str().unwrap(),
            "-d",
            "",
            "--max-budget",
            "0",
        ],
    );
    assert_eq!(out.code, 0);
    assert!(!out.stdout.contains("Auto-generated"));
    let yaml = env.read_config();
    assert!(yaml.contains("description: ''"), "{yaml}");
    assert!(yaml.contains("timeout: 300"), "{yaml}");
    assert!(yaml.contains("max_budget_usd: 0.0"), "{yaml}");
}

#[test]
fn names_directories_and_numbers_are_validated() {
    let env = TestEnv::new("validate");
    let dir = env.project("p");
    let d = dir.to_str().unwrap();
    for bad in ["bad name", "-lead", "_lead", "a/b", "naïve", ""] {
        let out = ad(&env, ["add", "--", bad, d]);
        assert_eq!(out.code, 1, "{bad:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("Error: Invalid agent name: '{bad}'.")),
            "{bad:?}: {}",
            out.stderr
        );
    }
    assert!(
        !env.config.exists(),
        "a refused add must not create the config"
    );
    for ok in ["a", "A-1", "x_y-Z9"] {
        assert_eq!(ad(&env, ["add", ok, d]).code, 0, "{ok}");
    }
    let out = ad(&env, ["add", "q", env.root.join("nope").to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    std::fs::write(env.root.join("file"), "").unwrap();
    let out = ad(&env, ["add", "q", env.root.join("file").to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is a file"));
    for args in [
        &["add", "q", d, "--timeout", "-1"][..],
        &["add", "q", d, "--timeout", "1.5"],
        &["add", "q", d, "--max-budget", "-0.5"],
        &["add", "q", d, "--max-budget-usd", "inf"],
        &["update", "a", "--timeout", "-30"],
        &["update", "a", "--max-budget", "abc"],
    ] {
        let out = ad(&env, args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("Usage: agent-dispatch"),
            "{}",
            out.stderr
        );
    }
    let warn = ad(&env, ["add", "w", d, "--permission-mode", "sudo"]);
    assert_eq!(warn.code, 0);
    assert!(
        warn.stderr
            .contains("Warning: Unknown permission_mode: 'sudo'.")
    );
    assert!(env.read_config().contains("permission_mode: sudo"));
}

#[test]
fn broken_config_is_never_overwritten() {
    let env = TestEnv::new("broken");
    let dir = env.project("p");
    let d = dir.to_str().unwrap();
    let cases: [(&[u8], &str); 3] = [
        (b"agents:\n  a: [\n", "is not valid YAML:"),
        (
            b"agents:\n  a:\n    directory: /x\n    timeout: 1.5\n",
            "has an invalid schema:",
        ),
        (b"agents:\n  \xff: {}\n", "is not valid UTF-8:"),
    ];
    for (body, headline) in cases {
        std::fs::create_dir_all(env.config.parent().unwrap()).unwrap();
        std::fs::write(&env.config, body).unwrap();
        for args in [
            &["add", "b", d][..],
            &["update", "a", "--model", "x"],
            &["remove", "a"],
            &["list"],
            &["describe", "a"],
        ] {
            let out = ad(&env, args);
            assert_eq!(out.code, 1, "{args:?}");
            assert!(
                out.stderr.contains(&format!(
                    "Error: config at {} {headline}",
                    env.config.display()
                )),
                "{args:?}: {}",
                out.stderr
            );
            assert!(out.stderr.contains("line"), "{}", out.stderr);
            assert_eq!(std::fs::read(&env.config).unwrap(), body);
        }
        let doc = ad(&env, ["doctor"]);
        assert_eq!(doc.code, 1);
        assert!(doc.stdout.contains("[FAIL] Config"), "{}", doc.stdout);
    }
}

#[test]
fn twenty_concurrent_adds_all_land() {
    let env = TestEnv::new("concurrent");
    let dir = env.project("p");
    let children: Vec<_> = (0..20)
        .map(|i| {
            env.cmd()
                .args([
                    "add",
                    &format!("agent{i}"),
                    dir.to_str().unwrap(),
                    "-d",
                    "x",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let list = ad(&env, ["list"]);
    for i in 0..20 {
        assert!(
            list.stdout.contains(&format!("  agent{i} [OK]")),
            "agent{i} lost"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(env.config.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn file_and_directory_modes() {
    let env = TestEnv::new("modes");
    let dir = env.project("p");
    assert_eq!(ad(&env, ["add", "a", dir.to_str().unwrap()]).code, 0);
    assert_eq!(mode(&env.config), 0o600);
    assert_eq!(mode(env.config.parent().unwrap()), 0o700);
    assert_eq!(mode(&env.home.join(".config")), 0o700);

    // An existing, shared directory keeps its mode (SPEC §12 item 19).
    let shared = env.root.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = shared.join("agents.yaml");
    std::fs::write(&cfg, "agents: {}\n").unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out =
        run(env
            .cmd()
            .env("AGENT_DISPATCH_CONFIG", &cfg)
            .args(["add", "b", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(mode(&cfg), 0o600);
    assert!(std::fs::read_to_string(&cfg).unwrap().contains("  b:\n"));
}

#[test]
fn init_creates_config_and_registers() {
    let env = TestEnv::new("init");
    link_self_into_path(&env);
    let out = run(env.cmd().env("PATH", minimal_path(&env)).arg("init"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("Created config: {}", env.config.display()))
    );
    assert!(
        out.stdout
            .contains("Registered MCP server with Claude Code (user scope).")
    );
    assert!(out.stdout.contains("agent-dispatch add <name> <directory>"));
    assert_eq!(mode(&env.config), 0o600);
    assert!(env.read_config().starts_with("agents: {}\nsettings:\n"));
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 1);
    let argv: Vec<&str> = runs[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let exe = env.bin_dir.join("agent-dispatch");
    let json = format!(
        r#"{{"type": "stdio", "command": "{}", "args": ["serve"]}}"#,
        exe.display()
    );
    assert_eq!(
        argv,
        [
            "mcp",
            "add-json",
            "agent-dispatch",
            json.as_str(),
            "--scope",
            "user"
        ]
    );

    // Second run: config kept, registration fails (as the real CLI does when already
    // registered) and the manual instructions are printed; still exit 0.
    std::fs::write(&env.config, "agents: {}\n# mine\n").unwrap();
    let out = run(env
        .cmd()
        .env("PATH", minimal_path(&env))
        .env("FAKE_CLAUDE_MCP_EXIT", "1")
        .env(
            "FAKE_CLAUDE_MCP_STDERR",
            "  MCP server agent-dispatch already exists in user config\n",
        )
        .arg("init"));
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .contains(&format!("Config already exists: {}", env.config.display()))
    );
    assert!(
        out.stderr.contains(
            "Failed to register MCP server: MCP server agent-dispatch already exists in user config"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout
            .contains("You can register manually in ~/.claude/settings.json:")
    );
    assert!(out.stdout.contains(&format!(
        "  \"mcpServers\": {{ \"agent-dispatch\": {json} }}"
    )));
    assert_eq!(env.read_config(), "agents: {}\n# mine\n");
}

#[test]
fn init_degrades_without_claude_or_itself_on_path() {
    let env = TestEnv::new("init-missing");
    let out = run(env.cmd().env("PATH", minimal_path(&env)).arg("init"));
    assert_eq!(out.code, 0);
    assert!(
        out.stderr.contains("agent-dispatch not found in PATH"),
        "{}",
        out.stderr
    );
    assert!(env.claude_runs().is_empty());
    assert!(env.config.exists());

    env.without_claude();
    let out = run(env.cmd().env("PATH", minimal_path(&env)).arg("init"));
    assert_eq!(out.code, 0);
    assert!(
        out.stderr
            .contains("Warning: claude CLI not found. Register MCP server manually.")
    );
}

#[test]
fn doctor_reports_and_exits_by_issues() {
    let env = TestEnv::new("doctor");
    link_self_into_path(&env);
    let doctor = |extra: &[(&str, &str)]| {
        let mut c = env.cmd();
        c.env("PATH", minimal_path(&env)).arg("doctor");
        for (k, v) in extra {
            c.env(k, v);
        }
        run(&mut c)
    };

    // Missing config: warnings only.
    let out = doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains(&format!(
        "[WARN] Config not found: {}",
        env.config.display()
    )));
    assert!(
        out.stdout
            .contains("[WARN] Skipped (config could not be loaded)")
    );
    assert!(
        out.stdout
            .contains("[OK] agent-dispatch is registered with Claude Code")
    );
    assert!(out.stdout.contains("2 warnings"), "{}", out.stdout);

    let dir = env.project("p");
    std::fs::write(dir.join(".mcp.json"), "{}").unwrap();
    assert_eq!(ad(&env, ["add", "a", dir.to_str().unwrap()]).code, 0);
    let out = doctor(&[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(out.stdout.contains("(1 agent)"));
    assert!(out.stdout.contains(&format!(
        "[OK] a: {} [.mcp.json]",
        dir.canonicalize().unwrap().display()
    )));
    assert!(out.stdout.contains("All checks passed."), "{}", out.stdout);

    let out = doctor(&[("FAKE_CLAUDE_MCP_LIST", "other: /x/agent-dispatch serve\n")]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .contains("[WARN] agent-dispatch is not registered with Claude Code")
    );
    assert!(out.stdout.contains("Run: agent-dispatch init"));
    assert!(out.stdout.contains("\n1 warning\n"), "{}", out.stdout);

    let out = doctor(&[
        ("FAKE_CLAUDE_MCP_SLEEP", "5"),
        ("AGENT_DISPATCH_MCP_LIST_TIMEOUT", "0.3"),
    ]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .contains("[WARN] Could not check MCP registration: claude mcp list timed out")
    );

    // A directory that disappears is an issue; exactly one reads "1 issue".
    std::fs::remove_dir_all(&dir).unwrap();
    let out = doctor(&[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("[FAIL] a: directory missing - "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\n1 issue\n"), "{}", out.stdout);
    let list = ad(&env, ["list"]);
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains("  a [NOT FOUND]"));
    let d = ad(&env, ["describe", "a"]);
    assert_eq!(d.code, 0);
    assert!(d.stdout.starts_with("a [NOT FOUND]\n"));

    env.without_claude();
    let out = doctor(&[]);
    assert!(out.stdout.contains("[FAIL] claude CLI not found on PATH"));
    assert!(out.stdout.contains("[WARN] Skipped (claude CLI missing)"));
    assert!(out.stdout.contains("2 issues"), "{}", out.stdout);
}

/// The grandchild the fake `claude mcp …` left holding its stdout, and whether it still runs.
fn grandchild_alive(env: &TestEnv) -> bool {
    let runs = env.claude_runs();
    let pid = runs.last().unwrap()["grandchild_pid"].as_i64().unwrap();
    crate::util::pid_alive(pid)
}

#[test]
fn doctor_and_init_do_not_wait_for_a_grandchild_holding_stdout() {
    let env = TestEnv::new("host-linger");
    link_self_into_path(&env);
    let run_with = |args: &[&str], extra: &[(&str, &str)]| {
        let mut c = env.cmd();
        c.env("PATH", minimal_path(&env))
            .env("FAKE_CLAUDE_MCP_GRANDCHILD", "8")
            .args(args);
        for (k, v) in extra {
            c.env(k, v);
        }
        let start = std::time::Instant::now();
        let out = run(&mut c);
        (out, start.elapsed())
    };

    // The timeout holds even while the leftover keeps the pipe open.
    let (out, took) = run_with(&["doctor"], &[("AGENT_DISPATCH_MCP_LIST_TIMEOUT", "1")]);
    assert!(took < Duration::from_secs(4), "doctor took {took:?}");
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("[WARN] Could not check MCP registration: claude mcp list timed out"),
        "{}",
        out.stdout
    );
    assert!(!grandchild_alive(&env));

    // With time to spare, the answer the leader gave counts and the leftover is cleared.
    let (out, took) = run_with(&["doctor"], &[("AGENT_DISPATCH_MCP_LIST_TIMEOUT", "30")]);
    assert!(took < Duration::from_secs(5), "doctor took {took:?}");
    assert!(
        out.stdout
            .contains("[OK] agent-dispatch is registered with Claude Code"),
        "{}",
        out.stdout
    );
    assert!(!grandchild_alive(&env));

    let (out, took) = run_with(&["init"], &[]);
    assert!(took < Duration::from_secs(5), "init took {took:?}");
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("Registered MCP server with Claude Code (user scope)."),
        "{}",
        out.stdout
    );
    assert!(!grandchild_alive(&env));
}

#[test]
fn doctor_warns_about_hand_written_names() {
    let env = TestEnv::new("doctor-names");
    env.write_config(&format!(
        "agents:\n  'has space':\n    directory: {}\n",
        env.root.display()
    ));
    let out = ad(&env, ["doctor"]);
    assert!(
        out.stdout.contains("has space: name has characters"),
        "{}",
        out.stdout
    );
}

fn described(env: &TestEnv, name: &str, dir: &Path) -> String {
    let out = ad(env, ["add", name, dir.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Auto-generated description: "))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn detection_on_fixture_projects() {
    let env = TestEnv::new("detect");
    let write = |dir: &Path, rel: &str, body: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };

    let py = env.project("py");
    write(
        &py,
        "pyproject.toml",
        "[project]\nname = \"py\"\ndescription = \"Data pipeline\"\n",
    );
    write(&py, "alembic.ini", "");
    write(
        &py,
        ".mcp.json",
        r#"{"mcpServers": {"postgres": {}, "redis": {}}}"#,
    );
    assert_eq!(
        described(&env, "py", &py),
        "Data pipeline | MCP: postgres, redis | Stack: Python | DB: Alembic"
    );

    let rs = env.project("rs");
    write(&rs, "Cargo.toml", "[package]\n");
    write(&rs, "Dockerfile", "FROM rust\n");
    write(&rs, "migrations/001.sql", "");
    assert_eq!(
        described(&env, "rs", &rs),
        "Stack: Docker, Rust | DB: migrations"
    );

    let node = env.project("node");
    write(
        &node,
        "package.json",
        r#"{"name": "web", "description": "Storefront"}"#,
    );
    write(&node, "prisma/schema.prisma", "");
    write(&node, "docker-compose.yml", "");
    write(
        &node,
        "README.md",
        "# Web\n\nThe storefront web application for customers.\n",
    );
    assert_eq!(
        described(&env, "node", &node),
        "The storefront web application for customers. | Storefront | Stack: Docker Compose, Node.js | DB: Prisma"
    );

    let odd = env.project("odd");
    write(&odd, "pyproject.toml", "description\n");
    write(&odd, "package.json", "\"just a string\"");
    write(&odd, ".mcp.json", "{not json");
    assert_eq!(described(&env, "odd", &odd), "Stack: Python, Node.js");

    let empty = env.project("empty one");
    assert_eq!(described(&env, "empty", &empty), "Agent in empty one");
}

#[test]
fn hostile_inputs_never_panic() {
    let env = TestEnv::new("hostile");
    let dir = env.project("with space");
    let d = dir.to_str().unwrap();
    let bad_bytes = OsStr::from_bytes(b"na\xffme");
    let bad_dir = env.root.join(OsStr::from_bytes(b"dir\xfe"));
    std::fs::create_dir_all(&bad_dir).unwrap();

    let cases: Vec<Vec<&OsStr>> = vec![
        vec!["add".as_ref(), "".as_ref(), "".as_ref()],
        vec!["add".as_ref(), "ok".as_ref(), "".as_ref()],
        vec!["add".as_ref(), bad_bytes, d.as_ref()],
        vec!["add".as_ref(), "ok2".as_ref(), bad_dir.as_os_str()],
        vec![
            "update".as_ref(),
            "".as_ref(),
            "--model".as_ref(),
            "".as_ref(),
        ],
        vec!["update".as_ref(), bad_bytes],
        vec!["remove".as_ref(), "".as_ref()],
        vec!["describe".as_ref(), "".as_ref()],
        vec!["describe".as_ref(), bad_bytes],
        vec![bad_bytes],
        vec!["--".as_ref()],
        vec![
            "add".as_ref(),
            "--timeout=".as_ref(),
            "a".as_ref(),
            d.as_ref(),
        ],
        vec!["add".as_ref(), "-d".as_ref()],
        vec!["add".as_ref(), "-dx".as_ref(), "s".as_ref(), d.as_ref()],
        vec![
            "add".as_ref(),
            "--description".as_ref(),
            bad_bytes,
            "s2".as_ref(),
            d.as_ref(),
        ],
    ];
    for args in &cases {
        let out = ad(&env, args);
        assert!(
            (0..=2).contains(&out.code),
            "{args:?} exited {}: {}",
            out.code,
            out.stderr
        );
    }
    // The non-UTF-8 directory is refused cleanly, not written half-way.
    assert!(!env.read_config().contains("ok2"));
    // A path with spaces round-trips.
    assert_eq!(ad(&env, ["add", "spaced", d]).code, 0);
    assert!(ad(&env, ["describe", "spaced"]).stdout.contains(&format!(
        "  directory:        {}",
        dir.canonicalize().unwrap().display()
    )));
    // A directory that disappears between add and list.
    std::fs::remove_dir_all(&dir).unwrap();
    let list = ad(&env, ["list"]);
    assert_eq!(list.code, 0);
    assert!(list.stdout.contains("  spaced [NOT FOUND]"));
    // A config that is a directory, and one that is empty.
    std::fs::remove_file(&env.config).unwrap();
    std::fs::create_dir(&env.config).unwrap();
    let out = ad(&env, ["list"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("could not be read"), "{}", out.stderr);
    assert_eq!(ad(&env, ["add", "x", env.root.to_str().unwrap()]).code, 1);
    std::fs::remove_dir(&env.config).unwrap();
    std::fs::write(&env.config, "").unwrap();
    assert_eq!(ad(&env, ["list"]).code, 0);
}

#[test]
fn broken_pipe_exits_zero() {
    let env = TestEnv::new("pipe");
    let mut yaml = String::from("agents:\n");
    for i in 0..3000 {
        yaml.push_str(&format!(
            "  a{i}:\n    directory: /\n    description: {}\n",
            "x".repeat(40)
        ));
    }
    env.write_config(&yaml);
    let mut child = env
        .cmd()
        .arg("list")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn colour_only_when_asked_for() {
    let env = TestEnv::new("color");
    let dir = env.project("p");
    // Not a terminal: no escapes even without NO_COLOR.
    let out = run(env
        .cmd()
        .env_remove("NO_COLOR")
        .args(["add", "a", dir.to_str().unwrap()]));
    assert!(!out.stdout.contains('\x1b') && !out.stderr.contains('\x1b'));
}

#[test]
fn relative_config_path_and_symlinked_config() {
    let env = TestEnv::new("relcfg");
    let dir = env.project("p");
    let real = env.root.join("real.yaml");
    std::fs::write(&real, "agents: {}\n").unwrap();
    let link = env.root.join("link.yaml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let out = run(env
        .cmd()
        .env("AGENT_DISPATCH_CONFIG", "link.yaml")
        .current_dir(&env.root)
        .args(["add", "a", dir.to_str().unwrap()]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(std::fs::read_to_string(&real).unwrap().contains("  a:\n"));
}
