//! What a `tally bench load` run measured: the report, its table, and
//! each node's own figures from its metrics page.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::load::{Commits, LoadSpec};
use super::plan::Planned;

/// One node's cost over the window, from its own metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeFigures {
    pub metrics: String,
    pub cpu_s: f64,
    pub cpu_us_per_tx: f64,
    /// Peak resident memory at the end of the window.
    pub rss_mb: f64,
    pub sig_checks_per_tx: f64,
    /// Synced (fsync'd) database writes per second of the window.
    pub fsyncs_per_s: f64,
    /// CPU seconds per second of the window: 1.0 is one core kept busy.
    pub cores_busy: f64,
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

/// The unlabelled samples of one node's metrics page.
pub(super) type Scrape = HashMap<String, f64>;

pub(super) async fn scrape_all(addrs: &[String]) -> anyhow::Result<Vec<Scrape>> {
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

pub(super) fn node_figures(
    addrs: &[String],
    start: &[Scrape],
    end: &[Scrape],
    committed: f64,
    window_s: f64,
) -> Vec<NodeFigures> {
    let per_s = |x: f64| if window_s > 0.0 { x / window_s } else { 0.0 };
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
                fsyncs_per_s: per_s(delta("tally_synced_writes_total")),
                cores_busy: per_s(cpu_s),
            }
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn build_report(
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
        // An empty sum is -0.0; no latencies means a mean of 0.
        mean: latencies.iter().sum::<f64>().max(0.0) / latencies.len().max(1) as f64,
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

pub(super) fn print_report(r: &LoadReport) {
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
            "  node {:<21} cpu {:.1} s ({:.2} cores, {:.0} us/tx)  peak rss {:.0} MB  {:.2} signature checks/tx  {:.1} fsyncs/s",
            n.metrics, n.cpu_s, n.cores_busy, n.cpu_us_per_tx, n.rss_mb, n.sig_checks_per_tx, n.fsyncs_per_s
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_metrics_page_gives_its_cost_per_committed_transaction() {
        let page = crate::metrics::Metrics::new().render();
        let mut start = parse_metrics(&page);
        assert!(start.contains_key("tally_signature_checks_total"), "{page}");
        assert!(
            start.contains_key("tally_process_cpu_seconds_total"),
            "{page}"
        );
        // The page holds this process's real CPU time, which changes from
        // run to run; a value such as 3.1 plus 2 minus 3.1 is not exactly 2
        // in floating point. Counters from a fixed start keep the
        // arithmetic exact.
        for (name, value) in [
            ("tally_signature_checks_total", 1_000.0),
            ("tally_process_cpu_seconds_total", 1.0),
            ("tally_synced_writes_total", 8.0),
        ] {
            start.insert(name.into(), value);
        }
        let mut end = start.clone();
        *end.get_mut("tally_signature_checks_total")
            .unwrap_or(&mut 0.0) += 3_000.0;
        *end.get_mut("tally_process_cpu_seconds_total")
            .unwrap_or(&mut 0.0) += 2.0;
        end.insert(
            "tally_process_peak_resident_memory_bytes".into(),
            96.0 * (1 << 20) as f64,
        );
        *end.get_mut("tally_synced_writes_total").unwrap_or(&mut 0.0) += 40.0;
        let figures = node_figures(&["n0".into()], &[start], &[end], 2_000.0, 4.0);
        assert_eq!(
            figures,
            vec![NodeFigures {
                metrics: "n0".into(),
                cpu_s: 2.0,
                cpu_us_per_tx: 1_000.0,
                rss_mb: 96.0,
                sig_checks_per_tx: 1.5,
                fsyncs_per_s: 10.0,
                cores_busy: 0.5,
            }]
        );
    }
}
