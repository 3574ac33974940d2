//! The ingest and validate runs: read every dump file in path order, validate each record,
//! deduplicate against the lake and the run so far, and account for every record read:
//! `read = accepted + duplicates + rejected`, per file and in total.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use crmkpi_schema::Config;
use serde::Serialize;

use rayon::prelude::*;

use crate::dedup::{self, Fate, IdSet, NextIndex, RejectIndex, Spill, SuspectRecord, Unseen};
use crate::error::IngestError;
use crate::id_index::id_hash;
use crate::lake::{FileStats, Lake, Reject, RunRecord, RunStatus, StagedRun, reject_key};
use crate::read::{Parsed, read_dump};
use crate::seen_filter::SeenFilter;
use crate::source::{Compression, DumpFile, Format, content_identity, expand_inputs};
use crate::validate::{Event, EventView, RejectReason};

/// Suspects in a batch from which they are encoded for the spill in parallel.
const PARALLEL_SUSPECTS: usize = 1_024;
/// Records whose ids are looked up in the filter together (their words loaded, then inserted).
const FILTER_CHUNK: usize = 64;

/// Rejects held in memory at most: those waiting for their file's identity and those waiting
/// to be written as Parquet, together.
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
trait RecordSink: Send {
    fn accept<S: Deref<Target = str> + Sync>(&mut self, events: &[&Event<S>]) -> Result<(), IngestError>;
    fn reject(&mut self, file: &DumpFile, reject: Reject) -> Result<(), IngestError>;
    /// `file` is about to be read.
    fn file_started(&mut self, _file: &DumpFile) {}
    /// `file` was read to its end; `identity` is its content identity when the reader saw it
    /// whole.
    fn file_read(&mut self, _file: &DumpFile, _identity: Option<u128>) -> Result<(), IngestError> {
        Ok(())
    }
    /// Every file was read: what the sink collected may be written while the run's ids are
    /// decided (the suspects found new follow).
    fn files_read(&mut self) -> Result<(), IngestError> {
        Ok(())
    }
}

