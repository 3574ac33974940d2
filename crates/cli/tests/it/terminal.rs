//! Logs and progress when stderr is not a terminal (a pipe, as in cron and CI): structured log
//! lines and no bar. What a terminal shows is checked in tmux by `scripts/terminal-check.sh`.

use crate::common::{Workdir, assert_success};

#[test]
fn in_a_pipe_progress_is_log_lines_and_no_bar() {
    let workdir = Workdir::new();
    workdir.generate(2_000, 0.005);
    let output = workdir.run(&["pipeline", "dump", "--lake", "lake", "--out", "out"]);
    assert_success(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in ["INFO", "file done", "computing kpi_monthly", "computed"] {
        assert!(stderr.contains(expected), "expected {expected:?} in: {stderr}");
    }
    for bar in ["\r", "\u{1b}[", "[=", " B/s", "records  "] {
        assert!(!stderr.contains(bar), "no bar or terminal control in a pipe ({bar:?}): {stderr}");
    }

    let quiet = workdir.run(&["-q", "pipeline", "dump", "--lake", "lake", "--out", "out"]);
    assert_success(&quiet);
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert!(!stderr.contains("INFO"), "-q shows no INFO lines: {stderr}");

    let json = workdir.run(&["--log-format", "json", "pipeline", "dump", "--lake", "lake", "--out", "out"]);
    assert_success(&json);
    for line in String::from_utf8_lossy(&json.stderr).lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|error| panic!("{error}: {line}"));
    }
}
