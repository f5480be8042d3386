//! The 0.16 agent model through the binary: a 0.16.0 `agents.yaml` (groups, capabilities,
//! instructions, both settings, and keys nobody knows yet at every level) survives every CLI
//! and MCP write with nothing lost; permission modes claude would refuse are refused; `group`
//! commands; `doctor` reports what a hand edit broke.

use std::ffi::OsStr;

use serde_json::json;
use serde_yaml_ng::{Mapping, Value};

use crate::util::mcp::McpClient;
use crate::util::{Out, TestEnv, run};

fn ad<I, S>(env: &TestEnv, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = run(env.cmd().args(args));
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    out
}

/// A config as 0.16.0 writes it, plus keys from some later version at every level.
fn write_016_config(env: &TestEnv) {
    let a = env.project("alpha");
    let b = env.project("beta");
    env.write_config(&format!(
        "\
agents:
  alpha:
    directory: {}
    description: Alpha project
    timeout: 300
    capabilities:
    - docker_logs
    - deploy_debug
    risky_capabilities:
    - restart_services
    instructions: |
      Read-only SQL only.
      Never restart a stack.
    future_agent_key:
      nested: [1, 2]
  beta:
    directory: {}
    description: Beta
    timeout: 120
    permission_mode: acceptEdits
groups:
  shop:
    description: Deploy with alpha, verify with beta
    shared_context: 'Stack: shop-prod'
    future_group_key: 3
    members:
    - agent: alpha
      use_for: code changes
      future_member_key: x
    - agent: beta
      use_for: ''
settings:
  default_timeout: 300
  dispatch_protocol: false
  usage_log: false
  future_setting: kept
  cache:
    enabled: true
    ttl: 300
    max_size: 1000
    future_cache_key: 1
future_top_key:
- a
",
        a.display(),
        b.display()
    ));
}

fn doc(env: &TestEnv) -> Value {
    serde_yaml_ng::from_str(&env.read_config()).unwrap()
}

/// Order-sensitive rendering, so "in place" is checked too (mapping equality ignores order).
fn text(v: &Value) -> String {
    serde_yaml_ng::to_string(v).unwrap()
}

fn map<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Mapping {
    let mut cur = v;
    for key in path {
        cur = cur
            .as_mapping_mut()
            .and_then(|m| m.get_mut(*key))
            .unwrap_or_else(|| panic!("no {key} in {path:?}"));
    }
    cur.as_mapping_mut().unwrap()
}

fn yaml(s: &str) -> Value {
    serde_yaml_ng::from_str(s).unwrap()
}

/// Asserts the file equals `expected` except under `agents.<skip>`, which is returned.
fn same_except_agent(env: &TestEnv, expected: &Value, skip: &str) -> Value {
    let mut actual = doc(env);
    let added = map(&mut actual, &["agents"]).shift_remove(skip);
    assert_eq!(text(&actual), text(expected), "{}", env.read_config());
    added.unwrap_or_else(|| panic!("agent {skip} missing: {}", env.read_config()))
}

