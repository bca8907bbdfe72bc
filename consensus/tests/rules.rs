//! Exact-output tests, one or more per rule of Algorithm 1.
//!
//! Four validators of power 10: a quorum is 3 votes, f+1 is 2. At height 1
//! the proposers of rounds 0, 1, 2, 3 are validators 1, 2, 3, 0.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_consensus::{Consensus, DropReason, Input, Output, Step, TimeoutKind, Timeouts};
use tally_ledger::crypto::Domain;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{Evidence, Proposal, SignedProposal, Vote, VoteKind};
use tally_ledger::Hash;

const A: Hash = Hash([0xaa; 32]);
const B: Hash = Hash([0xbb; 32]);
const TIMEOUTS: Timeouts = Timeouts {
    propose_ms: 1000,
    prevote_ms: 500,
    precommit_ms: 500,
    delta_ms: 500,
};

struct Net {
    chain: TestChain,
}

impl Net {
    fn new() -> Self {
        Net {
            chain: TestChain::new(4, 1),
        }
    }

    fn node(&self, me: u32) -> Consensus {
        Consensus::new(
            self.chain.chain_id(),
            self.chain.validator_set.clone(),
            Some(me),
            TIMEOUTS,
            1,
        )
    }

    fn prevote(&self, from: u32, round: u32, value: Option<Hash>) -> Input {
        Input::Vote(
            self.chain
                .signed_vote(from, VoteKind::Prevote, 1, round, value),
        )
    }

    fn precommit(&self, from: u32, round: u32, value: Option<Hash>) -> Input {
        Input::Vote(
            self.chain
                .signed_vote(from, VoteKind::Precommit, 1, round, value),
        )
    }

    fn proposal(&self, round: u32, pol_round: Option<u32>, hash: Hash) -> Input {
        let proposal = Proposal {
            height: 1,
            round,
            pol_round,
            block_hash: hash,
        };
        let proposer = Consensus::new(
            self.chain.chain_id(),
            self.chain.validator_set.clone(),
            None,
            TIMEOUTS,
            1,
        )
        .proposer(1, round);
        let signature = self.chain.validator_keys[proposer as usize].sign(
            Domain::Proposal,
            self.chain.chain_id(),
            &proposal.message(),
        );
        Input::Proposal(SignedProposal {
            proposal,
            signature,
        })
    }
}

fn timeout(round: u32, kind: TimeoutKind) -> Output {
    let duration_ms = TIMEOUTS.duration_ms(kind, round);
    Output::ScheduleTimeout {
        height: 1,
        round,
        kind,
        duration_ms,
    }
}

fn prevote_out(round: u32, value: Option<Hash>) -> Output {
    Output::Vote(Vote {
        kind: VoteKind::Prevote,
        height: 1,
        round,
        value,
    })
}

fn precommit_out(round: u32, value: Option<Hash>) -> Output {
    Output::Vote(Vote {
        kind: VoteKind::Precommit,
        height: 1,
        round,
        value,
    })
}

fn validate(round: u32, block_hash: Hash) -> Output {
    Output::ValidateBlock {
        height: 1,
        round,
        block_hash,
    }
}

fn verdict(block_hash: Hash, valid: bool) -> Input {
    Input::BlockVerdict {
        height: 1,
        block_hash,
        valid,
    }
}

/// Validator 3 receives round 0's proposal of `hash` and a valid verdict,
/// and prevotes it.
fn prevoted(net: &Net, hash: Hash) -> Consensus {
    prevoted_as(net, 3, hash)
}

fn prevoted_as(net: &Net, me: u32, hash: Hash) -> Consensus {
    let mut n = net.node(me);
    n.start();
    assert_eq!(
        n.handle(net.proposal(0, None, hash)),
        vec![validate(0, hash)]
    );
    assert_eq!(
        n.handle(verdict(hash, true)),
        vec![prevote_out(0, Some(hash))]
    );
    n
}

/// Validator 3, locked on `hash` in round 0 (and precommitted it).
fn locked(net: &Net, hash: Hash) -> Consensus {
    locked_as(net, 3, hash)
}

