//! The block rule itself ([`ChainRules`]), on in-memory state: every case
//! of the shared list is refused before voting and in sync with the same
//! reason, a clean block passes, and each limit holds at its boundary. The
//! node's tests run the same cases on a real store with the audit as a
//! third judge (`tests/tests/block_rules.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_ledger::encoding::encode;
use tally_ledger::testkit::rule_cases::{
    base_chain, next_block, rule_cases, sync_verdict, validation_verdict, BASE,
};
use tally_ledger::testkit::TestChain;
use tally_ledger::types::Block;
use tally_ledger::verify::{
    check_time, next_block_time, verify_certificate, BlockError, CertificateError, ContentError,
    Parent, Placement, BLOCK_TIME_DRIFT_MS, BLOCK_TIME_MS_MAX,
};

fn all(chain: &TestChain) -> Vec<usize> {
    (0..chain.validator_keys.len()).collect()
}

/// Validation and sync verdicts on `block` at `BASE + 1`.
type Verdict = Result<(), String>;

fn judge(chain: &TestChain, block: &Block, now_ms: u64) -> (Verdict, Verdict) {
    let parent = chain.parent_of_next();
    let validation = validation_verdict(&chain.rules, block, parent, now_ms, &chain.state);
    let cert = chain.certify(block, 0, &all(chain));
    let sync = sync_verdict(&chain.rules, block, &cert, parent, &chain.state);
    (validation, sync)
}

#[test]
fn every_broken_rule_is_refused_before_voting_and_in_sync_with_its_own_reason() {
    for case in rule_cases() {
        let mut chain = base_chain();
        let (block, now) = (case.make)(&mut chain);
        let (validation, sync) = judge(&chain, &block, now.unwrap_or(block.header.time_ms));
        let reason = validation.expect_err(case.rule);
        assert_eq!(
            sync,
            Err(reason.clone()),
            "{}: one rule, one reason",
            case.rule
        );
        assert!(
            reason.starts_with(case.reason),
            "{}: {reason:?} should start with {:?}",
            case.rule,
            case.reason
        );
    }
}

#[test]
fn a_clean_block_passes_and_every_signature_is_counted() {
    let mut chain = base_chain();
    let tx = chain.transfer(1, 2, 1);
    let block = next_block(&chain, vec![tx]);
    assert_eq!(
        judge(&chain, &block, block.header.time_ms),
        (Ok(()), Ok(()))
    );
    let cert = chain.certify(&block, 0, &[0, 1, 2]);
    // One transaction, four in the last_commit, three in the certificate.
    assert_eq!(chain.rules.check_signatures(&block, Some(&cert)), Ok(8));
    assert_eq!(chain.rules.check_signatures(&block, None), Ok(5));
}

#[test]
fn the_size_and_count_limits_are_inclusive() {
    let mut chain = base_chain();
    let txs = (0..8).map(|_| chain.transfer(1, 2, 1)).collect();
    let block = next_block(&chain, txs);
    assert_eq!(
        judge(&chain, &block, block.header.time_ms),
        (Ok(()), Ok(()))
    );
    let max = chain.rules.params.block_bytes_max;
    let at = Placement {
        parent: chain.parent_of_next(),
        round: 0,
        now_ms: None,
    };
    assert_eq!(chain.rules.check_block(&block, max as usize, &at), Ok(()));
    assert_eq!(
        chain.rules.check_block(&block, max as usize + 1, &at),
        Err(BlockError::TooLarge {
            max,
            found: max + 1
        })
    );
}

