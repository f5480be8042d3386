//! The `agents.yaml` model (SPEC §2–§3): agents, groups, settings, where the file lives, and
//! loading it. Submodules: `lenient` (scalar coercion while parsing), `store` (locked, atomic
//! read-modify-write), `lossless` (a save keeps every key it does not understand), `patch`
//! (name/mode/label rules shared by the CLI and the MCP tools), `groups` (the `groups:` model),
//! `problems` (what `doctor` reports about a loaded config). Nothing here spawns a process.

mod groups;
mod lenient;
mod lossless;
mod named;
mod patch;
mod problems;
mod store;

use std::collections::BTreeMap;

use crate::backend::Backend;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use groups::{Group, GroupMember, parse_member_spec, validate_group_name};
pub use named::{AgentMap, GroupMap, NamedMap};
pub use patch::{
    AgentPatch, PERMISSION_MODES, check_backend, parse_labels, parse_tool_csv, validate_agent_name,
    validate_permission_mode,
};
pub use problems::{Problem, Severity, problems};
pub use store::{LOCK_TIMEOUT, MutateError, init_file, mutate, mutate_with_timeout};

pub const DEFAULT_AGENT_TIMEOUT: u64 = 300;

/// One entry under `agents:` (SPEC §2.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    #[serde(deserialize_with = "lenient::path")]
    pub directory: PathBuf,
    #[serde(default, deserialize_with = "lenient::string")]
    pub description: String,
    #[serde(
        default = "default_agent_timeout",
        deserialize_with = "lenient::uint::<_, 0, DEFAULT_AGENT_TIMEOUT>"
    )]
    pub timeout: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::budget"
    )]
    pub max_budget_usd: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub model: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub permission_mode: Option<String>,
    /// Tri-state: `None` inherits the settings default, `Some(vec![])` means explicitly none.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_list"
    )]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_list"
    )]
    pub disallowed_tools: Option<Vec<String>>,
    /// The coding CLI that runs this agent; `claude` (the default) is not written.
    #[serde(default, skip_serializing_if = "Backend::is_default")]
    pub backend: Backend,
    /// Short labels for what the agent is good at (0.16.0 `capabilities`); descriptive only,
    /// never passed to the child.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::list"
    )]
    pub capabilities: Vec<String>,
    /// Labels for abilities that deserve extra scrutiny (e.g. `restart_services`).
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "lenient::list"
    )]
    pub risky_capabilities: Vec<String>,
    /// Standing orders appended to the child's system prompt on every dispatch; empty = none.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "lenient::string"
    )]
    pub instructions: String,
}

fn default_agent_timeout() -> u64 {
    DEFAULT_AGENT_TIMEOUT
}

impl AgentConfig {
    pub fn new(directory: PathBuf) -> Self {
        AgentConfig {
            directory,
            description: String::new(),
            timeout: DEFAULT_AGENT_TIMEOUT,
            max_budget_usd: None,
            model: None,
            permission_mode: None,
            allowed_tools: None,
            disallowed_tools: None,
            backend: Backend::Claude,
            capabilities: Vec::new(),
            risky_capabilities: Vec::new(),
            instructions: String::new(),
        }
    }

    /// The standing instructions, `None` when there are none worth sending (blank text).
    pub fn instructions(&self) -> Option<&str> {
        Some(self.instructions.trim()).filter(|t| !t.is_empty())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheSettings {
    #[serde(default = "yes", deserialize_with = "lenient::bool_default_true")]
    pub enabled: bool,
    #[serde(
        default = "default_ttl",
        deserialize_with = "lenient::uint::<_, 0, 300>"
    )]
    pub ttl: u64,
    #[serde(
        default = "default_max_size",
        deserialize_with = "lenient::usize_::<_, 1, 1000>"
    )]
    pub max_size: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            ttl: default_ttl(),
            max_size: default_max_size(),
        }
    }
}

