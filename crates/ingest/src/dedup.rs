//! Deduplication by `event_id` with memory bounded by a constant, whatever the size of the
//! lake and of the dump. A record with an id accepted before (in the lake, or earlier in the
//! run: files in path order, lines in file order) and the same content hash is a plain
//! duplicate, with another content a `conflicting_duplicate`; the first accepted one wins.
//!
//! One pass over the dump, then the few records it could not decide, instead of an in-memory
//! set of every id:
//! 1. While the dump is read, a [`SeenFilter`] holds the lake's ids and the ids of the run's
//!    valid records so far. A valid record whose id it has certainly not seen is new: it goes
//!    straight into the lake's new files (and is marked in [`Unseen`]). One it may have seen (a
//!    duplicate, an id repeated within its batch, or one of the filter's false positives) is a
//!    suspect, spilled as a [`SuspectRecord`]. Every valid record's (id hash, sequence number,
//!    content hash) goes to the key file, in blocks of one partition (by the id hash's top
//!    byte; 32 bytes a record) ([`Spill`]).
//! 2. [`decide`]: partition by partition (one per thread of the rayon pool), the run's keys are
//!    sorted by (id, sequence) and merged with the lake's index, which decides every valid
//!    record exactly and writes the run's segment of the next index: its new ids, merged with
//!    the lake's newest segments when they are no larger ([`segments_to_merge`]), read whole.
//!    The other segments are linked into the next index as they are, and looked up only for
//!    the suspects' ids (an id the filter had not seen is in no segment): a block of 64 entries
//!    found by the segment's fences. [`Unseen::check`] confirms every record written in phase 1
//!    was decided new (against the merged segments and the run).
//! 3. [`SpilledRun::replay_suspects`]: the suspects are read back in arrival order with their
//!    decisions; the new ones are added to the lake's files after the others.
//!
//! The filter of a run, which holds every id of the next index, is saved with it
//! ([`save_filter`]), naming the segments it covers, and loaded by the next run
//! ([`lake_filter`]). So a run neither reads every id of the lake to fill its filter nor writes
//! the index anew: it writes its own ids (plus the merges, about log2 of the number of runs per
//! id over the lake's life) and the filter (at most 128 MiB), and reads the filter, the
//! segments' fences (a 96th of their bytes) and the blocks of entries its suspects' ids fall in.
//!
//! Memory: the filter (at most 128 MiB; while its words are saved it overlaps the start of
//! phase 2), one partition's keys per thread (a 256th of the run's valid records, 40 bytes
//! each; twice while they are sorted, with their runs' starts, up to 2 MiB), the fences of the
//! partition being decided (16 bytes per 64 ids of each kept segment), three bits per valid
//! record for the decisions, and I/O buffers (64 KiB per segment merged).
//!
//! Rejects are remembered by their 128-bit key (see [`crate::lake::reject_key`]) in a
//! [`RejectIndex`], so that a record rejected by an earlier run is not written to the lake's
//! rejects again (one key per reject of the lake: rejects are a small share of the records).

use std::collections::HashSet;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::IngestError;
use crate::id_index::{
    FILTER_FILE, Index, IndexEntry, IndexWriter, OLDEST_SEGMENT, PARTITIONS, PartitionReader, PartitionWriter, Segment,
    SegmentProbe, id_hash, partition_of,
};
use crate::seen_filter::{SavingFilter, SeenFilter};
use crate::validate::EventView;

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

/// A valid record whose id the [`SeenFilter`] may have seen (a suspect), as spilled to be
/// decided once every id of the run is known. It borrows its text, from the record when it is
/// written and from the spill when it is read back.
#[derive(Debug, Serialize, Deserialize)]
pub struct SuspectRecord<'a> {
    /// Index of the input file in the run's file list.
    pub file: u32,
    /// The line the record starts on.
    pub line: u64,
    /// The record's text.
    pub raw: &'a str,
    /// The valid event.
    #[serde(borrow)]
    pub event: EventView<'a>,
}

impl SuspectRecord<'_> {
    /// The record encoded for the spill.
    pub fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_extend(self, Vec::with_capacity(self.raw.len() * 2 + 16))
    }
}

const KEY_BYTES: usize = 32;
const BUFFER_BYTES: usize = 1 << 16;

fn spill_io(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::Spill { path: path.to_owned(), source }
}

/// Keys of valid records in arrival order, (id hash, content hash), with the sequence number of
/// the first.
type KeyBatch = (u64, Vec<(u128, u64)>);

/// Phase 1: the keys of the run's valid records, and its suspects, being written to a spill
/// directory. The keys are written to their partitions' files on a thread of their own.
pub struct Spill {
    dir: PathBuf,
    suspects: BufWriter<File>,
    keys: Option<SyncSender<KeyBatch>>,
    key_writer: Option<JoinHandle<Result<KeyBlocks, IngestError>>>,
    valid: u64,
    suspect_count: u64,
}

