//! The threads that drain a child's stdout and stderr, and the caps on what they keep.
//!
//! stdout in `Whole` mode is kept up to `Limits::max_output` bytes; in `Lines` mode each line up
//! to `Limits::max_line` bytes, with at most `BACKLOG_BYTES` of lines waiting for the consumer
//! (the reader stops reading, so the child blocks on its pipe). Past a cap the reader stops
//! keeping bytes and reports `Event::Overflow`; the supervisor then stops the child. stderr keeps
//! its last `STDERR_TAIL` bytes.

use std::io::{self, Read};
use std::process::{ChildStderr, ChildStdout};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::StdoutMode;

/// How much of stderr is kept: the tail, where the CLI's final error message is.
pub const STDERR_TAIL: usize = 64 * 1024;
/// Read size for stdout; results can be tens of megabytes.
const STDOUT_CHUNK: usize = 256 * 1024;
/// Default cap on all of stdout in `Whole` mode (json: the result document).
pub const DEFAULT_MAX_OUTPUT: usize = 64 * 1024 * 1024;
/// Default cap on one stdout line in `Lines` mode (stream-json: one event).
pub const DEFAULT_MAX_LINE: usize = 64 * 1024 * 1024;
/// Environment variables that override the defaults (bytes; suffixes K, M, G allowed).
pub const MAX_OUTPUT_VAR: &str = "AGENT_DISPATCH_MAX_OUTPUT_BYTES";
pub const MAX_LINE_VAR: &str = "AGENT_DISPATCH_MAX_LINE_BYTES";
/// Lines read but not yet taken by the consumer, in bytes, before the reader waits.
const BACKLOG_BYTES: usize = 8 * 1024 * 1024;

/// Caps on what is kept of a child's stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_output: usize,
    pub max_line: usize,
}

impl Limits {
    /// The defaults, overridden by `AGENT_DISPATCH_MAX_OUTPUT_BYTES` and
    /// `AGENT_DISPATCH_MAX_LINE_BYTES` when they hold a size (a bad value keeps the default).
    pub fn from_env() -> Limits {
        let read = |var: &str, default: usize| {
            std::env::var(var)
                .ok()
                .and_then(|v| parse_size(&v))
                .filter(|n| *n > 0)
                .unwrap_or(default)
        };
        Limits {
            max_output: read(MAX_OUTPUT_VAR, DEFAULT_MAX_OUTPUT),
            max_line: read(MAX_LINE_VAR, DEFAULT_MAX_LINE),
        }
    }
}

/// `123`, `64K`, `64M`, `1G` (binary units) as bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let n: usize = digits.trim().parse().ok()?;
    let shift = match unit {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return None,
    };
    n.checked_mul(1usize << shift)
}

/// `67108864` as `64 MiB`, for messages.
pub fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// What a reader hands the supervisor.
#[derive(Debug)]
pub enum Event {
    Line(Vec<u8>),
    /// A cap was hit; the text says which, for the caller's error.
    Overflow(String),
}

/// Bytes of lines queued for the consumer; the consumer subtracts what it takes.
#[derive(Default)]
pub struct Backlog(AtomicUsize);

impl Backlog {
    pub fn taken(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::SeqCst);
    }
}

pub struct StdoutReader {
    pub mode: StdoutMode,
    pub limits: Limits,
    pub sink: Arc<Mutex<Vec<u8>>>,
    pub events: Sender<Event>,
    pub backlog: Arc<Backlog>,
    /// Set by the supervisor when it no longer takes lines (the reader then only drains).
    pub abandoned: Arc<AtomicBool>,
}

