//! `agent-dispatch serve` driven over pipes as an MCP client would drive it.

use std::time::Duration;

use crate::util::mcp::McpClient;
use crate::util::{TestEnv, wait_until};
use serde_json::{Value, json};

/// A config with agents `alpha` and `beta` in their own project directories.
fn two_agents(env: &TestEnv, settings: &str) {
    let a = env.project("alpha");
    let b = env.project("beta");
    std::fs::write(
        a.join("CLAUDE.md"),
        "# Alpha\nAlpha knows the billing database.\n",
    )
    .unwrap();
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\n    description: Alpha project\n  beta:\n    directory: {}\n{settings}",
        a.display(),
        b.display()
    ));
}

fn step(v: Value) -> String {
    v.to_string()
}

fn client_with_step(env: &TestEnv, s: Value) -> McpClient {
    let mut c = McpClient::start_with(env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", step(s));
    });
    c.initialize("2025-11-25");
    c
}

#[test]
fn handshake_answers_each_supported_version_and_falls_back_to_newest() {
    let env = TestEnv::new("mcp-hs");
    for version in [
        "2025-11-25",
        "2025-06-18",
        "2025-03-26",
        "2024-11-05",
        "1999-01-01",
    ] {
        let mut c = McpClient::start(&env);
        let r = c.initialize(version);
        let result = &r["result"];
        let expected = if version == "1999-01-01" {
            "2025-11-25"
        } else {
            version
        };
        assert_eq!(result["protocolVersion"], expected, "{r}");
        assert_eq!(result["serverInfo"]["name"], "agent-dispatch");
        assert!(result["capabilities"]["tools"].is_object());
        assert!(result["capabilities"]["logging"].is_object());
        assert!(
            result["instructions"]
                .as_str()
                .unwrap()
                .contains("list_agents")
        );
    }
}

