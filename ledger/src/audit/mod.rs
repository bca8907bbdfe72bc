//! The offline audit: re-verifies a stored chain from genesis (or a trusted
//! height) to its tip and names the first fault.
//!
//! Every check block sync makes is made again, with the same code: hash
//! links, roots, limits, the proposer, every commit certificate and every
//! embedded `last_commit`, every transaction signature, and re-execution
//! from the genesis state to each header's state root. Then the stored state
//! is compared with the replayed one and the indexes with the blocks.
//!
//! Work runs as a pipeline: one thread reads and decodes blocks, a pool
//! checks signatures and everything else that needs no state (in parallel,
//! batch-verified), and the calling thread executes blocks in order against
//! an in-memory replay of the state. The first fault in height order wins,
//! whichever thread found it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::execution::genesis_state;
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::state::{self, Overlay};
use crate::store::{Store, StoreError};
use crate::types::{Block, CommitCertificate};
use crate::verify::{ChainRules, Parent};

mod checks;
use checks::{check_stateless, execute, final_checks};

/// What kind of fault the audit found. Each has its own exit code, so
/// scripts can tell them apart without parsing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    /// The database belongs to another chain (another genesis).
    WrongChain,
    /// A block or certificate the chain must have is not stored.
    Missing,
    /// Stored bytes do not decode, or a record is not where it says it is.
    Undecodable,
    /// A header is wrong: link, height, chain, time, roots over the block's
    /// own content, proposer, size, or it was altered after being decided.
    Header,
    /// A commit certificate (stored, or embedded as `last_commit`) is not a
    /// valid quorum of the validator set for the block.
    Certificate,
    /// A transaction is invalid: signature, limits, sender, nonce, balance.
    Transaction,
    /// Replaying the transactions does not give the recorded state root, or
    /// the stored state differs from the replayed one.
    State,
    /// An index (block hash to height, tx hash to position, the tip record)
    /// disagrees with the blocks.
    Index,
}

impl FaultClass {
    /// The process exit code `tally audit` uses for this class (0 means no
    /// fault, 1 that the audit could not run, 2 a usage error).
    pub fn exit_code(self) -> i32 {
        match self {
            FaultClass::WrongChain => 10,
            FaultClass::Missing => 11,
            FaultClass::Undecodable => 12,
            FaultClass::Header => 13,
            FaultClass::Certificate => 14,
            FaultClass::Transaction => 15,
            FaultClass::State => 16,
            FaultClass::Index => 17,
        }
    }

    pub const ALL: [FaultClass; 8] = [
        FaultClass::WrongChain,
        FaultClass::Missing,
        FaultClass::Undecodable,
        FaultClass::Header,
        FaultClass::Certificate,
        FaultClass::Transaction,
        FaultClass::State,
        FaultClass::Index,
    ];
}

/// The first fault found: where, which check, and what was expected and
/// found there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub class: FaultClass,
    pub height: u64,
    /// A short name of the check that failed (`tx_root`, `prev_hash`, ...).
    pub check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<String>,
    pub message: String,
}

impl Fault {
    fn new(class: FaultClass, height: u64, check: &'static str, message: String) -> Self {
        Fault {
            class,
            height,
            check,
            expected: None,
            found: None,
            message,
        }
    }

    fn with(mut self, expected: impl ToString, found: impl ToString) -> Self {
        self.expected = Some(expected.to_string());
        self.found = Some(found.to_string());
        self
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "height {}: {} ({} check failed)",
            self.height, self.message, self.check
        )
    }
}

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// First height to check (1 = from genesis). For a later height the
    /// stored state of the height before is trusted as the starting point.
    pub from: u64,
    /// Last height to check; `None` = the tip.
    pub to: Option<u64>,
    /// Threads checking signatures and stateless rules.
    pub threads: usize,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            from: 1,
            to: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// What was checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub from: u64,
    pub to: u64,
    /// The tip the database records.
    pub tip: u64,
    /// Blocks fully checked (before the fault, if any).
    pub blocks: u64,
    pub txs: u64,
    /// Signatures verified: transactions, certificates and `last_commit`s.
    pub signatures: u64,
    pub elapsed_ms: u64,
    /// The changes of the validator set checked: the heights from which a
    /// new set decided blocks.
    pub set_changes: Vec<SetChange>,
}

