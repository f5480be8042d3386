//! The one integration test binary: every suite is a module here, so the suite links once.
//! Each module drives the real `agent-dispatch` binary (or the library) against the fakes in
//! `fixtures/`; `util` holds the helpers they share.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod util;

mod agentmodel;
mod backends;
mod cli;
mod fakes;
mod faults;
mod gate;
mod groups;
mod hostile;
mod jobs;
mod mcp;
mod mcp_jobs;
mod mcp_more;
mod ops;
mod ops_cli;
mod runner;
