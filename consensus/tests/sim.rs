//! Deterministic simulation of whole Tendermint networks.
//!
//! N validators' state machines run against simulated time and a simulated
//! network, all driven by one seed: random delays, drops, duplicates and
//! reordering, partitions that form and heal, and a global stabilisation
//! time (GST) after which every message arrives within a bound. Nodes crash
//! and restart (losing memory, keeping their signer's persisted state), and
//! up to f validators are Byzantine: equivocating proposer, double voter,
//! silent, amnesia (ignores its lock) and twins (two instances, one key).
//!
//! After each run the checker asserts agreement, validity, certificate
//! validity, liveness after GST and that no honest signer equivocated.
//!
//! `SIM_SEEDS=N` runs N seeds per scenario (default in the code). A failing
//! seed prints the command that replays it alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use tally_consensus::{Consensus, Input, Output, Signer, TimeoutKind, Timeouts};
use tally_ledger::crypto::{Domain, Keypair};
use tally_ledger::signer_state::MemorySignerState;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{
    CommitCertificate, Proposal, SignedProposal, SignedVote, ValidatorSet, Vote, VoteKind,
};
use tally_ledger::verify::verify_certificate;
use tally_ledger::Hash;

/// SplitMix64: small, fast, and the same everywhere.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() as f64 / u64::MAX as f64) < p
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Honest,
    /// Sends different proposals to different peers.
    EquivocatingProposer,
    /// Sends conflicting votes to different peers.
    DoubleVoter,
    /// Never sends anything.
    Silent,
    /// Prevotes any valid proposal, ignoring its lock.
    Amnesia,
    /// Two instances with one key (each guarded alone, together equivocating).
    Twin,
}

#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    powers: Vec<u64>,
    byzantine: Vec<(u32, Behaviour)>,
    crashes: bool,
    drop_p: f64,
    dup_p: f64,
    partitions: bool,
    /// A fixed split of instances before GST (for the negative control).
    fixed_split: Option<Vec<usize>>,
    target_height: u64,
    seeds: u64,
}

#[derive(Debug, Clone)]
enum Msg {
    Proposal(SignedProposal),
    Vote(SignedVote),
    Commit(CommitCertificate),
    SyncRequest { from_height: u64 },
}

