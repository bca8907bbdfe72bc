//! The scenarios' transaction load: one client per funded account, each
//! sending batches of signed transfers over JSON-RPC to the nodes in turn
//! (whichever is up), and waiting for each batch's commit. What a client
//! saw committed (hash and height) is what invariant I4 checks on every
//! node at the end.
//!
//! A client that meets an error (a node killed, paused or cut off) reads
//! its account's nonce again from another node and goes on; transactions
//! it never saw committed are not counted.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonrpsee_http_client::HttpClient;
use tally_ledger::encoding::encode;
use tally_ledger::types::{Op, Tx};
use tally_ledger::Keypair;
use tally_node::keys::read_key_file;
use tally_rpc::types::{to_hex, TxState};
use tally_rpc::LedgerApiClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cluster::Clients;

/// Transactions per batch.
const BATCH: u64 = 16;
/// How long a client waits for its batch to commit before it asks again
/// elsewhere.
const COMMIT_WAIT: Duration = Duration::from_secs(10);

/// A transaction a client saw committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub hash: String,
    pub height: u64,
    /// The wall clock (ms) when the client saw it committed: its block
    /// was committed no later.
    pub seen_ms: u64,
}

/// Counts over the whole load.
#[derive(Debug, Default)]
pub struct LoadStats {
    pub accepted: AtomicU64,
    pub acknowledged: AtomicU64,
    pub errors: AtomicU64,
}

/// The running load; [`Load::stop`] ends it and hands back what the
/// clients saw committed.
#[derive(Debug)]
pub struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<Vec<Acknowledged>>>,
    pub stats: Arc<LoadStats>,
}

impl Load {
    /// One client per `user*.pem` in `accounts` (the first `senders`),
    /// each paying the next.
    pub fn start(
        accounts: &Path,
        senders: usize,
        chain_id: &str,
        clients: Clients,
        seed: u64,
    ) -> Self {
        let keys: Vec<Keypair> = (0..senders)
            .map(|i| read_key_file(&accounts.join(format!("user{i}.pem"))).expect("account key"))
            .collect();
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(LoadStats::default());
        let publics: Vec<_> = keys.iter().map(Keypair::public).collect();
        let workers = keys
            .into_iter()
            .enumerate()
            .map(|(i, key)| {
                let client = Client {
                    key,
                    to: publics[(i + 1) % publics.len()],
                    chain_id: chain_id.to_string(),
                    clients: clients.clone(),
                    next_node: (seed as usize).wrapping_add(i),
                    stats: stats.clone(),
                };
                tokio::spawn(client.run(stopped.clone()))
            })
            .collect();
        Self {
            stop,
            workers,
            stats,
        }
    }

    /// Stops every client (each finishes the batch in hand) and returns
    /// what they saw committed.
    pub async fn stop(self) -> Vec<Acknowledged> {
        self.stop.send_replace(true);
        let mut all = Vec::new();
        for w in self.workers {
            all.extend(w.await.expect("load client"));
        }
        all
    }
}

struct Client {
    key: Keypair,
    to: tally_ledger::PublicKey,
    chain_id: String,
    clients: Clients,
    next_node: usize,
    stats: Arc<LoadStats>,
}

impl Client {
    async fn run(mut self, stop: watch::Receiver<bool>) -> Vec<Acknowledged> {
        let mut seen = Vec::new();
        let mut nonce = None;
        while !*stop.borrow() {
            let Some(rpc) = self.pick() else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let first = match nonce {
                Some(n) => n,
                None => match self.next_nonce(&rpc).await {
                    Some(n) => n,
                    None => {
                        self.failed().await;
                        continue;
                    }
                },
            };
            match self.batch(&rpc, first, &mut seen).await {
                true => nonce = Some(first + BATCH),
                false => {
                    nonce = None;
                    self.failed().await;
                }
            }
        }
        seen
    }

    /// The next node that is up, in turn.
    fn pick(&mut self) -> Option<HttpClient> {
        let clients = self.clients.read().unwrap_or_else(|p| p.into_inner());
        for _ in 0..clients.len() {
            self.next_node = self.next_node.wrapping_add(1);
            if let Some(c) = &clients[self.next_node % clients.len()] {
                return Some(c.clone());
            }
        }
        None
    }

    async fn failed(&self) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    async fn next_nonce(&self, rpc: &HttpClient) -> Option<u64> {
        let account = rpc
            .get_account(self.key.public().to_hex(), None)
            .await
            .ok()?;
        Some(account.nonce.0 + 1)
    }

    /// Sends `BATCH` transfers from nonce `first` and waits for all of them
    /// to commit; true if they did.
    async fn batch(&self, rpc: &HttpClient, first: u64, seen: &mut Vec<Acknowledged>) -> bool {
        let txs: Vec<String> = (first..first + BATCH)
            .map(|nonce| {
                let tx = Tx {
                    chain_id: self.chain_id.clone(),
                    sender: self.key.public(),
                    nonce,
                    op: Op::Transfer {
                        to: self.to,
                        amount: 1,
                    },
                }
                .sign(&self.key);
                to_hex(&encode(&tx))
            })
            .collect();
        let Ok(items) = rpc.submit_tx_batch(txs).await else {
            return false;
        };
        let hashes: Vec<String> = items.iter().filter_map(|i| i.hash.clone()).collect();
        self.stats
            .accepted
            .fetch_add(hashes.len() as u64, Ordering::Relaxed);
        if hashes.len() as u64 != BATCH {
            return false;
        }
        // Nonces commit in order: once the last is in, so are the rest.
        let deadline = Instant::now() + COMMIT_WAIT;
        let last = hashes.last().cloned().unwrap_or_default();
        loop {
            match rpc.get_tx(last.clone()).await {
                Ok(info) if info.status == TxState::Committed => break,
                Ok(info) if info.status == TxState::Pending => {}
                _ => return false,
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen_ms = wall_ms();
        for hash in hashes {
            match rpc.get_tx(hash.clone()).await {
                Ok(info) if info.status == TxState::Committed => {
                    let height = info.height.map_or(0, |h| h.0);
                    seen.push(Acknowledged {
                        hash,
                        height,
                        seen_ms,
                    });
                    self.stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                _ => return false,
            }
        }
        true
    }
}

/// The wall clock in ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
