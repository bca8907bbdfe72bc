//! Criterion benchmarks: the state machine deciding one height (votes
//! pre-signed, signatures not re-checked: the node verifies them in
//! batches before they reach the machine), and certificate verification.
//! Run with `cargo bench -p tally-consensus`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};

use tally_consensus::{Consensus, Input, Output, Timeouts};
use tally_ledger::crypto::Domain;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{Proposal, SignedProposal, SignedVote, Vote, VoteKind};
use tally_ledger::verify::verify_certificate;
use tally_ledger::Hash;

const TIMEOUTS: Timeouts = Timeouts {
    propose_ms: 1000,
    prevote_ms: 500,
    precommit_ms: 500,
    delta_ms: 500,
};

fn decide_height(c: &mut Criterion) {
    let mut g = c.benchmark_group("decide_one_height");
    for n in [4usize, 7, 100] {
        let chain = TestChain::new(n, 1);
        let value = Hash([7; 32]);
        let probe = Consensus::new(
            chain.chain_id(),
            chain.validator_set.clone(),
            None,
            TIMEOUTS,
            1,
        );
        let proposer = probe.proposer(1, 0) as usize;
        let proposal = Proposal {
            height: 1,
            round: 0,
            pol_round: None,
            block_hash: value,
        };
        let signed_proposal = SignedProposal {
            proposal,
            signature: chain.validator_keys[proposer].sign(
                Domain::Proposal,
                chain.chain_id(),
                &proposal.message(),
            ),
        };
        let votes = |kind| -> Vec<Input> {
            (0..n)
                .map(|i| {
                    let vote = Vote {
                        kind,
                        height: 1,
                        round: 0,
                        value: Some(value),
                    };
                    Input::Vote(SignedVote {
                        vote,
                        validator_index: i as u32,
                        signature: chain.validator_keys[i].sign(
                            Domain::Vote,
                            chain.chain_id(),
                            &vote.message(),
                        ),
                    })
                })
                .collect()
        };
        let prevotes = votes(VoteKind::Prevote);
        let precommits = votes(VoteKind::Precommit);
        let me = ((proposer + 1) % n) as u32;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_batched(
                || {
                    Consensus::new(
                        chain.chain_id(),
                        chain.validator_set.clone(),
                        Some(me),
                        TIMEOUTS,
                        1,
                    )
                },
                |mut node| {
                    node.start();
                    node.handle(Input::Proposal(signed_proposal.clone()));
                    node.handle(Input::BlockVerdict {
                        height: 1,
                        block_hash: value,
                        valid: true,
                    });
                    for v in &prevotes {
                        node.handle(v.clone());
                    }
                    let mut decided = false;
                    for v in &precommits {
                        decided |= node
                            .handle(v.clone())
                            .iter()
                            .any(|o| matches!(o, Output::Decide { .. }));
                    }
                    assert!(decided);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn certificates(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify_certificate");
    for n in [4usize, 100] {
        let mut chain = TestChain::new(n, 1);
        let (block, _, _) = chain.push(vec![]).unwrap();
        let all: Vec<usize> = (0..n).collect();
        let cert = chain.certify(&block, 0, &all);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| verify_certificate(&cert, &chain.validator_set, chain.chain_id()).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, decide_height, certificates);
criterion_main!(benches);
