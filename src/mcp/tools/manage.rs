//! Tools that look at or change the agent roster and the cache, without running `claude`:
//! `list_agents`, `inspect_agent`, `add_agent`, `remove_agent`, `update_agent`, `cache_stats`,
//! `cache_clear` (SPEC §7.5 tools 1, 2, 8, 9, 10, 18, 19).

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{Args, ToolCtx, ToolError, ToolResult};
use crate::app::{App, Observer};
use crate::backend::Backend;
use crate::config::{self, AgentConfig, AgentPatch};
use crate::detect;
use crate::journal;
use crate::pyfmt;

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// `backend`: `""` leaves it (or means claude for a new agent).
fn backend_arg(args: &Args) -> Result<Option<Backend>, ToolError> {
    match args.opt_string("backend")? {
        None => Ok(None),
        Some(b) => Backend::parse(&b).map(Some).map_err(ToolError::new),
    }
}

fn insert_tools(obj: &mut Map<String, Value>, agent: &AgentConfig) {
    obj.insert("backend".into(), json!(agent.backend));
    if let Some(host) = agent.remote_host() {
        obj.insert("host".into(), json!(host));
    }
    if let Some(mode) = agent.permission_mode.as_deref().filter(|m| !m.is_empty()) {
        obj.insert("permission_mode".into(), json!(mode));
    }
    // `[]` is shown: it means "explicitly none", unlike an absent list that inherits.
    if let Some(tools) = &agent.allowed_tools {
        obj.insert("allowed_tools".into(), json!(tools));
    }
    if let Some(tools) = &agent.disallowed_tools {
        obj.insert("disallowed_tools".into(), json!(tools));
    }
    if !agent.capabilities.is_empty() {
        obj.insert("capabilities".into(), json!(agent.capabilities));
    }
    if !agent.risky_capabilities.is_empty() {
        obj.insert("risky_capabilities".into(), json!(agent.risky_capabilities));
    }
}

/// `typical` (median and p90 seconds, median cost) once the journal holds 3 runs of the agent;
/// memoised on the journal's size and mtime, so discovery stays cheap.
fn insert_typical(
    obj: &mut Map<String, Value>,
    app: &App,
    settings: &config::Settings,
    name: &str,
) {
    if !settings.usage_log {
        return;
    }
    if let Some(t) = journal::typical(app.config_path(), name) {
        obj.insert("typical".into(), json!(t));
    }
}

pub fn list_agents(ctx: &ToolCtx, _args: &Args) -> ToolResult {
    let config = ctx.app().config()?;
    if config.agents.is_empty() {
        return Err(ToolError::new(
            "No agents configured. Run: agent-dispatch add <name> <directory>",
        ));
    }
    let mut out = Vec::with_capacity(config.agents.len());
    for (name, agent) in config.agents.iter() {
        let mut obj = Map::new();
        obj.insert("name".into(), json!(name));
        if let Some(host) = agent.remote_host() {
            // Listing stays cheap: a remote project is not looked at (inspect_agent does).
            obj.insert("host".into(), json!(host));
            obj.insert("directory".into(), json!(agent.directory.to_string_lossy()));
            obj.insert("description".into(), json!(agent.description));
            obj.insert("healthy".into(), json!("REMOTE"));
            insert_tools(&mut obj, agent);
            insert_typical(&mut obj, ctx.app(), &config.settings, name);
            out.push(Value::Object(obj));
            continue;
        }
        let dir = &config::resolve_path(&agent.directory);
        obj.insert("directory".into(), json!(dir.to_string_lossy()));
        obj.insert("description".into(), json!(agent.description));
        match detect::directory_health(dir) {
            Err(_) => {
                obj.insert("healthy".into(), json!("UNREADABLE"));
                obj.insert("has_claude_md".into(), json!(false));
                obj.insert("has_mcp_config".into(), json!(false));
            }
            Ok(healthy) => {
                obj.insert("healthy".into(), json!(healthy));
                obj.insert(
                    "has_claude_md".into(),
                    json!(healthy && exists(&dir.join("CLAUDE.md"))),
                );
                obj.insert(
                    "has_mcp_config".into(),
                    json!(healthy && exists(&dir.join(".mcp.json"))),
                );
                if healthy {
                    let servers = detect::collect_mcp_servers(dir);
                    let stacks = detect::detect_stacks(dir);
                    let dbs = detect::detect_dbs(dir);
                    if !servers.is_empty() {
                        obj.insert("mcp_servers".into(), json!(servers));
                    }
                    if !stacks.is_empty() {
                        obj.insert("stacks".into(), json!(stacks));
                    }
                    if !dbs.is_empty() {
                        obj.insert("dbs".into(), json!(dbs));
                    }
                }
            }
        }
        insert_tools(&mut obj, agent);
        insert_typical(&mut obj, ctx.app(), &config.settings, name);
        out.push(Value::Object(obj));
    }
    ctx.log(&format!("Found {} configured agents", out.len()));
    Ok(Value::Array(out))
}

