//! The consensus driver: the imperative shell around the node core
//! ([`crate::node_core::NodeCore`]). One task hands the core its events
//! (verified messages, timers, transactions arriving, peer heights, the
//! signer's answers, commits done) and carries out the effects it returns,
//! in order:
//!
//! 1. persist: the locked block's body (synced) before the precommit that
//!    locks on it;
//! 2. sign: through the signer, which persists its record (synced) before
//!    it releases a signature; the signature goes back to the core at once;
//! 3. send: broadcast what the core says, after it was signed;
//! 4. commit: one atomic synced write of block, certificate, indexes and
//!    state, then the mempool, subscribers and metrics; then the core hears
//!    `Committed` and only then starts the next height.
//!
//! Follow-up effects (those the core returns for a signature or a commit)
//! are carried out before the rest of the batch. The driver also answers
//! the node's requests (submit a transaction, status), keeps the mempool,
//! and runs block sync: planning requests, checking answers' signatures off
//! the task, and committing verified runs of blocks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use tally_consensus::Signer;
use tally_ledger::genesis::Genesis;
use tally_ledger::state::{PendingState, StateUpdate};
use tally_ledger::store::{Store, Tip, EVIDENCE_PAGE_MAX};
use tally_ledger::types::{Block, Evidence, SignedTx};
use tally_ledger::verify::ChainRules;
use tally_ledger::{Hash, Keypair};

use crate::mempool::{Mempool, MempoolError, MempoolLimits, PoolStatus};
use crate::metrics::Metrics;
use crate::network::{NetCommand, NetEvent};
pub use crate::node_core::SigningPause;
use crate::node_core::{
    signing_pause, CoreError, CoreSetup, Effect, Event, NodeCore, Now, SignerView, Timer,
};
use crate::sync::{PeerView, Sync};
use crate::wire::{ConsensusMsg, Status};

mod block_sync;
mod env;
mod events;
mod hearing;
mod membership;
mod notices;
mod writer;
pub use block_sync::CheckedBlocks;
use block_sync::SyncMeter;
pub use env::SignerRecords;
use env::{tip_view, NodeEnv, StoreView};
use writer::{CommitWriter, Writing};

/// A committed block, as announced to subscribers (devnet output, RPC).
#[derive(Debug, Clone)]
pub struct Committed {
    pub height: u64,
    pub block_hash: Hash,
    pub txs: Vec<Hash>,
    pub time_ms: u64,
}

/// What the node is doing, for `status` and tests.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The newest block in the store.
    pub height: u64,
    /// The newest decided block: one above `height` while its write is in
    /// flight. Consensus (and the signing pause) has moved past it already.
    pub decided_height: u64,
    pub block_hash: Option<Hash>,
    pub round: u32,
    /// The step of that round.
    pub step: tally_consensus::Step,
    /// The best height a believed peer reports (the sync target).
    pub peers_max_height: u64,
    pub catching_up: bool,
    /// Blocks committed per second by sync over the last seconds.
    pub sync_blocks_per_second: f64,
    /// Verified blocks waiting to be committed, and requests outstanding.
    pub sync_pending_blocks: usize,
    pub sync_requests: usize,
    pub peers: Vec<PeerView>,
    pub mempool_txs: usize,
    pub mempool_bytes: u64,
    /// Set while this validator holds back its signatures after a start
    /// with a missing or outdated signer state.
    pub signing_paused: Option<SigningPause>,
    /// The last failure to persist the signer state (the validator is not
    /// voting): `health` is not ok while it is set.
    pub signer_fault: Option<String>,
}

/// Requests to the driver (from RPC, tests, devnet).
#[derive(Debug)]
pub enum NodeRequest {
    /// Transactions with the verdicts of their chain and signature checks
    /// ([`crate::mempool::check_signatures`], made off this task).
    SubmitTxs {
        txs: Vec<(SignedTx, Result<(), MempoolError>)>,
        reply: oneshot::Sender<Vec<Result<Hash, MempoolError>>>,
    },
    TxStatus {
        hash: Hash,
        reply: oneshot::Sender<(Option<PoolStatus>, Option<SignedTx>)>,
    },
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
    Evidence {
        reply: oneshot::Sender<Vec<Evidence>>,
    },
}

