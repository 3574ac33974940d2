//! Incremental ingest: two dumps with overlap and late events give the same lake as one
//! combined ingest; re-ingesting a dump changes nothing; late events land in the partition of
//! their own month.

use chrono::{DateTime, Datelike};
use crmkpi_ingest::generator::{GenerateOptions, generate};
use crmkpi_ingest::source::{Compression, Format};
use crmkpi_ingest::{Lake, RunStatus};
use polars::prelude::*;

use crate::common::{config_with, ingest_into, instants, lake_events};

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
