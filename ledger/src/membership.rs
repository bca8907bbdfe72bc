//! Membership in the state: the validators (with the names and node keys
//! that nodes and clients need beside keys and powers) and the replicas.
//!
//! The state after block `h` holds the validators of block `h + 1`
//! ([`StateKey::Validators`]) and of block `h + 2`
//! ([`StateKey::NextValidators`]), so a node knows the set of a height
//! before it starts it, and a header can commit to both. Genesis (version
//! 0) holds the genesis validators in both. The replicas
//! ([`StateKey::Replicas`]) are the ones allowed to connect after block `h`.

use borsh::{BorshDeserialize, BorshSerialize};
use jmt::storage::TreeReader;

use crate::crypto::PublicKey;
use crate::encoding::{self, DecodeError};
use crate::genesis::{node_key_from_peer_id, Genesis, NAME_BYTES_MAX, REPLICAS_MAX};
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
    let bytes = state::read(reader, &StateKey::Validators, version)?
        .ok_or_else(|| StateError::Corrupt(format!("no validators at state {version}")))?;
    Validators::decode(&bytes).map_err(|e| StateError::Corrupt(e.to_string()))
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
