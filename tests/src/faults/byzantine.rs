//! A Byzantine validator for scenario 11: a real node whose every
//! consensus message goes out together with a conflicting one, signed with
//! the same validator key and bypassing the signer's double-sign guard.
//!
//! - Each proposal of its own is joined by a second proposal for the same
//!   height and round: the same block timed 1 ms later, so a valid block
//!   with another hash (an equivocating proposer). For every other pair
//!   the second goes out first, so that peers take it while the node's own
//!   consensus holds the first (its turns fall at heights of one parity); each pair is logged ("second proposal",
//!   with both hashes) for the scenario to see which was committed.
//! - Each vote of its own is preceded by a vote of the same kind, height
//!   and round for another value: the alternative block it proposed there,
//!   nil instead of a block, or a made-up block instead of nil (a double
//!   voter). The conflicting vote goes first, so that peers count it.
//!
//! The `tally-byzantine` test binary runs a node with this tap.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tally_ledger::types::{Proposal, SignedProposal, SignedVote, Vote};
use tally_ledger::{Domain, Hash, Keypair};
use tally_node::tap::ConsensusTap;
use tally_node::wire::ConsensusMsg;

/// Alternative proposals remembered, by (height, round): enough for the
/// rounds of the last few heights.
const ALTERNATIVES_KEPT: usize = 256;

/// Second blocks' hashes by (height, round).
type Alternatives = BTreeMap<(u64, u32), Hash>;

/// The tap of a validator with `key` (index `index` in the set) on
/// `chain_id`: see the module's description.
pub fn equivocating(key: Keypair, index: u32, chain_id: String) -> ConsensusTap {
    // The second blocks by (height, round), and how many pairs went out.
    let state: Mutex<(Alternatives, u64)> = Mutex::new((BTreeMap::new(), 0));
    ConsensusTap(Arc::new(move |msg: &ConsensusMsg| {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        let (alternatives, pairs) = &mut *state;
        match msg {
            ConsensusMsg::Proposal { proposal, block } => {
                let mut other = block.clone();
                other.header.time_ms += 1;
                let p = Proposal {
                    block_hash: other.hash(),
                    ..proposal.proposal
                };
                alternatives.insert((p.height, p.round), p.block_hash);
                while alternatives.len() > ALTERNATIVES_KEPT {
                    alternatives.pop_first();
                }
                let signed = SignedProposal {
                    proposal: p,
                    signature: key.sign(Domain::Proposal, &chain_id, &p.message()),
                };
                tracing::info!(
                    height = p.height,
                    round = p.round,
                    first = %proposal.proposal.block_hash.to_hex(),
                    second = %p.block_hash.to_hex(),
                    "second proposal"
                );
                let second = ConsensusMsg::Proposal {
                    proposal: signed,
                    block: other,
                };
                *pairs += 1;
                if *pairs % 2 == 1 {
                    vec![second, msg.clone()]
                } else {
                    vec![msg.clone(), second]
                }
            }
            ConsensusMsg::Vote(own) if own.validator_index == index => {
                let v = own.vote;
                let alternative = alternatives
                    .get(&(v.height, v.round))
                    .copied()
                    .filter(|a| Some(*a) != v.value);
                let value = match (alternative, v.value) {
                    (Some(a), _) => Some(a),
                    (None, Some(_)) => None,
                    (None, None) => Some(made_up(v.height, v.round)),
                };
                let vote = Vote { value, ..v };
                let conflicting = SignedVote {
                    vote,
                    validator_index: index,
                    signature: key.sign(Domain::Vote, &chain_id, &vote.message()),
                };
                vec![ConsensusMsg::Vote(conflicting), msg.clone()]
            }
            ConsensusMsg::Vote(_) => vec![msg.clone()],
        }
    }))
}

