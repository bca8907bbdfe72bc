//! Prometheus metrics of a node, served as text on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
    pub direction: String,
}

/// Every metric the node exports.
#[derive(Debug)]
pub struct Metrics {
    pub height: Gauge,
    pub round: Gauge,
    pub peers: Gauge,
    pub mempool_txs: Gauge,
    pub mempool_bytes: Gauge,
    pub block_interval_seconds: Histogram,
    /// The core's handling of each proposal message: for a proposal it can
    /// judge at once, checking the block (execution and the state root).
    pub proposal_handling_seconds: Histogram,
    pub committed_txs: Counter,
    pub rejected_txs: Family<ReasonLabel, Counter>,
    pub gossip_messages: Family<TopicLabel, Counter>,
    pub invalid_gossip: Family<ReasonLabel, Counter>,
    /// 1 while the node is behind its peers and fetching blocks.
    pub catching_up: Gauge,
    /// The height the node is syncing towards (the best credible peer height).
    pub sync_target_height: Gauge,
    pub sync_blocks: Counter,
    pub sync_served_blocks: Counter,
    /// Block requests from peers refused over a serving limit, by limit.
    pub sync_serve_refused: Family<ReasonLabel, Counter>,
    /// Blocks or responses refused from peers, by reason.
    pub sync_rejected: Family<ReasonLabel, Counter>,
    /// Each peer's sync score (falls on timeouts, bad blocks, false claims).
    pub peer_score: Family<PeerLabel, Gauge>,
    /// Proposed block bodies held for consensus (at most `CANDIDATES_MAX`).
    pub candidates: Gauge,
    /// Signatures the signer could not release because its state could not
    /// be persisted: the validator is not voting.
    pub signer_failures: Counter,
    /// Equivocations recorded as evidence (each offence once).
    pub evidence: Counter,
    /// From a transaction's admission at this node (by its RPC) to its
    /// commit.
    pub submit_to_commit_seconds: Histogram,
    /// The round in which each height was decided (0: the first).
    pub decided_round: Histogram,
    /// The data folder, whose file system's space is reported.
    data_dir: std::sync::OnceLock<std::path::PathBuf>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics {
            height: Gauge::default(),
            round: Gauge::default(),
            peers: Gauge::default(),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            block_interval_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 10)),
            proposal_handling_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 12)),
            committed_txs: Counter::default(),
            rejected_txs: Family::default(),
            gossip_messages: Family::default(),
            invalid_gossip: Family::default(),
            catching_up: Gauge::default(),
            sync_target_height: Gauge::default(),
            sync_blocks: Counter::default(),
            sync_served_blocks: Counter::default(),
            sync_serve_refused: Family::default(),
            sync_rejected: Family::default(),
            peer_score: Family::default(),
            candidates: Gauge::default(),
            signer_failures: Counter::default(),
            evidence: Counter::default(),
            submit_to_commit_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            decided_round: Histogram::new([0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0]),
            data_dir: std::sync::OnceLock::new(),
        })
    }

    /// Counts every kind of refusal from zero, so dashboards and alerts
    /// see each series before its first refusal.
    pub fn with_refusal_kinds(self: Arc<Self>, kinds: &[&str]) -> Arc<Self> {
        for kind in kinds {
            let _ = self.rejected_txs.get_or_create(&ReasonLabel {
                reason: (*kind).to_string(),
            });
        }
        self
    }

    /// Reports the free and total space of the file system holding `dir`.
    pub fn watch_disk(&self, dir: std::path::PathBuf) {
        let _ = self.data_dir.set(dir);
    }

    /// The registry, built on demand over shared metric handles.
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("tally");
        r.register(
            "height",
            "Height of the last committed block",
            self.height.clone(),
        );
        r.register("round", "Current consensus round", self.round.clone());
        r.register(
            "peers",
            "Connected peers whose identify showed this chain and genesis",
            self.peers.clone(),
        );
        r.register(
            "mempool_txs",
            "Transactions in the mempool",
            self.mempool_txs.clone(),
        );
        r.register(
            "mempool_bytes",
            "Bytes of transactions in the mempool",
            self.mempool_bytes.clone(),
        );
        r.register(
            "block_interval_seconds",
            "Time between consecutive committed blocks",
            self.block_interval_seconds.clone(),
        );
        r.register(
            "proposal_handling_seconds",
            "Time the consensus core spent on each proposal message (mostly checking its block)",
            self.proposal_handling_seconds.clone(),
        );
        r.register(
            "committed_txs",
            "Transactions committed",
            self.committed_txs.clone(),
        );
        r.register(
            "rejected_txs",
            "Transactions refused or evicted, by reason",
            self.rejected_txs.clone(),
        );
        r.register(
            "gossip_messages",
            "Gossip messages by topic and direction",
            self.gossip_messages.clone(),
        );
        r.register(
            "invalid_gossip",
            "Gossip messages rejected, by reason",
            self.invalid_gossip.clone(),
        );
        r.register(
            "catching_up",
            "1 while the node is behind its peers and fetching blocks",
            self.catching_up.clone(),
        );
        r.register(
            "sync_target_height",
            "Best height a credible peer reports",
            self.sync_target_height.clone(),
        );
        r.register(
            "sync_blocks",
            "Blocks committed through block sync",
            self.sync_blocks.clone(),
        );
        r.register(
            "candidates",
            "Proposed block bodies held for consensus",
            self.candidates.clone(),
        );
        r.register(
            "signer_failures",
            "Signatures withheld because the signer state could not be persisted",
            self.signer_failures.clone(),
        );
        r.register(
            "evidence",
            "Equivocations recorded as evidence",
            self.evidence.clone(),
        );
        r.register(
            "submit_to_commit_seconds",
            "From a transaction's admission at this node to its commit",
            self.submit_to_commit_seconds.clone(),
        );
        r.register(
            "decided_round",
            "The round in which each height was decided (0: the first)",
            self.decided_round.clone(),
        );
        if let Some(disk) = self.data_dir.get().and_then(|d| disk_space(d)) {
            r.register(
                "data_disk_free_bytes",
                "Space available to the node on its data folder's file system",
                ConstGauge::new(i64::try_from(disk.0).unwrap_or(i64::MAX)),
            );
            r.register(
                "data_disk_total_bytes",
                "Size of the data folder's file system",
                ConstGauge::new(i64::try_from(disk.1).unwrap_or(i64::MAX)),
            );
        }
        if let Some(usage) = process_usage() {
            r.register(
                "process_cpu_seconds",
                "CPU time of this process (user and system), seconds",
                ConstCounter::new(usage.cpu_seconds),
            );
            r.register(
                "process_resident_memory_bytes",
                "Resident memory of this process",
                ConstGauge::new(usage.rss_bytes as i64),
            );
            r.register(
                "process_peak_resident_memory_bytes",
                "Peak resident memory of this process",
                ConstGauge::new(usage.peak_rss_bytes as i64),
            );
        }
        r.register(
            "signature_checks",
            "Signatures this node has checked (transactions, votes, proposals, certificates)",
            ConstCounter::new(tally_ledger::crypto::signature_checks()),
        );
        r.register(
            "synced_writes",
            "Synced (fsync'd) database writes: block commits, signer records, locked blocks",
            ConstCounter::new(tally_ledger::store::synced_writes()),
        );
        r.register(
            "sync_served_blocks",
            "Blocks served to peers",
            self.sync_served_blocks.clone(),
        );
        r.register(
            "sync_serve_refused",
            "Block requests from peers refused over a serving limit, by limit",
            self.sync_serve_refused.clone(),
        );
        r.register(
            "sync_rejected",
            "Block sync answers refused, by reason",
            self.sync_rejected.clone(),
        );
        r.register(
            "peer_score",
            "Block sync score of each peer",
            self.peer_score.clone(),
        );
        r
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry());
        out
    }

    pub fn gossip(&self, topic: &str, direction: &str) {
        self.gossip_messages
            .get_or_create(&TopicLabel {
                topic: topic.to_string(),
                direction: direction.to_string(),
            })
            .inc();
    }

    pub fn invalid(&self, reason: &str) {
        self.invalid_gossip
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected_txs
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// This process's CPU time and memory, as the kernel reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

/// Reads [`ProcessUsage`] from `/proc/self` (Linux); `None` where there is
/// no such file or it cannot be read.
pub fn process_usage() -> Option<ProcessUsage> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name's closing parenthesis come the fields from
    // the state (field 3) on: utime is field 14, stime field 15.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    // /proc counts CPU time in USER_HZ ticks, 100 per second on Linux.
    let cpu_seconds = (ticks(14)? + ticks(15)?) as f64 / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    };
    Some(ProcessUsage {
        cpu_seconds,
        rss_bytes: kib("VmRSS:")?,
        peak_rss_bytes: kib("VmHWM:")?,
    })
}

