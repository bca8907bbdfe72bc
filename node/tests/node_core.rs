//! Exact-effect tests of the node core: events in, effects out, no I/O.
//!
//! Four validators of power 10 (a quorum is 3), a chain in memory, time
//! given by the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use tally_consensus::{SignerError, TimeoutKind};
use tally_ledger::crypto::Domain;
use tally_ledger::state::MemoryTreeStore;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{
    Block, CommitCertificate, Proposal, SignedProposal, SignedTx, SignedVote, Vote, VoteKind,
};
use tally_ledger::verify::{ChainRules, Parent, BLOCK_TIME_DRIFT_MS};
use tally_ledger::Hash;
use tally_node::node_core::{
    quorum_height, signing_pause, BlockFill, CoreEnv, CoreSetup, Effect, Event, NodeCore, Notice,
    Now, Signed, SignerView, SigningPause, Timer,
};
use tally_node::wire::ConsensusMsg;

const PROPOSE_MS: u64 = 1_000;

/// The chain and mempool the core reads.
struct Env {
    chain: TestChain,
    txs: Vec<SignedTx>,
}

impl CoreEnv for Env {
    type State = MemoryTreeStore;

    fn state(&self) -> &MemoryTreeStore {
        &self.chain.state
    }

    fn tip(&self) -> Parent {
        match self.chain.blocks.last() {
            None => Parent {
                height: 0,
                hash: self.chain.genesis.hash(),
                time_ms: self.chain.genesis.genesis_time_ms,
            },
            Some((b, _)) => Parent::of(b),
        }
    }

    fn last_commit(&self) -> Option<CommitCertificate> {
        self.chain.blocks.last().map(|(_, c)| c.clone())
    }

    fn proposal_txs(&self, max_txs: usize, _max_bytes: usize) -> Vec<SignedTx> {
        self.txs.iter().take(max_txs).cloned().collect()
    }

    fn mempool_len(&self) -> usize {
        self.txs.len()
    }
}

impl Env {
    fn new() -> Self {
        Env {
            chain: TestChain::new(4, 2),
            txs: Vec::new(),
        }
    }

    fn rules(&self) -> Arc<ChainRules> {
        Arc::new(self.chain.rules.clone())
    }

    /// A core for validator `me` at genesis, with this empty-block interval
    /// and block fill.
    fn proposer_core(&self, me: u32, empty_block_interval_ms: u64, fill: BlockFill) -> NodeCore {
        NodeCore::new(
            CoreSetup {
                rules: self.rules(),
                key: Some(self.chain.validator_keys[me as usize].public()),
                empty_block_interval_ms,
                fill,
                pause: None,
            },
            0,
            self.now(),
        )
    }

    fn core(&self, me: u32, pause: Option<SigningPause>) -> NodeCore {
        NodeCore::new(
            CoreSetup {
                rules: self.rules(),
                key: Some(self.chain.validator_keys[me as usize].public()),
                empty_block_interval_ms: 0,
                fill: BlockFill::default(),
                pause,
            },
            self.chain.height(),
            self.now(),
        )
    }

    /// The time at which the test kit's next block is stamped.
    fn now(&self) -> Now {
        let h = self.chain.height() + 1;
        Now {
            mono_ms: h * 1_000,
            wall_ms: self.chain.genesis.genesis_time_ms + h * 1_000,
        }
    }

    fn proposer(&self, round: u32) -> u32 {
        self.chain
            .rules
            .schedule
            .proposer(self.chain.height() + 1, round)
    }

    fn sign_proposal(&self, p: Proposal) -> SignedProposal {
        let key = &self.chain.validator_keys[self.proposer(p.round) as usize];
        SignedProposal {
            proposal: p,
            signature: key.sign(Domain::Proposal, self.chain.chain_id(), &p.message()),
        }
    }

    fn sign_vote(&self, from: u32, vote: Vote) -> SignedVote {
        let key = &self.chain.validator_keys[from as usize];
        SignedVote {
            vote,
            validator_index: from,
            signature: key.sign(Domain::Vote, self.chain.chain_id(), &vote.message()),
        }
    }

