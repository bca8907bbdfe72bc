//! The Tendermint state machine of "The latest gossip on BFT consensus"
//! (Buchman, Kwon, Milosevic, arXiv:1807.04938), Algorithm 1.
//!
//! Inputs in, outputs out: the machine never signs, sleeps, writes or sends.
//! Messages handed in must already have their signatures verified by the
//! caller (the node verifies them in batches). Rule functions are named
//! after the paper's line numbers.

use std::collections::{BTreeMap, BTreeSet};

use tally_ledger::genesis::Params;
use tally_ledger::proposer::ProposerSchedule;
use tally_ledger::types::{
    CommitCertificate, Evidence, Proposal, SignedProposal, SignedVote, ValidatorSet, Vote, VoteKind,
};
use tally_ledger::verify::verify_certificate;
use tally_ledger::Hash;

use crate::votes::{Added, DropReason, VoteKeeper, ROUND_WINDOW};

mod rules;

/// The step within a round. Ordered: propose < prevote < precommit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Propose,
    Prevote,
    Precommit,
}

/// Which timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TimeoutKind {
    Propose,
    Prevote,
    Precommit,
}

/// Timeout lengths: `base + delta * round`, so rounds lengthen until the
/// network is fast enough to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub propose_ms: u64,
    pub prevote_ms: u64,
    pub precommit_ms: u64,
    pub delta_ms: u64,
}

impl Timeouts {
    pub fn duration_ms(&self, kind: TimeoutKind, round: u32) -> u64 {
        let base = match kind {
            TimeoutKind::Propose => self.propose_ms,
            TimeoutKind::Prevote => self.prevote_ms,
            TimeoutKind::Precommit => self.precommit_ms,
        };
        base.saturating_add(self.delta_ms.saturating_mul(u64::from(round)))
    }
}

impl From<&Params> for Timeouts {
    fn from(p: &Params) -> Self {
        Timeouts {
            propose_ms: p.timeout_propose_ms,
            prevote_ms: p.timeout_prevote_ms,
            precommit_ms: p.timeout_precommit_ms,
            delta_ms: p.timeout_delta_ms,
        }
    }
}

/// What the machine is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A proposal whose signature the caller verified against
    /// `proposer(height, round)`.
    Proposal(SignedProposal),
    /// A vote whose signature the caller verified against its validator.
    Vote(SignedVote),
    /// A timeout scheduled earlier has elapsed.
    TimeoutElapsed {
        height: u64,
        round: u32,
        kind: TimeoutKind,
    },
    /// The verdict on a block the machine asked to validate.
    BlockVerdict {
        height: u64,
        block_hash: Hash,
        valid: bool,
    },
    /// The block this node built when asked to propose.
    BlockToPropose {
        height: u64,
        round: u32,
        block_hash: Hash,
    },
    /// A commit certificate learned from block sync (checked by the machine).
    CommitFromSync(CommitCertificate),
}

/// What the machine asks the node to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Sign (through the signer), broadcast, and hand back as an input.
    Propose(Proposal),
    /// Sign (through the signer), broadcast, and hand back as an input.
    Vote(Vote),
    /// Schedule a timeout; hand back `TimeoutElapsed` when it fires.
    ScheduleTimeout {
        height: u64,
        round: u32,
        kind: TimeoutKind,
        duration_ms: u64,
    },
    /// Build a block to propose; answer with `BlockToPropose`.
    RequestBlock { height: u64, round: u32 },
    /// Validate (execute) the block; answer with `BlockVerdict`.
    ValidateBlock {
        height: u64,
        round: u32,
        block_hash: Hash,
    },
    /// The block is decided: commit it with this certificate.
    Decide {
        height: u64,
        round: u32,
        block_hash: Hash,
        certificate: CommitCertificate,
    },
    /// A validator signed two different votes for one step.
    Evidence(Evidence),
    /// An input was not taken, and why (for peer scoring and logs).
    Dropped(DropReason),
}

/// Messages for the next height kept per validator until the machine gets
/// there (a proposal counts for its proposer): an honest validator sends
/// at most three a round, so this covers two rounds. Each validator has its
/// own quota, so a Byzantine one that signs thousands of next-height
/// messages fills only its own.
pub const FUTURE_PER_VALIDATOR_MAX: usize = 6;