/// A validator set that took over at `height`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetChange {
    pub height: u64,
    pub validators: usize,
    pub total_power: u64,
    pub validators_hash: String,
}

impl Summary {
    pub fn tx_rate(&self) -> f64 {
        rate(self.txs, self.elapsed_ms)
    }

    pub fn block_rate(&self) -> f64 {
        rate(self.blocks, self.elapsed_ms)
    }
}

fn rate(n: u64, ms: u64) -> f64 {
    n as f64 * 1000.0 / (ms.max(1) as f64)
}

/// The audit's result. `fault == None` means every check held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub summary: Summary,
    pub fault: Option<Fault>,
}

impl Report {
    /// 0 when the chain verified, else the fault class's exit code.
    pub fn exit_code(&self) -> i32 {
        self.fault.as_ref().map_or(0, |f| f.class.exit_code())
    }
}

/// Progress as blocks are confirmed, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub height: u64,
    pub from: u64,
    pub to: u64,
    pub txs: u64,
}

/// The audit could not run at all (as opposed to finding a fault).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("--from {from} is above --to {to}")]
    EmptyRange { from: u64, to: u64 },
    #[error("--to {to} is above the tip ({tip})")]
    BeyondTip { to: u64, tip: u64 },
    #[error("--from must be at least 1")]
    FromZero,
}

/// Opens `db` for auditing beside a possibly running node (as a secondary
/// instance with its files in `scratch`). A database of another chain is a
/// fault, not an error.
pub fn open(
    db: &std::path::Path,
    scratch: &std::path::Path,
    genesis: &Genesis,
) -> Result<Result<Store, Fault>, AuditError> {
    match Store::open_secondary(db, scratch, genesis) {
        Ok(store) => Ok(Ok(store)),
        Err(StoreError::WrongChain {
            expected, found, ..
        }) => Ok(Err(Fault::new(
            FaultClass::WrongChain,
            0,
            "genesis",
            format!(
                "the database belongs to another chain: its genesis is {found}, the given genesis is {expected}"
            ),
        )
        .with(expected, found))),
        Err(e) => Err(e.into()),
    }
}

/// A block read from the store, placed after its parent.
struct Item {
    block: Block,
    hash: Hash,
    cert: CommitCertificate,
    parent: Parent,
    encoded_len: usize,
}

/// A block whose stateless checks all passed.
struct Checked {
    item: Item,
    /// The block's transaction hashes, computed once.
    tx_hashes: Vec<Hash>,
    signatures: u64,
}

type Chunk<T> = (u64, Vec<Result<T, Fault>>);

/// Rules shared by the checking threads.
struct Rules<'a> {
    store: &'a Store,
    genesis: &'a Genesis,
    chain: ChainRules,
}