fn locked_as(net: &Net, me: u32, hash: Hash) -> Consensus {
    let mut n = prevoted_as(net, me, hash);
    let others: Vec<u32> = (0..4).filter(|i| *i != me).collect();
    assert_eq!(n.handle(net.prevote(me, 0, Some(hash))), vec![]);
    assert_eq!(n.handle(net.prevote(others[0], 0, Some(hash))), vec![]);
    assert_eq!(
        n.handle(net.prevote(others[1], 0, Some(hash))),
        vec![
            timeout(0, TimeoutKind::Prevote),
            precommit_out(0, Some(hash))
        ]
    );
    assert_eq!(n.locked(), Some((0, hash)));
    n
}

/// Moves a node from round 0 to round 1 through 2f+1 precommits and the
/// precommit timeout (L47, L65).
fn to_round_1(net: &Net, n: &mut Consensus) {
    n.handle(net.precommit(1, 0, None));
    n.handle(net.precommit(2, 0, None));
    n.handle(net.precommit(3, 0, None));
    let out = n.handle(Input::TimeoutElapsed {
        height: 1,
        round: 0,
        kind: TimeoutKind::Precommit,
    });
    assert_eq!(n.round(), 1, "{out:?}");
}

#[test]
fn start_as_proposer_requests_a_block_then_proposes_it() {
    let net = Net::new();
    let mut n = net.node(1);
    assert_eq!(
        n.start(),
        vec![
            Output::RequestBlock {
                height: 1,
                round: 0
            },
            timeout(0, TimeoutKind::Propose)
        ]
    );
    assert_eq!(
        n.handle(Input::BlockToPropose {
            height: 1,
            round: 0,
            block_hash: A
        }),
        vec![Output::Propose(Proposal {
            height: 1,
            round: 0,
            pol_round: None,
            block_hash: A
        })]
    );
    // Its own proposal comes back signed: L22 with a known-valid value.
    assert_eq!(
        n.handle(net.proposal(0, None, A)),
        vec![prevote_out(0, Some(A))]
    );
}

#[test]
fn l22_valid_fresh_proposal_gets_a_prevote() {
    let net = Net::new();
    let n = prevoted(&net, A);
    assert_eq!(n.step(), Step::Prevote);
}

#[test]
fn l22_invalid_proposal_gets_a_nil_prevote() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    n.handle(net.proposal(0, None, A));
    assert_eq!(n.handle(verdict(A, false)), vec![prevote_out(0, None)]);
}

#[test]
fn l22_locked_on_another_value_prevotes_nil() {
    let net = Net::new();
    let mut n = locked(&net, A);
    to_round_1(&net, &mut n);
    assert_eq!(n.handle(net.proposal(1, None, B)), vec![validate(1, B)]);
    assert_eq!(n.handle(verdict(B, true)), vec![prevote_out(1, None)]);
}

#[test]
fn l22_locked_on_the_same_value_prevotes_it() {
    let net = Net::new();
    let mut n = locked(&net, A);
    to_round_1(&net, &mut n);
    assert_eq!(
        n.handle(net.proposal(1, None, A)),
        vec![prevote_out(1, Some(A))]
    );
}

#[test]
fn l28_proposal_with_a_later_proof_of_lock_unlocks() {
    let net = Net::new();
    // Validator 0 locks on A in round 0 and moves to round 1 ...
    let mut n = locked_as(&net, 0, A);
    to_round_1(&net, &mut n);
    // ... misses round 1's proposal, prevotes nil, while the others form a
    // polka for B in round 1 ...
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 1,
            kind: TimeoutKind::Propose
        }),
        vec![prevote_out(1, None)]
    );
    n.handle(net.prevote(1, 1, Some(B)));
    n.handle(net.prevote(2, 1, Some(B)));
    assert_eq!(
        n.handle(net.prevote(3, 1, Some(B))),
        vec![timeout(1, TimeoutKind::Prevote)]
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 1,
            kind: TimeoutKind::Prevote
        }),
        vec![precommit_out(1, None)]
    );
    n.handle(net.precommit(1, 1, None));
    n.handle(net.precommit(2, 1, None));
    n.handle(net.precommit(3, 1, None));
    n.handle(Input::TimeoutElapsed {
        height: 1,
        round: 1,
        kind: TimeoutKind::Precommit,
    });
    assert_eq!((n.round(), n.locked()), (2, Some((0, A))));
    // ... and round 2's proposer re-proposes B with proof-of-lock round 1:
    // locked round 0 <= 1, so validator 0 prevotes B.
    assert_eq!(n.handle(net.proposal(2, Some(1), B)), vec![validate(2, B)]);
    assert_eq!(n.handle(verdict(B, true)), vec![prevote_out(2, Some(B))]);
}

