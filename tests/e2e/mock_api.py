#!/usr/bin/env python3
"""A stand-in for the Anthropic Messages API, so the real `claude` CLI runs offline.

Run by `make test-e2e` (tests/e2e/harness.py starts it): python3 mock_api.py --port-file F
--log L [--parent-pid P] [--max-seconds S]. It exits when P (default: its parent) is gone or
after S seconds (default 1800), so a killed test run cannot leave it behind. It listens on 127.0.0.1 on a port the kernel picks and writes that port to F (written
to a temporary name and renamed, so a reader never sees half a number). Every request is appended
to L as one JSON line: method, path, model, stream, system (the text of all system blocks
joined), messages, tool names, and what the stand-in answered.

`POST /v1/messages` answers in the Messages streaming format (Server-Sent Events: message_start,
content_block_start / _delta / _stop per block, message_delta, message_stop), which is what the
CLI expects. What it answers is chosen by directives, one per line, anywhere in the current
prompt (the last user message that is not a tool result):

  E2E:TOOL <Name> <json input>   answer with a short text and one tool_use block; once the tool
                                 result comes back, answer with the final text
  E2E:FINAL <text>               the final text (a literal \\n in it is a line break) (default: "mock answer: " + the prompt's first
                                 words)
  E2E:FINAL_IF <needle> => <text>  the final text when the prompt (directive lines left out)
                                 contains <needle>
  E2E:DELAY <seconds>            wait this long before answering (every request of that prompt)
  E2E:ERROR <status> <message>   answer with that HTTP status and an API error body
  E2E:USAGE <input> <output>     token counts reported per answer (default 100 and 20, which
                                 the CLI prices at $0.0008 on its default model)

The same directives drive the other model APIs the stand-in speaks, on the same port, for the
agent backends' real CLIs: the OpenAI Responses API for `codex` (mock_responses.py) and the
Gemini API for `gemini` (mock_gemini.py). There E2E:TOOL names one of that CLI's own tools (for
codex `exec_command {"cmd": "ls"}`, for gemini `list_directory {"dir_path": "."}`), and
E2E:USAGE's counts are reported as that API reports tokens (gemini's utility calls, such as its
model router, answer without directives and report no tokens). Their log lines have the same
fields: `system` is codex's developer messages or gemini's systemInstruction, `messages` the
input items or contents.

Standard library only; it never connects anywhere.
"""

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mock_gemini
import mock_responses

DIRECTIVE = re.compile(r"^\s*E2E:([A-Z_]+)\s*(.*?)\s*$", re.MULTILINE)
LOG_LOCK = threading.Lock()
# A request body larger than this is refused: the CLI sends well under 1 MiB.
MAX_BODY = 32 * 1024 * 1024


