//! `Client`: an MCP client over pipes that can drive any stdio server command (ours or the
//! Python reference). Every line is timestamped by the reader thread when it arrives, so latency
//! figures do not include the time this thread spends parsing; notifications are counted, not
//! kept, so a 100,000-notification stream costs no memory.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde_json::{Value, json};

pub struct Client {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Instant, String)>,
    next_id: i64,
    /// Notifications received so far, and when the last one arrived.
    pub notifications: usize,
    pub last_notification: Option<Instant>,
    /// Responses that arrived while waiting for another id.
    stash: Vec<(Instant, Value)>,
}

/// A tool call's outcome: the JSON document of the text item, and when the response arrived.
pub struct Reply {
    pub doc: Value,
    pub at: Instant,
}

impl Reply {
    /// Our server flags errors with `isError`; the Python servers return an `{"error": …}`
    /// document as a plain result, so look at the document itself.
    pub fn error(&self) -> Option<String> {
        self.doc
            .get("error")
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
    }
}

impl Client {
    /// Spawns the server; stderr is discarded (the servers log there).
    pub fn spawn(mut cmd: Command) -> Client {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("stdout piped");
        let stdin = child.stdin.take();
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            let mut r = BufReader::with_capacity(1 << 20, stdout);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if tx
                    .send((Instant::now(), std::mem::take(&mut line)))
                    .is_err()
                {
                    break;
                }
            }
        });
        Client {
            child,
            stdin,
            lines: rx,
            next_id: 1,
            notifications: 0,
            last_notification: None,
            stash: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn send(&mut self, v: &Value) {
        let mut line = serde_json::to_vec(v).expect("serialise");
        line.push(b'\n');
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(&line).expect("write to server");
        stdin.flush().expect("flush to server");
    }

    pub fn request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Waits for the response with this id; notifications in between are counted.
    pub fn response(&mut self, id: i64, timeout: Duration) -> (Instant, Value) {
        if let Some(i) = self.stash.iter().position(|(_, r)| r["id"] == id) {
            return self.stash.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no response for id {id} within {timeout:?}"));
            // Cheap test first: a 100,000-notification stream should not be parsed in full.
            if line.starts_with(r#"{"jsonrpc":"2.0","method""#) || line.starts_with(r#"{"method""#)
            {
                self.count_notification(at);
                continue;
            }
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("server wrote non-JSON ({e}): {:.200}", line));
            if v.get("id").is_none() {
                self.count_notification(at);
                continue;
            }
            if v.get("method").is_some() {
                // A server-to-client request (e.g. ping): answer so the server does not stall.
                let rid = v["id"].clone();
                self.send(&json!({"jsonrpc": "2.0", "id": rid, "result": {}}));
                continue;
            }
            if v["id"] == id {
                return (at, v);
            }
            self.stash.push((at, v));
        }
    }

    fn count_notification(&mut self, at: Instant) {
        self.notifications += 1;
        self.last_notification = Some(at);
    }

    /// The handshake: `initialize`, then `notifications/initialized` (the Python servers refuse
    /// requests before it). Returns when the initialize response arrived.
    pub fn initialize(&mut self) -> Instant {
        let id = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "agent-dispatch-bench", "version": "0"}}),
        );
        let (at, resp) = self.response(id, Duration::from_secs(60));
        assert!(resp["result"].is_object(), "initialize failed: {resp}");
        self.notify("notifications/initialized", json!({}));
        at
    }

    /// Sends a `tools/call` and returns its id without waiting.
    pub fn start_call(&mut self, name: &str, args: Value) -> i64 {
        self.request("tools/call", json!({"name": name, "arguments": args}))
    }

    pub fn finish_call(&mut self, id: i64, timeout: Duration) -> Reply {
        let (at, resp) = self.response(id, timeout);
        let result = &resp["result"];
        assert!(result.is_object(), "expected a result, got {:.500}", resp);
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no text in {:.500}", resp));
        let doc = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("tool text is not JSON ({e}): {:.500}", text));
        Reply { doc, at }
    }

    pub fn call(&mut self, name: &str, args: Value, timeout: Duration) -> Reply {
        let id = self.start_call(name, args);
        self.finish_call(id, timeout)
    }

    /// Closes stdin and waits up to 10 s for the server to exit, then kills it.
    pub fn close(mut self) {
        self.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
