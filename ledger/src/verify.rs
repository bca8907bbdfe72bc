//! Verification shared by the store's pair assertions, block sync and
//! `tally audit`: commit certificates and the shape of a block against its
//! parent.

use crate::crypto::{BatchVerifier, Domain};
use crate::execution::{check_tx_static, verify_tx_signatures, TxError};
use crate::genesis::Params;
use crate::hash::Hash;
use crate::types::{last_commit_hash, Block, CommitCertificate, ValidatorSet};

/// Why a commit certificate is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("certificate has no signatures")]
    Empty,
    #[error("certificate signature {position} names validator {index}, but the set has {len}")]
    UnknownValidator {
        position: usize,
        index: u32,
        len: usize,
    },
    #[error("certificate validator indices must strictly increase (validator {index} at position {position} repeats or is out of order)")]
    NotSorted { position: usize, index: u32 },
    #[error("certificate carries power {signed} of {total}: not more than two thirds")]
    NoQuorum { signed: u64, total: u64 },
    #[error("certificate signature of validator {index} does not verify")]
    BadSignature { index: u32 },
}

/// Checks that `cert` carries precommits for its block hash from distinct
/// validators of `set` holding more than 2/3 of the power, each signature
/// valid over the precommit's sign-bytes on `chain_id`. Signatures are
/// checked in one batch.
pub fn verify_certificate(
    cert: &CommitCertificate,
    set: &ValidatorSet,
    chain_id: &str,
) -> Result<(), CertificateError> {
    if cert.signatures.is_empty() {
        return Err(CertificateError::Empty);
    }
    let message = cert.vote().message();
    let mut batch = BatchVerifier::with_capacity(cert.signatures.len());
    let mut power: u64 = 0;
    let mut last: Option<u32> = None;
    for (position, sig) in cert.signatures.iter().enumerate() {
        if last.is_some_and(|l| sig.validator_index <= l) {
            return Err(CertificateError::NotSorted {
                position,
                index: sig.validator_index,
            });
        }
        last = Some(sig.validator_index);
        let validator = set
            .get(sig.validator_index)
            .ok_or(CertificateError::UnknownValidator {
                position,
                index: sig.validator_index,
                len: set.len(),
            })?;
        // Cannot overflow: total power is bounded by TOTAL_POWER_MAX.
        power = power.saturating_add(validator.power);
        batch.add(
            validator.public_key,
            Domain::Vote,
            chain_id,
            &message,
            sig.signature,
        );
    }
    if !set.is_quorum(power) {
        return Err(CertificateError::NoQuorum {
            signed: power,
            total: set.total_power(),
        });
    }
    batch
        .verify()
        .map_err(|failures| CertificateError::BadSignature {
            index: cert.signatures[failures[0].0].validator_index,
        })
}

/// A block that does not fit where it is placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is for chain {found:?}, expected {expected:?}")]
    ChainId { expected: String, found: String },
    #[error("block height {found}, expected {expected}")]
    Height { expected: u64, found: u64 },
    #[error("block prev_hash is {found}, expected {expected}")]
    PrevHash { expected: Hash, found: Hash },
    #[error("block tx_root is {found}, the transactions hash to {expected}")]
    TxRoot { expected: Hash, found: Hash },
    #[error("block validators_hash is {found}, expected {expected}")]
    ValidatorsHash { expected: Hash, found: Hash },
    #[error("block last_commit_hash is {found}, its last_commit hashes to {expected}")]
    LastCommitHash { expected: Hash, found: Hash },
    #[error("block time {found} ms is not after its parent's {parent} ms")]
    Time { parent: u64, found: u64 },
    #[error("block has {found} transactions, more than the limit of {max}")]
    TooManyTxs { max: u32, found: usize },
    #[error("block last_commit is for height {found}, expected {expected}")]
    LastCommitHeight { expected: u64, found: u64 },
    #[error("block last_commit is for block {found}, the parent is {expected}")]
    LastCommitBlock { expected: Hash, found: Hash },
    #[error("block {height} is missing its last_commit")]
    MissingLastCommit { height: u64 },
    #[error("block 1 must not carry a last_commit")]
    UnexpectedLastCommit,
    #[error("block's last_commit is invalid: {0}")]
    LastCommit(CertificateError),
    #[error("certificate is for block {found} at height {found_height}, expected {expected} at {expected_height}")]
    CertificateMismatch {
        expected: Hash,
        expected_height: u64,
        found: Hash,
        found_height: u64,
    },
}

/// Where a block must attach: its parent's hash, height and time (or, for
/// height 1, the genesis hash and genesis time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub height: u64,
    pub hash: Hash,
    pub time_ms: u64,
}

/// Checks everything about a block that needs neither state nor the
/// certificate deciding it: chain id, height, links, roots over its own
/// content, time, limits, and the embedded `last_commit` (fully verified).
pub fn check_block_header(
    block: &Block,
    parent: &Parent,
    set: &ValidatorSet,
    chain_id: &str,
    block_txs_max: u32,
) -> Result<(), BlockError> {
    check_block_links(block, parent, set, chain_id, block_txs_max)?;
    if let Some(cert) = &block.last_commit {
        verify_certificate(cert, set, chain_id).map_err(BlockError::LastCommit)?;
    }
    Ok(())
}

