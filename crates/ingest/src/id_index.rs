//! The lake's index of accepted event ids, on disk, part of every snapshot (`_index/`): each
//! accepted `event_id` as its 128-bit hash with the hash of its content, split into 256
//! partitions by the id hash's top byte, each partition sorted by id hash. An ingest never
//! holds the index in memory: it streams one partition at a time beside the run's own ids of
//! that partition (see [`crate::dedup`]) and writes the partition's next version into the
//! run's snapshot, committed atomically with the run.
//!
//! File format (`_index/ids.bin`): the magic `CRMKIDX2`, then for each of the 256 partitions
//! its entries' byte offset in the file and count (u64 LE each), then the partitions' entries,
//! each the id hash (u128 LE) and the content hash (u64 LE), ascending by id hash, unique. A
//! partition's region may be followed by unused bytes (a hole: it was sized for the run's ids
//! before their duplicates were known). One file instead of one per partition: creating 256
//! files per run cost more than writing them.
//!
//! Lakes written before this format have a file per partition (`_index/part-000.bin`: the
//! magic `CRMKIDX1`, the entry count, the entries); they are read as they are, and their next
//! ingest writes the single file, with a `part-000.bin` beside it that stops an older crmkpi.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::xxh3_128;

use crate::error::IngestError;

/// Number of partitions of the index (and of a run's spilled ids).
pub const PARTITIONS: usize = 256;
/// The directory of the index inside a snapshot.
pub const INDEX_DIR: &str = "_index";
/// The index file in [`INDEX_DIR`].
const INDEX_FILE: &str = "ids.bin";
const MAGIC: &[u8; 8] = b"CRMKIDX2";
/// The magic of a partition file of the earlier format.
const PARTITION_MAGIC: &[u8; 8] = b"CRMKIDX1";
/// The magic of the `part-000.bin` written beside every index file: a crmkpi from before the
/// one-file index reads it as its first partition and stops at the bad magic, instead of
/// taking an index it cannot see as empty (and every event as new). This version reads
/// `ids.bin` and never this file.
const MOVED_MAGIC: &[u8; 8] = b"CRMKMOVD";
/// Bytes of an entry.
pub const ENTRY_BYTES: usize = 24;
const HEADER_BYTES: u64 = 8 + 16 * PARTITIONS as u64;
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
    xxh3_128(event_id.as_bytes())
}

