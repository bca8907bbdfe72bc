//! Governance: changes that need a threshold of the consortium's admins.
//!
//! An admin proposes a change in a transaction; other admins approve it in
//! later transactions, each by the change's id (the hash of the proposing
//! transaction). The change applies in the transaction that brings its
//! approvals to the threshold, and expires when the threshold is not met by
//! its expiry height. The proposal counts as its proposer's approval, so
//! with a threshold of 1 a change applies at once, as grants always did.
//! See ADR 15 for why changes are proposed and approved on chain rather than
//! carried by one multi-signature transaction.
//!
//! The state holds one [`Council`] (threshold, admins, the ids of pending
//! changes) and one [`ChangeRecord`] per proposed change, both readable with
//! proofs like any account.

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::storage::TreeReader;
use jmt::OwnedValue;
use serde::{Deserialize, Serialize};

use crate::crypto::{PublicKey, Signature};
use crate::encoding::{self, DecodeError};
use crate::execution::{ApplyError, BlockExecutor, TxError};
use crate::hash::Hash;
use crate::state::{AccountState, StateError, StateKey};
use crate::types::Role;

/// The most admins a chain may have.
pub const ADMINS_MAX: usize = 64;
/// The most changes one admin may have pending at once: a new proposal
/// beyond it is refused until one of its changes applies or expires. A
/// limit per admin, so that one admin cannot fill the list and keep the
/// others (and its own removal) out.
pub const PENDING_PER_ADMIN_MAX: usize = 4;
/// The most changes pending at once.
pub const PENDING_MAX: usize = ADMINS_MAX * PENDING_PER_ADMIN_MAX;
/// The longest expiry genesis may set, in blocks.
pub const EXPIRY_BLOCKS_MAX: u64 = 10_000_000;
/// The expiry when genesis sets none: about a day at one block per second.
pub const EXPIRY_BLOCKS_DEFAULT: u64 = 100_000;
/// A council's encoding is never larger than this: two integers, the
/// admins' keys and the pending changes.
pub const COUNCIL_BYTES_MAX: usize = 4 + 8 + 4 + ADMINS_MAX * 32 + 4 + PENDING_MAX * (32 + 8 + 32);
/// The most approvals a change records. Approvals of admins who have
/// since left stay listed (they count for nothing), so with admins coming
/// and going a change could gather more than [`ADMINS_MAX`].
pub const APPROVALS_MAX: usize = 2 * ADMINS_MAX;
/// A change record's encoding is never larger than this: the change, the
/// proposer, two heights, the approvals and the status.
pub const CHANGE_RECORD_BYTES_MAX: usize = 1024 + APPROVALS_MAX * 32;

/// Governance parameters fixed at genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct GovernanceParams {
    /// Approvals a change needs, counting the proposer's (at most the
    /// number of admins).
    #[serde(default = "default_threshold")]
    pub threshold: u32,
    /// Blocks after its proposal in which a change may gather approvals.
    #[serde(default = "default_expiry_blocks")]
    pub expiry_blocks: u64,
}

fn default_threshold() -> u32 {
    1
}

fn default_expiry_blocks() -> u64 {
    EXPIRY_BLOCKS_DEFAULT
}

impl Default for GovernanceParams {
    fn default() -> Self {
        GovernanceParams {
            threshold: default_threshold(),
            expiry_blocks: default_expiry_blocks(),
        }
    }
}

/// A change that needs the admins' threshold.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Change {
    /// Admits `account` with `role`, changes its role, or re-admits it.
    Grant { account: PublicKey, role: Role },
    /// Revokes `account`: it keeps its state but may no longer transact.
    Revoke { account: PublicKey },
    /// Adds a validator: it votes from the second block after the one that
    /// applies the change.
    AddValidator {
        name: String,
        /// Its consensus key.
        public_key: PublicKey,
        /// Its node's network key (its PeerId).
        node_key: PublicKey,
        power: u64,
    },
    /// Removes the validator with this consensus key.
    RemoveValidator { public_key: PublicKey },
    /// Sets the power of the validator with this consensus key.
    SetPower { public_key: PublicKey, power: u64 },
    /// Replaces a validator's consensus key. `consent` is the old key's
    /// signature over the rotation ([`crate::membership::rotation_message`]),
    /// so admins alone cannot take over a validator's identity.
    RotateKey {
        public_key: PublicKey,
        new_key: PublicKey,
        consent: Signature,
    },
    /// Admits a read replica's node.
    AddReplica { name: String, node_key: PublicKey },
    /// Removes the replica with this node key.
    RemoveReplica { node_key: PublicKey },
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::Grant { .. } => "grant",
            Change::Revoke { .. } => "revoke",
            Change::AddValidator { .. } => "add validator",
            Change::RemoveValidator { .. } => "remove validator",
            Change::SetPower { .. } => "set validator power",
            Change::RotateKey { .. } => "rotate validator key",
            Change::AddReplica { .. } => "add replica",
            Change::RemoveReplica { .. } => "remove replica",
        }
    }
}

