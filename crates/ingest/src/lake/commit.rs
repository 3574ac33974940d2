//! The write side of the lake: a run's files go straight into the next snapshot directory,
//! which is invisible until [`StagedRun::commit`] links in every committed file, writes the
//! run record, fsyncs the files and directories, and switches `_current` to it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use super::event_writer::{COLUMN_PARTS, ColumnPart, EventColumns, Month, MonthBounds, MonthFiles};
use super::snapshot::list_files;
use super::{CURRENT, Lake, READERS, RunRecord, RunStatus, SNAPSHOTS, VISIBLE, lake_io};
use twox_hash::XxHash3_128;

use crate::dedup::{NextIndex, build_index};
use crate::error::IngestError;
use crate::id_index::{INDEX_DIR, segment_name};
use crate::run::DedupPlaces;
use crate::validate::Event;

/// Accepted events collected before they are written, a row group per month: the more, the
/// larger the row groups (a dump spanning 20 months gets row groups of about 25,000 rows).
const PENDING_EVENTS: usize = 1 << 19;

/// Scratch space of a run inside its snapshot, removed before the commit.
const SPILL: &str = "_spill";
/// The index built for a lake from before the index, inside the run's snapshot.
const BUILT_INDEX: &str = "_built_index";

/// The files of one run being written into the next snapshot, invisible to readers until
/// [`StagedRun::commit`].
pub struct StagedRun {
    lake: Lake,
    /// The committed snapshot the run builds on.
    base: PathBuf,
    /// The next snapshot.
    dir: PathBuf,
    run_id: String,
    /// The run's event file of each UTC month partition, written on a thread of their own.
    month_files: MonthFiles,
    /// Accepted events of each month not yet sent to the files (months in the order they were
    /// met), the place of each month there, and how many events in all.
    pending: Vec<(Month, EventColumns)>,
    pending_slots: PlHashMap<Month, usize>,
    pending_events: usize,
    /// How many events each month collected in the last chunk sent: the next chunk's columns
    /// start with room for about as many (growing them by doubling costs copies and page faults).
    last_chunk: BTreeMap<Month, usize>,
    /// The bounds of the months met.
    month_bounds: MonthBounds,
    reject_files: Vec<String>,
    parts_written: usize,
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
    let mut hasher = XxHash3_128::new();
    hasher.write(&source_identity.to_le_bytes());
    hasher.write(&reject.line.to_le_bytes());
    hasher.write(&(reject.reason.len() as u64).to_le_bytes());
    hasher.write(reject.reason.as_bytes());
    hasher.write(reject.raw.as_bytes());
    hasher.finish_128()
}

impl StagedRun {
    /// Starts the next snapshot after the current one.
    pub(super) fn new(lake: &Lake, run_id: &str) -> Result<StagedRun, IngestError> {
        let (base, dir) = next_snapshot(lake)?;
        let month_files = MonthFiles::start(&dir, run_id)?;
        Ok(StagedRun {
            lake: lake.clone(),
            base,
            dir,
            run_id: run_id.to_owned(),
            month_files,
            pending: Vec::new(),
            pending_slots: PlHashMap::default(),
            pending_events: 0,
            month_bounds: MonthBounds::default(),
            last_chunk: BTreeMap::new(),
            reject_files: Vec::new(),
            parts_written: 0,
        })
    }

    /// Adds accepted events to the run's file of the UTC month each falls in (one file per
    /// month partition and run). Events are collected by month, the parts of the months'
    /// columns in parallel, [`PENDING_EVENTS`] at most, and written as a row group per month,
    /// encoded and compressed in parallel.
    pub fn add_events<S: Deref<Target = str> + Sync>(&mut self, events: &[&Event<S>]) -> Result<(), IngestError> {
        // Each event's slot: the place of its month among the pending months, looked up once
        // for each run of consecutive events in one month.
        let mut slot_of = Vec::with_capacity(events.len());
        let mut last: Option<(Month, usize)> = None;
        for event in events {
            let month = self.month_bounds.month_of(event.occurred_at).ok_or_else(|| IngestError::Parquet {
                path: self.dir.join("events"),
                source: polars_err!(ComputeError: "event {} occurred outside any calendar month", &*event.event_id),
            })?;
            let slot = match last {
                Some((last_month, slot)) if last_month == month => slot,
                _ => {
                    let (pending, last_chunk) = (&mut self.pending, &self.last_chunk);
                    *self.pending_slots.entry(month).or_insert_with(|| {
                        let expected = last_chunk.get(&month).map_or(1 << 12, |rows| rows + rows / 8);
                        pending.push((month, EventColumns::with_capacity(expected)));
                        pending.len() - 1
                    })
                }
            };
            last = Some((month, slot));
            slot_of.push(slot);
        }
        // One task per part of the columns fills that part for every month, reading the events
        // in order: a batch's months change every few events, and a task that read a month's
        // events only would jump through the batch.
        let mut parts: [Vec<ColumnPart>; COLUMN_PARTS] = Default::default();
        for (_, columns) in &mut self.pending {
            for (part, months_parts) in columns.parts().into_iter().zip(parts.iter_mut()) {
                months_parts.push(part);
            }
        }
        parts.into_par_iter().for_each(|mut months_parts| {
            for (event, slot) in events.iter().zip(&slot_of) {
                months_parts[*slot].push(event);
            }
        });
        self.pending_events += events.len();
        if self.pending_events >= PENDING_EVENTS {
            self.flush_events()?;
        }
        Ok(())
    }

