//! `add`, `update` and `remove` (SPEC §9.3, §9.4, §9.6): every change is one locked
//! read-modify-write through `config::mutate`, so a file that fails to load is never
//! overwritten and concurrent runs never lose each other's agents.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

use lexopt::prelude::*;

use super::{
    Command, CommandSpec, EXIT_ERROR, EXIT_OK, Io, agent_not_found, help, parse_name_only,
};
use crate::backend::Backend;
use crate::config::{self, AgentConfig, AgentPatch, MutateError};
use crate::detect;

pub const ADD: CommandSpec = CommandSpec {
    name: "add",
    summary: "Register a project directory as an agent",
    help: ADD_HELP,
    parse: parse_add,
};

const ADD_HELP: &str = "\
Usage: agent-dispatch add [OPTIONS] NAME DIRECTORY

  Register the project in DIRECTORY as the agent NAME. NAME may contain letters, digits, '-'
  and '_' and starts with a letter or digit. Without --description one is generated from the
  project's CLAUDE.md, README.md, pyproject.toml, package.json, MCP servers and stack.
  A project on another host: --host DEST, or DIRECTORY as DEST:DIR (scp style, when it is not
  a local path); it is checked and described over ssh, and dispatches run there.

Options:
  -d, --description TEXT      What the agent knows and does (shown to callers)
  --timeout INTEGER           Seconds per dispatch; 0 uses settings.default_timeout [default: 300]
  --model TEXT                Model passed to claude as --model
  --max-budget FLOAT          Spending cap in USD per dispatch (alias: --max-budget-usd)
  --permission-mode TEXT      acceptEdits, auto, bypassPermissions, default, dontAsk,
                              manual or plan (anything else is refused)
  --allowed-tools CSV         Tools the agent may use, e.g. Bash,Read,Edit ('' inherits)
  --disallowed-tools CSV      Tools the agent may not use ('' inherits)
  --backend NAME              The coding CLI that runs it: claude, codex or gemini [default: claude]
  --capabilities CSV          What it is good at, as short labels, e.g. docker_logs,deploy_debug
  --risky-capabilities CSV    Abilities that deserve scrutiny, e.g. restart_services
  --instructions TEXT         Standing orders appended to its system prompt on every dispatch
  --host DEST                 Run it on this ssh destination (box, user@box, ssh://user@box:22)
  -h, --help                  Show this message and exit.
";

pub const UPDATE: CommandSpec = CommandSpec {
    name: "update",
    summary: "Change settings of an agent",
    help: UPDATE_HELP,
    parse: parse_update,
};

const UPDATE_HELP: &str = "\
Usage: agent-dispatch update [OPTIONS] NAME

  Change the given settings of agent NAME; everything else stays as it is. Any option given,
  even as an empty string, counts as a change.

Options:
  -d, --description TEXT      New description
  --timeout INTEGER           Seconds per dispatch; 0 uses settings.default_timeout
  --model TEXT                Model; 'none' or '' clears it
  --max-budget FLOAT          Spending cap in USD; 0 clears it (alias: --max-budget-usd)
  --permission-mode TEXT      acceptEdits, auto, bypassPermissions, default, dontAsk,
                              manual or plan; 'none' or '' clears it
  --allowed-tools CSV         Allowed tools; 'none' or '' inherits the settings default again
  --disallowed-tools CSV      Disallowed tools; 'none' or '' inherits the settings default again
  --capabilities CSV          Capability labels (replaces the list); 'none' or '' clears them
  --risky-capabilities CSV    Risky capability labels (replaces the list); 'none' or '' clears
  --instructions TEXT         Standing orders (replaces the text); 'none' or '' clears them
  --host DEST                 The ssh destination it runs on; 'none' or '' makes it local
  -h, --help                  Show this message and exit.
";

pub const REMOVE: CommandSpec = CommandSpec {
    name: "remove",
    summary: "Remove an agent",
    help: REMOVE_HELP,
    parse: parse_remove,
};

const REMOVE_HELP: &str = "\
Usage: agent-dispatch remove [OPTIONS] NAME

  Remove agent NAME from the config. The project directory is not touched. Groups that list
  NAME keep the membership (so 'remove' then 'add' moves an agent without losing its place);
  they are named, with the command that drops it.

Options:
  -h, --help  Show this message and exit.
";

/// Options `add` and `update` share, as typed.
#[derive(Debug, Default, PartialEq)]
pub struct AgentOptions {
    pub description: Option<String>,
    pub timeout: Option<u64>,
    pub model: Option<String>,
    pub max_budget: Option<f64>,
    pub permission_mode: Option<String>,
    pub allowed_tools: Option<String>,
    pub disallowed_tools: Option<String>,
    pub backend: Option<Backend>,
    pub capabilities: Option<String>,
    pub risky_capabilities: Option<String>,
    pub instructions: Option<String>,
    pub host: Option<String>,
}

#[derive(Debug, PartialEq)]
pub struct AddArgs {
    pub name: String,
    pub directory: PathBuf,
    pub options: AgentOptions,
}

#[derive(Debug, PartialEq)]
pub struct UpdateArgs {
    pub name: String,
    pub options: AgentOptions,
}

/// A whole number of seconds ≥ 0.
fn parse_timeout(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("timeout must be 0 or more, got {n}")),
        Ok(n) => Ok(n.unsigned_abs()),
        Err(_) => Err(format!("'{s}' is not a valid integer")),
    }
}