/// The partition of an id hash.
pub fn partition_of(id: u128) -> usize {
    (id >> 120) as usize
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

/// Where each partition's entries are in an index file: (byte offset, count).
type PartitionTable = [(u64, u64); PARTITIONS];

fn read_table(path: &Path, file: &mut File) -> Result<PartitionTable, IngestError> {
    let mut header = vec![0u8; HEADER_BYTES as usize];
    file.read_exact(&mut header).map_err(io_error(path))?;
    if &header[..8] != MAGIC {
        return Err(corrupt(path, "not an event id index (bad magic)"));
    }
    let mut table = [(0, 0); PARTITIONS];
    for (slot, bytes) in table.iter_mut().zip(header[8..].chunks_exact(16)) {
        let (offset, count) = bytes.split_at(8);
        *slot = (
            u64::from_le_bytes(offset.try_into().unwrap_or_default()),
            u64::from_le_bytes(count.try_into().unwrap_or_default()),
        );
    }
    Ok(table)
}

/// The number of entries of each partition of the index in `dir` (`None`: no index, all 0).
pub fn partition_counts(dir: Option<&Path>) -> Result<Vec<u64>, IngestError> {
    let Some(dir) = dir else { return Ok(vec![0; PARTITIONS]) };
    let path = dir.join(INDEX_FILE);
    match File::open(&path) {
        Ok(mut file) => Ok(read_table(&path, &mut file)?.iter().map(|(_, count)| *count).collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => (0..PARTITIONS)
            .map(|partition| PartitionReader::open_partition_file(dir, partition).map(|reader| reader.len()))
            .collect(),
        Err(source) => Err(IngestError::LakeIo { path, source }),
    }
}

/// Streams the entries of one partition in id order; no index (or a missing partition file of
/// the earlier format) is an empty partition.
pub struct PartitionReader {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    remaining: u64,
}

impl PartitionReader {
    /// Opens partition `partition` of the index in `dir` (`None`: no index, empty).
    pub fn open(dir: Option<&Path>, partition: usize) -> Result<PartitionReader, IngestError> {
        let empty = |path| Ok(PartitionReader { path, reader: None, remaining: 0 });
        let Some(dir) = dir else { return empty(PathBuf::new()) };
        let path = dir.join(INDEX_FILE);
        match File::open(&path) {
            Ok(mut file) => {
                let (offset, count) = read_table(&path, &mut file)?[partition];
                file.seek(SeekFrom::Start(offset)).map_err(io_error(&path))?;
                let reader = BufReader::with_capacity(BUFFER_BYTES, file);
                Ok(PartitionReader { path, reader: Some(reader), remaining: count })
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Self::open_partition_file(dir, partition),
            Err(source) => Err(IngestError::LakeIo { path, source }),
        }
    }

    /// Opens a partition file of the earlier format.
    fn open_partition_file(dir: &Path, partition: usize) -> Result<PartitionReader, IngestError> {
        let path = partition_path(dir, partition);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(PartitionReader { path, reader: None, remaining: 0 });
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
        Ok(PartitionReader { path, reader: Some(reader), remaining })
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
        let Some(reader) = self.reader.as_mut().filter(|_| self.remaining > 0) else { return Ok(None) };
        let mut bytes = [0u8; ENTRY_BYTES];
        reader.read_exact(&mut bytes).map_err(io_error(&self.path))?;
        self.remaining -= 1;
        Ok(Some(IndexEntry::from_bytes(&bytes)))
    }
}

/// Writes an index file: each partition into its own region (sized before it is written), from
/// several threads; then the table of where each partition is and how many entries it has.
pub struct IndexWriter {
    path: PathBuf,
    file: File,
    /// Each partition's region: (byte offset, capacity in entries).
    regions: Vec<(u64, u64)>,
    counts: Vec<AtomicU64>,
}

impl IndexWriter {
    /// Creates the index file in `dir`, with room for `capacities[p]` entries in partition `p`,
    /// and a first partition file of the earlier format that is not one (see [`MOVED_MAGIC`]).
    pub fn create(dir: &Path, capacities: &[u64]) -> Result<IndexWriter, IngestError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let moved = partition_path(dir, 0);
        let mut stub = MOVED_MAGIC.to_vec();
        stub.extend_from_slice(&0u64.to_le_bytes());
        std::fs::write(&moved, stub).map_err(io_error(&moved))?;
        let path = dir.join(INDEX_FILE);
        let file = File::create(&path).map_err(io_error(&path))?;
        let mut offset = HEADER_BYTES;
        let regions = capacities
            .iter()
            .map(|capacity| {
                let region = (offset, *capacity);
                offset += capacity * ENTRY_BYTES as u64;
                region
            })
            .collect();
        Ok(IndexWriter { path, file, regions, counts: (0..PARTITIONS).map(|_| AtomicU64::new(0)).collect() })
    }

    /// The writer of partition `partition`'s region.
    pub fn partition(&self, partition: usize) -> PartitionWriter<'_> {
        let (offset, capacity) = self.regions[partition];
        PartitionWriter { index: self, partition, offset, capacity, count: 0, buffer: Vec::with_capacity(BUFFER_BYTES) }
    }

    /// Writes the table (the snapshot's commit fsyncs the file).
    pub fn finish(self) -> Result<(), IngestError> {
        let mut header = Vec::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(MAGIC);
        for ((offset, _), count) in self.regions.iter().zip(&self.counts) {
            header.extend_from_slice(&offset.to_le_bytes());
            header.extend_from_slice(&count.load(Ordering::Relaxed).to_le_bytes());
        }
        self.file.write_all_at(&header, 0).map_err(io_error(&self.path))
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
}

impl PartitionWriter<'_> {
    /// Appends an entry.
    pub fn push(&mut self, entry: IndexEntry) -> Result<(), IngestError> {
        if self.count == self.capacity {
            return Err(corrupt(&self.index.path, &format!("partition {} is over its capacity", self.partition)));
        }
        self.count += 1;
        self.buffer.extend_from_slice(&entry.to_bytes());
        if self.buffer.len() >= BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IngestError> {
        self.index.file.write_all_at(&self.buffer, self.offset).map_err(io_error(&self.index.path))?;
        self.offset += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }

    /// Writes the rest of the partition and records its count.
    pub fn finish(mut self) -> Result<(), IngestError> {
        self.flush()?;
        self.index.counts[self.partition].store(self.count, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(partition: u128, count: u128) -> Vec<IndexEntry> {
        (0..count)
            .map(|id| IndexEntry { id: (partition << 120) | (id * 7919), content_hash: id as u64 ^ 0xabcd })
            .collect()
    }

    fn read(dir: &Path, partition: usize) -> Vec<IndexEntry> {
        let mut reader = PartitionReader::open(Some(dir), partition).expect("open");
        let mut read = Vec::new();
        while let Some(entry) = reader.next_entry().expect("entry") {
            read.push(entry);
        }
        read
    }

    #[test]
    fn partitions_read_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (third, fourth) = (entries(3, 5000), entries(4, 10));
        let mut capacities = vec![0; PARTITIONS];
        // The third partition had room for more (duplicates found while it was written).
        capacities[3] = 6000;
        capacities[4] = 10;
        let writer = IndexWriter::create(dir.path(), &capacities).expect("create");
        std::thread::scope(|scope| {
            for (partition, entries) in [(3, &third), (4, &fourth)] {
                let writer = &writer;
                scope.spawn(move || {
                    let mut partition = writer.partition(partition);
                    entries.iter().for_each(|entry| partition.push(*entry).expect("push"));
                    partition.finish().expect("finish");
                });
            }
        });
        writer.finish().expect("finish");
        assert_eq!(read(dir.path(), 3), third);
        assert_eq!(read(dir.path(), 4), fourth);
        assert_eq!(read(dir.path(), 5), []);
        // A crmkpi from before the one-file index reads partition files only: it stops at the
        // first one.
        std::fs::remove_file(dir.path().join(INDEX_FILE)).expect("remove");
        assert!(PartitionReader::open(Some(dir.path()), 0).is_err(), "the stub is not a partition");
        let full = IndexWriter::create(&dir.path().join("over"), &capacities).expect("create");
        let mut over = full.partition(4);
        entries(4, 10).into_iter().for_each(|entry| over.push(entry).expect("push"));
        assert!(over.push(IndexEntry { id: 1, content_hash: 1 }).is_err(), "beyond its capacity");
    }

    #[test]
    fn an_index_of_the_earlier_format_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let third = entries(3, 100);
        let mut bytes = PARTITION_MAGIC.to_vec();
        bytes.extend_from_slice(&(third.len() as u64).to_le_bytes());
        third.iter().for_each(|entry| bytes.extend_from_slice(&entry.to_bytes()));
        std::fs::write(partition_path(dir.path(), 3), bytes).expect("write");
        assert_eq!(read(dir.path(), 3), third);
        assert_eq!(read(dir.path(), 4), []);
    }
}