#[test]
fn l28_a_lock_newer_than_the_proof_of_lock_prevotes_nil() {
    let net = Net::new();
    let mut n = net.node(0);
    n.start();
    // Round 0: validator 0 sees no proposal; 1, 2 and 3 form a polka for B.
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Propose
        }),
        vec![prevote_out(0, None)]
    );
    n.handle(net.prevote(1, 0, Some(B)));
    n.handle(net.prevote(2, 0, Some(B)));
    n.handle(net.prevote(3, 0, Some(B)));
    n.handle(Input::TimeoutElapsed {
        height: 1,
        round: 0,
        kind: TimeoutKind::Prevote,
    });
    to_round_1(&net, &mut n);
    // Round 1: A is proposed; 0, 1 and 2 form a polka for A; 0 locks on A.
    assert_eq!(n.handle(net.proposal(1, None, A)), vec![validate(1, A)]);
    assert_eq!(n.handle(verdict(A, true)), vec![prevote_out(1, Some(A))]);
    n.handle(net.prevote(0, 1, Some(A)));
    n.handle(net.prevote(1, 1, Some(A)));
    n.handle(net.prevote(2, 1, Some(A)));
    assert_eq!(n.locked(), Some((1, A)));
    n.handle(net.precommit(1, 1, None));
    n.handle(net.precommit(2, 1, None));
    n.handle(net.precommit(3, 1, None));
    n.handle(Input::TimeoutElapsed {
        height: 1,
        round: 1,
        kind: TimeoutKind::Precommit,
    });
    assert_eq!(n.round(), 2);
    // Round 2: B with proof-of-lock round 0. Locked round 1 > 0 and the
    // locked value differs: prevote nil.
    assert_eq!(n.handle(net.proposal(2, Some(0), B)), vec![validate(2, B)]);
    assert_eq!(n.handle(verdict(B, true)), vec![prevote_out(2, None)]);
}

#[test]
fn l28_without_the_polka_waits_then_times_out() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    to_round_1(&net, &mut n);
    assert_eq!(n.handle(net.proposal(1, Some(0), A)), vec![validate(1, A)]);
    assert_eq!(
        n.handle(verdict(A, true)),
        vec![],
        "no polka for A in round 0"
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 1,
            kind: TimeoutKind::Propose
        }),
        vec![prevote_out(1, None)]
    );
}

#[test]
fn proposal_with_a_pol_round_not_earlier_is_dropped() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    assert_eq!(
        n.handle(net.proposal(0, Some(0), A)),
        vec![Output::Dropped(DropReason::BadPolRound {
            round: 0,
            pol_round: 0
        })]
    );
}

#[test]
fn l34_mixed_prevotes_schedule_the_prevote_timeout_once() {
    let net = Net::new();
    let mut n = prevoted(&net, A);
    assert_eq!(n.handle(net.prevote(3, 0, Some(A))), vec![]);
    assert_eq!(n.handle(net.prevote(0, 0, None)), vec![]);
    assert_eq!(
        n.handle(net.prevote(1, 0, Some(B))),
        vec![timeout(0, TimeoutKind::Prevote)]
    );
    assert_eq!(
        n.handle(net.prevote(2, 0, None)),
        vec![],
        "only the first time"
    );
}

#[test]
fn l36_polka_locks_and_precommits() {
    let net = Net::new();
    let n = locked(&net, A);
    assert_eq!(n.valid(), Some((0, A)));
    assert_eq!(n.step(), Step::Precommit);
}

