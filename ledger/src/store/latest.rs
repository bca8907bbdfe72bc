//! The newest value of state keys read or written lately, so that reads at
//! the tip (admission, the execution of the next block, the mempool's
//! re-checks after a commit) do not each seek in RocksDB.
//!
//! An entry says "at version `version`, this key holds this value (or
//! nothing)". The store updates every cached key a commit writes, under the
//! same lock that moves `version` to the new tip, so an entry is never older
//! than the tip. Reads at any other version go to the database.

use jmt::{KeyHash, OwnedValue, Version};
use std::collections::HashMap;
use std::sync::Mutex;

/// Entries held at most. Each is a key hash and an account-sized value,
/// about 150 bytes with the map's overhead: some 15 MB when full. When full,
/// the cache starts again empty.
pub(super) const LATEST_ENTRIES_MAX: usize = 100_000;
/// Bytes of values held at most (records may be up to the genesis's value
/// limit each): past it, the cache starts again empty too.
pub(super) const LATEST_BYTES_MAX: usize = 32 << 20;

#[derive(Debug)]
pub(super) struct LatestValues {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    version: Version,
    values: HashMap<KeyHash, Option<OwnedValue>>,
    /// Bytes of the values held.
    bytes: usize,
}

impl LatestValues {
    /// An empty cache for a store whose tip is at `version`.
    pub(super) fn new(version: Version) -> Self {
        LatestValues {
            inner: Mutex::new(Inner {
                version,
                values: HashMap::new(),
                bytes: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value of `key` at `version`: `None` when not known here (another
    /// version, or not cached), `Some(None)` when known to be absent.
    pub(super) fn get(&self, version: Version, key: &KeyHash) -> Option<Option<OwnedValue>> {
        let inner = self.lock();
        if inner.version != version {
            return None;
        }
        inner.values.get(key).cloned()
    }

    /// Remembers what the database held for `key` at `version`; ignored if
    /// the tip has moved since (a commit may have written the key).
    pub(super) fn remember(&self, version: Version, key: KeyHash, value: Option<OwnedValue>) {
        let mut inner = self.lock();
        if inner.version != version {
            return;
        }
        inner.insert(key, value);
    }

    /// After a commit: the tip is now `version`, and `writes` are the
    /// values the committed blocks wrote, oldest first.
    pub(super) fn committed<'a>(
        &self,
        version: Version,
        writes: impl IntoIterator<Item = (&'a KeyHash, &'a Option<OwnedValue>)>,
    ) {
        let mut inner = self.lock();
        inner.version = version;
        for (key, value) in writes {
            inner.insert(*key, value.clone());
        }
    }

    /// Forgets everything (after a write that bypassed the commit path).
    pub(super) fn clear(&self) {
        let mut inner = self.lock();
        inner.values.clear();
        inner.bytes = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().values.len()
    }
}

impl Inner {
    fn insert(&mut self, key: KeyHash, value: Option<OwnedValue>) {
        let size = value.as_ref().map_or(0, Vec::len);
        if self.values.len() >= LATEST_ENTRIES_MAX || self.bytes + size > LATEST_BYTES_MAX {
            self.values.clear();
            self.bytes = 0;
        }
        if let Some(old) = self.values.insert(key, value) {
            self.bytes -= old.map_or(0, |v| v.len());
        }
        self.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KeyHash {
        KeyHash([n; 32])
    }

    #[test]
    fn answers_only_at_its_version() {
        let c = LatestValues::new(5);
        assert_eq!(c.get(5, &key(1)), None);
        c.remember(5, key(1), Some(vec![1]));
        c.remember(5, key(2), None);
        assert_eq!(c.get(5, &key(1)), Some(Some(vec![1])));
        assert_eq!(c.get(5, &key(2)), Some(None));
        assert_eq!(c.get(4, &key(1)), None);
        assert_eq!(c.get(6, &key(1)), None);
    }

    #[test]
    fn a_commit_moves_the_version_and_overwrites_what_it_wrote() {
        let c = LatestValues::new(5);
        c.remember(5, key(1), Some(vec![1]));
        c.remember(5, key(2), Some(vec![2]));
        let w1 = (key(1), Some(vec![10]));
        let w3 = (key(3), None);
        c.committed(7, [(&w1.0, &w1.1), (&w3.0, &w3.1)]);
        assert_eq!(c.get(7, &key(1)), Some(Some(vec![10])));
        // Not written: still what it was.
        assert_eq!(c.get(7, &key(2)), Some(Some(vec![2])));
        assert_eq!(c.get(7, &key(3)), Some(None));
        assert_eq!(c.get(5, &key(1)), None);
    }

    #[test]
    fn a_read_that_raced_a_commit_is_not_remembered() {
        let c = LatestValues::new(5);
        // Read at 5 from the database; meanwhile block 6 wrote the key.
        let w = (key(1), Some(vec![6]));
        c.committed(6, [(&w.0, &w.1)]);
        c.remember(5, key(1), Some(vec![5]));
        assert_eq!(c.get(6, &key(1)), Some(Some(vec![6])));
        assert_eq!(c.get(5, &key(1)), None);
    }

    #[test]
    fn bounded_and_clearable() {
        let c = LatestValues::new(0);
        for i in 0..(LATEST_ENTRIES_MAX + 10) {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            c.remember(0, KeyHash(k), None);
        }
        assert!(c.len() <= LATEST_ENTRIES_MAX);
        assert!(c.len() > 0);
        c.clear();
        assert_eq!(c.len(), 0);
        // Large values: bounded by bytes as well.
        for i in 0..100u8 {
            c.remember(0, key(i), Some(vec![0; 1 << 20]));
            assert!(c.lock().bytes <= LATEST_BYTES_MAX);
        }
        assert!(c.len() <= LATEST_BYTES_MAX >> 20);
        // An overwrite counts the new size, not both.
        c.clear();
        c.remember(0, key(1), Some(vec![0; 10]));
        c.remember(0, key(1), Some(vec![0; 4]));
        assert_eq!(c.lock().bytes, 4);
    }
}
