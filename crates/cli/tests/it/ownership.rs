//! What crmkpi owns and what it refuses: `--out` is replaced only when it is new, empty or a
//! crmkpi output directory holding only crmkpi's files, and never when it overlaps the lake;
//! `--lake` is initialised only in a new or empty directory; `generate` never overwrites a
//! file. Every refusal exits 2 before any work, and every file that was there stays byte for
//! byte.

use std::path::Path;

use crate::common::{Workdir, assert_success, snapshot};

/// A workdir with a small generated dump, ingested into `data/lake`.
fn workdir_with_lake() -> Workdir {
    let workdir = Workdir::new();
    workdir.generate(1_500, 0.0);
    assert_success(&workdir.run(&["ingest", "dump", "--lake", "data/lake"]));
    workdir
}

/// Asserts exit 2 with a message containing every part of `expected`.
fn assert_refused(output: &std::process::Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "expected {part:?} in: {stderr}");
    }
}

fn write(path: &Path, contents: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, contents).expect("write");
}

#[test]
fn out_containing_the_lake_is_refused_and_the_lake_kept() {
    let workdir = workdir_with_lake();
    let before = snapshot(workdir.dir.path());
    let output = workdir.run(&["compute", "--lake", "data/lake", "--out", "data"]);
    assert_refused(&output, &["--out data contains the lake data/lake", "outside the lake"]);
    assert_eq!(snapshot(workdir.dir.path()), before);
    for out in ["data/lake", "data/lake/out", "data/./lake/../lake", "."] {
        let output = workdir.run(&["compute", "--lake", "data/lake", "--out", out]);
        assert_refused(&output, &["the lake data/lake"]);
        assert_eq!(snapshot(workdir.dir.path()), before, "--out {out}");
    }
}

#[test]
fn overlap_through_a_symlink_is_refused() {
    let workdir = workdir_with_lake();
    std::os::unix::fs::symlink(workdir.path("data"), workdir.path("alias")).expect("symlink");
    let before = snapshot(&workdir.path("data"));
    let output = workdir.run(&["compute", "--lake", "data/lake", "--out", "alias"]);
    assert_refused(&output, &["--out alias contains the lake data/lake"]);
    let output = workdir.run(&["compute", "--lake", "alias/lake", "--out", "data/lake/tables"]);
    assert_refused(&output, &["lies inside the lake alias/lake"]);
    assert_eq!(snapshot(&workdir.path("data")), before);
}

#[test]
fn out_with_a_users_files_is_refused_by_compute_and_pipeline() {
    let workdir = workdir_with_lake();
    write(&workdir.path("mine/notes.txt"), "do not delete");
    write(&workdir.path("mine/precious/thesis.txt"), "four years of work");
    let before = snapshot(workdir.dir.path());
    let expected =
        ["--out mine holds 2 entries that crmkpi did not write: notes.txt, precious/", "new or empty directory"];
    assert_refused(&workdir.run(&["compute", "--lake", "data/lake", "--out", "mine"]), &expected);
    assert_eq!(snapshot(workdir.dir.path()), before);
    // pipeline refuses before ingesting: no new lake appears.
    assert_refused(&workdir.run(&["pipeline", "dump", "--lake", "fresh", "--out", "mine"]), &expected);
    assert!(!workdir.path("fresh").exists());
    assert_eq!(snapshot(workdir.dir.path()), before);
    // --out that is a file.
    assert_refused(&workdir.run(&["compute", "--lake", "data/lake", "--out", "mine/notes.txt"]), &["is a file"]);
    assert_eq!(snapshot(workdir.dir.path()), before);
}

#[test]
fn an_output_directory_is_replaced_until_someone_else_writes_into_it() {
    let workdir = workdir_with_lake();
    std::fs::create_dir(workdir.path("empty")).expect("mkdir");
    assert_success(&workdir.run(&["compute", "--lake", "data/lake", "--out", "empty"]));
    // The nightly rerun: the same --out is crmkpi's and is replaced.
    assert_success(&workdir.run(&["compute", "--lake", "data/lake", "--out", "empty"]));
    assert_success(&workdir.run(&["pipeline", "dump", "--lake", "data/lake", "--out", "empty"]));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(workdir.path("empty/manifest.json")).expect("manifest")).expect("json");
    assert_eq!(manifest["written_by"], "crmkpi");
    // A file of the user's inside it: refused, and everything stays.
    write(&workdir.path("empty/my_query.sql"), "select 1");
    let before = snapshot(workdir.dir.path());
    let output = workdir.run(&["compute", "--lake", "data/lake", "--out", "empty"]);
    assert_refused(&output, &["holds 1 entry that crmkpi did not write: my_query.sql"]);
    assert_eq!(snapshot(workdir.dir.path()), before);
}

#[test]
fn an_output_directory_of_an_earlier_version_is_still_replaced() {
    let workdir = workdir_with_lake();
    assert_success(&workdir.run(&["compute", "--lake", "data/lake", "--out", "out"]));
    let path = workdir.path("out/manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("manifest")).expect("json");
    manifest.as_object_mut().expect("object").remove("written_by");
    std::fs::write(&path, serde_json::to_vec(&manifest).expect("json")).expect("write");
    assert_success(&workdir.run(&["compute", "--lake", "data/lake", "--out", "out"]));
}

#[test]
fn a_lake_is_created_only_in_a_new_or_empty_directory() {
    let workdir = Workdir::new();
    workdir.generate(1_000, 0.0);
    write(&workdir.path("documents/cv.pdf"), "%PDF");
    write(&workdir.path("documents/photos/cat.jpg"), "jpeg");
    let before = snapshot(workdir.dir.path());
    let output = workdir.run(&["ingest", "dump", "--lake", "documents"]);
    assert_refused(
        &output,
        &["--lake documents is not a crmkpi lake and holds 2 entries that crmkpi did not write: cv.pdf, photos/"],
    );
    assert_eq!(snapshot(workdir.dir.path()), before);
    assert!(!workdir.path("documents/_lock").exists());
    assert_refused(&workdir.run(&["pipeline", "dump", "--lake", "documents", "--out", "out"]), &["not a crmkpi lake"]);
    assert_eq!(snapshot(workdir.dir.path()), before);
    assert!(!workdir.path("out").exists());
    // An empty directory becomes a lake, and the lake takes the next night's run.
    std::fs::create_dir(workdir.path("empty")).expect("mkdir");
    assert_success(&workdir.run(&["ingest", "dump", "--lake", "empty"]));
    assert!(workdir.path("empty/_crmkpi_lake.json").exists());
    assert_success(&workdir.run(&["ingest", "dump", "--lake", "empty"]));
}

#[test]
fn generate_never_overwrites_a_file() {
    let workdir = Workdir::new();
    write(&workdir.path("dumps/events-00001.csv"), "my own export");
    let before = snapshot(workdir.dir.path());
    let output = workdir.run(&[
        "generate",
        "--events",
        "100",
        "--seed",
        "1",
        "--out",
        "dumps",
        "--format",
        "ndjson,csv",
        "--events-per-file",
        "50",
    ]);
    assert_refused(&output, &["dumps/events-00001.csv exists; generate never overwrites a file"]);
    assert_eq!(snapshot(workdir.dir.path()), before);
    // Other names in the same directory are fine.
    std::fs::rename(workdir.path("dumps/events-00001.csv"), workdir.path("dumps/mine.csv")).expect("rename");
    assert_success(&workdir.run(&["generate", "--events", "100", "--seed", "1", "--out", "dumps"]));
    assert_eq!(std::fs::read_to_string(workdir.path("dumps/mine.csv")).expect("read"), "my own export");
}