/// A block hash no block has.
fn made_up(height: u64, round: u32) -> Hash {
    Hash::digest(format!("byzantine {height} {round}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_ledger::types::VoteKind;

    fn vote(key: &Keypair, value: Option<Hash>) -> ConsensusMsg {
        let vote = Vote {
            kind: VoteKind::Prevote,
            height: 7,
            round: 2,
            value,
        };
        ConsensusMsg::Vote(SignedVote {
            vote,
            validator_index: 3,
            signature: key.sign(Domain::Vote, "c", &vote.message()),
        })
    }

    fn votes(out: &[ConsensusMsg]) -> Vec<SignedVote> {
        out.iter()
            .map(|m| match m {
                ConsensusMsg::Vote(v) => v.clone(),
                ConsensusMsg::Proposal { .. } => panic!("a proposal"),
            })
            .collect()
    }

    #[test]
    fn each_vote_goes_out_after_a_validly_signed_conflicting_one() {
        let key = Keypair::from_seed([9; 32]);
        let tap = equivocating(Keypair::from_seed([9; 32]), 3, "c".into());
        let block = Hash::digest(b"block");
        for value in [Some(block), None] {
            let own = vote(&key, value);
            let out = votes(&(tap.0)(&own));
            assert_eq!(out.len(), 2);
            assert_eq!(ConsensusMsg::Vote(out[1].clone()), own);
            let conflicting = &out[0];
            assert_eq!(conflicting.vote.height, 7);
            assert_eq!(conflicting.vote.round, 2);
            assert_eq!(conflicting.vote.kind, VoteKind::Prevote);
            assert_ne!(conflicting.vote.value, value);
            key.public()
                .verify(
                    Domain::Vote,
                    "c",
                    &conflicting.vote.message(),
                    &conflicting.signature,
                )
                .expect("signed by the validator");
        }
    }

    #[test]
    fn an_own_proposal_is_joined_by_a_valid_other_block_and_its_votes_conflict() {
        let chain = tally_ledger::testkit::TestChain::new(4, 2);
        let key = Keypair::from_seed(chain.validator_keys[1].seed());
        let tap = equivocating(Keypair::from_seed(key.seed()), 1, chain.chain_id().into());
        let (block, _) = chain.build_block(Vec::new()).expect("a block");
        let proposal = Proposal {
            height: 1,
            round: 0,
            pol_round: None,
            block_hash: block.hash(),
        };
        let own = ConsensusMsg::Proposal {
            proposal: SignedProposal {
                proposal,
                signature: key.sign(Domain::Proposal, chain.chain_id(), &proposal.message()),
            },
            block: Box::new(block.clone()),
        };
        let out = (tap.0)(&own);
        assert_eq!(out.len(), 2);
        // The first pair: the second block goes out first.
        assert_eq!(out[1], own);
        let ConsensusMsg::Proposal {
            proposal: second,
            block: other,
        } = &out[0]
        else {
            panic!("not a proposal");
        };
        assert_eq!(second.proposal.block_hash, other.hash());
        assert_ne!(other.hash(), block.hash());
        assert_eq!(other.txs, block.txs);
        assert_eq!(other.header.time_ms, block.header.time_ms + 1);
        key.public()
            .verify(
                Domain::Proposal,
                chain.chain_id(),
                &second.proposal.message(),
                &second.signature,
            )
            .expect("signed by the proposer");
        // Its prevote for its first block now conflicts with one for the
        // second.
        let prevote = Vote {
            kind: VoteKind::Prevote,
            height: 1,
            round: 0,
            value: Some(block.hash()),
        };
        let own = ConsensusMsg::Vote(SignedVote {
            vote: prevote,
            validator_index: 1,
            signature: key.sign(Domain::Vote, chain.chain_id(), &prevote.message()),
        });
        let out = votes(&(tap.0)(&own));
        assert_eq!(out[0].vote.value, Some(other.hash()));
    }

    #[test]
    fn another_validators_vote_passes_unchanged() {
        let tap = equivocating(Keypair::from_seed([9; 32]), 2, "c".into());
        let other = vote(&Keypair::from_seed([1; 32]), None);
        assert_eq!((tap.0)(&other), vec![other]);
    }
}