#[test]
fn tools_list_is_complete_typed_and_stable() {
    let env = TestEnv::new("mcp-list");
    let mut c = McpClient::ready(&env);
    let id = c.request("tools/list", json!({}));
    let tools = c.response(id)["result"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for expected in [
        "list_agents",
        "inspect_agent",
        "dispatch",
        "dispatch_session",
        "dispatch_parallel",
        "dispatch_stream",
        "dispatch_dialogue",
        "add_agent",
        "remove_agent",
        "update_agent",
        "cache_stats",
        "cache_clear",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for t in &tools {
        let schema = &t["inputSchema"];
        assert_eq!(schema["type"], "object", "{t}");
        for (pname, prop) in schema["properties"].as_object().unwrap() {
            let ty = prop["type"]
                .as_str()
                .unwrap_or_else(|| panic!("{pname} has no type"));
            assert!(["string", "integer", "number", "boolean"].contains(&ty));
            assert!(prop["description"].is_string());
        }
        for req in schema["required"].as_array().unwrap() {
            assert!(schema["properties"].get(req.as_str().unwrap()).is_some());
        }
        let a = &t["annotations"];
        for hint in [
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ] {
            assert!(a[hint].is_boolean(), "{hint} on {}", t["name"]);
        }
    }
    let dispatch = tools.iter().find(|t| t["name"] == "dispatch").unwrap();
    assert_eq!(
        dispatch["inputSchema"]["required"],
        json!(["agent", "task"])
    );
    assert_eq!(
        dispatch["inputSchema"]["properties"]["timeout_seconds"]["default"],
        0
    );
    assert_eq!(
        tools.iter().find(|t| t["name"] == "list_agents").unwrap()["annotations"]["readOnlyHint"],
        true
    );
    // The order is stable between calls.
    let id = c.request("tools/list", json!({}));
    let again: Vec<Value> = c.response(id)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(again, names.iter().map(|n| json!(n)).collect::<Vec<_>>());
}

#[test]
fn malformed_input_gets_errors_and_the_server_keeps_serving() {
    let env = TestEnv::new("mcp-bad");
    let mut c = McpClient::ready(&env);
    c.send_raw(b"this is not json\n");
    let r = c.next_message(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (Value::Null, json!(-32700))
    );
    c.send_raw(b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]\n");
    assert_eq!(
        c.next_message(Duration::from_secs(5)).unwrap()["error"]["code"],
        -32600
    );
    c.send_raw(b"\xff\xfe\xfd\n");
    assert_eq!(
        c.next_message(Duration::from_secs(5)).unwrap()["error"]["code"],
        -32700
    );
    let id = c.request("no/such/method", json!({}));
    assert_eq!(c.response(id)["error"]["code"], -32601);
    let id = c.request("server/discover", json!({}));
    assert_eq!(c.response(id)["error"]["code"], -32601);
    let id = c.request(
        "tools/call",
        json!({"name": "no_such_tool", "arguments": {}}),
    );
    assert_eq!(c.response(id)["error"]["code"], -32602);
    c.send(&json!({"jsonrpc": "2.0", "id": 77, "method": "tools/call", "params": [1]}));
    assert_eq!(c.response(77)["error"]["code"], -32602);
    // A notification (even an unknown one) is never answered.
    c.notify("notifications/whatever", json!({}));
    let id = c.request("ping", json!({}));
    let r = c.response(id);
    assert_eq!(r["result"], json!({}));
    assert!(c.next_message(Duration::from_millis(200)).is_none());
    // String ids are echoed as strings.
    c.send(&json!({"jsonrpc": "2.0", "id": "abc", "method": "ping"}));
    assert_eq!(
        c.response_for(&json!("abc"), Duration::from_secs(5))["result"],
        json!({})
    );
}

#[test]
fn overlong_line_is_refused_without_killing_the_server() {
    let env = TestEnv::new("mcp-long");
    let mut c = McpClient::ready(&env);
    let mut line = vec![b'x'; 64 * 1024 * 1024 + 10];
    line.push(b'\n');
    c.send_raw(&line);
    let r = c.next_message(Duration::from_secs(20)).unwrap();
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let id = c.request("ping", json!({}));
    assert_eq!(c.response(id)["result"], json!({}));
}

#[test]
fn list_and_inspect_agents() {
    let env = TestEnv::new("mcp-agents");
    let mut c = McpClient::ready(&env);
    let (doc, is_error) = c.call("list_agents", json!({}));
    assert!(is_error);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("No agents configured")
    );

    two_agents(&env, "");
    std::fs::write(env.root.join("projects/alpha/Cargo.toml"), "[package]\n").unwrap();
    std::fs::write(
        env.root.join("projects/alpha/.mcp.json"),
        r#"{"mcpServers":{"pg":{}}}"#,
    )
    .unwrap();
    let (doc, is_error) = c.call("list_agents", json!({}));
    assert!(!is_error, "{doc}");
    let list = doc.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["name"], "alpha");
    assert_eq!(list[0]["healthy"], true);
    assert_eq!(list[0]["has_claude_md"], true);
    assert_eq!(list[0]["has_mcp_config"], true);
    assert_eq!(list[0]["mcp_servers"], json!(["pg"]));
    assert_eq!(list[0]["stacks"], json!(["Rust"]));
    assert!(list[1].get("stacks").is_none());

    let (doc, _) = c.call(
        "inspect_agent",
        json!({"name": "alpha", "preview_lines": 1}),
    );
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["claude_md_preview"], "# Alpha");
    assert_eq!(doc["claude_md_truncated"], true);
    assert_eq!(doc["timeout"], 300);
    let (doc, is_error) = c.call("inspect_agent", json!({"name": "nope"}));
    assert!(is_error);
    assert_eq!(
        doc["error"],
        "Unknown agent: 'nope'. Available: alpha, beta"
    );
    let (doc, is_error) = c.call("inspect_agent", json!({"name": 5}));
    assert!(is_error);
    assert!(doc["error"].as_str().unwrap().contains("'name'"), "{doc}");
    let (doc, is_error) = c.call("inspect_agent", json!({}));
    assert!(is_error);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("Missing required argument 'name'")
    );
}

