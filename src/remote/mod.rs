//! Remote agents: an agent with `host:` runs its backend's command line on that host through
//! OpenSSH. This is the one place that knows; it sits below every backend, which builds the same
//! `ChildSpec` it would run here and calls `remote::spawn` instead of `Supervised::spawn`.
//!
//! The local child becomes `ssh [ssh_command options] -o BatchMode=yes -o ConnectTimeout=10
//! -o ServerAliveInterval=15 -T -o ControlMaster=auto -o ControlPath=<config dir>/ssh/%C -o ControlPersist=60 -- HOST CMD`
//! with stdin `/dev/null` (as every child) and the single remote command `CMD` from
//! `shell::run_command`: `cd DIR`, check the program, print the process-group marker on stderr,
//! `exec env VARS… PROGRAM ARGS…`, every value single-quoted. Options from `ssh_command` come
//! first, so they win (ssh keeps the first value it sees for an option).
//!
//! - Connection sharing: the first dispatch to a host starts a master that lives 60 s after its
//!   last use; later dispatches (and the kill below) reuse it and pay no handshake. The socket
//!   name is ssh's `%C` hash, so the path stays short (Unix sockets allow ~100 bytes); for a
//!   config directory too deep even for that, a private 0700 directory in the temp dir named by
//!   the config directory's hash takes its place.
//! - The remote process group: sshd starts every session's command in a new session (it calls
//!   `setsid`), and each step of the command `exec`s, so the pid the script prints is the CLI's
//!   and is its process group. The remote login shell must be POSIX (sh, bash, dash, zsh, ksh).
//! - Why a marker line on stderr: ssh carries only stdin, stdout and stderr; stdout is the CLI's
//!   and parsed by the backend, stdin is `/dev/null`. The marker, and anything ssh wrote before
//!   it, is removed from stderr before a backend reads it.
//! - Kills: on timeout, cancel or drop, before the local `ssh` is killed, the `KillHook` runs
//!   `kill -TERM -- -PGID`, a grace, then `-KILL`, over the same connection with a short deadline:
//!   killing only the local `ssh` would leave the remote CLI running, and billing. The group id
//!   comes from the marker line in the stderr read so far; a CLI that wrote more than
//!   `process::STDERR_TAIL` bytes of stderr before the kill has pushed it out, so every run
//!   also carries `AGENT_DISPATCH_RUN_ID=<uuid>` in its environment and the kill also signals
//!   every process whose `/proc/PID/environ` holds it (Linux hosts with GNU grep; elsewhere the
//!   group alone), which also reaches descendants that left the group.
//! - Errors: ssh exits 255 on its own failures. A run that never printed the group marker and
//!   exited 255 is ssh's failure, classified here (`permission` for a refused key or host key,
//!   else `not_found`) with ssh's words and a hint; the backend's parser never sees it. The
//!   script's own markers report a missing directory or program.

pub mod probe;
pub mod shell;

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use crate::cancel::Cancel;
use crate::config::Settings;
use crate::process::{ChildSpec, Finished, Outcome, StdoutMode, Supervised};
use crate::result::{DispatchResult, ErrorType};
use crate::runenv::RunEnv;

/// How long ssh may take to connect before it gives up (exit 255, classified `not_found`).
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// How long the remote kill may take, connection included, before we stop waiting for it.
const KILL_DEADLINE: Duration = Duration::from_secs(6);
/// Longest control socket path we hand ssh: `sun_path` is 104–108 bytes, and ssh appends a
/// temporary suffix of its own while it creates the socket.
const MAX_SOCKET_PATH: usize = 90;

/// Where the ControlMaster sockets of the config at `config_path` live: `ssh/` beside it.
pub fn control_dir(config_path: &Path) -> PathBuf {
    config_path.parent().unwrap_or(Path::new(".")).join("ssh")
}

/// Refuses a destination ssh would read as an option, or that is not one word.
pub fn validate_host(host: &str) -> Result<(), String> {
    if host.is_empty()
        || host.starts_with('-')
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "Invalid host '{host}': an ssh destination (box, user@box, ssh://user@box:2222) without spaces, not starting with '-'."
        ));
    }
    Ok(())
}

