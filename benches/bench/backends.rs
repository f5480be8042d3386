//! The per-backend overhead figure (`backend_overhead`): for each backend (claude, codex,
//! gemini), the MCP `dispatch` round trip against a bare spawn of the same fake
//! (`fixtures/fake-{claude,codex,gemini}`) with the same argv, cwd and environment, in
//! interleaved rounds of one run.
//!
//! The argv is not rebuilt here: a first server with the fakes' logs on dispatches once to each
//! agent, and the bare spawns replay the argv each fake recorded (with a fresh `--session-id`
//! where the backend chooses one). So the bare side carries the same prompt (the dispatch
//! protocol leads it) and the same flags as the child the server starts, and a change to a
//! backend's command line moves both sides alike. The measured server runs with the logs off.
//!
//! The fakes are Python: their start-up (~20–40 ms) jitters by more than our overhead, so the
//! middle half of the bare spawns is reported beside the medians as the precision bound; the
//! compiled stand-in (`dispatch_compiled`, `scale.rs`) is the precise figure for our own cost.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::client::Client;
use crate::stats::{Unit, Value, median, ms};
use crate::workloads::{Better, Row, row};
use crate::world::{self, Server, Sizes, World};

/// Unmeasured rounds first (page cache, Python's bytecode cache, first-use allocations).
const WARM_UP: usize = 2;

/// What every fake answers, so both sides print the same thing.
const ANSWER: &str = "It is a small project.";

const CALL_DEADLINE: Duration = Duration::from_secs(60);

/// One backend: its agent in the config, the name its CLI has on `PATH`, its fake, and the
/// fake's environment variables.
struct Cli {
    backend: &'static str,
    fake: &'static str,
    step_var: &'static str,
    log_var: &'static str,
}

const CLIS: [Cli; 3] = [
    Cli {
        backend: "claude",
        fake: "fake-claude",
        step_var: "FAKE_CLAUDE_STEP",
        log_var: "FAKE_CLAUDE_LOG",
    },
    Cli {
        backend: "codex",
        fake: "fake-codex",
        step_var: "FAKE_CODEX_STEP",
        log_var: "FAKE_CODEX_LOG",
    },
    Cli {
        backend: "gemini",
        fake: "fake-gemini",
        step_var: "FAKE_GEMINI_STEP",
        log_var: "FAKE_GEMINI_LOG",
    },
];

impl Cli {
    fn agent(&self) -> String {
        format!("{}-agent", self.backend)
    }
}

/// The fakes under their CLI names, one project per backend, and the config, inside `w`'s
/// throw-away root.
struct Setup {
    root: PathBuf,
    bin_dir: PathBuf,
    config: PathBuf,
    world_path: String,
}