#[test]
fn dispatch_runs_the_child_and_caches_the_success() {
    let env = TestEnv::new("mcp-dispatch");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let (doc, is_error) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "count rows", "caller": "me"}),
    );
    assert!(!is_error, "{doc}");
    assert_eq!(doc["success"], true);
    assert_eq!(doc["agent"], "alpha");
    assert!(doc["result"].as_str().unwrap().contains("count rows"));
    let sid = doc["session_id"].as_str().unwrap().to_string();
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 1);
    let argv: Vec<&str> = runs[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv[0], "-p");
    assert!(argv.contains(&"--session-id") && argv.contains(&sid.as_str()));
    assert!(runs[0]["cwd"].as_str().unwrap().ends_with("projects/alpha"));
    assert_eq!(runs[0]["depth"], "1");
    assert_eq!(runs[0]["stdin"], "eof");
    // The child starts with no blocked signals, so the SIGTERM of a cancel reaches it.
    assert_eq!(runs[0]["sigblk"], "0000000000000000", "{}", runs[0]);

    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "count rows", "caller": "me"}),
    );
    assert_eq!(doc["cached"], true);
    assert_eq!(env.claude_runs().len(), 1, "served from cache");
    let (stats, _) = c.call("cache_stats", json!({}));
    assert_eq!(
        (stats["size"].clone(), stats["hits"].clone()),
        (json!(1), json!(1))
    );
    // A different caller is a different entry.
    c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "count rows", "caller": "other"}),
    );
    assert_eq!(env.claude_runs().len(), 2);
    let (cleared, _) = c.call("cache_clear", json!({}));
    assert_eq!(cleared["cleared"], 2);
}

#[test]
fn dispatch_argument_errors_are_tool_errors() {
    let env = TestEnv::new("mcp-dargs");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let (doc, is_error) = c.call("dispatch", json!({"agent": "alpha"}));
    assert!(is_error);
    assert!(doc["error"].as_str().unwrap().contains("'task'"));
    let (doc, is_error) = c.call("dispatch", json!({"agent": "alpha", "task": ["x"]}));
    assert!(is_error);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("'task' must be a string"),
        "{doc}"
    );
    let (doc, is_error) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "t", "timeout_seconds": "soon"}),
    );
    assert!(is_error);
    assert!(
        doc["error"].as_str().unwrap().contains("'timeout_seconds'"),
        "{doc}"
    );
    let (doc, is_error) = c.call("dispatch", json!({"agent": "ghost", "task": "t"}));
    assert!(is_error);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("Unknown agent: 'ghost'")
    );
    assert!(env.claude_runs().is_empty());
}

#[test]
fn failures_and_denied_results_are_not_cached() {
    let env = TestEnv::new("mcp-nocache");
    two_agents(&env, "");
    let mut c = client_with_step(&env, json!({"permission_denials": [{"tool_name": "Bash"}]}));
    let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
    assert_eq!(doc["denied_tools"], json!(["Bash"]));
    let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
    assert!(doc.get("cached").is_none());
    assert_eq!(env.claude_runs().len(), 2);
}

#[test]
fn agent_edits_invalidate_cached_answers() {
    let env = TestEnv::new("mcp-inval");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
    let (doc, is_error) = c.call("update_agent", json!({"name": "alpha", "model": "opus"}));
    assert!(!is_error, "{doc}");
    assert_eq!(doc, json!({"updated": "alpha", "fields": ["model"]}));
    let (doc, _) = c.call("dispatch", json!({"agent": "alpha", "task": "t"}));
    assert!(
        doc.get("cached").is_none(),
        "stale answer served after an edit"
    );
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 2);
    assert!(runs[1]["argv"].as_array().unwrap().contains(&json!("opus")));
}

#[test]
fn dispatch_session_resumes_with_resume_flag() {
    let env = TestEnv::new("mcp-session");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let sid = "0b6d5d1e-1111-4222-8333-444455556666";
    let (doc, _) = c.call(
        "dispatch_session",
        json!({"agent": "beta", "task": "more", "session_id": sid}),
    );
    assert_eq!(doc["session_id"], sid);
    let argv = env.claude_runs()[0]["argv"].clone();
    let argv: Vec<&str> = argv
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let i = argv.iter().position(|a| *a == "--resume").unwrap();
    assert_eq!(argv[i + 1], sid);
    assert!(!argv.contains(&"--session-id"));
    let (doc, _) = c.call(
        "dispatch_session",
        json!({"agent": "beta", "task": "x", "session_id": "--evil"}),
    );
    assert_eq!(doc["success"], false);
    assert_eq!(doc["error_type"], "cli_error");
    assert_eq!(env.claude_runs().len(), 1, "an injected flag never spawns");
}

