//! Looking at a remote agent's project in one ssh round trip: whether the directory is there,
//! where the backend's CLI is on the host, and the few files `detect::auto_describe` reads, so
//! `add` describes a remote project as it would a local one. The files come back on stdout
//! between separator lines carrying a fresh random token (a file cannot fake one), are rebuilt
//! in a private temporary directory here, and described by the same code as a local project.

use std::path::Path;
use std::time::Duration;

use super::{Remote, shell};
use crate::result::ErrorType;

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

/// `doctor`'s line for a remote agent: `Ok` with what was found (host reachable, directory
/// present, the CLI's path there), or `Err` with what is wrong. Bounded by `deadline`.
pub fn doctor_check(
    remote: &Remote,
    dir: &str,
    program: &str,
    deadline: Duration,
) -> Result<String, String> {
    match inspect(remote, dir, program, deadline) {
        Ok(p) => match p.program_path {
            Some(path) => Ok(format!(
                "{}: reachable, {} present, {program} at {path}",
                remote.host, p.directory
            )),
            None => Err(format!(
                "{}: reachable, {} present, but '{program}' is not on the PATH there",
                remote.host, p.directory
            )),
        },
        Err((_, why)) => Err(why),
    }
}
