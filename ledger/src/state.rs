//! The authenticated state: accounts and records in a Jellyfish Merkle tree,
//! versioned by block height (genesis is version 0).
//!
//! Any [`jmt::storage::TreeReader`] can hold the tree: the RocksDB store in
//! production, [`MemoryTreeStore`] in tests and simulations.

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::storage::{LeafNode, Node, NodeBatch, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, Version};

/// What reads a state tree (the store, an overlay, memory).
pub use jmt::storage::TreeReader as StateReader;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::crypto::PublicKey;
use crate::encoding::{self, DecodeError};
use crate::hash::Hash;
use crate::types::{Block, Role, TX_BYTES_CAP};

/// SHA-256 as the state tree's hash function.
#[derive(Debug, Clone, Default)]
pub struct TreeHasher(Sha256);

impl jmt::SimpleHasher for TreeHasher {
    fn new() -> Self {
        TreeHasher(Sha256::new())
    }

    fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }

    fn finalize(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The tree Tally uses: JMT over SHA-256.
pub type Tree<'a, R> = JellyfishMerkleTree<'a, R, TreeHasher>;

/// The proof type of the state tree.
pub type StateProofInner = jmt::proof::SparseMerkleProof<TreeHasher>;

/// A key in the state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum StateKey {
    Account(PublicKey),
    /// A record in `owner`'s namespace; no account can write another's.
    Record {
        owner: PublicKey,
        key: Vec<u8>,
    },
    /// The governance state ([`crate::governance::Council`]).
    Council,
    /// A proposed change by id ([`crate::governance::ChangeRecord`]).
    Change(Hash),
    /// The validators of the next block ([`crate::membership::Validators`]).
    Validators,
    /// The validators of the block after the next.
    NextValidators,
    /// The replicas allowed to connect ([`crate::membership::Replicas`]).
    Replicas,
}

impl StateKey {
    /// The tree position of this key: SHA-256 of its encoding.
    pub fn key_hash(&self) -> KeyHash {
        KeyHash(Hash::digest(&encoding::encode(self)).0)
    }
}

/// What the state holds for an account.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct AccountState {
    pub role: Role,
    /// False once revoked: the account keeps its state but cannot transact.
    pub active: bool,
    pub balance: u64,
    /// The nonce of the account's last transaction (0 before the first).
    pub nonce: u64,
}

impl AccountState {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, 64, "account state")
    }
}

/// A storage failure while reading or writing state. Fatal for the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state storage failed: {0}")]
    Storage(String),
    #[error("stored state is corrupt: {0}")]
    Corrupt(String),
}

impl From<anyhow::Error> for StateError {
    fn from(e: anyhow::Error) -> Self {
        StateError::Storage(format!("{e:#}"))
    }
}

/// The result of executing a block: the new root and what to write.
#[derive(Debug, Clone)]
pub struct StateUpdate {
    pub version: Version,
    pub root: Hash,
    pub batch: TreeUpdateBatch,
    /// The block's transaction hashes in order, when the code that checked
    /// or built the block computed them: committing the block reuses them
    /// instead of hashing every transaction again. Empty when not known;
    /// read them with [`StateUpdate::tx_hashes_of`].
    pub tx_hashes: Vec<Hash>,
}

impl StateUpdate {
    /// The hashes of `block`'s transactions: the ones this update carries
    /// when they are the block's (one for each transaction), else computed
    /// now.
    pub fn tx_hashes_of(&self, block: &Block) -> Cow<'_, [Hash]> {
        if self.tx_hashes.len() == block.txs.len() {
            Cow::Borrowed(&self.tx_hashes)
        } else {
            Cow::Owned(block.tx_hashes())
        }
    }
}

/// Reads `key` as of `version` (the newest value at or below it).
pub fn read<R: TreeReader>(
    reader: &R,
    key: &StateKey,
    version: Version,
) -> Result<Option<OwnedValue>, StateError> {
    Ok(reader.get_value_option(version, key.key_hash())?)
}

/// Reads an account as of `version`.
pub fn read_account<R: TreeReader>(
    reader: &R,
    account: &PublicKey,
    version: Version,
) -> Result<Option<AccountState>, StateError> {
    read(reader, &StateKey::Account(*account), version)?
        .map(|b| AccountState::decode(&b).map_err(|e| StateError::Corrupt(e.to_string())))
        .transpose()
}

