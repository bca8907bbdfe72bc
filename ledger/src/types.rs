//! The replicated data: transactions, blocks, votes, commit certificates and
//! validator sets. Everything here is encoded with [`crate::encoding`].

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::crypto::{Domain, Keypair, PublicKey, Signature};
use crate::encoding::{self, DecodeError};
use crate::governance::Change;
use crate::hash::{merkle_root, Hash};

/// Hard ceiling on one transaction's encoding; genesis may set a lower one.
pub const TX_BYTES_CAP: usize = 1 << 20;
/// Hard ceiling on one block's encoding; genesis may set a lower one.
pub const BLOCK_BYTES_CAP: usize = 64 << 20;
/// The most validators a set may hold.
pub const VALIDATORS_MAX: usize = 1_000;
/// Total voting power is kept below this so quorum arithmetic never overflows.
pub const TOTAL_POWER_MAX: u64 = 1 << 60;
/// A commit certificate's encoding is never larger than this.
pub const CERTIFICATE_BYTES_MAX: usize = 64 + VALIDATORS_MAX * (4 + 64) + 16;
/// The longest chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// A header's encoding is never larger than this: its chain id at the
/// longest, two integers, six hashes and the proposer's key.
pub const HEADER_BYTES_MAX: usize = 4 + CHAIN_ID_BYTES_MAX + 8 + 8 + 6 * 32 + 32;
/// The most a block's encoding adds to the encodings of its transactions:
/// the header, the transaction count and the largest `last_commit`. A
/// proposer fills at most `block_bytes_max - BLOCK_OVERHEAD_BYTES_MAX` with
/// transactions, and genesis keeps that room at least `tx_bytes_max`.
pub const BLOCK_OVERHEAD_BYTES_MAX: usize = HEADER_BYTES_MAX + 4 + 1 + CERTIFICATE_BYTES_MAX;
/// A signed `Put`'s encoding beyond its key and value bytes, with the
/// longest chain id: chain id, sender, nonce, op tag, two lengths, signature.
pub const PUT_TX_FRAMING_BYTES_MAX: usize = 4 + CHAIN_ID_BYTES_MAX + 32 + 8 + 1 + 4 + 4 + 64;
/// The largest signed transaction whose op has a fixed size (a `Transfer`;
/// grants and revokes are smaller), with the longest chain id.
pub const FIXED_TX_BYTES_MAX: usize = 4 + CHAIN_ID_BYTES_MAX + 32 + 8 + (1 + 32 + 8) + 64;

/// The largest signed governance proposal (adding a validator with the
/// longest name), with the longest chain id: chain id, sender, nonce, op
/// and change tags, the change, signature.
pub const GOVERNANCE_TX_BYTES_MAX: usize =
    4 + CHAIN_ID_BYTES_MAX + 32 + 8 + 2 + (4 + crate::genesis::NAME_BYTES_MAX + 32 + 32 + 8) + 64;

/// Checks a chain id: 1 to 64 characters of `[A-Za-z0-9._-]`.
pub fn check_chain_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > CHAIN_ID_BYTES_MAX {
        return Err(format!(
            "chain id must be 1 to {CHAIN_ID_BYTES_MAX} characters, found {}",
            id.len()
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "chain id may hold only letters, digits, '.', '_' and '-', found {c:?}"
        ));
    }
    Ok(())
}

/// An account's role.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May grant and revoke accounts, and transact like a member.
    Admin,
    /// May transfer and keep records in its own namespace.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum Op {
    /// Moves `amount` from the sender to `to`.
    Transfer { to: PublicKey, amount: u64 },
    /// Sets the record `key` in the sender's namespace.
    Put { key: Vec<u8>, value: Vec<u8> },
    /// Removes the record `key` from the sender's namespace.
    Delete { key: Vec<u8> },
    /// Admin only: admits `account` with `role` (or changes its role, or
    /// re-admits a revoked account).
    GrantAccount { account: PublicKey, role: Role },
    /// Admin only: revokes `account`; it keeps its state but may no longer
    /// transact.
    RevokeAccount { account: PublicKey },
    /// Admin only: proposes a change that needs the admins' threshold (its
    /// id is this transaction's hash); the proposal is its first approval.
    Propose { change: Box<Change> },
    /// Admin only: approves the pending change with this id.
    Approve { change: Hash },
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Transfer { .. } => "transfer",
            Op::Put { .. } => "put",
            Op::Delete { .. } => "delete",
            Op::GrantAccount { .. } => "grant",
            Op::RevokeAccount { .. } => "revoke",
            Op::Propose { .. } => "propose",
            Op::Approve { .. } => "approve",
        }
    }
}

/// An unsigned transaction.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Tx {
    pub chain_id: String,
    pub sender: PublicKey,
    /// Strictly the sender's previous nonce plus one (the first is 1).
    pub nonce: u64,
    pub op: Op,
}

