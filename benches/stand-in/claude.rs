//! A compiled stand-in for the `claude` CLI, for the benchmark figures whose point is our own
//! overhead: it starts in well under a millisecond, where the Python fake's interpreter takes
//! ~20 ms and its jitter hides a sub-millisecond cost. The bench builds it with `rustc -O`
//! (std only) into `target/bench-stand-in/claude`; it is not part of the package.
//!
//! It answers `claude -p … --output-format json|stream-json [--session-id ID | --resume ID]` with
//! the shape of the real CLI's result object (see `/work/shared/claude-cli-samples/`), reporting
//! the session id it was given, and exits 0. Stream mode prints an init event, one assistant
//! text, then the result, one JSON object per line.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let session = value_of("--session-id")
        .or_else(|| value_of("--resume"))
        .unwrap_or_else(|| "00000000-0000-4000-8000-000000000000".to_string());
    // Session ids reach us as UUIDs; keep the output valid JSON whatever we were given.
    let session: String = session
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let stream = value_of("--output-format").as_deref() == Some("stream-json");
    let result = format!(
        concat!(
            r#"{{"type":"result","subtype":"success","is_error":false,"duration_ms":496,"#,
            r#""duration_api_ms":588,"num_turns":1,"result":"It is a small project.","#,
            r#""stop_reason":"end_turn","session_id":"{}","total_cost_usd":0.0032,"#,
            r#""usage":{{"input_tokens":200,"output_tokens":40}},"#,
            r#""permission_denials":[],"terminal_reason":"completed"}}"#
        ),
        session
    );
    let mut out = String::new();
    if stream {
        out.push_str(&format!(
            r#"{{"type":"system","subtype":"init","session_id":"{session}"}}"#
        ));
        out.push('\n');
        out.push_str(&format!(
            concat!(
                r#"{{"type":"assistant","message":{{"role":"assistant","content":"#,
                r#"[{{"type":"text","text":"Looking"}}]}},"session_id":"{}"}}"#
            ),
            session
        ));
        out.push('\n');
    }
    out.push_str(&result);
    out.push('\n');
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(out.as_bytes()).is_err() || stdout.flush().is_err() {
        std::process::exit(1);
    }
}
