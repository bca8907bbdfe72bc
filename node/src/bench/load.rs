//! `tally bench load`: an open-loop load generator against running nodes.
//!
//! It signs every transfer before the timed window (so signing does not
//! compete with the nodes for cores while it counts), submits them in
//! batches at the offered rate, each sender through one node and the
//! senders spread over all nodes, and counts commits from the first node's
//! own `newHead` notifications, reading each new block's transactions.
//! Latency is from the moment a batch is sent to the notification of the
//! block that holds the transaction. Nothing is estimated: every figure is
//! a count of transactions, blocks or instants.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonrpsee_http_client::HttpClient;
use serde::Serialize;
use tokio::sync::mpsc;

use tally_ledger::encoding::encode;
use tally_ledger::types::{Op, Tx};
use tally_ledger::Keypair;
use tally_rpc::types::{to_hex, BatchItem, BlockId};
use tally_rpc::LedgerApiClient;

use crate::client::connect;
use crate::keys::read_key_file;

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
    /// take them (at most [`MAX_OUTSTANDING`] uncommitted).
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
}

/// One node's cost over the window, from its own metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeFigures {
    pub metrics: String,
    pub cpu_s: f64,
    pub cpu_us_per_tx: f64,
    /// Peak resident memory at the end of the window.
    pub rss_mb: f64,
    pub sig_checks_per_tx: f64,
}

/// Submit-to-commit latency of the window's transactions, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    pub senders: usize,
    pub node_count: usize,
    pub window_s: f64,
    /// The rate asked for (`None` with `--max`).
    pub offered_tps: Option<f64>,
    /// What the generator actually sent during the window.
    pub sent_tps: f64,
    /// Transactions committed during the window, per second.
    pub committed_tps: f64,
    /// Blocks committed during the window.
    pub blocks: u64,
    pub blocks_per_s: f64,
    pub txs_per_block: f64,
    pub latency_ms: Latency,
    /// Refusals by the node's reason.
    pub rejected: BTreeMap<String, u64>,
    /// Accepted but not committed by the end of the drain.
    pub uncommitted: u64,
    /// Every transaction sent, warm-up included.
    pub sent: u64,
    /// Of those, accepted by a node (the rest are in `rejected`).
    pub accepted: u64,
    /// Every one of them found committed.
    pub committed_total: u64,
    /// The blocks observed, first and last: the chain between them holds
    /// `committed_total` of this run's transactions.
    pub first_height: u64,
    pub last_height: u64,
    /// Per node, when `--metrics` was given.
    pub nodes: Vec<NodeFigures>,
}

/// One pre-signed transaction.
struct Planned {
    hash: String,
    hex: String,
    node: usize,
}

/// What the observer saw commit.
#[derive(Default)]
struct Commits {
    /// Transaction hash → when its block was announced.
    at: HashMap<String, Instant>,
    /// (height, transactions, when announced).
    blocks: Vec<(u64, usize, Instant)>,
}

/// Runs the load and prints (and returns) the report.
pub async fn run(spec: &LoadSpec) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(!spec.rpc.is_empty(), "give at least one --rpc address");
    anyhow::ensure!(
        spec.rate != Some(0),
        "--rate 0 offers nothing; give a rate or --max"
    );
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
        "signing {count} transfers from {} senders over {} nodes",
        keys.len(),
        clients.len()
    );
    let plan = sign_plan(&keys, &nonces, &chain_id, count, clients.len());

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
    while Instant::now() < end && next < plan.len() {
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
        report.nodes = node_figures(&spec.metrics, &start, &at_window_end, committed);
    }
    print_report(&report);
    if let Some(path) = &spec.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report)
}

/// The `user*.pem` keys of `dir`, in name order, at most `limit`.
fn sender_keys(dir: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Keypair>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let is_user = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("user"));
        if is_user && path.extension().is_some_and(|e| e == "pem") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.truncate(limit.unwrap_or(usize::MAX));
    anyhow::ensure!(
        paths.len() >= 2,
        "{} holds fewer than two user*.pem keys (create a testnet with --accounts K)",
        dir.display()
    );
    paths
        .iter()
        .map(|p| read_key_file(p).map_err(anyhow::Error::from))
        .collect()
}

