//! The state tree's update: the one-pass update that `compute_update` uses
//! for blocks without deletions gives, version after version, the same
//! roots, values and proofs as the key-by-key update, whichever of the two
//! built the versions before it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeMap;

use jmt::{KeyHash, OwnedValue, Version};
use proptest::prelude::*;
use tally_ledger::hash::Hash;
use tally_ledger::state::{compute_update, MemoryTreeStore, Tree};

/// Keys from a small pool whose hashes share long prefixes, so that
/// updates split leaves, extend paths and land on existing leaves.
fn key(i: u8) -> KeyHash {
    let mut h = [0u8; 32];
    // Nibbles from {0, 1}: at most 4 keys per first nibble, and paths
    // that agree for many levels.
    for (bit, byte) in h.iter_mut().take(4).enumerate() {
        let a = (i >> (2 * bit)) & 1;
        let b = (i >> (2 * bit + 1)) & 1;
        *byte = (a << 4) | b;
    }
    h[31] = i;
    KeyHash(h)
}

const KEYS: u8 = 40;

/// One block's writes: each key set to a value, or deleted (`None`).
fn block() -> impl Strategy<Value = BTreeMap<KeyHash, Option<OwnedValue>>> {
    prop::collection::btree_map(
        (0..KEYS).prop_map(key),
        prop::option::weighted(0.9, prop::collection::vec(any::<u8>(), 0..40)),
        0..20,
    )
}

/// The key-by-key update (jmt's `put_value_set`): the reference.
fn reference_update(
    store: &MemoryTreeStore,
    writes: BTreeMap<KeyHash, Option<OwnedValue>>,
    version: Version,
) -> (Hash, jmt::storage::TreeUpdateBatch) {
    let (root, batch) = Tree::new(store).put_value_set(writes, version).unwrap();
    (Hash(root.0), batch)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn one_pass_update_matches_key_by_key(
        // A block with a deletion takes the key-by-key path: the next
        // one-pass update then runs on a tree the other path changed.
        blocks in prop::collection::vec(block(), 1..12),
    ) {
        let mut ours = MemoryTreeStore::new();
        let mut reference = MemoryTreeStore::new();
        // `audit`'s store: one version kept, stale nodes dropped.
        let mut latest = MemoryTreeStore::new();
        for (version, writes) in blocks.iter().enumerate() {
            let version = version as Version;
            let update = compute_update(&ours, writes.clone(), version).unwrap();
            let (root, batch) = reference_update(&reference, writes.clone(), version);
            prop_assert_eq!(update.root, root, "root at version {}", version);
            let latest_update = compute_update(&latest, writes.clone(), version).unwrap();
            prop_assert_eq!(latest_update.root, root, "audit root at version {}", version);
            ours.apply(&update.batch.node_batch);
            reference.apply(&batch.node_batch);
            latest.apply_latest(&latest_update.batch);
        }
        let last = blocks.len() as Version - 1;
        for version in 0..=last {
            let root = tally_ledger::state::root_at(&reference, version).unwrap();
            prop_assert_eq!(tally_ledger::state::root_at(&ours, version).unwrap(), root);
            for i in 0..KEYS {
                let (value, proof) = Tree::new(&ours).get_with_proof(key(i), version).unwrap();
                let (expected, _) = Tree::new(&reference).get_with_proof(key(i), version).unwrap();
                prop_assert_eq!(&value, &expected, "key {} at version {}", i, version);
                prop_assert!(proof
                    .verify(jmt::RootHash(root.0), key(i), value.as_deref())
                    .is_ok());
                if version == last {
                    let (now, _) = Tree::new(&latest).get_with_proof(key(i), last).unwrap();
                    prop_assert_eq!(&now, &expected, "audit's key {}", i);
                }
            }
        }
    }
}

/// A block that writes the only key of a one-key tree, and one that adds
/// keys beside it and below its path, through the one-pass update.
#[test]
fn one_pass_update_replaces_and_splits_a_leaf() {
    let mut store = MemoryTreeStore::new();
    let mut reference = MemoryTreeStore::new();
    let blocks: Vec<BTreeMap<KeyHash, Option<OwnedValue>>> = vec![
        [(key(5), Some(vec![1]))].into(),
        [(key(5), Some(vec![2]))].into(),
        [
            (key(5), Some(vec![3])),
            (key(7), Some(vec![4])),
            (key(21), Some(vec![5])),
        ]
        .into(),
        [(key(7), Some(vec![6])), (key(37), Some(vec![7]))].into(),
    ];
    for (version, writes) in blocks.into_iter().enumerate() {
        let version = version as Version;
        let update = compute_update(&store, writes.clone(), version).unwrap();
        let (root, batch) = reference_update(&reference, writes, version);
        assert_eq!(update.root, root, "version {version}");
        store.apply(&update.batch.node_batch);
        reference.apply(&batch.node_batch);
    }
    let (value, _) = Tree::new(&store).get_with_proof(key(5), 3).unwrap();
    assert_eq!(value, Some(vec![3]));
    let (value, _) = Tree::new(&store).get_with_proof(key(5), 1).unwrap();
    assert_eq!(value, Some(vec![2]));
}