    /// A proposal for `block` in `round` signed by that round's proposer.
    fn proposal(&self, round: u32, block: &Block) -> Event {
        let p = Proposal {
            height: block.height(),
            round,
            pol_round: None,
            block_hash: block.hash(),
        };
        Event::Proposal {
            proposal: self.sign_proposal(p),
            block: Box::new(block.clone()),
        }
    }

    fn vote(&self, from: u32, kind: VoteKind, round: u32, value: Option<Hash>) -> Event {
        let vote = Vote {
            kind,
            height: self.chain.height() + 1,
            round,
            value,
        };
        Event::Vote(self.sign_vote(from, vote))
    }

    /// Makes the decided block the tip, as the driver's commit does.
    fn commit(&mut self, block: &Block, cert: &CommitCertificate) {
        let update = tally_ledger::execution::execute_block(
            &self.chain.state,
            block.height(),
            self.chain.chain_id(),
            &self.chain.genesis.params,
            &block.txs,
        )
        .unwrap();
        self.chain.state.apply(&update.batch.node_batch);
        self.chain.blocks.push((block.clone(), cert.clone()));
    }
}

fn propose_timer(height: u64, round: u32, after_ms: u64) -> Effect {
    Effect::SetTimer {
        after_ms,
        timer: Timer::Consensus {
            height,
            round,
            kind: TimeoutKind::Propose,
        },
    }
}

fn vote_out(kind: VoteKind, round: u32, value: Option<Hash>) -> Vote {
    Vote {
        kind,
        height: 1,
        round,
        value,
    }
}

#[test]
fn the_proposer_builds_a_block_asks_for_a_signature_then_broadcasts_and_prevotes() {
    let mut env = Env::new();
    env.txs = vec![env.chain.transfer(1, 0, 5)];
    let me = env.proposer(0);
    let mut core = env.core(me, None);
    let expected = env.chain.build_block(env.txs.clone()).unwrap().0;
    let p = Proposal {
        height: 1,
        round: 0,
        pol_round: None,
        block_hash: expected.hash(),
    };
    let fx = core
        .handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    assert_eq!(
        fx,
        vec![propose_timer(1, 0, PROPOSE_MS), Effect::SignProposal(p)]
    );

    let sp = env.sign_proposal(p);
    let fx = core
        .handle(Event::Signed(Signed::Proposal(sp.clone())), env.now(), &env)
        .unwrap();
    assert_eq!(
        fx,
        vec![
            Effect::Broadcast(ConsensusMsg::Proposal {
                proposal: sp,
                block: Box::new(expected.clone()),
            }),
            Effect::Notice(Notice::Proposed {
                height: 1,
                round: 0,
                block_hash: expected.hash(),
            }),
            Effect::SignVote {
                vote: vote_out(VoteKind::Prevote, 0, Some(expected.hash())),
                polka: vec![],
            },
        ]
    );
}

#[test]
fn a_block_from_the_far_future_is_refused_and_a_drift_within_bounds_is_not() {
    let env = Env::new();
    let proposer = env.proposer(0);
    let me = (proposer + 1) % 4;
    for (time_ms, valid) in [
        (u64::MAX, false),
        (env.now().wall_ms + BLOCK_TIME_DRIFT_MS + 1, false),
        (env.now().wall_ms + BLOCK_TIME_DRIFT_MS, true),
    ] {
        let mut core = env.core(me, None);
        core.handle(Event::Restart(Box::default()), env.now(), &env)
            .unwrap();
        let mut block = env.chain.build_block(vec![]).unwrap().0;
        block.header.time_ms = time_ms;
        let fx = core
            .handle(env.proposal(0, &block), env.now(), &env)
            .unwrap();
        let prevote = Effect::SignVote {
            vote: vote_out(VoteKind::Prevote, 0, valid.then(|| block.hash())),
            polka: vec![],
        };
        if valid {
            assert_eq!(fx, vec![prevote], "time {time_ms}");
        } else {
            assert_eq!(fx.len(), 2, "{fx:?}");
            assert!(
                matches!(&fx[0], Effect::Notice(Notice::InvalidBlock { reason, .. }) if reason.contains("time")),
                "{fx:?}"
            );
            assert_eq!(fx[1], prevote, "time {time_ms}");
        }
    }
}

