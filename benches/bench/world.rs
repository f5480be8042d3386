//! The world one server is measured in: a throw-away HOME with the fake claude first on PATH,
//! 50 agents whose project directories each hold a `.fake-claude-step.json` (so one server can
//! serve every workload's child behaviour), two configs (max_concurrency for `dispatch_parallel`,
//! and one wide enough for 32 simultaneous calls), and a jobs directory of pre-written job files.
//! `Server` says which program answers: ours, or a Python reference from its virtualenv.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::client::Client;
use crate::util::{self, TestEnv};

/// Which server a run measures.
#[derive(Clone, Debug, PartialEq)]
pub enum Server {
    Ours,
    /// A Python release installed in `target/ref-<version>` (see `make bench-compare`).
    Ref(String),
}

impl Server {
    /// `ours`, `ref-0.6.0`, `ref-0.16.0`, …
    pub fn parse(s: &str) -> Option<Server> {
        match s.trim() {
            "ours" => Some(Server::Ours),
            r => r
                .strip_prefix("ref-")
                .filter(|v| !v.is_empty())
                .map(|v| Server::Ref(v.to_string())),
        }
    }

    pub fn id(&self) -> String {
        match self {
            Server::Ours => "ours".into(),
            Server::Ref(v) => format!("ref-{v}"),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Server::Ours => "ours".into(),
            Server::Ref(v) => format!("Python {v}"),
        }
    }

    pub fn program(&self) -> PathBuf {
        match self {
            Server::Ours => util::bin(),
            Server::Ref(v) => Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join(format!("ref-{v}"))
                .join("bin")
                .join("agent-dispatch"),
        }
    }
}

/// How big each workload is. `full()` is what `make bench` measures; `smoke()` keeps
/// `cargo test --all-targets` quick.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub cold_runs: usize,
    pub rt_runs: usize,
    pub overhead_runs: usize,
    pub parallel_runs: usize,
    pub parallel_items: usize,
    pub parallel_concurrency: usize,
    pub parallel_sleep: f64,
    pub stream_runs: usize,
    pub stream_events: usize,
    pub huge_runs: usize,
    pub huge_mb: usize,
    pub rss_runs: usize,
    pub rss_calls: usize,
    pub rss_sleep: f64,
    pub job_files: usize,
    pub jobs_runs: usize,
    pub status_runs: usize,
    pub wait_runs: usize,
    pub cancel_runs: usize,
    pub agents: usize,
    /// The larger config of the scale figures (`scale.rs`); `agents` is the smaller one.
    pub scale_agents: usize,
    /// Rounds of the scale figures that run a server (one bare spawn and two calls each).
    pub scale_runs: usize,
    /// Rounds of `agent-dispatch test` at scale (three process spawns each).
    pub scale_cli_runs: usize,
    /// Hostile figures: calls and seconds of a client that stops reading, progress lines per
    /// chatty child, and MiB a flooding child prints.
    pub stall_calls: usize,
    pub stall_secs: f64,
    pub chatty_lines: usize,
    pub flood_mib: usize,
}

impl Sizes {
    pub fn full() -> Sizes {
        Sizes {
            cold_runs: 15,
            rt_runs: 40,
            overhead_runs: 30,
            parallel_runs: 3,
            parallel_items: 100,
            parallel_concurrency: 10,
            parallel_sleep: 0.2,
            stream_runs: 3,
            stream_events: 100_000,
            huge_runs: 3,
            huge_mb: 50,
            rss_runs: 3,
            rss_calls: 32,
            rss_sleep: 1.0,
            job_files: 10_000,
            jobs_runs: 7,
            status_runs: 30,
            wait_runs: 7,
            cancel_runs: 5,
            agents: 50,
            scale_agents: 500,
            scale_runs: 200,
            scale_cli_runs: 100,
            stall_calls: 500,
            stall_secs: 30.0,
            chatty_lines: 2000,
            flood_mib: 2048,
        }
    }

