//! Small text helpers shared by every module that cuts or describes untrusted values. SPEC §0:
//! lengths count characters (code points), never bytes, so a cut never splits a character.

use serde_json::Value;

/// The first `n` characters of `s`.
pub fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// The lines of `s` split the way Python's `str.splitlines()` splits them: at `\n`, `\r\n`, a
/// bare `\r`, and the other Unicode line boundaries Python honours (`\x0b`, `\x0c`, `\x1c`–`\x1e`,
/// `\u{85}`, `\u{2028}`, `\u{2029}`). Like `str::lines`, a final line end yields no empty line.
/// `str::lines` alone would leave a CR-only file as one long line.
pub fn split_lines(s: &str) -> SplitLines<'_> {
    SplitLines { rest: s }
}

/// The iterator of [`split_lines`].
pub struct SplitLines<'a> {
    rest: &'a str,
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

impl<'a> Iterator for SplitLines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((at, c)) = self.rest.char_indices().find(|&(_, c)| is_line_break(c)) else {
            let line = self.rest;
            self.rest = "";
            return Some(line);
        };
        let line = &self.rest[..at];
        let mut end = at + c.len_utf8();
        if c == '\r' && self.rest[end..].starts_with('\n') {
            end += 1;
        }
        self.rest = &self.rest[end..];
        Some(line)
    }
}

/// The JSON type name of a value, as error messages name it.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_chars_counts_characters_not_bytes() {
        assert_eq!(first_chars("héllo", 2), "hé");
        assert_eq!(first_chars("hi", 80), "hi");
        assert_eq!(first_chars("", 3), "");
        assert_eq!(first_chars("日本語", 0), "");
    }

    #[test]
    fn split_lines_matches_python_splitlines() {
        fn split(s: &str) -> Vec<&str> {
            split_lines(s).collect()
        }
        assert_eq!(split("a\rb\r\nc\nd"), ["a", "b", "c", "d"]);
        assert_eq!(split("a\r\rb\n"), ["a", "", "b"]);
        assert_eq!(split("x\u{2028}y\x0cz\u{85}é"), ["x", "y", "z", "é"]);
        assert_eq!(split("\n"), [""]);
        assert!(split("").is_empty());
        assert_eq!(split("a\r"), ["a"]);
    }

    #[test]
    fn json_type_names() {
        assert_eq!(json_type(&serde_json::json!([1])), "array");
        assert_eq!(json_type(&Value::Null), "null");
    }
}
