//! Shared helpers for the integration tests: a self-deleting temporary environment with its own
//! HOME, config path and a PATH whose `claude` is the fake in `fixtures/`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agent-dispatch"))
}

pub fn fake_claude() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("fake-claude")
}

/// A temporary world for one test. Deleted on drop.
pub struct TestEnv {
    pub root: PathBuf,
    pub home: PathBuf,
    /// Holds `claude` (a symlink to the fake); first on PATH.
    pub bin_dir: PathBuf,
    pub config: PathBuf,
    /// The fake claude appends one JSON line per run here.
    pub log: PathBuf,
}

impl TestEnv {
    pub fn new(name: &str) -> TestEnv {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("ad-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let home = root.join("home");
        let bin_dir = root.join("bin");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::os::unix::fs::symlink(fake_claude(), bin_dir.join("claude")).unwrap();
        let config = home
            .join(".config")
            .join("agent-dispatch")
            .join("agents.yaml");
        let log = root.join("claude-log.jsonl");
        TestEnv {
            root,
            home,
            bin_dir,
            config,
            log,
        }
    }

    /// Removes `claude` from this environment's PATH.
    pub fn without_claude(&self) {
        let _ = std::fs::remove_file(self.bin_dir.join("claude"));
    }

    /// PATH with our bin dir first, then only system directories (never the developer's own
    /// `claude` or `agent-dispatch`).
    pub fn path_var(&self) -> String {
        format!("{}:/usr/local/bin:/usr/bin:/bin", self.bin_dir.display())
    }

    /// The `agent-dispatch` binary with this environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin());
        self.apply(&mut c);
        c
    }

    /// Applies the environment to any command (e.g. a bare spawn of the fake claude).
    pub fn apply(&self, c: &mut Command) {
        let python_path = std::env::var("PATH").unwrap_or_default();
        // Keep whatever directory provides python3 reachable for the fake's shebang.
        c.env("PATH", format!("{}:{python_path}", self.path_var()))
            .env("HOME", &self.home)
            .env("AGENT_DISPATCH_CONFIG", &self.config)
            .env("FAKE_CLAUDE_LOG", &self.log)
            .env("NO_COLOR", "1")
            .env_remove("AGENT_DISPATCH_DEPTH")
            .env_remove("AGENT_DISPATCH_JOBS_DIR")
            .env_remove("FAKE_CLAUDE_STEP")
            .env_remove("FAKE_CLAUDE_PLAN");
    }

    /// Creates a project directory under the test root and returns its path.
    pub fn project(&self, name: &str) -> PathBuf {
        let p = self.root.join("projects").join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    pub fn write_config(&self, yaml: &str) {
        std::fs::create_dir_all(self.config.parent().unwrap()).unwrap();
        std::fs::write(&self.config, yaml).unwrap();
    }

    pub fn read_config(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap_or_default()
    }

    /// Every run the fake claude recorded so far.
    pub fn claude_runs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Output of a finished command as strings.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Out {
    let o = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("spawn agent-dispatch");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// True while a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised command) is the state; Z is a zombie.
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}
pub mod mcp;
pub mod sshd;

/// Polls `f` until it holds or `limit` passes; the final answer of `f`. The limit is a hang
/// detector, never a speed claim: give it room for a loaded machine.
pub fn wait_until(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    f()
}
