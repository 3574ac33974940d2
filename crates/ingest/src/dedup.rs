//! Deduplication by `event_id` with memory bounded by a constant, whatever the size of the
//! lake and of the dump. A record with an id accepted before (in the lake, or earlier in the
//! run: files in path order, lines in file order) and the same content hash is a plain
//! duplicate, with another content a `conflicting_duplicate`; the first accepted one wins.
//!
//! Three phases instead of an in-memory set of every id:
//! 1. [`Spill`]: every outcome of the run's records is written to a spill file in arrival order,
//!    and each valid record's (id hash, sequence number, content hash) to one of 256 key files
//!    by the id hash's top byte (32 bytes a record).
//! 2. [`decide`]: partition by partition (two at a time, on the rayon pool), the run's keys are
//!    sorted by (id, sequence) and merged with the lake's sorted index partition (streamed from
//!    disk), which decides every valid record and writes the partition's next version.
//! 3. [`SpilledRun::replay`]: the outcomes are read back in arrival order with their decisions.
//!
//! Memory: one partition's keys (a 256th of the run's valid records) per thread, two bits per
//! valid record for the decisions, and I/O buffers.
//!
//! Rejects are remembered by their 128-bit key (see [`crate::lake::reject_key`]) in a
//! [`RejectIndex`], so that a record rejected by an earlier run is not written to the lake's
//! rejects again (one key per reject of the lake: rejects are a small share of the records).

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::IngestError;
use crate::id_index::{IndexEntry, PARTITIONS, PartitionReader, PartitionWriter, id_hash, partition_of};
use crate::read::Parsed;
use crate::validate::{EventView, RejectReason};

/// What deduplication made of a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The id is new: the event is accepted.
    New,
    /// The id was accepted before with identical content.
    Duplicate,
    /// The id was accepted before with different content.
    Conflict,
}

impl Seen {
    fn code(self) -> u8 {
        match self {
            Seen::New => 0,
            Seen::Duplicate => 1,
            Seen::Conflict => 2,
        }
    }

    fn from_code(code: u8) -> Seen {
        match code {
            1 => Seen::Duplicate,
            2 => Seen::Conflict,
            _ => Seen::New,
        }
    }
}

/// One record's outcome as spilled: where it came from, its text, and what validation made of
/// it. It borrows its text, from the record when it is written and from the spill when it is
/// read back.
#[derive(Debug, Serialize, Deserialize)]
pub struct SpilledOutcome<'a> {
    /// Index of the input file in the run's file list.
    pub file: u32,
    /// The line the record starts on.
    pub line: u64,
    /// The record's text.
    pub raw: &'a str,
    /// The valid event, or the reason it was rejected.
    #[serde(borrow)]
    pub verdict: Verdict<'a>,
}

