//! Deterministic simulation of whole networks of real node cores.
//!
//! Every node runs the production [`NodeCore`] with the real signer (over
//! in-memory signer state), the real block-validity rule
//! ([`ChainRules`]) and an in-memory chain and state; the harness plays the
//! driver (it carries out effects in the driver's order) and the network.
//! Everything is driven by one seed: random delays, drops, duplicates and
//! reordering, partitions that heal, and a global stabilisation time (GST)
//! after which every message arrives within a bound.
//!
//! Adversaries hold up to f of the power and sign anything their keys
//! allow: extreme and skewed timestamps, floods of distinct proposals and
//! votes (this height, the next ones, far-future rounds), equivocation at
//! every step (proposals included), replays of old messages, forged and
//! partial certificates, votes withheld and delivered selectively, lies
//! about heights and wrong or empty sync answers, twins (two instances, one
//! key) and a validator restarted from an old copy of its home. Honest
//! nodes crash and restart, before and after GST.
//!
//! After each run the checker asserts: agreement; validity (every decided
//! block passes the block rules with its certificate, the audit's checks);
//! every honest node decides the target within the liveness bound after
//! GST (and after its last restart); every buffer within its limit; no
//! signer refusal or fault at an honest node in a run without crashes; no
//! honest validator accused of equivocation, and each offence recorded at
//! most once per node.
//!
//! Membership changes ride in the transactions: an admin removes a
//! Byzantine validator while it attacks, or rotates an honest validator's
//! key while a silent one forces round changes. Messages are judged by the
//! set of their height, as the network judges them; the checker also
//! asserts the change took effect.
//!
//! `SIM_SEEDS=N` runs N seeds per scenario. A failing seed prints the
//! command that replays it alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use tally_consensus::{Signer, ROUND_WINDOW};
use tally_ledger::crypto::{Domain, Keypair};
use tally_ledger::genesis::Genesis;
use tally_ledger::governance::Change;
use tally_ledger::membership::rotation_message;
use tally_ledger::proposer::ProposerSchedule;
use tally_ledger::signer_state::{MemorySignerState, SignerStateStore};
use tally_ledger::state::MemoryTreeStore;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{
    last_commit_hash, Block, CommitCertificate, CommitSig, Op, Proposal, SignedProposal, SignedTx,
    SignedVote, ValidatorSet, Vote, VoteKind,
};
use tally_ledger::verify::{ChainRules, Parent, Placement, BLOCK_TIME_MS_MAX};
use tally_ledger::{Hash, PublicKey};
use tally_node::candidates::CANDIDATES_MAX;
use tally_node::node_core::{
    quorum_height, should_sync, signing_pause, BlockFill, CoreEnv, CoreSetup, Effect, Event,
    NodeCore, Notice, Now, SignerView, Timer, NEW_NETWORK_GRACE_MS,
};
use tally_node::wire::ConsensusMsg;

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

/// What a Byzantine validator does on top of running a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adversary {
    /// Never sends anything.
    Silent,
    /// Two instances with one key (each guarded alone, together equivocating).
    Twin,
    /// Each vote it sends has a conflicting twin sent to half the peers.
    DoubleVoter,
    /// Each proposal it sends has a conflicting valid block sent to half.
    EquivocatingProposer,
    /// Its proposals carry extreme or skewed block times.
    TimeWarp,
    /// Signs floods of distinct proposals (its rounds, this and the next
    /// heights, far-future rounds) and votes (any height, round, value).
    Flooder,
    /// Sends old valid messages again, and proposals for the next height
    /// whose last_commit is forged or partial.
    ReplayForger,
    /// Sends its votes to only some peers, at random.
    Withholder,
    /// Claims heights it does not have; answers sync with wrong blocks or
    /// nothing.
    Liar,
    /// Crashes and comes back from an old copy of its home.
    OldHome,
    /// Crashes and comes back with an empty home: no blocks, no signer
    /// state (a wiped data folder). Its operator erred, the node did not:
    /// it is held to the honest signer's rule and must never sign twice.
    WipedHome,
}

#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    powers: Vec<u64>,
    byzantine: Vec<(u32, Adversary)>,
    /// Honest crashes: none, before GST, or also after it.
    crashes: Crashes,
    drop_p: f64,
    dup_p: f64,
    partitions: bool,
    /// A fixed split of instances before GST (for the controls).
    fixed_split: Option<Vec<usize>>,
    target_height: u64,
    seeds: u64,
    /// A validator the admin removes (by its genesis index).
    remove: Option<u32>,
    /// An honest validator whose key the admin rotates (its operator
    /// switches to the new key once the rotation is in force).
    rotate: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crashes {
    None,
    BeforeGst,
    AfterGstToo,
}

/// What travels between nodes; the author is the signer of a consensus
/// message (checked on arrival as the network checks signatures).
#[derive(Debug, Clone)]
enum Msg {
    Consensus(ConsensusMsg),
    Status(u64),
    SyncRequest { from_height: u64 },
    SyncResponse(Vec<(Block, CommitCertificate)>),
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        from: usize,
        msg: Msg,
    },
    Timer {
        node: usize,
        incarnation: u32,
        timer: Timer,
    },
    Tick {
        node: usize,
    },
    Adversary {
        node: usize,
    },
    Crash {
        node: usize,
    },
    Restart {
        node: usize,
    },
}

const GST_MS: u64 = 3_000;
const PRE_GST_DELAY_MAX_MS: u64 = 400;
const POST_GST_DELAY_MAX_MS: u64 = 40;
const TICK_MS: u64 = 400;
const ADVERSARY_EVERY_MS: u64 = 150;
/// Every honest node must reach the target within this long after GST (or
/// after its last restart, if later).
const LIVENESS_BOUND_MS: u64 = 30_000;
/// Blocks in one sync answer.
const SYNC_BATCH: usize = 8;
/// Transactions waiting in every mempool at the start.
const TXS: usize = 6;

/// What survives a crash.
#[derive(Debug, Clone)]
struct Home {
    chain: Vec<(Block, CommitCertificate)>,
    state: MemoryTreeStore,
    committed: BTreeSet<Hash>,
    signer_state: MemorySignerState,
    locked_block: Option<Block>,
    passed: Option<u64>,
    evidence: BTreeSet<(u32, u64, u32, u8)>,
}

impl Home {
    /// A copy that shares nothing (an old backup of the home).
    fn deep_copy(&self) -> Home {
        let signer_state = MemorySignerState::new();
        if let Some(bytes) = self.signer_state.load_signer_state().unwrap() {
            signer_state.save_signer_state(&bytes).unwrap();
        }
        Home {
            signer_state,
            ..self.clone()
        }
    }

