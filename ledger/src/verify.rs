//! The one definition of a valid block ([`ChainRules`]) and of a valid
//! commit certificate ([`verify_certificate`]), shared by consensus
//! validation, block sync, the store's pair assertions and `tally audit`.

use std::sync::Arc;

use crate::crypto::{BatchVerifier, Domain};
use crate::execution::{
    check_tx_static, execute_verified_block, execute_verified_block_with_changes,
    verify_tx_signatures_except, BlockExecError, StateChange, TxError,
};
use crate::genesis::{Genesis, Params};
use crate::hash::{merkle_root, Hash};
use crate::membership::{read_entry, Validators};
use crate::proposer::ProposerSchedule;
use crate::state::{StateError, StateKey, StateReader, StateUpdate};
use crate::types::{last_commit_hash, Block, CommitCertificate, ValidatorSet, ValidatorSetError};

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

/// How far a block's time may run ahead of a validator's own clock when it
/// judges a proposal. A proposer whose clock is fast by more than this has
/// its blocks refused, so the chain's time never leads an honest clock by
/// more than this (the next honest proposer takes the parent's time + 1 ms
/// when its clock is behind the chain, so the lead does not accumulate).
pub const BLOCK_TIME_DRIFT_MS: u64 = 5_000;

/// The latest block time any chain accepts: 9999-12-31T23:59:59.999Z. It
/// keeps every sum on a block time far from `u64::MAX`, even for a block
/// judged without a clock (block sync, the audit).
pub const BLOCK_TIME_MS_MAX: u64 = 253_402_300_799_999;

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
    #[error("block next_validators_hash is {found}, expected {expected}")]
    NextValidatorsHash { expected: Hash, found: Hash },
    #[error("block last_commit_hash is {found}, its last_commit hashes to {expected}")]
    LastCommitHash { expected: Hash, found: Hash },
    #[error("block time {found} ms is not after its parent's {parent} ms")]
    Time { parent: u64, found: u64 },
    #[error("block time {found} ms is more than {BLOCK_TIME_DRIFT_MS} ms ahead of this validator's clock ({now} ms)")]
    TimeAhead { now: u64, found: u64 },
    #[error(
        "block time {found} ms is past the latest time a block may carry ({BLOCK_TIME_MS_MAX} ms)"
    )]
    TimeOutOfRange { found: u64 },
    #[error("block is {found} bytes, more than the limit of {max}")]
    TooLarge { max: u64, found: u64 },
    #[error("block has {found} transactions, more than the limit of {max}")]
    TooManyTxs { max: u32, found: usize },
    #[error("block proposer {proposer} is not a validator")]
    ProposerUnknown { proposer: crate::PublicKey },
    #[error("block proposer {proposer} (validator {index}) had no turn at height {height} in rounds 0..={round}; validator {expected} proposes round 0")]
    ProposerNoTurn {
        proposer: crate::PublicKey,
        index: u32,
        height: u64,
        round: u32,
        expected: u32,
        expected_key: crate::PublicKey,
    },
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

impl Parent {
    /// The parent a valid `block` makes for the block after it.
    pub fn of(block: &Block) -> Parent {
        Parent {
            height: block.height(),
            hash: block.hash(),
            time_ms: block.header.time_ms,
        }
    }
}

/// What a block is judged against besides itself: where it attaches, the
/// latest round it can have been proposed in (the proposal's round in
/// consensus, the certificate's round in sync and the audit), and, in
/// consensus only, the judging validator's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub parent: Parent,
    pub round: u32,
    pub now_ms: Option<u64>,
}