/// `crmkpi validate`: the checks of ingest, deduplicating within the inputs only, writing
/// nothing.
pub fn validate_inputs(inputs: &[String], config: &Config, progress: &dyn Progress) -> Result<Summary, IngestError> {
    struct Discard;
    impl RecordSink for Discard {
        fn accept<S: Deref<Target = str> + Sync>(&mut self, _events: &[&Event<S>]) -> Result<(), IngestError> {
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
        source_identities: HashMap::new(),
        reading: None,
        unidentified: Vec::new(),
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
    /// The content identity of each file read, from its reader's hash of its bytes (or from a
    /// second read of the file, see [`LakeSink::reject`]).
    source_identities: HashMap<PathBuf, u128>,
    /// The file being read.
    reading: Option<PathBuf>,
    /// Rejects of the file being read, waiting for its identity.
    unidentified: Vec<Reject>,
}

impl LakeSink {
    fn finish(mut self) -> Result<StagedRun, IngestError> {
        self.write_rejects()?;
        Ok(self.staged)
    }

    /// Keeps `reject` of a file of identity `identity` unless an earlier run rejected it.
    fn add_reject(&mut self, identity: u128, reject: Reject) -> Result<(), IngestError> {
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
            self.write_rejects()?;
        }
        Ok(())
    }

    /// Writes the rejects kept so far as a Parquet file of the run.
    fn write_rejects(&mut self) -> Result<(), IngestError> {
        self.staged.write_rejects(&self.rejects, &self.reject_keys)?;
        self.rejects.clear();
        self.reject_keys.clear();
        Ok(())
    }

    /// Records `file`'s identity (the first one found stays: the waiting rejects of a file read
    /// a second time for it were keyed with that one) and keeps its rejects that waited for it.
    fn release_waiting(&mut self, file: &DumpFile, identity: u128) -> Result<(), IngestError> {
        let identity = *self.source_identities.entry(file.path.clone()).or_insert(identity);
        std::mem::take(&mut self.unidentified).into_iter().try_for_each(|reject| self.add_reject(identity, reject))
    }
}

impl RecordSink for LakeSink {
    fn accept<S: Deref<Target = str> + Sync>(&mut self, events: &[&Event<S>]) -> Result<(), IngestError> {
        self.staged.add_events(events)
    }

    /// A reject's key needs its file's identity, known from the reader's hash once the file is
    /// read: until then its rejects wait. A file whose waiting rejects reach [`REJECT_CHUNK`]
    /// (the rejects kept for writing counted too, and written first), and the conflicts found
    /// after the read of a file the reader did not see whole, have their file read a second
    /// time for it.
    fn reject(&mut self, file: &DumpFile, reject: Reject) -> Result<(), IngestError> {
        if let Some(identity) = self.source_identities.get(&file.path) {
            return self.add_reject(*identity, reject);
        }
        if self.reading.as_ref() != Some(&file.path) {
            let identity = content_identity(file)?;
            self.source_identities.insert(file.path.clone(), identity);
            return self.add_reject(identity, reject);
        }
        self.unidentified.push(reject);
        if self.unidentified.len() + self.rejects.len() >= REJECT_CHUNK {
            if self.rejects.is_empty() {
                self.release_waiting(file, content_identity(file)?)?;
            } else {
                self.write_rejects()?;
            }
        }
        Ok(())
    }

    fn file_started(&mut self, file: &DumpFile) {
        self.reading = Some(file.path.clone());
    }

    fn files_read(&mut self) -> Result<(), IngestError> {
        self.staged.flush_events()
    }

    fn file_read(&mut self, file: &DumpFile, identity: Option<u128>) -> Result<(), IngestError> {
        self.reading = None;
        match identity {
            Some(identity) => self.release_waiting(file, identity),
            None if self.unidentified.is_empty() => Ok(()),
            None => self.release_waiting(file, content_identity(file)?),
        }
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
    pub next_index: Option<NextIndex>,
}

/// Reads every file in one pass and decides what it could not (see [`crate::dedup`]): each
/// batch's valid records are checked against the filter of the lake's and the run's ids, the
/// unseen ones handed to `sink` at once and the suspects spilled; once every file is read, the
/// suspects are decided against the lake's index and the whole run and handed on in arrival
/// order.
fn read_files(
    files: &[DumpFile],
    config: &Config,
    places: &DedupPlaces,
    sink: &mut impl RecordSink,
    progress: &dyn Progress,
) -> Result<Summary, IngestError> {
    let sizes: Vec<u64> =
        files.iter().map(|file| std::fs::metadata(&file.path).map(|metadata| metadata.len()).unwrap_or(0)).collect();
    let expected = files.iter().zip(&sizes).map(|(file, size)| expected_records(file, *size)).sum();
    let filter = dedup::lake_filter(places.lake_index.as_deref(), expected)?;
    read_with_filter(files, &sizes, config, places, filter, sink, progress).map(|(summary, _)| summary)
}

/// [`read_files`] with the filter of the lake's ids given; also returns how many suspects the
/// run spilled.
fn read_with_filter(
    files: &[DumpFile],
    sizes: &[u64],
    config: &Config,
    places: &DedupPlaces,
    filter: SeenFilter,
    sink: &mut impl RecordSink,
    progress: &dyn Progress,
) -> Result<(Summary, u64), IngestError> {
    progress.run_started(files.len(), sizes.iter().sum());
    let mut stats: Vec<FileStats> =
        files.iter().map(|file| FileStats { path: file.display_path(), ..FileStats::default() }).collect();
    let mut intake = Intake { spill: Spill::create(&places.spill)?, unseen: Unseen::default() };
    for (index, (file, size)) in files.iter().zip(sizes.iter().copied()).enumerate() {
        progress.file_started(&stats[index].path, size);
        sink.file_started(file);
        let file_stats = &mut stats[index];
        // A batch's records are classified as it is parsed, beside the handing on of the batch
        // before: batches reach the filter in file order all the same.
        let identity = read_dump(
            file,
            config,
            |parsed| classify(&filter, parsed),
            |parsed, classes| intake.take(index as u32, file, parsed, &classes, file_stats, &mut *sink),
            |bytes, records| progress.file_progress(bytes, records),
        )?;
        sink.file_read(file, identity)?;
    }
    let Intake { spill, unseen } = intake;
    let run = spill.finish()?;
    let suspects = run.suspects();
    tracing::debug!(suspects, "every file read; the suspects are decided next");
    // The filter is saved for the next run (its words on a thread of their own while the run's
    // ids are decided, then let go of; what it covers once the index is written, while the
    // suspects are added). The events collected are written while the ids are decided: writing
    // the next index is most of deciding, and one thread at a time writes into its file.
    let next_index = places.next_index.as_ref();
    let (saving, (decisions, written)) = side_by_side(
        move || next_index.map(|next_index| dedup::save_filter(filter, next_index)).transpose(),
        || {
            rayon::join(
                || dedup::decide(&run, places.lake_index.as_deref(), next_index, Some(&unseen)),
                || sink.files_read(),
            )
        },
    );
    let saving = saving?;
    let decisions = decisions?;
    written?;
    unseen.check(&decisions)?;
    tracing::debug!("every id decided");
    // The keys' file, read by deciding only, goes while the suspects are added.
    let spilled = &run;
    let (saved, replayed) = side_by_side(
        move || {
            saving.zip(next_index).map_or(Ok(()), |(saving, next_index)| dedup::finish_filter(saving, next_index))?;
            spilled.remove_keys()
        },
        || replay(spilled, &decisions, files, &mut stats, sink),
    );
    saved?;
    replayed?;
    run.remove()?;
    tracing::debug!("suspects added");
    let mut summary = Summary::default();
    for file_stats in stats {
        progress.file_finished(&file_stats);
        summary.add_file(file_stats);
    }
    Ok((summary, suspects))
}

/// Runs `background` on a thread of its own while `foreground` runs on this one; both results.
fn side_by_side<A: Send, B>(background: impl FnOnce() -> A + Send, foreground: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|scope| {
        let background = scope.spawn(background);
        let foreground = foreground();
        (background.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), foreground)
    })
}

