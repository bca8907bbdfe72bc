//! What goes in and out of the node core: events, effects, notices, the
//! environment it reads, and its time.

use tally_consensus::{SignerError, TimeoutKind};
use tally_ledger::state::{StateError, StateReader, StateUpdate};
use tally_ledger::types::{
    Block, CommitCertificate, Evidence, Proposal, SignedProposal, SignedTx, SignedVote, Vote,
};
use tally_ledger::verify::Parent;
use tally_ledger::{Hash, Signature};

use crate::wire::ConsensusMsg;

/// Time as the core sees it: a monotonic clock for durations and the wall
/// clock for block times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono_ms: u64,
    pub wall_ms: u64,
}

/// What the core reads from the node around it, as of the committed tip.
pub trait CoreEnv {
    type State: StateReader;
    /// The state after the tip.
    fn state(&self) -> &Self::State;
    /// Where the next block attaches.
    fn tip(&self) -> Parent;
    /// The certificate of the tip (`None` at genesis).
    fn last_commit(&self) -> Option<CommitCertificate>;
    /// Transactions to try in a proposal, in order, within the bounds.
    fn proposal_txs(&self, max_txs: usize, max_bytes: usize) -> Vec<SignedTx>;
    /// Transactions pending in the mempool.
    fn mempool_len(&self) -> usize;
    fn mempool_is_empty(&self) -> bool {
        self.mempool_len() == 0
    }
    /// True when this node already verified the signature of the
    /// transaction with hash `tx_hash` (it holds the same signed bytes in its
    /// mempool); validation then skips it.
    fn tx_verified(&self, _tx_hash: &Hash) -> bool {
        false
    }
}

/// A timer the core asked for; the runtime hands it back when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    Consensus {
        height: u64,
        round: u32,
        kind: TimeoutKind,
    },
    BuildBlock {
        height: u64,
        round: u32,
    },
}

/// What the signer remembers of a height, read when consensus (re)starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerView {
    /// The round it had reached.
    pub round: Option<u32>,
    /// Its lock (round, block) and the polka that justified it.
    pub lock: Option<(u32, Hash)>,
    pub lock_proof: Vec<SignedVote>,
    /// The votes it signed (sent again: peers may never have had them).
    pub votes: Vec<SignedVote>,
    /// The locked block's body, if it was kept.
    pub locked_block: Option<Block>,
}

/// A signature the signer released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signed {
    Vote(SignedVote),
    Proposal(SignedProposal),
}

/// What happens to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// (Re)start consensus at the height after the tip (at start-up, and
    /// after block sync moved the tip), with what the signer remembers.
    Restart(Box<SignerView>),
    /// A proposal and its block; the signature was checked against the
    /// round's proposer and the block hash against the proposal.
    Proposal {
        proposal: SignedProposal,
        block: Box<Block>,
    },
    /// A vote whose signature was checked.
    Vote(SignedVote),
    Timer(Timer),
    /// The signer's answer to [`Effect::SignVote`] / [`Effect::SignProposal`].
    Signed(Signed),
    SignFailed(SignerError),
    /// The commit asked for by [`Effect::Commit`] is durable.
    Committed,
    /// New transactions reached the mempool.
    TxsArrived,
    /// Validators holding more than 2/3 of the power (this one included)
    /// have reported their heights, and validators holding more than 1/3
    /// report this one or higher ([`super::quorum_height`]); sent while a
    /// signing pause lasts.
    PeersHeard(u64),
    /// Once a second.
    Tick,
}

impl Event {
    /// The signer's answer to [`Effect::SignVote`], as the core takes it.
    pub fn vote_signed(
        vote: Vote,
        validator_index: u32,
        result: Result<Signature, SignerError>,
    ) -> Event {
        match result {
            Ok(signature) => Event::Signed(Signed::Vote(SignedVote {
                vote,
                validator_index,
                signature,
            })),
            Err(e) => Event::SignFailed(e),
        }
    }

    /// The signer's answer to [`Effect::SignProposal`], as the core takes it.
    pub fn proposal_signed(proposal: Proposal, result: Result<Signature, SignerError>) -> Event {
        match result {
            Ok(signature) => Event::Signed(Signed::Proposal(SignedProposal {
                proposal,
                signature,
            })),
            Err(e) => Event::SignFailed(e),
        }
    }
}

/// Something to report to the operator (the core itself logs at debug).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Proposed {
        height: u64,
        round: u32,
        block_hash: Hash,
    },
    InvalidBlock {
        height: u64,
        round: u32,
        block_hash: Hash,
        reason: String,
    },
    /// Consensus decided a block whose body this node does not hold, or
    /// which fails its checks: block sync brings it.
    DecidedUnknown {
        height: u64,
        block_hash: Hash,
        reason: String,
    },
    CannotPropose {
        height: u64,
        round: u32,
        reason: String,
    },
    SignerFault(String),
    SignerRefused(String),
    SigningResumed {
        height: u64,
    },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Keep the body of the block about to be locked on, synced, before
    /// the precommit that follows is signed.
    PersistLockedBlock(Box<Block>),
    /// Sign (persisting first) and hand back [`Event::Signed`] or
    /// [`Event::SignFailed`].
    SignVote {
        vote: Vote,
        polka: Vec<SignedVote>,
    },
    SignProposal(Proposal),
    Broadcast(ConsensusMsg),
    SetTimer {
        after_ms: u64,
        timer: Timer,
    },
    /// Commit atomically with its certificate; hand back
    /// [`Event::Committed`].
    Commit {
        block: Box<Block>,
        certificate: CommitCertificate,
        update: Update,
    },
    /// An offence seen for the first time at this node.
    RecordEvidence(Box<Evidence>),
    /// Transactions that failed while building a block, with the reason.
    EvictTxs(Vec<(Hash, String)>),
    Notice(Notice),
}

/// The state after a block, to commit with it. Compared by version and root
/// (the tree batch they commit to has no equality of its own).
#[derive(Debug, Clone)]
pub struct Update(pub Box<StateUpdate>);

impl PartialEq for Update {
    fn eq(&self, other: &Self) -> bool {
        self.0.version == other.0.version && self.0.root == other.0.root
    }
}

impl Eq for Update {}

/// A failure that must stop the node: its own state cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("the state cannot be read: {0}")]
    State(#[from] StateError),
}
