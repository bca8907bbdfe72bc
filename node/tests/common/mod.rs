//! A network of real `tally start` processes on 127.0.0.1 for the
//! process-level tests: OS-chosen ports written into each home's config,
//! every node a persistent peer of the others.

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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
    pub clients: Vec<HttpClient>,
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
        let ports: Vec<(u16, u16)> = (0..validators)
            .map(|_| (free_port(), free_port()))
            .collect();
        for i in 0..validators {
            let home = net.join(format!("node{i}"));
            std::fs::write(home.join("genesis.json"), genesis.to_json()).unwrap();
            let path = home.join("config.toml");
            let mut c = NodeConfig::load(&path).unwrap();
            c.p2p.listen = format!("/ip4/127.0.0.1/tcp/{}", ports[i].0);
            c.rpc.listen = format!("127.0.0.1:{}", ports[i].1);
            c.p2p.persistent_peers = (0..validators)
                .filter(|j| *j != i)
                .map(|j| {
                    format!(
                        "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                        ports[j].0, genesis.validators[j].peer_id
                    )
                })
                .collect();
            config(&mut c);
            std::fs::write(&path, c.to_toml()).unwrap();
        }
        let clients = ports
            .iter()
            .map(|(_, r)| {
                HttpClientBuilder::default()
                    .build(format!("http://127.0.0.1:{r}"))
                    .unwrap()
            })
            .collect();
        ProcNet {
            dir,
            genesis,
            procs: (0..validators).map(|_| None).collect(),
            clients,
            chain_id: chain_id.into(),
        }
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

    /// Starts `tally start` for node `i`, appending to its log file.
    pub fn spawn(&mut self, i: usize) {
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
        while self.clients[i].status().await.is_err() {
            assert!(Instant::now() < deadline, "node{i}'s RPC never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn height(&self, i: usize) -> Option<u64> {
        self.clients[i]
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
