//! The fake `codex` and `gemini` in `fixtures/` against the real CLIs' recorded behaviour:
//! runs `fixtures/check-fakes.py`, which replays the argv of every capture in
//! `fixtures/samples/{codex,gemini}/captures` and compares exit codes, error texts, event type
//! sequences and field shapes. A fake that drifts from the samples fails here, before a backend
//! test trusts it.

use std::path::Path;
use std::process::Command;

#[test]
fn fakes_match_the_recorded_real_clis() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let out = Command::new("python3")
        .arg(fixtures.join("check-fakes.py"))
        .current_dir(&fixtures)
        .output()
        .expect("python3 runs fixtures/check-fakes.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout.lines().last().unwrap_or_default();
    let (passed, failed) = summary
        .strip_suffix(" failed")
        .and_then(|s| s.split_once(" passed, "))
        .unwrap_or_else(|| {
            panic!(
                "no summary line from check-fakes.py:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let passed: usize = passed.parse().expect("a count of passed checks");
    assert_eq!(failed, "0", "fake CLIs differ from the samples:\n{stdout}");
    // The checker covers ~250 checks; a small count means whole cases stopped running.
    assert!(passed >= 200, "only {passed} checks ran:\n{stdout}");
    assert!(out.status.success(), "check-fakes.py failed:\n{stdout}");
}
