//! The node core: every decision above the consensus state machine that
//! consensus depends on, as a pure, synchronous function of its inputs.
//!
//! [`NodeCore::handle`] takes an [`Event`] and the time ([`Now`]) and
//! returns the [`Effect`]s to carry out, in order. It never signs, writes,
//! sends or reads a clock: it reads the chain's tip, its state and the
//! mempool through [`CoreEnv`], and asks for signatures, commits and
//! messages through effects. It decides which proposed bodies to keep
//! ([`Candidates`]), whether a block is valid (the one rule,
//! [`ChainRules`]), what to propose, when to commit, which timers to set,
//! what a restarted validator replays, when it may sign, what to send again
//! after a stall, and which equivocations become evidence.
//!
//! The driver (`driver.rs`) carries effects out in order and feeds back the
//! results: a signature as [`Event::Signed`], a commit as
//! [`Event::Committed`]. Outputs of the state machine that follow a
//! decision wait until the commit is reported, so the next height always
//! starts on the committed state. The simulation runs this same code.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use tally_consensus::{Consensus, Input, Output, SignerError, TimeoutKind, Timeouts};
use tally_ledger::crypto::PublicKey;
use tally_ledger::types::{Block, SignedProposal, VoteKind};
use tally_ledger::verify::ChainRules;
use tally_ledger::Hash;
use tracing::{debug, trace};

use crate::candidates::{Candidates, Offer};
use crate::wire::ConsensusMsg;

mod blocks;
mod io;
mod pause;
pub use io::{CoreEnv, CoreError, Effect, Event, Notice, Now, Signed, SignerView, Timer, Update};
pub use pause::{
    quorum_height, signing_pause, SigningPause, NEW_NETWORK_GRACE_MS, PAUSE_AHEAD_MAX,
};

/// Own messages of the current height kept for re-sending: a proposal and
/// two votes a round, for the rounds of the consensus window.
pub const OWN_MESSAGES_MAX: usize = 3 * (tally_consensus::ROUND_WINDOW as usize + 1);
/// With no commit for this long, the node sends its own messages of the
/// current height again (peers may have missed them).
pub const RESEND_AFTER_MS: u64 = 3_000;
// A message sent again must get a fresh gossip id, or peers drop it.
const _: () = assert!(RESEND_AFTER_MS as u128 > crate::network::GOSSIP_ID_PERIOD.as_millis());
/// One block behind its peers with no commit for this long, a node fetches
/// the block instead of waiting for consensus.
pub const SYNC_ONE_BEHIND_AFTER_MS: u64 = 2_000;
/// Whether a node at `tip` whose best believed peer is at `target` should
/// fetch blocks: when more than one behind, or one behind with no commit
/// for a while (one behind is normal for a moment: consensus brings it).
pub fn should_sync(tip: u64, target: u64, since_commit_ms: u64) -> bool {
    target > tip.saturating_add(1) || (target > tip && since_commit_ms >= SYNC_ONE_BEHIND_AFTER_MS)
}

/// Settings of the core.
#[derive(Debug, Clone)]
pub struct CoreSetup {
    /// The rules of the height after the tip.
    pub rules: Arc<ChainRules>,
    /// This node's consensus key, for a validator: it votes at the heights
    /// whose set holds it.
    pub key: Option<PublicKey>,
    pub empty_block_interval_ms: u64,
    pub fill: BlockFill,
    pub pause: Option<SigningPause>,
}

/// How full a proposer lets its block get before proposing. With fewer
/// than `min_txs` transactions pending it waits, at most `wait_ms` from the
/// moment it could propose (or the first transaction arrived, if later),
/// while more arrive. Fewer, fuller blocks cost fewer votes, signatures,
/// synced writes and state roots per transaction. The default (`min_txs`
/// 1) proposes as soon as anything is pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockFill {
    pub min_txs: usize,
    pub wait_ms: u64,
}

impl Default for BlockFill {
    fn default() -> Self {
        BlockFill {
            min_txs: 1,
            wait_ms: 0,
        }
    }
}