    /// Sends the collected events to the event files, a row group per month (also once every
    /// file is read, before the run's last events, the suspects that turn out new, are added).
    pub fn flush_events(&mut self) -> Result<(), IngestError> {
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_unstable_by_key(|(month, _)| *month);
        self.pending_slots.clear();
        self.pending_events = 0;
        self.last_chunk = pending.iter().map(|(month, columns)| (*month, columns.len())).collect();
        if pending.is_empty() {
            return Ok(());
        }
        self.month_files.send(pending)
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

    /// Where the run's deduplication spills, which index it merges with, and where the next
    /// index goes (all inside the run's snapshot). A lake from before the index gets its index
    /// built from its event files first.
    pub fn dedup_places(&self) -> Result<DedupPlaces, IngestError> {
        let mut lake_index = self.base.join(INDEX_DIR);
        if !lake_index.is_dir() {
            let event_files = list_files(&self.base.join("events"), "parquet")?;
            tracing::info!(files = event_files.len(), "building the lake's event id index");
            lake_index = self.dir.join(BUILT_INDEX);
            build_index(&event_files, &lake_index, &self.dir.join(SPILL))?;
        }
        Ok(DedupPlaces {
            spill: self.dir.join(SPILL),
            lake_index: Some(lake_index),
            next_index: Some(NextIndex {
                dir: self.dir.join(INDEX_DIR),
                segment: segment_name(&snapshot_name(&self.dir)?.to_string_lossy()),
            }),
        })
    }

    /// Drops everything the run wrote; the lake is as it was before the run.
    pub fn abandon(self) -> Result<(), IngestError> {
        drop(self.month_files);
        fs::remove_dir_all(&self.dir).map_err(lake_io(&self.dir))
    }

    /// Makes the run visible in one step: finishes its event files (or drops them when the run
    /// exceeded the reject ratio), links every committed file and record into the run's
    /// snapshot, adds the run's record, fsyncs, and switches `_current` to it.
    pub fn commit(mut self, mut record: RunRecord) -> Result<RunRecord, IngestError> {
        if record.status == RunStatus::Committed {
            self.flush_events()?;
        }
        if record.status == RunStatus::Committed {
            let month_files = self.month_files.finish()?;
            tracing::debug!(files = month_files.len(), "event files written");
            for month_file in month_files.into_values() {
                let path = self.dir.join(&month_file.relative);
                month_file.writer.finish().map_err(|source| IngestError::Parquet { path, source })?;
                record.event_files.push(month_file.relative);
            }
        } else {
            // None of the run's events enter the lake: whatever its event files hold, and
            // whether or not they could be written (a full disk), they go. The snapshot's
            // `events` holds only the run's own files until the committed ones are linked.
            if let Err(error) = self.month_files.finish() {
                tracing::warn!("the refused run's event files: {error}");
            }
            let events = self.dir.join("events");
            remove_dir_if_present(&events)?;
            fs::create_dir_all(&events).map_err(lake_io(&events))?;
        }
        record.reject_files = std::mem::take(&mut self.reject_files);
        // The next index holds the run's ids only when its events enter the lake.
        let built_index = self.dir.join(BUILT_INDEX);
        let next_index = self.dir.join(INDEX_DIR);
        if record.status != RunStatus::Committed {
            remove_dir_if_present(&next_index)?;
            if built_index.is_dir() {
                fs::rename(&built_index, &next_index).map_err(lake_io(&next_index))?;
            }
        }
        remove_dir_if_present(&built_index)?;
        remove_dir_if_present(&self.dir.join(SPILL))?;
        crmkpi_schema::pause::pause_at("ingest:files_written");
        link_committed_files(&self.base, &self.dir, !next_index.is_dir())?;
        let sequence = list_files(&self.base.join("_runs"), "json")?.len() + 1;
        let path = self.dir.join("_runs").join(format!("{sequence:06}-{}.json", self.run_id));
        let json = serde_json::to_vec_pretty(&record)
            .map_err(|error| IngestError::LakeIo { path: path.clone(), source: std::io::Error::other(error) })?;
        fs::write(&path, json).map_err(lake_io(&path))?;
        sync_tree(&self.dir)?;
        tracing::debug!("snapshot synced");
        crmkpi_schema::pause::pause_at("ingest:before_commit");
        self.lake.switch_current(&self.dir)?;
        crmkpi_schema::pause::pause_at("ingest:after_commit");
        remove_unused_snapshots_after_commit(&self.lake);
        Ok(record)
    }
}

/// The current snapshot and a new, empty one after it.
pub(super) fn next_snapshot(lake: &Lake) -> Result<(PathBuf, PathBuf), IngestError> {
    let current = lake.root.join(CURRENT);
    let base = lake.root.join(fs::read_link(&current).map_err(lake_io(&current))?);
    // A committed snapshot always has its `_readers`: building on a missing one would commit a
    // lake without its earlier runs.
    let base_readers = base.join(READERS);
    if !base_readers.exists() {
        return Err(IngestError::LakeIo {
            path: base.clone(),
            source: std::io::Error::other("the committed snapshot that _current names is missing or incomplete"),
        });
    }
    let snapshots = lake.snapshots_dir();
    let mut last = 0;
    for entry in fs::read_dir(&snapshots).map_err(lake_io(&snapshots))? {
        let name = entry.map_err(lake_io(&snapshots))?.file_name();
        if let Ok(number) = name.to_string_lossy().parse::<u64>() {
            last = last.max(number);
        }
    }
    Ok((base, new_snapshot_dir(lake, last + 1)?))
}

/// Creates snapshot `number` with its `_readers` file and empty visible directories.
pub(super) fn new_snapshot_dir(lake: &Lake, number: u64) -> Result<PathBuf, IngestError> {
    let dir = lake.snapshots_dir().join(format!("{number:06}"));
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(lake_io(&dir))?;
    }
    for name in VISIBLE {
        let path = dir.join(name);
        fs::create_dir_all(&path).map_err(lake_io(&path))?;
    }
    let readers = dir.join(READERS);
    File::create(&readers).map_err(lake_io(&readers))?;
    Ok(dir)
}

