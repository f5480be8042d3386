//! The MCP surface beyond tools, over pipes: structured results checked against each tool's
//! declared `outputSchema`, resources (list with pagination, templates, read, links in results),
//! subscriptions (a job run here or by another server process, unsubscribe, the agent roster
//! changed by another process), prompts, completions, and old clients getting the old server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::TestEnv;
use crate::util::mcp::McpClient;
use agent_dispatch::schema::validate;

const LONG: Duration = Duration::from_secs(60);

/// alpha (with a CLAUDE.md) and beta; a fake claude plan: "slow job" streams five lines a
/// second apart, "hang forever" sleeps, "fail please" fails, anything else answers at once.
fn world(name: &str) -> TestEnv {
    let env = TestEnv::new(name);
    let a = env.project("alpha");
    let b = env.project("beta");
    std::fs::write(a.join("CLAUDE.md"), "# Alpha\nBilling.\n").unwrap();
    env.write_config(&format!(
        "groups:\n  shop:\n    description: the shop\n    shared_context: k8s\n    members:\n      - agent: alpha\n        use_for: billing\n      - agent: ghost\n\
         agents:\n  alpha:\n    directory: {}\n    description: Alpha project\n    capabilities: [billing]\n    risky_capabilities: [refunds]\n    instructions: Be brief.\n  beta:\n    directory: {}\n",
        a.display(),
        b.display()
    ));
    let plan = json!({
        "rules": [
            {"prompt_contains": "slow job", "step": {"progress": ["one", "two", "three", "four", "five"], "delay": 1.0}},
            {"prompt_contains": "hang forever", "step": {"sleep": 60}},
            {"prompt_contains": "fail please", "step": {"is_error": true, "result": "boom", "subtype": "error_during_execution"}},
            {"prompt_contains": "half done", "step": {"result": "Some of it.\nSTATUS: partial"}},
        ],
    });
    std::fs::write(env.root.join("plan.json"), plan.to_string()).unwrap();
    env
}

/// A server on this world, not yet initialized; the watcher polls every 0.1 s.
fn start(env: &TestEnv) -> McpClient {
    let plan = env.root.join("plan.json");
    McpClient::start_with(env, |cmd| {
        cmd.env("FAKE_CLAUDE_PLAN", &plan)
            .env("AGENT_DISPATCH_WATCH_SECS", "0.1");
    })
}

fn client(env: &TestEnv, version: &str) -> McpClient {
    let mut c = start(env);
    c.initialize(version);
    c
}

fn rpc(c: &mut McpClient, method: &str, params: Value) -> Value {
    let id = c.request(method, params);
    c.response(id)
}

fn result(c: &mut McpClient, method: &str, params: Value) -> Value {
    let r = rpc(c, method, params);
    assert!(r.get("error").is_none(), "{method}: {r}");
    r["result"].clone()
}

fn tool(c: &mut McpClient, name: &str, args: Value) -> Value {
    let r = rpc(c, "tools/call", json!({"name": name, "arguments": args}));
    r["result"].clone()
}