/// `DEST:DIR` in scp's style: a ':' before any '/', with something on both sides; or a URL,
/// `ssh://[user@]host[:port]/path` as git writes it (`/~/x` for a path under the home
/// directory). The caller first makes sure the whole text is not a local path.
pub fn split_scp(arg: &str) -> Option<(String, String)> {
    if let Some(rest) = arg.strip_prefix("ssh://") {
        let at = rest.find('/')?;
        let (authority, path) = rest.split_at(at);
        let path = path
            .strip_prefix('/')
            .filter(|p| p.starts_with('~'))
            .unwrap_or(path);
        let host = format!("ssh://{authority}");
        return (!authority.is_empty() && path.len() > 1 && validate_host(&host).is_ok())
            .then(|| (host, path.to_string()));
    }
    let (host, dir) = arg.split_once(':')?;
    (!host.is_empty() && !host.contains('/') && !dir.is_empty() && validate_host(host).is_ok())
        .then(|| (host.to_string(), dir.to_string()))
}

/// How to reach one host: the ssh program and every option, ready for a destination.
#[derive(Clone, Debug)]
pub struct Remote {
    pub host: String,
    /// Program then options, without `--`, the host or the command.
    ssh: Vec<String>,
}

impl Remote {
    /// The connection for `host` under `settings.ssh_command` (or `AGENT_DISPATCH_SSH_COMMAND`
    /// from `env`). `Err` for a destination ssh would read as an option.
    pub fn new(host: &str, settings: &Settings, env: &RunEnv) -> Result<Remote, String> {
        let host = host.trim();
        validate_host(host)?;
        let line = env
            .ssh_command
            .as_deref()
            .or(settings.ssh_command.as_deref())
            .filter(|c| !c.trim().is_empty())
            .unwrap_or("ssh");
        let mut ssh: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        ssh[0] = crate::config::expand_tilde(Path::new(&ssh[0]))
            .display()
            .to_string();
        for opt in [
            "BatchMode=yes".to_string(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_SECS}"),
            "ServerAliveInterval=15".to_string(),
        ] {
            ssh.extend(["-o".to_string(), opt]);
        }
        ssh.push("-T".to_string());
        if let Some(dir) = env.ssh_control_dir.as_deref().and_then(usable_control_dir) {
            for opt in [
                "ControlMaster=auto".to_string(),
                format!("ControlPath={}/%C", dir.display()),
                "ControlPersist=60".to_string(),
            ] {
                ssh.extend(["-o".to_string(), opt]);
            }
        }
        Ok(Remote {
            host: host.to_string(),
            ssh,
        })
    }

    /// `ssh … -- HOST remote_command`: program and arguments.
    pub fn command(&self, remote_command: &str) -> (String, Vec<String>) {
        let mut args: Vec<String> = self.ssh[1..].to_vec();
        args.extend([
            "--".to_string(),
            self.host.clone(),
            remote_command.to_string(),
        ]);
        (self.ssh[0].clone(), args)
    }

    /// Runs `remote_command` with stdin `/dev/null`, waiting at most `deadline` (then killing
    /// ssh): exit code (255 for ssh's own failures, -1 when killed) and both outputs.
    pub fn run_briefly(&self, remote_command: &str, deadline: Duration) -> io::Result<Brief> {
        let (program, args) = self.command(remote_command);
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()?;
        // Readers on threads so a chatty remote never blocks on a full pipe while we wait.
        let out = child.stdout.take().map(read_all);
        let err = child.stderr.take().map(read_all);
        let code = match child.wait_timeout(deadline)? {
            Some(status) => status.code().unwrap_or(-1),
            None => {
                // The whole group: a ProxyCommand child would otherwise keep our pipes open.
                // SAFETY: kill(2) on our own child's process group; no memory effects.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                -1
            }
        };
        // Something outside the group may still hold a pipe: what arrived by then is kept.
        let until = Instant::now() + Duration::from_secs(1);
        let collect = |rx: Option<crossbeam_channel::Receiver<Vec<u8>>>| {
            rx.and_then(|rx| rx.recv_deadline(until).ok())
                .unwrap_or_default()
        };
        Ok(Brief {
            code,
            stdout: collect(out),
            stderr: String::from_utf8_lossy(&collect(err)).into_owned(),
        })
    }
}