/// Validation's verdict on a record.
// Outcomes are decoded a block at a time and their events used where they were decoded: a box
// per event would cost an allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum Verdict<'a> {
    /// A valid event, still to be deduplicated.
    #[serde(borrow)]
    Valid(EventView<'a>),
    /// Rejected, with the reason of events.md.
    Invalid(&'a str),
}

/// A piece of a batch of records encoded for the spill, in the task that parsed it: its
/// outcomes one after another, each after its length, and the keys of its valid records.
pub struct EncodedPiece {
    records: u64,
    keys: Vec<(u128, u64)>,
    outcomes: Vec<u8>,
}

impl EncodedPiece {
    /// Encodes the parsed records of a piece of dump file `file`.
    pub fn encode(file: u32, parsed: &[Parsed<'_>]) -> Result<EncodedPiece, postcard::Error> {
        let mut keys = Vec::with_capacity(parsed.len());
        let mut outcomes = Vec::with_capacity(parsed.iter().map(|record| record.raw.len() * 2 + 16).sum());
        for record in parsed {
            let reason;
            let verdict = match &record.verdict {
                Ok(event) => {
                    keys.push((id_hash(&event.event_id), event.content_hash));
                    Verdict::Valid(event.view())
                }
                Err(rejected) => {
                    reason = rejected.to_string();
                    Verdict::Invalid(&reason)
                }
            };
            let outcome = SpilledOutcome { file, line: record.line, raw: record.raw, verdict };
            let start = outcomes.len();
            outcomes.extend_from_slice(&[0; 4]);
            outcomes = postcard::to_extend(&outcome, outcomes)?;
            let length = (outcomes.len() - start - 4) as u32;
            outcomes[start..start + 4].copy_from_slice(&length.to_le_bytes());
        }
        Ok(EncodedPiece { records: parsed.len() as u64, keys, outcomes })
    }

    /// Records in the piece.
    pub fn records(&self) -> u64 {
        self.records
    }
}

const KEY_BYTES: usize = 32;
const BUFFER_BYTES: usize = 1 << 16;

fn spill_io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Spill { path: path.to_owned(), source }
}

/// Phase 1: the run's outcomes and keys being written to a spill directory.
pub struct Spill {
    dir: PathBuf,
    outcomes: BufWriter<File>,
    keys: Vec<Option<BufWriter<File>>>,
    valid: u64,
}

impl Spill {
    /// Starts a spill in `dir` (created; its previous contents are removed).
    pub fn create(dir: &Path) -> Result<Spill, IngestError> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(spill_io(dir))?;
        }
        fs::create_dir_all(dir).map_err(spill_io(dir))?;
        let path = dir.join("outcomes.bin");
        let outcomes = BufWriter::with_capacity(BUFFER_BYTES * 4, File::create(&path).map_err(spill_io(&path))?);
        Ok(Spill { dir: dir.to_owned(), outcomes, keys: (0..PARTITIONS).map(|_| None).collect(), valid: 0 })
    }

    /// Appends the outcomes of a piece of records and the keys of its valid ones.
    pub fn push(&mut self, piece: EncodedPiece) -> Result<(), IngestError> {
        for (id, content_hash) in piece.keys {
            self.push_key(id, content_hash)?;
        }
        let path = self.dir.join("outcomes.bin");
        self.outcomes.write_all(&piece.outcomes).map_err(spill_io(&path))
    }

    /// Appends a key without an outcome (building an index from the lake's own events).
    fn push_key(&mut self, id: u128, content_hash: u64) -> Result<(), IngestError> {
        let partition = partition_of(id);
        let writer = match &mut self.keys[partition] {
            Some(writer) => writer,
            slot => {
                let path = key_path(&self.dir, partition);
                slot.insert(BufWriter::with_capacity(BUFFER_BYTES / 4, File::create(&path).map_err(spill_io(&path))?))
            }
        };
        let mut key = [0u8; KEY_BYTES];
        key[..16].copy_from_slice(&id.to_le_bytes());
        key[16..24].copy_from_slice(&self.valid.to_le_bytes());
        key[24..].copy_from_slice(&content_hash.to_le_bytes());
        self.valid += 1;
        // The path is formatted only for an error: this runs once per valid record.
        writer.write_all(&key).map_err(|source| IngestError::Spill { path: key_path(&self.dir, partition), source })
    }

    /// Closes the spill files.
    pub fn finish(self) -> Result<SpilledRun, IngestError> {
        let path = self.dir.join("outcomes.bin");
        self.outcomes.into_inner().map_err(|error| IngestError::Spill {
            path: path.clone(),
            source: std::io::Error::other(error.to_string()),
        })?;
        for (partition, writer) in self.keys.into_iter().enumerate() {
            if let Some(mut writer) = writer {
                let path = key_path(&self.dir, partition);
                writer.flush().map_err(spill_io(&path))?;
            }
        }
        Ok(SpilledRun { dir: self.dir, valid: self.valid })
    }
}

fn key_path(dir: &Path, partition: usize) -> PathBuf {
    dir.join(format!("keys-{partition:03}.bin"))
}

/// The keys of all rejects in the lake's rejects and of this run's.
#[derive(Debug, Default)]
pub struct RejectIndex {
    keys: HashSet<u128, BuildHasherDefault<PrehashedKey>>,
}

impl RejectIndex {
    /// Remembers a reject's key; `false` when it was known already.
    pub fn insert(&mut self, key: u128) -> bool {
        self.keys.insert(key)
    }

