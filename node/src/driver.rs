//! The consensus driver: one task that feeds the state machine its inputs
//! (verified messages, timer expiries, verdicts on proposed blocks, blocks
//! to propose) and carries out its outputs (sign through the signer,
//! broadcast, schedule timers, commit decided blocks atomically with their
//! certificate, then update the mempool). It also answers the node's
//! requests (submit a transaction, status) and catches up from peers when
//! it is behind.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::PeerId;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use tally_consensus::{Consensus, Input, Output, Signer, TimeoutKind, Timeouts};
use tally_ledger::execution::{
    execute_block, execute_verified_block, ApplyError, BlockExecutor, TxError,
};
use tally_ledger::genesis::Genesis;
use tally_ledger::state::{read_account, AccountState, Overlay, StateUpdate};
use tally_ledger::store::Store;
use tally_ledger::types::{
    last_commit_hash, Block, CommitCertificate, Evidence, Header, SignedProposal, SignedTx,
    SignedVote, ValidatorSet,
};
use tally_ledger::verify::{check_block_header, check_block_links, check_block_signatures, Parent};
use tally_ledger::{Hash, Keypair, PublicKey};

use crate::mempool::{AccountView, Mempool, MempoolError, MempoolLimits, PoolStatus};
use crate::metrics::Metrics;
use crate::network::{NetCommand, NetEvent};
use crate::sync::{PeerView, Penalty, Sync};
use crate::wire::{ConsensusMsg, Status};

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
    pub height: u64,
    pub block_hash: Option<Hash>,
    pub round: u32,
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
}

/// Requests to the driver (from RPC, tests, devnet).
#[derive(Debug)]
pub enum NodeRequest {
    SubmitTx {
        tx: SignedTx,
        reply: oneshot::Sender<Result<Hash, MempoolError>>,
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
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Consensus {
        height: u64,
        round: u32,
        kind: TimeoutKind,
    },
    BuildBlock {
        height: u64,
        round: u32,
    },
}

#[derive(Debug)]
struct Candidate {
    block: Block,
    /// The state after the block, once it was executed and found valid.
    update: Option<StateUpdate>,
}

struct StoreView<'a> {
    store: &'a Store,
    version: u64,
}

impl AccountView for StoreView<'_> {
    fn account(&self, key: &PublicKey) -> Option<AccountState> {
        match read_account(self.store, key, self.version) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "state read failed");
                None
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How often the node announces its height and checks for stalls.
const TICK: Duration = Duration::from_millis(1000);
/// Own messages are sent again when no block was committed for this long.
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// One block behind its peers with no commit for this long, a node fetches
/// the block instead of waiting for consensus.
const SYNC_ONE_BEHIND_AFTER: Duration = Duration::from_secs(2);
/// How often sync progress is logged while catching up.
const SYNC_LOG_EVERY: Duration = Duration::from_secs(2);

/// Blocks of one sync answer after their signatures were checked (off the
/// driver task): the valid prefix, and why the next one failed, if one did.
#[derive(Debug)]
pub struct CheckedBlocks {
    peer: PeerId,
    from: u64,
    valid: Vec<(Block, CommitCertificate)>,
    invalid: Option<(u64, String)>,
}

/// Sync throughput, for logs and status.
#[derive(Debug)]
struct SyncMeter {
    since: Instant,
    blocks: u64,
    txs: u64,
    rate: f64,
    logged: Instant,
}
/// The running driver.
pub struct Driver {
    genesis: Genesis,
    set: ValidatorSet,
    store: Arc<Store>,
    machine: Consensus,
    signer: Option<Signer<Arc<Store>>>,
    my_index: Option<u32>,
    timeouts: Timeouts,
    mempool: Mempool,
    net: mpsc::Sender<NetCommand>,
    candidates: HashMap<Hash, Candidate>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    waiting_build: Option<(u64, u32)>,
    waiting_validation: HashSet<Hash>,
    last_commit_at: Instant,
    last_progress: Instant,
    empty_block_interval: Duration,
    own_messages: Vec<ConsensusMsg>,
    outgoing_txs: Vec<SignedTx>,
    seq: u64,
    sync: Sync,
    checked_tx: mpsc::Sender<CheckedBlocks>,
    checked_rx: Option<mpsc::Receiver<CheckedBlocks>>,
    meter: SyncMeter,
    was_catching_up: bool,
    /// The block whose body was last kept for a lock.
    kept_lock: Option<Hash>,
    evidence: Vec<Evidence>,
    commits: broadcast::Sender<Committed>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Driver(height {})", self.machine.height())
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
}

