//! The lake's index of accepted event ids, on disk, part of every snapshot (`_index/`): each
//! accepted `event_id` as its 128-bit hash with the hash of its content. The index is a few
//! segments, each holding the ids of one or more runs (no id is in two segments), split into
//! 256 partitions by the id hash's top byte, each partition sorted by id hash. A run writes a
//! segment of its own new ids and hard-links the others from the snapshot it builds on, so its
//! cost follows the run, not the lake; segments are merged as they grow (see
//! [`crate::dedup::decide`]), so that a lake keeps a few. An ingest never holds the index in
//! memory: it streams one partition at a time (see [`crate::dedup`]).
//!
//! Segment format (`_index/segment-<snapshot>.bin`): the magic `CRMKIDX4`, then for each of
//! the 256 partitions its entries' byte offset in the file, count and fences' byte offset (u64
//! LE each), then the segment's content identity (the xxh3-128 of each partition's xxh3-64 of
//! its entries' bytes, u128 LE), then the partitions' entries, each the id hash (u128 LE) and the content hash (u64
//! LE), ascending by id hash, unique, then the partitions' fences: the id of every 64th entry
//! (u128 LE), so that an id is looked up by reading the one block of 64 entries it may be in. A
//! partition's entries and fences may be followed by unused bytes (a hole: their regions were
//! sized for the run's ids before their duplicates were known).
//!
//! Earlier lakes have one segment without fences named `_index/ids.bin` (`CRMKIDX2`: the
//! table without the fences' offsets and the identity; read under any name), or before that a file per partition (`part-000.bin`:
//! the magic `CRMKIDX1`, the entry count, the entries); both are read as they are and merged
//! into a segment by the next ingest, once. Every index directory a run writes holds a
//! `part-000.bin` that stops a crmkpi from before the one-file index, and no `ids.bin`, which a
//! crmkpi from before the segments would take for the whole index (without `ids.bin` it reads
//! the partition files, and stops at that one).

use std::fs::File;
use std::hash::Hasher;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use twox_hash::{XxHash3_64, XxHash3_128};

use crate::error::IngestError;

/// Number of partitions of the index (and of a run's spilled ids).
pub const PARTITIONS: usize = 256;
/// The directory of the index inside a snapshot.
pub const INDEX_DIR: &str = "_index";
/// The one segment of an index written before the segments.
const ONE_FILE_INDEX: &str = "ids.bin";
/// The name of the segment built for a lake from before the index (the oldest).
pub const OLDEST_SEGMENT: &str = "segment-000000.bin";
/// The filter of the ids of an index ([`crate::seen_filter::SeenFilter::save`]), in its
/// directory.
pub const FILTER_FILE: &str = "filter.bin";
/// The magic of a segment with fences (the format written).
const MAGIC: &[u8; 8] = b"CRMKIDX4";
/// The magic of a segment without fences: the one-file index, read as a segment.
const UNFENCED_MAGIC: &[u8; 8] = b"CRMKIDX2";
/// The magic of a partition file of the earlier format.
const PARTITION_MAGIC: &[u8; 8] = b"CRMKIDX1";
/// The magic of the `part-000.bin` written beside every index file: a crmkpi from before the
/// one-file index reads it as its first partition and stops at the bad magic, instead of
/// taking an index it cannot see as empty (and every event as new). This version reads
/// partition files only in a directory without segments.
const MOVED_MAGIC: &[u8; 8] = b"CRMKMOVD";
/// Bytes of an entry.
pub const ENTRY_BYTES: usize = 24;
/// Bytes of a segment's header: the magic, each partition's entries' offset, count and fences'
/// offset, and the segment's content identity.
const HEADER_BYTES: u64 = 8 + 24 * PARTITIONS as u64 + 16;
/// Bytes of the header of a segment without fences.
const UNFENCED_HEADER_BYTES: u64 = 8 + 16 * PARTITIONS as u64;
/// A partition's fences: the id of every [`FENCE_STEP`]th entry, from the first.
const FENCE_STEP: u64 = 64;
/// Bytes of a fence.
const FENCE_BYTES: usize = 16;
const BUFFER_BYTES: usize = 1 << 16;

/// One accepted event: its id hash and content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    /// xxh3-128 of the `event_id`.
    pub id: u128,
    /// Hash of the event's parsed content.
    pub content_hash: u64,
}