pub fn inspect_agent(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let name = args.string("name")?;
    let preview_lines = args.int("preview_lines")?;
    let doc = inspect(ctx.app(), &name, preview_lines)?;
    // As before the split: only a healthy project's inspection is logged.
    if doc["healthy"] == true {
        let dir = doc["directory"].as_str().unwrap_or("");
        ctx.log(&format!("Inspected {name} ({dir})"));
    }
    Ok(doc)
}

/// What `inspect_agent` returns (also the `agent-dispatch://agents/{name}` resource).
pub fn inspect(app: &App, name: &str, preview_lines: i64) -> ToolResult {
    let config = app.config()?;
    let agent = app.target(&config, name, 0)?.agent;
    let dir = &agent.directory;
    let mut obj = Map::new();
    obj.insert("name".into(), json!(name));
    obj.insert("directory".into(), json!(dir.to_string_lossy()));
    obj.insert("description".into(), json!(agent.description));
    obj.insert("timeout".into(), json!(agent.timeout));
    if let Some(model) = agent.model.as_deref().filter(|m| !m.is_empty()) {
        obj.insert("model".into(), json!(model));
    }
    if let Some(budget) = agent.max_budget_usd {
        obj.insert("max_budget_usd".into(), json!(budget));
    }
    insert_tools(&mut obj, &agent);
    if let Some(instructions) = agent.instructions() {
        obj.insert("instructions".into(), json!(instructions));
    }
    insert_typical(&mut obj, app, &config.settings, name);
    if let Some(host) = agent.remote_host() {
        obj.insert("host".into(), json!(host));
        let probe = crate::remote::probe::check_for_add(
            host,
            &dir.to_string_lossy(),
            &config.settings,
            agent.backend,
            app.config_path(),
        );
        match probe {
            Ok(found) => {
                obj.insert("healthy".into(), json!(found.program_path.is_some()));
                obj.insert("remote_directory".into(), json!(found.directory));
                if let Some(path) = found.program_path {
                    obj.insert("remote_program".into(), json!(path));
                }
                obj.insert("detected".into(), json!(found.description));
            }
            Err((_, why)) => {
                obj.insert("healthy".into(), json!(false));
                obj.insert("error".into(), json!(why));
            }
        }
        return Ok(Value::Object(obj));
    }
    match detect::directory_health(dir) {
        Err(_) => {
            obj.insert("healthy".into(), json!("UNREADABLE"));
            return Ok(Value::Object(obj));
        }
        Ok(false) => {
            obj.insert("healthy".into(), json!(false));
            return Ok(Value::Object(obj));
        }
        Ok(true) => {}
    }
    obj.insert("healthy".into(), json!(true));
    obj.insert(
        "mcp_servers".into(),
        json!(detect::collect_mcp_servers(dir)),
    );
    obj.insert("stacks".into(), json!(detect::detect_stacks(dir)));
    obj.insert("dbs".into(), json!(detect::detect_dbs(dir)));
    obj.insert(
        "has_claude_md".into(),
        json!(exists(&dir.join("CLAUDE.md"))),
    );
    obj.insert("has_readme".into(), json!(exists(&dir.join("README.md"))));
    obj.insert(
        "has_mcp_config".into(),
        json!(exists(&dir.join(".mcp.json"))),
    );
    let lines = preview_lines.clamp(0, 200) as usize;
    if lines > 0 {
        let max_chars = (lines * 200).max(200);
        for (file, key) in [("CLAUDE.md", "claude_md"), ("README.md", "readme")] {
            if let Some((text, truncated)) = detect::preview(&dir.join(file), lines, max_chars) {
                obj.insert(format!("{key}_preview"), json!(text));
                if truncated {
                    obj.insert(format!("{key}_truncated"), json!(true));
                }
            }
        }
    }
    Ok(Value::Object(obj))
}

