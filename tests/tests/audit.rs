//! `tally audit` against a real chain: more than 1,000 blocks with signed
//! transactions and certificates, built deterministically and committed
//! through a real RocksDB store; each test audits its own copy of the
//! database, most after changing one thing in it, and checks that the audit
//! names the right class of fault at the right height. One test audits a
//! live network while it commits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use tally_ledger::audit::{AuditOptions, FaultClass, Report};
use tally_ledger::encoding::encode;
use tally_ledger::genesis::Genesis;
use tally_ledger::store::Store;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{Block, CommitCertificate};
use tally_ledger::{Domain, Hash, Keypair};
use tally_node::audit::audit_db;
use tally_tests::{copy_dir, load, wait_height, TestNet};

/// The chain every test starts from: at least this many blocks.
const CHAIN_BLOCKS: u64 = 1_000;

struct Fixture {
    db: PathBuf,
    genesis: Genesis,
    tip: u64,
    /// A block in the middle with several transactions: the one tampered.
    target: u64,
}

/// Builds the chain every test starts from, deterministically: a
/// 4-validator chain of `CHAIN_BLOCKS + 16` blocks with 2 to 4 signed
/// transfers each, every block certified by all validators and committed
/// through the store (once per test binary).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("audit-chain");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut chain = TestChain::new(4, 4);
        let genesis = chain.genesis.clone();
        {
            let store = Store::open(&dir.join("db"), &genesis).unwrap();
            for h in 0..CHAIN_BLOCKS + 16 {
                let txs = (0..2 + h % 3)
                    .map(|i| chain.transfer(1 + (i as usize % 3), 0, 1 + h))
                    .collect();
                let (block, cert, update) = chain.push(txs).unwrap();
                store.commit_block(&block, &cert, &update).unwrap();
            }
        }
        let store = Store::open_read_only(&dir.join("db"), &genesis).unwrap();
        let tip = store.height();
        let target = (tip / 2..tip)
            .find(|h| store.block(*h).unwrap().unwrap().txs.len() >= 2)
            .expect("a block with transactions in the second half");
        Fixture {
            db: dir.join("db"),
            genesis,
            tip,
            target,
        }
    })
}

/// A private copy of the fixture's database.
struct Copy {
    _dir: tempfile::TempDir,
    db: PathBuf,
}

fn copy() -> Copy {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    copy_dir(&fixture().db, &db);
    Copy { _dir: dir, db }
}

fn audit(db: &Path) -> Report {
    audit_db(db, &fixture().genesis, &AuditOptions::default(), false).unwrap()
}

/// Changes the copy through `f`, then audits it.
fn tamper_and_audit(f: impl FnOnce(&Store)) -> Report {
    let c = copy();
    {
        let store = Store::open(&c.db, &fixture().genesis).unwrap();
        f(&store);
    }
    audit(&c.db)
}

fn height_key(h: u64) -> [u8; 8] {
    h.to_be_bytes()
}

fn put_block(store: &Store, block: &Block) {
    store
        .tamper_raw("blocks", &height_key(block.height()), Some(&encode(block)))
        .unwrap();
}

fn put_cert(store: &Store, cert: &CommitCertificate) {
    store
        .tamper_raw(
            "certificates",
            &height_key(cert.height),
            Some(&encode(cert)),
        )
        .unwrap();
}

#[track_caller]
fn assert_fault(report: &Report, class: FaultClass, height: u64, checks: &[&str]) {
    let fault = report
        .fault
        .as_ref()
        .unwrap_or_else(|| panic!("expected a {class:?} fault at {height}, the audit passed"));
    assert_eq!(fault.class, class, "{fault:?}");
    assert_eq!(fault.height, height, "{fault:?}");
    assert!(checks.contains(&fault.check), "{fault:?}");
    assert_eq!(report.exit_code(), class.exit_code());
    // Everything before the fault was checked, nothing after it.
    assert_eq!(
        report.summary.blocks,
        height.saturating_sub(1).min(fixture().tip),
        "{fault:?}"
    );
}

#[test]
fn a_clean_chain_of_a_thousand_blocks_passes_every_check() {
    let f = fixture();
    assert!(f.tip >= CHAIN_BLOCKS);
    let report = audit(&copy().db);
    assert_eq!(report.fault, None);
    assert_eq!(report.exit_code(), 0);
    let s = &report.summary;
    assert_eq!((s.from, s.to, s.blocks), (1, f.tip, f.tip));
    let store = Store::open_read_only(&f.db, &f.genesis).unwrap();
    let txs: u64 = (1..=f.tip)
        .map(|h| store.block(h).unwrap().unwrap().txs.len() as u64)
        .sum();
    assert!(txs > 0);
    assert_eq!(s.txs, txs);
    // Each block: its transactions, its certificate and its last_commit
    // (3 or 4 validators each).
    assert!(s.signatures >= txs + 3 * (2 * f.tip - 1), "{s:?}");
}

