#!/usr/bin/env python3
"""Measures what the resource features cost: tools/list size with and without output schemas,
a full paginated resources/list of 500 agents, the CPU an idle server spends polling 64
subscriptions, and how long a ping waits behind a resources/read of a 20 MB result.
Usage (from the repo root): scripts/measure-resources.py target/release/agent-dispatch
"""
import json, os, subprocess, tempfile, time, sys
binary = sys.argv[1]
root = tempfile.mkdtemp(); home = os.path.join(root, "home")
cfg = os.path.join(home, ".config/agent-dispatch/agents.yaml"); os.makedirs(os.path.dirname(cfg))
proj = os.path.join(root, "p"); os.makedirs(proj)
with open(cfg, "w") as f:
    f.write("agents:\n")
    for i in range(500): f.write(f"  a{i:03}:\n    directory: {proj}\n")
env = dict(os.environ, HOME=home, AGENT_DISPATCH_CONFIG=cfg)
def start(version):
    p = subprocess.Popen([binary, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    n = [0]
    def req(m, params):
        n[0] += 1; p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": n[0], "method": m, "params": params}) + "\n"); p.stdin.flush()
        while True:
            line = p.stdout.readline(); v = json.loads(line)
            if v.get("id") == n[0]: return line, v
    req("initialize", {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "m", "version": "0"}})
    return p, req
for v in ("2024-11-05", "2025-11-25"):
    p, req = start(v); line, _ = req("tools/list", {}); print(f"tools/list bytes at {v}: {len(line)}"); p.stdin.close(); p.wait()
p, req = start("2025-11-25")
t = time.perf_counter()
for _ in range(20):
    cursor = None
    while True:
        _, r = req("resources/list", {"cursor": cursor} if cursor else {})
        cursor = r["result"].get("nextCursor")
        if not cursor: break
print(f"resources/list of 500 agents (5 pages), mean per full listing: {(time.perf_counter()-t)/20*1000:.2f} ms")
# 64 subscriptions to agents; CPU of the whole server while idle for 10 s
for i in range(64): req("resources/subscribe", {"uri": f"agent-dispatch://agents/a{i:03}"})
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu(p.pid); time.sleep(10); c1 = cpu(p.pid)
print(f"idle server with 64 subscriptions, 0.5 s polls: {(c1-c0)/10*100:.2f}% of one core over 10 s")
p.stdin.close(); p.wait()

# A ping behind a big resources/read.
root = tempfile.mkdtemp(); home = os.path.join(root, "home"); bindir = os.path.join(root, "bin"); os.makedirs(bindir)
os.symlink(os.path.abspath("fixtures/fake-claude"), os.path.join(bindir, "claude"))
cfg = os.path.join(home, ".config/agent-dispatch/agents.yaml"); os.makedirs(os.path.dirname(cfg))
proj = os.path.join(root, "p"); os.makedirs(proj)
open(cfg, "w").write(f"agents:\n  a:\n    directory: {proj}\n")
env = dict(os.environ, HOME=home, PATH=bindir + ":" + os.environ["PATH"], AGENT_DISPATCH_CONFIG=cfg, FAKE_CLAUDE_STEP=json.dumps({"huge_mb": 20}), FAKE_CLAUDE_LOG="off")
p = subprocess.Popen([binary, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
def send(i, m, params): p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": params}) + "\n"); p.stdin.flush()
def wait(i):
    while True:
        v = json.loads(p.stdout.readline())
        if v.get("id") == i: return v
send(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "m", "version": "0"}}); wait(1)
send(2, "tools/call", {"name": "dispatch", "arguments": {"agent": "a", "task": "big", "return_ref": True}}); r = wait(2)
ref = r["result"]["structuredContent"]["ref"]
t = time.perf_counter(); send(3, "resources/read", {"uri": f"agent-dispatch://results/{ref}"}); send(4, "ping", {})
got = {}
while len(got) < 2:
    v = json.loads(p.stdout.readline())
    if v.get("id") in (3, 4): got[v["id"]] = (v, time.perf_counter() - t)
v, t3 = got[3]; t4 = got[4][1]
print(f"resources/read of a {len(v['result']['contents'][0]['text'])/1e6:.0f} MB result: {t3*1000:.0f} ms; a ping sent right after it answered at {t4*1000:.0f} ms")
p.stdin.close(); p.wait()
