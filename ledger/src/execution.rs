//! Deterministic execution: the rules that decide whether a transaction is
//! valid against the state, and what it changes.
//!
//! Signatures are checked separately (in batches, see
//! [`verify_tx_signatures`]); everything else is checked by
//! [`BlockExecutor::apply`], which changes nothing when it refuses a
//! transaction.

use jmt::storage::TreeReader;
use jmt::{KeyHash, OwnedValue, Version};
use std::collections::BTreeMap;

use crate::crypto::{BatchVerifier, Domain, PublicKey, SignatureError};
use crate::encoding;
use crate::genesis::{Genesis, Params};
use crate::governance::{Action, Change, Council, GovernanceError};
use crate::hash::Hash;
use crate::membership::{genesis_members, MembershipError};
use crate::state::{self, AccountState, StateError, StateKey, StateUpdate};
use crate::types::{Op, SignedTx};

/// Why a transaction is invalid. Each variant carries what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction is for chain {found:?}, this chain is {expected:?}")]
    WrongChain { expected: String, found: String },
    #[error("transaction is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    #[error("sender {0} is not an account on this chain")]
    UnknownSender(PublicKey),
    #[error("sender {0} has been revoked")]
    RevokedSender(PublicKey),
    #[error("nonce {found} is wrong: the sender's next nonce is {expected}")]
    BadNonce { expected: u64, found: u64 },
    #[error("transfer amount must be more than zero")]
    ZeroAmount,
    #[error("transfer to the sender itself")]
    SelfTransfer,
    #[error("recipient {0} is not an account on this chain")]
    UnknownRecipient(PublicKey),
    #[error("recipient {0} has been revoked")]
    RevokedRecipient(PublicKey),
    #[error("balance {balance} is less than the amount {amount}")]
    InsufficientBalance { balance: u64, amount: u64 },
    #[error("recipient balance {balance} plus {amount} would overflow")]
    BalanceOverflow { balance: u64, amount: u64 },
    #[error("record key is empty")]
    EmptyKey,
    #[error("record key is {len} bytes, more than the limit of {max}")]
    KeyTooLarge { len: usize, max: usize },
    #[error("record value is {len} bytes, more than the limit of {max}")]
    ValueTooLarge { len: usize, max: usize },
    #[error("no record with key 0x{} in the sender's namespace", hex::encode(.0))]
    RecordNotFound(Vec<u8>),
    #[error("sender {0} is not an admin")]
    NotAdmin(PublicKey),
    #[error("account key {0} is small-order or not a curve point")]
    WeakAccountKey(PublicKey),
    #[error("an admin cannot revoke itself")]
    RevokeSelf,
    #[error("account {0} does not exist")]
    AccountNotFound(PublicKey),
    #[error("account {0} is already revoked")]
    AlreadyRevoked(PublicKey),
    #[error(transparent)]
    Governance(#[from] GovernanceError),
    #[error(transparent)]
    Membership(#[from] MembershipError),
}

/// A transaction could not be applied: invalid, or the storage failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Why a whole block could not be executed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockExecError {
    #[error("tx {index} ({hash}) is invalid: {error}")]
    InvalidTx {
        index: usize,
        hash: Hash,
        error: TxError,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

/// Checks what needs no state: chain id, size and record bounds.
pub fn check_tx_static(tx: &SignedTx, chain_id: &str, params: &Params) -> Result<(), TxError> {
    if tx.tx.chain_id != chain_id {
        return Err(TxError::WrongChain {
            expected: chain_id.to_string(),
            found: tx.tx.chain_id.clone(),
        });
    }
    let len = encoding::encode(tx).len();
    let max = params.tx_bytes_max as usize;
    if len > max {
        return Err(TxError::TooLarge { len, max });
    }
    let check_key = |key: &[u8]| {
        if key.is_empty() {
            return Err(TxError::EmptyKey);
        }
        let max = params.key_bytes_max as usize;
        if key.len() > max {
            return Err(TxError::KeyTooLarge {
                len: key.len(),
                max,
            });
        }
        Ok(())
    };
    match &tx.tx.op {
        Op::Put { key, value } => {
            check_key(key)?;
            let max = params.value_bytes_max as usize;
            if value.len() > max {
                return Err(TxError::ValueTooLarge {
                    len: value.len(),
                    max,
                });
            }
        }
        Op::Delete { key } => check_key(key)?,
        Op::Transfer { .. }
        | Op::GrantAccount { .. }
        | Op::RevokeAccount { .. }
        | Op::Propose { .. }
        | Op::Approve { .. } => {}
    }
    Ok(())
}

/// Checks the signatures of `txs` in one batch; on failure names the first
/// bad one by position.
pub fn verify_tx_signatures(
    txs: &[SignedTx],
    chain_id: &str,
) -> Result<(), (usize, SignatureError)> {
    verify_tx_signatures_except(txs, chain_id, |_| false).map(|_| ())
}

/// Like [`verify_tx_signatures`], but skips the transactions `verified`
/// names by their index in `txs`: ones this node has already verified byte
/// for byte (a transaction's hash covers its signature, so the same hash is
/// the same signed bytes). Returns how many signatures it checked.
pub fn verify_tx_signatures_except(
    txs: &[SignedTx],
    chain_id: &str,
    verified: impl Fn(usize) -> bool,
) -> Result<usize, (usize, SignatureError)> {
    let mut batch = BatchVerifier::with_capacity(txs.len());
    let mut positions = Vec::with_capacity(txs.len());
    for (index, tx) in txs.iter().enumerate() {
        if verified(index) {
            continue;
        }
        positions.push(index);
        batch.add(
            tx.tx.sender,
            Domain::Tx,
            chain_id,
            &tx.signed_message(),
            tx.signature,
        );
    }
    let checked = batch.len();
    batch.verify().map_err(|mut failures| {
        let (position, error) = failures.swap_remove(0);
        (positions[position], error)
    })?;
    Ok(checked)
}

/// Applies transactions one by one on top of a state version, keeping the
/// changes in memory until [`BlockExecutor::finish`].
#[derive(Debug)]
pub struct BlockExecutor<'a, R: TreeReader> {
    reader: &'a R,
    /// The version read from; `None` for the empty tree before genesis.
    base: Option<Version>,
    chain_id: &'a str,
    params: &'a Params,
    writes: BTreeMap<KeyHash, Option<OwnedValue>>,
    /// The keys behind `writes`, when asked for ([`BlockExecutor::recording`]):
    /// the tree holds only their hashes.
    keys: Option<BTreeMap<KeyHash, StateKey>>,
}

/// A state entry a block wrote: its key and new value (`None`: removed).
pub type StateChange = (StateKey, Option<OwnedValue>);

impl<'a, R: TreeReader> BlockExecutor<'a, R> {
    /// Executes a block on top of state version `base` (`None` before
    /// genesis). The block's first step, before any transaction: the set
    /// its parent named for the block after it becomes the next block's
    /// ([`crate::membership`]).
    pub fn new(
        reader: &'a R,
        base: Option<Version>,
        chain_id: &'a str,
        params: &'a Params,
    ) -> Result<Self, StateError> {
        Self::with_keys(reader, base, chain_id, params, None)
    }

    /// [`BlockExecutor::new`], keeping the key of every write so that
    /// [`BlockExecutor::finish_with_changes`] can list them.
    pub fn recording(
        reader: &'a R,
        base: Option<Version>,
        chain_id: &'a str,
        params: &'a Params,
    ) -> Result<Self, StateError> {
        Self::with_keys(reader, base, chain_id, params, Some(BTreeMap::new()))
    }

    fn with_keys(
        reader: &'a R,
        base: Option<Version>,
        chain_id: &'a str,
        params: &'a Params,
        keys: Option<BTreeMap<KeyHash, StateKey>>,
    ) -> Result<Self, StateError> {
        let mut exec = BlockExecutor {
            reader,
            base,
            chain_id,
            params,
            writes: BTreeMap::new(),
            keys,
        };
        if base.is_some() {
            if let Some(next) = exec.advance_validators()? {
                exec.stage(StateKey::Validators, Some(next));
            }
        }
        Ok(exec)
    }

    /// Stages a write; returns what was staged for the key before.
    fn stage(&mut self, key: StateKey, value: Option<OwnedValue>) -> Option<Option<OwnedValue>> {
        let hash = key.key_hash();
        if let Some(keys) = &mut self.keys {
            keys.insert(hash, key);
        }
        self.writes.insert(hash, value)
    }

    pub(crate) fn chain_id(&self) -> &str {
        self.chain_id
    }

    pub(crate) fn get(&self, key: &StateKey) -> Result<Option<OwnedValue>, StateError> {
        if let Some(pending) = self.writes.get(&key.key_hash()) {
            return Ok(pending.clone());
        }
        match self.base {
            None => Ok(None),
            Some(v) => state::read(self.reader, key, v),
        }
    }

    /// The account as it stands after the transactions applied so far.
    pub fn account(&self, key: &PublicKey) -> Result<Option<AccountState>, StateError> {
        self.get(&StateKey::Account(*key))?
            .map(|b| AccountState::decode(&b).map_err(|e| StateError::Corrupt(e.to_string())))
            .transpose()
    }

    /// The record `key` of `owner` after the transactions applied so far.
    pub fn record(&self, owner: &PublicKey, key: &[u8]) -> Result<Option<OwnedValue>, StateError> {
        self.get(&StateKey::Record {
            owner: *owner,
            key: key.to_vec(),
        })
    }

    /// Puts an account directly (genesis only).
    fn put_account(&mut self, key: PublicKey, account: &AccountState) {
        self.stage(StateKey::Account(key), Some(encoding::encode(account)));
    }

    /// Applies one transaction whose signature has already been verified.
    /// On error nothing changes.
    pub fn apply(&mut self, tx: &SignedTx) -> Result<(), ApplyError> {
        check_tx_static(tx, self.chain_id, self.params)?;
        let sender_key = tx.tx.sender;
        let mut sender = self
            .account(&sender_key)?
            .ok_or(TxError::UnknownSender(sender_key))?;
        if !sender.active {
            return Err(TxError::RevokedSender(sender_key).into());
        }
        let expected = sender.nonce.saturating_add(1);
        if tx.tx.nonce != expected {
            return Err(TxError::BadNonce {
                expected,
                found: tx.tx.nonce,
            }
            .into());
        }
        sender.nonce = expected;

        // Writes are collected first and applied only if the op succeeds.
        let mut writes: Vec<(StateKey, Option<OwnedValue>)> = Vec::with_capacity(2);
        match &tx.tx.op {
            Op::Transfer { to, amount } => {
                if *amount == 0 {
                    return Err(TxError::ZeroAmount.into());
                }
                if *to == sender_key {
                    return Err(TxError::SelfTransfer.into());
                }
                let mut recipient = self.account(to)?.ok_or(TxError::UnknownRecipient(*to))?;
                if !recipient.active {
                    return Err(TxError::RevokedRecipient(*to).into());
                }
                sender.balance =
                    sender
                        .balance
                        .checked_sub(*amount)
                        .ok_or(TxError::InsufficientBalance {
                            balance: sender.balance,
                            amount: *amount,
                        })?;
                recipient.balance =
                    recipient
                        .balance
                        .checked_add(*amount)
                        .ok_or(TxError::BalanceOverflow {
                            balance: recipient.balance,
                            amount: *amount,
                        })?;
                writes.push((StateKey::Account(*to), Some(encoding::encode(&recipient))));
            }
            Op::Put { key, value } => {
                writes.push((
                    StateKey::Record {
                        owner: sender_key,
                        key: key.clone(),
                    },
                    Some(value.clone()),
                ));
            }
            Op::Delete { key } => {
                if self.record(&sender_key, key)?.is_none() {
                    return Err(TxError::RecordNotFound(key.clone()).into());
                }
                writes.push((
                    StateKey::Record {
                        owner: sender_key,
                        key: key.clone(),
                    },
                    None,
                ));
            }
            Op::GrantAccount { account, role } => {
                let change = Change::Grant {
                    account: *account,
                    role: *role,
                };
                return self.govern_staged(tx, sender, Action::Propose(&change));
            }
            Op::RevokeAccount { account } => {
                let change = Change::Revoke { account: *account };
                return self.govern_staged(tx, sender, Action::Propose(&change));
            }
            Op::Propose { change } => {
                return self.govern_staged(tx, sender, Action::Propose(change));
            }
            Op::Approve { change } => {
                return self.govern_staged(tx, sender, Action::Approve(*change));
            }
        }
        writes.push((
            StateKey::Account(sender_key),
            Some(encoding::encode(&sender)),
        ));
        for (key, value) in writes {
            self.stage(key, value);
        }
        Ok(())
    }

    /// A governance transaction: stages the sender (its new nonce) first, so
    /// that the change reads it as it will stand, and takes it back if the
    /// transaction is refused.
    fn govern_staged(
        &mut self,
        tx: &SignedTx,
        sender: AccountState,
        action: Action<'_>,
    ) -> Result<(), ApplyError> {
        let sender_key = tx.tx.sender;
        let slot = StateKey::Account(sender_key).key_hash();
        let before = self.stage(
            StateKey::Account(sender_key),
            Some(encoding::encode(&sender)),
        );
        let height = self.base.map_or(0, |b| b.saturating_add(1));
        match self.govern(sender_key, tx.hash(), height, action) {
            Ok(writes) => {
                for (key, value) in writes {
                    self.stage(key, value);
                }
                Ok(())
            }
            Err(e) => {
                match before {
                    Some(value) => self.writes.insert(slot, value),
                    None => self.writes.remove(&slot),
                };
                Err(e)
            }
        }
    }

    /// Computes the new root at `version` and the nodes to persist.
    pub fn finish(self, version: Version) -> Result<StateUpdate, StateError> {
        state::compute_update(self.reader, self.writes, version)
    }

    /// [`BlockExecutor::finish`], with every entry written, in key-hash
    /// order (empty unless made by [`BlockExecutor::recording`]).
    pub fn finish_with_changes(
        mut self,
        version: Version,
    ) -> Result<(StateUpdate, Vec<StateChange>), StateError> {
        let keys = self.keys.take().unwrap_or_default();
        let changes = self
            .writes
            .iter()
            .filter_map(|(hash, value)| keys.get(hash).map(|k| (k.clone(), value.clone())))
            .collect();
        Ok((self.finish(version)?, changes))
    }
}

/// Executes a block's transactions on top of `height - 1` and returns the
/// state at `height`. Signatures are verified in one batch first.
pub fn execute_block<R: TreeReader>(
    reader: &R,
    height: u64,
    chain_id: &str,
    params: &Params,
    txs: &[SignedTx],
) -> Result<StateUpdate, BlockExecError> {
    if let Err((index, e)) = verify_tx_signatures(txs, chain_id) {
        return Err(BlockExecError::InvalidTx {
            index,
            hash: txs[index].hash(),
            error: TxError::BadSignature(e),
        });
    }
    execute_verified_block(reader, height, chain_id, params, txs)
}

/// [`execute_block`] for transactions whose signatures are already verified.
pub fn execute_verified_block<R: TreeReader>(
    reader: &R,
    height: u64,
    chain_id: &str,
    params: &Params,
    txs: &[SignedTx],
) -> Result<StateUpdate, BlockExecError> {
    let base = height.checked_sub(1);
    let exec = BlockExecutor::new(reader, base, chain_id, params)?;
    Ok(apply_all(exec, txs)?.finish(height)?)
}

/// [`execute_verified_block`], listing the entries the block wrote (what
/// the PostgreSQL export turns into rows).
pub fn execute_verified_block_with_changes<R: TreeReader>(
    reader: &R,
    height: u64,
    chain_id: &str,
    params: &Params,
    txs: &[SignedTx],
) -> Result<(StateUpdate, Vec<StateChange>), BlockExecError> {
    let base = height.checked_sub(1);
    let exec = BlockExecutor::recording(reader, base, chain_id, params)?;
    Ok(apply_all(exec, txs)?.finish_with_changes(height)?)
}

/// Applies every transaction of a block, or names the first that fails.
fn apply_all<'a, R: TreeReader>(
    mut exec: BlockExecutor<'a, R>,
    txs: &[SignedTx],
) -> Result<BlockExecutor<'a, R>, BlockExecError> {
    for (index, tx) in txs.iter().enumerate() {
        match exec.apply(tx) {
            Ok(()) => {}
            Err(ApplyError::Tx(error)) => {
                return Err(BlockExecError::InvalidTx {
                    index,
                    hash: tx.hash(),
                    error,
                })
            }
            Err(ApplyError::State(e)) => return Err(e.into()),
        }
    }
    Ok(exec)
}

/// The state at version 0: the genesis accounts.
pub fn genesis_state<R: TreeReader>(
    reader: &R,
    genesis: &Genesis,
) -> Result<StateUpdate, StateError> {
    let mut exec = BlockExecutor::new(reader, None, &genesis.chain_id, &genesis.params)?;
    for account in &genesis.accounts {
        exec.put_account(
            account.public_key,
            &AccountState {
                role: account.role,
                active: true,
                balance: account.balance,
                nonce: 0,
            },
        );
    }
    let council = Council {
        threshold: genesis.governance.threshold,
        expiry_blocks: genesis.governance.expiry_blocks,
        admins: genesis.admins(),
        pending: Vec::new(),
    };
    exec.writes.insert(
        StateKey::Council.key_hash(),
        Some(encoding::encode(&council)),
    );
    let (validators, replicas) = genesis_members(genesis);
    let validators = Some(encoding::encode(&validators));
    for key in [StateKey::Validators, StateKey::NextValidators] {
        exec.writes.insert(key.key_hash(), validators.clone());
    }
    exec.writes.insert(
        StateKey::Replicas.key_hash(),
        Some(encoding::encode(&replicas)),
    );
    exec.finish(0)
}
