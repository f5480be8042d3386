//! Python-compatible renderings that users and calling models see in messages (SPEC §0):
//! `repr()` of a string (`'foo'`) and `str()` of a float (`2.0`, `0.5`, `1e-05`).

/// Python's `repr(s)` for a `str`: single quotes unless the text holds `'` but no `"`.
pub fn repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str(f)` / `repr(f)`: shortest round-trip digits, `.0` on integral values, and
/// scientific notation below 1e-4 or from 1e16 up (`1e-05`, `1e+16`).
pub fn float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let abs = f.abs();
    if (1e-4..1e16).contains(&abs) {
        let s = format!("{f}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust writes `1e-5` / `1.5e16`; Python writes `1e-05` / `1.5e+16`.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(repr("foo"), "'foo'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(repr("a\nb\\"), "'a\\nb\\\\'");
        assert_eq!(repr("\u{1}"), "'\\x01'");
        assert_eq!(repr("héllo"), "'héllo'");
    }

    #[test]
    fn float_renders_like_python() {
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(2.5), "2.5");
        assert_eq!(float(0.5), "0.5");
        assert_eq!(float(1e-5), "1e-05");
        assert_eq!(float(1e16), "1e+16");
        assert_eq!(float(1.5e16), "1.5e+16");
        assert_eq!(float(123456.0), "123456.0");
        assert_eq!(float(0.0001), "0.0001");
        assert_eq!(float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(float(-3.0), "-3.0");
        assert_eq!(float(0.0), "0.0");
        let cases = [
            (2.0, "2.0"),
            (0.1, "0.1"),
            (10.0, "10.0"),
            (123.456, "123.456"),
            (1.5e-07, "1.5e-07"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (-0.25, "-0.25"),
            (1e100, "1e+100"),
        ];
        for (v, want) in cases {
            assert_eq!(float(v), want, "{v:?}");
        }
        assert_eq!(float(f64::NAN), "nan");
        assert_eq!(float(f64::NEG_INFINITY), "-inf");
    }
}