/// [`check_block_header`] without verifying the signatures of the embedded
/// `last_commit` (its height and block are checked): for callers that
/// verified them already, in parallel, with [`check_block_signatures`].
pub fn check_block_links(
    block: &Block,
    parent: &Parent,
    set: &ValidatorSet,
    chain_id: &str,
    block_txs_max: u32,
) -> Result<(), BlockError> {
    let h = &block.header;
    if h.chain_id != chain_id {
        return Err(BlockError::ChainId {
            expected: chain_id.to_string(),
            found: h.chain_id.clone(),
        });
    }
    if h.height != parent.height + 1 {
        return Err(BlockError::Height {
            expected: parent.height + 1,
            found: h.height,
        });
    }
    if h.prev_hash != parent.hash {
        return Err(BlockError::PrevHash {
            expected: parent.hash,
            found: h.prev_hash,
        });
    }
    if h.time_ms <= parent.time_ms {
        return Err(BlockError::Time {
            parent: parent.time_ms,
            found: h.time_ms,
        });
    }
    if block.txs.len() > block_txs_max as usize {
        return Err(BlockError::TooManyTxs {
            max: block_txs_max,
            found: block.txs.len(),
        });
    }
    let tx_root = block.compute_tx_root();
    if h.tx_root != tx_root {
        return Err(BlockError::TxRoot {
            expected: tx_root,
            found: h.tx_root,
        });
    }
    let vhash = set.hash();
    if h.validators_hash != vhash {
        return Err(BlockError::ValidatorsHash {
            expected: vhash,
            found: h.validators_hash,
        });
    }
    let lch = last_commit_hash(block.last_commit.as_ref());
    if h.last_commit_hash != lch {
        return Err(BlockError::LastCommitHash {
            expected: lch,
            found: h.last_commit_hash,
        });
    }
    match (&block.last_commit, parent.height) {
        (None, 0) => {}
        (Some(_), 0) => return Err(BlockError::UnexpectedLastCommit),
        (None, _) => return Err(BlockError::MissingLastCommit { height: h.height }),
        (Some(cert), parent_height) => {
            if cert.height != parent_height {
                return Err(BlockError::LastCommitHeight {
                    expected: parent_height,
                    found: cert.height,
                });
            }
            if cert.block_hash != parent.hash {
                return Err(BlockError::LastCommitBlock {
                    expected: parent.hash,
                    found: cert.block_hash,
                });
            }
        }
    }
    Ok(())
}

/// Why a block's signatures or transactions are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("{0}")]
    Mismatch(BlockError),
    #[error("the commit certificate is invalid: {0}")]
    Certificate(CertificateError),
    #[error("the block's last_commit is invalid: {0}")]
    LastCommit(CertificateError),
    #[error("transaction {index} ({hash}) is invalid: {error}")]
    Tx {
        index: usize,
        hash: Hash,
        error: TxError,
    },
}

/// Every signature check on a block and its certificate, and the
/// transactions' stateless rules: the certificate is for this block and a
/// valid quorum, the embedded `last_commit` is a valid quorum, and every
/// transaction is within the limits and signed (one batch). Needs no parent
/// and no state, so blocks can be checked in parallel. Returns the number of
/// signatures verified.
pub fn check_block_signatures(
    block: &Block,
    cert: &CommitCertificate,
    set: &ValidatorSet,
    chain_id: &str,
    params: &Params,
) -> Result<usize, ContentError> {
    check_certificate_matches(block, cert).map_err(ContentError::Mismatch)?;
    verify_certificate(cert, set, chain_id).map_err(ContentError::Certificate)?;
    let mut signatures = cert.signatures.len() + block.txs.len();
    if let Some(last) = &block.last_commit {
        verify_certificate(last, set, chain_id).map_err(ContentError::LastCommit)?;
        signatures += last.signatures.len();
    }
    for (index, tx) in block.txs.iter().enumerate() {
        check_tx_static(tx, chain_id, params).map_err(|error| ContentError::Tx {
            index,
            hash: tx.hash(),
            error,
        })?;
    }
    verify_tx_signatures(&block.txs, chain_id).map_err(|(index, e)| ContentError::Tx {
        index,
        hash: block.txs[index].hash(),
        error: TxError::BadSignature(e),
    })?;
    Ok(signatures)
}

/// Checks that `cert` is for exactly this block.
pub fn check_certificate_matches(
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), BlockError> {
    let hash = block.hash();
    if cert.block_hash != hash || cert.height != block.height() {
        return Err(BlockError::CertificateMismatch {
            expected: hash,
            expected_height: block.height(),
            found: cert.block_hash,
            found_height: cert.height,
        });
    }
    Ok(())
}