    pub fn smoke() -> Sizes {
        Sizes {
            cold_runs: 1,
            rt_runs: 1,
            overhead_runs: 1,
            parallel_runs: 1,
            parallel_items: 6,
            parallel_concurrency: 3,
            parallel_sleep: 0.05,
            stream_runs: 1,
            stream_events: 200,
            huge_runs: 1,
            huge_mb: 1,
            rss_runs: 1,
            rss_calls: 4,
            rss_sleep: 0.1,
            job_files: 50,
            jobs_runs: 1,
            status_runs: 1,
            wait_runs: 1,
            cancel_runs: 1,
            agents: 50,
            scale_agents: 500,
            scale_runs: 1,
            scale_cli_runs: 1,
            stall_calls: 5,
            stall_secs: 1.0,
            chatty_lines: 100,
            flood_mib: 80,
        }
    }
}

/// The short task every dispatch sends.
pub const TASK: &str = "What project is this? Describe in one sentence.";

/// Agents with a special child behaviour; the rest of the 50 behave like `quick`.
pub const QUICK: &str = "quick";
pub const SLEEPY: &str = "sleepy";
pub const STREAM: &str = "stream";
pub const HUGE: &str = "huge";
pub const SLOW: &str = "slow";
pub const WAIT: &str = "waiter";
pub const HANG: &str = "hang";
pub const STREAM2: &str = "stream2";
pub const MIB: &str = "mib";
pub const CHATTY: &str = "chatty";
pub const FLOOD: &str = "flood";
pub const ENDLESS: &str = "endless";

pub struct World {
    pub server: Server,
    pub env: TestEnv,
    /// `settings.max_concurrency` = the parallel workload's.
    pub config: PathBuf,
    /// `settings.max_concurrency` = the number of simultaneous calls in the RSS workload.
    pub config_wide: PathBuf,
    /// Pre-written finished jobs (`Sizes::job_files` of them).
    pub many_jobs: PathBuf,
    /// One of the pre-written job ids.
    pub some_job: String,
    /// The fake claude keeps a file named after its pid here while it runs.
    pub live_dir: PathBuf,
}

