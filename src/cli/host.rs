//! Running the few outside programs the CLI touches (`claude mcp …`) with captured output and a
//! deadline; `claude::find_on_path` finds them. Running is `process::Supervised`'s job
//! (own process group, both pipes drained, group killed on timeout, leftovers holding the pipes
//! cleared), so the deadline covers the whole run, not just the direct child's life.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::process::{ChildSpec, Outcome, StdoutMode, Supervised};

/// A finished child's exit code (minus the signal number if one killed it) and lossily decoded
/// output (stderr: its tail).
pub struct Captured {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

#[derive(Debug)]
pub enum RunError {
    Spawn(io::Error),
    TimedOut(Duration),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "could not start: {e}"),
            RunError::TimedOut(d) => write!(f, "timed out after {}s", d.as_secs_f64()),
        }
    }
}

/// Runs `program args…` in the current directory with stdin closed. Returns within about
/// `timeout` (plus the kill grace) even when something the child started keeps its pipes open.
pub fn run_captured(
    program: &Path,
    args: &[String],
    timeout: Duration,
) -> Result<Captured, RunError> {
    let deadline = Instant::now() + timeout;
    let spec = ChildSpec {
        program,
        args,
        cwd: Path::new("."),
        env: &[],
    };
    let child = Supervised::spawn(&spec, StdoutMode::Whole).map_err(RunError::Spawn)?;
    let finished = child.wait(deadline, None, &mut |_| {});
    match finished.outcome {
        Outcome::Exited => Ok(Captured {
            code: finished.code,
            stdout: String::from_utf8_lossy(&finished.stdout).into_owned(),
            stderr: finished.stderr,
        }),
        Outcome::TimedOut | Outcome::Cancelled => Err(RunError::TimedOut(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_and_times_out() {
        let sh = Path::new("/bin/sh");
        let c = run_captured(
            sh,
            &["-c".into(), "echo out; echo err >&2; exit 3".into()],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(c.code, 3);
        assert!(!c.success());
        assert_eq!(c.stdout, "out\n");
        assert_eq!(c.stderr, "err\n");
        let start = std::time::Instant::now();
        let e = run_captured(
            sh,
            &["-c".into(), "sleep 5 & sleep 5".into()],
            Duration::from_millis(200),
        );
        assert!(matches!(e, Err(RunError::TimedOut(_))));
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(matches!(
            run_captured(Path::new("/nonexistent/x"), &[], Duration::from_secs(1)),
            Err(RunError::Spawn(_))
        ));
    }

    #[test]
    fn a_leftover_holding_stdout_cannot_stretch_the_deadline() {
        let start = std::time::Instant::now();
        let e = run_captured(
            Path::new("/bin/sh"),
            &["-c".into(), "sleep 8 & echo ok".into()],
            Duration::from_millis(500),
        );
        assert!(matches!(e, Err(RunError::TimedOut(_))));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
    }
}