/// Signs `count` transfers, round-robin over the senders (each in nonce
/// order, each to the next sender), on every core.
fn sign_plan(
    keys: &[Keypair],
    nonces: &[u64],
    chain_id: &str,
    count: usize,
    nodes: usize,
) -> Vec<Planned> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = count.div_ceil(threads).max(1);
    let sign = |k: usize| {
        let s = k % keys.len();
        let tx = Tx {
            chain_id: chain_id.to_string(),
            sender: keys[s].public(),
            nonce: nonces[s] + (k / keys.len()) as u64,
            op: Op::Transfer {
                to: keys[(s + 1) % keys.len()].public(),
                amount: 1,
            },
        }
        .sign(&keys[s]);
        Planned {
            hash: tx.hash().to_hex(),
            hex: to_hex(&encode(&tx)),
            node: s % nodes,
        }
    };
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(per)
            .map(|from| {
                scope.spawn(move || {
                    (from..(from + per).min(count))
                        .map(sign)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
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

/// The unlabelled samples of one node's metrics page.
type Scrape = HashMap<String, f64>;

async fn scrape_all(addrs: &[String]) -> anyhow::Result<Vec<Scrape>> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        out.push(
            scrape(addr)
                .await
                .with_context(|| format!("cannot read metrics from {addr}"))?,
        );
    }
    Ok(out)
}

/// Reads `http://addr/metrics` (the node's own small server speaks
/// HTTP/1.0 and closes the connection after the answer).
async fn scrape(addr: &str) -> anyhow::Result<Scrape> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = addr
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await??;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        (&mut stream).take(8 << 20).read_to_end(&mut body),
    )
    .await??;
    let text = String::from_utf8_lossy(&body);
    let page = text
        .split_once("\r\n\r\n")
        .map_or(text.as_ref(), |(_, b)| b);
    Ok(parse_metrics(page))
}

