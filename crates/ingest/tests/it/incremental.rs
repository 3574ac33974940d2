//! Incremental ingest: two dumps with overlap and late events give the same lake as one
//! combined ingest; re-ingesting a dump changes nothing; late events land in the partition of
//! their own month; re-ingesting a dirty dump adds no rows to the rejects.

use chrono::{DateTime, Datelike};
use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{Lake, RunStatus};
use polars::prelude::*;

use crate::common::{config_with, ingest_into, instants, lake_events, lake_rejects};

fn event_set(lake: &std::path::Path) -> DataFrame {
    lake_events(lake)
        .select(["event_id", "event_type", "occurred_at", "customer_id", "amount", "content_hash"])
        .expect("columns")
}

#[test]
fn overlapping_dumps_equal_one_combined_ingest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GenerateOptions {
        events: 4_000,
        seed: 21,
        out: dir.path().join("dump"),
        formats: vec![Format::Ndjson, Format::Csv],
        compressions: vec![Compression::None, Compression::Zstd],
        dirty_rate: 0.02,
        events_per_file: 1_000,
    };
    let files: Vec<String> =
        generate(&options).expect("generate").iter().map(|path| path.to_string_lossy().into_owned()).collect();
    assert_eq!(files.len(), 4);
    let config = config_with(1.0);

    let incremental = dir.path().join("incremental");
    ingest_into(&incremental, &files[0..3], &config);
    let second = ingest_into(&incremental, &files[1..4], &config);
    assert_eq!(second.status, RunStatus::Committed);
    assert!(second.summary.duplicates >= 1_500, "files 1 and 2 are read again: {:?}", second.summary);

    let combined = dir.path().join("combined");
    ingest_into(&combined, &files, &config);
    assert_eq!(event_set(&incremental), event_set(&combined));

    let before = event_set(&combined);
    let again = ingest_into(&combined, &files, &config);
    assert_eq!(again.summary.accepted, 0);
    assert_eq!(event_set(&combined), before);
}

#[test]
fn late_events_land_in_their_own_month() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GenerateOptions {
        events: 3_000,
        seed: 5,
        out: dir.path().join("dump"),
        formats: vec![Format::Ndjson],
        compressions: vec![Compression::None],
        dirty_rate: 0.0,
        events_per_file: 3_000,
    };
    generate(&options).expect("generate");
    let lake = dir.path().join("lake");
    ingest_into(&lake, &[options.out.to_string_lossy().into_owned()], &config_with(0.0));
    let files = Lake::new(&lake).event_files().expect("files");
    assert!(files.len() > 10, "18 months of events span many partitions");
    for path in files {
        let partition =
            path.parent().and_then(|dir| dir.file_name()).expect("partition").to_string_lossy().into_owned();
        let frame = ParquetReader::new(std::fs::File::open(&path).expect("open")).finish().expect("read");
        for instant in instants(&frame) {
            let utc = DateTime::from_timestamp_micros(instant).expect("instant");
            assert_eq!(partition, format!("month={:04}-{:02}", utc.year(), utc.month()), "{}", path.display());
        }
    }
}

/// Ingesting the same dirty dump again, from the same path or a copy elsewhere, adds no row to
/// the rejects (summing them counts each bad record once), while the run's summary and record
/// still count every record it read: read = accepted + duplicates + rejected. A run over the
/// limit (exit 3) keeps its rejects, and the rerun after raising the limit does not repeat them.
#[test]
fn reingesting_a_dirty_dump_adds_no_rejects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = GenerateOptions {
        events: 2_000,
        seed: 17,
        out: dir.path().join("dump"),
        formats: vec![Format::Ndjson, Format::Csv],
        compressions: vec![Compression::None],
        dirty_rate: 0.05,
        events_per_file: 1_000,
    };
    let dump = [options.out.to_string_lossy().into_owned()];
    generate(&options).expect("generate");
    let lake = dir.path().join("lake");

    let strict = ingest_into(&lake, &dump, &config_with(0.0));
    assert_eq!(strict.status, RunStatus::RejectRatioExceeded);
    let rejected = strict.summary.rejected_total();
    assert!(rejected > 50, "{:?}", strict.summary);
    let rejects = lake_rejects(&lake);
    assert_eq!(rejects.len() as u64, rejected);

    let config = config_with(1.0);
    let first = ingest_into(&lake, &dump, &config);
    assert_eq!(first.status, RunStatus::Committed);
    let again = ingest_into(&lake, &dump, &config);
    let copy = dir.path().join("copy");
    std::fs::rename(&options.out, &copy).expect("move the dump");
    let moved = ingest_into(&lake, &[copy.to_string_lossy().into_owned()], &config);

    assert_eq!(lake_rejects(&lake), rejects, "no run after the first added a reject");
    for report in [&first, &again, &moved] {
        let summary = &report.summary;
        assert_eq!(summary.rejected_total(), rejected, "{summary:?}");
        assert_eq!(summary.read, summary.accepted + summary.duplicates + summary.rejected_total());
    }
    assert_eq!(again.summary.accepted, 0);
    let runs = Lake::new(&lake).runs().expect("runs");
    let known: Vec<u64> = runs.iter().map(|run| run.known_rejects).collect();
    assert_eq!(known, vec![0, rejected, rejected, rejected]);
    let recorded: Vec<u64> = runs.iter().map(|run| run.files.iter().map(|file| file.rejected_total()).sum()).collect();
    assert_eq!(recorded, vec![rejected; 4]);
}

