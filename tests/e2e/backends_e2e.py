"""The codex and gemini backends through their REAL CLIs, offline (part of `make test-e2e`).

codex 0.169.0 talks to the stand-in's OpenAI Responses API through a custom model provider in
its HOME's config.toml; gemini 0.61.0 to its Gemini API through GOOGLE_GEMINI_BASE_URL (see
harness.Home.write_backend_configs). Per CLI: a dispatch (answer, session id, the dispatch
protocol leading the prompt, the answer's STATUS line as `outcome`), dispatch_session resuming
that session, dispatch_stream with one tool call the CLI really runs, an API error, a timeout
that leaves no CLI process and whose session resumes, an async job cancelled mid-turn, and the
permission settings as the CLI's sandbox or approval mode. Then one dispatch_parallel over a
claude, a codex and a gemini agent, each with its model setting. A CLI whose install was impossible is reported and skipped
(run_e2e.py decides).
"""

import json
import os
import uuid

import anyio

from harness import processes_with, token, wait_until
from run_e2e import CALL_SECS, GONE_SECS, UUID, scenario, with_server

# The tool each CLI offers in its default (read-only) mode, and the argument that lists files.
TOOLS = {"codex": 'exec_command {"cmd": "ls"}', "gemini": 'list_directory {"dir_path": "."}'}
# The agent timeout of the timeout scenario. It must outlast the CLI's start-up on a loaded
# machine (gemini needs about 3 s of CPU before its first request): a CLI killed before it asked
# the model has no session to resume, and that is not what the scenario checks.
TIMEOUT_SECS = 15
# What our progress line says when that tool starts.
TOOL_PROGRESS = {"codex": "Running: ", "gemini": "Using tool: list_directory"}


def backend_home(world, name, backend, extra=None):
    return world.home(name, {"agent": dict({"backend": backend}, **(extra or {}))})


