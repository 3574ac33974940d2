//! The tables do not depend on how the per-entity work is split: `compute --buckets N` writes
//! byte-identical table files for 1, 2, 7 and 64 entity buckets (64 buckets of a small lake
//! leave some buckets without any event), over several generated dumps and time zones.

use std::path::Path;

use crate::common::{Workdir, assert_success};

/// Every table file of an output directory (the manifest and report carry run times).
fn table_files(out: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(out)
        .expect("output directory")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "parquet" || extension == "csv"))
        .map(|path| {
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("table file"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn tables_are_byte_identical_for_every_bucket_count() {
    for (seed, zone) in [("1", "UTC"), ("2", "Europe/Berlin"), ("5", "America/New_York")] {
        let workdir = Workdir::new();
        std::fs::write(workdir.path("crmkpi.toml"), format!("timezone = \"{zone}\"\n[fx]\nUSD = 0.92\n"))
            .expect("config");
        let generate = ["generate", "--events", "6000", "--seed", seed, "--out", "dump", "--dirty-rate", "0.01"];
        assert_success(&workdir.run(&generate));
        let ingest = workdir.run(&["ingest", "dump", "--lake", "lake"]);
        assert!(matches!(ingest.status.code(), Some(0 | 3)), "{}", String::from_utf8_lossy(&ingest.stderr));
        let mut first: Option<Vec<(String, Vec<u8>)>> = None;
        for buckets in ["1", "2", "7", "64"] {
            let out = format!("out-{buckets}");
            let args = ["-q", "compute", "--lake", "lake", "--out", &out, "--no-report", "--buckets", buckets];
            assert_success(&workdir.run(&args));
            let files = table_files(&workdir.path(&out));
            assert_eq!(files.len(), 24, "12 tables as Parquet and CSV");
            match &first {
                None => first = Some(files),
                Some(expected) => {
                    for ((name, bytes), (_, expected_bytes)) in files.iter().zip(expected) {
                        assert!(bytes == expected_bytes, "seed {seed}, {zone}: {name} differs with {buckets} buckets");
                    }
                }
            }
        }
    }
}

#[test]
fn memory_limit_is_checked() {
    let workdir = Workdir::new();
    let output = workdir.run(&["compute", "--lake", "lake", "--out", "out", "--memory-limit", "12 parsecs"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--memory-limit"));
    let output = workdir.run(&["compute", "--lake", "lake", "--out", "out", "--buckets", "0"]);
    assert_eq!(output.status.code(), Some(2));
}

/// With more than one bucket, compute splits the lake by bucket: a small lake in memory, so the
/// run leaves nothing under `$TMPDIR` (a lake too large for the memory limit is split into
/// per-bucket files there, removed with the split: crmkpi-export's split test).
#[test]
fn a_small_split_stays_in_memory_and_leaves_nothing() {
    let workdir = Workdir::new();
    workdir.generate(3000, 0.0);
    assert_success(&workdir.run(&["-q", "ingest", "dump", "--lake", "lake"]));
    let scratch = workdir.path("scratch");
    std::fs::create_dir(&scratch).expect("scratch directory");
    let leftovers = || std::fs::read_dir(&scratch).expect("scratch").count();
    let args = ["-v", "compute", "--lake", "lake", "--out", "out", "--no-report", "--buckets", "5"];
    let done = workdir.command(&args).env("TMPDIR", &scratch).output().expect("crmkpi runs");
    assert_success(&done);
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(log.contains("lake split into buckets") && log.contains("store=Memory"), "{log}");
    assert_eq!(leftovers(), 0, "nothing is left under TMPDIR after a run");
}