/// A config write that failed (lock, parse, I/O) as a tool error with a way forward.
/// A refused change is the tool's own message; any other failure (lock, parse, I/O) gets a way
/// forward.
fn mutate_error(ctx: &ToolCtx, e: config::MutateError) -> ToolError {
    match e {
        config::MutateError::Rejected(msg) => ToolError::new(msg),
        other => ToolError::new(other.to_string()).with_hint(format!(
            "Nothing was written. Check {} (`agent-dispatch doctor` explains what is wrong) and retry.",
            ctx.app().config_path().display()
        )),
    }
}

fn not_found_among(name: &str, cfg: &config::Config) -> String {
    let names: Vec<&str> = cfg.agents.names().collect();
    let list = if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    };
    format!("Agent {} not found. Available: {list}", pyfmt::repr(name))
}

pub fn add_agent(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let name = args.string("name")?;
    let directory = args.string("directory")?;
    let description = args.string("description")?;
    let timeout = args.int("timeout")?;
    let budget = args.number("max_budget_usd")?;
    let permission_mode = args.string("permission_mode")?;
    let allowed = args.string("allowed_tools")?;
    let disallowed = args.string("disallowed_tools")?;
    let backend = backend_arg(args)?;

    config::validate_agent_name(&name).map_err(ToolError::new)?;
    if timeout < 0 {
        return Err(ToolError::new(format!(
            "timeout must be >= 0, got {timeout}"
        )));
    }
    if !budget.is_finite() || budget < 0.0 {
        return Err(ToolError::new(format!(
            "max_budget_usd must be a finite number >= 0, got {budget}"
        )));
    }
    let host = args.opt_string("host")?.map(|h| h.trim().to_string());
    let (dir, description) = match &host {
        Some(host) => {
            // Checked and described on the host, in one ssh round trip; the path stays as
            // given (`~` expands there).
            let settings = ctx.app().config()?.settings.clone();
            let found = crate::remote::probe::check_for_add(
                host,
                &directory,
                &settings,
                backend.unwrap_or_default(),
                ctx.app().config_path(),
            )
            .map_err(|(_, why)| ToolError::new(why))?;
            let description = if description.is_empty() {
                found.description
            } else {
                description
            };
            (std::path::PathBuf::from(&directory), description)
        }
        None => {
            let dir = config::resolve_directory(&directory);
            if !dir.is_dir() {
                return Err(ToolError::new(format!(
                    "Directory does not exist: {}",
                    dir.display()
                )));
            }
            let description = if description.is_empty() {
                detect::auto_describe(&dir)
            } else {
                description
            };
            (dir, description)
        }
    };
    config::validate_permission_mode(&permission_mode).map_err(ToolError::new)?;
    let mut agent = AgentConfig::new(dir.clone());
    agent.description = description.clone();
    agent.timeout = if timeout == 0 {
        config::DEFAULT_AGENT_TIMEOUT
    } else {
        timeout as u64
    };
    agent.max_budget_usd = (budget > 0.0).then_some(budget);
    agent.permission_mode = Some(permission_mode.clone()).filter(|m| !m.is_empty());
    agent.allowed_tools = config::parse_tool_csv(&allowed);
    agent.disallowed_tools = config::parse_tool_csv(&disallowed);
    agent.backend = backend.unwrap_or_default();
    agent.host = host.clone();
    config::check_backend(&name, &agent).map_err(ToolError::new)?;

    let stored = agent.clone();
    config::mutate(ctx.app().config_path(), |cfg| {
        if cfg.agents.contains(&name) {
            return Err(format!(
                "Agent {} already exists. Remove it first.",
                pyfmt::repr(&name)
            ));
        }
        cfg.agents.insert(name.clone(), stored);
        Ok(())
    })
    .map_err(|e| mutate_error(ctx, e))?;
    ctx.app().cache().invalidate_agent(&name);
    ctx.log(&format!("Added agent '{name}' -> {}", dir.display()));

    let mut out = Map::new();
    out.insert("added".into(), json!(name));
    out.insert("directory".into(), json!(dir.to_string_lossy()));
    out.insert("description".into(), json!(description));
    out.insert("backend".into(), json!(agent.backend));
    if let Some(host) = &agent.host {
        out.insert("host".into(), json!(host));
    }
    if let Some(mode) = &agent.permission_mode {
        out.insert("permission_mode".into(), json!(mode));
    }
    if let Some(tools) = agent.allowed_tools.as_ref().filter(|t| !t.is_empty()) {
        out.insert("allowed_tools".into(), json!(tools));
    }
    if let Some(tools) = agent.disallowed_tools.as_ref().filter(|t| !t.is_empty()) {
        out.insert("disallowed_tools".into(), json!(tools));
    }
    Ok(Value::Object(out))
}