/// Settings the driver needs.
#[derive(Debug)]
pub struct DriverSetup {
    pub genesis: Genesis,
    pub store: Arc<Store>,
    /// The validator key, for a validator.
    pub validator_key: Option<Keypair>,
    pub mempool: MempoolLimits,
    pub empty_block_interval: Duration,
    /// How full a proposer waits for its block to be, and how long.
    pub fill: crate::node_core::BlockFill,
    /// Added to the wall clock (`consensus.clock_offset_ms`).
    pub clock_offset_ms: i64,
    pub metrics: Arc<Metrics>,
}

/// The wall clock in ms, shifted by `offset_ms`.
fn now_ms(offset_ms: i64) -> u64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    real.saturating_add(offset_ms).max(0) as u64
}

/// How often the node announces its height and checks for stalls.
const TICK: Duration = Duration::from_millis(1000);

/// The running driver.
pub struct Driver {
    /// The one definition of a valid block (shared with the core and the
    /// audit); sync checks answers with it.
    store: Arc<Store>,
    core: NodeCore,
    /// The height whose membership the network was told of last, and the
    /// set (with its schedule) of the height after it.
    announced: Option<u64>,
    next_set: Option<crate::network::HeightSet>,
    signer: Option<Signer<SignerRecords>>,
    /// The lock body waiting for the precommit's record ([`SignerRecords`]).
    locking: Arc<Mutex<Option<Block>>>,
    mempool: Mempool,
    net: mpsc::Sender<NetCommand>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    /// The origin of the core's monotonic clock.
    started: Instant,
    clock_offset_ms: i64,
    outgoing_txs: Vec<SignedTx>,
    seq: u64,
    sync: Sync,
    checked_tx: mpsc::Sender<CheckedBlocks>,
    checked_rx: Option<mpsc::Receiver<CheckedBlocks>>,
    meter: SyncMeter,
    was_catching_up: bool,
    commits: broadcast::Sender<Committed>,
    metrics: Arc<Metrics>,
    /// A commit done whose report to the core waits for the next turn of
    /// the loop (see [`Driver::apply`]).
    committed_pending: bool,
    /// Makes decided blocks durable on its own thread.
    writer: CommitWriter,
    /// The decided block being written, if any: the core is already past
    /// it, over its state in memory.
    writing: Option<Writing>,
    /// Wakes the loop when a write ends.
    written_rx: Option<mpsc::UnboundedReceiver<u64>>,
    /// Heights validators reported while a signing pause lasts (see
    /// [`hearing`]).
    heard: BTreeMap<libp2p::PeerId, u64>,
    /// Since when a member has said the chain is past genesis while a home
    /// with no signer state and no blocks waits (see [`hearing`]).
    heard_above_since: Option<Instant>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Driver(height {})", self.core.height())
    }
}

