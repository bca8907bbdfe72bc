//! `tally export postgres`: follows a node and writes every committed block
//! into PostgreSQL, each in one transaction with the checkpoint, after
//! verifying it as a node would (docs/postgres.md, ADR 17).
//!
//! The exporter trusts only the genesis file. It keeps a state tree of its
//! own (a Tally database in `--data`) and runs every block through the
//! chain's one validity rule ([`ChainRules`]): the link to its parent, the
//! certificate against the set of its height, the transactions' signatures,
//! and re-execution to the header's state root. The rows of state changes
//! come from that re-execution, so a node that serves a wrong block or
//! wrong state cannot put either into the database.
//!
//! Exactly once: the database is written first, the local tree second. On
//! start the two are brought level: blocks the tree holds past the
//! checkpoint are written from the tree (re-executed on its history),
//! blocks the database holds past the tree are re-verified from the node
//! and must hash as the database says, or the exporter refuses to go on.

pub mod schema;
pub mod status;
pub mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jsonrpsee_http_client::HttpClient;
use tokio::sync::watch;
use tracing::{info, warn};

use tally_ledger::genesis::Genesis;
use tally_ledger::store::Store;
use tally_ledger::types::{Block, CommitCertificate, BLOCK_BYTES_CAP};
use tally_ledger::verify::{ChainRules, Parent, Placement};
use tally_rpc::raw::{RawApiClient, RAW_BLOCKS_MAX};
use tally_rpc::types::U64;

use self::write::{Verified, WriteError};

/// How long to wait before trying the node or the database again.
const RETRY: Duration = Duration::from_secs(1);
/// How often to ask the node for new blocks when it has none.
const POLL: Duration = Duration::from_millis(200);
/// At the tip, at most one "exported" line this often.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the node's height is asked for the lag metrics.
const LAG_POLL: Duration = Duration::from_secs(2);
/// The session lock an exporter holds on its database ("tally-ex" in ASCII).
const EXPORTER_LOCK: i64 = 0x7461_6c6c_792d_6578;

/// The largest answer the node may send (a batch of raw blocks, hex).
const RESPONSE_BYTES_MAX: u32 = 64 << 20;

/// What `tally export postgres` runs with.
#[derive(Debug, Clone)]
pub struct ExportSpec {
    /// The node to follow (`http://host:port`).
    pub rpc: String,
    /// The chain's genesis: the only thing trusted.
    pub genesis: Genesis,
    pub dsn: String,
    /// The exporter's own state tree.
    pub data_dir: PathBuf,
    pub metrics: Option<SocketAddr>,
}

/// The exporter's figures for Prometheus.
///
/// The lags are computed when scraped, from the node's height (polled on
/// its own, whatever the database does) and the last written block's time,
/// so an export that stalls shows a growing lag rather than a frozen one.
#[derive(Debug, Default)]
pub struct ExportMetrics {
    pub height: prometheus_client::metrics::gauge::Gauge,
    pub chain_height: prometheus_client::metrics::gauge::Gauge,
    pub blocks: prometheus_client::metrics::counter::Counter,
    /// The time of the last written block (ms since the epoch).
    last_block_ms: std::sync::atomic::AtomicU64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ExportMetrics {
    pub fn render(&self) -> String {
        use prometheus_client::metrics::gauge::ConstGauge;
        let lag_blocks = (self.chain_height.get() - self.height.get()).max(0);
        let last = self
            .last_block_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        let lag_seconds = if last == 0 {
            0.0
        } else {
            now_ms().saturating_sub(last) as f64 / 1000.0
        };
        let mut r = prometheus_client::registry::Registry::with_prefix("tally_export");
        r.register(
            "height",
            "Last block written to PostgreSQL",
            self.height.clone(),
        );
        r.register(
            "chain_height",
            "Height of the followed node",
            self.chain_height.clone(),
        );
        r.register(
            "lag_blocks",
            "Blocks the node has that PostgreSQL lacks",
            ConstGauge::new(lag_blocks),
        );
        r.register(
            "lag_seconds",
            "Age of the last written block's time",
            ConstGauge::new(lag_seconds),
        );
        r.register(
            "blocks",
            "Blocks written to PostgreSQL",
            self.blocks.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        out
    }

    fn wrote(&self, block: &Block) {
        let h = i64::try_from(block.height()).unwrap_or(i64::MAX);
        self.height.set(h);
        if self.chain_height.get() < h {
            self.chain_height.set(h);
        }
        self.last_block_ms
            .store(block.header.time_ms, std::sync::atomic::Ordering::Relaxed);
        self.blocks.inc();
    }

    fn node_at(&self, tip: u64) {
        self.chain_height
            .set(i64::try_from(tip).unwrap_or(i64::MAX));
    }
}

/// Why one pass of the export stopped; all but a refusal are retried.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("{0}")]
    Refuse(String),
    #[error("the database: {0}")]
    Database(WriteError),
    #[error("the node: {0}")]
    Node(String),
    #[error("stopping")]
    Asked,
}

impl From<WriteError> for Stop {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Sql(_) => Stop::Database(e),
            other => Stop::Refuse(other.to_string()),
        }
    }
}