/// A finite amount of USD ≥ 0.
fn parse_budget(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if !f.is_finite() => Err(format!("budget must be a finite number, got '{s}'")),
        Ok(f) if f < 0.0 => Err(format!("budget must be 0 or more, got {s}")),
        Ok(f) => Ok(f),
        Err(_) => Err(format!("'{s}' is not a valid float")),
    }
}

/// The option an argument names (`-d`, `--timeout`), owned so the parser can be used again.
fn option_name(arg: &lexopt::Arg) -> Option<String> {
    match arg {
        Short(c) => Some(format!("-{c}")),
        Long(l) => Some(format!("--{l}")),
        Value(_) => None,
    }
}

/// Handles one shared option by name; an unknown name is an "invalid option" error.
fn agent_option(
    name: &str,
    p: &mut lexopt::Parser,
    o: &mut AgentOptions,
) -> Result<(), lexopt::Error> {
    match name {
        "-d" | "--description" => o.description = Some(p.value()?.string()?),
        "--timeout" => o.timeout = Some(super::option_with(p, name, parse_timeout)?),
        "--model" => o.model = Some(p.value()?.string()?),
        "--max-budget" | "--max-budget-usd" => {
            o.max_budget = Some(super::option_with(p, name, parse_budget)?)
        }
        "--permission-mode" => o.permission_mode = Some(p.value()?.string()?),
        "--allowed-tools" => o.allowed_tools = Some(p.value()?.string()?),
        "--disallowed-tools" => o.disallowed_tools = Some(p.value()?.string()?),
        "--backend" => o.backend = Some(p.value()?.parse_with(Backend::parse)?),
        "--capabilities" => o.capabilities = Some(p.value()?.string()?),
        "--risky-capabilities" => o.risky_capabilities = Some(p.value()?.string()?),
        "--instructions" => o.instructions = Some(p.value()?.string()?),
        "--host" => o.host = Some(p.value()?.string()?),
        _ => return Err(lexopt::Error::UnexpectedOption(name.to_string())),
    }
    Ok(())
}

fn parse_add(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut options = AgentOptions::default();
    let mut name = None;
    let mut directory: Option<OsString> = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(&ADD)),
            Value(v) if name.is_none() => name = Some(v.string()?),
            Value(v) if directory.is_none() => directory = Some(v),
            Value(v) => return Err(Value(v).unexpected()),
            option => {
                let key = option_name(&option).unwrap_or_default();
                agent_option(&key, p, &mut options)?;
            }
        }
    }
    let name = name.ok_or("Missing argument 'NAME'.")?;
    let directory = directory.ok_or("Missing argument 'DIRECTORY'.")?;
    Ok(Command::Add(AddArgs {
        name,
        directory: directory.into(),
        options,
    }))
}

fn parse_update(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    let mut options = AgentOptions::default();
    let mut name = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(help(&UPDATE)),
            Value(v) if name.is_none() => name = Some(v.string()?),
            Value(v) => return Err(Value(v).unexpected()),
            option => {
                let key = option_name(&option).unwrap_or_default();
                agent_option(&key, p, &mut options)?;
            }
        }
    }
    let name = name.ok_or("Missing argument 'NAME'.")?;
    Ok(Command::Update(UpdateArgs { name, options }))
}

fn parse_remove(p: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
    Ok(match parse_name_only(p, &REMOVE)? {
        Ok(name) => Command::Remove(name),
        Err(help) => help,
    })
}

/// Prints why a mutation failed; always exit 1.
fn report(io: &mut Io, e: &MutateError) -> io::Result<u8> {
    match e {
        MutateError::Load(load) => super::print_config_error(io, load),
        MutateError::Rejected(msg) => {
            io.error(msg)?;
            Ok(EXIT_ERROR)
        }
        other => {
            io.error(&format!("Error: {other}"))?;
            Ok(EXIT_ERROR)
        }
    }
}

