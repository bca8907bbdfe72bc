//! Block replication between real in-process nodes on 127.0.0.1: replicas
//! and lagging validators catch up by block sync and then follow consensus;
//! peers that serve forged blocks or claim heights they do not have are
//! scored down and do not stop sync.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::path::Path;
use std::time::Duration;

use tally_ledger::encoding::encode;
use tally_ledger::store::Store;
use tally_ledger::types::{Block, CommitCertificate, CommitSig};
use tally_ledger::{Domain, Hash};
use tally_node::node::NodeHandle;
use tally_node::wire::{encode_envelope, Status};
use tally_tests::{check_chains, copy_dir, load, wait_height, TestNet};

const LIVENESS: Duration = Duration::from_secs(180);

fn min_height(nodes: &[NodeHandle]) -> u64 {
    nodes.iter().map(|n| n.store.height()).min().unwrap()
}

fn max_height(nodes: &[NodeHandle]) -> u64 {
    nodes.iter().map(|n| n.store.height()).max().unwrap()
}

/// Short consensus timeouts: a stopped validator's turns to propose cost
/// little, so hundreds of blocks pass quickly without it.
fn fast_timeouts(net: &TestNet) {
    net.edit_genesis(|g| {
        g.params.timeout_propose_ms = 150;
        g.params.timeout_prevote_ms = 100;
        g.params.timeout_precommit_ms = 100;
        g.params.timeout_delta_ms = 100;
    });
}

/// Starts validators 0..4 with a transfer load through the first
/// `load_through` of them; returns the stop switch.
async fn validators_under_load(
    net: &mut TestNet,
    load_through: usize,
) -> (
    Vec<NodeHandle>,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<u64>,
) {
    for i in 0..4 {
        net.start(i).await;
    }
    let validators: Vec<NodeHandle> = (0..4).map(|i| net.handle(i)).collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loader = tokio::spawn(load(
        validators[..load_through].to_vec(),
        net.senders(),
        stop_rx,
    ));
    (validators, stop_tx, loader)
}

/// A network of 4 validators (and `replicas` replicas, not started) that
/// has committed `height` blocks under load; the load is stopped and blocks
/// keep coming, empty, every 50 ms.
async fn chain_of(replicas: usize, height: u64) -> (TestNet, Vec<NodeHandle>) {
    let mut net = TestNet::create(4, replicas);
    net.empty_block_interval_ms = 0;
    fast_timeouts(&net);
    let (validators, stop_load, loader) = validators_under_load(&mut net, 4).await;
    wait_height(&validators, height, LIVENESS).await;
    stop_load.send(true).unwrap();
    assert!(loader.await.unwrap() > 0);
    net.empty_block_interval_ms = 50;
    (net, validators)
}

/// Waits until `node` has reached the height every node in `others` had
/// when the call started, then until it has 10 more (it follows the head).
async fn catches_up_and_follows(node: &NodeHandle, others: &[NodeHandle]) {
    let head = max_height(others);
    wait_height(std::slice::from_ref(node), head, LIVENESS).await;
    let status = node.status().await.unwrap();
    assert!(status.peers_max_height >= head, "{status:?}");
    wait_height(std::slice::from_ref(node), head + 10, LIVENESS).await;
}

