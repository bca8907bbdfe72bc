//! What gossip must be before it is forwarded or handed on: decoded within
//! its size bound, signed by someone entitled to sign it, and identified by
//! its topic and content ([`message_id`], ADR 8).

use std::collections::BTreeMap;
use std::sync::Arc;

use libp2p::gossipsub;

use tally_ledger::crypto::Domain;
use tally_ledger::execution::TxError;
use tally_ledger::proposer::ProposerSchedule;
use tally_ledger::types::{SignedTx, ValidatorSet};
use tally_ledger::Hash;

use super::SEQ_BYTES;
use crate::mempool::MempoolError;
use crate::sig_checks::{Answer, CHECK_FAILED, READ_FAILED};
use crate::wire::{self, ConsensusMsg};

/// A height's validator set and its proposer schedule.
pub type HeightSet = (Arc<ValidatorSet>, Arc<ProposerSchedule>);

/// The validator sets consensus gossip is judged against, by height: the
/// heights the node is deciding and about to decide (the driver names
/// them as the chain moves, from its state), and the one before (late
/// votes still help peers finishing it). A message for any other height
/// is ignored, not forwarded: no set is known to say who may sign it.
#[derive(Debug, Default)]
pub(super) struct HeightSets {
    by_height: BTreeMap<u64, HeightSet>,
}

impl HeightSets {
    /// Sets `sets` as the sets of the heights from `from` on.
    pub(super) fn update(&mut self, from: u64, sets: Vec<HeightSet>) {
        let end = from.saturating_add(sets.len() as u64);
        for (height, set) in (from..).zip(sets) {
            self.by_height.insert(height, set);
        }
        self.by_height
            .retain(|h, _| h.saturating_add(1) >= from && *h < end);
    }

    fn at(&self, height: u64) -> Option<&HeightSet> {
        self.by_height.get(&height)
    }
}

/// Checks gossip before it is forwarded.
pub(super) struct Validator {
    pub(super) chain_id: String,
    pub(super) tx_batch_bytes_max: usize,
    pub(super) consensus_bytes_max: usize,
}