pub fn remove_agent(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let name = args.string("name")?;
    config::mutate(ctx.app().config_path(), |cfg| {
        match cfg.agents.remove(&name) {
            Some(_) => Ok(()),
            None => Err(not_found_among(&name, cfg)),
        }
    })
    .map_err(|e| mutate_error(ctx, e))?;
    ctx.app().cache().invalidate_agent(&name);
    ctx.log(&format!("Removed agent '{name}'"));
    Ok(json!({ "removed": name }))
}

/// `"none"` (any case) clears; anything else non-empty sets.
fn clearable(value: String) -> Option<Option<String>> {
    if value.is_empty() {
        None
    } else if value.eq_ignore_ascii_case("none") {
        Some(None)
    } else {
        Some(Some(value))
    }
}

pub fn update_agent(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let name = args.string("name")?;
    let timeout = args.int("timeout")?;
    let budget = args.number("max_budget_usd")?;
    if timeout < 0 {
        return Err(ToolError::new(format!(
            "timeout must be >= 0, got {timeout}"
        )));
    }
    if !budget.is_finite() {
        return Err(ToolError::new("max_budget_usd must be a finite number"));
    }
    let permission_mode = clearable(args.string("permission_mode")?);
    if let Some(Some(mode)) = &permission_mode {
        config::validate_permission_mode(mode).map_err(ToolError::new)?;
    }
    let tools =
        |v: String| clearable(v).map(|set| set.and_then(|csv| config::parse_tool_csv(&csv)));
    let patch = AgentPatch {
        description: args.opt_string("description")?,
        timeout: (timeout > 0).then_some(timeout as u64),
        // Negative clears, positive sets, zero leaves it (SPEC §7.5 #10).
        max_budget_usd: if budget < 0.0 {
            Some(None)
        } else if budget > 0.0 {
            Some(Some(budget))
        } else {
            None
        },
        model: clearable(args.string("model")?),
        permission_mode,
        allowed_tools: tools(args.string("allowed_tools")?),
        disallowed_tools: tools(args.string("disallowed_tools")?),
        backend: backend_arg(args)?,
        host: clearable(args.string("host")?.trim().to_string()),
        ..AgentPatch::default()
    };
    if let Some(Some(host)) = &patch.host {
        crate::remote::validate_host(host).map_err(ToolError::new)?;
    }
    // An unknown agent is reported before an empty patch (SPEC §7.5 #10, as upstream): the
    // caller learns the name is wrong, not that it forgot a field. Rejections write nothing.
    let fields = config::mutate(ctx.app().config_path(), |cfg| {
        let names = not_found_among(&name, cfg);
        let Some(agent) = cfg.agents.get_mut(&name) else {
            return Err(names);
        };
        if patch.is_empty() {
            return Err("Nothing to update. Pass at least one non-empty field.".to_string());
        }
        let fields = patch.apply(agent);
        config::check_backend(&name, agent)?;
        Ok(fields)
    })
    .map_err(|e| mutate_error(ctx, e))?;
    ctx.app().cache().invalidate_agent(&name);
    ctx.log(&format!("Updated agent '{name}': {}", fields.join(", ")));
    Ok(json!({ "updated": name, "fields": fields }))
}

