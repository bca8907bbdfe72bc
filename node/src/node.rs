//! A running node: store, network, consensus driver and metrics, wired
//! together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use libp2p::Multiaddr;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::info;

use tally_ledger::store::Store;

use crate::driver::{Driver, DriverSetup};
use crate::home::NodeHome;
use crate::mempool::MempoolLimits;
use crate::metrics::Metrics;
use crate::network::{parse_peer_addr, NetEvent, Network, NetworkSetup};

pub use crate::handle::{NodeHandle, NodeStopped};

/// Requests queued to the driver before callers wait.
const REQUEST_QUEUE: usize = 1024;

/// Addresses to use instead of the configured ones (tests pass port 0).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub p2p_listen: Option<Multiaddr>,
    pub rpc_listen: Option<SocketAddr>,
}

impl Overrides {
    /// Every listener on 127.0.0.1 with a port the OS picks.
    pub fn ephemeral() -> Self {
        Overrides {
            p2p_listen: "/ip4/127.0.0.1/tcp/0".parse().ok(),
            rpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        }
    }
}

/// A started node: its handle, where it listens, and its tasks.
#[derive(Debug)]
pub struct RunningNode {
    pub handle: NodeHandle,
    pub p2p_addr: Multiaddr,
    pub rpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    rpc: jsonrpsee::server::ServerHandle,
    shutdown: watch::Sender<bool>,
    driver: JoinHandle<anyhow::Result<()>>,
    network: JoinHandle<()>,
    extra: Vec<JoinHandle<()>>,
}

/// Starts a node from a loaded home.
pub async fn start(home: &NodeHome, overrides: Overrides) -> anyhow::Result<RunningNode> {
    let store = Arc::new(
        Store::open(&home.data_dir(), &home.genesis).with_context(|| {
            format!("cannot open the database in {}", home.data_dir().display())
        })?,
    );
    info!(
        moniker = %home.config.moniker,
        chain = %home.genesis.chain_id,
        height = store.height(),
        "database opened"
    );
    let metrics = Metrics::new();
    metrics.height.set(store.height() as i64);

    let listen: Multiaddr = match overrides.p2p_listen {
        Some(a) => a,
        None => home.config.p2p.listen.parse().with_context(|| {
            format!(
                "p2p.listen = {:?} is not a multiaddress",
                home.config.p2p.listen
            )
        })?,
    };
    let persistent_peers = home
        .config
        .p2p
        .persistent_peers
        .iter()
        .map(|s| parse_peer_addr(s).map_err(|e| anyhow::anyhow!("p2p.persistent_peers: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let setup = NetworkSetup {
        node_key_seed: home.node_key.seed(),
        listen: listen.clone(),
        persistent_peers,
        max_connections: home.config.p2p.max_connections,
        idle_timeout: Duration::from_millis(home.config.p2p.idle_timeout_ms),
    };
    let (network, net_tx, mut net_rx) =
        Network::new(setup, &home.genesis, store.clone(), metrics.clone())?;
    let peer_id = network.local_peer_id();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let network_task = tokio::spawn(network.run(shutdown_rx.clone()));

    // The first event is the listen address (or an error closes the channel).
    let p2p_addr = loop {
        match tokio::time::timeout(Duration::from_secs(10), net_rx.recv()).await {
            Ok(Some(NetEvent::Listening(a))) => break a,
            Ok(Some(_)) => continue,
            Ok(None) => anyhow::bail!("the network stopped before listening on {listen}"),
            Err(_) => anyhow::bail!("the network did not start listening on {listen} within 10 s"),
        }
    };

    let mut extra = Vec::new();
    let metrics_addr = match &home.config.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            let bound = listener.local_addr()?;
            extra.push(tokio::spawn(crate::metrics::serve(
                listener,
                metrics.clone(),
            )));
            info!(addr = %bound, "serving metrics on /metrics");
            Some(bound)
        }
        None => None,
    };

    let (commits, _) = broadcast::channel(1024);
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    let driver = Driver::new(
        DriverSetup {
            genesis: home.genesis.clone(),
            store: store.clone(),
            validator_key: home
                .validator_key
                .as_ref()
                .map(|k| tally_ledger::Keypair::from_seed(k.seed())),
            mempool: MempoolLimits {
                max_txs: home.config.mempool.max_txs as usize,
                max_bytes: home.config.mempool.max_bytes,
                future_nonce_window: home.config.mempool.future_nonce_window,
            },
            empty_block_interval: Duration::from_millis(
                home.config.consensus.empty_block_interval_ms,
            ),
            metrics: metrics.clone(),
        },
        net_tx.clone(),
        commits.clone(),
    )?;
    let driver_task = tokio::spawn(async move {
        driver
            .run(net_rx, requests_rx, shutdown_rx)
            .await
            .map_err(anyhow::Error::from)
    });
    let handle = NodeHandle {
        requests: requests_tx,
        commits,
        net: net_tx,
        store,
        genesis: Arc::new(home.genesis.clone()),
        peer_id,
        metrics,
    };
    let rpc_listen = match overrides.rpc_listen {
        Some(a) => a,
        None => home.config.rpc.listen.parse().with_context(|| {
            format!("rpc.listen = {:?} is not host:port", home.config.rpc.listen)
        })?,
    };
    let settings = tally_rpc::server::RpcSettings {
        listen: rpc_listen,
        max_body_bytes: home.config.rpc.max_body_bytes,
        max_connections: home.config.rpc.max_connections,
        max_subscriptions_per_connection: home.config.rpc.max_subscriptions_per_connection,
        max_batch_len: home.config.rpc.max_batch_len,
        cors_origins: home.config.rpc.cors_origins.clone(),
        auth_token: home.config.rpc.auth_token.clone(),
    };
    let backend = crate::rpc_backend::NodeBackend::new(handle.clone(), home.config.role);
    let (rpc_addr, rpc) = tally_rpc::server::start(&settings, backend).await?;
    info!(peer_id = %peer_id, p2p = %p2p_addr, rpc = %rpc_addr, role = ?home.config.role, "node started");
    Ok(RunningNode {
        handle,
        rpc_addr,
        rpc,
        p2p_addr,
        metrics_addr,
        shutdown: shutdown_tx,
        driver: driver_task,
        network: network_task,
        extra,
    })
}

impl RunningNode {
    /// Makes `self` and `other` dial each other (nodes on OS-chosen ports).
    pub async fn link(&self, other: &RunningNode) {
        self.handle
            .add_peer(other.handle.peer_id, other.p2p_addr.clone())
            .await;
        other
            .handle
            .add_peer(self.handle.peer_id, self.p2p_addr.clone())
            .await;
    }

    /// Stops consensus, then the network, and waits for both. The database
    /// closes when the last handle is dropped (this one is dropped here;
    /// callers drop their clones).
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let RunningNode {
            handle,
            network,
            extra,
            driver,
            rpc,
            ..
        } = self;
        let _ = rpc.stop();
        rpc.stopped().await;
        let driver_result = driver.await.context("the consensus task panicked")?;
        drop(handle);
        for t in extra {
            t.abort();
        }
        network.await.context("the network task panicked")?;
        driver_result
    }

    /// Waits until the node stops by itself (a fatal error).
    pub async fn wait(&mut self) -> anyhow::Result<()> {
        (&mut self.driver)
            .await
            .context("the consensus task panicked")?
    }
}
