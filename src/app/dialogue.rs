//! The two-agent dialogue (`dispatch_dialogue`, SPEC §7.6): the responder speaks first, the two
//! take turns in their own resumed sessions until one ends a message with `[RESOLVED]`, a turn
//! fails, the caller cancels, or the rounds run out. Every turn goes through the pipeline.

use serde::Serialize;

use super::App;
use super::pipeline::{self, Dispatch, Kind, Observer, Target};
use crate::ask::Ask;
use crate::result::{DispatchResult, ErrorType};
use crate::text::first_chars;

const MARKER: &str = "[RESOLVED]";

/// The whole conversation and how it ended.
#[derive(Debug, Serialize)]
pub struct Dialogue {
    pub resolved: bool,
    pub rounds: u32,
    pub total_cost_usd: f64,
    pub total_duration_ms: u64,
    pub final_answer: String,
    pub conversation: Vec<Turn>,
}

#[derive(Debug, Serialize)]
pub struct Turn {
    pub agent: String,
    pub role: &'static str,
    pub round: u32,
    pub message: String,
    /// `null` when the turn reported no cost.
    pub cost_usd: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TurnFailure>,
}

#[derive(Debug, Serialize)]
pub struct TurnFailure {
    pub error: Option<String>,
    pub error_type: Option<ErrorType>,
}

impl crate::schema::Schema for Dialogue {
    fn schema() -> serde_json::Value {
        use crate::schema::{
            array, boolean, integer, nullable, number, object, one_of_strings, string,
        };
        let turn = object(
            &[
                ("agent", string()),
                ("role", one_of_strings(&["responder", "requester"])),
                ("round", integer()),
                ("message", string()),
                ("cost_usd", nullable("number")),
                ("error", nullable("string")),
                (
                    "error_type",
                    crate::schema::any_of(vec![ErrorType::schema(), crate::schema::null()]),
                ),
            ],
            &["agent", "role", "round", "message", "cost_usd"],
        );
        object(
            &[
                ("resolved", boolean()),
                ("rounds", integer()),
                ("total_cost_usd", number()),
                ("total_duration_ms", integer()),
                ("final_answer", string()),
                ("conversation", array(turn)),
            ],
            &[
                "resolved",
                "rounds",
                "total_cost_usd",
                "total_duration_ms",
                "final_answer",
                "conversation",
            ],
        )
    }
}

fn initial_prompt(other: &str, topic: &str) -> String {
    format!(
        "You are starting a collaborative dialogue with agent '{other}'.\nProvide your analysis or ask \
         questions. When you have a complete answer and no further questions, end your response with \
         {MARKER}.\n\nTopic:\n{topic}"
    )
}

fn reply_prompt(other: &str, message: &str) -> String {
    format!(
        "Agent '{other}' responds:\n\n{message}\n\nContinue the discussion. If you have a complete answer \
         and no further questions, end your response with {MARKER}."
    )
}

pub fn run(
    app: &App,
    requester: Target,
    responder: Target,
    topic: &str,
    max_rounds: u32,
    obs: &dyn Observer,
) -> Dialogue {
    obs.log(&format!(
        "Starting dialogue: {} <-> {} (max {max_rounds} rounds)",
        requester.name, responder.name
    ));
    let goal = first_chars(topic, 200).to_string();
    // Speakers in turn order: the responder (the expert) opens.
    let speakers = [
        (&responder, &requester, "responder"),
        (&requester, &responder, "requester"),
    ];
    let mut sessions: [Option<String>; 2] = [None, None];
    let mut total_cost = 0.0f64;
    let mut total_ms = 0u64;
    let mut conversation: Vec<Turn> = Vec::new();
    let mut last_message = String::new();
    let mut finished: Option<DispatchResult> = None;

    'rounds: for round in 1..=max_rounds {
        for (turn, (speaker, other, role)) in speakers.iter().enumerate() {
            let task = if round == 1 && turn == 0 {
                initial_prompt(&other.name, topic)
            } else {
                reply_prompt(&other.name, &last_message)
            };
            let dispatch = Dispatch {
                target: (*speaker).clone(),
                ask: Ask {
                    caller: Some(other.name.clone()),
                    goal: Some(goal.clone()),
                    ..Ask::task(task)
                },
                kind: Kind::Quiet(sessions[turn].clone()),
            };
            let r = pipeline::run(app, &dispatch, obs).result;
            if r.session_id.is_some() {
                sessions[turn] = r.session_id.clone();
            }
            total_cost += r.cost_usd.unwrap_or(0.0);
            total_ms += r.duration_ms.unwrap_or(0);
            conversation.push(Turn {
                agent: speaker.name.clone(),
                role,
                round,
                message: r.result.clone(),
                cost_usd: r.cost_usd,
                failure: (!r.success).then(|| TurnFailure {
                    error: r.error.clone(),
                    error_type: r.error_type,
                }),
            });
            obs.log(&format!(
                "[round {round}] {}: {}...",
                speaker.name,
                first_chars(&r.result, 120)
            ));
            last_message = r.result.clone();
            if r.result.contains(MARKER) || !r.success || obs.cancel().is_tripped() {
                finished = Some(r);
                break 'rounds;
            }
        }
    }

    let (resolved, mut final_answer) = match &finished {
        Some(r) => {
            let answer = match (&r.error, r.success) {
                (Some(err), false) => err.clone(),
                _ => r.result.replace(MARKER, "").trim().to_string(),
            };
            (r.result.contains(MARKER), answer)
        }
        None => (false, String::new()),
    };
    if final_answer.is_empty()
        && let Some(last) = conversation.last()
    {
        final_answer = last.message.clone();
    }
    Dialogue {
        resolved,
        rounds: conversation.last().map_or(0, |t| t.round),
        total_cost_usd: (total_cost * 10_000.0).round() / 10_000.0,
        total_duration_ms: total_ms,
        final_answer,
        conversation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Schema;

    #[test]
    fn a_dialogue_with_a_failed_turn_matches_its_schema() {
        let d = Dialogue {
            resolved: false,
            rounds: 1,
            total_cost_usd: 0.0,
            total_duration_ms: 0,
            final_answer: "x".into(),
            conversation: vec![
                Turn {
                    agent: "a".into(),
                    role: "responder",
                    round: 1,
                    message: "m".into(),
                    cost_usd: Some(0.1),
                    failure: None,
                },
                Turn {
                    agent: "b".into(),
                    role: "requester",
                    round: 1,
                    message: String::new(),
                    cost_usd: None,
                    failure: Some(TurnFailure {
                        error: None,
                        error_type: Some(ErrorType::Timeout),
                    }),
                },
            ],
        };
        let v = serde_json::to_value(&d).unwrap_or_default();
        assert_eq!(
            crate::schema::validate(&Dialogue::schema(), &v),
            Ok(()),
            "{v}"
        );
    }
}