#[test]
fn l36_polka_in_the_precommit_step_only_updates_the_valid_value() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    assert_eq!(n.handle(net.proposal(0, None, A)), vec![validate(0, A)]);
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Propose
        }),
        vec![prevote_out(0, None)]
    );
    assert_eq!(n.handle(net.prevote(3, 0, None)), vec![]);
    assert_eq!(n.handle(net.prevote(0, 0, Some(A))), vec![]);
    assert_eq!(
        n.handle(net.prevote(1, 0, Some(A))),
        vec![timeout(0, TimeoutKind::Prevote)]
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Prevote
        }),
        vec![precommit_out(0, None)]
    );
    assert_eq!(n.handle(verdict(A, true)), vec![]);
    assert_eq!(n.handle(net.prevote(2, 0, Some(A))), vec![]);
    assert_eq!(
        (n.step(), n.locked(), n.valid()),
        (Step::Precommit, None, Some((0, A)))
    );
}

#[test]
fn timeouts_the_machine_did_not_schedule_are_ignored() {
    let net = Net::new();
    let mut n = prevoted(&net, A);
    // No 2f+1 prevotes yet, so no prevote timeout was scheduled.
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Prevote
        }),
        vec![]
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Precommit
        }),
        vec![]
    );
    assert_eq!((n.round(), n.step()), (0, Step::Prevote));
}

#[test]
fn l44_polka_for_nil_precommits_nil() {
    let net = Net::new();
    let mut n = prevoted(&net, A);
    n.handle(net.prevote(0, 0, None));
    n.handle(net.prevote(1, 0, None));
    assert_eq!(
        n.handle(net.prevote(2, 0, None)),
        vec![timeout(0, TimeoutKind::Prevote), precommit_out(0, None)]
    );
}

#[test]
fn l47_mixed_precommits_schedule_the_precommit_timeout_once() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    assert_eq!(n.handle(net.precommit(0, 0, None)), vec![]);
    assert_eq!(n.handle(net.precommit(1, 0, Some(A))), vec![]);
    assert_eq!(
        n.handle(net.precommit(2, 0, Some(B))),
        vec![timeout(0, TimeoutKind::Precommit)]
    );
    assert_eq!(n.handle(net.precommit(3, 0, None)), vec![]);
}

#[test]
fn l49_decides_with_a_certificate_and_starts_the_next_height() {
    let net = Net::new();
    let mut n = locked(&net, A);
    n.handle(net.precommit(3, 0, Some(A)));
    n.handle(net.precommit(0, 0, Some(A)));
    let out = n.handle(net.precommit(1, 0, Some(A)));
    let Output::Decide {
        height: 1,
        round: 0,
        block_hash,
        certificate,
    } = &out[0]
    else {
        panic!("expected a decision first: {out:?}");
    };
    assert_eq!(*block_hash, A);
    let indices: Vec<u32> = certificate
        .signatures
        .iter()
        .map(|s| s.validator_index)
        .collect();
    assert_eq!(indices, vec![0, 1, 3]);
    tally_ledger::verify::verify_certificate(
        certificate,
        &net.chain.validator_set,
        net.chain.chain_id(),
    )
    .unwrap();
    // Height 2, round 0: the proposer is validator 2, so validator 3 waits.
    assert_eq!(
        out[1..].to_vec(),
        vec![Output::ScheduleTimeout {
            height: 2,
            round: 0,
            kind: TimeoutKind::Propose,
            duration_ms: 1000
        }]
    );
    assert_eq!((n.height(), n.round(), n.locked()), (2, 0, None));
}

#[test]
fn l49_decides_a_block_whose_proposal_was_missed_after_validating_it() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    n.handle(net.precommit(0, 0, Some(B)));
    n.handle(net.precommit(1, 0, Some(B)));
    assert_eq!(
        n.handle(net.precommit(2, 0, Some(B))),
        vec![validate(0, B), timeout(0, TimeoutKind::Precommit)]
    );
    let out = n.handle(verdict(B, true));
    assert!(
        matches!(
            out[0],
            Output::Decide {
                height: 1,
                block_hash: B,
                ..
            }
        ),
        "{out:?}"
    );
}

#[test]
fn l55_f_plus_one_in_a_higher_round_skips_to_it() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    assert_eq!(n.handle(net.prevote(0, 5, None)), vec![]);
    // Round 5's proposer at height 1 is validator (1 + 5) % 4 = 2.
    assert_eq!(
        n.handle(net.precommit(1, 5, None)),
        vec![timeout(5, TimeoutKind::Propose)]
    );
    assert_eq!(n.round(), 5);
    assert_eq!(
        TIMEOUTS.duration_ms(TimeoutKind::Propose, 5),
        3500,
        "timeouts grow with the round"
    );
}