def backend_scenarios(backend):
    """The scenarios both backends share; the names carry the backend for --only."""

    async def dispatch_and_protocol(world):
        t = world.tally
        home = backend_home(world, f"{backend}-dispatch", backend)
        tok = token(f"{backend}-dispatch")
        task = f"Fix the bug {tok}\nE2E:FINAL Fixed half of it.\\nSTATUS: partial\nE2E:USAGE 1234 56"

        async def body(c):
            r = await c.call("dispatch", {"agent": "agent", "task": task, "caller": "e2e-client"})
            sid = r.get("session_id") or ""
            t.check(f"{backend} dispatch: success, the STATUS line lifted into outcome",
                    r.get("success") is True and r.get("result") == "Fixed half of it."
                    and r.get("outcome") == "partial", r)
            t.check(f"{backend} dispatch: the session id is the CLI's (a uuid)", bool(UUID.match(sid)), r)
            tokens = r.get("tokens") or {}
            t.check(f"{backend} dispatch: tokens as the API reported them",
                    (tokens.get("input_tokens"), tokens.get("output_tokens")) == (1234, 56), r)
            reqs = [q for q in world.api.requests(tok) if q.get("api") and q.get("answer") != "utility"]
            t.check(f"{backend} dispatch: one model turn", len(reqs) == 1, [q.get("answer") for q in reqs])
            if reqs:
                prompt = json.dumps(reqs[0]["messages"])
                t.check(f"{backend} dispatch: the protocol leads the prompt, the task follows",
                        "## Dispatch protocol" in prompt and "e2e-client" in prompt
                        and prompt.index("## Dispatch protocol") < prompt.index("## Your task")
                        < prompt.index(tok), prompt[:600])
                t.check(f"{backend} dispatch: the CLI ran in the agent's directory",
                        home.projects["agent"] in prompt + reqs[0]["system"], prompt[:600])
            if backend == "codex":
                rollouts = [f for _, _, files in os.walk(os.path.join(home.home, ".codex", "sessions"))
                            for f in files if sid and sid in f]
                t.check("codex dispatch: the thread is stored under HOME", len(rollouts) == 1, rollouts)
            else:
                chats = [f for d, _, files in os.walk(os.path.join(home.home, ".gemini", "tmp"))
                         for f in files if "chats" in d]
                t.check("gemini dispatch: the session is stored under HOME", len(chats) >= 1, chats)

        await with_server(world, home, body)

    async def session_resume(world):
        t = world.tally
        home = backend_home(world, f"{backend}-session", backend)
        first_tok, second_tok = token(f"{backend}-session-a"), token(f"{backend}-session-b")

        async def body(c):
            first = await c.call("dispatch_session", {"agent": "agent", "task": f"Remember {first_tok}"})
            sid = first.get("session_id") or ""
            t.check(f"{backend} dispatch_session: a new session", first.get("success") is True
                    and UUID.match(sid), first)
            second = await c.call("dispatch_session", {"agent": "agent", "task": f"Recall {second_tok}",
                                                       "session_id": sid})
            t.check(f"{backend} dispatch_session: resuming keeps the session id",
                    second.get("success") is True and second.get("session_id") == sid, second)
            reqs = [q for q in world.api.requests(second_tok) if q.get("answer") != "utility"]
            t.check(f"{backend} dispatch_session: the resumed request carries the first turn",
                    len(reqs) == 1 and first_tok in json.dumps(reqs[0]["messages"]),
                    [q.get("answer") for q in reqs])
            # A well-formed id the CLI never saw: its own "no such session" error, read as not_found.
            unknown = await c.call("dispatch_session", {"agent": "agent", "task": "Recall nothing",
                                                        "session_id": str(uuid.uuid4())})
            t.check(f"{backend} dispatch_session: an unknown session is not_found",
                    unknown.get("success") is False and unknown.get("error_type") == "not_found", unknown)

        await with_server(world, home, body)

    async def stream_with_tool(world):
        t = world.tally
        home = backend_home(world, f"{backend}-stream", backend)
        open(os.path.join(home.projects["agent"], "marker-file.txt"), "w").close()
        tok = token(f"{backend}-stream")
        task = f"List the files {tok}\nE2E:TOOL {TOOLS[backend]}\nE2E:FINAL Found the marker."
        progress = []

        async def on_progress(done, total, message):
            progress.append(message or "")

        async def body(c):
            r = await c.call("dispatch_stream", {"agent": "agent", "task": task}, progress=on_progress)
            t.check(f"{backend} dispatch_stream: success with the final text",
                    r.get("success") is True and r.get("result") == "Found the marker.", r)
            t.check(f"{backend} dispatch_stream: progress carries the tool call",
                    any(f"[agent] {TOOL_PROGRESS[backend]}" in m for m in progress), progress)
            # The stand-in streams the answer in two chunks: one progress line still.
            t.check(f"{backend} dispatch_stream: progress carries the answer, whole",
                    "[agent] Found the marker." in progress, progress)
            reqs = [q for q in world.api.requests(tok) if q.get("answer") != "utility"]
            t.check(f"{backend} dispatch_stream: the CLI ran the tool and sent its output back",
                    len(reqs) == 2 and "marker-file.txt" in json.dumps(reqs[-1]["messages"]),
                    [q.get("answer") for q in reqs])

        await with_server(world, home, body)

    async def api_error(world):
        t = world.tally
        home = backend_home(world, f"{backend}-api-error", backend)
        tok = token(f"{backend}-api-error")

        async def body(c):
            r = await c.call("dispatch", {"agent": "agent", "task": f"Fail {tok}\nE2E:ERROR 400 mock invalid"})
            t.check(f"{backend} api error: a cli_error carrying the API's message",
                    r.get("success") is False and r.get("error_type") == "cli_error"
                    and "mock invalid" in (r.get("error") or ""), r)
            t.check(f"{backend} api error: the CLI reached the model",
                    any(q.get("answer") == "error 400" for q in world.api.requests(tok)))
            if backend == "codex":
                # gemini retries a 429 for minutes with backoff; codex (no retries configured)
                # reports the status, which is read as the account's limit.
                limited = await c.call("dispatch", {"agent": "agent",
                                                    "task": f"Limit {tok}\nE2E:ERROR 429 Rate limit reached"})
                t.check("codex api error 429: usage_limit with its hint",
                        limited.get("error_type") == "usage_limit" and "429" in (limited.get("error") or ""),
                        limited)

        await with_server(world, home, body)

    async def timeout_kills_cli(world):
        t = world.tally
        home = backend_home(world, f"{backend}-timeout", backend, {"timeout": TIMEOUT_SECS})
        tok = token(f"{backend}-timeout")

        async def body(c):
            samples = []

            async def watch():
                # Which processes carry the prompt while the CLI waits for the model: one (gemini
                # relaunches itself behind a launcher unless told not to). A fork between fork
                # and exec carries it too, for a moment, so only pids seen for 1 s count.
                while True:
                    samples.append(set(processes_with(tok)))
                    await anyio.sleep(0.1)

            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                r = await c.call("dispatch", {"agent": "agent", "task": f"Think long {tok}\nE2E:DELAY 120"})
                group.cancel_scope.cancel()
            lasting = {pid for pid in set().union(*samples) if sum(pid in x for x in samples) >= 10}
            t.check(f"{backend} timeout: one {backend} process while it ran", len(lasting) == 1,
                    [len(x) for x in samples])
            t.check(f"{backend} timeout: error_type timeout with a resumable session",
                    r.get("error_type") == "timeout" and UUID.match(r.get("session_id") or ""), r)
            t.check(f"{backend} timeout: the CLI had reached the model",
                    any(q.get("answer") != "utility" for q in world.api.requests(tok)))
            left = wait_until(lambda: not processes_with(tok), GONE_SECS)
            t.check(f"{backend} timeout: no {backend} process is left", left, processes_with(tok))
            sid = r.get("session_id") or ""
            again = await c.call("dispatch_session", {"agent": "agent", "session_id": sid,
                                                      "timeout_seconds": CALL_SECS - 20,
                                                      "task": f"Go on {tok}\nE2E:FINAL Picked up."})
            t.check(f"{backend} timeout: the session it names can be resumed",
                    again.get("success") is True and again.get("result") == "Picked up."
                    and again.get("session_id") == sid, again)

        await with_server(world, home, body)

    async def async_cancel(world):
        t = world.tally
        home = backend_home(world, f"{backend}-cancel", backend)
        tok = token(f"{backend}-cancel")

        async def body(c):
            started = await c.call("dispatch_async", {"agent": "agent", "task": f"Wait {tok}\nE2E:DELAY 120"})
            job = started.get("job_id", "")
            # Until the CLI is mid-turn (its request reached the stand-in), or the job ended.
            status = {}
            with anyio.move_on_after(60):
                while not any(q.get("answer") != "utility" for q in world.api.requests(tok)):
                    status = await c.call("dispatch_status", {"job_id": job})
                    if status.get("status") not in ("pending", "running"):
                        break
                    await anyio.sleep(0.2)
            t.check(f"{backend} dispatch_cancel: the CLI is waiting for the model before the cancel",
                    bool(processes_with(tok)), status)
            cancelled = await c.call("dispatch_cancel", {"job_id": job})
            t.check(f"{backend} dispatch_cancel: cancelled_running",
                    cancelled.get("outcome") == "cancelled_running", cancelled)
            gone = await anyio.to_thread.run_sync(lambda: wait_until(lambda: not processes_with(tok), GONE_SECS))
            t.check(f"{backend} dispatch_cancel: no {backend} process is left", gone, processes_with(tok))
            status = await c.call("dispatch_status", {"job_id": job})
            t.check(f"{backend} dispatch_cancel: the job stays cancelled", status.get("status") == "cancelled", status)

        await with_server(world, home, body)

    runs = []
    for func in (dispatch_and_protocol, session_resume, stream_with_tool, api_error, timeout_kills_cli,
                 async_cancel):
        func.__name__ = f"{backend}_{func.__name__}"
        run = scenario(func)
        run.backend = backend
        runs.append(run)
    return runs


