//! SHA-256 hashes and the RFC 6962 Merkle tree over a block's transactions.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::encoding::hex_serde;

/// A SHA-256 digest.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, BorshSerialize, BorshDeserialize,
)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    pub const ZERO: Hash = Hash([0u8; 32]);

    /// SHA-256 of `bytes`.
    pub fn digest(bytes: &[u8]) -> Hash {
        Hash(Sha256::digest(bytes).into())
    }

    pub fn to_hex(&self) -> String {
        hex_serde::to_hex(&self.0)
    }

    pub fn from_hex(s: &str) -> Result<Self, String> {
        hex_serde::parse_fixed::<32>(s).map(Hash)
    }

    /// The first 8 hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_serde::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_serde::deserialize(d).map(Hash)
    }
}

const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

fn leaf_hash(leaf: &Hash) -> Hash {
    Hash(
        Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(leaf.0)
            .finalize()
            .into(),
    )
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Hash(
        Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left.0)
            .chain_update(right.0)
            .finalize()
            .into(),
    )
}

/// The largest power of two strictly less than `n` (n >= 2), as RFC 6962 splits.
fn split_point(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 Merkle tree hash over `leaves` (the tx hashes of a block, in
/// order). The empty tree hashes to SHA-256 of nothing.
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::digest(&[]),
        1 => leaf_hash(&leaves[0]),
        n => {
            let k = split_point(n);
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// The audit path proving that leaf `index` is in the tree over `leaves`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct MerkleProof {
    pub index: u64,
    pub leaf_count: u64,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<Hash>,
}

/// Builds the inclusion proof for `leaves[index]`, or `None` if out of range.
pub fn merkle_proof(leaves: &[Hash], index: usize) -> Option<MerkleProof> {
    if index >= leaves.len() {
        return None;
    }
    let mut path = Vec::new();
    let (mut lo, mut hi, i) = (0usize, leaves.len(), index);
    let mut stack = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if i < lo + k {
            stack.push(merkle_root(&leaves[lo + k..hi]));
            hi = lo + k;
        } else {
            stack.push(merkle_root(&leaves[lo..lo + k]));
            lo += k;
        }
    }
    while let Some(h) = stack.pop() {
        path.push(h);
    }
    Some(MerkleProof {
        index: index as u64,
        leaf_count: leaves.len() as u64,
        path,
    })
}

/// Checks that `leaf` sits at `proof.index` of a tree whose root is `root`.
pub fn verify_merkle_proof(root: &Hash, leaf: &Hash, proof: &MerkleProof) -> bool {
    fn fold(leaf: &Hash, index: u64, count: u64, path: &[Hash]) -> Option<Hash> {
        if count == 1 {
            return path.is_empty().then(|| leaf_hash(leaf));
        }
        let k = split_point(usize::try_from(count).ok()?) as u64;
        let (sibling, rest) = path.split_last()?;
        if index < k {
            Some(node_hash(&fold(leaf, index, k, rest)?, sibling))
        } else {
            Some(node_hash(sibling, &fold(leaf, index - k, count - k, rest)?))
        }
    }
    if proof.index >= proof.leaf_count || proof.path.len() > 64 {
        return false;
    }
    fold(leaf, proof.index, proof.leaf_count, &proof.path).as_ref() == Some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| Hash::digest(&(i as u64).to_le_bytes()))
            .collect()
    }

    #[test]
    fn rfc6962_shape_for_three_leaves() {
        let l = leaves(3);
        let expected = node_hash(
            &node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1])),
            &leaf_hash(&l[2]),
        );
        assert_eq!(merkle_root(&l), expected);
        assert_eq!(merkle_root(&[]), Hash::digest(b""));
    }

    #[test]
    fn every_proof_verifies_and_tampering_fails() {
        for n in 1..20 {
            let l = leaves(n);
            let root = merkle_root(&l);
            for i in 0..n {
                let proof = merkle_proof(&l, i).unwrap();
                assert!(verify_merkle_proof(&root, &l[i], &proof), "n={n} i={i}");
                let other = (i + 1) % n;
                if other != i {
                    assert!(!verify_merkle_proof(&root, &l[other], &proof));
                }
                if let Some(first) = proof.path.first() {
                    let mut bad = proof.clone();
                    bad.path[0] = Hash::digest(&first.0);
                    assert!(!verify_merkle_proof(&root, &l[i], &bad));
                }
            }
            assert!(merkle_proof(&l, n).is_none());
        }
    }
}