impl World {
    pub fn new(server: Server, sizes: &Sizes) -> World {
        let env = TestEnv::new(&format!("bench-{}", server.id()));
        let live_dir = env.root.join("live");
        std::fs::create_dir_all(&live_dir).expect("live dir");
        let special = [
            (QUICK, json!({"result": "It is a small project."})),
            (
                SLEEPY,
                json!({"sleep": sizes.parallel_sleep, "result": "rested"}),
            ),
            (
                STREAM,
                json!({"progress_count": sizes.stream_events, "result": "streamed"}),
            ),
            (HUGE, json!({"huge_mb": sizes.huge_mb})),
            (SLOW, json!({"sleep": sizes.rss_sleep, "result": "slow"})),
            (
                WAIT,
                json!({"progress": ["working"], "sleep": 0.3, "result": "waited"}),
            ),
            // Long enough to be cancelled, short enough that a reference which cannot cancel
            // leaves nothing behind for long.
            (
                HANG,
                json!({"progress": ["working"], "sleep": 20, "result": "late"}),
            ),
            (
                STREAM2,
                json!({"result": "It is a small project.", "progress": ["Looking", "tool:Read"]}),
            ),
            (MIB, json!({"huge_mb": 1})),
            (
                CHATTY,
                json!({"progress_count": sizes.chatty_lines, "result": "chatted"}),
            ),
            (
                FLOOD,
                json!({"flood_bytes": sizes.flood_mib * 1024 * 1024, "result": "flooded"}),
            ),
            (ENDLESS, json!({"endless_line": true})),
        ];
        let mut agents = String::new();
        for i in 0..sizes.agents.max(special.len()) {
            let (name, step) = match special.get(i) {
                Some((n, s)) => (n.to_string(), s.clone()),
                None => (format!("agent{i:02}"), special[0].1.clone()),
            };
            let dir = env.project(&name);
            std::fs::write(dir.join(".fake-claude-step.json"), step.to_string()).expect("step");
            std::fs::write(
                dir.join("CLAUDE.md"),
                (1..=60)
                    .map(|l| format!("Rule {l}: keep it small.\n"))
                    .collect::<String>(),
            )
            .expect("CLAUDE.md");
            std::fs::write(dir.join("README.md"), "# A project\n\nIt does things.\n")
                .expect("README");
            std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"p\"\n").expect("Cargo");
            agents.push_str(&format!(
                "  {name}:\n    directory: {}\n    description: Agent {name} for the benchmark\n",
                dir.display()
            ));
        }
        let config = env.config.clone();
        let config_wide = config.with_file_name("agents-wide.yaml");
        let write = |path: &Path, conc: usize| {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("config dir");
            std::fs::write(
                path,
                format!(
                    "settings:\n  max_concurrency: {conc}\n  cache:\n    enabled: false\nagents:\n{agents}"
                ),
            )
            .expect("config");
        };
        write(&config, sizes.parallel_concurrency);
        write(&config_wide, sizes.rss_calls);
        let many_jobs = env.root.join("many-jobs");
        let some_job = write_jobs(&many_jobs, sizes.job_files);
        World {
            server,
            env,
            config,
            config_wide,
            many_jobs,
            some_job,
            live_dir,
        }
    }

    /// `<program> serve` with this world's environment.
    pub fn serve_cmd(&self, config: &Path, jobs_dir: Option<&Path>) -> Command {
        let mut c = Command::new(self.server.program());
        c.arg("serve");
        self.apply(&mut c);
        c.env("AGENT_DISPATCH_CONFIG", config);
        if let Some(d) = jobs_dir {
            c.env("AGENT_DISPATCH_JOBS_DIR", d);
        }
        c
    }

    /// `<program>` for a CLI command, with this world's environment.
    pub fn cli(&self) -> Command {
        let mut c = Command::new(self.server.program());
        self.apply(&mut c);
        c.stdin(Stdio::null());
        c
    }

    /// A started server that has finished the handshake.
    pub fn start(&self) -> Client {
        self.start_with(&self.config, None)
    }

    pub fn start_with(&self, config: &Path, jobs_dir: Option<&Path>) -> Client {
        let mut c = Client::spawn(self.serve_cmd(config, jobs_dir));
        c.initialize();
        c
    }

    fn apply(&self, c: &mut Command) {
        self.env.apply(c);
        // No log and no stdin probe: the reference lets children inherit its stdin pipe.
        c.env("FAKE_CLAUDE_LOG", "off")
            .env("FAKE_CLAUDE_LIVE_DIR", &self.live_dir);
    }

    /// A bare spawn of the fake claude with the argv, cwd and output a dispatch to `agent` gets.
    pub fn bare_fake(&self, agent: &str, stream: bool) -> Command {
        let mut c = Command::new(util::fake_claude());
        self.apply(&mut c);
        let format = if stream { "stream-json" } else { "json" };
        c.args(["-p", TASK, "--output-format", format, "--session-id"])
            .arg(uuid::Uuid::new_v4().to_string())
            .args(if stream { &["--verbose"][..] } else { &[][..] })
            .current_dir(self.env.root.join("projects").join(agent))
            .env("AGENT_DISPATCH_DEPTH", "1")
            .stdin(Stdio::null());
        c
    }

    /// Pids of fake claude children alive now.
    pub fn live_children(&self) -> Vec<u32> {
        std::fs::read_dir(&self.live_dir)
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                    .filter(|pid| crate::sys::alive(*pid))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Writes `n` finished jobs in the format all servers share (SPEC §2.6) and returns one id.
fn write_jobs(dir: &Path, n: usize) -> String {
    std::fs::create_dir_all(dir).expect("jobs dir");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    let mut some = String::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let t = now - 86_400.0 + i as f64;
        let job = json!({
            "id": id, "agent": QUICK, "task": format!("job number {i}: {TASK}"),
            "status": "done", "created_at": t, "started_at": t + 0.1, "completed_at": t + 2.0,
            "result": {"agent": QUICK, "success": true,
                       "result": format!("Answer {i}: ").repeat(40),
                       "session_id": uuid::Uuid::new_v4().to_string(), "cost_usd": 0.01,
                       "duration_ms": 1900, "num_turns": 1},
        });
        let text = serde_json::to_string_pretty(&job).expect("job json");
        std::fs::write(dir.join(format!("{id}.json")), text).expect("job file");
        if i == n / 2 {
            some = id;
        }
    }
    some
}