fn txs_in(node: &NodeHandle, upto: u64) -> u64 {
    (1..=upto)
        .map(|h| node.store.block(h).unwrap().unwrap().txs.len() as u64)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_after_two_thousand_blocks_catches_up_and_follows_the_head() {
    let (mut net, validators) = chain_of(1, 2_000).await;

    net.start(4).await;
    let replica = net.handle(4);
    catches_up_and_follows(&replica, &validators).await;

    let mut all = validators.clone();
    all.push(replica.clone());
    let top = min_height(&all);
    assert!(top >= 2_000);
    check_chains(&all, top);
    assert!(txs_in(&replica, top) > 0);
    // It got the history by block sync, not by following consensus.
    assert!(replica.metrics.sync_blocks.get() >= 1_900);
    assert!(!replica.status().await.unwrap().catching_up);
    drop((validators, replica, all));
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_joins_while_the_validators_are_under_load() {
    let mut net = TestNet::create(4, 1);
    net.empty_block_interval_ms = 0;
    fast_timeouts(&net);
    let (validators, stop_load, loader) = validators_under_load(&mut net, 4).await;
    wait_height(&validators, 300, LIVENESS).await;

    net.start(4).await;
    let replica = net.handle(4);
    catches_up_and_follows(&replica, &validators).await;
    stop_load.send(true).unwrap();
    assert!(loader.await.unwrap() > 0);

    let mut all = validators.clone();
    all.push(replica.clone());
    let top = min_height(&all);
    check_chains(&all, top);
    assert!(txs_in(&replica, top) > 0);
    assert!(replica.metrics.sync_blocks.get() >= 250);
    drop((validators, replica, all));
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_stopped_for_500_blocks_syncs_and_then_votes_again() {
    let mut net = TestNet::create(4, 0);
    net.empty_block_interval_ms = 0;
    fast_timeouts(&net);
    let (validators, stop_load, loader) = validators_under_load(&mut net, 3).await;
    wait_height(&validators, 10, LIVENESS).await;

    let three: Vec<NodeHandle> = validators[..3].to_vec();
    let stopped_at = validators[3].store.height();
    // Its handle holds the database open: let it go before the restart.
    drop(validators);
    net.stop(3).await;
    wait_height(&three, stopped_at + 500, LIVENESS).await;

    net.start(3).await;
    let back = net.handle(3);
    catches_up_and_follows(&back, &three).await;
    let rejoined = back.store.height();
    // Its precommits appear in certificates after it rejoined.
    let deadline = tokio::time::Instant::now() + LIVENESS;
    let signed_by_it = |h: u64| {
        three[0]
            .store
            .certificate(h)
            .unwrap()
            .is_some_and(|c| c.signatures.iter().any(|s| s.validator_index == 3))
    };
    let mut h = rejoined + 1;
    loop {
        wait_height(&three, h, LIVENESS).await;
        if signed_by_it(h) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "validator 3 signed no certificate after rejoining"
        );
        h += 1;
    }
    stop_load.send(true).unwrap();
    assert!(loader.await.unwrap() > 0);
    let all: Vec<NodeHandle> = (0..4).map(|i| net.handle(i)).collect();
    let top = min_height(&all);
    check_chains(&all, top);
    assert!(back.metrics.sync_blocks.get() >= 450);
    for n in &all {
        assert!(n.evidence().await.unwrap().is_empty());
    }
    drop((three, back, all));
    net.stop_all().await;
}

/// How the forged block is made.
#[derive(Debug, Clone, Copy)]
enum Forgery {
    /// One signature of its certificate flipped.
    BadCertificate,
    /// A different parent, with a certificate re-signed by every validator
    /// (as a colluding supermajority would).
    BrokenLink,
    /// A different state root, re-signed likewise: only re-execution finds it.
    WrongStateRoot,
}

fn forge(
    db: &Path,
    genesis: &tally_ledger::genesis::Genesis,
    keys: &[tally_ledger::Keypair],
    height: u64,
    how: Forgery,
) {
    let store = Store::open(db, genesis).unwrap();
    let mut block: Block = store.block(height).unwrap().unwrap();
    let mut cert: CommitCertificate = store.certificate(height).unwrap().unwrap();
    let resign = |block: &Block, cert: &mut CommitCertificate| {
        cert.block_hash = block.hash();
        let message = cert.vote().message();
        cert.signatures = keys
            .iter()
            .enumerate()
            .map(|(i, k)| CommitSig {
                validator_index: i as u32,
                signature: k.sign(Domain::Vote, &genesis.chain_id, &message),
            })
            .collect();
    };
    match how {
        Forgery::BadCertificate => cert.signatures[0].signature.0[3] ^= 1,
        Forgery::BrokenLink => {
            block.header.prev_hash = Hash([5; 32]);
            resign(&block, &mut cert);
        }
        Forgery::WrongStateRoot => {
            block.header.state_root = Hash([6; 32]);
            resign(&block, &mut cert);
        }
    }
    let key = height.to_be_bytes();
    store
        .tamper_raw("blocks", &key, Some(&encode(&block)))
        .unwrap();
    store
        .tamper_raw("certificates", &key, Some(&encode(&cert)))
        .unwrap();
}

/// Waits until `node` has banned `peer` (scored it down to the ban).
async fn wait_banned(node: &NodeHandle, peer: libp2p::PeerId) -> tally_node::driver::NodeStatus {
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let status = node.status().await.unwrap();
        if status.peers.iter().any(|p| p.peer == peer && p.banned) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer {peer} was never banned: {:?}",
            status.peers
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_forged_blocks_is_caught_and_sync_completes_from_honest_peers() {
    const FORGED: u64 = 30;
    // replica0 serves a forged chain; replica1 syncs.
    let (mut net, validators) = chain_of(2, FORGED + 20).await;
    drop(validators);
    let genesis = (*net.handle(0).genesis).clone();
    let keys: Vec<_> = (0..4).map(|i| net.home(i).validator_key.unwrap()).collect();
    for i in 0..4 {
        net.stop(i).await;
    }

    for how in [
        Forgery::BadCertificate,
        Forgery::BrokenLink,
        Forgery::WrongStateRoot,
    ] {
        // The forger holds a copy of the real chain with block FORGED
        // replaced; the syncing replica starts empty and meets only it.
        let forger_db = net.home(4).data_dir();
        copy_dir(&net.home(0).data_dir(), &forger_db);
        forge(&forger_db, &genesis, &keys, FORGED, how);
        let _ = std::fs::remove_dir_all(net.home(5).data_dir());
        net.start(4).await;
        net.start(5).await;
        let forger = net.handle(4);
        let syncing = net.handle(5);
        let status = wait_banned(&syncing, forger.peer_id).await;
        // Everything before the forged block was real and is kept; the
        // forged block was not committed.
        assert_eq!(syncing.store.height(), FORGED - 1, "{how:?}: {status:?}");
        assert!(
            syncing
                .metrics
                .sync_rejected
                .get_or_create(&tally_node::metrics::ReasonLabel {
                    reason: "invalid_block".into()
                })
                .get()
                >= 1
        );

        // The honest validators come back: sync completes from them.
        for i in 0..4 {
            net.start(i).await;
        }
        let validators: Vec<NodeHandle> = (0..4).map(|i| net.handle(i)).collect();
        catches_up_and_follows(&syncing, &validators).await;
        let mut honest = validators.clone();
        honest.push(syncing.clone());
        check_chains(&honest, min_height(&honest));
        drop((validators, honest, forger, syncing));
        net.stop_all().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_claiming_a_height_it_cannot_serve_does_not_stall_sync() {
    // replica0 keeps announcing a far-higher height; replica1 syncs.
    let (mut net, validators) = chain_of(2, 200).await;

    net.start(4).await;
    let liar = net.handle(4);
    let (stop_lies, mut lies_stopped) = tokio::sync::watch::channel(false);
    let lying = {
        let liar = liar.clone();
        tokio::spawn(async move {
            // Numbered above its own status messages, so every lie is
            // the newest word from it.
            let first = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as u64
                + (1 << 50);
            let mut seq = first;
            loop {
                seq += 1;
                let claim = Status {
                    height: 1_000_000_000,
                    block_hash: Hash([9; 32]),
                };
                liar.publish_raw("status", encode_envelope(seq, &claim))
                    .await;
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = lies_stopped.changed() => return seq - first,
                }
            }
        })
    };
    net.start(5).await;
    let syncing = net.handle(5);
    catches_up_and_follows(&syncing, &validators).await;
    // The liar is not believed: the node knows it is not behind.
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let status = syncing.status().await.unwrap();
        let liar_view = status.peers.iter().find(|p| p.peer == liar.peer_id);
        let scored_down =
            liar_view.is_some_and(|p| p.score < 0 && p.believed_height < 1_000_000_000);
        if scored_down && !status.catching_up {
            assert!(status.peers_max_height < 1_000_000_000, "{status:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the liar is still believed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_lies.send(true).unwrap();
    assert!(lying.await.unwrap() >= 1, "the liar lied");
    let mut all = validators.clone();
    all.push(syncing.clone());
    check_chains(&all, min_height(&all));
    drop((validators, liar, syncing, all));
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_reads_forwards_transactions_and_syncs_again_after_falling_behind() {
    use jsonrpsee_http_client::HttpClientBuilder;
    use tally_ledger::state::StateKey;
    use tally_rpc::types::{to_hex, TxState};
    use tally_rpc::LedgerApiClient;

    let mut net = TestNet::create(4, 1);
    net.empty_block_interval_ms = 50;
    fast_timeouts(&net);
    for i in 0..4 {
        net.start(i).await;
    }
    // The replica's only peer is validator 0.
    let replica_node =
        tally_node::node::start(&net.home(4), tally_node::node::Overrides::ephemeral())
            .await
            .unwrap();
    replica_node.link(net.nodes[0].as_ref().unwrap()).await;
    net.nodes[4] = Some(replica_node);
    let replica = net.handle(4);
    wait_height(std::slice::from_ref(&replica), 5, LIVENESS).await;

    // Transactions submitted to the replica are forwarded and committed;
    // the replica answers reads with proofs.
    let client = HttpClientBuilder::default().build(net.rpc_url(4)).unwrap();
    let mut sender = net.senders().remove(0);
    let to = net.user_keys()[0].public();
    let mut hashes = Vec::new();
    for _ in 0..10 {
        let tx = sender.transfer(to, 3);
        hashes.push(tx.hash());
        client.submit_tx(to_hex(&encode(&tx))).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + LIVENESS;
    for hash in &hashes {
        loop {
            let info = client.get_tx(hash.to_string()).await.unwrap();
            if info.status == TxState::Committed {
                assert!(info.proof.is_some());
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{info:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let status = client.status().await.unwrap();
    assert_eq!(status.role, "replica");
    let account = client.get_account(to.to_hex(), Some(true)).await.unwrap();
    let proof = account.proof.unwrap();
    let value = tally_ledger::encoding::hex_serde::parse_vec(proof.value.as_deref().unwrap(), 1024)
        .unwrap();
    tally_node::client::check_proof(
        &replica.genesis,
        &StateKey::Account(to),
        Some(&value),
        &proof,
        account.height.0,
    )
    .unwrap();

    // Validator 0 goes away: the replica is cut off and falls behind while
    // the other three go on.
    let others: Vec<NodeHandle> = (1..4).map(|i| net.handle(i)).collect();
    net.stop(0).await;
    let cut_at = replica.store.height();
    wait_height(&others, cut_at + 100, LIVENESS).await;
    assert!(replica.store.height() < cut_at + 5);
    let synced_before = replica.metrics.sync_blocks.get();

    // It comes back: the replica, never restarted, syncs the gap and then
    // follows consensus again.
    net.start(0).await;
    catches_up_and_follows(&replica, &others).await;
    assert!(replica.metrics.sync_blocks.get() >= synced_before + 50);
    let mut all = others.clone();
    all.push(net.handle(0));
    all.push(replica.clone());
    check_chains(&all, min_height(&all));
    drop((others, all, replica, client));
    net.stop_all().await;
}
