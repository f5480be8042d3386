"""Keeps fixtures/fake-claude honest: the same runs through the real CLI and through the fake,
compared on what agent-dispatch's parser relies on.

Each case runs `claude` directly with the argv agent-dispatch builds (-p PROMPT --output-format
json|stream-json --session-id UUID [--max-budget-usd ...] [--verbose]), once against the model
API stand-in and once as the fake with the step the Rust suite uses for that situation. Compared:
the exit code; in json mode the result object; in stream mode the sequence of events (type,
subtype, content block types) and the result event. For a result object that means presence and
JSON type of every key the parser reads, the values of the keys it branches on (subtype,
is_error, terminal_reason), the keys of permission_denials entries and whether session_id is the
id given on the command line. Anything else the CLI prints (usage, modelUsage, uuids, timings)
is not part of the contract.
"""

import json
import os
import subprocess
import uuid

from harness import token

# Keys of a result object that src/claude/output.rs reads.
PARSER_KEYS = ("type", "subtype", "is_error", "result", "session_id", "total_cost_usd",
               "duration_ms", "num_turns", "permission_denials", "errors", "terminal_reason")
# Keys whose value (not only type) decides how a result is classified.
VALUE_KEYS = ("type", "subtype", "is_error", "terminal_reason")
RUN_SECS = 120


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def result_shape(obj, session_id):
    shape = {key: json_type(obj[key]) if key in obj else "absent" for key in PARSER_KEYS}
    for key in VALUE_KEYS:
        shape[key + " ="] = obj.get(key)
    denials = obj.get("permission_denials")
    if isinstance(denials, list):
        shape["denial keys"] = sorted({f"{k}:{json_type(v)}" for d in denials if isinstance(d, dict)
                                       for k, v in d.items()})
    errors = obj.get("errors")
    if isinstance(errors, list):
        shape["errors types"] = sorted({json_type(e) for e in errors})
    shape["session_id is the given one"] = obj.get("session_id") == session_id
    return shape


def event_shape(event):
    message = event.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    blocks = [b.get("type") for b in content if isinstance(b, dict)] if isinstance(content, list) else None
    return [event.get("type"), event.get("subtype"), blocks]


def shape_of(proc, stream, session_id):
    """What the parser would see, from one finished run."""
    out = {"exit": proc.returncode}
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    try:
        events = [json.loads(line) for line in lines]
    except ValueError:
        out["stdout"] = "not JSON lines"
        return out
    if not stream:
        out["documents"] = len(events)
        if len(events) == 1 and isinstance(events[0], dict):
            out["result"] = result_shape(events[0], session_id)
        return out
    out["events"] = [event_shape(e) for e in events]
    results = [e for e in events if e.get("type") == "result"]
    out["result"] = result_shape(results[-1], session_id) if results else None
    return out


def diff(real, fake, path=""):
    """Human-readable differences between two shapes."""
    if isinstance(real, dict) and isinstance(fake, dict):
        out = []
        for key in sorted(set(real) | set(fake), key=str):
            out += diff(real.get(key, "<missing>"), fake.get(key, "<missing>"), f"{path}.{key}")
        return out
    return [] if real == fake else [f"{path or '.'}: real {real!r}, fake {fake!r}"]


def run_case(world, name, prompt, fake_step, stream=False, extra=(), verbose=None, stderr_needle=None):
    t = world.tally
    home = world.home("contract-" + name, {"alpha": {}})
    session_id = str(uuid.uuid4())
    argv = ["-p", prompt, "--output-format", "stream-json" if stream else "json",
            "--session-id", session_id, *extra]
    if verbose if verbose is not None else stream:
        argv.append("--verbose")
    env = dict(home.env, FAKE_CLAUDE_LOG="off", FAKE_CLAUDE_STEP=json.dumps(fake_step))
    runs = {}
    for who, exe in (("real", world.claude), ("fake", world.fake)):
        try:
            runs[who] = subprocess.run([exe, *argv], cwd=home.projects["alpha"], env=env,
                                       stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                       timeout=RUN_SECS)
        except subprocess.TimeoutExpired as e:
            t.check(f"contract {name}: {who} ran to the end", False, repr(e))
            return
    real, fake = (shape_of(runs[w], stream, session_id) for w in ("real", "fake"))
    t.check(f"contract {name}: the fake matches the real CLI", real == fake,
            "\n  " + "\n  ".join(diff(real, fake)) + f"\n  real stdout: {runs['real'].stdout[:1500]}"
            + f"\n  real stderr: {runs['real'].stderr[:500]}")
    if stderr_needle:
        t.check(f"contract {name}: both print the CLI's stderr message",
                all(stderr_needle in runs[w].stderr for w in runs),
                {w: runs[w].stderr[:300] for w in runs})


TOOL_LS = '\nE2E:TOOL Bash {"command": "ls"}'
TOOL_TOUCH = '\nE2E:TOOL Bash {"command": "touch contract-denied"}'
DENIAL = [{"tool_name": "Bash", "tool_use_id": "toolu_1", "tool_input": {"command": "touch contract-denied"}}]
BUDGET_STEP = {"subtype": "error_max_budget_usd", "is_error": True, "omit": ["result"],
               "errors": ["Reached maximum budget ($0.0005)"], "progress": ["Let me look.", "tool:Bash"]}
TURNS_STEP = {"subtype": "error_max_turns", "is_error": True, "omit": ["result"],
              "errors": ["Reached maximum number of turns (1)"], "progress": ["Let me look.", "tool:Bash"]}
API_ERROR_STEP = {"is_error": True, "result": "API Error: 400 mock invalid", "progress": []}


def json_cases(world):
    run_case(world, "json success", f"Say hi {token('c')}", {})
    run_case(world, "json denied tool", f"Touch {token('c')}{TOOL_TOUCH}",
             {"permission_denials": DENIAL, "num_turns": 2})
    run_case(world, "json budget cap", f"Spend {token('c')}{TOOL_LS}", BUDGET_STEP,
             extra=["--max-budget-usd", "0.0005"])
    run_case(world, "json turn cap", f"Loop {token('c')}{TOOL_LS}", TURNS_STEP, extra=["--max-turns", "1"])
    run_case(world, "json api error", f"Fail {token('c')}\nE2E:ERROR 400 mock invalid", API_ERROR_STEP)


def stream_cases(world):
    # The fake's default transcript: one text, one tool call (and its result), the answer.
    run_case(world, "stream tool call", f"Look {token('c')}{TOOL_LS}", {}, stream=True)
    run_case(world, "stream denied tool", f"Touch {token('c')}{TOOL_TOUCH}",
             {"permission_denials": DENIAL, "num_turns": 2, "progress": ["Let me look.", "tool:Bash"]},
             stream=True)
    run_case(world, "stream budget cap", f"Spend {token('c')}{TOOL_LS}", BUDGET_STEP, stream=True,
             extra=["--max-budget-usd", "0.0005"])
    run_case(world, "stream turn cap", f"Loop {token('c')}{TOOL_LS}", TURNS_STEP, stream=True,
             extra=["--max-turns", "1"])
    run_case(world, "stream api error", f"Fail {token('c')}\nE2E:ERROR 400 mock invalid",
             dict(API_ERROR_STEP), stream=True)
    run_case(world, "stream without --verbose", f"Say hi {token('c')}", {}, stream=True, verbose=False,
             stderr_needle="requires --verbose")


SCENARIOS = [json_cases, stream_cases]
