//! Membership in the state: the validators (with the names and node keys
//! that nodes and clients need beside keys and powers) and the replicas.
//!
//! The state after block `h` holds the validators of block `h + 1`
//! ([`StateKey::Validators`]) and of block `h + 2`
//! ([`StateKey::NextValidators`]), so a node knows the set of a height
//! before it starts it, and a header can commit to both. Genesis (version
//! 0) holds the genesis validators in both. The replicas
//! ([`StateKey::Replicas`]) are the ones allowed to connect after block `h`.

use std::collections::BTreeMap;

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::storage::TreeReader;
use jmt::OwnedValue;

use crate::crypto::{Domain, PublicKey};
use crate::encoding::{self, DecodeError};
use crate::execution::{ApplyError, BlockExecutor, TxError};
use crate::genesis::{
    node_key_from_peer_id, peer_id_from_node_key, Genesis, NAME_BYTES_MAX, REPLICAS_MAX,
};
use crate::governance::Change;
use crate::state::{self, StateError, StateKey};
use crate::types::{Validator, ValidatorSet, ValidatorSetError, VALIDATORS_MAX};

/// A validator, as the state records it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ValidatorEntry {
    pub name: String,
    /// The consensus key.
    pub public_key: PublicKey,
    /// The node's network identity key (its libp2p PeerId).
    pub node_key: PublicKey,
    pub power: u64,
}

/// A read replica, as the state records it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct ReplicaEntry {
    pub name: String,
    pub node_key: PublicKey,
}

/// The validators of one height, in their fixed order (a validator's
/// position is its index in commit certificates).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Validators(pub Vec<ValidatorEntry>);

/// The replicas allowed to connect.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Replicas(pub Vec<ReplicaEntry>);

/// The largest encoding of a validator list: each entry a name at the
/// longest, two keys and a power.
pub const VALIDATORS_BYTES_MAX: usize = 4 + VALIDATORS_MAX * (4 + NAME_BYTES_MAX + 32 + 32 + 8);
/// The largest encoding of a replica list.
pub const REPLICAS_BYTES_MAX: usize = 4 + REPLICAS_MAX * (4 + NAME_BYTES_MAX + 32);

impl Validators {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, VALIDATORS_BYTES_MAX, "validator list")
    }

    /// The set consensus counts votes with.
    pub fn set(&self) -> Result<ValidatorSet, ValidatorSetError> {
        ValidatorSet::new(
            self.0
                .iter()
                .map(|v| Validator {
                    public_key: v.public_key,
                    power: v.power,
                })
                .collect(),
        )
    }
}

impl Replicas {
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, REPLICAS_BYTES_MAX, "replica list")
    }
}

/// Why a membership change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("name {0:?} must be 1 to {NAME_BYTES_MAX} bytes")]
    BadName(String),
    #[error("name {0:?} is already a validator's or a replica's")]
    NameInUse(String),
    #[error("key {0} is small-order or not a curve point: make a new key")]
    WeakKey(PublicKey),
    #[error("consensus key {key} is already in use by validator {name:?}")]
    ConsensusKeyInUse { key: PublicKey, name: String },
    #[error("node key {peer_id} is already in use by {name:?}")]
    NodeKeyInUse { peer_id: String, name: String },
    #[error("no validator has consensus key {0}")]
    UnknownValidator(PublicKey),
    #[error("no replica has node key {0}")]
    UnknownReplica(String),
    #[error("a validator's power must be at least 1 (remove it instead)")]
    ZeroPower,
    #[error("the change would leave the chain without validators")]
    EmptySet,
    #[error("the next set would move power {moved} of {total} (more than a third) from the set before it, so their quorums might share no honest validator; make the change in steps, in different blocks")]
    TooMuchPowerMoved { moved: u64, total: u64 },
    #[error("the rotation is not signed by the old key {0}: its holder must consent")]
    NoConsent(PublicKey),
    #[error("the next set would be invalid: {0}")]
    InvalidSet(ValidatorSetError),
    #[error("the chain would have more than {REPLICAS_MAX} replicas")]
    TooManyReplicas,
}

