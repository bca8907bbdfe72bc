//! The genesis file: the chain's identity, parameters, validators, replicas
//! and initial accounts. See `genesis/README.md` for every field.
//!
//! Loading is strict: unknown fields are refused, and every problem is
//! reported with the JSON path of the field at fault.

use borsh::BorshSerialize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::crypto::PublicKey;
use crate::encoding;
use crate::governance::{enough_admins, GovernanceParams, ADMINS_MAX, EXPIRY_BLOCKS_MAX};
use crate::hash::Hash;
use crate::types::{check_chain_id, Role, Validator, ValidatorSet, ValidatorSetError};
use crate::types::{
    BLOCK_BYTES_CAP, BLOCK_OVERHEAD_BYTES_MAX, FIXED_TX_BYTES_MAX, GOVERNANCE_TX_BYTES_MAX,
};
use crate::types::{PUT_TX_FRAMING_BYTES_MAX, TOTAL_POWER_MAX, TX_BYTES_CAP, VALIDATORS_MAX};

/// A genesis file larger than this is refused, and never read past it.
pub const GENESIS_BYTES_MAX: u64 = 16 << 20;
/// The longest validator or replica name.
pub const NAME_BYTES_MAX: usize = 64;
/// The most replicas, and the most genesis accounts.
pub const REPLICAS_MAX: usize = 1_000;
pub const ACCOUNTS_MAX: usize = 100_000;
/// The latest genesis time, 9999-12-31T23:59:59.999Z. Block times only grow
/// from it, so it stays far from where `time_ms + 1` would overflow.
pub const GENESIS_TIME_MS_MAX: u64 = 253_402_300_799_999;
/// The lowest `tx_bytes_max`: room for a transfer and for any governance
/// proposal (a validator added with the longest name) on a chain with the
/// longest chain id.
pub const TX_BYTES_MAX_FLOOR: u64 = 512;
const _: () = assert!(FIXED_TX_BYTES_MAX as u64 <= TX_BYTES_MAX_FLOOR);
const _: () = assert!(GOVERNANCE_TX_BYTES_MAX as u64 <= TX_BYTES_MAX_FLOOR);
/// The longest record key genesis may allow.
pub const KEY_BYTES_MAX_CAP: u64 = 1024;
/// The most transactions genesis may allow in a block.
pub const BLOCK_TXS_MAX_CAP: u64 = 100_000;
/// Bounds of the consensus timeouts, in milliseconds. Round `r` waits
/// `timeout + r * timeout_delta_ms`: never zero, and even at round 1000 at
/// most about 17 hours, so timers stay far from any overflow.
pub const TIMEOUT_MS_MIN: u64 = 10;
pub const TIMEOUT_MS_MAX: u64 = 60_000;

/// Consensus parameters fixed at genesis. Units are in the names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub block_bytes_max: u64,
    pub block_txs_max: u32,
    pub tx_bytes_max: u32,
    pub key_bytes_max: u32,
    pub value_bytes_max: u32,
    pub timeout_propose_ms: u64,
    pub timeout_prevote_ms: u64,
    pub timeout_precommit_ms: u64,
    /// Added to each timeout per round, so timeouts grow until the network
    /// is fast enough again.
    pub timeout_delta_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            block_bytes_max: 4 << 20,
            block_txs_max: 10_000,
            tx_bytes_max: 64 << 10,
            key_bytes_max: 256,
            value_bytes_max: 16 << 10,
            timeout_propose_ms: 1_000,
            timeout_prevote_ms: 500,
            timeout_precommit_ms: 500,
            timeout_delta_ms: 500,
        }
    }
}

/// A validator entry in genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisValidator {
    pub name: String,
    /// The consensus signing key.
    pub public_key: PublicKey,
    /// The libp2p identity of the validator's node (from its node key).
    pub peer_id: String,
    pub power: u64,
}

/// A read replica: follows the chain, holds no validator key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisReplica {
    pub name: String,
    pub peer_id: String,
}

/// An account that exists from the start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    pub public_key: PublicKey,
    pub role: Role,
    pub balance: u64,
}

/// A validated genesis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, BorshSerialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    /// Milliseconds since the Unix epoch; block 1's time is after it.
    pub genesis_time_ms: u64,
    pub params: Params,
    pub validators: Vec<GenesisValidator>,
    #[serde(default)]
    pub replicas: Vec<GenesisReplica>,
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// Who approves changes: the threshold of the admin accounts.
    #[serde(default)]
    pub governance: GovernanceParams,
}

