//! Crash recovery with real processes: a validator is killed with SIGKILL at
//! random moments while the network is under load, and restarted on its
//! database each time. Every restart must recover and catch up, it must
//! never sign conflicting messages (no evidence against it anywhere), every
//! transaction it reported as committed must still be there, and all nodes
//! must hold the same, fully valid chain (I1, I2, I4).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::Command;
use std::time::Duration;

use common::{signal, ProcNet};
use tally_ledger::encoding::encode;
use tally_ledger::types::{Op, Tx};
use tally_ledger::Hash;
use tally_node::keys::read_key_file;
use tally_rpc::types::{to_hex, BlockId, TxState};
use tally_rpc::LedgerApiClient;

const VICTIM: usize = 3;

/// A small deterministic generator for the kill moments (seed printed).
struct Rng(u64);
impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_killed_twenty_times_under_load_recovers_and_never_equivocates() {
    let kills: usize = std::env::var("TALLY_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let seed = std::env::var("TALLY_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("kill moments from TALLY_KILL_SEED={seed}");
    let mut rng = Rng(seed);

    let mut net = ProcNet::create(
        "crash-test",
        4,
        |c| c.consensus.empty_block_interval_ms = 50,
        |g| {
            g.params.timeout_propose_ms = 300;
            g.params.timeout_delta_ms = 200;
        },
    );
    net.spawn_all();
    for i in 0..4 {
        net.wait_rpc(i).await;
    }

    // Load through the nodes that are never killed.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loader = {
        let clients: Vec<_> = (0..VICTIM).map(|i| net.client(i).clone()).collect();
        let key = read_key_file(&net.net().join("accounts/user0.pem")).unwrap();
        let to = read_key_file(&net.net().join("accounts/user1.pem"))
            .unwrap()
            .public();
        let chain_id = net.chain_id.clone();
        tokio::spawn(async move {
            let mut nonce = 1u64;
            let mut accepted = 0u64;
            let mut i = 0usize;
            while !*stop_rx.borrow() {
                let tx = Tx {
                    chain_id: chain_id.clone(),
                    sender: key.public(),
                    nonce,
                    op: Op::Transfer { to, amount: 1 },
                }
                .sign(&key);
                if clients[i % clients.len()]
                    .submit_tx(to_hex(&encode(&tx)))
                    .await
                    .is_ok()
                {
                    nonce += 1;
                    accepted += 1;
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            accepted
        })
    };
    net.wait_height(&[0, 1, 2, 3], 5).await;

    // Transactions the victim reported as committed before being killed.
    let mut acknowledged: Vec<(String, u64)> = Vec::new();
    for round in 0..kills {
        tokio::time::sleep(Duration::from_millis(50 + rng.next(750))).await;
        if let Ok(block) = net
            .client(VICTIM)
            .get_block_by_height(BlockId::Latest, None)
            .await
        {
            for hash in block.tx_hashes {
                acknowledged.push((hash, block.header.height.0));
            }
        }
        net.kill9(VICTIM);
        net.spawn(VICTIM);
        net.wait_rpc(VICTIM).await;
        // It recovers and catches up with where the others are now.
        let mut others = 0;
        for i in 0..VICTIM {
            others = others.max(net.height(i).await.unwrap_or(0));
        }
        net.wait_height(&[VICTIM], others).await;
        for (hash, height) in &acknowledged {
            let info = net.client(VICTIM).get_tx(hash.clone()).await.unwrap();
            assert_eq!(
                (info.status, info.height.map(|h| h.0)),
                (TxState::Committed, Some(*height)),
                "kill {round}: tx {hash} acknowledged at height {height} is gone"
            );
        }
    }
    stop_tx.send(true).unwrap();
    assert!(loader.await.unwrap() > 0);
    assert!(
        !acknowledged.is_empty(),
        "the victim committed transactions"
    );

    // All nodes meet again a few blocks later, and none saw the victim (or
    // anyone) sign two values.
    let mut top = 0;
    for i in 0..4 {
        top = top.max(net.height(i).await.unwrap());
    }
    net.wait_height(&[0, 1, 2, 3], top + 3).await;
    for i in 0..4 {
        let evidence = net
            .client(i)
            .get_evidence(None, None, None)
            .await
            .unwrap()
            .evidence;
        assert!(evidence.is_empty(), "node{i} holds evidence: {evidence:?}");
    }

    // Stop cleanly, then compare the databases and audit each.
    for i in 0..4 {
        let mut child = net.procs[i].take().unwrap();
        signal(&child, "-TERM");
        assert!(child.wait().unwrap().success(), "node{i} stopped cleanly");
    }
    let stores: Vec<_> = (0..4)
        .map(|i| {
            tally_ledger::store::Store::open_read_only(&net.home(i).join("data"), &net.genesis)
                .unwrap()
        })
        .collect();
    let common_top = stores.iter().map(|s| s.height()).min().unwrap();
    for h in 1..=common_top {
        let reference = stores[0].block(h).unwrap().unwrap().hash();
        for (i, s) in stores.iter().enumerate() {
            assert_eq!(
                s.block(h).unwrap().unwrap().hash(),
                reference,
                "I1: node{i} differs at height {h}"
            );
        }
    }
    for (hash, height) in &acknowledged {
        let hash = Hash::from_hex(hash).unwrap();
        for (i, s) in stores.iter().enumerate() {
            assert_eq!(
                s.tx_location(&hash).unwrap().map(|l| l.height),
                Some(*height),
                "I4: node{i} lost tx {hash}"
            );
        }
    }
    drop(stores);
    for i in 0..4 {
        let out = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["audit", "--home", net.home(i).to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "node{i}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
