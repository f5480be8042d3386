"""A real third-party MCP client against our binary: the official Python SDK (PyPI `mcp`).

Run by `make test-client`: python smoke_client.py <path to agent-dispatch> <path to fake-claude>.
It builds a throwaway HOME with two agents and the fake claude first on PATH, then checks the
handshake, tools/list (every inputSchema must be a valid JSON Schema 2020-12 schema), a
list_agents call, a dispatch_stream whose progress callback must fire, and a cancelled call whose
child must be killed while the session keeps working. Prints 'N passed, M failed' last.
"""

import json
import os
import sys
import tempfile
import time

import anyio
import jsonschema
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
            "rules": [{"prompt_contains": "hang forever", "step": {"sleep": 60, "grandchild": True}}],
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

    async def on_log(params):
        logs.append(params.data)

    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, logging_callback=on_log) as session:
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


if __name__ == "__main__":
    try:
        anyio.run(main, os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]))
    except Exception as e:  # noqa: BLE001 - any crash is a failed check, reported as such
        check("client ran to the end", False, repr(e))
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)