    /// Whether a reject's key is remembered.
    pub fn contains(&self, key: u128) -> bool {
        self.keys.contains(&key)
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The keys are already uniform 128-bit hashes: their low 64 bits serve as the table hash.
#[derive(Debug, Default)]
struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, value: u128) {
        self.0 = value as u64;
    }
}

/// A finished spill: read by [`decide`] and [`SpilledRun::replay`].
pub struct SpilledRun {
    dir: PathBuf,
    valid: u64,
}

/// The decision on every valid record of a run, two bits each, by sequence number.
pub struct Decisions {
    codes: Vec<AtomicU8>,
}

impl Decisions {
    fn new(valid: u64) -> Decisions {
        Decisions { codes: (0..valid.div_ceil(4)).map(|_| AtomicU8::new(0)).collect() }
    }

    fn set(&self, sequence: u64, seen: Seen) {
        let slot = &self.codes[(sequence / 4) as usize];
        slot.fetch_or(seen.code() << ((sequence % 4) * 2), Ordering::Relaxed);
    }

    fn get(&self, sequence: u64) -> Seen {
        let byte = self.codes[(sequence / 4) as usize].load(Ordering::Relaxed);
        Seen::from_code((byte >> ((sequence % 4) * 2)) & 0b11)
    }
}

/// Phase 2: decides every valid record of the run against `lake_index` (the lake's index
/// directory; `None`: an empty lake) and earlier records of the run, and writes the index with
/// the run's accepted ids into `next_index` when given.
pub fn decide(
    run: &SpilledRun,
    lake_index: Option<&Path>,
    next_index: Option<&Path>,
) -> Result<Decisions, IngestError> {
    let decisions = Decisions::new(run.valid);
    (0..PARTITIONS)
        .into_par_iter()
        .try_for_each(|partition| decide_partition(run, partition, lake_index, next_index, &decisions))?;
    Ok(decisions)
}

/// One partition: the run's keys sorted by (id, sequence), merged with the lake's entries.
fn decide_partition(
    run: &SpilledRun,
    partition: usize,
    lake_index: Option<&Path>,
    next_index: Option<&Path>,
    decisions: &Decisions,
) -> Result<(), IngestError> {
    let mut keys = read_keys(&key_path(&run.dir, partition))?;
    keys.sort_unstable_by_key(|&(id, sequence, _)| (id, sequence));
    let mut lake = PartitionReader::open(lake_index, partition)?;
    let mut writer = next_index.map(|dir| PartitionWriter::create(dir, partition)).transpose()?;
    let mut push = |entry: IndexEntry| writer.as_mut().map_or(Ok(()), |writer| writer.push(entry));
    let mut lake_entry = lake.next_entry()?;
    let mut start = 0;
    while start < keys.len() {
        let id = keys[start].0;
        while let Some(entry) = lake_entry.filter(|entry| entry.id < id) {
            push(entry)?;
            lake_entry = lake.next_entry()?;
        }
        let known = lake_entry.filter(|entry| entry.id == id);
        let mut first = known.map(|entry| entry.content_hash);
        let mut end = start;
        while end < keys.len() && keys[end].0 == id {
            let (_, sequence, content_hash) = keys[end];
            match first {
                None => first = Some(content_hash),
                Some(accepted) if accepted == content_hash => decisions.set(sequence, Seen::Duplicate),
                Some(_) => decisions.set(sequence, Seen::Conflict),
            }
            end += 1;
        }
        if known.is_some() {
            lake_entry = lake.next_entry()?;
        }
        push(IndexEntry { id, content_hash: first.unwrap_or_default() })?;
        start = end;
    }
    while let Some(entry) = lake_entry {
        push(entry)?;
        lake_entry = lake.next_entry()?;
    }
    writer.map_or(Ok(()), PartitionWriter::finish)
}

