//! `tally bench load` as the command runs it: against running nodes
//! (`--rpc`) or a network of its own, once or as a sweep of offered rates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tally_rpc::LedgerApiClient;

use super::load::{self, BenchOp, LoadReport, LoadSpec};
use super::procs::{BenchNet, NetSpec};
use crate::client::connect;

/// Fractions of the maximum that `--sweep` without rates offers.
const SWEEP_FRACTIONS: [f64; 5] = [0.1, 0.25, 0.5, 0.75, 0.9];
/// How long a new network may take to commit its first block.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything the command line gave.
#[derive(Debug, Clone)]
pub struct LoadCommand {
    /// Running nodes to load; empty starts a network of its own.
    pub rpc: Vec<String>,
    /// The running testnet's accounts folder (with `--rpc`).
    pub keys: Option<PathBuf>,
    pub metrics: Vec<String>,
    /// The network to start (without `--rpc`).
    pub validators: usize,
    pub replicas: usize,
    pub threads: Option<usize>,
    pub block_fill: Option<(u32, u64)>,
    /// Offered rate; `None` is `--max`.
    pub rate: Option<u64>,
    /// `--sweep`: these rates, or (empty) fractions of the maximum.
    pub sweep: Option<Vec<u64>>,
    pub duration: Duration,
    pub warmup: Duration,
    pub senders: usize,
    pub op: BenchOp,
    pub tx_bytes: Option<usize>,
    pub json: Option<PathBuf>,
}

/// A sweep's reports, in the order run (the `--max` run first when the
/// rates were derived from it).
#[derive(Debug, Serialize)]
struct Sweep<'a> {
    points: &'a [LoadReport],
}

/// Runs the command: one load, or each point of a sweep on a fresh network
/// (or the same running nodes).
pub async fn run(cmd: &LoadCommand) -> anyhow::Result<Vec<LoadReport>> {
    anyhow::ensure!(
        cmd.tx_bytes.is_none() || cmd.op == BenchOp::Put,
        "--tx-bytes sizes puts; add --op put"
    );
    let mut reports = Vec::new();
    match &cmd.sweep {
        None => reports.push(run_point(cmd, cmd.rate).await?),
        Some(rates) if !rates.is_empty() => {
            for &rate in rates {
                reports.push(run_point(cmd, Some(rate)).await?);
            }
        }
        Some(_) => {
            eprintln!("sweep: finding the maximum first");
            let max = run_point(cmd, None).await?;
            let top = max.committed_tps;
            reports.push(max);
            for f in SWEEP_FRACTIONS {
                let rate = ((top * f).round() as u64).max(1);
                eprintln!("sweep: {:.0} % of the maximum, {rate} tx/s", f * 100.0);
                reports.push(run_point(cmd, Some(rate)).await?);
            }
        }
    }
    if cmd.sweep.is_some() {
        print_curve(&reports);
    }
    if let Some(path) = &cmd.json {
        let json = match reports.as_slice() {
            [one] if cmd.sweep.is_none() => serde_json::to_string_pretty(one)?,
            all => serde_json::to_string_pretty(&Sweep { points: all })?,
        };
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(reports)
}

async fn run_point(cmd: &LoadCommand, rate: Option<u64>) -> anyhow::Result<LoadReport> {
    let mut spec = LoadSpec {
        rpc: cmd.rpc.clone(),
        keys: cmd.keys.clone().unwrap_or_default(),
        rate,
        duration: cmd.duration,
        warmup: cmd.warmup,
        senders: Some(cmd.senders),
        json: None,
        metrics: cmd.metrics.clone(),
        op: cmd.op,
        tx_bytes: cmd.tx_bytes,
    };
    if !cmd.rpc.is_empty() {
        anyhow::ensure!(
            cmd.keys.is_some(),
            "with --rpc, give --keys (the running testnet's accounts folder)"
        );
        return load::run(&spec).await;
    }
    let net_spec = NetSpec {
        validators: cmd.validators,
        replicas: cmd.replicas,
        accounts: cmd.senders,
        threads: cmd.threads,
        block_fill: cmd.block_fill,
    };
    let binary = std::env::current_exe().context("cannot find this program to start nodes")?;
    eprintln!(
        "starting {} validators and {} replicas ({} funded senders)",
        cmd.validators, cmd.replicas, cmd.senders
    );
    let net = tokio::task::spawn_blocking(move || BenchNet::start(&binary, &net_spec)).await??;
    spec.rpc = net.validators.iter().map(|n| n.rpc_url.clone()).collect();
    spec.metrics = net.nodes().map(|n| n.metrics.clone()).collect();
    spec.keys = net.accounts();
    wait_first_block(&spec.rpc[0]).await?;
    let report = load::run(&spec).await;
    drop(net);
    report
}

/// Waits until the node at `url` has committed a block: the network is
/// connected and deciding.
async fn wait_first_block(url: &str) -> anyhow::Result<()> {
    let client = connect(url)?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(status) = client.status().await {
            if status.latest_height.0 >= 1 {
                return Ok(());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the network made no block within {READY_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_curve(reports: &[LoadReport]) {
    println!("sweep: throughput against latency");
    println!(
        "  {:>10} {:>10} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "offered",
        "committed",
        "blocks/s",
        "tx/block",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "refused"
    );
    for r in reports {
        let offered = r
            .offered_tps
            .map_or("max".to_string(), |o| format!("{o:.0}"));
        let l = &r.latency_ms;
        println!(
            "  {:>10} {:>10.0} {:>9.1} {:>9.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8}",
            offered,
            r.committed_tps,
            r.blocks_per_s,
            r.txs_per_block,
            l.p50,
            l.p90,
            l.p99,
            l.max,
            r.rejected.values().sum::<u64>()
        );
    }
}
