//! Tuning knobs read from environment variables. Only the parsing rule lives here; each caller
//! names its variable and owns its default.

use std::time::Duration;

/// A duration given in seconds by `name` (fractions allowed, surrounding blanks ignored): a
/// positive finite value, capped at `max`; unset, unparsable, zero or negative → `default`.
pub fn secs(name: &str, default: Duration, max: Duration) -> Duration {
    std::env::var(name)
        .ok()
        .and_then(|v| parse_secs(&v, max))
        .unwrap_or(default)
}

fn parse_secs(text: &str, max: Duration) -> Option<Duration> {
    let s = text.trim().parse::<f64>().ok()?;
    (s.is_finite() && s > 0.0).then(|| Duration::from_secs_f64(s.min(max.as_secs_f64())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positive_seconds_and_caps_them() {
        let max = Duration::from_secs(60);
        assert_eq!(parse_secs(" 1.5 ", max), Some(Duration::from_millis(1500)));
        assert_eq!(parse_secs("1e9", max), Some(max));
        for bad in ["", "x", "0", "-3", "nan", "inf"] {
            assert_eq!(parse_secs(bad, max), None, "{bad:?}");
        }
        assert_eq!(
            secs(
                "AGENT_DISPATCH_SURELY_UNSET_VAR",
                max,
                Duration::from_secs(1)
            ),
            max
        );
    }
}