/// Runs the export until `stop` turns true; returns an error only for what
/// retrying cannot mend (another chain in the database, a block that does
/// not verify, a database that disagrees with the chain).
pub async fn run(spec: ExportSpec, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let store = Arc::new(Store::open(&spec.data_dir, &spec.genesis).with_context(|| {
        format!(
            "cannot open the exporter's data in {}",
            spec.data_dir.display()
        )
    })?);
    let metrics = Arc::new(ExportMetrics::default());
    if let Some(addr) = spec.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        info!(addr = %listener.local_addr()?, "serving export metrics on /metrics");
        let m = metrics.clone();
        tokio::spawn(crate::metrics::serve_text(
            listener,
            Arc::new(move || m.render()),
        ));
    }
    let node = jsonrpsee_http_client::HttpClientBuilder::default()
        .max_response_size(RESPONSE_BYTES_MAX)
        .request_timeout(Duration::from_secs(60))
        .build(&spec.rpc)
        .with_context(|| {
            format!(
                "{:?} is not a usable RPC address (expected http://host:port)",
                spec.rpc
            )
        })?;
    // The node's height for the lag, whether or not the database is up.
    let poll_node = node.clone();
    let poll_metrics = metrics.clone();
    let poller = tokio::spawn(async move {
        loop {
            if let Ok(s) = tally_rpc::LedgerApiClient::status(&poll_node).await {
                poll_metrics.node_at(s.latest_height.0);
            }
            tokio::time::sleep(LAG_POLL).await;
        }
    });
    let _stop_poller = AbortOnDrop(poller);
    loop {
        let pass = Pass {
            spec: &spec,
            store: &store,
            node: &node,
            metrics: &metrics,
        };
        match pass.run(&mut stop).await {
            Ok(()) | Err(Stop::Asked) => return Ok(()),
            Err(Stop::Refuse(why)) => anyhow::bail!("export refused: {why}"),
            Err(e) => {
                warn!(error = %e, "export interrupted; trying again in {} s", RETRY.as_secs())
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection to the database, from the checkpoint onwards.
struct Pass<'a> {
    spec: &'a ExportSpec,
    store: &'a Arc<Store>,
    node: &'a HttpClient,
    metrics: &'a ExportMetrics,
}

impl Pass<'_> {
    async fn run(&self, stop: &mut watch::Receiver<bool>) -> Result<(), Stop> {
        let (mut db, connection) = tokio_postgres::connect(&self.spec.dsn, tokio_postgres::NoTls)
            .await
            .map_err(|e| Stop::Database(WriteError::Sql(e)))?;
        let connection = tokio::spawn(connection);
        let result = self.follow(&mut db, stop).await;
        drop(db);
        let _ = connection.await;
        result
    }

    async fn follow(
        &self,
        db: &mut tokio_postgres::Client,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        // One exporter a database: a second one would only fight over
        // each block. The lock goes with the connection, so a killed
        // exporter's lock is freed when the server sees it gone.
        db.batch_execute("SET client_min_messages TO warning")
            .await
            .map_err(|e| Stop::Database(WriteError::Sql(e)))?;
        let locked: bool = db
            .query_one("SELECT pg_try_advisory_lock($1)", &[&EXPORTER_LOCK])
            .await
            .map_err(|e| Stop::Database(WriteError::Sql(e)))?
            .get(0);
        if !locked {
            return Err(Stop::Refuse(
                "another exporter is writing to this database (it holds the export's lock); stop it first or give this one another database".into(),
            ));
        }
        let applied = schema::migrate(db)
            .await
            .map_err(|e| Stop::Refuse(format!("cannot prepare the schema: {e}")))?;
        if !applied.is_empty() {
            info!(versions = ?applied, "applied schema migrations");
        }
        let mut at = write::checkpoint(db, &self.spec.genesis).await?;
        let mut rules =
            Arc::new(ChainRules::new(&self.spec.genesis).map_err(|e| Stop::Refuse(e.to_string()))?);
        info!(
            height = at.height,
            tree = self.store.height(),
            "export resumes"
        );
        let mut chain_height = 0;
        let mut logged = std::time::Instant::now()
            .checked_sub(LOG_EVERY)
            .unwrap_or_else(std::time::Instant::now);
        loop {
            if *stop.borrow() {
                return Err(Stop::Asked);
            }
            let next = at.height.min(self.store.height()) + 1;
            let batch = if next <= self.store.height() {
                vec![self.stored(next)?]
            } else {
                match self.fetch(next).await? {
                    Some((blocks, tip)) => {
                        chain_height = tip;
                        blocks
                    }
                    None => {
                        tokio::select! {
                            _ = tokio::time::sleep(POLL) => {}
                            _ = stop.changed() => {}
                        }
                        continue;
                    }
                }
            };
            for (block, cert, size) in batch {
                let h = block.height();
                let parent = self.parent_of(h)?;
                let placement = Placement {
                    parent,
                    round: cert.round,
                    now_ms: None,
                };
                rules = Arc::new(
                    rules
                        .at_height(&**self.store, h)
                        .map_err(|e| Stop::Refuse(format!("state of height {}: {e}", h - 1)))?,
                );
                let (update, changes) = verify(&rules, &block, &cert, size, &placement, self.store)
                    .map_err(|why| {
                        Stop::Refuse(format!(
                            "block {h} from {} does not verify: {why}",
                            self.spec.rpc
                        ))
                    })?;
                if h <= at.height {
                    // Written before this tree held it: it must be this block.
                    let written = write::block_hash(db, h).await?;
                    if written != Some(block.hash()) {
                        return Err(Stop::Refuse(format!(
                            "the database holds block {h} as {}, but the chain's block {h} is {}: it was written from another chain or altered; export into a new database",
                            written.map_or("nothing".into(), |w| w.to_hex()),
                            block.hash()
                        )));
                    }
                } else {
                    let v = Verified {
                        block: &block,
                        cert: &cert,
                        set: &rules.set,
                        size_bytes: size,
                        changes: &changes,
                    };
                    at = write::write_block(db, at, &v).await?;
                    self.metrics.wrote(&block);
                    if h % 1000 == 0 || (h == chain_height && logged.elapsed() >= LOG_EVERY) {
                        info!(
                            height = h,
                            chain = chain_height,
                            txs = block.txs.len(),
                            "exported"
                        );
                        logged = std::time::Instant::now();
                    }
                }
                if h > self.store.height() {
                    self.store
                        .commit_block(&block, &cert, &update)
                        .map_err(|e| {
                            Stop::Refuse(format!(
                                "cannot keep block {h} in {}: {e}",
                                self.spec.data_dir.display()
                            ))
                        })?;
                }
            }
        }
    }

    /// A block this exporter's tree already holds (verified when it came).
    fn stored(&self, h: u64) -> Result<(Block, CommitCertificate, usize), Stop> {
        let local = |e: String| Stop::Refuse(format!("the exporter's data: {e}"));
        let bytes = self
            .store
            .block_bytes(h)
            .map_err(|e| local(e.to_string()))?;
        let cert = self
            .store
            .certificate(h)
            .map_err(|e| local(e.to_string()))?;
        let (Some(bytes), Some(cert)) = (bytes, cert) else {
            return Err(local(format!("block {h} is missing")));
        };
        let block = Block::decode(&bytes, BLOCK_BYTES_CAP).map_err(|e| local(e.to_string()))?;
        Ok((block, cert, bytes.len()))
    }

    /// What block `h` attaches to, from this exporter's tree.
    fn parent_of(&self, h: u64) -> Result<Parent, Stop> {
        if h == 1 {
            return Ok(Parent {
                height: 0,
                hash: self.spec.genesis.hash(),
                time_ms: self.spec.genesis.genesis_time_ms,
            });
        }
        match self.store.block(h - 1) {
            Ok(Some(parent)) => Ok(Parent::of(&parent)),
            Ok(None) => Err(Stop::Refuse(format!(
                "the exporter's data lacks block {}",
                h - 1
            ))),
            Err(e) => Err(Stop::Refuse(format!("the exporter's data: {e}"))),
        }
    }

    /// Up to [`RAW_BLOCKS_MAX`] blocks from `from`, decoded, with the node's
    /// tip; `None` when the node has no block `from` yet.
    #[allow(clippy::type_complexity)] // one use
    async fn fetch(
        &self,
        from: u64,
    ) -> Result<Option<(Vec<(Block, CommitCertificate, usize)>, u64)>, Stop> {
        let tip = tally_rpc::LedgerApiClient::status(self.node)
            .await
            .map_err(|e| Stop::Node(e.to_string()))?
            .latest_height
            .0;
        self.metrics.node_at(tip);
        if tip < from {
            return Ok(None);
        }
        let raw = self
            .node
            .get_raw_blocks(U64(from), RAW_BLOCKS_MAX)
            .await
            .map_err(|e| Stop::Node(e.to_string()))?;
        let bad = |h: u64, what: &str, e: String| {
            Stop::Refuse(format!("the node sent block {h} with {what}: {e}"))
        };
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let h = from + i as u64;
            if r.height.0 != h {
                return Err(bad(h, "another height", r.height.0.to_string()));
            }
            let bytes = tally_ledger::encoding::hex_serde::parse_vec(&r.block, BLOCK_BYTES_CAP)
                .map_err(|e| bad(h, "bad hex", e))?;
            let block = Block::decode(&bytes, BLOCK_BYTES_CAP)
                .map_err(|e| bad(h, "an undecodable block", e.to_string()))?;
            let cert_bytes = tally_ledger::encoding::hex_serde::parse_vec(
                &r.certificate,
                tally_ledger::types::CERTIFICATE_BYTES_MAX,
            )
            .map_err(|e| bad(h, "bad certificate hex", e))?;
            let cert = CommitCertificate::decode(&cert_bytes)
                .map_err(|e| bad(h, "an undecodable certificate", e.to_string()))?;
            if block.height() != h {
                return Err(bad(
                    h,
                    "a block of another height",
                    block.height().to_string(),
                ));
            }
            out.push((block, cert, bytes.len()));
        }
        Ok(Some((out, tip.max(from))))
    }
}

