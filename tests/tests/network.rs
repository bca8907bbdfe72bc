//! Real networks of in-process nodes on 127.0.0.1: each node has its own
//! RocksDB, libp2p swarm and signer.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use tally_ledger::encoding::encode;
use tally_ledger::types::{Vote, VoteKind};
use tally_ledger::{Domain, Keypair};
use tally_node::node::{CONSENSUS_TASK, METRICS_TASK, NETWORK_TASK, RPC_TASK};
use tally_node::wire::{encode_envelope, ConsensusMsg};
use tally_tests::{check_chains, load, wait_height, Sender, TestNet};

const LIVENESS: Duration = Duration::from_secs(120);

/// Waits until every node is at one height and has prevoted there (after
/// its propose timeout, with no proposal it could accept): with less than a
/// quorum running nothing else can happen. Returns their heights.
async fn wait_prevoted_at_one_height(nodes: &[tally_node::node::NodeHandle]) -> Vec<u64> {
    let deadline = tokio::time::Instant::now() + LIVENESS;
    loop {
        let mut heights = Vec::new();
        let mut prevoted = true;
        for n in nodes {
            let status = n.status().await.unwrap();
            heights.push(status.height);
            prevoted &= status.step >= tally_consensus::Step::Prevote;
        }
        if prevoted && heights.windows(2).all(|w| w[0] == w[1]) {
            return heights;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes never settled: {heights:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_fifty_blocks_with_transactions() {
    let mut net = TestNet::create(4, 0);
    net.start_all().await;
    let handles = net.running();
    let senders: Vec<Sender> = net
        .user_keys()
        .into_iter()
        .skip(1)
        .map(|k| Sender::new(k, "tally-test"))
        .collect();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let loader = tokio::spawn(load(handles.clone(), senders, stop_rx));

    // Wait until 50 blocks with transactions are committed everywhere.
    let deadline = tokio::time::Instant::now() + LIVENESS;
    let mut with_txs;
    loop {
        let h = handles.iter().map(|n| n.store.height()).min().unwrap();
        with_txs = (1..=h)
            .filter(|i| !handles[0].store.block(*i).unwrap().unwrap().txs.is_empty())
            .count();
        if with_txs >= 50 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {with_txs} blocks with transactions by height {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_tx.send(true).unwrap();
    let accepted = loader.await.unwrap();
    assert!(accepted > 0);
    let top = handles.iter().map(|n| n.store.height()).min().unwrap();
    check_chains(&handles, top);
    let committed: u64 = (1..=top)
        .map(|h| handles[0].store.block(h).unwrap().unwrap().txs.len() as u64)
        .sum();
    assert!(committed >= 50);
    drop(handles);
    net.stop_all().await;
}

/// Whichever task of a node dies, `wait` reports it by name and why, and the
/// node still stops cleanly afterwards; while all run, `wait` waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_task_that_dies_is_reported_by_name() {
    let cases = [
        (NETWORK_TASK, "it was cancelled"),
        (CONSENSUS_TASK, "it was cancelled"),
        (RPC_TASK, "the JSON-RPC server stopped"),
        (METRICS_TASK, "it was cancelled"),
    ];
    for (task, reason) in cases {
        let mut net = TestNet::create(1, 0);
        let mut home = net.home(0);
        home.config.metrics.listen = Some("127.0.0.1:0".into());
        net.start_home(0, &home).await;
        let mut node = net.nodes[0].take().unwrap();
        wait_height(&[node.handle.clone()], 2, LIVENESS).await;
        let healthy = tokio::time::timeout(Duration::from_millis(300), node.wait()).await;
        assert!(healthy.is_err(), "{task}: reported a death: {healthy:?}");

        node.abort_task(task);
        let died = tokio::time::timeout(Duration::from_secs(10), node.wait())
            .await
            .unwrap_or_else(|_| panic!("the death of {task} was not reported"));
        assert_eq!((died.task, died.reason.as_str()), (task, reason));
        assert_eq!(died.to_string(), format!("the {task} task died: {reason}"));
        tokio::time::timeout(Duration::from_secs(10), node.stop())
            .await
            .expect("stops in time")
            .expect("stops cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_validators_then_restart_resume_without_a_fork() {
    let mut net = TestNet::create(4, 0);
    net.start_all().await;
    let all = net.running();
    wait_height(&all, 3, LIVENESS).await;

    // One of four stopped: the other three keep committing.
    net.stop(3).await;
    let three = net.running();
    let h = three[0].store.height();
    wait_height(&three, h + 5, LIVENESS).await;

    // Two stopped: no quorum, so no block is committed. Both survivors
    // reach the prevote step at one height and can go no further.
    net.stop(2).await;
    let two = net.running();
    let stuck = wait_prevoted_at_one_height(&two).await;
    let still: Vec<u64> = two.iter().map(|n| n.store.height()).collect();
    assert_eq!(stuck, still, "two of four validators cannot commit");

    // Both restart on their databases: commits resume, no manual step.
    drop((all, three, two));
    net.start(2).await;
    net.start(3).await;
    let all = net.running();
    let top = still.iter().max().copied().unwrap();
    wait_height(&all, top + 3, LIVENESS).await;
    let agreed = all.iter().map(|n| n.store.height()).min().unwrap();
    check_chains(&all, agreed);
    for n in &all {
        assert!(
            n.evidence().await.unwrap().is_empty(),
            "no validator equivocated"
        );
    }
    drop(all);
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_peer_cannot_connect_and_its_gossip_is_never_accepted() {
    let mut net = TestNet::create(4, 0);
    net.start_all().await;
    let validators = net.running();
    wait_height(&validators, 2, LIVENESS).await;

    // A node with the chain's genesis but a node key not listed in it.
    net.names.push("stranger".into());
    net.nodes.push(None);
    let mut stranger_home = net.home(0);
    stranger_home.dir = net.dir.path().join("stranger");
    std::fs::create_dir_all(&stranger_home.dir).unwrap();
    stranger_home.node_key = Keypair::generate().unwrap();
    stranger_home.validator_key = None;
    stranger_home.config.role = tally_node::config::NodeRole::Replica;
    net.start_home(4, &stranger_home).await;
    let stranger = net.handle(4);

    // It submits a valid transaction from a funded account.
    let mut sender = Sender::new(net.user_keys()[1].clone_key(), "tally-test");
    let tx = sender.transfer(net.user_keys()[2].public(), 5);
    let hash = tx.hash();
    stranger.submit_tx(tx).await.unwrap().unwrap();

    let h = validators[0].store.height();
    wait_height(&validators, h + 5, LIVENESS).await;
    assert_eq!(
        stranger.store.height(),
        0,
        "the stranger never received a block"
    );
    assert_eq!(
        stranger.metrics.peers.get(),
        0,
        "no validator kept a connection"
    );
    for v in &validators {
        assert_eq!(
            v.store.tx_location(&hash).unwrap(),
            None,
            "its gossip was never accepted"
        );
        assert!(v.tx_status(hash).await.unwrap().is_none());
    }
    drop((validators, stranger));
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_gossip_is_rejected_without_harm() {
    let mut net = TestNet::create(4, 1);
    net.start_all().await;
    let validators: Vec<_> = (0..4).map(|i| net.handle(i)).collect();
    let replica = net.handle(4);
    wait_height(&validators, 2, LIVENESS).await;

    let chain = "tally-test";
    let users = net.user_keys();
    let mut good = Sender::new(users[1].clone_key(), chain);
    let mut bad_sig = good.transfer(users[2].public(), 1);
    bad_sig.signature.0[0] ^= 1;
    let mut other_chain = Sender::new(users[3].clone_key(), "another-chain");
    let wrong_chain = other_chain.transfer(users[2].public(), 1);
    let h = validators[0].store.height();
    let stranger_key = Keypair::generate().unwrap();
    let vote = Vote {
        kind: VoteKind::Prevote,
        height: h + 1,
        round: 0,
        value: None,
    };
    let forged_vote = tally_ledger::types::SignedVote {
        vote,
        validator_index: 0,
        signature: stranger_key.sign(Domain::Vote, chain, &vote.message()),
    };
    let outsider_vote = tally_ledger::types::SignedVote {
        vote,
        validator_index: 17,
        signature: stranger_key.sign(Domain::Vote, chain, &vote.message()),
    };
    let payloads: Vec<(&'static str, Vec<u8>)> = vec![
        ("txs", encode_envelope(1, &vec![bad_sig])),
        ("txs", encode_envelope(2, &vec![wrong_chain])),
        ("txs", vec![0xff; 40]),
        (
            "consensus",
            encode_envelope(3, &ConsensusMsg::Vote(forged_vote)),
        ),
        (
            "consensus",
            encode_envelope(4, &ConsensusMsg::Vote(outsider_vote)),
        ),
        ("consensus", b"garbage".to_vec()),
        ("consensus", {
            let mut big = encode(&5u64);
            big.extend(vec![0u8; 5 << 20]);
            big
        }),
        ("status", vec![1, 2, 3]),
    ];
    for (topic, data) in payloads {
        replica.publish_raw(topic, data).await;
    }
    wait_height(&validators, h + 5, LIVENESS).await;
    let rejected: u64 = validators
        .iter()
        .map(|v| {
            let text = v.metrics.render();
            text.lines()
                .filter(|l| l.starts_with("tally_invalid_gossip_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        })
        .sum();
    assert!(
        rejected >= 6,
        "validators rejected only {rejected} invalid messages"
    );
    let top = validators.iter().map(|n| n.store.height()).min().unwrap();
    check_chains(&validators, top);
    drop((validators, replica));
    net.stop_all().await;
}

trait CloneKey {
    fn clone_key(&self) -> Keypair;
}

impl CloneKey for Keypair {
    fn clone_key(&self) -> Keypair {
        Keypair::from_seed(self.seed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_larger_than_the_default_gossip_limit_are_committed() {
    let mut net = TestNet::create(4, 0);
    net.edit_genesis(|g| {
        g.params.tx_bytes_max = 256 * 1024;
        g.params.value_bytes_max = 200 * 1024;
    });
    net.start_all().await;
    let handles = net.running();
    wait_height(&handles, 1, LIVENESS).await;
    let key = net.user_keys()[1].clone_key();
    let tx = tally_ledger::types::Tx {
        chain_id: "tally-test".into(),
        sender: key.public(),
        nonce: 1,
        op: tally_ledger::types::Op::Put {
            key: b"big".to_vec(),
            value: vec![0x5a; 150 * 1024],
        },
    }
    .sign(&key);
    let hash = tx.hash();
    handles[2].submit_tx(tx).await.unwrap().unwrap();
    let deadline = tokio::time::Instant::now() + LIVENESS;
    let location = loop {
        if let Some(loc) = handles[0].store.tx_location(&hash).unwrap() {
            break loc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the large transaction was never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let bytes = handles[0]
        .store
        .block_bytes(location.height)
        .unwrap()
        .unwrap();
    assert!(bytes.len() > 64 * 1024, "block is {} bytes", bytes.len());
    wait_height(&handles, location.height, LIVENESS).await;
    check_chains(&handles, location.height);
    drop(handles);
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_data_was_wiped_waits_to_hear_the_network_and_sits_out_its_height() {
    let mut net = TestNet::create(4, 0);
    net.start_all().await;
    wait_height(&net.running(), 3, LIVENESS).await;

    // Validator 3 stops and its whole data folder is deleted: no blocks,
    // no signer state, as on a new home.
    net.stop(3).await;
    std::fs::remove_dir_all(net.home(3).data_dir()).unwrap();
    net.start(3).await;
    let status = net.handle(3).status().await.unwrap();
    let pause = status
        .signing_paused
        .expect("a home with no signer state and no blocks holds back");
    assert!(
        pause.reason.contains("no signer state and no blocks"),
        "{}",
        pause.reason
    );

    // Once it has heard the others, it knows the chain moved on, and waits
    // until the network decides past what they reported.
    let deadline = tokio::time::Instant::now() + LIVENESS;
    let heard = loop {
        let s = net.handle(3).status().await.unwrap();
        match s.signing_paused {
            Some(p) if !p.awaiting_peers => break p,
            Some(_) => {}
            None => panic!("it resumed without waiting for the network to move on"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "it never heard the network"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(heard.until_past >= 3, "{heard:?}");
    signs_again_past(&mut net, 3, heard.until_past, deadline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_that_lost_its_signer_state_signs_only_after_the_network_moves_past() {
    let mut net = TestNet::create(4, 0);
    net.start_all().await;
    wait_height(&net.running(), 3, LIVENESS).await;

    // Validator 3 stops, and its signer state is lost (as when a home is
    // put together from an old backup of that record).
    net.stop(3).await;
    let genesis =
        tally_ledger::genesis::Genesis::load(&net.net_dir().join("genesis.json")).unwrap();
    let tip = {
        let store = tally_ledger::store::Store::open(&net.home(3).data_dir(), &genesis).unwrap();
        store.tamper_raw("meta", b"signer_state", None).unwrap();
        store.tamper_raw("meta", b"signer_passed", None).unwrap();
        store.height()
    };
    net.start(3).await;
    let status = net.handle(3).status().await.unwrap();
    let pause = status
        .signing_paused
        .expect("the validator holds back its signatures");
    assert!(pause.until_past >= tip, "{pause:?}");
    assert!(
        pause.reason.contains("signer state is missing"),
        "{}",
        pause.reason
    );

    // The other three decide past every height it may have signed; then it
    // signs again, and nobody equivocated.
    let deadline = tokio::time::Instant::now() + LIVENESS;
    signs_again_past(&mut net, 3, pause.until_past, deadline).await;
}

/// Waits for validator `i`'s pause to lift, which must be past
/// `until_past`; then the network goes on, with one chain and no evidence.
async fn signs_again_past(
    net: &mut TestNet,
    i: usize,
    until_past: u64,
    deadline: tokio::time::Instant,
) {
    let all = net.running();
    let resumed_at = loop {
        let s = net.handle(i).status().await.unwrap();
        if s.signing_paused.is_none() {
            // The pause lifts when a block is decided, which may be before
            // it is written.
            break s.decided_height;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still paused: {:?}",
            s.signing_paused
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(resumed_at > until_past);
    wait_height(&all, resumed_at + 3, LIVENESS).await;
    check_chains(&all, resumed_at + 3);
    for n in &all {
        assert!(n.evidence().await.unwrap().is_empty());
    }
    drop(all);
    net.stop_all().await;
}