/// Validator `me` receives round 0's proposal of the test kit's next block
/// and everyone's prevotes and precommits for it.
fn decide(env: &Env, core: &mut NodeCore, me: u32) -> (Block, Vec<Effect>) {
    let block = env.chain.build_block(vec![]).unwrap().0;
    let hash = block.hash();
    core.handle(Event::Restart(Box::default()), env.now(), env)
        .unwrap();
    core.handle(env.proposal(0, &block), env.now(), env)
        .unwrap();
    let others: Vec<u32> = (0..4).filter(|i| *i != me).collect();
    for &i in &others {
        core.handle(
            env.vote(i, VoteKind::Prevote, 0, Some(hash)),
            env.now(),
            env,
        )
        .unwrap();
    }
    let mut fx = Vec::new();
    for &i in &others {
        fx = core
            .handle(
                env.vote(i, VoteKind::Precommit, 0, Some(hash)),
                env.now(),
                env,
            )
            .unwrap();
    }
    (block, fx)
}

#[test]
fn a_decided_block_is_committed_before_the_next_height_starts() {
    let mut env = Env::new();
    // Not the proposer of height 2 either (that one would build a block).
    let me = (env.proposer(0) + 2) % 4;
    let mut core = env.core(me, None);
    let (block, fx) = decide(&env, &mut core, me);
    // The third precommit decides: a commit, and nothing of height 2 yet.
    assert_eq!(fx.len(), 1, "{fx:?}");
    let Effect::Commit {
        block: committed,
        certificate,
        update,
    } = &fx[0]
    else {
        panic!("expected a commit: {fx:?}");
    };
    assert_eq!(**committed, block);
    assert_eq!(certificate.block_hash, block.hash());
    assert_eq!(update.0.root, block.header.state_root);
    assert_eq!(core.height(), 2);

    env.commit(&block, certificate);
    let fx = core.handle(Event::Committed, env.now(), &env).unwrap();
    assert_eq!(fx, vec![propose_timer(2, 0, PROPOSE_MS)]);
}

#[test]
fn a_lock_keeps_the_body_before_the_precommit_is_signed() {
    let env = Env::new();
    let me = (env.proposer(0) + 1) % 4;
    let mut core = env.core(me, None);
    let block = env.chain.build_block(vec![]).unwrap().0;
    let hash = block.hash();
    core.handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    core.handle(env.proposal(0, &block), env.now(), &env)
        .unwrap();
    let others: Vec<u32> = (0..4).filter(|i| *i != me).collect();
    core.handle(
        env.vote(others[0], VoteKind::Prevote, 0, Some(hash)),
        env.now(),
        &env,
    )
    .unwrap();
    core.handle(
        env.vote(others[1], VoteKind::Prevote, 0, Some(hash)),
        env.now(),
        &env,
    )
    .unwrap();
    let fx = core
        .handle(
            env.vote(others[2], VoteKind::Prevote, 0, Some(hash)),
            env.now(),
            &env,
        )
        .unwrap();
    assert_eq!(
        fx,
        vec![
            Effect::SetTimer {
                after_ms: 500,
                timer: Timer::Consensus {
                    height: 1,
                    round: 0,
                    kind: TimeoutKind::Prevote
                },
            },
            Effect::PersistLockedBlock(Box::new(block)),
            Effect::SignVote {
                vote: vote_out(VoteKind::Precommit, 0, Some(hash)),
                polka: core.machine().polka_votes(0, hash),
            },
        ]
    );
    assert_eq!(core.machine().polka_votes(0, hash).len(), 3);
}