pub fn run_add(io: &mut Io, args: AddArgs) -> io::Result<u8> {
    let AddArgs {
        name,
        directory,
        options: o,
    } = args;
    // A remote agent (`--host DEST`, or `DEST:DIR`) is checked and described over ssh instead.
    let remote = remote_target(o.host.as_deref(), &directory);
    if remote.is_none() {
        // Checked first, as a usage error, like the reference's click `Path(exists=True)`.
        match std::fs::metadata(&directory) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let msg = format!(
                    "Invalid value for 'DIRECTORY': Directory '{}' is a file.",
                    directory.display()
                );
                return super::usage_error_at_run(io, &ADD, msg);
            }
            Err(_) => {
                let msg = format!(
                    "Invalid value for 'DIRECTORY': Directory '{}' does not exist.",
                    directory.display()
                );
                return super::usage_error_at_run(io, &ADD, msg);
            }
        }
    }
    if let Err(msg) = config::validate_agent_name(&name) {
        io.error(&format!("Error: {msg}"))?;
        return Ok(EXIT_ERROR);
    }
    let patch = cli_patch(&o);
    if let Err(msg) = check_permission_mode(&patch) {
        io.error(&format!("Error: {msg}"))?;
        return Ok(EXIT_ERROR);
    }
    let path = config::config_path();
    // Described before taking the config lock: reading the project can be slow, and every other
    // writer of agents.yaml would wait for it.
    let (resolved, generated) = match &remote {
        Some((host, dir)) => {
            let settings = config::Config::load_as_written(&path)
                .map(|c| c.settings)
                .unwrap_or_default();
            let backend = o.backend.unwrap_or_default();
            match crate::remote::probe::check_for_add(host, dir, &settings, backend, &path) {
                Ok(found) => {
                    if found.program_path.is_none() {
                        let program = crate::backend::remote_program(&settings, backend);
                        io.warn(&format!(
                            "Warning: '{}' is not on the PATH of {host} (ssh runs a non-interactive shell); dispatches will fail until it is.",
                            program.display()
                        ))?;
                    }
                    let generated = o.description.is_none().then_some(found.description);
                    (PathBuf::from(dir), generated)
                }
                Err((_, why)) => {
                    io.error(&format!("Error: {why}"))?;
                    return Ok(EXIT_ERROR);
                }
            }
        }
        None => {
            let resolved = config::resolve_path(&directory);
            if resolved.to_str().is_none() {
                io.error(&format!(
                    "Error: directory path is not valid UTF-8 and cannot be stored in the config: {}",
                    resolved.display()
                ))?;
                return Ok(EXIT_ERROR);
            }
            let generated = match &o.description {
                Some(_) => None,
                None => Some(detect::auto_describe(&resolved)),
            };
            (resolved, generated)
        }
    };
    let outcome = config::mutate(&path, |c| {
        if c.agents.contains(&name) {
            return Err(format!(
                "Agent '{name}' already exists. Use 'agent-dispatch remove {name}' first."
            ));
        }
        let mut agent = AgentConfig::new(resolved.clone());
        agent.description = o
            .description
            .clone()
            .or_else(|| generated.clone())
            .unwrap_or_default();
        agent.timeout = o.timeout.unwrap_or(config::DEFAULT_AGENT_TIMEOUT);
        agent.max_budget_usd = o.max_budget;
        agent.model = o.model.clone();
        agent.allowed_tools = o.allowed_tools.as_deref().and_then(config::parse_tool_csv);
        agent.disallowed_tools = o
            .disallowed_tools
            .as_deref()
            .and_then(config::parse_tool_csv);
        // The fields whose CLI reading is the same for `add` and `update`.
        AgentPatch {
            permission_mode: patch.permission_mode.clone(),
            capabilities: patch.capabilities.clone(),
            risky_capabilities: patch.risky_capabilities.clone(),
            instructions: patch.instructions.clone(),
            ..AgentPatch::default()
        }
        .apply(&mut agent);
        agent.backend = o.backend.unwrap_or_default();
        agent.host = remote.as_ref().map(|(host, _)| host.clone());
        config::check_backend(&name, &agent)?;
        c.agents.insert(name.clone(), agent);
        Ok(())
    });
    if let Err(e) = outcome {
        return report(io, &e);
    }
    if let Some(d) = generated {
        io.say(&format!("Auto-generated description: {d}"))?;
    }
    let place = match &remote {
        Some((host, dir)) => format!("{host}:{dir}"),
        None => resolved.display().to_string(),
    };
    io.say_in(
        super::Color::Green,
        &format!("Added agent '{name}' -> {place}"),
    )?;
    Ok(EXIT_OK)
}

