//! Coding CLIs as backends. An agent's `backend:` (`claude`, the default, `codex` or `gemini`)
//! picks the `CodingCli` that builds the child's command line and reads its output; everything
//! around the child — the pre-flight checks (depth, the program, the directory), the permit, the
//! supervision in `process` (process group, stdin `/dev/null`, deadline, cancel, stderr drain) —
//! is shared, so every backend gets sessions, timeouts, streaming, jobs, cancel, fan-out, the
//! cache and the journal the same way.
//!
//! `run` is the one entry point; it never panics and returns only after the child's process
//! group has been reaped.

mod codex;
mod events;
mod gemini;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::claude::{DispatchRequest, Hooks, OutputMode};
use crate::config::{AgentConfig, Settings};
use crate::limiter::Permit;
use crate::protocol;
use crate::remote::Remote;
use crate::result::{DispatchResult, ErrorType};
use crate::runenv::{DEPTH_VAR, RunEnv};

/// Which coding CLI runs an agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Claude,
    Codex,
    Gemini,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Claude, Backend::Codex, Backend::Gemini];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Claude => "claude",
            Backend::Codex => "codex",
            Backend::Gemini => "gemini",
        }
    }

    /// `claude`, `codex` or `gemini` (any case), else an error listing them.
    pub fn parse(raw: &str) -> Result<Backend, String> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(raw.trim()))
            .ok_or_else(|| {
                format!("Unknown backend '{raw}'. Valid backends: claude, codex, gemini")
            })
    }

    /// True for the default, which is not written to `agents.yaml`.
    pub fn is_default(&self) -> bool {
        *self == Backend::Claude
    }

    pub fn cli(self) -> &'static dyn CodingCli {
        match self {
            Backend::Claude => &crate::claude::Claude,
            Backend::Codex => &codex::Codex,
            Backend::Gemini => &gemini::Gemini,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One coding CLI: how to start it for a dispatch and how to read what it prints.
pub trait CodingCli: Sync {
    fn backend(&self) -> Backend;

    /// Where to get it, for the not-found error.
    fn install_hint(&self) -> &'static str;

    /// Why this CLI cannot run `agent` as configured, if it cannot (a setting with no
    /// equivalent in it). `add` and `update` refuse such a configuration with this message.
    fn unsupported(&self, agent: &AgentConfig) -> Option<String>;

    /// The command line after the program: a fresh run (with `Launch::fresh_id` as its session
    /// where the CLI lets us choose one), or a resume of `Launch::resume`, in either output mode.
    /// `Err` refuses the dispatch (a value that would be read as a flag).
    fn args(&self, launch: &Launch<'_>) -> Result<Vec<String>, String>;

    /// Runs one dispatch with `program` already found and the directory checked.
    fn run(&self, launch: &Launch<'_>, hooks: Hooks<'_>) -> DispatchResult;
}

/// Everything a backend needs to start one child.
pub struct Launch<'a> {
    pub program: &'a Path,
    pub req: &'a DispatchRequest,
    pub mode: OutputMode,
    /// The value of `AGENT_DISPATCH_DEPTH` the child gets.
    pub child_depth: String,
    /// The prompt (task, context, caller, goal, format footer).
    pub prompt: String,
    pub timeout_secs: u64,
    /// The dispatch protocol and the agent's instructions, for a CLI that takes a system prompt
    /// of its own (claude's `--append-system-prompt`); the others get it inside `prompt`.
    pub system_prompt: Option<String>,
    /// A new uuid for a fresh run's session, chosen here so a run that times out can still be
    /// resumed (SPEC §5.3); ignored by a CLI that picks its own.
    pub fresh_id: String,
    /// The agent's host, when it has one: the child then runs there over ssh
    /// (`remote::spawn`), with `program` looked up on that host's PATH.
    pub remote: Option<Remote>,
}

impl Launch<'_> {
    pub fn agent(&self) -> &str {
        &self.req.agent_name
    }

    /// The permission mode in effect: the agent's, else the settings default.
    pub fn permission_mode(&self) -> Option<&str> {
        fn given(m: &Option<String>) -> Option<&str> {
            m.as_deref().filter(|m| !m.is_empty())
        }
        given(&self.req.agent.permission_mode).or(given(&self.req.settings.default_permission_mode))
    }

    pub fn model(&self) -> Option<&str> {
        self.req.agent.model.as_deref().filter(|m| !m.is_empty())
    }

    pub fn resume(&self) -> Option<&str> {
        self.req.resume_session.as_deref().filter(|s| !s.is_empty())
    }

    /// The environment every child gets on top of ours: the depth, so the recursion guard
    /// counts across backends.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![(DEPTH_VAR, self.child_depth.clone())]
    }
}