#[test]
fn a_paused_validator_signs_nothing_until_the_network_decides_past_its_tip() {
    let mut env = Env::new();
    let me = (env.proposer(0) + 1) % 4;
    let pause = SigningPause {
        until_past: 0,
        awaiting_peers: false,
        reason: "test".into(),
    };
    let mut core = env.core(me, Some(pause));
    let block = env.chain.build_block(vec![]).unwrap().0;
    let hash = block.hash();
    core.handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    let fx = core
        .handle(env.proposal(0, &block), env.now(), &env)
        .unwrap();
    assert_eq!(fx, vec![], "no prevote while paused");
    let others: Vec<u32> = (0..4).filter(|i| *i != me).collect();
    for &i in &others {
        let fx = core
            .handle(
                env.vote(i, VoteKind::Prevote, 0, Some(hash)),
                env.now(),
                &env,
            )
            .unwrap();
        assert!(
            !fx.iter().any(|e| matches!(e, Effect::SignVote { .. })),
            "{fx:?}"
        );
    }
    let mut fx = Vec::new();
    for &i in &others {
        fx = core
            .handle(
                env.vote(i, VoteKind::Precommit, 0, Some(hash)),
                env.now(),
                &env,
            )
            .unwrap();
    }
    let Some(Effect::Commit { certificate, .. }) = fx.first() else {
        panic!("a paused validator still commits what others decide: {fx:?}");
    };
    env.commit(&block, certificate);
    let fx = core.handle(Event::Committed, env.now(), &env).unwrap();
    assert_eq!(fx[0], Effect::Notice(Notice::SigningResumed { height: 1 }));
    assert!(core.pause().is_none());
}

#[test]
fn the_network_height_extends_a_pause_but_only_so_far() {
    let env = Env::new();
    let pause = SigningPause {
        until_past: 0,
        awaiting_peers: false,
        reason: "test".into(),
    };
    let mut core = env.core(0, Some(pause));
    core.handle(Event::PeersHeard(7), env.now(), &env).unwrap();
    assert_eq!(core.pause().unwrap().until_past, 7);
    core.handle(Event::PeersHeard(3), env.now(), &env).unwrap();
    assert_eq!(core.pause().unwrap().until_past, 7);
    core.handle(Event::PeersHeard(u64::MAX), env.now(), &env)
        .unwrap();
    assert_eq!(
        core.pause().unwrap().until_past,
        tally_node::node_core::PAUSE_AHEAD_MAX
    );
}

#[test]
fn a_home_with_no_signer_state_and_no_blocks_waits_to_hear_the_network() {
    let pause = signing_pause(None, 0).expect("a new or wiped home waits");
    assert!(pause.awaiting_peers);
    assert_eq!(pause.until_past, 0);
    assert!(
        pause.reason.contains("no signer state and no blocks"),
        "{}",
        pause.reason
    );
    // The other cases do not wait for peers: they know their tip.
    assert!(!signing_pause(None, 5).unwrap().awaiting_peers);
    assert!(!signing_pause(Some(2), 5).unwrap().awaiting_peers);
    assert_eq!(signing_pause(Some(5), 5), None);
    assert_eq!(signing_pause(Some(6), 5), None);
}

#[test]
fn the_network_height_needs_two_thirds_heard_and_one_third_reporting_it() {
    // Four validators of power 10; this one holds 10.
    assert_eq!(quorum_height(10, 40, &[]), None);
    assert_eq!(
        quorum_height(10, 40, &[(10, 9)]),
        None,
        "20 of 40 is not > 2/3"
    );
    // 30 of 40 heard: one report above genesis is under a third.
    assert_eq!(quorum_height(10, 40, &[(10, 9), (10, 0)]), Some(0));
    // Two reports (20 of 40, over a third) at 9 or more: 9.
    assert_eq!(quorum_height(10, 40, &[(10, 9), (10, 12)]), Some(9));
    assert_eq!(
        quorum_height(10, 40, &[(10, 9), (10, 12), (10, 0)]),
        Some(9)
    );
    // A liar under a third cannot raise it, however high it claims.
    assert_eq!(
        quorum_height(10, 40, &[(10, u64::MAX), (10, 3), (10, 3)]),
        Some(3)
    );
    // Exactly 2/3 heard is not enough; exactly 1/3 reporting is not either.
    assert_eq!(quorum_height(0, 30, &[(10, 5), (10, 5)]), None);
    assert_eq!(quorum_height(0, 30, &[(10, 5), (11, 0)]), Some(0));
    // A network of one hears itself.
    assert_eq!(quorum_height(10, 10, &[]), Some(0));
    // Powers near the limit do not overflow.
    assert_eq!(
        quorum_height(u64::MAX / 2, u64::MAX, &[(u64::MAX / 2, 4)]),
        Some(4)
    );
}

