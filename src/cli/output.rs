//! Where command output goes: explicit stdout/stderr writers (so `main` can forbid `println!`)
//! and the colour policy — ANSI colours only on a terminal and only without `NO_COLOR`. Colours
//! are cosmetic (SPEC §9): green OK, red errors, yellow warnings, cyan progress.

use std::io::{self, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    Green,
    Red,
    Yellow,
    Cyan,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Cyan => "36",
            Color::Bold => "1",
        }
    }
}

/// stdout as commands see it: once the reader has gone (`EPIPE`), further output is dropped
/// instead of failing, so the command finishes and reports its own exit code.
pub struct PipeGuard<'a> {
    inner: &'a mut dyn Write,
    closed: bool,
}

impl<'a> PipeGuard<'a> {
    pub fn new(inner: &'a mut dyn Write) -> Self {
        PipeGuard {
            inner,
            closed: false,
        }
    }

    /// True once a write found the reader gone.
    pub fn closed(&self) -> bool {
        self.closed
    }

    fn absorb<T>(&mut self, r: io::Result<T>, dropped: T) -> io::Result<T> {
        match r {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(dropped)
            }
            other => other,
        }
    }
}

impl Write for PipeGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        let r = self.inner.write(buf);
        self.absorb(r, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.closed {
            return Ok(());
        }
        let r = self.inner.flush();
        self.absorb(r, ())
    }
}

/// `line` with at most one leading `Error: ` (messages built from errors that already carry
/// the prefix must not print it twice).
pub(crate) fn one_error_prefix(line: &str) -> String {
    let mut rest = line;
    let mut had = false;
    while let Some(r) = rest.strip_prefix("Error: ") {
        rest = r;
        had = true;
    }
    if had {
        format!("Error: {rest}")
    } else {
        rest.to_string()
    }
}

/// The two output streams of a command and whether each may be coloured.
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub out_color: bool,
    pub err_color: bool,
}

/// True when `fd` is a terminal and `NO_COLOR` is unset or empty (https://no-color.org).
pub fn color_wanted(fd: i32) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    // SAFETY: isatty only inspects the descriptor number; any value is safe to pass.
    !no_color && unsafe { libc::isatty(fd) } == 1
}

pub(crate) fn paint(enabled: bool, color: Color, text: &str) -> String {
    if enabled {
        format!("\x1b[{}m{text}\x1b[0m", color.code())
    } else {
        text.to_string()
    }
}

impl Io<'_> {
    /// A plain line on stdout.
    pub fn say(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.out, "{line}")
    }

    /// A coloured line on stdout.
    pub fn say_in(&mut self, color: Color, line: &str) -> io::Result<()> {
        let text = paint(self.out_color, color, line);
        writeln!(self.out, "{text}")
    }

    /// Colours a fragment for stdout.
    pub fn tint(&self, color: Color, text: &str) -> String {
        paint(self.out_color, color, text)
    }

    /// A red line on stderr, with at most one `Error: ` prefix.
    pub fn error(&mut self, line: &str) -> io::Result<()> {
        let text = paint(self.err_color, Color::Red, &one_error_prefix(line));
        writeln!(self.err, "{text}")
    }

    /// A yellow line on stderr.
    pub fn warn(&mut self, line: &str) -> io::Result<()> {
        let text = paint(self.err_color, Color::Yellow, line);
        writeln!(self.err, "{text}")
    }

    /// A plain line on stderr.
    pub fn note(&mut self, line: &str) -> io::Result<()> {
        writeln!(self.err, "{line}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_when_enabled() {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let mut io = Io {
            out: &mut o,
            err: &mut e,
            out_color: true,
            err_color: false,
        };
        io.say_in(Color::Green, "ok").unwrap();
        io.error("bad").unwrap();
        assert_eq!(o, b"\x1b[32mok\x1b[0m\n");
        assert_eq!(e, b"bad\n");
    }

    #[test]
    fn one_prefix_and_a_closed_pipe_is_absorbed() {
        assert_eq!(one_error_prefix("Error: Error: x"), "Error: x");
        assert_eq!(one_error_prefix("x"), "x");
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut c = Closed;
        let mut g = PipeGuard::new(&mut c);
        assert!(writeln!(g, "a").is_ok());
        assert!(g.closed());
    }
}
