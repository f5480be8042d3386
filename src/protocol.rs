//! The dispatch protocol (0.16.0's, in our words): what every child is told on top of its task —
//! it runs unattended for a caller, must decide instead of asking, has a time (and spend)
//! budget, should lead with the outcome and end with one `STATUS: done | partial | blocked`
//! line — and the agent's standing `instructions`. Also the other half: lifting that STATUS line
//! out of the answer into `outcome`, and the hint an unfinished outcome carries.

use serde::{Deserialize, Serialize};

use crate::config::{AgentConfig, Settings};
use crate::pyfmt;

/// The agent's own verdict on its work, from its final `STATUS:` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Done,
    Partial,
    Blocked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Partial => "partial",
            Outcome::Blocked => "blocked",
        }
    }

    /// `partial` and `blocked`: the caller has more to do.
    pub fn is_unfinished(self) -> bool {
        self != Outcome::Done
    }
}

impl crate::schema::Schema for Outcome {
    fn schema() -> serde_json::Value {
        crate::schema::one_of_strings(&["done", "partial", "blocked"])
    }
}

/// What a run is told besides its task: the protocol (unless `settings.dispatch_protocol` is
/// off), then the agent's instructions. `None` when there is nothing to tell. Starts with a
/// `## ` header, so it can never be read as a command-line flag.
pub fn system_prompt(
    name: &str,
    agent: &AgentConfig,
    settings: &Settings,
    timeout_secs: u64,
    caller: Option<&str>,
    json_reply: bool,
) -> Option<String> {
    // A hand-written name may hold control characters (even NUL, which no argv can carry).
    let name: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    let mut parts = Vec::new();
    if settings.dispatch_protocol {
        let by = match caller.filter(|c| !c.is_empty()) {
            Some(c) => format!("for \"{}\"", c.replace(|c: char| c.is_control(), "?")),
            None => "for another agent".to_string(),
        };
        let budget = crate::claude::argv::effective_budget(agent, settings)
            .filter(|b| b.is_finite() && *b > 0.0 && agent.backend.is_default())
            .map(|b| format!(" and at most ${} of spend", pyfmt::float(b)))
            .unwrap_or_default();
        let mut lines = vec![
            "## Dispatch protocol".to_string(),
            format!(
                "You are agent \"{name}\", working {by} without a person at the keyboard: this run \
                 is non-interactive and ends when you reply."
            ),
            "- No one can answer questions or approve anything. Do not stop to ask: state the \
             assumption you make and carry on; where readings differ, take the safer one and say so."
                .to_string(),
            "- If a tool is denied or something you need is missing, say so, work around it, and \
             finish what can be finished."
                .to_string(),
            format!(
                "- You have about {timeout_secs} seconds{budget} for the whole run. Size the work to \
                 fit: a complete partial answer is worth more than an unfinished full one."
            ),
        ];
        if !json_reply {
            lines.push(
                "- Your reply is read by a program first: open with the outcome or the answer, then \
                 the evidence and what you changed, then what you could not do and why."
                    .to_string(),
            );
            lines.push(
                "- Make the very last line of your reply exactly one of `STATUS: done` (all of it \
                 done), `STATUS: partial` (some done; say what is left) or `STATUS: blocked` \
                 (nothing possible; say what you need)."
                    .to_string(),
            );
        }
        parts.push(lines.join("\n"));
    }
    if let Some(instructions) = agent.instructions() {
        parts.push(format!(
            "## Standing instructions for \"{name}\"\n{instructions}"
        ));
    }
    (!parts.is_empty()).then(|| parts.join("\n\n"))
}

/// Lifts a final `STATUS: done|partial|blocked` line out of `text`. Only the last non-empty line
/// counts (an answer quoting the protocol mid-way is not a verdict); markdown decoration around
/// it is tolerated. A line that also gives a reason (`STATUS: partial — DB down`) stays in the
/// text, because the reason is worth reading; a bare marker line is removed.
pub fn split_outcome(text: &str) -> (String, Option<Outcome>) {
    let trimmed = text.trim_end();
    let (head, last) = match trimmed.rfind('\n') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    let Some((outcome, rest)) = parse_status_line(last) else {
        return (text.to_string(), None);
    };
    let bare = rest
        .chars()
        .all(|c| c.is_whitespace() || matches!(c, '*' | '_' | '`' | '.' | '!'));
    if bare {
        (head.trim_end().to_string(), Some(outcome))
    } else {
        (text.to_string(), Some(outcome))
    }
}