/// The formats of the event id index before the segments.
#[derive(Clone, Copy, Debug)]
enum EarlierIndex {
    /// A file per partition (`CRMKIDX1`, the count, the entries).
    PartitionFiles,
    /// One file without fences (`ids.bin`: `CRMKIDX2`, each partition's offset and count, the
    /// entries).
    OneFile,
}

/// Rewrites the committed snapshot's event id index in an earlier format.
fn write_index_of_an_earlier_format(lake: &std::path::Path, format: EarlierIndex) {
    use crmkpi_ingest::id_index::{INDEX_DIR, Index, PARTITIONS};
    let index = lake.join("_current").join(INDEX_DIR);
    let segments = Index::open(Some(&index)).expect("open");
    let partitions: Vec<Vec<u8>> = (0..PARTITIONS)
        .map(|partition| {
            let mut reader = segments.partition(partition).expect("partition");
            let mut bytes = b"CRMKIDX1".to_vec();
            bytes.extend_from_slice(&reader.len().to_le_bytes());
            while let Some(entry) = reader.next_entry().expect("entry") {
                bytes.extend_from_slice(&entry.id.to_le_bytes());
                bytes.extend_from_slice(&entry.content_hash.to_le_bytes());
            }
            bytes
        })
        .collect();
    std::fs::remove_dir_all(&index).expect("remove the index");
    std::fs::create_dir_all(&index).expect("index dir");
    match format {
        EarlierIndex::PartitionFiles => {
            for (partition, bytes) in partitions.iter().enumerate() {
                std::fs::write(index.join(format!("part-{partition:03}.bin")), bytes).expect("write partition");
            }
        }
        EarlierIndex::OneFile => {
            // The partitions' entries without their 16-byte headers, after the table.
            let mut bytes = b"CRMKIDX2".to_vec();
            let mut offset = 8 + 16 * PARTITIONS as u64;
            for partition in &partitions {
                let entries = partition.len() as u64 - 16;
                bytes.extend_from_slice(&offset.to_le_bytes());
                bytes.extend_from_slice(&(entries / 24).to_le_bytes());
                offset += entries;
            }
            partitions.iter().for_each(|partition| bytes.extend_from_slice(&partition[16..]));
            std::fs::write(index.join("ids.bin"), bytes).expect("write the one file");
        }
    }
}

#[test]
fn an_index_of_an_earlier_format_keeps_deduplicating() {
    for format in [EarlierIndex::PartitionFiles, EarlierIndex::OneFile] {
        an_index_of_the_format_keeps_deduplicating(format);
    }
}