#[test]
fn a_waiting_home_signs_on_a_new_network_what_its_round_asked_for() {
    let env = Env::new();
    let me = (env.proposer(0) + 1) % 4;
    let mut core = env.core(me, signing_pause(None, 0));
    core.handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    let block = env.chain.build_block(vec![]).unwrap().0;
    let hash = block.hash();
    let fx = core
        .handle(env.proposal(0, &block), env.now(), &env)
        .unwrap();
    assert_eq!(fx, vec![], "no prevote while it waits");
    // Enough power says the chain is new: it signs at once, starting with
    // the prevote its round asked for while it waited.
    let fx = core.handle(Event::PeersHeard(0), env.now(), &env).unwrap();
    assert_eq!(
        fx,
        vec![
            Effect::Notice(Notice::SigningResumed { height: 0 }),
            Effect::SignVote {
                vote: vote_out(VoteKind::Prevote, 0, Some(hash)),
                polka: vec![],
            },
        ]
    );
    assert!(core.pause().is_none());
    // Heard again, nothing more is signed.
    let fx = core.handle(Event::PeersHeard(0), env.now(), &env).unwrap();
    assert_eq!(fx, vec![]);
}

#[test]
fn a_waiting_home_that_hears_a_moved_chain_pauses_until_past_it() {
    let env = Env::new();
    let mut core = env.core(0, signing_pause(None, 0));
    let fx = core.handle(Event::PeersHeard(40), env.now(), &env).unwrap();
    assert_eq!(fx, vec![]);
    let pause = core.pause().unwrap();
    assert!(!pause.awaiting_peers);
    assert_eq!(pause.until_past, 40);
    // From then on, the network's height extends it as for any pause, and
    // a lower one changes nothing.
    core.handle(Event::PeersHeard(45), env.now(), &env).unwrap();
    core.handle(Event::PeersHeard(0), env.now(), &env).unwrap();
    assert_eq!(core.pause().unwrap().until_past, 45);
}

#[test]
fn a_waiting_home_that_synced_a_block_knows_the_chain_moved_on() {
    let mut env = Env::new();
    let mut core = env.core(0, signing_pause(None, 0));
    // Block sync brought block 1 (its certificate checked) while it
    // waited; the reports heard say nobody holding a third is past 0.
    let block = env.chain.build_block(vec![]).unwrap().0;
    let cert = env.chain.certify(&block, 0, &[1, 2, 3]);
    env.commit(&block, &cert);
    core.handle(Event::Committed, env.now(), &env).unwrap();
    assert!(
        core.pause().unwrap().awaiting_peers,
        "still waiting to hear"
    );
    let fx = core.handle(Event::PeersHeard(0), env.now(), &env).unwrap();
    assert!(
        !fx.iter()
            .any(|e| matches!(e, Effect::Notice(Notice::SigningResumed { .. }))),
        "{fx:?}"
    );
    let pause = core
        .pause()
        .expect("a block of its own proves the chain moved on");
    assert!(!pause.awaiting_peers);
    assert_eq!(pause.until_past, 1);
}

#[test]
fn a_signer_that_cannot_persist_is_reported_until_it_signs_again() {
    let env = Env::new();
    let me = (env.proposer(0) + 1) % 4;
    let mut core = env.core(me, None);
    let e = SignerError::Persist("disk full".into());
    let fx = core
        .handle(Event::SignFailed(e.clone()), env.now(), &env)
        .unwrap();
    assert_eq!(fx, vec![Effect::Notice(Notice::SignerFault(e.to_string()))]);
    assert_eq!(core.signer_fault(), Some(e.to_string().as_str()));
    let refusal = SignerError::Conflict {
        height: 1,
        round: 0,
        step: tally_consensus::SignStep::Prevote,
    };
    core.handle(Event::SignFailed(refusal), env.now(), &env)
        .unwrap();
    assert!(core.signer_fault().is_some(), "a refusal is not a fault");
    let vote = env.sign_vote(me, vote_out(VoteKind::Prevote, 0, None));
    core.handle(Event::Signed(Signed::Vote(vote)), env.now(), &env)
        .unwrap();
    assert_eq!(core.signer_fault(), None);
}

