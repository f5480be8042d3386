//! `Supervised`: one child process that cleans up after itself (SPEC §12 items 5–7, §13).
//!
//! The child runs in its own process group with stdin from /dev/null. Two named reader threads
//! drain stdout and stderr at the same time, so a child that fills one pipe never blocks on it
//! while we wait on the other. The supervising thread waits against a deadline in slices of at
//! most 100 ms, checking a `Cancel` flag between slices; on timeout, cancellation or drop the
//! whole group gets SIGTERM, a short grace, then SIGKILL, and the leader is reaped. Every child
//! carries an environment marker (`marker`), so descendants that left the group (setsid, a
//! double fork) are found and killed when the dispatch ends. What is kept of stdout is capped
//! (`readers::Limits`); a child past a cap is stopped and `Finished::overflow` says why. This
//! module knows nothing about `claude` output; it hands back bytes (or lines, as they arrive).
//!
//! `wait_timeout` installs a process-wide SIGCHLD handler and closes the child's stdin; nothing
//! else in the crate may install a SIGCHLD handler.

pub mod ledger;
pub mod marker;
pub mod procfs;
mod readers;

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};
use wait_timeout::ChildExt;

use crate::cancel::Cancel;
use readers::{Backlog, Event, StdoutReader, Tail};
pub use readers::{
    DEFAULT_MAX_LINE, DEFAULT_MAX_OUTPUT, Limits, MAX_LINE_VAR, MAX_OUTPUT_VAR, STDERR_TAIL,
    parse_size,
};

/// Longest single wait; bounds how late a cancel or a deadline is noticed (a wake-up costs
/// microseconds, a late cancel keeps a billing child alive).
const SLICE: Duration = Duration::from_millis(25);
/// Time between SIGTERM and SIGKILL for the group.
const GRACE: Duration = Duration::from_millis(500);
/// After the leader exits, how long leftover group members may keep our pipes open before the
/// group is killed so the readers see EOF (a lingering MCP server would otherwise hold them).
const LINGER: Duration = Duration::from_secs(2);
/// After a kill, how long to wait for the readers before giving up on a pipe held by a process
/// outside the group; what was read so far is kept.
const READER_GRACE: Duration = Duration::from_secs(1);
/// After a kill, how long lines already read may still be delivered to a slow consumer.
const BACKLOG_GRACE: Duration = Duration::from_secs(10);

/// How stdout is consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StdoutMode {
    /// Keep all of it, returned in `Finished::stdout`.
    Whole,
    /// Hand each line to the waiting thread's line callback as soon as it arrives.
    Lines,
}

/// What to run.
pub struct ChildSpec<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    /// Extra environment on top of the inherited one.
    pub env: &'a [(&'a str, String)],
}

/// Why the wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The child exited on its own.
    Exited,
    /// The deadline passed; the group was killed.
    TimedOut,
    /// The `Cancel` flag was tripped; the group was killed.
    Cancelled,
}

/// A reaped child and everything it wrote.
#[derive(Debug)]
pub struct Finished {
    pub outcome: Outcome,
    /// The exit code, or minus the signal number when it was killed (as Python reports it).
    pub code: i32,
    /// All of stdout in `Whole` mode; empty in `Lines` mode.
    pub stdout: Vec<u8>,
    /// The last `STDERR_TAIL` bytes of stderr, decoded lossily; ends with `overflow` if set.
    pub stderr: String,
    /// Set when the child was stopped for printing past a `Limits` cap: which one. `stdout` is
    /// then empty in `Whole` mode.
    pub overflow: Option<String>,
}

/// Run once just before the group is killed by a timeout, a cancel, an output cap or a drop
/// (never after the child exited on its own), with the stderr read so far. The remote runner uses it to stop the
/// process group on the far side of an `ssh` child before the local `ssh` dies.
pub type KillHook = Box<dyn FnOnce(&str) + Send>;

