//! The RocksDB store: reopen gives back what was committed, commits are
//! atomic across a crash, and bad databases are refused with clear errors.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tally_ledger::execution::execute_block;
use tally_ledger::genesis::Genesis;
use tally_ledger::state::{read_account, root_at};
use tally_ledger::store::{Store, StoreError, TxLocation, FORMAT_VERSION};
use tally_ledger::testkit::{TestChain, TEST_BALANCE};
use tally_ledger::types::Op;

/// Builds `blocks` blocks of `txs_per_block` transfers, committing each to
/// `store` after re-executing it against the store's own state.
fn grow(chain: &mut TestChain, store: &Store, blocks: usize, txs_per_block: usize) {
    for _ in 0..blocks {
        let txs: Vec<_> = (0..txs_per_block)
            .map(|i| chain.transfer(1 + i % 3, 1 + (i + 1) % 3, 1))
            .collect();
        let (block, cert, mem_update) = chain.push(txs).unwrap();
        let update = execute_block(
            store,
            block.height(),
            chain.chain_id(),
            &chain.genesis.params,
            &block.txs,
        )
        .unwrap();
        // Storage conformance: RocksDB and the in-memory tree agree.
        assert_eq!(update.root, mem_update.root);
        store.commit_block(&block, &cert, &update).unwrap();
    }
}

#[test]
fn commit_drop_reopen_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    {
        let store = Store::open(dir.path(), &chain.genesis).unwrap();
        assert_eq!(store.tip(), None);
        assert_eq!(
            store.genesis_state_root(),
            root_at(&chain.state, 0).unwrap()
        );
        grow(&mut chain, &store, 12, 5);
        let put = chain.tx(
            1,
            Op::Put {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
        );
        grow(&mut chain, &store, 0, 0);
        let (block, cert, _) = chain.push(vec![put]).unwrap();
        let update = execute_block(
            &store,
            13,
            chain.chain_id(),
            &chain.genesis.params,
            &block.txs,
        )
        .unwrap();
        store.commit_block(&block, &cert, &update).unwrap();
    }
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    let tip = store.tip().unwrap();
    assert_eq!(tip.height, 13);
    for (i, (block, cert)) in chain.blocks.iter().enumerate() {
        let h = i as u64 + 1;
        assert_eq!(store.block(h).unwrap().as_ref(), Some(block));
        assert_eq!(
            store.block_by_hash(&block.hash()).unwrap().as_ref(),
            Some(block)
        );
        assert_eq!(store.certificate(h).unwrap().as_ref(), Some(cert));
        for (index, tx) in block.txs.iter().enumerate() {
            assert_eq!(
                store.tx_location(&tx.hash()).unwrap(),
                Some(TxLocation {
                    height: h,
                    index: index as u32
                })
            );
        }
        assert_eq!(root_at(&store, h).unwrap(), block.header.state_root);
    }
    assert_eq!(store.block(14).unwrap(), None);
    let admin = read_account(&store, &chain.account_keys[0].public(), 13)
        .unwrap()
        .unwrap();
    assert_eq!(admin.balance, TEST_BALANCE);
}

#[test]
fn commit_refuses_blocks_that_do_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    let (b1, c1, u1) = chain.push(vec![]).unwrap();
    let (b2, c2, u2) = chain.push(vec![]).unwrap();
    // Height 2 before height 1.
    assert!(matches!(
        store.commit_block(&b2, &c2, &u2),
        Err(StoreError::Rejected(_))
    ));
    // Certificate of another block.
    assert!(matches!(
        store.commit_block(&b1, &c2, &u1),
        Err(StoreError::Block(_))
    ));
    // State update of another height.
    assert!(matches!(
        store.commit_block(&b1, &c1, &u2),
        Err(StoreError::Rejected(_))
    ));
    assert_eq!(store.tip(), None, "nothing was written");
    store.commit_block(&b1, &c1, &u1).unwrap();
    assert_eq!(store.height(), 1);
}

#[test]
fn a_database_of_another_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::new(4, 4);
    drop(Store::open(dir.path(), &chain.genesis).unwrap());
    let mut other: Genesis = chain.genesis.clone();
    other.chain_id = "another-chain".into();
    match Store::open(dir.path(), &other) {
        Err(StoreError::WrongChain {
            expected, found, ..
        }) => {
            assert_eq!(expected, other.hash());
            assert_eq!(found, chain.genesis.hash());
        }
        other => panic!("expected WrongChain, got {other:?}"),
    }
}