/// Why the driver had to stop. A storage failure is fatal: the node must not
/// keep voting on a chain it cannot store.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("storage failed: {0}")]
    Store(#[from] tally_ledger::store::StoreError),
    #[error("the signer cannot start: {0}")]
    Signer(#[from] tally_consensus::SignerError),
    #[error("genesis validator set is invalid: {0}")]
    Genesis(#[from] tally_ledger::types::ValidatorSetError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("cannot start the commit writer thread: {0}")]
    Writer(#[from] std::io::Error),
}

impl Driver {
    pub fn new(
        setup: DriverSetup,
        net: mpsc::Sender<NetCommand>,
        commits: broadcast::Sender<Committed>,
    ) -> Result<Self, DriverError> {
        let tip = setup.store.height();
        let rules = Arc::new(
            ChainRules::new(&setup.genesis)?
                .at_height(&*setup.store, tip.saturating_add(1))
                .map_err(CoreError::from)?,
        );
        let locking = Arc::new(Mutex::new(None));
        let records = SignerRecords {
            store: setup.store.clone(),
            locking: locking.clone(),
        };
        // A validator key signs at the heights whose set holds it (its index
        // in the set is the core's to know, height by height).
        let my_key = setup.validator_key.as_ref().map(|k| k.public());
        let signer = match setup.validator_key {
            Some(key) => Some(Signer::new(key, &setup.genesis.chain_id, 0, records)?),
            None => None,
        };
        let passed = setup.store.signer_passed()?;
        let pause = signer.as_ref().and_then(|s| {
            let accounted = s.last_signed().map(|r| r.height).max(passed);
            signing_pause(accounted, tip)
        });
        match &pause {
            // A new home looks the same until the others are heard.
            Some(p) if p.awaiting_peers => info!(
                "this validator signs once it has heard the others: {}",
                p.reason
            ),
            Some(p) => warn!(
                until_past = p.until_past,
                "this validator will not sign yet: {}", p.reason
            ),
            None => {}
        }
        let started = Instant::now();
        let core = NodeCore::new(
            CoreSetup {
                rules,
                key: my_key,
                empty_block_interval_ms: setup.empty_block_interval.as_millis() as u64,
                fill: setup.fill,
                pause,
            },
            tip,
            Now {
                mono_ms: 0,
                wall_ms: now_ms(setup.clock_offset_ms),
            },
        );
        let (checked_tx, checked_rx) = mpsc::channel(crate::sync::MAX_REQUESTS * 2);
        let (written_tx, written_rx) = mpsc::unbounded_channel();
        let writer = CommitWriter::start(setup.store.clone(), written_tx)?;
        let mempool = Mempool::new(
            &setup.genesis.chain_id,
            setup.genesis.params.clone(),
            setup.mempool,
        );
        Ok(Driver {
            announced: None,
            next_set: None,
            store: setup.store,
            core,
            signer,
            locking,
            mempool,
            net,
            timers: BTreeMap::new(),
            timer_seq: 0,
            started,
            clock_offset_ms: setup.clock_offset_ms,
            outgoing_txs: Vec::new(),
            seq: 0,
            sync: Sync::new(),
            checked_tx,
            checked_rx: Some(checked_rx),
            meter: SyncMeter {
                since: Instant::now(),
                blocks: 0,
                txs: 0,
                rate: 0.0,
                logged: Instant::now(),
            },
            was_catching_up: false,
            commits,
            metrics: setup.metrics,
            committed_pending: false,
            writer,
            writing: None,
            written_rx: Some(written_rx),
            heard: BTreeMap::new(),
            heard_above_since: None,
        })
    }

    /// Runs until `shutdown` turns true or the network goes away.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        mut requests: mpsc::Receiver<NodeRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), DriverError> {
        self.restart()?;
        self.hear(None)?;
        let (Some(mut checked), Some(mut written)) =
            (self.checked_rx.take(), self.written_rx.take())
        else {
            return Ok(());
        };
        let mut tick = tokio::time::interval(TICK);
        let mut flush = tokio::time::interval(Duration::from_millis(25));
        loop {
            let next = self
                .timers
                .first_key_value()
                .map(|((at, _), _)| *at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                event = events.recv() => match event {
                    Some(e) => self.on_net_event(e)?,
                    None => break,
                },
                request = requests.recv() => {
                    if let Some(r) = request {
                        self.on_request(r)?;
                    }
                }
                Some(c) = checked.recv() => self.on_checked(c)?,
                // A wake-up for a write already settled (the next commit
                // waited for it) is stale.
                Some(height) = written.recv() => {
                    if self.writing.as_ref().is_some_and(|w| w.tip.height == height) {
                        self.settle()?;
                    }
                }
                _ = tokio::time::sleep_until(next.into()) => self.fire_timers()?,
                _ = tick.tick() => self.on_tick()?,
                _ = flush.tick() => self.flush_txs(),
                _ = std::future::ready(()), if self.committed_pending => {
                    self.committed_pending = false;
                    self.feed(Event::Committed)?;
                }
            }
        }
        // The block in hand is written before the node stops.
        self.settle()?;
        info!(height = self.store.height(), "consensus driver stopped");
        Ok(())
    }

    fn now(&self) -> Now {
        Now {
            mono_ms: self.started.elapsed().as_millis() as u64,
            wall_ms: now_ms(self.clock_offset_ms),
        }
    }

    /// (Re)starts consensus at the height after the tip with what the
    /// signer remembers of it.
    fn restart(&mut self) -> Result<(), DriverError> {
        // A restart starts after the tip on disk.
        self.settle()?;
        // A full restart supersedes a commit report still due.
        self.committed_pending = false;
        let height = self.store.height() + 1;
        let view = match &self.signer {
            None => SignerView::default(),
            Some(signer) => SignerView {
                round: signer.round_at(height),
                lock: signer.lock_at(height),
                lock_proof: signer.lock_proof_at(height),
                votes: signer.signed_at(height).1,
                locked_block: self.store.locked_block()?,
            },
        };
        self.feed(Event::Restart(Box::new(view)))
    }

    /// Hands the core one event and carries out what it returns.
    fn feed(&mut self, event: Event) -> Result<(), DriverError> {
        let proposal = matches!(event, Event::Proposal { .. });
        let started = Instant::now();
        let env = NodeEnv::new(&self.store, &self.mempool, self.writing.as_ref());
        let effects = self.core.handle(event, self.now(), &env)?;
        if proposal {
            self.metrics
                .proposal_handling_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        self.apply(effects)?;
        self.follow_membership()
    }

    /// Carries out effects in order; the effects that follow from one (a
    /// signature handed back, a commit reported) come before the rest.
    ///
    /// The first commit is reported to the core at once, so the next height
    /// starts without delay; a second commit in the same batch (a lone
    /// validator deciding height after height on its own) is reported on
    /// the next turn of the loop, so requests and shutdown are served
    /// between heights.
    fn apply(&mut self, effects: Vec<Effect>) -> Result<(), DriverError> {
        let mut queue: VecDeque<Effect> = effects.into();
        let mut committed = false;
        while let Some(effect) = queue.pop_front() {
            let Some(event) = self.carry_out(effect)? else {
                continue;
            };
            if event == Event::Committed {
                if committed {
                    self.committed_pending = true;
                    continue;
                }
                committed = true;
            }
            let env = NodeEnv::new(&self.store, &self.mempool, self.writing.as_ref());
            let more = self.core.handle(event, self.now(), &env)?;
            for e in more.into_iter().rev() {
                queue.push_front(e);
            }
        }
        self.metrics.round.set(i64::from(self.core.round()));
        self.metrics
            .candidates
            .set(self.core.candidates().len() as i64);
        Ok(())
    }

    /// Carries out one effect; returns the event that reports its result
    /// to the core, if it has one.
    fn carry_out(&mut self, effect: Effect) -> Result<Option<Event>, DriverError> {
        Ok(match effect {
            Effect::PersistLockedBlock(block) => {
                // Written with the precommit's record, which the core asks
                // for next; never later than the precommit is released.
                if let Ok(mut slot) = self.locking.lock() {
                    *slot = Some(*block);
                }
                None
            }
            Effect::SignVote { vote, polka } => {
                // Nothing is signed for the next height before the block
                // before it is durable: a signer record ahead of the disk
                // would, after a crash, leave a validator unable to sign
                // the height the disk lacks, and a lone validator (or a
                // whole network that crashed at once) with no copy of it.
                self.settle()?;
                let (Some(index), Some(signer)) = (self.core.me(), self.signer.as_mut()) else {
                    return Ok(None);
                };
                let result = signer.sign_vote_with_polka(&vote, &polka);
                // A lock body the signer did not write (it refused the
                // vote) must not ride with a later, unrelated record.
                if let Ok(mut slot) = self.locking.lock() {
                    slot.take();
                }
                Some(Event::vote_signed(vote, index, result))
            }
            Effect::SignProposal(proposal) => {
                // As for votes (above).
                self.settle()?;
                let Some(signer) = self.signer.as_mut() else {
                    return Ok(None);
                };
                let result = signer.sign_proposal(&proposal);
                Some(Event::proposal_signed(proposal, result))
            }
            Effect::Broadcast(msg) => {
                self.publish(msg);
                None
            }
            Effect::SetTimer { after_ms, timer } => {
                self.schedule(Duration::from_millis(after_ms), timer);
                None
            }
            Effect::Commit {
                block,
                certificate,
                update,
            } => {
                // One write at a time, in height order.
                self.settle()?;
                let update: Arc<StateUpdate> = Arc::from(update.0);
                let block: Arc<Block> = Arc::from(block);
                self.metrics
                    .decided_round
                    .observe(f64::from(certificate.round));
                self.decided(&block, &update);
                let writing = self.writer.write(block, Arc::new(certificate), update);
                self.writing = Some(writing);
                // The core goes on to the next height over the decided
                // block's state while the writer makes it durable.
                Some(Event::Committed)
            }
            Effect::RecordEvidence(e) => {
                // One record per offence, however many conflicting votes
                // the validator signs for that step.
                if self.store.record_evidence(&e)? {
                    self.metrics.evidence.inc();
                    warn!(
                        validator = e.validator_index(),
                        height = e.first.vote.height,
                        round = e.first.vote.round,
                        "equivocation evidence"
                    );
                }
                None
            }
            Effect::EvictTxs(evicted) => {
                for (hash, reason) in evicted {
                    self.metrics.rejected("failed_in_block");
                    self.mempool.evict(&hash, reason);
                }
                None
            }
            Effect::Notice(notice) => {
                self.notice(notice);
                None
            }
        })
    }

    fn publish(&mut self, msg: ConsensusMsg) {
        self.seq += 1;
        let _ = self
            .net
            .try_send(NetCommand::PublishConsensus { msg, seq: self.seq });
    }

    fn schedule(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .insert((Instant::now() + after, self.timer_seq), timer);
    }

    fn fire_timers(&mut self) -> Result<(), DriverError> {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            self.feed(Event::Timer(timer))?;
        }
        Ok(())
    }

    /// Waits for the block being written, if any, and reports it
    /// committed. A failed write stops the driver: the node must not go on
    /// past a block it cannot store.
    pub(super) fn settle(&mut self) -> Result<(), DriverError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        let tip = writing.wait()?;
        let block = &writing.block;
        info!(height = tip.height, round = writing.certificate.round, block = %tip.block_hash.short(), txs = block.txs.len(), "committed block");
        self.after_commit(&[(block, &writing.update)], tip)
    }

    /// What follows a decision, before the block is durable: the mempool
    /// drops what the block committed (the next proposal is built from the
    /// pool at once) and re-checks the rest against the block's state.
    fn decided(&mut self, block: &Block, update: &StateUpdate) {
        self.observe_block_interval();
        self.forget_committed(&update.tx_hashes_of(block), Some(update), block.height());
    }

    pub(super) fn observe_block_interval(&self) {
        self.metrics
            .block_interval_seconds
            .observe(self.core.since_commit_ms(self.now()) as f64 / 1000.0);
    }

    /// The mempool drops the committed `tx_hashes` and re-checks the rest
    /// against the state at `version` (the store, with `pending`, the
    /// update of a block not yet written, over it).
    pub(super) fn forget_committed(
        &mut self,
        tx_hashes: &[Hash],
        pending: Option<&StateUpdate>,
        version: u64,
    ) {
        let view = StoreView {
            state: PendingState::new(&*self.store, pending),
            version,
        };
        self.mempool.update(tx_hashes, &view);
        self.metrics.mempool_txs.set(self.mempool.len() as i64);
        self.metrics.mempool_bytes.set(self.mempool.bytes() as i64);
    }

    /// What follows a durable commit of `blocks` (each with the update it
    /// was committed with, ending at `tip`): the signer's record of heights
    /// passed, metrics, subscribers, and the new height announced.
    fn after_commit(
        &mut self,
        blocks: &[(&Block, &StateUpdate)],
        tip: Tip,
    ) -> Result<(), DriverError> {
        // Heights committed without this validator's signature are
        // accounted for, so a restart does not mistake them for a lost
        // signer state (not while paused: a restart must pause again).
        if let (Some(signer), None) = (&self.signer, self.core.pause()) {
            if signer.last_signed().is_none_or(|r| r.height < tip.height) {
                self.store.save_signer_passed(tip.height)?;
            }
        }
        self.metrics.height.set(tip.height as i64);
        for (block, update) in blocks {
            self.metrics.committed_txs.inc_by(block.txs.len() as u64);
            let _ = self.commits.send(Committed {
                height: block.height(),
                block_hash: block.hash(),
                txs: update.tx_hashes_of(block).into_owned(),
                time_ms: block.header.time_ms,
            });
        }
        let _ = self.net.try_send(NetCommand::PublishStatus(Status {
            height: tip.height,
            block_hash: tip.block_hash,
        }));
        Ok(())
    }

    fn flush_txs(&mut self) {
        if !self.outgoing_txs.is_empty() {
            let txs = std::mem::take(&mut self.outgoing_txs);
            let _ = self.net.try_send(NetCommand::PublishTxs(txs));
        }
    }

    fn on_tick(&mut self) -> Result<(), DriverError> {
        // Before block 1 too: a validator whose home is new or wiped waits
        // to hear where the network is (see [`hearing`]).
        let parent = self.store.parent_of_next();
        let _ = self.net.try_send(NetCommand::PublishStatus(Status {
            height: parent.height,
            block_hash: parent.hash,
        }));
        self.hear(None)?;
        // Transactions stuck behind a nonce gap for too long leave.
        let expired = self.mempool.expire(Instant::now());
        if expired > 0 {
            self.metrics
                .rejected_txs
                .get_or_create(&crate::metrics::ReasonLabel {
                    reason: "nonce_gap_expired".into(),
                })
                .inc_by(expired as u64);
            self.metrics.mempool_txs.set(self.mempool.len() as i64);
            self.metrics.mempool_bytes.set(self.mempool.bytes() as i64);
        }
        // A stall makes the core send this height's own messages again.
        self.feed(Event::Tick)?;
        self.request_blocks();
        self.report_sync();
        Ok(())
    }
}
