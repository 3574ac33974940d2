//! The event lake: Hive-partitioned Parquet with a commit log.
//!
//! ```text
//! <lake>/
//!   _crmkpi_lake.json                         marks the directory as a crmkpi lake (format version)
//!   _lock                                     held (flock) by the one ingest writing the lake
//!   _runs/<seq>-<run_id>.json                 one ingest record per run: the commit log
//!   events/month=YYYY-MM/part-<run_id>-<n>.parquet   accepted events, by UTC month of occurred_at
//!   rejects/<run_id>-<n>.parquet              rejected records of a run, each once in the lake
//!   _staging/<run_id>/                        files of a run being written
//! ```
//!
//! A run writes its files under `_staging`, moves them into place, and commits by renaming
//! its record into `_runs/` (an atomic rename). Readers see only the files that committed
//! records list, so a failed or killed run changes nothing visible; its leftovers are removed
//! by the next ingest, under the lock.
//!
//! A rejected record is written once: its `reject_key` (a 128-bit hash of its file's content,
//! line, reason and text) is remembered like event ids are, and a later run that rejects the
//! same record again (the same dump ingested twice, even from another path) counts it in its
//! run record but does not add it to the rejects again, so that summing the rejects counts each
//! bad record once.
//!
//! A lake is initialised only in a directory that does not exist or is empty; any other
//! directory must already be a crmkpi lake (it has the marker, or the `_runs/` of a lake from
//! before the marker, which then gets one), so an ingest never writes among a user's files.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike};
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use xxhash_rust::xxh3::Xxh3;

use crate::dedup::{EventIndex, RejectIndex};
use crate::error::IngestError;
use crate::validate::Event;

/// Per input file: records read, accepted, rejected by reason, and plain duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// The file as given on the command line.
    pub path: String,
    /// Records read (blank lines and the CSV header excluded).
    pub read: u64,
    /// Records accepted into the lake.
    pub accepted: u64,
    /// Plain duplicates dropped.
    pub duplicates: u64,
    /// Rejected records by reason.
    pub rejected: BTreeMap<String, u64>,
}

impl FileStats {
    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The run's events were added to the lake.
    Committed,
    /// The reject ratio exceeded `max_reject_ratio`: only the rejects were kept.
    RejectRatioExceeded,
}

/// The ingest record of one run, stored in `_runs/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: String,
    /// The crmkpi version that wrote it.
    pub crmkpi_version: String,
    /// Start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// Commit time, RFC 3339 UTC.
    pub finished_at: String,
    /// How the run ended.
    pub status: RunStatus,
    /// Hash of the resolved configuration.
    pub config_hash: String,
    /// Per input file statistics, in path order.
    pub files: Vec<FileStats>,
    /// Rejected records of this run that an earlier run had already put into the lake's
    /// rejects, so they were not written again (counted in `files` all the same).
    #[serde(default)]
    pub known_rejects: u64,
    /// Event files the run added, relative to the lake.
    pub event_files: Vec<String>,
    /// Reject files the run added, relative to the lake.
    pub reject_files: Vec<String>,
}

/// An exclusive hold on a lake for writing; released when dropped or when the process dies.
#[derive(Debug)]
pub struct LakeLock {
    _file: File,
}

/// An event lake directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

/// The file that marks a directory as a crmkpi lake.
pub const LAKE_MARKER: &str = "_crmkpi_lake.json";
/// The lake format version written into the marker.
pub const LAKE_FORMAT_VERSION: u32 = 1;

fn lake_io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::LakeIo { path: path.to_owned(), source }
}