pub(super) enum Verdict<T> {
    Accept(T),
    /// Not forwarded, but no fault of the sender's.
    Ignore(&'static str),
    Reject(&'static str),
}

impl Validator {
    pub(super) fn consensus(&self, data: &[u8], sets: &HeightSets) -> Verdict<ConsensusMsg> {
        let Ok(env) = wire::decode_consensus(data, self.consensus_bytes_max) else {
            return Verdict::Reject("undecodable consensus message");
        };
        let height = match &env.body {
            ConsensusMsg::Vote(v) => v.vote.height,
            ConsensusMsg::Proposal { proposal, .. } => proposal.proposal.height,
        };
        let Some((set, schedule)) = sets.at(height) else {
            return Verdict::Ignore(
                "consensus message for a height whose validators are not known here",
            );
        };
        match env.body {
            ConsensusMsg::Vote(v) => {
                let Some(validator) = set.get(v.validator_index) else {
                    return Verdict::Reject("vote from a non-validator");
                };
                if validator
                    .public_key
                    .verify(
                        Domain::Vote,
                        &self.chain_id,
                        &v.vote.message(),
                        &v.signature,
                    )
                    .is_err()
                {
                    return Verdict::Reject("bad vote signature");
                }
                Verdict::Accept(ConsensusMsg::Vote(v))
            }
            ConsensusMsg::Proposal { proposal, block } => {
                let p = proposal.proposal;
                let index = schedule.proposer(p.height, p.round);
                let Some(proposer) = set.get(index) else {
                    return Verdict::Reject("no proposer");
                };
                if proposer
                    .public_key
                    .verify(
                        Domain::Proposal,
                        &self.chain_id,
                        &p.message(),
                        &proposal.signature,
                    )
                    .is_err()
                {
                    return Verdict::Reject("bad proposal signature");
                }
                if block.hash() != p.block_hash
                    || block.height() != p.height
                    || block.header.chain_id != self.chain_id
                {
                    return Verdict::Reject("proposal block does not match the proposal");
                }
                Verdict::Accept(ConsensusMsg::Proposal { proposal, block })
            }
        }
    }

    /// A gossiped batch's transactions, decoded within the batch bound; its
    /// chain and signatures are checked with other batches ([`SigChecks`]).
    ///
    /// [`SigChecks`]: crate::sig_checks::SigChecks
    pub(super) fn decode_txs(&self, data: &[u8]) -> Result<Vec<SignedTx>, &'static str> {
        wire::decode_txs(data, self.tx_batch_bytes_max)
            .map(|env| env.body)
            .map_err(|_| "undecodable transaction batch")
    }

    /// The verdict on a gossiped batch from its transactions' checks: one
    /// transaction for another chain or with a bad signature condemns the
    /// batch (its sender forwarded what it should have refused).
    pub(super) fn txs_verdict(answer: Answer) -> Verdict<Vec<SignedTx>> {
        let checked = match answer {
            Ok(checked) => checked,
            // A fault in this node, not the peer's.
            Err(reason @ (CHECK_FAILED | READ_FAILED)) => return Verdict::Ignore(reason),
            Err(reason) => return Verdict::Reject(reason),
        };
        let mut txs = Vec::with_capacity(checked.len());
        for (tx, result) in checked {
            match result {
                Ok(()) => txs.push(tx),
                Err(MempoolError::Invalid(TxError::WrongChain { .. })) => {
                    return Verdict::Reject("transaction for another chain")
                }
                // A fault in this node, not the peer's.
                Err(MempoolError::Unchecked) => {
                    return Verdict::Ignore("the batch could not be checked")
                }
                Err(_) => return Verdict::Reject("bad transaction signature"),
            }
        }
        Verdict::Accept(txs)
    }
}

/// A gossip message's id: SHA-256 over its topic, its content and the
/// current [`GOSSIP_ID_PERIOD`] number `period` on this node's clock.
///
/// For consensus messages and transaction batches the content is the body
/// after the envelope's sequence number: the same signed message sent again
/// with a new number is the same message, delivered and forwarded at most
/// once per period however often a peer sends it. With `with_seq` (status
/// messages) the number is part of the content: status is never forwarded,
/// and two nodes at one height send the same body, which must not hide the
/// second node's status. The topic is part of the id so that a body sent on
/// the wrong topic (rejected, but remembered) cannot shadow the same body on
/// its own topic.
pub fn message_id(
    topic: &gossipsub::TopicHash,
    data: &[u8],
    with_seq: bool,
    period: u64,
) -> gossipsub::MessageId {
    let (kind, content) = match data.get(SEQ_BYTES..) {
        Some(body) if !with_seq => (0u8, body),
        // Too short to hold a sequence number (and so undecodable).
        _ => (1u8, data),
    };
    let topic = topic.as_str().as_bytes();
    let mut framed = Vec::with_capacity(4 + topic.len() + 1 + 8 + 32);
    framed.extend_from_slice(&(topic.len() as u32).to_le_bytes());
    framed.extend_from_slice(topic);
    framed.push(kind);
    framed.extend_from_slice(&period.to_le_bytes());
    framed.extend_from_slice(&Hash::digest(content).0);
    gossipsub::MessageId::from(Hash::digest(&framed).0.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Status;
    use tally_ledger::testkit::TestChain;
    use wire::encode_envelope;

    #[test]
    fn a_message_sent_again_with_a_new_sequence_number_keeps_its_id_within_a_period() {
        let consensus = gossipsub::TopicHash::from_raw("/tally/t/consensus/1");
        let txs = gossipsub::TopicHash::from_raw("/tally/t/txs/1");
        let mut chain = TestChain::new(4, 4);
        let batch = vec![chain.transfer(1, 2, 1)];
        let other = vec![chain.transfer(1, 2, 1)];
        let id = |topic: &gossipsub::TopicHash, seq: u64, body: &Vec<SignedTx>, period: u64| {
            message_id(topic, &encode_envelope(seq, body), false, period)
        };
        assert_eq!(id(&txs, 1, &batch, 5), id(&txs, 2, &batch, 5));
        assert_eq!(id(&txs, 7, &batch, 5), id(&txs, u64::MAX, &batch, 5));
        assert_ne!(id(&txs, 1, &batch, 5), id(&txs, 1, &other, 5));
        // The next period, the same content is a new message once more.
        assert_ne!(id(&txs, 1, &batch, 5), id(&txs, 1, &batch, 6));
        // The same bytes on another topic are another message.
        assert_ne!(id(&txs, 1, &batch, 5), id(&consensus, 1, &batch, 5));
        // Too short for a sequence number: identified by all its bytes.
        assert_ne!(
            message_id(&txs, &[0; 4], false, 5),
            message_id(&txs, &[0; 12][..], false, 5)
        );
        assert_eq!(
            message_id(&txs, b"short", false, 5),
            message_id(&txs, b"short", false, 5)
        );
    }

    #[test]
    fn status_ids_count_the_sequence_number() {
        let status = gossipsub::TopicHash::from_raw("/tally/t/status/1");
        let body = Status {
            height: 7,
            block_hash: Hash::digest(b"block 7"),
        };
        let one = message_id(&status, &encode_envelope(1, &body), true, 5);
        let two = message_id(&status, &encode_envelope(2, &body), true, 5);
        assert_ne!(one, two);
        assert_eq!(
            one,
            message_id(&status, &encode_envelope(1, &body), true, 5)
        );
    }

    #[test]
    fn a_batch_is_the_peers_fault_only_when_its_bytes_or_signatures_are() {
        let mut chain = TestChain::new(4, 4);
        let good = chain.transfer(1, 2, 1);
        let forged = {
            let mut tx = chain.transfer(2, 3, 1);
            tx.signature.0[0] ^= 1;
            tx
        };
        let verdict = |answer: Answer| match Validator::txs_verdict(answer) {
            Verdict::Accept(txs) => format!("accept {}", txs.len()),
            Verdict::Ignore(r) => format!("ignore: {r}"),
            Verdict::Reject(r) => format!("reject: {r}"),
        };
        let bad = MempoolError::Invalid(TxError::BadSignature(
            tally_ledger::crypto::SignatureError::Invalid(good.tx.sender),
        ));
        assert_eq!(verdict(Ok(vec![(good.clone(), Ok(()))])), "accept 1");
        assert_eq!(
            verdict(Ok(vec![(good.clone(), Ok(())), (forged, Err(bad))])),
            "reject: bad transaction signature"
        );
        assert_eq!(
            verdict(Err("undecodable transaction batch")),
            "reject: undecodable transaction batch"
        );
        // Faults in this node.
        for reason in [CHECK_FAILED, READ_FAILED] {
            assert_eq!(verdict(Err(reason)), format!("ignore: {reason}"));
        }
        assert!(verdict(Ok(vec![(good, Err(MempoolError::Unchecked))])).starts_with("ignore"));
    }
}