    fn tip(&self, genesis: &Genesis) -> Parent {
        match self.chain.last() {
            Some((b, _)) => Parent::of(b),
            None => Parent {
                height: 0,
                hash: genesis.hash(),
                time_ms: genesis.genesis_time_ms,
            },
        }
    }
}

/// The node as the core sees it.
struct Env<'a> {
    home: &'a Home,
    genesis: &'a Genesis,
    txs: &'a [SignedTx],
}

impl CoreEnv for Env<'_> {
    type State = MemoryTreeStore;

    fn state(&self) -> &MemoryTreeStore {
        &self.home.state
    }

    fn tip(&self) -> Parent {
        self.home.tip(self.genesis)
    }

    fn last_commit(&self) -> Option<CommitCertificate> {
        self.home.chain.last().map(|(_, c)| c.clone())
    }

    fn proposal_txs(&self, max_txs: usize, _max_bytes: usize) -> Vec<SignedTx> {
        self.pending().take(max_txs).cloned().collect()
    }

    fn mempool_len(&self) -> usize {
        self.pending().count()
    }

    /// As the node's mempool: the simulation's transactions are validly
    /// signed, so the ones pending here count as verified (an adversary's
    /// altered copy has other bytes and is checked).
    fn tx_verified(&self, tx_hash: &Hash) -> bool {
        self.pending().any(|p| &p.hash() == tx_hash)
    }
}

impl Env<'_> {
    fn pending(&self) -> impl Iterator<Item = &SignedTx> {
        self.txs
            .iter()
            .filter(|t| !self.home.committed.contains(&t.hash()))
    }
}

struct Node {
    validator: u32,
    adversary: Option<Adversary>,
    core: Option<NodeCore>,
    signer: Option<Signer<MemorySignerState>>,
    home: Home,
    /// A copy of the home taken earlier (for `OldHome`).
    backup: Option<Home>,
    /// Heights other validators reported while its core waits to hear
    /// the network (a home with no signer state and no blocks).
    heard: BTreeMap<u32, u64>,
    /// Since when a member has said the chain moved on while it waits.
    heard_above_since: Option<u64>,
    /// Whether its wipe (for `WipedHome`) is scheduled.
    wipe_scheduled: bool,
    incarnation: u32,
    clock_skew_ms: i64,
    /// When the node last (re)started.
    started_at: u64,
    sync_pending_until: u64,
    /// Messages seen (for replays).
    seen: Vec<ConsensusMsg>,
    refusals: Vec<String>,
    /// Offences this incarnation asked to record (a restarted core may
    /// find an offence again; the store keeps it once).
    evidence_this_run: BTreeSet<(u32, u64, u32, u8)>,
    evidence_repeats: u64,
    max_candidates: usize,
}

impl Node {
    fn honest(&self) -> bool {
        self.adversary.is_none()
    }
}

/// A height's validator set and proposer schedule.
type SetAt = (Arc<ValidatorSet>, Arc<ProposerSchedule>);

struct Sim {
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Ev>>,
    nodes: Vec<Node>,
    /// Each validator's current key, by genesis index.
    keys: Vec<Keypair>,
    /// Every key each validator's operator has held.
    held: Vec<Vec<PublicKey>>,
    /// Rotations waiting to be taken up: validator, new key.
    rotations: Vec<(u32, Keypair)>,
    /// The sets of the heights some node has come to know (from the state
    /// after a commit), as the network learns them.
    sets: BTreeMap<u64, SetAt>,
    /// What the membership changes must have done by the end: the
    /// removed key, and the rotated-to key.
    expect_gone: Vec<PublicKey>,
    expect_in: Vec<PublicKey>,
    genesis: Genesis,
    rules: Arc<ChainRules>,
    txs: Vec<SignedTx>,
    partitions: Vec<(u64, u64, Vec<bool>)>,
    fixed_split: Option<Vec<usize>>,
    drop_p: f64,
    dup_p: f64,
    crashes: bool,
    /// Every vote an honest instance signed: (validator, h, r, kind) to value.
    honest_votes: BTreeMap<(u32, u64, u32, VoteKind), Option<Hash>>,
    violation: Option<String>,
}

fn sim_chain(powers: &[u64]) -> TestChain {
    let mut chain = TestChain::with_powers(powers, 3);
    for p in [&mut chain.genesis.params, &mut chain.rules.params] {
        p.timeout_propose_ms = 300;
        p.timeout_prevote_ms = 200;
        p.timeout_precommit_ms = 200;
        p.timeout_delta_ms = 100;
    }
    chain
}