@scenario
async def parallel_three_backends(world):
    t = world.tally
    home = world.home("parallel-backends", {"alpha": {}, "cx": {"backend": "codex", "model": "gpt-e2e-model"},
                                            "gm": {"backend": "gemini", "model": "gemini-e2e-model"}})
    tok = token("parallel-backends")
    items = [{"agent": "alpha", "task": f"Amounts {tok}\nE2E:FINAL claude says cents"},
             {"agent": "cx", "task": f"Pages {tok}\nE2E:FINAL codex says euros"},
             {"agent": "gm", "task": f"Reports {tok}\nE2E:FINAL gemini says totals"}]

    async def body(c):
        r = await c.call("dispatch_parallel", {"dispatches": json.dumps(items)})
        # Without an aggregator the answer is the list of results itself.
        results = [(x.get("agent"), x.get("success"), x.get("result")) for x in r]
        t.check("dispatch_parallel over claude, codex and gemini: each answered, in order",
                results == [("alpha", True, "claude says cents"), ("cx", True, "codex says euros"),
                            ("gm", True, "gemini says totals")], r)
        apis = {q.get("api") or "messages" for q in world.api.requests(tok)}
        t.check("dispatch_parallel over three backends: each CLI called its own API",
                apis == {"messages", "responses", "gemini"}, apis)
        models = {q.get("api"): q.get("model") for q in world.api.requests(tok) if q.get("api")}
        t.check("dispatch_parallel over three backends: the agents' models reached codex and gemini",
                models == {"responses": "gpt-e2e-model", "gemini": "gemini-e2e-model"}, models)

    await with_server(world, home, body)