#[test]
fn parallel_fans_out_and_aggregates() {
    let env = TestEnv::new("mcp-par");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let items = json!([
        {"agent": "alpha", "task": "part one"},
        {"agent": "beta", "task": "part two", "timeout_seconds": "900"},
    ]);
    let (doc, is_error) = c.call(
        "dispatch_parallel",
        json!({"dispatches": items.to_string(), "aggregate": "alpha"}),
    );
    assert!(!is_error, "{doc}");
    let individual = doc["individual_results"].as_array().unwrap();
    assert_eq!(individual.len(), 2);
    assert_eq!(individual[0]["agent"], "alpha");
    assert_eq!(individual[1]["agent"], "beta");
    assert_eq!(doc["aggregated"]["success"], true);
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 3);
    let agg = runs
        .iter()
        .find(|r| r["argv"][1].as_str().unwrap().starts_with("## Goal"))
        .unwrap();
    let prompt = agg["argv"][1].as_str().unwrap();
    assert!(prompt.contains("## Agent: alpha [OK]"));
    assert!(prompt.contains("## Dispatched by\ndispatch_parallel"));

    // Without aggregate: a plain array, input order.
    let (doc, _) = c.call("dispatch_parallel", json!({"dispatches": json!([{"agent": "beta", "task": "b"}, {"agent": "alpha", "task": "a"}]).to_string()}));
    assert_eq!(doc[0]["agent"], "beta");
    assert_eq!(doc[1]["agent"], "alpha");
}

#[test]
fn parallel_with_a_bad_item_runs_nothing() {
    let env = TestEnv::new("mcp-parbad");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let cases = [
        ("not json", "Invalid JSON in dispatches"),
        ("[]", "dispatches must be a non-empty JSON array"),
        ("{}", "dispatches must be a non-empty JSON array"),
        (
            r#"[{"agent":"alpha","task":"a"}, 5]"#,
            "dispatches[1] must be an object, got int",
        ),
        (
            r#"[{"agent":"alpha"}]"#,
            "dispatches[0] must have 'agent' and 'task' keys",
        ),
        (
            r#"[{"agent":"alpha","task":"a"},{"agent":"nope","task":"b"}]"#,
            "Unknown agent: 'nope'",
        ),
        (
            r#"[{"agent":"alpha","task":"a","timeout_seconds":"abc"}]"#,
            "dispatches[0].timeout_seconds must be a number, got 'abc'",
        ),
        (
            r#"[{"agent":"alpha","task":"a","summary_chars":[]}]"#,
            "dispatches[0].summary_chars must be a number, got []",
        ),
        (
            r#"[{"agent":7,"task":"a"}]"#,
            "dispatches[0].agent must be a string",
        ),
    ];
    for (input, expected) in cases {
        let (doc, is_error) = c.call("dispatch_parallel", json!({"dispatches": input}));
        assert!(is_error, "{input}");
        assert!(
            doc["error"].as_str().unwrap().contains(expected),
            "{input}: {doc}"
        );
    }
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"agent": "alpha", "task": i.to_string()}))
        .collect();
    let (doc, _) = c.call(
        "dispatch_parallel",
        json!({"dispatches": Value::Array(too_many).to_string()}),
    );
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("Too many dispatches: 101 > 100")
    );
    let (doc, _) = c.call(
        "dispatch_parallel",
        json!({"dispatches": r#"[{"agent":"alpha","task":"a"}]"#, "aggregate": "ghost"}),
    );
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .contains("Unknown agent: 'ghost'")
    );
    assert!(
        env.claude_runs().is_empty(),
        "nothing may run when validation fails"
    );
}