use std::os::unix::process::CommandExt;

/// Reads `r` to its end on a thread; the bytes arrive on the returned channel.
fn read_all<R: io::Read + Send + 'static>(mut r: R) -> crossbeam_channel::Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// The outcome of a short ssh command.
#[derive(Debug)]
pub struct Brief {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// The directory for control sockets: `dir` when a socket path in it fits, else a short private
/// directory in the system temp dir named after `dir`'s hash. Created mode 0700 (a socket grants
/// use of a live, authenticated connection); one that is not ours and private is not used, and
/// `None` then runs ssh without connection sharing.
pub fn usable_control_dir(dir: &Path) -> Option<PathBuf> {
    use std::hash::{Hash, Hasher};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    // `%C` expands to 40 hex digits.
    let fits = |d: &Path| d.as_os_str().len() + 41 <= MAX_SOCKET_PATH;
    let dir = if fits(dir) {
        dir.to_path_buf()
    } else {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        dir.hash(&mut h);
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        let short = std::env::temp_dir().join(format!("ad-ssh-{uid}-{:016x}", h.finish()));
        if !fits(&short) {
            crate::log::warn(&format!(
                "no short enough directory for ssh control sockets (tried {}); connecting without ControlMaster",
                short.display()
            ));
            return None;
        }
        short
    };
    let _ = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    // SAFETY: as above.
    let ours = meta.uid() == unsafe { libc::geteuid() };
    (meta.is_dir() && ours && meta.mode() & 0o077 == 0).then_some(dir)
}

/// A backend's child: local, or `ssh` running it on the agent's host.
pub struct Child {
    sup: Supervised,
    remote: Option<RemoteRun>,
}

struct RemoteRun {
    host: String,
    dir: String,
    program: String,
}

/// Starts `spec` here (`remote` is `None`) or on `remote`'s host, where `spec.cwd` is the remote
/// directory and `spec.env` is passed through `env` in the remote command.
pub fn spawn(remote: Option<&Remote>, spec: &ChildSpec<'_>, mode: StdoutMode) -> io::Result<Child> {
    let Some(remote) = remote else {
        return Ok(Child {
            sup: Supervised::spawn(spec, mode)?,
            remote: None,
        });
    };
    let dir = spec.cwd.to_string_lossy().into_owned();
    let program = spec.program.to_string_lossy().into_owned();
    // Inherited by everything the CLI starts, so the kill can find the run's processes even
    // when the group marker is lost or a descendant left the group (see `shell::kill_command`).
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut env = spec.env.to_vec();
    env.push((shell::RUN_ID_VAR, run_id.clone()));
    let cmd = shell::run_command(&dir, &program, spec.args, &env);
    let (ssh, args) = remote.command(&cmd);
    let local = ChildSpec {
        program: Path::new(&ssh),
        args: &args,
        cwd: Path::new("/"),
        env: &[],
    };
    let mut sup = Supervised::spawn(&local, mode)
        .map_err(|e| io::Error::new(e.kind(), format!("ssh program '{ssh}': {e}")))?;
    let killer = remote.clone();
    sup.set_on_kill(Box::new(move |stderr: &str| {
        let (pgid, _, _) = shell::split_stderr(stderr);
        // Without the marker the CLI may not have started at all (ssh still connecting): the
        // sweep then gets a shorter deadline, so a cancel of an unreachable host stays quick.
        let deadline = if pgid.is_some() {
            KILL_DEADLINE
        } else {
            KILL_DEADLINE / 2
        };
        let done = killer.run_briefly(&shell::kill_command(pgid, &run_id), deadline);
        if let Err(e) = done {
            crate::log::warn(&format!(
                "could not stop the remote run on {}: {e}",
                killer.host
            ));
        }
    }));
    Ok(Child {
        sup,
        remote: Some(RemoteRun {
            host: remote.host.clone(),
            dir,
            program,
        }),
    })
}

impl Child {
    /// The local child's pid (for a remote run, the `ssh` process).
    pub fn pid(&self) -> u32 {
        self.sup.pid()
    }