impl Lake {
    /// The lake at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Lake {
        Lake { root: root.into() }
    }

    /// The lake's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn runs_dir(&self) -> PathBuf {
        self.root.join("_runs")
    }

    fn staging_dir(&self) -> PathBuf {
        self.root.join("_staging")
    }

    /// Takes the lake's write lock, creating the lake if its directory does not exist or is
    /// empty; fails at once when another ingest holds it, and before writing anything when the
    /// directory holds files but is not a crmkpi lake.
    pub fn lock(&self) -> Result<LakeLock, IngestError> {
        self.open_or_init()?;
        let path = self.root.join("_lock");
        let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(lake_io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(LakeLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(IngestError::LakeLocked { lake: self.root.clone(), lock: path }),
            Err(fs::TryLockError::Error(source)) => Err(IngestError::LakeIo { path, source }),
        }
    }

    /// Creates the lake in a missing or empty directory; accepts an existing lake (marking a
    /// lake from before the marker); refuses any other directory.
    fn open_or_init(&self) -> Result<(), IngestError> {
        let marker = self.root.join(LAKE_MARKER);
        if marker.exists() {
            return Ok(());
        }
        let entries = crmkpi_schema::dir_entries::list(&self.root, |_| true).map_err(lake_io(&self.root))?;
        if !entries.is_empty() && !self.runs_dir().is_dir() {
            return Err(IngestError::NotALake {
                lake: self.root.clone(),
                entries: crmkpi_schema::dir_entries::describe(&entries),
            });
        }
        fs::create_dir_all(&self.root).map_err(lake_io(&self.root))?;
        let text = format!("{{\"written_by\": \"crmkpi\", \"lake_format_version\": {LAKE_FORMAT_VERSION}}}\n");
        let mut file = File::create(&marker).map_err(lake_io(&marker))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(lake_io(&marker))?;
        Ok(())
    }

    /// The committed run records, oldest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, IngestError> {
        let dir = self.runs_dir();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(lake_io(&dir))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|path| {
                let text = fs::read_to_string(path).map_err(lake_io(path))?;
                serde_json::from_str(&text)
                    .map_err(|error| IngestError::CorruptRunRecord { path: path.clone(), message: error.to_string() })
            })
            .collect()
    }

    /// The committed event files, in commit order.
    pub fn event_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        Ok(self.runs()?.iter().flat_map(|run| run.event_files.iter().map(|file| self.root.join(file))).collect())
    }

    /// The committed reject files, in commit order.
    pub fn reject_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        Ok(self.runs()?.iter().flat_map(|run| run.reject_files.iter().map(|file| self.root.join(file))).collect())
    }

    /// Loads the ids and content hashes of every event in the lake, one file at a time.
    pub fn load_index(&self, index: &mut EventIndex) -> Result<(), IngestError> {
        for path in self.event_files()? {
            let file = File::open(&path).map_err(lake_io(&path))?;
            let frame = ParquetReader::new(file)
                .with_columns(Some(vec!["event_id".to_owned(), "content_hash".to_owned()]))
                .finish()
                .map_err(|source| IngestError::Parquet { path: path.clone(), source })?;
            let parquet_error = |source| IngestError::Parquet { path: path.clone(), source };
            let ids = frame.column("event_id").and_then(|column| column.str().cloned()).map_err(parquet_error)?;
            let hashes =
                frame.column("content_hash").and_then(|column| column.u64().cloned()).map_err(parquet_error)?;
            for (id, hash) in ids.iter().zip(hashes.iter()) {
                if let (Some(id), Some(hash)) = (id, hash) {
                    index.offer(id, hash);
                }
            }
        }
        Ok(())
    }

    /// Loads the key of every reject in the lake, one file at a time. Reject files written
    /// before keys were stored have none: a rerun of their dumps writes those rejects once
    /// more, with keys.
    pub fn load_reject_index(&self, index: &mut RejectIndex) -> Result<(), IngestError> {
        for path in self.reject_files()? {
            let parquet_error = |source| IngestError::Parquet { path: path.clone(), source };
            let file = File::open(&path).map_err(lake_io(&path))?;
            let mut reader = ParquetReader::new(file);
            if !reader.schema().map_err(parquet_error)?.contains(REJECT_KEY) {
                continue;
            }
            let frame = reader.with_columns(Some(vec![REJECT_KEY.to_owned()])).finish().map_err(parquet_error)?;
            let keys = frame.column(REJECT_KEY).and_then(|column| column.binary().cloned()).map_err(parquet_error)?;
            for key in keys.iter().flatten() {
                let bytes = <[u8; 16]>::try_from(key).map_err(|_| IngestError::Parquet {
                    path: path.clone(),
                    source: PolarsError::ComputeError(format!("a {REJECT_KEY} of {} bytes, not 16", key.len()).into()),
                })?;
                index.insert(u128::from_be_bytes(bytes));
            }
        }
        Ok(())
    }

    /// Removes what failed or killed runs left behind: the staging area and any data file no
    /// committed record lists. Call only while holding the lock.
    pub fn remove_leftovers(&self, _lock: &LakeLock) -> Result<(), IngestError> {
        let staging = self.staging_dir();
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(lake_io(&staging))?;
        }
        let runs = self.runs()?;
        let committed: HashSet<PathBuf> = runs
            .iter()
            .flat_map(|run| run.event_files.iter().chain(&run.reject_files))
            .map(|file| self.root.join(file))
            .collect();
        for dir in [self.root.join("events"), self.root.join("rejects")] {
            remove_uncommitted(&dir, &committed)?;
        }
        Ok(())
    }

    /// Removes the staging area when no run uses it any more (a non-empty one is left alone).
    fn remove_empty_staging(&self) {
        let _ = fs::remove_dir(self.staging_dir());
    }

    /// Starts writing a run's files under the staging area.
    pub fn stage(&self, run_id: &str, _lock: &LakeLock) -> Result<StagedRun, IngestError> {
        let dir = self.staging_dir().join(run_id);
        fs::create_dir_all(&dir).map_err(lake_io(&dir))?;
        Ok(StagedRun {
            lake: self.clone(),
            dir,
            run_id: run_id.to_owned(),
            month_files: BTreeMap::new(),
            reject_files: Vec::new(),
            parts_written: 0,
        })
    }
}

