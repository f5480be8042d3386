//! Figures where our own cost is the point, so the child must cost almost nothing: `dispatch`
//! and `agent-dispatch test` over a bare spawn of a compiled stand-in for `claude`
//! (`benches/stand-in/claude.rs`, built here with `rustc -O`), and `list_agents`, each with
//! `Sizes::agents` and with `Sizes::scale_agents` agents configured. Both configs list the same
//! projects, and the dispatched agent is the last entry of each, so any per-agent work a call
//! does shows up as the difference between the two.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::json;

use crate::client::Client;
use crate::stats::{Unit, Value, median, ms};
use crate::sys;
use crate::workloads::{Better, Row};
use crate::world::{self, Sizes, World};

/// The agent every dispatch of these figures goes to: the last one in each config.
const TARGET: &str = "target";

/// Unmeasured rounds before the counted ones (page cache, first-use allocations, lazy imports).
const WARM_UP: usize = 3;

/// The compiled stand-in, built once per bench process; rebuilt when its source is newer.
pub(crate) fn stand_in() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_stand_in)
}

fn build_stand_in() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = manifest.join("benches").join("stand-in").join("claude.rs");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), PathBuf::from);
    let dir = target.join("bench-stand-in");
    let exe = dir.join("claude");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(src), Some(bin)) = (modified(&source), modified(&exe))
        && bin >= src
    {
        return exe;
    }
    std::fs::create_dir_all(&dir).expect("stand-in dir");
    // Built under a private name and renamed into place: two bench processes (a smoke run
    // beside `make bench`) never see a half-written binary.
    let partial = dir.join(format!("claude.{}.partial", std::process::id()));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["-O", "--edition", "2021", "--crate-name", "claude"])
        .arg(&source)
        .arg("-o")
        .arg(&partial)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {rustc:?} for the stand-in claude: {e}"));
    assert!(
        out.status.success(),
        "building the stand-in claude failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &exe).expect("install the stand-in claude");
    exe
}

/// The projects, the two configs, and a `PATH` whose `claude` is the stand-in, inside `w`'s
/// throw-away root.
struct Scale {
    bin_dir: PathBuf,
    small: PathBuf,
    large: PathBuf,
    target_dir: PathBuf,
    /// The world's own `PATH` (its fake claude first, then the system directories).
    world_path: String,
}

impl Scale {
    fn new(w: &World, s: &Sizes) -> Scale {
        let root = w.env.root.join("scale");
        let bin_dir = root.join("bin");
        std::fs::create_dir_all(&bin_dir).expect("scale bin dir");
        let link = bin_dir.join("claude");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(stand_in(), &link).expect("link the stand-in as claude");
        let rules: String = (1..=60)
            .map(|l| format!("Rule {l}: keep it small.\n"))
            .collect();
        let project = |name: &str| {
            let dir = root.join("projects").join(name);
            std::fs::create_dir_all(&dir).expect("project dir");
            std::fs::write(dir.join("CLAUDE.md"), &rules).expect("CLAUDE.md");
            std::fs::write(dir.join("README.md"), "# A project\n\nIt does things.\n")
                .expect("README");
            std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"p\"\n").expect("Cargo");
            format!(
                "  {name}:\n    directory: {}\n    description: Agent {name} for the benchmark\n",
                dir.display()
            )
        };
        let target_entry = project(TARGET);
        let others: Vec<String> = (1..s.scale_agents.max(s.agents))
            .map(|i| project(&format!("agent{i:03}")))
            .collect();
        let write = |name: &str, n: usize| {
            let path = root.join(name);
            let agents: String = others[..n - 1].concat();
            std::fs::write(
                &path,
                format!(
                    "settings:\n  max_concurrency: 10\n  cache:\n    enabled: false\nagents:\n{agents}{target_entry}"
                ),
            )
            .expect("scale config");
            path
        };
        Scale {
            small: write("agents-small.yaml", s.agents),
            large: write("agents-large.yaml", s.scale_agents),
            target_dir: root.join("projects").join(TARGET),
            bin_dir,
            world_path: w.env.path_var(),
        }
    }

    /// `PATH` with the stand-in first and the world's own `PATH` after it.
    fn path_var(&self) -> String {
        let w_path = &self.world_path;
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{}:{rest}", self.bin_dir.display(), w_path)
    }

    fn start(&self, w: &World, config: &Path) -> Client {
        let mut cmd = w.serve_cmd(config, None);
        cmd.env("PATH", self.path_var());
        let mut c = Client::spawn(cmd);
        c.initialize();
        c
    }

    /// What a dispatch to `TARGET` runs, without any server.
    fn bare(&self, w: &World) -> Command {
        let mut c = Command::new(stand_in());
        w.env.apply(&mut c);
        c.env("PATH", self.path_var())
            .env("AGENT_DISPATCH_DEPTH", "1")
            .args(["-p", world::TASK, "--output-format", "json", "--session-id"])
            .arg(uuid::Uuid::new_v4().to_string())
            .current_dir(&self.target_dir)
            .stdin(Stdio::null());
        c
    }

    /// `agent-dispatch test TARGET TASK` with `config`.
    fn cli_test(&self, w: &World, config: &Path) -> Command {
        let mut c = w.cli();
        c.env("PATH", self.path_var())
            .env("AGENT_DISPATCH_CONFIG", config)
            .args(["test", TARGET, world::TASK]);
        c
    }
}