#[test]
fn block_time_is_bounded_by_the_parent_the_latest_time_and_the_clock() {
    let parent = 1_000;
    assert_eq!(
        check_time(parent, parent, None),
        Err(BlockError::Time {
            parent,
            found: parent
        })
    );
    assert_eq!(check_time(parent + 1, parent, None), Ok(()));
    assert_eq!(check_time(BLOCK_TIME_MS_MAX, parent, None), Ok(()));
    assert_eq!(
        check_time(BLOCK_TIME_MS_MAX + 1, parent, None),
        Err(BlockError::TimeOutOfRange {
            found: BLOCK_TIME_MS_MAX + 1
        })
    );
    let now = 50_000;
    assert_eq!(
        check_time(now + BLOCK_TIME_DRIFT_MS, parent, Some(now)),
        Ok(())
    );
    assert_eq!(
        check_time(now + BLOCK_TIME_DRIFT_MS + 1, parent, Some(now)),
        Err(BlockError::TimeAhead {
            now,
            found: now + BLOCK_TIME_DRIFT_MS + 1
        })
    );
    // A clock at the end of time does not overflow.
    assert_eq!(check_time(parent + 1, parent, Some(u64::MAX)), Ok(()));
}

#[test]
fn the_next_block_time_follows_the_clock_or_the_parent_and_stops_at_the_latest_time() {
    assert_eq!(next_block_time(1_000, 5_000), Some(5_000));
    // A clock behind the chain: just after the parent.
    assert_eq!(next_block_time(5_000, 1_000), Some(5_001));
    assert_eq!(next_block_time(5_000, 5_000), Some(5_001));
    assert_eq!(
        next_block_time(BLOCK_TIME_MS_MAX - 1, 0),
        Some(BLOCK_TIME_MS_MAX)
    );
    assert_eq!(next_block_time(BLOCK_TIME_MS_MAX, 0), None);
    assert_eq!(next_block_time(0, BLOCK_TIME_MS_MAX + 1), None);
    assert_eq!(next_block_time(u64::MAX, 0), None);
}

#[test]
fn a_block_ahead_of_the_clock_is_refused_before_voting_only() {
    let chain = base_chain();
    let block = next_block(&chain, vec![]);
    let time = block.header.time_ms;
    assert_eq!(judge(&chain, &block, time - BLOCK_TIME_DRIFT_MS).0, Ok(()));
    let (validation, sync) = judge(&chain, &block, time - BLOCK_TIME_DRIFT_MS - 1);
    let reason = validation.unwrap_err();
    assert!(
        reason.contains("ahead of this validator's clock"),
        "{reason}"
    );
    // A block a quorum decided is not held to one node's clock.
    assert_eq!(sync, Ok(()));
}

#[test]
fn a_reproposed_block_keeps_the_proposer_of_the_round_that_built_it() {
    let chain = base_chain();
    let height = BASE + 1;
    let mut block = next_block(&chain, vec![]);
    block.header.proposer = chain.proposer_key(height, 1);
    let size = encode(&block).len();
    let at = |round| Placement {
        parent: chain.parent_of_next(),
        round,
        now_ms: None,
    };
    assert!(matches!(
        chain.rules.check_block(&block, size, &at(0)),
        Err(BlockError::ProposerNoTurn { round: 0, .. })
    ));
    assert_eq!(chain.rules.check_block(&block, size, &at(1)), Ok(()));
    assert_eq!(chain.rules.check_block(&block, size, &at(u32::MAX)), Ok(()));
}

#[test]
fn sync_refuses_a_certificate_for_another_block_or_height() {
    let chain = base_chain();
    let block = next_block(&chain, vec![]);
    let mut other = block.clone();
    other.header.time_ms += 1;
    let for_other = chain.certify(&other, 0, &all(&chain));
    let mut other_height = chain.certify(&block, 0, &all(&chain));
    other_height.height += 1;
    for cert in [for_other, other_height] {
        assert!(matches!(
            chain.rules.check_signatures(&block, Some(&cert)),
            Err(ContentError::Mismatch(
                BlockError::CertificateMismatch { .. }
            ))
        ));
    }
}