fn remove_uncommitted(dir: &Path, committed: &HashSet<PathBuf>) -> Result<(), IngestError> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(dir).map_err(lake_io(dir))? {
        let path = entry.map_err(lake_io(dir))?.path();
        if path.is_dir() {
            remove_uncommitted(&path, committed)?;
        } else if !committed.contains(&path) {
            fs::remove_file(&path).map_err(lake_io(&path))?;
        }
    }
    Ok(())
}

/// The files of one run being written, invisible to readers until [`StagedRun::commit`].
pub struct StagedRun {
    lake: Lake,
    dir: PathBuf,
    run_id: String,
    /// The run's event file of each UTC month partition, open until the commit.
    month_files: BTreeMap<(i32, u32), MonthFile>,
    reject_files: Vec<String>,
    parts_written: usize,
}

/// One event file of a run: its path under the lake and its writer, which appends each chunk
/// of the month's events as row groups.
struct MonthFile {
    relative: String,
    writer: polars::io::parquet::write::BatchedWriter<File>,
}

/// One rejected record as stored in the lake's rejects.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    /// The file as given on the command line.
    pub source_file: String,
    /// 1-based line the record starts on.
    pub line: i64,
    /// The reason of events.md.
    pub reason: String,
    /// The record's text.
    pub raw: String,
}

/// The column of the lake's rejects holding each reject's key (see [`reject_key`]; 16 bytes,
/// big endian).
pub const REJECT_KEY: &str = "reject_key";

/// The identity of a rejected record across runs: a 128-bit hash of its file's content
/// identity ([`crate::source::content_identity`]), line, reason and text. The file's path is
/// left out, so that the same dump ingested again from another path is recognised.
pub fn reject_key(source_identity: u128, reject: &Reject) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(&source_identity.to_le_bytes());
    hasher.update(&reject.line.to_le_bytes());
    hasher.update(&(reject.reason.len() as u64).to_le_bytes());
    hasher.update(reject.reason.as_bytes());
    hasher.update(reject.raw.as_bytes());
    hasher.digest128()
}

