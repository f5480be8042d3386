//! The `agents.yaml` model (SPEC §2–§3): agents, settings, where the file lives, and loading it.
//! Saving (locked, atomic) lives here too. Nothing here spawns a process.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_AGENT_TIMEOUT: u64 = 300;

/// One entry under `agents:` (SPEC §2.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    pub directory: PathBuf,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_agent_timeout")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    /// Tri-state: `None` inherits the settings default, `Some(vec![])` means explicitly none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_ttl")]
    pub ttl: u64,
    #[serde(default = "default_max_size")]
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
    #[serde(default = "default_agent_timeout")]
    pub default_timeout: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_budget_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_permission_mode: Option<String>,
    #[serde(default)]
    pub default_allowed_tools: Vec<String>,
    #[serde(default)]
    pub default_disallowed_tools: Vec<String>,
    #[serde(default = "default_max_depth")]
    pub max_dispatch_depth: u32,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default)]
    pub cache: CacheSettings,
    /// Terminal jobs older than this many days are purged at server start; 0 keeps them.
    #[serde(default, skip_serializing_if = "is_zero")]
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
    #[serde(default)]
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
                while let Some((name, agent)) = m.next_entry::<String, AgentConfig>()? {
                    out.insert(name, agent);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// A config that could not be read or written, always naming the file.
#[derive(Debug)]
pub enum Error {
    Io {
        path: PathBuf,
        err: std::io::Error,
    },
    /// YAML syntax or schema violation; `location` is `line L column C` when known.
    Invalid {
        path: PathBuf,
        message: String,
        location: Option<(usize, usize)>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, err } => write!(f, "config at {}: {}", path.display(), err),
            Error::Invalid {
                path,
                message,
                location: Some((line, col)),
            } => write!(
                f,
                "config at {} is invalid (line {}, column {}): {}",
                path.display(),
                line,
                col,
                message
            ),
            Error::Invalid {
                path,
                message,
                location: None,
            } => {
                write!(f, "config at {} is invalid: {}", path.display(), message)
            }
        }
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

impl Config {
    /// Loads the file at `path`. A missing file or an empty document is the default config.
    pub fn load(path: &Path) -> Result<Config, Error> {
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

    /// Parses YAML bytes that came from `path` (used only in messages).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Config, Error> {
        let text = std::str::from_utf8(bytes).map_err(|e| Error::Invalid {
            path: path.to_path_buf(),
            message: format!("not valid UTF-8: {e}"),
            location: None,
        })?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Option<Config> = serde_yaml_ng::from_str(text).map_err(|e| Error::Invalid {
            path: path.to_path_buf(),
            location: e.location().map(|l| (l.line(), l.column())),
            message: e.to_string(),
        })?;
        Ok(config.unwrap_or_default())
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.get(name)
    }

    /// The effective timeout of an agent: its own, or `settings.default_timeout` when 0.
    pub fn effective_timeout(&self, agent: &AgentConfig) -> u64 {
        if agent.timeout == 0 {
            self.settings.default_timeout
        } else {
            agent.timeout
        }
    }
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
    fn yaml_errors_carry_a_location() {
        match Config::parse(Path::new("f.yaml"), b"agents: [\n") {
            Err(Error::Invalid {
                location: Some(_), ..
            }) => {}
            other => panic!("expected located error, got {other:?}"),
        }
    }
}
