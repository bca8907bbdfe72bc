//! A testnet of real `tally start` processes whose every peer link runs
//! through a [`FaultProxy`]: node `a` dials node `b` at the address of the
//! proxy `(a, b)`, which relays to wherever `b` listens now. Cutting,
//! slowing or black-holing that proxy is a fault on the link; the nodes
//! see nothing but real libp2p over real sockets.
//!
//! Each node binds port 0 for P2P and RPC (the OS picks); its addresses
//! come from its "node started" log line, and the proxies towards it are
//! re-routed on every start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use tally_ledger::genesis::Genesis;
use tally_node::config::NodeConfig;
use tally_node::testnet::{generate, TestnetSpec};
use tally_rpc::LedgerApiClient;

use crate::proxy::{FaultProxy, Faults, LinkState};

/// How long a node may take to print "node started", or to exit after
/// SIGTERM.
const START_STOP_LIMIT: Duration = Duration::from_secs(60);
/// A client's wait for one RPC answer (a paused node never answers).
const RPC_TIMEOUT: Duration = Duration::from_secs(3);

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub chain_id: String,
    pub validators: usize,
    pub replicas: usize,
    /// Funded accounts (`user0.pem`…) for the load.
    pub accounts: usize,
    /// More funded accounts after those, for a scenario's own use.
    pub extra_accounts: usize,
    /// Applied to every node's config before its first start.
    pub config: fn(&mut NodeConfig),
    /// Validators that get a twin (see [`Twin`]).
    pub twins: Vec<Twin>,
    /// Nodes that run another binary than `tally` (one that takes the same
    /// `start` arguments), such as the Byzantine validator.
    pub binaries: Vec<(usize, PathBuf)>,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        Self {
            chain_id: "tally-faults".into(),
            validators: 4,
            replicas: 1,
            accounts: 8,
            extra_accounts: 0,
            config: |_| {},
            twins: Vec::new(),
            binaries: Vec::new(),
        }
    }
}

/// A twin of validator `of`: one more node (after the replicas) started
/// from a copy of the validator's home, keys and all, so with the same
/// PeerId. It dials only `peers`, and the links between the validator and
/// `peers` stay cut for the whole run (healing leaves them cut): no node
/// holds connections to both twins, since gossip would reach only one of
/// them, and each twin's messages reach the other side through relays.
#[derive(Debug, Clone)]
pub struct Twin {
    pub of: usize,
    pub peers: Vec<usize>,
}

/// Whether a node's process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Down,
    Running,
    /// SIGSTOP: the process exists but runs nothing.
    Paused,
}

/// One node of the cluster.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub home: PathBuf,
    pub log: PathBuf,
    /// Its validator index, if it has a validator key.
    pub validator: Option<u32>,
    pub peer_id: String,
    /// The validator whose twin it is (see [`ClusterSpec::twins`]).
    pub twin_of: Option<usize>,
    /// What it runs instead of `tally`.
    binary: Option<PathBuf>,
    child: Option<Child>,
    paused: bool,
    /// The RPC address of its latest start.
    pub rpc: Option<String>,
}

impl Node {
    pub fn run(&self) -> Run {
        match (&self.child, self.paused) {
            (None, _) => Run::Down,
            (Some(_), false) => Run::Running,
            (Some(_), true) => Run::Paused,
        }
    }
}

/// The processes, their proxies and their folder. Dropping it kills every
/// process; if the thread is panicking (a failed scenario), the folder
/// with every node's log and data is kept and its path printed.
#[derive(Debug)]
pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    pub genesis: Genesis,
    pub nodes: Vec<Node>,
    /// `(a, b)`: the proxy node `a` dials to reach node `b`.
    links: BTreeMap<(usize, usize), FaultProxy>,
    /// Pairs kept apart for the whole run (see [`Twin`]).
    separated: Vec<(usize, usize)>,
    clients: Clients,
    binary: PathBuf,
    /// Size-limited file systems mounted under the folder (see `disk`).
    pub(super) mounts: Vec<PathBuf>,
}

/// Each node's RPC client from its latest start (`None` while it is down),
/// shared with the load so that it follows restarts.
pub type Clients = Arc<RwLock<Vec<Option<HttpClient>>>>;

