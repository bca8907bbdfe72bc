//! The vote keeper on its own: what it stores, what it only notes, and the
//! evidence it keeps. Four validators of power 10: f+1 is 2 of them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_consensus::votes::{Added, VoteKeeper, EQUIVOCATIONS_COUNTED_MAX};
use tally_consensus::{DropReason, ROUND_WINDOW};
use tally_ledger::testkit::TestChain;
use tally_ledger::types::VoteKind;
use tally_ledger::Hash;

fn value(b: u8) -> Option<Hash> {
    Some(Hash([b; 32]))
}

fn unproposed(_: &Hash) -> bool {
    false
}

#[test]
fn a_keeper_takes_votes_of_its_own_height_only() {
    let chain = TestChain::new(4, 1);
    let mut k = VoteKeeper::new(7, chain.validator_set.clone());
    assert_eq!(k.height(), 7);
    let vote = chain.signed_vote(0, VoteKind::Prevote, 8, 0, None);
    assert_eq!(
        k.add(vote, 0, unproposed),
        Err(DropReason::WrongHeight {
            expected: 7,
            found: 8
        })
    );
    let vote = chain.signed_vote(0, VoteKind::Prevote, 7, 0, None);
    assert_eq!(k.add(vote, 0, unproposed), Ok(Added::New));
}

#[test]
fn votes_up_to_the_round_window_are_stored_and_later_ones_only_noted() {
    let chain = TestChain::new(4, 1);
    let mut k = VoteKeeper::new(1, chain.validator_set.clone());
    let at_edge = chain.signed_vote(0, VoteKind::Prevote, 1, ROUND_WINDOW, None);
    assert_eq!(k.add(at_edge, 0, unproposed), Ok(Added::New));
    let past = chain.signed_vote(1, VoteKind::Prevote, 1, ROUND_WINDOW + 1, None);
    assert_eq!(k.add(past, 0, unproposed), Ok(Added::RoundNoted));
    assert_eq!(k.stored_votes(), 1);
    // Both rounds count towards skipping: f+1 validators are past round 0.
    assert_eq!(k.skip_round(0), Some(ROUND_WINDOW));
}

#[test]
fn evidence_is_kept_once_per_validator_round_and_step() {
    let chain = TestChain::new(4, 1);
    let mut k = VoteKeeper::new(1, chain.validator_set.clone());
    let mut add = |from, kind, round, values: &[u8]| {
        for &b in values {
            k.add(
                chain.signed_vote(from, kind, 1, round, value(b)),
                0,
                unproposed,
            )
            .unwrap();
        }
    };
    add(0, VoteKind::Prevote, 0, &[1, 2, 3]);
    add(0, VoteKind::Prevote, 1, &[1, 2]);
    add(0, VoteKind::Precommit, 0, &[1, 2]);
    add(1, VoteKind::Prevote, 0, &[1, 2]);
    let offences: Vec<(u32, VoteKind, u32)> = k
        .evidence()
        .iter()
        .map(|e| {
            (
                e.first.validator_index,
                e.first.vote.kind,
                e.first.vote.round,
            )
        })
        .collect();
    assert_eq!(
        offences,
        vec![
            (0, VoteKind::Prevote, 0),
            (0, VoteKind::Prevote, 1),
            (0, VoteKind::Precommit, 0),
            (1, VoteKind::Prevote, 0),
        ]
    );
    // Every distinct value is stored, up to the per-validator cap.
    assert_eq!(k.stored_votes(), 3 + 2 + 2 + 2);
}

#[test]
fn an_equivocators_unproposed_values_are_counted_up_to_the_cap() {
    let chain = TestChain::new(4, 1);
    let mut k = VoteKeeper::new(1, chain.validator_set.clone());
    let cap = EQUIVOCATIONS_COUNTED_MAX as u8;
    for b in 0..cap + 3 {
        k.add(
            chain.signed_vote(0, VoteKind::Prevote, 1, 0, value(b)),
            0,
            unproposed,
        )
        .unwrap();
    }
    assert_eq!(k.stored_votes(), EQUIVOCATIONS_COUNTED_MAX);
    // The last counted value has validator 0's power; the first refused
    // one has none.
    for from in [1, 2] {
        let vote = chain.signed_vote(from, VoteKind::Prevote, 1, 0, value(cap - 1));
        k.add(vote, 0, unproposed).unwrap();
    }
    assert!(k.has_quorum_for(0, VoteKind::Prevote, value(cap - 1)));
    for from in [1, 2] {
        let vote = chain.signed_vote(from, VoteKind::Prevote, 1, 0, value(cap));
        k.add(vote, 0, unproposed).unwrap();
    }
    assert!(!k.has_quorum_for(0, VoteKind::Prevote, value(cap)));
}

#[test]
fn round_skipping_uses_each_validators_highest_round() {
    let chain = TestChain::new(4, 1);
    let mut k = VoteKeeper::new(1, chain.validator_set.clone());
    for round in [2, 5, 4] {
        k.note_round(0, round);
    }
    k.note_round(1, 3);
    // Validator 0 reached 5, validator 1 reached 3: f+1 are at round 3.
    assert_eq!(k.skip_round(0), Some(3));
    assert_eq!(k.skip_round(3), None);
    // A validator outside the set is ignored.
    k.note_round(9, 7);
    assert_eq!(k.skip_round(3), None);
}