#[test]
fn l55_votes_beyond_the_window_still_count_for_skipping() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    let before = n.stored_votes();
    n.handle(net.prevote(0, 1000, None));
    assert_eq!(n.stored_votes(), before, "far-future votes are not stored");
    assert_eq!(
        n.handle(net.prevote(1, 900, None)),
        vec![timeout(900, TimeoutKind::Propose)]
    );
    assert_eq!(n.round(), 900);
}

#[test]
fn l57_propose_timeout_prevotes_nil() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Propose
        }),
        vec![prevote_out(0, None)]
    );
}

#[test]
fn l61_prevote_timeout_precommits_nil() {
    let net = Net::new();
    let mut n = prevoted(&net, A);
    n.handle(net.prevote(3, 0, Some(A)));
    n.handle(net.prevote(0, 0, None));
    assert_eq!(
        n.handle(net.prevote(1, 0, Some(B))),
        vec![timeout(0, TimeoutKind::Prevote)]
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Prevote
        }),
        vec![precommit_out(0, None)]
    );
}

#[test]
fn l65_precommit_timeout_starts_the_next_round() {
    let net = Net::new();
    let mut n = net.node(2);
    n.start();
    n.handle(net.precommit(0, 0, None));
    n.handle(net.precommit(1, 0, None));
    assert_eq!(
        n.handle(net.precommit(3, 0, None)),
        vec![timeout(0, TimeoutKind::Precommit)]
    );
    // Round 1's proposer is validator 2 itself.
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Precommit
        }),
        vec![
            Output::RequestBlock {
                height: 1,
                round: 1
            },
            timeout(1, TimeoutKind::Propose)
        ]
    );
}

#[test]
fn proposer_with_a_valid_value_reproposes_it_with_its_round() {
    let net = Net::new();
    // Validator 2 proposes round 1; it saw a polka for A in round 0.
    let mut n = net.node(2);
    n.start();
    n.handle(net.proposal(0, None, A));
    n.handle(verdict(A, true));
    n.handle(net.prevote(0, 0, Some(A)));
    n.handle(net.prevote(1, 0, Some(A)));
    n.handle(net.prevote(3, 0, Some(A)));
    assert_eq!(n.valid(), Some((0, A)));
    n.handle(net.precommit(0, 0, None));
    n.handle(net.precommit(1, 0, None));
    n.handle(net.precommit(3, 0, None));
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Precommit
        }),
        vec![
            Output::Propose(Proposal {
                height: 1,
                round: 1,
                pol_round: Some(0),
                block_hash: A
            }),
            timeout(1, TimeoutKind::Propose)
        ]
    );
}

#[test]
fn stale_timeouts_are_ignored() {
    let net = Net::new();
    let mut n = prevoted(&net, A);
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 0,
            kind: TimeoutKind::Propose
        }),
        vec![]
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 0,
            round: 0,
            kind: TimeoutKind::Prevote
        }),
        vec![]
    );
    assert_eq!(
        n.handle(Input::TimeoutElapsed {
            height: 1,
            round: 3,
            kind: TimeoutKind::Precommit
        }),
        vec![]
    );
}

#[test]
fn double_votes_become_evidence_and_count_once() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    let first = net.chain.signed_vote(0, VoteKind::Prevote, 1, 0, Some(A));
    let second = net.chain.signed_vote(0, VoteKind::Prevote, 1, 0, Some(B));
    assert_eq!(n.handle(Input::Vote(first.clone())), vec![]);
    assert_eq!(
        n.handle(Input::Vote(first.clone())),
        vec![],
        "a duplicate is not evidence"
    );
    assert_eq!(
        n.handle(Input::Vote(second.clone())),
        vec![Output::Evidence(Evidence { first, second })]
    );
    assert_eq!(n.evidence().len(), 1);
    // Validator 0 counts once: with 1 and 2 for B there is still no polka for B.
    n.handle(net.prevote(1, 0, Some(B)));
    assert_eq!(n.handle(net.prevote(2, 0, Some(B))), vec![]);
}