/// The space available to unprivileged users and the size of the file
/// system holding `dir`, in bytes.
fn disk_space(dir: &std::path::Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some((
        s.f_bavail.saturating_mul(s.f_frsize),
        s.f_blocks.saturating_mul(s.f_frsize),
    ))
}

/// Serves `GET /metrics` on `listener` until the task is dropped. Requests
/// are read with a bound; anything else gets 404.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    serve_text(listener, Arc::new(move || metrics.render())).await;
}

/// Serves `GET /metrics` with what `render` gives at each request (the
/// exporter's metrics, say).
pub async fn serve_text(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", metrics())
            } else {
                ("404 Not Found", "not found: try /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    #[test]
    fn process_usage_counts_cpu_and_memory_of_this_process() {
        let before = process_usage().unwrap();
        // Burn a little CPU and touch 64 MiB.
        let mut x = 0u64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        let fill = (x as u8) | 1;
        let touched = vec![fill; 64 << 20];
        let after = process_usage().unwrap();
        assert!(
            after.cpu_seconds > before.cpu_seconds,
            "{before:?} {after:?}"
        );
        assert!(after.peak_rss_bytes >= after.rss_bytes);
        assert!(after.rss_bytes >= 64 << 20, "{after:?}");
        assert_eq!(touched.iter().filter(|b| **b != fill).count(), 0);
        let text = Metrics::new().render();
        assert!(text.contains("tally_process_cpu_seconds_total"), "{text}");
        assert!(text.contains("tally_signature_checks_total"), "{text}");
        assert!(text.contains("tally_synced_writes_total"), "{text}");
    }
}
