#!/usr/bin/env python3
"""Produce the README's MCP examples by driving a real `agent-dispatch serve`.

Usage: scripts/mcp-examples.py target/debug/agent-dispatch fixtures/fake-claude [OUT.json]

Everything happens in a throw-away directory: its own HOME, config (AGENT_DISPATCH_CONFIG) and a
PATH whose `claude` is the fake. Each agent's behaviour is chosen by the `.fake-claude-step.json`
the fake reads from its working directory (the agent's project). For every call the script prints
the request line exactly as sent, the notifications that arrived before the response, and the
response (for tools/call, the text content parsed back into JSON); with OUT.json it also writes
the tools/list result and every exchange there. Nothing here is edited by hand; the README
shortens long values only.
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time


def main():
    binary = os.path.abspath(sys.argv[1])
    fake = os.path.abspath(sys.argv[2])
    root = tempfile.mkdtemp(prefix="ad-examples-")
    try:
        record = run(binary, fake, root)
        if len(sys.argv) > 3:
            with open(sys.argv[3], "w") as f:
                json.dump(record, f, indent=1)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def step(project, **fields):
    write(os.path.join(project, ".fake-claude-step.json"), json.dumps(fields))


class Client:
    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env, text=True, bufsize=1)
        self.lines = queue.Queue()
        self.next_id = 0
        self.record = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, msg):
        line = json.dumps(msg)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return line

    def request(self, method, params, show=True, wait=True, timeout=30):
        self.next_id += 1
        rid = self.next_id
        line = self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        if not wait:
            return rid, line
        notes, resp = self.collect(rid, timeout)
        self.record.append({"request": line, "notifications": notes, "response": resp})
        if show:
            print(f"\n### {method} {params.get('name', '')}".rstrip())
            print("request:  " + line)
            for n in notes:
                print("notify:   " + json.dumps(n))
            if method == "tools/call" and "result" in resp:
                r = resp["result"]
                print(f"isError:  {r['isError']}")
                print(json.dumps(json.loads(r["content"][0]["text"]), indent=2, ensure_ascii=False))
            else:
                print("response: " + json.dumps(resp))
        return resp

    def collect(self, rid, timeout):
        notes, deadline = [], time.time() + timeout
        while True:
            msg = self.lines.get(timeout=max(0.1, deadline - time.time()))
            if msg.get("id") == rid and "method" not in msg:
                return notes, msg
            notes.append(msg)

    def call(self, name, args, meta=None, **kw):
        params = {"name": name, "arguments": args}
        if meta:
            params["_meta"] = meta
        return self.request("tools/call", params, **kw)

    def text(self, resp):
        return json.loads(resp["result"]["content"][0]["text"])


def run(binary, fake, root):
    home = os.path.join(root, "home")
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir)
    os.symlink(fake, os.path.join(bindir, "claude"))
    config = os.path.join(home, ".config", "agent-dispatch", "agents.yaml")
    billing = os.path.join(home, "code", "billing-api")
    frontend = os.path.join(home, "code", "web-frontend")
    spare = os.path.join(home, "code", "search-service")
    write(os.path.join(billing, "CLAUDE.md"),
          "# Billing API\n\nInvoices, payments and refunds for the shop.\nAmounts are integer cents.\n")
    write(os.path.join(billing, "README.md"), "# billing-api\n\nREST service that owns invoices.\n")
    write(os.path.join(billing, "pyproject.toml"), '[project]\nname = "billing-api"\n')
    write(os.path.join(billing, ".mcp.json"), '{"mcpServers": {"postgres": {"command": "pg-mcp"}}}')
    os.makedirs(os.path.join(billing, "alembic"))
    write(os.path.join(frontend, "package.json"),
          '{"name": "web-frontend", "description": "Shop front end in React"}')
    write(os.path.join(spare, "Cargo.toml"), '[package]\nname = "search"\n')
    write(os.path.join(spare, "README.md"), "# search\n\nFull-text search over the product catalogue.\n")
    write(config, f"""agents:
  billing:
    directory: {billing}
    description: Invoices, payments and refunds (Python, Postgres)
    timeout: 300
    allowed_tools: [Read, Grep, Glob]
  frontend:
    directory: {frontend}
    description: Shop front end in React
    timeout: 300
    model: sonnet
settings:
  max_concurrency: 5
