//! A blocked Bloom filter of event id hashes: the ids the lake holds and the ids a run has
//! accepted so far. It answers "certainly not seen" or "maybe seen"; it never misses an id it
//! holds. Ingest writes an event whose id was certainly not seen straight into the lake's new
//! files, and spills the few others (real duplicates, and the filter's false positives) to be
//! decided exactly by [`crate::dedup::decide`] once every id of the run is known.
//!
//! Each id sets 4 bits in one 64-bit word, so a probe reads one cache line. The filter's size
//! is fixed when it is made, [`MIN_BITS`] to [`MAX_BITS`]: memory stays bounded whatever the
//! lake and the dump; past about 2^25 ids (33 million, 32 bits each in 128 MiB) the false
//! positives (spilled, decided exactly) grow: 1 or 2 in 100 records at 110 million ids.
//!
//! A run saves its filter with the index it commits (`_index/filter.bin`), naming the index's
//! segments (file name, entries, content identity), so that the next run loads it instead of
//! inserting every id of the lake again. A filter too small for the lake and the next dump, one
//! that names other segments than the index beside it, or one that cannot be read is made anew
//! from the index.

use std::fs::File;
use std::hash::Hasher;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use twox_hash::XxHash3_64;

use crate::error::IngestError;
use crate::id_index::start_writeback;

/// Bits per id the filter aims for (a false positive rate of about 0.02%).
const BITS_PER_ID: u64 = 32;
/// The magic of a filter's file.
const MAGIC: &[u8; 8] = b"CRMKFLT2";
/// Bytes of words read or written at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// The smallest filter: 8 KiB.
const MIN_BITS: u64 = 1 << 16;
/// The largest filter: 128 MiB.
const MAX_BITS: u64 = 1 << 30;

/// A blocked Bloom filter of 128-bit id hashes, safe to probe and fill from several threads.
pub struct SeenFilter {
    words: Vec<AtomicU64>,
    mask: u64,
}

impl SeenFilter {
    /// An empty filter sized for about `ids` ids.
    pub fn for_ids(ids: u64) -> SeenFilter {
        let words = SeenFilter::bytes_for(ids) / 8;
        // Every word written once, on every core, so that each page is mapped by one write
        // fault. Had the first probe of a page (a read) found it unmapped, it would have mapped
        // the shared zero page, and the first insert replaced that, which flushes the page from
        // every core's TLB: an interrupt to the other cores for every page (a hypervisor exit on
        // a virtual machine). 10M events into an empty lake: 124k -> 105k page faults, 1.56 ->
        // 1.20 s of system time (with the content hashes uncompressed).
        let words: Vec<AtomicU64> = (0..words).into_par_iter().map(|_| AtomicU64::new(0)).collect();
        SeenFilter { mask: words.len() as u64 - 1, words }
    }

    /// The size in bytes of a filter for about `ids` ids.
    pub fn bytes_for(ids: u64) -> usize {
        (ids.saturating_mul(BITS_PER_ID).clamp(MIN_BITS, MAX_BITS).next_power_of_two() / 8) as usize
    }

    /// The filter's size in bytes.
    pub fn bytes(&self) -> usize {
        self.words.len() * 8
    }

    /// The word of an id and the 4 bits it sets there (from independent parts of the hash).
    fn slot(&self, id: u128) -> (usize, u64) {
        let word = (id as u64) & self.mask;
        let bits = (id >> 64) as u64;
        let mask = (0..4).fold(0u64, |mask, bit| mask | 1 << ((bits >> (bit * 6)) & 63));
        (word as usize, mask)
    }

    /// Starts writing the filter to `path` and lets go of it: the magic, the number of words
    /// and the words (u64 LE). [`SavingFilter::finish`] adds the text of what it covers, known
    /// later, and the xxh3-64 of the words and the text (a filter that lost bits would let
    /// duplicates in unseen).
    pub fn save(self, path: &Path) -> Result<SavingFilter, IngestError> {
        let io_error = |source| IngestError::LakeIo { path: path.to_owned(), source };
        let mut writer = BufWriter::with_capacity(CHUNK_BYTES, File::create(path).map_err(io_error)?);
        writer.write_all(MAGIC).map_err(io_error)?;
        writer.write_all(&(self.words.len() as u64).to_le_bytes()).map_err(io_error)?;
        let mut checksum = XxHash3_64::new();
        let mut chunk = Vec::with_capacity(CHUNK_BYTES);
        for words in self.words.chunks(CHUNK_BYTES / 8) {
            chunk.clear();
            chunk.extend(words.iter().flat_map(|word| word.load(Ordering::Relaxed).to_le_bytes()));
            checksum.write(&chunk);
            writer.write_all(&chunk).map_err(io_error)?;
        }
        // The words go to the disk while the run's ids are decided ([`SavingFilter::finish`]
        // fsyncs the file).
        writer.flush().map_err(io_error)?;
        let written = writer.get_mut().stream_position().map_err(io_error)?;
        start_writeback(writer.get_ref(), 0..written);
        Ok(SavingFilter { path: path.to_owned(), writer, checksum })
    }

