//! Scenario 12's floods against a running cluster: valid transactions
//! far beyond the pool's capacity, replays of committed ones, RPC
//! connections and subscriptions beyond their limits, and raw TCP peers
//! that send garbage or announce a gigantic frame.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use jsonrpsee::core::client::{Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee_ws_client::{WsClient, WsClientBuilder};
use tally_ledger::encoding::encode;
use tally_ledger::types::{Op, Tx};
use tally_node::keys::read_key_file;
use tally_rpc::types::{to_hex, HeadInfo, TxState};
use tally_rpc::LedgerApiClient;
use tally_tests::faults::{Cluster, Run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Entries per `submitTxBatch` (the server's limit).
const BATCH: usize = 256;

/// Hex-encoded transfers: `per_sender` from each account in `senders`,
/// nonces from 1, each paying account 0.
pub fn spam(
    accounts: &Path,
    senders: Range<usize>,
    per_sender: u64,
    chain_id: &str,
) -> Vec<String> {
    let to = read_key_file(&accounts.join("user0.pem"))
        .expect("key")
        .public();
    let mut out = Vec::new();
    for i in senders {
        let key = read_key_file(&accounts.join(format!("user{i}.pem"))).expect("key");
        for nonce in 1..=per_sender {
            let tx = Tx {
                chain_id: chain_id.to_string(),
                sender: key.public(),
                nonce,
                op: Op::Transfer { to, amount: 1 },
            }
            .sign(&key);
            out.push(to_hex(&encode(&tx)));
        }
    }
    out
}

/// Submits `txs` in batches to the running nodes in turn; those accepted
/// (hex and hash), and how many were refused.
pub async fn submit(cluster: &Cluster, txs: &[String]) -> (Vec<(String, String)>, usize) {
    let mut accepted = Vec::new();
    let mut refused = 0;
    let running: Vec<usize> = (0..cluster.nodes.len())
        .filter(|i| cluster.nodes[*i].run() == Run::Running)
        .collect();
    for (n, chunk) in txs.chunks(BATCH).enumerate() {
        let node = running[n % running.len()];
        let client = cluster.client(node).expect("it runs");
        match client.submit_tx_batch(chunk.to_vec()).await {
            Ok(items) => {
                for (tx, item) in chunk.iter().zip(items) {
                    match item.hash {
                        Some(hash) => accepted.push((tx.clone(), hash)),
                        None => refused += 1,
                    }
                }
            }
            Err(_) => refused += chunk.len(),
        }
    }
    (accepted, refused)
}

/// Opens up to `n` WebSocket connections to `url`; those accepted (to be
/// held) and how many were refused.
pub async fn connections(url: &str, n: usize) -> (Vec<WsClient>, usize) {
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        match WsClientBuilder::default().build(url).await {
            Ok(c) => held.push(c),
            Err(_) => refused += 1,
        }
    }
    (held, refused)
}

/// Subscribes to new heads `n` times on one connection to `url`; the
/// connection, the subscriptions granted and how many were refused.
pub async fn subscriptions(url: &str, n: usize) -> (WsClient, Vec<Subscription<HeadInfo>>, usize) {
    let ws = WsClientBuilder::default()
        .build(url)
        .await
        .expect("a connection");
    let mut subs = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        match ws
            .subscribe::<HeadInfo, _>(
                "ledger_subscribeNewHeads",
                rpc_params![],
                "ledger_unsubscribeNewHeads",
            )
            .await
        {
            Ok(s) => subs.push(s),
            Err(_) => refused += 1,
        }
    }
    (ws, subs, refused)
}

/// `n` raw TCP connections to a node's P2P socket, each sending either
/// 64 KiB of garbage or a multistream frame announcing 1 GiB; how many the
/// node closed (read end or reset) within 10 s each.
pub async fn garbage(addr: SocketAddr, n: usize) -> usize {
    let mut closed = 0;
    let mut noise = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..n {
        let Ok(mut stream) = TcpStream::connect(addr).await else {
            continue;
        };
        let bytes: Vec<u8> = if i % 2 == 0 {
            (0..64 * 1024)
                .map(|_| {
                    noise ^= noise << 13;
                    noise ^= noise >> 7;
                    noise ^= noise << 17;
                    noise as u8
                })
                .collect()
        } else {
            // An unsigned-varint length of 1 GiB, then a little.
            let mut frame = vec![0x80, 0x80, 0x80, 0x80, 0x04];
            frame.extend_from_slice(b"/multistream/1.0.0\n");
            frame
        };
        let _ = stream.write_all(&bytes).await;
        let mut buf = vec![0u8; 4096];
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if ended.is_ok() {
            closed += 1;
        }
    }
    closed
}

/// Blocks node `node` commits over `d`.
pub async fn blocks_in(cluster: &Cluster, node: usize, d: Duration) -> u64 {
    let from = cluster.height(node).await.expect("it answers");
    tokio::time::sleep(d).await;
    let to = cluster.height(node).await.expect("it answers");
    to - from
}

/// Those of `txs` (hex, hash) that node `node` reports committed.
pub async fn committed(cluster: &Cluster, node: usize, txs: &[(String, String)]) -> Vec<String> {
    let client = cluster.client(node).expect("it runs");
    let mut out = Vec::new();
    for (hex, hash) in txs {
        // Not found (evicted from a full pool, or never gossiped this far)
        // and pending ones are not committed.
        let status = client.get_tx(hash.clone()).await.map(|info| info.status);
        if status.is_ok_and(|s| s == TxState::Committed) {
            out.push(hex.clone());
        }
    }
    out
}