/// Every part of the chain's validity rule, and the entries the block wrote.
fn verify(
    rules: &ChainRules,
    block: &Block,
    cert: &CommitCertificate,
    size: usize,
    placement: &Placement,
    store: &Store,
) -> Result<
    (
        tally_ledger::state::StateUpdate,
        Vec<tally_ledger::execution::StateChange>,
    ),
    String,
> {
    rules
        .check_block(block, size, placement)
        .map_err(|e| e.to_string())?;
    rules
        .check_certificates(block, Some(cert))
        .map_err(|e| e.to_string())?;
    rules.check_transactions(block).map_err(|e| e.to_string())?;
    rules
        .check_state_with_changes(block, store)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A stalled export shows a lag that grows with the node and the clock,
    /// not the one it had at its last write.
    #[test]
    fn lags_are_computed_when_scraped() {
        let m = ExportMetrics::default();
        let text = m.render();
        assert_eq!(sample(&text, "tally_export_lag_blocks"), 0.0);
        assert_eq!(sample(&text, "tally_export_lag_seconds"), 0.0);
        m.height.set(5);
        m.last_block_ms
            .store(now_ms() - 3_000, std::sync::atomic::Ordering::Relaxed);
        m.node_at(9);
        let text = m.render();
        assert_eq!(sample(&text, "tally_export_lag_blocks"), 4.0);
        assert!(sample(&text, "tally_export_lag_seconds") >= 3.0);
    }
}
