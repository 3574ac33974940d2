//! Compaction: each partition's small files merged into one, the same rows before and after,
//! nothing to do the second time, a lake of the earlier format upgraded, and a reader that
//! holds a snapshot keeps reading its files while a compaction commits.

use std::collections::BTreeMap;
use std::path::Path;

use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{CompactReport, Lake};
use polars::prelude::*;

use crate::common::{config_with, ingest_into, lake_events, lake_rejects, write_dump};

/// A lake fed one small dump per "night": five runs, each adding a file to every month.
fn lake_of_five_nights(dir: &Path) -> std::path::PathBuf {
    let options = GenerateOptions {
        events: 5_000,
        seed: 11,
        out: dir.join("dump"),
        formats: vec![Format::Ndjson, Format::Csv],
        compressions: vec![Compression::None],
        dirty_rate: 0.01,
        events_per_file: 1_000,
    };
    let files = generate(&options).expect("generate");
    let lake = dir.join("lake");
    for file in files {
        ingest_into(&lake, &[file.to_string_lossy().into_owned()], &config_with(1.0));
    }
    lake
}

/// Files per partition directory of the current snapshot.
fn files_per_partition(lake: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for file in Lake::new(lake).event_files().expect("files") {
        let partition = file.parent().and_then(|dir| dir.file_name()).expect("partition");
        *counts.entry(partition.to_string_lossy().into_owned()).or_default() += 1;
    }
    counts
}

/// A lake compacted after every night for months: each compaction merges the last merged
/// file with the night's, and the merged file's name does not grow (it once added the name of
/// the file merged into it, until the name was too long for the filesystem).
#[test]
fn a_partition_compacted_every_night_keeps_short_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = dir.path().join("lake");
    let lake = Lake::new(&lake_dir);
    let nights = 30;
    for night in 1..=nights {
        let line = format!(
            r#"{{"event_id": "e{night}", "event_type": "lead_created", "occurred_at": "2024-03-{night:02}T10:00:00Z", "customer_id": "c{night}"}}"#
        );
        let dump = write_dump(dir.path(), &format!("night-{night}.ndjson"), &format!("{line}\n{{broken\n"));
        ingest_into(&lake_dir, &[dump], &config_with(1.0));
        let lock = lake.lock().expect("lock");
        let report = lake.compact(&lock).expect("compact");
        drop(lock);
        if night > 1 {
            assert_eq!(report, CompactReport { partitions: 2, files_before: 4, files_after: 2 }, "night {night}");
        }
        for file in lake.event_files().expect("files").iter().chain(&lake.reject_files().expect("rejects")) {
            let name = file.file_name().expect("name").to_string_lossy().into_owned();
            assert!(name.len() <= 64, "night {night}: {name}");
        }
    }
    assert_eq!(lake_events(&lake_dir).height(), nights as usize);
    assert_eq!(lake_rejects(&lake_dir).len(), nights as usize, "one malformed line a night");
}

#[test]
fn compaction_merges_small_files_and_keeps_every_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = lake_of_five_nights(dir.path());
    let events_before = lake_events(&lake_dir);
    let rejects_before = lake_rejects(&lake_dir);
    let before = files_per_partition(&lake_dir);
    assert!(before.values().any(|&files| files > 1), "the nights share partitions: {before:?}");
    assert!(Lake::new(&lake_dir).reject_files().expect("rejects").len() > 1);

    let lake = Lake::new(&lake_dir);
    let lock = lake.lock().expect("lock");
    let report = lake.compact(&lock).expect("compact");
    assert_eq!(report.partitions, before.values().filter(|&&files| files > 1).count() + 1, "months and rejects");
    let after = files_per_partition(&lake_dir);
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>());
    assert!(after.values().all(|&files| files == 1), "{after:?}");
    assert_eq!(lake.reject_files().expect("rejects").len(), 1);
    assert!(lake_events(&lake_dir).equals_missing(&events_before));
    assert_eq!(lake_rejects(&lake_dir), rejects_before);

    let again = lake.compact(&lock).expect("compact again");
    assert_eq!(again.partitions, 0, "idempotent");
    assert_eq!(files_per_partition(&lake_dir), after);

    // The compacted lake keeps its id index: the five nights again are all known.
    drop(lock);
    let mut dumps: Vec<String> = std::fs::read_dir(dir.path().join("dump"))
        .expect("dumps")
        .map(|entry| entry.expect("entry").path().to_string_lossy().into_owned())
        .collect();
    dumps.sort();
    let reingest = ingest_into(&lake_dir, &dumps, &config_with(1.0));
    assert_eq!(reingest.summary.accepted, 0);
    assert!(reingest.summary.duplicates >= events_before.height() as u64);
    assert!(lake_events(&lake_dir).equals_missing(&events_before));
}

