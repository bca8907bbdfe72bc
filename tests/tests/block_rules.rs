//! One block-validity rule, every caller: for each rule, a block that breaks
//! only that rule is refused alike by consensus validation (what a
//! validator checks before it prevotes), by block sync (the same checks on
//! a certified block, signatures first as sync runs them) and by
//! `tally audit` on a real RocksDB store that holds it. A clean block is
//! accepted by all three. The cases are the ledger's shared list
//! (`tally_ledger::testkit::rule_cases`), which the ledger's own tests run
//! on in-memory state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_ledger::audit::{AuditOptions, Report};
use tally_ledger::encoding::encode;
use tally_ledger::execution::execute_verified_block;
use tally_ledger::store::{Store, TxLocation};
use tally_ledger::testkit::rule_cases::{
    base_chain, next_block, rule_cases, sync_verdict, validation_verdict, BASE,
};
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{Block, CommitCertificate};
use tally_ledger::verify::BLOCK_TIME_DRIFT_MS;
use tally_node::audit::audit_db;

/// The shared base chain, committed to a real store.
struct Setup {
    chain: TestChain,
    store: Store,
    _dir: tempfile::TempDir,
}

/// Opens a store at `db` holding every block of `chain`.
fn store_of(chain: &TestChain, db: &std::path::Path) -> Store {
    let store = Store::open(db, &chain.genesis).unwrap();
    for (block, cert) in &chain.blocks {
        let update = execute_verified_block(
            &store,
            block.height(),
            chain.chain_id(),
            &chain.genesis.params,
            &block.txs,
        )
        .unwrap();
        store.commit_block(block, cert, &update).unwrap();
    }
    store
}

fn setup() -> Setup {
    let chain = base_chain();
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(&chain, &dir.path().join("db"));
    Setup {
        chain,
        store,
        _dir: dir,
    }
}

/// What each caller concluded about one block.
#[derive(Debug)]
struct Verdicts {
    validation: Result<(), String>,
    sync: Result<(), String>,
    audit: Report,
}

fn all_validators(chain: &TestChain) -> Vec<usize> {
    (0..chain.validator_keys.len()).collect()
}

/// Judges `block` at height `BASE + 1` three ways, on the real store;
/// `now_ms` is the judging validator's clock.
fn judge(setup: &Setup, block: &Block, now_ms: u64) -> Verdicts {
    let Setup { chain, store, .. } = setup;
    let parent = store.parent_of_next();
    let validation = validation_verdict(&chain.rules, block, parent, now_ms, store);
    let cert = chain.certify(block, 0, &all_validators(chain));
    let sync = sync_verdict(&chain.rules, block, &cert, parent, store);
    let audit = audit_with(setup, block, &cert);
    Verdicts {
        validation,
        sync,
        audit,
    }
}

/// Commits the chain's blocks and a clean block at `BASE + 1` to a new
/// store, then puts `block` and `cert` in its place (with its indexes, so
/// the audit judges the block rather than the indexes), and audits it.
fn audit_with(setup: &Setup, block: &Block, cert: &CommitCertificate) -> Report {
    let chain = &setup.chain;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let copy = store_of(chain, &db);
        // A block the store takes as it is (it links and its state root is
        // what it executes to) is committed whole: state, tip and all.
        let own = execute_verified_block(
            &copy,
            block.height(),
            chain.chain_id(),
            &chain.genesis.params,
            &block.txs,
        );
        if let Ok(update) = own {
            if copy.commit_block(block, cert, &update).is_ok() {
                drop(copy);
                return audit_db(&db, &chain.genesis, &AuditOptions::default(), false).unwrap();
            }
        }
        let (clean, _) = chain.build_block(vec![]).unwrap();
        let clean_cert = chain.certify(&clean, 0, &all_validators(chain));
        let update = execute_verified_block(
            &copy,
            clean.height(),
            chain.chain_id(),
            &chain.genesis.params,
            &clean.txs,
        )
        .unwrap();
        copy.commit_block(&clean, &clean_cert, &update).unwrap();
        let key = (BASE + 1).to_be_bytes();
        copy.tamper_raw("blocks", &key, Some(&encode(block)))
            .unwrap();
        copy.tamper_raw("certificates", &key, Some(&encode(cert)))
            .unwrap();
        copy.tamper_raw("block_hashes", &block.hash().0, Some(&key))
            .unwrap();
        for (index, tx) in block.txs.iter().enumerate() {
            let location = TxLocation {
                height: BASE + 1,
                index: index as u32,
            };
            copy.tamper_raw("txs", &tx.hash().0, Some(&encode(&location)))
                .unwrap();
        }
    }
    audit_db(&db, &chain.genesis, &AuditOptions::default(), false).unwrap()
}

