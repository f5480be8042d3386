"""`make test-e2e`: agent-dispatch (MCP server and CLI) driving the REAL `claude` CLI, offline.

python run_e2e.py --binary B --claude C --node-bin N --fake F [--codex X] [--gemini G] [--only S] [--keep]

The real CLI (installed by the Makefile under target/e2e/) talks to tests/e2e/mock_api.py on
127.0.0.1 instead of the model API. Each scenario gets its own HOME and agents.yaml and, for the
MCP ones, its own `agent-dispatch serve`, driven by the official Python MCP SDK. The contract
checks (contract.py) then compare the real CLI with fixtures/fake-claude, and backends_e2e.py
runs the codex and gemini backends through their real CLIs. The last line is
'N passed, M failed'; the exit status is 1 when anything failed.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import uuid

import anyio
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

import contract
from harness import World, processes_with, processes_with_arg, token, wait_until

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Deadlines. None of them is a speed assertion: each only bounds a hang.
CALL_SECS = 120
SCENARIO_SECS = 240
GONE_SECS = 20


def doc(result):
    return json.loads(result.content[0].text)


class Mcp:
    """One `agent-dispatch serve` in a scenario's HOME, with its log lines collected."""

    def __init__(self, session, logs):
        self.session = session
        self.logs = logs

    async def call(self, name, arguments, progress=None):
        result = await self.session.call_tool(
            name, arguments, read_timeout_seconds=CALL_SECS,
            progress_callback=progress)
        return doc(result)


async def with_server(world, home, body):
    params = StdioServerParameters(command=world.binary, args=["serve"], env=home.env)
    logs = []

    async def on_log(params):
        logs.append(str(params.data))

    with anyio.fail_after(SCENARIO_SECS):
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, logging_callback=on_log) as session:
                await session.initialize()
                await body(Mcp(session, logs))


def scenario(func):
    """Runs one async scenario; a crash or a blown deadline is a failed check, not an abort."""
    def run(world):
        name = func.__name__
        try:
            anyio.run(func, world)
        except BaseException as e:  # noqa: BLE001 - reported, the next scenario still runs
            if isinstance(e, KeyboardInterrupt):
                raise
            world.tally.check(f"{name} ran to the end", False, repr(e))
    run.__name__ = func.__name__
    return run


@scenario
async def dispatch_one_shot(world):
    t = world.tally
    home = world.home("dispatch", {"alpha": {}})
    tok = token("dispatch")
    task = f"Describe the project {tok}\nE2E:FINAL The project is alpha."

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": task, "caller": "e2e-client"})
        t.check("dispatch: success with the model's text", r.get("success") is True
                and r.get("result") == "The project is alpha.", r)
        t.check("dispatch: session id is the uuid we chose", bool(UUID.match(r.get("session_id", ""))), r)
        t.check("dispatch: cost and turns as the CLI computed them",
                r.get("cost_usd") == 0.0008 and r.get("num_turns") == 1
                and isinstance(r.get("duration_ms"), int), r)
        reqs = world.api.requests(tok)
        t.check("dispatch: one model request", len(reqs) == 1, len(reqs))
        if reqs:
            prompt = json.dumps(reqs[0]["messages"])
            t.check("dispatch: the prompt carries the caller section", "## Dispatched by" in prompt
                    and "e2e-client" in prompt, prompt[:500])
            t.check("dispatch: the CLI ran in the agent's directory",
                    home.projects["alpha"] in reqs[0]["system"] + prompt, reqs[0]["system"][-500:])
        t.check("dispatch: the CLI stored the session under HOME",
                len(home.session_files(r.get("session_id", "none"))) == 1, r.get("session_id"))
        again = await c.call("dispatch", {"agent": "alpha", "task": task, "caller": "e2e-client"})
        t.check("dispatch: an identical request is a cache hit without a model call",
                again.get("cached") is True and len(world.api.requests(tok)) == 1, again)

    await with_server(world, home, body)