#[test]
fn a_newer_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::new(4, 4);
    {
        let store = Store::open(dir.path(), &chain.genesis).unwrap();
        store
            .tamper_raw(
                "meta",
                b"format_version",
                Some(&(FORMAT_VERSION + 1).to_le_bytes()),
            )
            .unwrap();
    }
    let err = Store::open(dir.path(), &chain.genesis).unwrap_err();
    assert!(matches!(err, StoreError::NewerFormat { found, .. } if found == FORMAT_VERSION + 1));
    assert!(err.to_string().contains("run a newer tally"), "{err}");
}

#[test]
fn a_corrupt_tip_block_is_detected_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    {
        let store = Store::open(dir.path(), &chain.genesis).unwrap();
        grow(&mut chain, &store, 3, 2);
        let mut bytes = store.block_bytes(3).unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        store
            .tamper_raw("blocks", &3u64.to_be_bytes(), Some(&bytes))
            .unwrap();
    }
    let err = Store::open(dir.path(), &chain.genesis).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        err.to_string().contains("height 3") || err.to_string().contains("block 3"),
        "{err}"
    );
}

#[test]
fn damaged_database_files_give_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    {
        let store = Store::open(dir.path(), &chain.genesis).unwrap();
        grow(&mut chain, &store, 2, 2);
    }
    // Overwrite every file RocksDB keeps (manifest, logs, tables) with junk.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("MANIFEST") || name.ends_with(".log") || name.ends_with(".sst") {
            std::fs::write(&path, b"this is not what rocksdb wrote").unwrap();
        }
    }
    let err = Store::open(dir.path(), &chain.genesis).unwrap_err();
    assert!(
        matches!(err, StoreError::Open { .. } | StoreError::Corrupt(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("restore"), "{err}");
}

#[test]
fn not_a_database_is_refused_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::new(4, 4);
    assert!(matches!(
        Store::open_read_only(dir.path(), &chain.genesis),
        Err(StoreError::Open { .. })
    ));
}

const CRASH_DIR_ENV: &str = "TALLY_TEST_CRASH_DIR";

/// Not a test on its own: the child process of
/// `a_crash_leaves_the_old_or_the_new_tip`. It commits blocks forever and
/// prints each height once `commit_block` has returned.
#[test]
#[ignore = "helper process started by a_crash_leaves_the_old_or_the_new_tip"]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let mut chain = TestChain::new(4, 4);
    let store = Store::open(std::path::Path::new(&dir), &chain.genesis).unwrap();
    assert_eq!(store.height(), 0);
    let mut out = std::io::stdout();
    loop {
        grow(&mut chain, &store, 1, 20);
        use std::io::Write;
        writeln!(out, "committed {}", store.height()).unwrap();
        out.flush().unwrap();
    }
}

/// Kills a writer with SIGKILL at several moments; each time the store opens
/// with a consistent tip no lower than the last acknowledged commit.
#[test]
fn a_crash_leaves_the_old_or_the_new_tip() {
    let exe = std::env::current_exe().unwrap();
    for (run, stop_after) in [1u64, 3, 7, 12, 20].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acknowledged = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(h) = line.strip_prefix("committed ") {
                acknowledged = h.parse().unwrap();
                if acknowledged >= stop_after {
                    break;
                }
            }
        }
        // SIGKILL while the child is in the middle of its next commit.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(acknowledged >= stop_after, "run {run}: child stopped early");

        let chain = TestChain::new(4, 4);
        let store = Store::open(dir.path(), &chain.genesis).expect("reopens after SIGKILL");
        let tip = store.tip().expect("a tip");
        assert!(
            tip.height == acknowledged || tip.height == acknowledged + 1,
            "run {run}: tip {} after acknowledging {acknowledged}",
            tip.height
        );
        for h in 1..=tip.height {
            let block = store.block(h).unwrap().unwrap();
            let cert = store.certificate(h).unwrap().unwrap();
            assert_eq!(cert.block_hash, block.hash());
            assert_eq!(root_at(&store, h).unwrap(), block.header.state_root);
            for tx in &block.txs {
                assert_eq!(store.tx_location(&tx.hash()).unwrap().unwrap().height, h);
            }
        }
        assert_eq!(
            store.block(tip.height + 1).unwrap(),
            None,
            "nothing half-written past the tip"
        );
    }
}

