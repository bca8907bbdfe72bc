//! `tally bench load`: an open-loop load generator against running nodes.
//!
//! It signs every transaction before the timed window (so signing does not
//! compete with the nodes for cores while it counts), submits them in
//! batches at the offered rate, each sender through one node and the
//! senders spread over all nodes, and counts commits from the first node's
//! own `newHead` notifications, reading each new block's transactions.
//! Latency is from the moment a batch is sent to the notification of the
//! block that holds the transaction. Nothing is estimated: every figure is
//! a count of transactions, blocks or instants.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonrpsee_http_client::HttpClient;
use tokio::sync::mpsc;

use tally_rpc::types::{BatchItem, BlockId};
use tally_rpc::LedgerApiClient;

pub use super::plan::BenchOp;
use super::plan::{sender_keys, sign_plan, TxShape};
use super::report::{build_report, node_figures, print_report, scrape_all, Scrape};
pub use super::report::{Latency, LoadReport, NodeFigures};
use crate::client::connect;

/// Transactions per `submitTxBatch` call (at most the server's limit).
const BATCH: usize = 256;
/// Batches in flight at once, over all nodes.
const IN_FLIGHT_BATCHES: usize = 16;
/// With `--max`: most transactions sent and not yet committed.
const MAX_OUTSTANDING: usize = 20_000;
/// With `--max`: transactions signed per second of the run.
const MAX_PRESIGN_TPS: u64 = 20_000;
/// How long to wait after the window for the last commits.
const DRAIN: Duration = Duration::from_secs(10);
/// How often the sender releases what is due.
const TICK: Duration = Duration::from_millis(5);

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub rpc: Vec<String>,
    /// A testnet's accounts folder: every `user*.pem` is a sender.
    pub keys: PathBuf,
    /// Offered transactions per second; `None` sends as fast as the nodes
    /// take them (at most [`MAX_OUTSTANDING`] uncommitted); 0 sends nothing
    /// and measures what an idle network costs.
    pub rate: Option<u64>,
    /// The measured window, after the warm-up.
    pub duration: Duration,
    pub warmup: Duration,
    /// Use at most this many senders (default: every key found).
    pub senders: Option<usize>,
    /// Also write the report here as JSON.
    pub json: Option<PathBuf>,
    /// Each node's Prometheus address (`host:port`), to report its CPU,
    /// memory and signature checks over the window.
    pub metrics: Vec<String>,
    /// What each transaction does, and (for puts) its size.
    pub op: BenchOp,
    pub tx_bytes: Option<usize>,
}

/// What the observer saw commit.
#[derive(Default)]
pub(super) struct Commits {
    /// Transaction hash → when its block was announced.
    pub(super) at: HashMap<String, Instant>,
    /// (height, transactions, when announced).
    pub(super) blocks: Vec<(u64, usize, Instant)>,
}

