//! `tally bench load`: a simple load generator. It signs transfers from the
//! account keys of a testnet folder, submits them in batches over JSON-RPC
//! (spread over the given nodes), and reports committed transactions and
//! blocks per second from the chain itself.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tally_ledger::encoding::encode;
use tally_ledger::types::{Op, Tx};
use tally_rpc::types::{to_hex, BlockId};
use tally_rpc::LedgerApiClient;

use crate::client::connect;
use crate::keys::read_key_file;

/// Transactions per `submitTxBatch` call.
const BATCH: usize = 64;

/// Runs the load for `seconds` and prints what the chain committed.
pub async fn load(urls: &[String], keys_dir: &Path, seconds: u64) -> anyhow::Result<()> {
    anyhow::ensure!(!urls.is_empty(), "give at least one --rpc address");
    let clients = urls
        .iter()
        .map(|u| connect(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut keys = Vec::new();
    for entry in std::fs::read_dir(keys_dir)
        .with_context(|| format!("cannot read {}", keys_dir.display()))?
    {
        let path = entry?.path();
        let is_user = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("user"));
        if is_user && path.extension().is_some_and(|e| e == "pem") {
            keys.push(read_key_file(&path)?);
        }
    }
    anyhow::ensure!(
        keys.len() >= 2,
        "{} holds fewer than two user*.pem keys",
        keys_dir.display()
    );
    let genesis = clients[0]
        .get_genesis()
        .await
        .context("cannot reach the node")?;
    let chain_id = genesis["chain_id"].as_str().unwrap_or_default().to_string();
    let mut nonces = Vec::new();
    for k in &keys {
        nonces.push(
            clients[0]
                .get_account(k.public().to_hex(), None)
                .await?
                .nonce
                .0
                + 1,
        );
    }
    let start_height = clients[0].status().await?.latest_height.0;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut turn = 0usize;
    while Instant::now() < until {
        for (i, key) in keys.iter().enumerate() {
            let to = keys[(i + 1) % keys.len()].public();
            let batch: Vec<String> = (0..BATCH as u64)
                .map(|j| {
                    let tx = Tx {
                        chain_id: chain_id.clone(),
                        sender: key.public(),
                        nonce: nonces[i] + j,
                        op: Op::Transfer { to, amount: 1 },
                    }
                    .sign(key);
                    to_hex(&encode(&tx))
                })
                .collect();
            let client = &clients[turn % clients.len()];
            turn += 1;
            let results = client.submit_tx_batch(batch).await?;
            let ok = results.iter().take_while(|r| r.hash.is_some()).count() as u64;
            sent += ok;
            refused += results.len() as u64 - ok;
            nonces[i] += ok;
            if ok == 0 {
                // Mempool full or too far ahead: let the chain catch up.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end_height = clients[0].status().await?.latest_height.0;
    let mut committed = 0u64;
    for h in start_height + 1..=end_height {
        committed += clients[0]
            .get_block_by_height(BlockId::Height(h), None)
            .await?
            .tx_hashes
            .len() as u64;
    }
    let blocks = end_height - start_height;
    println!(
        "load: {seconds} s from {} accounts over {} nodes",
        keys.len(),
        clients.len()
    );
    println!("submitted {sent} transactions ({refused} refused and retried)");
    println!(
        "committed {committed} transactions in {blocks} blocks: {:.0} tx/s, {:.1} blocks/s",
        committed as f64 / elapsed,
        blocks as f64 / elapsed
    );
    Ok(())
}
