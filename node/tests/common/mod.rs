//! A network of real `tally start` processes on 127.0.0.1 for the
//! process-level tests. Every node binds port 0 (the OS picks, and the
//! socket that got the port is the one that keeps it); the harness reads
//! the bound addresses from the node's "node started" log line, and each
//! node starts with the nodes already running as its persistent peers.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use tally_ledger::genesis::Genesis;
use tally_node::config::NodeConfig;
use tally_node::testnet::{generate, TestnetSpec};
use tally_rpc::LedgerApiClient;

pub const LIVENESS: Duration = Duration::from_secs(120);

pub fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
}

/// Validators running as processes; killed when dropped.
pub struct ProcNet {
    pub dir: tempfile::TempDir,
    pub genesis: Genesis,
    pub procs: Vec<Option<Child>>,
    /// Each node's RPC client, from its latest start.
    pub clients: Vec<Option<HttpClient>>,
    /// Each node's bound P2P address (with its peer id), from its latest start.
    pub p2p: Vec<Option<String>>,
    /// Each node's RPC URL, from its latest start.
    pub rpc_urls: Vec<Option<String>>,
    pub chain_id: String,
}

impl ProcNet {
    /// Generates a testnet of `validators` with ports from the OS;
    /// `edit` may change each node's config and the genesis first.
    pub fn create(
        chain_id: &str,
        validators: usize,
        config: impl Fn(&mut NodeConfig),
        genesis_edit: impl Fn(&mut Genesis),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let net = dir.path().join("net");
        let spec = TestnetSpec {
            chain_id: chain_id.into(),
            validators,
            replicas: 0,
            accounts: 2,
            base_port: 20000,
        };
        let mut genesis = generate(&spec, &net).unwrap();
        genesis_edit(&mut genesis);
        std::fs::write(net.join("genesis.json"), genesis.to_json()).unwrap();
        for i in 0..validators {
            let home = net.join(format!("node{i}"));
            std::fs::write(home.join("genesis.json"), genesis.to_json()).unwrap();
            let path = home.join("config.toml");
            let mut c = NodeConfig::load(&path).unwrap();
            c.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
            c.rpc.listen = "127.0.0.1:0".into();
            c.p2p.persistent_peers = Vec::new();
            config(&mut c);
            std::fs::write(&path, c.to_toml()).unwrap();
        }
        ProcNet {
            dir,
            genesis,
            procs: (0..validators).map(|_| None).collect(),
            clients: (0..validators).map(|_| None).collect(),
            p2p: (0..validators).map(|_| None).collect(),
            rpc_urls: (0..validators).map(|_| None).collect(),
            chain_id: chain_id.into(),
        }
    }

    /// Node `i`'s RPC client (the node has started).
    pub fn client(&self, i: usize) -> &HttpClient {
        self.clients[i].as_ref().expect("the node has started")
    }

    pub fn net(&self) -> PathBuf {
        self.dir.path().join("net")
    }

    pub fn home(&self, i: usize) -> PathBuf {
        self.net().join(format!("node{i}"))
    }

    pub fn log(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node{i}.log"))
    }

    /// Starts `tally start` for node `i` with the running nodes as its
    /// persistent peers, appending to its log file, and waits for the
    /// addresses it bound.
    pub fn spawn(&mut self, i: usize) {
        let path = self.home(i).join("config.toml");
        let mut c = NodeConfig::load(&path).unwrap();
        c.p2p.persistent_peers = self
            .p2p
            .iter()
            .enumerate()
            .filter(|(j, a)| *j != i && a.is_some() && self.procs[*j].is_some())
            .filter_map(|(_, a)| a.clone())
            .collect();
        std::fs::write(&path, c.to_toml()).unwrap();
        let seen = std::fs::metadata(self.log(i)).map_or(0, |m| m.len());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(i))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "start",
                "--home",
                self.home(i).to_str().unwrap(),
                "--log-format",
                "json",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.procs[i] = Some(child);
        let (p2p, rpc) = self.started_line(i, seen);
        let peer_id = &self.genesis.validators[i].peer_id;
        self.p2p[i] = Some(format!("{p2p}/p2p/{peer_id}"));
        let url = format!("http://{rpc}");
        self.clients[i] = Some(HttpClientBuilder::default().build(&url).unwrap());
        self.rpc_urls[i] = Some(url);
    }

    /// Waits for node `i`'s "node started" line after byte `from` of its
    /// log: its bound P2P and RPC addresses.
    fn started_line(&mut self, i: usize, from: u64) -> (String, String) {
        let deadline = Instant::now() + LIVENESS;
        loop {
            let text = std::fs::read(self.log(i)).unwrap_or_default();
            let new = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).to_string();
            for line in new.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let f = &v["fields"];
                if f["message"] == "node started" {
                    let get = |k: &str| f[k].as_str().map(str::to_string);
                    if let (Some(p2p), Some(rpc)) = (get("p2p"), get("rpc")) {
                        return (p2p, rpc);
                    }
                }
            }
            if let Some(status) = self.procs[i].as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("node{i} exited ({status}) before starting; log: {new}");
            }
            assert!(Instant::now() < deadline, "node{i} did not start: {new}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn spawn_all(&mut self) {
        for i in 0..self.procs.len() {
            self.spawn(i);
        }
    }

    /// `kill -9`: no chance to flush or say goodbye.
    pub fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            signal(&c, "-KILL");
            let _ = c.wait();
        }
    }

    pub async fn wait_rpc(&self, i: usize) {
        let deadline = Instant::now() + LIVENESS;
        while self.client(i).status().await.is_err() {
            assert!(Instant::now() < deadline, "node{i}'s RPC never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn height(&self, i: usize) -> Option<u64> {
        self.client(i)
            .status()
            .await
            .ok()
            .map(|s| s.latest_height.0)
    }

    /// Waits until each node in `nodes` has committed `height`.
    pub async fn wait_height(&self, nodes: &[usize], height: u64) {
        let deadline = Instant::now() + LIVENESS;
        for &i in nodes {
            while self.height(i).await.unwrap_or(0) < height {
                assert!(
                    Instant::now() < deadline,
                    "node{i} did not reach height {height}; logs in {}",
                    self.dir.path().display()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for ProcNet {
    fn drop(&mut self) {
        for c in self.procs.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn home_path(p: &Path) -> &str {
    p.to_str().unwrap()
}
