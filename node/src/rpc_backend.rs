//! The node's side of the JSON-RPC server: answers through the driver's
//! bounded request channel and reads the store directly.

use std::sync::Arc;

use tokio::sync::broadcast;

use tally_ledger::execution::TxError;
use tally_ledger::genesis::Genesis;
use tally_ledger::store::Store;
use tally_ledger::types::SignedTx;
use tally_ledger::Hash;
use tally_rpc::backend::{Backend, NodeInfo, PoolState};
use tally_rpc::errors::{self, Rejection};
use tally_rpc::types::{HeadInfo, U64};

use crate::config::NodeRole;
use crate::handle::NodeHandle;
use crate::mempool::{MempoolError, PoolStatus};

/// Maps a mempool refusal to the API's error code and kind.
pub fn rejection(e: &MempoolError) -> Rejection {
    let (code, kind) = match e {
        MempoolError::Invalid(TxError::BadSignature(_)) => (errors::BAD_SIGNATURE, "bad_signature"),
        MempoolError::Invalid(TxError::WrongChain { .. }) => (errors::WRONG_CHAIN, "wrong_chain"),
        MempoolError::Invalid(TxError::UnknownSender(_) | TxError::RevokedSender(_)) => {
            (errors::NOT_A_MEMBER, "not_a_member")
        }
        MempoolError::Invalid(_) => (errors::INVALID_TX, "invalid_tx"),
        MempoolError::Duplicate(_) => (errors::DUPLICATE, "duplicate"),
        MempoolError::StaleNonce { .. } | MempoolError::FutureNonce { .. } => {
            (errors::BAD_NONCE, "bad_nonce")
        }
        MempoolError::SenderFull { .. } | MempoolError::Full { .. } => {
            (errors::MEMPOOL_FULL, "mempool_full")
        }
        MempoolError::Unchecked => (errors::UNAVAILABLE, "unavailable"),
    };
    Rejection {
        code,
        kind,
        message: e.to_string(),
    }
}

fn stopped() -> Rejection {
    Rejection {
        code: errors::UNAVAILABLE,
        kind: "unavailable",
        message: "the node is shutting down".into(),
    }
}

/// The node as the RPC server sees it.
#[derive(Debug)]
pub struct NodeBackend {
    handle: NodeHandle,
    role: NodeRole,
    heads: broadcast::Sender<HeadInfo>,
    submitted: Arc<Submitted>,
}

/// The most admitted transactions whose admission time is kept for the
/// submit-to-commit latency; past it the oldest are forgotten (never
/// committed, or committed elsewhere after eviction).
const SUBMITTED_TRACKED_MAX: usize = 200_000;

/// When each transaction admitted through this node's RPC was admitted.
#[derive(Debug, Default)]
struct Submitted {
    at: std::sync::Mutex<(
        std::collections::HashMap<Hash, std::time::Instant>,
        std::collections::VecDeque<Hash>,
    )>,
}

impl Submitted {
    fn admitted(&self, hashes: impl Iterator<Item = Hash>) {
        let now = std::time::Instant::now();
        let mut guard = self.at.lock().unwrap_or_else(|p| p.into_inner());
        let (at, order) = &mut *guard;
        for hash in hashes {
            if at.insert(hash, now).is_none() {
                order.push_back(hash);
            }
            while order.len() > SUBMITTED_TRACKED_MAX {
                if let Some(old) = order.pop_front() {
                    at.remove(&old);
                }
            }
        }
    }

    /// The time since admission of each committed transaction seen here.
    fn committed(&self, hashes: &[Hash]) -> Vec<f64> {
        let mut guard = self.at.lock().unwrap_or_else(|p| p.into_inner());
        let (at, _) = &mut *guard;
        hashes
            .iter()
            .filter_map(|h| at.remove(h))
            .map(|t| t.elapsed().as_secs_f64())
            .collect()
        // Their places in the eviction order go when they come round.
    }
}