/// Audits heights `from..=to` of `store` against `genesis`.
pub fn audit(
    store: &Store,
    genesis: &Genesis,
    options: &AuditOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, AuditError> {
    let started = Instant::now();
    let tip = store.height();
    let to = options.to.unwrap_or(tip);
    let from = options.from;
    if from == 0 {
        return Err(AuditError::FromZero);
    }
    if to > tip {
        return Err(AuditError::BeyondTip { to, tip });
    }
    if from > to && !(tip == 0 && options.to.is_none()) {
        return Err(AuditError::EmptyRange { from, to });
    }
    let chain = ChainRules::new(genesis)
        .map_err(|e| StoreError::Rejected(format!("the genesis validator set is invalid: {e}")))?;
    let rules = Rules {
        store,
        genesis,
        chain,
    };
    let mut summary = Summary {
        from,
        to,
        tip,
        ..Summary::default()
    };
    let fault = run(
        &rules,
        from,
        to,
        options.threads.max(1),
        &mut summary,
        progress,
    )?;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(Report { summary, fault })
}

fn run(
    rules: &Rules<'_>,
    from: u64,
    to: u64,
    threads: usize,
    summary: &mut Summary,
    progress: &mut dyn FnMut(Progress),
) -> Result<Option<Fault>, AuditError> {
    let store = rules.store;
    // The starting point: genesis, or the stored (trusted) height before.
    let (start, mut replay) = if from == 1 {
        let parent = Parent {
            height: 0,
            hash: store.genesis_hash(),
            time_ms: rules.genesis.genesis_time_ms,
        };
        let mut replay = Replay::new(None);
        let update = genesis_state(&replay, rules.genesis).map_err(StoreError::from)?;
        replay.top.apply_latest(&update.batch);
        (parent, replay)
    } else {
        let base = from - 1;
        let Some(block) = read_block(store, base)? else {
            return Ok(Some(missing(base, "block")));
        };
        let block = match block {
            Ok((b, _)) => b,
            Err(f) => return Ok(Some(f)),
        };
        let root = state::root_at(store, base).map_err(StoreError::from)?;
        if root != block.header.state_root {
            return Ok(Some(
                Fault::new(
                    FaultClass::State,
                    base,
                    "stored_state_root",
                    "the stored state the audit would start from does not match its block's state root".into(),
                )
                .with(block.header.state_root, root),
            ));
        }
        let parent = Parent {
            height: base,
            hash: block.hash(),
            time_ms: block.header.time_ms,
        };
        (parent, Replay::new(Some((store, base))))
    };
    if from > to {
        return Ok(None); // an empty chain: nothing to check
    }

    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|scope| -> Result<Option<Fault>, AuditError> {
        let (item_tx, item_rx) = mpsc::sync_channel::<Chunk<Item>>(threads * 2);
        let (checked_tx, checked_rx) = mpsc::sync_channel::<Chunk<Checked>>(threads * 2);
        let item_rx = Arc::new(Mutex::new(item_rx));
        let stop = &stop;
        let reader = scope.spawn(move || read_blocks(store, start, to, item_tx, stop));
        for _ in 0..threads {
            let rx = item_rx.clone();
            let tx = checked_tx.clone();
            scope.spawn(move || check_blocks(rules, rx, tx, stop));
        }
        drop(checked_tx);
        drop(item_rx);

        let mut pending: BTreeMap<u64, Vec<Result<Checked, Fault>>> = BTreeMap::new();
        let mut chain = rules.chain.clone();
        let mut next_seq = 0u64;
        let mut fault = None;
        'outer: while let Ok((seq, chunk)) = checked_rx.recv() {
            pending.insert(seq, chunk);
            while let Some(chunk) = pending.remove(&next_seq) {
                next_seq += 1;
                for checked in chunk {
                    match checked.and_then(|c| execute(&mut chain, &mut replay, c, summary)) {
                        Ok(height) => progress(Progress {
                            height,
                            from,
                            to,
                            txs: summary.txs,
                        }),
                        Err(f) => {
                            fault = Some(f);
                            break 'outer;
                        }
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(checked_rx);
        match reader.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) if fault.is_none() => return Err(e.into()),
            Ok(Err(_)) => {}
            Err(_) => {
                return Err(StoreError::Rejected("the block reader thread panicked".into()).into())
            }
        }
        if fault.is_none() && summary.blocks != to - from + 1 {
            return Err(StoreError::Rejected("a checking thread stopped early".into()).into());
        }
        Ok(fault)
    })?;
    if result.is_some() {
        return Ok(result);
    }
    final_checks(rules, &replay, from, to, summary)
}

fn missing(height: u64, what: &'static str) -> Fault {
    Fault::new(
        FaultClass::Missing,
        height,
        what,
        format!("the {what} at height {height} is not stored"),
    )
}

/// Reads and decodes the block at `height`: `None` if absent.
#[allow(clippy::type_complexity)]
fn read_block(
    store: &Store,
    height: u64,
) -> Result<Option<Result<(Block, usize), Fault>>, StoreError> {
    let Some(bytes) = store.block_bytes(height)? else {
        return Ok(None);
    };
    let block = match Block::decode(&bytes, crate::types::BLOCK_BYTES_CAP) {
        Ok(b) => b,
        Err(e) => {
            return Ok(Some(Err(Fault::new(
                FaultClass::Undecodable,
                height,
                "block_encoding",
                format!("the block stored at height {height} does not decode: {e}"),
            ))))
        }
    };
    if block.height() != height {
        return Ok(Some(Err(Fault::new(
            FaultClass::Undecodable,
            height,
            "block_position",
            format!(
                "the block stored at height {height} says it is height {}",
                block.height()
            ),
        )
        .with(height, block.height()))));
    }
    Ok(Some(Ok((block, bytes.len()))))
}

fn read_item(
    store: &Store,
    height: u64,
    parent: Parent,
) -> Result<Result<Item, Fault>, StoreError> {
    let (block, encoded_len) = match read_block(store, height)? {
        None => return Ok(Err(missing(height, "block"))),
        Some(Err(f)) => return Ok(Err(f)),
        Some(Ok(b)) => b,
    };
    let Some(cert_bytes) = store.certificate_bytes(height)? else {
        return Ok(Err(missing(height, "certificate")));
    };
    let cert = match CommitCertificate::decode(&cert_bytes) {
        Ok(c) => c,
        Err(e) => {
            return Ok(Err(Fault::new(
                FaultClass::Undecodable,
                height,
                "certificate_encoding",
                format!("the certificate stored at height {height} does not decode: {e}"),
            )))
        }
    };
    Ok(Ok(Item {
        hash: block.hash(),
        block,
        cert,
        parent,
        encoded_len,
    }))
}

/// Blocks per chunk handed to a checking thread, and the transactions that
/// end a chunk early (so large blocks spread over the threads).
const CHUNK_BLOCKS: usize = 64;
const CHUNK_TXS: usize = 2_000;

fn read_blocks(
    store: &Store,
    start: Parent,
    to: u64,
    out: mpsc::SyncSender<Chunk<Item>>,
    stop: &AtomicBool,
) -> Result<(), StoreError> {
    let mut parent = start;
    let mut seq = 0u64;
    let mut chunk = Vec::new();
    let mut chunk_txs = 0usize;
    for height in start.height + 1..=to {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let item = read_item(store, height, parent)?;
        let failed = item.is_err();
        if let Ok(item) = &item {
            parent = Parent {
                height,
                hash: item.hash,
                time_ms: item.block.header.time_ms,
            };
            chunk_txs += item.block.txs.len();
        }
        chunk.push(item);
        if failed || chunk.len() >= CHUNK_BLOCKS || chunk_txs >= CHUNK_TXS || height == to {
            if out.send((seq, std::mem::take(&mut chunk))).is_err() {
                return Ok(());
            }
            seq += 1;
            chunk_txs = 0;
        }
        if failed {
            return Ok(());
        }
    }
    Ok(())
}

fn check_blocks(
    rules: &Rules<'_>,
    input: Arc<Mutex<mpsc::Receiver<Chunk<Item>>>>,
    out: mpsc::SyncSender<Chunk<Checked>>,
    stop: &AtomicBool,
) {
    loop {
        let next = match input.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, items)) = next else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let result = item.and_then(|i| check_stateless(rules, i));
            let failed = result.is_err();
            results.push(result);
            if failed {
                break;
            }
        }
        if out.send((seq, results)).is_err() {
            return;
        }
    }
}

/// The replayed state: over nothing (from genesis) or over the stored
/// state of a trusted height.
type Replay<'a> = Overlay<'a, Store>;