#[test]
fn a_016_config_survives_every_cli_write() {
    let env = TestEnv::new("am-cli");
    write_016_config(&env);
    let mut want = doc(&env);

    let out = ad(&env, ["update", "alpha", "--timeout", "61"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    map(&mut want, &["agents", "alpha"]).insert("timeout".into(), 61.into());
    assert_eq!(text(&doc(&env)), text(&want));

    let out = ad(
        &env,
        [
            "update",
            "alpha",
            "--capabilities",
            "sql, logs ,sql",
            "--risky-capabilities",
            "none",
            "--instructions",
            " Answer with exact log lines. ",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Updated agent 'alpha': capabilities, risky_capabilities, instructions\n"
    );
    let alpha = map(&mut want, &["agents", "alpha"]);
    alpha.insert("capabilities".into(), yaml("[sql, logs]"));
    alpha.shift_remove("risky_capabilities");
    alpha.insert("instructions".into(), "Answer with exact log lines.".into());
    assert_eq!(text(&doc(&env)), text(&want));

    let gamma_dir = env.project("gamma");
    let out = ad(
        &env,
        [
            "add",
            "gamma",
            gamma_dir.to_str().unwrap(),
            "-d",
            "Mail",
            "--capabilities",
            "send_mail",
            "--instructions",
            "none",
            "--permission-mode",
            "dontAsk",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let gamma = same_except_agent(&env, &want, "gamma");
    assert_eq!(gamma["description"], yaml("Mail"));
    assert_eq!(gamma["capabilities"], yaml("[send_mail]"));
    assert_eq!(gamma["permission_mode"], yaml("dontAsk"));
    assert!(gamma.get("instructions").is_none(), "empty is not written");
    assert!(gamma.get("risky_capabilities").is_none());
    map(&mut want, &["agents"]).insert("gamma".into(), gamma);

    let out = ad(
        &env,
        [
            "group",
            "add",
            "ops",
            "-d",
            "Who runs what",
            "--member",
            "gamma:sends: the mail",
            "--member",
            "beta",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Added group 'ops' (2 member(s)).\n");
    map(&mut want, &["groups"]).insert(
        "ops".into(),
        yaml("{description: Who runs what, members: [{agent: gamma, use_for: 'sends: the mail'}, {agent: beta}]}"),
    );
    assert_eq!(text(&doc(&env)), text(&want));

    let out = ad(
        &env,
        [
            "group",
            "update",
            "shop",
            "--shared-context",
            "Stack: shop-v2",
            "--member",
            "gamma:mail",
            "--member",
            "alpha:all code",
            "--remove-member",
            "beta",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "Updated group 'shop': shared_context, members\n"
    );
    let shop = map(&mut want, &["groups", "shop"]);
    shop.insert("shared_context".into(), "Stack: shop-v2".into());
    shop.insert(
        "members".into(),
        yaml("[{agent: alpha, use_for: all code, future_member_key: x}, {agent: gamma, use_for: mail}]"),
    );
    assert_eq!(text(&doc(&env)), text(&want));

    // Removing an agent a group lists: removed (as 0.16.0 does), the group named, membership
    // kept so a remove + add (moving the agent) does not lose it.
    let out = ad(&env, ["remove", "gamma"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Removed agent 'gamma'.\n");
    assert!(
        out.stderr.contains(
            "Warning: group(s) shop, ops still list 'gamma' as a member; add the agent back, \
             or drop it with: agent-dispatch group update GROUP --remove-member gamma"
        ),
        "{}",
        out.stderr
    );
    map(&mut want, &["agents"]).shift_remove("gamma");
    assert_eq!(text(&doc(&env)), text(&want));

    let out = ad(&env, ["group", "remove", "ops"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "Removed group 'ops'.\n");
    map(&mut want, &["groups"]).shift_remove("ops");
    assert_eq!(text(&doc(&env)), text(&want));

    let out = ad(
        &env,
        ["group", "update", "shop", "--remove-member", "gamma"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    map(&mut want, &["groups", "shop"]).insert(
        "members".into(),
        yaml("[{agent: alpha, use_for: all code, future_member_key: x}]"),
    );
    assert_eq!(text(&doc(&env)), text(&want));

    // Refused changes write nothing.
    let before = env.read_config();
    for args in [
        &[
            "update",
            "alpha",
            "--permission-mode",
            "yolo",
            "--timeout",
            "5",
        ][..],
        &["group", "add", "shop"],
        &["group", "add", "x", "--member", "nosuch"],
        &[
            "group",
            "add",
            "x",
            "--member",
            "alpha",
            "--member",
            "alpha:again",
        ],
        &["group", "update", "shop"],
        &["group", "update", "shop", "--remove-member", "beta"],
        &["group", "update", "nosuch", "-d", "x"],
        &["group", "remove", "nosuch"],
    ] {
        let out = ad(&env, args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.starts_with("Error: "),
            "{args:?}: {}",
            out.stderr
        );
    }
    assert_eq!(env.read_config(), before);
}

#[test]
fn a_016_config_survives_every_mcp_write() {
    let env = TestEnv::new("am-mcp");
    write_016_config(&env);
    let mut want = doc(&env);
    let mut c = McpClient::ready(&env);

    let (d, is_error) = c.call("update_agent", json!({"name": "beta", "timeout": 61}));
    assert!(!is_error, "{d}");
    map(&mut want, &["agents", "beta"]).insert("timeout".into(), 61.into());
    assert_eq!(text(&doc(&env)), text(&want));

    let (d, is_error) = c.call(
        "update_agent",
        json!({"name": "alpha", "permission_mode": "acceptEdits", "model": "haiku"}),
    );
    assert!(!is_error, "{d}");
    let alpha = map(&mut want, &["agents", "alpha"]);
    alpha.insert("model".into(), "haiku".into());
    alpha.insert("permission_mode".into(), "acceptEdits".into());
    assert_eq!(text(&doc(&env)), text(&want));

    let dir = env.project("gamma");
    let (d, is_error) = c.call(
        "add_agent",
        json!({"name": "gamma", "directory": dir, "description": "Mail"}),
    );
    assert!(!is_error, "{d}");
    let gamma = same_except_agent(&env, &want, "gamma");
    assert_eq!(gamma["description"], yaml("Mail"));
    map(&mut want, &["agents"]).insert("gamma".into(), gamma);

    let (d, is_error) = c.call("remove_agent", json!({"name": "beta"}));
    assert!(!is_error, "{d}");
    map(&mut want, &["agents"]).shift_remove("beta");
    // beta stays listed in the group (a dangling member `doctor` reports), like 0.16.0.
    assert_eq!(text(&doc(&env)), text(&want));
    assert!(env.read_config().contains("- agent: beta"));
}

#[test]
fn permission_modes_claude_refuses_are_refused_everywhere() {
    let env = TestEnv::new("am-modes");
    let dir = env.project("p");
    let d = dir.to_str().unwrap();
    for (i, mode) in [
        "acceptEdits",
        "auto",
        "bypassPermissions",
        "default",
        "dontAsk",
        "manual",
        "plan",
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("a{i}");
        let out = ad(&env, ["add", &name, d, "--permission-mode", mode]);
        assert_eq!(out.code, 0, "{mode}: {}", out.stderr);
        assert!(out.stderr.is_empty(), "{mode}: no warning: {}", out.stderr);
        let out = ad(&env, ["describe", &name]);
        assert!(
            out.stdout
                .contains(&format!("  permission_mode:  {mode}\n")),
            "{}",
            out.stdout
        );
    }
    let valid =
        "Valid values: acceptEdits, auto, bypassPermissions, default, dontAsk, manual, plan";
    let before = env.read_config();
    for args in [
        &["add", "b", d, "--permission-mode", "yolo"][..],
        &["add", "b", d, "--permission-mode", "acceptedits"],
        &["update", "a0", "--permission-mode", "Plan"],
    ] {
        let out = ad(&env, args);
        assert_eq!(out.code, 1, "{args:?}");
        assert!(
            out.stderr.contains("Invalid permission_mode: '"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(valid), "{}", out.stderr);
    }
    assert_eq!(env.read_config(), before, "a refused mode writes nothing");
    let out = ad(&env, ["update", "a0", "--permission-mode", "none"]);
    assert_eq!(out.code, 0);
    assert!(
        !ad(&env, ["describe", "a0"])
            .stdout
            .contains("permission_mode")
    );

    let mut c = McpClient::ready(&env);
    let (d1, is_error) = c.call(
        "add_agent",
        json!({"name": "m", "directory": d, "permission_mode": "yolo"}),
    );
    assert!(is_error, "{d1}");
    assert_eq!(
        d1["error"],
        format!("Invalid permission_mode: 'yolo'. {valid}")
    );
    let (d2, is_error) = c.call(
        "update_agent",
        json!({"name": "a1", "permission_mode": "sudo"}),
    );
    assert!(is_error, "{d2}");
    assert!(d2["error"].as_str().unwrap().contains(valid), "{d2}");
    let (d3, is_error) = c.call(
        "add_agent",
        json!({"name": "m", "directory": d, "permission_mode": "acceptEdits"}),
    );
    assert!(!is_error, "{d3}");
    let (d4, is_error) = c.call(
        "update_agent",
        json!({"name": "a1", "permission_mode": "none"}),
    );
    assert!(!is_error, "{d4}");
    let cfg = env.read_config();
    assert!(!cfg.contains("yolo") && !cfg.contains("sudo"), "{cfg}");
    assert!(cfg.contains("permission_mode: acceptEdits"), "{cfg}");
}

#[test]
fn doctor_fails_bad_modes_and_dangling_members_and_warns_on_empty_groups() {
    let env = TestEnv::new("am-doctor");
    let a = env.project("alpha");
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\n    permission_mode: yolo\n\
         groups:\n  shop:\n    members:\n    - agent: alpha\n    - agent: gone\n  idle: {{}}\n",
        a.display()
    ));
    let out = ad(&env, ["doctor"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    for line in [
        "[FAIL] alpha: permission_mode 'yolo' is not one claude accepts",
        "Fix: agent-dispatch update alpha --permission-mode default",
        "[FAIL] group shop: member(s) gone are not configured agents",
        "Fix: agent-dispatch group update shop --remove-member gone",
        "[WARN] group idle: no members",
        "Fix: agent-dispatch group update idle --member AGENT[:use_for]",
    ] {
        assert!(out.stdout.contains(line), "{line}\n{}", out.stdout);
    }
    // The fixes it prints work.
    assert_eq!(
        ad(&env, ["update", "alpha", "--permission-mode", "default"]).code,
        0
    );
    assert_eq!(
        ad(&env, ["group", "update", "shop", "--remove-member", "gone"]).code,
        0
    );
    assert_eq!(ad(&env, ["group", "remove", "idle"]).code, 0);
    let out = ad(&env, ["doctor"]);
    assert!(
        !out.stdout.contains("alpha: permission_mode"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("group "), "{}", out.stdout);
}

#[test]
fn group_views_flag_missing_members_and_show_hints() {
    let env = TestEnv::new("am-views");
    write_016_config(&env);
    assert_eq!(ad(&env, ["remove", "beta"]).code, 0);
    let out = ad(&env, ["group", "list"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "  shop (2 member(s))\n    desc: Deploy with alpha, verify with beta\n    \
         members: alpha, beta(unknown)\n    shared context: yes\n\n"
    );
    let out = ad(&env, ["group", "inspect", "shop"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "shop\n  description:    Deploy with alpha, verify with beta\n  shared_context:\n    \
         Stack: shop-prod\n  members (2):\n    - alpha \u{2014} code changes\n    - beta (unknown)\n"
    );
    let out = ad(&env, ["group", "inspect", "nope"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("Group 'nope' not found."));
    let out = ad(&env, ["group", "add", "bad name"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Invalid group name: 'bad name'"),
        "{}",
        out.stderr
    );
    assert_eq!(ad(&env, ["group", "--help"]).code, 0);
    let out = ad(&env, ["group", "frob"]);
    assert_eq!(out.code, 2, "{}", out.stderr);

    let out = ad(&env, ["list"]);
    assert!(
        out.stdout.contains(
            "    capabilities: docker_logs, deploy_debug\n    risky_capabilities: restart_services\n"
        ),
        "{}",
        out.stdout
    );
    let out = ad(&env, ["describe", "alpha"]);
    assert!(
        out.stdout.contains(
            "  capabilities:     docker_logs, deploy_debug\n  risky_caps:       restart_services\n  \
             instructions:     Read-only SQL only.\n                    Never restart a stack.\n"
        ),
        "{}",
        out.stdout
    );

    let empty = TestEnv::new("am-views-empty");
    let out = ad(&empty, ["group", "list"]);
    assert_eq!(
        out.stdout,
        "No groups configured. Run: agent-dispatch group add <name> --member <agent>\n"
    );
}

#[test]
fn a_config_that_fails_to_load_is_never_written_by_group_commands() {
    let env = TestEnv::new("am-broken");
    for broken in [
        "groups: [\n",
        "groups:\n  'bad name': {}\n",
        "groups:\n  g:\n    members: [{agent: 'a b'}]\n",
    ] {
        env.write_config(broken);
        for args in [
            &["group", "add", "g2"][..],
            &["group", "remove", "g"],
            &["group", "list"],
        ] {
            let out = ad(&env, args);
            assert_eq!(out.code, 1, "{broken:?} {args:?}: {}", out.stderr);
            assert!(out.stderr.contains("Error: config at"), "{}", out.stderr);
        }
        assert_eq!(env.read_config(), broken);
    }
}