/// The `tally` binary next to this test executable (`target/<profile>/`),
/// or `TALLY_BIN`.
pub fn tally_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TALLY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> → target/<profile>/tally
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("tally"))
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "no tally binary at {}: build it first (cargo build --release -p tally-node) \
         or set TALLY_BIN",
        path.display()
    );
    path
}

impl Cluster {
    /// Generates the testnet (ports from the OS, short consensus timeouts,
    /// an empty block at least every 100 ms) with `genesis_edit` applied,
    /// and a proxy for every ordered pair of nodes. Nothing runs yet.
    pub async fn create(spec: &ClusterSpec, genesis_edit: impl Fn(&mut Genesis)) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tally-faults-")
            .tempdir()
            .expect("temp dir");
        let net = dir.path().join("net");
        let mut genesis = generate(
            &TestnetSpec {
                chain_id: spec.chain_id.clone(),
                validators: spec.validators,
                replicas: spec.replicas,
                accounts: spec.accounts + spec.extra_accounts,
                base_port: 20000,
            },
            &net,
        )
        .expect("testnet generates");
        genesis.params.timeout_propose_ms = 400;
        genesis.params.timeout_delta_ms = 200;
        genesis_edit(&mut genesis);
        std::fs::write(net.join("genesis.json"), genesis.to_json()).expect("write genesis");