impl NodeBackend {
    /// Wraps a node; a task turns its commits into head notifications.
    pub fn new(handle: NodeHandle, role: NodeRole) -> Arc<Self> {
        let (heads, _) = broadcast::channel(1024);
        let mut commits = handle.subscribe_commits();
        let tx = heads.clone();
        let submitted = Arc::new(Submitted::default());
        let latency = submitted.clone();
        let metrics = handle.metrics.clone();
        tokio::spawn(async move {
            loop {
                match commits.recv().await {
                    Ok(c) => {
                        for seconds in latency.committed(&c.txs) {
                            metrics.submit_to_commit_seconds.observe(seconds);
                        }
                        let _ = tx.send(HeadInfo {
                            height: U64(c.height),
                            hash: c.block_hash.to_hex(),
                            time_ms: U64(c.time_ms),
                            tx_count: c.txs.len() as u32,
                        });
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Arc::new(NodeBackend {
            handle,
            role,
            heads,
            submitted,
        })
    }
}

impl Backend for NodeBackend {
    fn store(&self) -> &Arc<Store> {
        &self.handle.store
    }

    fn genesis(&self) -> &Genesis {
        &self.handle.genesis
    }

    fn node_id(&self) -> String {
        self.handle.peer_id.to_base58()
    }

    fn role(&self) -> &'static str {
        match self.role {
            NodeRole::Validator => "validator",
            NodeRole::Replica => "replica",
        }
    }

    async fn submit_tx(&self, tx: SignedTx) -> Result<Hash, Rejection> {
        match self.handle.submit_tx(tx).await {
            Ok(Ok(hash)) => {
                self.submitted.admitted(std::iter::once(hash));
                Ok(hash)
            }
            Ok(Err(e)) => Err(rejection(&e)),
            Err(_) => Err(stopped()),
        }
    }

    async fn submit_txs(&self, txs: Vec<SignedTx>) -> Vec<Result<Hash, Rejection>> {
        let n = txs.len();
        match self.handle.submit_txs(txs).await {
            Ok(results) => {
                self.submitted
                    .admitted(results.iter().filter_map(|r| r.as_ref().ok()).copied());
                results
                    .into_iter()
                    .map(|r| r.map_err(|e| rejection(&e)))
                    .collect()
            }
            Err(_) => (0..n).map(|_| Err(stopped())).collect(),
        }
    }

    async fn pool_state(&self, hash: Hash) -> Option<PoolState> {
        match self.handle.tx_in_pool(hash).await {
            Ok((Some(PoolStatus::Pending), tx)) => Some(PoolState::Pending(tx)),
            Ok((Some(PoolStatus::Rejected(reason)), _)) => Some(PoolState::Rejected(reason)),
            _ => None,
        }
    }

    async fn node_info(&self) -> Result<NodeInfo, Rejection> {
        let s = self.handle.status().await.map_err(|_| stopped())?;
        Ok(NodeInfo {
            round: s.round,
            peers: self.handle.metrics.peers.get().max(0) as u32,
            catching_up: s.catching_up,
            sync: tally_rpc::types::SyncInfo {
                target_height: U64(s.peers_max_height),
                blocks_behind: U64(s.peers_max_height.saturating_sub(s.height)),
                blocks_per_second: s.sync_blocks_per_second,
                pending_blocks: s.sync_pending_blocks as u32,
                requests: s.sync_requests as u32,
                peers: s
                    .peers
                    .iter()
                    .map(|p| tally_rpc::types::PeerSyncInfo {
                        peer_id: p.peer.to_string(),
                        height: U64(p.claimed_height),
                        believed_height: U64(p.believed_height),
                        score: p.score,
                        banned: p.banned,
                    })
                    .collect(),
            },
            mempool_txs: s.mempool_txs as u64,
            signer_fault: s.signer_fault.clone(),
            mempool_bytes: s.mempool_bytes,
        })
    }

    fn heads(&self) -> broadcast::Receiver<HeadInfo> {
        self.heads.subscribe()
    }
}
