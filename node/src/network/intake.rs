//! Gossiped transaction batches, checked off the swarm task: on the
//! blocking pool, two per core at once, and handed on in the order they
//! arrived so that a sender's nonces stay in order.

use libp2p::{gossipsub, PeerId};
use tokio::sync::OwnedSemaphorePermit;

use tally_ledger::types::SignedTx;

use super::admission::Verdict;
use super::{NetEvent, Network};

impl Network {
    /// Checks a gossiped transaction batch on the blocking pool; the verdict
    /// comes back through `checked_rx`. Waits for a free slot, taking
    /// finished checks meanwhile (they hold the slots).
    pub(super) async fn check_txs(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        data: Vec<u8>,
    ) {
        let slot = loop {
            tokio::select! {
                slot = self.tx_checks.clone().acquire_owned() => break slot,
                Some(checked) = self.checked_rx.recv() => self.on_checked_txs(checked).await,
            }
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { return };
        let validator = self.validator.clone();
        let done = self.checked_tx.clone();
        let seq = self.tx_check_seq;
        self.tx_check_seq += 1;
        tokio::task::spawn_blocking(move || {
            // A check that panicked would hold every later batch back.
            let verdict =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| validator.txs(&data)))
                    .unwrap_or(Verdict::Reject("transaction batch check failed"));
            // Fails only when the network task has stopped.
            let _ = done.send(CheckedTxs {
                seq,
                source,
                id,
                verdict,
                _slot: slot,
            });
        });
    }

    /// Takes a finished check, and hands on every finished one whose turn
    /// has come, in arrival order.
    pub(super) async fn on_checked_txs(&mut self, checked: CheckedTxs) {
        self.tx_checks_done.insert(checked.seq, checked);
        while let Some(checked) = self.tx_checks_done.remove(&self.tx_check_next) {
            self.tx_check_next += 1;
            let (acceptance, event, reason) = match checked.verdict {
                Verdict::Accept(t) => (
                    gossipsub::MessageAcceptance::Accept,
                    Some(NetEvent::Txs(t)),
                    "",
                ),
                Verdict::Ignore(r) => (gossipsub::MessageAcceptance::Ignore, None, r),
                Verdict::Reject(r) => (gossipsub::MessageAcceptance::Reject, None, r),
            };
            self.validated(checked.source, checked.id, acceptance, reason, event)
                .await;
        }
    }
}

/// A gossiped transaction batch, checked on the blocking pool.
pub(super) struct CheckedTxs {
    /// Its place in arrival order.
    pub(super) seq: u64,
    pub(super) source: PeerId,
    pub(super) id: gossipsub::MessageId,
    pub(super) verdict: Verdict<Vec<SignedTx>>,
    /// Freed when the network task has taken the verdict.
    pub(super) _slot: OwnedSemaphorePermit,
}