/// A child process in its own process group. Dropping it kills and reaps the group.
pub struct Supervised {
    child: Child,
    pgid: i32,
    reaped: Option<ExitStatus>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Tail>>,
    /// Lines from the stdout reader; disconnected once both readers have finished.
    events: Receiver<Event>,
    backlog: Arc<Backlog>,
    /// Tells a reader waiting for the consumer that no one will take its lines any more.
    abandoned: Arc<AtomicBool>,
    overflow: Option<String>,
    /// The `marker::MARKER_VAR` value of this child and its descendants.
    token: String,
    readers: Vec<thread::JoinHandle<()>>,
    on_kill: Option<KillHook>,
}

impl Supervised {
    /// Spawns with the caps from the environment (`Limits::from_env`).
    pub fn spawn(spec: &ChildSpec<'_>, mode: StdoutMode) -> io::Result<Supervised> {
        Self::spawn_with_limits(spec, mode, Limits::from_env())
    }

    pub fn spawn_with_limits(
        spec: &ChildSpec<'_>,
        mode: StdoutMode,
        limits: Limits,
    ) -> io::Result<Supervised> {
        let mut cmd = Command::new(spec.program);
        cmd.args(spec.args)
            .current_dir(spec.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // pgid = pid: one signal reaches the CLI and every MCP server it started.
            .process_group(0);
        let parent = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid, _exit); it touches no allocator or lock.
        unsafe {
            cmd.pre_exec(move || {
                die_with_parent(parent);
                Ok(())
            });
        }
        for (k, v) in spec.env {
            cmd.env(k, v);
        }
        // Set last so a caller's environment cannot replace it.
        let token = marker::new_token();
        cmd.env(marker::MARKER_VAR, &token);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        ledger::note_spawn(&token, pid);
        let pgid = pid as i32;
        let out_pipe = child.stdout.take();
        let err_pipe = child.stderr.take();
        let mut sup = Supervised {
            child,
            pgid,
            reaped: None,
            stdout: Arc::new(Mutex::new(Vec::new())),
            stderr: Arc::new(Mutex::new(Tail::default())),
            events: crossbeam_channel::never(),
            backlog: Arc::new(Backlog::default()),
            abandoned: Arc::new(AtomicBool::new(false)),
            overflow: None,
            token,
            readers: Vec::with_capacity(2),
            on_kill: None,
        };
        // From here on, an early return drops `sup`, which kills and reaps the child.
        let (tx, rx) = crossbeam_channel::unbounded();
        sup.events = rx;
        if let Some(pipe) = out_pipe {
            let reader = StdoutReader {
                mode,
                limits,
                sink: Arc::clone(&sup.stdout),
                events: tx.clone(),
                backlog: Arc::clone(&sup.backlog),
                abandoned: Arc::clone(&sup.abandoned),
            };
            sup.readers.push(
                thread::Builder::new()
                    .name(format!("claude-stdout-{pid}"))
                    .spawn(move || reader.run(pipe))?,
            );
        }
        if let Some(pipe) = err_pipe {
            let sink = Arc::clone(&sup.stderr);
            let tx = tx.clone();
            sup.readers.push(
                thread::Builder::new()
                    .name(format!("claude-stderr-{pid}"))
                    .spawn(move || readers::read_stderr(pipe, &sink, tx))?,
            );
        }
        drop(tx);
        Ok(sup)
    }

    /// Sets the hook run before a kill (see `KillHook`).
    pub fn set_on_kill(&mut self, hook: KillHook) {
        self.on_kill = Some(hook);
    }

    fn run_on_kill(&mut self) {
        if let Some(hook) = self.on_kill.take() {
            let stderr = self
                .stderr
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .text();
            hook(&stderr);
        }
    }

    /// The child's pid, which is also its process-group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `marker::MARKER_VAR` value this child and its descendants carry.
    pub fn marker(&self) -> &str {
        &self.token
    }

    /// Hands one reader event to the consumer (a line) or records it (an overflow).
    fn deliver(&mut self, event: Event, on_line: &mut dyn FnMut(&[u8])) {
        match event {
            Event::Line(line) => {
                self.backlog.taken(line.len());
                on_line(&line);
            }
            Event::Overflow(why) => {
                self.overflow.get_or_insert(why);
            }
        }
    }

