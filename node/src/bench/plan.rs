//! What `tally bench load` sends: its senders' keys, and every transaction
//! signed before the timed window, on every core.

use std::path::Path;

use anyhow::Context;

use tally_ledger::encoding::encode;
use tally_ledger::types::{Op, Tx};
use tally_ledger::Keypair;
use tally_rpc::types::to_hex;

use crate::keys::read_key_file;

/// The operation each transaction carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchOp {
    /// 1 unit to the next sender.
    Transfer,
    /// A record under a key of its own (every put writes a new key), with a
    /// value sized by `--tx-bytes`.
    Put,
}

/// Encoded size of a put without its value's bytes is about this much
/// (key, sender, nonce, chain id, signature); `--tx-bytes` below it gives an
/// empty value.
const PUT_VALUE_DEFAULT: usize = 100;

/// One pre-signed transaction.
pub(super) struct Planned {
    pub(super) hash: String,
    pub(super) hex: String,
    pub(super) node: usize,
}

/// The `user*.pem` keys of `dir`, in name order, at most `limit`.
pub(super) fn sender_keys(dir: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Keypair>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let is_user = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("user"));
        if is_user && path.extension().is_some_and(|e| e == "pem") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.truncate(limit.unwrap_or(usize::MAX));
    anyhow::ensure!(
        paths.len() >= 2,
        "{} holds fewer than two user*.pem keys (create a testnet with --accounts K)",
        dir.display()
    );
    paths
        .iter()
        .map(|p| read_key_file(p).map_err(anyhow::Error::from))
        .collect()
}

/// How to build each transaction.
#[derive(Debug, Clone, Copy)]
pub(super) struct TxShape {
    pub(super) op: BenchOp,
    /// For puts: the encoded transaction's size, as near as the value's
    /// length allows.
    pub(super) tx_bytes: Option<usize>,
}

impl TxShape {
    fn op(&self, keys: &[Keypair], sender: usize, k: usize, value_len: usize) -> Op {
        match self.op {
            BenchOp::Transfer => Op::Transfer {
                to: keys[(sender + 1) % keys.len()].public(),
                amount: 1,
            },
            BenchOp::Put => Op::Put {
                key: format!("bench/{k:012}").into_bytes(),
                value: vec![(k % 251) as u8; value_len],
            },
        }
    }

    /// The value length that makes a put `tx_bytes` long once signed.
    fn value_len(&self, keys: &[Keypair], chain_id: &str) -> usize {
        let Some(target) = self.tx_bytes else {
            return PUT_VALUE_DEFAULT;
        };
        let empty = Tx {
            chain_id: chain_id.to_string(),
            sender: keys[0].public(),
            nonce: u64::MAX,
            op: self.op(keys, 0, 0, 0),
        }
        .sign(&keys[0]);
        target.saturating_sub(encode(&empty).len())
    }
}

/// Signs `count` transactions, round-robin over the senders (each in nonce
/// order), on every core of this machine.
pub(super) fn sign_plan(
    keys: &[Keypair],
    nonces: &[u64],
    chain_id: &str,
    shape: TxShape,
    count: usize,
    nodes: usize,
) -> Vec<Planned> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = count.div_ceil(threads).max(1);
    let value_len = shape.value_len(keys, chain_id);
    let sign = |k: usize| {
        let s = k % keys.len();
        let tx = Tx {
            chain_id: chain_id.to_string(),
            sender: keys[s].public(),
            nonce: nonces[s] + (k / keys.len()) as u64,
            op: shape.op(keys, s, k, value_len),
        }
        .sign(&keys[s]);
        Planned {
            hash: tx.hash().to_hex(),
            hex: to_hex(&encode(&tx)),
            node: s % nodes,
        }
    };
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(per)
            .map(|from| {
                scope.spawn(move || {
                    (from..(from + per).min(count))
                        .map(sign)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<Keypair> {
        (1..=3u8).map(|n| Keypair::from_seed([n; 32])).collect()
    }

    #[test]
    fn puts_are_sized_by_tx_bytes_and_write_distinct_keys() {
        let keys = keys();
        let shape = TxShape {
            op: BenchOp::Put,
            tx_bytes: Some(1024),
        };
        let plan = sign_plan(&keys, &[1, 1, 1], "c", shape, 7, 2);
        assert_eq!(plan.len(), 7);
        let mut seen_keys = std::collections::BTreeSet::new();
        for p in &plan {
            let bytes = hex::decode(p.hex.trim_start_matches("0x")).unwrap_or_default();
            // Within the few bytes a longer nonce or key encoding adds.
            assert!((1020..=1032).contains(&bytes.len()), "{}", bytes.len());
            let tx: tally_ledger::types::SignedTx =
                tally_ledger::encoding::decode(&bytes, 1 << 20, "tx").expect("decodes");
            let Op::Put { key, .. } = &tx.tx.op else {
                panic!("not a put: {:?}", tx.tx.op);
            };
            assert!(seen_keys.insert(key.clone()));
            assert!(tx.tx.nonce >= 1);
        }
    }

    #[test]
    fn transfers_go_round_robin_in_nonce_order_over_the_nodes() {
        let keys = keys();
        let shape = TxShape {
            op: BenchOp::Transfer,
            tx_bytes: None,
        };
        let plan = sign_plan(&keys, &[5, 1, 1], "c", shape, 6, 2);
        let nodes: Vec<usize> = plan.iter().map(|p| p.node).collect();
        assert_eq!(nodes, vec![0, 1, 0, 0, 1, 0]);
        let hashes: std::collections::BTreeSet<_> = plan.iter().map(|p| &p.hash).collect();
        assert_eq!(hashes.len(), 6);
    }
}
