//! The process's own diagnostics: one line per message on stderr, `<time> [LEVEL] agent-dispatch:
//! <message>` (SPEC §7.1). stdout belongs to the JSON-RPC writer and is never touched here.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn info(message: &str) {
    write_line("INFO", message);
}

pub fn warn(message: &str) {
    write_line("WARNING", message);
}

pub fn error(message: &str) {
    write_line("ERROR", message);
}

fn write_line(level: &str, message: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let line = format!(
        "{h:02}:{m:02}:{s:02}.{:03} [{level}] agent-dispatch: {message}\n",
        now.subsec_millis()
    );
    // A closed stderr must not take the server down.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