/// `settings:` (SPEC §2.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    #[serde(
        default = "default_agent_timeout",
        deserialize_with = "lenient::uint::<_, 1, DEFAULT_AGENT_TIMEOUT>"
    )]
    pub default_timeout: u64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::budget"
    )]
    pub default_max_budget_usd: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub default_permission_mode: Option<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub default_allowed_tools: Vec<String>,
    #[serde(default, deserialize_with = "lenient::list")]
    pub default_disallowed_tools: Vec<String>,
    #[serde(
        default = "default_max_depth",
        deserialize_with = "lenient::uint32::<_, 1, 3>"
    )]
    pub max_dispatch_depth: u32,
    #[serde(
        default = "default_max_concurrency",
        deserialize_with = "lenient::usize_::<_, 1, 5>"
    )]
    pub max_concurrency: usize,
    #[serde(default, deserialize_with = "lenient::section")]
    pub cache: CacheSettings,
    /// Terminal jobs older than this many days are purged at server start; 0 keeps them.
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient::uint::<_, 0, 0>"
    )]
    pub job_retention_days: u64,
    /// Per-backend overrides (`backends: {codex: {command: /opt/codex/bin/codex}}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub backends: BTreeMap<String, BackendSettings>,
    /// Send every child the dispatch protocol as an appended system prompt (0.16.0); `false`
    /// gives raw `claude -p` behaviour.
    #[serde(
        default = "yes",
        skip_serializing_if = "is_true",
        deserialize_with = "lenient::bool_default_true"
    )]
    pub dispatch_protocol: bool,
    /// Append one line per dispatch to the usage log (0.16.0 `usage.jsonl`).
    #[serde(
        default = "yes",
        skip_serializing_if = "is_true",
        deserialize_with = "lenient::bool_default_true"
    )]
    pub usage_log: bool,
    /// Live children across every process that uses this config directory (`gate`); 0 = no
    /// machine-wide cap. `max_concurrency` still applies inside each process.
    #[serde(
        default,
        skip_serializing_if = "is_zero_usize",
        deserialize_with = "lenient::usize_::<_, 0, 0>"
    )]
    pub machine_max_concurrency: usize,
}

/// `settings.backends.<name>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendSettings {
    /// The program to run instead of the backend's name on `PATH`: a path, or a name.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient::opt_string"
    )]
    pub command: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_timeout: default_agent_timeout(),
            default_max_budget_usd: None,
            default_permission_mode: None,
            default_allowed_tools: Vec::new(),
            default_disallowed_tools: Vec::new(),
            max_dispatch_depth: default_max_depth(),
            max_concurrency: default_max_concurrency(),
            cache: CacheSettings::default(),
            job_retention_days: 0,
            backends: BTreeMap::new(),
            dispatch_protocol: true,
            usage_log: true,
            machine_max_concurrency: 0,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_ttl() -> u64 {
    300
}
fn default_max_size() -> usize {
    1000
}
fn default_max_depth() -> u32 {
    3
}
fn default_max_concurrency() -> usize {
    5
}
fn is_zero(n: &u64) -> bool {
    *n == 0
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_zero_usize(n: &usize) -> bool {
    *n == 0
}

/// The whole file. `agents` and `groups` keep the order of the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub agents: AgentMap,
    /// Named working sets of agents (0.16.0); not written while empty.
    #[serde(default, skip_serializing_if = "NamedMap::is_empty")]
    pub groups: GroupMap,
    #[serde(default, deserialize_with = "lenient::section")]
    pub settings: Settings,
    /// The document as read, so a save can keep what this model does not know.
    #[serde(skip)]
    origin: lossless::Origin,
}

/// Why a config file was rejected; the CLI prints a different headline for each (SPEC §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidKind {
    /// Not parseable as YAML at all.
    Syntax,
    /// Valid YAML whose shape or values break the schema (wrong type, negative timeout, …).
    Schema,
    /// Not UTF-8 text.
    Encoding,
}

/// A config that could not be read or written, always naming the file.
#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        err: std::io::Error,
    },
    /// `location` is `(line, column)`, both 1-based, when known; `message` is the parser's text.
    Invalid {
        path: PathBuf,
        kind: InvalidKind,
        message: String,
        location: Option<(usize, usize)>,
    },
}