#[test]
fn a_range_audit_checks_only_that_range() {
    let f = fixture();
    let options = AuditOptions {
        from: f.target - 10,
        to: Some(f.target + 10),
        ..AuditOptions::default()
    };
    let report = audit_db(&copy().db, &f.genesis, &options, false).unwrap();
    assert_eq!(report.fault, None);
    assert_eq!(report.summary.blocks, 21);
}

#[test]
fn one_changed_byte_in_a_transaction_is_found() {
    let f = fixture();
    let report = tamper_and_audit(|store| {
        let block = store.block(f.target).unwrap().unwrap();
        let mut raw = store.block_bytes(f.target).unwrap().unwrap();
        // The last byte of the second transaction's signature.
        let tx = encode(&block.txs[1]);
        let at = raw
            .windows(tx.len())
            .position(|w| w == tx.as_slice())
            .unwrap();
        raw[at + tx.len() - 1] ^= 0x01;
        store
            .tamper_raw("blocks", &height_key(f.target), Some(&raw))
            .unwrap();
    });
    assert_fault(&report, FaultClass::Header, f.target, &["tx_root"]);
}

#[test]
fn a_changed_header_field_is_found() {
    let f = fixture();
    type Edit = Box<dyn Fn(&mut Block)>;
    let validators: Vec<_> = f.genesis.validators.iter().map(|v| v.public_key).collect();
    let cases: [(&str, Edit, &[&str]); 5] = [
        ("time", Box::new(|b| b.header.time_ms += 1), &["block_hash"]),
        (
            // Any change of a decided block's header changes its hash: the
            // certificate no longer matches, and the audit says so first.
            "proposer (an outsider)",
            Box::new(|b| b.header.proposer = Keypair::from_seed([9; 32]).public()),
            &["proposer", "block_hash"],
        ),
        (
            // Caught as out of turn, or (if the block was decided in a later
            // round, where this validator had a turn) by the hash.
            "proposer (another validator)",
            Box::new(move |b| {
                let i = validators
                    .iter()
                    .position(|k| *k == b.header.proposer)
                    .unwrap();
                b.header.proposer = validators[(i + 1) % validators.len()];
            }),
            &["proposer", "block_hash"],
        ),
        (
            "state root",
            Box::new(|b| b.header.state_root = Hash([7; 32])),
            &["block_hash"],
        ),
        (
            "tx root",
            Box::new(|b| b.header.tx_root = Hash([7; 32])),
            &["tx_root"],
        ),
    ];
    for (what, edit, checks) in cases {
        let report = tamper_and_audit(|store| {
            let mut block = store.block(f.target).unwrap().unwrap();
            edit(&mut block);
            put_block(store, &block);
        });
        println!("{what}: {:?}", report.fault);
        assert_fault(&report, FaultClass::Header, f.target, checks);
    }
}

/// Changes the target block's certificate, audits, and expects a
/// certificate fault there whose message says `why`.
#[track_caller]
fn certificate_fault_is_found(edit: impl FnOnce(&mut CommitCertificate), why: &str) {
    let f = fixture();
    let report = tamper_and_audit(|store| {
        let mut cert = store.certificate(f.target).unwrap().unwrap();
        edit(&mut cert);
        put_cert(store, &cert);
    });
    assert_fault(&report, FaultClass::Certificate, f.target, &["certificate"]);
    let message = report.fault.unwrap().message;
    assert!(message.contains(why), "{message}");
}

#[test]
fn one_bad_signature_in_a_certificate_is_found() {
    certificate_fault_is_found(
        |cert| cert.signatures[1].signature.0[5] ^= 0x40,
        "does not verify",
    );
}

#[test]
fn a_quorum_faked_by_repeating_one_signature_is_found() {
    certificate_fault_is_found(
        |cert| {
            let one = cert.signatures[0].clone();
            cert.signatures = vec![one.clone(), one.clone(), one];
        },
        "repeats",
    );
}

#[test]
fn a_certificate_signed_by_an_outsider_is_found() {
    let chain_id = fixture().genesis.chain_id.clone();
    certificate_fault_is_found(
        |cert| {
            let outsider = Keypair::from_seed([42; 32]);
            let sig = outsider.sign(Domain::Vote, &chain_id, &cert.vote().message());
            let last = cert.signatures.len() - 1;
            cert.signatures[last].signature = sig;
        },
        "does not verify",
    );
}

#[test]
fn a_block_removed_from_the_middle_is_found() {
    let f = fixture();
    let report = tamper_and_audit(|store| {
        store
            .tamper_raw("blocks", &height_key(f.target), None)
            .unwrap();
    });
    assert_fault(&report, FaultClass::Missing, f.target, &["block"]);
}

