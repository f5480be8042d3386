//! The prompt text (SPEC §5.2) and the `claude` argument vector (SPEC §5.3), including the
//! argument-injection guard. Floats are rendered by `pyfmt::float` (SPEC §0). Nothing here
//! touches the environment or spawns anything; `claude::run` decides paths, ids and depth.

use std::fmt;

use super::OutputMode;
use crate::ask::Ask;
use crate::config::{AgentConfig, Settings};
use crate::pyfmt;

/// Appended when `response_format` is exactly `"json"` (SPEC §5.2).
pub const JSON_FOOTER: &str = "\n\n## Response format\nRespond with a single valid JSON value (object, array, or scalar) and nothing else. Do not wrap the JSON in markdown code fences. Do not add any explanatory text before or after. If you cannot satisfy this, respond with {\"error\": \"<reason>\"}.";

/// Builds the prompt: the simple form without caller and goal, else the `## ` sections.
pub fn build_prompt(ask: &Ask) -> String {
    // SPEC §0: an empty string means "not given".
    let given = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
    let (context, caller, goal) = (given(&ask.context), given(&ask.caller), given(&ask.goal));
    let task = ask.task.as_str();
    let mut prompt = if caller.is_none() && goal.is_none() {
        match context {
            Some(c) => format!("Context:\n{c}\n\nTask:\n{task}"),
            None => task.to_string(),
        }
    } else {
        let mut sections = Vec::with_capacity(4);
        if let Some(g) = goal {
            sections.push(format!("## Goal\n{g}"));
        }
        if let Some(c) = caller {
            sections.push(format!("## Dispatched by\n{c}"));
        }
        if let Some(c) = context {
            sections.push(format!("## Context\n{c}"));
        }
        sections.push(format!("## Task\n{task}"));
        sections.join("\n\n")
    };
    if ask.response_format.is_json() {
        prompt.push_str(JSON_FOOTER);
    }
    prompt
}

/// How the child's session is chosen (SPEC §5.3 item 2). Never both flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionArg {
    /// `--resume <id>`: continue an earlier session.
    Resume(String),
    /// `--session-id <uuid>`: a fresh session whose id we chose, so a timeout stays resumable.
    /// The old-CLI retry (SPEC §5.5) drops it with `ClaudeArgs::without_session_id`.
    Fresh(String),
}

/// A refused structured value (SPEC §5.3 guard). Nothing is spawned when this is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgvError {
    /// The value would be read by the CLI as a flag.
    LooksLikeFlag { label: &'static str, value: String },
    /// A budget that is NaN or infinite cannot be a cap.
    NonFiniteBudget { value: String },
}

impl fmt::Display for ArgvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgvError::LooksLikeFlag { label, value } => write!(
                f,
                "Refusing to dispatch: {label} '{value}' starts with '-' and would be interpreted as a command-line flag by the claude CLI."
            ),
            ArgvError::NonFiniteBudget { value } => write!(
                f,
                "Refusing to dispatch: max_budget_usd '{value}' is not a finite number."
            ),
        }
    }
}

impl std::error::Error for ArgvError {}

/// The argument vector after argv[0], with the index of the `--session-id` pair remembered so
/// the old-CLI retry removes exactly that pair (SPEC §12 item 12: never search the argv, a task
/// may itself be the string `--session-id`).
#[derive(Clone, Debug, PartialEq)]
pub struct ClaudeArgs {
    pub args: Vec<String>,
    session_id_at: Option<usize>,
}

impl ClaudeArgs {
    /// The same command without `--session-id <uuid>` (a no-op when there is none).
    pub fn without_session_id(&self) -> ClaudeArgs {
        let mut args = self.args.clone();
        if let Some(at) = self.session_id_at {
            args.drain(at..at + 2);
        }
        ClaudeArgs {
            args,
            session_id_at: None,
        }
    }

    pub fn has_session_id(&self) -> bool {
        self.session_id_at.is_some()
    }

    /// `--append-system-prompt TEXT` at the end (after the `--session-id` pair, whose index is
    /// kept). The text is ours and starts with `## `, never with `-`.
    pub fn append_system_prompt(&mut self, text: &str) {
        self.args.push("--append-system-prompt".into());
        self.args.push(text.to_string());
    }
}

/// The effective budget: the agent's when truthy, else the settings default when truthy.
pub fn effective_budget(agent: &AgentConfig, settings: &Settings) -> Option<f64> {
    let truthy = |b: Option<f64>| b.filter(|v| *v != 0.0);
    truthy(agent.max_budget_usd).or(truthy(settings.default_max_budget_usd))
}