/// The state root at `version`.
pub fn root_at<R: TreeReader>(reader: &R, version: Version) -> Result<Hash, StateError> {
    Ok(Hash(Tree::new(reader).get_root_hash(version)?.0))
}

/// Applies `writes` on top of `version - 1` (or the empty tree for
/// version 0) and returns the root and the nodes to persist.
///
/// When every write sets a value (the usual block), the tree is updated in
/// one pass over the sorted keys: each changed node is built and hashed
/// once. Key by key, a node is rebuilt and rehashed for every key below
/// it. A tree's root depends on its keys and values only, so both give the
/// same root; deletions, and an empty set, take the key-by-key path.
pub fn compute_update<R: TreeReader>(
    reader: &R,
    writes: BTreeMap<KeyHash, Option<OwnedValue>>,
    version: Version,
) -> Result<StateUpdate, StateError> {
    let tree = Tree::new(reader);
    let (root, batch) = if !writes.is_empty() && writes.values().all(Option::is_some) {
        let puts: Vec<(KeyHash, OwnedValue)> = writes
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| (key, v)))
            .collect();
        let (roots, batch) = tree.batch_put_value_sets(vec![puts], None, version)?;
        let root = roots
            .first()
            .copied()
            .ok_or_else(|| StateError::Corrupt("the state tree gave no root".into()))?;
        (root, batch)
    } else {
        tree.put_value_set(writes, version)?
    };
    Ok(StateUpdate {
        version,
        root: Hash(root.0),
        batch,
        tx_hashes: Vec::new(),
    })
}

/// A proof that a key has a value, or has none, under a state root.
#[derive(Debug, Clone, PartialEq, BorshSerialize, BorshDeserialize)]
pub struct StateProof(pub StateProofInner);

/// A proof's encoding is never larger than this (257 nodes of 33 bytes, and
/// a leaf).
pub const STATE_PROOF_BYTES_MAX: usize = 257 * 33 + 128;

impl StateProof {
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, STATE_PROOF_BYTES_MAX, "state proof")
    }
}

/// Reads `key` at `version` with a proof against that version's root.
pub fn get_with_proof<R: TreeReader>(
    reader: &R,
    key: &StateKey,
    version: Version,
) -> Result<(Option<OwnedValue>, StateProof), StateError> {
    let (value, proof) = Tree::new(reader).get_with_proof(key.key_hash(), version)?;
    Ok((value, StateProof(proof)))
}

/// Checks, without any storage, that under `root` the key `key` holds
/// `value` (or, with `None`, holds nothing).
pub fn verify_state_proof(
    root: &Hash,
    key: &StateKey,
    value: Option<&[u8]>,
    proof: &StateProof,
) -> Result<(), String> {
    proof
        .0
        .verify(jmt::RootHash(root.0), key.key_hash(), value)
        .map_err(|e| format!("state proof does not verify: {e}"))
}

/// The state after a block whose update is still being written: reads see
/// the update's nodes and values first and `base` (the state before it)
/// for the rest. With no update it is `base` itself. The node builds and
/// checks the next block over it while the commit's synced write runs.
#[derive(Debug)]
pub struct PendingState<'a, R> {
    base: &'a R,
    update: Option<&'a StateUpdate>,
}

impl<R> Clone for PendingState<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for PendingState<'_, R> {}

impl<'a, R: TreeReader> PendingState<'a, R> {
    /// `update` must be the one of the block after `base`'s newest version.
    pub fn new(base: &'a R, update: Option<&'a StateUpdate>) -> Self {
        Self { base, update }
    }
}

impl<R: TreeReader> TreeReader for PendingState<'_, R> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        if let Some(node) = self
            .update
            .and_then(|u| u.batch.node_batch.nodes().get(node_key))
        {
            return Ok(Some(node.clone()));
        }
        self.base.get_node_option(node_key)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        match self.update {
            Some(u) if max_version >= u.version => {
                if let Some(value) = u.batch.node_batch.values().get(&(u.version, key_hash)) {
                    return Ok(value.clone());
                }
                // Not written by the pending block: as it was before it
                // (the version the base's cache of newest values holds).
                self.base
                    .get_value_option(u.version.saturating_sub(1), key_hash)
            }
            _ => self.base.get_value_option(max_version, key_hash),
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("restoring the state tree from a snapshot is not supported")
    }
}