#[test]
fn votes_from_non_validators_and_wrong_heights_are_dropped() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    let mut stranger = net.chain.signed_vote(0, VoteKind::Prevote, 1, 0, None);
    stranger.validator_index = 9;
    assert_eq!(
        n.handle(Input::Vote(stranger)),
        vec![Output::Dropped(DropReason::NotValidator {
            index: 9,
            len: 4
        })]
    );
    let far = net.chain.signed_vote(0, VoteKind::Prevote, 7, 0, None);
    assert_eq!(
        n.handle(Input::Vote(far)),
        vec![Output::Dropped(DropReason::WrongHeight {
            expected: 1,
            found: 7
        })]
    );
}

#[test]
fn next_height_messages_are_kept_and_replayed() {
    let net = Net::new();
    let mut n = locked(&net, A);
    let early = net.chain.signed_vote(0, VoteKind::Prevote, 2, 0, None);
    assert_eq!(n.handle(Input::Vote(early)), vec![]);
    n.handle(net.precommit(3, 0, Some(A)));
    n.handle(net.precommit(0, 0, Some(A)));
    n.handle(net.precommit(1, 0, Some(A)));
    assert_eq!(n.height(), 2);
    assert_eq!(
        n.stored_votes(),
        1,
        "the early vote was replayed into height 2"
    );
}

#[test]
fn commit_from_sync_decides_when_valid_and_is_refused_when_not() {
    let mut net = Net::new();
    let (block, cert, _) = net.chain.push(vec![]).unwrap();
    let mut n = net.node(3);
    n.start();
    let mut forged = cert.clone();
    forged.signatures.truncate(2);
    let out = n.handle(Input::CommitFromSync(forged));
    assert!(
        matches!(
            out.as_slice(),
            [Output::Dropped(DropReason::InvalidCertificate(_))]
        ),
        "{out:?}"
    );
    let out = n.handle(Input::CommitFromSync(cert.clone()));
    assert_eq!(
        out[0],
        Output::Decide {
            height: 1,
            round: 0,
            block_hash: block.hash(),
            certificate: cert
        }
    );
    assert_eq!(n.height(), 2);
}

#[test]
fn a_flood_of_next_height_messages_fills_only_its_signers_quota() {
    use tally_consensus::machine::FUTURE_PER_VALIDATOR_MAX;
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    // Validator 0 signs 10,000 distinct prevotes for height 2.
    for i in 0..10_000u32 {
        let mut value = [0u8; 32];
        value[..4].copy_from_slice(&i.to_le_bytes());
        let vote = net
            .chain
            .signed_vote(0, VoteKind::Prevote, 2, i % 8, Some(Hash(value)));
        let out = n.handle(Input::Vote(vote));
        if (i as usize) < FUTURE_PER_VALIDATOR_MAX {
            assert_eq!(out, vec![], "vote {i} is within the quota");
        } else {
            assert_eq!(
                out,
                vec![Output::Dropped(DropReason::WrongHeight {
                    expected: 1,
                    found: 2
                })],
                "vote {i} is past the quota"
            );
        }
    }
    // The honest validators' next-height votes are still kept...
    for from in [1, 2] {
        let vote = net
            .chain
            .signed_vote(from, VoteKind::Prevote, 2, 0, Some(B));
        assert_eq!(n.handle(Input::Vote(vote)), vec![]);
    }
    // ...and counted once the node reaches height 2.
    for from in [0, 1, 2] {
        n.handle(net.precommit(from, 0, Some(A)));
    }
    n.handle(Input::BlockVerdict {
        height: 1,
        block_hash: A,
        valid: true,
    });
    assert_eq!(n.height(), 2);
    assert_eq!(n.stored_votes(), FUTURE_PER_VALIDATOR_MAX + 2);
}

#[test]
fn next_height_messages_from_outside_the_set_are_dropped() {
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    let mut vote = net.chain.signed_vote(0, VoteKind::Prevote, 2, 0, Some(A));
    vote.validator_index = 4;
    assert_eq!(
        n.handle(Input::Vote(vote)),
        vec![Output::Dropped(DropReason::WrongHeight {
            expected: 1,
            found: 2
        })]
    );
}