fn an_index_of_the_format_keeps_deduplicating(format: EarlierIndex) {
    use crmkpi_ingest::id_index::{INDEX_DIR, Index};
    let dir = tempfile::tempdir().expect("tempdir");
    let options = |seed, out: &str| GenerateOptions {
        events: 3_000,
        seed,
        out: dir.path().join(out),
        formats: vec![Format::Ndjson],
        compressions: vec![Compression::None],
        dirty_rate: 0.0,
        events_per_file: 3_000,
    };
    let to_strings = |paths: Vec<std::path::PathBuf>| -> Vec<String> {
        paths.iter().map(|path| path.to_string_lossy().into_owned()).collect()
    };
    let first = to_strings(generate(&options(31, "first")).expect("generate"));
    let second = to_strings(generate(&options(32, "second")).expect("generate"));
    let lake = dir.path().join("lake");
    ingest_into(&lake, &first, &config_with(1.0));
    write_index_of_an_earlier_format(&lake, format);
    let events = event_set(&lake);

    // The old index decides: the first dump again is all duplicates, the second is new.
    let both: Vec<String> = first.iter().chain(&second).cloned().collect();
    let run = ingest_into(&lake, &both, &config_with(1.0));
    assert_eq!(run.status, RunStatus::Committed);
    assert_eq!(run.summary.duplicates, events.height() as u64);
    assert_eq!(run.summary.accepted + run.summary.rejected_total(), 3_000);
    let after_second = event_set(&lake);

    // A refused run (a malformed record, and no reject allowed) changes no event.
    let third = to_strings(generate(&options(33, "third")).expect("generate"));
    let broken = crate::common::write_dump(dir.path(), "broken.ndjson", "{\"event_id\": \"broken");
    let with_third: Vec<String> = both.iter().chain(&third).chain([&broken]).cloned().collect();
    let refused = ingest_into(&lake, &with_third, &config_with(0.0));
    assert_eq!(refused.status, RunStatus::RejectRatioExceeded);
    assert_eq!(refused.summary.accepted, 3_000, "the third dump's events, refused");
    assert_eq!(event_set(&lake), after_second);

    // The index the second run wrote (one segment with fences, the earlier one merged into it)
    // holds both dumps; no `ids.bin` is left for a crmkpi from before the segments.
    let index_dir = lake.join("_current").join(INDEX_DIR);
    let index = Index::open(Some(&index_dir)).expect("index");
    assert_eq!(index.segments().len(), 1, "{format:?}");
    assert!(index.segments()[0].is_keepable());
    assert!(!index_dir.join("ids.bin").exists());
    let again = ingest_into(&lake, &both, &config_with(1.0));
    assert_eq!(again.summary.accepted, 0);
    assert_eq!(again.summary.duplicates, after_second.height() as u64);
    assert_eq!(event_set(&lake), after_second);
    // The refused run's ids never entered the index: the third dump is all new.
    let third_again = ingest_into(&lake, &third, &config_with(1.0));
    assert_eq!(third_again.summary.accepted, 3_000);
}

/// A file's rejects wait for its identity, which its reader knows once the file is read. A file
/// with more rejects than are held in memory is read a second time for it, after the rejects of
/// the file before are written. Every reject is written once, in order, and a second run finds
/// every one of them in the lake.
#[test]
fn the_rejects_of_a_very_dirty_file_are_each_written_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good =
        r#"{"event_id":"e1","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"c1"}"#;
    let few = format!("not json 1\n{good}\nnot json 3\n");
    // More rejects than the 100,000 held in memory.
    let many: String = (1..=120_000).map(|line| format!("not json {line}\n")).collect();
    let inputs: Vec<String> = [("a.ndjson", &few), ("b.ndjson", &many), ("c.ndjson", &few)]
        .into_iter()
        .map(|(name, text)| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path.to_string_lossy().into_owned()
        })
        .collect();
    let lake = dir.path().join("lake");
    let config = config_with(1.0);
    let first = ingest_into(&lake, &inputs, &config);
    assert_eq!(first.status, RunStatus::Committed);
    assert_eq!(first.summary.rejected_total(), 120_004);
    let expected: Vec<(String, i64)> = [("a.ndjson", 1), ("a.ndjson", 3)]
        .into_iter()
        .chain((1..=120_000).map(|line| ("b.ndjson", line)))
        .chain([("c.ndjson", 1), ("c.ndjson", 3)])
        .map(|(name, line)| (name.to_owned(), line))
        .collect();
    let written: Vec<(String, i64)> = lake_rejects(&lake).into_iter().map(|(name, line, _)| (name, line)).collect();
    assert_eq!(written, expected);

    let again = ingest_into(&lake, &inputs, &config);
    assert_eq!(again.summary.rejected_total(), 120_004);
    let runs = Lake::new(&lake).runs().expect("runs");
    assert_eq!(runs.iter().map(|run| run.known_rejects).collect::<Vec<_>>(), vec![0, 120_004]);
    assert_eq!(lake_rejects(&lake).len(), 120_004, "the second run wrote no reject");
}