/// The consensus state of one node.
#[derive(Debug, Clone)]
pub struct Consensus {
    chain_id: String,
    set: ValidatorSet,
    schedule: ProposerSchedule,
    /// This node's validator index; `None` for a node that only follows.
    me: Option<u32>,
    /// The set (with its schedule and this node's index in it) of the next
    /// height, when it differs from this height's: the machine moves to it
    /// when it decides. See [`Consensus::set_next`].
    next: Option<(ValidatorSet, ProposerSchedule, Option<u32>)>,
    timeouts: Timeouts,

    height: u64,
    round: u32,
    step: Step,
    locked: Option<(u32, Hash)>,
    valid: Option<(u32, Hash)>,

    proposals: BTreeMap<u32, Proposal>,
    verdicts: BTreeMap<Hash, bool>,
    validation_requested: BTreeSet<Hash>,
    votes: VoteKeeper,
    /// Next-height messages by the validator that signed them.
    future: BTreeMap<u32, Vec<Input>>,

    /// "For the first time" guards of the current round.
    prevote_timeout_scheduled: bool,
    precommit_timeout_scheduled: bool,
    polka_seen: bool,
    block_requested: bool,
}

impl Consensus {
    /// A machine at `height`, round 0, not started. Call [`Consensus::start`].
    pub fn new(
        chain_id: &str,
        set: ValidatorSet,
        me: Option<u32>,
        timeouts: Timeouts,
        height: u64,
    ) -> Self {
        let schedule = ProposerSchedule::new(&set);
        Consensus {
            chain_id: chain_id.to_string(),
            votes: VoteKeeper::new(height, set.clone()),
            set,
            schedule,
            me,
            next: None,
            timeouts,
            height,
            round: 0,
            step: Step::Propose,
            locked: None,
            valid: None,
            proposals: BTreeMap::new(),
            verdicts: BTreeMap::new(),
            validation_requested: BTreeSet::new(),
            future: BTreeMap::new(),
            prevote_timeout_scheduled: false,
            precommit_timeout_scheduled: false,
            polka_seen: false,
            block_requested: false,
        }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn locked(&self) -> Option<(u32, Hash)> {
        self.locked
    }

    pub fn valid(&self) -> Option<(u32, Hash)> {
        self.valid
    }

    pub fn validator_set(&self) -> &ValidatorSet {
        &self.set
    }

    /// This node's index in the set of the machine's height, if it is a
    /// validator there: the index its votes at this height carry.
    pub fn me(&self) -> Option<u32> {
        self.me
    }

    /// Names the validator set of the next height and this node's index in
    /// it (the chain knows it before this height is decided). Without it
    /// the next height keeps this height's set. Messages for the next
    /// height that wait for it are judged against that set; the caller has
    /// checked their signatures against it too.
    pub fn set_next(&mut self, set: ValidatorSet, me: Option<u32>) {
        let same = set == self.set && me == self.me;
        if same {
            self.next = None;
        } else if self.next.as_ref().map(|(s, _, m)| (s, *m)) != Some((&set, me)) {
            let schedule = ProposerSchedule::new(&set);
            self.next = Some((set, schedule, me));
        }
    }

    /// The set and schedule of the next height.
    fn next_set(&self) -> (&ValidatorSet, &ProposerSchedule) {
        match &self.next {
            Some((set, schedule, _)) => (set, schedule),
            None => (&self.set, &self.schedule),
        }
    }

    /// The validator index of the proposer of `height`, `round`.
    pub fn proposer(&self, height: u64, round: u32) -> u32 {
        self.schedule.proposer(height, round)
    }

    /// The prevotes proving a polka for `value` in `round` at the current
    /// height: the node sends them with a proposal whose proof-of-lock
    /// round is `round`, so every honest node can check the proof.
    pub fn polka_votes(&self, round: u32, value: Hash) -> Vec<SignedVote> {
        self.votes.prevotes_for(round, value)
    }

    /// The polka that justifies the lock a vote creates: for a precommit
    /// for a block, the prevotes for it in that round; otherwise nothing.
    /// The node persists it with the vote's signature (see the signer).
    pub fn lock_proof(&self, vote: &Vote) -> Vec<SignedVote> {
        match (vote.kind, vote.value) {
            (VoteKind::Precommit, Some(value)) => self.polka_votes(vote.round, value),
            _ => Vec::new(),
        }
    }

    /// Evidence gathered at the current height.
    pub fn evidence(&self) -> &[Evidence] {
        self.votes.evidence()
    }

    /// Votes stored at the current height.
    pub fn stored_votes(&self) -> usize {
        self.votes.stored_votes()
    }

    /// Restores what a restarted validator must honour before [`start`]:
    /// its lock (from the signer's persisted state) and the round it had
    /// reached. The locked value had a polka in its round, so it is also the
    /// valid value.
    ///
    /// [`start`]: Consensus::start
    pub fn restore(&mut self, round: u32, locked: Option<(u32, Hash)>) {
        self.round = round;
        self.locked = locked;
        self.valid = locked;
    }

    /// Starts the current round (0 unless [`Consensus::restore`]d) of the
    /// current height.
    pub fn start(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.start_round(self.round, &mut out);
        self.apply_rules(&mut out);
        out
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        self.take(input, &mut out);
        self.apply_rules(&mut out);
        out
    }

    fn take(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Proposal(sp) => self.on_proposal(sp, out),
            Input::Vote(v) => self.on_vote(v, out),
            Input::TimeoutElapsed {
                height,
                round,
                kind,
            } => self.on_timeout(height, round, kind, out),
            Input::BlockVerdict {
                height,
                block_hash,
                valid,
            } => {
                if height == self.height {
                    self.verdicts.insert(block_hash, valid);
                }
            }
            Input::BlockToPropose {
                height,
                round,
                block_hash,
            } => {
                let mine = self.me == Some(self.proposer(height, round));
                if height == self.height
                    && round == self.round
                    && self.step == Step::Propose
                    && mine
                {
                    // A block this node built is valid to it.
                    self.verdicts.insert(block_hash, true);
                    out.push(Output::Propose(Proposal {
                        height,
                        round,
                        pol_round: None,
                        block_hash,
                    }));
                }
            }
            Input::CommitFromSync(cert) => self.on_commit_from_sync(cert, out),
        }
    }

