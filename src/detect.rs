//! Project introspection without subprocesses (SPEC §4): an agent directory's auto-description,
//! its MCP server names, stacks, databases, and file previews. Every function tolerates missing,
//! unreadable, non-UTF-8 or malformed files (SPEC §12 item 27): such a file simply contributes
//! nothing. Only regular files are opened, so a FIFO named `README.md` cannot block a caller.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use crate::text::split_lines;

/// Text files larger than this are read only up to here; descriptions come from the top.
const READ_CAP: u64 = 1 << 20;

/// Reads at most `cap` bytes of a regular file, decoding invalid UTF-8 lossily.
fn read_text(path: &Path, cap: u64) -> Option<(String, bool)> {
    if !path.is_file() {
        return None;
    }
    let file = File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    let cut = bytes.len() as u64 > cap;
    if cut {
        bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    }
    Some((String::from_utf8_lossy(&bytes).into_owned(), cut))
}

fn read_small(path: &Path) -> Option<String> {
    read_text(path, READ_CAP).map(|(t, _)| t)
}

/// The keys of a JSON object, in file order (serde_json's own map would sort them).
struct KeysInOrder(Vec<String>);

impl<'de> Deserialize<'de> for KeysInOrder {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = KeysInOrder;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<KeysInOrder, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, IgnoredAny)) = m.next_entry::<String, IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(KeysInOrder(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

#[derive(Deserialize)]
struct McpFile {
    #[serde(rename = "mcpServers", default)]
    mcp_servers: Option<KeysInOrder>,
}

/// Server names from `.mcp.json` then `.claude/settings.local.json` (SPEC §4.1), first
/// occurrence wins. A file that is not a JSON object, or whose `mcpServers` is not an object,
/// contributes nothing.
pub fn collect_mcp_servers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for file in [
        dir.join(".mcp.json"),
        dir.join(".claude").join("settings.local.json"),
    ] {
        let Some(text) = read_small(&file) else {
            continue;
        };
        let Ok(parsed) = serde_json::from_str::<McpFile>(&text) else {
            continue;
        };
        for name in parsed.mcp_servers.map(|k| k.0).unwrap_or_default() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Stack labels in SPEC §4.2 order.
pub fn detect_stacks(dir: &Path) -> Vec<&'static str> {
    let has = |name: &str| dir.join(name).exists();
    let mut out = Vec::new();
    if has("Dockerfile") {
        out.push("Docker");
    }
    if has("docker-compose.yaml") || has("docker-compose.yml") {
        out.push("Docker Compose");
    }
    if has("Cargo.toml") {
        out.push("Rust");
    }
    if has("go.mod") {
        out.push("Go");
    }
    if has("requirements.txt") || has("pyproject.toml") {
        out.push("Python");
    }
    if has("package.json") {
        out.push("Node.js");
    }
    out
}

/// Database labels in SPEC §4.3 order.
pub fn detect_dbs(dir: &Path) -> Vec<&'static str> {
    let mut out = Vec::new();
    if dir.join("prisma").is_dir() || dir.join("schema.prisma").exists() {
        out.push("Prisma");
    }
    if dir.join("alembic").is_dir() || dir.join("alembic.ini").exists() {
        out.push("Alembic");
    }
    if dir.join("migrations").is_dir() {
        out.push("migrations");
    }
    out
}

/// Up to two prose lines from the top of CLAUDE.md (SPEC §4.4 step 1).
fn from_claude_md(text: &str) -> Option<String> {
    let lines: Vec<&str> = split_lines(text.trim())
        .take(40)
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("--"))
        .take(2)
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// The first substantial prose line of README.md (SPEC §4.4 step 2).
fn from_readme(text: &str) -> Option<String> {
    split_lines(text.trim())
        .take(20)
        .map(str::trim)
        .find(|l| {
            !l.is_empty()
                && !l.starts_with('#')
                && !l.starts_with('[')
                && !l.starts_with('!')
                && l.chars().count() > 20
        })
        .map(str::to_string)
}

/// The `description = "…"` line of pyproject.toml (SPEC §4.4 step 3). A `description…` line
/// without `=` (upstream raised on it) is skipped and the scan goes on, as in upstream's fix, so
/// a later real `description = "…"` still counts.
fn from_pyproject(text: &str) -> Option<String> {
    let line = split_lines(text)
        .map(str::trim)
        .find(|l| l.starts_with("description") && l.contains('='))?;
    let (_, value) = line.split_once('=')?;
    let value = value.trim().trim_matches('"').trim_matches('\'');
    (!value.is_empty()).then(|| value.to_string())
}

/// A non-blank string `description` of package.json; anything else yields nothing.
fn from_package_json(text: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let desc = value.get("description")?.as_str()?;
    (!desc.trim().is_empty()).then(|| desc.to_string())
}

/// The auto-generated description of SPEC §4.4, parts joined with ` | `.
pub fn auto_describe(dir: &Path) -> String {
    let mut parts = Vec::new();
    let claude = read_small(&dir.join("CLAUDE.md")).and_then(|t| from_claude_md(&t));
    match claude {
        Some(p) => parts.push(p),
        None => parts.extend(read_small(&dir.join("README.md")).and_then(|t| from_readme(&t))),
    }
    parts.extend(read_small(&dir.join("pyproject.toml")).and_then(|t| from_pyproject(&t)));
    parts.extend(read_small(&dir.join("package.json")).and_then(|t| from_package_json(&t)));
    let servers = collect_mcp_servers(dir);
    if !servers.is_empty() {
        parts.push(format!("MCP: {}", servers.join(", ")));
    }
    let stacks = detect_stacks(dir);
    if !stacks.is_empty() {
        parts.push(format!("Stack: {}", stacks.join(", ")));
    }
    let dbs = detect_dbs(dir);
    if !dbs.is_empty() {
        parts.push(format!("DB: {}", dbs.join(", ")));
    }
    if parts.is_empty() {
        let base = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        return format!("Agent in {base}");
    }
    parts.join(" | ")
}

/// The first `max_lines` lines of a file, cut to `max_chars` characters (SPEC §4.5), and whether
/// anything was left out. `None` when `path` is not a regular file; an unreadable one previews as
/// empty and not truncated.
pub fn preview(path: &Path, max_lines: usize, max_chars: usize) -> Option<(String, bool)> {
    if !path.is_file() {
        return None;
    }
    // Each kept character costs at most 4 bytes (2 for a `\r\n` line end), so this window always
    // holds more than either limit keeps; a file longer than it is necessarily truncated.
    let window = (max_chars as u64)
        .saturating_mul(4)
        .saturating_add(16)
        .min(64 << 20);
    let Some((text, cut)) = read_text(path, window) else {
        return Some((String::new(), false));
    };
    let mut lines = split_lines(&text);
    let kept: Vec<&str> = lines.by_ref().take(max_lines).collect();
    let mut truncated = cut || lines.next().is_some();
    let mut joined = kept.join("\n");
    if let Some((at, _)) = joined.char_indices().nth(max_chars) {
        joined.truncate(at);
        truncated = true;
    }
    Some((joined, truncated))
}

/// Whether a configured agent directory is usable: `Ok(true)` a directory, `Ok(false)` missing
/// or not a directory, `Err` when the check itself failed (permission denied on a parent, …),
/// which callers report as `UNREADABLE` rather than as missing.
pub fn directory_health(dir: &Path) -> io::Result<bool> {
    match fs::metadata(dir) {
        Ok(m) => Ok(m.is_dir()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "ad-detect-{name}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ));
            fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
        fn file(&self, rel: &str, body: impl AsRef<[u8]>) -> &Self {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
            self
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn claude_md_wins_over_readme() {
        let d = Dir::new("claude");
        d.file(
            "CLAUDE.md",
            "\n# Title\n-- note\n\n  First line.  \nSecond line\nThird\n",
        )
        .file("README.md", "This README line is long enough to count\n");
        assert_eq!(auto_describe(&d.0), "First line. Second line");
    }

    #[test]
    fn readme_line_rules() {
        let d = Dir::new("readme");
        d.file(
            "README.md",
            "# T\n[![badge](x)](y)\n![img](z)\nshort line\nA sufficiently long line here.\n",
        );
        assert_eq!(auto_describe(&d.0), "A sufficiently long line here.");
    }

    #[test]
    fn python_node_and_mcp_parts_in_order() {
        let d = Dir::new("mixed");
        d.file(
            "pyproject.toml",
            "[project]\nname = \"x\"\ndescription = \"'MCP server for delegation'\"\n",
        )
        .file("package.json", r#"{"description": "web ui"}"#)
        .file(
            ".mcp.json",
            r#"{"mcpServers": {"zeta": {}, "portainer": {}, "alpha": 1}}"#,
        )
        .file(
            ".claude/settings.local.json",
            r#"{"mcpServers": {"alpha": {}, "postgres": {}}}"#,
        )
        .file("Dockerfile", "FROM x");
        assert_eq!(
            collect_mcp_servers(&d.0),
            ["zeta", "portainer", "alpha", "postgres"]
        );
        assert_eq!(
            auto_describe(&d.0),
            "MCP server for delegation | web ui | MCP: zeta, portainer, alpha, postgres | \
             Stack: Docker, Python, Node.js"
        );
    }

    #[test]
    fn odd_files_contribute_nothing() {
        let d = Dir::new("odd");
        d.file("pyproject.toml", "description\n")
            .file("package.json", "[1, 2]")
            .file(".mcp.json", "[\"not\", \"an object\"]")
            .file(".claude/settings.local.json", r#"{"mcpServers": ["a"]}"#)
            .file("CLAUDE.md", b"\xff\xfe# \n")
            .file(
                "README.md",
                b"bytes \xff\xff that are not utf-8 but long enough",
            );
        assert!(collect_mcp_servers(&d.0).is_empty());
        // CLAUDE.md decodes lossily to a replacement-character line, which qualifies.
        assert_eq!(
            auto_describe(&d.0),
            "\u{fffd}\u{fffd}# | Stack: Python, Node.js"
        );
        let e = Dir::new("empty-pkg");
        e.file("package.json", r#"{"description": "   "}"#)
            .file("pyproject.toml", "description = \"\"\n");
        let base = e.0.file_name().unwrap().to_string_lossy().into_owned();
        // Node.js stack comes from package.json's existence; blank descriptions are dropped.
        assert_eq!(auto_describe(&e.0), "Stack: Python, Node.js");
        fs::remove_file(e.0.join("package.json")).unwrap();
        fs::remove_file(e.0.join("pyproject.toml")).unwrap();
        assert_eq!(auto_describe(&e.0), format!("Agent in {base}"));
    }

    #[test]
    fn lines_split_like_python_splitlines() {
        // A classic-Mac CLAUDE.md: bare CR line ends.
        let d = Dir::new("cr");
        d.file("CLAUDE.md", "# Title\rFirst line.\rSecond line\rThird\r");
        assert_eq!(auto_describe(&d.0), "First line. Second line");
        let r = Dir::new("cr-readme");
        r.file(
            "README.md",
            "# T\rshort\rA sufficiently long line here.\rmore\r",
        );
        assert_eq!(auto_describe(&r.0), "A sufficiently long line here.");
        r.file("p.txt", "one\rtwo\rthree");
        assert_eq!(
            preview(&r.0.join("p.txt"), 2, 100),
            Some(("one\ntwo".into(), true))
        );
    }

    #[test]
    fn pyproject_description_without_equals_is_skipped() {
        let d = Dir::new("pyproject-scan");
        d.file(
            "pyproject.toml",
            "[tool.x]\ndescription-file\n[project]\ndescription = \"the real one\"\n",
        );
        assert_eq!(auto_describe(&d.0), "the real one | Stack: Python");
    }

    #[test]
    fn stacks_and_dbs() {
        let d = Dir::new("stacks");
        d.file("docker-compose.yml", "")
            .file("Cargo.toml", "")
            .file("go.mod", "")
            .file("requirements.txt", "")
            .file("schema.prisma", "")
            .file("alembic.ini", "")
            .file("migrations/0001.sql", "");
        assert_eq!(
            detect_stacks(&d.0),
            ["Docker Compose", "Rust", "Go", "Python"]
        );
        assert_eq!(detect_dbs(&d.0), ["Prisma", "Alembic", "migrations"]);
        let e = Dir::new("dbdirs");
        e.file("prisma/schema.prisma", "")
            .file("alembic/env.py", "");
        assert_eq!(detect_dbs(&e.0), ["Prisma", "Alembic"]);
        // `migrations` must be a directory.
        e.file("migrations", "");
        assert_eq!(detect_dbs(&e.0), ["Prisma", "Alembic"]);
        assert!(detect_stacks(Path::new("/nonexistent/ad")).is_empty());
    }

    #[test]
    fn previews_cut_on_lines_and_chars() {
        let d = Dir::new("preview");
        d.file("a.txt", "one\r\ntwo\nthree\n")
            .file("é.txt", "ééééé\n")
            .file("bin", b"\xff\n\xfe");
        let p = |n: &str, l, c| preview(&d.0.join(n), l, c);
        assert_eq!(p("a.txt", 10, 100), Some(("one\ntwo\nthree".into(), false)));
        assert_eq!(p("a.txt", 3, 100), Some(("one\ntwo\nthree".into(), false)));
        assert_eq!(p("a.txt", 2, 100), Some(("one\ntwo".into(), true)));
        assert_eq!(p("a.txt", 10, 5), Some(("one\nt".into(), true)));
        assert_eq!(p("é.txt", 10, 3), Some(("ééé".into(), true)));
        assert_eq!(p("é.txt", 10, 0), Some(("".into(), true)));
        assert_eq!(
            p("bin", 10, 100),
            Some(("\u{fffd}\n\u{fffd}".into(), false))
        );
        assert_eq!(p("missing", 10, 100), None);
        assert_eq!(preview(&d.0, 10, 100), None);
        let big = "x".repeat(10_000);
        d.file("big", &big);
        assert_eq!(p("big", 5, 10), Some(("x".repeat(10), true)));
        assert_eq!(p("big", 5, usize::MAX), Some((big, false)));
    }
}
