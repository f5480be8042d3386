//! The `remote` figure: what running an agent over ssh costs, against a real OpenSSH server on
//! 127.0.0.1 (`tests/all/util/sshd.rs`). Both agents run the compiled stand-in claude
//! (`settings.backends.claude.command`, the same binary here and "there"), so the figures are
//! ours and ssh's, not Python's start-up. Each run starts a server on a fresh config directory, so its first remote dispatch
//! opens a new connection (and the ControlMaster); the next one reuses it. A config whose
//! `ssh_command` says `-o ControlPath=none` shows a later dispatch without connection sharing.
//! Loopback has no network latency: on a real link the handshake's round trips cost more.

use std::path::Path;
use std::time::Instant;

use serde_json::json;

use crate::client::Reply;
use crate::stats::{Unit, Value, median, ms};
use crate::util::sshd::{SSHD, Sshd};
use crate::workloads::{Better, Row};
use crate::world::{self, Server, Sizes, World};

const LABELS: [(&str, Better); 6] = [
    ("local dispatch of the stand-in claude", Better::Neither),
    (
        "bare `ssh 127.0.0.1 true` over a ControlMaster (sshd session + login shell)",
        Better::Neither,
    ),
    (
        "remote dispatch, first (ssh handshake + ControlMaster)",
        Better::Lower,
    ),
    (
        "remote dispatch, later (over the ControlMaster)",
        Better::Lower,
    ),
    ("remote dispatch, later, ControlPath=none", Better::Neither),
    ("ControlMaster saving per later dispatch", Better::Higher),
];

fn rows(values: Vec<Value>) -> Vec<Row> {
    LABELS
        .iter()
        .zip(values)
        .map(|((label, better), value)| Row {
            label: label.to_string(),
            value,
            better: *better,
        })
        .collect()
}

fn ok(r: &Reply, what: &str) {
    assert!(
        r.error().is_none() && r.doc["success"] == true,
        "{what}: {:.400}",
        r.doc.to_string()
    );
}

pub fn remote_dispatch(w: &World, s: &Sizes) -> Vec<Row> {
    let na = |why: &str| rows(vec![Value::Na(why.to_string()); LABELS.len()]);
    if w.server != Server::Ours {
        return na("no remote agents in this server");
    }
    if !Path::new(SSHD).exists() {
        return na("no /usr/sbin/sshd on this machine (apt-get install openssh-server)");
    }
    let root = w.env.root.join("remote-bench");
    let sshd = Sshd::start(&root, &[], "");
    let claude = crate::scale::stand_in();
    let project = w.env.root.join("projects").join(world::QUICK);
    let config = |dir: &Path, extra: &str| {
        std::fs::create_dir_all(dir).expect("config dir");
        let path = dir.join("agents.yaml");
        std::fs::write(
            &path,
            format!(
                "settings:\n  cache:\n    enabled: false\n  backends:\n    claude:\n      command: {}\n  ssh_command: {}{extra}\nagents:\n  local:\n    directory: {p}\n  far:\n    directory: {p}\n    host: 127.0.0.1\n",
                claude.display(),
                sshd.ssh_command(),
                p = project.display()
            ),
        )
        .expect("config");
        path
    };
    let call = |c: &mut crate::client::Client, agent: &str| {
        let t0 = Instant::now();
        let r = c.call(
            "dispatch",
            json!({"agent": agent, "task": world::TASK}),
            std::time::Duration::from_secs(60),
        );
        ok(&r, agent);
        ms(r.at - t0)
    };
    // The floor any remote command pays on this host: a session over an open master.
    let mux_dir = std::env::temp_dir().join(format!("ad-bench-{}", std::process::id()));
    std::fs::create_dir_all(&mux_dir).expect("mux dir");
    let bare_ssh = || {
        let words = sshd.ssh_command();
        let mut words = words.split_whitespace();
        let mut cmd = std::process::Command::new(words.next().expect("ssh"));
        cmd.args(words)
            .args(["-o", "BatchMode=yes", "-T", "-o", "ControlMaster=auto"])
            .arg(format!("-oControlPath={}/%C", mux_dir.display()))
            .args(["-o", "ControlPersist=10", "127.0.0.1", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let t0 = Instant::now();
        let st = cmd.status().expect("ssh");
        assert!(st.success(), "bare ssh failed");
        ms(t0.elapsed())
    };
    bare_ssh();
    let mut bare = vec![];
    let (mut local, mut first, mut later, mut unshared) = (vec![], vec![], vec![], vec![]);
    let no_mux = config(&root.join("no-mux"), " -o ControlPath=none");
    for i in 0..s.overhead_runs + 1 {
        let mut c = w.start_with(&config(&root.join(format!("run-{i}")), ""), None);
        let f = call(&mut c, "far");
        let l = call(&mut c, "far");
        let here = call(&mut c, "local");
        c.close();
        let mut c = w.start_with(&no_mux, None);
        let u = call(&mut c, "far");
        c.close();
        let b = bare_ssh();
        // Run 0 warms the page cache.
        if i > 0 {
            bare.push(b);
            first.push(f);
            later.push(l);
            local.push(here);
            unshared.push(u);
        }
    }
    drop(sshd);
    let _ = std::fs::remove_dir_all(&mux_dir);
    // Control sockets outside our root (its paths are too long for sockets).
    for i in 0..s.overhead_runs + 1 {
        let config = root.join(format!("run-{i}")).join("agents.yaml");
        for dir in [config, no_mux.clone()] {
            let dir = agent_dispatch::remote::control_dir(&dir);
            if let Some(sockets) = agent_dispatch::remote::usable_control_dir(&dir)
                && !sockets.starts_with(&root)
            {
                let _ = std::fs::remove_dir_all(sockets);
            }
        }
    }
    let (later, unshared) = (median(later), median(unshared));
    rows(vec![
        Value::Num(median(local), Unit::Ms),
        Value::Num(median(bare), Unit::Ms),
        Value::Num(median(first), Unit::Ms),
        Value::Num(later, Unit::Ms),
        Value::Num(unshared, Unit::Ms),
        Value::Num(unshared - later, Unit::Ms),
    ])
}
