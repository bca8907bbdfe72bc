//! A running node: store, network, consensus driver, RPC server and
//! metrics, wired together and stopped together. Each runs as a task the
//! node cannot do without: if one ends before the node is stopped, the node
//! has failed, and [`RunningNode::wait`] says which task died and why.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context;
use libp2p::Multiaddr;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tracing::{error, info};

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
    /// Rewrites the consensus messages the node publishes (a Byzantine
    /// validator in the fault suite).
    #[cfg(feature = "byzantine")]
    pub consensus_tap: Option<crate::tap::ConsensusTap>,
}

impl Overrides {
    /// Every listener on 127.0.0.1 with a port the OS picks.
    pub fn ephemeral() -> Self {
        Overrides {
            p2p_listen: "/ip4/127.0.0.1/tcp/0".parse().ok(),
            rpc_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Overrides::default()
        }
    }
}

/// The names a node's tasks are reported under.
pub const CONSENSUS_TASK: &str = "consensus";
pub const NETWORK_TASK: &str = "network";
pub const RPC_TASK: &str = "rpc server";
pub const METRICS_TASK: &str = "metrics server";
pub const EXPLORER_TASK: &str = "explorer server";
#[cfg(feature = "byzantine")]
pub const TAP_TASK: &str = "consensus tap";

/// A node task ended while the node was running: the node has failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task died: {reason}")]
pub struct TaskDied {
    pub task: &'static str,
    pub reason: String,
}

impl TaskDied {
    fn new(task: &'static str, ended: Result<anyhow::Result<()>, JoinError>) -> Self {
        let reason = match ended {
            Ok(Ok(())) => "it ended without being asked to stop".to_string(),
            Ok(Err(e)) => crate::error_chain(&e),
            Err(e) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_string());
                format!("it panicked: {message}")
            }
            Err(_) => "it was cancelled".to_string(),
        };
        TaskDied { task, reason }
    }
}

/// The node's long-running tasks, each under the name its death is
/// reported with.
#[derive(Debug, Default)]
struct Tasks(Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>);