impl Spill {
    /// Starts a spill in `dir` (created; its previous contents are removed).
    pub fn create(dir: &Path) -> Result<Spill, IngestError> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(spill_io(dir))?;
        }
        fs::create_dir_all(dir).map_err(spill_io(dir))?;
        let path = dir.join(SUSPECTS);
        let suspects = BufWriter::with_capacity(BUFFER_BYTES, File::create(&path).map_err(spill_io(&path))?);
        let (keys, received) = sync_channel(4);
        let key_dir = dir.to_owned();
        let key_writer = std::thread::Builder::new()
            .name("crmkpi-keys".to_owned())
            .spawn(move || write_keys(&key_dir, received))
            .map_err(spill_io(dir))?;
        Ok(Spill {
            dir: dir.to_owned(),
            suspects,
            keys: Some(keys),
            key_writer: Some(key_writer),
            valid: 0,
            suspect_count: 0,
        })
    }

    /// Appends the (id hash, content hash) keys of the run's next valid records (in arrival
    /// order) and returns the sequence number of the first.
    pub fn push_keys(&mut self, keys: Vec<(u128, u64)>) -> Result<u64, IngestError> {
        let first = self.valid;
        self.valid += keys.len() as u64;
        let sent = self.keys.as_ref().is_some_and(|sender| sender.send((first, keys)).is_ok());
        if !sent {
            // The writer stopped at an error: report it.
            self.finish_keys()?;
            return Err(IngestError::Spill {
                path: self.dir.clone(),
                source: std::io::Error::other("the key files were closed"),
            });
        }
        Ok(first)
    }

    /// Waits for every key to be written; where they are.
    fn finish_keys(&mut self) -> Result<KeyBlocks, IngestError> {
        self.keys = None;
        let stopped = |message: &str| IngestError::Spill {
            path: self.dir.join(KEYS),
            source: std::io::Error::other(message.to_owned()),
        };
        match self.key_writer.take().map(JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(stopped("the key writer panicked")),
            None => Err(stopped("the key file was closed already")),
        }
    }

    /// The spill file of the suspects.
    pub fn suspects_path(&self) -> PathBuf {
        self.dir.join(SUSPECTS)
    }

    /// Appends a suspect (see [`SuspectRecord::encode`]) with its sequence number.
    pub fn push_suspect(&mut self, sequence: u64, encoded: &[u8]) -> Result<(), IngestError> {
        let length = u32::try_from(encoded.len()).map_err(|_| IngestError::Spill {
            path: self.dir.join(SUSPECTS),
            source: std::io::Error::other(format!("a record of {} bytes", encoded.len())),
        })?;
        self.suspects
            .write_all(&sequence.to_le_bytes())
            .and_then(|()| self.suspects.write_all(&length.to_le_bytes()))
            .and_then(|()| self.suspects.write_all(encoded))
            .map_err(|source| IngestError::Spill { path: self.dir.join(SUSPECTS), source })?;
        self.suspect_count += 1;
        Ok(())
    }

    /// Closes the spill files.
    pub fn finish(mut self) -> Result<SpilledRun, IngestError> {
        let keys = self.finish_keys()?;
        let path = self.dir.join(SUSPECTS);
        self.suspects.flush().map_err(spill_io(&path))?;
        Ok(SpilledRun { dir: std::mem::take(&mut self.dir), valid: self.valid, suspects: self.suspect_count, keys })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        // An abandoned spill: the key writer is stopped; the caller removes the directory.
        let _ = self.finish_keys();
    }
}

/// Where a run's keys are in its key file: each partition's blocks (byte offset, length) in
/// order, and its number of keys.
#[derive(Debug, Default)]
struct KeyBlocks {
    blocks: Vec<Vec<(u64, usize)>>,
    counts: Vec<u64>,
}

/// Bytes of keys collected for a partition before they are written as a block.
const KEY_BLOCK: usize = 1 << 15;

/// The key writer: each batch of keys, numbered from its first sequence number, collected by
/// partition and appended to the one key file a block at a time.
fn write_keys(dir: &Path, batches: Receiver<KeyBatch>) -> Result<KeyBlocks, IngestError> {
    let path = dir.join(KEYS);
    // Blocks are written as they are: through a buffer, each was copied once more.
    let mut file = File::create(&path).map_err(spill_io(&path))?;
    let mut written = 0u64;
    let mut keys = KeyBlocks { blocks: vec![Vec::new(); PARTITIONS], counts: vec![0; PARTITIONS] };
    let mut buffers: Vec<Vec<u8>> = (0..PARTITIONS).map(|_| Vec::new()).collect();
    let mut write_block = |partition: usize, buffer: &mut Vec<u8>, keys: &mut KeyBlocks| {
        file.write_all(buffer).map_err(spill_io(&path))?;
        keys.blocks[partition].push((written, buffer.len()));
        written += buffer.len() as u64;
        buffer.clear();
        Ok::<(), IngestError>(())
    };
    for (first, batch) in batches {
        for (sequence, (id, content_hash)) in (first..).zip(batch) {
            let partition = partition_of(id);
            let mut key = [0u8; KEY_BYTES];
            key[..16].copy_from_slice(&id.to_le_bytes());
            key[16..24].copy_from_slice(&sequence.to_le_bytes());
            key[24..].copy_from_slice(&content_hash.to_le_bytes());
            let buffer = &mut buffers[partition];
            buffer.extend_from_slice(&key);
            keys.counts[partition] += 1;
            if buffer.len() >= KEY_BLOCK {
                write_block(partition, buffer, &mut keys)?;
            }
        }
    }
    for (partition, buffer) in buffers.iter_mut().enumerate() {
        if !buffer.is_empty() {
            write_block(partition, buffer, &mut keys)?;
        }
    }
    Ok(keys)
}

