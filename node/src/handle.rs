//! A handle to a running node: what RPC, tests and the devnet use to ask
//! the driver and the network for things (cheap to clone).

use std::sync::Arc;

use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};

use tally_ledger::store::Store;
use tally_ledger::types::{Evidence, SignedTx};
use tally_ledger::Hash;

use crate::driver::{Committed, NodeRequest, NodeStatus};
use crate::mempool::{MempoolError, PoolStatus};
use crate::metrics::Metrics;
use crate::network::NetCommand;

/// A handle to talk to a running node (cheap to clone).
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(crate) requests: mpsc::Sender<NodeRequest>,
    pub(crate) commits: broadcast::Sender<Committed>,
    pub(crate) net: mpsc::Sender<NetCommand>,
    pub store: Arc<Store>,
    pub genesis: Arc<tally_ledger::genesis::Genesis>,
    pub peer_id: PeerId,
    pub metrics: Arc<Metrics>,
    /// Checks submitted batches' signatures, coalescing the batches that
    /// wait; bounded, so that clients cannot queue unbounded work.
    pub(crate) sig_checks: crate::sig_checks::SigChecks,
}

/// The node has stopped and cannot answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the node is shutting down")]
pub struct NodeStopped;

impl NodeHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> NodeRequest,
    ) -> Result<T, NodeStopped> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx))
            .await
            .map_err(|_| NodeStopped)?;
        rx.await.map_err(|_| NodeStopped)
    }

    /// Admits a transaction to the mempool (and gossips it).
    pub async fn submit_tx(&self, tx: SignedTx) -> Result<Result<Hash, MempoolError>, NodeStopped> {
        let results = self.submit_txs(vec![tx]).await?;
        results.into_iter().next().ok_or(NodeStopped)
    }

    /// Admits transactions to the mempool (and gossips them), one result
    /// each in order. Their chains and signatures are checked on the
    /// node's checker threads, together with other batches waiting at the
    /// time, so the driver only does the pool's bookkeeping, in one trip
    /// for the whole batch.
    pub async fn submit_txs(
        &self,
        txs: Vec<SignedTx>,
    ) -> Result<Vec<Result<Hash, MempoolError>>, NodeStopped> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        let txs = self.sig_checks.check(txs).await?;
        self.ask(|reply| NodeRequest::SubmitTxs { txs, reply })
            .await
    }

    pub async fn tx_status(&self, hash: Hash) -> Result<Option<PoolStatus>, NodeStopped> {
        Ok(self.tx_in_pool(hash).await?.0)
    }

    /// The mempool's status of a transaction, and the transaction while pending.
    pub async fn tx_in_pool(
        &self,
        hash: Hash,
    ) -> Result<(Option<PoolStatus>, Option<SignedTx>), NodeStopped> {
        self.ask(|reply| NodeRequest::TxStatus { hash, reply })
            .await
    }

    pub async fn status(&self) -> Result<NodeStatus, NodeStopped> {
        self.ask(|reply| NodeRequest::Status { reply }).await
    }

    pub async fn evidence(&self) -> Result<Vec<Evidence>, NodeStopped> {
        self.ask(|reply| NodeRequest::Evidence { reply }).await
    }

    /// Every block committed from now on.
    pub fn subscribe_commits(&self) -> broadcast::Receiver<Committed> {
        self.commits.subscribe()
    }

    /// Publishes raw gossip, bypassing every check (tests of peers'
    /// validation only).
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: &'static str, data: Vec<u8>) {
        let _ = self.net.send(NetCommand::PublishRaw { topic, data }).await;
    }

    /// Adds a peer to keep connected to (tests that bind port 0 use this).
    pub async fn add_peer(&self, peer: PeerId, addr: Multiaddr) {
        let _ = self.net.send(NetCommand::AddPeer { peer, addr }).await;
    }
}