fn cache_disabled() -> Value {
    json!({ "enabled": false, "message": "Cache is disabled in settings" })
}

pub fn cache_stats(ctx: &ToolCtx, _args: &Args) -> ToolResult {
    let config = ctx.app().config()?;
    if !config.settings.cache.enabled {
        return Ok(cache_disabled());
    }
    Ok(ctx.app().cache().stats())
}

pub fn cache_clear(ctx: &ToolCtx, _args: &Args) -> ToolResult {
    let config = ctx.app().config()?;
    if !config.settings.cache.enabled {
        return Ok(cache_disabled());
    }
    let n = ctx.app().cache().clear();
    ctx.log(&format!("Cleared {n} cached entries"));
    Ok(json!({ "cleared": n }))
}

/// One member as the group tools show it: `unknown` for a removed agent (flagged, never a
/// crash), else its health and, with `details`, directory and description.
fn member_view(config: &config::Config, m: &config::GroupMember, details: bool) -> Value {
    let mut obj = Map::new();
    obj.insert("agent".into(), json!(m.agent));
    if !m.use_for.is_empty() {
        obj.insert("use_for".into(), json!(m.use_for));
    }
    match config.agent(&m.agent) {
        None => {
            obj.insert("unknown".into(), json!(true));
        }
        Some(agent) => {
            // A remote agent's directory is a path on its host: shown as written, not checked.
            let remote = agent.remote_host().is_some();
            let dir = if remote {
                agent.directory.clone()
            } else {
                config::resolve_path(&agent.directory)
            };
            if details {
                obj.insert("directory".into(), json!(dir.to_string_lossy()));
                if !agent.description.is_empty() {
                    obj.insert("description".into(), json!(agent.description));
                }
            }
            let healthy = match detect::directory_health(&dir) {
                _ if remote => json!("REMOTE"),
                Ok(h) => json!(h),
                Err(_) => json!("UNREADABLE"),
            };
            obj.insert("healthy".into(), healthy);
        }
    }
    Value::Object(obj)
}

pub fn list_groups(ctx: &ToolCtx, _args: &Args) -> ToolResult {
    let config = ctx.app().config()?;
    if config.groups.is_empty() {
        return Err(ToolError::new(
            "No groups configured. Create one: agent-dispatch group add <name> --member AGENT",
        ));
    }
    let groups: Vec<Value> = config
        .groups
        .iter()
        .map(|(name, group)| {
            json!({
                "name": name,
                "description": group.description,
                "shared_context_present": group.shared_context().is_some(),
                "member_count": group.members.len(),
                "members": group.members.iter().map(|m| member_view(&config, m, false)).collect::<Vec<_>>(),
            })
        })
        .collect();
    ctx.log(&format!("Found {} configured groups", groups.len()));
    Ok(Value::Array(groups))
}

pub fn inspect_group(ctx: &ToolCtx, args: &Args) -> ToolResult {
    let name = args.string("name")?;
    let doc = inspect_group_doc(ctx.app(), &name)?;
    ctx.log(&format!(
        "Inspected group {name} ({} members)",
        doc["member_count"]
    ));
    Ok(doc)
}

/// What `inspect_group` returns (also the `agent-dispatch://groups/{name}` resource).
pub fn inspect_group_doc(app: &App, name: &str) -> ToolResult {
    let config = app.config()?;
    let Some(group) = config.group(name) else {
        return Err(ToolError::new(config.unknown_group(name)));
    };
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|m| member_view(&config, m, true))
        .collect();
    Ok(json!({
        "name": name,
        "description": group.description,
        "shared_context": group.shared_context,
        "member_count": members.len(),
        "members": members,
    }))
}