/// Runs one dispatch under `_permit` with the agent's backend. Never panics; returns only after
/// the child's process group has been killed or has exited and the leader has been reaped.
pub fn run(
    _permit: &Permit,
    env: &RunEnv,
    req: &DispatchRequest,
    mode: OutputMode,
    hooks: Hooks<'_>,
) -> DispatchResult {
    let name = req.agent_name.as_str();
    let cli = req.agent.backend.cli();

    // SPEC §5.1, in this order: depth, the program, directory, argv.
    let depth = match &env.depth {
        Ok(d) => *d,
        Err(why) => {
            return DispatchResult::failure(
                name,
                ErrorType::Recursion,
                format!("{why}; refusing to start another agent. Unset it or fix its value."),
            );
        }
    };
    let max = req.settings.max_dispatch_depth;
    if depth >= max {
        return DispatchResult::failure(
            name,
            ErrorType::Recursion,
            format!(
                "Dispatch depth {depth} >= max {max}. Agents appear to be dispatching to each other in a loop (A -> B -> A) or nesting too deeply; refusing to start another {}. Raise settings.max_dispatch_depth in agents.yaml if this nesting is intended.",
                cli.backend()
            ),
        );
    }
    // A remote agent's program and directory are on its host: the remote command checks them
    // (`remote::shell::run_command`), in the same round trip that starts the CLI.
    let remote = match req.agent.remote_host() {
        Some(host) => match Remote::new(host, &req.settings, env) {
            Ok(r) => Some(r),
            Err(why) => return DispatchResult::failure(name, ErrorType::CliError, why),
        },
        None => None,
    };
    let program = match &remote {
        Some(_) => remote_program(&req.settings, cli.backend()),
        None => {
            let Some(program) = find_program(env, &req.settings, cli.backend()) else {
                return DispatchResult::failure(name, ErrorType::NotFound, cli.install_hint());
            };
            let dir = &req.agent.directory;
            if !dir.is_dir() {
                return DispatchResult::failure(
                    name,
                    ErrorType::NotFound,
                    format!("Directory does not exist: {}", dir.display()),
                );
            }
            program
        }
    };
    if let Some(why) = cli.unsupported(&req.agent) {
        return DispatchResult::failure(name, ErrorType::CliError, why);
    }
    let timeout_secs = crate::claude::effective_timeout(&req.agent, &req.settings);
    let json_reply = req.ask.response_format.is_json();
    let system_prompt = protocol::system_prompt(
        name,
        &req.agent,
        &req.settings,
        timeout_secs,
        req.ask.caller.as_deref(),
        json_reply,
    );
    let mut prompt = crate::claude::argv::build_prompt(&req.ask);
    let system_prompt = match (cli.backend(), system_prompt) {
        (Backend::Claude, s) => s,
        // No system-prompt flag in these CLIs: the protocol leads the prompt instead.
        (_, Some(s)) => {
            prompt = format!("{s}\n\n## Your task\n{prompt}");
            None
        }
        (_, None) => None,
    };
    let launch = Launch {
        program: &program,
        req,
        mode,
        child_depth: (depth + 1).to_string(),
        prompt,
        timeout_secs,
        system_prompt,
        fresh_id: uuid::Uuid::new_v4().to_string(),
        remote,
    };
    let mut result = cli.run(&launch, hooks);
    lift_outcome(&mut result, json_reply);
    result
}

/// Moves a successful answer's final `STATUS:` line into `outcome` (before a JSON answer is
/// parsed, so the line cannot spoil it), with the hint an unfinished outcome carries.
fn lift_outcome(r: &mut DispatchResult, json_reply: bool) {
    if !r.success {
        return;
    }
    let (text, outcome) = protocol::split_outcome(&r.result);
    let Some(outcome) = outcome else { return };
    r.result = text;
    r.outcome = Some(outcome);
    if json_reply && r.parsed_result.is_none() {
        r.parsed_result = crate::claude::output::parse_structured(&r.result);
    }
    if let Some(hint) = protocol::outcome_hint(&r.agent, outcome, r.session_id.as_deref()) {
        r.hint = Some(match r.hint.take() {
            Some(h) => format!("{h} {hint}"),
            None => hint,
        });
    }
}

/// The backend's program: `settings.backends.<name>.command` (a path, or a name looked up on
/// the run environment's `PATH`), else the CLI's own name on that `PATH`.
pub fn find_program(env: &RunEnv, settings: &Settings, backend: Backend) -> Option<PathBuf> {
    let configured = settings
        .backends
        .get(backend.name())
        .and_then(|b| b.command.as_deref())
        .filter(|c| !c.trim().is_empty());
    match configured {
        Some(cmd) if cmd.contains('/') => {
            let path = crate::config::expand_tilde(Path::new(cmd));
            path.is_file().then_some(path)
        }
        Some(cmd) => env.find(cmd),
        None => env.find(backend.name()),
    }
}

/// The program a remote agent runs, as the host's shell will find it: the configured
/// `settings.backends.<name>.command` as written (`~` expands there), else the CLI's name.
pub fn remote_program(settings: &Settings, backend: Backend) -> PathBuf {
    let configured = settings
        .backends
        .get(backend.name())
        .and_then(|b| b.command.as_deref())
        .map(str::trim)
        .filter(|c| !c.is_empty());
    PathBuf::from(configured.unwrap_or(backend.name()))
}

/// Refuses a value that would be read as a command-line flag.
fn refuse_flag(label: &str, value: &str, cli: &str) -> Result<(), String> {
    if value.starts_with('-') {
        return Err(format!(
            "Refusing to dispatch: {label} '{value}' starts with '-' and would be interpreted as a command-line flag by the {cli} CLI."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::parse(b.name()), Ok(b));
        }
        assert_eq!(Backend::parse(" Codex "), Ok(Backend::Codex));
        assert!(
            Backend::parse("cursor")
                .unwrap_err()
                .contains("claude, codex, gemini")
        );
    }
}
