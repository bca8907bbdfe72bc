//! One block-validity rule, every caller: for each rule, a block that breaks
//! only that rule is refused alike by consensus validation (what a
//! validator checks before it prevotes), by block sync (the same checks on
//! a certified block, signatures first as sync runs them) and by
//! `tally audit` on a real RocksDB store that holds it. A clean block is
//! accepted by all three.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_ledger::audit::{AuditOptions, Report};
use tally_ledger::encoding::encode;
use tally_ledger::execution::execute_verified_block;
use tally_ledger::genesis::Params;
use tally_ledger::store::{Store, TxLocation};
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{last_commit_hash, Block, CommitCertificate, Op, SignedTx};
use tally_ledger::verify::{Placement, BLOCK_TIME_DRIFT_MS, BLOCK_TIME_MS_MAX};
use tally_ledger::{Hash, Keypair};
use tally_node::audit::audit_db;

/// Blocks committed before the one under test.
const BASE: u64 = 3;

/// A chain of `BASE` clean blocks in a real store, and the chain that
/// built them (its keys sign the block under test).
struct Setup {
    chain: TestChain,
    store: Store,
    _dir: tempfile::TempDir,
}

fn params() -> Params {
    Params {
        block_bytes_max: 60_000,
        block_txs_max: 8,
        ..Params::default()
    }
}

fn setup() -> Setup {
    let mut chain = TestChain::new(4, 3);
    chain.genesis.params = params();
    chain.rules.params = params();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), &chain.genesis).unwrap();
    for _ in 0..BASE {
        let tx = chain.transfer(1, 2, 5);
        let (block, cert, update) = chain.push(vec![tx]).unwrap();
        store.commit_block(&block, &cert, &update).unwrap();
    }
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

/// Judges `block` at height `BASE + 1` three ways; `now_ms` is the judging
/// validator's clock.
fn judge(setup: &Setup, block: &Block, now_ms: u64) -> Verdicts {
    let Setup { chain, store, .. } = setup;
    let rules = &chain.rules;
    let parent = store.parent_of_next();
    let size = encode(block).len();
    let validation = rules
        .check_proposed(
            block,
            size,
            &Placement {
                parent,
                round: 0,
                now_ms: Some(now_ms),
            },
            store,
        )
        .map(|_| ())
        .map_err(|e| e.to_string());

    let cert = chain.certify(block, 0, &all_validators(chain));
    let sync = sync_check(chain, store, block, &cert);

    let audit = audit_with(setup, block, &cert);
    Verdicts {
        validation,
        sync,
        audit,
    }
}