fn remove_dir_if_present(dir: &Path) -> Result<(), IngestError> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(IngestError::LakeIo { path: dir.to_owned(), source: error })
        }
        _ => Ok(()),
    }
}

/// Hard-links every file of `base` (events, rejects, records, and the id index when
/// `with_index`) into `dir` at the same place.
pub(super) fn link_committed_files(base: &Path, dir: &Path, with_index: bool) -> Result<(), IngestError> {
    let index = with_index.then_some(INDEX_DIR);
    for name in VISIBLE.into_iter().chain(index) {
        let extension = match name {
            "_runs" => "json",
            INDEX_DIR => "bin",
            _ => "parquet",
        };
        for file in list_files(&base.join(name), extension)? {
            let relative = relative_to(base, &file)?;
            link_file(&file, &dir.join(relative))?;
        }
    }
    Ok(())
}

/// Hard-links the files a format-1 lake's committed records list (and the records) into the
/// first snapshot. A new lake has nothing to link and starts with an empty id index; a lake of
/// format 1 gets its index built by its next ingest.
pub(super) fn link_format_one_files(lake: &Lake, dir: &Path) -> Result<(), IngestError> {
    let records = list_files(&lake.root.join("_runs"), "json")?;
    if records.is_empty() {
        let index = dir.join(INDEX_DIR);
        return fs::create_dir_all(&index).map_err(lake_io(&index));
    }
    for path in records {
        let text = fs::read_to_string(&path).map_err(lake_io(&path))?;
        let record: RunRecord = serde_json::from_str(&text)
            .map_err(|error| IngestError::CorruptRunRecord { path: path.clone(), message: error.to_string() })?;
        for relative in record.event_files.iter().chain(&record.reject_files) {
            link_file(&lake.root.join(relative), &dir.join(relative))?;
        }
        if let Some(name) = path.file_name() {
            link_file(&path, &dir.join("_runs").join(name))?;
        }
    }
    Ok(())
}