/// The unlabelled samples of a Prometheus text page.
fn parse_metrics(page: &str) -> Scrape {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

fn node_figures(
    addrs: &[String],
    start: &[Scrape],
    end: &[Scrape],
    committed: f64,
) -> Vec<NodeFigures> {
    let per_tx = |x: f64| if committed > 0.0 { x / committed } else { 0.0 };
    addrs
        .iter()
        .zip(start.iter().zip(end))
        .map(|(addr, (a, b))| {
            let delta = |name: &str| {
                b.get(name).copied().unwrap_or(0.0) - a.get(name).copied().unwrap_or(0.0)
            };
            let cpu_s = delta("tally_process_cpu_seconds_total");
            NodeFigures {
                metrics: addr.clone(),
                cpu_s,
                cpu_us_per_tx: per_tx(cpu_s * 1e6),
                rss_mb: b
                    .get("tally_process_peak_resident_memory_bytes")
                    .copied()
                    .unwrap_or(0.0)
                    / (1 << 20) as f64,
                sig_checks_per_tx: per_tx(delta("tally_signature_checks_total")),
            }
        })
        .collect()
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

#[allow(clippy::too_many_arguments)]
fn build_report(
    spec: &LoadSpec,
    plan: &[Planned],
    sent_at: &[Option<Instant>],
    accepted: &[bool],
    rejected: BTreeMap<String, u64>,
    commits: &Commits,
    (from, to): (Instant, Instant),
    senders: usize,
    nodes: usize,
) -> LoadReport {
    let window_s = to.saturating_duration_since(from).as_secs_f64().max(1e-9);
    let in_window = |t: Instant| t >= from && t < to;
    let sent = sent_at.iter().flatten().filter(|t| in_window(**t)).count();
    let window_blocks: Vec<_> = commits
        .blocks
        .iter()
        .filter(|(_, _, t)| in_window(*t))
        .collect();
    let committed: usize = window_blocks.iter().map(|(_, n, _)| n).sum();
    let mut latencies: Vec<f64> = Vec::new();
    let (mut accepted_total, mut committed_total) = (0u64, 0u64);
    for (i, p) in plan.iter().enumerate() {
        if !accepted[i] {
            continue;
        }
        accepted_total += 1;
        let Some(done) = commits.at.get(&p.hash) else {
            continue;
        };
        committed_total += 1;
        if let Some(sent) = sent_at[i].filter(|t| in_window(*t)) {
            latencies.push(done.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            latencies[((latencies.len() - 1) as f64 * q).round() as usize]
        }
    };
    let latency_ms = Latency {
        p50: pct(0.50),
        p90: pct(0.90),
        p99: pct(0.99),
        max: latencies.last().copied().unwrap_or(0.0),
        mean: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
    };
    let heights = commits.blocks.iter().map(|(h, _, _)| *h);
    LoadReport {
        senders,
        node_count: nodes,
        window_s,
        offered_tps: spec.rate.map(|r| r as f64),
        sent_tps: sent as f64 / window_s,
        committed_tps: committed as f64 / window_s,
        blocks: window_blocks.len() as u64,
        blocks_per_s: window_blocks.len() as f64 / window_s,
        txs_per_block: committed as f64 / window_blocks.len().max(1) as f64,
        latency_ms,
        rejected,
        uncommitted: accepted_total - committed_total,
        sent: sent_at.iter().flatten().count() as u64,
        accepted: accepted_total,
        committed_total,
        first_height: heights.clone().min().unwrap_or(0),
        last_height: heights.max().unwrap_or(0),
        nodes: Vec::new(),
    }
}

fn print_report(r: &LoadReport) {
    let offered = r
        .offered_tps
        .map_or("max".to_string(), |o| format!("{o:.0} tx/s"));
    println!(
        "load: {} senders over {} nodes, {:.1} s window",
        r.senders, r.node_count, r.window_s
    );
    println!("  offered     {offered} (sent {:.0} tx/s)", r.sent_tps);
    println!("  committed   {:.0} tx/s", r.committed_tps);
    println!(
        "  blocks      {} ({:.1}/s, {:.1} tx per block)",
        r.blocks, r.blocks_per_s, r.txs_per_block
    );
    let l = &r.latency_ms;
    println!(
        "  latency ms  p50 {:.0}  p90 {:.0}  p99 {:.0}  max {:.0}  mean {:.0}",
        l.p50, l.p90, l.p99, l.max, l.mean
    );
    let refused: u64 = r.rejected.values().sum();
    println!("  refused     {refused}");
    for (reason, n) in &r.rejected {
        println!("    {reason}: {n}");
    }
    println!(
        "  sent        {} (accepted {}: committed {}, uncommitted {})",
        r.sent, r.accepted, r.committed_total, r.uncommitted
    );
    for n in &r.nodes {
        println!(
            "  node {:<21} cpu {:.1} s ({:.0} us/tx)  peak rss {:.0} MB  {:.2} signature checks/tx",
            n.metrics, n.cpu_s, n.cpu_us_per_tx, n.rss_mb, n.sig_checks_per_tx
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_metrics_page_gives_its_cost_per_committed_transaction() {
        let page = crate::metrics::Metrics::new().render();
        let start = parse_metrics(&page);
        assert!(start.contains_key("tally_signature_checks_total"), "{page}");
        assert!(
            start.contains_key("tally_process_cpu_seconds_total"),
            "{page}"
        );
        let mut end = start.clone();
        *end.get_mut("tally_signature_checks_total")
            .unwrap_or(&mut 0.0) += 3_000.0;
        *end.get_mut("tally_process_cpu_seconds_total")
            .unwrap_or(&mut 0.0) += 2.0;
        end.insert(
            "tally_process_peak_resident_memory_bytes".into(),
            96.0 * (1 << 20) as f64,
        );
        let figures = node_figures(&["n0".into()], &[start], &[end], 2_000.0);
        assert_eq!(
            figures,
            vec![NodeFigures {
                metrics: "n0".into(),
                cpu_s: 2.0,
                cpu_us_per_tx: 1_000.0,
                rss_mb: 96.0,
                sig_checks_per_tx: 1.5,
            }]
        );
    }
}