    /// The filter [`SeenFilter::save`] wrote to `path` and what it covers; `None` when there is
    /// no such file.
    pub fn load(path: &Path) -> Result<Option<(SeenFilter, String)>, IngestError> {
        let corrupt = |what: &str| IngestError::LakeIo {
            path: path.to_owned(),
            source: std::io::Error::other(format!("event id filter: {what}")),
        };
        let io_error = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => corrupt("the file ends early"),
            _ => IngestError::LakeIo { path: path.to_owned(), source },
        };
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error(source)),
        };
        let mut reader = BufReader::with_capacity(CHUNK_BYTES, file);
        let mut number = [0u8; 8];
        reader.read_exact(&mut number).map_err(io_error)?;
        if &number != MAGIC {
            return Err(corrupt("bad magic"));
        }
        reader.read_exact(&mut number).map_err(io_error)?;
        let words = u64::from_le_bytes(number);
        if !words.is_power_of_two() || !(MIN_BITS / 64..=MAX_BITS / 64).contains(&words) {
            return Err(corrupt(&format!("{words} words")));
        }
        let mut loaded = Vec::with_capacity(words as usize);
        let mut chunk = vec![0u8; CHUNK_BYTES];
        let mut checksum = XxHash3_64::new();
        while loaded.len() < words as usize {
            let bytes = CHUNK_BYTES.min((words as usize - loaded.len()) * 8);
            reader.read_exact(&mut chunk[..bytes]).map_err(io_error)?;
            checksum.write(&chunk[..bytes]);
            loaded.extend(
                chunk[..bytes]
                    .chunks_exact(8)
                    .map(|word| AtomicU64::new(u64::from_le_bytes(word.try_into().unwrap_or_default()))),
            );
        }
        reader.read_exact(&mut number).map_err(io_error)?;
        let covers_bytes = u64::from_le_bytes(number);
        if covers_bytes > CHUNK_BYTES as u64 {
            return Err(corrupt(&format!("a text of {covers_bytes} bytes")));
        }
        let mut covers = vec![0u8; covers_bytes as usize];
        reader.read_exact(&mut covers).map_err(io_error)?;
        checksum.write(&covers);
        let covers = String::from_utf8(covers).map_err(|_| corrupt("its text is not UTF-8"))?;
        reader.read_exact(&mut number).map_err(io_error)?;
        if u64::from_le_bytes(number) != checksum.finish() {
            return Err(corrupt("its checksum does not match its words and text"));
        }
        if reader.read(&mut [0u8; 1]).map_err(io_error)? != 0 {
            return Err(corrupt("bytes after the checksum"));
        }
        Ok(Some((SeenFilter { words: loaded, mask: words - 1 }, covers)))
    }

    /// Whether `id` may have been inserted (`false`: certainly not).
    pub fn may_contain(&self, id: u128) -> bool {
        let (word, mask) = self.slot(id);
        self.words[word].load(Ordering::Relaxed) & mask == mask
    }

    /// Loads the words of `ids`, so that inserting them next finds them in the cache. The loads
    /// are independent, so their cache misses overlap; an insert is a locked update, which
    /// waits for every load and store before it.
    pub fn load_words(&self, ids: impl Iterator<Item = u128>) {
        let loaded = ids.fold(0, |loaded, id| loaded ^ self.words[self.slot(id).0].load(Ordering::Relaxed));
        std::hint::black_box(loaded);
    }

    /// Inserts `id`; whether it may have been inserted before (`false`: certainly not). All
    /// of an id's bits are set by one atomic update of one word: of threads inserting the same
    /// id at once, all but the first find it inserted (ingest relies on that to find ids
    /// repeated within a batch).
    pub fn insert(&self, id: u128) -> bool {
        let (word, mask) = self.slot(id);
        self.words[word].fetch_or(mask, Ordering::Relaxed) & mask == mask
    }
}

