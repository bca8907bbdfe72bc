//! Shared helpers for Tally's cross-crate integration tests (in `tests/`):
//! in-process networks of real nodes (own RocksDB, libp2p swarm on
//! 127.0.0.1 with an OS-chosen port, signer) and a transaction load.

#![forbid(unsafe_code)]

pub mod faults;
pub mod pg;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tally_ledger::types::{Op, SignedTx, Tx};
use tally_ledger::Keypair;
use tally_node::home::{self, NodeHome};
use tally_node::node::{start, NodeHandle, Overrides, RunningNode};
use tally_node::testnet::{generate, TestnetSpec};

/// The repository's root folder (from the variable cargo sets when it runs
/// a test, so that a build reused from another checkout still finds it).
pub fn repo_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A generated testnet on disk with in-process nodes.
#[derive(Debug)]
pub struct TestNet {
    pub dir: tempfile::TempDir,
    pub names: Vec<String>,
    pub nodes: Vec<Option<RunningNode>>,
    pub empty_block_interval_ms: u64,
}

impl TestNet {
    /// Creates homes for `validators` and `replicas` (4 funded accounts).
    /// With `TALLY_TEST_LOG` set (a log filter such as `info`), the nodes'
    /// logs go to stderr.
    pub fn create(validators: usize, replicas: usize) -> Self {
        if let Ok(filter) = std::env::var("TALLY_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let spec = TestnetSpec {
            chain_id: "tally-test".into(),
            validators,
            replicas,
            accounts: 4,
            base_port: 20000,
        };
        generate(&spec, &dir.path().join("net")).expect("testnet");
        let mut names: Vec<String> = (0..validators).map(|i| format!("node{i}")).collect();
        names.extend((0..replicas).map(|i| format!("replica{i}")));
        let nodes = names.iter().map(|_| None).collect();
        TestNet {
            dir,
            names,
            nodes,
            empty_block_interval_ms: 200,
        }
    }

    /// Changes the genesis of every home (before any node starts).
    pub fn edit_genesis(&self, edit: impl Fn(&mut tally_ledger::genesis::Genesis)) {
        let mut names = self.names.clone();
        names.push(String::new()); // the top-level genesis.json
        for name in names {
            let path = self.net_dir().join(name).join("genesis.json");
            let mut g = tally_ledger::genesis::Genesis::load(&path).expect("genesis");
            edit(&mut g);
            std::fs::write(&path, g.to_json()).expect("write genesis");
        }
    }

    pub fn net_dir(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    pub fn home(&self, i: usize) -> NodeHome {
        let mut h = home::load(&self.net_dir().join(&self.names[i])).expect("home loads");
        h.config.p2p.persistent_peers.clear();
        h.config.consensus.empty_block_interval_ms = self.empty_block_interval_ms;
        h
    }

    /// Starts node `i` on an OS-chosen port and connects it with the
    /// running nodes (both ways).
    pub async fn start(&mut self, i: usize) {
        let h = self.home(i);
        self.start_home(i, &h).await;
    }

    /// Starts node `i` from a given (possibly altered) home.
    pub async fn start_home(&mut self, i: usize, h: &NodeHome) {
        let node = start(h, Overrides::ephemeral()).await.expect("node starts");
        for other in self.nodes.iter().flatten() {
            node.link(other).await;
        }
        self.nodes[i] = Some(node);
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.names.len() {
            self.start(i).await;
        }
    }

    pub async fn stop(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.stop().await.expect("node stops cleanly");
        }
    }

    pub async fn stop_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop(i).await;
        }
    }

    /// The node's JSON-RPC URL (HTTP).
    pub fn rpc_url(&self, i: usize) -> String {
        format!(
            "http://{}",
            self.nodes[i].as_ref().expect("node running").rpc_addr
        )
    }

    /// The node's JSON-RPC URL (WebSocket).
    pub fn ws_url(&self, i: usize) -> String {
        format!(
            "ws://{}",
            self.nodes[i].as_ref().expect("node running").rpc_addr
        )
    }

    pub fn handle(&self, i: usize) -> NodeHandle {
        self.nodes[i].as_ref().expect("node running").handle.clone()
    }

    pub fn running(&self) -> Vec<NodeHandle> {
        self.nodes
            .iter()
            .flatten()
            .map(|n| n.handle.clone())
            .collect()
    }

    /// The account keys written by `tally testnet` (user0…).
    pub fn user_keys(&self) -> Vec<Keypair> {
        (0..4)
            .map(|i| read_key(&self.net_dir().join("accounts").join(format!("user{i}.pem"))))
            .collect()
    }

    /// Senders for the member accounts user1..user3 (user0 receives).
    pub fn senders(&self) -> Vec<Sender> {
        self.user_keys()
            .into_iter()
            .skip(1)
            .map(|k| Sender::new(k, &self.chain_id()))
            .collect()
    }

    pub fn chain_id(&self) -> String {
        "tally-test".into()
    }
}