/// The host and remote directory of an `add`: `--host DEST` (not `none`) with DIRECTORY as a
/// path there, else DIRECTORY as `DEST:DIR` when it is not a local path.
fn remote_target(host: Option<&str>, directory: &std::path::Path) -> Option<(String, String)> {
    let dir = directory.to_string_lossy().into_owned();
    match host {
        Some(h) if !clears(h.trim()) => Some((h.trim().to_string(), dir)),
        Some(_) => None,
        None if directory.exists() => None,
        None => crate::remote::split_scp(&dir),
    }
}

/// `none` (any case) or `""` means "clear" on the command line.
fn clears(s: &str) -> bool {
    s.is_empty() || s.eq_ignore_ascii_case("none")
}

/// The CLI's reading of the options (SPEC §9.6), as a patch.
fn cli_patch(o: &AgentOptions) -> AgentPatch {
    let tools = |s: &String| {
        if clears(s) {
            None
        } else {
            config::parse_tool_csv(s)
        }
    };
    AgentPatch {
        description: o.description.clone(),
        timeout: o.timeout,
        max_budget_usd: o.max_budget.map(|b| (b != 0.0).then_some(b)),
        model: o.model.as_ref().map(|m| (!clears(m)).then(|| m.clone())),
        permission_mode: o.permission_mode.as_ref().map(|m| {
            let m = m.trim();
            (!clears(m)).then(|| m.to_string())
        }),
        allowed_tools: o.allowed_tools.as_ref().map(tools),
        disallowed_tools: o.disallowed_tools.as_ref().map(tools),
        backend: o.backend,
        capabilities: o.capabilities.as_deref().map(labels),
        risky_capabilities: o.risky_capabilities.as_deref().map(labels),
        instructions: o.instructions.as_deref().map(|i| {
            let i = i.trim();
            if clears(i) {
                String::new()
            } else {
                i.to_string()
            }
        }),
        host: o
            .host
            .as_deref()
            .map(|h| (!clears(h.trim())).then(|| h.trim().to_string())),
    }
}

fn labels(csv: &str) -> Vec<String> {
    if clears(csv.trim()) {
        Vec::new()
    } else {
        config::parse_labels(csv)
    }
}

/// A permission mode claude would refuse is refused here, before anything is written.
fn check_permission_mode(patch: &AgentPatch) -> Result<(), String> {
    match &patch.permission_mode {
        Some(Some(mode)) => config::validate_permission_mode(mode),
        _ => Ok(()),
    }
}

pub fn run_update(io: &mut Io, args: UpdateArgs) -> io::Result<u8> {
    let UpdateArgs { name, options } = args;
    let patch = cli_patch(&options);
    if let Err(msg) = check_permission_mode(&patch) {
        io.error(&format!("Error: {msg}"))?;
        return Ok(EXIT_ERROR);
    }
    if let Some(Some(host)) = &patch.host
        && let Err(msg) = crate::remote::validate_host(host)
    {
        io.error(&format!("Error: {msg}"))?;
        return Ok(EXIT_ERROR);
    }
    let outcome = config::mutate(&config::config_path(), |c| {
        let Some(agent) = c.agents.get_mut(&name) else {
            return Err(agent_not_found(&name));
        };
        if patch.is_empty() {
            return Err("Nothing to update. Pass at least one option (see --help).".to_string());
        }
        let fields = patch.apply(agent);
        config::check_backend(&name, agent)?;
        Ok(fields)
    });
    let fields = match outcome {
        Ok(f) => f,
        Err(e) => return report(io, &e),
    };
    io.say_in(
        super::Color::Green,
        &format!("Updated agent '{name}': {}", fields.join(", ")),
    )?;
    Ok(EXIT_OK)
}

