//! The ingest and validate runs: read every dump file in path order, validate each record,
//! deduplicate against the lake and the run so far, and account for every record read:
//! `read = accepted + duplicates + rejected`, per file and in total.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crmkpi_schema::Config;
use serde::Serialize;

use crate::dedup::{self, EncodedPiece, Fate, RejectIndex, Spill};
use crate::error::IngestError;
use crate::lake::{FileStats, Lake, Reject, RunRecord, RunStatus, StagedRun, reject_key};
use crate::read::read_dump;
use crate::source::{DumpFile, content_identity, expand_inputs};
use crate::validate::EventView;

/// Rejects buffered before they are written as Parquet.
const REJECT_CHUNK: usize = 100_000;

/// Receives progress of a run; the binary shows it as bars or log lines.
pub trait Progress: Sync {
    /// The run is about to read `files` files of `bytes` bytes on disk in all.
    fn run_started(&self, _files: usize, _bytes: u64) {}
    /// A file is about to be read; `bytes` is its size on disk.
    fn file_started(&self, _path: &str, _bytes: u64) {}
    /// `bytes` of the current file (as stored, compressed) and its first `records` records
    /// have been read.
    fn file_progress(&self, _bytes: u64, _records: u64) {}
    /// A file was read to its end.
    fn file_finished(&self, _stats: &FileStats) {}
}

/// Progress that is not shown.
#[derive(Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// What a run read, accepted, dropped and rejected, in total and per file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records read.
    pub read: u64,
    /// Records accepted.
    pub accepted: u64,
    /// Plain duplicates dropped.
    pub duplicates: u64,
    /// Rejected records by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Per file, in path order.
    pub files: Vec<FileStats>,
}

impl Summary {
    /// Total rejected records.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// rejected / read (0 when nothing was read).
    pub fn reject_ratio(&self) -> f64 {
        if self.read == 0 { 0.0 } else { self.rejected_total() as f64 / self.read as f64 }
    }

    /// Why a run with this summary is refused when more than `max_reject_ratio` of its records
    /// were rejected: `N of M records rejected (x.xx%), more than max_reject_ratio = r`.
    pub fn reject_ratio_excess(&self, max_reject_ratio: f64) -> Option<String> {
        (self.reject_ratio() > max_reject_ratio).then(|| {
            format!(
                "{} of {} records rejected ({:.2}%), more than max_reject_ratio = {max_reject_ratio}",
                self.rejected_total(),
                self.read,
                self.reject_ratio() * 100.0,
            )
        })
    }

    fn add_file(&mut self, file: FileStats) {
        self.read += file.read;
        self.accepted += file.accepted;
        self.duplicates += file.duplicates;
        for (reason, count) in &file.rejected {
            *self.rejected.entry(reason.clone()).or_default() += count;
        }
        self.files.push(file);
    }
}

/// The result of an ingest run.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// The run's id.
    pub run_id: String,
    /// Whether its events entered the lake.
    pub status: RunStatus,
    /// What it read.
    pub summary: Summary,
}

impl IngestReport {
    /// What the user is told when the run was refused for its share of rejects (`lake_dir` as
    /// given): the counts, that no event entered the lake, and where the rejects are.
    pub fn refusal(&self, max_reject_ratio: f64, lake_dir: &Path) -> Option<String> {
        if self.status != RunStatus::RejectRatioExceeded {
            return None;
        }
        let excess = self.summary.reject_ratio_excess(max_reject_ratio)?;
        Some(format!(
            "{excess}; none of this run's events entered the lake. Inspect the rejects in {}/rejects (ingest_run = {}), \
             fix the dump or raise max_reject_ratio.",
            lake_dir.display(),
            self.run_id,
        ))
    }
}