/// Twelve nightly runs into one lake, each with new ids, ids of earlier runs again (the same
/// content: duplicates; another content: conflicting duplicates) and ids repeated within the
/// run, decide as first-accepted-wins over everything ingested before (a map of every id's
/// first content), while the index grows by segments, merged as they grow, and the filter
/// each run saves is loaded by the next (or made anew from the index when it is missing, or
/// saved for other segments).
#[test]
fn an_index_of_segments_decides_every_run_exactly() {
    use crmkpi_ingest::id_index::{FILTER_FILE, INDEX_DIR, Index, PARTITIONS};
    use crmkpi_ingest::seen_filter::SeenFilter;
    use std::collections::HashMap;
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = dir.path().join("lake");
    let config = config_with(1.0);
    let line = |id: &str, customer: &str| {
        format!(
            r#"{{"event_id":"{id}","event_type":"site_visited","occurred_at":"2024-03-05T10:00:00Z","customer_id":"{customer}"}}"#
        )
    };
    let mut first_content: HashMap<String, String> = HashMap::new();
    let mut most_segments = 0;
    for run in 0..12usize {
        let mut lines = Vec::new();
        // New ids, more in some runs than in others; each fifth given twice in the run.
        for n in 0..(150 + 100 * (run % 4)) {
            let id = format!("r{run}-{n}");
            lines.push(line(&id, "c"));
            if n % 5 == 0 {
                lines.push(line(&id, if n % 10 == 0 { "c" } else { "other" }));
            }
        }
        // Ids of each earlier run again, every third with another content.
        for earlier in 0..run {
            for n in (run..150).step_by(37) {
                lines.push(line(&format!("r{earlier}-{n}"), if n % 3 == 0 { "changed" } else { "c" }));
            }
        }
        let (mut accepted, mut duplicates, mut conflicts) = (0, 0, 0);
        for text in &lines {
            let id = &text[13..text[13..].find('"').expect("id end") + 13];
            let customer = text.rsplit("\"customer_id\":\"").next().expect("customer");
            match first_content.get(id) {
                None => {
                    first_content.insert(id.to_owned(), customer.to_owned());
                    accepted += 1;
                }
                Some(first) if first == customer => duplicates += 1,
                Some(_) => conflicts += 1,
            }
        }
        let filter_path = lake.join("_current").join(INDEX_DIR).join(FILTER_FILE);
        if run == 7 {
            std::fs::remove_file(&filter_path).expect("remove the filter");
        }
        if run == 9 {
            // An empty filter (large enough) saved for other segments (a restore of some files of `_index`):
            // it is not used, else every id of the lake would look new.
            std::fs::remove_file(&filter_path).expect("remove the filter");
            SeenFilter::for_ids(1 << 20)
                .save(&filter_path)
                .and_then(|saving| saving.finish("segment-000001.bin 1\n"))
                .expect("save another filter");
        }
        let dump = crate::common::write_dump(dir.path(), &format!("night-{run:02}.ndjson"), &lines.join("\n"));
        let report = ingest_into(&lake, &[dump], &config);
        let summary = &report.summary;
        assert_eq!(report.status, RunStatus::Committed);
        assert_eq!(
            (summary.accepted, summary.duplicates, summary.rejected.get("conflicting_duplicate").copied().unwrap_or(0)),
            (accepted, duplicates, conflicts),
            "run {run}"
        );
        let index_dir = lake.join("_current").join(INDEX_DIR);
        assert!(index_dir.join(FILTER_FILE).is_file(), "run {run} saved its filter");
        let index = Index::open(Some(&index_dir)).expect("index");
        assert_eq!(index.partition_counts().iter().sum::<u64>(), first_content.len() as u64, "run {run}");
        // The saved filter holds every id of the index beside it.
        let (filter, covers) = SeenFilter::load(&index_dir.join(FILTER_FILE)).expect("load").expect("a filter");
        // It names the index's segments, so the next run loads it.
        assert_eq!(covers, index.coverage(), "run {run}");
        for partition in 0..PARTITIONS {
            let mut entries = index.partition(partition).expect("partition");
            while let Some(entry) = entries.next_entry().expect("entry") {
                assert!(filter.may_contain(entry.id), "run {run}");
            }
        }
        assert!(index.segments().len() <= 8);
        most_segments = most_segments.max(index.segments().len());
    }
    assert!(most_segments >= 3, "the runs were kept in segments: {most_segments}");
    assert_eq!(lake_events(&lake).height(), first_content.len());
}