/// Wall time of one run of `cmd` to completion, and the CPU it and its descendants used.
fn timed(cmd: &mut Command) -> (f64, f64) {
    let cpu0 = sys::children_cpu_ms();
    let t0 = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let t = ms(t0.elapsed());
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (t, sys::children_cpu_ms() - cpu0)
}

fn dispatch_once(c: &mut Client, server: &str) -> f64 {
    let t0 = Instant::now();
    let r = c.call(
        "dispatch",
        json!({"agent": TARGET, "task": world::TASK}),
        std::time::Duration::from_secs(60),
    );
    if let Some(e) = r.error() {
        panic!("{server}: dispatch failed: {e}");
    }
    assert_eq!(
        r.doc["success"],
        true,
        "{server}: {:.300}",
        r.doc.to_string()
    );
    ms(r.at - t0)
}

/// Runs the three measurements of one round in an order that rotates with the round, so
/// neither side always runs first after the other's spawn.
fn rotated(round: usize, steps: [&mut dyn FnMut(); 3]) {
    for k in 0..3 {
        (steps[(round + k) % 3])();
    }
}

/// Wall-time medians of one baseline and one command at two config sizes, and the differences.
struct Samples {
    bare: Vec<f64>,
    small: Vec<f64>,
    large: Vec<f64>,
}

impl Samples {
    fn new() -> Samples {
        Samples {
            bare: Vec::new(),
            small: Vec::new(),
            large: Vec::new(),
        }
    }

    fn rows(self, what: &str, s: &Sizes) -> Vec<Row> {
        let (b, m, l) = (median(self.bare), median(self.small), median(self.large));
        let (n, big) = (s.agents, s.scale_agents);
        vec![
            fine("bare spawn of the compiled stand-in", b, Better::Neither),
            fine(format!("{what}, {n} agents"), m, Better::Lower),
            fine(format!("{what}, {big} agents"), l, Better::Lower),
            fine(
                format!("overhead, {n} agents (difference)"),
                m - b,
                Better::Lower,
            ),
            fine(
                format!("overhead, {big} agents (difference)"),
                l - b,
                Better::Lower,
            ),
            fine(
                format!("overhead, {big} agents minus {n} agents"),
                l - m,
                Better::Lower,
            ),
        ]
    }
}

fn fine(label: impl Into<String>, v: f64, better: Better) -> Row {
    Row {
        label: label.into(),
        value: Value::Num(v, Unit::MsFine),
        better,
    }
}

/// CPU a server used between two readings of `sys::cpu_ms`, per call: its own threads, and
/// the children it reaped (a child's time includes what ran in it between fork and exec).
fn per_call(before: (f64, f64), after: (f64, f64), calls: usize) -> (f64, f64) {
    let n = calls.max(1) as f64;
    ((after.0 - before.0) / n, (after.1 - before.1) / n)
}

fn cpu_of(c: &Client) -> (f64, f64) {
    sys::cpu_ms(c.pid()).unwrap_or((f64::NAN, f64::NAN))
}

pub fn dispatch_compiled(w: &World, s: &Sizes) -> Vec<Row> {
    let scale = Scale::new(w, s);
    let mut small = scale.start(w, &scale.small);
    let mut large = scale.start(w, &scale.large);
    let id = w.server.id();
    let mut wall = Samples::new();
    let mut bare_cpu = 0.0;
    let (mut small_cpu, mut large_cpu) = ((0.0, 0.0), (0.0, 0.0));
    for i in 0..WARM_UP + s.scale_runs {
        if i == WARM_UP {
            (small_cpu, large_cpu) = (cpu_of(&small), cpu_of(&large));
        }
        let (mut b, mut m, mut l) = ((0.0, 0.0), 0.0, 0.0);
        rotated(
            i,
            [
                &mut || b = timed(&mut scale.bare(w)),
                &mut || m = dispatch_once(&mut small, &id),
                &mut || l = dispatch_once(&mut large, &id),
            ],
        );
        if i >= WARM_UP {
            wall.bare.push(b.0);
            bare_cpu += b.1;
            wall.small.push(m);
            wall.large.push(l);
        }
    }
    let small_cpu = per_call(small_cpu, cpu_of(&small), s.scale_runs);
    let large_cpu = per_call(large_cpu, cpu_of(&large), s.scale_runs);
    small.close();
    large.close();
    let (n, big) = (s.agents, s.scale_agents);
    let mut rows = wall.rows("MCP `dispatch` round trip", s);
    rows.extend([
        fine(
            format!("server CPU per `dispatch`, {n} agents (its own threads)"),
            small_cpu.0,
            Better::Lower,
        ),
        fine(
            format!("server CPU per `dispatch`, {big} agents (its own threads)"),
            large_cpu.0,
            Better::Lower,
        ),
        fine(
            "CPU of one stand-in run, spawned bare",
            bare_cpu / s.scale_runs.max(1) as f64,
            Better::Neither,
        ),
        fine(
            format!("CPU of one stand-in run, spawned by the server ({n} agents)"),
            small_cpu.1,
            Better::Lower,
        ),
    ]);
    rows
}