#[derive(Debug)]
enum Event {
    Deliver {
        to: usize,
        from: usize,
        msg: Msg,
    },
    Timer {
        node: usize,
        incarnation: u32,
        height: u64,
        round: u32,
        kind: TimeoutKind,
    },
    Rebroadcast {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
}

struct Instance {
    validator: u32,
    behaviour: Behaviour,
    machine: Option<Consensus>,
    signer: Option<Signer<MemorySignerState>>,
    signer_state: MemorySignerState,
    incarnation: u32,
    /// Decided blocks: height h at index h - 1 (the node's durable chain).
    decided: Vec<(Hash, CommitCertificate)>,
    /// Own signed messages at the current height, for re-gossip.
    sent: Vec<Msg>,
    /// Proposals seen, for the amnesia behaviour.
    seen_proposals: BTreeMap<(u64, u32), Hash>,
}

impl Instance {
    fn honest(&self) -> bool {
        self.behaviour == Behaviour::Honest
    }
}

const GST_MS: u64 = 3_000;
const PRE_GST_DELAY_MAX_MS: u64 = 400;
const POST_GST_DELAY_MAX_MS: u64 = 40;
const REBROADCAST_MS: u64 = 400;
/// Every honest node must reach the target within this long after GST.
const LIVENESS_BOUND_MS: u64 = 60_000;
const CHAIN: &str = "tally-test";

const TIMEOUTS: Timeouts = Timeouts {
    propose_ms: 300,
    prevote_ms: 200,
    precommit_ms: 200,
    delta_ms: 100,
};

struct Sim {
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    nodes: Vec<Instance>,
    keys: Vec<Keypair>,
    set: ValidatorSet,
    /// Every block ever built: hash to (height, valid).
    blocks: BTreeMap<Hash, (u64, bool)>,
    block_counter: u64,
    partitions: Vec<(u64, u64, Vec<bool>)>,
    fixed_split: Option<Vec<usize>>,
    drop_p: f64,
    dup_p: f64,
    /// Every vote an honest instance signed: (validator, h, r, kind) to value.
    honest_votes: BTreeMap<(u32, u64, u32, VoteKind), Option<Hash>>,
    honest_equivocation: Option<String>,
}

impl Sim {
    fn new(scenario: &Scenario, seed: u64) -> Self {
        let chain = TestChain::with_powers(&scenario.powers, 1);
        let mut rng = Rng(seed);
        let mut nodes = Vec::new();
        for v in 0..scenario.powers.len() as u32 {
            let behaviour = scenario
                .byzantine
                .iter()
                .find(|(i, _)| *i == v)
                .map(|(_, b)| *b)
                .unwrap_or(Behaviour::Honest);
            let copies = if behaviour == Behaviour::Twin { 2 } else { 1 };
            for _ in 0..copies {
                nodes.push(Instance {
                    validator: v,
                    behaviour,
                    machine: None,
                    signer: None,
                    signer_state: MemorySignerState::new(),
                    incarnation: 0,
                    decided: Vec::new(),
                    sent: Vec::new(),
                    seen_proposals: BTreeMap::new(),
                });
            }
        }
        let mut partitions = Vec::new();
        if scenario.partitions {
            let mut t = rng.range(0, 500);
            while t < GST_MS {
                let len = rng.range(200, 1_500);
                let side: Vec<bool> = (0..nodes.len()).map(|_| rng.chance(0.5)).collect();
                partitions.push((t, t + len, side));
                t += len + rng.range(100, 800);
            }
        }
        let mut sim = Sim {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes,
            keys: chain.validator_keys,
            set: chain.validator_set,
            blocks: BTreeMap::new(),
            block_counter: 0,
            partitions,
            fixed_split: scenario.fixed_split.clone(),
            drop_p: scenario.drop_p,
            dup_p: scenario.dup_p,
            honest_votes: BTreeMap::new(),
            honest_equivocation: None,
        };
        if scenario.crashes {
            for node in 0..sim.nodes.len() {
                if sim.nodes[node].honest() && sim.rng.chance(0.5) {
                    let at = sim.rng.range(100, GST_MS - 500);
                    let back = at + sim.rng.range(100, 1_500);
                    sim.push(at, Event::Crash { node });
                    sim.push(back.min(GST_MS), Event::Restart { node });
                }
            }
        }
        for node in 0..sim.nodes.len() {
            if sim.nodes[node].behaviour != Behaviour::Silent {
                sim.boot(node);
                let first = sim.rng.range(1, REBROADCAST_MS);
                sim.push(first, Event::Rebroadcast { node });
            }
        }
        sim
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.push(Some(event));
        self.queue
            .push(Reverse((at, self.seq, self.events.len() - 1)));
    }

    fn boot(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        let height = n.decided.len() as u64 + 1;
        n.incarnation += 1;
        n.machine = Some(Consensus::new(
            CHAIN,
            self.set.clone(),
            Some(n.validator),
            TIMEOUTS,
            height,
        ));
        let signer = Signer::new(
            self.keys[n.validator as usize].clone_for_test(),
            CHAIN,
            n.validator,
            n.signer_state.clone(),
        )
        .expect("signer state loads");
        // What survives a restart: the lock, the round reached, and the
        // messages already signed at this height (sent again).
        let machine = n.machine.as_mut().expect("just created");
        machine.restore(signer.round_at(height).unwrap_or(0), signer.lock_at(height));
        let (proposals, mut votes) = signer.signed_at(height);
        votes.extend(signer.lock_proof_at(height));
        n.signer = Some(signer);
        n.sent = proposals
            .iter()
            .cloned()
            .map(Msg::Proposal)
            .chain(votes.iter().cloned().map(Msg::Vote))
            .collect();
        let mut out = machine.start();
        for v in votes {
            out.extend(machine.handle(Input::Vote(v)));
        }
        for p in proposals {
            out.extend(machine.handle(Input::Proposal(p)));
        }
        for m in n.sent.clone() {
            self.broadcast(node, m);
        }
        self.carry_out(node, out);
    }