pub fn run_remove(io: &mut Io, name: &str) -> io::Result<u8> {
    let outcome = config::mutate(&config::config_path(), |c| {
        c.agents
            .remove(name)
            .map(|_| c.groups_with_member(name).join(", "))
            .ok_or_else(|| format!("Agent '{name}' not found."))
    });
    let groups = match outcome {
        Ok(groups) => groups,
        Err(e) => return report(io, &e),
    };
    io.say_in(super::Color::Green, &format!("Removed agent '{name}'."))?;
    if !groups.is_empty() {
        io.warn(&format!(
            "Warning: group(s) {groups} still list '{name}' as a member; add the agent back, \
             or drop it with: agent-dispatch group update GROUP --remove-member {name}"
        ))?;
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, lexopt::Error> {
        let mut parser = lexopt::Parser::from_args(args.iter().map(OsString::from));
        match parser.next()? {
            Some(Value(v)) if v == "add" => parse_add(&mut parser),
            Some(Value(v)) if v == "update" => parse_update(&mut parser),
            _ => parse_remove(&mut parser),
        }
    }

    #[test]
    fn add_takes_every_option() {
        let cmd = p(&[
            "add",
            "web",
            "/tmp",
            "-d",
            "",
            "--timeout",
            "60",
            "--model",
            "opus",
            "--max-budget-usd",
            "2.5",
            "--permission-mode",
            "plan",
            "--allowed-tools",
            "Bash,Read",
            "--disallowed-tools=",
            "--capabilities",
            "a,b",
            "--risky-capabilities",
            "none",
            "--instructions",
            "read only",
            "--host",
            "me@box",
        ])
        .unwrap();
        assert_eq!(
            cmd,
            Command::Add(AddArgs {
                name: "web".into(),
                directory: "/tmp".into(),
                options: AgentOptions {
                    description: Some(String::new()),
                    timeout: Some(60),
                    model: Some("opus".into()),
                    max_budget: Some(2.5),
                    permission_mode: Some("plan".into()),
                    allowed_tools: Some("Bash,Read".into()),
                    disallowed_tools: Some(String::new()),
                    backend: None,
                    capabilities: Some("a,b".into()),
                    risky_capabilities: Some("none".into()),
                    instructions: Some("read only".into()),
                    host: Some("me@box".into()),
                }
            })
        );
    }

    #[test]
    fn bad_numbers_and_missing_args_are_usage_errors() {
        for bad in [
            &["add", "a", "/tmp", "--timeout", "-5"][..],
            &["add", "a", "/tmp", "--timeout", "1.5"],
            &["add", "a", "/tmp", "--max-budget", "-1"],
            &["add", "a", "/tmp", "--max-budget", "nan"],
            &["add", "a", "/tmp", "--max-budget", "inf"],
            &["add", "a"],
            &["add"],
            &["add", "a", "/tmp", "extra"],
            &["add", "a", "/tmp", "--timeout"],
            &["update"],
            &["update", "a", "--frob"],
        ] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
        let e = p(&["add", "a"]).unwrap_err().to_string();
        assert!(e.contains("DIRECTORY"), "{e}");
        let e = p(&["add", "a", "/tmp", "--timeout", "-5"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("0 or more"), "{e}");
    }

    #[test]
    fn update_semantics() {
        let o = AgentOptions {
            description: Some(String::new()),
            max_budget: Some(0.0),
            model: Some("NONE".into()),
            permission_mode: Some("  plan ".into()),
            allowed_tools: Some(String::new()),
            disallowed_tools: Some(" , ".into()),
            ..AgentOptions::default()
        };
        let patch = cli_patch(&o);
        assert_eq!(patch.description, Some(String::new()));
        assert_eq!(patch.max_budget_usd, Some(None));
        assert_eq!(patch.model, Some(None));
        assert_eq!(patch.permission_mode, Some(Some("plan".into())));
        assert_eq!(patch.allowed_tools, Some(None));
        assert_eq!(patch.disallowed_tools, Some(Some(vec![])));
        assert!(cli_patch(&AgentOptions::default()).is_empty());
        let none_mode = cli_patch(&AgentOptions {
            permission_mode: Some(" none ".into()),
            max_budget: Some(1.5),
            ..AgentOptions::default()
        });
        assert_eq!(none_mode.permission_mode, Some(None));
        assert_eq!(none_mode.max_budget_usd, Some(Some(1.5)));
        let labelled = cli_patch(&AgentOptions {
            capabilities: Some(" a , b,a".into()),
            risky_capabilities: Some("None".into()),
            instructions: Some("  only read \n".into()),
            ..AgentOptions::default()
        });
        assert_eq!(labelled.capabilities, Some(vec!["a".into(), "b".into()]));
        assert_eq!(labelled.risky_capabilities, Some(vec![]));
        assert_eq!(labelled.instructions.as_deref(), Some("only read"));
        let cleared = cli_patch(&AgentOptions {
            instructions: Some(" none ".into()),
            ..AgentOptions::default()
        });
        assert_eq!(cleared.instructions.as_deref(), Some(""));
        assert!(
            check_permission_mode(&cli_patch(&AgentOptions {
                permission_mode: Some("yolo".into()),
                ..AgentOptions::default()
            }))
            .is_err()
        );
    }
}