/// What the old key signs ([`Domain::Rotation`]) to consent to rotating
/// to `new_key`.
pub fn rotation_message(old_key: &PublicKey, new_key: &PublicKey) -> Vec<u8> {
    encoding::encode(&(old_key, new_key))
}

/// The power that moves from `from` to `to`: the larger of what leaves the
/// first set and what joins the second. A validator is the same in both
/// only with the same node and the same consensus key, so a rotation moves
/// its validator's power (the new key signs nothing before it is in force:
/// rotating much of the power at once would stall the chain until every
/// operator switched keys).
pub fn power_moved(from: &Validators, to: &Validators) -> u64 {
    let before: BTreeMap<(&PublicKey, &PublicKey), u64> = from
        .0
        .iter()
        .map(|v| ((&v.node_key, &v.public_key), v.power))
        .collect();
    let shared: u64 =
        to.0.iter()
            .filter_map(|v| {
                before
                    .get(&(&v.node_key, &v.public_key))
                    .map(|p| (*p).min(v.power))
            })
            .fold(0, u64::saturating_add);
    let total = |s: &Validators| s.0.iter().map(|v| v.power).fold(0, u64::saturating_add);
    (total(from).saturating_sub(shared)).max(total(to).saturating_sub(shared))
}

/// The genesis validators and replicas. Genesis validation has checked
/// every peer id, so none is dropped here.
pub fn genesis_members(genesis: &Genesis) -> (Validators, Replicas) {
    let node_key = |peer_id: &str| node_key_from_peer_id(peer_id).ok();
    let validators = genesis
        .validators
        .iter()
        .filter_map(|v| {
            Some(ValidatorEntry {
                name: v.name.clone(),
                public_key: v.public_key,
                node_key: node_key(&v.peer_id)?,
                power: v.power,
            })
        })
        .collect();
    let replicas = genesis
        .replicas
        .iter()
        .filter_map(|r| {
            Some(ReplicaEntry {
                name: r.name.clone(),
                node_key: node_key(&r.peer_id)?,
            })
        })
        .collect();
    (Validators(validators), Replicas(replicas))
}

/// The validators of block `height` (at least 1): the state after its
/// parent says.
pub fn read_validators<R: TreeReader>(reader: &R, height: u64) -> Result<Validators, StateError> {
    let version = height
        .checked_sub(1)
        .ok_or_else(|| StateError::Corrupt("height 0 has no validators".into()))?;
    read_entry(reader, &StateKey::Validators, version, Validators::decode)
}