    fn separated(&self, a: usize, b: usize) -> bool {
        if self.now >= GST_MS {
            return false;
        }
        if let Some(split) = &self.fixed_split {
            return split.contains(&a) != split.contains(&b);
        }
        self.partitions
            .iter()
            .any(|(s, e, side)| self.now >= *s && self.now < *e && side[a] != side[b])
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if self.separated(from, to) {
            return;
        }
        let copies = if self.now < GST_MS {
            if self.rng.chance(self.drop_p) {
                return;
            }
            if self.rng.chance(self.dup_p) {
                2
            } else {
                1
            }
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.now < GST_MS {
                self.rng.range(1, PRE_GST_DELAY_MAX_MS)
            } else {
                self.rng.range(1, POST_GST_DELAY_MAX_MS)
            };
            let at = self.now + delay;
            self.push(
                at,
                Event::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.nodes.len() {
            if to != from {
                self.send(from, to, msg.clone());
            }
        }
    }

    /// Sends `a` to a random half of the peers and `b` to the rest.
    fn split_broadcast(&mut self, from: usize, a: Msg, b: Msg) {
        for to in 0..self.nodes.len() {
            if to != from {
                let m = if self.rng.chance(0.5) {
                    a.clone()
                } else {
                    b.clone()
                };
                self.send(from, to, m);
            }
        }
    }

    fn new_block(&mut self, height: u64, valid: bool) -> Hash {
        self.block_counter += 1;
        let mut bytes = height.to_le_bytes().to_vec();
        bytes.extend_from_slice(&self.block_counter.to_le_bytes());
        let hash = Hash::digest(&bytes);
        self.blocks.insert(hash, (height, valid));
        hash
    }

    fn raw_vote(&self, validator: u32, vote: Vote) -> SignedVote {
        let signature = self.keys[validator as usize].sign(Domain::Vote, CHAIN, &vote.message());
        SignedVote {
            vote,
            validator_index: validator,
            signature,
        }
    }

    fn raw_proposal(&self, validator: u32, proposal: Proposal) -> SignedProposal {
        let signature =
            self.keys[validator as usize].sign(Domain::Proposal, CHAIN, &proposal.message());
        SignedProposal {
            proposal,
            signature,
        }
    }

    /// Feeds an input to a node's machine and carries out the outputs.
    fn feed(&mut self, node: usize, input: Input) {
        let out = match self.nodes[node].machine.as_mut() {
            Some(m) => m.handle(input),
            None => return,
        };
        self.carry_out(node, out);
    }

    fn carry_out(&mut self, node: usize, out: Vec<Output>) {
        let mut work: VecDeque<Output> = out.into();
        while let Some(o) = work.pop_front() {
            let mut follow_up: Vec<Input> = Vec::new();
            let behaviour = self.nodes[node].behaviour;
            let validator = self.nodes[node].validator;
            match o {
                Output::Propose(p) => {
                    let sp = match behaviour {
                        Behaviour::Honest | Behaviour::Twin => {
                            let signer = self.nodes[node]
                                .signer
                                .as_mut()
                                .expect("running node has a signer");
                            match signer.sign_proposal(&p) {
                                Ok(signature) => SignedProposal {
                                    proposal: p,
                                    signature,
                                },
                                Err(_) => continue,
                            }
                        }
                        _ => self.raw_proposal(validator, p),
                    };
                    if behaviour == Behaviour::EquivocatingProposer {
                        let valid_other = self.rng.chance(0.5);
                        let other_hash = self.new_block(p.height, valid_other);
                        let other = self.raw_proposal(
                            validator,
                            Proposal {
                                block_hash: other_hash,
                                ..p
                            },
                        );
                        self.split_broadcast(node, Msg::Proposal(sp.clone()), Msg::Proposal(other));
                    } else {
                        self.broadcast(node, Msg::Proposal(sp.clone()));
                    }
                    self.nodes[node].sent.push(Msg::Proposal(sp.clone()));
                    // The proof of lock travels with the proposal.
                    if let Some(vr) = p.pol_round {
                        let pol = self.nodes[node]
                            .machine
                            .as_ref()
                            .map(|m| m.polka_votes(vr, p.block_hash))
                            .unwrap_or_default();
                        for v in pol {
                            self.broadcast(node, Msg::Vote(v.clone()));
                            self.nodes[node].sent.push(Msg::Vote(v));
                        }
                    }
                    follow_up.push(Input::Proposal(sp));
                }
                Output::Vote(mut v) => {
                    if behaviour == Behaviour::Amnesia && v.kind == VoteKind::Prevote {
                        if let Some(h) = self.nodes[node].seen_proposals.get(&(v.height, v.round)) {
                            if self.blocks.get(h).is_some_and(|(_, ok)| *ok) {
                                v.value = Some(*h);
                            }
                        }
                    }
                    let polka = self.nodes[node]
                        .machine
                        .as_ref()
                        .map(|m| m.lock_proof(&v))
                        .unwrap_or_default();
                    let sv = match behaviour {
                        Behaviour::Honest | Behaviour::Twin => {
                            let signer = self.nodes[node]
                                .signer
                                .as_mut()
                                .expect("running node has a signer");
                            match signer.sign_vote_with_polka(&v, &polka) {
                                Ok(signature) => SignedVote {
                                    vote: v,
                                    validator_index: validator,
                                    signature,
                                },
                                Err(_) => continue,
                            }
                        }
                        _ => self.raw_vote(validator, v),
                    };
                    if behaviour == Behaviour::Honest {
                        let key = (validator, v.height, v.round, v.kind);
                        match self.honest_votes.get(&key) {
                            Some(prev) if *prev != v.value => {
                                self.honest_equivocation = Some(format!(
                                    "honest validator {validator} signed {:?} and {:?} at height {} round {} {:?}",
                                    prev, v.value, v.height, v.round, v.kind
                                ));
                            }
                            _ => {
                                self.honest_votes.insert(key, v.value);
                            }
                        }
                    }
                    if behaviour == Behaviour::DoubleVoter {
                        let other_value = match v.value {
                            Some(_) => None,
                            None => self.blocks.keys().next_back().copied(),
                        };
                        let other = self.raw_vote(
                            validator,
                            Vote {
                                value: other_value,
                                ..v
                            },
                        );
                        self.split_broadcast(node, Msg::Vote(sv.clone()), Msg::Vote(other));
                    } else {
                        self.broadcast(node, Msg::Vote(sv.clone()));
                    }
                    self.nodes[node].sent.push(Msg::Vote(sv.clone()));
                    follow_up.push(Input::Vote(sv));
                }
                Output::ScheduleTimeout {
                    height,
                    round,
                    kind,
                    duration_ms,
                } => {
                    let incarnation = self.nodes[node].incarnation;
                    self.push(
                        self.now + duration_ms,
                        Event::Timer {
                            node,
                            incarnation,
                            height,
                            round,
                            kind,
                        },
                    );
                }
                Output::RequestBlock { height, round } => {
                    let block_hash = self.new_block(height, true);
                    follow_up.push(Input::BlockToPropose {
                        height,
                        round,
                        block_hash,
                    });
                }
                Output::ValidateBlock {
                    height, block_hash, ..
                } => {
                    // A block nobody built cannot be fetched: no verdict.
                    if let Some((h, valid)) = self.blocks.get(&block_hash).copied() {
                        follow_up.push(Input::BlockVerdict {
                            height,
                            block_hash,
                            valid: valid && h == height,
                        });
                    }
                }
                Output::Decide {
                    height,
                    block_hash,
                    certificate,
                    ..
                } => {
                    let n = &mut self.nodes[node];
                    assert_eq!(
                        n.decided.len() as u64 + 1,
                        height,
                        "decisions come in height order"
                    );
                    n.decided.push((block_hash, certificate.clone()));
                    n.sent.clear();
                    self.broadcast(node, Msg::Commit(certificate));
                }
                Output::Evidence(_) | Output::Dropped(_) => {}
            }
            for input in follow_up {
                let more = match self.nodes[node].machine.as_mut() {
                    Some(m) => m.handle(input),
                    None => vec![],
                };
                work.extend(more);
            }
        }
    }

    fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        if self.nodes[to].machine.is_none() {
            return;
        }
        if std::env::var("SIM_TRACE").is_ok() {
            if let Msg::Proposal(sp) = &msg {
                let m = self.nodes[to].machine.as_ref().expect("running");
                eprintln!(
                    "t={} {from}->{to} proposal h{} r{} pol {:?} {} | at h{} r{} {:?} locked {:?}",
                    self.now,
                    sp.proposal.height,
                    sp.proposal.round,
                    sp.proposal.pol_round,
                    sp.proposal.block_hash.short(),
                    m.height(),
                    m.round(),
                    m.step(),
                    m.locked().map(|(r, h)| (r, h.short()))
                );
            }
        }
        match msg {
            Msg::Proposal(sp) => {
                let p = sp.proposal;
                self.nodes[to]
                    .seen_proposals
                    .insert((p.height, p.round), p.block_hash);
                self.feed(to, Input::Proposal(sp));
            }
            Msg::Vote(v) => {
                if std::env::var("SIM_TRACE").is_ok()
                    && v.vote.round == 0
                    && v.vote.kind == VoteKind::Prevote
                {
                    eprintln!(
                        "t={} {from}->{to} prevote h{} r0 by {} for {:?}",
                        self.now,
                        v.vote.height,
                        v.validator_index,
                        v.vote.value.map(|h| h.short())
                    );
                }
                self.feed(to, Input::Vote(v))
            }
            Msg::Commit(cert) => {
                let height = self.nodes[to].decided.len() as u64 + 1;
                if cert.height == height {
                    self.feed(to, Input::CommitFromSync(cert));
                } else if cert.height > height {
                    self.send(
                        to,
                        from,
                        Msg::SyncRequest {
                            from_height: height,
                        },
                    );
                }
            }
            Msg::SyncRequest { from_height } => {
                let certs: Vec<CommitCertificate> = self.nodes[to]
                    .decided
                    .iter()
                    .skip(from_height.saturating_sub(1) as usize)
                    .take(10)
                    .map(|(_, c)| c.clone())
                    .collect();
                for c in certs {
                    self.send(to, from, Msg::Commit(c));
                }
            }
        }
    }

    fn run(&mut self, until: u64, target: u64) {
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            if at > until {
                break;
            }
            self.now = at;
            let Some(event) = self.events[idx].take() else {
                continue;
            };
            match event {
                Event::Deliver { to, from, msg } => self.deliver(to, from, msg),
                Event::Timer {
                    node,
                    incarnation,
                    height,
                    round,
                    kind,
                } => {
                    if self.nodes[node].incarnation == incarnation {
                        self.feed(
                            node,
                            Input::TimeoutElapsed {
                                height,
                                round,
                                kind,
                            },
                        );
                    }
                }
                Event::Rebroadcast { node } => {
                    if self.nodes[node].machine.is_some() {
                        let msgs = self.nodes[node].sent.clone();
                        for m in msgs {
                            self.broadcast(node, m);
                        }
                        if let Some((_, c)) = self.nodes[node].decided.last().cloned() {
                            self.broadcast(node, Msg::Commit(c));
                        }
                    }
                    self.push(self.now + REBROADCAST_MS, Event::Rebroadcast { node });
                }
                Event::Crash { node } => {
                    self.nodes[node].machine = None;
                    self.nodes[node].signer = None;
                }
                Event::Restart { node } => self.boot(node),
            }
            if self.now > GST_MS
                && self
                    .nodes
                    .iter()
                    .filter(|n| n.honest())
                    .all(|n| n.decided.len() as u64 >= target)
            {
                break;
            }
        }
    }