/// A filter's file being written, its words written and the filter let go of
/// ([`SeenFilter::save`]).
pub struct SavingFilter {
    path: PathBuf,
    writer: BufWriter<File>,
    checksum: XxHash3_64,
}

impl SavingFilter {
    /// Ends the file with the text `covers` (what the filter holds the ids of), its length
    /// first (u64 LE), then the checksum; and makes it durable.
    pub fn finish(mut self, covers: &str) -> Result<(), IngestError> {
        let io_error = |source| IngestError::LakeIo { path: self.path.clone(), source };
        self.checksum.write(covers.as_bytes());
        self.writer.write_all(&(covers.len() as u64).to_le_bytes()).map_err(io_error)?;
        self.writer.write_all(covers.as_bytes()).map_err(io_error)?;
        self.writer.write_all(&self.checksum.finish().to_le_bytes()).map_err(io_error)?;
        let file = self.writer.into_inner().map_err(|error| io_error(error.into_error()))?;
        file.sync_data().map_err(io_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id_index::id_hash;

    #[test]
    fn an_inserted_id_is_always_found_and_few_others_are() {
        let filter = SeenFilter::for_ids(100_000);
        let ids: Vec<u128> = (0..100_000).map(|n| id_hash(&format!("ev-{n}"))).collect();
        assert!(ids.iter().all(|&id| !filter.may_contain(id)));
        let found_before = ids.iter().filter(|&&id| filter.insert(id)).count();
        assert!(found_before < 200, "{found_before} ids found before they were inserted");
        assert!(ids.iter().all(|&id| filter.may_contain(id)));
        let false_positives = (0..100_000).filter(|n| filter.may_contain(id_hash(&format!("other-{n}")))).count();
        // 32 bits per id: about 2 in 10,000; allow ten times that.
        assert!(false_positives < 200, "{false_positives} false positives of 100,000");
    }

    #[test]
    fn a_saved_filter_loads_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("filter.bin");
        assert!(SeenFilter::load(&path).expect("load").is_none(), "no file");
        // 4 MiB: the words go over several chunks.
        let filter = SeenFilter::for_ids(1 << 20);
        let ids: Vec<u128> = (0..50_000).map(|n| id_hash(&format!("ev-{n}"))).collect();
        for &id in &ids {
            filter.insert(id);
        }
        let words: Vec<u64> = filter.words.iter().map(|word| word.load(Ordering::Relaxed)).collect();
        filter.save(&path).expect("save").finish("segment-000001.bin 50000\n").expect("finish");
        let (loaded, covers) = SeenFilter::load(&path).expect("load").expect("a filter");
        assert_eq!(covers, "segment-000001.bin 50000\n");
        assert_eq!(loaded.bytes(), words.len() * 8);
        assert!(loaded.words.iter().zip(&words).all(|(left, right)| left.load(Ordering::Relaxed) == *right));
        assert!(ids.iter().all(|&id| loaded.may_contain(id)));
        // A truncated file is an error, not a smaller filter; so is a bit lost.
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 8]).expect("truncate");
        assert!(SeenFilter::load(&path).is_err());
        let mut flipped = bytes.clone();
        let set_byte = (16..bytes.len() - 8).find(|&at| bytes[at] != 0).expect("a bit set");
        flipped[set_byte] &= flipped[set_byte] - 1;
        std::fs::write(&path, &flipped).expect("flip");
        assert!(SeenFilter::load(&path).is_err());
        std::fs::write(&path, &bytes).expect("restore");
        assert!(SeenFilter::load(&path).is_ok());
        std::fs::write(&path, b"CRMKIDX2").expect("other");
        assert!(SeenFilter::load(&path).is_err());
    }

    #[test]
    fn its_size_is_bounded() {
        assert_eq!(SeenFilter::for_ids(0).bytes(), (MIN_BITS / 8) as usize);
        assert_eq!(SeenFilter::for_ids(u64::MAX).bytes(), (MAX_BITS / 8) as usize);
        assert_eq!(SeenFilter::for_ids(1 << 20).bytes(), 4 << 20);
    }
}