/// The spill file of the keys.
const KEYS: &str = "keys.bin";

/// The spill file of the suspects.
const SUSPECTS: &str = "suspects.bin";

/// The keys of all rejects in the lake's rejects and of this run's.
#[derive(Debug, Default)]
pub struct RejectIndex {
    keys: IdSet,
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

/// A set of 128-bit hashes (reject keys, event id hashes).
pub type IdSet = HashSet<u128, BuildHasherDefault<PrehashedKey>>;

/// The keys are already uniform 128-bit hashes: their low 64 bits serve as the table hash.
#[derive(Debug, Default)]
pub struct PrehashedKey(u64);

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

/// A finished spill: read by [`decide`] and [`SpilledRun::replay_suspects`].
pub struct SpilledRun {
    dir: PathBuf,
    valid: u64,
    /// The suspects spilled.
    suspects: u64,
    keys: KeyBlocks,
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

/// Where a run writes the next index: the index directory of its snapshot and the name of
/// the segment of its new ids there.
#[derive(Debug, Clone)]
pub struct NextIndex {
    /// The index directory.
    pub dir: PathBuf,
    /// The file name of the run's segment ([`crate::id_index::segment_name`]).
    pub segment: String,
}

/// Segments an index keeps at most: a run merges the newest ones beyond it.
const MAX_SEGMENTS: usize = 8;

/// How many of the lake's newest segments a run of `run_keys` valid records merges into its
/// own segment, given each segment's entries and whether it can be kept as it is (oldest
/// first): each one no larger than one and a half times what is merged so far (runs of similar
/// size are merged like the digits of a binary counter, so a lake of n runs keeps about
/// log2(n) segments and an id is written again about log2(n) times in all), any beyond
/// [`MAX_SEGMENTS`], and an index of the earlier format.
fn segments_to_merge(segments: &[(u64, bool)], run_keys: u64) -> usize {
    // Every segment from the oldest that cannot be kept on.
    let unkeepable = segments.iter().position(|(_, keepable)| !keepable).map_or(0, |oldest| segments.len() - oldest);
    let mut accumulated = run_keys;
    let mut merged = 0;
    for &(entries, _) in segments.iter().rev() {
        let unmerged = segments.len() - merged;
        let small = entries <= accumulated.saturating_add(accumulated / 2);
        if !(small || unmerged >= MAX_SEGMENTS || merged < unkeepable) {
            break;
        }
        accumulated = accumulated.saturating_add(entries);
        merged += 1;
    }
    merged
}

/// Phase 2: decides every valid record of the run against `lake_index` (the lake's index
/// directory; `None`: an empty lake) and earlier records of the run, and writes the next index
/// when given: a segment of the run's accepted ids merged with the lake's newest segments
/// ([`segments_to_merge`]), beside links to the others. `unseen` are the records written in
/// phase 1 (`None`: none known): their ids are in no segment of the lake, so the segments that
/// are not merged are looked up (by their fences) only for the others' ids; and the run is
/// counted as their number for the merge.
pub fn decide(
    run: &SpilledRun,
    lake_index: Option<&Path>,
    next_index: Option<&NextIndex>,
    unseen: Option<&Unseen>,
) -> Result<Decisions, IngestError> {
    let decisions = Decisions::new(run.valid);
    let lake = Index::open(lake_index)?;
    let sizes: Vec<(u64, bool)> =
        lake.segments().iter().map(|segment| (segment.len(), segment.is_keepable())).collect();
    let new_ids = unseen.map_or(run.valid, Unseen::len);
    let (kept, merged) = lake.segments().split_at(sizes.len() - segments_to_merge(&sizes, new_ids));
    let merged: Vec<&Segment> = merged.iter().collect();
    let capacities: Vec<u64> = (0..PARTITIONS)
        .map(|partition| {
            run.keys.counts[partition] + merged.iter().map(|segment| segment.partition_len(partition)).sum::<u64>()
        })
        .collect();
    let index = next_index.map(|next| IndexWriter::create(&next.dir, &next.segment, &capacities)).transpose()?;
    (0..PARTITIONS).into_par_iter().try_for_each_init(SortedKeys::default, |sorted, partition| {
        let lake = LakePartition {
            merged: PartitionReader::over(&merged, partition)?,
            kept: kept.iter().map(|segment| SegmentProbe::new(segment, partition)).collect(),
        };
        let writer = index.as_ref().map(|index| index.partition(partition));
        sorted.sort(&run.read_keys(partition)?);
        decide_partition(&sorted.keys, lake, writer, &decisions, unseen)
    })?;
    index.map_or(Ok(()), IndexWriter::finish)?;
    if let Some(next) = next_index {
        kept.iter().try_for_each(|segment| segment.link_into(&next.dir))?;
    }
    tracing::debug!(kept = kept.len(), merged = merged.len(), "the lake's index segments kept and merged");
    Ok(decisions)
}

/// One partition of the lake's index as a run decides it: the entries of the segments merged
/// into the run's (read through and written again), and the segments kept (looked up).
struct LakePartition<'a> {
    merged: PartitionReader,
    kept: Vec<SegmentProbe<'a>>,
}

impl LakePartition<'_> {
    /// The entry of `id` in a kept segment (ids ascending from call to call).
    fn find_kept(&mut self, id: u128) -> Result<Option<IndexEntry>, IngestError> {
        for probe in &mut self.kept {
            if let Some(entry) = probe.find(id)? {
                return Ok(Some(entry));
            }
        }
        Ok(None)
    }
}