impl StagedRun {
    /// Appends a chunk of accepted events to the run's file of each UTC month they fall in
    /// (one file per month partition and run, a row group per chunk).
    pub fn write_events(&mut self, events: &[Event]) -> Result<(), IngestError> {
        let mut by_month: BTreeMap<(i32, u32), Vec<&Event>> = BTreeMap::new();
        for event in events {
            let instant = DateTime::from_timestamp_micros(event.occurred_at).unwrap_or_default();
            by_month.entry((instant.year(), instant.month())).or_default().push(event);
        }
        for ((year, month), month_events) in by_month {
            let relative = match self.month_files.get(&(year, month)) {
                Some(month_file) => month_file.relative.clone(),
                None => {
                    self.parts_written += 1;
                    format!(
                        "events/month={year:04}-{month:02}/part-{}-{:05}.parquet",
                        self.run_id,
                        self.parts_written - 1
                    )
                }
            };
            let path = self.dir.join(&relative);
            let parquet_error = |source| IngestError::Parquet { path: path.clone(), source };
            let frame = events_frame(&month_events, &self.run_id).map_err(parquet_error)?;
            let month_file = match self.month_files.entry((year, month)) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    let writer = parquet_writer(&path)?.batched(frame.schema()).map_err(parquet_error)?;
                    entry.insert(MonthFile { relative, writer })
                }
            };
            month_file.writer.write_batch(&frame).map_err(parquet_error)?;
        }
        Ok(())
    }

    /// Writes a chunk of rejects with their keys (see [`reject_key`]) as one Parquet file.
    pub fn write_rejects(&mut self, rejects: &[Reject], keys: &[u128]) -> Result<(), IngestError> {
        if rejects.is_empty() {
            return Ok(());
        }
        let relative = format!("rejects/{}-{:05}.parquet", self.run_id, self.parts_written);
        let path = self.dir.join(&relative);
        let mut frame = rejects_frame(rejects, keys, &self.run_id)
            .map_err(|source| IngestError::Parquet { path: path.clone(), source })?;
        write_parquet(&path, &mut frame)?;
        self.reject_files.push(relative);
        self.parts_written += 1;
        Ok(())
    }

    /// Drops everything the run wrote; the lake is as it was before the run.
    pub fn abandon(self) -> Result<(), IngestError> {
        fs::remove_dir_all(&self.dir).map_err(lake_io(&self.dir))?;
        self.lake.remove_empty_staging();
        Ok(())
    }

    /// Makes the run visible: moves its files into place (only the rejects when the run
    /// exceeded the reject ratio) and renames its record into the commit log.
    pub fn commit(mut self, mut record: RunRecord) -> Result<RunRecord, IngestError> {
        let month_files = std::mem::take(&mut self.month_files);
        if record.status == RunStatus::Committed {
            for month_file in month_files.into_values() {
                let path = self.dir.join(&month_file.relative);
                month_file.writer.finish().map_err(|source| IngestError::Parquet { path, source })?;
                record.event_files.push(month_file.relative);
            }
        }
        record.reject_files = std::mem::take(&mut self.reject_files);
        for relative in record.event_files.iter().chain(&record.reject_files) {
            let from = self.dir.join(relative);
            let to = self.lake.root.join(relative);
            if let Some(parent) = to.parent() {
                fs::create_dir_all(parent).map_err(lake_io(parent))?;
            }
            fs::rename(&from, &to).map_err(lake_io(&to))?;
        }
        crmkpi_schema::pause::pause_at("ingest:before_commit");
        let runs_dir = self.lake.runs_dir();
        fs::create_dir_all(&runs_dir).map_err(lake_io(&runs_dir))?;
        let sequence = self.lake.runs()?.len() + 1;
        let staged_record = self.dir.join("record.json");
        let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        let mut file = File::create(&staged_record).map_err(lake_io(&staged_record))?;
        file.write_all(&json).and_then(|()| file.sync_all()).map_err(lake_io(&staged_record))?;
        let committed = runs_dir.join(format!("{sequence:06}-{}.json", self.run_id));
        fs::rename(&staged_record, &committed).map_err(lake_io(&committed))?;
        fs::remove_dir_all(&self.dir).map_err(lake_io(&self.dir))?;
        self.lake.remove_empty_staging();
        Ok(record)
    }
}