#[test]
fn a_restarted_validator_sends_its_votes_again_and_reproposes_its_locked_block() {
    let env = Env::new();
    // Validator `me` proposes round 1; it locked on round 0's block.
    let me = env.proposer(1);
    let block = env.chain.build_block(vec![]).unwrap().0;
    let hash = block.hash();
    let prevote = env.sign_vote(me, vote_out(VoteKind::Prevote, 0, Some(hash)));
    let precommit = env.sign_vote(me, vote_out(VoteKind::Precommit, 0, Some(hash)));
    let polka: Vec<SignedVote> = (0..4)
        .filter(|i| *i != me)
        .map(|i| env.sign_vote(i, vote_out(VoteKind::Prevote, 0, Some(hash))))
        .collect();
    let view = SignerView {
        round: Some(1),
        lock: Some((0, hash)),
        lock_proof: polka,
        votes: vec![prevote.clone(), precommit.clone()],
        locked_block: Some(block.clone()),
    };
    let mut core = env.core(me, None);
    let fx = core
        .handle(Event::Restart(Box::new(view)), env.now(), &env)
        .unwrap();
    assert_eq!(
        fx,
        vec![
            Effect::Broadcast(ConsensusMsg::Vote(prevote)),
            Effect::Broadcast(ConsensusMsg::Vote(precommit)),
            Effect::SignProposal(Proposal {
                height: 1,
                round: 1,
                pol_round: Some(0),
                block_hash: hash,
            }),
            propose_timer(1, 1, 1_500),
        ]
    );
    assert!(
        core.candidates().get(&hash).is_some(),
        "the locked body is held"
    );
}

#[test]
fn after_a_stall_the_core_sends_its_own_messages_again() {
    let env = Env::new();
    let me = (env.proposer(0) + 1) % 4;
    let mut core = env.core(me, None);
    core.handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    let vote = env.sign_vote(me, vote_out(VoteKind::Prevote, 0, None));
    core.handle(Event::Signed(Signed::Vote(vote.clone())), env.now(), &env)
        .unwrap();
    let mut later = env.now();
    assert_eq!(core.handle(Event::Tick, later, &env).unwrap(), vec![]);
    later.mono_ms += tally_node::node_core::RESEND_AFTER_MS;
    assert_eq!(
        core.handle(Event::Tick, later, &env).unwrap(),
        vec![Effect::Broadcast(ConsensusMsg::Vote(vote))]
    );
}

#[test]
fn after_a_stall_a_locked_validator_also_sends_the_prevotes_behind_its_lock() {
    let env = Env::new();
    let proposer = env.proposer(0);
    let me = (proposer + 1) % 4;
    let mut core = env.core(me, None);
    core.handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    let block = env.chain.build_block(vec![]).unwrap().0;
    let hash = block.hash();
    core.handle(env.proposal(0, &block), env.now(), &env)
        .unwrap();
    let own = env.sign_vote(me, vote_out(VoteKind::Prevote, 0, Some(hash)));
    core.handle(Event::Signed(Signed::Vote(own.clone())), env.now(), &env)
        .unwrap();
    // Two others prevote the block: a polka, and this validator locks.
    let others: Vec<u32> = (0..4).filter(|i| *i != me).take(2).collect();
    let theirs: Vec<SignedVote> = others
        .iter()
        .map(|&i| env.sign_vote(i, vote_out(VoteKind::Prevote, 0, Some(hash))))
        .collect();
    for v in &theirs {
        core.handle(Event::Vote(v.clone()), env.now(), &env)
            .unwrap();
    }
    assert_eq!(core.machine().locked(), Some((0, hash)));
    let mut later = env.now();
    later.mono_ms += tally_node::node_core::RESEND_AFTER_MS;
    let fx = core.handle(Event::Tick, later, &env).unwrap();
    for v in theirs.iter().chain([&own]) {
        let sent = Effect::Broadcast(ConsensusMsg::Vote(v.clone()));
        assert_eq!(
            fx.iter().filter(|e| **e == sent).count(),
            1,
            "{:?} sent once: {fx:?}",
            v.validator_index
        );
    }
}