/// One partition: the run's keys of the partition, sorted by (id, sequence), merged with the
/// lake's entries.
fn decide_partition(
    keys: &[(u128, u64, u64)],
    mut lake: LakePartition<'_>,
    mut writer: Option<PartitionWriter<'_>>,
    decisions: &Decisions,
    unseen: Option<&Unseen>,
) -> Result<(), IngestError> {
    let mut push = |entry: IndexEntry| writer.as_mut().map_or(Ok(()), |writer| writer.push(entry));
    let mut lake_entry = lake.merged.next_entry()?;
    let mut start = 0;
    while start < keys.len() {
        let (id, first_sequence, _) = keys[start];
        while let Some(entry) = lake_entry.filter(|entry| entry.id < id) {
            push(entry)?;
            lake_entry = lake.merged.next_entry()?;
        }
        let merged_known = lake_entry.filter(|entry| entry.id == id);
        // Kept segments are looked up unless there are none, or the id's first record of the
        // run was unseen: the filter had not seen its id, so the lake has not either.
        let kept_known = match merged_known {
            None if !lake.kept.is_empty() && unseen.is_none_or(|unseen| !unseen.contains(first_sequence)) => {
                lake.find_kept(id)?
            }
            _ => None,
        };
        let mut first = merged_known.or(kept_known).map(|entry| entry.content_hash);
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
        if merged_known.is_some() {
            lake_entry = lake.merged.next_entry()?;
        }
        // An id of a kept segment stays there.
        if kept_known.is_none() {
            push(IndexEntry { id, content_hash: first.unwrap_or_default() })?;
        }
        start = end;
    }
    while let Some(entry) = lake_entry {
        push(entry)?;
        lake_entry = lake.merged.next_entry()?;
    }
    writer.map_or(Ok(()), PartitionWriter::finish)
}

/// A partition's (id hash, sequence, content hash) keys sorted by id and sequence, in buffers
/// that a thread deciding partitions reuses: filled anew for each, they are not zeroed again
/// (which was 0.8% of an ingest's instructions).
#[derive(Debug, Default)]
struct SortedKeys {
    /// The keys of the partition sorted last.
    keys: Vec<(u128, u64, u64)>,
    /// Where each run ends once the keys are spread (see [`SortedKeys::sort`]).
    run_ends: Vec<u32>,
}

impl SortedKeys {
    /// Sorts `keys`: spread by the id's bits after the partition's byte into about as many
    /// runs as there are keys (8 to 18 bits), then each run of more than one key sorted on its
    /// own. Id hashes are uniform, so most runs hold one key or none: a comparison sort of runs
    /// of a few hundred keys each (one per value of the second byte) was half of deciding's
    /// time.
    fn sort(&mut self, keys: &[(u128, u64, u64)]) {
        let bits = (usize::BITS - keys.len().leading_zeros()).clamp(8, 18);
        let run_of = |id: u128| (id >> (120 - bits)) as usize & ((1 << bits) - 1);
        // Each run's keys counted, then each run's start (keys of a partition are counted in
        // u32: a partition's keys are held in memory, far fewer than 2^32); a run's start
        // becomes its end as its keys are put in place.
        let run_ends = &mut self.run_ends;
        run_ends.clear();
        run_ends.resize(1 << bits, 0);
        for &(id, _, _) in keys {
            run_ends[run_of(id)] += 1;
        }
        let mut start = 0;
        for count in run_ends.iter_mut() {
            let run_start = start;
            start += *count;
            *count = run_start;
        }
        // Every place up to `keys.len()` is written below: only places the buffer never had
        // are filled first.
        self.keys.resize(keys.len(), (0, 0, 0));
        for &key in keys {
            let end = &mut run_ends[run_of(key.0)];
            self.keys[*end as usize] = key;
            *end += 1;
        }
        let mut start = 0;
        for &end in run_ends.iter() {
            let end = end as usize;
            if end - start > 1 {
                self.keys[start..end].sort_unstable_by_key(|&(id, sequence, _)| (id, sequence));
            }
            start = end;
        }
    }
}

