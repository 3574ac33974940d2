//! Deduplication by `event_id`: every accepted event's id is remembered with the hash of its
//! content. A later record with the same id and the same content is a plain duplicate (dropped
//! and counted), with other content a `conflicting_duplicate` (rejected): the first accepted
//! one wins.
//!
//! Memory: an id is kept as its 128-bit hash, 24 bytes per event plus table overhead; about
//! 350 MB for ten million events, independent of the events' size.
//!
//! Rejects are remembered the same way, by their 128-bit key (see
//! [`crate::lake::Reject::key`]), so that a record rejected by an earlier run is not written to
//! the lake's rejects again.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_128;

/// The outcome of offering an accepted record to the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The id is new: the event is accepted and remembered.
    New,
    /// The id was accepted before with identical content.
    Duplicate,
    /// The id was accepted before with different content.
    Conflict,
}

/// The ids of all accepted events (in the lake and in this run) with their content hashes.
#[derive(Debug, Default)]
pub struct EventIndex {
    content_by_id: HashMap<u128, u64, BuildHasherDefault<PrehashedKey>>,
}

impl EventIndex {
    /// Offers an accepted record; remembers it when its id is new.
    pub fn offer(&mut self, event_id: &str, content_hash: u64) -> Seen {
        match self.content_by_id.entry(xxh3_128(event_id.as_bytes())) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(content_hash);
                Seen::New
            }
            std::collections::hash_map::Entry::Occupied(slot) if *slot.get() == content_hash => Seen::Duplicate,
            std::collections::hash_map::Entry::Occupied(_) => Seen::Conflict,
        }
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.content_by_id.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.content_by_id.is_empty()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_accepted_wins() {
        let mut index = EventIndex::default();
        assert_eq!(index.offer("e1", 7), Seen::New);
        assert_eq!(index.offer("e1", 7), Seen::Duplicate);
        assert_eq!(index.offer("e1", 8), Seen::Conflict);
        assert_eq!(index.offer("e1", 7), Seen::Duplicate);
        assert_eq!(index.offer("e2", 8), Seen::New);
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn a_reject_is_new_once() {
        let mut index = RejectIndex::default();
        assert!(index.insert(7));
        assert!(!index.insert(7));
        assert!(index.insert(8));
        assert_eq!(index.len(), 2);
    }
}