@scenario
async def session_resume(world):
    t = world.tally
    home = world.home("session", {"alpha": {}})
    first_tok, second_tok = token("session-a"), token("session-b")

    async def body(c):
        first = await c.call("dispatch_session", {"agent": "alpha", "task": f"Remember {first_tok}"})
        sid = first.get("session_id", "")
        t.check("dispatch_session: a new session", first.get("success") is True and UUID.match(sid), first)
        second = await c.call("dispatch_session", {"agent": "alpha", "task": f"Recall {second_tok}",
                                                   "session_id": sid})
        t.check("dispatch_session: resuming keeps the session id",
                second.get("success") is True and second.get("session_id") == sid, second)
        reqs = world.api.requests(second_tok)
        t.check("dispatch_session: the resumed request carries the first turn",
                len(reqs) == 1 and first_tok in json.dumps(reqs[0]["messages"]), reqs)

    await with_server(world, home, body)


@scenario
async def stream_with_tool(world):
    t = world.tally
    home = world.home("stream", {"alpha": {}})
    open(os.path.join(home.projects["alpha"], "marker-file.txt"), "w").close()
    tok = token("stream")
    task = f"List the files {tok}\nE2E:TOOL Bash {{\"command\": \"ls\"}}\nE2E:FINAL Found the marker."
    progress = []

    async def on_progress(done, total, message):
        progress.append(message or "")

    async def body(c):
        r = await c.call("dispatch_stream", {"agent": "alpha", "task": task}, progress=on_progress)
        t.check("dispatch_stream: success with the final text",
                r.get("success") is True and r.get("result") == "Found the marker.", r)
        t.check("dispatch_stream: progress carries the agent's text",
                any("[alpha] Let me look." in m for m in progress), progress)
        t.check("dispatch_stream: progress carries the tool call",
                any("[alpha] Using tool: Bash" in m for m in progress), progress)
        reqs = world.api.requests(tok)
        tool_result = json.dumps(reqs[-1]["messages"]) if reqs else ""
        t.check("dispatch_stream: the CLI ran the tool and sent its output back",
                len(reqs) == 2 and "tool_result" in tool_result and "marker-file.txt" in tool_result,
                [r.get("answer") for r in reqs])

    await with_server(world, home, body)


@scenario
async def denied_tool(world):
    t = world.tally
    home = world.home("denied", {"alpha": {"disallowed_tools": ["Write"]}})
    tok = token("denied")
    task = f"Create a file {tok}\nE2E:TOOL Bash {{\"command\": \"touch e2e-denied-file\"}}"

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": task})
        t.check("denied tool: still a success", r.get("success") is True, r)
        t.check("denied tool: denied_tools names Bash", r.get("denied_tools") == ["Bash"], r)
        t.check("denied tool: a hint says how to allow it",
                "denied" in r.get("hint", "") and "allowed_tools" in r.get("hint", ""), r)
        t.check("denied tool: the command did not run",
                not os.path.exists(os.path.join(home.projects["alpha"], "e2e-denied-file")))
        tools = [set(q["tools"]) for q in world.api.requests(tok)]
        t.check("disallowed_tools: the CLI does not offer Write to the model",
                bool(tools) and all("Bash" in x and "Write" not in x for x in tools), tools)

    await with_server(world, home, body)


@scenario
async def budget_cap(world):
    t = world.tally
    # One model turn costs $0.0008 at the CLI's list price; the cap is checked between turns.
    home = world.home("budget", {"alpha": {"max_budget_usd": 0.0005}})
    task = f"Spend {token('budget')}\nE2E:TOOL Bash {{\"command\": \"ls\"}}"

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": task})
        t.check("budget: error_type budget", r.get("success") is False and r.get("error_type") == "budget", r)
        t.check("budget: budget_exceeded and the CLI's reason",
                r.get("budget_exceeded") is True and "Reached maximum budget" in r.get("error", ""), r)
        t.check("budget: the hint offers to resume the session",
                r.get("session_id", "?") in r.get("hint", "") and "dispatch_session" in r.get("hint", ""), r)

    await with_server(world, home, body)


@scenario
async def turn_cap(world):
    t = world.tally
    # agent-dispatch has no turn-cap setting; a wrapper adds --max-turns 1 to the real CLI.
    home = world.home("turns", {"alpha": {}}, claude_dir=world.wrapper("turns", ["--max-turns", "1"]))
    task = f"Loop {token('turns')}\nE2E:TOOL Bash {{\"command\": \"ls\"}}"

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": task})
        t.check("turn cap: a cli_error with the CLI's reason",
                r.get("success") is False and r.get("error_type") == "cli_error"
                and "Reached maximum number of turns (1)" in r.get("error", ""), r)

    await with_server(world, home, body)