/// The core's state.
#[derive(Debug)]
pub struct NodeCore {
    /// The rules of the height after the tip.
    rules: Arc<ChainRules>,
    key: Option<PublicKey>,
    timeouts: Timeouts,
    empty_block_interval_ms: u64,
    fill: BlockFill,
    /// While a proposer waits to fill its block: when the wait ends.
    fill_deadline_ms: Option<u64>,
    /// When the build timer set last fires (a new one is set only if
    /// earlier).
    build_timer_at: Option<u64>,
    machine: Consensus,
    candidates: Candidates,
    /// Blocks consensus asked to validate before their body arrived, with
    /// the round they were proposed in.
    waiting_validation: HashMap<Hash, u32>,
    /// Round 0's proposer waits (a while) for transactions.
    waiting_build: Option<(u64, u32)>,
    /// A decided block whose commit is under way: the machine's further
    /// outputs wait for it.
    committing: Option<u64>,
    deferred: Vec<Output>,
    /// The block whose body was last kept for a lock.
    kept_lock: Option<Hash>,
    own_messages: Vec<ConsensusMsg>,
    last_commit_ms: u64,
    last_progress_ms: u64,
    pause: Option<SigningPause>,
    /// What the machine asked to sign while the pause waited to hear the
    /// network: signed if the network turns out to be new (the machine
    /// does not repeat a step it has taken).
    held: Vec<Output>,
    signer_fault: Option<String>,
    /// Offences recorded at heights not yet committed (height, validator,
    /// round, step): each once, however many conflicting votes are signed.
    offences: BTreeSet<(u64, u32, u32, bool)>,
    /// Whether consensus was started once (a later restart at the height
    /// the machine is at keeps it).
    started: bool,
}

impl NodeCore {
    /// A core for the height after `tip`; send [`Event::Restart`] first.
    pub fn new(setup: CoreSetup, tip: u64, now: Now) -> Self {
        let timeouts = Timeouts::from(&setup.rules.params);
        let me = setup.key.and_then(|k| setup.rules.set.index_of(&k));
        let machine = Consensus::new(
            &setup.rules.chain_id,
            (*setup.rules.set).clone(),
            me,
            timeouts,
            tip.saturating_add(1),
        );
        NodeCore {
            candidates: Candidates::new(tip.saturating_add(1)),
            rules: setup.rules,
            key: setup.key,
            timeouts,
            empty_block_interval_ms: setup.empty_block_interval_ms,
            fill: setup.fill,
            fill_deadline_ms: None,
            build_timer_at: None,
            machine,
            waiting_validation: HashMap::new(),
            waiting_build: None,
            committing: None,
            deferred: Vec::new(),
            kept_lock: None,
            own_messages: Vec::new(),
            last_commit_ms: now.mono_ms,
            last_progress_ms: now.mono_ms,
            pause: setup.pause,
            held: Vec::new(),
            signer_fault: None,
            offences: BTreeSet::new(),
            started: false,
        }
    }

    /// The height consensus is deciding.
    pub fn height(&self) -> u64 {
        self.machine.height()
    }

    pub fn round(&self) -> u32 {
        self.machine.round()
    }

    pub fn machine(&self) -> &Consensus {
        &self.machine
    }

    pub fn pause(&self) -> Option<&SigningPause> {
        self.pause.as_ref()
    }

    pub fn signer_fault(&self) -> Option<&str> {
        self.signer_fault.as_deref()
    }

    /// Proposed bodies held.
    pub fn candidates(&self) -> &Candidates {
        &self.candidates
    }

    /// Milliseconds since the last commit.
    pub fn since_commit_ms(&self, now: Now) -> u64 {
        now.mono_ms.saturating_sub(self.last_commit_ms)
    }