fn text_doc(result: &Value) -> Value {
    serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[test]
fn every_tool_output_matches_its_declared_output_schema() {
    let env = world("more-schema");
    let mut c = client(&env, "2025-11-25");
    let tools = result(&mut c, "tools/list", json!({}))["tools"]
        .as_array()
        .unwrap()
        .clone();
    let schema_of = |name: &str| -> Value {
        let t = tools.iter().find(|t| t["name"] == name).unwrap();
        t["outputSchema"].clone()
    };
    for t in &tools {
        assert_eq!(t["outputSchema"]["type"], "object", "{}", t["name"]);
    }
    let dir = env.project("gamma");
    let mut seen = std::collections::BTreeSet::new();
    // Calls a tool, checks its structured output, returns the document of its text.
    let mut checked = |c: &mut McpClient, name: &'static str, args: Value| -> Value {
        let r = tool(c, name, args.clone());
        assert_eq!(r["isError"], false, "{name} {args}: {r}");
        let structured = &r["structuredContent"];
        assert!(structured.is_object(), "{name}: {r}");
        let text = text_doc(&r);
        let expected = if text.is_array() {
            json!({"items": text.clone()})
        } else {
            text.clone()
        };
        assert_eq!(
            structured, &expected,
            "{name}: structuredContent is not the text"
        );
        if let Err(e) = validate(&schema_of(name), structured) {
            panic!("{name} {args}: output does not match its schema: {e}\n{structured}");
        }
        seen.insert(name);
        text
    };
    let job_id = checked(
        &mut c,
        "dispatch_async",
        json!({"agent": "alpha", "task": "quick"}),
    )["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let calls: Vec<(&str, Value)> = vec![
        ("list_agents", json!({})),
        ("inspect_agent", json!({"name": "alpha"})),
        ("inspect_agent", json!({"name": "beta", "preview_lines": 0})),
        ("list_groups", json!({})),
        ("inspect_group", json!({"name": "shop"})),
        (
            "dispatch",
            json!({"agent": "alpha", "task": "half done", "group": "shop"}),
        ),
        (
            "dispatch",
            json!({"agent": "alpha", "task": "half done", "return_ref": true}),
        ),
        ("dispatch", json!({"agent": "alpha", "task": "hello"})),
        ("dispatch", json!({"agent": "alpha", "task": "hello"})),
        ("dispatch", json!({"agent": "alpha", "task": "fail please"})),
        (
            "dispatch",
            json!({"agent": "beta", "task": "long", "return_ref": true, "summary_chars": 3}),
        ),
        ("dispatch_session", json!({"agent": "beta", "task": "hi"})),
        (
            "dispatch_stream",
            json!({"agent": "alpha", "task": "stream me"}),
        ),
        (
            "dispatch_parallel",
            json!({"dispatches": r#"[{"agent":"alpha","task":"p1"},{"agent":"beta","task":"p2","return_ref":true}]"#}),
        ),
        (
            "dispatch_parallel",
            json!({"dispatches": r#"[{"agent":"alpha","task":"p3"}]"#, "aggregate": "beta"}),
        ),
        (
            "dispatch_dialogue",
            json!({"requester": "alpha", "responder": "beta", "topic": "t", "max_rounds": 1}),
        ),
        (
            "add_agent",
            json!({"name": "gamma", "directory": dir, "allowed_tools": "Read", "permission_mode": "plan", "backend": "claude"}),
        ),
        ("update_agent", json!({"name": "gamma", "description": "G"})),
        ("remove_agent", json!({"name": "gamma"})),
        (
            "dispatch_wait",
            json!({"job_id": job_id, "timeout_seconds": 60}),
        ),
        ("dispatch_status", json!({"job_id": job_id})),
        ("dispatch_cancel", json!({"job_id": job_id})),
        ("dispatch_jobs", json!({})),
        ("fetch_result", json!({"ref": job_id})),
        ("fetch_result", json!({"ref": job_id, "max_chars": 2})),
        ("dispatch_gc", json!({"max_age_days": 1, "dry_run": true})),
        ("dispatch_gc", json!({"max_age_days": 1})),
        ("cache_stats", json!({})),
        ("cache_clear", json!({})),
    ];
    for (name, args) in calls {
        checked(&mut c, name, args);
    }
    for t in &tools {
        assert!(
            seen.contains(t["name"].as_str().unwrap()),
            "{} not exercised",
            t["name"]
        );
    }
    // The check can fail: a field the schema does not know is refused.
    let mut drifted = text_doc(&tool(
        &mut c,
        "dispatch",
        json!({"agent": "alpha", "task": "hello"}),
    ));
    drifted["new_field"] = json!(1);
    assert!(validate(&schema_of("dispatch"), &drifted).is_err());
    // Errors stay isError results, with the text only.
    let r = tool(&mut c, "dispatch", json!({"agent": "nope", "task": "x"}));
    assert_eq!(r["isError"], true);
    assert!(r.get("structuredContent").is_none(), "{r}");
    assert!(
        text_doc(&r)["error"]
            .as_str()
            .unwrap()
            .contains("Unknown agent")
    );
}

#[test]
fn old_clients_get_exactly_the_old_server() {
    let env = world("more-old");
    let mut c = start(&env);
    // `McpClient::initialize` declares no client capabilities at all.
    let init = c.initialize("2024-11-05")["result"].clone();
    assert_eq!(init["protocolVersion"], "2024-11-05");
    assert_eq!(
        init["capabilities"],
        json!({"tools": {"listChanged": false}, "logging": {}})
    );
    let tools = result(&mut c, "tools/list", json!({}));
    for t in tools["tools"].as_array().unwrap() {
        assert!(t.get("outputSchema").is_none(), "{t}");
    }
    let r = tool(
        &mut c,
        "dispatch",
        json!({"agent": "alpha", "task": "x", "return_ref": true}),
    );
    assert_eq!(
        r.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["content", "isError"]
    );
    assert_eq!(
        r["content"].as_array().unwrap().len(),
        1,
        "no resource links: {r}"
    );
    for method in [
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
    ] {
        let r = rpc(&mut c, method, json!({}));
        assert_eq!(r["error"]["code"], -32601, "{method}: {r}");
    }

    // 2025-03-26 has resources, prompts and completions, but no structured tool output yet.
    let mut c = client(&env, "2025-03-26");
    let r = result(&mut c, "prompts/list", json!({}));
    assert_eq!(r["prompts"].as_array().unwrap().len(), 3);
    let tools = result(&mut c, "tools/list", json!({}));
    assert!(tools["tools"][0].get("outputSchema").is_none());
}

#[test]
fn resources_list_read_templates_and_links() {
    let env = world("more-res");
    // Enough agents for two pages.
    let dir = env.project("many");
    let mut yaml = env.read_config();
    for i in 0..130 {
        yaml.push_str(&format!("  a{i:03}:\n    directory: {}\n", dir.display()));
    }
    env.write_config(&yaml);
    let mut c = client(&env, "2025-06-18");
    let first = result(&mut c, "resources/list", json!({}));
    let page: Vec<Value> = first["resources"].as_array().unwrap().clone();
    assert_eq!(page[0]["uri"], "agent-dispatch://agents/alpha");
    assert_eq!(page[0]["description"], "Alpha project");
    let cursor = first["nextCursor"].as_str().unwrap().to_string();
    let second = result(&mut c, "resources/list", json!({"cursor": cursor}));
    assert!(second.get("nextCursor").is_none());
    // 132 agents, then the one group.
    assert_eq!(
        page.len() + second["resources"].as_array().unwrap().len(),
        133
    );
    assert_eq!(
        rpc(&mut c, "resources/list", json!({"cursor": "nonsense"}))["error"]["code"],
        -32602
    );

    let templates = result(&mut c, "resources/templates/list", json!({}));
    let uris: Vec<&str> = templates["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert!(uris.contains(&"agent-dispatch://jobs/{id}"));
    assert!(uris.contains(&"agent-dispatch://results/{id}"));

    let read = result(
        &mut c,
        "resources/read",
        json!({"uri": "agent-dispatch://agents/alpha"}),
    );
    let agent: Value = serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    let inspected = text_doc(&tool(&mut c, "inspect_agent", json!({"name": "alpha"})));
    assert_eq!(agent, inspected);

    // A return_ref result links to its stored text, which reads back whole.
    let r = tool(
        &mut c,
        "dispatch",
        json!({"agent": "alpha", "task": "a long answer", "return_ref": true, "summary_chars": 4}),
    );
    let reference = text_doc(&r)["ref"].as_str().unwrap().to_string();
    let link = &r["content"][1];
    assert_eq!(link["type"], "resource_link");
    assert_eq!(link["uri"], format!("agent-dispatch://results/{reference}"));
    let read = result(&mut c, "resources/read", json!({"uri": link["uri"]}));
    assert_eq!(read["contents"][0]["mimeType"], "text/markdown");
    assert!(
        read["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("a long answer")
    );
    let job = result(
        &mut c,
        "resources/read",
        json!({"uri": format!("agent-dispatch://jobs/{reference}")}),
    );
    let job: Value = serde_json::from_str(job["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(job["status"], "done");

    // dispatch_async links to the job and its future result.
    let r = tool(
        &mut c,
        "dispatch_async",
        json!({"agent": "beta", "task": "quick"}),
    );
    let id = text_doc(&r)["job_id"].as_str().unwrap().to_string();
    let linked: Vec<&str> = r["content"].as_array().unwrap()[1..]
        .iter()
        .map(|l| l["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        linked,
        [
            format!("agent-dispatch://jobs/{id}"),
            format!("agent-dispatch://results/{id}")
        ]
    );

    for missing in [
        "agent-dispatch://agents/nobody",
        "agent-dispatch://jobs/0123456789abcdef0123456789abcdef",
        "agent-dispatch://jobs/../../etc/passwd",
        "file:///etc/passwd",
    ] {
        let r = rpc(&mut c, "resources/read", json!({"uri": missing}));
        assert_eq!(r["error"]["code"], -32002, "{missing}: {r}");
    }
}

fn updates_for(c: &McpClient, uri: &str) -> usize {
    c.notifications
        .iter()
        .filter(|n| n["method"] == "notifications/resources/updated" && n["params"]["uri"] == uri)
        .count()
}

/// Reads messages until `f` holds for the client or `LONG` passes.
fn pump_until(c: &mut McpClient, mut f: impl FnMut(&McpClient) -> bool) -> bool {
    let end = std::time::Instant::now() + LONG;
    while std::time::Instant::now() < end {
        if f(c) {
            return true;
        }
        c.next_message(Duration::from_millis(100));
    }
    f(c)
}

#[test]
fn a_subscription_hears_a_job_run_by_another_process_until_unsubscribed() {
    let env = world("more-sub");
    let mut runner = client(&env, "2025-11-25");
    let mut watcher = client(&env, "2025-11-25");
    let id = text_doc(&tool(
        &mut runner,
        "dispatch_async",
        json!({"agent": "alpha", "task": "slow job"}),
    ))["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let uri = format!("agent-dispatch://jobs/{id}");
    assert_eq!(
        result(&mut watcher, "resources/subscribe", json!({"uri": uri})),
        json!({})
    );
    // Progress lines change the record; the watcher (another process) hears them.
    assert!(
        pump_until(&mut watcher, |c| updates_for(c, &uri) >= 1),
        "updates: {:?}",
        watcher.notifications
    );
    // So does a status change made after the subscription, here a cancel from the other process;
    // the result resource changes with it.
    let result_uri = format!("agent-dispatch://results/{id}");
    result(
        &mut watcher,
        "resources/subscribe",
        json!({"uri": result_uri}),
    );
    let heard = updates_for(&watcher, &uri);
    let cancelled = text_doc(&tool(&mut runner, "dispatch_cancel", json!({"job_id": id})));
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(pump_until(&mut watcher, |c| updates_for(c, &uri) > heard
        && updates_for(c, &result_uri) >= 1));
    let status = |c: &mut McpClient| {
        let r = result(c, "resources/read", json!({"uri": uri}));
        serde_json::from_str::<Value>(r["contents"][0]["text"].as_str().unwrap()).unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&mut watcher), "cancelled");

    // Unsubscribed: a job that changes afterwards sends nothing.
    let hung = text_doc(&tool(
        &mut runner,
        "dispatch_async",
        json!({"agent": "beta", "task": "hang forever"}),
    ))["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let hung_uri = format!("agent-dispatch://jobs/{hung}");
    result(
        &mut watcher,
        "resources/subscribe",
        json!({"uri": hung_uri}),
    );
    result(
        &mut watcher,
        "resources/unsubscribe",
        json!({"uri": hung_uri}),
    );
    let heard = updates_for(&watcher, &hung_uri);
    assert_eq!(
        text_doc(&tool(
            &mut runner,
            "dispatch_cancel",
            json!({"job_id": hung})
        ))["status"],
        "cancelled"
    );
    // Give the watcher many poll intervals (0.1 s each) to (wrongly) report the change.
    for _ in 0..20 {
        watcher.next_message(Duration::from_millis(100));
    }
    assert_eq!(updates_for(&watcher, &hung_uri), heard);

    let r = rpc(
        &mut watcher,
        "resources/subscribe",
        json!({"uri": "agent-dispatch://jobs/0123456789abcdef0123456789abcdef"}),
    );
    assert_eq!(r["error"]["code"], -32002);
}

#[test]
fn list_changed_when_another_process_adds_or_removes_an_agent() {
    let env = world("more-listchg");
    let mut listener = client(&env, "2025-11-25");
    let mut editor = client(&env, "2025-11-25");
    let changed = |c: &McpClient| {
        c.notifications
            .iter()
            .filter(|n| n["method"] == "notifications/resources/list_changed")
            .count()
    };
    let dir = env.project("gamma");
    let r = tool(
        &mut editor,
        "add_agent",
        json!({"name": "gamma", "directory": dir}),
    );
    assert_eq!(r["isError"], false, "{r}");
    assert!(pump_until(&mut listener, |c| changed(c) >= 1));
    let listed = result(&mut listener, "resources/list", json!({}));
    assert!(
        listed["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "gamma")
    );
    tool(&mut editor, "remove_agent", json!({"name": "gamma"}));
    assert!(pump_until(&mut listener, |c| changed(c) >= 2));
}

#[test]
fn prompts_expand_into_tool_instructions_and_check_their_arguments() {
    let env = world("more-prompts");
    let mut c = client(&env, "2025-11-25");
    let listed = result(&mut c, "prompts/list", json!({}));
    let names: Vec<&str> = listed["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ask", "fan_out", "review_with"]);
    for p in listed["prompts"].as_array().unwrap() {
        assert!(p["description"].is_string());
    }
    let got = result(
        &mut c,
        "prompts/get",
        json!({"name": "ask", "arguments": {"agent": "alpha", "task": "Where are refunds made?"}}),
    );
    let text = got["messages"][0]["content"]["text"].as_str().unwrap();
    assert_eq!(got["messages"][0]["role"], "user");
    assert!(
        text.contains("`dispatch`")
            && text.contains("agent=\"alpha\"")
            && text.contains("Where are refunds made?")
    );
    let got = result(
        &mut c,
        "prompts/get",
        json!({"name": "fan_out", "arguments": {"task": "t", "agents": "alpha, beta"}}),
    );
    let text = got["messages"][0]["content"]["text"].as_str().unwrap();
    assert!(text.contains("dispatch_parallel") && text.contains("\"alpha\", \"beta\""));
    let got = result(
        &mut c,
        "prompts/get",
        json!({"name": "review_with", "arguments": {"agent": "beta", "what": "the diff"}}),
    );
    assert!(
        got["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("the diff")
    );
    for bad in [
        json!({"name": "nope"}),
        json!({"name": "ask", "arguments": {"agent": "alpha"}}),
        json!({"name": "ask", "arguments": {"agent": "ghost", "task": "t"}}),
        json!({"name": "fan_out", "arguments": {"task": "t", "agents": "alpha,ghost"}}),
    ] {
        assert_eq!(
            rpc(&mut c, "prompts/get", bad.clone())["error"]["code"],
            -32602,
            "{bad}"
        );
    }
}

#[test]
fn completions_suggest_agents_and_job_ids_by_prefix() {
    let env = world("more-complete");
    let mut c = client(&env, "2025-11-25");
    let complete = |c: &mut McpClient, reference: Value, name: &str, value: &str| -> Vec<String> {
        let r = result(
            c,
            "completion/complete",
            json!({"ref": reference, "argument": {"name": name, "value": value}}),
        );
        r["completion"]["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let ask = json!({"type": "ref/prompt", "name": "ask"});
    assert_eq!(
        complete(&mut c, ask.clone(), "agent", ""),
        ["alpha", "beta"]
    );
    assert_eq!(complete(&mut c, ask.clone(), "agent", "b"), ["beta"]);
    assert!(complete(&mut c, ask, "task", "a").is_empty());
    let fan = json!({"type": "ref/prompt", "name": "fan_out"});
    assert_eq!(complete(&mut c, fan, "agents", "alpha, "), ["alpha,beta"]);
    let agents = json!({"type": "ref/resource", "uri": "agent-dispatch://agents/{name}"});
    assert_eq!(complete(&mut c, agents, "name", "al"), ["alpha"]);

    let id = text_doc(&tool(
        &mut c,
        "dispatch_async",
        json!({"agent": "alpha", "task": "quick"}),
    ))["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs = json!({"type": "ref/resource", "uri": "agent-dispatch://results/{id}"});
    assert_eq!(
        complete(&mut c, jobs.clone(), "id", &id[..6]),
        [id.as_str()]
    );
    let other = if id.starts_with('0') { "1" } else { "0" };
    assert!(complete(&mut c, jobs, "id", other).is_empty());
    let r = rpc(
        &mut c,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "nope"}, "argument": {"name": "agent", "value": ""}}),
    );
    assert_eq!(r["error"]["code"], -32602);
}

#[test]
fn groups_are_resources_with_completions() {
    let env = world("more-groups");
    let mut c = client(&env, "2025-11-25");
    let list = result(&mut c, "resources/list", json!({}));
    let uris: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(uris.contains(&"agent-dispatch://groups/shop"), "{uris:?}");
    let read = result(
        &mut c,
        "resources/read",
        json!({"uri": "agent-dispatch://groups/shop"}),
    );
    let doc: Value = serde_json::from_str(read["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(doc["shared_context"], "k8s");
    assert_eq!(
        doc["members"][1],
        json!({"agent": "ghost", "unknown": true})
    );
    let missing = rpc(
        &mut c,
        "resources/read",
        json!({"uri": "agent-dispatch://groups/nope"}),
    );
    assert_eq!(missing["error"]["code"], -32002, "{missing}");
    let done = result(
        &mut c,
        "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "agent-dispatch://groups/{name}"}, "argument": {"name": "name", "value": "sh"}}),
    );
    assert_eq!(done["completion"]["values"], json!(["shop"]));
}