/// A Parquet writer of a lake file at `path` (zstd, full statistics), directories created.
fn parquet_writer(path: &Path) -> Result<ParquetWriter<File>, IngestError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(lake_io(parent))?;
    }
    let file = File::create(path).map_err(lake_io(path))?;
    Ok(ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::default()))
}

fn write_parquet(path: &Path, frame: &mut DataFrame) -> Result<(), IngestError> {
    parquet_writer(path)?.finish(frame).map_err(|source| IngestError::Parquet { path: path.to_owned(), source })?;
    Ok(())
}

fn text_column<'a>(name: &str, events: &[&'a Event], get: impl Fn(&'a Event) -> Option<&'a str>) -> Column {
    Column::new(name.into(), events.iter().map(|event| get(event)).collect::<Vec<_>>())
}

/// The lake columns (see [`crmkpi_schema::LAKE_COLUMNS`]) of a set of events.
fn events_frame(events: &[&Event], run_id: &str) -> PolarsResult<DataFrame> {
    let occurred_at =
        Int64Chunked::from_vec("occurred_at".into(), events.iter().map(|event| event.occurred_at).collect())
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column();
    let columns = vec![
        text_column("event_id", events, |event| Some(event.event_id.as_str())),
        text_column("event_type", events, |event| Some(event.event_type.name())),
        occurred_at,
        text_column("customer_id", events, |event| event.text.customer_id.as_deref()),
        text_column("deal_id", events, |event| event.text.deal_id.as_deref()),
        text_column("order_id", events, |event| event.text.order_id.as_deref()),
        text_column("ticket_id", events, |event| event.text.ticket_id.as_deref()),
        text_column("campaign_id", events, |event| event.text.campaign_id.as_deref()),
        text_column("owner_id", events, |event| event.text.owner_id.as_deref()),
        text_column("stage", events, |event| event.text.stage.as_deref()),
        Column::new("amount".into(), events.iter().map(|event| event.amount).collect::<Vec<_>>()),
        text_column("currency", events, |event| event.text.currency.as_deref()),
        text_column("channel", events, |event| event.text.channel.as_deref()),
        text_column("kind", events, |event| event.text.kind.as_deref()),
        text_column("category", events, |event| event.text.category.as_deref()),
        text_column("survey", events, |event| event.text.survey.as_deref()),
        Column::new("score".into(), events.iter().map(|event| event.score).collect::<Vec<_>>()),
        text_column("reason", events, |event| event.text.reason.as_deref()),
        Column::new("content_hash".into(), events.iter().map(|event| event.content_hash).collect::<Vec<_>>()),
        Column::new("ingest_run".into(), vec![run_id; events.len()]),
    ];
    DataFrame::new(events.len(), columns)
}

