//! agent-dispatch: an MCP stdio server and CLI that hands work to Claude Code agents, each a
//! `claude -p` child started in its own project directory.
//!
//! Layers, each calling only down (ARCHITECTURE.md has the full map): the adapters `mcp` and
//! `cli` → the application core `app` (the dispatch pipeline over `App`'s limiter, cache, job
//! store and config snapshot) → the domain values and stores (`ask`, `result`, `config`, `cache`,
//! `limiter`, `gate`, `jobs`, `detect`) → the runner (`claude`, `process`, `runenv`).

pub mod app;
pub mod ask;
pub mod backend;
pub mod cache;
pub mod cancel;
pub mod claude;
pub mod cli;
pub mod config;
pub mod detect;
pub mod env;
pub mod fsutil;
pub mod gate;
pub mod jobs;
pub mod journal;
pub mod limiter;
pub mod log;
pub mod mcp;
pub mod process;
pub mod protocol;
pub mod pyfmt;
pub mod registry;
pub mod result;
pub mod runenv;
pub mod schema;
pub mod signals;
pub mod text;
