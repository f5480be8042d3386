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
    fn json_type_names() {
        assert_eq!(json_type(&serde_json::json!([1])), "array");
        assert_eq!(json_type(&Value::Null), "null");
    }
}
