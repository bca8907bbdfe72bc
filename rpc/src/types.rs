//! The JSON shapes of the API. Hashes, keys and bytes are `0x` hex (accepted
//! with or without `0x`); u64 values are decimal strings (accepted as
//! numbers too), since JSON numbers lose precision past 2^53.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use tally_ledger::encoding::hex_serde;
use tally_ledger::types::{Block, CommitCertificate, Header};

/// A JSON number or string, as u64 parameters arrive.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

/// A u64 written as a decimal string, read from a string or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct U64(pub u64);

impl Serialize for U64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for U64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(U64(n)),
            NumOrStr::Str(s) => s
                .parse()
                .map(U64)
                .map_err(|_| de::Error::custom(format!("{s:?} is not a decimal u64"))),
        }
    }
}

/// `"latest"` or a height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockId {
    Latest,
    Height(u64),
}

impl<'de> Deserialize<'de> for BlockId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)? {
            NumOrStr::Num(n) => Ok(BlockId::Height(n)),
            NumOrStr::Str(s) if s == "latest" => Ok(BlockId::Latest),
            NumOrStr::Str(s) => s.parse().map(BlockId::Height).map_err(|_| {
                de::Error::custom(format!("{s:?} is neither \"latest\" nor a height"))
            }),
        }
    }
}

