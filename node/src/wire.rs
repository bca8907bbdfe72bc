//! What travels between nodes, and its bounds. Everything is borsh-encoded
//! and decoded with a size bound first.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use tally_ledger::encoding::{decode, encode, DecodeError};
use tally_ledger::types::{Block, CommitCertificate, SignedProposal, SignedTx, SignedVote};
use tally_ledger::Hash;

/// Most transactions gossiped in one batch.
pub const TX_BATCH_MAX: usize = 512;
/// Most blocks in one sync response (and fewer if they are large).
pub const SYNC_BLOCKS_MAX: u64 = 64;
/// A sync response stops adding blocks past this many bytes.
pub const SYNC_RESPONSE_SOFT_BYTES: usize = 8 << 20;
/// Bound on a status message.
pub const STATUS_BYTES_MAX: usize = 1024;

/// A consensus message; a proposal carries its block.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub enum ConsensusMsg {
    Proposal {
        proposal: SignedProposal,
        block: Box<Block>,
    },
    Vote(SignedVote),
}

/// A gossip payload with a sequence number. The number orders one peer's
/// status messages (a lower one is older) and tells two nodes' identical
/// status messages apart. Consensus messages and transaction batches are
/// identified by their body, not the number (`network::message_id`, ADR 7):
/// sent again with a new number, they are the same message.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Envelope<T> {
    pub seq: u64,
    pub body: T,
}

/// A batch of transactions.
pub type TxBatch = Vec<SignedTx>;

/// What a node says about its chain, every second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Status {
    pub height: u64,
    pub block_hash: Hash,
}

/// Block sync request: heights `from..=to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksRequest {
    pub from: u64,
    pub to: u64,
}

/// Block sync response: borsh `Vec<(Block, CommitCertificate)>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlocksResponse {
    #[serde(with = "serde_bytes")]
    pub encoded: Vec<u8>,
}

pub fn encode_envelope<T: BorshSerialize>(seq: u64, body: &T) -> Vec<u8> {
    let mut out = encode(&seq);
    out.extend_from_slice(&encode(body));
    out
}

pub fn decode_consensus(bytes: &[u8], max: usize) -> Result<Envelope<ConsensusMsg>, DecodeError> {
    decode(bytes, max, "consensus message")
}

pub fn decode_txs(bytes: &[u8], max: usize) -> Result<Envelope<TxBatch>, DecodeError> {
    let env: Envelope<TxBatch> = decode(bytes, max, "transaction batch")?;
    if env.body.len() > TX_BATCH_MAX {
        return Err(DecodeError::Malformed {
            what: "transaction batch",
            reason: format!("{} transactions, more than {TX_BATCH_MAX}", env.body.len()),
        });
    }
    Ok(env)
}

pub fn decode_status(bytes: &[u8]) -> Result<Envelope<Status>, DecodeError> {
    decode(bytes, STATUS_BYTES_MAX, "status")
}

pub fn decode_blocks(
    bytes: &[u8],
    max: usize,
) -> Result<Vec<(Block, CommitCertificate)>, DecodeError> {
    let blocks: Vec<(Block, CommitCertificate)> = decode(bytes, max, "block sync response")?;
    if blocks.len() as u64 > SYNC_BLOCKS_MAX {
        return Err(DecodeError::Malformed {
            what: "block sync response",
            reason: format!("{} blocks, more than {SYNC_BLOCKS_MAX}", blocks.len()),
        });
    }
    Ok(blocks)
}