#[test]
fn stream_sends_progress_with_the_callers_token() {
    let env = TestEnv::new("mcp-stream");
    two_agents(&env, "");
    let mut c = client_with_step(
        &env,
        json!({"progress": ["Looking at the schema", "tool:Grep", "Almost done"]}),
    );
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch_stream", "arguments": {"agent": "alpha", "task": "t"}, "_meta": {"progressToken": "tok-1"}}),
    );
    let resp = c.response(id);
    let (doc, _) = McpClient::tool_payload(&resp);
    assert_eq!(doc["success"], true, "{doc}");
    let progress: Vec<&Value> = c
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 3, "{:?}", c.notifications);
    let mut last = 0.0;
    for p in &progress {
        assert_eq!(p["params"]["progressToken"], "tok-1");
        let n = p["params"]["progress"].as_f64().unwrap();
        assert!(n > last);
        last = n;
    }
    let messages = c.log_messages();
    assert!(
        messages
            .iter()
            .any(|m| m == "[alpha] Looking at the schema"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m == "[alpha] Using tool: Grep"),
        "{messages:?}"
    );
    // Numeric tokens keep their type.
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch_stream", "arguments": {"agent": "alpha", "task": "t"}, "_meta": {"progressToken": 42}}),
    );
    c.response(id);
    assert!(
        c.notifications
            .iter()
            .any(|n| n["params"]["progressToken"] == json!(42))
    );
}

#[test]
fn logging_set_level_silences_info_messages() {
    let env = TestEnv::new("mcp-level");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let id = c.request("logging/setLevel", json!({"level": "warning"}));
    assert_eq!(c.response(id)["result"], json!({}));
    c.call("list_agents", json!({}));
    assert!(
        c.notifications
            .iter()
            .all(|n| n["method"] != "notifications/message")
    );
    let id = c.request("logging/setLevel", json!({"level": "loud"}));
    assert_eq!(c.response(id)["error"]["code"], -32602);
}

fn dialogue_plan(env: &TestEnv, resolve_on: &str) -> std::path::PathBuf {
    let plan = env.root.join("plan.json");
    let rules = if resolve_on.is_empty() {
        json!([])
    } else {
        json!([{"prompt_contains": resolve_on, "step": {"result": "Use an index. [RESOLVED]"}}])
    };
    std::fs::write(
        &plan,
        json!({"rules": rules, "default": {"result": "What table?"}}).to_string(),
    )
    .unwrap();
    plan
}

#[test]
fn dialogue_resolves_when_the_marker_appears() {
    let env = TestEnv::new("mcp-dlg");
    two_agents(&env, "");
    let plan = dialogue_plan(&env, "Agent 'alpha' responds");
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_PLAN", &plan);
    });
    c.initialize("2025-11-25");
    let (doc, _) = c.call(
        "dispatch_dialogue",
        json!({"requester": "alpha", "responder": "beta", "topic": "slow query"}),
    );
    // Round 1: beta asks, alpha answers "What table?", round 2: beta sees alpha's reply → resolves.
    assert_eq!(doc["resolved"], true, "{doc}");
    assert_eq!(doc["rounds"], 2);
    assert_eq!(doc["final_answer"], "Use an index.");
    let conv = doc["conversation"].as_array().unwrap();
    assert_eq!(conv.len(), 3);
    assert_eq!(conv[0]["role"], "responder");
    assert_eq!(conv[1]["role"], "requester");
    let runs = env.claude_runs();
    // beta's second turn resumes beta's first session.
    let first_sid = runs[0]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .position(|a| a == "--session-id")
        .map(|i| runs[0]["argv"][i + 1].clone())
        .unwrap();
    let resumed = runs[2]["argv"]
        .as_array()
        .unwrap()
        .iter()
        .position(|a| a == "--resume")
        .map(|i| runs[2]["argv"][i + 1].clone());
    assert_eq!(resumed, Some(first_sid));
    assert!((doc["total_cost_usd"].as_f64().unwrap() - 0.03).abs() < 1e-9);
}

#[test]
fn dialogue_unresolved_runs_out_of_rounds() {
    let env = TestEnv::new("mcp-dlg2");
    two_agents(&env, "");
    let plan = dialogue_plan(&env, "");
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_PLAN", &plan);
    });
    c.initialize("2025-11-25");
    let (doc, _) = c.call(
        "dispatch_dialogue",
        json!({"requester": "alpha", "responder": "beta", "topic": "x", "max_rounds": 2}),
    );
    assert_eq!(doc["resolved"], false);
    assert_eq!(doc["rounds"], 2);
    assert_eq!(doc["conversation"].as_array().unwrap().len(), 4);
    assert_eq!(doc["final_answer"], "What table?");
    let (doc, is_error) = c.call(
        "dispatch_dialogue",
        json!({"requester": "alpha", "responder": "nobody", "topic": "x"}),
    );
    assert!(is_error);
    assert!(doc["error"].as_str().unwrap().contains("'nobody'"));
}