/// Hands the decided suspects of `run` on in arrival order: the new ones to `sink` as
/// accepted, the conflicting ones as rejects; all counted in their files' `stats`.
fn replay(
    run: &dedup::SpilledRun,
    decisions: &dedup::Decisions,
    files: &[DumpFile],
    stats: &mut [FileStats],
    sink: &mut impl RecordSink,
) -> Result<(), IngestError> {
    run.replay_suspects(decisions, |block| {
        let mut accepted = Vec::new();
        for record in block {
            let file_stats = &mut stats[record.file as usize];
            match record.fate {
                Fate::Accepted(event) => {
                    file_stats.accepted += 1;
                    accepted.push(event);
                }
                Fate::Duplicate => file_stats.duplicates += 1,
                Fate::Conflict => {
                    let reason = RejectReason::ConflictingDuplicate.to_string();
                    reject(sink, &files[record.file as usize], file_stats, record.line, reason, record.raw)?;
                }
            }
        }
        sink.accept(&accepted.iter().collect::<Vec<_>>())
    })
}

/// About how many records a dump file holds, to size the id filter: a generous guess, since a
/// filter too small only spills more suspects (a record of NDJSON about 150 bytes, of CSV
/// about 77; compressed, about 30 and 18 bytes with gzip and zstd).
fn expected_records(file: &DumpFile, size: u64) -> u64 {
    let bytes_per_record = match (file.format, file.compression) {
        (Format::Ndjson, Compression::None) => 100,
        (Format::Csv, Compression::None) => 50,
        (_, Compression::Gzip | Compression::Zstd) => 10,
    };
    size / bytes_per_record
}

/// Counts a rejected record and hands it to `sink`.
fn reject(
    sink: &mut impl RecordSink,
    file: &DumpFile,
    file_stats: &mut FileStats,
    line: u64,
    reason: String,
    raw: &str,
) -> Result<(), IngestError> {
    *file_stats.rejected.entry(reason.clone()).or_default() += 1;
    let reject = Reject { source_file: file_stats.path.clone(), line: line as i64, reason, raw: raw.to_owned() };
    sink.reject(file, reject)
}

/// What a run keeps while it reads, besides the filter of the ids seen: the spill of keys and
/// suspects, and which records were written unseen.
struct Intake {
    spill: Spill,
    unseen: Unseen,
}

/// What the filter makes of a record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Rejected by validation.
    Invalid,
    /// Valid, its id certainly not seen before: new.
    Unseen(u128),
    /// Valid, its id maybe seen before: decided once the run is read.
    Suspect(u128),
}

