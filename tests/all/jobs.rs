//! Integration tests of the job store, worker and job CLI with real child processes: the fake
//! claude as the job's child, this test binary re-executed as a second "server" process, and
//! the `agent-dispatch` CLI hammering the same directory.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::util::{TestEnv, pid_alive, run};
use agent_dispatch::cancel::Cancel;
use agent_dispatch::claude::Hooks;
use agent_dispatch::gate::MachineGate;
use agent_dispatch::jobs::{CancelOutcome, Job, JobStore, NewJob, Status, run_job};
use agent_dispatch::limiter::{Limiter, Permit};
use agent_dispatch::result::{DispatchResult, ErrorType};
use serde_json::{Value, json};

fn new_job(agent: &str, task: &str) -> NewJob {
    NewJob {
        agent: agent.into(),
        ask: agent_dispatch::ask::Ask::task(task),
        ..NewJob::default()
    }
}

/// The fake claude in stream mode as a test's "runner": own process group, progress from its
/// assistant texts, and a SIGKILL to the whole group when the job's cancel trips.
fn fake_dispatch(
    mut cmd: Command,
    step: Value,
) -> impl FnOnce(&Permit, Hooks<'_>) -> DispatchResult {
    move |_: &Permit, mut hooks: Hooks<'_>| {
        cmd.args(["-p", "task", "--output-format", "stream-json", "--verbose"])
            .env("FAKE_CLAUDE_STEP", step.to_string())
            // As `process::Supervised` does: a kill from a job record needs the marker.
            .env(
                agent_dispatch::process::marker::MARKER_VAR,
                agent_dispatch::process::marker::new_token(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().expect("spawn fake claude");
        let pid = child.id();
        if let Some(f) = hooks.on_spawn.as_mut() {
            f(pid);
        }
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<String>();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let cancel = hooks.cancel.cloned().unwrap_or_default();
        let mut result = None;
        let mut killed = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => {
                    let ev: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if ev["type"] == "assistant" {
                        for block in ev["message"]["content"].as_array().into_iter().flatten() {
                            if let (Some(text), Some(f)) =
                                (block["text"].as_str(), hooks.on_progress.as_mut())
                            {
                                f(text);
                            }
                        }
                    } else if ev["type"] == "result" {
                        result = ev["result"].as_str().map(str::to_string);
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            }
            if cancel.is_tripped() && !killed {
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                killed = true;
            }
        }
        let _ = child.wait();
        let _ = reader.join();
        if killed {
            return DispatchResult::failure("fake", ErrorType::Cancelled, "cancelled");
        }
        DispatchResult {
            agent: "fake".into(),
            success: true,
            result: result.unwrap_or_default(),
            ..Default::default()
        }
    }
}

fn claude_cmd(env: &TestEnv) -> Command {
    let mut c = Command::new(env.bin_dir.join("claude"));
    env.apply(&mut c);
    c
}

fn cli(env: &TestEnv, dir: &Path, args: &[&str]) -> crate::util::Out {
    run(env.cmd().env("AGENT_DISPATCH_JOBS_DIR", dir).args(args))
}

fn wait_for(what: &str, timeout: Duration, ok: impl FnMut() -> bool) {
    assert!(
        crate::util::wait_until(timeout, ok),
        "timed out waiting for {what}"
    );
}

fn job(store: &JobStore, id: &str) -> Job {
    store.get(id).unwrap().unwrap()
}

#[test]
fn status_shows_progress_while_the_child_runs_and_wait_wakes_at_once() {
    let env = TestEnv::new("jobs-progress");
    let dir = env.root.join("jobs");
    let store = JobStore::open(&dir).unwrap();
    let (created, owner) = store.create(new_job("web", "look around")).unwrap();
    let id = created.id.clone();
    let step =
        json!({"progress": ["alpha", "beta"], "delay": 0.05, "sleep": 1.6, "result": "all done"});
    thread::scope(|s| {
        let worker = s.spawn(|| {
            run_job(
                owner,
                &Limiter::new(2),
                &MachineGate::off(),
                &Cancel::new(),
                fake_dispatch(claude_cmd(&env), step),
            )
        });
        // Both lines while the child is still alive: "alpha" at once, "beta" within ~1 s.
        wait_for("progress", Duration::from_secs(5), || {
            job(&store, &id)
                .progress
                .is_some_and(|p| p == ["alpha", "beta"])
        });
        let running = job(&store, &id);
        assert_eq!(running.status, Status::Running);
        let pgid = running.child_pgid.expect("child recorded");
        assert!(
            pid_alive(i64::from(pgid)),
            "progress must show before the child exits"
        );
        let status = cli(&env, &dir, &["job", &id]);
        assert_eq!(status.code, 0, "{}", status.stderr);
        assert!(
            status.stdout.contains("status:    running"),
            "{}",
            status.stdout
        );
        assert!(status.stdout.contains("    beta\n"), "{}", status.stdout);

        let finished = store.wait(&id, Duration::from_secs(10)).unwrap().unwrap();
        let woke = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert_eq!(finished.status, Status::Done);
        let lag = woke - finished.completed_at.unwrap();
        assert!(lag < 0.05, "wait returned {lag:.3}s after the job finished");
        assert_eq!(finished.result.unwrap().result, "all done");
        // The answer comes last as an assistant text, as the real CLI prints it.
        assert_eq!(finished.progress.unwrap(), ["alpha", "beta", "all done"]);
        worker.join().unwrap().unwrap();
    });
    assert!(!store.owned(&id).unwrap());
}

#[test]
fn cli_cancels_a_pending_and_a_running_job_leaving_no_child() {
    let env = TestEnv::new("jobs-cancel");
    let dir = env.root.join("jobs");
    let store = JobStore::open(&dir).unwrap();
    let limiter = Limiter::new(1);
    let (running, owner1) = store.create(new_job("web", "hang")).unwrap();
    let (queued, owner2) = store.create(new_job("web", "queued")).unwrap();
    let step = json!({"progress": ["started"], "grandchild": true, "hang": true});
    thread::scope(|s| {
        let step2 = step.clone();
        let w1 = s.spawn(|| {
            run_job(
                owner1,
                &limiter,
                &MachineGate::off(),
                &Cancel::new(),
                fake_dispatch(claude_cmd(&env), step),
            )
        });
        wait_for("child", Duration::from_secs(5), || {
            job(&store, &running.id).child_pgid.is_some()
        });
        let w2 = s.spawn(|| {
            run_job(
                owner2,
                &limiter,
                &MachineGate::off(),
                &Cancel::new(),
                fake_dispatch(claude_cmd(&env), step2),
            )
        });
        // Queued behind the only permit.
        thread::sleep(Duration::from_millis(100));
        assert_eq!(job(&store, &queued.id).status, Status::Pending);
        let out = cli(&env, &dir, &["cancel", &queued.id]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout,
            format!("Cancelled pending job {}.\n", queued.id)
        );
        assert_eq!(
            w2.join().unwrap().unwrap().unwrap().status,
            Status::Cancelled
        );

        wait_for("fake log", Duration::from_secs(5), || {
            env.claude_runs()
                .first()
                .is_some_and(|r| r.get("grandchild_pid").is_some())
        });
        let runs = env.claude_runs();
        let child = runs[0]["pid"].as_i64().unwrap();
        let grandchild = runs[0]["grandchild_pid"].as_i64().unwrap();
        assert!(pid_alive(child) && pid_alive(grandchild));
        let out = cli(&env, &dir, &["cancel", &running.id]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout,
            format!(
                "Cancelled running job {}; its process has stopped.\n",
                running.id
            )
        );
        let j = w1.join().unwrap().unwrap().unwrap();
        assert_eq!(j.status, Status::Cancelled);
        assert_eq!(j.error.as_deref(), Some("Cancelled while running"));
        wait_for("group gone", Duration::from_secs(2), || {
            !pid_alive(child) && !pid_alive(grandchild)
        });
        let again = cli(&env, &dir, &["cancel", &running.id]);
        assert_eq!(
            again.stdout,
            format!(
                "Job {} is already cancelled; nothing to cancel.\n",
                running.id
            )
        );
    });
    assert_eq!(
        env.claude_runs().len(),
        1,
        "the cancelled pending job never started"
    );
}

#[test]
fn invalid_ids_and_gc_limits_at_the_cli() {
    let env = TestEnv::new("jobs-cli-refusals");
    let dir = env.root.join("jobs");
    for args in [
        &["job", "../x"][..],
        &["cancel", "ABCDEF0123456789ABCDEF0123456789"],
    ] {
        let out = cli(&env, &dir, args);
        assert_eq!(out.code, 2);
        assert!(
            out.stderr.contains("Invalid ref/job_id format"),
            "{}",
            out.stderr
        );
    }
    assert!(
        !dir.exists(),
        "a refused id must not even create the directory"
    );
    let out = cli(&env, &dir, &["gc", "--days", "0"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--all"), "{}", out.stderr);

    let store = JobStore::open(&dir).unwrap();
    let done = store
        .create_completed(
            "a",
            &agent_dispatch::ask::Ask::task("t"),
            &DispatchResult::default(),
        )
        .unwrap();
    let (pending, _owner) = store.create(new_job("a", "wait")).unwrap();
    std::fs::write(dir.join("0123456789abcdef0123456789abcdef.json"), "{oops").unwrap();
    let out = cli(&env, &dir, &["jobs"]);
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains(&pending.id) && out.stdout.contains(&done.id));
    assert!(out.stderr.contains("skipped"), "{}", out.stderr);
    let out = cli(&env, &dir, &["gc", "--all"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "Purged 1 finished job.\n")
    );
    assert!(store.get(&pending.id).unwrap().is_some());
    let out = cli(&env, &dir, &["job", &done.id]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stderr, format!("Error: Job not found: {}\n", done.id));
}

/// Starts this test binary again as a helper "server" process running `role`.
fn helper(env: &TestEnv, role: &str, dir: &Path, extra: &[(&str, String)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    env.apply(&mut c);
    c.args([
        "jobs::helper_process_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("AD_JOBS_ROLE", role)
    .env("AD_JOBS_DIR", dir)
    .env("AD_JOBS_CLAUDE", env.bin_dir.join("claude"))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in extra {
        c.env(k, v);
    }
    c.spawn().unwrap()
}

/// What a helper printed after `prefix` on each line. Found anywhere in the line: libtest
/// prints `test helper_process_entry ... ` without a newline before the test's own output.
fn tagged(output: &str, prefix: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| l.find(prefix).map(|at| l[at + prefix.len()..].to_string()))
        .collect()
}

/// Kills a helper process when a test ends, passed or failed, so none outlives it.
/// Starts a helper process that creates and runs one job with a hanging child; returns the
/// helper, the job id and the child's process group once the child is recorded.
fn job_run_by_helper(env: &TestEnv, dir: &Path, store: &JobStore) -> (Reap, String, u32) {
    let mut owner = Reap(helper(env, "owner", dir, &[]));
    let mut lines = BufReader::new(owner.0.stdout.take().unwrap()).lines();
    let id = loop {
        let line = lines.next().expect("helper printed its job").unwrap();
        if let Some(id) = tagged(&line, "CREATED ").pop() {
            break id;
        }
    };
    wait_for("orphan child", Duration::from_secs(5), || {
        job(store, &id).child_pgid.is_some()
    });
    let child = job(store, &id).child_pgid.unwrap();
    (owner, id, child)
}

struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A hammer worker: creates `count` jobs and runs them all at once behind one limiter of 3;
/// each job reports 6 progress lines over ~60 ms and checks for a cancel in between.
fn hammer_role(dir: &Path, count: usize, tag: &str, out: &mut dyn Write) -> Vec<Job> {
    let store = JobStore::open(dir).unwrap();
    let limiter = Limiter::new(3);
    let shutdown = Cancel::new();
    let finals = Mutex::new(Vec::new());
    thread::scope(|s| {
        for i in 0..count {
            let (created, owner) = store
                .create(new_job(tag, &format!("{tag} job {i}")))
                .unwrap();
            writeln!(out, "CREATED {}", created.id).unwrap();
            let (limiter, shutdown, finals) = (&limiter, &shutdown, &finals);
            s.spawn(move || {
                let j = run_job(
                    owner,
                    limiter,
                    &MachineGate::off(),
                    shutdown,
                    |_, mut hooks| {
                        let cancel = hooks.cancel.cloned().unwrap_or_default();
                        for n in 0..6 {
                            if cancel.is_tripped() {
                                return DispatchResult::failure(tag, ErrorType::Cancelled, "stop");
                            }
                            (hooks.on_progress.as_mut().unwrap())(&format!("p{n}"));
                            thread::sleep(Duration::from_millis(10));
                        }
                        DispatchResult {
                            agent: tag.to_string(),
                            success: true,
                            result: format!("ok {i}"),
                            ..Default::default()
                        }
                    },
                )
                .unwrap()
                .unwrap();
                finals.lock().unwrap().push(j);
            });
        }
    });
    finals.into_inner().unwrap()
}

/// One owned job whose child hangs until killed; prints its id, then blocks.
fn owner_role(dir: &Path, claude: PathBuf, out: &mut dyn Write) {
    let store = JobStore::open(dir).unwrap();
    let (created, owner) = store.create(new_job("orphan", "hang")).unwrap();
    writeln!(out, "CREATED {}", created.id).unwrap();
    out.flush().unwrap();
    let step = json!({"progress": ["working"], "hang": true});
    let _ = run_job(
        owner,
        &Limiter::new(1),
        &MachineGate::off(),
        &Cancel::new(),
        fake_dispatch(Command::new(claude), step),
    );
}

/// Entry point of the helper processes the multi-process tests start (`AD_JOBS_ROLE` set).
/// Run as a plain test it exercises the hammer role in-process: every job ends `done` with
/// its whole progress tail and result.
#[test]
fn helper_process_entry() {
    let mut stdout = std::io::stdout();
    match std::env::var("AD_JOBS_ROLE").as_deref() {
        Ok("hammer") => {
            let dir = PathBuf::from(std::env::var("AD_JOBS_DIR").unwrap());
            let count = std::env::var("AD_JOBS_COUNT").unwrap().parse().unwrap();
            let tag = std::env::var("AD_JOBS_TAG").unwrap();
            for j in hammer_role(&dir, count, &tag, &mut stdout) {
                println!("FINAL {} {}", j.id, j.status);
            }
        }
        Ok("owner") => {
            let dir = PathBuf::from(std::env::var("AD_JOBS_DIR").unwrap());
            let claude = PathBuf::from(std::env::var("AD_JOBS_CLAUDE").unwrap());
            owner_role(&dir, claude, &mut stdout);
        }
        _ => {
            let env = TestEnv::new("jobs-hammer-role");
            let mut log = Vec::new();
            let finals = hammer_role(&env.root.join("jobs"), 5, "solo", &mut log);
            assert_eq!(finals.len(), 5);
            assert_eq!(
                tagged(&String::from_utf8(log).unwrap(), "CREATED ").len(),
                5
            );
            for j in finals {
                assert_eq!(j.status, Status::Done);
                assert_eq!(j.progress.unwrap(), ["p0", "p1", "p2", "p3", "p4", "p5"]);
                assert!(j.result.unwrap().result.starts_with("ok "));
            }
        }
    }
}

/// Tiny xorshift: random cancel targets without a rand dependency.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn two_processes_and_the_cli_hammer_one_directory() {
    const PER_HELPER: usize = 25;
    let env = TestEnv::new("jobs-hammer");
    let dir = env.root.join("jobs");
    let store = JobStore::open(&dir).unwrap();
    let helpers: Vec<Child> = (0..2)
        .map(|i| {
            let extra = [
                ("AD_JOBS_COUNT", PER_HELPER.to_string()),
                ("AD_JOBS_TAG", format!("h{i}")),
            ];
            helper(&env, "hammer", &dir, &extra)
        })
        .collect();
    let finished = AtomicBool::new(false);
    // Ids some canceller was told it cancelled: these must end `cancelled`, whatever the owner did.
    let cancelled = Mutex::new(HashSet::new());
    let outputs = thread::scope(|s| {
        for t in 0..3u64 {
            let (env, dir, store, finished, cancelled) =
                (&env, &dir, &store, &finished, &cancelled);
            s.spawn(move || {
                let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (t + 1).wrapping_mul(0x1234_5678_9ABC);
                while !finished.load(Ordering::SeqCst) {
                    let ids: Vec<String> = std::fs::read_dir(dir)
                        .unwrap()
                        .filter_map(|e| {
                            let name = e.ok()?.file_name().into_string().ok()?;
                            name.strip_suffix(".json").map(str::to_string)
                        })
                        .collect();
                    if !ids.is_empty() {
                        let id = &ids[(next(&mut seed) % ids.len() as u64) as usize];
                        let hit = if t < 2 {
                            let out = cli(env, dir, &["cancel", id]);
                            assert_eq!(out.code, 0, "{}", out.stderr);
                            out.stdout.starts_with("Cancelled ")
                        } else {
                            matches!(
                                store.cancel(id).unwrap(),
                                CancelOutcome::Cancelled | CancelOutcome::CancelledRunning
                            )
                        };
                        if hit {
                            cancelled.lock().unwrap().insert(id.clone());
                        }
                    }
                    thread::sleep(Duration::from_millis(40 + next(&mut seed) % 40));
                }
            });
        }
        s.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                let out = cli(&env, &dir, &["jobs", "--limit", "1000"]);
                assert_eq!(out.code, 0, "{}", out.stderr);
                assert_eq!(
                    out.stderr, "",
                    "a reader must never see a torn or foreign file"
                );
            }
        });
        let outputs: Vec<String> = helpers
            .into_iter()
            .map(|h| {
                let o = h.wait_with_output().unwrap();
                assert!(o.status.success(), "helper failed");
                String::from_utf8(o.stdout).unwrap()
            })
            .collect();
        finished.store(true, Ordering::SeqCst);
        outputs
    });

    let mut created = HashSet::new();
    let mut reported: HashMap<String, String> = HashMap::new();
    for out in &outputs {
        created.extend(tagged(out, "CREATED "));
        for line in tagged(out, "FINAL ") {
            let (id, status) = line.split_once(' ').unwrap();
            reported.insert(id.to_string(), status.to_string());
        }
    }
    assert_eq!(created.len(), 2 * PER_HELPER);
    assert_eq!(reported.len(), 2 * PER_HELPER);

    // Every file is a valid job, in exactly one terminal state, and agrees with its worker.
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name == ".store.lock" {
            continue;
        }
        let id = name
            .strip_suffix(".json")
            .unwrap_or_else(|| panic!("leftover file {name}"));
        let j: Job = serde_json::from_slice(&std::fs::read(dir.join(&name)).unwrap()).unwrap();
        files += 1;
        assert!(created.contains(id));
        assert_eq!(
            reported[id],
            j.status.as_str(),
            "worker and file disagree on {id}"
        );
        match j.status {
            Status::Done => {
                assert_eq!(
                    j.progress.unwrap(),
                    ["p0", "p1", "p2", "p3", "p4", "p5"],
                    "lost update"
                );
                assert!(j.result.unwrap().success);
            }
            Status::Cancelled => assert!(j.result.is_none(), "a finish overwrote a cancel"),
            other => panic!("job {id} ended {other}"),
        }
    }
    assert_eq!(files, 2 * PER_HELPER);
    let cancelled = cancelled.into_inner().unwrap();
    for id in &cancelled {
        assert_eq!(
            job(&store, id).status,
            Status::Cancelled,
            "cancel of {id} was lost"
        );
    }
    let listing = store.list(None).unwrap();
    assert!(listing.skipped.is_empty());
    assert!(listing.jobs.iter().any(|j| j.status == Status::Done));
    assert!(!cancelled.is_empty());
}