/// The rules of one chain at one height: the single definition of a valid
/// block, used alike by consensus validation, block sync and `tally audit`,
/// so a node never commits a block its own audit would reject.
///
/// The chain's constants come from genesis; the validator sets of the
/// height (the one that decides it, the one that decided its parent, and
/// the hash of the one after it) come from the state after its parent
/// ([`ChainRules::at_height`]), as the chain's own membership changes left
/// them.
///
/// A block is valid when it passes all four parts:
/// [`ChainRules::check_block`] (size, links, time, limits, roots over its own
/// content, the sets' hashes, proposer), [`ChainRules::check_certificates`]
/// (the embedded `last_commit`, the deciding certificate if there is one),
/// [`ChainRules::check_transactions`] (every transaction's limits and
/// signature, the same at every height) and [`ChainRules::check_state`]
/// (re-execution to the header's state root). Callers split them only to
/// run the signature checks in parallel.
#[derive(Debug, Clone)]
pub struct ChainRules {
    pub chain_id: String,
    pub params: Params,
    /// The height these rules judge.
    pub height: u64,
    /// The set that decides blocks at `height`.
    pub set: Arc<ValidatorSet>,
    pub schedule: Arc<ProposerSchedule>,
    /// The set that decided the parent (it signed a block's `last_commit`).
    pub last_set: Arc<ValidatorSet>,
    set_hash: Hash,
    next_hash: Hash,
}

impl ChainRules {
    /// The rules of height 1: the genesis set decides it and the next.
    pub fn new(genesis: &Genesis) -> Result<Self, ValidatorSetError> {
        let set = Arc::new(genesis.validator_set()?);
        let hash = set.hash();
        Ok(ChainRules {
            chain_id: genesis.chain_id.clone(),
            params: genesis.params.clone(),
            height: 1,
            schedule: Arc::new(ProposerSchedule::new(&set)),
            last_set: set.clone(),
            set,
            set_hash: hash,
            next_hash: hash,
        })
    }

    /// The rules of `height` (at least 1), with its sets read from the
    /// state after its parent (`reader` must hold versions `height - 1`
    /// and, above height 1, `height - 2`). What did not change is shared
    /// with `self`, so following the chain block by block is cheap.
    pub fn at_height<R: StateReader>(&self, reader: &R, height: u64) -> Result<Self, StateError> {
        if height == self.height {
            return Ok(self.clone());
        }
        let version = height
            .checked_sub(1)
            .ok_or_else(|| StateError::Corrupt("height 0 has no validators".into()))?;
        let read_set = |key: &StateKey, version: u64| read_set(reader, key, version);
        let set = read_set(&StateKey::Validators, version)?;
        let next_hash = read_set(&StateKey::NextValidators, version)?.hash();
        let last_set = if height == self.height.saturating_add(1) {
            self.set.clone()
        } else if height == 1 {
            Arc::new(set.clone())
        } else {
            let last = read_set(&StateKey::Validators, version - 1)?;
            if last == *self.set {
                self.set.clone()
            } else {
                Arc::new(last)
            }
        };
        let (set, schedule, set_hash) = if set == *self.set {
            (self.set.clone(), self.schedule.clone(), self.set_hash)
        } else {
            let schedule = Arc::new(ProposerSchedule::new(&set));
            let hash = set.hash();
            (Arc::new(set), schedule, hash)
        };
        Ok(ChainRules {
            chain_id: self.chain_id.clone(),
            params: self.params.clone(),
            height,
            set,
            schedule,
            last_set,
            set_hash,
            next_hash,
        })
    }

    /// The set that decides the height after this one, from the state
    /// after this height's parent (the one `self` was read from).
    pub fn next_set<R: StateReader>(&self, reader: &R) -> Result<Arc<ValidatorSet>, StateError> {
        if self.next_hash == self.set_hash {
            return Ok(self.set.clone());
        }
        let version = self.height.saturating_sub(1);
        let next = read_set(reader, &StateKey::NextValidators, version)?;
        if next.hash() != self.next_hash {
            return Err(StateError::Corrupt(format!(
                "the next validators at state {version} do not hash to the ones these rules hold"
            )));
        }
        Ok(Arc::new(next))
    }

    /// The hash of the set that decides this height, as headers commit to.
    pub fn validators_hash(&self) -> Hash {
        self.set_hash
    }

