//! Gossiped transaction batches, checked off the swarm task: decoded and
//! checked on the checker threads with the other batches waiting there
//! (submitted ones too, [`SigChecks`]), at most [`TX_CHECKS_KIB_MAX`] KiB
//! of them at once, and handed on in the order they arrived so that a
//! sender's nonces stay in order.
//!
//! [`SigChecks`]: crate::sig_checks::SigChecks

use libp2p::{gossipsub, PeerId};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use tally_ledger::types::SignedTx;

use super::admission::{Validator, Verdict};
use super::{NetEvent, Network};

/// Gossiped batches being checked, at most, in KiB: twice the largest
/// batch (16 MiB), however many batches that is.
pub(super) const TX_CHECKS_KIB_MAX: usize = 32 * 1024;

/// About the encoded size of a signed transfer, to estimate a batch's
/// transactions before it is decoded.
const TX_BYTES_TYPICAL: usize = 150;

impl Network {
    /// Checks a gossiped transaction batch on the checker threads; the
    /// verdict comes back through `checked_rx`. Waits for room, taking
    /// finished checks meanwhile (they hold the room).
    pub(super) async fn check_txs(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        data: Vec<u8>,
    ) {
        // Room by size: honest batches of a few KiB never wait; the swarm
        // waits only behind the largest batches a peer may send.
        let kib = data.len().div_ceil(1024).clamp(1, TX_CHECKS_KIB_MAX) as u32;
        let slot = loop {
            tokio::select! {
                slot = self.tx_checks.clone().acquire_many_owned(kib) => break slot,
                Some(checked) = self.checked_rx.recv() => self.on_checked_txs(checked).await,
            }
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { return };
        let validator = self.validator.clone();
        let sig_checks = self.sig_checks.clone();
        let turn = Turn::new(self.tx_check_seq, source, id, slot, self.checked_tx.clone());
        self.tx_check_seq += 1;
        let weight = batch_weight(data.len());
        tokio::spawn(async move {
            let prepare = Box::new(move || validator.decode_txs(&data));
            let verdict = match sig_checks.check_with(weight, prepare).await {
                Ok(answer) => Validator::txs_verdict(answer),
                // The node is stopping.
                Err(_) => Verdict::Ignore("the node is stopping"),
            };
            turn.hand_on(verdict);
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

/// About how many transactions a gossiped batch of `bytes` holds: never
/// more than a batch may hold, however large its bytes, so that one batch
/// cannot take the whole queue.
fn batch_weight(bytes: usize) -> usize {
    (bytes / TX_BYTES_TYPICAL).clamp(1, crate::wire::TX_BATCH_MAX)
}

/// A gossiped batch's place in arrival order while it is checked.
/// Batches are handed on in that order, so a check that never ended would
/// hold back every batch after it: a turn dropped without a verdict (its
/// task panicked or was cancelled) hands its batch on as ignored.
struct Turn {
    /// The batch, ignored until its check gives a verdict.
    batch: Option<CheckedTxs>,
    done: mpsc::UnboundedSender<CheckedTxs>,
}

impl Turn {
    fn new(
        seq: u64,
        source: PeerId,
        id: gossipsub::MessageId,
        slot: OwnedSemaphorePermit,
        done: mpsc::UnboundedSender<CheckedTxs>,
    ) -> Turn {
        let verdict = Verdict::Ignore("the batch's check ended without a verdict");
        Turn {
            batch: Some(CheckedTxs {
                seq,
                source,
                id,
                verdict,
                _slot: slot,
            }),
            done,
        }
    }

    fn hand_on(mut self, verdict: Verdict<Vec<SignedTx>>) {
        if let Some(batch) = &mut self.batch {
            batch.verdict = verdict;
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(batch) = self.batch.take() {
            // Fails only when the network task has stopped.
            let _ = self.done.send(batch);
        }
    }
}

/// A gossiped transaction batch, checked.
pub(super) struct CheckedTxs {
    /// Its place in arrival order.
    pub(super) seq: u64,
    pub(super) source: PeerId,
    pub(super) id: gossipsub::MessageId,
    pub(super) verdict: Verdict<Vec<SignedTx>>,
    /// Freed when the network task has taken the verdict.
    pub(super) _slot: OwnedSemaphorePermit,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn a_batch_weighs_at_least_one_and_at_most_a_full_batch() {
        assert_eq!(batch_weight(0), 1);
        assert_eq!(batch_weight(150 * 40), 40);
        assert_eq!(batch_weight(16 << 20), crate::wire::TX_BATCH_MAX);
        const { assert!(crate::wire::TX_BATCH_MAX < crate::sig_checks::QUEUED_TXS_MAX) };
    }

    fn turn(seq: u64, done: &mpsc::UnboundedSender<CheckedTxs>) -> Turn {
        let room = std::sync::Arc::new(tokio::sync::Semaphore::new(1));
        Turn::new(
            seq,
            PeerId::random(),
            gossipsub::MessageId::new(&seq.to_be_bytes()),
            room.try_acquire_owned().unwrap(),
            done.clone(),
        )
    }

    #[tokio::test]
    async fn a_check_that_dies_still_hands_its_batch_on_once() {
        let (done, mut checked) = mpsc::unbounded_channel();
        // Handed on with its verdict: once, and not again when dropped.
        turn(0, &done).hand_on(Verdict::Reject("bad transaction signature"));
        // Its task panics before a verdict.
        let dying = turn(1, &done);
        let task = tokio::spawn(async move {
            let _turn = dying;
            panic!("a bug in a check");
        });
        assert!(task.await.unwrap_err().is_panic());
        drop(done);
        let first = checked.recv().await.unwrap();
        assert_eq!(first.seq, 0);
        assert!(matches!(
            first.verdict,
            Verdict::Reject("bad transaction signature")
        ));
        let second = checked.recv().await.unwrap();
        assert_eq!(second.seq, 1);
        assert!(matches!(second.verdict, Verdict::Ignore(_)));
        assert!(checked.recv().await.is_none());
    }
}