/// The checks block sync makes on a certified block, in its order: the
/// signatures (off the driver task), then placement and re-execution.
fn sync_check(
    chain: &TestChain,
    store: &Store,
    block: &Block,
    cert: &CommitCertificate,
) -> Result<(), String> {
    let rules = &chain.rules;
    rules
        .check_signatures(block, Some(cert))
        .map_err(|e| e.to_string())?;
    let placement = Placement {
        parent: store.parent_of_next(),
        round: cert.round,
        now_ms: None,
    };
    rules
        .check_block(block, encode(block).len(), &placement)
        .map_err(|e| e.to_string())?;
    rules
        .check_state(block, store)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Commits the chain's blocks and a clean block at `BASE + 1` to a new
/// store, then puts `block` and `cert` in its place (with its indexes, so
/// the audit judges the block rather than the indexes), and audits it.
fn audit_with(setup: &Setup, block: &Block, cert: &CommitCertificate) -> Report {
    let chain = &setup.chain;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let copy = Store::open(&db, &chain.genesis).unwrap();
        for (b, c) in &chain.blocks {
            let update = execute_verified_block(
                &copy,
                b.height(),
                chain.chain_id(),
                &chain.genesis.params,
                &b.txs,
            )
            .unwrap();
            copy.commit_block(b, c, &update).unwrap();
        }
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

/// The next block over `txs`, built as an honest proposer of round 0 would.
fn next_block(setup: &mut Setup, txs: Vec<SignedTx>) -> Block {
    setup.chain.build_block(txs).unwrap().0
}

fn reroot(block: &mut Block) {
    block.header.tx_root = block.compute_tx_root();
}

/// A block that breaks one rule, and what each caller must say about it.
struct Case {
    rule: &'static str,
    /// Builds the block (and the validator's clock, when not the block's time).
    make: fn(&mut Setup) -> (Block, Option<u64>),
    /// The audit's check name for the fault.
    audit_check: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            rule: "chain id",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.chain_id = "another-chain".into();
                (b, None)
            },
            audit_check: "chain_id",
        },
        Case {
            rule: "prev_hash",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.prev_hash = Hash([7; 32]);
                (b, None)
            },
            audit_check: "prev_hash",
        },
        Case {
            rule: "time not after the parent's",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.time_ms = s.store.parent_of_next().time_ms;
                (b, None)
            },
            audit_check: "time",
        },
        Case {
            rule: "time past the latest a block may carry",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.time_ms = BLOCK_TIME_MS_MAX + 1;
                (b, Some(BLOCK_TIME_MS_MAX + 1))
            },
            audit_check: "time",
        },
        Case {
            rule: "time at u64::MAX",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.time_ms = u64::MAX;
                (b, Some(u64::MAX))
            },
            audit_check: "time",
        },
        Case {
            rule: "block size",
            make: |s| {
                let value = vec![0xab; 16 << 10];
                let txs = (0..4)
                    .map(|i| {
                        s.chain.tx(
                            1,
                            Op::Put {
                                key: vec![i],
                                value: value.clone(),
                            },
                        )
                    })
                    .collect();
                (next_block(s, txs), None)
            },
            audit_check: "block_size",
        },
        Case {
            rule: "transaction count",
            make: |s| {
                let txs = (0..9).map(|_| s.chain.transfer(1, 2, 1)).collect();
                (next_block(s, txs), None)
            },
            audit_check: "tx_count",
        },
        Case {
            rule: "tx_root",
            make: |s| {
                let tx = s.chain.transfer(1, 2, 1);
                let mut b = next_block(s, vec![tx]);
                b.header.tx_root = Hash([9; 32]);
                (b, None)
            },
            audit_check: "tx_root",
        },
        Case {
            rule: "validators_hash",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.validators_hash = Hash([3; 32]);
                (b, None)
            },
            audit_check: "validators_hash",
        },
        Case {
            rule: "last_commit_hash",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.last_commit_hash = Hash([4; 32]);
                (b, None)
            },
            audit_check: "last_commit_hash",
        },
        Case {
            rule: "last_commit missing",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.last_commit = None;
                b.header.last_commit_hash = last_commit_hash(None);
                (b, None)
            },
            audit_check: "last_commit",
        },
        Case {
            rule: "last_commit for another height",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.last_commit = Some(s.chain.blocks[0].1.clone());
                b.header.last_commit_hash = last_commit_hash(b.last_commit.as_ref());
                (b, None)
            },
            audit_check: "last_commit",
        },
        Case {
            rule: "last_commit without a quorum",
            make: |s| {
                let mut b = next_block(s, vec![]);
                let parent = &s.chain.blocks[BASE as usize - 1].0;
                b.last_commit = Some(s.chain.certify(parent, 0, &[0, 1]));
                b.header.last_commit_hash = last_commit_hash(b.last_commit.as_ref());
                (b, None)
            },
            audit_check: "last_commit",
        },
        Case {
            rule: "proposer not a validator",
            make: |s| {
                let mut b = next_block(s, vec![]);
                b.header.proposer = Keypair::from_seed([42; 32]).public();
                (b, None)
            },
            audit_check: "proposer",
        },
        Case {
            rule: "proposer without a turn",
            make: |s| {
                let height = BASE + 1;
                let mut b = next_block(s, vec![]);
                let turn = s.chain.rules.schedule.proposer(height, 0) as usize;
                let other = (turn + 1) % s.chain.validator_keys.len();
                b.header.proposer = s.chain.validator_keys[other].public();
                (b, None)
            },
            audit_check: "proposer",
        },
        Case {
            rule: "transaction signature",
            make: |s| {
                let tx = s.chain.transfer(1, 2, 1);
                let mut b = next_block(s, vec![tx]);
                b.txs[0].signature.0[0] ^= 1;
                reroot(&mut b);
                (b, None)
            },
            audit_check: "tx_signature",
        },
        Case {
            rule: "transaction for another chain",
            make: |s| {
                let key = &s.chain.account_keys[1];
                let tx = tally_ledger::types::Tx {
                    chain_id: "another-chain".into(),
                    sender: key.public(),
                    nonce: 1,
                    op: Op::Transfer {
                        to: key.public(),
                        amount: 1,
                    },
                }
                .sign(key);
                let mut b = next_block(s, vec![]);
                b.txs = vec![tx];
                reroot(&mut b);
                (b, None)
            },
            audit_check: "tx_rules",
        },
        Case {
            rule: "state root",
            make: |s| {
                let tx = s.chain.transfer(1, 2, 1);
                let mut b = next_block(s, vec![tx]);
                b.header.state_root = Hash([5; 32]);
                (b, None)
            },
            audit_check: "state_root",
        },
        Case {
            rule: "transaction that does not execute",
            make: |s| {
                let key = &s.chain.account_keys[2];
                // A nonce far ahead of the account's next one.
                let tx = tally_ledger::types::Tx {
                    chain_id: s.chain.chain_id().into(),
                    sender: key.public(),
                    nonce: 7,
                    op: Op::Transfer {
                        to: key.public(),
                        amount: 1,
                    },
                }
                .sign(key);
                let mut b = next_block(s, vec![]);
                b.txs = vec![tx];
                reroot(&mut b);
                (b, None)
            },
            audit_check: "tx_execution",
        },
    ]
}