""")
    step(billing, result="Invoices are stored in cents in the invoices table; see billing/models.py.",
         cost=0.0123, num_turns=2, duration_ms=5120)
    step(frontend, result="The checkout page calls POST /invoices and renders amount/100.",
         cost=0.0081, num_turns=1, duration_ms=3870)

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AGENT_DISPATCH_", "FAKE_CLAUDE_"))}
    env.update(HOME=home, AGENT_DISPATCH_CONFIG=config, NO_COLOR="1",
               PATH=f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    c = Client([binary, "serve"], env)

    resp = c.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "example", "version": "1"}}, show=False)
    r = resp["result"]
    print("### initialize")
    print(json.dumps({k: r[k] for k in ("protocolVersion", "capabilities", "serverInfo")}))
    c.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    tools = c.request("tools/list", {}, show=False)["result"]["tools"]
    print(f"tools/list: {len(tools)} tools: {', '.join(t['name'] for t in tools)}")
    print(json.dumps(tools[1]))

    c.call("list_agents", {})
    c.call("inspect_agent", {"name": "billing", "preview_lines": 3})
    c.call("dispatch", {"agent": "billing", "task": "Where are invoice amounts stored?",
                        "caller": "web-frontend", "goal": "show invoice totals"})
    c.call("dispatch", {"agent": "billing", "task": "Where are invoice amounts stored?",
                        "caller": "web-frontend", "goal": "show invoice totals",
                        "return_ref": True, "summary_chars": 40})
    first = c.text(c.call("dispatch_session", {"agent": "frontend", "task": "Plan the invoice page"}))
    c.call("dispatch_session", {"agent": "frontend", "task": "Now list the components",
                                "session_id": first["session_id"]})
    c.call("dispatch_parallel", {"dispatches": json.dumps([
        {"agent": "billing", "task": "List the invoice endpoints"},
        {"agent": "frontend", "task": "List the pages that show money", "return_ref": True,
         "summary_chars": 30}]), "aggregate": "billing"})
    step(billing, result="Refunds go through POST /refunds.", progress=["Reading routes", "tool:Grep"])
    c.call("dispatch_stream", {"agent": "billing", "task": "How are refunds created?"},
           meta={"progressToken": "p1"})
    step(billing, result="Amounts are integer cents; the API returns them as strings.")
    step(frontend, result="Understood: divide by 100 and format. [RESOLVED]")
    c.call("dispatch_dialogue", {"requester": "frontend", "responder": "billing",
                                 "topic": "How should the front end format invoice amounts?",
                                 "max_rounds": 2})

    c.call("add_agent", {"name": "search", "directory": "~/code/search-service"})
    c.call("update_agent", {"name": "search", "timeout": 600, "allowed_tools": "Read,Grep",
                            "model": "haiku"})
    c.call("remove_agent", {"name": "search"})

    step(billing, result="Found 3 unpaid invoices older than 30 days.",
         progress=["Querying invoices", "tool:Bash"], delay=0.5)
    job = c.text(c.call("dispatch_async", {"agent": "billing", "task": "Find overdue invoices",
                                           "caller": "web-frontend"}))["job_id"]
    time.sleep(1.2)
    c.call("dispatch_status", {"job_id": job})
    c.call("dispatch_wait", {"job_id": job, "timeout_seconds": 30})
    step(frontend, result="never", sleep=60)
    slow = c.text(c.call("dispatch_async", {"agent": "frontend", "task": "Audit every page"},
                         show=False))["job_id"]
    time.sleep(1.0)
    c.call("dispatch_wait", {"job_id": slow, "timeout_seconds": 1})
    c.call("dispatch_cancel", {"job_id": slow})
    time.sleep(0.5)
    c.call("dispatch_jobs", {"limit": 3})
    c.call("fetch_result", {"ref": job, "max_chars": 20})
    c.call("dispatch_gc", {"max_age_days": 30})
    c.call("cache_stats", {})
    c.call("cache_clear", {})

    # A failed dispatch is a result, not a tool error: the CLI stopped at the budget cap.
    c.call("update_agent", {"name": "billing", "max_budget_usd": 0.5}, show=False)
    step(billing, is_error=True, subtype="error_max_budget_usd", result="", cost=0.52,
         errors=["Reached maximum budget ($0.5)"], num_turns=7, duration_ms=48210)
    c.call("dispatch", {"agent": "billing", "task": "Reconcile every invoice of 2024"})

    # Errors: unknown agent, invalid id, unknown tool, cancellation.
    c.call("dispatch", {"agent": "nope", "task": "hi"})
    c.call("fetch_result", {"ref": "../etc/passwd"})
    c.call("no_such_tool", {})
    step(billing, result="too late", sleep=60)
    rid, line = c.call("dispatch", {"agent": "billing", "task": "Long audit"}, wait=False)
    time.sleep(1.0)
    cancel = c.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
                     "params": {"requestId": rid, "reason": "user pressed Esc"}})
    print("\n### cancellation")
    print("request:  " + line)
    print("cancel:   " + cancel)
    ping = c.request("ping", {}, show=False)
    extra = []
    while not c.lines.empty():
        extra.append(c.lines.get())
    print("after cancel, ping answered:", json.dumps(ping), "other messages:", json.dumps(extra))
    with open(os.path.join(billing, ".fake-claude-log.jsonl")) as f:
        child = json.loads(f.readlines()[-1])
    t0 = time.time()
    while os.path.exists(f"/proc/{child['pid']}") and time.time() - t0 < 10:
        with open(f"/proc/{child['pid']}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    print(f"cancelled child {child['pid']} gone {time.time() - t0:.1f}s after the ping reply")
    c.request("logging/setLevel", {"level": "warning"})
    c.call("cache_clear", {})
    c.proc.stdin.close()
    c.proc.wait(timeout=10)

    # The job commands of the CLI over the same store.
    step(billing, result="Invoices are stored in cents in the invoices table.")
    for argv in (["jobs", "--limit", "3"], ["job", job], ["cancel", job], ["gc", "--days", "30"],
                 ["test", "billing"], ["test", "billing", "Where are refunds?", "--stream"]):
        out = subprocess.run([binary] + argv, env=env, capture_output=True, text=True)
        print(f"\n$ agent-dispatch {' '.join(argv)}   (exit {out.returncode})")
        print(out.stdout + out.stderr, end="")
    return {"root": root, "tools": tools, "exchanges": c.record}


if __name__ == "__main__":
    main()