impl SpilledRun {
    /// The (id hash, sequence, content hash) keys of one partition.
    fn read_keys(&self, partition: usize) -> Result<Vec<(u128, u64, u64)>, IngestError> {
        let path = self.dir.join(KEYS);
        let file = File::open(&path).map_err(spill_io(&path))?;
        let mut keys = Vec::with_capacity(self.keys.counts[partition] as usize);
        let mut bytes = Vec::new();
        for &(offset, length) in &self.keys.blocks[partition] {
            bytes.resize(length, 0);
            file.read_exact_at(&mut bytes, offset).map_err(spill_io(&path))?;
            keys.extend(bytes.chunks_exact(KEY_BYTES).map(|key| {
                let (id, rest) = key.split_at(16);
                let (sequence, content_hash) = rest.split_at(8);
                (
                    u128::from_le_bytes(id.try_into().unwrap_or_default()),
                    u64::from_le_bytes(sequence.try_into().unwrap_or_default()),
                    u64::from_le_bytes(content_hash.try_into().unwrap_or_default()),
                )
            }));
        }
        Ok(keys)
    }
}

/// A suspect as phase 3 hands it on: where it came from and what became of it.
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

/// What became of a suspect.
// Handed on by value, a block of records at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Fate<'a> {
    /// A valid event with a new id (the filter's false positive, or the first of an id
    /// repeated within its batch).
    Accepted(EventView<'a>),
    /// A valid event accepted before with the same content: dropped and counted.
    Duplicate,
    /// A valid event accepted before with another content: a `conflicting_duplicate`.
    Conflict,
}

impl SpilledRun {
    /// The number of suspects spilled.
    pub fn suspects(&self) -> u64 {
        self.suspects
    }

    /// Phase 3: every suspect in arrival order with its fate, a block of [`REPLAY_BLOCK`]
    /// suspects at a time, decoded in parallel; all that were spilled, or an error.
    pub fn replay_suspects(
        &self,
        decisions: &Decisions,
        mut on_block: impl FnMut(Vec<Decided<'_>>) -> Result<(), IngestError>,
    ) -> Result<(), IngestError> {
        let path = self.dir.join(SUSPECTS);
        let mut reader = BufReader::with_capacity(BUFFER_BYTES * 4, File::open(&path).map_err(spill_io(&path))?);
        let mut block = Vec::new();
        let mut suspects = Vec::new();
        let mut replayed = 0;
        loop {
            read_block(&mut reader, &path, &mut block, &mut suspects)?;
            if suspects.is_empty() {
                if replayed != self.suspects {
                    let message = format!("{} suspects were spilled, {replayed} read back", self.suspects);
                    return Err(IngestError::Spill { path, source: std::io::Error::other(message) });
                }
                return Ok(());
            }
            replayed += suspects.len() as u64;
            let records: Vec<SuspectRecord<'_>> = suspects
                .par_iter()
                .map(|(_, range)| postcard::from_bytes(&block[range.clone()]))
                .collect::<Result<_, _>>()
                .map_err(|error| IngestError::Spill { path: path.clone(), source: std::io::Error::other(error) })?;
            let decided = records
                .into_iter()
                .zip(&suspects)
                .map(|(record, (sequence, _))| {
                    let fate = match decisions.get(*sequence) {
                        Seen::New => Fate::Accepted(record.event),
                        Seen::Duplicate => Fate::Duplicate,
                        Seen::Conflict => Fate::Conflict,
                    };
                    Decided { file: record.file, line: record.line, raw: record.raw, fate }
                })
                .collect();
            on_block(decided)?;
        }
    }

    /// Removes the file of the run's keys, which only [`decide`] reads (320 MB for 10M events:
    /// its pages in the page cache let go of one by one, 30 ms).
    pub fn remove_keys(&self) -> Result<(), IngestError> {
        let path = self.dir.join(KEYS);
        fs::remove_file(&path).map_err(spill_io(&path))
    }

    /// Removes the spill files.
    pub fn remove(self) -> Result<(), IngestError> {
        fs::remove_dir_all(&self.dir).map_err(spill_io(&self.dir))
    }
}

/// Suspects decoded in parallel at a time in phase 3.
const REPLAY_BLOCK: usize = 1 << 14;

/// Reads the next [`REPLAY_BLOCK`] suspects into `block`, one after another, and each one's
/// sequence number and place in the block into `suspects` (empty at the end of the spill).
fn read_block(
    reader: &mut BufReader<File>,
    path: &Path,
    block: &mut Vec<u8>,
    suspects: &mut Vec<(u64, Range<usize>)>,
) -> Result<(), IngestError> {
    block.clear();
    suspects.clear();
    let mut header = [0u8; 12];
    while suspects.len() < REPLAY_BLOCK {
        match reader.fill_buf() {
            // The end of the spill: only between two suspects.
            Ok([]) => break,
            Ok(_) => reader.read_exact(&mut header).map_err(spill_io(path))?,
            Err(source) => return Err(IngestError::Spill { path: path.to_owned(), source }),
        }
        let (sequence, length) = header.split_at(8);
        let sequence = u64::from_le_bytes(sequence.try_into().unwrap_or_default());
        let length = u32::from_le_bytes(length.try_into().unwrap_or_default()) as usize;
        let start = block.len();
        block.resize(start + length, 0);
        reader.read_exact(&mut block[start..]).map_err(spill_io(path))?;
        suspects.push((sequence, start..block.len()));
    }
    Ok(())
}

/// The valid records of a run written to the lake's files without waiting for [`decide`]
/// (their ids were certainly not seen), one bit each by sequence number.
#[derive(Debug, Default)]
pub struct Unseen {
    bits: Vec<u64>,
}

impl Unseen {
    /// How many records were written unseen.
    pub fn len(&self) -> u64 {
        self.bits.iter().map(|word| u64::from(word.count_ones())).sum()
    }