/// `op` signed by `key` with `nonce` on the test chain.
pub fn signed(key: &Keypair, nonce: u64, op: Op) -> SignedTx {
    Tx {
        chain_id: "tally-test".into(),
        sender: key.public(),
        nonce,
        op,
    }
    .sign(key)
}

/// Replaces `to` with a copy of the flat folder `from` (a database the
/// nodes using it have closed).
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the folder") {
        let entry = entry.expect("folder entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy a file");
    }
}

pub fn read_key(path: &Path) -> Keypair {
    tally_node::keys::read_key_file(path).expect("key file")
}

/// Waits until every given node has committed `height`, or panics after
/// `limit` (a liveness bound, far above the expected time).
pub async fn wait_height(nodes: &[NodeHandle], height: u64, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let heights: Vec<u64> = nodes.iter().map(|n| n.store.height()).collect();
        if heights.iter().all(|h| *h >= height) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("nodes did not reach height {height} within {limit:?}: heights {heights:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Submits transfers round-robin through the running nodes until told to stop.
pub async fn load(
    net_handles: Vec<tally_node::node::NodeHandle>,
    mut senders: Vec<Sender>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> u64 {
    let to = senders[0].key.public();
    let mut accepted = 0;
    let mut round = 0usize;
    while !*stop.borrow() {
        for s in senders.iter_mut() {
            let tx = s.transfer(to, 1);
            let node = &net_handles[round % net_handles.len()];
            round += 1;
            match node.submit_tx(tx).await {
                Ok(Ok(_)) => accepted += 1,
                Ok(Err(_)) | Err(_) => s.next_nonce -= 1, // refused: reuse the nonce
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    accepted
}

/// Signs transfers from one account with consecutive nonces.
#[derive(Debug)]
pub struct Sender {
    pub key: Keypair,
    pub next_nonce: u64,
    pub chain_id: String,
}

impl Sender {
    pub fn new(key: Keypair, chain_id: &str) -> Self {
        Sender {
            key,
            next_nonce: 1,
            chain_id: chain_id.to_string(),
        }
    }

    pub fn transfer(&mut self, to: tally_ledger::PublicKey, amount: u64) -> SignedTx {
        let tx = Tx {
            chain_id: self.chain_id.clone(),
            sender: self.key.public(),
            nonce: self.next_nonce,
            op: Op::Transfer { to, amount },
        }
        .sign(&self.key);
        self.next_nonce += 1;
        tx
    }
}

/// Checks I1 and I2 over heights `1..=upto` on every node: the same block
/// hash everywhere, hash links intact, every certificate valid for its block.
pub fn check_chains(nodes: &[NodeHandle], upto: u64) {
    let genesis_hash = nodes[0].store.genesis_hash();
    let set = nodes[0].store_genesis_validator_set();
    let mut prev = genesis_hash;
    for h in 1..=upto {
        let reference = nodes[0]
            .store
            .block(h)
            .expect("read")
            .expect("block present");
        assert_eq!(reference.header.prev_hash, prev, "hash link at height {h}");
        prev = reference.hash();
        for (i, n) in nodes.iter().enumerate() {
            let b = n.store.block(h).expect("read").expect("block present");
            assert_eq!(
                b.hash(),
                reference.hash(),
                "I1: node {i} differs at height {h}"
            );
            let cert = n
                .store
                .certificate(h)
                .expect("read")
                .expect("certificate present");
            assert_eq!(cert.block_hash, b.hash());
            tally_ledger::verify::verify_certificate(&cert, &set, &reference.header.chain_id)
                .unwrap_or_else(|e| panic!("I2: node {i} certificate at {h}: {e}"));
        }
    }
}

/// Access to the genesis validator set through a node handle.
pub trait GenesisSet {
    fn store_genesis_validator_set(&self) -> tally_ledger::ValidatorSet;
}

impl GenesisSet for NodeHandle {
    fn store_genesis_validator_set(&self) -> tally_ledger::ValidatorSet {
        self.genesis.validator_set().expect("valid set")
    }
}
