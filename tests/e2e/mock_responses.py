"""The OpenAI Responses API, as the real `codex` CLI (0.169.0) calls it, for tests/e2e/mock_api.py.

codex reaches it through a custom model provider in $HOME/.codex/config.toml whose base_url is
the stand-in's http://127.0.0.1:PORT/v1: `POST /v1/responses` with `stream: true`, answered with
Server-Sent Events: response.created, then per output item response.output_item.added, text
deltas (response.output_text.delta) and response.output_item.done, then response.completed
carrying usage. A tool call is a `function_call` item; codex runs it and sends the next request
with a `function_call_output` item last in `input`. Errors are an HTTP status with an
`{"error": {...}}` body, which codex reports as a failed turn.
"""

import json
import uuid

PATH = "/v1/responses"


def matches(path):
    return path == PATH


def texts(content):
    if isinstance(content, str):
        return [content]
    return [c.get("text", "") for c in content or [] if isinstance(c, dict) and "text" in c]


def view(body):
    """What the stand-in needs from a request: the log fields, the current prompt (the last user
    message; codex sends its environment context as an earlier one) and whether the last input
    is a tool's output."""
    items = [i for i in body.get("input") or [] if isinstance(i, dict)]
    system = "\n".join("\n".join(texts(i.get("content"))) for i in items
                       if i.get("role") in ("developer", "system"))
    if isinstance(body.get("instructions"), str):
        system = body["instructions"] + "\n" + system
    prompt = ""
    for item in reversed(items):
        if item.get("type", "message") == "message" and item.get("role") == "user":
            prompt = "\n".join(texts(item.get("content")))
            break
    return {"model": body.get("model"), "stream": body.get("stream"), "system": system,
            "messages": [i for i in items if i.get("role") not in ("developer", "system")],
            "tools": [t.get("name") or t.get("type") for t in body.get("tools") or [] if isinstance(t, dict)],
            "prompt": prompt,
            "after_tool": bool(items) and items[-1].get("type") == "function_call_output"}


def send_error(handler, status, message):
    handler.send_json(status, {"error": {"message": message, "type": "invalid_request_error",
                                         "param": None, "code": None}})


def send_answer(handler, body, answer, usage):
    """`answer`: {"text": T} or {"text": T, "tool": NAME, "input": ARGS}."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()

    def event(data):
        handler.wfile.write(f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode())
        handler.wfile.flush()

    response_id = "resp_" + uuid.uuid4().hex
    event({"type": "response.created", "response": {"id": response_id, "status": "in_progress"}})
    index = 0
    message_id = "msg_" + uuid.uuid4().hex[:24]
    text = answer["text"]
    event({"type": "response.output_item.added", "output_index": index, "item": {
        "type": "message", "id": message_id, "role": "assistant", "status": "in_progress", "content": []}})
    # Two deltas, so a client that only reads the done item and one that sums deltas agree.
    half = len(text) // 2
    for part in (text[:half], text[half:]):
        if part:
            event({"type": "response.output_text.delta", "item_id": message_id, "output_index": index,
                   "content_index": 0, "delta": part})
    event({"type": "response.output_item.done", "output_index": index, "item": {
        "type": "message", "id": message_id, "role": "assistant", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}]}})
    if "tool" in answer:
        index += 1
        call = {"type": "function_call", "id": "fc_" + uuid.uuid4().hex[:24],
                "call_id": "call_" + uuid.uuid4().hex[:24], "name": answer["tool"],
                "arguments": json.dumps(answer["input"]), "status": "completed"}
        event({"type": "response.output_item.added", "output_index": index,
               "item": dict(call, arguments="", status="in_progress")})
        event({"type": "response.output_item.done", "output_index": index, "item": call})
    event({"type": "response.completed", "response": {
        "id": response_id, "status": "completed", "usage": {
            "input_tokens": usage[0], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": usage[1], "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage[0] + usage[1]}}})