impl Serialize for BlockId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BlockId::Latest => s.serialize_str("latest"),
            BlockId::Height(h) => s.serialize_str(&h.to_string()),
        }
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    hex_serde::to_hex(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSubmitted {
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxCommitted {
    pub hash: String,
    pub height: U64,
    pub index: u32,
}

/// One entry of a batch submission: the hash, or the error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub code: i32,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TxState {
    Pending,
    Rejected,
    Committed,
}

/// An inclusion proof of a tx hash under a block's `tx_root` (RFC 6962).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxProof {
    pub tx_root: String,
    pub index: U64,
    pub leaf_count: U64,
    pub path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInfo {
    pub hash: String,
    pub status: TxState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<U64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// The signed transaction, encoded, when the node holds it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<TxProof>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitSigInfo {
    pub validator_index: u32,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    pub height: U64,
    pub round: u32,
    pub block_hash: String,
    pub signatures: Vec<CommitSigInfo>,
    /// The certificate's canonical encoding, for clients that verify it.
    pub encoded: String,
}

impl From<&CommitCertificate> for CertificateInfo {
    fn from(c: &CommitCertificate) -> Self {
        CertificateInfo {
            height: U64(c.height),
            round: c.round,
            block_hash: c.block_hash.to_hex(),
            signatures: c
                .signatures
                .iter()
                .map(|s| CommitSigInfo {
                    validator_index: s.validator_index,
                    signature: to_hex(&s.signature.0),
                })
                .collect(),
            encoded: to_hex(&tally_ledger::encoding::encode(c)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeaderInfo {
    pub chain_id: String,
    pub height: U64,
    pub time_ms: U64,
    pub prev_hash: String,
    pub tx_root: String,
    pub state_root: String,
    pub validators_hash: String,
    pub next_validators_hash: String,
    pub proposer: String,
    pub last_commit_hash: String,
}

impl From<&Header> for HeaderInfo {
    fn from(h: &Header) -> Self {
        HeaderInfo {
            chain_id: h.chain_id.clone(),
            height: U64(h.height),
            time_ms: U64(h.time_ms),
            prev_hash: h.prev_hash.to_hex(),
            tx_root: h.tx_root.to_hex(),
            state_root: h.state_root.to_hex(),
            validators_hash: h.validators_hash.to_hex(),
            next_validators_hash: h.next_validators_hash.to_hex(),
            proposer: h.proposer.to_hex(),
            last_commit_hash: h.last_commit_hash.to_hex(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockInfo {
    pub hash: String,
    pub header: HeaderInfo,
    pub tx_hashes: Vec<String>,
    /// Encoded signed transactions, with `full = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub txs: Option<Vec<String>>,
    pub certificate: Option<CertificateInfo>,
    /// The header's canonical encoding (its SHA-256 is `hash`).
    pub encoded_header: String,
}

impl BlockInfo {
    pub fn new(block: &Block, cert: Option<&CommitCertificate>, full: bool) -> Self {
        BlockInfo {
            hash: block.hash().to_hex(),
            header: HeaderInfo::from(&block.header),
            tx_hashes: block.txs.iter().map(|t| t.hash().to_hex()).collect(),
            txs: full.then(|| {
                block
                    .txs
                    .iter()
                    .map(|t| to_hex(&tally_ledger::encoding::encode(t)))
                    .collect()
            }),
            certificate: cert.map(CertificateInfo::from),
            encoded_header: to_hex(&tally_ledger::encoding::encode(&block.header)),
        }
    }
}

/// A committed block, as sent to `ledger_subscribeNewHeads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadInfo {
    pub height: U64,
    pub hash: String,
    pub time_ms: U64,
    pub tx_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    pub chain_id: String,
    pub node_id: String,
    pub role: String,
    pub latest_height: U64,
    pub latest_hash: Option<String>,
    pub latest_time: Option<U64>,
    pub state_root: String,
    pub catching_up: bool,
    pub peers: u32,
    pub round: u32,
    pub sync: SyncInfo,
}

/// Block sync progress and what the node thinks of its peers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncInfo {
    /// The best height a believed peer reports.
    pub target_height: U64,
    /// `targetHeight - latestHeight` (0 when not behind).
    pub blocks_behind: U64,
    /// Blocks committed per second by sync, over the last seconds.
    pub blocks_per_second: f64,
    /// Verified blocks waiting for their turn to be committed.
    pub pending_blocks: u32,
    /// Block requests outstanding.
    pub requests: u32,
    pub peers: Vec<PeerSyncInfo>,
}

/// One peer as block sync sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSyncInfo {
    pub peer_id: String,
    /// The height it last announced.
    pub height: U64,
    /// The height it is believed to serve (lower after it failed to serve
    /// what it claimed; 0 while banned).
    pub believed_height: U64,
    /// Falls on timeouts, invalid blocks and false claims; rises on good answers.
    pub score: i32,
    pub banned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatorInfo {
    pub index: u32,
    pub name: String,
    pub public_key: String,
    pub peer_id: String,
    pub power: U64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    pub ok: bool,
    pub height: U64,
    pub peers: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolInfo {
    pub size: U64,
    pub bytes: U64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceInfo {
    pub validator_index: u32,
    pub height: U64,
    pub round: u32,
    pub kind: String,
    /// The two conflicting votes, encoded.
    pub first: String,
    pub second: String,
}

/// One page of evidence, and the cursor of the next page if there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidencePage {
    pub evidence: Vec<EvidenceInfo>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    pub exists: bool,
    pub balance: U64,
    pub nonce: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub active: bool,
    /// The height whose state this is.
    pub height: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub height: U64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofInfo>,
}

/// A state proof and what it is checked against: the value's encoding, the
/// state root of `height`, and that block's header and certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateProofInfo {
    pub state_root: String,
    /// The proof's canonical encoding.
    pub proof: String,
    /// The stored value's encoding (absent for a proof of absence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The header of `height` (encoded) and its certificate (encoded), so
    /// the root can be tied to the validator set.
    pub header: String,
    pub certificate: String,
}

/// The most set changes `ledger_getSetChanges` returns at once: with the
/// largest sets (1,000 validators), a page stays within a client's default
/// 10 MB response.
pub const SET_CHANGES_PAGE_MAX: usize = 16;

/// A change of the validator set (`ledger_getSetChanges`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetChangeInfo {
    /// The first height the new set decides.
    pub height: U64,
    /// The encoded header of the block before it: its
    /// `next_validators_hash` names the new set.
    pub header: String,
    /// That block's encoded certificate, by the set before.
    pub certificate: String,
    /// The new set's encoded validator list.
    pub validators: String,
}

/// The governance state at a height (`ledger_getGovernance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GovernanceInfo {
    /// Approvals a change needs, the proposer's included.
    pub threshold: u32,
    /// Blocks after its proposal in which a change may be approved.
    pub expiry_blocks: U64,
    pub admins: Vec<String>,
    /// The changes still gathering approvals.
    pub pending: Vec<ChangeInfo>,
    pub height: U64,
    /// A proof of the governance state (the admins, the threshold and the
    /// pending ids) against the block at `height`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofInfo>,
}

/// A proposed change (`ledger_getChange`, and the pending ones in
/// `ledger_getGovernance`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeInfo {
    /// The hash of the transaction that proposed it.
    pub id: String,
    /// What it does: `{"kind": "grant", "account": …, "role": …}` or
    /// `{"kind": "revoke", "account": …}`.
    pub change: serde_json::Value,
    pub proposer: String,
    pub proposed_at: U64,
    /// The last height at which an approval counts.
    pub expires_at: U64,
    /// The admins that approved it, the proposer first.
    pub approvals: Vec<String>,
    /// While pending: the approvals that count (approvers still admins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals_counted: Option<u32>,
    /// As the next block will find it: `pending`, `applied`, `withdrawn`
    /// (its proposer stopped being an admin) or `expired` (no block can
    /// approve it any more).
    pub status: String,
    /// The block that applied or withdrew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<U64>,
    pub height: U64,
    /// A proof of the change's record against the block at `height`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proof: Option<StateProofInfo>,
}