    /// Feeds one event; returns what to do, in order.
    pub fn handle<E: CoreEnv>(
        &mut self,
        event: Event,
        now: Now,
        env: &E,
    ) -> Result<Vec<Effect>, CoreError> {
        let mut fx = Vec::new();
        let outputs = match event {
            Event::Restart(view) => self.restart(*view, now, env, &mut fx)?,
            Event::Proposal { proposal, block } => {
                self.on_proposal(proposal, *block, now, env, &mut fx)
            }
            Event::Vote(v) => self.machine.handle(Input::Vote(v)),
            Event::Timer(Timer::Consensus {
                height,
                round,
                kind,
            }) => self.machine.handle(Input::TimeoutElapsed {
                height,
                round,
                kind,
            }),
            Event::Timer(Timer::BuildBlock { height, round }) => {
                // A timer that has fired is no longer pending, whether or
                // not the wait it served is still on.
                if self.build_timer_at.is_some_and(|t| now.mono_ms >= t) {
                    self.build_timer_at = None;
                }
                if self.waiting_build == Some((height, round)) {
                    self.request_build(height, round, now, env, &mut fx)?
                } else {
                    Vec::new()
                }
            }
            Event::Signed(signed) => self.on_signed(signed, &mut fx),
            Event::SignFailed(e) => {
                self.on_sign_failed(e, &mut fx);
                Vec::new()
            }
            Event::Committed => self.on_committed(now, env, &mut fx)?,
            Event::TxsArrived => match self.waiting_build {
                Some((height, round)) if !env.mempool_is_empty() => {
                    self.request_build(height, round, now, env, &mut fx)?
                }
                _ => Vec::new(),
            },
            Event::PeersHeard(h) => self.on_peers_heard(h, env, &mut fx),
            Event::Tick => {
                if now.mono_ms.saturating_sub(self.last_progress_ms) >= RESEND_AFTER_MS {
                    self.last_progress_ms = now.mono_ms;
                    for m in &self.own_messages {
                        fx.push(Effect::Broadcast(m.clone()));
                    }
                    // The prevotes behind its lock, too: a peer that missed
                    // one (its author restarted without it, or equivocated)
                    // cannot otherwise see the polka, and would prevote nil
                    // for the locked value for ever.
                    if let Some((round, value)) = self.machine.locked() {
                        let me = self.me();
                        for v in self.machine.polka_votes(round, value) {
                            if Some(v.validator_index) != me {
                                fx.push(Effect::Broadcast(ConsensusMsg::Vote(v)));
                            }
                        }
                    }
                }
                Vec::new()
            }
        };
        self.run(outputs, now, env, &mut fx)?;
        Ok(fx)
    }