#[test]
fn ping_is_answered_while_a_long_dispatch_runs() {
    let env = TestEnv::new("mcp-ping");
    two_agents(&env, "");
    let mut c = client_with_step(&env, json!({"sleep": 5}));
    let call = c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "slow"}}),
    );
    assert!(wait_until(Duration::from_secs(30), || !env
        .claude_runs()
        .is_empty()));
    let ping = c.request("ping", json!({}));
    let r = c.response(ping);
    assert_eq!(r["result"], json!({}));
    // Answered while the dispatch's child still runs, not after it.
    let pid = env.claude_runs()[0]["pid"].as_i64().unwrap();
    assert!(crate::util::pid_alive(pid), "ping waited for the dispatch");
    let (doc, _) = McpClient::tool_payload(&c.response(call));
    assert_eq!(doc["success"], true);
}

#[test]
fn cancelled_dispatch_kills_the_child_group_and_sends_no_response() {
    let env = TestEnv::new("mcp-cancel");
    two_agents(&env, "");
    let mut c = client_with_step(&env, json!({"sleep": 60, "grandchild": true}));
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "forever"}}),
    );
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let run = env.claude_runs()[0].clone();
    let (pid, grandchild) = (
        run["pid"].as_i64().unwrap(),
        run["grandchild_pid"].as_i64().unwrap(),
    );
    assert!(crate::util::pid_alive(pid));
    c.notify(
        "notifications/cancelled",
        json!({"requestId": id, "reason": "user"}),
    );
    assert!(wait_until(
        Duration::from_secs(5),
        || !crate::util::pid_alive(pid) && !crate::util::pid_alive(grandchild)
    ));
    let ping = c.request("ping", json!({}));
    c.response(ping);
    // Nothing for the cancelled id arrives.
    for m in c.unclaimed_responses(Duration::from_millis(500)) {
        assert_ne!(m["id"], json!(id), "a cancelled request was answered: {m}");
    }
}

#[test]
fn concurrency_gate_bounds_live_children() {
    let env = TestEnv::new("mcp-gate");
    two_agents(&env, "settings:\n  max_concurrency: 4\n");
    let live = env.root.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", json!({"sleep": 0.3}).to_string())
            .env("FAKE_CLAUDE_LIVE_DIR", &live);
    });
    c.initialize("2025-11-25");
    let ids: Vec<i64> = (0..32)
        .map(|i| {
            let tool = if i % 2 == 0 {
                "dispatch"
            } else {
                "dispatch_stream"
            };
            c.request(
                "tools/call",
                json!({"name": tool, "arguments": {"agent": "alpha", "task": format!("job {i}")}}),
            )
        })
        .collect();
    for id in ids {
        let (doc, _) = McpClient::tool_payload(&c.response(id));
        assert_eq!(doc["success"], true, "{doc}");
    }
    let runs = env.claude_runs();
    assert_eq!(runs.len(), 32);
    let peak = runs
        .iter()
        .map(|r| r["live"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(
        peak <= 4,
        "peak {peak} live children with max_concurrency 4"
    );
    assert!(peak >= 2, "calls did not run concurrently (peak {peak})");
}

#[test]
fn agent_management_round_trip() {
    let env = TestEnv::new("mcp-manage");
    two_agents(&env, "");
    let dir = env.project("gamma");
    std::fs::write(
        dir.join("README.md"),
        "# Gamma\nGamma is the service that sends all the emails.\n",
    )
    .unwrap();
    let mut c = McpClient::ready(&env);
    let (doc, is_error) = c.call(
        "add_agent",
        json!({"name": "gamma", "directory": dir, "allowed_tools": "Read, Grep", "permission_mode": "plan"}),
    );
    assert!(!is_error, "{doc}");
    assert_eq!(doc["added"], "gamma");
    assert_eq!(
        doc["description"],
        "Gamma is the service that sends all the emails."
    );
    assert_eq!(doc["allowed_tools"], json!(["Read", "Grep"]));
    let (doc, is_error) = c.call("add_agent", json!({"name": "gamma", "directory": dir}));
    assert!(is_error);
    assert_eq!(
        doc["error"],
        "Agent 'gamma' already exists. Remove it first."
    );
    let (doc, is_error) = c.call("add_agent", json!({"name": "bad/name", "directory": dir}));
    assert!(is_error);
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("Invalid agent name: 'bad/name'.")
    );
    let (doc, _) = c.call(
        "add_agent",
        json!({"name": "delta", "directory": env.root.join("missing")}),
    );
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("Directory does not exist:")
    );
    let (doc, _) = c.call(
        "update_agent",
        json!({"name": "gamma", "allowed_tools": "none", "timeout": 60}),
    );
    assert_eq!(doc["fields"], json!(["timeout", "allowed_tools"]));
    let (doc, _) = c.call("update_agent", json!({"name": "gamma"}));
    assert_eq!(
        doc["error"],
        "Nothing to update. Pass at least one non-empty field."
    );
    // An unknown name is reported first, even with nothing to update.
    let (doc, _) = c.call("update_agent", json!({"name": "ghost"}));
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("Agent 'ghost' not found. Available: "),
        "{doc}"
    );
    let (doc, _) = c.call("inspect_agent", json!({"name": "gamma"}));
    assert!(
        doc.get("allowed_tools").is_none(),
        "none clears to inherit: {doc}"
    );
    assert_eq!(doc["timeout"], 60);
    let (doc, _) = c.call("remove_agent", json!({"name": "gamma"}));
    assert_eq!(doc, json!({"removed": "gamma"}));
    let (doc, _) = c.call("remove_agent", json!({"name": "gamma"}));
    assert_eq!(
        doc["error"],
        "Agent 'gamma' not found. Available: alpha, beta"
    );
}