/// Runs the load and prints (and returns) the report.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(!spec.rpc.is_empty(), "give at least one --rpc address");
    let clients = spec
        .rpc
        .iter()
        .map(|u| connect(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys = sender_keys(&spec.keys, spec.senders)?;
    let genesis = clients[0]
        .get_genesis()
        .await
        .context("cannot reach the first node")?;
    let chain_id = genesis["chain_id"]
        .as_str()
        .context("the node's genesis has no chain_id")?
        .to_string();
    let mut nonces = Vec::with_capacity(keys.len());
    for k in &keys {
        let account = clients[0].get_account(k.public().to_hex(), None).await?;
        nonces.push(account.nonce.0 + 1);
    }
    let total_s = (spec.warmup + spec.duration).as_secs_f64();
    let count = (spec.rate.unwrap_or(MAX_PRESIGN_TPS) as f64 * total_s).ceil() as usize;
    eprintln!(
        "signing {count} {} transactions from {} senders over {} nodes",
        match spec.op {
            BenchOp::Transfer => "transfer",
            BenchOp::Put => "put",
        },
        keys.len(),
        clients.len()
    );
    let shape = TxShape {
        op: spec.op,
        tx_bytes: spec.tx_bytes,
    };
    let plan = sign_plan(&keys, &nonces, &chain_id, shape, count, clients.len());

    let commits = Arc::new(Mutex::new(Commits::default()));
    let observer = observe(&spec.rpc[0], clients[0].clone(), commits.clone()).await?;

    let (results_tx, mut results_rx) =
        mpsc::channel::<(Vec<usize>, anyhow::Result<Vec<BatchItem>>)>(64);
    let mut sent_at: Vec<Option<Instant>> = vec![None; plan.len()];
    let mut accepted = vec![false; plan.len()];
    let mut rejected: BTreeMap<String, u64> = BTreeMap::new();
    let (mut next, mut in_flight, mut accepted_count) = (0usize, 0usize, 0usize);
    let mut refused_count = 0usize;
    let started = Instant::now();
    let window_start = started + spec.warmup;
    let end = window_start + spec.duration;
    let mut last_progress = started;
    let mut at_window_start: Option<Vec<Scrape>> = None;
    // `--rate 0` sends nothing and measures the idle network.
    while Instant::now() < end && (next < plan.len() || plan.is_empty()) {
        if at_window_start.is_none() && Instant::now() >= window_start {
            at_window_start = Some(scrape_all(&spec.metrics).await?);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let due = match spec.rate {
            Some(rate) => ((rate as f64 * elapsed) as usize).min(plan.len()),
            None => {
                let committed = commits.lock().map(|c| c.at.len()).unwrap_or(0);
                let outstanding = next.saturating_sub(committed + refused_count);
                (next + MAX_OUTSTANDING.saturating_sub(outstanding)).min(plan.len())
            }
        };
        while next < due && in_flight < IN_FLIGHT_BATCHES {
            let upto = (next + BATCH * clients.len()).min(due);
            let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); clients.len()];
            for i in next..upto {
                by_node[plan[i].node].push(i);
            }
            next = upto;
            let now = Instant::now();
            for (node, indices) in by_node.into_iter().enumerate() {
                for chunk in indices.chunks(BATCH) {
                    for &i in chunk {
                        sent_at[i] = Some(now);
                    }
                    let batch: Vec<String> = chunk.iter().map(|&i| plan[i].hex.clone()).collect();
                    let client = clients[node].clone();
                    let tx = results_tx.clone();
                    let chunk = chunk.to_vec();
                    in_flight += 1;
                    tokio::spawn(async move {
                        let result = client.submit_tx_batch(batch).await.map_err(Into::into);
                        let _ = tx.send((chunk, result)).await;
                    });
                }
            }
        }
        // Take what came back, then wait for the next tick.
        let tick = tokio::time::sleep(TICK);
        tokio::pin!(tick);
        loop {
            tokio::select! {
                Some((chunk, result)) = results_rx.recv() => {
                    in_flight -= 1;
                    let ok = record(&chunk, result, &mut accepted, &mut rejected);
                    accepted_count += ok;
                    refused_count += chunk.len() - ok;
                }
                _ = &mut tick => break,
            }
        }
        if last_progress.elapsed() >= Duration::from_secs(5) {
            last_progress = Instant::now();
            let committed = commits.lock().map(|c| c.at.len()).unwrap_or(0);
            eprintln!(
                "  {:>4.0} s: sent {next}, accepted {accepted_count}, committed {committed}",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let window_end = Instant::now().min(end);
    let at_window_end = scrape_all(&spec.metrics).await?;
    while in_flight > 0 {
        if let Some((chunk, result)) = results_rx.recv().await {
            in_flight -= 1;
            accepted_count += record(&chunk, result, &mut accepted, &mut rejected);
        }
    }
    // Drain: wait for what was accepted to commit.
    let drain_until = Instant::now() + DRAIN;
    while Instant::now() < drain_until {
        let committed = commits.lock().map(|c| c.at.len()).unwrap_or(0);
        if committed >= accepted_count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    observer.abort();
    let commits = commits
        .lock()
        .map_err(|_| anyhow::anyhow!("the commit observer failed"))?;
    let mut report = build_report(
        spec,
        &plan,
        &sent_at,
        &accepted,
        rejected,
        &commits,
        (window_start, window_end),
        keys.len(),
        clients.len(),
    );
    let committed = report.committed_tps * report.window_s;
    if let Some(start) = at_window_start {
        report.nodes = node_figures(
            &spec.metrics,
            &start,
            &at_window_end,
            committed,
            report.window_s,
        );
    }
    print_report(&report);
    if let Some(path) = &spec.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report)
}

/// Follows the first node's `newHead` notifications and records, for each
/// block, its transactions and when it was announced.
async fn observe(
    url: &str,
    http: HttpClient,
    commits: Arc<Mutex<Commits>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let ws_url = url
        .replacen("http://", "ws://", 1)
        .replacen("https://", "wss://", 1);
    let ws = jsonrpsee_ws_client::WsClientBuilder::default()
        .build(&ws_url)
        .await
        .with_context(|| format!("cannot open a WebSocket to {ws_url}"))?;
    let mut heads = ws
        .subscribe_new_heads()
        .await
        .context("cannot subscribe to new heads")?;
    Ok(tokio::spawn(async move {
        let _ws = ws;
        while let Some(Ok(head)) = heads.next().await {
            let at = Instant::now();
            let Ok(block) = http
                .get_block_by_height(BlockId::Height(head.height.0), None)
                .await
            else {
                continue;
            };
            if let Ok(mut c) = commits.lock() {
                c.blocks.push((head.height.0, block.tx_hashes.len(), at));
                for hash in block.tx_hashes {
                    c.at.insert(hash, at);
                }
            }
        }
    }))
}

/// Notes a batch's answers; returns how many were accepted.
fn record(
    chunk: &[usize],
    result: anyhow::Result<Vec<BatchItem>>,
    accepted: &mut [bool],
    rejected: &mut BTreeMap<String, u64>,
) -> usize {
    match result {
        Ok(items) => {
            let mut ok = 0;
            for (&i, item) in chunk.iter().zip(&items) {
                match (&item.hash, &item.error) {
                    (Some(_), _) => {
                        accepted[i] = true;
                        ok += 1;
                    }
                    (None, Some(e)) => *rejected.entry(e.kind.clone()).or_insert(0) += 1,
                    (None, None) => *rejected.entry("no answer".into()).or_insert(0) += 1,
                }
            }
            // A short answer leaves the rest unanswered.
            let missing = chunk.len().saturating_sub(items.len()) as u64;
            if missing > 0 {
                *rejected.entry("no answer".into()).or_insert(0) += missing;
            }
            ok
        }
        Err(e) => {
            *rejected.entry(format!("rpc error: {e}")).or_insert(0) += chunk.len() as u64;
            0
        }
    }
}
