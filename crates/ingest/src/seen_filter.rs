//! A blocked Bloom filter of event id hashes: the ids the lake holds and the ids a run has
//! accepted so far. It answers "certainly not seen" or "maybe seen"; it never misses an id it
//! holds. Ingest writes an event whose id was certainly not seen straight into the lake's new
//! files, and spills the few others (real duplicates, and the filter's false positives) to be
//! decided exactly by [`crate::dedup::decide`] once every id of the run is known.
//!
//! Each id sets 4 bits in one 64-bit word, so a probe reads one cache line. The filter's size
//! is fixed when it is made, [`MIN_BITS`] to [`MAX_BITS`]: memory stays bounded whatever the
//! lake and the dump; past about 2^25 ids (33 million, 32 bits each in 128 MiB) the false positives (spilled,
//! decided exactly) grow: 1 or 2 in 100 records at 110 million ids.

use std::sync::atomic::{AtomicU64, Ordering};

/// Bits per id the filter aims for (a false positive rate of about 0.02%).
const BITS_PER_ID: u64 = 32;
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
        let bits = ids.saturating_mul(BITS_PER_ID).clamp(MIN_BITS, MAX_BITS).next_power_of_two();
        let words = (bits / 64) as usize;
        SeenFilter { words: (0..words).map(|_| AtomicU64::new(0)).collect(), mask: words as u64 - 1 }
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
    fn its_size_is_bounded() {
        assert_eq!(SeenFilter::for_ids(0).bytes(), (MIN_BITS / 8) as usize);
        assert_eq!(SeenFilter::for_ids(u64::MAX).bytes(), (MAX_BITS / 8) as usize);
        assert_eq!(SeenFilter::for_ids(1 << 20).bytes(), 4 << 20);
    }
}