    /// Waits until the child exits, `deadline` passes or `cancel` is tripped, delivering stdout
    /// lines (in `Lines` mode) to `on_line` on this thread as they arrive. Always returns with
    /// the leader reaped and the readers finished or abandoned.
    pub fn wait(
        mut self,
        deadline: Instant,
        cancel: Option<&Cancel>,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> Finished {
        let mut readers_done = false;
        let outcome = loop {
            if cancel.is_some_and(Cancel::is_tripped) {
                break Outcome::Cancelled;
            }
            let now = Instant::now();
            if now >= deadline {
                break Outcome::TimedOut;
            }
            let slice = SLICE.min(deadline - now);
            if readers_done {
                match self.child.wait_timeout(slice) {
                    Ok(Some(status)) => {
                        self.reaped = Some(status);
                        break Outcome::Exited;
                    }
                    Ok(None) => {}
                    // Nothing sensible to wait for any more; treat it like an exit after a kill.
                    Err(_) => break Outcome::Exited,
                }
            } else {
                match self.events.recv_timeout(slice) {
                    Ok(event) => self.deliver(event, on_line),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => readers_done = true,
                }
                if self.overflow.is_some() {
                    // Stopped below; what the child printed is past a cap.
                    break Outcome::Exited;
                }
                if self.reaped.is_none()
                    && let Ok(Some(status)) = self.child.try_wait()
                {
                    self.reaped = Some(status);
                }
                if self.reaped.is_some() && !readers_done {
                    // The leader is gone but someone still holds our pipes: give them a
                    // moment, then clear the group so the readers reach EOF.
                    let linger_end = (Instant::now() + LINGER).min(deadline);
                    readers_done = self.drain_until(linger_end, deadline, on_line);
                    if readers_done {
                        break Outcome::Exited;
                    }
                    if Instant::now() >= deadline {
                        break Outcome::TimedOut;
                    }
                    self.kill_group();
                    break Outcome::Exited;
                }
            }
            if self.reaped.is_some() && readers_done {
                break Outcome::Exited;
            }
        };
        // A child stopped for its output is killed like a timed-out one (the remote side too).
        if outcome != Outcome::Exited || self.overflow.is_some() {
            self.run_on_kill();
        }
        if outcome != Outcome::Exited || self.reaped.is_none() || self.overflow.is_some() {
            self.kill_group();
        }
        // Descendants that left the group die with the dispatch; they may hold our pipes.
        marker::kill_marked(&self.token);
        if !readers_done {
            let soft = Instant::now() + READER_GRACE;
            self.drain_until(soft, soft + BACKLOG_GRACE, on_line);
        }
        self.abandoned.store(true, Ordering::SeqCst);
        self.finish(outcome)
    }

    /// Delivers lines until both readers are finished (true) or `soft` passes with nothing
    /// queued, or `hard` passes (false). Lines already queued are ours to deliver even after
    /// `soft` (a slow consumer must not lose a result the child printed before it exited); `hard`
    /// bounds a group that keeps writing.
    fn drain_until(
        &mut self,
        soft: Instant,
        hard: Instant,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> bool {
        loop {
            match self.events.try_recv() {
                Ok(event) => {
                    self.deliver(event, on_line);
                    if Instant::now() >= hard {
                        return false;
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if now >= soft.min(hard) {
                return false;
            }
            match self.events.recv_timeout(soft.min(hard) - now) {
                Ok(event) => self.deliver(event, on_line),
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => return true,
            }
        }
    }

    fn finish(mut self, outcome: Outcome) -> Finished {
        // Readers that finished are joined; one blocked on a pipe held outside our group is
        // left to end on its own when that pipe closes (joining it could block forever).
        for handle in std::mem::take(&mut self.readers) {
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
        let mut stdout =
            std::mem::take(&mut *self.stdout.lock().unwrap_or_else(PoisonError::into_inner));
        let mut stderr = self
            .stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .text();
        if let Some(why) = &self.overflow {
            stdout = Vec::new();
            if !stderr.is_empty() && !stderr.ends_with('\n') {
                stderr.push('\n');
            }
            stderr.push_str(why);
        }
        let code = match self.reaped {
            Some(status) => status
                .code()
                .or_else(|| status.signal().map(|s| -s))
                .unwrap_or(-1),
            None => -1,
        };
        Finished {
            outcome,
            code,
            stdout,
            stderr,
            overflow: self.overflow.take(),
        }
    }

    /// SIGTERM to the group, a grace period, SIGKILL to whatever is left, and the leader reaped.
    fn kill_group(&mut self) {
        signal_group(self.pgid, libc::SIGTERM);
        let grace_end = Instant::now() + GRACE;
        while self.reaped.is_none() {
            let now = Instant::now();
            if now >= grace_end {
                break;
            }
            match self.child.wait_timeout(SLICE.min(grace_end - now)) {
                Ok(Some(status)) => self.reaped = Some(status),
                Ok(None) => {}
                Err(_) => break,
            }
        }
        // Grandchildren may still be handling SIGTERM; give them the rest of the grace.
        while group_exists(self.pgid) && Instant::now() < grace_end {
            thread::sleep(Duration::from_millis(10));
        }
        signal_group(self.pgid, libc::SIGKILL);
        marker::kill_marked(&self.token);
        if self.reaped.is_none()
            && let Ok(status) = self.child.wait()
        {
            self.reaped = Some(status);
        }
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            self.run_on_kill();
            self.kill_group();
        }
        // Every path (a finished wait, an early drop) ends here, with the group gone.
        ledger::note_end(&self.token);
    }
}

/// In the forked child: ask the kernel for SIGKILL when the thread that spawned us ends, so a
/// server killed outright (SIGKILL, OOM) does not leave `claude` running, and billing, with no
/// one to read its answer. Every exit path we control already kills the group; this covers the
/// one we do not. The spawning thread is the one that waits for the child, so the signal never
/// fires early. If the server died between fork and prctl we are already orphaned: leave now.
fn die_with_parent(parent: u32) {
    // SAFETY: prctl(PR_SET_PDEATHSIG), getppid and _exit are async-signal-safe and have no
    // memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if u32::try_from(libc::getppid()).ok() != Some(parent) {
            libc::_exit(1);
        }
    }
}

fn signal_group(pgid: i32, sig: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals a process group; it has no memory effects.
        // ESRCH (the group is already gone) is the expected outcome after a clean exit.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pgid > 0 && unsafe { libc::kill(-pgid, 0) } == 0
}

/// What the supervision tests share: a `/bin/sh -c` child and a far deadline.
#[cfg(test)]
pub(crate) mod testkit {
    use super::{ChildSpec, Limits, StdoutMode, Supervised};
    use std::path::Path;
    use std::time::{Duration, Instant};

    /// A deadline no test reaches unless something hangs.
    pub fn far() -> Instant {
        Instant::now() + Duration::from_secs(20)
    }

    /// `/bin/sh -c script` in `/`, with `limits` on its output.
    pub fn sh_limited(script: &str, mode: StdoutMode, limits: Limits) -> Supervised {
        let args = vec!["-c".to_string(), script.to_string()];
        let spec = ChildSpec {
            program: Path::new("/bin/sh"),
            args: &args,
            cwd: Path::new("/"),
            env: &[],
        };
        Supervised::spawn_with_limits(&spec, mode, limits).unwrap()
    }

    pub const SMALL: Limits = Limits {
        max_output: 1 << 20,
        max_line: 1 << 20,
    };
}

#[cfg(test)]
mod tests {
    use super::testkit::far;
    use super::*;
    use std::path::PathBuf;

    fn sh(script: &str, mode: StdoutMode) -> Supervised {
        let args = vec!["-c".to_string(), script.to_string()];
        let spec = ChildSpec {
            program: Path::new("/bin/sh"),
            args: &args,
            cwd: Path::new("/"),
            env: &[("AGENT_DISPATCH_DEPTH", "7".to_string())],
        };
        Supervised::spawn(&spec, mode).unwrap()
    }

    fn alive(pid: i32) -> bool {
        u32::try_from(pid).is_ok_and(procfs::live)
    }

    #[test]
    fn collects_stdout_stderr_exit_code_env_and_null_stdin() {
        let child = sh(
            "echo out; echo err >&2; echo \"$AGENT_DISPATCH_DEPTH\"; pwd; cat; exit 3",
            StdoutMode::Whole,
        );
        let f = child.wait(far(), None, &mut |_| {});
        assert_eq!(f.outcome, Outcome::Exited);
        assert_eq!(f.code, 3);
        assert_eq!(String::from_utf8_lossy(&f.stdout), "out\n7\n/\n");
        assert_eq!(f.stderr, "err\n");
    }

    #[test]
    fn lines_arrive_while_the_child_still_runs() {
        let child = sh("echo one; echo two; sleep 5", StdoutMode::Lines);
        let start = Instant::now();
        let mut lines = Vec::new();
        let cancel = Cancel::new();
        let f = child.wait(far(), Some(&cancel), &mut |l| {
            lines.push(String::from_utf8_lossy(l).into_owned());
            if lines.len() == 2 {
                cancel.trip();
            }
        });
        assert_eq!(lines, ["one", "two"]);
        assert_eq!(f.outcome, Outcome::Cancelled);
        assert_eq!(f.code, -libc::SIGTERM);
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn last_line_without_newline_is_delivered() {
        let child = sh("printf 'a\\nb'", StdoutMode::Lines);
        let mut lines = Vec::new();
        child.wait(far(), None, &mut |l| lines.push(l.to_vec()));
        assert_eq!(lines, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn timeout_kills_the_group_including_a_grandchild_holding_stdout() {
        let dir = std::env::temp_dir().join(format!("ad-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("gc.pid");
        let script = format!(
            "sleep 3600 & echo $! > {}; echo started; wait",
            pidfile.display()
        );
        let child = sh(&script, StdoutMode::Whole);
        let leader = child.pid() as i32;
        let start = Instant::now();
        let f = child.wait(
            Instant::now() + Duration::from_millis(300),
            None,
            &mut |_| {},
        );
        let elapsed = start.elapsed();
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        assert_eq!(String::from_utf8_lossy(&f.stdout), "started\n");
        let gc: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(leader));
        assert!(!alive(gc), "grandchild {gc} survived");
        let _ = std::fs::remove_dir_all(PathBuf::from(&dir));
    }

    #[test]
    fn term_ignoring_child_is_killed_after_the_grace() {
        let child = sh("trap '' TERM; echo ready; sleep 30", StdoutMode::Lines);
        let pid = child.pid() as i32;
        let start = Instant::now();
        let f = child.wait(
            Instant::now() + Duration::from_millis(200),
            None,
            &mut |_| {},
        );
        assert_eq!(f.outcome, Outcome::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(!alive(pid));
    }

    #[test]
    fn stderr_flood_does_not_deadlock_and_keeps_the_tail() {
        // 1 MiB of stderr before any stdout: a reader that drained stdout first would hang.
        let child = sh(
            "head -c 1048576 /dev/zero | tr '\\0' e >&2; echo tail-marker >&2; echo done",
            StdoutMode::Whole,
        );
        let start = Instant::now();
        let f = child.wait(far(), None, &mut |_| {});
        assert_eq!(f.outcome, Outcome::Exited);
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(String::from_utf8_lossy(&f.stdout), "done\n");
        assert_eq!(f.stderr.len(), STDERR_TAIL);
        assert!(f.stderr.ends_with("eeetail-marker\n"));
    }

    #[test]
    fn leftover_grandchild_after_normal_exit_is_cleared() {
        let dir = std::env::temp_dir().join(format!("ad-proc-linger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("gc.pid");
        let script = format!("sleep 3600 & echo $! > {}; echo answer", pidfile.display());
        let child = sh(&script, StdoutMode::Whole);
        let start = Instant::now();
        let f = child.wait(far(), None, &mut |_| {});
        assert_eq!(f.outcome, Outcome::Exited);
        assert_eq!(f.code, 0);
        assert_eq!(String::from_utf8_lossy(&f.stdout), "answer\n");
        assert!(start.elapsed() < LINGER + Duration::from_secs(2));
        let gc: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!alive(gc), "grandchild {gc} survived");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn drop_kills_and_reaps() {
        let child = sh("sleep 30", StdoutMode::Whole);
        let pid = child.pid() as i32;
        drop(child);
        assert!(!alive(pid));
    }
}