/// What is wrong with a genesis file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("genesis is at least {len} bytes, more than the limit of {GENESIS_BYTES_MAX}")]
    TooLarge { len: u64 },
    #[error("genesis is not valid JSON: {0}")]
    Syntax(String),
    /// A field is wrong; `field` is its JSON path, e.g. `validators[2].power`.
    #[error("genesis field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> GenesisError {
    GenesisError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The values one parameter may take, inclusive, and why when the bound
/// comes from another parameter.
struct ParamRange {
    name: &'static str,
    value: u64,
    min: u64,
    max: u64,
    why: &'static str,
}

impl Params {
    /// Every parameter's range, in the order they are checked. Some bounds
    /// depend on parameters checked before them (a put must fit in a
    /// transaction, a transaction in a block), so those are in range by the
    /// time their bounds are used.
    fn ranges(&self) -> [ParamRange; 9] {
        let range = |name, value: u64, min, max| ParamRange {
            name,
            value,
            min,
            max,
            why: "",
        };
        let tx_bytes_max = u64::from(self.tx_bytes_max);
        let key_bytes_max = u64::from(self.key_bytes_max);
        let put_room = tx_bytes_max.saturating_sub(PUT_TX_FRAMING_BYTES_MAX as u64);
        [
            range("tx_bytes_max", tx_bytes_max, TX_BYTES_MAX_FLOOR, TX_BYTES_CAP as u64),
            ParamRange {
                why: "; a put with the longest key must fit in params.tx_bytes_max",
                ..range(
                    "key_bytes_max",
                    key_bytes_max,
                    1,
                    KEY_BYTES_MAX_CAP.min(put_room),
                )
            },
            ParamRange {
                why: "; a put with the longest key and value must fit in params.tx_bytes_max",
                ..range(
                    "value_bytes_max",
                    self.value_bytes_max.into(),
                    0,
                    put_room.saturating_sub(key_bytes_max),
                )
            },
            ParamRange {
                why: "; a block must hold its header, the largest last commit and a transaction of params.tx_bytes_max",
                ..range(
                    "block_bytes_max",
                    self.block_bytes_max,
                    BLOCK_OVERHEAD_BYTES_MAX as u64 + tx_bytes_max,
                    BLOCK_BYTES_CAP as u64,
                )
            },
            range("block_txs_max", self.block_txs_max.into(), 1, BLOCK_TXS_MAX_CAP),
            range(
                "timeout_propose_ms",
                self.timeout_propose_ms,
                TIMEOUT_MS_MIN,
                TIMEOUT_MS_MAX,
            ),
            range(
                "timeout_prevote_ms",
                self.timeout_prevote_ms,
                TIMEOUT_MS_MIN,
                TIMEOUT_MS_MAX,
            ),
            range(
                "timeout_precommit_ms",
                self.timeout_precommit_ms,
                TIMEOUT_MS_MIN,
                TIMEOUT_MS_MAX,
            ),
            range(
                "timeout_delta_ms",
                self.timeout_delta_ms,
                TIMEOUT_MS_MIN,
                TIMEOUT_MS_MAX,
            ),
        ]
    }

