//! Criterion benchmarks of the node's hot paths that the ledger's own
//! benches do not cover: admission of a submitted batch, and the check of a
//! proposed block with and without its transactions already verified.
//! Block building (execution and the state root) and the commit are in
//! `ledger/benches/ledger.rs`. Figures are in docs/performance.md:
//!
//! ```sh
//! cargo bench --profile release --workspace --bench node
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code: a failed unwrap is a failed run

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use tally_ledger::state::{read_account, AccountState, MemoryTreeStore};
use tally_ledger::testkit::TestChain;
use tally_ledger::verify::Placement;
use tally_ledger::PublicKey;
use tally_node::mempool::{check_signatures, AccountView, Mempool, MempoolLimits};

/// The chain's state at its tip, as the mempool reads accounts.
struct Tip<'a> {
    state: &'a MemoryTreeStore,
    version: u64,
}

impl AccountView for Tip<'_> {
    fn account(&self, key: &PublicKey) -> Option<AccountState> {
        read_account(self.state, key, self.version).ok().flatten()
    }
}

fn admission(c: &mut Criterion) {
    let mut chain = TestChain::new(4, 257);
    let txs = chain.transfers(256);
    let limits = MempoolLimits {
        max_txs: 50_000,
        max_bytes: 64 << 20,
        future_nonce_window: 64,
    };
    let mut g = c.benchmark_group("admission_256");
    g.throughput(Throughput::Elements(256));
    // What the blocking pool does for one submitted batch.
    g.bench_function("check_signatures", |b| {
        b.iter(|| check_signatures(&txs, chain.chain_id()))
    });
    // What the driver then does: the pool's bookkeeping, account reads.
    g.bench_function("admit_checked", |b| {
        b.iter_batched(
            || Mempool::new(chain.chain_id(), chain.genesis.params.clone(), limits),
            |mut pool| {
                let tip = Tip {
                    state: &chain.state,
                    version: 0,
                };
                for tx in &txs {
                    pool.admit_checked(tx.clone(), Ok(()), &tip).unwrap();
                }
                pool
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn proposal(c: &mut Criterion) {
    let mut chain = TestChain::new(4, 1001);
    let txs = chain.transfers(1000);
    let (block, _) = chain.build_block(txs).unwrap();
    let size = tally_ledger::encoding::encode(&block).len();
    let at = Placement {
        parent: chain.parent_of_next(),
        round: 0,
        now_ms: None,
    };
    let mut g = c.benchmark_group("proposal_1000_transfers");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    // A proposal whose transactions this node never saw: every signature
    // is checked, then the block executed.
    g.bench_function("check_unseen", |b| {
        b.iter(|| {
            chain
                .rules
                .check_proposed_except(&block, size, &at, &chain.state, |_| false)
                .unwrap()
        })
    });
    // The usual case: every transaction is in the mempool, verified on
    // admission; only the block's own rules and execution remain.
    g.bench_function("check_pooled", |b| {
        b.iter(|| {
            chain
                .rules
                .check_proposed_except(&block, size, &at, &chain.state, |_| true)
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, admission, proposal);
criterion_main!(benches);
