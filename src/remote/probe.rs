//! Looking at a remote agent's project in one ssh round trip: whether the directory is there,
//! where the backend's CLI is on the host, and the few files `detect::auto_describe` reads, so
//! `add` describes a remote project as it would a local one. The files come back on stdout
//! between separator lines carrying a fresh random token (a file cannot fake one), are rebuilt
//! in a private temporary directory here, and described by the same code as a local project.

use std::path::Path;
use std::time::Duration;

use super::{Remote, shell};
use crate::config::{AgentConfig, Settings};
use crate::result::ErrorType;
use crate::runenv::RunEnv;

/// What `add` and `doctor` learn about a remote agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteProject {
    /// The directory as the host resolved it (`pwd -P` there).
    pub directory: String,
    /// Where `program` is on the host's PATH, if it is.
    pub program_path: Option<String>,
    /// `detect::auto_describe` of the project's files.
    pub description: String,
}

/// Files `auto_describe` reads (their first 64 KiB), and names whose presence it notes.
const FILES: [&str; 6] = [
    "CLAUDE.md",
    "README.md",
    "pyproject.toml",
    "package.json",
    ".mcp.json",
    ".claude/settings.local.json",
];
const MARKERS: [&str; 11] = [
    "Dockerfile",
    "docker-compose.yaml",
    "docker-compose.yml",
    "Cargo.toml",
    "go.mod",
    "requirements.txt",
    "schema.prisma",
    "alembic.ini",
    "prisma",
    "alembic",
    "migrations",
];

/// Probes `dir` on `remote`'s host for `program`, waiting at most `deadline`. `Err` carries
/// the error type (`not_found` for a host or directory that is not there, `permission` for a
/// refused key) and a message with ssh's own words and what to try.
pub fn inspect(
    remote: &Remote,
    dir: &str,
    program: &str,
    deadline: Duration,
) -> Result<RemoteProject, (ErrorType, String)> {
    let token = uuid::Uuid::new_v4().simple().to_string();
    let mut script = format!(
        "cd {dir} 2>/dev/null || {{ echo '{nodir}' >&2; exit 1; }}; T={token}; pwd -P; \
         printf '\\n%s program %s\\n' \"$T\" \"$(command -v {prog} 2>/dev/null)\"; ",
        dir = shell::remote_path(dir),
        nodir = shell::NO_DIRECTORY,
        prog = shell::remote_path(program),
    );
    for f in FILES {
        script.push_str(&format!(
            "[ -f {f} ] && {{ printf '\\n%s file %s\\n' \"$T\" {f}; head -c 65536 {f}; }}; ",
            f = shell::quote(f)
        ));
    }
    for m in MARKERS {
        script.push_str(&format!(
            "[ -d {m} ] && printf '\\n%s dir %s\\n' \"$T\" {m}; [ -f {m} ] && printf '\\n%s exists %s\\n' \"$T\" {m}; ",
            m = shell::quote(m)
        ));
    }
    script.push_str("exit 0");
    let brief = remote.run_briefly(&script, deadline).map_err(|e| {
        (
            ErrorType::NotFound,
            format!("could not start ssh for {}: {e}", remote.host),
        )
    })?;
    let (_, failure, ssh_words) = shell::split_stderr(&brief.stderr);
    if failure == Some(shell::NO_DIRECTORY) {
        return Err((
            ErrorType::NotFound,
            format!("Directory does not exist on {}: {dir}", remote.host),
        ));
    }
    if brief.code != 0 {
        let (kind, hint) = super::classify_ssh_failure(&remote.host, &ssh_words);
        let words = if brief.code == -1 {
            format!("no answer within {} s", deadline.as_secs())
        } else {
            crate::text::first_chars(ssh_words.trim(), 1000).to_string()
        };
        return Err((
            kind,
            format!("ssh to {} failed: {words}. {hint}", remote.host),
        ));
    }
    let out = String::from_utf8_lossy(&brief.stdout);
    let separator = format!("\n{token} ");
    let mut parts = out.split(separator.as_str());
    let directory = parts.next().unwrap_or("").trim().to_string();
    let mut program_path = None;
    let scratch = std::env::temp_dir().join(format!("agent-dispatch-probe-{token}"));
    let base = Path::new(&directory)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "project".to_string());
    let root = scratch.join(&base);
    let _ = std::fs::create_dir_all(&root);
    for part in parts {
        let (header, body) = part.split_once('\n').unwrap_or((part, ""));
        let (kind, name) = header.split_once(' ').unwrap_or((header, ""));
        // Only names we asked for are rebuilt, so nothing from the host chooses a local path.
        let known = FILES.contains(&name) || MARKERS.contains(&name);
        match kind {
            "program" => program_path = Some(name.trim().to_string()).filter(|p| !p.is_empty()),
            "file" if known => {
                let path = root.join(name);
                if let Some(parent) = path.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::write(&path, body);
            }
            "exists" if known => {
                let _ = std::fs::write(root.join(name), "");
            }
            "dir" if known => {
                let _ = std::fs::create_dir_all(root.join(name));
            }
            _ => {}
        }
    }
    let description = crate::detect::auto_describe(&root);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(RemoteProject {
        directory,
        program_path,
        description,
    })
}

