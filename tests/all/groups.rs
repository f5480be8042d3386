//! Groups over MCP: list_groups and inspect_group (dangling members flagged, never a crash), and
//! `group=` on the dispatch tools: membership checked before anything runs, the group's shared
//! context put ahead of the call's own.

use crate::util::TestEnv;
use crate::util::mcp::McpClient;
use serde_json::{Value, json};

fn world(name: &str) -> (TestEnv, McpClient) {
    let env = TestEnv::new(name);
    let (a, b) = (env.project("alpha"), env.project("beta"));
    env.write_config(&format!(
        "agents:\n  alpha:\n    directory: {}\n    description: Billing\n  beta:\n    directory: {}\n\
         groups:\n  shop:\n    description: The shop's services\n    shared_context: All services run in k8s.\n    members:\n      - agent: alpha\n        use_for: billing questions\n      - agent: ghost\n  empty:\n    description: nothing yet\n",
        a.display(),
        b.display()
    ));
    let mut c = McpClient::start_with(&env, |cmd| {
        cmd.env("FAKE_CLAUDE_STEP", json!({"result": "ok"}).to_string());
    });
    c.initialize("2025-11-25");
    (env, c)
}

fn prompt(run: &Value) -> String {
    let argv = run["argv"].as_array().unwrap();
    let at = argv.iter().position(|a| a == "-p").unwrap();
    argv[at + 1].as_str().unwrap().to_string()
}

#[test]
fn the_group_tools_describe_members_and_flag_dangling_ones() {
    let (_env, mut c) = world("grp-list");
    let (groups, is_error) = c.call("list_groups", json!({}));
    assert!(!is_error, "{groups}");
    let shop = &groups[0];
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["shared_context_present"], true);
    assert_eq!(shop["member_count"], 2);
    assert_eq!(
        shop["members"][0],
        json!({"agent": "alpha", "use_for": "billing questions", "healthy": true})
    );
    assert_eq!(
        shop["members"][1],
        json!({"agent": "ghost", "unknown": true})
    );
    let (doc, _) = c.call("inspect_group", json!({"name": "shop"}));
    assert_eq!(doc["shared_context"], "All services run in k8s.");
    assert_eq!(doc["members"][0]["description"], "Billing");
    let (doc, is_error) = c.call("inspect_group", json!({"name": "nope"}));
    assert!(is_error);
    assert_eq!(
        doc["error"],
        "Unknown group: 'nope'. Available: shop, empty"
    );
}

#[test]
fn group_calls_check_membership_first_and_carry_the_shared_context() {
    let (env, mut c) = world("grp-dispatch");
    let (doc, _) = c.call(
        "dispatch",
        json!({"agent": "alpha", "task": "t", "context": "own facts", "group": "shop"}),
    );
    assert_eq!(doc["success"], true, "{doc}");
    let p = prompt(&env.claude_runs()[0]);
    assert!(
        p.starts_with("Context:\nShared context (group 'shop'):\nAll services run in k8s.\n\nown facts\n\nTask:\nt"),
        "{p}"
    );
    for (args, needle) in [
        (
            json!({"agent": "beta", "task": "t", "group": "shop"}),
            "is not a member of group 'shop'",
        ),
        (
            json!({"agent": "alpha", "task": "t", "group": "nosuch"}),
            "Unknown group: 'nosuch'",
        ),
        (
            json!({"agent": "alpha", "task": "t", "group": "empty"}),
            "has no members yet",
        ),
    ] {
        for tool in [
            "dispatch",
            "dispatch_session",
            "dispatch_stream",
            "dispatch_async",
        ] {
            let (doc, is_error) = c.call(tool, args.clone());
            assert!(is_error, "{tool}: {doc}");
            assert!(
                doc["error"].as_str().unwrap().contains(needle),
                "{tool}: {doc}"
            );
        }
    }
    // One bad item refuses the whole parallel call; nothing runs.
    let items = json!([
        {"agent": "alpha", "task": "x", "group": "shop"},
        {"agent": "beta", "task": "y", "group": "shop"}
    ])
    .to_string();
    let (doc, is_error) = c.call("dispatch_parallel", json!({"dispatches": items}));
    assert!(is_error, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap()
            .starts_with("dispatches[1]: Agent 'beta' is not a member"),
        "{doc}"
    );
    assert_eq!(env.claude_runs().len(), 1, "a refused call started a child");
    // A job records the merged context.
    let (doc, _) = c.call(
        "dispatch_async",
        json!({"agent": "alpha", "task": "bg", "group": "shop"}),
    );
    let id = doc["job_id"].as_str().unwrap().to_string();
    let (job, _) = c.call(
        "dispatch_wait",
        json!({"job_id": id, "timeout_seconds": 120}),
    );
    assert_eq!(job["status"], "done", "{job}");
    assert!(
        job["context"]
            .as_str()
            .unwrap()
            .contains("All services run in k8s."),
        "{job}"
    );
}