impl Sim {
    fn new(scenario: &Scenario, seed: u64) -> Self {
        let mut chain = sim_chain(&scenario.powers);
        let mut txs: Vec<SignedTx> = (0..TXS).map(|i| chain.transfer(1 + i % 2, 0, 1)).collect();
        let mut rotations = Vec::new();
        let (mut expect_gone, mut expect_in) = (Vec::new(), Vec::new());
        if let Some(v) = scenario.remove {
            let public_key = chain.validator_keys[v as usize].public();
            expect_gone.push(public_key);
            let change = Change::RemoveValidator { public_key };
            txs.push(chain.tx(
                0,
                Op::Propose {
                    change: Box::new(change),
                },
            ));
        }
        if let Some(v) = scenario.rotate {
            let old = Keypair::from_seed(chain.validator_keys[v as usize].seed());
            let new = Keypair::from_seed([0xe0 + v as u8; 32]);
            let consent = old.sign(
                Domain::Rotation,
                chain.chain_id(),
                &rotation_message(&old.public(), &new.public()),
            );
            let change = Change::RotateKey {
                public_key: old.public(),
                new_key: new.public(),
                consent,
            };
            txs.push(chain.tx(
                0,
                Op::Propose {
                    change: Box::new(change),
                },
            ));
            expect_gone.push(old.public());
            expect_in.push(new.public());
            rotations.push((v, new));
        }
        let mut rng = Rng(seed);
        let mut nodes = Vec::new();
        for v in 0..scenario.powers.len() as u32 {
            let adversary = scenario
                .byzantine
                .iter()
                .find(|(i, _)| *i == v)
                .map(|(_, b)| *b);
            let copies = if adversary == Some(Adversary::Twin) {
                2
            } else {
                1
            };
            let new_home = || Home {
                chain: Vec::new(),
                state: chain.state.clone(),
                committed: BTreeSet::new(),
                signer_state: MemorySignerState::new(),
                locked_block: None,
                passed: None,
                evidence: BTreeSet::new(),
            };
            for _ in 0..copies {
                let skew = rng.range(0, 400) as i64 - 200;
                nodes.push(Node {
                    validator: v,
                    adversary,
                    core: None,
                    signer: None,
                    home: new_home(),
                    // A wiped home comes back as it was before it started.
                    backup: (adversary == Some(Adversary::WipedHome)).then(new_home),
                    heard: BTreeMap::new(),
                    heard_above_since: None,
                    wipe_scheduled: false,
                    incarnation: 0,
                    clock_skew_ms: skew,
                    started_at: 0,
                    sync_pending_until: 0,
                    seen: Vec::new(),
                    refusals: Vec::new(),
                    evidence_this_run: BTreeSet::new(),
                    evidence_repeats: 0,
                    max_candidates: 0,
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
            held: chain
                .validator_keys
                .iter()
                .map(|k| vec![k.public()])
                .collect(),
            keys: chain.validator_keys.drain(..).collect(),
            rotations,
            sets: [1, 2]
                .into_iter()
                .map(|h| (h, (chain.rules.set.clone(), chain.rules.schedule.clone())))
                .collect(),
            expect_gone,
            expect_in,
            rules: Arc::new(chain.rules.clone()),
            genesis: chain.genesis.clone(),
            txs,
            partitions,
            fixed_split: scenario.fixed_split.clone(),
            drop_p: scenario.drop_p,
            dup_p: scenario.dup_p,
            crashes: scenario.crashes != Crashes::None,
            honest_votes: BTreeMap::new(),
            violation: None,
        };
        let last_crash = match scenario.crashes {
            Crashes::None => 0,
            Crashes::BeforeGst => GST_MS - 500,
            Crashes::AfterGstToo => GST_MS + 3_000,
        };
        for node in 0..sim.nodes.len() {
            let old_home = sim.nodes[node].adversary == Some(Adversary::OldHome);
            if (last_crash > 0 && sim.nodes[node].honest() && sim.rng.chance(0.5)) || old_home {
                let at = sim.rng.range(300, last_crash.max(GST_MS - 500));
                let back = at + sim.rng.range(100, 1_500);
                sim.push(at, Ev::Crash { node });
                sim.push(back, Ev::Restart { node });
            }
        }
        for node in 0..sim.nodes.len() {
            if sim.nodes[node].adversary != Some(Adversary::Silent) {
                sim.boot(node);
                let first = sim.rng.range(1, TICK_MS);
                sim.push(first, Ev::Tick { node });
                if sim.nodes[node].adversary.is_some() {
                    sim.push(first, Ev::Adversary { node });
                }
            }
        }
        sim
    }

    fn push(&mut self, at: u64, event: Ev) {
        self.seq += 1;
        self.events.push(Some(event));
        self.queue
            .push(Reverse((at, self.seq, self.events.len() - 1)));
    }

    fn now_of(&self, node: usize) -> Now {
        let wall =
            (self.genesis.genesis_time_ms + self.now) as i64 + self.nodes[node].clock_skew_ms;
        Now {
            mono_ms: self.now,
            wall_ms: wall as u64,
        }
    }

    fn boot(&mut self, node: usize) {
        let n = &mut self.nodes[node];
        n.incarnation += 1;
        n.started_at = self.now;
        n.evidence_this_run.clear();
        let signer = Signer::new(
            Keypair::from_seed(self.keys[n.validator as usize].seed()),
            &self.genesis.chain_id,
            n.validator,
            n.home.signer_state.clone(),
        )
        .expect("signer state loads");
        let tip = n.home.chain.len() as u64;
        let accounted = signer.last_signed().map(|r| r.height).max(n.home.passed);
        let core = NodeCore::new(
            CoreSetup {
                rules: self.rules.clone(),
                key: Some(self.keys[n.validator as usize].public()),
                empty_block_interval_ms: 0,
                fill: BlockFill::default(),
                pause: signing_pause(accounted, tip),
            },
            tip,
            Now {
                mono_ms: self.now,
                wall_ms: 0,
            },
        );
        n.core = Some(core);
        n.signer = Some(signer);
        n.heard.clear();
        n.heard_above_since = None;
        self.restart_core(node);
        self.hear(node, None);
    }

    /// A wiped home is wiped once every honest instance has committed a
    /// block: the pause covers homes wiped after the chain has moved past
    /// genesis (a home wiped before the network's first block may sign
    /// again at height 1; ADR 18).
    fn wipe_when_the_chain_has_moved(&mut self) {
        let moved = self
            .nodes
            .iter()
            .filter(|n| n.honest())
            .all(|n| !n.home.chain.is_empty());
        if !moved {
            return;
        }
        for node in 0..self.nodes.len() {
            let n = &self.nodes[node];
            if n.adversary == Some(Adversary::WipedHome) && !n.wipe_scheduled {
                let at = self.now + self.rng.range(0, 2_000);
                let back = at + self.rng.range(100, 1_500);
                self.nodes[node].wipe_scheduled = true;
                self.push(at, Ev::Crash { node });
                self.push(back, Ev::Restart { node });
            }
        }
    }

    /// As the driver does while a signing pause lasts: notes a validator's
    /// reported height, and tells the core the network's height once
    /// validators with more than 2/3 of the power (its own included) have
    /// reported, waiting for a block (or the grace) when a member alone
    /// says a home with nothing that the chain moved on.
    fn hear(&mut self, node: usize, report: Option<(usize, u64)>) {
        let Some((set, pause)) = self.nodes[node]
            .core
            .as_ref()
            .and_then(|c| Some((c.rules().set.clone(), c.pause()?.clone())))
        else {
            self.nodes[node].heard.clear();
            self.nodes[node].heard_above_since = None;
            return;
        };
        let me = self.nodes[node].validator;
        if let Some((from, h)) = report {
            let v = self.nodes[from].validator;
            if v != me {
                let e = self.nodes[node].heard.entry(v).or_default();
                *e = (*e).max(h);
            }
        }
        let (mut own, mut others, mut heard) = (0, 0, Vec::new());
        for (v, key) in self.keys.iter().enumerate() {
            let Some(i) = set.index_of(&key.public()) else {
                continue;
            };
            let power = set.validators()[i as usize].power;
            if v as u32 == me {
                own += power;
                continue;
            }
            others += 1;
            if let Some(h) = self.nodes[node].heard.get(&(v as u32)) {
                heard.push((power, *h));
            }
        }
        if others > 0 && heard.is_empty() {
            return;
        }
        let Some(network) = quorum_height(own, set.total_power(), &heard) else {
            return;
        };
        if pause.awaiting_peers
            && network == 0
            && self.nodes[node].home.chain.is_empty()
            && heard.iter().any(|(_, h)| *h > 0)
        {
            let since = *self.nodes[node].heard_above_since.get_or_insert(self.now);
            if self.now < since + NEW_NETWORK_GRACE_MS {
                return;
            }
        }
        if !pause.awaiting_peers && network <= pause.until_past {
            return;
        }
        self.feed(node, Event::PeersHeard(network));
    }

    /// (Re)starts consensus at the node's tip with what its signer knows.
    fn restart_core(&mut self, node: usize) {
        let n = &self.nodes[node];
        let Some(signer) = &n.signer else { return };
        let height = n.home.chain.len() as u64 + 1;
        let view = SignerView {
            round: signer.round_at(height),
            lock: signer.lock_at(height),
            lock_proof: signer.lock_proof_at(height),
            votes: signer.signed_at(height).1,
            locked_block: n.home.locked_block.clone(),
        };
        self.feed(node, Event::Restart(Box::new(view)));
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
        if from == to || self.separated(from, to) {
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
                Ev::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn broadcast(&mut self, from: usize, msg: Msg) {
        for to in 0..self.nodes.len() {
            self.send(from, to, msg.clone());
        }
    }

    /// Sends `a` to a random half of the peers and `b` to the rest.
    fn split_broadcast(&mut self, from: usize, a: Msg, b: Msg) {
        for to in 0..self.nodes.len() {
            let m = if self.rng.chance(0.5) {
                a.clone()
            } else {
                b.clone()
            };
            self.send(from, to, m);
        }
    }

    fn raw_vote(&self, validator: u32, vote: Vote) -> SignedVote {
        let signature = self.keys[validator as usize].sign(
            Domain::Vote,
            &self.genesis.chain_id,
            &vote.message(),
        );
        SignedVote {
            vote,
            validator_index: validator,
            signature,
        }
    }

    fn raw_proposal(&self, validator: u32, proposal: Proposal) -> SignedProposal {
        let signature = self.keys[validator as usize].sign(
            Domain::Proposal,
            &self.genesis.chain_id,
            &proposal.message(),
        );
        SignedProposal {
            proposal,
            signature,
        }
    }

    /// Hands an event to a running node's core and carries out the effects
    /// as the driver does: in order, follow-ups first.
    fn feed(&mut self, node: usize, event: Event) {
        let mut queue: VecDeque<Effect> = VecDeque::new();
        let mut next = Some(event);
        loop {
            if let Some(event) = next.take() {
                let now = self.now_of(node);
                let n = &mut self.nodes[node];
                let Some(core) = n.core.as_mut() else { return };
                let env = Env {
                    home: &n.home,
                    genesis: &self.genesis,
                    txs: &self.txs,
                };
                let effects = match core.handle(event, now, &env) {
                    Ok(fx) => fx,
                    Err(e) => {
                        self.violation = Some(format!("node {node} core failed: {e}"));
                        return;
                    }
                };
                n.max_candidates = n.max_candidates.max(core.candidates().len());
                for e in effects.into_iter().rev() {
                    queue.push_front(e);
                }
            }
            let Some(effect) = queue.pop_front() else {
                break;
            };
            next = self.carry_out(node, effect);
        }
    }

    fn carry_out(&mut self, node: usize, effect: Effect) -> Option<Event> {
        let validator = self.nodes[node].validator;
        // A wiped home is an operator's error, not the node's: its
        // signatures are held to the honest rule.
        let honest =
            self.nodes[node].honest() || self.nodes[node].adversary == Some(Adversary::WipedHome);
        match effect {
            Effect::PersistLockedBlock(b) => {
                self.nodes[node].home.locked_block = Some(*b);
                None
            }
            Effect::SignVote { vote, polka } => {
                let signer = self.nodes[node].signer.as_mut()?;
                let result = signer.sign_vote_with_polka(&vote, &polka);
                if honest && result.is_ok() {
                    let key = (validator, vote.height, vote.round, vote.kind);
                    match self.honest_votes.get(&key) {
                        Some(prev) if *prev != vote.value => {
                            self.violation.get_or_insert(format!(
                                "signer safety: honest validator {validator} signed {prev:?} and {:?} at height {} round {} {:?}",
                                vote.value, vote.height, vote.round, vote.kind
                            ));
                        }
                        _ => {
                            self.honest_votes.insert(key, vote.value);
                        }
                    }
                }
                // Its place in the set of the vote's height.
                let index = self.nodes[node].core.as_ref()?.me()?;
                Some(Event::vote_signed(vote, index, result))
            }
            Effect::SignProposal(p) => {
                let signer = self.nodes[node].signer.as_mut()?;
                let result = signer.sign_proposal(&p);
                Some(Event::proposal_signed(p, result))
            }
            Effect::Broadcast(msg) => {
                self.send_consensus(node, msg);
                None
            }
            Effect::SetTimer { after_ms, timer } => {
                let incarnation = self.nodes[node].incarnation;
                self.push(
                    self.now + after_ms,
                    Ev::Timer {
                        node,
                        incarnation,
                        timer,
                    },
                );
                None
            }
            Effect::Commit {
                block,
                certificate,
                update,
            } => {
                self.commit(node, *block, certificate, &update.0);
                Some(Event::Committed)
            }
            Effect::RecordEvidence(e) => {
                let v = &e.first.vote;
                let kind = u8::from(v.kind == VoteKind::Precommit);
                let key = (e.validator_index(), v.height, v.round, kind);
                self.nodes[node].home.evidence.insert(key);
                if !self.nodes[node].evidence_this_run.insert(key) {
                    self.nodes[node].evidence_repeats += 1;
                }
                None
            }
            Effect::EvictTxs(_) => None,
            Effect::Notice(Notice::SignerFault(e) | Notice::SignerRefused(e)) => {
                self.nodes[node].refusals.push(e);
                None
            }
            Effect::Notice(_) => None,
        }
    }

    fn commit(
        &mut self,
        node: usize,
        block: Block,
        cert: CommitCertificate,
        update: &tally_ledger::state::StateUpdate,
    ) {
        let n = &mut self.nodes[node];
        n.home.state.apply(&update.batch.node_batch);
        n.home.committed.extend(block.tx_hashes());
        n.home.chain.push((block, cert));
        let tip = n.home.chain.len() as u64;
        if let (Some(signer), Some(core)) = (&n.signer, &n.core) {
            if core.pause().is_none() && signer.last_signed().is_none_or(|r| r.height < tip) {
                n.home.passed = Some(tip);
            }
        }
        self.learn_sets(node);
    }

    /// The sets of the two heights after a node's tip, as its state names
    /// them; and a rotation taken up by its operator once the new key is in
    /// the set of the next height (the node restarts with it, keeping its
    /// signer state).
    fn learn_sets(&mut self, node: usize) {
        let n = &self.nodes[node];
        let validator = n.validator;
        let tip = n.home.chain.len() as u64;
        let learned = self
            .rules
            .at_height(&n.home.state, tip + 1)
            .and_then(|rules| {
                let next = rules.next_set(&n.home.state)?;
                Ok((rules, next))
            });
        let (rules, next) = match learned {
            Ok(r) => r,
            Err(e) => {
                self.violation
                    .get_or_insert(format!("node {node}: no rules for height {}: {e}", tip + 1));
                return;
            }
        };
        self.sets
            .entry(tip + 1)
            .or_insert_with(|| (rules.set.clone(), rules.schedule.clone()));
        self.sets.entry(tip + 2).or_insert_with(|| {
            let schedule = Arc::new(ProposerSchedule::new(&next));
            (next, schedule)
        });
        let due = self
            .rotations
            .iter()
            .position(|(v, new)| *v == validator && rules.set.index_of(&new.public()).is_some());
        if let Some(i) = due {
            let (v, new) = self.rotations.remove(i);
            self.held[v as usize].push(new.public());
            self.keys[v as usize] = new;
            let restarts: Vec<usize> = (0..self.nodes.len())
                .filter(|j| self.nodes[*j].validator == v && self.nodes[*j].core.is_some())
                .collect();
            for node in restarts {
                self.push(self.now, Ev::Restart { node });
            }
        }
    }

    /// Sends a node's consensus message, the way its adversary would.
    fn send_consensus(&mut self, node: usize, msg: ConsensusMsg) {
        let validator = self.nodes[node].validator;
        match (self.nodes[node].adversary, &msg) {
            (Some(Adversary::DoubleVoter), ConsensusMsg::Vote(sv)) => {
                let other_value = match sv.vote.value {
                    Some(_) => None,
                    None => Some(Hash::digest(&self.rng.next().to_le_bytes())),
                };
                let other = self.raw_vote(
                    validator,
                    Vote {
                        value: other_value,
                        ..sv.vote
                    },
                );
                self.split_broadcast(
                    node,
                    Msg::Consensus(msg.clone()),
                    Msg::Consensus(ConsensusMsg::Vote(other)),
                );
            }
            (Some(Adversary::Withholder), ConsensusMsg::Vote(_)) => {
                for to in 0..self.nodes.len() {
                    if self.rng.chance(0.4) {
                        self.send(node, to, Msg::Consensus(msg.clone()));
                    }
                }
            }
            (
                Some(Adversary::EquivocatingProposer | Adversary::TimeWarp),
                ConsensusMsg::Proposal { proposal, block },
            ) => {
                let mut other = (**block).clone();
                let time = if self.nodes[node].adversary == Some(Adversary::TimeWarp) {
                    match self.rng.below(5) {
                        0 => u64::MAX,
                        1 => BLOCK_TIME_MS_MAX,
                        2 => other.header.time_ms + 3_600_000,
                        3 => other.header.time_ms.saturating_sub(1_000_000),
                        _ => BLOCK_TIME_MS_MAX + 1,
                    }
                } else {
                    other.header.time_ms + 1 + self.rng.below(50)
                };
                other.header.time_ms = time;
                let p = Proposal {
                    block_hash: other.hash(),
                    ..proposal.proposal
                };
                let forged = ConsensusMsg::Proposal {
                    proposal: self.raw_proposal(validator, p),
                    block: Box::new(other),
                };
                if self.nodes[node].adversary == Some(Adversary::TimeWarp) {
                    self.broadcast(node, Msg::Consensus(forged));
                } else {
                    self.split_broadcast(node, Msg::Consensus(msg.clone()), Msg::Consensus(forged));
                }
            }
            _ => self.broadcast(node, Msg::Consensus(msg)),
        }
    }

    /// One burst of an adversary's own initiative.
    fn adversary_acts(&mut self, node: usize) {
        let Some(adversary) = self.nodes[node].adversary else {
            return;
        };
        if self.nodes[node].core.is_none() {
            return;
        }
        let validator = self.nodes[node].validator;
        let height = self.nodes[node].home.chain.len() as u64 + 1;
        match adversary {
            Adversary::Flooder => {
                for _ in 0..20 {
                    let h = match self.rng.below(5) {
                        0 => height.saturating_sub(1),
                        1 | 2 => height,
                        3 => height + 1,
                        _ => height + 2 + self.rng.below(1_000),
                    };
                    let round = match self.rng.below(4) {
                        0 => self.rng.below(3) as u32,
                        1 => self.rng.below(u64::from(ROUND_WINDOW) * 2) as u32,
                        2 => u32::MAX - self.rng.below(3) as u32,
                        _ => self.rng.below(100_000) as u32,
                    };
                    let kind = if self.rng.chance(0.5) {
                        VoteKind::Prevote
                    } else {
                        VoteKind::Precommit
                    };
                    let value = self
                        .rng
                        .chance(0.8)
                        .then(|| Hash::digest(&self.rng.next().to_le_bytes()));
                    let v = self.raw_vote(
                        validator,
                        Vote {
                            kind,
                            height: h,
                            round,
                            value,
                        },
                    );
                    self.broadcast(node, Msg::Consensus(ConsensusMsg::Vote(v)));
                }
                // Distinct proposals for every round it proposes, this height
                // and the next, near and far.
                let Some(base) = self.nodes[node].home.chain.last().map(|(b, _)| b.clone()) else {
                    return;
                };
                for h in [height, height + 1] {
                    let rounds: Vec<u32> = (0..200u32)
                        .chain([u32::MAX - 1, 1_000_000])
                        .filter(|r| self.rules.schedule.proposer(h, *r) == validator)
                        .take(6)
                        .collect();
                    for r in rounds {
                        let mut block = base.clone();
                        block.header.height = h;
                        block.header.time_ms = self.rng.next();
                        self.propose_raw(node, r, block);
                    }
                }
            }
            Adversary::ReplayForger => {
                let seen = self.nodes[node].seen.len();
                for _ in 0..5.min(seen) {
                    let i = self.rng.below(seen as u64) as usize;
                    let m = self.nodes[node].seen[i].clone();
                    self.broadcast(node, Msg::Consensus(m));
                }
                self.forge_next_height_proposal(node, height);
            }
            Adversary::Liar => {
                let lie = height + self.rng.range(1, 1_000_000);
                self.broadcast(node, Msg::Status(lie));
            }
            _ => {}
        }
    }

    /// A proposal for the height after the network's, carrying a forged or
    /// partial certificate for this height as its last_commit.
    fn forge_next_height_proposal(&mut self, node: usize, height: u64) {
        let validator = self.nodes[node].validator;
        let Some(round) =
            (0..=ROUND_WINDOW).find(|r| self.rules.schedule.proposer(height + 1, *r) == validator)
        else {
            return;
        };
        let Some((base, _)) = self.nodes[node].home.chain.last().cloned() else {
            return;
        };
        let fake = Hash::digest(&self.rng.next().to_le_bytes());
        let mut cert = CommitCertificate {
            height,
            round: 0,
            block_hash: fake,
            signatures: vec![],
        };
        let message = cert.vote().message();
        let sig =
            self.keys[validator as usize].sign(Domain::Vote, &self.genesis.chain_id, &message);
        if self.rng.chance(0.5) {
            // Partial: its own signature only.
            cert.signatures.push(CommitSig {
                validator_index: validator,
                signature: sig,
            });
        } else {
            // Forged: its own signature under every index.
            for i in 0..self.rules.set.len() as u32 {
                cert.signatures.push(CommitSig {
                    validator_index: i,
                    signature: sig,
                });
            }
        }
        let mut block = base;
        block.header.height = height + 1;
        block.header.prev_hash = fake;
        block.last_commit = Some(cert);
        block.header.last_commit_hash = last_commit_hash(block.last_commit.as_ref());
        self.propose_raw(node, round, block);
    }

    /// Signs a fresh proposal of `block` in `round` with the node's key,
    /// whatever its signer would say, and sends it to everyone.
    fn propose_raw(&mut self, node: usize, round: u32, block: Block) {
        let p = Proposal {
            height: block.height(),
            round,
            pol_round: None,
            block_hash: block.hash(),
        };
        let msg = ConsensusMsg::Proposal {
            proposal: self.raw_proposal(self.nodes[node].validator, p),
            block: Box::new(block),
        };
        self.broadcast(node, Msg::Consensus(msg));
    }

    /// What the network checks before a consensus message reaches a node:
    /// the signer may sign it (a proposal by its round's proposer, whose
    /// block is the one named; a vote by a validator).
    fn admissible(&self, from: usize, msg: &ConsensusMsg) -> bool {
        let held = &self.held[self.nodes[from].validator as usize];
        let height = match msg {
            ConsensusMsg::Vote(v) => v.vote.height,
            ConsensusMsg::Proposal { proposal, .. } => proposal.proposal.height,
        };
        // A height whose set no node knows yet (the network ignores it)
        // is judged by the latest set known, so that floods of far-future
        // messages still reach the cores and test their bounds.
        let Some((set, schedule)) = self
            .sets
            .get(&height)
            .or_else(|| self.sets.values().next_back())
        else {
            return false;
        };
        let signed_by_author =
            |index: u32| set.get(index).is_some_and(|v| held.contains(&v.public_key));
        match msg {
            // A vote may come from its author, or be relayed by anyone if
            // its author signed it.
            ConsensusMsg::Vote(v) => {
                signed_by_author(v.validator_index)
                    || set.get(v.validator_index).is_some_and(|val| {
                        val.public_key
                            .verify(
                                Domain::Vote,
                                &self.genesis.chain_id,
                                &v.vote.message(),
                                &v.signature,
                            )
                            .is_ok()
                    })
            }
            ConsensusMsg::Proposal { proposal, block } => {
                let p = proposal.proposal;
                signed_by_author(schedule.proposer(p.height, p.round))
                    && block.hash() == p.block_hash
                    && block.height() == p.height
            }
        }
    }

    fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        if self.nodes[to].core.is_none() {
            return;
        }
        match msg {
            Msg::Consensus(m) => {
                if !self.admissible(from, &m) {
                    return;
                }
                if self.nodes[to].adversary == Some(Adversary::ReplayForger)
                    && self.nodes[to].seen.len() < 200
                {
                    self.nodes[to].seen.push(m.clone());
                }
                let event = match m {
                    ConsensusMsg::Vote(v) => Event::Vote(v),
                    ConsensusMsg::Proposal { proposal, block } => {
                        Event::Proposal { proposal, block }
                    }
                };
                self.feed(to, event);
            }
            Msg::Status(h) => {
                self.hear(to, Some((from, h)));
                let tip = self.nodes[to].home.chain.len() as u64;
                let since = self.nodes[to]
                    .core
                    .as_ref()
                    .map_or(0, |c| c.since_commit_ms(self.now_of(to)));
                if should_sync(tip, h, since) && self.nodes[to].sync_pending_until <= self.now {
                    self.nodes[to].sync_pending_until = self.now + 1_000;
                    self.send(
                        to,
                        from,
                        Msg::SyncRequest {
                            from_height: tip + 1,
                        },
                    );
                }
            }
            Msg::SyncRequest { from_height } => {
                let answer = match self.nodes[to].adversary {
                    Some(Adversary::Liar) => self.lie(to, from_height),
                    _ => self.nodes[to]
                        .home
                        .chain
                        .iter()
                        .skip(from_height.saturating_sub(1) as usize)
                        .take(SYNC_BATCH)
                        .cloned()
                        .collect(),
                };
                self.send(to, from, Msg::SyncResponse(answer));
            }
            Msg::SyncResponse(blocks) => self.synced(to, blocks),
        }
    }

    /// A liar's answer: nothing, or its blocks with one changed.
    fn lie(&mut self, liar: usize, from_height: u64) -> Vec<(Block, CommitCertificate)> {
        let mut blocks: Vec<(Block, CommitCertificate)> = self.nodes[liar]
            .home
            .chain
            .iter()
            .skip(from_height.saturating_sub(1) as usize)
            .take(SYNC_BATCH)
            .cloned()
            .collect();
        match self.rng.below(3) {
            0 => Vec::new(),
            1 => {
                if let Some((b, _)) = blocks.first_mut() {
                    b.header.state_root = Hash::digest(b"lie");
                }
                blocks
            }
            _ => {
                if let Some((_, c)) = blocks.first_mut() {
                    c.signatures.truncate(1);
                }
                blocks
            }
        }
    }

    /// Block sync: each answered block is checked with the block rules (as
    /// the driver does) and committed; then consensus restarts on the tip.
    fn synced(&mut self, node: usize, blocks: Vec<(Block, CommitCertificate)>) {
        self.nodes[node].sync_pending_until = 0;
        let mut any = false;
        for (block, cert) in blocks {
            let n = &self.nodes[node];
            let parent = n.home.tip(&self.genesis);
            if block.height() != parent.height + 1 {
                continue;
            }
            let placement = Placement {
                parent,
                round: cert.round,
                now_ms: None,
            };
            let Ok(rules) = self.rules.at_height(&n.home.state, parent.height + 1) else {
                break;
            };
            let checked = rules
                .check_signatures(&block, Some(&cert))
                .map_err(|e| e.to_string())
                .and_then(|_| {
                    rules
                        .check_block(
                            &block,
                            tally_ledger::encoding::encode(&block).len(),
                            &placement,
                        )
                        .map_err(|e| e.to_string())
                })
                .and_then(|()| {
                    rules
                        .check_state(&block, &n.home.state)
                        .map_err(|e| e.to_string())
                });
            let Ok(update) = checked else { break };
            self.commit(node, block, cert, &update);
            any = true;
        }
        if any {
            self.restart_core(node);
        }
    }

    fn run(&mut self, until: u64, target: u64) {
        while let Some(Reverse((at, _, idx))) = self.queue.pop() {
            if at > until || self.violation.is_some() {
                break;
            }
            self.now = at;
            let Some(event) = self.events[idx].take() else {
                continue;
            };
            match event {
                Ev::Deliver { to, from, msg } => self.deliver(to, from, msg),
                Ev::Timer {
                    node,
                    incarnation,
                    timer,
                } => {
                    if self.nodes[node].incarnation == incarnation {
                        self.feed(node, Event::Timer(timer));
                    }
                }
                Ev::Tick { node } => {
                    if self.nodes[node].core.is_some() {
                        self.feed(node, Event::Tick);
                        let tip = self.nodes[node].home.chain.len() as u64;
                        self.broadcast(node, Msg::Status(tip));
                        self.hear(node, None);
                    }
                    self.push(self.now + TICK_MS, Ev::Tick { node });
                }
                Ev::Adversary { node } => {
                    self.adversary_acts(node);
                    self.push(self.now + ADVERSARY_EVERY_MS, Ev::Adversary { node });
                }
                Ev::Crash { node } => {
                    let n = &mut self.nodes[node];
                    n.core = None;
                    n.signer = None;
                    if matches!(n.adversary, Some(Adversary::OldHome | Adversary::WipedHome)) {
                        if let Some(old) = n.backup.take() {
                            n.home = old;
                        }
                    }
                }
                Ev::Restart { node } => self.boot(node),
            }
            self.wipe_when_the_chain_has_moved();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                // An old-home validator keeps a copy from early on.
                if n.adversary == Some(Adversary::OldHome)
                    && n.backup.is_none()
                    && n.home.chain.len() == 1
                {
                    n.backup = Some(n.home.deep_copy());
                }
                if n.max_candidates > CANDIDATES_MAX {
                    self.violation.get_or_insert(format!(
                        "bound: instance {i} held {} block bodies, more than {CANDIDATES_MAX}",
                        n.max_candidates
                    ));
                }
            }
            if self.now > GST_MS
                && self
                    .nodes
                    .iter()
                    .filter(|n| n.honest())
                    .all(|n| n.home.chain.len() as u64 >= target)
            {
                break;
            }
        }
    }

    /// Each instance's state, printed with a violation.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let state = match &n.core {
                Some(c) => {
                    let m = c.machine();
                    format!(
                        "height {} round {} step {:?} locked {:?} paused {}",
                        m.height(),
                        m.round(),
                        m.step(),
                        m.locked().map(|(r, h)| (r, h.short())),
                        c.pause().is_some()
                    )
                }
                None => "down".into(),
            };
            out.push_str(&format!(
                "  instance {i}: validator {} {:?}, committed {}, {state}\n",
                n.validator,
                n.adversary,
                n.home.chain.len()
            ));
        }
        out
    }