#[test]
fn a_restarted_validator_honours_the_lock_it_restored() {
    let net = Net::new();
    // Validator 3 locked on A in round 0 and restarted in round 1.
    let mut n = net.node(3);
    n.restore(1, Some((0, A)));
    assert_eq!((n.locked(), n.valid()), (Some((0, A)), Some((0, A))));
    assert_eq!(n.start(), vec![timeout(1, TimeoutKind::Propose)]);
    // A fresh proposal for another block: it prevotes nil, not B.
    assert_eq!(n.handle(net.proposal(1, None, B)), vec![validate(1, B)]);
    assert_eq!(n.handle(verdict(B, true)), vec![prevote_out(1, None)]);
}

#[test]
fn a_restarted_proposer_reproposes_the_block_it_is_locked_on() {
    let net = Net::new();
    // Validator 2 proposes round 1; it locked on A in round 0.
    let mut n = net.node(2);
    n.restore(1, Some((0, A)));
    assert_eq!(
        n.start(),
        vec![
            Output::Propose(Proposal {
                height: 1,
                round: 1,
                pol_round: Some(0),
                block_hash: A,
            }),
            timeout(1, TimeoutKind::Propose),
        ]
    );
}

/// Validator 3 at height 2, having decided `A` at height 1 in round 0.
fn decided(net: &Net) -> Consensus {
    let mut n = locked(net, A);
    for from in [0, 1, 2] {
        n.handle(net.precommit(from, 0, Some(A)));
    }
    assert_eq!(n.height(), 2);
    n
}

#[test]
fn the_lock_proof_is_the_polka_that_made_the_lock() {
    let net = Net::new();
    let n = locked(&net, A);
    let vote = |kind, value| Vote {
        kind,
        height: 1,
        round: 0,
        value,
    };
    let proof = n.lock_proof(&vote(VoteKind::Precommit, Some(A)));
    let mut signers: Vec<u32> = proof.iter().map(|v| v.validator_index).collect();
    signers.sort_unstable();
    assert_eq!(signers, vec![0, 1, 3]);
    assert!(proof
        .iter()
        .all(|v| v.vote == vote(VoteKind::Prevote, Some(A))));
    assert_eq!(n.polka_votes(0, A), proof);
    // Only a precommit for a block makes a lock.
    assert_eq!(n.lock_proof(&vote(VoteKind::Precommit, None)), vec![]);
    assert_eq!(n.lock_proof(&vote(VoteKind::Prevote, Some(A))), vec![]);
    assert_eq!(n.polka_votes(0, B), vec![]);
}

#[test]
fn a_block_to_propose_is_proposed_only_by_the_proposer_of_that_round_in_its_propose_step() {
    let net = Net::new();
    let block = |height, round| Input::BlockToPropose {
        height,
        round,
        block_hash: B,
    };
    // Validator 0 has no turn in round 0.
    let mut n = net.node(0);
    n.start();
    assert_eq!(n.handle(block(1, 0)), vec![]);
    // Validator 1 proposes round 0, but not round 1, not height 2 (whose
    // round 0 is its too) and not after it prevoted.
    let mut n = net.node(1);
    n.start();
    assert_eq!(n.handle(block(1, 1)), vec![]);
    let mut next = net.node(n.proposer(2, 0));
    next.start();
    assert_eq!(next.handle(block(2, 0)), vec![]);
    n.handle(Input::TimeoutElapsed {
        height: 1,
        round: 0,
        kind: TimeoutKind::Propose,
    });
    assert_eq!(n.step(), Step::Prevote);
    assert_eq!(n.handle(block(1, 0)), vec![]);
}

#[test]
fn a_next_height_proposal_is_kept_and_validated_once_the_height_starts() {
    let net = Net::new();
    let mut n = locked(&net, A);
    let proposal = Proposal {
        height: 2,
        round: 0,
        pol_round: None,
        block_hash: B,
    };
    let proposer = n.proposer(2, 0);
    let signature = net.chain.validator_keys[proposer as usize].sign(
        Domain::Proposal,
        net.chain.chain_id(),
        &proposal.message(),
    );
    let early = Input::Proposal(SignedProposal {
        proposal,
        signature,
    });
    assert_eq!(n.handle(early), vec![]);
    n.handle(net.precommit(0, 0, Some(A)));
    n.handle(net.precommit(1, 0, Some(A)));
    let out = n.handle(net.precommit(2, 0, Some(A)));
    assert_eq!(n.height(), 2);
    assert!(
        out.contains(&Output::ValidateBlock {
            height: 2,
            round: 0,
            block_hash: B
        }),
        "{out:?}"
    );
}

