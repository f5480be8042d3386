//! The `agents.yaml` model (SPEC §2–§3): agents, settings, where the file lives, and loading it.
//! Submodules: `lenient` (scalar coercion while parsing), `store` (locked, atomic
//! read-modify-write), `patch` (name/mode/tool-list rules shared by the CLI and the MCP tools).
//! Nothing here spawns a process.

mod lenient;
mod patch;
mod store;

use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use patch::{
    AgentPatch, KNOWN_PERMISSION_MODES, parse_tool_csv, permission_mode_warning,
    validate_agent_name,
};
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
        }
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

/// The whole file. `agents` keeps the order of the file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub agents: AgentMap,
    #[serde(default, deserialize_with = "lenient::section")]
    pub settings: Settings,
}

/// Agents in file order. A `Vec` of pairs: lookups are over a handful of entries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentMap(pub Vec<(String, AgentConfig)>);

impl AgentMap {
    pub fn get(&self, name: &str) -> Option<&AgentConfig> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut AgentConfig> {
        self.0.iter_mut().find(|(n, _)| n == name).map(|(_, a)| a)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// Inserts or replaces, keeping the position of an existing entry.
    pub fn insert(&mut self, name: String, agent: AgentConfig) {
        match self.get_mut(&name) {
            Some(slot) => *slot = agent,
            None => self.0.push((name, agent)),
        }
    }
    pub fn remove(&mut self, name: &str) -> Option<AgentConfig> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(at).1)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AgentConfig)> {
        self.0.iter().map(|(n, a)| (n.as_str(), a))
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for AgentMap {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, agent) in &self.0 {
            map.serialize_entry(name, agent)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for AgentMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AgentMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of agent name to agent settings")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<AgentMap, E> {
                Ok(AgentMap::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<AgentMap, A::Error> {
                let mut out = AgentMap::default();
                while let Some((name, agent)) = m.next_entry::<lenient::Key, AgentConfig>()? {
                    out.insert(name.0, agent);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Visit)
    }
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
            value
                .apply_merge()
                .map_err(|e| invalid(InvalidKind::Syntax, e.to_string(), located(&e)))?;
            serde_yaml_ng::from_value(value).map_err(schema)?
        } else {
            serde_yaml_ng::from_str(text).map_err(schema)?
        };
        Ok(config.unwrap_or_default())
    }

    /// The YAML text a save writes (SPEC §3.3): declaration order, absent fields dropped.
    pub fn to_yaml(&self) -> Result<String, serde_yaml_ng::Error> {
        serde_yaml_ng::to_string(self)
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.get(name)
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
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_documents_are_defaults() {
        let p = Path::new("x.yaml");
        assert_eq!(Config::parse(p, b"").ok(), Some(Config::default()));
        assert_eq!(Config::parse(p, b"~\n").ok(), Some(Config::default()));
    }

    #[test]
    fn agents_keep_file_order_and_tri_state_tools() {
        let yaml = "agents:\n  zeta:\n    directory: /tmp\n    allowed_tools: []\n  alpha:\n    directory: /\n";
        let c = Config::parse(Path::new("x"), yaml.as_bytes()).unwrap_or_default();
        let names: Vec<&str> = c.agents.names().collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(
            c.agent("zeta").and_then(|a| a.allowed_tools.clone()),
            Some(vec![])
        );
        assert_eq!(c.agent("alpha").and_then(|a| a.allowed_tools.clone()), None);
        assert_eq!(c.agent("alpha").map(|a| a.timeout), Some(300));
    }

    #[test]
    fn merge_keys_apply_like_pyyaml() {
        let yaml = "x-defaults: &d\n  timeout: 60\n  directory: /tmp\n  model: haiku\n\
                    x-more: &m\n  description: from m\n  timeout: 5\n\
                    agents:\n  a:\n    <<: *d\n    model: sonnet\n  b:\n    <<: [*m, *d]\n";
        let c = Config::parse(Path::new("x"), yaml.as_bytes()).unwrap();
        let a = c.agent("a").unwrap();
        assert_eq!(a.directory, Path::new("/tmp"));
        assert_eq!(a.timeout, 60);
        assert_eq!(a.model.as_deref(), Some("sonnet"), "explicit keys win");
        let b = c.agent("b").unwrap();
        assert_eq!(b.timeout, 5, "the first merged mapping wins");
        assert_eq!(b.description, "from m");
        assert_eq!(b.directory, Path::new("/tmp"));
        let names: Vec<&str> = c.agents.names().collect();
        assert_eq!(names, ["a", "b"]);
        // A merge of a scalar is an error, not a silent drop.
        let bad = "agents:\n  a:\n    <<: 3\n    directory: /tmp\n";
        assert!(Config::parse(Path::new("x"), bad.as_bytes()).is_err());
    }

    #[test]
    fn duplicate_keys_are_rejected_by_name() {
        let yaml = "agents:\n  a:\n    directory: /tmp\n  a:\n    directory: /\n";
        match Config::parse(Path::new("f.yaml"), yaml.as_bytes()) {
            Err(Error::Invalid {
                kind: InvalidKind::Syntax,
                message,
                location: Some(_),
                ..
            }) => assert!(message.contains("duplicate key \"a\""), "{message}"),
            other => panic!("expected a duplicate key error, got {other:?}"),
        }
    }

    #[test]
    fn yaml_errors_carry_a_location() {
        match Config::parse(Path::new("f.yaml"), b"agents: [\n") {
            Err(Error::Invalid {
                location: Some(_), ..
            }) => {}
            other => panic!("expected located error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod lenient_tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Config, Error> {
        Config::parse(Path::new("a.yaml"), yaml.as_bytes())
    }

    fn schema_error(yaml: &str) -> (String, Option<(usize, usize)>) {
        match parse(yaml) {
            Err(Error::Invalid {
                kind: InvalidKind::Schema,
                message,
                location,
                ..
            }) => (message, location),
            other => panic!("expected schema error for {yaml:?}, got {other:?}"),
        }
    }

    #[test]
    fn scalars_are_coerced() {
        let c = parse(
            "agents:\n  a:\n    directory: /x\n    timeout: \"30\"\n    max_budget_usd: '2'\n    model: 4\n\
             settings:\n  default_timeout: 60.0\n  max_concurrency: ' 7 '\n  cache:\n    enabled: no\n    ttl: 0\n",
        )
        .unwrap();
        let a = c.agent("a").unwrap();
        assert_eq!(a.timeout, 30);
        assert_eq!(a.max_budget_usd, Some(2.0));
        assert_eq!(a.model.as_deref(), Some("4"));
        assert_eq!(c.settings.default_timeout, 60);
        assert_eq!(c.settings.max_concurrency, 7);
        assert!(!c.settings.cache.enabled);
        assert_eq!(c.settings.cache.ttl, 0);
        for (word, value) in [("yes", true), ("off", false), ("1", true), ("False", false)] {
            let c = parse(&format!("settings:\n  cache:\n    enabled: {word}\n")).unwrap();
            assert_eq!(c.settings.cache.enabled, value, "{word}");
        }
    }

    #[test]
    fn nulls_mean_defaults() {
        let c = parse("agents:\nsettings:\n  cache:\n  default_allowed_tools:\n").unwrap();
        assert_eq!(c, Config::default());
        let c =
            parse("agents:\n  a:\n    directory: /x\n    timeout:\n    allowed_tools:\n").unwrap();
        assert_eq!(c.agent("a").unwrap().timeout, 300);
        assert_eq!(c.agent("a").unwrap().allowed_tools, None);
    }

    #[test]
    fn bad_values_are_located_schema_errors() {
        let (m, loc) = schema_error("agents:\n  a:\n    directory: /x\n    timeout: 30.5\n");
        assert!(m.contains("timeout") && m.contains("whole number"), "{m}");
        assert_eq!(loc.map(|l| l.0), Some(4));
        let (m, _) = schema_error("agents:\n  a:\n    directory: /x\n    timeout: -1\n");
        assert!(m.contains("greater than or equal to 0"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    directory: /x\n    max_budget_usd: -0.5\n");
        assert!(m.contains("greater than or equal to 0"), "{m}");
        let (m, _) = schema_error("settings:\n  default_timeout: 0\n");
        assert!(m.contains("greater than or equal to 1"), "{m}");
        let (m, _) = schema_error("settings:\n  max_dispatch_depth: 0\n");
        assert!(m.contains("max_dispatch_depth"), "{m}");
        let (m, _) = schema_error("settings:\n  cache:\n    max_size: 0\n");
        assert!(m.contains("max_size"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    timeout: 5\n");
        assert!(m.contains("directory"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    directory: [1]\n");
        assert!(m.contains("directory"), "{m}");
        let (m, _) = schema_error("agents:\n  a:\n    directory: /x\n    allowed_tools: Bash\n");
        assert!(m.contains("allowed_tools"), "{m}");
        let (m, _) = schema_error("settings:\n  cache:\n    enabled: maybe\n");
        assert!(m.contains("boolean"), "{m}");
        schema_error("- just\n- a list\n");
        schema_error("agents: 5\n");
    }

    #[test]
    fn a_huge_scalar_config_is_not_quoted_whole() {
        let dir = std::env::temp_dir().join(format!("ad-cfg-huge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agents.yaml");
        std::fs::write(&path, "z".repeat(1_000_000)).unwrap();
        let err = Config::load(&path).unwrap_err();
        let shown = err.to_string();
        assert!(shown.len() < 1_000, "{} bytes", shown.len());
        assert!(shown.contains("more characters not shown"), "{shown}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn syntax_and_encoding_errors_are_told_apart() {
        let e = parse("agents: [\n").unwrap_err();
        assert_eq!(e.kind(), Some(InvalidKind::Syntax));
        assert!(e.headline().ends_with("is not valid YAML:"));
        let e = Config::parse(Path::new("a.yaml"), b"agents:\n  x\xff: 1\n").unwrap_err();
        assert_eq!(e.kind(), Some(InvalidKind::Encoding));
        assert_eq!(e.location(), Some((2, 4)));
        assert!(!e.hint().is_empty());
    }

    #[test]
    fn directories_resolve_on_load_but_not_as_written() {
        let dir = std::env::temp_dir().join(format!("ad-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("agents.yaml");
        std::fs::write(
            &file,
            "agents:\n  a:\n    directory: /tmp/../tmp/./nonexistent-ad/x\n",
        )
        .unwrap();
        let resolved = Config::load(&file).unwrap();
        let raw = Config::load_as_written(&file).unwrap();
        let tmp = Path::new("/tmp").canonicalize().unwrap();
        assert_eq!(
            resolved.agent("a").unwrap().directory,
            tmp.join("nonexistent-ad").join("x")
        );
        assert_eq!(
            raw.agent("a").unwrap().directory,
            Path::new("/tmp/../tmp/./nonexistent-ad/x")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fresh_config_text_matches_the_reference() {
        assert_eq!(
            Config::default().to_yaml().unwrap(),
            "agents: {}\nsettings:\n  default_timeout: 300\n  default_allowed_tools: []\n  \
             default_disallowed_tools: []\n  max_dispatch_depth: 3\n  max_concurrency: 5\n  \
             cache:\n    enabled: true\n    ttl: 300\n    max_size: 1000\n"
        );
    }
}