    /// Keeps a next-height message (whose signature the caller checked)
    /// within its signer's quota; anything else ahead is dropped.
    fn buffer_future(&mut self, input: Input, found: u64, out: &mut Vec<Output>) {
        let (set, schedule) = self.next_set();
        let signer = match &input {
            Input::Proposal(sp) => Some(schedule.proposer(found, sp.proposal.round)),
            Input::Vote(v) => Some(v.validator_index),
            _ => None,
        }
        .filter(|i| (*i as usize) < set.len());
        let queue = signer
            .filter(|_| found == self.height.saturating_add(1))
            .map(|i| self.future.entry(i).or_default());
        if let Some(queue) = queue.filter(|q| q.len() < FUTURE_PER_VALIDATOR_MAX) {
            if !queue.contains(&input) {
                queue.push(input);
            }
        } else {
            out.push(Output::Dropped(DropReason::WrongHeight {
                expected: self.height,
                found,
            }));
        }
    }

    fn on_proposal(&mut self, sp: SignedProposal, out: &mut Vec<Output>) {
        let p = sp.proposal;
        if p.height != self.height {
            if p.height > self.height {
                self.buffer_future(Input::Proposal(sp), p.height, out);
            }
            return;
        }
        if let Some(pol) = p.pol_round {
            if pol >= p.round {
                out.push(Output::Dropped(DropReason::BadPolRound {
                    round: p.round,
                    pol_round: pol,
                }));
                return;
            }
        }
        self.votes
            .note_round(self.proposer(p.height, p.round), p.round);
        if p.round > self.round.saturating_add(ROUND_WINDOW) {
            return;
        }
        match self.proposals.get(&p.round) {
            Some(existing) if *existing == p => return,
            Some(_) => {
                out.push(Output::Dropped(DropReason::ConflictingProposal {
                    height: p.height,
                    round: p.round,
                }));
                return;
            }
            None => {}
        }
        self.proposals.insert(p.round, p);
        self.request_validation(p.round, p.block_hash, out);
    }

    fn request_validation(&mut self, round: u32, block_hash: Hash, out: &mut Vec<Output>) {
        if !self.verdicts.contains_key(&block_hash) && self.validation_requested.insert(block_hash)
        {
            out.push(Output::ValidateBlock {
                height: self.height,
                round,
                block_hash,
            });
        }
    }

    fn on_vote(&mut self, v: SignedVote, out: &mut Vec<Output>) {
        if v.vote.height > self.height {
            let h = v.vote.height;
            self.buffer_future(Input::Vote(v), h, out);
            return;
        }
        if v.vote.height < self.height {
            // Late votes for a decided height are normal; nothing to do.
            return;
        }
        let proposals = &self.proposals;
        let proposed = |h: &Hash| proposals.values().any(|p| p.block_hash == *h);
        match self.votes.add(v, self.round, proposed) {
            Ok(Added::Equivocation(e)) => out.push(Output::Evidence(*e)),
            Ok(Added::New | Added::Duplicate | Added::RoundNoted) => {}
            Err(reason) => out.push(Output::Dropped(reason)),
        }
    }