/// The (id hash, sequence, content hash) keys of one partition's spill file.
fn read_keys(path: &Path) -> Result<Vec<(u128, u64, u64)>, IngestError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(IngestError::Spill { path: path.to_owned(), source }),
    };
    Ok(bytes
        .chunks_exact(KEY_BYTES)
        .map(|key| {
            let mut id = [0u8; 16];
            let mut sequence = [0u8; 8];
            let mut content_hash = [0u8; 8];
            id.copy_from_slice(&key[..16]);
            sequence.copy_from_slice(&key[16..24]);
            content_hash.copy_from_slice(&key[24..]);
            (u128::from_le_bytes(id), u64::from_le_bytes(sequence), u64::from_le_bytes(content_hash))
        })
        .collect())
}

/// A record as phase 3 hands it on: where it came from and what became of it.
#[derive(Debug)]
pub struct Decided<'a> {
    /// Index of the input file in the run's file list.
    pub file: u32,
    /// The line the record starts on.
    pub line: u64,
    /// The record's text.
    pub raw: &'a str,
    /// What became of it.
    pub fate: Fate<'a>,
}

/// What became of a record.
// Handed on by value, a block of records at a time, like [`Verdict`].
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Fate<'a> {
    /// A valid event with a new id.
    Accepted(EventView<'a>),
    /// A valid event accepted before with the same content: dropped and counted.
    Duplicate,
    /// Rejected with this reason (`conflicting_duplicate` or validation's).
    Rejected(String),
}

impl SpilledRun {
    /// Phase 3: every record in arrival order with its fate, a block of [`REPLAY_BLOCK`]
    /// records at a time, decoded in parallel.
    pub fn replay(
        &self,
        decisions: &Decisions,
        mut on_block: impl FnMut(Vec<Decided<'_>>) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        let path = self.dir.join("outcomes.bin");
        let mut reader = BufReader::with_capacity(BUFFER_BYTES * 4, File::open(&path).map_err(spill_io(&path))?);
        let mut sequence = 0;
        let mut block = Vec::new();
        let mut ends = Vec::new();
        loop {
            read_block(&mut reader, &path, &mut block, &mut ends)?;
            if ends.is_empty() {
                return Ok(());
            }
            let starts = std::iter::once(0).chain(ends.iter().copied());
            let ranges: Vec<Range<usize>> = starts.zip(ends.iter().copied()).map(|(start, end)| start..end).collect();
            let outcomes: Vec<SpilledOutcome<'_>> = ranges
                .into_par_iter()
                .map(|range| postcard::from_bytes(&block[range]))
                .collect::<Result<_, _>>()
                .map_err(|error| IngestError::Spill { path: path.clone(), source: std::io::Error::other(error) })?;
            let mut decided = Vec::with_capacity(outcomes.len());
            for outcome in outcomes {
                let fate = match outcome.verdict {
                    Verdict::Valid(event) => {
                        sequence += 1;
                        match decisions.get(sequence - 1) {
                            Seen::New => Fate::Accepted(event),
                            Seen::Duplicate => Fate::Duplicate,
                            Seen::Conflict => Fate::Rejected(RejectReason::ConflictingDuplicate.to_string()),
                        }
                    }
                    Verdict::Invalid(reason) => Fate::Rejected(reason.to_owned()),
                };
                decided.push(Decided { file: outcome.file, line: outcome.line, raw: outcome.raw, fate });
            }
            on_block(decided)?;
        }
    }

    /// Removes the spill files.
    pub fn remove(self) -> Result<(), IngestError> {
        fs::remove_dir_all(&self.dir).map_err(spill_io(&self.dir))
    }
}

/// Records decoded in parallel at a time in phase 3.
const REPLAY_BLOCK: usize = 1 << 14;

/// Reads the next [`REPLAY_BLOCK`] encoded outcomes into `block`, one after another, and where
/// each ends into `ends` (empty at the end of the spill).
fn read_block(
    reader: &mut BufReader<File>,
    path: &Path,
    block: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Result<(), IngestError> {
    block.clear();
    ends.clear();
    let mut length = [0u8; 4];
    while ends.len() < REPLAY_BLOCK {
        match reader.read_exact(&mut length) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(source) => return Err(IngestError::Spill { path: path.to_owned(), source }),
        }
        let start = block.len();
        block.resize(start + u32::from_le_bytes(length) as usize, 0);
        reader.read_exact(&mut block[start..]).map_err(spill_io(path))?;
        ends.push(block.len());
    }
    Ok(())
}

/// Builds the index of a lake that has none (written before the index existed) from its event
/// files, into `dir`, with `spill` as scratch space: each file's ids are routed to the 256
/// partitions on disk, then each partition is sorted and written.
pub fn build_index(event_files: &[PathBuf], dir: &Path, spill: &Path) -> Result<(), IngestError> {
    use polars::prelude::*;
    let mut run = Spill::create(spill)?;
    for path in event_files {
        let file = File::open(path).map_err(|source| IngestError::LakeIo { path: path.clone(), source })?;
        let parquet_error = |source| IngestError::Parquet { path: path.clone(), source };
        let frame = ParquetReader::new(file)
            .with_columns(Some(vec!["event_id".to_owned(), "content_hash".to_owned()]))
            .finish()
            .map_err(parquet_error)?;
        let ids = frame.column("event_id").and_then(|column| column.str().cloned()).map_err(parquet_error)?;
        let hashes = frame.column("content_hash").and_then(|column| column.u64().cloned()).map_err(parquet_error)?;
        for (id, content_hash) in ids.iter().zip(hashes.iter()) {
            if let (Some(id), Some(content_hash)) = (id, content_hash) {
                run.push_key(id_hash(id), content_hash)?;
            }
        }
    }
    let run = run.finish()?;
    decide(&run, None, Some(dir))?;
    run.remove()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::TextFields;

    fn event(id: &str, content_hash: u64) -> Parsed<'_> {
        Parsed {
            line: 1,
            raw: "",
            verdict: Ok(crate::validate::Event {
                event_id: id.into(),
                event_type: crmkpi_schema::EventType::SiteVisited,
                occurred_at: 0,
                text: TextFields::default(),
                amount: None,
                score: None,
                content_hash,
            }),
        }
    }