    /// Each instance's state, printed with a violation.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let state = match &n.machine {
                Some(m) => format!(
                    "height {} round {} step {:?} locked {:?} valid {:?}",
                    m.height(),
                    m.round(),
                    m.step(),
                    m.locked().map(|(r, h)| (r, h.short())),
                    m.valid().map(|(r, h)| (r, h.short()))
                ),
                None => "down".into(),
            };
            out.push_str(&format!(
                "  instance {i}: validator {} {:?}, decided {}, {state}\n",
                n.validator,
                n.behaviour,
                n.decided.len()
            ));
        }
        out
    }

    /// Checks every property; `Err` names the first violation.
    fn check(&self, target: u64) -> Result<(), String> {
        if let Some(e) = &self.honest_equivocation {
            return Err(format!("signer safety: {e}"));
        }
        let honest: Vec<&Instance> = self.nodes.iter().filter(|n| n.honest()).collect();
        let max_height = honest.iter().map(|n| n.decided.len()).max().unwrap_or(0);
        for h in 0..max_height {
            let mut agreed: Option<Hash> = None;
            for n in &honest {
                if let Some((hash, cert)) = n.decided.get(h) {
                    if let Some(a) = agreed {
                        if a != *hash {
                            return Err(format!(
                                "agreement: two honest nodes decided {} and {} at height {}",
                                a.short(),
                                hash.short(),
                                h + 1
                            ));
                        }
                    }
                    agreed = Some(*hash);
                    match self.blocks.get(hash) {
                        Some((bh, true)) if *bh == h as u64 + 1 => {}
                        _ => {
                            return Err(format!(
                                "validity: decided block {} at height {} was not a valid proposal",
                                hash.short(),
                                h + 1
                            ))
                        }
                    }
                    verify_certificate(cert, &self.set, CHAIN)
                        .map_err(|e| format!("certificate at height {}: {e}", h + 1))?;
                    if cert.block_hash != *hash || cert.height != h as u64 + 1 {
                        return Err(format!(
                            "certificate at height {} is for another block",
                            h + 1
                        ));
                    }
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.honest() && (n.decided.len() as u64) < target {
                return Err(format!(
                    "liveness: honest instance {i} (validator {}) decided {} of {target} heights by {} ms ({} ms after GST)",
                    n.validator,
                    n.decided.len(),
                    self.now,
                    self.now.saturating_sub(GST_MS)
                ));
            }
        }
        Ok(())
    }
}

trait CloneForTest {
    fn clone_for_test(&self) -> Keypair;
}

impl CloneForTest for Keypair {
    fn clone_for_test(&self) -> Keypair {
        Keypair::from_seed(self.seed())
    }
}

fn run_one(scenario: &Scenario, seed: u64) -> Result<(), String> {
    let mut sim = Sim::new(scenario, seed);
    sim.run(GST_MS + LIVENESS_BOUND_MS, scenario.target_height);
    sim.check(scenario.target_height)
        .map_err(|v| format!("{v}\n{}", sim.describe()))
}

fn seeds(scenario: &Scenario) -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(scenario.seeds)
}

