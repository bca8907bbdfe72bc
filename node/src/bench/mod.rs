//! `tally bench`: the load generator ([`load`]), and the sync and audit
//! benchmarks over a long generated chain.

pub mod command;
pub mod load;
mod plan;
pub mod procs;
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use tally_ledger::store::Store;
use tally_ledger::testkit::TestChain;

use anyhow::Context;

use crate::keys::read_key_file;

/// Writes a chain of `blocks` blocks with `txs_per_block` signed transfers
/// each into a new database at `db`: real signatures, real execution, real
/// certificates from the 4 validators of a generated genesis (written to
/// `genesis_path`). Used by the audit benchmark and tests.
pub fn build_chain(
    db: &Path,
    genesis_path: &Path,
    blocks: u64,
    txs_per_block: usize,
    show_progress: bool,
) -> anyhow::Result<tally_ledger::genesis::Genesis> {
    anyhow::ensure!(
        !db.exists(),
        "{} exists; give a new folder for the chain",
        db.display()
    );
    let mut chain = TestChain::new(4, SENDERS + 1);
    crate::home::write_file_atomic(genesis_path, chain.genesis.to_json().as_bytes())?;
    let store = Store::open(db, &chain.genesis)?;
    write_chain(&mut chain, &store, blocks, txs_per_block, show_progress)?;
    Ok(chain.genesis.clone())
}

/// Accounts (after the admin) that send the benchmark transfers.
const SENDERS: usize = 16;