#[test]
fn messages_for_a_decided_height_are_ignored_without_a_drop() {
    let net = Net::new();
    let mut n = decided(&net);
    let mut chain = TestChain::new(4, 1);
    let (_, cert, _) = chain.push(vec![]).unwrap();
    assert_eq!(n.handle(net.proposal(1, None, B)), vec![]);
    assert_eq!(n.handle(net.prevote(0, 0, Some(A))), vec![]);
    assert_eq!(n.handle(Input::CommitFromSync(cert)), vec![]);
}

#[test]
fn a_commit_from_sync_for_a_later_height_is_dropped() {
    let net = Net::new();
    let mut chain = TestChain::new(4, 1);
    let mut cert = None;
    for _ in 0..5 {
        cert = Some(chain.push(vec![]).unwrap().1);
    }
    let mut n = net.node(3);
    n.start();
    assert_eq!(
        n.handle(Input::CommitFromSync(cert.unwrap())),
        vec![Output::Dropped(DropReason::WrongHeight {
            expected: 1,
            found: 5
        })]
    );
    assert_eq!(n.height(), 1);
}

#[test]
fn proposals_are_taken_up_to_the_round_window_and_once_per_round() {
    use tally_consensus::ROUND_WINDOW;
    let net = Net::new();
    let mut n = net.node(3);
    n.start();
    assert_eq!(
        n.handle(net.proposal(ROUND_WINDOW, None, A)),
        vec![validate(ROUND_WINDOW, A)]
    );
    // Past the window (from the same proposer, four rounds on, so that no
    // second validator's round counts towards skipping): ignored.
    assert_eq!(n.handle(net.proposal(ROUND_WINDOW + 4, None, B)), vec![]);
    // The same proposal again: nothing; another one for the round: dropped.
    assert_eq!(n.handle(net.proposal(ROUND_WINDOW, None, A)), vec![]);
    assert_eq!(
        n.handle(net.proposal(ROUND_WINDOW, None, B)),
        vec![Output::Dropped(DropReason::ConflictingProposal {
            height: 1,
            round: ROUND_WINDOW
        })]
    );
}

#[test]
fn a_double_voters_vote_for_the_proposed_value_counts_past_its_equivocation_cap() {
    use tally_consensus::votes::EQUIVOCATIONS_COUNTED_MAX;
    let net = Net::new();
    let mut n = prevoted(&net, A);
    // Validator 0 prevotes more unproposed values than are counted...
    for i in 0..=EQUIVOCATIONS_COUNTED_MAX as u8 {
        n.handle(net.prevote(0, 0, Some(Hash([i; 32]))));
    }
    assert_eq!(n.stored_votes(), EQUIVOCATIONS_COUNTED_MAX);
    // ...then the proposed one, which still counts: with 1 and 3 it is a
    // polka, and validator 3 locks.
    n.handle(net.prevote(0, 0, Some(A)));
    n.handle(net.prevote(3, 0, Some(A)));
    let out = n.handle(net.prevote(1, 0, Some(A)));
    assert!(out.contains(&precommit_out(0, Some(A))), "{out:?}");
    assert_eq!(n.locked(), Some((0, A)));
}

#[test]
fn a_timeout_for_another_round_of_this_height_is_stale() {
    let net = Net::new();
    let mut n = locked(&net, A);
    // Mixed precommits schedule round 0's precommit timeout.
    n.handle(net.precommit(3, 0, Some(A)));
    n.handle(net.precommit(0, 0, None));
    let out = n.handle(net.precommit(1, 0, Some(B)));
    assert!(out.contains(&timeout(0, TimeoutKind::Precommit)), "{out:?}");
    for (height, round) in [(1, 5), (2, 0)] {
        assert_eq!(
            n.handle(Input::TimeoutElapsed {
                height,
                round,
                kind: TimeoutKind::Precommit
            }),
            vec![]
        );
    }
    assert_eq!(n.round(), 0);
}