impl Tasks {
    fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.0.push((name, tokio::spawn(task)));
    }

    fn take(&mut self, name: &str) -> Option<JoinHandle<anyhow::Result<()>>> {
        let i = self.0.iter().position(|(n, _)| *n == name)?;
        Some(self.0.remove(i).1)
    }

    /// Waits for the first task to end and removes it. Cancel-safe: a task
    /// is removed only once it has ended. With no tasks, never returns.
    async fn first_to_end(&mut self) -> TaskDied {
        std::future::poll_fn(|cx| {
            for i in 0..self.0.len() {
                if let Poll::Ready(ended) = Pin::new(&mut self.0[i].1).poll(cx) {
                    let (task, _) = self.0.remove(i);
                    return Poll::Ready(TaskDied::new(task, ended));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// A started node: its handle, where it listens, and its tasks.
#[derive(Debug)]
pub struct RunningNode {
    pub handle: NodeHandle,
    pub p2p_addr: Multiaddr,
    pub rpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    /// The explorer's own address, when it is not on the RPC port.
    pub explorer_addr: Option<SocketAddr>,
    rpc: jsonrpsee::server::ServerHandle,
    shutdown: watch::Sender<bool>,
    tasks: Tasks,
}

/// Commit notifications kept for receivers that fall behind.
const COMMITS_KEPT: usize = 64;

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
    let metrics = Metrics::new()
        .with_refusal_kinds(&crate::mempool::REFUSAL_KINDS)
        .with_refusal_kinds(&["nonce_gap_expired"]);
    metrics.watch_disk(home.data_dir());
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
    // Submitted and gossiped batches' signatures, checked together.
    let sig_checks =
        crate::sig_checks::SigChecks::new(home.genesis.chain_id.clone(), crate::cores())
            .context("cannot start the signature checker threads")?;
    let setup = NetworkSetup {
        node_key_seed: home.node_key.seed(),
        listen: listen.clone(),
        persistent_peers,
        max_connections: home.config.p2p.max_connections,
        idle_timeout: Duration::from_millis(home.config.p2p.idle_timeout_ms),
        sig_checks: sig_checks.clone(),
    };
    let (network, net_tx, mut net_rx) =
        Network::new(setup, &home.genesis, store.clone(), metrics.clone())?;
    let peer_id = network.local_peer_id();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Tasks::default();
    let network_shutdown = shutdown_rx.clone();
    tasks.spawn(NETWORK_TASK, async move {
        network.run(network_shutdown).await;
        Ok(())
    });

    // The first event is the listen address (or an error closes the channel).
    let p2p_addr = loop {
        match tokio::time::timeout(Duration::from_secs(10), net_rx.recv()).await {
            Ok(Some(NetEvent::Listening(a))) => break a,
            Ok(Some(_)) => continue,
            Ok(None) => anyhow::bail!("the network stopped before listening on {listen}"),
            Err(_) => anyhow::bail!("the network did not start listening on {listen} within 10 s"),
        }
    };

    let metrics_addr = match &home.config.metrics.listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            let bound = listener.local_addr()?;
            let metrics = metrics.clone();
            tasks.spawn(METRICS_TASK, async move {
                crate::metrics::serve(listener, metrics).await;
                Ok(())
            });
            info!(addr = %bound, "serving metrics on /metrics");
            Some(bound)
        }
        None => None,
    };

    // A broadcast channel keeps its last `capacity` values whether or not
    // anyone still reads them, and each holds a block's transaction hashes
    // (320 KB for a 10,000-transaction block): 1,024 of them grew a node by
    // hundreds of MB over a long run. Every receiver handles falling behind.
    let (commits, _) = broadcast::channel(COMMITS_KEPT);
    let (requests_tx, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    #[cfg(feature = "byzantine")]
    let driver_net = match &overrides.consensus_tap {
        Some(tap) => {
            let (tx, rx) = mpsc::channel(crate::network::EVENT_QUEUE);
            tasks.spawn(TAP_TASK, crate::tap::run(tap.clone(), rx, net_tx.clone()));
            tx
        }
        None => net_tx.clone(),
    };
    #[cfg(not(feature = "byzantine"))]
    let driver_net = net_tx.clone();
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
            fill: crate::node_core::BlockFill {
                min_txs: home.config.consensus.block_fill_min_txs as usize,
                wait_ms: home.config.consensus.block_fill_wait_ms,
            },
            clock_offset_ms: home.config.consensus.clock_offset_ms,
            metrics: metrics.clone(),
        },
        driver_net,
        commits.clone(),
    )?;
    tasks.spawn(CONSENSUS_TASK, async move {
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
        sig_checks,
    };
    let rpc_listen = match overrides.rpc_listen {
        Some(a) => a,
        None => home.config.rpc.listen.parse().with_context(|| {
            format!("rpc.listen = {:?} is not host:port", home.config.rpc.listen)
        })?,
    };
    let explorer = crate::explorer::Placement::from_config(&home.config.explorer, rpc_listen)
        .context("explorer.listen is not host:port")?;
    let mut cors_origins = home.config.rpc.cors_origins.clone();
    // On its own address the page calls the RPC from another origin.
    let explorer_listener = match &explorer {
        crate::explorer::Placement::Own { listen, .. } => {
            let listener = tally_rpc::site::bind(*listen)
                .await
                .with_context(|| format!("cannot serve the explorer on {listen}"))?;
            cors_origins.push(crate::explorer::origin_of(listener.local_addr()?));
            Some(listener)
        }
        _ => None,
    };
    let settings = tally_rpc::server::RpcSettings {
        listen: rpc_listen,
        max_body_bytes: home.config.rpc.max_body_bytes,
        max_connections: home.config.rpc.max_connections,
        max_subscriptions_per_connection: home.config.rpc.max_subscriptions_per_connection,
        max_batch_len: home.config.rpc.max_batch_len,
        cors_origins,
        auth_token: home.config.rpc.auth_token.clone(),
        site: explorer.on_rpc_port(),
    };
    let backend = crate::rpc_backend::NodeBackend::new(handle.clone(), home.config.role);
    let (rpc_addr, rpc) = tally_rpc::server::start(&settings, backend).await?;
    let explorer_addr = match (explorer_listener, &explorer) {
        (Some(listener), crate::explorer::Placement::Own { .. }) => {
            let bound = listener.local_addr()?;
            // An RPC port the OS picked is known only now.
            let rpc_url = match &home.config.explorer.rpc_url {
                Some(url) => url.clone(),
                None => format!("http://{rpc_addr}"),
            };
            let site = std::sync::Arc::new(crate::explorer::site(Some(&rpc_url)));
            tasks.spawn(EXPLORER_TASK, async move {
                tally_rpc::site::serve(listener, site).await;
                Ok(())
            });
            Some(bound)
        }
        _ => None,
    };
    let explorer_at = match (&explorer, explorer_addr) {
        (crate::explorer::Placement::Off, _) => "off".to_string(),
        (_, Some(addr)) => format!("http://{addr}/"),
        _ => format!("http://{rpc_addr}/"),
    };
    // The server runs in jsonrpsee's own task; this one ends when it does.
    let rpc_stopped = rpc.clone();
    tasks.spawn(RPC_TASK, async move {
        rpc_stopped.stopped().await;
        Err(anyhow::anyhow!("the JSON-RPC server stopped"))
    });
    let metrics_at = metrics_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    info!(peer_id = %peer_id, p2p = %p2p_addr, rpc = %rpc_addr, metrics = %metrics_at, explorer = %explorer_at, role = ?home.config.role, "node started");
    Ok(RunningNode {
        handle,
        rpc_addr,
        rpc,
        p2p_addr,
        metrics_addr,
        explorer_addr,
        shutdown: shutdown_tx,
        tasks,
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

    /// Stops the RPC server, then consensus, then the rest, and waits for
    /// them. Returns consensus's own error if it had one. The database
    /// closes when the last handle is dropped (this one is dropped here;
    /// callers drop their clones). Also the way to clean up after
    /// [`RunningNode::wait`] reported a death.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        let _ = self.rpc.stop();
        self.rpc.clone().stopped().await;
        let consensus = match self.tasks.take(CONSENSUS_TASK) {
            Some(task) => task.await.context("the consensus task panicked")?,
            None => Ok(()),
        };
        for serving in [METRICS_TASK, EXPLORER_TASK] {
            if let Some(task) = self.tasks.take(serving) {
                task.abort();
            }
        }
        // The network ends on the shutdown signal, the RPC task with the
        // server; their results are only the ends they were asked for.
        for (name, task) in std::mem::take(&mut self.tasks.0) {
            if let Err(e) = task.await {
                if e.is_panic() {
                    anyhow::bail!("the {name} task panicked");
                }
            }
        }
        consensus
    }

    /// Waits until one of the node's tasks ends by itself, which is always a
    /// failure, logs it and returns which task died and why. The others
    /// still run: call [`RunningNode::stop`] next. Cancel-safe.
    pub async fn wait(&mut self) -> TaskDied {
        let died = self.tasks.first_to_end().await;
        error!(task = died.task, reason = %died.reason, "a node task died; stopping the node");
        died
    }

    /// Ends one of the node's tasks as a crash would (tests of what the
    /// node does then): the RPC server is stopped, any other task aborted.
    #[doc(hidden)]
    pub fn abort_task(&self, name: &str) {
        if name == RPC_TASK {
            let _ = self.rpc.stop();
        } else if let Some((_, task)) = self.tasks.0.iter().find(|(n, _)| *n == name) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spawns a task named `how` that ends that way.
    fn spawn_ending(tasks: &mut Tasks, how: &'static str) {
        match how {
            "returned" => tasks.spawn(how, async { Ok(()) }),
            "failed" => tasks.spawn(how, async {
                Err(anyhow::anyhow!("disk full").context("cannot commit"))
            }),
            "panicked" => tasks.spawn(how, async {
                let empty: Vec<u8> = Vec::new();
                let _ = empty[3];
                Ok(())
            }),
            _ => {
                tasks.spawn(how, std::future::pending());
                if let Some((_, task)) = tasks.0.last() {
                    task.abort();
                }
            }
        }
    }

    /// Each way a task can end is reported with its name and why.
    #[tokio::test]
    async fn the_first_task_to_end_is_reported_with_its_name_and_why() {
        let cases = [
            ("returned", "it ended without being asked to stop"),
            ("failed", "cannot commit: disk full"),
            (
                "panicked",
                "it panicked: index out of bounds: the len is 0 but the index is 3",
            ),
            ("aborted", "it was cancelled"),
        ];
        for (name, reason) in cases {
            let mut tasks = Tasks::default();
            tasks.spawn("steady", std::future::pending());
            spawn_ending(&mut tasks, name);
            let died = tasks.first_to_end().await;
            assert_eq!(
                died,
                TaskDied {
                    task: name,
                    reason: reason.to_string()
                }
            );
            assert_eq!(died.to_string(), format!("the {name} task died: {reason}"));
            // The one still running stays, and waiting again still waits.
            assert_eq!(tasks.0.len(), 1);
            let again = tokio::time::timeout(Duration::from_millis(20), tasks.first_to_end());
            assert!(again.await.is_err());
        }
    }
}