/// The name of a snapshot directory (its number, `000042`).
pub(super) fn snapshot_name(snapshot: &Path) -> Result<&std::ffi::OsStr, IngestError> {
    snapshot.file_name().ok_or_else(|| IngestError::LakeIo {
        path: snapshot.to_owned(),
        source: std::io::Error::other("a snapshot directory has a name"),
    })
}

/// `path` relative to the snapshot directory `snapshot` it lies in.
pub(super) fn relative_to<'a>(snapshot: &Path, path: &'a Path) -> Result<&'a Path, IngestError> {
    path.strip_prefix(snapshot).map_err(|_| IngestError::LakeIo {
        path: path.to_owned(),
        source: std::io::Error::other(format!("not inside the snapshot {}", snapshot.display())),
    })
}

fn link_file(from: &Path, to: &Path) -> Result<(), IngestError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(lake_io(parent))?;
    }
    fs::hard_link(from, to).map_err(lake_io(to))
}

/// Makes every file and directory under `dir` durable before the commit: fsyncs each
/// directory and each file created for this snapshot. Files hard-linked from the previous
/// snapshot (link count above one) were made durable by the commit that created them.
pub(super) fn sync_tree(dir: &Path) -> Result<(), IngestError> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    list_tree(dir, &mut files, &mut dirs)?;
    // Several fsyncs at once: the disk writes the files' data together, not one file after
    // the other. Then the directories, whose new entries point at the files.
    sync_all(&files, |file| File::open(file).and_then(|file| file.sync_all()).map_err(lake_io(file)))?;
    sync_all(&dirs, sync_dir)
}

/// The files under `dir` that no committed snapshot shares (one link), and its directories,
/// `dir` last.
fn list_tree(dir: &Path, files: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) -> Result<(), IngestError> {
    use std::os::unix::fs::MetadataExt;
    for entry in fs::read_dir(dir).map_err(lake_io(dir))? {
        let entry = entry.map_err(lake_io(dir))?;
        let path = entry.path();
        let metadata = entry.metadata().map_err(lake_io(&path))?;
        if metadata.is_dir() {
            list_tree(&path, files, dirs)?;
        } else if metadata.nlink() == 1 {
            files.push(path);
        }
    }
    dirs.push(dir.to_owned());
    Ok(())
}