#[test]
fn a_locked_block_and_a_run_of_blocks_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    assert!(store.locked_block().unwrap().is_none());
    // A run of three blocks in one write (as block sync commits them).
    let mut state = tally_ledger::state::Overlay::new(Some((&store, 0)));
    let mut run = Vec::new();
    for _ in 0..3 {
        let tx = chain.transfer(1, 2, 5);
        let (block, cert, _) = chain.push(vec![tx]).unwrap();
        let update = execute_block(
            &state,
            block.height(),
            chain.chain_id(),
            &chain.genesis.params,
            &block.txs,
        )
        .unwrap();
        state.top.apply(&update.batch.node_batch);
        run.push((block, cert, update));
    }
    let items: Vec<_> = run.iter().map(|(b, c, u)| (b, c, u)).collect();
    let tip = store.commit_blocks(&items).unwrap();
    assert_eq!(tip.height, 3);
    // A run that does not extend the tip is refused whole.
    assert!(store.commit_blocks(&items[..1]).is_err());
    let (next, _) = chain.build_block(vec![]).unwrap();
    store.save_locked_block(&next).unwrap();
    drop(items);
    drop(state);
    drop(store);

    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    assert_eq!(store.height(), 3);
    for (block, _, _) in &run {
        assert_eq!(
            store.block(block.height()).unwrap().unwrap().hash(),
            block.hash()
        );
    }
    assert_eq!(store.locked_block().unwrap().unwrap().hash(), next.hash());
}

/// The precommit's signer record and the body of the block it locks on go
/// to disk in one synced write; a record without a body leaves the last
/// body in place.
#[test]
fn a_signer_record_and_its_lock_body_are_written_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    let tx = chain.transfer(1, 2, 5);
    let (first, _) = chain.build_block(vec![tx]).unwrap();
    {
        let store = Store::open(dir.path(), &chain.genesis).unwrap();
        let before = tally_ledger::store::synced_writes();
        store
            .save_signer_state_and_locked_block(b"record one", Some(&first))
            .unwrap();
        assert!(tally_ledger::store::synced_writes() > before);
        store
            .save_signer_state_and_locked_block(b"record two", None)
            .unwrap();
        let too_big = vec![0u8; (1 << 20) + 1];
        assert!(store
            .save_signer_state_and_locked_block(&too_big, None)
            .is_err());
    }
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    assert_eq!(store.signer_state().unwrap().unwrap(), b"record two");
    assert_eq!(store.locked_block().unwrap().unwrap().hash(), first.hash());
}

#[test]
fn evidence_is_kept_once_per_offence_and_served_in_pages() {
    use tally_ledger::crypto::Domain;
    use tally_ledger::types::{Evidence, SignedVote, Vote, VoteKind};
    let chain = tally_ledger::testkit::TestChain::new(4, 1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), &chain.genesis).unwrap();
    let vote = |v: u32, height: u64, round: u32, value: u8| {
        let vote = Vote {
            kind: VoteKind::Prevote,
            height,
            round,
            value: Some(tally_ledger::Hash([value; 32])),
        };
        SignedVote {
            vote,
            validator_index: v,
            signature: chain.validator_keys[v as usize].sign(
                Domain::Vote,
                chain.chain_id(),
                &vote.message(),
            ),
        }
    };
    // 250 offences: validators 0..2 in rounds 0..=1 of heights 1 to 42.
    let mut offences = 0;
    for height in 1..=50u64 {
        for round in 0..2u32 {
            for v in 0..3u32 {
                if offences == 250 {
                    break;
                }
                let e = Evidence {
                    first: vote(v, height, round, 1),
                    second: vote(v, height, round, 2),
                };
                assert!(store.record_evidence(&e).unwrap(), "a new offence");
                // The same offence with a third conflicting vote: not again.
                let again = Evidence {
                    first: vote(v, height, round, 1),
                    second: vote(v, height, round, 3),
                };
                assert!(!store.record_evidence(&again).unwrap());
                offences += 1;
            }
        }
    }
    let mut cursor = 0u64.to_be_bytes().to_vec();
    let mut pages = Vec::new();
    loop {
        let (page, next) = store.evidence(&cursor, 1_000).unwrap();
        assert!(page.len() <= tally_ledger::store::EVIDENCE_PAGE_MAX);
        pages.push(page.len());
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(pages, vec![100, 100, 50]);
    // From a height: everything at or above it, in order.
    let (page, _) = store.evidence(&41u64.to_be_bytes(), 100).unwrap();
    // Six offences a height: heights 41 and 42 (four) hold the last ten.
    assert_eq!(page.len(), 10);
    assert!(page.windows(2).all(|w| {
        let (a, b) = (&w[0].first.vote, &w[1].first.vote);
        (a.height, a.round) <= (b.height, b.round)
    }));
    assert_eq!(page[0].first.vote.height, 41);
    assert!(
        store.evidence(&[0u8; 18], 10).is_err(),
        "an oversized cursor"
    );
}