impl Tx {
    /// Signs the transaction with the sender's key.
    pub fn sign(self, key: &Keypair) -> SignedTx {
        let signature = key.sign(Domain::Tx, &self.chain_id, &encoding::encode(&self));
        SignedTx {
            tx: self,
            signature,
        }
    }
}

/// A transaction with its sender's signature.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedTx {
    pub tx: Tx,
    pub signature: Signature,
}

impl SignedTx {
    /// `sha256(encoding(signed tx))`.
    pub fn hash(&self) -> Hash {
        Hash::digest(&encoding::encode(self))
    }

    /// Decodes a transaction of at most `max_bytes`.
    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Self, DecodeError> {
        encoding::decode(bytes, max_bytes.min(TX_BYTES_CAP), "transaction")
    }

    /// The message the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        encoding::encode(&self.tx)
    }
}

/// A block header. `block_hash = sha256(encoding(header))`.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Header {
    pub chain_id: String,
    pub height: u64,
    /// Milliseconds since the Unix epoch, as proposed.
    pub time_ms: u64,
    /// The parent's block hash; for height 1 the genesis hash.
    pub prev_hash: Hash,
    /// RFC 6962 root over the tx hashes.
    pub tx_root: Hash,
    /// The state root after executing this block.
    pub state_root: Hash,
    /// Hash of the validator set that decides this block.
    pub validators_hash: Hash,
    /// Hash of the validator set that decides the next block, so that a
    /// node knows it before it starts that height.
    pub next_validators_hash: Hash,
    /// The validator that proposed the block.
    pub proposer: PublicKey,
    /// Hash of `last_commit` (all zeroes for height 1, which has none).
    pub last_commit_hash: Hash,
}

impl Header {
    pub fn hash(&self) -> Hash {
        Hash::digest(&encoding::encode(self))
    }
}

/// A block: header, transactions, and the certificate of the parent.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    pub header: Header,
    pub txs: Vec<SignedTx>,
    pub last_commit: Option<CommitCertificate>,
}

impl Block {
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }

    pub fn height(&self) -> u64 {
        self.header.height
    }

    pub fn decode(bytes: &[u8], max_bytes: usize) -> Result<Self, DecodeError> {
        encoding::decode(bytes, max_bytes.min(BLOCK_BYTES_CAP), "block")
    }

    pub fn tx_hashes(&self) -> Vec<Hash> {
        self.txs.iter().map(SignedTx::hash).collect()
    }

    /// The root the header's `tx_root` must equal.
    pub fn compute_tx_root(&self) -> Hash {
        merkle_root(&self.tx_hashes())
    }
}

/// Hash committed in the header for a block's `last_commit`.
pub fn last_commit_hash(last_commit: Option<&CommitCertificate>) -> Hash {
    match last_commit {
        None => Hash::ZERO,
        Some(cert) => Hash::digest(&encoding::encode(cert)),
    }
}

/// The two voting steps of Tendermint.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub enum VoteKind {
    Prevote,
    Precommit,
}

/// A vote for a block hash, or for nil (`value == None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Vote {
    pub kind: VoteKind,
    pub height: u64,
    pub round: u32,
    pub value: Option<Hash>,
}

impl Vote {
    /// The bytes a validator signs for this vote (before domain separation).
    pub fn message(&self) -> Vec<u8> {
        encoding::encode(self)
    }
}

/// One validator's precommit signature inside a certificate.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitSig {
    /// Position of the validator in the validator set.
    pub validator_index: u32,
    pub signature: Signature,
}

/// Proof that more than 2/3 of voting power precommitted `block_hash` at
/// `height` in `round`. Signatures are sorted by strictly increasing
/// validator index, so each validator counts once.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct CommitCertificate {
    pub height: u64,
    pub round: u32,
    pub block_hash: Hash,
    pub signatures: Vec<CommitSig>,
}

impl CommitCertificate {
    /// The precommit every signature in the certificate signs.
    pub fn vote(&self) -> Vote {
        Vote {
            kind: VoteKind::Precommit,
            height: self.height,
            round: self.round,
            value: Some(self.block_hash),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        encoding::decode(bytes, CERTIFICATE_BYTES_MAX, "commit certificate")
    }
}

/// A validator as consensus sees it.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct Validator {
    pub public_key: PublicKey,
    pub power: u64,
}

/// The validators of a height, in a fixed order (the genesis order).
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total_power: u64,
}

/// Why a validator set is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidatorSetError {
    #[error("the validator set is empty")]
    Empty,
    #[error("the validator set has {0} members, more than the limit of {VALIDATORS_MAX}")]
    TooMany(usize),
    #[error("validator {0} has zero voting power")]
    ZeroPower(PublicKey),
    #[error("validator {0} appears twice")]
    Duplicate(PublicKey),
    #[error("validator {0} has a weak or malformed public key")]
    WeakKey(PublicKey),
    #[error("total voting power exceeds the limit of {TOTAL_POWER_MAX}")]
    PowerOverflow,
}