    /// Checks every property; `Err` names the first violation.
    fn check(&self, target: u64) -> Result<(), String> {
        if let Some(v) = &self.violation {
            return Err(v.clone());
        }
        let honest: Vec<(usize, &Node)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.honest())
            .collect();
        let max_height = honest
            .iter()
            .map(|(_, n)| n.home.chain.len())
            .max()
            .unwrap_or(0);
        for h in 0..max_height {
            let mut agreed: Option<Hash> = None;
            for (_, n) in &honest {
                if let Some((block, _)) = n.home.chain.get(h) {
                    let hash = block.hash();
                    if agreed.is_some_and(|a| a != hash) {
                        return Err(format!(
                            "agreement: two honest nodes committed {} and {} at height {}",
                            agreed.unwrap_or(Hash::ZERO).short(),
                            hash.short(),
                            h + 1
                        ));
                    }
                    agreed = Some(hash);
                }
            }
        }
        for (i, n) in &honest {
            self.audit(&n.home)
                .map_err(|e| format!("validity: instance {i}: {e}"))?;
            if (n.home.chain.len() as u64) < target {
                return Err(format!(
                    "liveness: honest instance {i} (validator {}) committed {} of {target} heights by {} ms ({} ms after GST, last start at {} ms)",
                    n.validator,
                    n.home.chain.len(),
                    self.now,
                    self.now.saturating_sub(GST_MS),
                    n.started_at
                ));
            }
            if !self.crashes && !n.refusals.is_empty() {
                return Err(format!(
                    "signer: honest instance {i} without crashes had refusals: {:?}",
                    n.refusals
                ));
            }
            if n.evidence_repeats > 0 {
                return Err(format!(
                    "evidence: instance {i} was asked to record an offence it already held {} times",
                    n.evidence_repeats
                ));
            }
            for (index, height, ..) in &n.home.evidence {
                let accused = self
                    .sets
                    .get(height)
                    .and_then(|(set, _)| set.get(*index))
                    .map(|v| v.public_key);
                let honest_key = |m: &Node| {
                    m.honest()
                        && accused.is_some_and(|k| self.held[m.validator as usize].contains(&k))
                };
                if self.nodes.iter().any(honest_key) {
                    return Err(format!(
                        "evidence: instance {i} accuses an honest validator (index {index} at height {height})"
                    ));
                }
            }
            let tip = n.home.chain.len() as u64;
            let set = self
                .rules
                .at_height(&n.home.state, tip + 1)
                .map_err(|e| format!("instance {i}: {e}"))?
                .set;
            if let Some(k) = self.expect_gone.iter().find(|k| set.index_of(k).is_some()) {
                return Err(format!(
                    "membership: instance {i} still has {k} in the set after height {tip}"
                ));
            }
            if let Some(k) = self.expect_in.iter().find(|k| set.index_of(k).is_none()) {
                return Err(format!(
                    "membership: instance {i} lacks {k} in the set after height {tip}"
                ));
            }
        }
        Ok(())
    }

    /// The audit's checks over a node's chain: every block passes the block
    /// rules with its certificate, re-executed from genesis.
    fn audit(&self, home: &Home) -> Result<(), String> {
        let mut state = self.genesis_state();
        let mut parent = Parent {
            height: 0,
            hash: self.genesis.hash(),
            time_ms: self.genesis.genesis_time_ms,
        };
        let mut rules = (*self.rules).clone();
        for (block, cert) in &home.chain {
            let placement = Placement {
                parent,
                round: cert.round,
                now_ms: None,
            };
            rules = rules
                .at_height(&state, parent.height + 1)
                .map_err(|e| format!("height {}: {e}", block.height()))?;
            rules
                .check_block(
                    block,
                    tally_ledger::encoding::encode(block).len(),
                    &placement,
                )
                .map_err(|e| format!("height {}: {e}", block.height()))?;
            rules
                .check_signatures(block, Some(cert))
                .map_err(|e| format!("height {}: {e}", block.height()))?;
            let update = rules
                .check_state(block, &state)
                .map_err(|e| format!("height {}: {e}", block.height()))?;
            state.apply(&update.batch.node_batch);
            parent = Parent::of(block);
        }
        Ok(())
    }

    fn genesis_state(&self) -> MemoryTreeStore {
        let mut state = MemoryTreeStore::new();
        let update = tally_ledger::execution::genesis_state(&state, &self.genesis).unwrap();
        state.apply(&update.batch.node_batch);
        state
    }
}