def block_texts(content):
    """The text blocks of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    out = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append(block.get("text", ""))
    return out


def has_tool_result(message):
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def current_prompt(messages):
    """The text of the last user message that is a prompt rather than a tool result."""
    for message in reversed(messages):
        if message.get("role") == "user" and not has_tool_result(message):
            return "\n".join(block_texts(message.get("content")))
    return ""


def directives(prompt):
    found = {}
    for name, arg in DIRECTIVE.findall(prompt):
        found.setdefault(name, arg)
    return found


def plain_prompt(prompt):
    """The prompt without directive lines and system reminders."""
    text = re.sub(r"<system-reminder>.*?</system-reminder>", "", prompt, flags=re.DOTALL)
    return DIRECTIVE.sub("", text).strip()


def final_text(prompt, found):
    if "FINAL_IF" in found:
        needle, _, text = found["FINAL_IF"].partition(" => ")
        if needle and needle in plain_prompt(prompt):
            return text
    if "FINAL" in found:
        # A literal \n in the directive is a line break (a final STATUS line, for instance).
        return found["FINAL"].replace("\\n", "\n")
    words = " ".join(plain_prompt(prompt).split()[:12])
    return "mock answer: " + words


def system_text(system):
    if isinstance(system, str):
        return system
    return "\n".join(b.get("text", "") for b in system or [] if isinstance(b, dict))


def delay(found):
    """E2E:DELAY, after the request is logged so a test sees that it arrived."""
    if "DELAY" in found:
        time.sleep(float(found["DELAY"]))


class Handler(BaseHTTPRequestHandler):
    server_version = "e2e-mock-api/1"

    def log_message(self, fmt, *args):  # keep stderr for real problems
        pass

    def record(self, entry):
        with LOG_LOCK, open(self.server.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def send_json(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("request-id", "req_e2e_" + uuid.uuid4().hex[:12])
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.record({"method": "GET", "path": self.path})
        self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no such endpoint"}})

    do_HEAD = do_GET

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_json(413, {"type": "error", "error": {"type": "request_too_large", "message": "too large"}})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?", 1)[0]
        if mock_responses.matches(path) or mock_gemini.matches(path):
            self.answer_backend(path, body)
            return
        entry = {"method": "POST", "path": self.path, "model": body.get("model"),
                 "stream": body.get("stream"), "system": system_text(body.get("system")),
                 "messages": body.get("messages", []),
                 "tools": [t.get("name") for t in body.get("tools", []) if isinstance(t, dict)]}
        if path != "/v1/messages":
            entry["answer"] = "404"
            self.record(entry)
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no such endpoint"}})
            return
        messages = body.get("messages") or []
        prompt = current_prompt(messages)
        found = directives(prompt)
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        after_tool = bool(users) and has_tool_result(users[-1])
        usage_in, usage_out = 100, 20
        if "USAGE" in found:
            usage_in, usage_out = (int(x) for x in found["USAGE"].split()[:2])
        if "ERROR" in found:
            status, _, message = found["ERROR"].partition(" ")
            entry["answer"] = "error " + status
            self.record(entry)
            delay(found)
            self.send_json(int(status), {"type": "error", "error": {
                "type": "invalid_request_error", "message": message or "mock error"}})
            return
        blocks = []
        stop_reason = "end_turn"
        if "TOOL" in found and not after_tool:
            name, _, raw_input = found["TOOL"].partition(" ")
            blocks.append({"type": "text", "text": "Let me look."})
            blocks.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name,
                           "input": json.loads(raw_input or "{}")})
            stop_reason = "tool_use"
        else:
            blocks.append({"type": "text", "text": final_text(prompt, found)})
        entry["answer"] = [b.get("name") or b.get("text") for b in blocks]
        self.record(entry)
        delay(found)
        message_id = "msg_" + uuid.uuid4().hex[:24]
        usage = {"input_tokens": usage_in, "output_tokens": usage_out,
                 "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        if not body.get("stream"):
            self.send_json(200, {"id": message_id, "type": "message", "role": "assistant",
                                 "model": body.get("model"), "content": blocks,
                                 "stop_reason": stop_reason, "stop_sequence": None, "usage": usage})
            return
        self.stream(message_id, body.get("model"), blocks, stop_reason, usage)

    def answer_backend(self, path, body):
        """A request for the codex or gemini CLI: the same directives, that API's wire format."""
        gemini = mock_gemini.matches(path)
        seen = mock_gemini.view(body, path) if gemini else mock_responses.view(body)
        entry = {"method": "POST", "path": self.path, "api": "gemini" if gemini else "responses",
                 **{k: seen[k] for k in ("model", "stream", "system", "messages", "tools")}}
        found = directives(seen["prompt"])
        usage = (100, 20)
        if "USAGE" in found:
            usage = tuple(int(x) for x in found["USAGE"].split()[:2])
        if seen.get("utility"):
            # gemini's model router and token counts: not the agent's turn, no directives.
            entry["answer"] = "utility"
            self.record(entry)
            mock_gemini.send_utility(self, body, path, (0, 0))  # only the agent's turns count
            return
        if "ERROR" in found:
            status, _, message = found["ERROR"].partition(" ")
            entry["answer"] = "error " + status
            self.record(entry)
            delay(found)
            api = mock_gemini if gemini else mock_responses
            api.send_error(self, int(status), message or "mock error")
            return
        if "TOOL" in found and not seen["after_tool"]:
            name, _, raw_input = found["TOOL"].partition(" ")
            answer = {"text": "Let me look.", "tool": name, "input": json.loads(raw_input or "{}")}
        else:
            answer = {"text": final_text(seen["prompt"], found)}
        entry["answer"] = [answer.get("tool") or answer["text"]]
        self.record(entry)
        delay(found)
        if gemini:
            mock_gemini.send_answer(self, body, path, answer, usage)
        else:
            mock_responses.send_answer(self, body, answer, usage)

    def stream(self, message_id, model, blocks, stop_reason, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("request-id", "req_e2e_" + uuid.uuid4().hex[:12])
        self.end_headers()

        def event(kind, data):
            data["type"] = kind
            self.wfile.write(f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

        start_usage = dict(usage, output_tokens=1)
        event("message_start", {"message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": start_usage}})
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": block["text"]}})
            else:
                event("content_block_start", {"index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                event("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(block["input"])}})
            event("content_block_stop", {"index": index})
        event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                "usage": {"output_tokens": usage["output_tokens"]}})
        event("message_stop", {})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--max-seconds", type=float, default=1800,
                        help="exit after this long even if nobody stops it")
    parser.add_argument("--parent-pid", type=int, default=os.getppid(),
                        help="exit when this process is gone (default: the parent)")
    args = parser.parse_args()
    parent = args.parent_pid

    def watchdog():
        # A test driver killed by SIGKILL cannot stop us: leave when it is gone or time is up.
        deadline = time.monotonic() + args.max_seconds
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True  # a delayed answer must not keep the process alive at shutdown
    server.log_path = args.log
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