/// Where accepted events and rejects go.
trait RecordSink {
    fn accept(&mut self, events: &[EventView<'_>]) -> Result<(), IngestError>;
    fn reject(&mut self, file: &DumpFile, reject: Reject) -> Result<(), IngestError>;
}

/// `crmkpi validate`: the checks of ingest, deduplicating within the inputs only, writing
/// nothing.
pub fn validate_inputs(inputs: &[String], config: &Config, progress: &dyn Progress) -> Result<Summary, IngestError> {
    struct Discard;
    impl RecordSink for Discard {
        fn accept(&mut self, _events: &[EventView<'_>]) -> Result<(), IngestError> {
            Ok(())
        }
        fn reject(&mut self, _file: &DumpFile, _reject: Reject) -> Result<(), IngestError> {
            Ok(())
        }
    }
    let files = expand_inputs(inputs)?;
    let spill = std::env::temp_dir().join(format!(
        "crmkpi-validate-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    let places = DedupPlaces { spill: spill.clone(), lake_index: None, next_index: None };
    let summary = read_files(&files, config, &places, &mut Discard, progress);
    if summary.is_err() && spill.exists() {
        std::fs::remove_dir_all(&spill).map_err(|source| IngestError::Spill { path: spill.clone(), source })?;
    }
    summary
}

/// `crmkpi ingest`: adds the dumps' accepted events to the lake and their rejects to the
/// lake's rejects, atomically, under the lake's lock. A reject already in the lake's rejects
/// (the same dump ingested again) is counted in the summary but not written again. When the
/// reject ratio exceeds `max_reject_ratio`, only the rejects and the run record are committed.
pub fn ingest(
    lake: &Lake,
    inputs: &[String],
    config: &Config,
    progress: &dyn Progress,
) -> Result<IngestReport, IngestError> {
    let started_at = chrono::Utc::now();
    let files = expand_inputs(inputs)?;
    let lock = lake.lock()?;
    lake.remove_leftovers(&lock)?;
    let mut known_rejects = RejectIndex::default();
    lake.load_reject_index(&mut known_rejects)?;
    tracing::info!(lake = %lake.root().display(), known_rejects = known_rejects.len(), "loaded the lake's reject keys");
    let run_id = format!("{}-{:08x}", started_at.format("%Y%m%dT%H%M%S%.3fZ"), std::process::id());
    let mut sink = LakeSink {
        staged: lake.stage(&run_id, &lock)?,
        rejects: Vec::new(),
        reject_keys: Vec::new(),
        reject_index: known_rejects,
        known_rejects: 0,
        source_identity: None,
    };
    let places = match sink.staged.dedup_places() {
        Ok(places) => places,
        Err(error) => {
            sink.staged.abandon()?;
            return Err(error);
        }
    };
    let summary = match read_files(&files, config, &places, &mut sink, progress) {
        Ok(summary) => summary,
        Err(error) => {
            sink.staged.abandon()?;
            return Err(error);
        }
    };
    crmkpi_schema::pause::pause_at("ingest:after_read");
    let status = if summary.reject_ratio() > config.max_reject_ratio {
        RunStatus::RejectRatioExceeded
    } else {
        RunStatus::Committed
    };
    let known_rejects = sink.known_rejects;
    if known_rejects > 0 {
        tracing::info!(known_rejects, "rejected records already in the lake's rejects were not written again");
    }
    let staged = sink.finish()?;
    let record = RunRecord {
        run_id: run_id.clone(),
        crmkpi_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        status,
        config_hash: config.hash(),
        files: summary.files.clone(),
        known_rejects,
        event_files: Vec::new(),
        reject_files: Vec::new(),
    };
    staged.commit(record)?;
    drop(lock);
    Ok(IngestReport { run_id, status, summary })
}

struct LakeSink {
    staged: StagedRun,
    rejects: Vec<Reject>,
    /// The key of each buffered reject.
    reject_keys: Vec<u128>,
    /// Keys of the rejects in the lake before this run.
    reject_index: RejectIndex,
    /// This run's rejects that were in the lake's rejects already.
    known_rejects: u64,
    /// The content identity of the file whose rejects are arriving, computed at its first
    /// reject (a second read of the file; files without rejects are not read twice).
    source_identity: Option<(std::path::PathBuf, u128)>,
}

impl LakeSink {
    fn finish(mut self) -> Result<StagedRun, IngestError> {
        self.staged.write_rejects(&self.rejects, &self.reject_keys)?;
        Ok(self.staged)
    }
}

impl RecordSink for LakeSink {
    fn accept(&mut self, events: &[EventView<'_>]) -> Result<(), IngestError> {
        self.staged.add_events(events)
    }

    fn reject(&mut self, file: &DumpFile, reject: Reject) -> Result<(), IngestError> {
        let identity = match &self.source_identity {
            Some((path, identity)) if *path == file.path => *identity,
            _ => {
                let identity = content_identity(file)?;
                self.source_identity = Some((file.path.clone(), identity));
                identity
            }
        };
        // Only rejects of earlier runs are skipped: two records of this run with the same key
        // (the same text on one line, split by a lone carriage return) are two rejects.
        let key = reject_key(identity, &reject);
        if self.reject_index.contains(key) {
            self.known_rejects += 1;
            return Ok(());
        }
        self.rejects.push(reject);
        self.reject_keys.push(key);
        if self.rejects.len() >= REJECT_CHUNK {
            self.staged.write_rejects(&self.rejects, &self.reject_keys)?;
            self.rejects.clear();
            self.reject_keys.clear();
        }
        Ok(())
    }
}

/// Where a run's deduplication reads and writes: its spill directory, the lake's index (none:
/// an empty lake) and the next index (none: `validate`, which writes nothing).
pub struct DedupPlaces {
    /// Scratch directory of the run's spilled records.
    pub spill: PathBuf,
    /// The committed index of the lake.
    pub lake_index: Option<PathBuf>,
    /// Where the index with the run's accepted ids goes.
    pub next_index: Option<PathBuf>,
}

/// Reads every file (phase 1: parse and validate in parallel, spill in arrival order), decides
/// duplicates partition by partition against the lake's index (phase 2), and hands every record
/// to `sink` in arrival order (phase 3); see [`crate::dedup`].
fn read_files(
    files: &[DumpFile],
    config: &Config,
    places: &DedupPlaces,
    sink: &mut dyn RecordSink,
    progress: &dyn Progress,
) -> Result<Summary, IngestError> {
    let sizes: Vec<u64> =
        files.iter().map(|file| std::fs::metadata(&file.path).map(|metadata| metadata.len()).unwrap_or(0)).collect();
    progress.run_started(files.len(), sizes.iter().sum());
    let mut stats: Vec<FileStats> =
        files.iter().map(|file| FileStats { path: file.display_path(), ..FileStats::default() }).collect();
    let mut spill = Spill::create(&places.spill)?;
    let spill_error = |error| IngestError::Spill { path: places.spill.clone(), source: std::io::Error::other(error) };
    for (index, (file, size)) in files.iter().zip(sizes).enumerate() {
        progress.file_started(&stats[index].path, size);
        let file_stats = &mut stats[index];
        read_dump(
            file,
            config,
            |parsed| EncodedPiece::encode(index as u32, &parsed).map_err(spill_error),
            |piece| {
                file_stats.read += piece.records();
                spill.push(piece)
            },
            |bytes, records| progress.file_progress(bytes, records),
        )?;
    }
    let run = spill.finish()?;
    let decisions = dedup::decide(&run, places.lake_index.as_deref(), places.next_index.as_deref())?;
    run.replay(&decisions, |block| {
        let mut accepted = Vec::with_capacity(block.len());
        for record in block {
            let file_stats = &mut stats[record.file as usize];
            let reason = match record.fate {
                Fate::Accepted(event) => {
                    file_stats.accepted += 1;
                    accepted.push(event);
                    continue;
                }
                Fate::Duplicate => {
                    file_stats.duplicates += 1;
                    continue;
                }
                Fate::Rejected(reason) => reason,
            };
            *file_stats.rejected.entry(reason.clone()).or_default() += 1;
            let reject = Reject {
                source_file: file_stats.path.clone(),
                line: record.line as i64,
                reason,
                raw: record.raw.to_owned(),
            };
            sink.reject(&files[record.file as usize], reject)?;
        }
        sink.accept(&accepted)
    })?;
    run.remove()?;
    let mut summary = Summary::default();
    for file_stats in stats {
        progress.file_finished(&file_stats);
        summary.add_file(file_stats);
    }
    Ok(summary)
}
