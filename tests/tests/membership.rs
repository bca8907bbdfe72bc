//! Membership changes on running processes under a load of transfers: a
//! fifth validator joins with a home genesis never named and carries the
//! chain when an original validator stops; a rotated key counts and its
//! node goes on with it; a removed validator that keeps running is cut off
//! and its messages ignored; a replica comes and goes. Afterwards every
//! node passes the audit and a proof of the latest state verifies from
//! genesis alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use tokio::sync::watch;

use tally_ledger::audit::{audit, AuditOptions};
use tally_ledger::crypto::Domain;
use tally_ledger::encoding::{encode, hex_serde};
use tally_ledger::genesis::{node_key_from_peer_id, Genesis};
use tally_ledger::governance::Change;
use tally_ledger::membership::{read_validators, rotation_message};
use tally_ledger::state::StateKey;
use tally_ledger::store::Store;
use tally_ledger::types::Op;
use tally_ledger::verify::verify_certificate;
use tally_ledger::{Keypair, SignedTx};
use tally_node::client::{check_proof_against, proven_set};
use tally_node::home::{DATA_DIR, VALIDATOR_KEY_FILE};
use tally_node::node::NodeHandle;
use tally_rpc::types::{to_hex, U64};
use tally_rpc::LedgerApiClient;
use tally_tests::{load, read_key, signed, wait_height, TestNet};

const LIVENESS: Duration = Duration::from_secs(120);

fn propose(admin: &Keypair, nonce: u64, change: Change) -> SignedTx {
    let change = Box::new(change);
    signed(admin, nonce, Op::Propose { change })
}

/// Submits `tx` and returns the height that committed it.
async fn commit(client: &HttpClient, tx: &SignedTx) -> u64 {
    client
        .submit_tx_and_wait(to_hex(&encode(tx)), None)
        .await
        .unwrap()
        .height
        .0
}

fn client(net: &TestNet, i: usize) -> HttpClient {
    HttpClientBuilder::default().build(net.rpc_url(i)).unwrap()
}

/// Transfers from the member accounts through `nodes` until stopped.
fn start_load(
    net: &TestNet,
    nodes: Vec<NodeHandle>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<u64>) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(load(nodes, net.senders(), stopped));
    (stop, task)
}

/// A proof of the admin's account at the latest height, checked against
/// the validator set proven from `genesis` alone; returns the changes
/// walked.
async fn proof_from_genesis(
    client: &HttpClient,
    url: &str,
    genesis: &Genesis,
    admin: &Keypair,
) -> usize {
    let account = client
        .get_account(admin.public().to_hex(), Some(true))
        .await
        .unwrap();
    let proof = account.proof.unwrap();
    let value = hex_serde::parse_vec(proof.value.as_deref().unwrap(), 1 << 20).unwrap();
    let (set, walked) = proven_set(client, url, genesis, account.height.0)
        .await
        .unwrap();
    check_proof_against(
        &genesis.chain_id,
        &set,
        &StateKey::Account(admin.public()),
        Some(&value),
        &proof,
        account.height.0,
    )
    .unwrap();
    walked
}