    /// Whether no record was written unseen.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether record `sequence` was written unseen.
    pub fn contains(&self, sequence: u64) -> bool {
        self.bits.get((sequence / 64) as usize).is_some_and(|word| word & (1 << (sequence % 64)) != 0)
    }

    /// Marks record `sequence` as written unseen.
    pub fn mark(&mut self, sequence: u64) {
        let word = (sequence / 64) as usize;
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        self.bits[word] |= 1 << (sequence % 64);
    }

    /// Checks that every record written unseen was decided new: the filter never misses an id
    /// it holds, so anything else is a bug, and the run must not commit.
    pub fn check(&self, decisions: &Decisions) -> Result<(), IngestError> {
        for (word, &bits) in self.bits.iter().enumerate() {
            let mut rest = bits;
            while rest != 0 {
                let sequence = word as u64 * 64 + u64::from(rest.trailing_zeros());
                if decisions.get(sequence) != Seen::New {
                    return Err(IngestError::UnseenDuplicate { sequence });
                }
                rest &= rest - 1;
            }
        }
        Ok(())
    }
}

/// The filter of every id in `lake_index` (`None`: an empty lake), for them and about
/// `run_ids` more: the one the lake's last run saved when it is large enough, else (also when
/// it cannot be read: a warning) one made anew from every id of the index.
pub fn lake_filter(lake_index: Option<&Path>, run_ids: u64) -> Result<SeenFilter, IngestError> {
    let index = Index::open(lake_index)?;
    let lake_ids: u64 = index.partition_counts().iter().sum();
    let wanted_bytes = SeenFilter::bytes_for(lake_ids.saturating_add(run_ids));
    if let Some(dir) = lake_index {
        // The saved filter only spares reading the index: one that cannot be read is made anew.
        match SeenFilter::load(&dir.join(FILTER_FILE)) {
            Ok(Some((_, covered))) if covered != index.coverage() => tracing::warn!(
                "the saved filter of the lake's event ids is of other segments than the index's ({covered:?}); \
                 the filter is made anew from the index"
            ),
            Ok(Some((saved, _))) if saved.bytes() >= wanted_bytes => {
                tracing::debug!(lake_ids, bytes = saved.bytes(), "loaded the filter of the lake's event ids");
                return Ok(saved);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("{error}; the filter is made anew from the index"),
        }
    }
    let filter = SeenFilter::for_ids(lake_ids.saturating_add(run_ids));
    (0..PARTITIONS).into_par_iter().try_for_each(|partition| {
        for segment in index.segments() {
            let mut reader = segment.reader(partition)?;
            while let Some(entry) = reader.next_entry()? {
                filter.insert(entry.id);
            }
        }
        Ok::<(), IngestError>(())
    })?;
    tracing::debug!(lake_ids, bytes = filter.bytes(), "made the filter of the lake's event ids");
    Ok(filter)
}

/// Starts saving the filter of a run (which holds the lake's ids and the run's) into the next
/// index, for the next run, and lets go of it; [`finish_filter`] ends the file once the index
/// is written.
pub fn save_filter(filter: SeenFilter, next_index: &NextIndex) -> Result<SavingFilter, IngestError> {
    fs::create_dir_all(&next_index.dir)
        .map_err(|source| IngestError::LakeIo { path: next_index.dir.clone(), source })?;
    filter.save(&next_index.dir.join(FILTER_FILE))
}

/// Ends the saved filter with what it covers: the segments of the next index [`decide`] wrote.
pub fn finish_filter(saving: SavingFilter, next_index: &NextIndex) -> Result<(), IngestError> {
    saving.finish(&Index::open(Some(&next_index.dir))?.coverage())
}

/// Builds the index of a lake that has none (written before the index existed) from its event
/// files, into `dir`, with `spill` as scratch space: each file's ids are routed to the 256
/// partitions on disk, then each partition is sorted and written as the oldest segment.
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
        let keys = ids
            .iter()
            .zip(hashes.iter())
            .filter_map(|(id, content_hash)| Some((id_hash(id?), content_hash?)))
            .collect();
        run.push_keys(keys)?;
    }
    let run = run.finish()?;
    let next = NextIndex { dir: dir.to_owned(), segment: OLDEST_SEGMENT.to_owned() };
    decide(&run, None, Some(&next), None)?;
    run.remove()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `(id, content hash)` keys, spilled.
    fn run_of(dir: &Path, records: &[(&str, u64)]) -> SpilledRun {
        let mut spill = Spill::create(dir).expect("spill");
        let (first, rest) = records.split_at(records.len() / 2);
        for (start, part) in [(0, first), (first.len(), rest)] {
            let keys = part.iter().map(|(id, content_hash)| (id_hash(id), *content_hash)).collect();
            assert_eq!(spill.push_keys(keys).expect("push"), start as u64);
        }
        spill.finish().expect("finish")
    }

