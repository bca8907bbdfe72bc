//! Real `tally` processes on 127.0.0.1: four `tally start` validators, and
//! `tally devnet` stopped with Ctrl-C and restarted where it left off.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{signal, ProcNet, LIVENESS};
use tally_ledger::encoding::encode;
use tally_ledger::types::{CommitCertificate, Op, Tx};
use tally_node::keys::read_key_file;
use tally_rpc::types::{to_hex, BlockId};
use tally_rpc::LedgerApiClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_tally_start_processes_commit_blocks_with_transactions() {
    let mut procs = ProcNet::create(
        "proc-test",
        4,
        |c| c.consensus.empty_block_interval_ms = 100,
        |_| {},
    );
    procs.spawn_all();
    for i in 0..4 {
        procs.wait_rpc(i).await;
    }
    let genesis = procs.genesis.clone();
    let net = procs.net();
    let clients: Vec<_> = (0..procs.procs.len())
        .map(|i| procs.client(i).clone())
        .collect();

    // Load: transfers from user0 through the nodes in turn.
    let key = read_key_file(&net.join("accounts/user0.pem")).unwrap();
    let to = read_key_file(&net.join("accounts/user1.pem"))
        .unwrap()
        .public();
    let deadline = Instant::now() + LIVENESS;
    let mut nonce = 1;
    let mut with_txs = std::collections::BTreeSet::new();
    let mut scanned = 0;
    while with_txs.len() < 50 {
        assert!(
            Instant::now() < deadline,
            "only {} blocks with transactions",
            with_txs.len()
        );
        for c in &clients {
            let tx = Tx {
                chain_id: "proc-test".into(),
                sender: key.public(),
                nonce,
                op: Op::Transfer { to, amount: 1 },
            }
            .sign(&key);
            if c.submit_tx(to_hex(&encode(&tx))).await.is_ok() {
                nonce += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        let top = clients[0].status().await.unwrap().latest_height.0;
        for h in scanned + 1..=top {
            let b = clients[0]
                .get_block_by_height(BlockId::Height(h), None)
                .await
                .unwrap();
            if !b.tx_hashes.is_empty() {
                with_txs.insert(h);
            }
        }
        scanned = top;
    }

    // I1 and I2 over every height all four hold.
    let set = genesis.validator_set().unwrap();
    let mut top = u64::MAX;
    for c in &clients {
        top = top.min(c.status().await.unwrap().latest_height.0);
    }
    for h in 1..=top {
        let reference = clients[0]
            .get_block_by_height(BlockId::Height(h), None)
            .await
            .unwrap();
        for c in &clients[1..] {
            assert_eq!(
                c.get_block_by_height(BlockId::Height(h), None)
                    .await
                    .unwrap()
                    .hash,
                reference.hash,
                "height {h}"
            );
        }
        let cert = reference.certificate.unwrap();
        let bytes = tally_ledger::encoding::hex_serde::parse_vec(&cert.encoded, 1 << 20).unwrap();
        let cert = CommitCertificate::decode(&bytes).unwrap();
        tally_ledger::verify::verify_certificate(&cert, &set, "proc-test").unwrap();
    }

    // SIGTERM: each process shuts down cleanly.
    for i in 0..4 {
        let mut child = procs.procs[i].take().unwrap();
        signal(&child, "-TERM");
        let status = child.wait().unwrap();
        assert!(status.success(), "node{i} exited with {status}");
        let log = std::fs::read_to_string(procs.log(i)).unwrap();
        assert!(
            log.contains("stopped cleanly"),
            "node{i} log lacks a clean stop"
        );
        assert!(
            log.lines().all(|l| l.is_empty() || l.starts_with('{')),
            "JSON logs only"
        );
    }
}

fn devnet(home: &Path) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "devnet",
            "--home",
            home.to_str().unwrap(),
            "--base-port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Reads lines until `pred` holds; returns them all.
fn read_until(rx: &std::sync::mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = Instant::now() + LIVENESS;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("devnet output stopped");
        let done = pred(&line);
        lines.push(line);
        if done {
            return lines;
        }
    }
}

fn block_height(line: &str) -> Option<u64> {
    line.strip_prefix("block ")?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn devnet_runs_stops_on_ctrl_c_and_restarts_where_it_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("devnet");
    let (mut child, rx) = devnet(&home);
    let lines = read_until(&rx, |l| block_height(l).is_some_and(|h| h >= 3));
    let rpc_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" up ") && l.contains("rpc http://127.0.0.1:"))
        .collect();
    assert_eq!(
        rpc_lines.len(),
        5,
        "4 validators and 1 replica print their RPC address: {lines:?}"
    );
    // The client commands against the running devnet.
    let rpc = rpc_lines[0]
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let to = read_key_file(&home.join("accounts/user1.pem"))
        .unwrap()
        .public()
        .to_hex();
    let tally = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "tally {args:?}: {text}");
        text
    };
    let key = home.join("accounts/user0.pem");
    let sent = tally(&[
        "tx",
        "transfer",
        "--rpc",
        &rpc,
        "--key",
        key.to_str().unwrap(),
        "--to",
        &to,
        "--amount",
        "5",
        "--wait",
    ]);
    assert!(sent.contains("committed at height"), "{sent}");
    let put = tally(&[
        "tx",
        "put",
        "--rpc",
        &rpc,
        "--key",
        key.to_str().unwrap(),
        "--name",
        "invoice-7",
        "--value",
        "paid",
        "--wait",
    ]);
    assert!(put.contains("committed at height"), "{put}");
    let genesis = home.join("genesis.json");
    let proven = tally(&[
        "query",
        "account",
        &to,
        "--rpc",
        &rpc,
        "--prove",
        "--genesis",
        genesis.to_str().unwrap(),
    ]);
    assert!(proven.contains("proof: valid"), "{proven}");
    let owner = read_key_file(&key).unwrap().public().to_hex();
    let record = tally(&[
        "query",
        "record",
        &owner,
        "invoice-7",
        "--rpc",
        &rpc,
        "--prove",
    ]);
    assert!(record.contains("proof: valid"), "{record}");
    let status: serde_json::Value =
        serde_json::from_str(&tally(&["query", "status", "--rpc", &rpc, "--json"])).unwrap();
    assert_eq!(status["chainId"], "tally-devnet");
    let block = tally(&["query", "block", "latest", "--rpc", &rpc]);
    assert!(block.contains("certified"), "{block}");

    signal(&child, "-INT");
    let rest = read_until(&rx, |l| l.starts_with("stopped"));
    assert!(child.wait().unwrap().success(), "{rest:?}");
    let reached = lines.iter().filter_map(|l| block_height(l)).max().unwrap();

    // Restart on the same folder: the chain continues past where it was.
    let (mut child, rx) = devnet(&home);
    let lines = read_until(&rx, |l| block_height(l).is_some_and(|h| h > reached + 1));
    assert!(lines.iter().any(|l| l.contains("restarting")), "{lines:?}");
    let first = lines.iter().find_map(|l| block_height(l)).unwrap();
    assert!(
        first > reached,
        "restarted at {first}, had reached {reached}"
    );
    signal(&child, "-INT");
    read_until(&rx, |l| l.starts_with("stopped"));
    assert!(child.wait().unwrap().success());
}