fn run_scenario(scenario: &Scenario) {
    for seed in 0..seeds(scenario) {
        if let Err(violation) = run_one(scenario, seed) {
            panic!(
                "scenario {} seed {seed} failed: {violation}\nreplay: SIM_SCENARIO={} SIM_SEED={seed} cargo test --release -p tally-consensus --test sim -- --ignored replay --nocapture",
                scenario.name, scenario.name
            );
        }
    }
}

fn scenarios() -> Vec<Scenario> {
    let base = Scenario {
        name: "",
        powers: vec![10; 4],
        byzantine: vec![],
        crashes: false,
        drop_p: 0.1,
        dup_p: 0.05,
        partitions: true,
        fixed_split: None,
        target_height: 4,
        seeds: 120,
    };
    vec![
        Scenario {
            name: "n4_lossy_network",
            ..base.clone()
        },
        Scenario {
            name: "n4_crash_restart",
            crashes: true,
            ..base.clone()
        },
        Scenario {
            name: "n4_equivocating_proposer",
            byzantine: vec![(1, Behaviour::EquivocatingProposer)],
            ..base.clone()
        },
        Scenario {
            name: "n4_double_voter",
            byzantine: vec![(2, Behaviour::DoubleVoter)],
            ..base.clone()
        },
        Scenario {
            name: "n4_silent",
            byzantine: vec![(0, Behaviour::Silent)],
            ..base.clone()
        },
        Scenario {
            name: "n4_amnesia",
            byzantine: vec![(3, Behaviour::Amnesia)],
            ..base.clone()
        },
        Scenario {
            name: "n4_twins",
            byzantine: vec![(1, Behaviour::Twin)],
            crashes: true,
            ..base.clone()
        },
        Scenario {
            name: "n7_mixed_byzantine",
            powers: vec![10; 7],
            byzantine: vec![
                (2, Behaviour::DoubleVoter),
                (5, Behaviour::EquivocatingProposer),
            ],
            crashes: true,
            seeds: 80,
            ..base.clone()
        },
        Scenario {
            name: "n7_twins_and_amnesia",
            powers: vec![10; 7],
            byzantine: vec![(0, Behaviour::Twin), (6, Behaviour::Amnesia)],
            seeds: 80,
            ..base.clone()
        },
        Scenario {
            name: "weighted_power",
            powers: vec![40, 20, 20, 10, 10],
            byzantine: vec![(1, Behaviour::DoubleVoter)],
            crashes: true,
            seeds: 120,
            ..base.clone()
        },
    ]
}