@scenario
async def api_error(world):
    t = world.tally
    home = world.home("api-error", {"alpha": {}})
    tok = token("api-error")

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": f"Fail {tok}\nE2E:ERROR 400 mock invalid"})
        t.check("api error: a cli_error carrying the API's message",
                r.get("success") is False and r.get("error_type") == "cli_error"
                and "API Error: 400 mock invalid" in r.get("error", ""), r)
        # The CLI itself re-sends a refused request a few times in other shapes; it is not ours.
        t.check("api error: the CLI reached the model", len(world.api.requests(tok)) >= 1)

    await with_server(world, home, body)


@scenario
async def timeout_kills_cli(world):
    t = world.tally
    home = world.home("timeout", {"alpha": {"timeout": 3}})
    tok = token("timeout")

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": f"Think long {tok}\nE2E:DELAY 120"})
        t.check("timeout: error_type timeout with a resumable session",
                r.get("error_type") == "timeout" and UUID.match(r.get("session_id", "")), r)
        t.check("timeout: the CLI had reached the model", len(world.api.requests(tok)) == 1)
        left = wait_until(lambda: not processes_with(tok), GONE_SECS)
        t.check("timeout: no claude process is left", left, processes_with(tok))

    await with_server(world, home, body)


@scenario
async def async_wait(world):
    t = world.tally
    home = world.home("async-wait", {"alpha": {}})
    task = f"Background {token('async')}\nE2E:TOOL Bash {{\"command\": \"ls\"}}\nE2E:FINAL Job finished."

    async def body(c):
        started = await c.call("dispatch_async", {"agent": "alpha", "task": task})
        job = started.get("job_id", "")
        t.check("dispatch_async: a job id", bool(re.fullmatch(r"[0-9a-f]{32}", job)), started)
        done = await c.call("dispatch_wait", {"job_id": job, "timeout_seconds": CALL_SECS - 20})
        t.check("dispatch_wait: the job is done with the answer",
                done.get("status") == "done" and done.get("result", {}).get("result") == "Job finished.", done)
        t.check("dispatch_wait: the job kept the tool call as progress",
                "Using tool: Bash" in (done.get("progress") or []), done.get("progress"))

    await with_server(world, home, body)


@scenario
async def async_cancel(world):
    t = world.tally
    # The CLI refuses a plain `sleep` ("Blocked: standalone sleep"), so the tool waits in Python.
    home = world.home("async-cancel", {"alpha": {"allowed_tools": ["Bash(python3:*)"]}})
    script = f"import time; time.sleep({4000 + uuid.uuid4().int % 900})"
    tok = token("cancel")
    task = f"Wait {tok}\nE2E:TOOL Bash {json.dumps({'command': f'python3 -c {chr(39)}{script}{chr(39)}'})}"

    async def body(c):
        started = await c.call("dispatch_async", {"agent": "alpha", "task": task})
        job = started.get("job_id", "")
        # Until the tool runs, or the job ended without it (then waiting longer is pointless).
        status = {}
        with anyio.move_on_after(60):
            while not processes_with_arg(script):
                status = await c.call("dispatch_status", {"job_id": job})
                if status.get("status") not in ("pending", "running"):
                    break
                await anyio.sleep(0.2)
        t.check("dispatch_cancel: the CLI's tool is running before the cancel",
                bool(processes_with_arg(script)), status)
        cancelled = await c.call("dispatch_cancel", {"job_id": job})
        t.check("dispatch_cancel: cancelled_running", cancelled.get("outcome") == "cancelled_running", cancelled)
        gone = await anyio.to_thread.run_sync(
            lambda: wait_until(lambda: not processes_with_arg(script) and not processes_with(tok), GONE_SECS))
        t.check("dispatch_cancel: no claude process and no tool process is left", gone,
                processes_with_arg(script) + processes_with(tok))
        status = await c.call("dispatch_status", {"job_id": job})
        t.check("dispatch_cancel: the job stays cancelled", status.get("status") == "cancelled", status)

    await with_server(world, home, body)