/// Audits node `i`'s database (its node stopped); returns the heights at
/// which the audit saw the set change.
fn audited(net: &TestNet, i: usize) -> Vec<u64> {
    let home = net.home(i);
    let store = Store::open_read_only(&home.dir.join(DATA_DIR), &home.genesis).unwrap();
    let report = audit(&store, &home.genesis, &AuditOptions::default(), &mut |_| {}).unwrap();
    assert_eq!(report.fault, None, "node {i}");
    report
        .summary
        .set_changes
        .iter()
        .map(|c| c.height)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_validator_joins_and_carries_the_chain_when_another_stops() {
    let mut net = TestNet::create(5, 0);
    // node4's home exists, but genesis does not name it.
    let fifth = Genesis::load(&net.net_dir().join("genesis.json"))
        .unwrap()
        .validators[4]
        .clone();
    net.edit_genesis(|g| g.validators.truncate(4));
    let genesis = Genesis::load(&net.net_dir().join("genesis.json")).unwrap();
    for i in 0..4 {
        net.start(i).await;
    }
    wait_height(&net.running(), 1, LIVENESS).await;
    let (stop_load, load_task) = start_load(&net, (1..4).map(|i| net.handle(i)).collect());
    let admin = read_key(&net.net_dir().join("accounts").join("admin.pem"));
    let rpc = client(&net, 1);
    let add = Change::AddValidator {
        name: fifth.name.clone(),
        public_key: fifth.public_key,
        node_key: node_key_from_peer_id(&fifth.peer_id).unwrap(),
        power: fifth.power,
    };
    let at = commit(&rpc, &propose(&admin, 1, add)).await;
    let joined = at + 2;
    assert_eq!(
        rpc.get_validators(Some(U64(at + 1))).await.unwrap().len(),
        4
    );
    let set = rpc.get_validators(Some(U64(joined))).await.unwrap();
    assert_eq!(set.len(), 5);
    assert_eq!(set[4].name, fifth.name);

    // The new node may connect now; it syncs and follows.
    net.start(4).await;
    wait_height(&[net.handle(4)], joined + 2, LIVENESS).await;

    // Five equal validators need four: without node0, no block commits
    // unless the newcomer votes.
    net.stop(0).await;
    let from = net.handle(1).store.height();
    wait_height(&net.running(), from + 3, LIVENESS).await;
    stop_load.send(true).unwrap();
    assert!(load_task.await.unwrap() > 0, "the load got transfers in");
    let store = &net.handle(1).store;
    let cert = store.certificate(from + 2).unwrap().unwrap();
    assert!(
        cert.signatures.iter().any(|s| s.validator_index == 4),
        "the newcomer signed block {}",
        from + 2
    );
    let set = read_validators(&**store, from + 2).unwrap().set().unwrap();
    verify_certificate(&cert, &set, &genesis.chain_id).unwrap();

    let walked = proof_from_genesis(&rpc, &net.rpc_url(1), &genesis, &admin).await;
    assert_eq!(walked, 1);
    net.stop_all().await;
    for i in 0..5 {
        assert_eq!(audited(&net, i), vec![joined], "node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_counts_a_removed_validator_is_cut_off_and_a_replica_comes_and_goes() {
    let mut net = TestNet::create(4, 1);
    let replica = Genesis::load(&net.net_dir().join("genesis.json"))
        .unwrap()
        .replicas[0]
        .clone();
    net.edit_genesis(|g| g.replicas.clear());
    let genesis = Genesis::load(&net.net_dir().join("genesis.json")).unwrap();
    for i in 0..4 {
        net.start(i).await;
    }
    wait_height(&net.running(), 1, LIVENESS).await;
    // Through node0 only: a node's handle keeps its database open, and
    // node1 and node2 restart.
    let (stop_load, load_task) = start_load(&net, vec![net.handle(0)]);
    let admin = read_key(&net.net_dir().join("accounts").join("admin.pem"));
    let rpc = client(&net, 0);
    let mut nonce = 0;
    let mut next = || {
        nonce += 1;
        nonce
    };

    // A replica is admitted: it connects and syncs.
    let replica_key = node_key_from_peer_id(&replica.peer_id).unwrap();
    let add = Change::AddReplica {
        name: replica.name.clone(),
        node_key: replica_key,
    };
    let at = commit(&rpc, &propose(&admin, next(), add)).await;
    net.start(4).await;
    wait_height(&[net.handle(4)], at + 2, LIVENESS).await;

    // node1's key is rotated, with its consent; its operator puts the new
    // key in place once the rotation is committed.
    let node1_dir = net.net_dir().join("node1");
    let old = read_key(&node1_dir.join(VALIDATOR_KEY_FILE));
    let new = Keypair::from_seed([0x77; 32]);
    let rotate = Change::RotateKey {
        public_key: old.public(),
        new_key: new.public(),
        consent: old.sign(
            Domain::Rotation,
            &genesis.chain_id,
            &rotation_message(&old.public(), &new.public()),
        ),
    };
    let at = commit(&rpc, &propose(&admin, next(), rotate)).await;
    // The old key decides up to at + 1; the new one from at + 2.
    wait_height(&net.running(), at + 1, LIVENESS).await;
    net.stop(1).await;
    std::fs::remove_file(node1_dir.join(VALIDATOR_KEY_FILE)).unwrap();
    tally_node::keys::write_key_file(&node1_dir.join(VALIDATOR_KEY_FILE), &new).unwrap();
    net.start(1).await;
    // Without node2, every block needs node1's new key.
    net.stop(2).await;
    let from = net.handle(0).store.height().max(at + 2);
    wait_height(
        &[net.handle(0), net.handle(1), net.handle(3)],
        from + 2,
        LIVENESS,
    )
    .await;
    let store = net.handle(0).store.clone();
    let set = read_validators(&*store, from + 1).unwrap().set().unwrap();
    assert_eq!(set.index_of(&new.public()), Some(1));
    assert_eq!(set.index_of(&old.public()), None);
    let cert = store.certificate(from + 1).unwrap().unwrap();
    assert!(cert.signatures.iter().any(|s| s.validator_index == 1));
    verify_certificate(&cert, &set, &genesis.chain_id).unwrap();
    net.start(2).await;

    // node3 is removed and keeps running: its peers close its connections
    // and the chain goes on without it.
    let node3 = net.handle(3);
    let removed = read_key(&net.net_dir().join("node3").join(VALIDATOR_KEY_FILE)).public();
    let remove = Change::RemoveValidator {
        public_key: removed,
    };
    let at = commit(&rpc, &propose(&admin, next(), remove)).await;
    let gone = at + 2;
    wait_height(
        &[net.handle(0), net.handle(1), net.handle(2)],
        gone + 3,
        LIVENESS,
    )
    .await;
    let set = read_validators(&*store, gone).unwrap().set().unwrap();
    assert_eq!(set.len(), 3);
    for h in gone..=gone + 3 {
        let cert = store.certificate(h).unwrap().unwrap();
        verify_certificate(&cert, &set, &genesis.chain_id).unwrap();
    }
    let rpc3 = client(&net, 3);
    let deadline = tokio::time::Instant::now() + LIVENESS;
    while rpc3.status().await.unwrap().peers > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node3 kept its peers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stalled = node3.store.height();
    let tip = net.handle(0).store.height();
    wait_height(&[net.handle(0)], tip.max(stalled) + 3, LIVENESS).await;
    assert_eq!(
        node3.store.height(),
        stalled,
        "the removed node was served blocks"
    );

    // The replica is removed: it is cut off too.
    let remove = Change::RemoveReplica {
        node_key: replica_key,
    };
    commit(&rpc, &propose(&admin, next(), remove)).await;
    let rpc4 = client(&net, 4);
    let deadline = tokio::time::Instant::now() + LIVENESS;
    while rpc4.status().await.unwrap().peers > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replica kept its peers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_load.send(true).unwrap();
    assert!(load_task.await.unwrap() > 0, "the load got transfers in");

    let walked = proof_from_genesis(&rpc, &net.rpc_url(0), &genesis, &admin).await;
    assert_eq!(walked, 2, "the rotation and the removal");
    net.stop_all().await;
    for i in 0..3 {
        let changes = audited(&net, i);
        assert_eq!(changes.len(), 2, "node {i}: {changes:?}");
        assert_eq!(changes[1], gone, "node {i}");
    }
    // The removed validator and the removed replica hold valid prefixes.
    for i in 3..5 {
        audited(&net, i);
    }
}
