//! Criterion benchmarks of the ledger's hot paths. Run with
//! `cargo bench -p tally-ledger`; figures are in docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::{Duration, Instant};

use tally_ledger::crypto::{BatchVerifier, Domain};
use tally_ledger::encoding::encode;
use tally_ledger::execution::{execute_block, verify_tx_signatures};
use tally_ledger::store::Store;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::SignedTx;

const CHAIN: &str = "bench-chain";

fn signatures(c: &mut Criterion) {
    let keys: Vec<_> = (0..64u8)
        .map(|i| tally_ledger::Keypair::from_seed([i + 1; 32]))
        .collect();
    let msgs: Vec<Vec<u8>> = (0..64u32).map(|i| i.to_le_bytes().repeat(40)).collect();
    let sigs: Vec<_> = keys
        .iter()
        .zip(&msgs)
        .map(|(k, m)| k.sign(Domain::Tx, CHAIN, m))
        .collect();

    let mut g = c.benchmark_group("signature");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_single", |b| {
        b.iter(|| {
            keys[0]
                .public()
                .verify(Domain::Tx, CHAIN, &msgs[0], &sigs[0])
                .unwrap()
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("verify_batch_64", |b| {
        b.iter(|| {
            let mut batch = BatchVerifier::with_capacity(64);
            for i in 0..64 {
                batch.add(keys[i].public(), Domain::Tx, CHAIN, &msgs[i], sigs[i]);
            }
            batch.verify().unwrap()
        })
    });
    g.finish();
}

fn transactions(c: &mut Criterion) {
    let mut chain = TestChain::new(4, 101);
    let tx = chain.transfers(1).remove(0);
    let bytes = encode(&tx);
    let mut g = c.benchmark_group("tx");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_and_verify", |b| {
        b.iter(|| {
            let tx = SignedTx::decode(&bytes, 65_536).unwrap();
            tx.tx
                .sender
                .verify(
                    Domain::Tx,
                    &tx.tx.chain_id,
                    &tx.signed_message(),
                    &tx.signature,
                )
                .unwrap();
        })
    });
    g.finish();
}

fn blocks(c: &mut Criterion) {
    let mut chain = TestChain::new(4, 1001);
    let txs = chain.transfers(1000);
    let mut g = c.benchmark_group("block_1000_transfers");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("verify_signatures_batch", |b| {
        b.iter(|| verify_tx_signatures(&txs, chain.chain_id()).unwrap())
    });
    g.bench_function("execute_with_state_root", |b| {
        b.iter(|| {
            execute_block(
                &chain.state,
                1,
                chain.chain_id(),
                &chain.genesis.params,
                &txs,
            )
            .unwrap()
        })
    });

    // Commit to RocksDB: each iteration commits the next block of a growing
    // chain; building the block is not timed.
    g.bench_function("commit_to_rocksdb", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let mut chain = TestChain::new(4, 1001);
                let store = Store::open(dir.path(), &chain.genesis).unwrap();
                let txs = chain.transfers(1000);
                let (block, cert, _) = chain.push(txs).unwrap();
                let update = execute_block(
                    &store,
                    1,
                    chain.chain_id(),
                    &chain.genesis.params,
                    &block.txs,
                )
                .unwrap();
                (dir, store, block, cert, update)
            },
            |(dir, store, block, cert, update)| {
                store.commit_block(&block, &cert, &update).unwrap();
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // One figure that includes everything a follower does per block.
    let mut g = c.benchmark_group("block_1000_transfers_pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("verify_execute_commit", |b| {
        b.iter_custom(|iters| {
            let dir = tempfile::tempdir().unwrap();
            let mut chain = TestChain::new(4, 1001);
            let store = Store::open(dir.path(), &chain.genesis).unwrap();
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let txs = chain.transfers(1000);
                let (block, cert, _) = chain.push(txs).unwrap();
                let start = Instant::now();
                let update = execute_block(
                    &store,
                    block.height(),
                    chain.chain_id(),
                    &chain.genesis.params,
                    &block.txs,
                )
                .unwrap();
                store.commit_block(&block, &cert, &update).unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, signatures, transactions, blocks);
criterion_main!(benches);