@scenario
async def codex_permission_modes(world):
    """permission_mode reaches codex as its sandbox: read-only by default, workspace-write for
    acceptEdits. codex reports a command the sandbox stopped to the model only (no event)."""
    t = world.tally
    home = world.home("codex-permissions", {"ro": {"backend": "codex"},
                                            "rw": {"backend": "codex", "permission_mode": "acceptEdits"}})

    async def body(c):
        for agent in ("ro", "rw"):
            tok = token(f"codex-{agent}")
            task = f"Write {tok}\nE2E:TOOL exec_command {{\"cmd\": \"touch made-by-{agent}\"}}\nE2E:FINAL Done."
            r = await c.call("dispatch", {"agent": agent, "task": task})
            made = os.path.exists(os.path.join(home.projects[agent], f"made-by-{agent}"))
            reqs = world.api.requests(tok)
            told = json.dumps(reqs[-1]["messages"][-1]) if reqs else ""
            if agent == "ro":
                t.check("codex read-only sandbox (default mode): the write did not happen",
                        r.get("success") is True and not made and "Read-only file system" in told, (r, told))
            else:
                t.check("codex acceptEdits: workspace-write lets the write happen",
                        r.get("success") is True and made, (r, told))

    await with_server(world, home, body)


@scenario
async def gemini_permission_modes(world):
    """permission_mode and allowed_tools reach gemini: the default mode offers no tool that
    needs approval, allowed_tools adds one, bypassPermissions (yolo) offers them all, and plan
    mode refuses a write, which comes back as denied_tools."""
    t = world.tally
    home = world.home("gemini-permissions", {
        "plain": {"backend": "gemini"},
        "listed": {"backend": "gemini", "allowed_tools": ["run_shell_command"]},
        "yolo": {"backend": "gemini", "permission_mode": "bypassPermissions"},
        "planner": {"backend": "gemini", "permission_mode": "plan"}})

    async def body(c):
        for agent in ("plain", "listed", "yolo"):
            tok = token(f"gemini-{agent}")
            task = (f"Write {tok}\nE2E:TOOL run_shell_command {{\"command\": \"touch made-by-{agent}\"}}"
                    "\nE2E:FINAL Done.")
            r = await c.call("dispatch", {"agent": agent, "task": task})
            made = os.path.exists(os.path.join(home.projects[agent], f"made-by-{agent}"))
            offered = [set(q["tools"]) for q in world.api.requests(tok) if q.get("answer") != "utility"]
            shell = bool(offered) and all("run_shell_command" in o for o in offered)
            if agent == "plain":
                t.check("gemini default mode: no shell or write tool offered, the command did not run",
                        r.get("success") is True and not made and bool(offered)
                        and not any({"run_shell_command", "write_file"} & o for o in offered), (r, offered))
            else:
                t.check(f"gemini {agent}: the shell tool is offered and the command ran",
                        r.get("success") is True and made and shell, (r, offered))

        # Plan mode offers write_file but its policy refuses a write outside the plans folder:
        # the refusal is what denied_tools reads.
        tok = token("gemini-plan")
        task = f"Write {tok}\nE2E:TOOL write_file {{\"file_path\": \"made-by-planner\", \"content\": \"x\"}}\nE2E:FINAL Planned."
        r = await c.call("dispatch", {"agent": "planner", "task": task})
        t.check("gemini plan mode: the write is refused and reported in denied_tools with a hint",
                r.get("success") is True and r.get("denied_tools") == ["write_file"]
                and "allowed_tools" in (r.get("hint") or "")
                and not os.path.exists(os.path.join(home.projects["planner"], "made-by-planner")), r)

    await with_server(world, home, body)


parallel_three_backends.backend = "codex+gemini"
codex_permission_modes.backend = "codex"
gemini_permission_modes.backend = "gemini"
SCENARIOS = (backend_scenarios("codex") + [codex_permission_modes] + backend_scenarios("gemini")
             + [gemini_permission_modes, parallel_three_backends])