    /// A run of the records, spilled in pieces of two.
    fn run_of(dir: &Path, records: &[(&str, u64)]) -> SpilledRun {
        let mut spill = Spill::create(dir).expect("spill");
        let parsed: Vec<Parsed<'_>> = records.iter().map(|(id, hash)| event(id, *hash)).collect();
        for piece in parsed.chunks(2) {
            spill.push(EncodedPiece::encode(0, piece).expect("encode")).expect("push");
        }
        spill.finish().expect("finish")
    }

    fn decisions_of(run: &SpilledRun, decisions: &Decisions) -> Vec<&'static str> {
        let mut fates = Vec::new();
        run.replay(decisions, |block| {
            fates.extend(block.iter().map(|record| match record.fate {
                Fate::Accepted(_) => "new",
                Fate::Duplicate => "duplicate",
                Fate::Rejected(_) => "conflict",
            }));
            Ok(())
        })
        .expect("replay");
        fates
    }

    #[test]
    fn a_reject_is_new_once() {
        let mut index = RejectIndex::default();
        assert!(index.insert(7));
        assert!(!index.insert(7));
        assert!(index.insert(8));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn first_accepted_wins_within_a_run_and_against_the_lake() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = run_of(&dir.path().join("spill1"), &[("e1", 7), ("e1", 7), ("e1", 8), ("e1", 7), ("e2", 8)]);
        let index = dir.path().join("index1");
        let decisions = decide(&first, None, Some(&index)).expect("decide");
        assert_eq!(decisions_of(&first, &decisions), ["new", "duplicate", "conflict", "duplicate", "new"]);
        // The next run sees the lake: e1 with 7 and e2 with 8 were accepted.
        let second = run_of(&dir.path().join("spill2"), &[("e2", 9), ("e3", 1), ("e1", 7), ("e3", 1)]);
        let decisions = decide(&second, Some(&index), Some(&dir.path().join("index2"))).expect("decide");
        assert_eq!(decisions_of(&second, &decisions), ["conflict", "new", "duplicate", "duplicate"]);
        let third = run_of(&dir.path().join("spill3"), &[("e3", 2), ("e1", 7)]);
        let decisions = decide(&third, Some(&dir.path().join("index2")), None).expect("decide");
        assert_eq!(decisions_of(&third, &decisions), ["conflict", "duplicate"]);
    }
}