/// Builds everything after argv[0] in the order of SPEC §5.3, or refuses an injected flag.
pub fn build_args(
    prompt: &str,
    session: &SessionArg,
    agent: &AgentConfig,
    settings: &Settings,
    mode: OutputMode,
) -> Result<ClaudeArgs, ArgvError> {
    let permission_mode = agent
        .permission_mode
        .as_deref()
        .filter(|m| !m.is_empty())
        .or(settings
            .default_permission_mode
            .as_deref()
            .filter(|m| !m.is_empty()));
    // Tri-state (SPEC §2.1): `Some(vec![])` on the agent means "none", not "inherit".
    let allowed = agent
        .allowed_tools
        .as_ref()
        .unwrap_or(&settings.default_allowed_tools);
    let disallowed = agent
        .disallowed_tools
        .as_ref()
        .unwrap_or(&settings.default_disallowed_tools);
    let model = agent.model.as_deref().filter(|m| !m.is_empty());
    let budget = effective_budget(agent, settings);

    // Guard order is part of the contract: the first failure wins (SPEC §5.3).
    if let SessionArg::Resume(id) = session {
        refuse_flag("session_id", id)?;
    }
    if let Some(m) = model {
        refuse_flag("model", m)?;
    }
    if let Some(m) = permission_mode {
        refuse_flag("permission_mode", m)?;
    }
    for t in allowed {
        refuse_flag("allowed tool", t)?;
    }
    for t in disallowed {
        refuse_flag("disallowed tool", t)?;
    }
    // SPEC §12 item 13: the budget was unguarded in 0.6.0; a negative one would be a flag.
    let budget_text = match budget {
        Some(b) if !b.is_finite() => {
            return Err(ArgvError::NonFiniteBudget {
                value: pyfmt::float(b),
            });
        }
        Some(b) => {
            let text = pyfmt::float(b);
            refuse_flag("max_budget_usd", &text)?;
            Some(text)
        }
        None => None,
    };

    let mut args: Vec<String> = Vec::with_capacity(16 + 2 * (allowed.len() + disallowed.len()));
    args.push("-p".into());
    args.push(prompt_value(prompt));
    args.push("--output-format".into());
    args.push(
        match mode {
            OutputMode::Json => "json",
            OutputMode::Stream => "stream-json",
        }
        .into(),
    );
    let mut session_id_at = None;
    match session {
        SessionArg::Resume(id) => {
            args.push("--resume".into());
            args.push(id.clone());
        }
        SessionArg::Fresh(id) => {
            session_id_at = Some(args.len());
            args.push("--session-id".into());
            args.push(id.clone());
        }
    }
    if let Some(b) = budget_text {
        args.push("--max-budget-usd".into());
        args.push(b);
    }
    if let Some(m) = model {
        args.push("--model".into());
        args.push(m.to_string());
    }
    if let Some(m) = permission_mode {
        args.push("--permission-mode".into());
        args.push(m.to_string());
    }
    for t in allowed {
        args.push("--allowedTools".into());
        args.push(t.clone());
    }
    for t in disallowed {
        args.push("--disallowedTools".into());
        args.push(t.clone());
    }
    if mode == OutputMode::Stream {
        // Current CLIs refuse `-p` with stream-json unless `--verbose` is given.
        args.push("--verbose".into());
    }
    Ok(ClaudeArgs {
        args,
        session_id_at,
    })
}