fn run_one(scenario: &Scenario, seed: u64) -> Result<(), String> {
    let mut sim = Sim::new(scenario, seed);
    let until = GST_MS + 3_000 + LIVENESS_BOUND_MS;
    sim.run(until, scenario.target_height);
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
                "scenario {} seed {seed} failed: {violation}\nreplay: SIM_SCENARIO={} SIM_SEED={seed} cargo test --release --workspace --test sim -- --ignored replay --nocapture",
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
        crashes: Crashes::None,
        drop_p: 0.1,
        dup_p: 0.05,
        partitions: true,
        fixed_split: None,
        target_height: 4,
        seeds: 80,
        remove: None,
        rotate: None,
    };
    let one = |name, adversary| Scenario {
        name,
        byzantine: vec![(1, adversary)],
        ..base.clone()
    };
    vec![
        Scenario {
            name: "n4_lossy_network",
            ..base.clone()
        },
        Scenario {
            name: "n4_crash_restart",
            crashes: Crashes::AfterGstToo,
            ..base.clone()
        },
        one("n4_silent", Adversary::Silent),
        Scenario {
            crashes: Crashes::BeforeGst,
            ..one("n4_twins", Adversary::Twin)
        },
        one("n4_double_voter", Adversary::DoubleVoter),
        one("n4_equivocating_proposer", Adversary::EquivocatingProposer),
        one("n4_time_warp", Adversary::TimeWarp),
        one("n4_flooder", Adversary::Flooder),
        one("n4_replay_forger", Adversary::ReplayForger),
        one("n4_withholder", Adversary::Withholder),
        one("n4_liar", Adversary::Liar),
        one("n4_old_home", Adversary::OldHome),
        one("n4_wiped_home", Adversary::WipedHome),
        Scenario {
            name: "n7_mixed",
            powers: vec![10; 7],
            byzantine: vec![(2, Adversary::DoubleVoter), (5, Adversary::Flooder)],
            crashes: Crashes::AfterGstToo,
            seeds: 40,
            ..base.clone()
        },
        Scenario {
            name: "n4_remove_double_voter",
            target_height: 6,
            remove: Some(1),
            seeds: 40,
            ..one("", Adversary::DoubleVoter)
        },
        Scenario {
            name: "n5_rotate_under_round_changes",
            powers: vec![10; 5],
            target_height: 6,
            rotate: Some(2),
            seeds: 40,
            ..one("", Adversary::Silent)
        },
        Scenario {
            name: "n7_remove_flooder_and_rotate",
            powers: vec![10; 7],
            target_height: 6,
            remove: Some(1),
            rotate: Some(3),
            seeds: 40,
            ..one("", Adversary::Flooder)
        },
        Scenario {
            name: "weighted_power",
            powers: vec![40, 20, 20, 10, 10],
            byzantine: vec![(1, Adversary::TimeWarp)],
            crashes: Crashes::BeforeGst,
            seeds: 60,
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

macro_rules! scenario_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_scenario(&scenario(stringify!($name)));
            }
        )*
    };
}