fn rejects_frame(rejects: &[Reject], keys: &[u128], run_id: &str) -> PolarsResult<DataFrame> {
    let columns = vec![
        Column::new("source_file".into(), rejects.iter().map(|reject| reject.source_file.as_str()).collect::<Vec<_>>()),
        Column::new("line".into(), rejects.iter().map(|reject| reject.line).collect::<Vec<_>>()),
        Column::new("reason".into(), rejects.iter().map(|reject| reject.reason.as_str()).collect::<Vec<_>>()),
        Column::new("raw".into(), rejects.iter().map(|reject| reject.raw.as_str()).collect::<Vec<_>>()),
        Column::new("ingest_run".into(), vec![run_id; rejects.len()]),
        Column::new(REJECT_KEY.into(), keys.iter().map(|key| key.to_be_bytes().to_vec()).collect::<Vec<Vec<u8>>>()),
    ];
    DataFrame::new(rejects.len(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: usize, occurred_at: &str) -> Event {
        Event {
            event_id: format!("e{id}"),
            event_type: crmkpi_schema::EventType::SiteVisited,
            occurred_at: DateTime::parse_from_rfc3339(occurred_at).expect("instant").timestamp_micros(),
            text: crate::validate::TextFields { customer_id: Some(format!("c{id}")), ..Default::default() },
            amount: None,
            score: None,
            content_hash: id as u64,
        }
    }

    fn record(run_id: &str) -> RunRecord {
        RunRecord {
            run_id: run_id.to_owned(),
            crmkpi_version: "test".to_owned(),
            started_at: String::new(),
            finished_at: String::new(),
            status: RunStatus::Committed,
            config_hash: String::new(),
            files: Vec::new(),
            known_rejects: 0,
            event_files: Vec::new(),
            reject_files: Vec::new(),
        }
    }

    /// Reject keys are read back from the lake; reject files from before the keys have none.
    #[test]
    fn reject_keys_are_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::new(dir.path().join("lake"));
        let lock = lake.lock().expect("lock");
        let reject = |line: i64, raw: &str| Reject {
            source_file: "dump.ndjson".to_owned(),
            line,
            reason: "malformed_record".to_owned(),
            raw: raw.to_owned(),
        };
        let rejects = [reject(2, "{"), reject(3, "[]")];
        let keys = rejects.each_ref().map(|reject| reject_key(7, reject));
        let mut staged = lake.stage("run1", &lock).expect("stage");
        staged.write_rejects(&rejects, &keys).expect("write");
        staged.commit(record("run1")).expect("commit");
        // A reject file of an earlier version: no reject_key column.
        let mut older = rejects_frame(&[reject(9, "x")], &[0], "run0").expect("frame").drop(REJECT_KEY).expect("drop");
        write_parquet(&lake.root().join("rejects/run0-00000.parquet"), &mut older).expect("write");
        let mut older_record = record("run0");
        older_record.reject_files.push("rejects/run0-00000.parquet".to_owned());
        let json = serde_json::to_vec(&older_record).expect("json");
        std::fs::write(lake.root().join("_runs/000002-run0.json"), json).expect("record");

        let mut index = RejectIndex::default();
        lake.load_reject_index(&mut index).expect("load");
        assert_eq!(index.len(), 2);
        assert!(keys.iter().all(|key| !index.insert(*key)));
        assert_ne!(reject_key(8, &reject(2, "{")), keys[0], "another file is another reject");
        assert_ne!(reject_key(7, &reject(4, "{")), keys[0], "another line is another reject");
        let other_reason = Reject { reason: "missing_field:event_id".to_owned(), ..reject(2, "{") };
        assert_ne!(reject_key(7, &other_reason), keys[0], "another reason is another reject");
    }

    /// Chunks written by one run are appended to one file per month partition.
    #[test]
    fn chunks_of_a_run_share_one_file_per_month() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::new(dir.path().join("lake"));
        let lock = lake.lock().expect("lock");
        let mut staged = lake.stage("run1", &lock).expect("stage");
        let chunks = [
            vec![event(1, "2024-01-05T10:00:00Z"), event(2, "2024-02-01T00:00:00Z"), event(3, "2024-01-31T23:59:59Z")],
            vec![event(4, "2024-02-10T10:00:00Z"), event(5, "2024-01-01T00:00:00Z")],
            vec![event(6, "2024-03-03T03:03:03Z")],
        ];
        for chunk in &chunks {
            staged.write_events(chunk).expect("write");
        }
        let record = staged.commit(record("run1")).expect("commit");
        let months: Vec<&str> =
            record.event_files.iter().map(|file| file.split('/').nth(1).expect("partition")).collect();
        assert_eq!(months, ["month=2024-01", "month=2024-02", "month=2024-03"]);
        let ids_of = |file: &String| -> Vec<String> {
            let frame = ParquetReader::new(File::open(lake.root().join(file)).expect("open")).finish().expect("read");
            let ids = frame.column("event_id").expect("event_id").str().expect("str").clone();
            ids.iter().map(|id| id.expect("id").to_owned()).collect()
        };
        let ids: Vec<Vec<String>> = record.event_files.iter().map(ids_of).collect();
        assert_eq!(ids, [vec!["e1", "e3", "e5"], vec!["e2", "e4"], vec!["e6"]]);
        assert_eq!(lake.event_files().expect("files").len(), 3);
    }
}