fn scenario(name: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
}

#[test]
fn n4_lossy_network() {
    run_scenario(&scenario("n4_lossy_network"));
}

#[test]
fn n4_crash_restart() {
    run_scenario(&scenario("n4_crash_restart"));
}

#[test]
fn n4_equivocating_proposer() {
    run_scenario(&scenario("n4_equivocating_proposer"));
}

#[test]
fn n4_double_voter() {
    run_scenario(&scenario("n4_double_voter"));
}

#[test]
fn n4_silent() {
    run_scenario(&scenario("n4_silent"));
}

#[test]
fn n4_amnesia() {
    run_scenario(&scenario("n4_amnesia"));
}

#[test]
fn n4_twins() {
    run_scenario(&scenario("n4_twins"));
}

#[test]
fn n7_mixed_byzantine() {
    run_scenario(&scenario("n7_mixed_byzantine"));
}

#[test]
fn n7_twins_and_amnesia() {
    run_scenario(&scenario("n7_twins_and_amnesia"));
}

#[test]
fn weighted_power() {
    run_scenario(&scenario("weighted_power"));
}

#[test]
fn ci_covers_at_least_a_thousand_seeds() {
    let total: u64 = scenarios().iter().map(|s| s.seeds).sum();
    assert!(total >= 1_000, "only {total} seeds per CI run");
}

