//! The invariants of design.md section 12, checked after every scenario:
//!
//! - **I1** every node holds the same block hash at every height it holds;
//! - **I2** every node's hash links and commit certificates are valid;
//! - **I3** no validator signed two values for one height/round/step: no
//!   node holds evidence (unless the scenario planted an equivocator), and
//!   each validator's persisted signer state agrees with the chain (its
//!   latest signature is at or above every commit it signed; where it
//!   remembers a precommit of a committed round, the certificate carries
//!   that very signature);
//! - **I4** every transaction a client saw committed is at the height the
//!   client saw, on every node, and no transaction is committed twice;
//! - **I5** the height grows again within a bound once the faults heal;
//! - **I6** `tally audit` exits 0 on every node's data.

use std::time::{Duration, Instant};

use tally_consensus::signer::SIGNER_STATE_BYTES_MAX;
use tally_consensus::{SignStep, SignerState};
use tally_ledger::encoding::{decode, hex_serde};
use tally_ledger::store::Store;
use tally_ledger::types::{SignedVote, VoteKind};
use tally_ledger::verify::BLOCK_TIME_DRIFT_MS;
use tally_ledger::{Domain, Hash};
use tally_rpc::LedgerApiClient;

use super::cluster::{Cluster, Run, Usage};
use super::load::Acknowledged;

/// Blocks every node must add after the heal (I5).
const GROWTH: u64 = 3;

/// What the scenario expects.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// Validator indexes that equivocate: some node must hold evidence
    /// against each; evidence against anyone else is a failure. Their own
    /// signer state is not checked against the chain (a twin's signatures
    /// are in the certificates too).
    pub equivocators: &'static [u32],
}

