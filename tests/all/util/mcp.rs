//! `McpClient`: drives `agent-dispatch serve` over pipes as an MCP client would. Every read is
//! bounded by a timeout so a hung server fails the test instead of hanging it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::{Value, json};

use super::TestEnv;

pub const READ_TIMEOUT: Duration = Duration::from_secs(120);

pub struct McpClient {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    next_id: i64,
    /// Every notification received so far, in order.
    pub notifications: Vec<Value>,
    /// Responses that arrived while waiting for another id.
    stash: Vec<Value>,
}

impl McpClient {
    pub fn start(env: &TestEnv) -> McpClient {
        Self::start_with(env, |_| {})
    }

    pub fn start_with(env: &TestEnv, tweak: impl FnOnce(&mut Command)) -> McpClient {
        let mut cmd = env.cmd();
        cmd.arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        tweak(&mut cmd);
        let mut child = cmd.spawn().expect("spawn agent-dispatch serve");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if tx.send(std::mem::take(&mut line)).is_err() {
                    break;
                }
            }
        });
        McpClient {
            child,
            stdin,
            lines: rx,
            next_id: 1,
            notifications: Vec::new(),
            stash: Vec::new(),
        }
    }

    /// A started client that has completed the handshake.
    pub fn ready(env: &TestEnv) -> McpClient {
        let mut c = Self::start(env);
        c.initialize("2025-11-25");
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).unwrap();
        stdin.flush().unwrap();
    }

    pub fn send(&mut self, v: &Value) {
        let mut line = serde_json::to_vec(v).unwrap();
        line.push(b'\n');
        self.send_raw(&line);
    }

    /// Sends a request and returns its id.
    pub fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Next message of any kind (notifications are also recorded).
    pub fn next_message(&mut self, timeout: Duration) -> Option<Value> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("server wrote non-JSON {line:?}: {e}"));
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        if v.get("method").is_some() && v.get("id").is_none() {
            self.notifications.push(v.clone());
        }
        Some(v)
    }

    /// Waits for the response with this id (any id type as JSON).
    pub fn response_for(&mut self, id: &Value, timeout: Duration) -> Value {
        if let Some(i) = self.stash.iter().position(|r| &r["id"] == id) {
            return self.stash.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(msg) = self.next_message(left) else {
                panic!("no response for id {id} within {timeout:?}");
            };
            if msg.get("method").is_some() {
                continue;
            }
            if &msg["id"] == id {
                return msg;
            }
            self.stash.push(msg);
        }
    }

    /// Every response not yet claimed, including ones that arrive within `wait`.
    pub fn unclaimed_responses(&mut self, wait: Duration) -> Vec<Value> {
        while let Some(m) = self.next_message(wait) {
            if m.get("method").is_none() {
                self.stash.push(m);
            }
        }
        std::mem::take(&mut self.stash)
    }

    pub fn response(&mut self, id: i64) -> Value {
        self.response_for(&json!(id), READ_TIMEOUT)
    }

    pub fn initialize(&mut self, version: &str) -> Value {
        let id = self.request(
            "initialize",
            json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}),
        );
        let r = self.response(id);
        self.notify("notifications/initialized", json!({}));
        r
    }

    /// Calls a tool; returns (parsed JSON document of the text item, isError).
    pub fn call(&mut self, name: &str, args: Value) -> (Value, bool) {
        let id = self.request("tools/call", json!({"name": name, "arguments": args}));
        Self::tool_payload(&self.response(id))
    }

    /// The text of every `notifications/message` received so far, in order.
    pub fn log_messages(&self) -> Vec<String> {
        self.notifications
            .iter()
            .filter(|n| n["method"] == "notifications/message")
            .filter_map(|n| n["params"]["data"].as_str().map(str::to_string))
            .collect()
    }

    pub fn tool_payload(resp: &Value) -> (Value, bool) {
        let result = &resp["result"];
        assert!(result.is_object(), "expected a result, got {resp}");
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {resp}"));
        let doc = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("tool text is not JSON ({e}): {text}"));
        (doc, result["isError"].as_bool().unwrap_or(false))
    }

    /// Closes stdin and waits (bounded) for the server to exit.
    pub fn close(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.stdin.take();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
