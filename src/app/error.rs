//! `app::Error`: a failure the application reports to its caller before or instead of a
//! dispatch (unknown agent, unreadable config, unusable job store, a refused request), with an
//! optional hint saying what to do. Adapters render it: the MCP layer as an `isError` result
//! carrying `{"error", "hint"?}`, the CLI as an `Error:` line.

use std::fmt;

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Error {
        self.hint = Some(hint.into());
        self
    }

    /// A job-store failure: the message names the id or path; the hint says how to recover.
    pub fn from_store(e: crate::jobs::Error) -> Error {
        if e.is_invalid_id() {
            return Error::new(e.to_string());
        }
        if e.is_corrupt() {
            return Error::new(e.to_string()).with_hint(
                "The job file is corrupt; delete or move it (dispatch_gc removes corrupt job files \
                 older than max_age_days).",
            );
        }
        Error::new(e.to_string()).with_hint(
            "The jobs directory could not be used. Check its permissions and free space \
             (AGENT_DISPATCH_JOBS_DIR, else jobs/ next to agents.yaml).",
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
