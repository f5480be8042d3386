"""What the end-to-end scenarios share: the model API stand-in, a HOME per scenario with its own
agents.yaml, the environment that points the real `claude` at the stand-in, the stand-in's
request log, process lookups and the pass/fail tally.

Every wait here has a deadline; nothing listens anywhere but 127.0.0.1.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
# Variables of the calling environment that would point the CLI at a real account or change
# how it behaves; the scenarios set their own.
SCRUBBED_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "AGENT_DISPATCH_", "FAKE_CLAUDE_", "OPENAI_", "CODEX_",
                     "GEMINI_", "GOOGLE_")


class Tally:
    def __init__(self):
        self.passed = []
        self.failed = []

    def check(self, name, ok, detail=""):
        (self.passed if ok else self.failed).append(name)
        suffix = f": {detail}" if detail != "" and not ok else ""
        print(("ok   " if ok else "FAIL ") + name + suffix[:2000], flush=True)
        return ok

    def summary(self):
        return f"{len(self.passed)} passed, {len(self.failed)} failed"


def wait_until(predicate, seconds, interval=0.1):
    """Polls until `predicate()` is truthy or `seconds` pass; returns its last value."""
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def token(label):
    """A marker unique to one scenario, found again in prompts, the request log and /proc."""
    return f"e2e-{label}-{uuid.uuid4().hex[:10]}"


def live_processes():
    """(pid, argv) of every live process but this one."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            yield int(entry), [a for a in argv if a]


def processes_with(needle):
    """Pids of live processes whose command line contains `needle` (this process excluded).
    The claude CLI gets the prompt in its argv, so a token in the prompt finds it."""
    return [pid for pid, argv in live_processes() if needle in " ".join(argv)]


def processes_with_arg(arg):
    """Pids of live processes with `arg` as one whole argument: the program itself, not the
    CLI whose prompt or the shell whose script merely mentions it."""
    return [pid for pid, argv in live_processes() if arg in argv]


