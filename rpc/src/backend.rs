//! What the RPC server needs from the node: the [`Backend`] trait the node
//! implements, and the pool and node state it reports through it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::broadcast;

use tally_ledger::genesis::Genesis;
use tally_ledger::store::Store;
use tally_ledger::types::SignedTx;
use tally_ledger::Hash;

use crate::errors::Rejection;
use crate::types::HeadInfo;

/// What the mempool says of a transaction it has seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolState {
    /// Waiting in the mempool (with the transaction, if the node has it).
    Pending(Option<SignedTx>),
    Rejected(String),
}

/// The node's live state beyond the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub round: u32,
    pub peers: u32,
    pub catching_up: bool,
    pub sync: crate::types::SyncInfo,
    pub mempool_txs: u64,
    pub mempool_bytes: u64,
    /// Set while this validator cannot persist its signer record (it is
    /// not voting): `health` is not ok.
    pub signer_fault: Option<String>,
}

/// What the RPC server needs from the node. Reads go to the store directly;
/// everything that touches consensus or the mempool goes through bounded
/// channels, so RPC work never blocks consensus.
pub trait Backend: Send + Sync + 'static {
    fn store(&self) -> &Arc<Store>;
    fn genesis(&self) -> &Genesis;
    fn node_id(&self) -> String;
    fn role(&self) -> &'static str;
    fn submit_tx(&self, tx: SignedTx) -> impl Future<Output = Result<Hash, Rejection>> + Send;
    /// Submits several transactions, one result each in order. By default
    /// one at a time; a node checks a batch's signatures together.
    fn submit_txs(
        &self,
        txs: Vec<SignedTx>,
    ) -> impl Future<Output = Vec<Result<Hash, Rejection>>> + Send {
        async move {
            let mut out = Vec::with_capacity(txs.len());
            for tx in txs {
                out.push(self.submit_tx(tx).await);
            }
            out
        }
    }
    /// The pool's view of a transaction. The contract that makes
    /// `ledger_getTx` consistent: a transaction accepted by `submit_tx`
    /// stays in the pool (pending or rejected) until its block can be read
    /// from [`Backend::store`].
    fn pool_state(&self, hash: Hash) -> impl Future<Output = Option<PoolState>> + Send;
    fn node_info(&self) -> impl Future<Output = Result<NodeInfo, Rejection>> + Send;
    /// New blocks, as they are committed.
    fn heads(&self) -> broadcast::Receiver<HeadInfo>;
}