/// The governance state: who decides, and what waits for them.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
pub struct Council {
    pub threshold: u32,
    pub expiry_blocks: u64,
    /// The active admins, in the order they became admins.
    pub admins: Vec<PublicKey>,
    /// The pending changes, oldest first. Expired ones leave when the next
    /// change is proposed.
    pub pending: Vec<PendingChange>,
}

/// A change in the council's pending list.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize)]
pub struct PendingChange {
    pub id: Hash,
    /// The last height at which an approval counts.
    pub expires_at: u64,
    pub proposer: PublicKey,
}

impl Council {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, COUNCIL_BYTES_MAX, "governance council")
    }

    pub fn is_admin(&self, key: &PublicKey) -> bool {
        self.admins.contains(key)
    }
}

/// Where a change stands, as stored. A pending change past its expiry is
/// expired: see [`ChangeRecord::status_at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum StoredStatus {
    Pending,
    /// Applied by the transaction in block `height`.
    Applied {
        height: u64,
    },
    /// Its proposer stopped being an admin in block `height`.
    Withdrawn {
        height: u64,
    },
}

/// Where a change stands at a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum ChangeStatus {
    Pending,
    Applied { height: u64 },
    Withdrawn { height: u64 },
    Expired { at: u64 },
}

impl std::fmt::Display for ChangeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeStatus::Pending => write!(f, "pending"),
            ChangeStatus::Applied { height } => write!(f, "applied at height {height}"),
            ChangeStatus::Withdrawn { height } => {
                write!(f, "withdrawn at height {height} (its proposer left)")
            }
            ChangeStatus::Expired { at } => write!(f, "expired after height {at}"),
        }
    }
}

/// A proposed change and its approvals.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ChangeRecord {
    pub change: Change,
    pub proposer: PublicKey,
    pub proposed_at: u64,
    /// The last height at which an approval counts.
    pub expires_at: u64,
    /// The admins that approved it, the proposer first.
    pub approvals: Vec<PublicKey>,
    pub status: StoredStatus,
}

impl ChangeRecord {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, CHANGE_RECORD_BYTES_MAX, "governance change")
    }

    /// Its status in the state at `height`.
    pub fn status_at(&self, height: u64) -> ChangeStatus {
        match self.status {
            StoredStatus::Applied { height } => ChangeStatus::Applied { height },
            StoredStatus::Withdrawn { height } => ChangeStatus::Withdrawn { height },
            StoredStatus::Pending if height > self.expires_at => ChangeStatus::Expired {
                at: self.expires_at,
            },
            StoredStatus::Pending => ChangeStatus::Pending,
        }
    }

    /// Approvals from admins of `council` (an approver who is no longer an
    /// admin counts for nothing).
    pub fn approvals_counted(&self, council: &Council) -> usize {
        self.approvals
            .iter()
            .filter(|a| council.is_admin(a))
            .count()
    }
}

/// Why a governance transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceError {
    #[error("no change with id {0}")]
    UnknownChange(Hash),
    #[error("change {id} expired after height {at}")]
    Expired { id: Hash, at: u64 },
    #[error("change {id} is already {status}")]
    NotPending { id: Hash, status: ChangeStatus },
    #[error("sender {approver} has already approved change {id}")]
    AlreadyApproved { id: Hash, approver: PublicKey },
    #[error("{proposer} has {max} changes pending already, the most one admin may; approve them or let them expire")]
    TooManyPending { proposer: PublicKey, max: usize },
    #[error("the chain would have {admins} admins, too few for its threshold of {threshold} (above 1, a threshold needs one admin more than it, so that a lost or compromised key can be replaced)")]
    AdminsBelowThreshold { admins: usize, threshold: u32 },
    #[error("change {id} has {max} approvals recorded, the most it may hold")]
    TooManyApprovals { id: Hash, max: usize },
    #[error("the chain would have more than {max} admins")]
    TooManyAdmins { max: usize },
    #[error("the governance state is missing (a store from before governance?)")]
    NoCouncil,
}

/// The governance state at `version`.
pub fn read_council<R: TreeReader>(reader: &R, version: u64) -> Result<Council, StateError> {
    let bytes = crate::state::read(reader, &StateKey::Council, version)?
        .ok_or_else(|| StateError::Corrupt(GovernanceError::NoCouncil.to_string()))?;
    Council::decode(&bytes).map_err(|e| StateError::Corrupt(e.to_string()))
}