#[test]
fn a_clean_block_is_accepted_by_validation_sync_and_audit() {
    let mut s = setup();
    let tx = s.chain.transfer(1, 2, 1);
    let block = next_block(&s.chain, vec![tx]);
    let v = judge(&s, &block, block.header.time_ms);
    assert_eq!(v.validation, Ok(()));
    assert_eq!(v.sync, Ok(()));
    assert_eq!(v.audit.fault, None);
    assert_eq!(v.audit.summary.blocks, BASE + 1);
}

#[test]
fn a_block_breaking_one_rule_is_refused_by_validation_sync_and_audit_alike() {
    for case in rule_cases() {
        let mut s = setup();
        let (block, now) = (case.make)(&mut s.chain);
        let v = judge(&s, &block, now.unwrap_or(block.header.time_ms));
        let Err(validation) = &v.validation else {
            panic!("{}: consensus validation accepted the block", case.rule);
        };
        let Err(sync) = &v.sync else {
            panic!("{}: sync accepted the block", case.rule);
        };
        assert_eq!(validation, sync, "{}: one rule, one reason", case.rule);
        assert!(
            validation.starts_with(case.reason),
            "{}: {validation:?}",
            case.rule
        );
        let fault = v
            .audit
            .fault
            .as_ref()
            .unwrap_or_else(|| panic!("{}: the audit accepted the block", case.rule));
        assert_eq!(fault.height, BASE + 1, "{}: {fault:?}", case.rule);
        assert_eq!(fault.check, case.audit_check, "{}: {fault:?}", case.rule);
        // A block claiming another height can only be stored under the
        // wrong key: the audit reads that as a misplaced block (its own
        // check), every other rule in the rule's words.
        if fault.check != "block_position" {
            assert_eq!(
                &fault.message, validation,
                "{}: the audit's reason",
                case.rule
            );
        }
    }
}

#[test]
fn a_block_ahead_of_the_validators_clock_is_refused_before_voting_only() {
    let s = setup();
    let block = next_block(&s.chain, vec![]);
    let time = block.header.time_ms;
    // Within the drift: accepted.
    let v = judge(&s, &block, time - BLOCK_TIME_DRIFT_MS);
    assert_eq!(v.validation, Ok(()));
    // One millisecond more: refused before voting, and the reason says so.
    let v = judge(&s, &block, time - BLOCK_TIME_DRIFT_MS - 1);
    let reason = v.validation.unwrap_err();
    assert!(
        reason.contains("ahead of this validator's clock"),
        "{reason}"
    );
    // A block a quorum decided is not held to one node's clock: sync and
    // the audit (which have none) accept it.
    assert_eq!(v.sync, Ok(()));
    assert_eq!(v.audit.fault, None);
}

#[test]
fn a_block_reproposed_and_decided_in_a_later_round_is_accepted_by_sync_and_audit() {
    let s = setup();
    let mut block = next_block(&s.chain, vec![]);
    // Built by round 1's proposer and decided in round 1.
    block.header.proposer = s.chain.proposer_key(BASE + 1, 1);
    let cert = s.chain.certify(&block, 1, &all_validators(&s.chain));
    let parent = s.store.parent_of_next();
    assert_eq!(
        sync_verdict(&s.chain.rules, &block, &cert, parent, &s.store),
        Ok(())
    );
    assert_eq!(audit_with(&s, &block, &cert).fault, None);
}
