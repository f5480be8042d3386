//! Persisted async jobs and `return_ref` references (SPEC §8): the record (`model`), the shared
//! on-disk store with its locks and transitions (`store`), and the worker that runs one job
//! under the concurrency limiter (`worker`). The MCP tools and the `jobs` CLI are thin layers on
//! top; the `claude` runner is passed in by the caller as a closure.

mod fsio;
pub mod model;
pub mod store;
pub mod worker;

use std::fmt;
use std::path::{Path, PathBuf};

pub use fsio::process_start_time;
pub use model::{Job, NewJob, Status, fetch_view, new_id, summary, valid_id};
pub use store::{CancelOutcome, JobStore, Listing, OwnershipGuard};
pub use worker::run_job;

/// A job-store failure, always naming the offending id or path.
#[derive(Debug)]
pub enum Error {
    /// Not `^[0-9a-f]{32}$`; refused before any filesystem access.
    InvalidId(String),
    Io {
        path: PathBuf,
        err: std::io::Error,
    },
    /// A job file that does not hold a valid record for its name.
    Corrupt {
        path: PathBuf,
        message: String,
    },
}

impl Error {
    fn io(path: &Path, err: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            err,
        }
    }

    pub fn is_invalid_id(&self) -> bool {
        matches!(self, Error::InvalidId(_))
    }

    /// A job file exists but holds no valid record for its name.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // SPEC §7.3 message, Python repr quoting included.
            Error::InvalidId(v) => write!(
                f,
                "Invalid ref/job_id format: '{v}' (expected a 32-char hex id)"
            ),
            Error::Io { path, err } => write!(f, "jobs store at {}: {err}", path.display()),
            Error::Corrupt { path, message } => {
                write!(f, "job file {} is unreadable: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}