@scenario
async def parallel_aggregate(world):
    t = world.tally
    home = world.home("parallel", {"alpha": {}, "beta": {"model": "sonnet"}})
    tok = token("parallel")
    items = [{"agent": "alpha", "task": f"Amounts {tok}\nE2E:FINAL alpha stores cents"},
             {"agent": "beta", "task": f"Pages {tok}\nE2E:FINAL beta shows euros"}]

    async def body(c):
        r = await c.call("dispatch_parallel", {"dispatches": json.dumps(items), "aggregate": "alpha"})
        results = [x.get("result") for x in r.get("individual_results", [])]
        t.check("dispatch_parallel: both items answered in order",
                results == ["alpha stores cents", "beta shows euros"], r)
        t.check("dispatch_parallel: the aggregator answered",
                r.get("aggregated", {}).get("success") is True, r.get("aggregated"))
        models = {q["model"] for q in world.api.requests("beta shows euros") if "Pages" in json.dumps(q["messages"])}
        t.check("dispatch_parallel: beta's model setting reached the API (--model sonnet)",
                len(models) == 1 and "sonnet" in next(iter(models)), models)
        prompts = [json.dumps(q["messages"]) for q in world.api.requests("alpha stores cents")]
        t.check("dispatch_parallel: the aggregator saw both answers",
                any("beta shows euros" in p for p in prompts), len(prompts))

    await with_server(world, home, body)


@scenario
async def dialogue(world):
    t = world.tally
    home = world.home("dialogue", {"alpha": {}, "beta": {}})
    topic = (f"How to format amounts {token('dialogue')}\n"
             "E2E:FINAL_IF Agent 'alpha' responds => Agreed: integer cents. [RESOLVED]")

    async def body(c):
        r = await c.call("dispatch_dialogue", {"requester": "beta", "responder": "alpha",
                                               "topic": topic, "max_rounds": 2})
        turns = [(e.get("agent"), e.get("role")) for e in r.get("conversation", [])]
        t.check("dispatch_dialogue: responder then requester",
                turns == [("alpha", "responder"), ("beta", "requester")], r)
        t.check("dispatch_dialogue: resolved in one round with the marker removed",
                r.get("resolved") is True and r.get("rounds") == 1
                and r.get("final_answer") == "Agreed: integer cents.", r)

    await with_server(world, home, body)


def cli_test_stream(world):
    t = world.tally
    home = world.home("cli-test", {"alpha": {}})
    task = f"Look around {token('cli')}\nE2E:TOOL Bash {{\"command\": \"ls\"}}\nE2E:FINAL All clear."
    try:
        done = subprocess.run([world.binary, "test", "alpha", task, "--stream"], env=home.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=CALL_SECS)
    except subprocess.TimeoutExpired as e:
        t.check("cli test --stream ran to the end", False, repr(e))
        return
    t.check("cli test --stream: exit 0 with the answer on stdout",
            done.returncode == 0 and "All clear." in done.stdout and "Cost: $0.0016" in done.stdout,
            (done.returncode, done.stdout, done.stderr))
    t.check("cli test --stream: progress lines on stderr", "Using tool: Bash" in done.stderr, done.stderr)
    failed = subprocess.run([world.binary, "test", "alpha", "Fail\nE2E:ERROR 400 mock invalid"],
                            env=home.env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=CALL_SECS)
    t.check("cli test: a failed dispatch exits 1 with the error",
            failed.returncode == 1 and "API Error: 400" in failed.stdout + failed.stderr,
            (failed.returncode, failed.stdout, failed.stderr))


def init_and_doctor(world):
    """`init` registers the server through the real `claude mcp add-json`; `doctor` finds it
    through the real `claude mcp list`, which starts our `serve` and checks it answers MCP."""
    t = world.tally
    home = world.home("init-doctor", {"alpha": {}})
    bindir = os.path.join(home.root, "bin")
    os.makedirs(bindir)
    os.symlink(world.binary, os.path.join(bindir, "agent-dispatch"))  # init wants it on PATH
    env = dict(home.env, PATH=bindir + os.pathsep + home.env["PATH"])

    def run(*argv):
        return subprocess.run(list(argv), env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=CALL_SECS)

    try:
        init = run(world.binary, "init")
        t.check("init: registered with the real CLI", init.returncode == 0
                and "Registered MCP server" in init.stdout, (init.returncode, init.stdout, init.stderr))
        listed = run(world.claude, "mcp", "list")
        t.check("claude mcp list: the real CLI connects to our serve",
                re.search(r"^agent-dispatch: .*agent-dispatch serve - .*Connected", listed.stdout, re.M),
                (listed.returncode, listed.stdout, listed.stderr))
        doctor = run(world.binary, "doctor")
        t.check("doctor: sees the registration", doctor.returncode == 0
                and "[OK] agent-dispatch is registered with Claude Code" in doctor.stdout,
                (doctor.returncode, doctor.stdout, doctor.stderr))
    except subprocess.TimeoutExpired as e:
        t.check("init and doctor ran to the end", False, repr(e))