#[test]
fn a_pool_of_transactions_that_cannot_go_in_a_block_waits_like_an_empty_one() {
    let mut env = Env::new();
    // Only a transaction behind a nonce gap: nothing can be included.
    let key = &env.chain.account_keys[1];
    let gapped = tally_ledger::types::Tx {
        chain_id: env.chain.chain_id().into(),
        sender: key.public(),
        nonce: 5,
        op: tally_ledger::types::Op::Transfer {
            to: key.public(),
            amount: 1,
        },
    }
    .sign(key);
    env.txs = vec![gapped];
    let me = env.proposer(0);
    let mut core = env.proposer_core(me, 1_000, BlockFill::default());
    let fx = core
        .handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    assert_eq!(
        fx,
        vec![
            Effect::SetTimer {
                after_ms: 1_000,
                timer: Timer::BuildBlock {
                    height: 1,
                    round: 0
                },
            },
            propose_timer(1, 0, PROPOSE_MS + 1_000),
        ]
    );
}

/// With fewer than the fill minimum pending, round 0's proposer waits for
/// more, at most the fill wait: it proposes as soon as the minimum is
/// reached, or with what it has when the wait ends. One timer covers the
/// wait however many batches arrive.
#[test]
fn a_proposer_waits_a_bounded_time_to_fill_its_block() {
    let fill = BlockFill {
        min_txs: 5,
        wait_ms: 50,
    };
    let at = |env: &Env, later: u64| Now {
        mono_ms: env.now().mono_ms + later,
        wall_ms: env.now().wall_ms + later,
    };
    let proposed = |fx: &[Effect]| {
        fx.iter().find_map(|e| match e {
            Effect::SignProposal(p) => Some(*p),
            _ => None,
        })
    };
    let build_timers = |fx: &[Effect]| {
        fx.iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::SetTimer {
                        timer: Timer::BuildBlock { .. },
                        ..
                    }
                )
            })
            .count()
    };
    for reach_minimum in [true, false] {
        let mut env = Env::new();
        env.txs = (0..3).map(|_| env.chain.transfer(1, 0, 1)).collect();
        let me = env.proposer(0);
        let mut core = env.proposer_core(me, 1_000, fill);
        let fx = core
            .handle(Event::Restart(Box::default()), env.now(), &env)
            .unwrap();
        assert_eq!(proposed(&fx), None, "{fx:?}");
        assert!(
            fx.contains(&Effect::SetTimer {
                after_ms: 50,
                timer: Timer::BuildBlock {
                    height: 1,
                    round: 0
                },
            }),
            "{fx:?}"
        );
        // A fourth transaction: still short, and no second timer.
        env.txs.push(env.chain.transfer(1, 0, 1));
        let fx = core.handle(Event::TxsArrived, at(&env, 10), &env).unwrap();
        assert_eq!((proposed(&fx), build_timers(&fx)), (None, 0), "{fx:?}");
        let fx = if reach_minimum {
            env.txs.push(env.chain.transfer(1, 0, 1));
            core.handle(Event::TxsArrived, at(&env, 20), &env).unwrap()
        } else {
            let timer = Timer::BuildBlock {
                height: 1,
                round: 0,
            };
            core.handle(Event::Timer(timer), at(&env, 50), &env)
                .unwrap()
        };
        let Some(p) = proposed(&fx) else {
            panic!("no proposal: {fx:?}");
        };
        assert_eq!((p.height, p.round), (1, 0));
    }
}

