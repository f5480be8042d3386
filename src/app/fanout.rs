//! Fan-out (`dispatch_parallel`): several dispatches at once on scoped threads, each through the
//! pipeline (so each takes its own permit), then optionally one aggregator that reads them all.
//! Items are validated by the caller before this runs: nothing starts unless all can.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;

use super::App;
use super::pipeline::{self, Dispatch, Full, Kind, Observer, Reply, Target};
use crate::ask::Ask;
use crate::result::{DispatchResult, ErrorType};

/// One item: a one-shot dispatch, and the summary length when it returns a ref.
pub struct Item {
    pub dispatch: Dispatch,
    pub ref_summary: Option<usize>,
}

/// The outcome: the replies in item order, or those plus the aggregator's answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FanOut {
    Replies(Vec<Reply>),
    Aggregated {
        individual_results: Vec<Reply>,
        aggregated: Box<DispatchResult>,
    },
}

impl crate::schema::Schema for FanOut {
    /// The replies alone are an array, which MCP's `structuredContent` cannot be: the adapter
    /// wraps them as `{"items": [...]}`; this is that wrapped form or the aggregated object.
    fn schema() -> serde_json::Value {
        use crate::schema::{any_of, array, object};
        any_of(vec![
            object(&[("items", array(Reply::schema()))], &["items"]),
            object(
                &[
                    ("individual_results", array(Reply::schema())),
                    ("aggregated", DispatchResult::schema()),
                ],
                &["individual_results", "aggregated"],
            ),
        ])
    }
}

const AGGREGATE_TASK: &str = "Synthesize the results below into a single coherent answer. Highlight key findings, \
note any conflicts between agents, and provide actionable conclusions.";

pub fn run(app: &App, items: &[Item], aggregator: Option<Target>, obs: &dyn Observer) -> FanOut {
    let names: Vec<&str> = items
        .iter()
        .map(|i| i.dispatch.target.name.as_str())
        .collect();
    obs.log(&format!("Dispatching in parallel to: {}", names.join(", ")));
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| {
                std::thread::Builder::new()
                    .name("dispatch-parallel-item".into())
                    .spawn_scoped(scope, move || {
                        catch_unwind(AssertUnwindSafe(|| {
                            let ran = pipeline::run(app, &item.dispatch, obs);
                            pipeline::reply(app, &item.dispatch.ask, ran, item.ref_summary)
                        }))
                    })
            })
            .collect();
        handles
            .into_iter()
            .zip(items)
            .map(|(handle, item)| {
                let name = &item.dispatch.target.name;
                match handle {
                    Ok(h) => h.join().ok().and_then(Result::ok).unwrap_or_else(|| {
                        item_failure(name, "the dispatch failed unexpectedly".into())
                    }),
                    Err(e) => item_failure(name, format!("could not start a thread: {e}")),
                }
            })
            .collect()
    });
    let Some(target) = aggregator else {
        return FanOut::Replies(replies);
    };
    obs.log(&format!("Aggregating results via {}...", target.name));
    let ask = Ask {
        task: AGGREGATE_TASK.to_string(),
        context: Some(aggregate_context(&replies)),
        caller: Some("dispatch_parallel".into()),
        goal: Some("aggregate parallel dispatch results".into()),
        ..Ask::default()
    };
    let dispatch = Dispatch {
        target,
        ask,
        kind: Kind::Quiet(None),
    };
    let aggregated = pipeline::run(app, &dispatch, obs).result;
    FanOut::Aggregated {
        individual_results: replies,
        aggregated: Box::new(aggregated),
    }
}

fn item_failure(agent: &str, error: String) -> Reply {
    Reply::Full(Full {
        result: DispatchResult::failure(agent, ErrorType::CliError, error),
        ref_error: None,
        cached: false,
    })
}

/// The aggregator's context: one section per item, its result, else its summary (ref items),
/// else its error.
fn aggregate_context(replies: &[Reply]) -> String {
    let sections: Vec<String> = replies
        .iter()
        .map(|reply| {
            let given = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
            let body = match reply {
                Reply::Full(f) if !f.result.result.is_empty() => f.result.result.clone(),
                Reply::Full(f) => given(&f.result.error).unwrap_or_default(),
                Reply::Ref(r) if !r.summary.is_empty() => format!(
                    "(preview of a stored result, ref {})\n{}",
                    r.reference, r.summary
                ),
                Reply::Ref(r) => given(&r.error).unwrap_or_default(),
            };
            // The aggregator must know which answers their own agents call unfinished.
            let status = match (reply.success(), reply.outcome()) {
                (false, _) => "FAILED",
                (true, Some(o)) if o.is_unfinished() => &*o.as_str().to_uppercase(),
                (true, _) => "OK",
            };
            format!("## Agent: {} [{status}]\n{body}", reply.agent())
        })
        .collect();
    sections.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::pipeline::RefPayload;

    #[test]
    fn aggregate_context_uses_result_then_summary_then_error() {
        let ok = |agent: &str, text: &str| DispatchResult {
            agent: agent.into(),
            success: true,
            result: text.into(),
            ..Default::default()
        };
        let replies = [
            Reply::Full(Full {
                result: ok("a", "A says"),
                ref_error: None,
                cached: false,
            }),
            Reply::Ref(RefPayload::new("r1".into(), &ok("b", "B prev"), 100)),
            item_failure("c", "boom".into()),
        ];
        let ctx = aggregate_context(&replies);
        assert!(ctx.starts_with("## Agent: a [OK]\nA says\n\n## Agent: b [OK]\n(preview"));
        assert!(ctx.contains("ref r1)\nB prev"));
        assert!(ctx.ends_with("## Agent: c [FAILED]\nboom"));
    }
}
