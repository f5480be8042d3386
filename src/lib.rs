//! agent-dispatch: an MCP stdio server and CLI that hands work to Claude Code agents, each a
//! `claude -p` child started in its own project directory.
//!
//! Where a tool call goes: `mcp::transport` reads a line → `mcp` server loop → a worker thread
//! runs the tool from `mcp::tools` → `claude::run` spawns and supervises the child → the
//! `DispatchResult` goes back through the single writer thread.
//!
//! The management CLI (`cli`) changes `agents.yaml` only through `config` (`config::mutate` for
//! edits, `config::init_file` for `init`; both locked and atomic) and describes projects with
//! `detect`; the MCP tools use the same two modules.

pub mod cache;
pub mod cancel;
pub mod claude;
pub mod cli;
pub mod config;
pub mod depth;
pub mod detect;
pub mod env;
pub mod fsutil;
pub mod jobs;
pub mod limiter;
pub mod log;
pub mod mcp;
pub mod process;
pub mod pyfmt;
pub mod result;
pub mod signals;
pub mod text;