pub fn cli_test_compiled(w: &World, s: &Sizes) -> Vec<Row> {
    let scale = Scale::new(w, s);
    let mut wall = Samples::new();
    let mut cpu = [0.0; 3];
    for i in 0..WARM_UP + s.scale_cli_runs {
        let (mut b, mut m, mut l) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
        rotated(
            i,
            [
                &mut || b = timed(&mut scale.bare(w)),
                &mut || m = timed(&mut scale.cli_test(w, &scale.small)),
                &mut || l = timed(&mut scale.cli_test(w, &scale.large)),
            ],
        );
        if i >= WARM_UP {
            wall.bare.push(b.0);
            wall.small.push(m.0);
            wall.large.push(l.0);
            for (sum, run) in cpu.iter_mut().zip([b, m, l]) {
                *sum += run.1;
            }
        }
    }
    let runs = s.scale_cli_runs.max(1) as f64;
    let (n, big) = (s.agents, s.scale_agents);
    let mut rows = wall.rows("`agent-dispatch test`", s);
    rows.extend([
        fine(
            "CPU per run: bare spawn of the stand-in",
            cpu[0] / runs,
            Better::Neither,
        ),
        fine(
            format!("CPU per run: `agent-dispatch test` with its child, {n} agents"),
            cpu[1] / runs,
            Better::Lower,
        ),
        fine(
            format!("CPU per run: `agent-dispatch test` with its child, {big} agents"),
            cpu[2] / runs,
            Better::Lower,
        ),
    ]);
    rows
}

pub fn list_agents_scale(w: &World, s: &Sizes) -> Vec<Row> {
    let scale = Scale::new(w, s);
    let mut small = scale.start(w, &scale.small);
    let mut large = scale.start(w, &scale.large);
    let (mut t_small, mut t_large) = (Vec::new(), Vec::new());
    let list = |c: &mut Client, want: usize| {
        let t0 = Instant::now();
        let r = c.call("list_agents", json!({}), std::time::Duration::from_secs(60));
        let n = r.doc.as_array().map_or(0, Vec::len);
        assert_eq!(n, want, "list_agents: {:.300}", r.doc.to_string());
        ms(r.at - t0)
    };
    let (mut small_cpu, mut large_cpu) = ((0.0, 0.0), (0.0, 0.0));
    for i in 0..WARM_UP + s.scale_runs {
        if i == WARM_UP {
            (small_cpu, large_cpu) = (cpu_of(&small), cpu_of(&large));
        }
        let (a, b) = if i % 2 == 0 {
            let a = list(&mut small, s.agents);
            (a, list(&mut large, s.scale_agents))
        } else {
            let b = list(&mut large, s.scale_agents);
            (list(&mut small, s.agents), b)
        };
        if i >= WARM_UP {
            t_small.push(a);
            t_large.push(b);
        }
    }
    let small_cpu = per_call(small_cpu, cpu_of(&small), s.scale_runs);
    let large_cpu = per_call(large_cpu, cpu_of(&large), s.scale_runs);
    small.close();
    large.close();
    let (a, b) = (median(t_small), median(t_large));
    let (n, big) = (s.agents, s.scale_agents);
    vec![
        fine(format!("`list_agents`, {n} agents"), a, Better::Lower),
        fine(format!("`list_agents`, {big} agents"), b, Better::Lower),
        Row {
            label: format!("{big} agents ÷ {n} agents"),
            value: Value::Num(b / a, Unit::Factor),
            better: Better::Neither,
        },
        Row {
            label: format!("each agent beyond {n} (difference ÷ {})", big - n),
            value: Value::Num((b - a) / (big - n).max(1) as f64 * 1000.0, Unit::Us),
            better: Better::Lower,
        },
        fine(
            format!("server CPU per `list_agents`, {n} agents"),
            small_cpu.0,
            Better::Lower,
        ),
        fine(
            format!("server CPU per `list_agents`, {big} agents"),
            large_cpu.0,
            Better::Lower,
        ),
    ]
}