impl StdoutReader {
    pub fn run(self, mut pipe: ChildStdout) {
        let mut chunk = vec![0u8; STDOUT_CHUNK];
        let mut pending: Vec<u8> = Vec::new();
        // After an overflow everything else is read and thrown away, so the child (until it is
        // stopped) never blocks on a full pipe with us holding its output.
        let mut overflowed = false;
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if overflowed {
                continue;
            }
            match self.mode {
                StdoutMode::Whole => {
                    let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
                    if sink.len() + n > self.limits.max_output {
                        *sink = Vec::new();
                        drop(sink);
                        overflowed = true;
                        let _ = self.events.send(Event::Overflow(format!(
                            "the agent's CLI printed more than {} on stdout (the limit on a result, set by {MAX_OUTPUT_VAR}); it was stopped and its output discarded",
                            human(self.limits.max_output)
                        )));
                    } else {
                        sink.extend_from_slice(&chunk[..n]);
                    }
                }
                StdoutMode::Lines => {
                    if !self.split_lines(&mut pending, &chunk[..n]) {
                        overflowed = true;
                        pending = Vec::new();
                    }
                }
            }
        }
        if self.mode == StdoutMode::Lines && !pending.is_empty() && !overflowed {
            let _ = self.events.send(Event::Line(pending));
        }
    }

    /// Appends `new` to `pending` and sends every complete line. False after an overflow.
    fn split_lines(&self, pending: &mut Vec<u8>, new: &[u8]) -> bool {
        // Search only the new bytes for line ends; a 50 MB line arrives in many chunks.
        let mut rest = new;
        while let Some(off) = rest.iter().position(|b| *b == b'\n') {
            if pending.len() + off > self.limits.max_line {
                return self.line_overflow();
            }
            pending.extend_from_slice(&rest[..off]);
            rest = &rest[off + 1..];
            let line = std::mem::take(pending);
            if !self.send_line(line) {
                return true;
            }
        }
        if pending.len() + rest.len() > self.limits.max_line {
            return self.line_overflow();
        }
        pending.extend_from_slice(rest);
        true
    }

    fn line_overflow(&self) -> bool {
        let _ = self.events.send(Event::Overflow(format!(
            "the agent's CLI printed a line longer than {} (the limit on one stream event, set by {MAX_LINE_VAR}); it was stopped",
            human(self.limits.max_line)
        )));
        false
    }

    /// Sends one line, first waiting while the consumer is `BACKLOG_BYTES` behind.
    fn send_line(&self, line: Vec<u8>) -> bool {
        while self.backlog.0.load(Ordering::SeqCst) > BACKLOG_BYTES
            && !self.abandoned.load(Ordering::SeqCst)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.backlog.0.fetch_add(line.len(), Ordering::SeqCst);
        self.events.send(Event::Line(line)).is_ok()
    }
}

pub fn read_stderr(mut pipe: ChildStderr, sink: &Mutex<Tail>, _done: Sender<Event>) {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => sink
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
}

/// The last `STDERR_TAIL` bytes of a stream.
#[derive(Debug, Default)]
pub struct Tail {
    buf: Vec<u8>,
    dropped: bool,
}

impl Tail {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        // Trim in batches so a flood costs amortised O(1) per byte.
        if self.buf.len() > 2 * STDERR_TAIL {
            let cut = self.buf.len() - STDERR_TAIL;
            self.buf.drain(..cut);
            self.dropped = true;
        }
    }

    pub fn text(&self) -> String {
        let mut bytes = self.buf.as_slice();
        if bytes.len() > STDERR_TAIL {
            bytes = &bytes[bytes.len() - STDERR_TAIL..];
        }
        if self.dropped || bytes.len() < self.buf.len() {
            // Do not start in the middle of a UTF-8 sequence.
            while let Some((first, rest)) = bytes.split_first() {
                if first & 0b1100_0000 == 0b1000_0000 {
                    bytes = rest;
                } else {
                    break;
                }
            }
        }
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size(" 2m "), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("5T"), None);
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(1000), "1000 bytes");
    }

    #[test]
    fn tail_starts_on_a_char_boundary() {
        let mut t = Tail::default();
        let big = "é".repeat(STDERR_TAIL);
        t.push(big.as_bytes());
        let text = t.text();
        assert!(!text.starts_with('\u{fffd}'));
        assert!(text.len() <= STDERR_TAIL);
    }
    use crate::process::StdoutMode;
    use crate::process::testkit::{SMALL, far, sh_limited};

    #[test]
    fn output_past_the_total_cap_stops_the_child_and_says_so() {
        let child = sh_limited(
            "yes x | head -c 50000000; echo after",
            StdoutMode::Whole,
            SMALL,
        );
        let f = child.wait(far(), None, &mut |_| {});
        assert!(f.stdout.is_empty());
        let why = f.overflow.unwrap_or_default();
        assert!(why.contains("more than 1 MiB"), "{why}");
        assert!(f.stderr.ends_with(&why), "{}", f.stderr);
        assert_ne!(f.code, 0);
    }

    #[test]
    fn a_line_past_the_cap_stops_the_child_and_earlier_lines_arrive() {
        let child = sh_limited(
            "echo first; while :; do printf xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done",
            StdoutMode::Lines,
            SMALL,
        );
        let mut lines = Vec::new();
        let f = child.wait(far(), None, &mut |l| lines.push(l.to_vec()));
        assert_eq!(lines, [b"first".to_vec()]);
        assert!(
            f.overflow
                .is_some_and(|w| w.contains("line longer than 1 MiB"))
        );
    }
}