impl IndexEntry {
    fn to_bytes(self) -> [u8; ENTRY_BYTES] {
        let mut bytes = [0u8; ENTRY_BYTES];
        bytes[..16].copy_from_slice(&self.id.to_le_bytes());
        bytes[16..].copy_from_slice(&self.content_hash.to_le_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8; ENTRY_BYTES]) -> IndexEntry {
        let (id, content_hash) = bytes.split_at(16);
        IndexEntry {
            id: u128::from_le_bytes(id.try_into().unwrap_or_default()),
            content_hash: u64::from_le_bytes(content_hash.try_into().unwrap_or_default()),
        }
    }
}

/// The 128-bit hash an `event_id` is indexed by.
pub fn id_hash(event_id: &str) -> u128 {
    XxHash3_128::oneshot(event_id.as_bytes())
}

/// The partition of an id hash.
pub fn partition_of(id: u128) -> usize {
    (id >> 120) as usize
}

/// The file name of the segment a run writes into the snapshot named `snapshot`.
pub fn segment_name(snapshot: &str) -> String {
    format!("segment-{snapshot}.bin")
}

/// The file of partition `partition` of the earlier format in the index directory `dir`.
fn partition_path(dir: &Path, partition: usize) -> PathBuf {
    dir.join(format!("part-{partition:03}.bin"))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::LakeIo { path: path.to_owned(), source }
}

fn corrupt(path: &Path, what: &str) -> IngestError {
    IngestError::LakeIo { path: path.to_owned(), source: std::io::Error::other(format!("event id index: {what}")) }
}

/// Where a partition is in a segment file.
#[derive(Debug, Clone, Copy)]
struct PartitionPlace {
    /// Byte offset of its entries.
    offset: u64,
    /// Its entries.
    count: u64,
    /// Byte offset of its fences (`None`: a segment without fences).
    fences: Option<u64>,
}

/// A segment file's partitions and its content identity (`None`: a segment without fences).
fn read_table(path: &Path, file: &mut File) -> Result<(Vec<PartitionPlace>, Option<u128>), IngestError> {
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).map_err(io_error(path))?;
    let fenced = match &magic {
        MAGIC => true,
        UNFENCED_MAGIC => false,
        _ => return Err(corrupt(path, "not an event id index (bad magic)")),
    };
    let header_bytes = if fenced { HEADER_BYTES } else { UNFENCED_HEADER_BYTES };
    let mut table = vec![0u8; header_bytes as usize - magic.len()];
    file.read_exact(&mut table).map_err(io_error(path))?;
    let number = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().unwrap_or_default());
    let place_bytes = if fenced { 24 } else { 16 };
    let (places, identity) = table.split_at(place_bytes * PARTITIONS);
    let places = places
        .chunks_exact(place_bytes)
        .map(|place| PartitionPlace {
            offset: number(&place[..8]),
            count: number(&place[8..16]),
            fences: fenced.then(|| number(&place[16..24])),
        })
        .collect();
    Ok((places, fenced.then(|| u128::from_le_bytes(identity.try_into().unwrap_or_default()))))
}

/// The index of a lake: its segments, oldest first (none: an empty lake).
#[derive(Debug, Default)]
pub struct Index {
    segments: Vec<Segment>,
}

/// One segment of an index: a file of 256 sorted partitions, or the files of one partition each
/// of the earlier format.
#[derive(Debug)]
pub struct Segment {
    source: SegmentSource,
    /// Entries in each partition.
    counts: Vec<u64>,
}

#[derive(Debug)]
enum SegmentSource {
    /// A segment file, where each partition is in it, and its content identity (a hash of its
    /// entries; `None`: a segment without fences).
    File { path: PathBuf, places: Vec<PartitionPlace>, identity: Option<u128> },
    /// The directory of an index of the earlier format.
    PartitionFiles(PathBuf),
}