#[test]
fn a_held_snapshot_survives_a_compaction_until_released() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = lake_of_five_nights(dir.path());
    let lake = Lake::new(&lake_dir);
    let reader = lake.snapshot().expect("open").expect("a lake");
    let files = reader.event_files().expect("files");
    let rows_before: usize = files
        .iter()
        .map(|path| ParquetReader::new(std::fs::File::open(path).expect("open")).finish().expect("read").height())
        .sum();

    let lock = lake.lock().expect("lock");
    lake.compact(&lock).expect("compact");
    drop(lock);
    assert_ne!(lake.event_files().expect("files"), files, "the lake moved on");
    // The reader still reads the files of the snapshot it started on.
    let rows_held: usize = files
        .iter()
        .map(|path| ParquetReader::new(std::fs::File::open(path).expect("open")).finish().expect("read").height())
        .sum();
    assert_eq!(rows_held, rows_before);
    assert!(reader.dir().exists());
    let held_dir = reader.dir().to_owned();
    drop(reader);
    // The next writer removes it once nobody holds it.
    let lock = lake.lock().expect("lock");
    lake.remove_leftovers(&lock).expect("cleanup");
    assert!(!held_dir.exists());
    assert_eq!(std::fs::read_dir(lake_dir.join("_snapshots")).expect("snapshots").count(), 1);
}

#[test]
fn a_lake_of_format_one_is_upgraded_in_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = dir.path().join("lake");
    // The layout of format 1: real directories, files listed by the records.
    let event_file = "events/month=2024-01/part-r1-00000.parquet";
    let reject_file = "rejects/r1-00001.parquet";
    let leftover = "events/month=2024-01/part-killed-00000.parquet";
    for relative in [event_file, reject_file, leftover] {
        std::fs::create_dir_all(lake_dir.join(relative).parent().expect("parent")).expect("mkdir");
    }
    let mut events = df!("event_id" => ["e1", "e2"], "content_hash" => [1u64, 2]).expect("frame");
    ParquetWriter::new(std::fs::File::create(lake_dir.join(event_file)).expect("create"))
        .finish(&mut events)
        .expect("write");
    std::fs::copy(lake_dir.join(event_file), lake_dir.join(leftover)).expect("copy");
    let mut rejects = df!("reason" => ["invalid_json"]).expect("frame");
    ParquetWriter::new(std::fs::File::create(lake_dir.join(reject_file)).expect("create"))
        .finish(&mut rejects)
        .expect("write");
    std::fs::create_dir_all(lake_dir.join("_runs")).expect("mkdir");
    let record = serde_json::json!({
        "run_id": "r1", "crmkpi_version": "0.1.0", "started_at": "", "finished_at": "", "status": "committed",
        "config_hash": "", "files": [], "event_files": [event_file], "reject_files": [reject_file],
    });
    std::fs::write(lake_dir.join("_runs/000001-r1.json"), record.to_string()).expect("record");

    let lake = Lake::new(&lake_dir);
    let error = lake.snapshot().expect_err("readers ask for the upgrade");
    assert!(error.to_string().contains("crmkpi compact --lake"), "{error}");
    drop(lake.lock().expect("the writer upgrades"));
    assert_eq!(lake.runs().expect("runs").len(), 1);
    let names: Vec<String> = lake
        .event_files()
        .expect("files")
        .iter()
        .map(|path| path.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["part-r1-00000.parquet"], "the uncommitted leftover is gone");
    assert_eq!(lake.reject_files().expect("rejects").len(), 1);
    for name in ["events", "rejects", "_runs"] {
        assert!(std::fs::symlink_metadata(lake_dir.join(name)).expect("link").file_type().is_symlink());
    }
    assert!(lake_dir.join(event_file).exists(), "the committed file is where readers looked before");
    assert!(!lake_dir.join(leftover).exists());

    // The lake had no id index: the next ingest builds it from the event files, so an id of
    // the old lake with other content is a conflicting duplicate, a new id is accepted.
    let dump = write_dump(
        dir.path(),
        "next.ndjson",
        concat!(
            r#"{"event_id":"e1","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#,
            "\n",
            r#"{"event_id":"e9","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#,
        ),
    );
    let report = ingest_into(&lake_dir, &[dump], &config_with(1.0));
    assert_eq!(report.summary.accepted, 1);
    assert_eq!(report.summary.rejected.get("conflicting_duplicate"), Some(&1));
    assert!(std::fs::read_dir(lake.snapshot().expect("open").expect("lake").dir().join("_index")).is_ok());
}

#[test]
fn a_lake_whose_creation_was_killed_is_finished_by_the_next_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake_dir = dir.path().join("lake");
    // What a writer killed right after creating the lake's marker and lock leaves, with a
    // half-built first snapshot.
    std::fs::create_dir_all(lake_dir.join("_snapshots/000000/events")).expect("mkdir");
    std::fs::write(lake_dir.join("_crmkpi_lake.json"), "{").expect("marker");
    std::fs::write(lake_dir.join("_lock"), "").expect("lock");
    let dump = write_dump(
        dir.path(),
        "one.ndjson",
        r#"{"event_id":"e1","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#,
    );
    let report = ingest_into(&lake_dir, &[dump], &config_with(0.0));
    assert_eq!(report.summary.accepted, 1);
    assert_eq!(lake_events(&lake_dir).height(), 1);
    let marker = std::fs::read_to_string(lake_dir.join("_crmkpi_lake.json")).expect("marker");
    assert!(marker.contains("\"lake_format_version\": 2"), "{marker}");
}