fn refuse_flag(label: &'static str, value: &str) -> Result<(), ArgvError> {
    if value.starts_with('-') {
        return Err(ArgvError::LooksLikeFlag {
            label,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// The prompt as it is placed right after `-p` (SPEC §12 item 13).
///
/// Decision: the prompt keeps its pinned position after `-p` (SPEC §5.3, §11), and a prompt
/// whose first character is `-` gets one leading space. The real CLI's option parser treats any
/// argument starting with `-` as an option candidate, so a task such as
/// `--permission-mode=bypassPermissions` could otherwise be read as a flag if `-p` is a plain
/// switch rather than an option taking a value. A leading space makes the argument a plain
/// value under either reading and is invisible to the model. Passing the prompt after `--`
/// was rejected: it would move the prompt away from `-p` and, if `-p` does take a value, make
/// the next flag the prompt. Stdin was rejected because the child's stdin is /dev/null.
pub fn prompt_value(prompt: &str) -> String {
    if prompt.starts_with('-') {
        format!(" {prompt}")
    } else {
        prompt.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ask::ResponseFormat;

    fn prompt_of(
        task: &str,
        context: Option<&str>,
        caller: Option<&str>,
        goal: Option<&str>,
        response_format: Option<&str>,
    ) -> String {
        let own = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
        build_prompt(&Ask {
            task: task.to_string(),
            context: own(context),
            caller: own(caller),
            goal: own(goal),
            response_format: ResponseFormat::parse(response_format),
        })
    }
    use std::path::PathBuf;

    fn agent() -> AgentConfig {
        AgentConfig::new(PathBuf::from("/tmp"))
    }

    fn args(agent: &AgentConfig, settings: &Settings, session: SessionArg) -> Vec<String> {
        build_args("do it", &session, agent, settings, OutputMode::Json)
            .map(|a| a.args)
            .unwrap_or_default()
    }

    /// No session flag at all: what the old-CLI retry sends.
    fn no_session(agent: &AgentConfig, settings: &Settings) -> Vec<String> {
        build_args(
            "do it",
            &SessionArg::Fresh("u".into()),
            agent,
            settings,
            OutputMode::Json,
        )
        .map(|a| a.without_session_id().args)
        .unwrap_or_default()
    }

    #[test]
    fn simple_prompt_is_the_task_verbatim() {
        assert_eq!(prompt_of("do stuff", None, None, None, None), "do stuff");
        assert_eq!(
            prompt_of("t", Some("c"), None, None, None),
            "Context:\nc\n\nTask:\nt"
        );
        assert_eq!(prompt_of("t", Some(""), Some(""), Some(""), Some("")), "t");
    }

    #[test]
    fn structured_prompt_orders_sections() {
        assert_eq!(
            prompt_of("t", Some("c"), Some("me"), Some("g"), None),
            "## Goal\ng\n\n## Dispatched by\nme\n\n## Context\nc\n\n## Task\nt"
        );
        assert_eq!(
            prompt_of("t", None, Some("me"), None, None),
            "## Dispatched by\nme\n\n## Task\nt"
        );
    }

    #[test]
    fn json_footer_only_for_exact_json() {
        let p = prompt_of("t", None, None, None, Some("json"));
        assert!(p.starts_with("t\n\n## Response format\nRespond with a single valid JSON value"));
        assert!(p.ends_with("respond with {\"error\": \"<reason>\"}."));
        assert_eq!(prompt_of("t", None, None, None, Some("JSON")), "t");
        assert_eq!(prompt_of("t", None, None, None, Some("text")), "t");
    }

    #[test]
    fn base_argv_and_fresh_session() {
        let s = Settings::default();
        assert_eq!(
            no_session(&agent(), &s),
            ["-p", "do it", "--output-format", "json"]
        );
        assert_eq!(
            args(&agent(), &s, SessionArg::Fresh("u-1".into())),
            [
                "-p",
                "do it",
                "--output-format",
                "json",
                "--session-id",
                "u-1"
            ]
        );
        let resumed = args(&agent(), &s, SessionArg::Resume("abc".into()));
        assert_eq!(
            resumed,
            ["-p", "do it", "--output-format", "json", "--resume", "abc"]
        );
        assert!(!resumed.iter().any(|a| a == "--session-id"));
    }

    #[test]
    fn full_argv_order() {
        let mut a = agent();
        a.max_budget_usd = Some(1.0);
        a.model = Some("sonnet".into());
        a.permission_mode = Some("plan".into());
        a.allowed_tools = Some(vec!["Read".into(), "Bash(git diff)".into()]);
        a.disallowed_tools = Some(vec!["Write".into()]);
        let got = build_args(
            "p",
            &SessionArg::Fresh("id".into()),
            &a,
            &Settings::default(),
            OutputMode::Stream,
        )
        .map(|x| x.args)
        .unwrap_or_default();
        assert_eq!(
            got,
            [
                "-p",
                "p",
                "--output-format",
                "stream-json",
                "--session-id",
                "id",
                "--max-budget-usd",
                "1.0",
                "--model",
                "sonnet",
                "--permission-mode",
                "plan",
                "--allowedTools",
                "Read",
                "--allowedTools",
                "Bash(git diff)",
                "--disallowedTools",
                "Write",
                "--verbose"
            ]
        );
    }

    #[test]
    fn tools_are_tri_state() {
        let s = Settings {
            default_allowed_tools: vec!["Bash".into(), "Read".into()],
            default_disallowed_tools: vec!["Write".into()],
            ..Settings::default()
        };
        let mut a = agent();
        let inherit = no_session(&a, &s);
        assert_eq!(
            inherit[4..],
            [
                "--allowedTools",
                "Bash",
                "--allowedTools",
                "Read",
                "--disallowedTools",
                "Write"
            ]
        );
        a.allowed_tools = Some(vec![]);
        a.disallowed_tools = Some(vec![]);
        assert_eq!(no_session(&a, &s).len(), 4);
        a.allowed_tools = Some(vec!["Edit".into()]);
        assert_eq!(no_session(&a, &s)[4..], ["--allowedTools", "Edit"]);
    }

    #[test]
    fn permission_mode_and_budget_fall_back_to_settings() {
        let s = Settings {
            default_permission_mode: Some("default".into()),
            default_max_budget_usd: Some(0.5),
            ..Settings::default()
        };
        let mut a = agent();
        assert_eq!(
            no_session(&a, &s)[4..],
            ["--max-budget-usd", "0.5", "--permission-mode", "default"]
        );
        a.permission_mode = Some("plan".into());
        a.max_budget_usd = Some(2.0);
        assert_eq!(
            no_session(&a, &s)[4..],
            ["--max-budget-usd", "2.0", "--permission-mode", "plan"]
        );
        // A zero budget is "not given" and falls through (SPEC §5.3 item 3).
        a.max_budget_usd = Some(0.0);
        assert_eq!(no_session(&a, &s)[5], "0.5");
    }

    #[test]
    fn guard_rejects_values_starting_with_dash_in_order() {
        let s = Settings::default();
        let build = |a: &AgentConfig, session: SessionArg| {
            build_args("p", &session, a, &s, OutputMode::Json).map_err(|e| match e {
                ArgvError::LooksLikeFlag { label, .. } => label.to_string(),
                other => other.to_string(),
            })
        };
        let mut a = agent();
        a.model = Some("--evil".into());
        a.permission_mode = Some("-x".into());
        a.allowed_tools = Some(vec!["Read".into(), "--dangerously-skip-permissions".into()]);
        a.disallowed_tools = Some(vec!["-Write".into()]);
        assert_eq!(
            build_args("p", &SessionArg::Resume("-r".into()), &a, &s, OutputMode::Json).map_err(|e| e.to_string()),
            Err("Refusing to dispatch: session_id '-r' starts with '-' and would be interpreted as a command-line flag by the claude CLI.".to_string())
        );
        // First failure wins; clearing each offender in turn reveals the next (SPEC §5.3 order).
        type Clear = fn(&mut AgentConfig);
        let clear_in_order: [(&str, Clear); 4] = [
            ("model", |a| a.model = None),
            ("permission_mode", |a| a.permission_mode = None),
            ("allowed tool", |a| a.allowed_tools = None),
            ("disallowed tool", |a| a.disallowed_tools = None),
        ];
        for (label, clear) in clear_in_order {
            assert_eq!(
                build(&a, SessionArg::Fresh("ok".into())),
                Err(label.to_string())
            );
            clear(&mut a);
        }
        a.max_budget_usd = Some(-1.0);
        assert_eq!(
            build_args("p", &SessionArg::Fresh("ok".into()), &a, &s, OutputMode::Json).map_err(|e| e.to_string()),
            Err("Refusing to dispatch: max_budget_usd '-1.0' starts with '-' and would be interpreted as a command-line flag by the claude CLI.".to_string())
        );
        a.max_budget_usd = Some(f64::INFINITY);
        let err = build_args(
            "p",
            &SessionArg::Fresh("ok".into()),
            &a,
            &s,
            OutputMode::Json,
        );
        assert!(matches!(err, Err(ArgvError::NonFiniteBudget { .. })));
    }

    #[test]
    fn prompt_starting_with_dash_stays_the_p_value() {
        let got = build_args(
            "--permission-mode=bypassPermissions",
            &SessionArg::Fresh("ok".into()),
            &agent(),
            &Settings::default(),
            OutputMode::Json,
        )
        .map(|a| a.without_session_id().args)
        .unwrap_or_default();
        assert_eq!(got[0], "-p");
        assert_eq!(got[1], " --permission-mode=bypassPermissions");
        assert_eq!(got[2..], ["--output-format", "json"]);
    }

    #[test]
    fn session_id_removal_uses_the_index_not_a_search() {
        let built = build_args(
            "--session-id",
            &SessionArg::Fresh("u".into()),
            &agent(),
            &Settings::default(),
            OutputMode::Stream,
        );
        let built = match built {
            Ok(b) => b,
            Err(e) => panic!("{e}"),
        };
        assert!(built.has_session_id());
        let retry = built.without_session_id();
        assert!(!retry.has_session_id());
        assert_eq!(
            retry.args,
            [
                "-p",
                " --session-id",
                "--output-format",
                "stream-json",
                "--verbose"
            ]
        );
    }
}