impl Index {
    /// The index in `dir` (`None`: no index, empty).
    pub fn open(dir: Option<&Path>) -> Result<Index, IngestError> {
        let Some(dir) = dir else { return Ok(Index::default()) };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let name = entry.map_err(io_error(dir))?.file_name().to_string_lossy().into_owned();
            if name == ONE_FILE_INDEX || (name.starts_with("segment-") && name.ends_with(".bin")) {
                names.push(name);
            }
        }
        // Oldest first: a one-file index is older than any segment, and a segment is named
        // after its snapshot (by number: names grow a digit past snapshot 999999).
        names.sort_by_key(|name| {
            let snapshot = name.trim_start_matches("segment-").trim_end_matches(".bin");
            (name != ONE_FILE_INDEX, snapshot.parse::<u64>().unwrap_or(u64::MAX), name.clone())
        });
        let mut segments =
            names.iter().map(|name| Segment::open_file(&dir.join(name))).collect::<Result<Vec<_>, _>>()?;
        if segments.is_empty() {
            // An index of the earlier format, or none (a new lake's empty index).
            let earlier = Segment::open_partition_files(dir)?;
            if !earlier.is_empty() {
                segments.push(earlier);
            }
        }
        Ok(Index { segments })
    }

    /// Its segments, oldest first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// What the index is, one segment a line: its file name, entries and content identity (a
    /// filter saved with the index names it: [`crate::dedup::lake_filter`]).
    pub fn coverage(&self) -> String {
        self.segments
            .iter()
            .map(|segment| match &segment.source {
                SegmentSource::File { path, identity, .. } => format!(
                    "{} {} {:032x}\n",
                    path.file_name().unwrap_or_default().to_string_lossy(),
                    segment.len(),
                    identity.unwrap_or_default()
                ),
                SegmentSource::PartitionFiles(_) => format!("partition files {}\n", segment.len()),
            })
            .collect()
    }

    /// The number of entries of each partition.
    pub fn partition_counts(&self) -> Vec<u64> {
        let mut counts = vec![0; PARTITIONS];
        for segment in &self.segments {
            counts.iter_mut().zip(&segment.counts).for_each(|(count, segment)| *count += segment);
        }
        counts
    }

    /// The entries of partition `partition` of every segment, in id order.
    pub fn partition(&self, partition: usize) -> Result<PartitionReader, IngestError> {
        PartitionReader::over(&self.segments.iter().collect::<Vec<_>>(), partition)
    }
}

impl Segment {
    fn open_file(path: &Path) -> Result<Segment, IngestError> {
        let mut file = File::open(path).map_err(io_error(path))?;
        let (places, identity) = read_table(path, &mut file)?;
        Ok(Segment {
            counts: places.iter().map(|place| place.count).collect(),
            source: SegmentSource::File { path: path.to_owned(), places, identity },
        })
    }

    fn open_partition_files(dir: &Path) -> Result<Segment, IngestError> {
        let counts = (0..PARTITIONS)
            .map(|partition| SegmentReader::open_partition_file(dir, partition).map(|reader| reader.remaining))
            .collect::<Result<_, _>>()?;
        Ok(Segment { source: SegmentSource::PartitionFiles(dir.to_owned()), counts })
    }

    /// The entries of partition `partition`.
    pub fn partition_len(&self, partition: usize) -> u64 {
        self.counts[partition]
    }

    /// Its entries.
    pub fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it can be linked into the next index as it is: a segment with fences (one of an
    /// earlier format is merged into a new segment by the next run, once).
    pub fn is_keepable(&self) -> bool {
        matches!(&self.source, SegmentSource::File { places, .. } if places.iter().all(|place| place.fences.is_some()))
    }

    /// Hard-links the segment file into the index directory `dir`, under its name.
    pub fn link_into(&self, dir: &Path) -> Result<(), IngestError> {
        match &self.source {
            SegmentSource::File { path, .. } if self.is_keepable() => {
                let to = dir.join(path.file_name().unwrap_or_default());
                std::fs::hard_link(path, &to).map_err(io_error(&to))
            }
            _ => Err(corrupt(dir, "a segment of an earlier format is merged, not linked")),
        }
    }

    /// Streams the entries of partition `partition` in id order.
    pub fn reader(&self, partition: usize) -> Result<SegmentReader, IngestError> {
        match &self.source {
            SegmentSource::File { path, places, .. } => {
                let mut file = File::open(path).map_err(io_error(path))?;
                file.seek(SeekFrom::Start(places[partition].offset)).map_err(io_error(path))?;
                Ok(SegmentReader {
                    path: path.clone(),
                    reader: Some(BufReader::with_capacity(BUFFER_BYTES, file)),
                    remaining: self.counts[partition],
                })
            }
            SegmentSource::PartitionFiles(dir) => SegmentReader::open_partition_file(dir, partition),
        }
    }
}

/// Streams the entries of one partition of one segment in id order.
pub struct SegmentReader {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    remaining: u64,
}

impl SegmentReader {
    /// Opens a partition file of the earlier format (a missing one is empty).
    fn open_partition_file(dir: &Path, partition: usize) -> Result<SegmentReader, IngestError> {
        let path = partition_path(dir, partition);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SegmentReader { path, reader: None, remaining: 0 });
            }
            Err(source) => return Err(IngestError::LakeIo { path, source }),
        };
        let mut reader = BufReader::with_capacity(BUFFER_BYTES, file);
        let mut header = [0u8; 16];
        reader.read_exact(&mut header).map_err(io_error(&path))?;
        if &header[..8] != PARTITION_MAGIC {
            return Err(corrupt(&path, "not an event id index partition (bad magic)"));
        }
        let remaining = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
        Ok(SegmentReader { path, reader: Some(reader), remaining })
    }

    /// The next entry, `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>, IngestError> {
        let Some(reader) = self.reader.as_mut().filter(|_| self.remaining > 0) else { return Ok(None) };
        let mut bytes = [0u8; ENTRY_BYTES];
        reader.read_exact(&mut bytes).map_err(io_error(&self.path))?;
        self.remaining -= 1;
        Ok(Some(IndexEntry::from_bytes(&bytes)))
    }
}

