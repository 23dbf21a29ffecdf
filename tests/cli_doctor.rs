//! `monocoque doctor` says what the kernel gave: one line per io_uring feature.

use std::process::Command;

#[test]
fn doctor_prints_one_line_per_feature() {
    let out = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .arg("doctor")
        .output()
        .expect("run monocoque doctor");
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    // io_uring works wherever this suite runs (this machine and CI).
    assert!(out.status.success(), "doctor failed: {text}");
    assert!(text.contains("io_uring: available"), "{text}");
    for feature in [
        "provided-buffer ring",
        "multishot receive",
        "multishot accept",
        "registered send buffers",
        "WRITE_FIXED",
        "SINGLE_ISSUER",
        "DEFER_TASKRUN",
        "COOP_TASKRUN",
        "SUBMIT_ALL",
    ] {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{feature}: ")))
            .collect();
        assert_eq!(lines.len(), 1, "one line for {feature} in:\n{text}");
        let rest = &lines[0][feature.len() + 2..];
        assert!(
            rest.starts_with("active - ") || rest.starts_with("inactive - "),
            "{feature}: {rest}"
        );
        if rest.starts_with("inactive") {
            assert!(
                rest.contains("off:") || rest.contains("fallback:"),
                "no reason for {feature}: {rest}"
            );
        }
    }
}