        let mut nodes = Vec::new();
        for (i, v) in genesis.validators.iter().enumerate() {
            nodes.push((format!("node{i}"), Some(i as u32), v.peer_id.clone(), None));
        }
        for (i, r) in genesis.replicas.iter().enumerate() {
            nodes.push((format!("replica{i}"), None, r.peer_id.clone(), None));
        }
        let mut separated = Vec::new();
        let members = nodes.len();
        for twin in &spec.twins {
            let v = twin.of;
            assert!(v < genesis.validators.len(), "a twin of a non-validator");
            assert!(
                twin.peers.iter().all(|&p| p != v && p < members),
                "a twin's peers are other members"
            );
            let name = format!("node{v}-twin");
            copy_tree(&net.join(&nodes[v].0), &net.join(&name));
            let peer = nodes[v].2.clone();
            nodes.push((name, Some(v as u32), peer, Some(v)));
            separated.extend(twin.peers.iter().map(|&p| (v, p)));
        }
        let n = nodes.len();
        // Whom node `a` dials: a twin its peers; any other node every other
        // node but the twins.
        let dials: Vec<Vec<usize>> = (0..n)
            .map(
                |a| match spec.twins.get(a.wrapping_sub(n - spec.twins.len())) {
                    Some(twin) => twin.peers.clone(),
                    None => (0..n).filter(|&b| b != a && nodes[b].3.is_none()).collect(),
                },
            )
            .collect();
        let mut links = BTreeMap::new();
        for a in 0..n {
            for b in (0..n).filter(|b| *b != a) {
                let proxy = FaultProxy::unrouted().await.expect("proxy binds");
                links.insert((a, b), proxy);
            }
        }
        let nodes: Vec<Node> = nodes
            .into_iter()
            .enumerate()
            .map(|(a, (name, validator, peer_id, twin_of))| {
                let home = net.join(&name);
                std::fs::write(home.join("genesis.json"), genesis.to_json())
                    .expect("write genesis");
                let path = home.join("config.toml");
                let mut c = NodeConfig::load(&path).expect("config loads");
                c.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
                c.rpc.listen = "127.0.0.1:0".into();
                c.consensus.empty_block_interval_ms = 100;
                (spec.config)(&mut c);
                c.p2p.persistent_peers = dials[a]
                    .iter()
                    .map(|&b| {
                        let proxy = &links[&(a, b)];
                        format!(
                            "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                            proxy.addr().port(),
                            nodes_peer(&genesis, b)
                        )
                    })
                    .collect();
                std::fs::write(&path, c.to_toml()).expect("write config");
                Node {
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    home,
                    validator,
                    peer_id,
                    twin_of,
                    binary: spec
                        .binaries
                        .iter()
                        .find(|(i, _)| *i == a)
                        .map(|(_, b)| b.clone()),
                    child: None,
                    paused: false,
                    rpc: None,
                }
            })
            .collect();
        let cluster = Self {
            dir: Some(dir),
            genesis,
            nodes,
            links,
            separated,
            clients: Arc::new(RwLock::new(vec![None; n])),
            binary: tally_binary(),
            mounts: Vec::new(),
        };
        cluster.keep_separated();
        cluster
    }

    /// The `tally` binary the nodes run.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The folder holding `net/` (homes) and the nodes' logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    pub fn accounts(&self) -> PathBuf {
        self.dir().join("net").join("accounts")
    }

    pub fn validators(&self) -> usize {
        self.genesis.validators.len()
    }

    /// Node `i`'s RPC client from its latest start, while it is up.
    pub fn client(&self, i: usize) -> Option<HttpClient> {
        self.clients.read().unwrap_or_else(|p| p.into_inner())[i].clone()
    }

    /// Every node's client, following restarts.
    pub fn clients(&self) -> Clients {
        self.clients.clone()
    }

    fn set_client(&self, i: usize, client: Option<HttpClient>) {
        self.clients.write().unwrap_or_else(|p| p.into_inner())[i] = client;
    }

    /// Starts node `i` and waits for its "node started" line; routes every
    /// proxy towards it to the address it bound.
    pub async fn start(&mut self, i: usize) {
        self.assert_down(i);
        let node = &self.nodes[i];
        let binary = node.binary.as_ref().unwrap_or(&self.binary);
        let (child, started) = launch(binary, &node.name, &node.home, &node.log).await;
        self.started(i, child, started);
    }

    /// Panics unless node `i` is down (for what needs its process gone).
    pub(super) fn assert_down(&self, i: usize) {
        assert_eq!(
            self.nodes[i].run(),
            Run::Down,
            "{} runs",
            self.nodes[i].name
        );
    }

    /// Node `i` runs as `child`: routes the proxies towards it.
    fn started(&mut self, i: usize, child: Child, started: Started) {
        self.nodes[i].child = Some(child);
        for ((_, b), proxy) in &self.links {
            if *b == i {
                proxy.set_target(started.p2p);
            }
        }
        self.nodes[i].rpc = Some(started.rpc);
        self.set_client(i, Some(started.client));
    }

    /// Starts node `i`, which may refuse: `None` if it started (as
    /// [`Cluster::start`]), or what it logged if it exited with a failure
    /// status before starting.
    pub async fn start_or_refusal(&mut self, i: usize) -> Option<String> {
        self.assert_down(i);
        let node = &self.nodes[i];
        let binary = node.binary.as_ref().unwrap_or(&self.binary);
        match try_launch(binary, &node.home, &node.log).await {
            Ok((child, started)) => {
                self.started(i, child, started);
                None
            }
            Err((Some(status), log)) => {
                assert!(!status.success(), "{} refused with status 0", node.name);
                Some(log)
            }
            Err((None, log)) => panic!("{} neither started nor exited:\n{log}", node.name),
        }
    }

    fn data(&self, i: usize) -> PathBuf {
        self.assert_down(i);
        self.nodes[i].home.join("data")
    }

    fn backup_of(&self, i: usize) -> PathBuf {
        self.dir().join("backups").join(&self.nodes[i].name)
    }

    /// Copies node `i`'s database (store and signer state) aside; the node
    /// is down.
    pub fn backup(&self, i: usize) {
        let to = self.backup_of(i);
        let _ = std::fs::remove_dir_all(&to);
        copy_tree(&self.data(i), &to);
    }

    /// Puts node `i`'s backup in place of its database; the node is down.
    pub fn restore(&self, i: usize) {
        let data = self.data(i);
        std::fs::remove_dir_all(&data).expect("remove data");
        copy_tree(&self.backup_of(i), &data);
    }

    /// Removes node `i`'s database (a replica rebuilt from its peers).
    pub fn wipe(&self, i: usize) {
        std::fs::remove_dir_all(self.data(i)).expect("remove data");
    }

    /// Cuts the last `bytes` off node `i`'s newest RocksDB write-ahead log
    /// (a torn tail); returns the file and how much was cut.
    pub fn truncate_wal(&self, i: usize, bytes: u64) -> (PathBuf, u64) {
        let newest = std::fs::read_dir(self.data(i))
            .expect("read data")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .max()
            .expect("a non-empty write-ahead log");
        let len = std::fs::metadata(&newest).expect("wal").len();
        let cut = bytes.min(len);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&newest)
            .expect("open wal");
        file.set_len(len - cut).expect("truncate wal");
        (newest, cut)
    }

    /// Changes node `i`'s config file (applies at its next start).
    pub fn configure(&self, i: usize, edit: impl FnOnce(&mut NodeConfig)) {
        let path = self.nodes[i].home.join("config.toml");
        let mut config = NodeConfig::load(&path).expect("config loads");
        edit(&mut config);
        std::fs::write(&path, config.to_toml()).expect("write config");
    }

    /// Each validator's P2P address through a proxy towards it, with its
    /// PeerId: where an outsider would dial.
    pub fn validator_addrs(&self) -> Vec<String> {
        (0..self.validators())
            .map(|b| {
                let a = (b + 1) % self.nodes.len();
                format!(
                    "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                    self.link(a, b).addr().port(),
                    self.nodes[b].peer_id
                )
            })
            .collect()
    }

    pub async fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.start(i).await;
        }
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nodes[i].paused = false;
        self.set_client(i, None);
    }

    /// SIGTERM, then waits for the exit; the status it exited with.
    pub async fn terminate(&mut self, i: usize) -> ExitStatus {
        self.set_client(i, None);
        let node = &mut self.nodes[i];
        let mut child = node.child.take().expect("the node runs");
        if node.paused {
            signal(&child, "-CONT");
            node.paused = false;
        }
        signal(&child, "-TERM");
        let deadline = Instant::now() + START_STOP_LIMIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "{} did not exit within {START_STOP_LIMIT:?} of SIGTERM",
                    node.name
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for node `i` to exit by itself; its status and the log it
    /// wrote. Panics if it still runs after `limit`.
    pub async fn exited(&mut self, i: usize, limit: Duration) -> (ExitStatus, String) {
        let deadline = Instant::now() + limit;
        let node = &mut self.nodes[i];
        let child = node.child.as_mut().expect("the node runs");
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                node.child = None;
                self.set_client(i, None);
                let log = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
                return (status, log);
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs after {limit:?}",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory and open descriptors of every running node's
    /// process (from /proc).
    pub fn usage(&self) -> Vec<Usage> {
        let mut out = Vec::new();
        for (node, n) in self.nodes.iter().enumerate() {
            let Some(child) = &n.child else { continue };
            let pid = child.id();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss_kb = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
            out.push(Usage {
                node,
                pid,
                rss_kb,
                fds,
            });
        }
        out
    }

    /// SIGSTOP: the process freezes; its sockets stay open.
    pub fn pause(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        signal(node.child.as_ref().expect("the node runs"), "-STOP");
        node.paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        signal(node.child.as_ref().expect("the node runs"), "-CONT");
        node.paused = false;
    }

    /// The proxy node `a` dials to reach node `b`.
    pub fn link(&self, a: usize, b: usize) -> &FaultProxy {
        &self.links[&(a, b)]
    }

    /// Cuts every link between nodes of different groups and heals every
    /// link within a group. A node in no group is with the first.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let group_of = |n: usize| groups.iter().position(|g| g.contains(&n)).unwrap_or(0);
        for ((a, b), proxy) in &self.links {
            proxy.set_cut(group_of(*a) != group_of(*b) || self.separated(*a, *b));
        }
    }

    /// Whether `a` and `b` are kept apart for the whole run.
    fn separated(&self, a: usize, b: usize) -> bool {
        self.separated.contains(&(a, b)) || self.separated.contains(&(b, a))
    }

    /// Cuts the pairs kept apart for the whole run.
    fn keep_separated(&self) {
        for &(a, b) in &self.separated {
            self.link(a, b).set_cut(true);
            self.link(b, a).set_cut(true);
        }
    }

    /// Cuts (or heals) both directions between `a` and `b`.
    pub fn cut_pair(&self, a: usize, b: usize, cut: bool) {
        let cut = cut || self.separated(a, b);
        self.link(a, b).set_cut(cut);
        self.link(b, a).set_cut(cut);
    }

    /// The same faults on every link, both ways, nothing cut.
    pub fn slow_links(&self, faults: Faults) {
        for ((a, b), proxy) in &self.links {
            proxy.set(LinkState {
                forward: faults,
                backward: faults,
                cut: self.separated(*a, *b),
            });
        }
    }

    /// Every link back to normal.
    pub fn heal(&self) {
        for ((a, b), proxy) in &self.links {
            if self.separated(*a, *b) {
                proxy.set_cut(true);
            } else {
                proxy.heal();
            }
        }
    }

    /// Node `i`'s committed height, if it answers.
    pub async fn height(&self, i: usize) -> Option<u64> {
        let status = self.client(i)?.status().await.ok()?;
        Some(status.latest_height.0)
    }

    /// The heights of the running nodes that answer.
    pub async fn heights(&self) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        for i in 0..self.nodes.len() {
            if self.nodes[i].run() == Run::Running {
                if let Some(h) = self.height(i).await {
                    out.push((i, h));
                }
            }
        }
        out
    }

    /// Waits until every node in `nodes` has committed `height`; panics
    /// after `limit`.
    pub async fn wait_height(&self, nodes: &[usize], height: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        for &i in nodes {
            while self.height(i).await.unwrap_or(0) < height {
                assert!(
                    Instant::now() < deadline,
                    "{} did not reach height {height} within {limit:?}",
                    self.nodes[i].name
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One process's resources at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub node: usize,
    pub pid: u32,
    pub rss_kb: u64,
    pub fds: usize,
}

/// What a started node printed in its "node started" line.
#[derive(Debug)]
pub struct Started {
    pub p2p: SocketAddr,
    /// The RPC server's address (HTTP and WebSocket on one port).
    pub rpc: String,
    pub client: HttpClient,
}

/// Runs `tally start --home home`, its log appended to `log`, and waits
/// for its "node started" line.
pub async fn launch(binary: &Path, name: &str, home: &Path, log: &Path) -> (Child, Started) {
    match try_launch(binary, home, log).await {
        Ok(started) => started,
        Err((Some(status), new)) => panic!("{name} exited ({status}) before starting:\n{new}"),
        Err((None, new)) => panic!("{name} did not start within {START_STOP_LIMIT:?}:\n{new}"),
    }
}

/// How a start went wrong: the exit status if it exited (`None`: it hung
/// and was killed), and what it logged.
type Refusal = (Option<ExitStatus>, String);

async fn try_launch(binary: &Path, home: &Path, log: &Path) -> Result<(Child, Started), Refusal> {
    let seen = std::fs::metadata(log).map_or(0, |m| m.len());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log");
    let mut child = Command::new(binary)
        .arg("start")
        .arg("--home")
        .arg(home)
        .args(["--log-format", "json"])
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("tally start runs");
    let deadline = Instant::now() + START_STOP_LIMIT;
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        let new = String::from_utf8_lossy(&text[(seen as usize).min(text.len())..]).to_string();
        if let Some((p2p, rpc)) = started_line(&new) {
            let client = HttpClientBuilder::default()
                .request_timeout(RPC_TIMEOUT)
                .build(format!("http://{rpc}"))
                .expect("rpc client");
            return Ok((child, Started { p2p, rpc, client }));
        }
        if let Some(status) = child.try_wait().ok().flatten() {
            // Whatever it wrote before exiting.
            let text = std::fs::read(log).unwrap_or_default();
            let new = String::from_utf8_lossy(&text[(seen as usize).min(text.len())..]);
            return Err((Some(status), new.to_string()));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err((None, new));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The P2P socket address and RPC address of a "node started" line.
fn started_line(log: &str) -> Option<(SocketAddr, String)> {
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let f = &v["fields"];
        if f["message"] != "node started" {
            continue;
        }
        let p2p = f["p2p"].as_str()?;
        let port: u16 = p2p.rsplit('/').next()?.parse().ok()?;
        let rpc = f["rpc"].as_str()?.to_string();
        return Some((SocketAddr::from(([127, 0, 0, 1], port)), rpc));
    }
    None
}

/// Copies a folder of files (a RocksDB directory has no subfolders).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy file");
        }
    }
}

fn nodes_peer(genesis: &Genesis, i: usize) -> String {
    match genesis.validators.get(i) {
        Some(v) => v.peer_id.clone(),
        None => genesis.replicas[i - genesis.validators.len()]
            .peer_id
            .clone(),
    }
}

/// Sends `sig` (such as "-STOP") to the process.
fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {sig} {} failed", child.id());
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            // Kept, mounts too, so that a full disk's database can be read.
            if let Some(dir) = self.dir.take() {
                let path = dir.keep();
                eprintln!(
                    "the failed scenario's logs and data folders are kept in {}",
                    path.display()
                );
                for mount in &self.mounts {
                    eprintln!(
                        "  (a tmpfs is mounted at {}; umount it after)",
                        mount.display()
                    );
                }
            }
        } else {
            for mount in &self.mounts {
                let _ = Command::new("umount").arg("-l").arg(mount).status();
            }
        }
    }
}