/// Looks ids up in one partition of one segment: by its fences (held once the first id is
/// looked up), reading the one block of [`FENCE_STEP`] entries an id may be in; in a segment
/// without fences, by reading its entries in order up to the id.
pub struct SegmentProbe<'a> {
    segment: &'a Segment,
    partition: usize,
    /// How it looks up, once an id was looked up.
    lookup: Option<Lookup>,
}

enum Lookup {
    Fenced {
        path: PathBuf,
        file: File,
        /// Byte offset of the partition's entries.
        offset: u64,
        count: u64,
        fences: Vec<u128>,
        /// The block read last: its number and entries.
        block: Option<(usize, Vec<IndexEntry>)>,
    },
    InOrder {
        reader: SegmentReader,
        head: Option<IndexEntry>,
    },
}

impl<'a> SegmentProbe<'a> {
    /// A probe of partition `partition` of `segment`.
    pub fn new(segment: &'a Segment, partition: usize) -> SegmentProbe<'a> {
        SegmentProbe { segment, partition, lookup: None }
    }

    /// The entry of `id`, if the segment holds it; `id` must not be lower than any id looked up
    /// before.
    pub fn find(&mut self, id: u128) -> Result<Option<IndexEntry>, IngestError> {
        let lookup = match &mut self.lookup {
            Some(lookup) => lookup,
            None => self.lookup.insert(Lookup::open(self.segment, self.partition)?),
        };
        lookup.find(id)
    }
}

impl Lookup {
    fn open(segment: &Segment, partition: usize) -> Result<Lookup, IngestError> {
        let count = segment.counts[partition];
        let fenced = match &segment.source {
            SegmentSource::File { path, places, .. } => {
                places[partition].fences.map(|fences| (path, places[partition], fences))
            }
            SegmentSource::PartitionFiles(_) => None,
        };
        let Some((path, place, fences_at)) = fenced else {
            let mut reader = segment.reader(partition)?;
            let head = reader.next_entry()?;
            return Ok(Lookup::InOrder { reader, head });
        };
        let file = File::open(path).map_err(io_error(path))?;
        let mut bytes = vec![0u8; count.div_ceil(FENCE_STEP) as usize * FENCE_BYTES];
        file.read_exact_at(&mut bytes, fences_at).map_err(io_error(path))?;
        let fences = bytes
            .chunks_exact(FENCE_BYTES)
            .map(|fence| u128::from_le_bytes(fence.try_into().unwrap_or_default()))
            .collect();
        Ok(Lookup::Fenced { path: path.clone(), file, offset: place.offset, count, fences, block: None })
    }

    fn find(&mut self, id: u128) -> Result<Option<IndexEntry>, IngestError> {
        match self {
            Lookup::Fenced { path, file, offset, count, fences, block } => {
                // The last block whose first id is not above `id`.
                let Some(number) = fences.partition_point(|fence| *fence <= id).checked_sub(1) else {
                    return Ok(None);
                };
                let entries = match block {
                    Some((read, entries)) if *read == number => entries,
                    _ => {
                        let first = number as u64 * FENCE_STEP;
                        let entries = (*count - first).min(FENCE_STEP) as usize;
                        let mut bytes = vec![0u8; entries * ENTRY_BYTES];
                        file.read_exact_at(&mut bytes, *offset + first * ENTRY_BYTES as u64).map_err(io_error(path))?;
                        let entries = bytes
                            .chunks_exact(ENTRY_BYTES)
                            .map(|entry| IndexEntry::from_bytes(entry.try_into().unwrap_or(&[0; ENTRY_BYTES])))
                            .collect();
                        &mut block.insert((number, entries)).1
                    }
                };
                Ok(entries.binary_search_by_key(&id, |entry| entry.id).ok().map(|at| entries[at]))
            }
            Lookup::InOrder { reader, head } => {
                while head.is_some_and(|entry| entry.id < id) {
                    *head = reader.next_entry()?;
                }
                Ok(head.filter(|entry| entry.id == id))
            }
        }
    }
}

/// Streams the entries of one partition of several segments in id order (their ids are
/// disjoint).
pub struct PartitionReader {
    /// Each segment's reader and its next entry.
    heads: Vec<(SegmentReader, Option<IndexEntry>)>,
    remaining: u64,
}

impl PartitionReader {
    /// The entries of partition `partition` of `segments`.
    pub fn over(segments: &[&Segment], partition: usize) -> Result<PartitionReader, IngestError> {
        let heads = segments
            .iter()
            .map(|segment| {
                let mut reader = segment.reader(partition)?;
                let head = reader.next_entry()?;
                Ok((reader, head))
            })
            .collect::<Result<_, IngestError>>()?;
        Ok(PartitionReader { heads, remaining: segments.iter().map(|segment| segment.counts[partition]).sum() })
    }

