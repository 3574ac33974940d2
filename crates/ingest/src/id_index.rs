//! The lake's index of accepted event ids, on disk, part of every snapshot (`_index/`): each
//! accepted `event_id` as its 128-bit hash with the hash of its content, split into 256
//! partitions by the id hash's top byte, each partition one file sorted by id hash. An ingest
//! never holds the index in memory: it streams one partition at a time beside the run's own
//! ids of that partition (see [`crate::dedup`]) and writes the partition's next version into the
//! run's snapshot, committed atomically with the run.
//!
//! File format of a partition: the magic `CRMKIDX1`, the entry count (u64 LE), then the entries,
//! each the id hash (u128 LE) and the content hash (u64 LE), ascending by id hash, unique.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_128;

use crate::error::IngestError;

/// Number of partitions of the index (and of a run's spilled ids).
pub const PARTITIONS: usize = 256;
/// The directory of the index inside a snapshot.
pub const INDEX_DIR: &str = "_index";
const MAGIC: &[u8; 8] = b"CRMKIDX1";
const ENTRY_BYTES: usize = 24;
const BUFFER_BYTES: usize = 1 << 16;

/// One accepted event: its id hash and content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexEntry {
    /// xxh3-128 of the `event_id`.
    pub id: u128,
    /// Hash of the event's parsed content.
    pub content_hash: u64,
}

/// The 128-bit hash an `event_id` is indexed by.
pub fn id_hash(event_id: &str) -> u128 {
    xxh3_128(event_id.as_bytes())
}

/// The partition of an id hash.
pub fn partition_of(id: u128) -> usize {
    (id >> 120) as usize
}

/// The file of partition `partition` in the index directory `dir`.
pub fn partition_path(dir: &Path, partition: usize) -> PathBuf {
    dir.join(format!("part-{partition:03}.bin"))
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IngestError + '_ {
    move |source| IngestError::LakeIo { path: path.to_owned(), source }
}

/// Streams the entries of one partition file in id order; a missing file is an empty partition.
pub struct PartitionReader {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    remaining: u64,
}

impl PartitionReader {
    /// Opens partition `partition` of the index in `dir` (`None`: no index, empty).
    pub fn open(dir: Option<&Path>, partition: usize) -> Result<PartitionReader, IngestError> {
        let Some(dir) = dir else {
            return Ok(PartitionReader { path: PathBuf::new(), reader: None, remaining: 0 });
        };
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
        if &header[..8] != MAGIC {
            return Err(IngestError::LakeIo {
                path,
                source: std::io::Error::other("not an event id index partition (bad magic)"),
            });
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
        let id = u128::from_le_bytes(bytes[..16].try_into().unwrap_or_default());
        let content_hash = u64::from_le_bytes(bytes[16..].try_into().unwrap_or_default());
        Ok(Some(IndexEntry { id, content_hash }))
    }
}

/// Writes one partition file; entries must come in ascending id order.
pub struct PartitionWriter {
    path: PathBuf,
    writer: BufWriter<File>,
    count: u64,
}

impl PartitionWriter {
    /// Creates partition `partition` in `dir`.
    pub fn create(dir: &Path, partition: usize) -> Result<PartitionWriter, IngestError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let path = partition_path(dir, partition);
        let file = File::create(&path).map_err(io_error(&path))?;
        let mut writer = BufWriter::with_capacity(BUFFER_BYTES, file);
        writer.write_all(MAGIC).and_then(|()| writer.write_all(&0u64.to_le_bytes())).map_err(io_error(&path))?;
        Ok(PartitionWriter { path, writer, count: 0 })
    }

    /// Appends an entry.
    pub fn push(&mut self, entry: IndexEntry) -> Result<(), IngestError> {
        self.count += 1;
        self.writer
            .write_all(&entry.id.to_le_bytes())
            .and_then(|()| self.writer.write_all(&entry.content_hash.to_le_bytes()))
            .map_err(io_error(&self.path))
    }

    /// Writes the count into the header and flushes (the snapshot's commit fsyncs the file).
    pub fn finish(self) -> Result<(), IngestError> {
        let path = self.path;
        let count = self.count;
        let mut file = self.writer.into_inner().map_err(|error| IngestError::LakeIo {
            path: path.clone(),
            source: std::io::Error::other(error.to_string()),
        })?;
        file.seek(SeekFrom::Start(8)).and_then(|_| file.write_all(&count.to_le_bytes())).map_err(io_error(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_reads_back_what_was_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let entries: Vec<IndexEntry> = (0..1000u128)
            .map(|id| IndexEntry { id: ((id * 7919) << 64) | id, content_hash: id as u64 ^ 0xabcd })
            .collect();
        let mut writer = PartitionWriter::create(dir.path(), 3).expect("create");
        for entry in &entries {
            writer.push(*entry).expect("push");
        }
        writer.finish().expect("finish");
        let mut reader = PartitionReader::open(Some(dir.path()), 3).expect("open");
        let mut read = Vec::new();
        while let Some(entry) = reader.next_entry().expect("entry") {
            read.push(entry);
        }
        assert_eq!(read, entries);
        let mut missing = PartitionReader::open(Some(dir.path()), 4).expect("open");
        assert_eq!(missing.next_entry().expect("entry"), None);
    }
}
