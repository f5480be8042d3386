//! `Ask`: what a caller asks of an agent (task, context, caller, goal, response format). One
//! typed value serves the cache key, the job record and the prompt builder, so the five fields
//! are never copied field by field between structs.

use serde::{Deserialize, Serialize};

/// How the caller wants the answer: free text (the default), or one JSON value that is parsed
/// into `parsed_result`. Any other word is kept as given (it reaches the job record and the
/// cache key) but changes nothing else, as in the reference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResponseFormat {
    #[default]
    Text,
    Json,
    Other(String),
}

impl ResponseFormat {
    /// `""` (or nothing) is text; `"json"` is JSON; anything else is kept verbatim.
    pub fn parse(raw: Option<&str>) -> ResponseFormat {
        match raw {
            None | Some("") => ResponseFormat::Text,
            Some("json") => ResponseFormat::Json,
            Some(other) => ResponseFormat::Other(other.to_string()),
        }
    }

    /// The word the caller gave, if any.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            ResponseFormat::Text => None,
            ResponseFormat::Json => Some("json"),
            ResponseFormat::Other(s) => Some(s),
        }
    }

    pub fn is_json(&self) -> bool {
        *self == ResponseFormat::Json
    }
}

impl Serialize for ResponseFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_str().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ResponseFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Option::<String>::deserialize(d)?;
        Ok(ResponseFormat::parse(raw.as_deref()))
    }
}

/// The text of one dispatch as the caller gave it, `""` already turned into `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ask {
    pub task: String,
    pub context: Option<String>,
    pub caller: Option<String>,
    pub goal: Option<String>,
    pub response_format: ResponseFormat,
}

impl Ask {
    /// A bare task with nothing around it.
    pub fn task(task: impl Into<String>) -> Ask {
        Ask {
            task: task.into(),
            ..Ask::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_format_round_trips_the_callers_word() {
        assert_eq!(ResponseFormat::parse(Some("")), ResponseFormat::Text);
        assert_eq!(ResponseFormat::parse(Some("json")).as_str(), Some("json"));
        let other = ResponseFormat::parse(Some("markdown"));
        assert_eq!(other.as_str(), Some("markdown"));
        assert!(!other.is_json());
        assert_eq!(
            serde_json::to_string(&ResponseFormat::Text).ok().as_deref(),
            Some("null")
        );
    }
}