class MockApi:
    """The stand-in (tests/e2e/mock_api.py) as a child process, with its request log."""

    def __init__(self, root):
        self.log = os.path.join(root, "api-requests.jsonl")
        port_file = os.path.join(root, "api-port")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "mock_api.py"), "--port-file", port_file, "--log", self.log,
             "--parent-pid", str(os.getpid())],
            stdin=subprocess.DEVNULL)
        if not wait_until(lambda: os.path.exists(port_file) or self.proc.poll() is not None, 15):
            self.stop()
            raise RuntimeError("the model API stand-in did not report its port within 15 s")
        if self.proc.poll() is not None:
            raise RuntimeError(f"the model API stand-in exited with {self.proc.returncode}")
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self, needle=None):
        """Logged requests, or those whose messages mention `needle`."""
        try:
            with open(self.log) as f:
                entries = [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []
        if needle is None:
            return entries
        return [e for e in entries if needle in json.dumps(e.get("messages", []))]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Home:
    """One scenario's world: HOME, projects, agents.yaml and the environment to run in."""

    def __init__(self, world, name, agents, settings=None, claude_dir=None):
        self.root = os.path.join(world.root, name)
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.home)
        self.projects = {}
        lines = ["agents:"]
        for agent, extra in agents.items():
            directory = os.path.join(self.root, "projects", agent)
            os.makedirs(directory)
            with open(os.path.join(directory, "README.md"), "w") as f:
                f.write(f"# {agent}\n\nA project used by the end-to-end tests.\n")
            self.projects[agent] = directory
            lines.append(f"  {agent}:")
            lines.append(f"    directory: {json.dumps(directory)}")
            lines.append(f"    description: {json.dumps(agent + ' project')}")
            for key, value in (extra or {}).items():
                lines.append(f"    {key}: {json.dumps(value)}")
        if settings:
            lines.append("settings:")
            for key, value in settings.items():
                lines.append(f"  {key}: {json.dumps(value)}")
        self.config = os.path.join(self.home, ".config", "agent-dispatch", "agents.yaml")
        os.makedirs(os.path.dirname(self.config))
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        self.write_backend_configs(world)
        env.update({
            "HOME": self.home,
            "PATH": os.pathsep.join([claude_dir or world.claude_dir] + world.backend_dirs
                                    + [world.node_dir, env.get("PATH", "")]),
            "AGENT_DISPATCH_CONFIG": self.config,
            "ANTHROPIC_BASE_URL": world.api.url,
            "ANTHROPIC_API_KEY": "e2e-not-a-real-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "NO_COLOR": "1",
            # gemini: the stand-in instead of Google, with a key it never checks.
            "GOOGLE_GEMINI_BASE_URL": world.api.url,
            "GEMINI_API_KEY": "e2e-not-a-real-key",
        })
        self.env = env

    def write_backend_configs(self, world):
        """codex and gemini read their endpoint and auth from HOME: codex a custom model provider
        at the stand-in (no retries, so an API error fails at once, and no WebSocket attempt);
        gemini the API-key auth type, which GOOGLE_GEMINI_BASE_URL then redirects."""
        os.makedirs(os.path.join(self.home, ".codex"))
        with open(os.path.join(self.home, ".codex", "config.toml"), "w") as f:
            f.write('model_provider = "e2e"\n'
                    'model = "gpt-5.1-codex"\n'
                    '[model_providers.e2e]\n'
                    'name = "e2e stand-in"\n'
                    f'base_url = "{world.api.url}/v1"\n'
                    'wire_api = "responses"\n'
                    'request_max_retries = 0\n'
                    'stream_max_retries = 0\n'
                    'supports_websockets = false\n')
        os.makedirs(os.path.join(self.home, ".gemini"))
        with open(os.path.join(self.home, ".gemini", "settings.json"), "w") as f:
            json.dump({"security": {"auth": {"selectedType": "gemini-api-key"}}}, f)

    def session_files(self, session_id):
        """The CLI's transcript files for a session, wherever its project directory maps to."""
        base = os.path.join(self.home, ".claude", "projects")
        if not os.path.isdir(base):
            return []
        return [os.path.join(base, d, session_id + ".jsonl") for d in os.listdir(base)
                if os.path.exists(os.path.join(base, d, session_id + ".jsonl"))]


class World:
    """Everything one `make test-e2e` run shares: the binaries, the stand-in, a temp root."""

    def __init__(self, binary, claude, node_dir, fake, codex=None, gemini=None):
        self.binary = os.path.abspath(binary)
        self.claude = os.path.abspath(claude)
        self.claude_dir = os.path.dirname(self.claude)
        # The other backends' CLIs, None when their install was impossible (then skipped).
        self.codex = os.path.abspath(codex) if codex else None
        self.gemini = os.path.abspath(gemini) if gemini else None
        self.backend_dirs = [os.path.dirname(p) for p in (self.codex, self.gemini) if p]
        self.node_dir = os.path.abspath(node_dir)
        self.fake = os.path.abspath(fake)
        self.root = tempfile.mkdtemp(prefix="ad-e2e-")
        self.api = MockApi(self.root)
        self.tally = Tally()

    def home(self, name, agents, settings=None, claude_dir=None):
        return Home(self, name, agents, settings, claude_dir)

    def wrapper(self, name, extra_args):
        """A directory holding a `claude` that runs the real CLI with `extra_args` appended."""
        bindir = os.path.join(self.root, "wrap-" + name)
        os.makedirs(bindir)
        path = os.path.join(bindir, "claude")
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\nexec "{self.claude}" "$@" {" ".join(extra_args)}\n')
        os.chmod(path, 0o755)
        return bindir

    def close(self, keep):
        self.api.stop()
        if keep:
            print(f"kept {self.root}", flush=True)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