scenario_tests!(
    n4_lossy_network,
    n4_crash_restart,
    n4_silent,
    n4_twins,
    n4_double_voter,
    n4_equivocating_proposer,
    n4_time_warp,
    n4_flooder,
    n4_replay_forger,
    n4_withholder,
    n4_liar,
    n4_old_home,
    n4_wiped_home,
    n7_mixed,
    n4_remove_double_voter,
    n5_rotate_under_round_changes,
    n7_remove_flooder_and_rotate,
    weighted_power,
);

#[test]
fn ci_covers_at_least_a_thousand_seeds() {
    let total: u64 = scenarios().iter().map(|s| s.seeds).sum();
    assert!(total >= 1_000, "only {total} seeds per CI run");
}

/// Runs a control: twinned validators split across a partition that lasts
/// until GST; returns the number of seeds in which the checker found a fork.
fn forks(powers: Vec<u64>, twins: Vec<u32>, split: Vec<usize>, seeds: u64) -> u64 {
    let control = Scenario {
        name: "control",
        powers,
        byzantine: twins.into_iter().map(|v| (v, Adversary::Twin)).collect(),
        crashes: Crashes::None,
        drop_p: 0.0,
        dup_p: 0.0,
        partitions: false,
        fixed_split: Some(split),
        target_height: 2,
        seeds,
        remove: None,
        rotate: None,
    };
    (0..seeds)
        .filter(|seed| {
            let mut sim = Sim::new(&control, *seed);
            sim.run(GST_MS + LIVENESS_BOUND_MS, control.target_height);
            sim.check(control.target_height)
                .is_err_and(|v| v.starts_with("agreement"))
        })
        .count() as u64
}