impl Driver {
    pub fn new(
        setup: DriverSetup,
        net: mpsc::Sender<NetCommand>,
        commits: broadcast::Sender<Committed>,
    ) -> Result<Self, DriverError> {
        let set = setup.genesis.validator_set()?;
        let timeouts = Timeouts::from(&setup.genesis.params);
        let height = setup.store.height() + 1;
        let (my_index, signer) = match setup.validator_key {
            Some(key) => {
                let index = set.index_of(&key.public());
                let signer = match index {
                    Some(i) => Some(Signer::new(
                        key,
                        &setup.genesis.chain_id,
                        i,
                        setup.store.clone(),
                    )?),
                    None => None,
                };
                (index, signer)
            }
            None => (None, None),
        };
        let machine = Consensus::new(
            &setup.genesis.chain_id,
            set.clone(),
            my_index,
            timeouts,
            height,
        );
        let (checked_tx, checked_rx) = mpsc::channel(crate::sync::MAX_REQUESTS * 2);
        let mempool = Mempool::new(
            &setup.genesis.chain_id,
            setup.genesis.params.clone(),
            setup.mempool,
        );
        Ok(Driver {
            genesis: setup.genesis,
            set,
            store: setup.store,
            machine,
            signer,
            my_index,
            timeouts,
            mempool,
            net,
            candidates: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            waiting_build: None,
            waiting_validation: HashSet::new(),
            last_commit_at: Instant::now(),
            last_progress: Instant::now(),
            empty_block_interval: setup.empty_block_interval,
            own_messages: Vec::new(),
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
            kept_lock: None,
            evidence: Vec::new(),
            commits,
            metrics: setup.metrics,
        })
    }

    fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    /// Runs until `shutdown` turns true or the network goes away.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<NetEvent>,
        mut requests: mpsc::Receiver<NodeRequest>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), DriverError> {
        self.start_height()?;
        let mut checked = match self.checked_rx.take() {
            Some(rx) => rx,
            None => return Ok(()),
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
                _ = tokio::time::sleep_until(next.into()) => self.fire_timers()?,
                _ = tick.tick() => self.on_tick()?,
                _ = flush.tick() => self.flush_txs(),
            }
        }
        info!(height = self.store.height(), "consensus driver stopped");
        Ok(())
    }

    /// (Re)starts consensus at the height after the tip, honouring what the
    /// signer persisted: its round, its lock (with the polka that justified
    /// it) and the votes it already signed, which are sent again.
    fn start_height(&mut self) -> Result<(), DriverError> {
        let height = self.store.height() + 1;
        self.machine = Consensus::new(
            self.chain_id(),
            self.set.clone(),
            self.my_index,
            self.timeouts,
            height,
        );
        self.own_messages.clear();
        self.waiting_build = None;
        self.waiting_validation.clear();
        let mut replay: Vec<SignedVote> = Vec::new();
        if let Some(signer) = &self.signer {
            let lock = signer.lock_at(height);
            self.machine
                .restore(signer.round_at(height).unwrap_or(0), lock);
            if let (Some((_, hash)), Some(block)) = (lock, self.store.locked_block()?) {
                if block.hash() == hash && block.height() == height {
                    self.kept_lock = Some(hash);
                    self.candidates.entry(hash).or_insert(Candidate {
                        block,
                        update: None,
                    });
                }
            }
            let (_proposals, votes) = signer.signed_at(height);
            replay.extend(votes.iter().cloned());
            replay.extend(signer.lock_proof_at(height));
            for v in votes {
                self.own_messages.push(ConsensusMsg::Vote(v));
            }
        }
        let mut out = self.machine.start();
        for v in replay {
            out.extend(self.machine.handle(Input::Vote(v)));
        }
        for m in self.own_messages.clone() {
            self.publish(m);
        }
        self.carry_out(out)
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
            match entry.remove() {
                Timer::Consensus {
                    height,
                    round,
                    kind,
                } => {
                    let out = self.machine.handle(Input::TimeoutElapsed {
                        height,
                        round,
                        kind,
                    });
                    self.carry_out(out)?;
                }
                Timer::BuildBlock { height, round } => {
                    if self.waiting_build == Some((height, round)) {
                        self.build_block(height, round)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Carries out the machine's outputs in order, feeding back what it
    /// signs; follow-up outputs are carried out too.
    fn carry_out(&mut self, outputs: Vec<Output>) -> Result<(), DriverError> {
        let mut work: std::collections::VecDeque<Output> = outputs.into();
        while let Some(output) = work.pop_front() {
            let mut feed: Vec<Input> = Vec::new();
            match output {
                Output::Propose(p) => {
                    let Some(signer) = self.signer.as_mut() else {
                        continue;
                    };
                    let Some(candidate) = self.candidates.get(&p.block_hash) else {
                        warn!(
                            height = p.height,
                            round = p.round,
                            "cannot propose: the block body is not known"
                        );
                        continue;
                    };
                    let block = candidate.block.clone();
                    match signer.sign_proposal(&p) {
                        Ok(signature) => {
                            let sp = SignedProposal {
                                proposal: p,
                                signature,
                            };
                            let msg = ConsensusMsg::Proposal {
                                proposal: sp.clone(),
                                block: Box::new(block),
                            };
                            self.own_messages.push(msg.clone());
                            self.publish(msg);
                            if let Some(vr) = p.pol_round {
                                for v in self.machine.polka_votes(vr, p.block_hash) {
                                    self.publish(ConsensusMsg::Vote(v));
                                }
                            }
                            info!(height = p.height, round = p.round, block = %p.block_hash.short(), "proposed");
                            feed.push(Input::Proposal(sp));
                        }
                        Err(e) => warn!(error = %e, "signer refused a proposal"),
                    }
                }
                Output::Vote(v) => {
                    let Some(index) = self.my_index else { continue };
                    self.keep_locked_block(&v)?;
                    let polka = self.machine.lock_proof(&v);
                    let Some(signer) = self.signer.as_mut() else {
                        continue;
                    };
                    match signer.sign_vote_with_polka(&v, &polka) {
                        Ok(signature) => {
                            let sv = SignedVote {
                                vote: v,
                                validator_index: index,
                                signature,
                            };
                            self.own_messages.push(ConsensusMsg::Vote(sv.clone()));
                            self.publish(ConsensusMsg::Vote(sv.clone()));
                            feed.push(Input::Vote(sv));
                        }
                        Err(e) => debug!(error = %e, "signer refused a vote"),
                    }
                }
                Output::ScheduleTimeout {
                    height,
                    round,
                    kind,
                    duration_ms,
                } => {
                    let mut after = Duration::from_millis(duration_ms);
                    // Round 0's proposer may wait up to the empty-block
                    // interval for transactions: everyone waits as long.
                    if kind == TimeoutKind::Propose && round == 0 {
                        after += self.empty_block_interval;
                    }
                    self.schedule(
                        after,
                        Timer::Consensus {
                            height,
                            round,
                            kind,
                        },
                    );
                    self.metrics.round.set(i64::from(self.machine.round()));
                }
                Output::RequestBlock { height, round } => {
                    let waited = self.last_commit_at.elapsed();
                    if !self.mempool.is_empty() || waited >= self.empty_block_interval {
                        self.build_block(height, round)?;
                    } else {
                        self.waiting_build = Some((height, round));
                        self.schedule(
                            self.empty_block_interval - waited,
                            Timer::BuildBlock { height, round },
                        );
                    }
                }
                Output::ValidateBlock {
                    height, block_hash, ..
                } => {
                    if let Some(valid) = self.validate(height, block_hash) {
                        feed.push(Input::BlockVerdict {
                            height,
                            block_hash,
                            valid,
                        });
                    } else {
                        self.waiting_validation.insert(block_hash);
                    }
                }
                Output::Decide {
                    height,
                    round,
                    block_hash,
                    certificate,
                } => {
                    self.commit_decided(height, round, block_hash, certificate)?;
                }
                Output::Evidence(e) => {
                    warn!(
                        validator = e.validator_index(),
                        height = e.first.vote.height,
                        "equivocation evidence"
                    );
                    if self.evidence.len() < 1000 {
                        self.evidence.push(e);
                    }
                }
                Output::Dropped(reason) => debug!(%reason, "consensus dropped a message"),
            }
            for input in feed {
                work.extend(self.machine.handle(input));
            }
        }
        Ok(())
    }

    /// Before a precommit for a block (which locks on it), keeps the block's
    /// body in the store, so that after a restart the lock the signer
    /// restores names a block this node holds.
    fn keep_locked_block(&mut self, vote: &tally_ledger::types::Vote) -> Result<(), DriverError> {
        let (tally_ledger::types::VoteKind::Precommit, Some(hash)) = (vote.kind, vote.value) else {
            return Ok(());
        };
        if self.kept_lock == Some(hash) {
            return Ok(());
        }
        if let Some(candidate) = self.candidates.get(&hash) {
            self.store.save_locked_block(&candidate.block)?;
            self.kept_lock = Some(hash);
        }
        Ok(())
    }

    /// Builds the block to propose from the mempool: candidates are executed
    /// in order and those that fail are evicted with their reason.
    fn build_block(&mut self, height: u64, round: u32) -> Result<(), DriverError> {
        self.waiting_build = None;
        if height != self.store.height() + 1 {
            return Ok(());
        }
        let params = self.genesis.params.clone();
        let chain_id = self.genesis.chain_id.clone();
        let base = height - 1;
        let candidates = self.mempool.candidates(
            params.block_txs_max as usize,
            params.block_bytes_max as usize - 64 * 1024,
        );
        let mut exec = BlockExecutor::new(&*self.store, Some(base), &chain_id, &params);
        let mut txs = Vec::with_capacity(candidates.len());
        let mut evicted = Vec::new();
        for tx in candidates {
            match exec.apply(&tx) {
                Ok(()) => txs.push(tx),
                // A later nonce waits for the ones before it (they may still
                // be on their way through gossip): not an error yet.
                Err(ApplyError::Tx(TxError::BadNonce { expected, found })) if found > expected => {}
                Err(e) => evicted.push((tx.hash(), e.to_string())),
            }
        }
        let update = exec
            .finish(height)
            .map_err(tally_ledger::store::StoreError::from)?;
        for (hash, reason) in evicted {
            self.metrics.rejected("failed_in_block");
            self.mempool.evict(&hash, reason);
        }
        let parent = self.store.parent_of_next();
        let last_commit = match self.store.tip() {
            Some(t) => self.store.certificate(t.height)?,
            None => None,
        };
        let proposer = self
            .signer
            .as_ref()
            .map(|s| s.public_key())
            .unwrap_or(PublicKey([0; 32]));
        let mut block = Block {
            header: Header {
                chain_id: chain_id.clone(),
                height,
                time_ms: now_ms().max(parent.time_ms + 1),
                prev_hash: parent.hash,
                tx_root: Hash::ZERO,
                state_root: update.root,
                validators_hash: self.set.hash(),
                proposer,
                last_commit_hash: last_commit_hash(last_commit.as_ref()),
            },
            txs,
            last_commit,
        };
        block.header.tx_root = block.compute_tx_root();
        let block_hash = block.hash();
        debug!(height, round, txs = block.txs.len(), "built block");
        self.candidates.insert(
            block_hash,
            Candidate {
                block,
                update: Some(update),
            },
        );
        let out = self.machine.handle(Input::BlockToPropose {
            height,
            round,
            block_hash,
        });
        self.carry_out(out)
    }

    /// Validates a proposed block: `Some(verdict)`, or `None` while the
    /// block or its parent is not here yet.
    fn validate(&mut self, height: u64, block_hash: Hash) -> Option<bool> {
        if height != self.store.height() + 1 {
            return None;
        }
        let candidate = self.candidates.get(&block_hash)?;
        if candidate.update.is_some() {
            return Some(true);
        }
        match self.check_block(&candidate.block) {
            Ok(update) => {
                if let Some(c) = self.candidates.get_mut(&block_hash) {
                    c.update = Some(update);
                }
                Some(true)
            }
            Err(reason) => {
                warn!(height, block = %block_hash.short(), %reason, "invalid proposed block");
                Some(false)
            }
        }
    }

    /// Every check a block must pass before it is voted for or committed
    /// (except its own certificate): links, roots, limits, proposer, and
    /// re-execution to the header's state root.
    fn check_block(&self, block: &Block) -> Result<StateUpdate, String> {
        let params = &self.genesis.params;
        let size = tally_ledger::encoding::encode(block).len();
        if size as u64 > params.block_bytes_max {
            return Err(format!(
                "block is {size} bytes, more than {}",
                params.block_bytes_max
            ));
        }
        self.check_on(block, &self.store.parent_of_next(), &*self.store, false)
    }

    /// The rules a block must meet on top of `parent`, with `state` holding
    /// the state before it: links, roots, limits, proposer, and re-execution
    /// to the header's state root. With `signatures_checked` its
    /// `last_commit` and transaction signatures were verified already (sync
    /// does that in parallel, off this task).
    fn check_on<R: tally_ledger::state::StateReader>(
        &self,
        block: &Block,
        parent: &Parent,
        state: &R,
        signatures_checked: bool,
    ) -> Result<StateUpdate, String> {
        let params = &self.genesis.params;
        let chain_id = self.chain_id();
        let txs_max = params.block_txs_max;
        if signatures_checked {
            check_block_links(block, parent, &self.set, chain_id, txs_max)
        } else {
            check_block_header(block, parent, &self.set, chain_id, txs_max)
        }
        .map_err(|e| e.to_string())?;
        if self.set.index_of(&block.header.proposer).is_none() {
            return Err(format!(
                "proposer {} is not a validator",
                block.header.proposer
            ));
        }
        let (height, txs) = (block.height(), &block.txs);
        if signatures_checked {
            execute_verified_block(state, height, chain_id, params, txs)
        } else {
            execute_block(state, height, chain_id, params, txs)
        }
        .map_err(|e| e.to_string())
        .and_then(|update| {
            if update.root == block.header.state_root {
                Ok(update)
            } else {
                Err(format!(
                    "state root after execution is {}, the header says {}",
                    update.root, block.header.state_root
                ))
            }
        })
    }

    fn commit_decided(
        &mut self,
        height: u64,
        round: u32,
        block_hash: Hash,
        certificate: CommitCertificate,
    ) -> Result<(), DriverError> {
        if height != self.store.height() + 1 {
            return Ok(()); // already committed through sync
        }
        let Some(candidate) = self.candidates.remove(&block_hash) else {
            warn!(height, block = %block_hash.short(), "decided a block this node does not hold; it will sync it");
            return Ok(());
        };
        let update = match candidate.update {
            Some(u) => u,
            None => match self.check_block(&candidate.block) {
                Ok(u) => u,
                Err(reason) => {
                    warn!(height, %reason, "decided block fails local checks; refusing to commit, will sync");
                    return Ok(());
                }
            },
        };
        self.commit(&candidate.block, &certificate, &update)?;
        debug!(height, round, "decided");
        Ok(())
    }

    fn commit(
        &mut self,
        block: &Block,
        cert: &CommitCertificate,
        update: &StateUpdate,
    ) -> Result<(), DriverError> {
        let tip = self.store.commit_block(block, cert, update)?;
        info!(height = tip.height, hash = %tip.block_hash.short(), txs = block.txs.len(), "committed block");
        self.after_commit(&[block], tip);
        Ok(())
    }

    /// What follows a commit of `blocks` (ending at `tip`): metrics, the
    /// mempool, subscribers, and the new height announced.
    fn after_commit(&mut self, blocks: &[&Block], tip: tally_ledger::store::Tip) {
        let interval = self.last_commit_at.elapsed();
        self.last_commit_at = Instant::now();
        self.last_progress = Instant::now();
        self.metrics
            .block_interval_seconds
            .observe(interval.as_secs_f64());
        self.metrics.height.set(tip.height as i64);
        let view = StoreView {
            store: &self.store,
            version: tip.height,
        };
        for block in blocks {
            self.metrics.committed_txs.inc_by(block.txs.len() as u64);
            self.mempool.update(&block.txs, &view);
            let _ = self.commits.send(Committed {
                height: block.height(),
                block_hash: block.hash(),
                txs: block.tx_hashes(),
                time_ms: block.header.time_ms,
            });
        }
        self.metrics.mempool_txs.set(self.mempool.len() as i64);
        self.metrics.mempool_bytes.set(self.mempool.bytes() as i64);
        self.candidates.retain(|_, c| c.block.height() > tip.height);
        self.own_messages.clear();
        let _ = self.net.try_send(NetCommand::PublishStatus(Status {
            height: tip.height,
            block_hash: tip.block_hash,
        }));
    }

    fn on_net_event(&mut self, event: NetEvent) -> Result<(), DriverError> {
        match event {
            NetEvent::Consensus(ConsensusMsg::Vote(v)) => {
                let out = self.machine.handle(Input::Vote(v));
                self.carry_out(out)?;
            }
            NetEvent::Consensus(ConsensusMsg::Proposal { proposal, block }) => {
                let hash = block.hash();
                let height = block.height();
                // A proposal for the height after ours carries the
                // certificate of ours: decide from it (we missed the votes).
                if height == self.store.height() + 2 && height == self.machine.height() + 1 {
                    if let Some(cert) = block.last_commit.clone() {
                        let out = self.machine.handle(Input::CommitFromSync(cert));
                        self.carry_out(out)?;
                    }
                }
                if height > self.store.height()
                    && height <= self.store.height() + 2
                    && self.candidates.len() < 64
                {
                    self.candidates.entry(hash).or_insert(Candidate {
                        block: *block,
                        update: None,
                    });
                }
                let mut out = self.machine.handle(Input::Proposal(proposal));
                if self.waiting_validation.remove(&hash) {
                    if let Some(valid) = self.validate(height, hash) {
                        out.extend(self.machine.handle(Input::BlockVerdict {
                            height,
                            block_hash: hash,
                            valid,
                        }));
                    } else {
                        self.waiting_validation.insert(hash);
                    }
                }
                self.carry_out(out)?;
            }
            NetEvent::Txs(txs) => {
                let view = StoreView {
                    store: &self.store,
                    version: self.store.height(),
                };
                for tx in txs {
                    if let Err(e) = self.mempool.admit_verified(tx, &view) {
                        if !matches!(e, MempoolError::Duplicate(_)) {
                            self.metrics.rejected(e.kind());
                        }
                    }
                }
                self.after_txs_arrived()?;
            }
            NetEvent::Status { peer, status, seq } => {
                if let Some(p) = self
                    .sync
                    .on_status(peer, status.height, seq, Instant::now())
                {
                    self.penalised(peer, p, "it reported a lower height than before");
                }
                if status.height > self.store.height() {
                    self.request_blocks();
                }
            }
            NetEvent::Blocks {
                peer,
                from,
                to,
                blocks,
            } => self.on_blocks(peer, from, to, blocks),
            NetEvent::BlocksFailed {
                peer,
                from,
                to,
                reason,
            } => {
                debug!(%peer, from, to, %reason, "block request failed");
                self.sync.on_failed(peer, from, Instant::now());
                self.request_blocks();
            }
            NetEvent::Listening(_) => {}
        }
        Ok(())
    }

    fn after_txs_arrived(&mut self) -> Result<(), DriverError> {
        self.metrics.mempool_txs.set(self.mempool.len() as i64);
        self.metrics.mempool_bytes.set(self.mempool.bytes() as i64);
        if let Some((height, round)) = self.waiting_build {
            if !self.mempool.is_empty() {
                self.build_block(height, round)?;
            }
        }
        Ok(())
    }

    fn on_request(&mut self, request: NodeRequest) -> Result<(), DriverError> {
        match request {
            NodeRequest::SubmitTx { tx, reply } => {
                let view = StoreView {
                    store: &self.store,
                    version: self.store.height(),
                };
                let result = self.mempool.admit(tx.clone(), &view);
                match &result {
                    Ok(_) => self.outgoing_txs.push(tx),
                    Err(e) => self.metrics.rejected(e.kind()),
                }
                let _ = reply.send(result);
                self.after_txs_arrived()?;
            }
            NodeRequest::TxStatus { hash, reply } => {
                let _ = reply.send((self.mempool.status(&hash), self.mempool.get(&hash).cloned()));
            }
            NodeRequest::Status { reply } => {
                let tip = self.store.tip();
                let now = Instant::now();
                let height = tip.map_or(0, |t| t.height);
                let (pending, requests) = self.sync.pending();
                let _ = reply.send(NodeStatus {
                    height,
                    block_hash: tip.map(|t| t.block_hash),
                    round: self.machine.round(),
                    peers_max_height: self.sync.target(now),
                    catching_up: self.sync.catching_up(height, now),
                    sync_blocks_per_second: self.meter.rate,
                    sync_pending_blocks: pending,
                    sync_requests: requests,
                    peers: self.sync.peers(now),
                    mempool_txs: self.mempool.len(),
                    mempool_bytes: self.mempool.bytes(),
                });
            }
            NodeRequest::Evidence { reply } => {
                let _ = reply.send(self.evidence.clone());
            }
        }
        Ok(())
    }

    fn flush_txs(&mut self) {
        if !self.outgoing_txs.is_empty() {
            let txs = std::mem::take(&mut self.outgoing_txs);
            let _ = self.net.try_send(NetCommand::PublishTxs(txs));
        }
    }

    fn on_tick(&mut self) -> Result<(), DriverError> {
        if let Some(tip) = self.store.tip() {
            let _ = self.net.try_send(NetCommand::PublishStatus(Status {
                height: tip.height,
                block_hash: tip.block_hash,
            }));
        }
        // Stalled: send this height's own messages again (peers may have
        // missed them while disconnected).
        if self.last_progress.elapsed() >= RESEND_AFTER {
            self.last_progress = Instant::now();
            for m in self.own_messages.clone() {
                self.publish(m);
            }
        }
        self.request_blocks();
        self.report_sync();
        Ok(())
    }

    fn penalised(&mut self, peer: PeerId, penalty: Penalty, what: &str) {
        self.metrics
            .sync_rejected
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: penalty.reason().to_string(),
            })
            .inc();
        let score = self.sync.score(&peer);
        warn!(%peer, reason = penalty.reason(), score, "peer scored down: {what}");
    }

    /// Sends the block requests sync wants now: when more than one block
    /// behind, or one behind with no commit for a while (one block behind is
    /// normal for a moment in consensus: the block arrives by consensus).
    fn request_blocks(&mut self) {
        let tip = self.store.height();
        let now = Instant::now();
        let target = self.sync.target(now);
        let behind = target > tip + 1
            || (target > tip && self.last_commit_at.elapsed() >= SYNC_ONE_BEHIND_AFTER);
        if !behind {
            return;
        }
        for (peer, from, to) in self.sync.plan(tip, now) {
            debug!(%peer, from, to, "requesting blocks");
            if self
                .net
                .try_send(NetCommand::RequestBlocks { peer, from, to })
                .is_err()
            {
                self.sync.on_failed(peer, from, Instant::now());
            }
        }
    }

    /// Metrics every tick; a progress line every few seconds while catching
    /// up, and one when it starts and ends.
    fn report_sync(&mut self) {
        let now = Instant::now();
        let tip = self.store.height();
        let target = self.sync.target(now);
        let catching_up = self.sync.catching_up(tip, now);
        self.metrics.catching_up.set(i64::from(catching_up));
        self.metrics.sync_target_height.set(target as i64);
        for v in self.sync.peers(now) {
            self.metrics
                .peer_score
                .get_or_create(&crate::metrics::PeerLabel {
                    peer: v.peer.to_string(),
                })
                .set(i64::from(v.score));
        }
        let elapsed = self.meter.since.elapsed();
        if elapsed >= SYNC_LOG_EVERY {
            self.meter.rate = self.meter.blocks as f64 / elapsed.as_secs_f64();
            let tx_rate = self.meter.txs as f64 / elapsed.as_secs_f64();
            if catching_up && self.meter.logged.elapsed() >= SYNC_LOG_EVERY {
                info!(
                    height = tip,
                    target,
                    behind = target.saturating_sub(tip),
                    blocks_per_s = format!("{:.0}", self.meter.rate),
                    txs_per_s = format!("{tx_rate:.0}"),
                    "catching up"
                );
                self.meter.logged = now;
            }
            self.meter.since = now;
            self.meter.blocks = 0;
            self.meter.txs = 0;
        }
        if catching_up != self.was_catching_up {
            if catching_up {
                info!(
                    height = tip,
                    target, "behind the network: syncing blocks from peers"
                );
            } else {
                info!(height = tip, "caught up: following consensus");
            }
            self.was_catching_up = catching_up;
        }
    }

    /// An answer to a block request: hand it to a blocking thread for the
    /// signature checks (several answers are checked in parallel).
    fn on_blocks(
        &mut self,
        peer: PeerId,
        from: u64,
        to: u64,
        blocks: Vec<(Block, CommitCertificate)>,
    ) {
        match self.sync.on_answer(peer, from, to, &blocks, Instant::now()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(p) => {
                self.penalised(peer, p, "bad answer to a block request");
                self.request_blocks();
                return;
            }
        }
        let set = self.set.clone();
        let chain_id = self.genesis.chain_id.clone();
        let params = self.genesis.params.clone();
        let out = self.checked_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut valid = Vec::with_capacity(blocks.len());
            let mut invalid = None;
            for (block, cert) in blocks {
                match check_block_signatures(&block, &cert, &set, &chain_id, &params) {
                    Ok(_) => valid.push((block, cert)),
                    Err(e) => {
                        invalid = Some((block.height(), e.to_string()));
                        break;
                    }
                }
            }
            let _ = out.blocking_send(CheckedBlocks {
                peer,
                from,
                valid,
                invalid,
            });
        });
    }

    fn on_checked(&mut self, checked: CheckedBlocks) -> Result<(), DriverError> {
        let CheckedBlocks {
            peer,
            from,
            valid,
            invalid,
        } = checked;
        if let Some((height, reason)) = &invalid {
            warn!(%peer, height, %reason, "peer served an invalid block");
        }
        self.sync
            .on_checked(peer, from, valid, invalid.is_some(), Instant::now());
        if invalid.is_some() {
            self.penalised(peer, Penalty::InvalidBlock, "it served an invalid block");
        }
        self.commit_synced()?;
        self.request_blocks();
        Ok(())
    }

    /// Executes the verified blocks that extend the tip, in order, and
    /// commits each run in one atomic write; restarts consensus at the new
    /// height.
    fn commit_synced(&mut self) -> Result<(), DriverError> {
        let before = self.store.height();
        loop {
            let run = self.sync.take_ready(self.store.height());
            if run.is_empty() {
                break;
            }
            let (good, bad) = self.execute_run(&run);
            if !good.is_empty() {
                let items: Vec<(&Block, &CommitCertificate, &StateUpdate)> = good
                    .iter()
                    .zip(&run)
                    .map(|(u, r)| (&r.block, &r.cert, u))
                    .collect();
                let tip = self.store.commit_blocks(&items)?;
                let blocks: Vec<&Block> = run[..good.len()].iter().map(|r| &r.block).collect();
                self.meter.blocks += blocks.len() as u64;
                self.meter.txs += blocks.iter().map(|b| b.txs.len() as u64).sum::<u64>();
                self.metrics.sync_blocks.inc_by(blocks.len() as u64);
                debug!(
                    from = blocks[0].height(),
                    to = tip.height,
                    "committed synced blocks"
                );
                self.after_commit(&blocks, tip);
            }
            if let Some((index, reason)) = bad {
                let r = &run[index];
                warn!(peer = %r.peer, height = r.block.height(), %reason, "peer served an invalid block");
                self.sync.on_invalid_block(r.peer, Instant::now());
                self.penalised(r.peer, Penalty::InvalidBlock, "it served an invalid block");
                break;
            }
        }
        if self.store.height() > before {
            if !self.sync.catching_up(self.store.height(), Instant::now()) {
                info!(
                    from = before + 1,
                    to = self.store.height(),
                    "committed blocks from peers"
                );
            }
            self.start_height()?;
        }
        Ok(())
    }

    /// Links and re-executes a run of blocks on top of the tip, over an
    /// in-memory overlay of the state: the updates of the valid prefix, and
    /// the position and reason of the first invalid block.
    fn execute_run(
        &self,
        run: &[crate::sync::Ready],
    ) -> (Vec<StateUpdate>, Option<(usize, String)>) {
        let tip = self.store.height();
        let mut overlay = Overlay::new(Some((&*self.store, tip)));
        let mut parent = self.store.parent_of_next();
        let mut updates = Vec::with_capacity(run.len());
        for (index, r) in run.iter().enumerate() {
            let block = &r.block;
            let checked = self.check_on(block, &parent, &overlay, true);
            match checked {
                Ok(update) => {
                    overlay.top.apply(&update.batch.node_batch);
                    parent = Parent {
                        height: block.height(),
                        hash: block.hash(),
                        time_ms: block.header.time_ms,
                    };
                    updates.push(update);
                }
                Err(reason) => return (updates, Some((index, reason))),
            }
        }
        (updates, None)
    }
}
