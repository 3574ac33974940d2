//! Atomicity under SIGKILL: an ingest or compute killed at its most delicate moment (files
//! written, not yet committed) leaves the lake and the output directory exactly as before,
//! and the next run succeeds. A second ingest into a lake being written fails at once.

use crate::common::{Workdir, assert_success, snapshot, start_paused};

#[test]
fn killed_ingest_leaves_the_lake_as_it_was() {
    let workdir = Workdir::new();
    workdir.generate(3_000, 0.003);
    assert_success(&workdir.run(&["ingest", "dump/events-00000.ndjson", "--lake", "lake"]));
    let before = snapshot(&workdir.path("lake"));

    for point in ["ingest:after_read", "ingest:before_commit"] {
        let mut child = start_paused(&workdir, point, &["ingest", "dump", "--lake", "lake"]);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let after: Vec<_> = snapshot(&workdir.path("lake"));
        let committed = |files: &[(std::path::PathBuf, Vec<u8>)]| -> Vec<std::path::PathBuf> {
            files.iter().map(|(path, _)| path.clone()).filter(|path| path.starts_with("_runs")).collect()
        };
        assert_eq!(committed(&after), committed(&before), "killed at {point}: no new run is committed");
        let compute = workdir.run(&["compute", "--lake", "lake", "--out", "out"]);
        assert_success(&compute);
    }
    // The next ingest clears what the killed ones left and commits normally.
    assert_success(&workdir.run(&["ingest", "dump", "--lake", "lake"]));
    let snapshots = std::fs::read_dir(workdir.path("lake/_snapshots")).expect("snapshots").count();
    assert_eq!(snapshots, 1, "only the committed snapshot is left");
    let again = workdir.run(&["--log-format", "json", "ingest", "dump", "--lake", "lake"]);
    assert_success(&again);
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&again.stdout).lines().last().expect("summary")).expect("json");
    assert_eq!(summary["accepted"], 0, "everything is already in the lake");
}

#[test]
fn killed_compute_leaves_the_output_as_it_was() {
    let workdir = Workdir::new();
    workdir.generate(2_000, 0.0);
    assert_success(&workdir.run(&["ingest", "dump", "--lake", "lake"]));
    assert_success(&workdir.run(&["compute", "--lake", "lake", "--out", "out", "--as-of", "2024-09-30"]));
    let before = snapshot(&workdir.path("out"));
    let mut child = start_paused(&workdir, "export:before_swap", &["compute", "--lake", "lake", "--out", "out"]);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(snapshot(&workdir.path("out")), before);
    assert_success(&workdir.run(&["compute", "--lake", "lake", "--out", "out"]));
    let siblings: Vec<String> = std::fs::read_dir(workdir.dir.path())
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(siblings.iter().all(|name| !name.contains("staging")), "{siblings:?}");
}

#[test]
fn a_second_ingest_into_a_busy_lake_fails_at_once() {
    let workdir = Workdir::new();
    workdir.generate(1_000, 0.0);
    let mut first = start_paused(&workdir, "ingest:after_read", &["ingest", "dump", "--lake", "lake"]);
    let second = workdir.run(&["ingest", "dump", "--lake", "lake"]);
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert_eq!(second.status.code(), Some(1));
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("being written by another ingest"), "{message}");
}