/// A state tree kept in memory: for tests, simulations and benchmarks.
#[derive(Debug, Default, Clone)]
pub struct MemoryTreeStore {
    nodes: BTreeMap<NodeKey, Node>,
    values: BTreeMap<(KeyHash, Version), Option<OwnedValue>>,
}

impl MemoryTreeStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores what an update produced.
    pub fn apply(&mut self, batch: &NodeBatch) {
        for (k, n) in batch.nodes() {
            self.nodes.insert(k.clone(), n.clone());
        }
        for ((version, key_hash), value) in batch.values() {
            self.values.insert((*key_hash, *version), value.clone());
        }
    }

    /// Stores what an update produced and forgets what it made stale, so
    /// that the tree holds one version only: for replays that never read an
    /// older version (`audit`), memory stays the size of the state.
    pub fn apply_latest(&mut self, update: &TreeUpdateBatch) {
        for stale in &update.stale_node_index_batch {
            self.nodes.remove(&stale.node_key);
        }
        for (version, key_hash) in update.node_batch.values().keys() {
            let older: Vec<(KeyHash, Version)> = self
                .values
                .range((*key_hash, 0)..(*key_hash, *version))
                .map(|(k, _)| *k)
                .collect();
            for k in older {
                self.values.remove(&k);
            }
        }
        self.apply(&update.node_batch);
    }

    /// The newest entry for `key_hash` at or below `max_version`: `None` if
    /// there is none, `Some(None)` if the key was deleted.
    pub fn entry(&self, max_version: Version, key_hash: KeyHash) -> Option<Option<OwnedValue>> {
        self.values
            .range((key_hash, 0)..=(key_hash, max_version))
            .next_back()
            .map(|(_, v)| v.clone())
    }

    /// Every key's newest value at or below `version` (`None`: deleted).
    pub fn values_at(&self, version: Version) -> BTreeMap<KeyHash, Option<OwnedValue>> {
        let mut out = BTreeMap::new();
        for ((key_hash, v), value) in &self.values {
            if *v <= version {
                out.insert(*key_hash, value.clone());
            }
        }
        out
    }
}

impl TreeReader for MemoryTreeStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.entry(max_version, key_hash).flatten())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        Ok(self
            .nodes
            .iter()
            .filter_map(|(k, n)| match n {
                Node::Leaf(leaf) => Some((k.clone(), leaf.clone())),
                _ => None,
            })
            .max_by_key(|(_, leaf)| leaf.key_hash()))
    }
}

/// The largest record value any genesis may allow.
pub const VALUE_BYTES_CAP: usize = TX_BYTES_CAP;

/// A state tree in memory on top of a stored one: reads see the newest
/// in-memory entry first, then `base` as of `base_version`. Block sync
/// executes a run of blocks over it before committing them in one write;
/// `audit` replays over it (with no base, from genesis).
#[derive(Debug)]
pub struct Overlay<'a, R: TreeReader> {
    base: Option<(&'a R, Version)>,
    pub top: MemoryTreeStore,
}

impl<'a, R: TreeReader> Overlay<'a, R> {
    /// An overlay over `base` as of `base_version`, or over nothing.
    pub fn new(base: Option<(&'a R, Version)>) -> Self {
        Overlay {
            base,
            top: MemoryTreeStore::new(),
        }
    }
}

impl<R: TreeReader> TreeReader for Overlay<'_, R> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        match self.top.get_node_option(node_key)? {
            Some(n) => Ok(Some(n)),
            None => match self.base {
                Some((base, _)) => base.get_node_option(node_key),
                None => Ok(None),
            },
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        match self.top.entry(max_version, key_hash) {
            Some(v) => Ok(v),
            None => match self.base {
                Some((base, version)) => base.get_value_option(max_version.min(version), key_hash),
                None => Ok(None),
            },
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("an overlay does not restore snapshots")
    }
}
