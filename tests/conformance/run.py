"""Runs MCP conformance scenarios (npm `@modelcontextprotocol/conformance`) against our stdio server.

Run by `make test-conformance`: python run.py <agent-dispatch> <conformance cli> <scenario>...

The conformance CLI only speaks Streamable HTTP (`server --url`), and its README describes no
stdio mode, so this script is the bridge: a minimal Streamable HTTP endpoint on 127.0.0.1 that
starts one `agent-dispatch serve` per MCP session, writes each POSTed JSON-RPC message to the
child's stdin and answers a request with the child's response for that id (as
`application/json`, which the transport allows). Notifications from the server are dropped
(these scenarios need none); a GET stream is refused with 405, as the transport allows. The
server runs in a throwaway HOME with two agents, so the lists it answers are not empty.
Prints each scenario's checks and exits non-zero if any check failed.
"""

import http.server
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import uuid

RESPONSE_TIMEOUT = 60


class Session:
    """One `agent-dispatch serve` child and the responses it has sent, by id."""

    def __init__(self, binary, env):
        self.child = subprocess.Popen(
            [binary, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env)
        self.waiting = {}
        self.lock = threading.Lock()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.child.stdout:
            msg = json.loads(line)
            if "id" in msg and "method" not in msg:
                with self.lock:
                    slot = self.waiting.get(json.dumps(msg["id"]))
                if slot is not None:
                    slot.put(msg)

    def send(self, msg):
        """Writes `msg`; for a request, returns the response (None after the timeout)."""
        slot = None
        if "id" in msg and "method" in msg:
            slot = queue.Queue(1)
            with self.lock:
                self.waiting[json.dumps(msg["id"])] = slot
        self.child.stdin.write(json.dumps(msg).encode() + b"\n")
        self.child.stdin.flush()
        if slot is None:
            return None
        try:
            return slot.get(timeout=RESPONSE_TIMEOUT)
        except queue.Empty:
            return None
        finally:
            with self.lock:
                self.waiting.pop(json.dumps(msg["id"]), None)

    def close(self):
        self.child.stdin.close()
        try:
            self.child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.child.kill()
            self.child.wait()


def make_handler(binary, env, sessions):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def reply(self, status, body=None, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            data = json.dumps(body).encode() if body is not None else b""
            if body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.reply(405)

        def do_DELETE(self):
            session = sessions.pop(self.headers.get("mcp-session-id", ""), None)
            if session:
                session.close()
            self.reply(200 if session else 404)

        def do_POST(self):
            msg = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            sid = self.headers.get("mcp-session-id")
            if sid is None and msg.get("method") == "initialize":
                sid = uuid.uuid4().hex
                sessions[sid] = Session(binary, env)
            session = sessions.get(sid or "")
            if session is None:
                return self.reply(404, {"jsonrpc": "2.0", "id": None,
                                        "error": {"code": -32000, "message": "unknown session"}})
            response = session.send(msg)
            if "method" not in msg or "id" not in msg:
                return self.reply(202)
            if response is None:
                return self.reply(504, {"jsonrpc": "2.0", "id": msg["id"],
                                        "error": {"code": -32603, "message": "no response from the server"}})
            self.reply(200, response, [("mcp-session-id", sid)])

    return Handler


def world():
    root = tempfile.mkdtemp(prefix="ad-conformance-")
    home = os.path.join(root, "home")
    config = os.path.join(home, ".config", "agent-dispatch", "agents.yaml")
    os.makedirs(os.path.dirname(config))
    with open(config, "w") as f:
        f.write("agents:\n")
        for name in ("alpha", "beta"):
            path = os.path.join(root, "projects", name)
            os.makedirs(path)
            f.write(f"  {name}:\n    directory: {path}\n    description: {name} project\n")
    env = dict(os.environ, HOME=home, AGENT_DISPATCH_CONFIG=config)
    return root, env


def main(binary, cli, scenarios):
    root, env = world()
    sessions = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make_handler(binary, env, sessions))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
    failed = 0
    try:
        for scenario in scenarios:
            run = subprocess.run([cli, "server", "--url", url, "--scenario", scenario],
                                 cwd=root, capture_output=True, text=True, timeout=300)
            print(run.stdout.strip())
            if run.returncode != 0:
                print(run.stderr.strip())
                failed += 1
            print(f"{'ok  ' if run.returncode == 0 else 'FAIL'} {scenario}", flush=True)
    finally:
        server.shutdown()
        for session in list(sessions.values()):
            session.close()
    print(f"{len(scenarios) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3:]))