#[test]
fn a_clean_block_is_accepted_by_validation_sync_and_audit() {
    let mut s = setup();
    let tx = s.chain.transfer(1, 2, 1);
    let block = next_block(&mut s, vec![tx]);
    let v = judge(&s, &block, block.header.time_ms);
    assert_eq!(v.validation, Ok(()));
    assert_eq!(v.sync, Ok(()));
    assert_eq!(v.audit.fault, None);
    assert_eq!(v.audit.summary.blocks, BASE + 1);
}

#[test]
fn a_block_breaking_one_rule_is_refused_by_validation_sync_and_audit_alike() {
    for case in cases() {
        let mut s = setup();
        let (block, now) = (case.make)(&mut s);
        let v = judge(&s, &block, now.unwrap_or(block.header.time_ms));
        let Err(validation) = &v.validation else {
            panic!("{}: consensus validation accepted the block", case.rule);
        };
        let Err(sync) = &v.sync else {
            panic!("{}: sync accepted the block", case.rule);
        };
        assert_eq!(validation, sync, "{}: one rule, one reason", case.rule);
        let fault = v
            .audit
            .fault
            .as_ref()
            .unwrap_or_else(|| panic!("{}: the audit accepted the block", case.rule));
        assert_eq!(fault.height, BASE + 1, "{}: {fault:?}", case.rule);
        assert_eq!(fault.check, case.audit_check, "{}: {fault:?}", case.rule);
        assert_eq!(
            &fault.message, validation,
            "{}: the audit's reason",
            case.rule
        );
    }
}

#[test]
fn a_block_ahead_of_the_validators_clock_is_refused_before_voting_only() {
    let mut s = setup();
    let block = next_block(&mut s, vec![]);
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
fn the_proposer_of_a_later_round_may_have_built_a_reproposed_block() {
    let mut s = setup();
    let height = BASE + 1;
    let mut block = next_block(&mut s, vec![]);
    // The block was built by round 1's proposer and decided in round 1.
    block.header.proposer = s.chain.proposer_key(height, 1);
    let rules = &s.chain.rules;
    let at = |round| Placement {
        parent: s.store.parent_of_next(),
        round,
        now_ms: None,
    };
    let size = encode(&block).len();
    assert!(rules.check_block(&block, size, &at(0)).is_err());
    assert_eq!(rules.check_block(&block, size, &at(1)), Ok(()));
    assert_eq!(rules.check_block(&block, size, &at(u32::MAX)), Ok(()));
    let cert = s.chain.certify(&block, 1, &all_validators(&s.chain));
    assert_eq!(sync_check(&s.chain, &s.store, &block, &cert), Ok(()));
    assert_eq!(audit_with(&s, &block, &cert).fault, None);
}