impl Intake {
    /// Takes a batch of file `file`'s parsed records (number `index` of the run) and their
    /// `classes` ([`classify`]): rejects go to `sink` with their reasons, unseen events to
    /// `sink` as accepted, suspects to the spill.
    fn take(
        &mut self,
        index: u32,
        file: &DumpFile,
        parsed: &[Parsed<'_>],
        classes: &[Class],
        file_stats: &mut FileStats,
        sink: &mut impl RecordSink,
    ) -> Result<(), IngestError> {
        // One pass in order: the keys of the valid records, the unseen events, the suspects.
        let mut keys = Vec::with_capacity(parsed.len());
        let mut unseen = Vec::with_capacity(parsed.len());
        let mut suspects = Vec::new();
        for (record, class) in parsed.iter().zip(classes) {
            match (&record.verdict, *class) {
                (Ok(event), Class::Unseen(id)) => {
                    keys.push((id, event.content_hash));
                    unseen.push(event);
                }
                (Ok(event), Class::Suspect(id)) => {
                    keys.push((id, event.content_hash));
                    suspects.push((record, event));
                }
                _ => {}
            }
        }
        let encode = |(record, event): &(&Parsed<'_>, &EventView<'_>)| self.encode_suspect(index, record, event);
        // Suspects are few, unless the dump was ingested before (then every record is one).
        let suspects: Vec<Vec<u8>> = if suspects.len() < PARALLEL_SUSPECTS {
            suspects.iter().map(encode).collect::<Result<_, _>>()?
        } else {
            suspects.par_iter().map(encode).collect::<Result<_, _>>()?
        };
        let first = self.spill.push_keys(keys)?;
        file_stats.read += parsed.len() as u64;
        file_stats.accepted += unseen.len() as u64;
        let mut sequence = first;
        let mut suspects = suspects.into_iter();
        for (record, class) in parsed.iter().zip(classes) {
            match (&record.verdict, class) {
                (Err(reason), _) => reject(sink, file, file_stats, record.line, reason.to_string(), &record.raw)?,
                (Ok(_), Class::Unseen(_)) => {
                    self.unseen.mark(sequence);
                    sequence += 1;
                }
                (Ok(_), Class::Suspect(_)) => {
                    let encoded = suspects.next().ok_or_else(|| IngestError::Spill {
                        path: self.spill.suspects_path(),
                        source: std::io::Error::other("a suspect was not encoded"),
                    })?;
                    self.spill.push_suspect(sequence, &encoded)?;
                    sequence += 1;
                }
                (Ok(_), Class::Invalid) => {}
            }
        }
        sink.accept(&unseen)
    }

    /// A suspect of file number `index` encoded for the spill.
    fn encode_suspect<S: Deref<Target = str>>(
        &self,
        index: u32,
        record: &Parsed<'_>,
        event: &Event<S>,
    ) -> Result<Vec<u8>, IngestError> {
        SuspectRecord { file: index, line: record.line, raw: &record.raw, event: event.view() }.encode().map_err(
            |error| IngestError::Spill { path: self.spill.suspects_path(), source: std::io::Error::other(error) },
        )
    }
}

/// Classifies a batch's records, adding their ids to `filter` (batch after batch, in the run's
/// order). An id repeated within the batch makes every one of its records a suspect: the
/// filter is filled in parallel, so the record that found the id unseen may not be the first.
/// Of the records of an id repeated within the batch, all but the first to reach the filter
/// find it there ([`SeenFilter::insert`]); the one that found it unseen is then made a suspect
/// because another record of the batch is one.
fn classify(filter: &SeenFilter, parsed: &[Parsed<'_>]) -> Vec<Class> {
    // Each chunk's classes written into their places (collected from an iterator of
    // unknown length, they were gathered in pieces and copied together).
    let mut classes = vec![Class::Invalid; parsed.len()];
    classes.par_chunks_mut(FILTER_CHUNK).zip(parsed.par_chunks(FILTER_CHUNK)).for_each(|(classes, chunk)| {
        // The chunk's ids, their words of the filter loaded first: the loads' cache misses
        // overlap, where each insert (a locked update) would wait for the one before.
        let mut ids = [None; FILTER_CHUNK];
        for (id, record) in ids.iter_mut().zip(chunk) {
            *id = record.verdict.as_ref().ok().map(|event| id_hash(event.event_id));
        }
        filter.load_words(ids.iter().flatten().copied());
        for (class, id) in classes.iter_mut().zip(ids) {
            *class = match id {
                None => Class::Invalid,
                Some(id) if filter.insert(id) => Class::Suspect(id),
                Some(id) => Class::Unseen(id),
            };
        }
    });
    let suspect_ids: IdSet = classes
        .iter()
        .filter_map(|class| match class {
            Class::Suspect(id) => Some(*id),
            Class::Invalid | Class::Unseen(_) => None,
        })
        .collect();
    if !suspect_ids.is_empty() {
        for class in &mut classes {
            if let Class::Unseen(id) = *class
                && suspect_ids.contains(&id)
            {
                *class = Class::Suspect(id);
            }
        }
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run handed on: the accepted events' ids and the rejects' lines and reasons, and
    /// how many events were accepted when it was told that every file was read.
    #[derive(Default)]
    struct Collected {
        accepted: Vec<String>,
        rejected: Vec<(i64, String)>,
        accepted_when_files_read: Option<usize>,
    }

    impl RecordSink for Collected {
        fn accept<S: Deref<Target = str> + Sync>(&mut self, events: &[&Event<S>]) -> Result<(), IngestError> {
            self.accepted.extend(events.iter().map(|event| event.event_id.to_string()));
            Ok(())
        }
        fn reject(&mut self, _file: &DumpFile, reject: Reject) -> Result<(), IngestError> {
            self.rejected.push((reject.line, reject.reason));
            Ok(())
        }
        fn files_read(&mut self) -> Result<(), IngestError> {
            assert_eq!(self.accepted_when_files_read, None, "told once");
            self.accepted_when_files_read = Some(self.accepted.len());
            Ok(())
        }
    }

    /// Reads `files` with `filter`: the summary, the suspects, and what was handed on (sorted).
    fn run_with(files: &[DumpFile], spill: &Path, filter: SeenFilter) -> (Summary, u64, Collected) {
        let places = DedupPlaces { spill: spill.to_owned(), lake_index: None, next_index: None };
        let mut collected = Collected::default();
        let sizes = vec![0; files.len()];
        let (summary, suspects) =
            read_with_filter(files, &sizes, &Config::default(), &places, filter, &mut collected, &NoProgress)
                .expect("read");
        collected.accepted.sort();
        collected.rejected.sort();
        (summary, suspects, collected)
    }

    #[test]
    fn the_filters_false_positives_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 20,000 records over three batches: ids repeat 15,000 records later (in another
        // batch) and right after (in the same batch); every seventh repeat has other content.
        let mut lines = Vec::new();
        for n in 0..20_000u32 {
            let (id, customer) = match n {
                n if n < 15_000 => (n, "c1"),
                n if n % 2 == 0 => (n - 15_000, if n % 7 == 0 { "c2" } else { "c1" }),
                n => (n - 1 - 15_000, if n % 7 == 0 { "c2" } else { "c1" }),
            };
            lines.push(format!(
                r#"{{"event_id":"e{id}","event_type":"site_visited","occurred_at":"2024-01-05T10:00:00Z","customer_id":"{customer}"}}"#
            ));
        }
        let path = dir.path().join("dump.ndjson");
        std::fs::write(&path, lines.join("\n")).expect("write");
        let files = expand_inputs(&[path.to_string_lossy().into_owned()]).expect("inputs");

        // The smallest filter, 65,536 bits, for 15,000 ids: it fills up and makes false positives.
        let (small, small_suspects, small_handed) = run_with(&files, &dir.path().join("small"), SeenFilter::for_ids(0));
        let (large, large_suspects, large_handed) =
            run_with(&files, &dir.path().join("large"), SeenFilter::for_ids(1 << 20));
        assert_eq!(small, large);
        assert_eq!(small_handed.accepted, large_handed.accepted);
        assert_eq!(small_handed.rejected, large_handed.rejected);
        assert_eq!(large.accepted, 15_000);
        assert_eq!(large.duplicates + large.rejected_total(), 5_000);
        assert!(large.rejected_total() > 0, "some repeats conflict");
        assert!(large_suspects >= 5_000, "every repeat is a suspect: {large_suspects}");
        // About 650 false positives: the filter fills up as the run goes.
        assert!(small_suspects > large_suspects + 500, "the small filter's false positives: {small_suspects}");
        // The sink hears that every file was read before the suspects are decided (it writes
        // what it collected meanwhile): only the suspects that turn out new, the false
        // positives (every repeat is a duplicate or a conflict), are accepted after.
        for (handed, suspects) in [(&small_handed, small_suspects), (&large_handed, large_suspects)] {
            let before = handed.accepted_when_files_read.expect("told that every file was read");
            assert_eq!(handed.accepted.len() - before, suspects as usize - 5_000);
        }
    }
}