/// Runs `sync` on each of `paths`, on a few threads at once; the first error.
fn sync_all(paths: &[PathBuf], sync: impl Fn(&Path) -> Result<(), IngestError> + Sync) -> Result<(), IngestError> {
    const THREADS: usize = 8;
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS.min(paths.len()))
            .map(|_| {
                scope.spawn(|| {
                    while let Some(path) = paths.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                        sync(path)?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .try_for_each(|thread| thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// fsyncs a directory, so the entries created or renamed in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), IngestError> {
    File::open(dir).and_then(|file| file.sync_all()).map_err(lake_io(dir))
}

/// After a commit, the cleanup is best-effort: the run is committed whatever happens here, and
/// the next writer tries again.
pub(super) fn remove_unused_snapshots_after_commit(lake: &Lake) {
    if let Err(error) = remove_unused_snapshots(lake) {
        tracing::warn!("committed, but old snapshots could not be removed yet: {error}");
    }
}

/// Removes every snapshot but the current one that no reader holds, and what killed writers
/// left (unfinished snapshots). Entries that are not snapshots are left alone.
pub(super) fn remove_unused_snapshots(lake: &Lake) -> Result<(), IngestError> {
    let current = lake.root.join(CURRENT);
    let current_name = fs::read_link(&current).map_err(lake_io(&current))?;
    let snapshots = lake.snapshots_dir();
    for entry in fs::read_dir(&snapshots).map_err(lake_io(&snapshots))? {
        let entry = entry.map_err(lake_io(&snapshots))?;
        let name = entry.file_name();
        if Path::new(SNAPSHOTS).join(&name) == current_name {
            continue;
        }
        let path = entry.path();
        let name_text = name.to_string_lossy();
        let is_dir = entry.file_type().map_err(lake_io(&path))?.is_dir();
        if !is_dir || !(name_text.starts_with(".trash-") || name_text.parse::<u64>().is_ok()) {
            continue;
        }
        let trash = snapshots.join(format!(".trash-{name_text}"));
        if name_text.starts_with(".trash-") {
            fs::remove_dir_all(&path).map_err(lake_io(&path))?;
            continue;
        }
        // A reader holds a shared lock on `_readers` while it reads this snapshot.
        let readers = File::open(path.join(READERS)).ok();
        let held_by_reader = readers.as_ref().is_some_and(|file| file.try_lock().is_err());
        if held_by_reader {
            continue;
        }
        fs::rename(&path, &trash).map_err(lake_io(&path))?;
        drop(readers);
        fs::remove_dir_all(&trash).map_err(lake_io(&trash))?;
    }
    Ok(())
}

/// A Parquet writer of a lake file at `path` (zstd, full statistics), directories created. It
/// writes through a buffer (the footer's column and offset indexes are many small writes),
/// flushed when the file is finished.
pub(super) fn parquet_writer(path: &Path) -> Result<ParquetWriter<BufWriter<File>>, IngestError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(lake_io(parent))?;
    }
    let file = File::create(path).map_err(lake_io(path))?;
    Ok(ParquetWriter::new(BufWriter::with_capacity(1 << 20, file))
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::default()))
}

fn write_parquet(path: &Path, frame: &mut DataFrame) -> Result<(), IngestError> {
    parquet_writer(path)?.finish(frame).map_err(|source| IngestError::Parquet { path: path.to_owned(), source })?;
    Ok(())
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
    use crate::validate::Event;
    use chrono::DateTime;

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

        let mut index = crate::dedup::RejectIndex::default();
        lake.load_reject_index(&mut index).expect("load");
        assert_eq!(index.len(), 2);
        assert!(keys.iter().all(|key| !index.insert(*key)));
        assert_ne!(reject_key(8, &reject(2, "{")), keys[0], "another file is another reject");
        assert_ne!(reject_key(7, &reject(4, "{")), keys[0], "another line is another reject");
        let other_reason = Reject { reason: "missing_field:event_id".to_owned(), ..reject(2, "{") };
        assert_ne!(reject_key(7, &other_reason), keys[0], "another reason is another reject");
    }

    /// The events of one run go to one file per month partition, in arrival order.
    #[test]
    fn chunks_of_a_run_share_one_file_per_month() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lake = Lake::new(dir.path().join("lake"));
        let lock = lake.lock().expect("lock");
        let mut staged = lake.stage("run1", &lock).expect("stage");
        let mut chunks = [
            vec![event(1, "2024-01-05T10:00:00Z"), event(2, "2024-02-01T00:00:00Z"), event(3, "2024-01-31T23:59:59Z")],
            vec![event(4, "2024-02-10T10:00:00Z"), event(5, "2024-01-01T00:00:00Z")],
            vec![event(6, "2024-03-03T03:03:03Z")],
        ];
        // Events 3 and 4 without a customer: a text column's rows, null or not, stay in place
        // across the chunks of each month.
        for event in chunks.iter_mut().flatten().filter(|event| ["e3", "e4"].contains(&event.event_id.as_str())) {
            event.text.customer_id = None;
        }
        for chunk in &chunks {
            let events: Vec<&Event> = chunk.iter().collect();
            staged.add_events(&events).expect("add");
        }
        let record = staged.commit(record("run1")).expect("commit");
        let months: Vec<&str> =
            record.event_files.iter().map(|file| file.split('/').nth(1).expect("partition")).collect();
        assert_eq!(months, ["month=2024-01", "month=2024-02", "month=2024-03"]);
        let column_of = |file: &String, name: &str| -> Vec<Option<String>> {
            let frame = ParquetReader::new(File::open(lake.root().join(file)).expect("open")).finish().expect("read");
            let texts = frame.column(name).expect("column").str().expect("str").clone();
            texts.iter().map(|text| text.map(str::to_owned)).collect()
        };
        let texts = |name: &str| -> Vec<Vec<Option<String>>> {
            record.event_files.iter().map(|file| column_of(file, name)).collect()
        };
        let some = |texts: &[&str]| texts.iter().map(|text| Some((*text).to_owned())).collect::<Vec<_>>();
        assert_eq!(texts("event_id"), [some(&["e1", "e3", "e5"]), some(&["e2", "e4"]), some(&["e6"])]);
        assert_eq!(
            texts("customer_id"),
            [
                vec![Some("c1".to_owned()), None, Some("c5".to_owned())],
                vec![Some("c2".to_owned()), None],
                some(&["c6"])
            ]
        );
        assert_eq!(lake.event_files().expect("files").len(), 3);
    }
}