impl Error {
    pub fn path(&self) -> &Path {
        match self {
            Error::Io { path, .. } | Error::Invalid { path, .. } => path,
        }
    }

    /// `None` for I/O errors.
    pub fn kind(&self) -> Option<InvalidKind> {
        match self {
            Error::Io { .. } => None,
            Error::Invalid { kind, .. } => Some(*kind),
        }
    }

    pub fn location(&self) -> Option<(usize, usize)> {
        match self {
            Error::Io { .. } => None,
            Error::Invalid { location, .. } => *location,
        }
    }

    /// The first line of a report, e.g. `config at /x/agents.yaml is not valid YAML:`.
    pub fn headline(&self) -> String {
        let what = match self {
            Error::Io { .. } => "could not be read",
            Error::Invalid { kind, .. } => match kind {
                InvalidKind::Syntax => "is not valid YAML",
                InvalidKind::Schema => "has an invalid schema",
                InvalidKind::Encoding => "is not valid UTF-8",
            },
        };
        format!("config at {} {what}:", self.path().display())
    }

    /// The parser's or the OS's own words, including `at line L column C` when known. The
    /// parser quotes the offending value, which for a config that is one big scalar (a symlink
    /// to some large file) is the whole file: the quote is cut to `MAX_DETAILS_CHARS`.
    pub fn details(&self) -> String {
        let full = match self {
            Error::Io { err, .. } => err.to_string(),
            Error::Invalid { message, .. } => message.clone(),
        };
        let kept = crate::text::first_chars(&full, MAX_DETAILS_CHARS);
        if kept.len() == full.len() {
            return full;
        }
        let dropped = full[kept.len()..].chars().count();
        format!("{kept}… ({dropped} more characters not shown)")
    }

    /// What the user can do about it.
    pub fn hint(&self) -> String {
        let path = self.path().display();
        match self {
            Error::Io { .. } => format!(
                "Check that {path} is a readable file (and its directory accessible), \
                 or point AGENT_DISPATCH_CONFIG elsewhere."
            ),
            Error::Invalid { .. } => format!(
                "Fix {path} by hand (it is never overwritten while it fails to load), \
                 or move it aside and run 'agent-dispatch init' for a fresh one."
            ),
        }
    }
}

/// How much of a parser message an error quotes.
pub const MAX_DETAILS_CHARS: usize = 400;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.headline(), self.details())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { err, .. } => Some(err),
            Error::Invalid { .. } => None,
        }
    }
}

/// `AGENT_DISPATCH_CONFIG` verbatim, else `~/.config/agent-dispatch/agents.yaml` (SPEC §3.1).
pub fn config_path() -> PathBuf {
    match std::env::var_os("AGENT_DISPATCH_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => home_dir()
            .join(".config")
            .join("agent-dispatch")
            .join("agents.yaml"),
    }
}

/// `AGENT_DISPATCH_JOBS_DIR` (with `~` expanded), else `jobs/` next to the config file.
pub fn jobs_dir(config_path: &Path) -> PathBuf {
    match std::env::var_os("AGENT_DISPATCH_JOBS_DIR") {
        Some(p) if !p.is_empty() => expand_tilde(Path::new(&p)),
        _ => config_path.parent().unwrap_or(Path::new(".")).join("jobs"),
    }
}

pub fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Expands a leading `~` or `~/`; `~user` forms are left as they are.
pub fn expand_tilde(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home_dir().join(rest),
        Err(_) => p.to_path_buf(),
    }
}

/// An agent directory as the tools use it (SPEC §2.1): `~` expanded, made absolute against the
/// process cwd, symlinks resolved as far as the path exists. Never fails: a path that cannot be
/// resolved is returned in its absolute, lexically normalised form.
pub fn resolve_directory(raw: &str) -> PathBuf {
    resolve_path(Path::new(raw))
}