impl Setup {
    fn new(w: &World) -> Setup {
        let root = w.env.root.join("backends");
        let bin_dir = root.join("bin");
        std::fs::create_dir_all(&bin_dir).expect("backends bin dir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut agents = String::new();
        for cli in &CLIS {
            let link = bin_dir.join(cli.backend);
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(fixtures.join(cli.fake), &link).expect("link a fake");
            let dir = root.join("projects").join(cli.agent());
            std::fs::create_dir_all(&dir).expect("project dir");
            std::fs::write(dir.join("README.md"), "# A project\n\nIt does things.\n")
                .expect("README");
            agents.push_str(&format!(
                "  {}:\n    directory: {}\n    backend: {}\n    description: A {} agent for the benchmark\n",
                cli.agent(),
                dir.display(),
                cli.backend,
                cli.backend
            ));
        }
        let config = root.join("agents.yaml");
        std::fs::write(
            &config,
            format!(
                "settings:\n  max_concurrency: 10\n  cache:\n    enabled: false\nagents:\n{agents}"
            ),
        )
        .expect("backends config");
        Setup {
            root,
            bin_dir,
            config,
            world_path: w.env.path_var(),
        }
    }

    /// The environment the server and the bare spawns share: the fakes first on `PATH`, each
    /// fake's step, and its log at `log` (the capture) or off (the measured runs: no log, no
    /// stdin probe).
    fn apply(&self, c: &mut Command, log: Option<&Path>) {
        let rest = std::env::var("PATH").unwrap_or_default();
        c.env(
            "PATH",
            format!("{}:{}:{rest}", self.bin_dir.display(), self.world_path),
        )
        .env("GEMINI_API_KEY", "bench-key");
        let step = json!({"result": ANSWER}).to_string();
        for cli in &CLIS {
            c.env(cli.step_var, &step);
            match log {
                Some(dir) => c.env(cli.log_var, dir.join(format!("{}.jsonl", cli.backend))),
                None => c.env(cli.log_var, "off"),
            };
        }
    }

    fn start(&self, w: &World, log: Option<&Path>) -> Client {
        let mut cmd = w.serve_cmd(&self.config, None);
        self.apply(&mut cmd, log);
        let mut c = Client::spawn(cmd);
        c.initialize();
        c
    }

    /// One dispatch to each agent with the fakes' logs on; returns what each fake was run with.
    fn capture(&self, w: &World) -> Vec<Recorded> {
        let logs = self.root.join("capture");
        let _ = std::fs::remove_dir_all(&logs);
        std::fs::create_dir_all(&logs).expect("capture dir");
        let mut c = self.start(w, Some(&logs));
        for cli in &CLIS {
            dispatch_once(&mut c, cli);
        }
        c.close();
        CLIS.iter()
            .map(|cli| {
                let path = logs.join(format!("{}.jsonl", cli.backend));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let runs: Vec<Json> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                assert_eq!(
                    runs.len(),
                    1,
                    "{}: one run expected: {text:.300}",
                    cli.backend
                );
                let argv = runs[0]["argv"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{}: no argv logged: {text:.300}", cli.backend))
                    .iter()
                    .map(|a| a.as_str().expect("argv strings").to_string())
                    .collect();
                let cwd = runs[0]["cwd"].as_str().expect("cwd logged").into();
                Recorded {
                    program: self.bin_dir.join(cli.backend),
                    argv,
                    cwd,
                    gemini: cli.backend == "gemini",
                }
            })
            .collect()
    }
}

/// How the server ran one backend's fake, to be replayed bare.
struct Recorded {
    program: PathBuf,
    argv: Vec<String>,
    cwd: PathBuf,
    /// The gemini backend also sets `GEMINI_CLI_NO_RELAUNCH` (`src/backend/gemini.rs`).
    gemini: bool,
}

impl Recorded {
    /// The recorded run, bare: the same argv (a fresh `--session-id`, as the server chooses one
    /// per run), cwd, environment and `/dev/null` stdin.
    fn bare(&self, w: &World, setup: &Setup) -> Command {
        let mut c = Command::new(&self.program);
        w.env.apply(&mut c);
        setup.apply(&mut c, None);
        let mut argv = self.argv.clone();
        if let Some(i) = argv.iter().position(|a| a == "--session-id")
            && i + 1 < argv.len()
        {
            argv[i + 1] = uuid::Uuid::new_v4().to_string();
        }
        c.args(argv)
            .current_dir(&self.cwd)
            .env("AGENT_DISPATCH_DEPTH", "1")
            .stdin(Stdio::null());
        if self.gemini {
            c.env("GEMINI_CLI_NO_RELAUNCH", "true");
        }
        c
    }
}

fn bare_once(cmd: &mut Command) -> f64 {
    let t0 = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let t = ms(t0.elapsed());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A fake that stopped early (a refused flag, a missing key) would flatter the baseline.
    assert!(
        out.status.success() && stdout.contains(ANSWER),
        "bare {cmd:?}: {}\n{stdout:.300}",
        String::from_utf8_lossy(&out.stderr)
    );
    t
}

fn dispatch_once(c: &mut Client, cli: &Cli) -> f64 {
    let t0 = Instant::now();
    let r = c.call(
        "dispatch",
        json!({"agent": cli.agent(), "task": world::TASK}),
        CALL_DEADLINE,
    );
    if let Some(e) = r.error() {
        panic!("{}: dispatch failed: {e}", cli.backend);
    }
    assert!(
        r.doc["success"] == true && r.doc["result"].as_str() == Some(ANSWER),
        "{}: {:.300}",
        cli.backend,
        r.doc.to_string()
    );
    ms(r.at - t0)
}

/// The `q` quantile (0..=1) by the nearest rank.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn labels(backend: &str) -> [(String, Better); 4] {
    [
        (
            format!("{backend}: bare spawn of fake-{backend}"),
            Better::Neither,
        ),
        (
            format!("{backend}: MCP `dispatch` round trip"),
            Better::Lower,
        ),
        (
            format!("{backend}: dispatch overhead (difference)"),
            Better::Lower,
        ),
        (
            format!("{backend}: bare spawn, middle half's width (p75 − p25)"),
            Better::Neither,
        ),
    ]
}

pub fn backend_overhead(w: &World, s: &Sizes) -> Vec<Row> {
    if w.server != Server::Ours {
        return CLIS
            .iter()
            .flat_map(|cli| labels(cli.backend))
            .map(|(l, b)| row(l, Value::Na("no `backend` setting".into()), b))
            .collect();
    }
    let setup = Setup::new(w);
    let recorded = setup.capture(w);
    let mut c = setup.start(w, None);
    let mut bare = vec![Vec::new(); CLIS.len()];
    let mut mcp = vec![Vec::new(); CLIS.len()];
    for round in 0..WARM_UP + s.overhead_runs {
        for (k, (cli, rec)) in CLIS.iter().zip(&recorded).enumerate() {
            // Which side goes first alternates, so neither always follows the other's child.
            let (b, m) = if (round + k) % 2 == 0 {
                let b = bare_once(&mut rec.bare(w, &setup));
                (b, dispatch_once(&mut c, cli))
            } else {
                let m = dispatch_once(&mut c, cli);
                (bare_once(&mut rec.bare(w, &setup)), m)
            };
            if round >= WARM_UP {
                bare[k].push(b);
                mcp[k].push(m);
            }
        }
    }
    c.close();
    let mut rows = Vec::new();
    for (k, cli) in CLIS.iter().enumerate() {
        let (b, m) = (median(bare[k].clone()), median(mcp[k].clone()));
        let spread = quantile(&bare[k], 0.75) - quantile(&bare[k], 0.25);
        let values = [b, m, m - b, spread];
        for ((label, better), v) in labels(cli.backend).into_iter().zip(values) {
            rows.push(row(label, Value::Num(v, Unit::Ms), better));
        }
    }
    rows
}