/// `STATUS: <word>` after optional decoration, case-insensitive; the word and what follows it.
fn parse_status_line(line: &str) -> Option<(Outcome, &str)> {
    let decor = |c: char| c.is_whitespace() || matches!(c, '*' | '_' | '`');
    let rest = line.trim_start_matches(decor);
    let head = rest.get(..6)?;
    if !head.eq_ignore_ascii_case("status") {
        return None;
    }
    let rest = rest[6..].trim_start().strip_prefix(':')?;
    let rest = rest.trim_start_matches(decor);
    for outcome in [Outcome::Done, Outcome::Partial, Outcome::Blocked] {
        let word = outcome.as_str();
        if let Some(prefix) = rest.get(..word.len())
            && prefix.eq_ignore_ascii_case(word)
        {
            let after = &rest[word.len()..];
            // A whole word: "doneish" is not "done".
            if after
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric() && c != '_')
            {
                return Some((outcome, after));
            }
        }
    }
    None
}

/// What to do about an unfinished outcome: the exact call that continues the session.
pub fn outcome_hint(agent: &str, outcome: Outcome, session_id: Option<&str>) -> Option<String> {
    let resume = match session_id {
        Some(sid) => format!(
            "dispatch_session(agent='{agent}', task='Continue where you left off', session_id='{sid}')"
        ),
        None => format!("dispatch_session(agent='{agent}', ...)"),
    };
    match outcome {
        Outcome::Done => None,
        Outcome::Partial => Some(format!(
            "The agent reports PARTIAL work: the result says what is missing. Continue in the same session with {resume}, or re-dispatch with what it needed."
        )),
        Outcome::Blocked => Some(format!(
            "The agent reports it is BLOCKED: the result names what it needs (context, access, a tool, a running service). Provide it and re-dispatch, or resume with {resume}."
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_last_line_alone_is_the_verdict() {
        assert_eq!(
            split_outcome("Fixed it.\n\nSTATUS: done\n"),
            ("Fixed it.".to_string(), Some(Outcome::Done))
        );
        assert_eq!(
            split_outcome("Half.\n**Status: Partial**"),
            ("Half.".to_string(), Some(Outcome::Partial))
        );
        let with_reason = "Tried.\nSTATUS: blocked — the DB is down";
        assert_eq!(
            split_outcome(with_reason),
            (with_reason.to_string(), Some(Outcome::Blocked))
        );
        let quoted = "End with STATUS: done\nas asked.";
        assert_eq!(split_outcome(quoted), (quoted.to_string(), None));
        assert_eq!(split_outcome("STATUS: doneish").1, None);
        assert_eq!(
            split_outcome("STATUS: done"),
            (String::new(), Some(Outcome::Done))
        );
        assert_eq!(split_outcome(""), (String::new(), None));
        assert_eq!(split_outcome("é\nSTATUS: done").0, "é");
    }

    #[test]
    fn the_prompt_follows_the_settings() {
        let mut agent = AgentConfig::new(PathBuf::from("/x"));
        let mut settings = Settings::default();
        let text =
            system_prompt("db", &agent, &settings, 300, Some("web"), false).unwrap_or_default();
        assert!(text.starts_with("## Dispatch protocol\n"), "{text}");
        assert!(text.contains("\"web\"") && text.contains("300 seconds"));
        assert!(text.contains("STATUS: done"));
        let json = system_prompt("db", &agent, &settings, 300, None, true).unwrap_or_default();
        assert!(!json.contains("STATUS"), "{json}");
        settings.dispatch_protocol = false;
        assert_eq!(
            system_prompt("db", &agent, &settings, 300, None, false),
            None
        );
        agent.instructions = "Never push.".into();
        assert_eq!(
            system_prompt("db", &agent, &settings, 300, None, false).as_deref(),
            Some("## Standing instructions for \"db\"\nNever push.")
        );
    }
}
