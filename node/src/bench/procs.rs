//! The network `tally bench load` starts for itself when given no `--rpc`:
//! a generated testnet of real `tally start` processes on 127.0.0.1, every
//! listener on a port the OS picks. Each node's addresses come from its
//! "node started" log line; each starts with the nodes already running as
//! its persistent peers. The processes are killed when the network is
//! dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::config::NodeConfig;
use crate::testnet::{generate, TestnetSpec};

/// How long a node may take to print its "node started" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// What to start.
#[derive(Debug, Clone)]
pub struct NetSpec {
    pub validators: usize,
    pub replicas: usize,
    /// Funded sender accounts.
    pub accounts: usize,
    /// `tally start --threads` for every node.
    pub threads: Option<usize>,
    /// `consensus.block_fill_min_txs` and `block_fill_wait_ms` for every
    /// node (default: the config's defaults).
    pub block_fill: Option<(u32, u64)>,
}

/// One started node.
#[derive(Debug, Clone)]
pub struct StartedNode {
    pub name: String,
    pub rpc_url: String,
    pub metrics: String,
    /// Its P2P address with `/p2p/<PeerId>`.
    pub p2p: String,
}

/// The running processes and their folder.
#[derive(Debug)]
pub struct BenchNet {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    pub validators: Vec<StartedNode>,
    pub replicas: Vec<StartedNode>,
}

impl BenchNet {
    /// Generates the testnet in a temporary folder and starts every node
    /// with `binary` (this program).
    pub fn start(binary: &Path, spec: &NetSpec) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("tally-bench-").tempdir()?;
        let net = dir.path().join("net");
        generate(
            &TestnetSpec {
                chain_id: "tally-bench".into(),
                validators: spec.validators,
                replicas: spec.replicas,
                accounts: spec.accounts,
                base_port: 20000,
            },
            &net,
        )?;
        let mut this = BenchNet {
            dir,
            children: Vec::new(),
            validators: Vec::new(),
            replicas: Vec::new(),
        };
        let names = (0..spec.validators)
            .map(|i| (format!("node{i}"), true))
            .chain((0..spec.replicas).map(|i| (format!("replica{i}"), false)));
        for (name, validator) in names {
            let node = this.spawn(binary, &name, spec)?;
            eprintln!(
                "  started {name}: rpc {}  metrics {}",
                node.rpc_url, node.metrics
            );
            if validator {
                this.validators.push(node);
            } else {
                this.replicas.push(node);
            }
        }
        Ok(this)
    }

    /// The testnet's accounts folder (`user*.pem`).
    pub fn accounts(&self) -> PathBuf {
        self.dir.path().join("net").join("accounts")
    }

    /// Every node, validators first.
    pub fn nodes(&self) -> impl Iterator<Item = &StartedNode> {
        self.validators.iter().chain(&self.replicas)
    }

    fn spawn(&mut self, binary: &Path, name: &str, spec: &NetSpec) -> anyhow::Result<StartedNode> {
        let home = self.dir.path().join("net").join(name);
        let path = home.join("config.toml");
        let mut config = NodeConfig::load(&path)?;
        config.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
        config.rpc.listen = "127.0.0.1:0".into();
        config.metrics.listen = Some("127.0.0.1:0".into());
        config.p2p.persistent_peers = self.nodes().map(|n| n.p2p.clone()).collect();
        if let Some((min_txs, wait_ms)) = spec.block_fill {
            config.consensus.block_fill_min_txs = min_txs;
            config.consensus.block_fill_wait_ms = wait_ms;
        }
        std::fs::write(&path, config.to_toml())
            .with_context(|| format!("cannot write {}", path.display()))?;
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("start")
            .arg("--home")
            .arg(&home)
            .args(["--log-format", "json"]);
        if let Some(t) = spec.threads {
            command.arg("--threads").arg(t.to_string());
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        self.children.push(child);
        let index = self.children.len() - 1;
        started_line(&log_path, &mut self.children[index], name)
    }
}

impl Drop for BenchNet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits for the "node started" line in `log` and reads the addresses the
/// node bound from it.
fn started_line(log: &Path, child: &mut Child, name: &str) -> anyhow::Result<StartedNode> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let f = &v["fields"];
            if f["message"] != "node started" {
                continue;
            }
            let get = |k: &str| f[k].as_str().map(str::to_string);
            if let (Some(p2p), Some(rpc), Some(metrics), Some(peer)) =
                (get("p2p"), get("rpc"), get("metrics"), get("peer_id"))
            {
                return Ok(StartedNode {
                    name: name.to_string(),
                    rpc_url: format!("http://{rpc}"),
                    metrics,
                    p2p: format!("{p2p}/p2p/{peer}"),
                });
            }
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{name} exited ({status}) before starting; its log ({}):\n{text}",
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{name} did not start within {START_TIMEOUT:?}; its log is {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