/// The change `id` at `version`, if it was ever proposed.
pub fn read_change<R: TreeReader>(
    reader: &R,
    id: &Hash,
    version: u64,
) -> Result<Option<ChangeRecord>, StateError> {
    crate::state::read(reader, &StateKey::Change(*id), version)?
        .map(|b| ChangeRecord::decode(&b).map_err(|e| StateError::Corrupt(e.to_string())))
        .transpose()
}

/// Whether `admins` can govern with `threshold`: with a threshold above 1,
/// one admin more than it needs, so that one lost or compromised key can
/// still be removed (and replaced) by the others.
pub fn enough_admins(admins: usize, threshold: u32) -> bool {
    let threshold = threshold as usize;
    admins >= threshold && (threshold <= 1 || admins > threshold)
}

/// What a governance transaction asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action<'c> {
    Propose(&'c Change),
    Approve(Hash),
}

/// State writes a governance transaction makes, applied only if it succeeds.
type Writes = Vec<(StateKey, Option<OwnedValue>)>;

impl<R: TreeReader> BlockExecutor<'_, R> {
    /// The governance state as it stands after the transactions so far.
    pub fn council(&self) -> Result<Council, ApplyError> {
        let bytes = self
            .get(&StateKey::Council)?
            .ok_or(GovernanceError::NoCouncil)
            .map_err(TxError::from)?;
        Ok(Council::decode(&bytes).map_err(|e| StateError::Corrupt(e.to_string()))?)
    }

    /// The change `id` as it stands after the transactions so far.
    pub fn change_record(&self, id: &Hash) -> Result<Option<ChangeRecord>, StateError> {
        self.get(&StateKey::Change(*id))?
            .map(|b| ChangeRecord::decode(&b).map_err(|e| StateError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Carries out `action` for `sender` (whose account, with its new
    /// nonce, is already staged) in the transaction `id` at `height`.
    pub(crate) fn govern(
        &self,
        sender: PublicKey,
        id: Hash,
        height: u64,
        action: Action<'_>,
    ) -> Result<Writes, ApplyError> {
        let mut council = self.council()?;
        if !council.is_admin(&sender) {
            return Err(TxError::NotAdmin(sender).into());
        }
        let (id, mut record) = match action {
            Action::Propose(change) => {
                // Refused now if it could not apply now.
                self.apply_change(&mut council.clone(), change, (id, sender), height)?;
                council.pending.retain(|p| p.expires_at >= height);
                let record = ChangeRecord {
                    change: change.clone(),
                    proposer: sender,
                    proposed_at: height,
                    expires_at: height.saturating_add(council.expiry_blocks),
                    approvals: vec![sender],
                    status: StoredStatus::Pending,
                };
                (id, record)
            }
            Action::Approve(id) => {
                let mut record = self
                    .change_record(&id)?
                    .ok_or(GovernanceError::UnknownChange(id))
                    .map_err(TxError::from)?;
                match record.status_at(height) {
                    ChangeStatus::Pending => {}
                    ChangeStatus::Expired { at } => {
                        return Err(TxError::from(GovernanceError::Expired { id, at }).into())
                    }
                    status => {
                        return Err(TxError::from(GovernanceError::NotPending { id, status }).into())
                    }
                }
                if record.approvals.len() >= APPROVALS_MAX {
                    return Err(TxError::from(GovernanceError::TooManyApprovals {
                        id,
                        max: APPROVALS_MAX,
                    })
                    .into());
                }
                if record.approvals.contains(&sender) {
                    return Err(TxError::from(GovernanceError::AlreadyApproved {
                        id,
                        approver: sender,
                    })
                    .into());
                }
                record.approvals.push(sender);
                (id, record)
            }
        };
        let mut writes = Writes::new();
        if record.approvals_counted(&council) >= council.threshold as usize {
            writes =
                self.apply_change(&mut council, &record.change, (id, record.proposer), height)?;
            record.status = StoredStatus::Applied { height };
            council.pending.retain(|p| p.id != id);
        } else if matches!(action, Action::Propose(_)) {
            let own = council
                .pending
                .iter()
                .filter(|p| p.proposer == sender)
                .count();
            if own >= PENDING_PER_ADMIN_MAX {
                return Err(TxError::from(GovernanceError::TooManyPending {
                    proposer: sender,
                    max: PENDING_PER_ADMIN_MAX,
                })
                .into());
            }
            // Invariant: at most ADMINS_MAX proposers with at most
            // PENDING_PER_ADMIN_MAX each, so the list stays within
            // PENDING_MAX (proposers who left keep theirs until expiry, but
            // each of them counted as an admin when it proposed).
            council.pending.push(PendingChange {
                id,
                expires_at: record.expires_at,
                proposer: sender,
            });
        }
        writes.push((StateKey::Change(id), Some(encoding::encode(&record))));
        writes.push((StateKey::Council, Some(encoding::encode(&council))));
        Ok(writes)
    }

    /// The writes of `change` (the change `id`, proposed by `proposer`) on
    /// the state so far at `height`; updates `council` to match. An admin
    /// who leaves withdraws its other pending changes.
    fn apply_change(
        &self,
        council: &mut Council,
        change: &Change,
        (id, proposer): (Hash, PublicKey),
        height: u64,
    ) -> Result<Writes, ApplyError> {
        let (account, state) = match change {
            Change::Grant { account, role } => (*account, self.granted(account, *role)?),
            Change::Revoke { account } => (*account, self.revoked(account, proposer)?),
            member => return self.member_change(member),
        };
        let mut writes = vec![(StateKey::Account(account), Some(encoding::encode(&state)))];
        let admin = state.active && state.role == Role::Admin;
        if !admin && council.is_admin(&account) {
            council.admins.retain(|a| *a != account);
            let (gone, kept) = std::mem::take(&mut council.pending)
                .into_iter()
                .partition(|p| p.proposer == account && p.id != id);
            council.pending = kept;
            for p in gone as Vec<PendingChange> {
                if let Some(mut record) = self.change_record(&p.id)? {
                    record.status = StoredStatus::Withdrawn { height };
                    writes.push((StateKey::Change(p.id), Some(encoding::encode(&record))));
                }
            }
        } else if admin && !council.is_admin(&account) {
            if council.admins.len() >= ADMINS_MAX {
                return Err(
                    TxError::from(GovernanceError::TooManyAdmins { max: ADMINS_MAX }).into(),
                );
            }
            council.admins.push(account);
        }
        if !enough_admins(council.admins.len(), council.threshold) {
            return Err(TxError::from(GovernanceError::AdminsBelowThreshold {
                admins: council.admins.len(),
                threshold: council.threshold,
            })
            .into());
        }
        Ok(writes)
    }

    /// The state of `account` once granted `role`.
    fn granted(&self, account: &PublicKey, role: Role) -> Result<AccountState, ApplyError> {
        if account.is_weak() {
            return Err(TxError::WeakAccountKey(*account).into());
        }
        Ok(match self.account(account)? {
            Some(existing) => AccountState {
                role,
                active: true,
                ..existing
            },
            None => AccountState {
                role,
                active: true,
                balance: 0,
                nonce: 0,
            },
        })
    }

    /// The state of `account` once revoked by `proposer`'s change.
    fn revoked(
        &self,
        account: &PublicKey,
        proposer: PublicKey,
    ) -> Result<AccountState, ApplyError> {
        if *account == proposer {
            return Err(TxError::RevokeSelf.into());
        }
        let mut state = self
            .account(account)?
            .ok_or(TxError::AccountNotFound(*account))?;
        if !state.active {
            return Err(TxError::AlreadyRevoked(*account).into());
        }
        state.active = false;
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> PublicKey {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        PublicKey(b)
    }

    /// What execution can write always decodes again: the fullest council
    /// and change record fit their decode bounds.
    #[test]
    fn the_fullest_council_and_record_decode() {
        let council = Council {
            threshold: u32::MAX,
            expiry_blocks: u64::MAX,
            admins: (0..ADMINS_MAX).map(key).collect(),
            pending: (0..PENDING_MAX)
                .map(|i| PendingChange {
                    id: Hash([i as u8; 32]),
                    expires_at: u64::MAX,
                    proposer: key(i),
                })
                .collect(),
        };
        let bytes = encoding::encode(&council);
        assert_eq!(bytes.len(), COUNCIL_BYTES_MAX);
        assert_eq!(Council::decode(&bytes).unwrap(), council);

        let record = ChangeRecord {
            change: Change::Grant {
                account: key(0),
                role: Role::Admin,
            },
            proposer: key(1),
            proposed_at: u64::MAX,
            expires_at: u64::MAX,
            approvals: (0..APPROVALS_MAX).map(key).collect(),
            status: StoredStatus::Applied { height: u64::MAX },
        };
        let bytes = encoding::encode(&record);
        assert!(bytes.len() <= CHANGE_RECORD_BYTES_MAX, "{}", bytes.len());
        assert_eq!(ChangeRecord::decode(&bytes).unwrap(), record);
    }
}