/// [`resolve_directory`] for paths that are not UTF-8.
pub fn resolve_path(raw: &Path) -> PathBuf {
    let expanded = expand_tilde(raw);
    let absolute = if expanded.is_absolute() {
        expanded
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(expanded)
    };
    if let Ok(real) = absolute.canonicalize() {
        return real;
    }
    // Like Python's `resolve(strict=False)`: resolve the longest existing prefix, keep the rest.
    let normal = normalise(&absolute);
    let mut existing = normal.as_path();
    let mut rest = Vec::new();
    while let Some(parent) = existing.parent() {
        if let Some(name) = existing.file_name() {
            rest.push(name.to_os_string());
        }
        existing = parent;
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            out.extend(rest.iter().rev());
            return out;
        }
    }
    normal
}

/// Removes `.` and folds `..` without touching the filesystem.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

impl Config {
    /// Loads the file at `path`, agent directories resolved (SPEC §3.2). A missing file or an
    /// empty document is the default config.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let mut config = Config::load_as_written(path)?;
        for (_, agent) in config.agents.0.iter_mut() {
            agent.directory = resolve_path(&agent.directory);
        }
        Ok(config)
    }

    /// Loads without resolving directories, so a save keeps `~/…` forms the user wrote.
    pub(crate) fn load_as_written(path: &Path) -> Result<Config, Error> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(err) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    err,
                });
            }
        };
        Config::parse(path, &bytes)
    }

    /// Parses YAML bytes that came from `path` (used only in messages). Directories are left as
    /// written.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, Error> {
        let invalid = |kind, message: String, location| Error::Invalid {
            path: path.to_path_buf(),
            kind,
            message,
            location,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            invalid(
                InvalidKind::Encoding,
                format!(
                    "invalid UTF-8 byte at line {line} column {column} (byte offset {})",
                    e.valid_up_to()
                ),
                Some((line, column)),
            )
        })?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let located = |e: &serde_yaml_ng::Error| e.location().map(|l| (l.line(), l.column()));
        let schema =
            |e: serde_yaml_ng::Error| invalid(InvalidKind::Schema, e.to_string(), located(&e));
        // Parse twice: the untyped pass separates syntax from schema errors; the typed pass
        // reads from the text again so that its errors still carry a position.
        let mut value = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).map_err(|e| {
            invalid(
                InvalidKind::Syntax,
                duplicate_key_wording(&e.to_string()),
                located(&e),
            )
        })?;
        // PyYAML's safe loader applies merge keys (`<<: *defaults`); serde_yaml_ng only does so
        // on a `Value`, whose typed errors no longer know their line. So only a text that may
        // hold a merge key takes that route; everything else keeps exact error positions.
        let config: Option<Config> = if text.contains("<<") {
            let raw = value.clone();
            value
                .apply_merge()
                .map_err(|e| invalid(InvalidKind::Syntax, e.to_string(), located(&e)))?;
            let typed: Option<Config> = serde_yaml_ng::from_value(value).map_err(schema)?;
            value = raw;
            typed
        } else {
            serde_yaml_ng::from_str(text).map_err(schema)?
        };
        let mut config = config.unwrap_or_default();
        config.origin = lossless::Origin::of(value);
        Ok(config)
    }

    /// The YAML text a save writes (SPEC §3.3). A config read from a file is written back with
    /// every key this model does not know kept in place, and every value it did not change kept
    /// as written; only what changed is written in declaration order. A fresh config is written
    /// whole, absent fields dropped. Comments are not kept.
    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        let typed = serde_yaml_ng::to_value(self)?;
        let doc = self.origin.overlay(typed)?;
        serde_yaml_ng::to_string(&doc)
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.get(name)
    }

    /// The group called `name`.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.get(name)
    }

    /// Names of the groups that list `agent` as a member, in file order.
    pub fn groups_with_member(&self, agent: &str) -> Vec<&str> {
        self.groups
            .iter()
            .filter(|(_, g)| g.has_member(agent))
            .map(|(n, _)| n)
            .collect()
    }
}

/// serde_yaml_ng says "duplicate entry with key \"a\"". PyYAML silently kept the last of two
/// equal keys, so a config that used to load now fails on this; the message must name the
/// problem in the words a user will search for.
fn duplicate_key_wording(message: &str) -> String {
    message
        .replacen("duplicate entry with key", "duplicate key", 1)
        .replacen("duplicate entry", "duplicate key", 1)
}

#[cfg(test)]
mod tests;