impl ValidatorSet {
    pub fn new(validators: Vec<Validator>) -> Result<Self, ValidatorSetError> {
        if validators.is_empty() {
            return Err(ValidatorSetError::Empty);
        }
        if validators.len() > VALIDATORS_MAX {
            return Err(ValidatorSetError::TooMany(validators.len()));
        }
        let mut total: u64 = 0;
        let mut seen = std::collections::BTreeSet::new();
        for v in &validators {
            if v.power == 0 {
                return Err(ValidatorSetError::ZeroPower(v.public_key));
            }
            if !seen.insert(v.public_key) {
                return Err(ValidatorSetError::Duplicate(v.public_key));
            }
            if v.public_key.is_weak() {
                return Err(ValidatorSetError::WeakKey(v.public_key));
            }
            total = total
                .checked_add(v.power)
                .filter(|t| *t <= TOTAL_POWER_MAX)
                .ok_or(ValidatorSetError::PowerOverflow)?;
        }
        Ok(ValidatorSet {
            validators,
            total_power: total,
        })
    }

    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    pub fn len(&self) -> usize {
        self.validators.len()
    }

    pub fn is_empty(&self) -> bool {
        self.validators.is_empty()
    }

    pub fn total_power(&self) -> u64 {
        self.total_power
    }

    pub fn get(&self, index: u32) -> Option<&Validator> {
        self.validators.get(index as usize)
    }

    pub fn index_of(&self, key: &PublicKey) -> Option<u32> {
        self.validators
            .iter()
            .position(|v| v.public_key == *key)
            .and_then(|i| u32::try_from(i).ok())
    }

