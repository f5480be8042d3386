//! The stdio transport: a reader thread turning stdin lines into `Incoming` messages and a writer
//! thread that is the only code in the process writing to stdout. Tool code never sees a writer;
//! it sends `Outgoing` values on a channel, so messages can never interleave.

use std::io::{self, BufRead, Write};
use std::thread::{self, JoinHandle};

use crossbeam_channel::{Receiver, Sender};

use super::msg::{self, ErrorCode, Incoming, Outgoing};

/// Lines longer than this are answered with an error and skipped without being buffered.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// What the reader thread reports.
#[derive(Debug)]
pub enum Inbound {
    Message(Incoming),
    /// stdin reached EOF or failed: the client is gone.
    Closed,
}

/// Starts the reader. Malformed lines are answered directly through `out` and reading goes on.
pub fn spawn_reader<R>(
    input: R,
    max_line: usize,
    inbound: Sender<Inbound>,
    out: Sender<Outgoing>,
) -> io::Result<JoinHandle<()>>
where
    R: BufRead + Send + 'static,
{
    thread::Builder::new()
        .name("mcp-reader".into())
        .spawn(move || read_loop(input, max_line, &inbound, &out))
}

fn read_loop<R: BufRead>(
    mut input: R,
    max_line: usize,
    inbound: &Sender<Inbound>,
    out: &Sender<Outgoing>,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        match read_line_capped(&mut input, &mut buf, max_line) {
            Ok(Line::Eof) | Err(_) => break,
            Ok(Line::TooLong(len)) => {
                let _ = out.send(Outgoing::error(
                    None,
                    ErrorCode::InvalidRequest,
                    format!(
                        "Invalid Request: message of {len} bytes exceeds the {max_line}-byte limit"
                    ),
                ));
            }
            Ok(Line::Complete) => {
                let line = buf.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                match msg::parse_line(line) {
                    Ok(incoming) => {
                        if inbound.send(Inbound::Message(incoming)).is_err() {
                            return;
                        }
                    }
                    Err(reply) => {
                        let _ = out.send(reply);
                    }
                }
            }
        }
    }
    let _ = inbound.send(Inbound::Closed);
}

enum Line {
    Eof,
    Complete,
    /// The line was skipped; its length in bytes.
    TooLong(usize),
}

/// Reads one `\n`-terminated line into `buf`, never holding more than `cap` bytes of it.
fn read_line_capped<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<Line> {
    let mut seen = 0usize;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if seen == 0 {
                Line::Eof
            } else if seen > cap {
                Line::TooLong(seen)
            } else {
                Line::Complete
            });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        seen += take;
        if seen <= cap {
            buf.extend_from_slice(&chunk[..take]);
        } else if !buf.is_empty() {
            // Over the cap: drop what we kept and only count from here on.
            buf.clear();
            buf.shrink_to(64 * 1024);
        }
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(if seen > cap {
                Line::TooLong(seen)
            } else {
                Line::Complete
            });
        }
    }
}

/// Starts the writer. It ends when every `Sender` is dropped, or on the first write error.
pub fn spawn_writer<W>(output: W, rx: Receiver<Outgoing>) -> io::Result<JoinHandle<io::Result<()>>>
where
    W: Write + Send + 'static,
{
    thread::Builder::new()
        .name("mcp-writer".into())
        .spawn(move || write_loop(output, &rx))
}

fn write_loop<W: Write>(output: W, rx: &Receiver<Outgoing>) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(256 * 1024, output);
    for message in rx {
        serde_json::to_writer(&mut w, &message).map_err(io::Error::other)?;
        w.write_all(b"\n")?;
        // Batch bursts (stream progress) into one flush, but never hold a message back.
        if rx.is_empty() {
            w.flush()?;
        }
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_all(input: &[u8], cap: usize) -> (Vec<Inbound>, Vec<Outgoing>) {
        let (itx, irx) = crossbeam_channel::unbounded();
        let (otx, orx) = crossbeam_channel::unbounded();
        read_loop(Cursor::new(input.to_vec()), cap, &itx, &otx);
        drop((itx, otx));
        (irx.iter().collect(), orx.iter().collect())
    }

    #[test]
    fn reads_messages_skips_blank_lines_and_answers_garbage() {
        let input = b"\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\nnot json\n{\"jsonrpc\":\"2.0\",\"method\":\"x\"}";
        let (inbound, out) = read_all(input, 1024);
        assert_eq!(inbound.len(), 3, "{inbound:?}");
        assert!(matches!(inbound[2], Inbound::Closed));
        assert_eq!(out.len(), 1);
        assert!(matches!(
            out[0],
            Outgoing::Error {
                code: ErrorCode::ParseError,
                id: None,
                ..
            }
        ));
    }

    #[test]
    fn overlong_line_is_refused_and_reading_continues() {
        let mut input = vec![b'x'; 5000];
        input.extend_from_slice(b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n");
        let (inbound, out) = read_all(&input, 100);
        assert!(matches!(
            out[0],
            Outgoing::Error {
                code: ErrorCode::InvalidRequest,
                ..
            }
        ));
        assert!(matches!(
            &inbound[0],
            Inbound::Message(Incoming::Request { .. })
        ));
    }

    #[test]
    fn writer_emits_one_line_per_message() {
        let (tx, rx) = crossbeam_channel::unbounded();
        tx.send(Outgoing::error(None, ErrorCode::ParseError, "a"))
            .ok();
        tx.send(Outgoing::Notification {
            method: "n",
            params: serde_json::json!({"x": "é"}),
        })
        .ok();
        drop(tx);
        let mut out = Vec::new();
        assert!(write_loop(&mut out, &rx).is_ok());
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("é"), "raw UTF-8, not escapes");
    }
}
