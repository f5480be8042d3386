//! The stdio transport: a reader thread turning stdin lines into `Incoming` messages, a pump
//! thread moving what tools send into the bounded `Outbox`, and a writer thread that is the only
//! code in the process writing to stdout. Tool code never sees a writer; it sends `Outgoing`
//! values on a channel, so messages can never interleave. `IoThreads` joins them with bounded
//! waits: a reader blocked on an open stdin or a writer blocked on a full stdout never holds up
//! the exit.

use std::io::{self, BufRead, Write};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::msg::{self, ErrorCode, Incoming, Outgoing};
use super::outbox::{Next, Outbox};

/// Lines longer than this are answered with an error and skipped without being buffered.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// What the reader thread reports.
#[derive(Debug)]
pub enum Inbound {
    Message(Incoming),
    /// The answer to a line that could not be read as a request (sent through the loop so it
    /// counts against the outbox like any response).
    Reply(Outgoing),
    /// stdin reached EOF or failed: the client is gone.
    Closed,
}

/// Starts the reader. Malformed lines are answered (`Inbound::Reply`) and reading goes on.
pub fn spawn_reader<R>(
    input: R,
    max_line: usize,
    inbound: Sender<Inbound>,
) -> io::Result<JoinHandle<()>>
where
    R: BufRead + Send + 'static,
{
    thread::Builder::new()
        .name("mcp-reader".into())
        .spawn(move || read_loop(input, max_line, &inbound))
}

fn read_loop<R: BufRead>(mut input: R, max_line: usize, inbound: &Sender<Inbound>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        match read_line_capped(&mut input, &mut buf, max_line) {
            Ok(Line::Eof) | Err(_) => break,
            Ok(Line::TooLong(len)) => {
                let reply = Outgoing::error(
                    None,
                    ErrorCode::InvalidRequest,
                    format!(
                        "Invalid Request: message of {len} bytes exceeds the {max_line}-byte limit"
                    ),
                );
                if inbound.send(Inbound::Reply(reply)).is_err() {
                    return;
                }
            }
            Ok(Line::Complete) => {
                let line = buf.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let item = match msg::parse_line(line) {
                    Ok(incoming) => Inbound::Message(incoming),
                    Err(reply) => Inbound::Reply(reply),
                };
                if inbound.send(item).is_err() {
                    return;
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

/// How often an idle writer checks whether the client closed its end of stdout.
const IDLE_CHECK: Duration = Duration::from_millis(200);

/// Starts the pump: every message sent on `rx` goes into `outbox` (never blocking, so tools
/// never wait for a slow client). It ends when every `Sender` is dropped.
pub fn spawn_pump(rx: Receiver<Outgoing>, outbox: Arc<Outbox>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("mcp-outbox".into())
        .spawn(move || {
            for message in rx {
                outbox.push(message);
            }
        })
}

/// Starts the writer. It ends when the outbox is closed and drained, or on the first write
/// error, which it reports on `failed` (and returns) after failing the outbox. `liveness` is the
/// descriptor behind `output`, polled while idle so a client that closed its end of stdout is
/// noticed before anything needs writing.
pub fn spawn_writer<W>(
    output: W,
    liveness: Option<RawFd>,
    outbox: Arc<Outbox>,
    failed: Sender<io::Error>,
) -> io::Result<JoinHandle<io::Result<()>>>
where
    W: Write + Send + 'static,
{
    thread::Builder::new()
        .name("mcp-writer".into())
        .spawn(move || {
            let result = write_loop(output, liveness, &outbox);
            if let Err(e) = &result {
                outbox.fail();
                let _ = failed.send(io::Error::new(e.kind(), e.to_string()));
            }
            result
        })
}

fn write_loop<W: Write>(output: W, liveness: Option<RawFd>, outbox: &Outbox) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(256 * 1024, output);
    loop {
        match outbox.next(IDLE_CHECK) {
            Next::Write(message) => {
                serde_json::to_writer(&mut w, &message).map_err(io::Error::other)?;
                w.write_all(b"\n")?;
                // Batch bursts (stream progress) into one flush, but never hold a message back.
                if outbox.is_empty() {
                    w.flush()?;
                }
            }
            Next::Idle => {
                if let Some(fd) = liveness
                    && peer_closed(fd)
                {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the client closed its end of stdout",
                    ));
                }
            }
            Next::Done => return w.flush(),
        }
    }
}

/// True when the writing end of the pipe behind `fd` (our stdin) is closed: the client will send
/// nothing more (data may still be buffered).
pub fn hung_up(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; poll(2) only writes `revents`.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLHUP != 0
}

/// True when the reading end of the pipe (or socket) behind `fd` is gone: poll reports POLLERR
/// or POLLHUP for the writing end then.
fn peer_closed(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout; poll(2) only writes `revents`.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// The transport's threads, joined with bounded waits (after rust-analyzer's `IoThreads`).
pub struct IoThreads {
    pub reader: JoinHandle<()>,
    pub pump: JoinHandle<()>,
    pub writer: JoinHandle<io::Result<()>>,
}

impl IoThreads {
    /// Lets the pump hand over what tools sent (until every sender is gone), closes the outbox,
    /// then waits for the writer to drain it, all by `deadline`, and returns how the writer
    /// ended. A writer still blocked on a client that does not read is abandoned with an error
    /// saying so (the process exits under it); so are a reader blocked on an open stdin and a
    /// pump held by a worker past its grace. A thread's panic is re-raised.
    pub fn join(self, outbox: &Outbox, deadline: Instant) -> io::Result<()> {
        while !self.pump.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        outbox.close();
        while !self.writer.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        for done in [self.reader, self.pump] {
            if done.is_finished()
                && let Err(panic) = done.join()
            {
                std::panic::resume_unwind(panic);
            }
        }
        if !self.writer.is_finished() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "stdout writer still blocked at exit: the client stopped reading",
            ));
        }
        match self.writer.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Inbound messages and replies to bad lines, in order.
    fn read_all(input: &[u8], cap: usize) -> (Vec<Inbound>, Vec<Outgoing>) {
        let (itx, irx) = crossbeam_channel::unbounded();
        read_loop(Cursor::new(input.to_vec()), cap, &itx);
        drop(itx);
        let mut inbound = Vec::new();
        let mut replies = Vec::new();
        for item in irx.iter() {
            match item {
                Inbound::Reply(r) => replies.push(r),
                other => inbound.push(other),
            }
        }
        (inbound, replies)
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
        let outbox = Outbox::default();
        outbox.push(Outgoing::error(None, ErrorCode::ParseError, "a"));
        outbox.push(Outgoing::Notification {
            method: "n",
            params: serde_json::json!({"x": "é"}),
        });
        outbox.close();
        let mut out = Vec::new();
        assert!(write_loop(&mut out, None, &outbox).is_ok());
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("é"), "raw UTF-8, not escapes");
    }

    /// A writer whose client closed stdout reports it instead of swallowing it.
    #[test]
    fn closed_pipe_is_noticed_while_idle_and_reported() {
        let mut fds = [0; 2];
        // SAFETY: a valid two-element array for pipe(2).
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: closing the read end we own; fds[1] is closed below.
        unsafe { libc::close(fds[0]) };
        let outbox = Arc::new(Outbox::default());
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = spawn_writer(Vec::new(), Some(fds[1]), Arc::clone(&outbox), tx).unwrap();
        let err = rx.recv_timeout(Duration::from_secs(20)).unwrap();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(writer.join().unwrap().is_err());
        // SAFETY: our own descriptor, no longer used.
        unsafe { libc::close(fds[1]) };
    }
}
