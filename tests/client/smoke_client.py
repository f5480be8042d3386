"""A real third-party MCP client against our binary: the official Python SDK (PyPI `mcp`).

Run by `make test-client`: python smoke_client.py <path to agent-dispatch> <path to fake-claude>.
It builds a throwaway HOME with two agents and the fake claude first on PATH, then checks the
handshake, tools/list (every inputSchema must be a valid JSON Schema 2020-12 schema), a
list_agents call, a dispatch_stream whose progress callback must fire, and a cancelled call whose
child must be killed while the session keeps working. Then the rest of MCP: every outputSchema is
valid and the SDK validates each structuredContent against it; resources are listed and read (an
agent, and a return_ref result through its resource link); a subscription to a running job
receives notifications/resources/updated; a prompt is listed and expanded; an agent name is
completed. Prints 'N passed, M failed' last.
"""

import json
import os
import sys
import tempfile
import time

import anyio
import jsonschema
import mcp.types as types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

PASSED = []
FAILED = []


def check(name, ok, detail=""):
    (PASSED if ok else FAILED).append(name)
    print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail and not ok else ""), flush=True)


def text_json(result):
    return json.loads(result.content[0].text)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


async def main(binary, fake):
    root = tempfile.mkdtemp(prefix="ad-client-")
    home = os.path.join(root, "home")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    os.symlink(fake, os.path.join(bindir, "claude"))
    projects = {name: os.path.join(root, "projects", name) for name in ("alpha", "beta")}
    for path in projects.values():
        os.makedirs(path)
    config = os.path.join(home, ".config", "agent-dispatch", "agents.yaml")
    os.makedirs(os.path.dirname(config))
    with open(config, "w") as f:
        f.write("agents:\n")
        for name, path in projects.items():
            f.write(f"  {name}:\n    directory: {path}\n    description: {name} project\n")
    log = os.path.join(root, "claude.jsonl")
    plan = os.path.join(root, "plan.json")
    with open(plan, "w") as f:
        json.dump({
            "rules": [
                {"prompt_contains": "hang forever", "step": {"sleep": 60, "grandchild": True}},
                {"prompt_contains": "slow job", "step": {"progress": ["one", "two", "three"], "delay": 1.0}},
            ],
            "default": {"delay": 0.05, "progress": ["Reading the code", "tool:Grep", "Writing the answer"]},
        }, f)
    env = {
        "HOME": home,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "AGENT_DISPATCH_CONFIG": config,
        "FAKE_CLAUDE_LOG": log,
        "FAKE_CLAUDE_PLAN": plan,
    }
    params = StdioServerParameters(command=binary, args=["serve"], env=env)
    logs = []
    updated = []

    async def on_log(params):
        logs.append(params.data)

    async def on_message(message):
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))

    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, logging_callback=on_log, message_handler=on_message) as session:
            init = await session.initialize()
            check("initialize", init.server_info.name == "agent-dispatch", init.server_info)

            tools = (await session.list_tools()).tools
            names = [t.name for t in tools]
            check("tools/list names", "dispatch" in names and "list_agents" in names, names)
            bad = []
            for t in tools:
                try:
                    jsonschema.Draft202012Validator.check_schema(t.input_schema)
                except jsonschema.SchemaError as e:
                    bad.append(f"{t.name}: {e.message}")
            check("every inputSchema is valid JSON Schema 2020-12", not bad, bad)

            listed = await session.call_tool("list_agents", {})
            agents = text_json(listed)
            check("list_agents", [a["name"] for a in agents] == ["alpha", "beta"], agents)

            progress = []

            async def on_progress(done, total, message):
                progress.append((done, message))

            streamed = await session.call_tool(
                "dispatch_stream", {"agent": "alpha", "task": "explain the module", "caller": "client"},
                progress_callback=on_progress)
            doc = text_json(streamed)
            check("dispatch_stream result", doc.get("success") is True, doc)
            check("progress callback fired", len(progress) >= 3, progress)
            check("progress messages carry agent lines",
                  any(m and "Using tool: Grep" in m for _, m in progress), progress)
            check("log notifications arrived", any("[alpha]" in str(line) for line in logs), logs)

            with anyio.move_on_after(2.0):
                await session.call_tool("dispatch", {"agent": "beta", "task": "hang forever"})
            runs = [json.loads(line) for line in open(log)]
            hung = [r for r in runs if "hang forever" in " ".join(r["argv"])]
            check("cancelled call had started its child", len(hung) == 1, runs)
            if hung:
                pids = [hung[0]["pid"], hung[0]["grandchild_pid"]]
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
                    await anyio.sleep(0.05)
                check("cancel killed the child and its grandchild",
                      not any(pid_alive(p) for p in pids), pids)
            await session.send_ping()
            check("session still answers after a cancel", True)

            await more_of_mcp(session, tools, updated)


async def more_of_mcp(session, tools, updated):
    """Structured results, resources, a subscription, prompts and completions."""
    bad = []
    for t in tools:
        try:
            jsonschema.Draft202012Validator.check_schema(t.output_schema or {})
        except jsonschema.SchemaError as e:
            bad.append(f"{t.name}: {e.message}")
    check("every tool has a valid outputSchema", not bad and all(t.output_schema for t in tools), bad)
    # The SDK validates structuredContent against the outputSchema on every call_tool.
    listed = await session.call_tool("list_agents", {})
    check("structuredContent wraps the list", [a["name"] for a in listed.structured_content["items"]] == ["alpha", "beta"],
          listed.structured_content)

    resources = (await session.list_resources()).resources
    uris = [str(r.uri) for r in resources]
    check("resources/list names the agents",
          uris == ["agent-dispatch://agents/alpha", "agent-dispatch://agents/beta"], uris)
    agent = json.loads((await session.read_resource(uris[0])).contents[0].text)
    check("an agent resource reads as inspect_agent", agent.get("name") == "alpha", agent)
    templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
    check("job and result templates", "agent-dispatch://jobs/{id}" in templates, templates)

    reffed = await session.call_tool("dispatch", {"agent": "beta", "task": "a long report", "return_ref": True})
    links = [c for c in reffed.content if c.type == "resource_link"]
    check("a return_ref result links to its result", len(links) == 1, reffed.content)
    if links:
        text = (await session.read_resource(str(links[0].uri))).contents[0].text
        check("the linked result reads back whole", "a long report" in text, text)

    started = await session.call_tool("dispatch_async", {"agent": "alpha", "task": "slow job"})
    job_uri = f"agent-dispatch://jobs/{started.structured_content['job_id']}"
    await session.subscribe_resource(job_uri)
    with anyio.move_on_after(30):
        while job_uri not in updated:
            await anyio.sleep(0.05)
    check("a subscribed job sends notifications/resources/updated", job_uri in updated, updated)

    prompts = (await session.list_prompts()).prompts
    check("prompts/list", [p.name for p in prompts] == ["ask", "fan_out", "review_with"], prompts)
    got = await session.get_prompt("ask", {"agent": "alpha", "task": "Where are refunds made?"})
    text = got.messages[0].content.text
    check("prompts/get expands into tool instructions", "`dispatch`" in text and "Where are refunds made?" in text, text)

    done = await session.complete(types.PromptReference(type="ref/prompt", name="ask"), {"name": "agent", "value": "be"})
    check("completion/complete suggests agents by prefix", done.completion.values == ["beta"], done.completion)


if __name__ == "__main__":
    try:
        anyio.run(main, os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    except Exception as e:  # noqa: BLE001 - any crash is a failed check, reported as such
        check("client ran to the end", False, repr(e))
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)