    /// The next index in `dir`, its segment named after snapshot `snapshot`.
    fn next_in(dir: &Path, snapshot: &str) -> NextIndex {
        NextIndex { dir: dir.to_owned(), segment: crate::id_index::segment_name(snapshot) }
    }

    fn decisions_of(run: &SpilledRun, decisions: &Decisions) -> Vec<Seen> {
        (0..run.valid).map(|sequence| decisions.get(sequence)).collect()
    }

    /// Keys of a partition (ids of one top byte, some repeated with several sequences, a run
    /// of the second byte empty and another crowded) come out as a plain sort gives them.
    #[test]
    fn a_partitions_keys_sort_by_id_then_sequence() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(9);
        let mut keys: Vec<(u128, u64, u64)> = (0..20_000u64)
            .map(|sequence| {
                let second_byte = if sequence % 7 == 0 { 0x42 } else { rng.random_range(0..=0xffu128) & !1 };
                let id = 0x17 << 120 | second_byte << 112 | rng.random_range(0..50u128);
                (id, sequence, rng.random())
            })
            .collect();
        keys.reverse();
        let mut expected = keys.clone();
        expected.sort_unstable_by_key(|&(id, sequence, _)| (id, sequence));
        assert!(expected.windows(2).any(|pair| pair[0].0 == pair[1].0), "some ids repeat");
        // One buffer for every sort, as a thread deciding partitions reuses it: a larger
        // partition, then smaller ones, then larger ones again.
        let mut sorted = SortedKeys::default();
        let mut sorted_keys = |keys: Vec<(u128, u64, u64)>| {
            sorted.sort(&keys);
            sorted.keys.clone()
        };
        assert_eq!(sorted_keys(keys), expected);
        assert_eq!(sorted_keys(Vec::new()), Vec::new());
        // Uniform ids, as id hashes are, in partitions of every size the runs' bits take.
        for count in [1, 255, 256, 257, 5_000, 300_000, 7, 5_000, 4_999, 5_001, 300_001] {
            let mut keys: Vec<(u128, u64, u64)> =
                (0..count).map(|sequence| (0x17 << 120 | rng.random_range(0..1u128 << 120), sequence, 0)).collect();
            keys.extend(keys.clone().iter().step_by(3).map(|&(id, sequence, _)| (id, sequence + count, 1)));
            let mut expected = keys.clone();
            expected.sort_unstable_by_key(|&(id, sequence, _)| (id, sequence));
            assert_eq!(sorted_keys(keys), expected, "{count} keys");
        }
    }

    /// Runs of about one size are merged like a binary counter; a large run merges the small
    /// segments before it; the newest beyond the most kept are merged; an index of the earlier
    /// format is always merged.
    #[test]
    fn segments_are_merged_as_they_grow() {
        let mut segments: Vec<(u64, bool)> = Vec::new();
        let mut counts = Vec::new();
        for run in 0..16u64 {
            // Runs of 1,000 valid records, give or take a few.
            let run_keys = 1_000 + run % 3;
            let merged = segments_to_merge(&segments, run_keys);
            let entries =
                run_keys + segments[segments.len() - merged..].iter().map(|(entries, _)| entries).sum::<u64>();
            segments.truncate(segments.len() - merged);
            segments.push((entries, true));
            counts.push(segments.len());
        }
        // After 2^k runs, one segment; after 2^k - 1, k of them.
        assert_eq!(counts, [1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 1]);
        assert_eq!(segments, [(16_000 + 15, true)]);
        assert_eq!(segments_to_merge(&[(8_000, true), (1_000, true), (1_000, true)], 2_000), 2, "two small ones");
        assert_eq!(segments_to_merge(&[(8_000, true), (1_000, true)], 10_000), 2, "a large run merges all");
        assert_eq!(segments_to_merge(&[(8_000, true)], 1_000), 0);
        let many: Vec<(u64, bool)> = (0..MAX_SEGMENTS as u64).map(|n| (1 << (40 - n), true)).collect();
        assert_eq!(segments_to_merge(&many, 1), 1, "the newest beyond the most kept");
        assert_eq!(segments_to_merge(&[(1 << 40, false)], 1), 1, "the earlier format");
        assert_eq!(segments_to_merge(&[(1 << 40, false), (1 << 41, true), (1 << 30, true)], 1), 3, "and all after it");
        assert_eq!(segments_to_merge(&[(8_000, true), (1_000, true)], 0), 0, "a run of no new ids");
        assert_eq!(segments_to_merge(&[(8_000, true), (0, true)], 0), 1, "an empty segment");
        assert_eq!(segments_to_merge(&[], 1), 0);
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
        use Seen::{Conflict, Duplicate, New};
        let dir = tempfile::tempdir().expect("tempdir");
        let first = run_of(&dir.path().join("spill1"), &[("e1", 7), ("e1", 7), ("e1", 8), ("e1", 7), ("e2", 8)]);
        let index = next_in(&dir.path().join("index1"), "000001");
        let decisions = decide(&first, None, Some(&index), None).expect("decide");
        assert_eq!(decisions_of(&first, &decisions), [New, Duplicate, Conflict, Duplicate, New]);
        // The next run sees the lake: e1 with 7 and e2 with 8 were accepted.
        let second = run_of(&dir.path().join("spill2"), &[("e2", 9), ("e3", 1), ("e1", 7), ("e3", 1)]);
        let second_index = next_in(&dir.path().join("index2"), "000002");
        let decisions = decide(&second, Some(&index.dir), Some(&second_index), None).expect("decide");
        assert_eq!(decisions_of(&second, &decisions), [Conflict, New, Duplicate, Duplicate]);
        let third = run_of(&dir.path().join("spill3"), &[("e3", 2), ("e1", 7)]);
        let decisions = decide(&third, Some(&second_index.dir), None, None).expect("decide");
        assert_eq!(decisions_of(&third, &decisions), [Conflict, Duplicate]);
        // The lake's filter holds every id of the index.
        let filter = lake_filter(Some(&second_index.dir), 0).expect("filter");
        assert!(["e1", "e2", "e3"].iter().all(|id| filter.may_contain(id_hash(id))));
    }

    #[test]
    fn suspects_come_back_in_order_with_their_fates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut spill = Spill::create(&dir.path().join("spill")).expect("spill");
        let event = |id| crate::validate::Event {
            event_id: id,
            event_type: crmkpi_schema::EventType::SiteVisited,
            occurred_at: 0,
            text: crate::validate::TextFields::default(),
            amount: None,
            score: None,
            content_hash: 1,
        };
        // e1 written unseen; then e2 (a false positive), e1 again, e1 with other content.
        let records = [("e1", 1, false), ("e2", 1, true), ("e1", 1, true), ("e1", 2, true)];
        let mut unseen = Unseen::default();
        for (line, (id, content_hash, suspect)) in records.into_iter().enumerate() {
            let sequence = spill.push_keys(vec![(id_hash(id), content_hash)]).expect("push");
            if suspect {
                let record = SuspectRecord { file: 0, line: line as u64 + 1, raw: id, event: event(id) };
                spill.push_suspect(sequence, &record.encode().expect("encode")).expect("suspect");
            } else {
                unseen.mark(sequence);
            }
        }
        let run = spill.finish().expect("finish");
        let decisions = decide(&run, None, None, None).expect("decide");
        unseen.check(&decisions).expect("e1 was new");
        let mut fates = Vec::new();
        run.replay_suspects(&decisions, |block| {
            fates.extend(block.into_iter().map(|record| {
                let fate = match record.fate {
                    Fate::Accepted(event) => format!("new {}", event.event_id),
                    Fate::Duplicate => "duplicate".to_owned(),
                    Fate::Conflict => "conflict".to_owned(),
                };
                (record.line, fate)
            }));
            Ok(())
        })
        .expect("replay");
        assert_eq!(fates, [(2, "new e2".to_owned()), (3, "duplicate".to_owned()), (4, "conflict".to_owned())]);
        // Had the duplicate been written unseen, the check refuses the run.
        unseen.mark(2);
        assert!(matches!(unseen.check(&decisions), Err(IngestError::UnseenDuplicate { sequence: 2 })));
    }
}
