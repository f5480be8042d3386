"""The Gemini API, as the real `gemini` CLI (0.61.0) calls it, for tests/e2e/mock_api.py.

gemini reaches it through GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:PORT (with a dummy
GEMINI_API_KEY): `POST /v1beta/models/MODEL:streamGenerateContent?alt=sse` for the agent's turns,
answered with `data: {candidates: [{content: {role: "model", parts}, finishReason}],
usageMetadata}` chunks, and `POST /v1beta/models/MODEL:generateContent` for utility calls (the
`auto` model router asks a small model for a JSON verdict), answered with one JSON document. A
tool call is a `functionCall` part; gemini runs the tool and sends a `functionResponse` part in
the next request's last user turn. Errors are an HTTP status with a Google `{"error": {code,
message, status}}` body.
"""

import json
import re

ROUTE = re.compile(r"^/v1(beta|alpha|)/models/([^/:]+):(streamGenerateContent|generateContent|countTokens)$")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}


def matches(path):
    return ROUTE.match(path) is not None


def method(path):
    return ROUTE.match(path).group(3)


def part_texts(content):
    return [p["text"] for p in (content or {}).get("parts") or [] if isinstance(p, dict) and "text" in p]


def has_function_response(content):
    return any(isinstance(p, dict) and "functionResponse" in p for p in (content or {}).get("parts") or [])


def view(body, path):
    contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    prompt = ""
    for content in reversed(contents):
        if content.get("role") == "user" and not has_function_response(content):
            # The prompt is the last part: the first turn's session context (date, OS, directory
            # listing) is a part of its own, and a prompt that got no answer (a run killed by a
            # timeout) is merged with the next one into a single user turn.
            texts = [t for t in part_texts(content) if not t.startswith("<session_context>")]
            prompt = texts[-1] if texts else ""
            break
    tools = [f.get("name") for t in body.get("tools") or [] if isinstance(t, dict)
             for f in t.get("functionDeclarations") or [] if isinstance(f, dict)]
    users = [c for c in contents if c.get("role") == "user"]
    return {"model": ROUTE.match(path).group(2), "stream": method(path) == "streamGenerateContent",
            "system": "\n".join(part_texts(body.get("systemInstruction"))), "messages": contents,
            "tools": tools, "prompt": prompt,
            "after_tool": bool(users) and has_function_response(users[-1]),
            "utility": method(path) != "streamGenerateContent"}


def send_error(handler, status, message):
    handler.send_json(status, {"error": {"code": status, "message": message,
                                         "status": STATUS_NAMES.get(status, "UNKNOWN")}})


def usage_metadata(usage):
    return {"promptTokenCount": usage[0], "candidatesTokenCount": usage[1],
            "totalTokenCount": usage[0] + usage[1]}


def send_utility(handler, body, path, usage):
    """A utility call (routing, counting): a verdict that fits the schema the CLI asked for."""
    if method(path) == "countTokens":
        handler.send_json(200, {"totalTokens": usage[0]})
        return
    schema = (body.get("generationConfig") or {}).get("responseJsonSchema") or {}
    wanted = schema.get("properties") or {}
    verdict = {}
    for name, spec in wanted.items():
        kind = str(spec.get("type", "")).upper()
        verdict[name] = 10 if kind in ("INTEGER", "NUMBER") else False if kind == "BOOLEAN" else "e2e stand-in"
    if "model_choice" in wanted:
        verdict["model_choice"] = "flash"
    handler.send_json(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": json.dumps(verdict)}]},
                                            "finishReason": "STOP", "index": 0}],
                            "usageMetadata": usage_metadata(usage)})


def send_answer(handler, body, path, answer, usage):
    """`answer`: {"text": T} or {"text": T, "tool": NAME, "input": ARGS}, streamed as SSE."""
    model = ROUTE.match(path).group(2)
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Cache-Control", "no-cache")
    handler.end_headers()

    def chunk(parts, last):
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
        data = {"candidates": [candidate], "modelVersion": model}
        if last:
            candidate["finishReason"] = "STOP"
            data["usageMetadata"] = usage_metadata(usage)
        handler.wfile.write(f"data: {json.dumps(data)}\r\n\r\n".encode())
        handler.wfile.flush()

    text = answer["text"]
    if "tool" in answer:
        chunk([{"text": text}], False)
        chunk([{"functionCall": {"name": answer["tool"], "args": answer["input"]}}], True)
        return
    half = len(text) // 2
    chunk([{"text": text[:half]}], False)
    chunk([{"text": text[half:]}], True)