/// With the fill minimum already pending, the proposer does not wait.
#[test]
fn a_full_enough_pool_is_proposed_at_once() {
    let mut env = Env::new();
    env.txs = (0..5).map(|_| env.chain.transfer(1, 0, 1)).collect();
    let me = env.proposer(0);
    let mut core = env.proposer_core(
        me,
        1_000,
        BlockFill {
            min_txs: 5,
            wait_ms: 50,
        },
    );
    let fx = core
        .handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    assert!(
        fx.iter().any(|e| matches!(e, Effect::SignProposal(_))),
        "{fx:?}"
    );
}

/// A fill wait never runs past the empty-block interval after the last
/// commit: peers' round-0 propose timeouts include that interval and no
/// more, so a transaction sent just before it ends cannot push the proposal
/// out of round 0.
#[test]
fn a_fill_wait_ends_with_the_empty_block_interval() {
    let mut env = Env::new();
    let me = env.proposer(0);
    let mut core = env.proposer_core(
        me,
        1_000,
        BlockFill {
            min_txs: 5,
            wait_ms: 1_000,
        },
    );
    core.handle(Event::Restart(Box::default()), env.now(), &env)
        .unwrap();
    // The first transaction arrives 990 ms after the last commit.
    env.txs.push(env.chain.transfer(1, 0, 1));
    let late = Now {
        mono_ms: env.now().mono_ms + 990,
        wall_ms: env.now().wall_ms + 990,
    };
    let fx = core.handle(Event::TxsArrived, late, &env).unwrap();
    assert!(
        !fx.iter().any(|e| matches!(e, Effect::SignProposal(_))),
        "{fx:?}"
    );
    // When the interval ends, the proposer proposes what it has.
    let end = Now {
        mono_ms: env.now().mono_ms + 1_000,
        wall_ms: env.now().wall_ms + 1_000,
    };
    let timer = Timer::BuildBlock {
        height: 1,
        round: 0,
    };
    let fx = core.handle(Event::Timer(timer), end, &env).unwrap();
    assert!(
        fx.iter().any(|e| matches!(e, Effect::SignProposal(_))),
        "{fx:?}"
    );
}

/// A build timer that fired after its wait was over (a block arrived by
/// sync and the core restarted at the next height) must not keep later
/// waits from setting their own: here, the lone validator's empty-block
/// timer at the next height.
#[test]
fn a_wait_that_ended_elsewhere_does_not_hold_back_the_next_timer() {
    let mut env = Env {
        chain: TestChain::new(1, 2),
        txs: Vec::new(),
    };
    let mut core = env.proposer_core(0, 1_000, BlockFill::default());
    let t0 = env.now();
    let fx = core
        .handle(Event::Restart(Box::default()), t0, &env)
        .unwrap();
    let timer_at = |fx: &[Effect], height: u64| {
        fx.iter().any(|e| {
            matches!(e, Effect::SetTimer {
                timer: Timer::BuildBlock { height: h, round: 0 },
                ..
            } if *h == height)
        })
    };
    assert!(timer_at(&fx, 1), "{fx:?}");
    // Height 1 arrives by block sync; the core restarts at height 2.
    let (block, _) = env.chain.build_block(vec![]).unwrap();
    let cert = env.chain.certify(&block, 0, &[0]);
    env.commit(&block, &cert);
    let later = Now {
        mono_ms: t0.mono_ms + 500,
        wall_ms: t0.wall_ms + 500,
    };
    let fx = core
        .handle(Event::Restart(Box::default()), later, &env)
        .unwrap();
    // The old timer fires for a wait that is over.
    let old = Timer::BuildBlock {
        height: 1,
        round: 0,
    };
    let fired = Now {
        mono_ms: t0.mono_ms + 1_000,
        wall_ms: t0.wall_ms + 1_000,
    };
    let mut fx2 = core.handle(Event::Timer(old), fired, &env).unwrap();
    fx2.extend(fx);
    assert!(
        timer_at(&fx2, 2) || fx2.iter().any(|e| matches!(e, Effect::SignProposal(_))),
        "height 2 neither waits with a timer nor proposes: {fx2:?}"
    );
}