    /// The hash of the set that decides the height after this one.
    pub fn next_validators_hash(&self) -> Hash {
        self.next_hash
    }

    /// Every rule that needs neither signatures nor state. `encoded_len` is
    /// the block's encoded size (callers that hold the bytes pass their
    /// length; others [`crate::encoding::encode`] it).
    pub fn check_block(
        &self,
        block: &Block,
        encoded_len: usize,
        at: &Placement,
    ) -> Result<(), BlockError> {
        self.check_block_hashed(block, None, encoded_len, at)
    }

    /// [`ChainRules::check_block`] with the block's transaction hashes
    /// already computed (`tx_hashes`, one for each transaction, in order),
    /// so the caller can reuse them; `None` computes them.
    pub fn check_block_hashed(
        &self,
        block: &Block,
        tx_hashes: Option<&[Hash]>,
        encoded_len: usize,
        at: &Placement,
    ) -> Result<(), BlockError> {
        let h = &block.header;
        let parent = &at.parent;
        if encoded_len as u64 > self.params.block_bytes_max {
            return Err(BlockError::TooLarge {
                max: self.params.block_bytes_max,
                found: encoded_len as u64,
            });
        }
        if h.chain_id != self.chain_id {
            return Err(BlockError::ChainId {
                expected: self.chain_id.clone(),
                found: h.chain_id.clone(),
            });
        }
        let expected_height = parent.height.saturating_add(1);
        if h.height != expected_height {
            return Err(BlockError::Height {
                expected: expected_height,
                found: h.height,
            });
        }
        if h.prev_hash != parent.hash {
            return Err(BlockError::PrevHash {
                expected: parent.hash,
                found: h.prev_hash,
            });
        }
        check_time(h.time_ms, parent.time_ms, at.now_ms)?;
        if block.txs.len() > self.params.block_txs_max as usize {
            return Err(BlockError::TooManyTxs {
                max: self.params.block_txs_max,
                found: block.txs.len(),
            });
        }
        let tx_root = match tx_hashes {
            Some(hashes) if hashes.len() == block.txs.len() => merkle_root(hashes),
            _ => block.compute_tx_root(),
        };
        if h.tx_root != tx_root {
            return Err(BlockError::TxRoot {
                expected: tx_root,
                found: h.tx_root,
            });
        }
        let vhash = self.set_hash;
        if h.validators_hash != vhash {
            return Err(BlockError::ValidatorsHash {
                expected: vhash,
                found: h.validators_hash,
            });
        }
        let next = self.next_validators_hash();
        if h.next_validators_hash != next {
            return Err(BlockError::NextValidatorsHash {
                expected: next,
                found: h.next_validators_hash,
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
        self.check_proposer(block, at.round)
    }

    /// The proposer must be a validator the schedule names for some round
    /// up to `round`: a block re-proposed in a later round keeps the
    /// proposer that built it.
    pub fn check_proposer(&self, block: &Block, round: u32) -> Result<(), BlockError> {
        let proposer = block.header.proposer;
        let height = block.height();
        let Some(index) = self.set.index_of(&proposer) else {
            return Err(BlockError::ProposerUnknown { proposer });
        };
        // After one full rotation every validator has had a slot.
        let rounds = u64::from(round).min(self.schedule.period() as u64);
        if (0..=rounds).any(|r| self.schedule.proposer(height, r as u32) == index) {
            return Ok(());
        }
        let expected = self.schedule.proposer(height, 0);
        Err(BlockError::ProposerNoTurn {
            proposer,
            index,
            height,
            round,
            expected,
            expected_key: self.set.get(expected).map_or(proposer, |v| v.public_key),
        })
    }

    /// Every signature check on a block and its certificate (when it has
    /// one yet), and the transactions' stateless rules:
    /// [`ChainRules::check_certificates`] and
    /// [`ChainRules::check_transactions`]. Returns the number of
    /// signatures verified.
    pub fn check_signatures(
        &self,
        block: &Block,
        cert: Option<&CommitCertificate>,
    ) -> Result<usize, ContentError> {
        self.check_signatures_except(block, cert, |_| false)
    }

    /// [`ChainRules::check_signatures`], except that the signature of a
    /// transaction `verified` names is not checked again (see
    /// [`ChainRules::check_transactions_except`]).
    pub fn check_signatures_except(
        &self,
        block: &Block,
        cert: Option<&CommitCertificate>,
        verified: impl Fn(usize) -> bool,
    ) -> Result<usize, ContentError> {
        Ok(self.check_certificates(block, cert)?
            + self.check_transactions_except(block, verified)?)
    }

    /// The certificate is for this block and a valid quorum of this
    /// height's set, and the embedded `last_commit` a valid quorum of the
    /// parent's set. Returns the number of signatures verified.
    pub fn check_certificates(
        &self,
        block: &Block,
        cert: Option<&CommitCertificate>,
    ) -> Result<usize, ContentError> {
        let chain_id = self.chain_id.as_str();
        let mut signatures = 0;
        if let Some(cert) = cert {
            check_certificate_matches(block, cert).map_err(ContentError::Mismatch)?;
            verify_certificate(cert, &self.set, chain_id).map_err(ContentError::Certificate)?;
            signatures += cert.signatures.len();
        }
        if let Some(last) = &block.last_commit {
            verify_certificate(last, &self.last_set, chain_id).map_err(ContentError::LastCommit)?;
            signatures += last.signatures.len();
        }
        Ok(signatures)
    }

    /// Every transaction is within the limits and signed (one batch). The
    /// same at every height, so blocks can be checked in parallel, ahead of
    /// the state. Returns the number of signatures verified.
    pub fn check_transactions(&self, block: &Block) -> Result<usize, ContentError> {
        self.check_transactions_except(block, |_| false)
    }

    /// [`ChainRules::check_transactions`], except that the signature of a
    /// transaction `verified` names (one this node already verified, byte
    /// for byte: a transaction's hash covers its signature) is not checked
    /// again (`verified` takes the transaction's index in the block). Its
    /// stateless rules still are.
    pub fn check_transactions_except(
        &self,
        block: &Block,
        verified: impl Fn(usize) -> bool,
    ) -> Result<usize, ContentError> {
        let chain_id = self.chain_id.as_str();
        for (index, tx) in block.txs.iter().enumerate() {
            check_tx_static(tx, chain_id, &self.params).map_err(|error| ContentError::Tx {
                index,
                hash: tx.hash(),
                error,
            })?;
        }
        verify_tx_signatures_except(&block.txs, chain_id, verified).map_err(|(index, e)| {
            ContentError::Tx {
                index,
                hash: block.txs[index].hash(),
                error: TxError::BadSignature(e),
            }
        })
    }

    /// Re-executes the block's transactions (signatures already checked by
    /// [`ChainRules::check_signatures`]) on `state`, the state after its
    /// parent, and checks the result against the header's state root.
    pub fn check_state<R: StateReader>(
        &self,
        block: &Block,
        state: &R,
    ) -> Result<StateUpdate, StateCheckError> {
        let (height, id, params) = (block.height(), &self.chain_id, &self.params);
        let update = execute_verified_block(state, height, id, params, &block.txs);
        check_root(block, update.map_err(StateCheckError::Execution)?)
    }

    /// [`ChainRules::check_state`], listing the entries the block wrote.
    pub fn check_state_with_changes<R: StateReader>(
        &self,
        block: &Block,
        state: &R,
    ) -> Result<(StateUpdate, Vec<StateChange>), StateCheckError> {
        let (height, id, params) = (block.height(), &self.chain_id, &self.params);
        let (update, changes) =
            execute_verified_block_with_changes(state, height, id, params, &block.txs)
                .map_err(StateCheckError::Execution)?;
        Ok((check_root(block, update)?, changes))
    }

    /// All three parts, for a block proposed in consensus (no certificate
    /// yet): what a validator checks before it prevotes for the block.
    pub fn check_proposed<R: StateReader>(
        &self,
        block: &Block,
        encoded_len: usize,
        at: &Placement,
        state: &R,
    ) -> Result<StateUpdate, InvalidBlock> {
        self.check_proposed_except(block, encoded_len, at, state, |_| false)
    }

    /// [`ChainRules::check_proposed`] with the transaction signatures this
    /// node already verified skipped: `verified` takes a transaction's hash
    /// (see [`ChainRules::check_signatures_except`]). Each transaction is
    /// hashed once; the update carries the hashes on to the commit.
    pub fn check_proposed_except<R: StateReader>(
        &self,
        block: &Block,
        encoded_len: usize,
        at: &Placement,
        state: &R,
        verified: impl Fn(&Hash) -> bool,
    ) -> Result<StateUpdate, InvalidBlock> {
        let tx_hashes = block.tx_hashes();
        self.check_block_hashed(block, Some(&tx_hashes), encoded_len, at)?;
        self.check_signatures_except(block, None, |index| verified(&tx_hashes[index]))?;
        let mut update = self.check_state(block, state)?;
        update.tx_hashes = tx_hashes;
        Ok(update)
    }
}

/// The update, if its root is the one the block's header names.
fn check_root(block: &Block, update: StateUpdate) -> Result<StateUpdate, StateCheckError> {
    if update.root != block.header.state_root {
        return Err(StateCheckError::StateRoot {
            expected: update.root,
            found: block.header.state_root,
        });
    }
    Ok(update)
}

/// The validator set `key` names in the state at `version`.
fn read_set<R: StateReader>(
    reader: &R,
    key: &StateKey,
    version: u64,
) -> Result<ValidatorSet, StateError> {
    read_entry(reader, key, version, Validators::decode)?
        .set()
        .map_err(|e| StateError::Corrupt(format!("{key:?} at state {version}: {e}")))
}

/// Block time: after the parent's, never past [`BLOCK_TIME_MS_MAX`], and,
/// when a clock is given, at most [`BLOCK_TIME_DRIFT_MS`] ahead of it.
pub fn check_time(time_ms: u64, parent_ms: u64, now_ms: Option<u64>) -> Result<(), BlockError> {
    if time_ms <= parent_ms {
        return Err(BlockError::Time {
            parent: parent_ms,
            found: time_ms,
        });
    }
    if time_ms > BLOCK_TIME_MS_MAX {
        return Err(BlockError::TimeOutOfRange { found: time_ms });
    }
    if let Some(now) = now_ms {
        if time_ms > now.saturating_add(BLOCK_TIME_DRIFT_MS) {
            return Err(BlockError::TimeAhead {
                now,
                found: time_ms,
            });
        }
    }
    Ok(())
}

/// The time an honest proposer gives a block on top of `parent_ms`: its
/// clock, or just after the parent when its clock is behind the chain. A
/// parent at [`BLOCK_TIME_MS_MAX`] has no valid child: `None`.
pub fn next_block_time(parent_ms: u64, now_ms: u64) -> Option<u64> {
    let time = now_ms.max(parent_ms.checked_add(1)?);
    (time <= BLOCK_TIME_MS_MAX).then_some(time)
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

/// Why re-executing a block does not give its header's state root.
#[derive(Debug, thiserror::Error)]
pub enum StateCheckError {
    #[error("{0}")]
    Execution(BlockExecError),
    #[error("state root after execution is {expected}, the header says {found}")]
    StateRoot { expected: Hash, found: Hash },
}

/// Any of the three parts of [`ChainRules`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InvalidBlock {
    #[error("{0}")]
    Block(#[from] BlockError),
    #[error("{0}")]
    Content(#[from] ContentError),
    #[error("{0}")]
    State(#[from] StateCheckError),
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