#[test]
fn a_broken_config_gives_every_tool_an_error_envelope() {
    let env = TestEnv::new("mcp-broken");
    env.write_config("agents: [unclosed\n");
    let mut c = McpClient::ready(&env);
    for (tool, args) in [
        ("list_agents", json!({})),
        ("inspect_agent", json!({"name": "a"})),
        ("dispatch", json!({"agent": "a", "task": "t"})),
        ("cache_stats", json!({})),
        ("remove_agent", json!({"name": "a"})),
    ] {
        let (doc, is_error) = c.call(tool, args);
        assert!(is_error, "{tool}: {doc}");
        assert!(
            doc["error"].as_str().unwrap().contains("agents.yaml"),
            "{tool}: {doc}"
        );
        assert!(doc["hint"].is_string(), "{tool}: {doc}");
    }
    assert_eq!(
        env.read_config(),
        "agents: [unclosed\n",
        "a broken config is never overwritten"
    );
}

#[test]
fn stdin_eof_kills_running_children_and_exits_promptly() {
    let env = TestEnv::new("mcp-eof");
    two_agents(&env, "");
    let mut c = client_with_step(&env, json!({"sleep": 60, "grandchild": true}));
    c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "forever"}}),
    );
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let run = env.claude_runs()[0].clone();
    // A generous deadline that only catches a hang; how fast shutdown is belongs to make bench.
    let status = c
        .close(Duration::from_secs(30))
        .expect("server did not exit after stdin EOF");
    assert!(status.success());
    for key in ["pid", "grandchild_pid"] {
        let pid = run[key].as_i64().unwrap();
        assert!(
            wait_until(Duration::from_secs(2), || !crate::util::pid_alive(pid)),
            "{key} {pid} survived"
        );
    }
}

#[test]
fn sigterm_kills_running_children_and_exits_zero() {
    let env = TestEnv::new("mcp-term");
    two_agents(&env, "");
    let mut c = client_with_step(&env, json!({"sleep": 60}));
    c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "forever"}}),
    );
    assert!(wait_until(Duration::from_secs(10), || !env
        .claude_runs()
        .is_empty()));
    let pid = env.claude_runs()[0]["pid"].as_i64().unwrap();
    let server = c.child.id() as i32;
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(server, libc::SIGTERM) };
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            status = c.child.try_wait().ok().flatten();
            status.is_some()
        }),
        "no exit after SIGTERM"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(wait_until(Duration::from_secs(2), || {
        !crate::util::pid_alive(pid)
    }));
}