    /// The entries not read yet.
    pub fn len(&self) -> u64 {
        self.remaining
    }

    /// Whether every entry was read.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// The next entry, `None` at the end.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>, IngestError> {
        let next =
            self.heads.iter_mut().filter(|(_, head)| head.is_some()).min_by_key(|(_, head)| head.map(|entry| entry.id));
        let Some((reader, head)) = next else { return Ok(None) };
        let entry = *head;
        *head = reader.next_entry()?;
        self.remaining -= 1;
        Ok(entry)
    }
}

/// Writes a segment file: each partition into its own region (sized before it is written), its
/// fences into another, from several threads; then the table of where each partition is and
/// how many entries it has.
pub struct IndexWriter {
    path: PathBuf,
    file: File,
    /// Each partition's region: (byte offset, capacity in entries, byte offset of its fences).
    regions: Vec<(u64, u64, u64)>,
    counts: Vec<AtomicU64>,
    /// Each partition's xxh3-64 of its entries' bytes: the segment's content identity is the
    /// xxh3-128 of them.
    digests: Vec<AtomicU64>,
}

impl IndexWriter {
    /// Creates the segment file `name` in the index directory `dir`, with room for
    /// `capacities[p]` entries in partition `p`, and a first partition file of the earlier
    /// format that is not one (see [`MOVED_MAGIC`]).
    pub fn create(dir: &Path, name: &str, capacities: &[u64]) -> Result<IndexWriter, IngestError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let moved = partition_path(dir, 0);
        let mut stub = MOVED_MAGIC.to_vec();
        stub.extend_from_slice(&0u64.to_le_bytes());
        std::fs::write(&moved, stub).map_err(io_error(&moved))?;
        let path = dir.join(name);
        let file = File::create(&path).map_err(io_error(&path))?;
        let mut offset = HEADER_BYTES;
        let mut entries_at = Vec::with_capacity(PARTITIONS);
        for capacity in capacities {
            entries_at.push(offset);
            offset += capacity * ENTRY_BYTES as u64;
        }
        let regions = capacities
            .iter()
            .zip(entries_at)
            .map(|(capacity, entries_at)| {
                let region = (entries_at, *capacity, offset);
                offset += capacity.div_ceil(FENCE_STEP) * FENCE_BYTES as u64;
                region
            })
            .collect();
        Ok(IndexWriter {
            path,
            file,
            regions,
            counts: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect(),
            digests: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The writer of partition `partition`'s region.
    pub fn partition(&self, partition: usize) -> PartitionWriter<'_> {
        let (offset, capacity, fences_at) = self.regions[partition];
        PartitionWriter {
            index: self,
            partition,
            offset,
            capacity,
            count: 0,
            // Room for the entry that takes the buffer past BUFFER_BYTES (it is written then).
            buffer: Vec::with_capacity(BUFFER_BYTES + ENTRY_BYTES),
            fences_at,
            fences: Vec::with_capacity(capacity.div_ceil(FENCE_STEP) as usize * FENCE_BYTES),
            digest: XxHash3_64::new(),
        }
    }

    /// Writes the table (the snapshot's commit fsyncs the file).
    pub fn finish(self) -> Result<(), IngestError> {
        let mut header = Vec::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(MAGIC);
        let mut digests = Vec::with_capacity(PARTITIONS * 8);
        for (((offset, _, fences_at), count), digest) in self.regions.iter().zip(&self.counts).zip(&self.digests) {
            header.extend_from_slice(&offset.to_le_bytes());
            header.extend_from_slice(&count.load(Ordering::Relaxed).to_le_bytes());
            header.extend_from_slice(&fences_at.to_le_bytes());
            digests.extend_from_slice(&digest.load(Ordering::Relaxed).to_le_bytes());
        }
        header.extend_from_slice(&XxHash3_128::oneshot(&digests).to_le_bytes());
        self.file.write_all_at(&header, 0).map_err(io_error(&self.path))
    }
}

/// Starts the disk writing the bytes of `file` at `range`, without waiting for it:
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)` submits the writeback of the range's dirty pages
/// (and keeps them cached). The fsync that makes the file durable then finds less left to
/// write: 10M ids are a 240 MB segment, which the commit's fsync wrote at the end of the run
/// while the cores stood idle. Only a hint: when it fails, the fsync writes the range.
pub(crate) fn start_writeback(file: &File, range: std::ops::Range<u64>) {
    let (Ok(offset), Ok(length)) = (i64::try_from(range.start), i64::try_from(range.end.saturating_sub(range.start)))
    else {
        return;
    };
    if length == 0 {
        return;
    }
    // SAFETY: a system call on the descriptor of `file`, which stays open for the call; it
    // reads and writes no memory of this process.
    #[allow(unsafe_code)]
    let started = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, length, libc::SYNC_FILE_RANGE_WRITE) };
    if started != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "writeback not started ahead of the fsync");
    }
}

/// Writes one partition of an index file; entries must come in ascending id order, no more
/// than the region's capacity.
pub struct PartitionWriter<'a> {
    index: &'a IndexWriter,
    partition: usize,
    offset: u64,
    capacity: u64,
    count: u64,
    buffer: Vec<u8>,
    /// Byte offset of the partition's fences, and the fences so far.
    fences_at: u64,
    fences: Vec<u8>,
    /// The hash of the entries written so far.
    digest: XxHash3_64,
}

impl PartitionWriter<'_> {
    /// Appends an entry.
    pub fn push(&mut self, entry: IndexEntry) -> Result<(), IngestError> {
        if self.count == self.capacity {
            return Err(corrupt(&self.index.path, &format!("partition {} is over its capacity", self.partition)));
        }
        if self.count.is_multiple_of(FENCE_STEP) {
            self.fences.extend_from_slice(&entry.id.to_le_bytes());
        }
        self.count += 1;
        self.buffer.extend_from_slice(&entry.to_bytes());
        if self.buffer.len() >= BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        self.digest.write(&self.buffer);
        self.index.file.write_all_at(&self.buffer, self.offset).map_err(io_error(&self.index.path))?;
        self.offset += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the rest of the partition and its fences, records its count, and starts writing
    /// them to the disk.
    pub fn finish(mut self) -> Result<(), IngestError> {
        self.flush()?;
        self.index.file.write_all_at(&self.fences, self.fences_at).map_err(io_error(&self.index.path))?;
        let start = self.index.regions[self.partition].0;
        start_writeback(&self.index.file, start..self.offset);
        start_writeback(&self.index.file, self.fences_at..self.fences_at + self.fences.len() as u64);
        self.index.counts[self.partition].store(self.count, Ordering::Relaxed);
        self.index.digests[self.partition].store(self.digest.finish(), Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes an index holds and checks (the ids' hashes, the partitions' digests fed a
    /// buffer at a time, the filter's checksum fed a chunk at a time) are those lakes hold: an
    /// independent implementation of XXH3 gives the same, whatever the pieces' lengths.
    #[test]
    fn index_hashes_stay_those_lakes_hold() {
        let bytes: Vec<u8> = (0..200_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for length in 0..=300 {
            let event_id: String = (0..length).map(|n| char::from(b'a' + (n % 26) as u8)).collect();
            assert_eq!(id_hash(&event_id), xxhash_rust::xxh3::xxh3_128(event_id.as_bytes()), "an id of {length} bytes");
        }
        for piece in [1, 7, 64, 240, 241, 1024, 4096, BUFFER_BYTES] {
            let mut digest = XxHash3_64::new();
            let mut wide = XxHash3_128::new();
            for part in bytes.chunks(piece) {
                digest.write(part);
                wide.write(part);
            }
            assert_eq!(digest.finish(), xxhash_rust::xxh3::xxh3_64(&bytes), "pieces of {piece} bytes");
            assert_eq!(wide.finish_128(), xxhash_rust::xxh3::xxh3_128(&bytes), "pieces of {piece} bytes");
        }
    }

    fn entries(partition: u128, count: u128, step: u128) -> Vec<IndexEntry> {
        (0..count)
            .map(|id| IndexEntry { id: (partition << 120) | (id * step), content_hash: id as u64 ^ 0xabcd })
            .collect()
    }

    fn read(dir: &Path, partition: usize) -> Vec<IndexEntry> {
        let mut reader = Index::open(Some(dir)).expect("open").partition(partition).expect("partition");
        let mut read = Vec::new();
        while let Some(entry) = reader.next_entry().expect("entry") {
            read.push(entry);
        }
        assert!(reader.is_empty());
        read
    }

    /// Writes `partitions` (partition, entries) as segment `name` in `dir`.
    fn write_segment(dir: &Path, name: &str, partitions: &[(usize, &[IndexEntry])], spare: u64) {
        let mut capacities = vec![0; PARTITIONS];
        for (partition, entries) in partitions {
            capacities[*partition] = entries.len() as u64 + spare;
        }
        let writer = IndexWriter::create(dir, name, &capacities).expect("create");
        std::thread::scope(|scope| {
            for (partition, entries) in partitions {
                let writer = &writer;
                scope.spawn(move || {
                    let mut partition = writer.partition(*partition);
                    entries.iter().for_each(|entry| partition.push(*entry).expect("push"));
                    partition.finish().expect("finish");
                });
            }
        });
        writer.finish().expect("finish");
    }

    #[test]
    fn partitions_read_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (third, fourth) = (entries(3, 5000, 7919), entries(4, 10, 7919));
        // The third partition had room for more (duplicates found while it was written).
        write_segment(dir.path(), &segment_name("000001"), &[(3, &third), (4, &fourth)], 1000);
        assert_eq!(read(dir.path(), 3), third);
        assert_eq!(read(dir.path(), 4), fourth);
        assert_eq!(read(dir.path(), 5), []);
        // A crmkpi from before the one-file index reads partition files only: it stops at the
        // first one.
        let stub = std::fs::read(partition_path(dir.path(), 0)).expect("stub");
        assert_eq!(&stub[..8], MOVED_MAGIC);
        let mut capacities = vec![0; PARTITIONS];
        capacities[4] = 10;
        let full = IndexWriter::create(&dir.path().join("over"), "segment-x.bin", &capacities).expect("create");
        let mut over = full.partition(4);
        entries(4, 10, 1).into_iter().for_each(|entry| over.push(entry).expect("push"));
        assert!(over.push(IndexEntry { id: 1, content_hash: 1 }).is_err(), "beyond its capacity");
    }

    /// Writes `entries` of partition `partition` as a one-file index (no fences) in `dir`.
    fn write_one_file_index(dir: &Path, partition: usize, entries: &[IndexEntry]) {
        let mut bytes = UNFENCED_MAGIC.to_vec();
        for place in 0..PARTITIONS {
            let count = if place == partition { entries.len() as u64 } else { 0 };
            bytes.extend_from_slice(&UNFENCED_HEADER_BYTES.to_le_bytes());
            bytes.extend_from_slice(&count.to_le_bytes());
        }
        entries.iter().for_each(|entry| bytes.extend_from_slice(&entry.to_bytes()));
        std::fs::write(dir.join(ONE_FILE_INDEX), bytes).expect("write");
    }

    /// Segments of disjoint ids, a one-file index among them, are read as one index in id
    /// order, oldest first; the segments with fences are linked into the next index under their
    /// names, a one-file index is not (it is merged).
    #[test]
    fn segments_read_as_one_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let all = entries(7, 3000, 13);
        let (mut older, mut newer, mut oldest) = (Vec::new(), Vec::new(), Vec::new());
        for (n, entry) in all.iter().enumerate() {
            [&mut older, &mut newer, &mut oldest][n % 3].push(*entry);
        }
        write_segment(dir.path(), &segment_name("1000000"), &[(7, &newer), (8, &entries(8, 5, 1))], 3);
        write_segment(dir.path(), &segment_name("000004"), &[(7, &older)], 0);
        write_one_file_index(dir.path(), 7, &oldest);
        let index = Index::open(Some(dir.path())).expect("open");
        let sizes: Vec<u64> = index.segments().iter().map(Segment::len).collect();
        assert_eq!(sizes, [1000, 1000, 1005], "oldest first, snapshot 1000000 after 000004");
        let keepable: Vec<bool> = index.segments().iter().map(Segment::is_keepable).collect();
        assert_eq!(keepable, [false, true, true]);
        assert_eq!(index.partition_counts()[7], 3000);
        assert_eq!(read(dir.path(), 7), all);
        assert_eq!(read(dir.path(), 8), entries(8, 5, 1));
        let next = dir.path().join("next");
        std::fs::create_dir_all(&next).expect("next");
        assert!(index.segments()[0].link_into(&next).is_err(), "a one-file index is merged");
        index.segments()[1..].iter().try_for_each(|segment| segment.link_into(&next)).expect("link");
        let mut names: Vec<String> = std::fs::read_dir(&next)
            .expect("read")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["segment-000004.bin", "segment-1000000.bin"]);
    }

    /// Looking ids up in a segment, with fences or without, finds exactly the entries it holds:
    /// ids before the first, between entries, at each block's first and last entry, past the
    /// last, in an empty partition, and a partition of a whole number of blocks.
    #[test]
    fn a_probe_finds_exactly_the_entries_held() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Even ids: every odd id between them is missing.
        let held = entries(5, 64 * 3 + 17, 2);
        let whole_blocks = entries(6, 128, 2);
        write_segment(dir.path(), &segment_name("000001"), &[(5, &held), (6, &whole_blocks)], 40);
        let unfenced = dir.path().join("unfenced");
        std::fs::create_dir_all(&unfenced).expect("dir");
        write_one_file_index(&unfenced, 5, &held);
        for index_dir in [dir.path(), unfenced.as_path()] {
            let index = Index::open(Some(index_dir)).expect("open");
            let segment = &index.segments()[0];
            for (partition, held) in [(5u128, &held), (6, &whole_blocks), (9, &Vec::new())] {
                if partition == 6 && !segment.is_keepable() {
                    continue;
                }
                let mut probe = SegmentProbe::new(segment, partition as usize);
                let last = held.last().map_or(0, |entry| entry.id & ((1 << 120) - 1));
                for low in 0..last + 4 {
                    let id = (partition << 120) | low;
                    let expected = held.iter().find(|entry| entry.id == id).copied();
                    assert_eq!(probe.find(id).expect("find"), expected, "{id:#x} in partition {partition}");
                }
            }
            // Sparse lookups, far apart, with fences or without.
            let mut probe = SegmentProbe::new(segment, 5);
            for at in [0, 63, 64, 130, 191, 192, held.len() - 1] {
                assert_eq!(probe.find(held[at].id).expect("find"), Some(held[at]));
            }
        }
    }

    #[test]
    fn an_index_of_the_earlier_format_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let third = entries(3, 100, 7919);
        let mut bytes = PARTITION_MAGIC.to_vec();
        bytes.extend_from_slice(&(third.len() as u64).to_le_bytes());
        third.iter().for_each(|entry| bytes.extend_from_slice(&entry.to_bytes()));
        std::fs::write(partition_path(dir.path(), 3), bytes).expect("write");
        assert_eq!(read(dir.path(), 3), third);
        assert_eq!(read(dir.path(), 4), []);
        let index = Index::open(Some(dir.path())).expect("open");
        assert!(!index.segments()[0].is_keepable(), "merged, not linked");
    }

    /// A new lake's empty index has no segment; a directory with only the stub of a written
    /// index has lost its segments: an error, not an empty index.
    #[test]
    fn an_empty_index_has_no_segment() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Index::open(Some(dir.path())).expect("open").segments().is_empty());
        assert!(Index::open(None).expect("open").segments().is_empty());
        IndexWriter::create(dir.path(), &segment_name("000001"), &[0; PARTITIONS]).expect("create");
        std::fs::remove_file(dir.path().join(segment_name("000001"))).expect("remove the segment");
        assert!(Index::open(Some(dir.path())).is_err(), "the stub is not a partition");
    }

    /// The content identity differs between segments of the same name and size with other ids,
    /// so a filter saved for one is not taken for the other's.
    #[test]
    fn a_segments_identity_follows_its_entries() {
        let coverage = |step| {
            let dir = tempfile::tempdir().expect("tempdir");
            write_segment(dir.path(), &segment_name("000003"), &[(2, &entries(2, 100, step))], 0);
            Index::open(Some(dir.path())).expect("open").coverage()
        };
        assert_eq!(coverage(3), coverage(3));
        assert_ne!(coverage(3), coverage(5));
        assert!(coverage(3).starts_with("segment-000003.bin 100 "), "{}", coverage(3));
    }

    /// Starting the writeback is only a hint: any range (empty, past the end, beyond what the
    /// system call takes) leaves the file as it was, and a file written and synced after it
    /// reads back whole.
    #[test]
    fn starting_the_writeback_leaves_the_file_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment.bin");
        let bytes: Vec<u8> = (0..100_000u32).map(|n| (n % 251) as u8).collect();
        let file = File::create(&path).expect("create");
        file.write_all_at(&bytes, 0).expect("write");
        for range in [
            0..100_000,
            4096..8192,
            7..7,
            90_000..200_000,
            u64::MAX - 1..u64::MAX,
            std::ops::Range { start: 5, end: 3 },
        ] {
            start_writeback(&file, range);
        }
        file.sync_all().expect("sync");
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
    }
}
