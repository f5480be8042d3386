//! Reading `AGENT_DISPATCH_DEPTH` (SPEC §10), failing closed: the recursion guard is only as
//! good as this number, so a value that is not a plain depth refuses the dispatch instead of
//! counting as 0.

use std::ffi::OsStr;

/// The depth `raw` names: absent or empty → 0; decimal digits (surrounding whitespace allowed)
/// that fit a `u32` → that number; anything else (`abc`, `-1`, `+2`, 20 digits, non-UTF-8) → an
/// error saying what was wrong, for a `recursion` failure.
pub fn parse_depth(raw: Option<&OsStr>) -> Result<u32, String> {
    let Some(raw) = raw else { return Ok(0) };
    let Some(text) = raw.to_str() else {
        return Err(refusal("is not valid UTF-8"));
    };
    let digits = text.trim();
    if digits.is_empty() {
        return Ok(0);
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        let shown: String = digits.chars().take(40).collect();
        return Err(refusal(&format!(
            "is {shown:?}, not a non-negative integer"
        )));
    }
    digits.parse::<u32>().map_err(|_| {
        refusal(&format!(
            "has {} digits, too large to be a depth",
            digits.len()
        ))
    })
}

fn refusal(what: &str) -> String {
    format!(
        "AGENT_DISPATCH_DEPTH {what}; refusing to dispatch because the recursion guard cannot \
         tell how deeply this process is nested. Unset it or set it to a small number."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn parse(s: &str) -> Result<u32, String> {
        parse_depth(Some(OsStr::new(s)))
    }

    #[test]
    fn plain_depths_are_read() {
        assert_eq!(parse_depth(None), Ok(0));
        assert_eq!(parse(""), Ok(0));
        assert_eq!(parse("0"), Ok(0));
        assert_eq!(parse(" 2\n"), Ok(2));
        assert_eq!(parse("007"), Ok(7));
        assert_eq!(parse("4294967295"), Ok(u32::MAX));
    }

    #[test]
    fn anything_else_fails_closed_with_a_reason() {
        for bad in [
            "abc",
            "-1",
            "+2",
            "1.5",
            "1e3",
            "12345678901234567890",
            "4294967296",
            "٣",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.starts_with("AGENT_DISPATCH_DEPTH "), "{err}");
            assert!(err.contains("refusing to dispatch"), "{err}");
        }
        assert!(
            parse("12345678901234567890")
                .unwrap_err()
                .contains("20 digits")
        );
        let not_utf8 = OsStr::from_bytes(b"\xff1");
        assert!(parse_depth(Some(not_utf8)).unwrap_err().contains("UTF-8"));
        let long = "x".repeat(10_000);
        assert!(
            parse(&long).unwrap_err().len() < 400,
            "the value is quoted, capped"
        );
    }
}