    /// Refuses any parameter that could crash or stall a node, naming it and
    /// the values it may take.
    pub fn validate(&self) -> Result<(), GenesisError> {
        for r in self.ranges() {
            if r.value < r.min || r.value > r.max {
                return Err(field(
                    format!("params.{}", r.name),
                    format!(
                        "{} is out of range (allowed {} to {}){}",
                        r.value, r.min, r.max, r.why
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Reads the file at `path` if it holds at most `max` bytes, or says how
/// many bytes it holds at least (`Ok(Err(len))`). Reads and allocates at
/// most `max + 1` bytes, whatever the file's size claims (a pipe, a device,
/// a file still growing).
pub fn read_file_bounded(path: &Path, max: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let claimed = file.metadata()?.len();
    if claimed > max {
        return Ok(Err(claimed));
    }
    // `claimed <= max`, a limit of a few MiB.
    let mut bytes = Vec::with_capacity(claimed as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

impl Genesis {
    /// Reads and validates a genesis file, reading no more than the size
    /// limit.
    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let bytes = read_file_bounded(path, GENESIS_BYTES_MAX)
            .map_err(|e| GenesisError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?
            .map_err(|len| GenesisError::TooLarge { len })?;
        Self::from_json(&bytes)
    }

    /// Parses and validates genesis JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        if bytes.len() as u64 > GENESIS_BYTES_MAX {
            return Err(GenesisError::TooLarge {
                len: bytes.len() as u64,
            });
        }
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let genesis: Genesis = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                GenesisError::Syntax(inner.to_string())
            } else if path == "." {
                field("(top level)", strip_position(&inner.to_string()))
            } else {
                field(path, strip_position(&inner.to_string()))
            }
        })?;
        genesis.validate()?;
        Ok(genesis)
    }

    /// Checks every rule that types alone do not.
    pub fn validate(&self) -> Result<(), GenesisError> {
        check_chain_id(&self.chain_id).map_err(|p| field("chain_id", p))?;
        if self.genesis_time_ms > GENESIS_TIME_MS_MAX {
            return Err(field(
                "genesis_time_ms",
                format!(
                    "{} is out of range (allowed 0 to {GENESIS_TIME_MS_MAX}, the end of year 9999)",
                    self.genesis_time_ms
                ),
            ));
        }
        self.params.validate()?;

        if self.validators.is_empty() {
            return Err(field("validators", "the validator set is empty"));
        }
        if self.validators.len() > VALIDATORS_MAX {
            return Err(field(
                "validators",
                format!(
                    "{} validators is more than the limit of {VALIDATORS_MAX}",
                    self.validators.len()
                ),
            ));
        }
        if self.replicas.len() > REPLICAS_MAX {
            return Err(field(
                "replicas",
                format!("more than {REPLICAS_MAX} replicas"),
            ));
        }
        if self.accounts.len() > ACCOUNTS_MAX {
            return Err(field(
                "accounts",
                format!("more than {ACCOUNTS_MAX} accounts"),
            ));
        }

        let mut names = BTreeMap::new();
        let mut peers = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let mut check_name_and_peer = |path: String, name: &str, peer_id: &str| {
            if name.is_empty() || name.len() > NAME_BYTES_MAX {
                return Err(field(
                    format!("{path}.name"),
                    format!("must be 1 to {NAME_BYTES_MAX} characters"),
                ));
            }
            if let Some(first) = names.insert(name.to_string(), path.clone()) {
                return Err(field(
                    format!("{path}.name"),
                    format!("duplicate name {name:?} (also at {first})"),
                ));
            }
            node_key_from_peer_id(peer_id).map_err(|p| field(format!("{path}.peer_id"), p))?;
            if let Some(first) = peers.insert(peer_id.to_string(), path.clone()) {
                return Err(field(
                    format!("{path}.peer_id"),
                    format!("duplicate peer id {peer_id} (also at {first})"),
                ));
            }
            Ok(())
        };
        let mut total: u64 = 0;
        for (i, v) in self.validators.iter().enumerate() {
            let path = format!("validators[{i}]");
            check_name_and_peer(path.clone(), &v.name, &v.peer_id)?;
            if v.public_key.is_weak() {
                return Err(field(
                    format!("{path}.public_key"),
                    "is not a usable ed25519 key (small-order or not a curve point)",
                ));
            }
            if let Some(first) = keys.insert(v.public_key, path.clone()) {
                return Err(field(
                    format!("{path}.public_key"),
                    format!("duplicate validator key {} (also at {first})", v.public_key),
                ));
            }
            if v.power == 0 {
                return Err(field(
                    format!("{path}.power"),
                    "voting power must be at least 1",
                ));
            }
            total = total
                .checked_add(v.power)
                .filter(|t| *t <= TOTAL_POWER_MAX)
                .ok_or_else(|| {
                    field(
                        format!("{path}.power"),
                        format!("total voting power overflows the limit of {TOTAL_POWER_MAX}"),
                    )
                })?;
        }
        for (i, r) in self.replicas.iter().enumerate() {
            check_name_and_peer(format!("replicas[{i}]"), &r.name, &r.peer_id)?;
        }
        let mut accounts = BTreeMap::new();
        for (i, a) in self.accounts.iter().enumerate() {
            let path = format!("accounts[{i}]");
            if a.public_key.is_weak() {
                return Err(field(
                    format!("{path}.public_key"),
                    "is not a usable ed25519 key (small-order or not a curve point)",
                ));
            }
            if let Some(first) = accounts.insert(a.public_key, path.clone()) {
                return Err(field(
                    format!("{path}.public_key"),
                    format!("duplicate account {} (also at {first})", a.public_key),
                ));
            }
        }
        self.validate_governance()
    }

    /// The admins governance starts with: the admin accounts, in order.
    pub fn admins(&self) -> Vec<crate::crypto::PublicKey> {
        self.accounts
            .iter()
            .filter(|a| a.role == Role::Admin)
            .map(|a| a.public_key)
            .collect()
    }

    fn validate_governance(&self) -> Result<(), GenesisError> {
        let g = &self.governance;
        let admins = self.admins().len();
        if admins > ADMINS_MAX {
            return Err(field(
                "accounts",
                format!("{admins} admin accounts is more than the limit of {ADMINS_MAX}"),
            ));
        }
        if g.threshold == 0 {
            return Err(field(
                "governance.threshold",
                "must be at least 1 (the approvals a change needs)",
            ));
        }
        if admins > 0 && !enough_admins(admins, g.threshold) {
            return Err(field(
                "governance.threshold",
                format!(
                    "{} approvals need at least {} admin accounts (one more than the threshold, so that a lost or compromised admin key can be removed), found {admins}",
                    g.threshold,
                    g.threshold as usize + 1
                ),
            ));
        }
        if admins == 0 && g.threshold != 1 {
            return Err(field(
                "governance.threshold",
                "there are no admin accounts to approve changes; leave it at 1 or add admins",
            ));
        }
        if g.expiry_blocks == 0 || g.expiry_blocks > EXPIRY_BLOCKS_MAX {
            return Err(field(
                "governance.expiry_blocks",
                format!(
                    "{} is out of range (allowed 1 to {EXPIRY_BLOCKS_MAX})",
                    g.expiry_blocks
                ),
            ));
        }
        Ok(())
    }

    /// Reads a genesis already validated, as JSON text (pretty-printed).
    pub fn to_json(&self) -> String {
        // Invariant: every field serialises (strings, numbers, hex).
        #[allow(clippy::expect_used)]
        serde_json::to_string_pretty(self).expect("genesis serialises to JSON")
    }

    /// `sha256(encode("tally/genesis/v1") || encode(genesis))`: independent
    /// of JSON formatting, and the `prev_hash` of block 1.
    pub fn hash(&self) -> Hash {
        let mut bytes = encoding::encode("tally/genesis/v1");
        bytes.extend_from_slice(&encoding::encode(self));
        Hash::digest(&bytes)
    }

    /// The validator set that decides blocks.
    pub fn validator_set(&self) -> Result<ValidatorSet, ValidatorSetError> {
        ValidatorSet::new(
            self.validators
                .iter()
                .map(|v| Validator {
                    public_key: v.public_key,
                    power: v.power,
                })
                .collect(),
        )
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The multihash and protobuf prefix of an ed25519 libp2p PeerId: identity
/// multihash (0x00) of 36 bytes, protobuf `KeyType = Ed25519`, 32-byte data.
const ED25519_PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The libp2p PeerId (base58) of a node whose identity key is `node_key`.
pub fn peer_id_from_node_key(node_key: &PublicKey) -> String {
    let mut bytes = ED25519_PEER_ID_PREFIX.to_vec();
    bytes.extend_from_slice(&node_key.0);
    bs58::encode(bytes).into_string()
}

/// The ed25519 node key inside a PeerId. Tally nodes use ed25519 identities
/// only, so any other PeerId is refused.
pub fn node_key_from_peer_id(peer_id: &str) -> Result<PublicKey, String> {
    if peer_id.len() > 64 {
        return Err(format!("peer id is {} characters, too long", peer_id.len()));
    }
    let bytes = bs58::decode(peer_id)
        .into_vec()
        .map_err(|e| format!("peer id {peer_id:?} is not base58: {e}"))?;
    match bytes.strip_prefix(&ED25519_PEER_ID_PREFIX[..]) {
        Some(key) if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(PublicKey(out))
        }
        _ => Err(format!(
            "peer id {peer_id:?} is not an ed25519 libp2p peer id (expected one starting 12D3KooW)"
        )),
    }
}

#[cfg(test)]
mod tests;