#[test]
fn a_killed_owner_is_recovered_and_a_live_owner_is_left_alone() {
    let env = TestEnv::new("jobs-recover");
    let dir = env.root.join("jobs");
    let store = JobStore::open(&dir).unwrap();
    let (mut owner_proc, orphan_id, orphan_child) = job_run_by_helper(&env, &dir, &store);

    // A job this process runs, with a hanging child of its own.
    let (live, live_owner) = store.create(new_job("live", "hang")).unwrap();
    let step = json!({"hang": true});
    thread::scope(|s| {
        let worker = s.spawn(|| {
            run_job(
                live_owner,
                &Limiter::new(1),
                &MachineGate::off(),
                &Cancel::new(),
                fake_dispatch(claude_cmd(&env), step),
            )
        });
        wait_for("live child", Duration::from_secs(5), || {
            job(&store, &live.id).child_pgid.is_some()
        });

        // Nothing is abandoned while both owners live.
        assert_eq!(
            JobStore::open(&dir).unwrap().recover_abandoned().unwrap(),
            0
        );

        owner_proc.0.kill().unwrap(); // SIGKILL: no cleanup runs in the owner
        owner_proc.0.wait().unwrap();
        assert!(
            pid_alive(i64::from(orphan_child)),
            "the child outlives its killed owner"
        );
        // A server starting now (a fresh store, as after a restart) fails it and kills the
        // child its dead owner left.
        let restarted = JobStore::open(&dir).unwrap();
        assert_eq!(restarted.recover_abandoned().unwrap(), 1);
        let j = job(&restarted, &orphan_id);
        assert_eq!(j.status, Status::Failed);
        let msg = j.error.unwrap();
        assert!(
            msg.contains("the agent-dispatch server that ran this job"),
            "{msg}"
        );
        assert!(msg.contains("exited before it finished"), "{msg}");
        wait_for("orphan killed", Duration::from_secs(2), || {
            !pid_alive(i64::from(orphan_child))
        });
        assert_eq!(job(&store, &live.id).status, Status::Running);

        assert_eq!(
            store.cancel(&live.id).unwrap(),
            CancelOutcome::CancelledRunning
        );
        assert!(
            store
                .wait_released(&live.id, Duration::from_secs(5))
                .unwrap()
        );
        let live_child = worker.join().unwrap().unwrap().unwrap().child_pgid.unwrap();
        assert!(!pid_alive(i64::from(live_child)));
    });
}

#[test]
fn any_reader_fails_a_job_whose_owner_was_killed() {
    let env = TestEnv::new("jobs-reader-recover");
    let dir = env.root.join("jobs");
    let store = JobStore::open(&dir).unwrap();
    let (mut owner_proc, orphan_id, orphan_child) = job_run_by_helper(&env, &dir, &store);
    owner_proc.0.kill().unwrap();
    owner_proc.0.wait().unwrap();
    // No server restarts: showing the job is enough to see it ended, and to stop its child.
    let shown = cli(&env, &dir, &["job", &orphan_id]);
    assert!(
        shown.stdout.contains("status:    failed"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("Abandoned in 'running'"),
        "{}",
        shown.stdout
    );
    wait_for("orphan killed", Duration::from_secs(2), || {
        !pid_alive(i64::from(orphan_child))
    });
    assert!(
        !dir.join(format!("{orphan_id}.lock")).exists(),
        "stale lock left"
    );
    let out = cli(&env, &dir, &["cancel", &orphan_id]);
    assert!(out.stdout.contains("already failed"), "{}", out.stdout);
    assert_eq!(
        JobStore::open(&dir).unwrap().recover_abandoned().unwrap(),
        0
    );
}