@scenario
async def protocol_and_outcome(world):
    t = world.tally
    home = world.home("protocol", {"alpha": {"instructions": "Answer in plain English."}})
    tok = token("protocol")
    task = f"Fix the bug {tok}\nE2E:FINAL Fixed half of it.\\nSTATUS: partial"

    async def body(c):
        r = await c.call("dispatch", {"agent": "alpha", "task": task, "caller": "e2e-client"})
        t.check("protocol: the STATUS line becomes outcome", r.get("success") is True
                and r.get("outcome") == "partial" and r.get("result") == "Fixed half of it.", r)
        t.check("protocol: a partial outcome carries the call that continues",
                "dispatch_session(agent='alpha'" in (r.get("hint") or ""), r)
        reqs = world.api.requests(tok)
        if reqs:
            system, prompt = reqs[0]["system"], json.dumps(reqs[0]["messages"])
            t.check("protocol: the protocol reaches the model's system prompt",
                    "## Dispatch protocol" in system and "e2e-client" in system, system[-800:])
            t.check("protocol: the agent's instructions follow it",
                    "Answer in plain English." in system, system[-400:])
            t.check("protocol: never mixed into the task", "Dispatch protocol" not in prompt, prompt[:300])
        again = await c.call("dispatch", {"agent": "alpha", "task": task, "caller": "e2e-client"})
        t.check("protocol: a partial outcome is not cached", again.get("cached") is not True
                and len(world.api.requests(tok)) == 2, again)

    await with_server(world, home, body)


SCENARIOS = [dispatch_one_shot, protocol_and_outcome, session_resume, stream_with_tool, denied_tool, budget_cap, turn_cap,
             api_error, timeout_kills_cli, async_wait, async_cancel, parallel_aggregate, dialogue,
             cli_test_stream, init_and_doctor]


def installed(cli):
    """The CLI's path, or None when the Makefile could not install it (it then leaves
    `.unavailable` with npm's reason beside `bin/`, and the scenarios that need it are skipped)."""
    if not cli:
        return None
    reason = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(cli))), ".unavailable")
    if os.path.exists(reason) or not os.path.exists(cli):
        with open(reason) if os.path.exists(reason) else open(os.devnull) as f:
            print(f"SKIPPING {cli}: not installed. {f.read().strip()}", flush=True)
        return None
    return cli


def main():
    parser = argparse.ArgumentParser(description="agent-dispatch against the real claude CLI")
    parser.add_argument("--binary", required=True)
    parser.add_argument("--claude", required=True)
    parser.add_argument("--node-bin", required=True)
    parser.add_argument("--fake", required=True)
    parser.add_argument("--codex", help="the real codex CLI (backend scenarios skipped without it)")
    parser.add_argument("--gemini", help="the real gemini CLI (backend scenarios skipped without it)")
    parser.add_argument("--only", help="run only scenarios whose name contains this")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    codex, gemini = (installed(p) for p in (args.codex, args.gemini))
    world = World(args.binary, args.claude, args.node_bin, args.fake, codex, gemini)
    import backends_e2e  # here, not at the top: it imports this module's helpers
    try:
        env = world.home("version", {}).env
        for name, cli in (("claude", world.claude), ("codex", world.codex), ("gemini", world.gemini)):
            if cli:
                version = subprocess.run([cli, "--version"], capture_output=True, text=True,
                                         timeout=60, env=env, stdin=subprocess.DEVNULL).stdout.strip()
                print(f"{name} --version: {version}", flush=True)
        for run in SCENARIOS + contract.SCENARIOS + backends_e2e.SCENARIOS:
            if args.only and args.only not in run.__name__:
                continue
            missing = [b for b in getattr(run, "backend", "").split("+") if b and not getattr(world, b)]
            if missing:
                print(f"--- {run.__name__}: SKIPPED, {' and '.join(missing)} not installed", flush=True)
                continue
            print(f"--- {run.__name__}", flush=True)
            run(world)
    finally:
        world.close(args.keep or bool(world.tally.failed))
    print(world.tally.summary(), flush=True)
    return 1 if world.tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