/// The membership entry `key` (a validator list or the replicas) in the
/// state at `version`, decoded with `decode`.
pub fn read_entry<R: TreeReader, T>(
    reader: &R,
    key: &StateKey,
    version: u64,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, StateError> {
    decoded(state::read(reader, key, version)?, key, decode)
}

/// The node keys allowed to connect after the block whose state `version`
/// is: the validators of the next two blocks (a new validator's node may
/// connect once its change is committed; a removed one's until its removal
/// applies) and the replicas.
pub fn read_allowed_nodes<R: TreeReader>(
    reader: &R,
    version: u64,
) -> Result<Vec<PublicKey>, StateError> {
    let mut nodes = Vec::new();
    for key in [StateKey::Validators, StateKey::NextValidators] {
        let validators = read_entry(reader, &key, version, Validators::decode)?;
        nodes.extend(validators.0.iter().map(|v| v.node_key));
    }
    let replicas = read_entry(reader, &StateKey::Replicas, version, Replicas::decode)?;
    nodes.extend(replicas.0.iter().map(|r| r.node_key));
    nodes.sort();
    nodes.dedup();
    Ok(nodes)
}

fn decoded<T>(
    bytes: Option<OwnedValue>,
    key: &StateKey,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<T, StateError> {
    let bytes = bytes.ok_or_else(|| StateError::Corrupt(format!("the state has no {key:?}")))?;
    decode(&bytes).map_err(|e| StateError::Corrupt(format!("{key:?}: {e}")))
}

impl<R: TreeReader> BlockExecutor<'_, R> {
    /// The validators of the next block, as this block leaves them.
    pub fn validators(&self) -> Result<Validators, StateError> {
        let key = StateKey::Validators;
        decoded(self.get(&key)?, &key, Validators::decode)
    }

    /// The validators of the block after the next, as the transactions so
    /// far leave them.
    pub fn next_validators(&self) -> Result<Validators, StateError> {
        let key = StateKey::NextValidators;
        decoded(self.get(&key)?, &key, Validators::decode)
    }

    /// The replicas, as the transactions so far leave them.
    pub fn replicas(&self) -> Result<Replicas, StateError> {
        let key = StateKey::Replicas;
        decoded(self.get(&key)?, &key, Replicas::decode)
    }

    /// The block's first step: the set its parent's state named for the
    /// block after it becomes the set of the next block. Returns the write,
    /// if the sets differ.
    pub(crate) fn advance_validators(&self) -> Result<Option<OwnedValue>, StateError> {
        let current = self.get(&StateKey::Validators)?;
        let next = self.get(&StateKey::NextValidators)?;
        Ok(if current != next { next } else { None })
    }

    /// The writes of a validator or replica change on the state so far,
    /// refused with its reason when it breaks a rule.
    pub(crate) fn member_change(
        &self,
        change: &Change,
    ) -> Result<Vec<(StateKey, Option<OwnedValue>)>, ApplyError> {
        let refuse = |e: MembershipError| ApplyError::from(TxError::from(e));
        let current = self.validators()?;
        let mut next = self.next_validators()?;
        let mut replicas = self.replicas()?;
        let position = |set: &Validators, key: &PublicKey| {
            set.0
                .iter()
                .position(|v| v.public_key == *key)
                .ok_or(MembershipError::UnknownValidator(*key))
        };
        match change {
            Change::Grant { .. } | Change::Revoke { .. } => return Ok(Vec::new()),
            Change::AddReplica { name, node_key } => {
                self.check_newcomer(name, node_key, None, [&current, &next], &replicas)
                    .map_err(refuse)?;
                if replicas.0.len() >= REPLICAS_MAX {
                    return Err(refuse(MembershipError::TooManyReplicas));
                }
                replicas.0.push(ReplicaEntry {
                    name: name.clone(),
                    node_key: *node_key,
                });
                return Ok(vec![(
                    StateKey::Replicas,
                    Some(encoding::encode(&replicas)),
                )]);
            }
            Change::RemoveReplica { node_key } => {
                let before = replicas.0.len();
                replicas.0.retain(|r| r.node_key != *node_key);
                if replicas.0.len() == before {
                    return Err(refuse(MembershipError::UnknownReplica(
                        peer_id_from_node_key(node_key),
                    )));
                }
                return Ok(vec![(
                    StateKey::Replicas,
                    Some(encoding::encode(&replicas)),
                )]);
            }
            Change::AddValidator {
                name,
                public_key,
                node_key,
                power,
            } => {
                self.check_newcomer(
                    name,
                    node_key,
                    Some(public_key),
                    [&current, &next],
                    &replicas,
                )
                .map_err(refuse)?;
                next.0.push(ValidatorEntry {
                    name: name.clone(),
                    public_key: *public_key,
                    node_key: *node_key,
                    power: *power,
                });
            }
            Change::RemoveValidator { public_key } => {
                let at = position(&next, public_key).map_err(refuse)?;
                next.0.remove(at);
                if next.0.is_empty() {
                    return Err(refuse(MembershipError::EmptySet));
                }
            }
            Change::SetPower { public_key, power } => {
                let at = position(&next, public_key).map_err(refuse)?;
                next.0[at].power = *power;
            }
            Change::RotateKey {
                public_key,
                new_key,
                consent,
            } => {
                let at = position(&next, public_key).map_err(refuse)?;
                check_consensus_key(new_key, [&current, &next]).map_err(refuse)?;
                public_key
                    .verify(
                        Domain::Rotation,
                        self.chain_id(),
                        &rotation_message(public_key, new_key),
                        consent,
                    )
                    .map_err(|_| refuse(MembershipError::NoConsent(*public_key)))?;
                next.0[at].public_key = *new_key;
            }
        }
        if next.0.iter().any(|v| v.power == 0) {
            return Err(refuse(MembershipError::ZeroPower));
        }
        next.set()
            .map_err(|e| refuse(MembershipError::InvalidSet(e)))?;
        let total = current
            .0
            .iter()
            .map(|v| v.power)
            .fold(0, u64::saturating_add);
        let moved = power_moved(&current, &next);
        if u128::from(moved) * 3 > u128::from(total) {
            return Err(refuse(MembershipError::TooMuchPowerMoved { moved, total }));
        }
        Ok(vec![(
            StateKey::NextValidators,
            Some(encoding::encode(&next)),
        )])
    }

    /// A new validator's or replica's name and keys: well formed and used by
    /// no one in `sets` or `replicas`.
    fn check_newcomer(
        &self,
        name: &str,
        node_key: &PublicKey,
        consensus_key: Option<&PublicKey>,
        sets: [&Validators; 2],
        replicas: &Replicas,
    ) -> Result<(), MembershipError> {
        if name.is_empty() || name.len() > NAME_BYTES_MAX {
            return Err(MembershipError::BadName(name.to_string()));
        }
        if node_key.is_weak() {
            return Err(MembershipError::WeakKey(*node_key));
        }
        if let Some(key) = consensus_key {
            check_consensus_key(key, sets)?;
        }
        let members = sets
            .iter()
            .flat_map(|s| s.0.iter().map(|v| (&v.name, &v.node_key)))
            .chain(replicas.0.iter().map(|r| (&r.name, &r.node_key)));
        for (other, key) in members {
            if other == name {
                return Err(MembershipError::NameInUse(name.to_string()));
            }
            if key == node_key {
                return Err(MembershipError::NodeKeyInUse {
                    peer_id: peer_id_from_node_key(node_key),
                    name: other.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A consensus key a validator may take: not weak, and no validator's in
/// `sets`.
fn check_consensus_key(key: &PublicKey, sets: [&Validators; 2]) -> Result<(), MembershipError> {
    if key.is_weak() {
        return Err(MembershipError::WeakKey(*key));
    }
    match sets
        .iter()
        .flat_map(|s| &s.0)
        .find(|v| v.public_key == *key)
    {
        Some(v) => Err(MembershipError::ConsensusKeyInUse {
            key: *key,
            name: v.name.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::genesis::peer_id_from_node_key;
    use crate::testkit::TestChain;

    #[test]
    fn genesis_state_holds_the_genesis_validators_and_replicas() {
        let mut chain = TestChain::new(4, 3);
        let from_state = read_validators(&chain.state, 1).unwrap();
        assert_eq!(from_state.set().unwrap(), chain.validator_set);
        for (entry, g) in from_state.0.iter().zip(&chain.genesis.validators) {
            assert_eq!(entry.name, g.name);
            assert_eq!(peer_id_from_node_key(&entry.node_key), g.peer_id);
        }
        let next = state::read(&chain.state, &StateKey::NextValidators, 0)
            .unwrap()
            .unwrap();
        assert_eq!(Validators::decode(&next).unwrap(), from_state);
        // Blocks leave them as they are: no change of the set exists yet.
        let tx = chain.transfer(1, 2, 5);
        chain.push(vec![tx]).unwrap();
        assert_eq!(read_validators(&chain.state, 2).unwrap(), from_state);
        assert!(read_validators(&chain.state, 0).is_err());
    }

    #[test]
    fn the_fullest_lists_decode() {
        let key = PublicKey([9; 32]);
        let name = "n".repeat(NAME_BYTES_MAX);
        let validators = Validators(
            (0..VALIDATORS_MAX)
                .map(|_| ValidatorEntry {
                    name: name.clone(),
                    public_key: key,
                    node_key: key,
                    power: u64::MAX,
                })
                .collect(),
        );
        let bytes = encoding::encode(&validators);
        assert_eq!(bytes.len(), VALIDATORS_BYTES_MAX);
        assert_eq!(Validators::decode(&bytes).unwrap(), validators);
        let replicas = Replicas(
            (0..REPLICAS_MAX)
                .map(|_| ReplicaEntry {
                    name: name.clone(),
                    node_key: key,
                })
                .collect(),
        );
        let bytes = encoding::encode(&replicas);
        assert_eq!(bytes.len(), REPLICAS_BYTES_MAX);
        assert_eq!(Replicas::decode(&bytes).unwrap(), replicas);
    }
}
