//! Readers that do not go through crmkpi: a plain glob of `events/**/*.parquet` and
//! `rejects/**/*.parquet`, as DuckDB, Spark or pyarrow would read the lake, sees exactly the
//! committed runs (the rows the `_runs/` records account for) while an ingest or a compaction
//! is paused at every step of its commit, after it is killed there, and after it finishes.

use std::path::Path;

use polars::prelude::*;

use crate::common::{Workdir, assert_success, start_paused};

/// What a glob reader sees: (event rows, distinct event ids, reject rows).
fn glob_view(lake: &Path) -> (usize, usize, usize) {
    let rows = |pattern: &str| -> Vec<DataFrame> {
        let pattern = lake.join(pattern).to_string_lossy().into_owned();
        glob::glob(&pattern)
            .expect("pattern")
            .map(|path| {
                let path = path.expect("path");
                ParquetReader::new(std::fs::File::open(&path).expect("open")).finish().expect("read")
            })
            .collect()
    };
    let events = rows("events/**/*.parquet");
    let mut ids = std::collections::HashSet::new();
    for frame in &events {
        for id in frame.column("event_id").expect("event_id").str().expect("str").iter() {
            ids.insert(id.expect("id").to_owned());
        }
    }
    let event_rows = events.iter().map(DataFrame::height).sum();
    let reject_rows = rows("rejects/**/*.parquet").iter().map(DataFrame::height).sum();
    (event_rows, ids.len(), reject_rows)
}

/// What the committed records account for: (accepted, accepted, rejected and not already in
/// the lake's rejects).
fn committed_view(lake: &Path) -> (usize, usize, usize) {
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for path in glob::glob(&lake.join("_runs/*.json").to_string_lossy()).expect("pattern") {
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path.expect("path")).expect("read")).expect("json");
        let mut written = 0;
        for file in record["files"].as_array().expect("files") {
            if record["status"] == "committed" {
                accepted += file["accepted"].as_u64().expect("accepted");
            }
            written += file["rejected"].as_object().expect("rejected").values().filter_map(|n| n.as_u64()).sum::<u64>();
        }
        // A reject that an earlier run wrote is counted again but not written again.
        rejected += written - record["known_rejects"].as_u64().expect("known_rejects");
    }
    (accepted as usize, accepted as usize, rejected as usize)
}

#[test]
fn glob_readers_see_exactly_the_committed_runs_at_every_commit_step() {
    let workdir = Workdir::new();
    workdir.generate(4_000, 0.004);
    let lake = workdir.path("lake");
    assert_success(&workdir.run(&["ingest", "dump/events-00000.ndjson", "--lake", "lake"]));
    let first = glob_view(&lake);
    assert_eq!(first, committed_view(&lake));
    assert!(first.0 > 0 && first.2 > 0, "events and rejects to see: {first:?}");

    // `switch:link_made`: the new `_current` link made, not yet renamed over the old one.
    let steps = [
        "ingest:after_read",
        "ingest:files_written",
        "ingest:before_commit",
        "switch:link_made",
        "ingest:after_commit",
    ];
    for point in steps {
        let mut child = start_paused(&workdir, point, &["ingest", "dump", "--lake", "lake"]);
        let paused = glob_view(&lake);
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let killed = glob_view(&lake);
        assert_eq!(paused, killed, "{point}: nothing changes for readers at the kill");
        assert_eq!(killed, committed_view(&lake), "{point}: readers see the committed runs");
        if point == "ingest:after_commit" {
            assert!(killed.0 > first.0, "the switch is the commit");
        } else {
            assert_eq!(killed, first, "{point}: not committed yet");
        }
    }
    // A compaction killed before its switch changes nothing; one killed after it has merged the
    // files, and no row changes.
    let files = |pattern: &str| glob::glob(&lake.join(pattern).to_string_lossy()).expect("pattern").count();
    let (event_files, reject_files) = (files("events/**/*.parquet"), files("rejects/**/*.parquet"));
    let before = glob_view(&lake);
    for point in ["compact:before_commit", "switch:link_made", "compact:after_commit"] {
        let mut child = start_paused(&workdir, point, &["compact", "--lake", "lake"]);
        assert_eq!(glob_view(&lake), before, "{point}: paused");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        assert_eq!(glob_view(&lake), before, "{point}: killed");
        let after = (files("events/**/*.parquet"), files("rejects/**/*.parquet"));
        if point == "compact:after_commit" {
            assert!(after.0 < event_files && after.1 == 1, "{point}: the switch is the commit: {after:?}");
        } else {
            assert_eq!(after, (event_files, reject_files), "{point}: not committed yet");
        }
    }
    let again = workdir.run(&["compact", "--lake", "lake"]);
    assert_success(&again);
    assert!(String::from_utf8_lossy(&again.stdout).contains("compacted nothing"), "the killed compaction committed");
    assert_eq!(glob_view(&lake), before);
}

#[test]
fn compaction_leaves_every_table_as_it_was() {
    let workdir = Workdir::new();
    workdir.generate(4_000, 0.0);
    for file in glob::glob(&workdir.path("dump/*").to_string_lossy()).expect("pattern") {
        let file = file.expect("path").to_string_lossy().into_owned();
        assert_success(&workdir.run(&["ingest", &file, "--lake", "lake"]));
    }
    let as_of = ["--as-of", "2025-06-30"];
    assert_success(&workdir.run(&[&["compute", "--lake", "lake", "--out", "before"][..], &as_of[..]].concat()));
    let compact = workdir.run(&["compact", "--lake", "lake"]);
    assert_success(&compact);
    assert!(String::from_utf8_lossy(&compact.stdout).contains("files merged into"));
    let again = workdir.run(&["compact", "--lake", "lake"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("compacted nothing"), "idempotent");
    assert_success(&workdir.run(&[&["compute", "--lake", "lake", "--out", "after"][..], &as_of[..]].concat()));
    let mut compared = 0;
    for entry in std::fs::read_dir(workdir.path("before")).expect("outputs") {
        let name = entry.expect("entry").file_name();
        if name == "manifest.json" {
            continue;
        }
        let before = std::fs::read(workdir.path("before").join(&name)).expect("before");
        let after = std::fs::read(workdir.path("after").join(&name)).expect("after");
        assert!(before == after, "{name:?} differs after compaction");
        compared += 1;
    }
    assert_eq!(compared, 25, "12 tables, Parquet and CSV, and the report");
    let not_a_lake = workdir.run(&["compact", "--lake", "dump"]);
    assert_eq!(not_a_lake.status.code(), Some(2));
}
