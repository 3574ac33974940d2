//! Shared helpers: writing dumps into a temporary directory, ingesting them, and reading the
//! lake's events and rejects back with polars.

use std::path::{Path, PathBuf};

use crmkpi_ingest::{IngestReport, Lake, NoProgress, ingest};
use crmkpi_schema::Config;
use polars::prelude::*;

/// Writes `text` to `dir/name` and returns the path as text.
pub fn write_dump(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write dump");
    path.to_string_lossy().into_owned()
}

/// A configuration with a USD rate and the given reject ratio.
pub fn config_with(max_reject_ratio: f64) -> Config {
    let mut config = Config::default();
    config.fx.insert("USD".to_owned(), 0.5);
    config.max_reject_ratio = max_reject_ratio;
    config
}

/// Ingests `inputs` into the lake at `lake_dir`.
pub fn ingest_into(lake_dir: &Path, inputs: &[String], config: &Config) -> IngestReport {
    ingest(&Lake::new(lake_dir), inputs, config, &NoProgress).expect("ingest runs")
}

fn read_all(files: &[PathBuf]) -> DataFrame {
    let mut frames = files.iter().map(|path| {
        ParquetReader::new(std::fs::File::open(path).expect("open parquet")).finish().expect("read parquet")
    });
    let Some(mut all) = frames.next() else { return DataFrame::empty() };
    for frame in frames {
        all.vstack_mut(&frame).expect("same schema");
    }
    all
}

/// All events of the lake, sorted by `event_id`.
pub fn lake_events(lake_dir: &Path) -> DataFrame {
    let files = Lake::new(lake_dir).event_files().expect("list events");
    let all = read_all(&files);
    if all.height() == 0 {
        return all;
    }
    all.sort(["event_id"], SortMultipleOptions::default()).expect("sort")
}

/// All rejects of the lake as (file name, line, reason), by file path and line.
pub fn lake_rejects(lake_dir: &Path) -> Vec<(String, i64, String)> {
    let files = Lake::new(lake_dir).reject_files().expect("list rejects");
    let all = read_all(&files);
    if all.height() == 0 {
        return Vec::new();
    }
    let source = all.column("source_file").expect("source_file").str().expect("str").clone();
    let line = all.column("line").expect("line").i64().expect("i64").clone();
    let reason = all.column("reason").expect("reason").str().expect("str").clone();
    let mut rejects: Vec<(&str, i64, &str)> = source
        .iter()
        .zip(line.iter())
        .zip(reason.iter())
        .map(|((source, line), reason)| (source.expect("source"), line.expect("line"), reason.expect("reason")))
        .collect();
    // A run writes its conflicting duplicates after its other rejects.
    rejects.sort_by_key(|&(source, line, _)| (source, line));
    rejects
        .into_iter()
        .map(|(source, line, reason)| {
            let name = Path::new(source).file_name().expect("name").to_string_lossy().into_owned();
            (name, line, reason.to_owned())
        })
        .collect()
}

/// The values of a string column of a frame.
pub fn strings(frame: &DataFrame, name: &str) -> Vec<Option<String>> {
    frame.column(name).expect("column").str().expect("str").iter().map(|value| value.map(str::to_owned)).collect()
}

/// The physical microsecond values of the `occurred_at` column.
pub fn instants(frame: &DataFrame) -> Vec<i64> {
    let column = frame.column("occurred_at").expect("occurred_at").cast(&DataType::Int64).expect("cast");
    column.i64().expect("i64").no_null_iter().collect()
}

/// An RFC 3339 instant as UTC microseconds (test reference values).
pub fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).expect("reference instant").timestamp_micros()
}
