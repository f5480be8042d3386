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

    /// A red line on stderr.
    pub fn error(&mut self, line: &str) -> io::Result<()> {
        let text = paint(self.err_color, Color::Red, line);
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
}