/// A value of the wrong JSON type for a schema type.
fn wrong_value(ty: &str) -> Value {
    match ty {
        "string" => json!(12),
        "integer" => json!("twelve"),
        "number" => json!("a lot"),
        "boolean" => json!("maybe"),
        other => panic!("unexpected schema type {other}"),
    }
}

#[test]
fn every_parameter_of_every_tool_rejects_a_wrong_type_by_name() {
    let env = TestEnv::new("mcp-types");
    two_agents(&env, "");
    let mut c = McpClient::ready(&env);
    let id = c.request("tools/list", json!({}));
    let tools = c.response(id)["result"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    let valid = |param: &str| -> Value {
        match param {
            "agent" | "name" | "requester" | "responder" | "aggregate" => json!("alpha"),
            "directory" => json!(env.root.join("projects/alpha")),
            "dispatches" => json!(r#"[{"agent":"alpha","task":"t"}]"#),
            "job_id" | "ref" => json!("a".repeat(32)),
            _ => json!("t"),
        }
    };
    let mut checked = 0;
    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let schema = &tool["inputSchema"];
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        let base: serde_json::Map<String, Value> =
            required.iter().map(|r| (r.to_string(), valid(r))).collect();
        for (param, prop) in schema["properties"].as_object().unwrap() {
            let mut args = base.clone();
            args.insert(param.clone(), wrong_value(prop["type"].as_str().unwrap()));
            let (doc, is_error) = c.call(name, Value::Object(args));
            assert!(is_error, "{name}.{param} accepted a wrong type: {doc}");
            let msg = doc["error"].as_str().unwrap();
            assert!(
                msg.contains(&format!("'{param}'")),
                "{name}.{param}: message does not name it: {msg}"
            );
            checked += 1;
        }
        // Missing required arguments are named too.
        for r in &required {
            let mut args = base.clone();
            args.remove(*r);
            let (doc, is_error) = c.call(name, Value::Object(args));
            assert!(is_error, "{name} ran without {r}: {doc}");
            assert!(
                doc["error"].as_str().unwrap().contains(&format!("'{r}'")),
                "{name}: {doc}"
            );
        }
    }
    assert!(checked > 50, "only {checked} parameters checked");
    assert!(
        env.claude_runs().is_empty(),
        "a call with a bad argument started a child"
    );
}

#[test]
fn a_silent_run_sends_keep_alive_progress_to_a_tracking_client() {
    let env = TestEnv::new("mcp-heartbeat");
    two_agents(&env, "");
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", json!({"sleep": 1.2}).to_string())
            .env("AGENT_DISPATCH_HEARTBEAT_SECS", "0.3");
    });
    c.initialize("2025-11-25");
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "quiet"}, "_meta": {"progressToken": "hb"}}),
    );
    let (doc, _) = McpClient::tool_payload(&c.response(id));
    assert_eq!(doc["success"], true);
    let beats = c
        .notifications
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .filter(|n| {
            n["params"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("still working"))
        })
        .count();
    assert!(beats >= 2, "{:?}", c.notifications);
    // Without a token: no keep-alives at all.
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch", "arguments": {"agent": "alpha", "task": "quiet 2"}}),
    );
    c.response(id);
    assert_eq!(
        c.notifications
            .iter()
            .filter(|n| n["method"] == "notifications/progress")
            .count(),
        beats + 1
    );
}

#[test]
fn odd_hand_written_agent_names_do_not_break_tools() {
    let env = TestEnv::new("mcp-oddname");
    let dir = env.project("odd");
    env.write_config(&format!(
        "agents:\n  \"a\\0b\":\n    directory: {}\n",
        dir.display()
    ));
    let mut c = McpClient::ready(&env);
    let items = json!([{"agent": "a\u{0}b", "task": "t"}]).to_string();
    let id = c.request(
        "tools/call",
        json!({"name": "dispatch_parallel", "arguments": {"dispatches": items}, "_meta": {"progressToken": 1}}),
    );
    let (doc, is_error) = McpClient::tool_payload(&c.response(id));
    assert!(!is_error, "{doc}");
    assert_eq!(doc[0]["success"], true, "{doc}");
}