/// Reads at the tip come from the store's cache of the newest values once
/// read; every commit must bring them up to date, and reads at older
/// versions must still give what those versions held.
#[test]
fn reads_at_the_tip_follow_every_commit_and_old_versions_keep_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    let accounts: Vec<_> = chain.account_keys.iter().map(|k| k.public()).collect();
    let mut seen = Vec::new();
    for height in 1..=6u64 {
        // Read every account at the tip first, so the commit below must
        // update what the store remembers.
        for a in &accounts {
            assert_eq!(
                read_account(&store, a, height - 1).unwrap(),
                read_account(&chain.state, a, height - 1).unwrap()
            );
        }
        grow(&mut chain, &store, 1, 3);
        for a in &accounts {
            let at_tip = read_account(&store, a, height).unwrap();
            assert_eq!(at_tip, read_account(&chain.state, a, height).unwrap());
            seen.push((height, *a, at_tip));
        }
    }
    // Balances and nonces moved: the reads above were not all the same.
    assert!(seen
        .windows(accounts.len() + 1)
        .any(|w| w[0].2 != w[accounts.len()].2));
    for (height, a, value) in &seen {
        assert_eq!(&read_account(&store, a, *height).unwrap(), value);
    }
    // A reopened store (empty cache) reads the same.
    drop(store);
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    for (height, a, value) in &seen {
        assert_eq!(&read_account(&store, a, *height).unwrap(), value);
    }
}

/// The next block is built and checked over a commit still being written:
/// the state the overlay shows is the state the commit then writes.
#[test]
fn the_state_over_a_pending_commit_is_the_state_after_it() {
    use tally_ledger::state::{get_with_proof, read, verify_state_proof, PendingState, StateKey};
    let dir = tempfile::tempdir().unwrap();
    let mut chain = TestChain::new(4, 4);
    let store = Store::open(dir.path(), &chain.genesis).unwrap();
    grow(&mut chain, &store, 3, 4);
    let sender = chain.account_keys[1].public();
    let put = chain.tx(
        1,
        Op::Put {
            key: b"k".to_vec(),
            value: b"v4".to_vec(),
        },
    );
    let mut txs = vec![put, chain.transfer(1, 2, 7)];
    txs.extend(chain.transfers(3));
    let (block4, cert4, _) = chain.push(txs).unwrap();
    let params = chain.genesis.params.clone();
    let update4 = execute_block(&store, 4, chain.chain_id(), &params, &block4.txs).unwrap();
    let before = read_account(&store, &sender, 3).unwrap().unwrap();

    // Block 4 is decided but not written; its state shows through.
    let pending = PendingState::new(&store, Some(&update4));
    assert_eq!(root_at(&pending, 4).unwrap(), block4.header.state_root);
    let after = read_account(&pending, &sender, 4).unwrap().unwrap();
    let sent = block4.txs.iter().filter(|t| t.tx.sender == sender).count();
    assert!(sent >= 2);
    assert_eq!(after.nonce, before.nonce + sent as u64);
    assert_eq!(read_account(&pending, &sender, 3).unwrap(), Some(before));
    let record = StateKey::Record {
        owner: sender,
        key: b"k".to_vec(),
    };
    assert_eq!(read(&pending, &record, 4).unwrap(), Some(b"v4".to_vec()));
    assert_eq!(read(&pending, &record, 3).unwrap(), None);
    let (value, proof) = get_with_proof(&pending, &record, 4).unwrap();
    verify_state_proof(&block4.header.state_root, &record, value.as_deref(), &proof).unwrap();
    // An account block 4 did not touch reads as before it.
    let admin = chain.account_keys[0].public();
    assert_eq!(
        read_account(&pending, &admin, 4).unwrap(),
        read_account(&store, &admin, 3).unwrap()
    );

    // Block 5 executed over the overlay equals block 5 executed over the
    // store once block 4 is written, root and writes alike.
    let txs5 = chain.transfers(6);
    let (block5, cert5, _) = chain.push(txs5).unwrap();
    let over = execute_block(&pending, 5, chain.chain_id(), &params, &block5.txs).unwrap();
    store.commit_block(&block4, &cert4, &update4).unwrap();
    let after_write = execute_block(&store, 5, chain.chain_id(), &params, &block5.txs).unwrap();
    assert_eq!(over.root, block5.header.state_root);
    assert_eq!(over.root, after_write.root);
    assert_eq!(
        over.batch.node_batch.nodes(),
        after_write.batch.node_batch.nodes()
    );
    assert_eq!(
        over.batch.node_batch.values(),
        after_write.batch.node_batch.values()
    );
    store.commit_block(&block5, &cert5, &over).unwrap();
    assert_eq!(root_at(&store, 5).unwrap(), block5.header.state_root);
}