#[test]
fn a_rehashed_block_with_a_broken_link_is_found() {
    let f = fixture();
    let report = tamper_and_audit(|store| {
        // Point the block at another parent, then make everything that
        // names the block agree with its new hash.
        let mut block = store.block(f.target).unwrap().unwrap();
        let old = block.hash();
        block.header.prev_hash = Hash([3; 32]);
        let new = block.hash();
        put_block(store, &block);
        let mut cert = store.certificate(f.target).unwrap().unwrap();
        cert.block_hash = new;
        put_cert(store, &cert);
        store.tamper_raw("block_hashes", &old.0, None).unwrap();
        store
            .tamper_raw("block_hashes", &new.0, Some(&height_key(f.target)))
            .unwrap();
    });
    assert_fault(&report, FaultClass::Header, f.target, &["prev_hash"]);
}

#[test]
fn a_state_value_changed_in_the_database_is_found_at_the_tip() {
    let f = fixture();
    let report = tamper_and_audit(|store| {
        use tally_ledger::state::{AccountState, StateKey};
        let account = f.genesis.accounts[1].public_key;
        let mut state = tally_ledger::state::read_account(store, &account, f.tip)
            .unwrap()
            .unwrap();
        state.balance += 1_000_000;
        let key_hash = StateKey::Account(account).key_hash();
        let mut key = key_hash.0.to_vec();
        key.extend_from_slice(&f.tip.to_be_bytes());
        let value: Option<Vec<u8>> = Some(encode::<AccountState>(&state));
        store
            .tamper_raw("state_values", &key, Some(&encode(&value)))
            .unwrap();
    });
    let fault = report.fault.clone().expect("a fault");
    assert_eq!(
        (fault.class, fault.height, fault.check),
        (FaultClass::State, f.tip, "stored_state"),
        "{fault:?}"
    );
    assert_eq!(report.exit_code(), 16);
    assert_eq!(report.summary.blocks, f.tip);
}

#[test]
fn an_index_entry_pointing_to_the_wrong_block_is_found() {
    let f = fixture();
    let report = tamper_and_audit(|store| {
        let hash = store.block(f.target).unwrap().unwrap().hash();
        store
            .tamper_raw("block_hashes", &hash.0, Some(&height_key(f.target + 1)))
            .unwrap();
    });
    assert_fault(&report, FaultClass::Index, f.target, &["block_index"]);

    let report = tamper_and_audit(|store| {
        let block = store.block(f.target).unwrap().unwrap();
        let wrong = tally_ledger::store::TxLocation {
            height: f.target - 1,
            index: 0,
        };
        store
            .tamper_raw("txs", &block.txs[1].hash().0, Some(&encode(&wrong)))
            .unwrap();
    });
    assert_fault(&report, FaultClass::Index, f.target, &["tx_index"]);
}

#[test]
fn a_database_of_another_chain_is_refused_as_such() {
    let f = fixture();
    let mut other = f.genesis.clone();
    other.chain_id = "another-chain".into();
    let report = audit_db(&copy().db, &other, &AuditOptions::default(), false).unwrap();
    let fault = report.fault.clone().expect("a fault");
    assert_eq!(fault.class, FaultClass::WrongChain);
    assert_eq!(report.exit_code(), 10);
    assert_eq!(fault.expected, Some(other.hash().to_string()));
    assert_eq!(fault.found, Some(f.genesis.hash().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditing_a_running_node_does_not_disturb_it() {
    let limit = Duration::from_secs(120);
    let mut net = TestNet::create(4, 0);
    net.empty_block_interval_ms = 0;
    net.start_all().await;
    let handles = net.running();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loader = tokio::spawn(load(handles.clone(), net.senders(), stop_rx));
    wait_height(&handles, 30, limit).await;
    let db = net.home(0).data_dir();
    let genesis = (*handles[0].genesis).clone();
    for _ in 0..3 {
        let before = handles[0].store.height();
        let (db, genesis) = (db.clone(), genesis.clone());
        let report = tokio::task::spawn_blocking(move || {
            audit_db(&db, &genesis, &AuditOptions::default(), false).unwrap()
        })
        .await
        .unwrap();
        assert_eq!(report.fault, None);
        // It saw at least what was committed when it started...
        assert!(report.summary.to >= before, "{:?}", report.summary);
        assert_eq!(report.summary.blocks, report.summary.to);
        // ...and the node went on committing meanwhile and after.
        wait_height(&handles, report.summary.to + 10, limit).await;
    }
    stop_tx.send(true).unwrap();
    assert!(loader.await.unwrap() > 0);
    let top = handles.iter().map(|n| n.store.height()).min().unwrap();
    tally_tests::check_chains(&handles, top);
    drop(handles);
    net.stop_all().await;
}