    /// `Supervised::wait`, then for a remote run: our markers taken out of stderr, and ssh's
    /// own failures (and a missing directory or program on the host) returned as `Err` with the
    /// result to report instead of parsing the output.
    pub fn wait(
        self,
        agent: &str,
        deadline: Instant,
        cancel: Option<&Cancel>,
        on_line: &mut dyn FnMut(&[u8]),
    ) -> Result<Finished, Box<DispatchResult>> {
        let mut finished = self.sup.wait(deadline, cancel, on_line);
        let Some(run) = self.remote else {
            return Ok(finished);
        };
        let (pgid, failure, rest) = shell::split_stderr(&finished.stderr);
        let ssh_words = std::mem::replace(&mut finished.stderr, rest);
        if finished.outcome != Outcome::Exited {
            return Ok(finished);
        }
        let fail = |kind, error: String, hint: String| {
            let mut r = DispatchResult::failure(agent, kind, error);
            r.hint = Some(hint);
            Err(Box::new(r))
        };
        match failure {
            Some(shell::NO_DIRECTORY) => {
                return fail(
                    ErrorType::NotFound,
                    format!("Directory does not exist on {}: {}", run.host, run.dir),
                    format!(
                        "The directory is a path on {}; fix it with 'agent-dispatch update {agent} --directory DIR'.",
                        run.host
                    ),
                );
            }
            Some(_) => {
                return fail(
                    ErrorType::NotFound,
                    format!("'{}' not found on the PATH of {}", run.program, run.host),
                    format!(
                        "Install the CLI on {host}, or set settings.backends.<backend>.command to its path there. Note that ssh runs a non-interactive shell: PATH changes made only in an interactive profile do not apply.",
                        host = run.host
                    ),
                );
            }
            None => {}
        }
        if pgid.is_none() && finished.code == 255 {
            let (kind, hint) = classify_ssh_failure(&run.host, &ssh_words);
            let words = crate::text::first_chars(ssh_words.trim(), 1000);
            return fail(
                kind,
                format!("ssh could not run the agent on {}: {words}", run.host),
                hint,
            );
        }
        Ok(finished)
    }
}

/// `permission` for a refused key or host key, else `not_found` (down, unknown, unreachable),
/// each with what to try.
pub fn classify_ssh_failure(host: &str, stderr: &str) -> (ErrorType, String) {
    let lower = stderr.to_ascii_lowercase();
    let refused = [
        "permission denied",
        "host key verification failed",
        "too many authentication failures",
        "no supported authentication methods",
        "remote host identification has changed",
    ];
    if refused.iter().any(|w| lower.contains(w)) {
        (
            ErrorType::Permission,
            format!(
                "Check that 'ssh {host} true' works without any prompt (dispatches run with BatchMode=yes): load the key into ssh-agent or name it in ~/.ssh/config or settings.ssh_command, and accept the host key once by hand."
            ),
        )
    } else {
        (
            ErrorType::NotFound,
            format!(
                "Check that {host} is up and reachable: 'ssh {host} true' should succeed (connection attempts give up after {CONNECT_TIMEOUT_SECS} s)."
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scp_style_targets_split_only_on_a_colon_before_any_slash() {
        let pair = |h: &str, d: &str| Some((h.to_string(), d.to_string()));
        assert_eq!(split_scp("box:~/proj"), pair("box", "~/proj"));
        assert_eq!(split_scp("me@box:/srv/a:b"), pair("me@box", "/srv/a:b"));
        assert_eq!(
            split_scp("ssh://me@box:2222/srv/app"),
            pair("ssh://me@box:2222", "/srv/app")
        );
        assert_eq!(split_scp("ssh://box/~/proj"), pair("ssh://box", "~/proj"));
        assert_eq!(split_scp("ssh://box"), None);
        assert_eq!(split_scp("ssh://box/"), None);
        assert_eq!(split_scp("./a:b"), None);
        assert_eq!(split_scp("/x/y:z"), None);
        assert_eq!(split_scp("box:"), None);
        assert_eq!(split_scp("-oProxyCommand=x:dir"), None);
    }

    #[test]
    fn ssh_failures_are_classified_by_their_words() {
        let perm = "root@127.0.0.1: Permission denied (publickey,password).\r\n";
        assert_eq!(classify_ssh_failure("h", perm).0, ErrorType::Permission);
        let down = "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n";
        assert_eq!(classify_ssh_failure("h", down).0, ErrorType::NotFound);
        let unknown = "ssh: Could not resolve hostname nope: Name or service not known\r\n";
        assert_eq!(classify_ssh_failure("h", unknown).0, ErrorType::NotFound);
    }

    #[test]
    fn destinations_that_read_as_options_are_refused() {
        let env = RunEnv::with_path("/bin");
        let s = Settings::default();
        assert!(Remote::new("-oProxyCommand=x", &s, &env).is_err());
        assert!(Remote::new("a b", &s, &env).is_err());
        assert!(Remote::new("", &s, &env).is_err());
        let r = Remote::new("user@box", &s, &env).unwrap();
        let (prog, args) = r.command("true");
        assert_eq!(prog, "ssh");
        assert_eq!(&args[args.len() - 3..], ["--", "user@box", "true"]);
        assert!(args.contains(&"BatchMode=yes".to_string()));
    }

    #[test]
    fn ssh_command_splits_and_the_environment_wins() {
        let mut env = RunEnv::with_path("/bin");
        let settings = Settings {
            ssh_command: Some("ssh -F /dev/null".to_string()),
            ..Settings::default()
        };
        let (_, args) = Remote::new("b", &settings, &env).unwrap().command("x");
        assert_eq!(&args[..2], ["-F", "/dev/null"]);
        env.ssh_command = Some("/opt/ssh -p 2222".to_string());
        let (prog, args) = Remote::new("b", &settings, &env).unwrap().command("x");
        assert_eq!(
            (prog.as_str(), &args[..2]),
            ("/opt/ssh", &["-p".to_string(), "2222".to_string()][..])
        );
    }

    #[test]
    fn a_control_dir_too_long_for_a_socket_moves_to_a_short_private_one() {
        use std::os::unix::fs::PermissionsExt;
        let mut env = RunEnv::with_path("/bin");
        let long = std::env::temp_dir().join("d".repeat(80));
        env.ssh_control_dir = Some(long.clone());
        let (_, args) = Remote::new("b", &Settings::default(), &env)
            .unwrap()
            .command("x");
        let path = args
            .iter()
            .find_map(|a| a.strip_prefix("ControlPath="))
            .expect("sharing stays on");
        let dir = Path::new(path).parent().unwrap();
        assert!(path.len() + 40 - 2 <= MAX_SOCKET_PATH, "{path}");
        assert!(!long.exists());
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn the_kill_hook_runs_before_a_timeout_kill_and_not_after_an_exit() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        for (script, deadline) in [
            ("echo marker >&2; sleep 30", Duration::from_millis(500)),
            ("echo marker >&2", Duration::from_secs(60)),
        ] {
            let args = vec!["-c".to_string(), script.to_string()];
            let spec = ChildSpec {
                program: Path::new("/bin/sh"),
                args: &args,
                cwd: Path::new("/"),
                env: &[],
            };
            let mut sup = Supervised::spawn(&spec, StdoutMode::Whole).unwrap();
            let sink = Arc::clone(&seen);
            sup.set_on_kill(Box::new(move |stderr| {
                sink.lock().unwrap().push(stderr.to_string())
            }));
            let f = sup.wait(Instant::now() + deadline, None, &mut |_| {});
            if f.outcome == Outcome::Exited {
                assert!(f.stderr.contains("marker"));
            }
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
    }
}