    /// True when `power` is more than two thirds of the total.
    pub fn is_quorum(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power) * 2
    }

    /// True when `power` is more than one third of the total (at least one
    /// honest validator is among them).
    pub fn exceeds_one_third(&self, power: u64) -> bool {
        u128::from(power) * 3 > u128::from(self.total_power)
    }

    /// `sha256(encoding(validators))`, committed in every header.
    pub fn hash(&self) -> Hash {
        Hash::digest(&encoding::encode(&self.validators))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> ValidatorSet {
        crate::testkit::validator_set(powers)
    }

    #[test]
    fn quorum_table() {
        // (powers, signed power, quorum?)
        let table: &[(&[u64], u64, bool)] = &[
            (&[1, 1, 1], 2, false), // exactly 2/3 is not a quorum
            (&[1, 1, 1], 3, true),
            (&[1, 1, 1, 1], 2, false),
            (&[1, 1, 1, 1], 3, true),
            (&[10, 10, 10, 10], 30, true),
            (&[10, 10, 10, 10], 27, true),
            (&[10, 10, 10, 10], 26, false),
            (&[100, 1, 1, 1], 100, true),
            (&[100, 1, 1, 1], 69, true),
            (&[100, 1, 1, 1], 68, false),
            (&[3, 3], 4, false),
            (&[3, 3], 5, true),
        ];
        for (powers, signed, expected) in table {
            let s = set(powers);
            let got = s.is_quorum(*signed);
            let exact = u128::from(*signed) * 3 > u128::from(s.total_power()) * 2;
            assert_eq!(got, exact, "{powers:?} {signed}");
            assert_eq!(got, *expected, "{powers:?} signed {signed}");
        }
    }

    #[test]
    fn validator_set_rules() {
        let k = Keypair::from_seed([1; 32]).public();
        let v = |power| Validator {
            public_key: k,
            power,
        };
        assert_eq!(ValidatorSet::new(vec![]), Err(ValidatorSetError::Empty));
        assert_eq!(
            ValidatorSet::new(vec![v(0)]),
            Err(ValidatorSetError::ZeroPower(k))
        );
        assert_eq!(
            ValidatorSet::new(vec![v(1), v(2)]),
            Err(ValidatorSetError::Duplicate(k))
        );
        let k2 = Keypair::from_seed([2; 32]).public();
        assert_eq!(
            ValidatorSet::new(vec![
                v(TOTAL_POWER_MAX),
                Validator {
                    public_key: k2,
                    power: 1
                }
            ]),
            Err(ValidatorSetError::PowerOverflow)
        );
    }

    #[test]
    fn chain_id_rules() {
        assert!(check_chain_id("tally-devnet.1_a").is_ok());
        assert!(check_chain_id("").is_err());
        assert!(check_chain_id("has space").is_err());
        assert!(check_chain_id(&"a".repeat(65)).is_err());
    }

    /// The size bounds the genesis rules rely on, against real encodings at
    /// their worst: the longest chain id, a full certificate.
    #[test]
    fn size_bounds_hold_for_the_largest_encodings() {
        let chain_id = "c".repeat(CHAIN_ID_BYTES_MAX);
        let key = Keypair::from_seed([1; 32]);
        let tx = |op: Op| {
            Tx {
                chain_id: chain_id.clone(),
                sender: key.public(),
                nonce: u64::MAX,
                op,
            }
            .sign(&key)
        };
        let to = key.public();
        let fixed = [
            tx(Op::Transfer { to, amount: 1 }),
            tx(Op::GrantAccount {
                account: to,
                role: Role::Admin,
            }),
            tx(Op::RevokeAccount { account: to }),
        ];
        let sizes: Vec<usize> = fixed.iter().map(|t| encoding::encode(t).len()).collect();
        assert_eq!(sizes.iter().max(), Some(&FIXED_TX_BYTES_MAX), "{sizes:?}");

        let key2 = Keypair::from_seed([2; 32]).public();
        let governance = [
            tx(Op::Propose {
                change: Box::new(Change::AddValidator {
                    name: "n".repeat(crate::genesis::NAME_BYTES_MAX),
                    public_key: to,
                    node_key: key2,
                    power: u64::MAX,
                }),
            }),
            tx(Op::Propose {
                change: Box::new(Change::RotateKey {
                    public_key: to,
                    new_key: key2,
                    consent: crate::crypto::Signature([7; 64]),
                }),
            }),
        ];
        let sizes: Vec<usize> = governance
            .iter()
            .map(|t| encoding::encode(t).len())
            .collect();
        assert_eq!(
            sizes.iter().max(),
            Some(&GOVERNANCE_TX_BYTES_MAX),
            "{sizes:?}"
        );

        let put = tx(Op::Put {
            key: vec![7; 100],
            value: vec![8; 1000],
        });
        assert_eq!(
            encoding::encode(&put).len(),
            PUT_TX_FRAMING_BYTES_MAX + 100 + 1000
        );

        let header = Header {
            chain_id: chain_id.clone(),
            height: u64::MAX,
            time_ms: u64::MAX,
            prev_hash: Hash([1; 32]),
            tx_root: Hash([2; 32]),
            state_root: Hash([3; 32]),
            validators_hash: Hash([4; 32]),
            next_validators_hash: Hash([7; 32]),
            proposer: key.public(),
            last_commit_hash: Hash([5; 32]),
        };
        assert_eq!(encoding::encode(&header).len(), HEADER_BYTES_MAX);
        let certificate = CommitCertificate {
            height: u64::MAX,
            round: u32::MAX,
            block_hash: Hash([6; 32]),
            signatures: (0..VALIDATORS_MAX as u32)
                .map(|validator_index| CommitSig {
                    validator_index,
                    signature: Signature([9; 64]),
                })
                .collect(),
        };
        assert!(encoding::encode(&certificate).len() <= CERTIFICATE_BYTES_MAX);
        let txs = vec![put, fixed[0].clone()];
        let txs_bytes: usize = txs.iter().map(|t| encoding::encode(t).len()).sum();
        let block = Block {
            header,
            txs,
            last_commit: Some(certificate),
        };
        let overhead = encoding::encode(&block).len() - txs_bytes;
        assert!(
            overhead <= BLOCK_OVERHEAD_BYTES_MAX,
            "{overhead} > {BLOCK_OVERHEAD_BYTES_MAX}"
        );
        // The bound the proposer used before (64 KiB) is too small for a
        // full validator set.
        assert!(overhead > 64 * 1024, "{overhead}");
    }
}

/// A vote signed by the validator at `validator_index` of the set.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedVote {
    pub vote: Vote,
    pub validator_index: u32,
    pub signature: Signature,
}

/// A proposal of the block with hash `block_hash` for `height` and `round`.
/// `pol_round` is the proposer's valid round (the round of a polka for this
/// value), `None` for a fresh value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, BorshSerialize, BorshDeserialize)]
pub struct Proposal {
    pub height: u64,
    pub round: u32,
    pub pol_round: Option<u32>,
    pub block_hash: Hash,
}

impl Proposal {
    /// The bytes a proposer signs (before domain separation).
    pub fn message(&self) -> Vec<u8> {
        encoding::encode(self)
    }
}

/// A proposal signed by the proposer of its height and round.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedProposal {
    pub proposal: Proposal,
    pub signature: Signature,
}

/// Two conflicting signed votes from one validator for the same height,
/// round and step: proof that it equivocated.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Evidence {
    pub first: SignedVote,
    pub second: SignedVote,
}

impl Evidence {
    /// The equivocating validator's index.
    pub fn validator_index(&self) -> u32 {
        self.first.validator_index
    }
}