/// Control: Byzantine power of exactly 1/3 (one twinned validator of three
/// equal ones, split across a partition) cannot fork the chain.
#[test]
fn control_exactly_a_third_byzantine_never_forks() {
    // Instances: 0, 1, 2a, 2b. Sides: {0, 2a} and {1, 2b}.
    assert_eq!(forks(vec![10, 10, 10], vec![2], vec![0, 2], 40), 0);
}

/// Control: just over 1/3 of the power Byzantine, and the checker finds the
/// fork. This proves the checker can fail.
#[test]
fn control_just_over_a_third_byzantine_forks_and_the_checker_sees_it() {
    assert!(forks(vec![10, 10, 11], vec![2], vec![0, 2], 40) > 0);
}

/// The rotation scenario does what its name says: in some seeds the first
/// height the new key decides needs more than one round (the silent
/// validator's turn, or the network before GST), so a key changes hands
/// while rounds change.
#[test]
fn rotations_meet_round_changes() {
    let scenario = scenario("n5_rotate_under_round_changes");
    let rounds: Vec<u32> = (0..scenario.seeds)
        .map(|seed| {
            let mut sim = Sim::new(&scenario, seed);
            sim.run(GST_MS + 3_000 + LIVENESS_BOUND_MS, scenario.target_height);
            let new_key = sim.expect_in[0];
            let first = sim
                .sets
                .iter()
                .find(|(_, (set, _))| set.index_of(&new_key).is_some())
                .map(|(h, _)| *h)
                .expect("the rotation applied");
            let (_, cert) = &sim.nodes[0].home.chain[first as usize - 1];
            cert.round
        })
        .collect();
    println!("rounds deciding the new key's first height: {rounds:?}");
    assert!(
        rounds.iter().any(|r| *r > 0),
        "every rotation applied in round 0: {rounds:?}"
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