/// `add`'s check of a remote agent: `dir` exists on `host` (else `Err`), described from its
/// files, with where the backend's CLI is there. One ssh round trip.
pub fn check_for_add(
    host: &str,
    dir: &str,
    settings: &Settings,
    backend: crate::backend::Backend,
    config_path: &Path,
) -> Result<RemoteProject, (ErrorType, String)> {
    let mut env = RunEnv::from_process();
    env.ssh_control_dir = Some(super::control_dir(config_path));
    let remote = Remote::new(host, settings, &env).map_err(|why| (ErrorType::CliError, why))?;
    let program = crate::backend::remote_program(settings, backend);
    inspect(&remote, dir, &program.to_string_lossy(), ADD_DEADLINE)
}

/// How long `doctor` waits for one host: ssh's connect timeout plus the probe itself.
pub const DOCTOR_DEADLINE: Duration = Duration::from_secs(super::CONNECT_TIMEOUT_SECS + 5);
/// How long `add` waits for its one round trip.
pub const ADD_DEADLINE: Duration = Duration::from_secs(super::CONNECT_TIMEOUT_SECS + 20);

/// `doctor`'s line for agent `name` when it is remote (`None` for a local agent): `Ok` with what
/// was found (host reachable, directory present, the backend's CLI there), `Err` with what is
/// wrong. One ssh round trip, bounded by `DOCTOR_DEADLINE`.
pub fn doctor_agent(
    name: &str,
    agent: &AgentConfig,
    settings: &Settings,
    config_path: &Path,
) -> Option<Result<String, String>> {
    let host = agent.remote_host()?;
    let mut env = RunEnv::from_process();
    env.ssh_control_dir = Some(super::control_dir(config_path));
    let remote = match Remote::new(host, settings, &env) {
        Ok(r) => r,
        Err(why) => return Some(Err(format!("{name}: {why}"))),
    };
    let program = crate::backend::remote_program(settings, agent.backend);
    let program = program.to_string_lossy();
    let dir = agent.directory.to_string_lossy();
    Some(match inspect(&remote, &dir, &program, DOCTOR_DEADLINE) {
        Ok(p) => match p.program_path {
            Some(path) => Ok(format!(
                "{name}: {host}:{} (reachable, directory present, {program} at {path})",
                p.directory
            )),
            None => Err(format!(
                "{name}: {host}:{} is reachable but '{program}' is not on the PATH there (ssh runs a non-interactive shell)",
                p.directory
            )),
        },
        Err((_, why)) => Err(format!("{name}: {why}")),
    })
}