#[test]
fn a_certificate_needs_more_than_two_thirds_of_distinct_known_validators() {
    let chain = base_chain();
    let (block, _) = &chain.blocks[0];
    let set = &chain.rules.set;
    let id = chain.chain_id();
    assert_eq!(
        verify_certificate(&chain.certify(block, 0, &[0, 1, 2]), set, id),
        Ok(())
    );
    assert_eq!(
        verify_certificate(&chain.certify(block, 0, &[1, 2]), set, id),
        Err(CertificateError::NoQuorum {
            signed: 20,
            total: 40
        })
    );
    assert_eq!(
        verify_certificate(&chain.certify(block, 0, &[]), set, id),
        Err(CertificateError::Empty)
    );
    assert_eq!(
        verify_certificate(&chain.certify(block, 0, &[2, 1, 3]), set, id),
        Err(CertificateError::NotSorted {
            position: 1,
            index: 1
        })
    );
}

#[test]
fn the_parent_of_a_block_is_its_height_hash_and_time() {
    let chain = base_chain();
    let (block, _) = chain.blocks.last().unwrap();
    assert_eq!(
        Parent::of(block),
        Parent {
            height: BASE,
            hash: block.hash(),
            time_ms: block.header.time_ms
        }
    );
}

#[test]
fn signatures_this_node_verified_are_skipped_but_every_other_rule_holds() {
    let mut chain = base_chain();
    let txs: Vec<_> = (0..3).map(|_| chain.transfer(1, 2, 1)).collect();
    let block = next_block(&chain, txs.clone());
    let known = |index: usize| block.txs[index] == txs[0];
    let before = tally_ledger::crypto::signature_checks();
    // Two transactions and the four last_commit signatures are checked.
    assert_eq!(
        chain.rules.check_signatures_except(&block, None, known),
        Ok(6)
    );
    // Other tests in this binary check signatures too: at least these six.
    assert!(tally_ledger::crypto::signature_checks() - before >= 6);
    // A forged signature after a skipped one is found at its own index.
    let mut forged = block.clone();
    forged.txs[2].signature.0[0] ^= 1;
    forged.header.tx_root = forged.compute_tx_root();
    let known_in_forged = |index: usize| forged.txs[index] == txs[0];
    assert!(matches!(
        chain
            .rules
            .check_signatures_except(&forged, None, known_in_forged),
        Err(ContentError::Tx { index: 2, .. })
    ));
    // A known transaction is still held to the stateless rules.
    let mut other_chain = block.clone();
    other_chain.txs[0].tx.chain_id = "another-chain".into();
    let known_other = other_chain.txs[0].clone();
    assert!(matches!(
        chain
            .rules
            .check_signatures_except(&other_chain, None, |index| other_chain.txs[index]
                == known_other),
        Err(ContentError::Tx { index: 0, .. })
    ));
}

#[test]
fn a_checked_proposal_hands_its_transaction_hashes_on_to_the_commit() {
    let mut chain = base_chain();
    let txs: Vec<_> = (0..3).map(|_| chain.transfer(1, 2, 1)).collect();
    let block = next_block(&chain, txs);
    let at = Placement {
        parent: chain.parent_of_next(),
        round: 0,
        now_ms: Some(block.header.time_ms),
    };
    let asked = std::cell::RefCell::new(Vec::new());
    let update = chain
        .rules
        .check_proposed_except(&block, encode(&block).len(), &at, &chain.state, |hash| {
            asked.borrow_mut().push(*hash);
            false
        })
        .unwrap();
    // The hashes the check asked about, and the ones the commit reuses,
    // are the block's own, in order.
    assert_eq!(asked.into_inner(), block.tx_hashes());
    assert_eq!(update.tx_hashes, block.tx_hashes());
    assert_eq!(update.tx_hashes_of(&block).as_ref(), block.tx_hashes());
    // An update that carries none (sync, tools) still gives the right ones.
    let bare = chain.rules.check_state(&block, &chain.state).unwrap();
    assert!(bare.tx_hashes.is_empty());
    assert_eq!(bare.tx_hashes_of(&block).as_ref(), block.tx_hashes());
}
