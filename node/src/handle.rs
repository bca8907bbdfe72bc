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
    /// Bounds the signature checks of submitted batches running at once,
    /// so that clients cannot queue unbounded work on the blocking pool.
    pub(crate) admission: Arc<tokio::sync::Semaphore>,
}

/// Submitted batches whose signatures may be checked at once: two per core
/// (each at most [`tally_rpc::methods::SUBMIT_BATCH_MAX`] transactions from
/// RPC), enough to keep every core busy while the next batches wait.
pub(crate) fn admission_slots() -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new(2 * crate::cores()))
}

/// Runs `work` on the blocking pool holding one of `slots` for exactly as
/// long as the work runs: the slot moves into the job, so a caller that
/// gives up (a client that disconnects) does not free it early.
async fn bounded_blocking<T: Send + 'static>(
    slots: &Arc<tokio::sync::Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NodeStopped> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| NodeStopped)?;
    tokio::task::spawn_blocking(move || {
        let out = work();
        drop(slot);
        out
    })
    .await
    .map_err(|_| NodeStopped)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_free_its_slot_before_the_work_ends() {
        let slots = Arc::new(tokio::sync::Semaphore::new(1));
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let call = tokio::spawn({
            let slots = slots.clone();
            async move {
                bounded_blocking(&slots, move || {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
            .await
            .unwrap();
        // The caller gives up while the work runs: the slot stays taken.
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        assert_eq!(slots.available_permits(), 0);
        // When the work ends, the slot is free again.
        release_tx.send(()).unwrap();
        let again = slots.acquire().await.unwrap();
        drop(again);
        assert_eq!(slots.available_permits(), 1);
    }
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
    /// each in order. Their chains and signatures are checked together on
    /// the blocking pool, so the driver only does the pool's bookkeeping,
    /// in one trip for the whole batch.
    pub async fn submit_txs(
        &self,
        txs: Vec<SignedTx>,
    ) -> Result<Vec<Result<Hash, MempoolError>>, NodeStopped> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        let chain_id = self.genesis.chain_id.clone();
        let txs = bounded_blocking(&self.admission, move || {
            let checks = crate::mempool::check_signatures(&txs, &chain_id);
            txs.into_iter().zip(checks).collect::<Vec<_>>()
        })
        .await?;
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