/// Extends `chain` by `blocks` blocks of `txs_per_block` transfers between
/// its member accounts 1..=16, committing each to `store`.
fn write_chain(
    chain: &mut TestChain,
    store: &Store,
    blocks: u64,
    txs_per_block: usize,
    show_progress: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        chain.account_keys.len() > SENDERS,
        "the chain needs {} accounts",
        SENDERS + 1
    );
    let started = Instant::now();
    let mut txs_total = 0u64;
    for height in 1..=blocks {
        let txs = (0..txs_per_block)
            .map(|i| {
                let from = 1 + (i % SENDERS);
                let to = 1 + ((i + 1) % SENDERS);
                chain.transfer(from, to, 1)
            })
            .collect();
        let (block, cert, update) = chain
            .push(txs)
            .map_err(|e| anyhow::anyhow!("building block {height}: {e}"))?;
        store.commit_block(&block, &cert, &update)?;
        chain.forget_history();
        txs_total += block.txs.len() as u64;
        if show_progress && (height % 1000 == 0 || height == blocks) {
            eprintln!(
                "  built {height}/{blocks} blocks, {txs_total} txs ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// `tally bench sync`: a replica catches up a long chain from another
/// replica that holds it, both real nodes on 127.0.0.1 in this process.
/// The chain (in `dir/net`) is built once and reused.
pub async fn sync(dir: Option<&Path>, blocks: u64, txs_per_block: usize) -> anyhow::Result<()> {
    use crate::node::{start, Overrides};

    let (_temp, dir) = bench_dir(dir)?;
    let net = dir.join("net");
    if !net.exists() {
        let spec = crate::testnet::TestnetSpec {
            chain_id: "tally-bench".into(),
            validators: 4,
            replicas: 2,
            accounts: SENDERS,
            base_port: 30000,
        };
        let genesis = crate::testnet::generate(&spec, &net)?;
        let validator_keys = (0..4)
            .map(|i| read_key_file(&net.join(format!("node{i}/validator_key.pem"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut account_keys = vec![read_key_file(&net.join("accounts/admin.pem"))?];
        for i in 0..SENDERS {
            account_keys.push(read_key_file(&net.join(format!("accounts/user{i}.pem")))?);
        }
        let mut chain = TestChain::from_genesis(genesis.clone(), validator_keys, account_keys);
        let store = Store::open(&net.join("replica0").join(crate::home::DATA_DIR), &genesis)?;
        eprintln!(
            "building a chain of {blocks} blocks x {txs_per_block} transfers in {}",
            net.display()
        );
        write_chain(&mut chain, &store, blocks, txs_per_block, true)?;
    } else {
        eprintln!("reusing the chain in {}", net.display());
    }
    let mut source_home = crate::home::load(&net.join("replica0"))?;
    let mut target_home = crate::home::load(&net.join("replica1"))?;
    source_home.config.p2p.persistent_peers.clear();
    target_home.config.p2p.persistent_peers.clear();
    let target_data = target_home.data_dir();
    if target_data.exists() {
        std::fs::remove_dir_all(&target_data)
            .with_context(|| format!("cannot clear {}", target_data.display()))?;
    }
    let source = start(&source_home, Overrides::ephemeral()).await?;
    let tip = source.handle.store.height();
    let txs = count_txs(&source.handle.store, tip)?;
    let target = start(&target_home, Overrides::ephemeral()).await?;
    eprintln!("syncing {tip} blocks ({txs} txs) from one replica to a new one");
    let started = Instant::now();
    target.link(&source).await;
    let mut last_report = Instant::now();
    while target.handle.store.height() < tip {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!(
                "  height {}/{tip} after {:.1} s",
                target.handle.store.height(),
                started.elapsed().as_secs_f64()
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "sync made no progress to {tip} within an hour"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "synced {tip} blocks, {txs} txs in {secs:.2} s: {:.0} blocks/s, {:.0} tx/s (verified, executed, committed)",
        tip as f64 / secs,
        txs as f64 / secs
    );
    target.stop().await?;
    source.stop().await?;
    Ok(())
}

fn count_txs(store: &Store, tip: u64) -> anyhow::Result<u64> {
    let mut txs = 0;
    for h in 1..=tip {
        txs += store.block(h)?.map_or(0, |b| b.txs.len() as u64);
    }
    Ok(txs)
}

/// `tally bench audit`: builds a chain (or reuses one built before in
/// `dir`) and times a full audit of it.
pub fn audit(
    dir: Option<&Path>,
    blocks: u64,
    txs_per_block: usize,
    threads: Option<usize>,
) -> anyhow::Result<()> {
    let (_temp, dir) = bench_dir(dir)?;
    let (db, genesis) = chain_in(&dir, blocks, txs_per_block)?;
    let mut options = tally_ledger::audit::AuditOptions::default();
    if let Some(t) = threads {
        options.threads = t;
    }
    eprintln!("auditing with {} checking threads", options.threads);
    let report = crate::audit::audit_db(&db, &genesis, &options, true)?;
    if let Some(fault) = &report.fault {
        anyhow::bail!("the benchmark chain failed its audit: {fault}");
    }
    let s = &report.summary;
    println!(
        "audited {} blocks, {} txs, {} signatures in {:.2} s: {:.0} tx/s, {:.0} blocks/s",
        s.blocks,
        s.txs,
        s.signatures,
        s.elapsed_ms as f64 / 1000.0,
        s.tx_rate(),
        s.block_rate()
    );
    Ok(())
}

/// The folder a benchmark keeps its chain in: `dir`, or a temporary one
/// (returned too, so that it lives as long as the benchmark).
pub fn bench_dir(
    dir: Option<&Path>,
) -> anyhow::Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    match dir {
        Some(d) => Ok((None, d.to_path_buf())),
        None => {
            let t = tempfile::tempdir().context("cannot create a temporary folder")?;
            let p = t.path().to_path_buf();
            Ok((Some(t), p))
        }
    }
}

/// The benchmark chain in `dir` (`db/` and `genesis.json`), built first if
/// it is not there yet.
pub fn chain_in(
    dir: &Path,
    blocks: u64,
    txs_per_block: usize,
) -> anyhow::Result<(std::path::PathBuf, tally_ledger::genesis::Genesis)> {
    let db = dir.join("db");
    let genesis_path = dir.join("genesis.json");
    if db.exists() && genesis_path.exists() {
        let genesis = tally_ledger::genesis::Genesis::load(&genesis_path)?;
        eprintln!("reusing the chain in {}", dir.display());
        return Ok((db, genesis));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    eprintln!(
        "building a chain of {blocks} blocks x {txs_per_block} transfers in {}",
        dir.display()
    );
    let genesis = build_chain(&db, &genesis_path, blocks, txs_per_block, true)?;
    Ok((db, genesis))
}