    fn on_timeout(&mut self, height: u64, round: u32, kind: TimeoutKind, out: &mut Vec<Output>) {
        if height != self.height || round != self.round {
            return; // stale
        }
        match kind {
            // L57: timeout in the propose step: prevote nil.
            TimeoutKind::Propose if self.step == Step::Propose => {
                self.vote(VoteKind::Prevote, None, out);
                self.step = Step::Prevote;
            }
            // L61: timeout in the prevote step: precommit nil. Only a
            // timeout this machine scheduled (L34) counts.
            TimeoutKind::Prevote
                if self.step == Step::Prevote && self.prevote_timeout_scheduled =>
            {
                self.vote(VoteKind::Precommit, None, out);
                self.step = Step::Precommit;
            }
            // L65: timeout after 2f+1 precommits: next round.
            TimeoutKind::Precommit if self.precommit_timeout_scheduled => {
                self.start_round(self.round.saturating_add(1), out)
            }
            _ => {}
        }
    }

    fn on_commit_from_sync(&mut self, cert: CommitCertificate, out: &mut Vec<Output>) {
        if cert.height != self.height {
            if cert.height > self.height {
                out.push(Output::Dropped(DropReason::WrongHeight {
                    expected: self.height,
                    found: cert.height,
                }));
            }
            return;
        }
        if let Err(e) = verify_certificate(&cert, &self.set, &self.chain_id) {
            out.push(Output::Dropped(DropReason::InvalidCertificate(
                e.to_string(),
            )));
            return;
        }
        self.decide(cert, out);
    }

    fn vote(&self, kind: VoteKind, value: Option<Hash>, out: &mut Vec<Output>) {
        if self.me.is_some() {
            out.push(Output::Vote(Vote {
                kind,
                height: self.height,
                round: self.round,
                value,
            }));
        }
    }

    /// StartRound(round), lines 11-21.
    fn start_round(&mut self, round: u32, out: &mut Vec<Output>) {
        self.round = round;
        self.step = Step::Propose;
        self.prevote_timeout_scheduled = false;
        self.precommit_timeout_scheduled = false;
        self.polka_seen = false;
        self.block_requested = false;
        if self.me.is_some() && self.me == Some(self.proposer(self.height, round)) {
            match self.valid {
                // L15: re-propose the valid value with its round.
                Some((valid_round, value)) => out.push(Output::Propose(Proposal {
                    height: self.height,
                    round,
                    pol_round: Some(valid_round),
                    block_hash: value,
                })),
                // L18: getValue().
                None => {
                    self.block_requested = true;
                    out.push(Output::RequestBlock {
                        height: self.height,
                        round,
                    });
                }
            }
        }
        // L21 (scheduled for the proposer too, so a stalled block build
        // cannot stall the round).
        self.schedule(TimeoutKind::Propose, out);
    }

    fn schedule(&self, kind: TimeoutKind, out: &mut Vec<Output>) {
        out.push(Output::ScheduleTimeout {
            height: self.height,
            round: self.round,
            kind,
            duration_ms: self.timeouts.duration_ms(kind, self.round),
        });
    }

    /// Emits the decision and moves to the next height (lines 49-54).
    fn decide(&mut self, certificate: CommitCertificate, out: &mut Vec<Output>) {
        debug_assert_eq!(
            certificate.height, self.height,
            "decides only its own height"
        );
        let decided = certificate.height;
        out.push(Output::Decide {
            height: certificate.height,
            round: certificate.round,
            block_hash: certificate.block_hash,
            certificate,
        });
        // Height only increases.
        self.height = self.height.saturating_add(1);
        debug_assert!(self.height > decided);
        self.locked = None;
        self.valid = None;
        self.proposals.clear();
        self.verdicts.clear();
        self.validation_requested.clear();
        if let Some((set, schedule, me)) = self.next.take() {
            self.set = set;
            self.schedule = schedule;
            self.me = me;
        }
        self.votes = VoteKeeper::new(self.height, self.set.clone());
        self.start_round(0, out);
        for input in std::mem::take(&mut self.future).into_values().flatten() {
            self.take(input, out);
        }
    }
}
