//! Hashes of the transactions whose signatures this node verified lately,
//! shared by the signature checker threads and the checks of proposed
//! blocks. A transaction's hash covers its signature, so a hash found here
//! is the same signed bytes, already verified: a gossiped batch that is
//! checked after the block holding its transactions, or a block that
//! arrives before its transactions reached the pool, is not verified a
//! second time. Only a verified signature puts a hash here; the oldest
//! hashes leave first beyond [`VERIFIED_TXS_MAX`].

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tally_ledger::Hash;

/// Hashes kept, at most: several seconds of transactions at the highest
/// rates measured, in about 5 MB.
pub const VERIFIED_TXS_MAX: usize = 1 << 16;

/// The shared record (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct VerifiedTxs(Arc<Mutex<Recent>>);

#[derive(Debug, Default)]
struct Recent {
    hashes: HashSet<Hash>,
    /// The same hashes, oldest first.
    order: VecDeque<Hash>,
}

impl VerifiedTxs {
    fn lock(&self) -> MutexGuard<'_, Recent> {
        // Each change keeps the two in step before the next can panic.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.lock().hashes.contains(hash)
    }

    /// For each of `hashes`, whether it is here (one lock for all).
    pub fn contains_each(&self, hashes: &[Hash]) -> Vec<bool> {
        let recent = self.lock();
        hashes.iter().map(|h| recent.hashes.contains(h)).collect()
    }

    /// Records `hashes` as verified: call only after their signatures
    /// verified.
    pub fn insert(&self, hashes: impl IntoIterator<Item = Hash>) {
        let mut recent = self.lock();
        for hash in hashes {
            if recent.hashes.insert(hash) {
                recent.order.push_back(hash);
            }
        }
        while recent.order.len() > VERIFIED_TXS_MAX {
            if let Some(old) = recent.order.pop_front() {
                recent.hashes.remove(&old);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(i: u64) -> Hash {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&i.to_be_bytes());
        Hash(bytes)
    }

    #[test]
    fn keeps_what_was_verified_and_forgets_the_oldest_first() {
        let verified = VerifiedTxs::default();
        assert!(verified.is_empty() && !verified.contains(&hash(0)));
        verified.insert((0..3).map(hash));
        // Again: no second entry.
        verified.insert([hash(1)]);
        assert_eq!(verified.len(), 3);
        assert_eq!(
            verified.contains_each(&[hash(0), hash(3), hash(2)]),
            [true, false, true]
        );
        let max = VERIFIED_TXS_MAX as u64;
        verified.insert((3..max + 2).map(hash));
        assert_eq!(verified.len(), VERIFIED_TXS_MAX);
        assert!(!verified.contains(&hash(0)) && !verified.contains(&hash(1)));
        assert!(verified.contains(&hash(2)) && verified.contains(&hash(max + 1)));
    }
}