    /// (Re)starts consensus at the height after the tip, honouring what the
    /// signer persisted: its round, its lock (with the polka that justified
    /// it, and the block's body) and the votes it signed, sent again.
    fn restart<E: CoreEnv>(
        &mut self,
        view: SignerView,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<Output>, CoreError> {
        let height = env.tip().height.saturating_add(1);
        if self.started && self.machine.height() == height && self.committing.is_none() {
            // Block sync brought the block consensus had already decided
            // (without its body): the machine is at the right height with
            // everything it signed there; keep it, and judge the blocks
            // that waited for their parent.
            self.follow_sets(env)?;
            return Ok(self.resume(now, env, fx));
        }
        self.started = true;
        self.follow_sets(env)?;
        self.machine = Consensus::new(
            &self.rules.chain_id,
            (*self.rules.set).clone(),
            self.key.and_then(|k| self.rules.set.index_of(&k)),
            self.timeouts,
            height,
        );
        self.follow_sets(env)?;
        let mut view = view;
        // The signer's records hold what was signed, not where the signer
        // stood in the set: its place is this height's.
        match self.me() {
            Some(me) => view.votes.iter_mut().for_each(|v| v.validator_index = me),
            None => view.votes.clear(),
        }
        self.own_messages.clear();
        self.stop_waiting_to_build();
        self.waiting_validation.clear();
        self.committing = None;
        self.deferred.clear();
        self.offences.retain(|o| o.0 >= height);
        self.candidates.advance(height);
        self.check_pause(env.tip().height, fx);
        self.last_progress_ms = now.mono_ms;
        if self.me().is_some() {
            self.machine.restore(view.round.unwrap_or(0), view.lock);
            if let (Some((_, hash)), Some(block)) = (view.lock, view.locked_block) {
                if block.hash() == hash && block.height() == height {
                    self.kept_lock = Some(hash);
                    self.candidates.restore_locked(block);
                }
            }
        }
        let mut out = self.machine.start();
        for v in view.votes.iter().chain(&view.lock_proof) {
            out.extend(self.machine.handle(Input::Vote(v.clone())));
        }
        for v in view.votes {
            let msg = ConsensusMsg::Vote(v);
            fx.push(Effect::Broadcast(msg.clone()));
            self.keep_own(msg);
        }
        Ok(out)
    }

    /// Follows the chain's membership to the height after the tip: the
    /// rules of that height and this node's place in its set, and the set
    /// of the height after it, which the machine moves to when it decides
    /// (the state after the tip already names it).
    fn follow_sets<E: CoreEnv>(&mut self, env: &E) -> Result<(), CoreError> {
        let height = env.tip().height.saturating_add(1);
        if self.rules.height != height {
            self.rules = Arc::new(self.rules.at_height(env.state(), height)?);
        }
        if self.machine.height() == height {
            let next = self.rules.next_set(env.state())?;
            let next_me = self.key.and_then(|k| next.index_of(&k));
            self.machine.set_next((*next).clone(), next_me);
        }
        Ok(())
    }

    /// The rules of the height after the tip.
    pub fn rules(&self) -> &Arc<ChainRules> {
        &self.rules
    }

    /// This node's index in the set of the height consensus is deciding,
    /// if it is a validator there: the index its votes carry. The machine
    /// moves to the next height (and its set) when it decides, which may be
    /// before the decided block is committed here.
    pub fn me(&self) -> Option<u32> {
        self.machine.me()
    }

    /// The tip moved under a machine already at the next height.
    fn resume<E: CoreEnv>(&mut self, now: Now, env: &E, fx: &mut Vec<Effect>) -> Vec<Output> {
        let tip = env.tip().height;
        self.last_commit_ms = now.mono_ms;
        self.last_progress_ms = now.mono_ms;
        self.offences.retain(|o| o.0 > tip);
        self.candidates.advance(tip.saturating_add(1));
        self.check_pause(tip, fx);
        let mut out = Vec::new();
        let waiting: Vec<(Hash, u32)> = self.waiting_validation.drain().collect();
        for (hash, round) in waiting {
            out.extend(self.judge(tip.saturating_add(1), round, hash, now, env, fx));
        }
        out
    }

    /// Validates a block consensus asked about and hands the machine its
    /// verdict, or keeps the request until the block (or its parent) is
    /// here.
    fn judge<E: CoreEnv>(
        &mut self,
        height: u64,
        round: u32,
        block_hash: Hash,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Vec<Output> {
        match self.validate(height, round, block_hash, now, env, fx) {
            Some(valid) => self.machine.handle(Input::BlockVerdict {
                height,
                block_hash,
                valid,
            }),
            None => {
                self.waiting_validation.insert(block_hash, round);
                Vec::new()
            }
        }
    }

    fn on_proposal<E: CoreEnv>(
        &mut self,
        proposal: SignedProposal,
        block: Block,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Vec<Output> {
        let hash = proposal.proposal.block_hash;
        let height = proposal.proposal.height;
        let round = proposal.proposal.round;
        let tip = env.tip().height;
        let mut out = Vec::new();
        // A proposal for the height after ours carries the certificate of
        // ours: decide from it (this node missed the votes). The outputs
        // after the decision wait for its commit.
        if height == tip.saturating_add(2) && height == self.machine.height().saturating_add(1) {
            if let Some(cert) = block.last_commit.clone() {
                out.extend(self.machine.handle(Input::CommitFromSync(cert)));
            }
        }
        if let Offer::Refused(reason) = self.candidates.offer(round, block) {
            debug!(height, round, %reason, "proposal body not kept");
        }
        out.extend(self.machine.handle(Input::Proposal(proposal)));
        if let Some(round) = self.waiting_validation.remove(&hash) {
            out.extend(self.judge(height, round, hash, now, env, fx));
        }
        out
    }

    fn on_signed(&mut self, signed: Signed, fx: &mut Vec<Effect>) -> Vec<Output> {
        self.signer_fault = None;
        match signed {
            Signed::Vote(sv) => {
                let msg = ConsensusMsg::Vote(sv.clone());
                fx.push(Effect::Broadcast(msg.clone()));
                self.keep_own(msg);
                self.machine.handle(Input::Vote(sv))
            }
            Signed::Proposal(sp) => {
                let p = sp.proposal;
                let Some(candidate) = self.candidates.get(&p.block_hash) else {
                    return Vec::new();
                };
                let msg = ConsensusMsg::Proposal {
                    proposal: sp.clone(),
                    block: Box::new(candidate.block.clone()),
                };
                fx.push(Effect::Broadcast(msg.clone()));
                self.keep_own(msg);
                if let Some(vr) = p.pol_round {
                    for v in self.machine.polka_votes(vr, p.block_hash) {
                        fx.push(Effect::Broadcast(ConsensusMsg::Vote(v)));
                    }
                }
                fx.push(Effect::Notice(Notice::Proposed {
                    height: p.height,
                    round: p.round,
                    block_hash: p.block_hash,
                }));
                self.machine.handle(Input::Proposal(sp))
            }
        }
    }

    /// A refusal to sign a conflicting message is the signer doing its job;
    /// a failure to persist its state means this validator stops voting,
    /// which must not go unseen.
    fn on_sign_failed(&mut self, e: SignerError, fx: &mut Vec<Effect>) {
        match e {
            SignerError::Persist(_) | SignerError::Corrupt(_) => {
                self.signer_fault = Some(e.to_string());
                fx.push(Effect::Notice(Notice::SignerFault(e.to_string())));
            }
            SignerError::Regression { .. } | SignerError::Conflict { .. } => {
                fx.push(Effect::Notice(Notice::SignerRefused(e.to_string())));
            }
        }
        // The lock body rides with the precommit's record; a vote not
        // signed wrote neither, so the next precommit for that block must
        // carry the body again.
        self.kept_lock = None;
    }

    fn on_committed<E: CoreEnv>(
        &mut self,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<Output>, CoreError> {
        let tip = env.tip().height;
        self.follow_sets(env)?;
        self.committing = None;
        self.last_commit_ms = now.mono_ms;
        self.last_progress_ms = now.mono_ms;
        self.own_messages.clear();
        self.stop_waiting_to_build();
        self.waiting_validation.clear();
        self.offences.retain(|o| o.0 > tip);
        self.candidates.advance(tip.saturating_add(1));
        self.check_pause(tip, fx);
        Ok(std::mem::take(&mut self.deferred))
    }

    fn keep_own(&mut self, msg: ConsensusMsg) {
        if self.own_messages.len() >= OWN_MESSAGES_MAX {
            self.own_messages.remove(0);
        }
        self.own_messages.push(msg);
    }

    fn may_sign(&self) -> bool {
        self.me().is_some() && self.pause.is_none()
    }

    /// Carries the machine's outputs into effects, in order, feeding back
    /// verdicts and built blocks; follow-up outputs are handled too.
    fn run<E: CoreEnv>(
        &mut self,
        outputs: Vec<Output>,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Result<(), CoreError> {
        let mut work: VecDeque<Output> = outputs.into();
        while let Some(output) = work.pop_front() {
            if self.committing.is_some() {
                self.deferred.push(output);
                continue;
            }
            match output {
                Output::Propose(p) => {
                    if !self.may_sign() {
                        self.hold(Output::Propose(p));
                        continue;
                    }
                    if self.candidates.get(&p.block_hash).is_none() {
                        fx.push(Effect::Notice(Notice::CannotPropose {
                            height: p.height,
                            round: p.round,
                            reason: "the block body is not known".into(),
                        }));
                        continue;
                    }
                    fx.push(Effect::SignProposal(p));
                }
                Output::Vote(vote) => {
                    if !self.may_sign() {
                        self.hold(Output::Vote(vote));
                        continue;
                    }
                    if let (VoteKind::Precommit, Some(hash)) = (vote.kind, vote.value) {
                        if self.kept_lock != Some(hash) {
                            if let Some(c) = self.candidates.get(&hash) {
                                fx.push(Effect::PersistLockedBlock(Box::new(c.block.clone())));
                                self.kept_lock = Some(hash);
                            }
                        }
                    }
                    let polka = self.machine.lock_proof(&vote);
                    fx.push(Effect::SignVote { vote, polka });
                }
                Output::ScheduleTimeout {
                    height,
                    round,
                    kind,
                    duration_ms,
                } => {
                    // Round 0's proposer may wait up to the empty-block
                    // interval for transactions: everyone waits as long.
                    let extra = if kind == TimeoutKind::Propose && round == 0 {
                        self.empty_block_interval_ms
                    } else {
                        0
                    };
                    fx.push(Effect::SetTimer {
                        after_ms: duration_ms.saturating_add(extra),
                        timer: Timer::Consensus {
                            height,
                            round,
                            kind,
                        },
                    });
                }
                Output::RequestBlock { height, round } => {
                    work.extend(self.request_build(height, round, now, env, fx)?);
                }
                Output::ValidateBlock {
                    height,
                    round,
                    block_hash,
                } => work.extend(self.judge(height, round, block_hash, now, env, fx)),
                Output::Decide {
                    height,
                    round,
                    block_hash,
                    certificate,
                } => self.decided(height, round, block_hash, certificate, env, fx),
                Output::Evidence(e) => {
                    let v = &e.first.vote;
                    let offence = (
                        v.height,
                        e.validator_index(),
                        v.round,
                        v.kind == VoteKind::Precommit,
                    );
                    if self.offences.insert(offence) {
                        fx.push(Effect::RecordEvidence(Box::new(e)));
                    }
                }
                Output::Dropped(reason) => trace!(%reason, "consensus dropped a message"),
            }
        }
        if self.machine.height() == self.candidates.next() {
            self.candidates.set_round(self.machine.round());
            let locked = self.machine.locked().map(|(_, h)| h);
            let valid = self.machine.valid().map(|(_, h)| h);
            self.candidates.protect([locked, valid]);
        }
        Ok(())
    }
}