/// Waits for every running node to add [`GROWTH`] blocks beyond the
/// highest height any of them holds now (I5); returns how long it took.
pub async fn recovers(cluster: &Cluster, limit: Duration) -> Duration {
    let began = Instant::now();
    let top = cluster
        .heights()
        .await
        .into_iter()
        .map(|(_, h)| h)
        .max()
        .unwrap_or(0);
    let running: Vec<usize> = (0..cluster.nodes.len())
        .filter(|i| cluster.nodes[*i].run() == Run::Running)
        .collect();
    let deadline = began + limit;
    for &i in &running {
        loop {
            let h = cluster.height(i).await.unwrap_or(0);
            if h >= top + GROWTH {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "I5: {} stayed at height {h}, short of {} for {limit:?} after the heal",
                cluster.nodes[i].name,
                top + GROWTH
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    began.elapsed()
}

/// I3 over RPC on the running nodes: every piece of evidence a node holds
/// (every page of it) is against an expected equivocator (none, normally)
/// and proves it: two votes of one kind, height and round for different
/// values, both validly signed by that validator. Each expected
/// equivocator has evidence against it on at least one honest node (not
/// itself or its twin).
pub async fn evidence(cluster: &Cluster, expect: Expect) {
    let mut found = std::collections::BTreeMap::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let Some(client) = cluster.client(i) else {
            continue;
        };
        let honest = node
            .validator
            .is_none_or(|v| !expect.equivocators.contains(&v));
        let mut records = Vec::new();
        let mut cursor = None;
        loop {
            let page = client
                .get_evidence(None, cursor, Some(100))
                .await
                .unwrap_or_else(|e| panic!("{}: getEvidence failed: {e}", node.name));
            records.extend(page.evidence);
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        for e in &records {
            assert!(
                expect.equivocators.contains(&e.validator_index),
                "I3: {} holds evidence against validator {} at height {} round {} ({})",
                node.name,
                e.validator_index,
                e.height.0,
                e.round,
                e.kind
            );
            proves(cluster, &node.name, e);
            if honest {
                *found.entry(e.validator_index).or_insert(0) += 1;
            }
        }
    }
    for v in expect.equivocators {
        assert!(
            found.contains_key(v),
            "I3: validator {v} equivocated, but no honest node holds evidence against it"
        );
    }
    if !found.is_empty() {
        println!("             evidence records on honest nodes, by validator: {found:?}");
    }
}

/// Asserts that an evidence record holds two conflicting votes, each
/// signed by the validator it names.
fn proves(cluster: &Cluster, name: &str, e: &tally_rpc::types::EvidenceInfo) {
    let vote = |hex: &str| -> SignedVote {
        let bytes = hex_serde::parse_vec(hex, 4096)
            .unwrap_or_else(|err| panic!("I3: {name}'s evidence is not hex: {err}"));
        decode(&bytes, 4096, "evidence vote")
            .unwrap_or_else(|err| panic!("I3: {name}'s evidence does not decode: {err}"))
    };
    let (first, second) = (vote(&e.first), vote(&e.second));
    let (a, b) = (first.vote, second.vote);
    let kind = match a.kind {
        VoteKind::Prevote => "prevote",
        VoteKind::Precommit => "precommit",
    };
    assert!(
        (a.height, a.round, kind) == (e.height.0, e.round, e.kind.as_str()),
        "I3: {name}'s evidence record says height {} round {} {} but holds {a:?}",
        e.height.0,
        e.round,
        e.kind
    );
    assert!(
        (a.kind, a.height, a.round) == (b.kind, b.height, b.round) && a.value != b.value,
        "I3: {name}'s evidence against validator {} is no conflict: {a:?} and {b:?}",
        e.validator_index
    );
    let key = cluster.genesis.validators[e.validator_index as usize].public_key;
    for v in [&first, &second] {
        assert_eq!(v.validator_index, e.validator_index);
        key.verify(
            Domain::Vote,
            &cluster.genesis.chain_id,
            &v.vote.message(),
            &v.signature,
        )
        .unwrap_or_else(|err| {
            panic!(
                "I3: {name}'s evidence against validator {} carries a bad signature: {err}",
                e.validator_index
            )
        });
    }
}

/// I1, I2, I3 (signer state) and I4 on the stopped nodes' databases, then
/// I6 with `tally audit`. Returns the common height checked.
pub fn databases(cluster: &Cluster, acknowledged: &[Acknowledged], expect: Expect) -> u64 {
    let genesis = &cluster.genesis;
    let set = genesis.validator_set().expect("genesis set");
    let stores: Vec<Store> = cluster
        .nodes
        .iter()
        .map(|n| {
            Store::open_read_only(&n.home.join("data"), genesis)
                .unwrap_or_else(|e| panic!("{}: the store does not open: {e}", n.name))
        })
        .collect();
    let common = stores.iter().map(Store::height).min().unwrap_or(0);
    assert!(common > 0, "the nodes committed nothing");

    // I1 at every height against the first node that holds it; I2 over
    // each node's whole chain.
    let top = stores.iter().map(Store::height).max().unwrap_or(0);
    let mut reference: Vec<Option<Hash>> = vec![None; top as usize + 1];
    for (i, store) in stores.iter().enumerate() {
        let name = &cluster.nodes[i].name;
        let mut prev = store.genesis_hash();
        for h in 1..=store.height() {
            let block = store
                .block(h)
                .expect("read")
                .unwrap_or_else(|| panic!("I2: {name} lacks block {h}"));
            assert_eq!(block.header.prev_hash, prev, "I2: {name}: hash link at {h}");
            prev = block.hash();
            let cert = store
                .certificate(h)
                .expect("read")
                .unwrap_or_else(|| panic!("I2: {name} lacks the certificate of {h}"));
            assert_eq!(
                cert.block_hash,
                block.hash(),
                "I2: {name}: certificate of {h}"
            );
            tally_ledger::verify::verify_certificate(&cert, &set, &genesis.chain_id)
                .unwrap_or_else(|e| panic!("I2: {name}: certificate of {h}: {e}"));
            let first = reference[h as usize].get_or_insert(block.hash());
            assert_eq!(*first, block.hash(), "I1: {name} differs at height {h}");
        }
    }

    // No block timed further ahead of the real clock than the drift
    // allowed: a client saw each acknowledged block committed by then.
    for ack in acknowledged {
        if let Some(block) = stores[0].block(ack.height).expect("read") {
            assert!(
                block.header.time_ms <= ack.seen_ms + BLOCK_TIME_DRIFT_MS,
                "I2: block {} is timed {} ms after a client saw it committed",
                ack.height,
                block.header.time_ms.saturating_sub(ack.seen_ms)
            );
        }
    }

    // I3: each validator's signer state against the chain it signed.
    for (i, store) in stores.iter().enumerate() {
        let node = &cluster.nodes[i];
        let Some(index) = node.validator else {
            continue;
        };
        if !expect.equivocators.contains(&index) {
            signer_agrees(&node.name, index, store, &stores[0]);
        }
    }

    // No transaction committed twice (a replay, or a copy gossiped back
    // after its commit), over the longest chain.
    let longest = stores.iter().max_by_key(|s| s.height()).expect("a store");
    let mut seen = std::collections::HashMap::new();
    for h in 1..=longest.height() {
        let block = longest.block(h).expect("read").expect("block");
        for tx in &block.txs {
            if let Some(first) = seen.insert(tx.hash(), h) {
                panic!("I4: tx {} committed at heights {first} and {h}", tx.hash());
            }
        }
    }

    // I4: what a client saw committed is where it saw it, everywhere.
    for ack in acknowledged {
        let hash = Hash::from_hex(&ack.hash).expect("tx hash");
        for (i, store) in stores.iter().enumerate() {
            let at = store.tx_location(&hash).expect("read").map(|l| l.height);
            if at.is_none() && store.height() < ack.height {
                // A node that never reached that height (a replica cut off
                // at the end) cannot hold it; I1/I5 cover its lag.
                continue;
            }
            assert_eq!(
                at,
                Some(ack.height),
                "I4: {} lost tx {} acknowledged at height {}",
                cluster.nodes[i].name,
                ack.hash,
                ack.height
            );
        }
    }
    drop(stores);

    // I6.
    for node in &cluster.nodes {
        let out = std::process::Command::new(cluster.binary())
            .arg("audit")
            .arg("--home")
            .arg(&node.home)
            .output()
            .expect("tally audit runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "I6: tally audit of {} failed:\n{}{}",
            node.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    common
}

/// The validator at `index` persisted a signer state that matches the
/// chain: nothing it signed into a certificate is above its latest
/// signature, and a precommit it remembers for a committed round is the one
/// in the certificate.
fn signer_agrees(name: &str, index: u32, own: &Store, reference: &Store) {
    let Some(bytes) = own.signer_state().expect("read signer state") else {
        panic!("I3: {name} has no signer state");
    };
    let state: SignerState = decode(&bytes, SIGNER_STATE_BYTES_MAX, "signer state")
        .unwrap_or_else(|e| panic!("I3: {name}'s signer state does not decode: {e}"));
    let last = state
        .last()
        .unwrap_or_else(|| panic!("I3: {name} never signed"));
    let latest = (last.height, last.round, last.step);
    for h in 1..=reference.height() {
        let cert = reference
            .certificate(h)
            .expect("read")
            .expect("certificate");
        let Some(sig) = cert.signatures.iter().find(|s| s.validator_index == index) else {
            continue;
        };
        assert!(
            (h, cert.round, SignStep::Precommit) <= latest,
            "I3: {name}'s signer state ends at {latest:?}, below its precommit in the certificate of {h}"
        );
        for record in &state.history {
            if (record.height, record.round, record.step) == (h, cert.round, SignStep::Precommit) {
                assert_eq!(
                    record.signature, sig.signature,
                    "I3: {name} signed two precommits at height {h} round {}",
                    cert.round
                );
            }
        }
    }
}

/// Resident memory and descriptors stay flat: for every process sampled
/// at least `min_samples` times, its last sample is within half again
/// (plus 64 MB) of the most it used in its 2nd to 4th samples (after
/// warm-up), and within 32 descriptors of them.
pub fn flat(cluster: &Cluster, samples: &[Usage], min_samples: usize) -> usize {
    let mut pids: Vec<u32> = samples.iter().map(|u| u.pid).collect();
    pids.sort_unstable();
    pids.dedup();
    let mut judged = 0;
    for pid in pids {
        let own: Vec<&Usage> = samples.iter().filter(|u| u.pid == pid).collect();
        if own.len() < min_samples.max(5) {
            continue;
        }
        judged += 1;
        let name = &cluster.nodes[own[0].node].name;
        let early = &own[1..4];
        let rss = early.iter().map(|u| u.rss_kb).max().unwrap_or(0);
        let fds = early.iter().map(|u| u.fds).max().unwrap_or(0);
        let last = own[own.len() - 1];
        assert!(
            last.rss_kb <= rss + rss / 2 + 64 * 1024,
            "{name} (pid {pid}) grew from {} MB to {} MB resident",
            rss / 1024,
            last.rss_kb / 1024
        );
        assert!(
            last.fds <= fds + 32,
            "{name} (pid {pid}) went from {fds} to {} open descriptors",
            last.fds
        );
    }
    judged
}