/// Negative control: with Byzantine power of 1/3 or more (two twinned
/// validators of four, split across a partition) the checker must find a
/// fork. This proves the checker can fail.
#[test]
fn negative_control_two_twins_of_four_fork() {
    // Instances: 0, 1, 2a, 2b, 3a, 3b. Sides: {0, 2a, 3a} and {1, 2b, 3b}.
    let control = Scenario {
        name: "negative_control",
        powers: vec![10; 4],
        byzantine: vec![(2, Behaviour::Twin), (3, Behaviour::Twin)],
        crashes: false,
        drop_p: 0.0,
        dup_p: 0.0,
        partitions: false,
        fixed_split: Some(vec![0, 2, 4]),
        target_height: 2,
        seeds: 50,
    };
    let mut forks = 0;
    for seed in 0..control.seeds {
        let mut sim = Sim::new(&control, seed);
        sim.run(GST_MS + LIVENESS_BOUND_MS, control.target_height);
        if let Err(v) = sim.check(control.target_height) {
            if v.starts_with("agreement") {
                forks += 1;
            }
        }
    }
    assert!(
        forks > 0,
        "the checker never reported a fork with 1/2 Byzantine power"
    );
}

/// Replays one seed of one scenario: set SIM_SCENARIO and SIM_SEED.
#[test]
#[ignore = "replays one seed: SIM_SCENARIO=name SIM_SEED=n"]
fn replay() {
    let name = std::env::var("SIM_SCENARIO").expect("set SIM_SCENARIO to a scenario name");
    let seed: u64 = std::env::var("SIM_SEED")
        .expect("set SIM_SEED")
        .parse()
        .expect("SIM_SEED is a number");
    let s = scenario(&name);
    match run_one(&s, seed) {
        Ok(()) => println!("scenario {name} seed {seed}: all properties hold"),
        Err(v) => panic!("scenario {name} seed {seed}: {v}"),
    }
}
