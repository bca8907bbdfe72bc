//! The mempool: transactions admitted but not yet committed.
//!
//! Bounded by count and bytes; deduplicated by hash; ordered per sender by
//! nonce, with a bounded window of future nonces; signature and membership
//! checked once on entry and re-checked against the state after each
//! committed block. Evicted and refused transactions leave a reason that can
//! be looked up by hash. Every call is O(log n) or bounded by the block
//! limits: the mempool never blocks consensus.

use std::collections::{BTreeMap, HashMap, VecDeque};

use tally_ledger::crypto::SignatureError;
use tally_ledger::encoding::encode;
use tally_ledger::execution::{check_tx_static, TxError};
use tally_ledger::genesis::Params;
use tally_ledger::state::AccountState;
use tally_ledger::types::SignedTx;
use tally_ledger::{Hash, PublicKey};

/// Reasons kept for refused and evicted transactions (oldest dropped first).
pub const REASONS_MAX: usize = 100_000;

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("{0}")]
    Invalid(TxError),
    #[error("transaction {0} is already in the mempool")]
    Duplicate(Hash),
    #[error("nonce {found} is already used: the sender's last committed nonce is {committed}")]
    StaleNonce { committed: u64, found: u64 },
    #[error("nonce {found} is too far ahead: the sender's next nonce is {next}, and at most {window} ahead are kept")]
    FutureNonce { next: u64, found: u64, window: u32 },
    #[error("mempool is full ({txs} transactions, {bytes} bytes); try again after the next block")]
    Full { txs: usize, bytes: u64 },
}

impl MempoolError {
    /// A short machine-readable name for metrics and RPC error data.
    pub fn kind(&self) -> &'static str {
        match self {
            MempoolError::Invalid(TxError::BadSignature(_)) => "bad_signature",
            MempoolError::Invalid(TxError::WrongChain { .. }) => "wrong_chain",
            MempoolError::Invalid(TxError::UnknownSender(_)) => "unknown_sender",
            MempoolError::Invalid(TxError::RevokedSender(_)) => "revoked_sender",
            MempoolError::Invalid(TxError::TooLarge { .. }) => "too_large",
            MempoolError::Invalid(_) => "invalid",
            MempoolError::Duplicate(_) => "duplicate",
            MempoolError::StaleNonce { .. } => "stale_nonce",
            MempoolError::FutureNonce { .. } => "future_nonce",
            MempoolError::Full { .. } => "mempool_full",
        }
    }
}

/// Reads accounts as of the latest committed block.
pub trait AccountView {
    fn account(&self, key: &PublicKey) -> Option<AccountState>;
}

/// Where a transaction the mempool has seen stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolStatus {
    Pending,
    /// Refused on entry or evicted later, with the reason.
    Rejected(String),
}

#[derive(Debug, Clone)]
struct Entry {
    tx: SignedTx,
    bytes: usize,
}

/// Limits from the node's config.
#[derive(Debug, Clone, Copy)]
pub struct MempoolLimits {
    pub max_txs: usize,
    pub max_bytes: u64,
    pub future_nonce_window: u32,
}

#[derive(Debug)]
pub struct Mempool {
    chain_id: String,
    params: Params,
    limits: MempoolLimits,
    by_hash: HashMap<Hash, Entry>,
    by_sender: BTreeMap<PublicKey, BTreeMap<u64, Hash>>,
    bytes: u64,
    reasons: HashMap<Hash, String>,
    reason_order: VecDeque<Hash>,
}

impl Mempool {
    pub fn new(chain_id: &str, params: Params, limits: MempoolLimits) -> Self {
        Mempool {
            chain_id: chain_id.to_string(),
            params,
            limits,
            by_hash: HashMap::new(),
            by_sender: BTreeMap::new(),
            bytes: 0,
            reasons: HashMap::new(),
            reason_order: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn status(&self, hash: &Hash) -> Option<PoolStatus> {
        if self.by_hash.contains_key(hash) {
            return Some(PoolStatus::Pending);
        }
        self.reasons
            .get(hash)
            .map(|r| PoolStatus::Rejected(r.clone()))
    }

    /// The pending transaction with this hash.
    pub fn get(&self, hash: &Hash) -> Option<&SignedTx> {
        self.by_hash.get(hash).map(|e| &e.tx)
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.by_hash.contains_key(hash)
    }

    fn remember(&mut self, hash: Hash, reason: String) {
        if self.reasons.insert(hash, reason).is_none() {
            self.reason_order.push_back(hash);
            while self.reason_order.len() > REASONS_MAX {
                if let Some(old) = self.reason_order.pop_front() {
                    self.reasons.remove(&old);
                }
            }
        }
    }

    /// Checks everything but the signature, which the caller has verified
    /// (alone, or in a batch for gossip).
    pub fn admit_verified(
        &mut self,
        tx: SignedTx,
        state: &impl AccountView,
    ) -> Result<Hash, MempoolError> {
        let hash = tx.hash();
        let result = self.check(&tx, hash, state);
        match result {
            Ok(bytes) => {
                self.by_sender
                    .entry(tx.tx.sender)
                    .or_default()
                    .insert(tx.tx.nonce, hash);
                self.bytes += bytes as u64;
                self.by_hash.insert(hash, Entry { tx, bytes });
                self.reasons.remove(&hash);
                Ok(hash)
            }
            Err(e) => {
                if !matches!(e, MempoolError::Duplicate(_) | MempoolError::Full { .. }) {
                    self.remember(hash, e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Checks the signature, then admits.
    pub fn admit(&mut self, tx: SignedTx, state: &impl AccountView) -> Result<Hash, MempoolError> {
        // The chain id first: a transaction for another chain fails its
        // signature here too, and "wrong chain" is the useful answer.
        if tx.tx.chain_id != self.chain_id {
            let err = MempoolError::Invalid(TxError::WrongChain {
                expected: self.chain_id.clone(),
                found: tx.tx.chain_id.clone(),
            });
            self.remember(tx.hash(), err.to_string());
            return Err(err);
        }
        if let Err(e) = verify_signature(&tx, &self.chain_id) {
            let err = MempoolError::Invalid(TxError::BadSignature(e));
            self.remember(tx.hash(), err.to_string());
            return Err(err);
        }
        self.admit_verified(tx, state)
    }

    fn check(
        &self,
        tx: &SignedTx,
        hash: Hash,
        state: &impl AccountView,
    ) -> Result<usize, MempoolError> {
        if self.by_hash.contains_key(&hash) {
            return Err(MempoolError::Duplicate(hash));
        }
        check_tx_static(tx, &self.chain_id, &self.params).map_err(MempoolError::Invalid)?;
        let sender = tx.tx.sender;
        let account = state
            .account(&sender)
            .ok_or(MempoolError::Invalid(TxError::UnknownSender(sender)))?;
        if !account.active {
            return Err(MempoolError::Invalid(TxError::RevokedSender(sender)));
        }
        if tx.tx.nonce <= account.nonce {
            return Err(MempoolError::StaleNonce {
                committed: account.nonce,
                found: tx.tx.nonce,
            });
        }
        let next = account.nonce + 1;
        if tx.tx.nonce - next >= u64::from(self.limits.future_nonce_window) {
            return Err(MempoolError::FutureNonce {
                next,
                found: tx.tx.nonce,
                window: self.limits.future_nonce_window,
            });
        }
        if let Some(existing) = self
            .by_sender
            .get(&sender)
            .and_then(|m| m.get(&tx.tx.nonce))
        {
            // One tx per (sender, nonce): the first one wins.
            return Err(MempoolError::Duplicate(*existing));
        }
        let bytes = encode(tx).len();
        if self.by_hash.len() >= self.limits.max_txs
            || self.bytes + bytes as u64 > self.limits.max_bytes
        {
            return Err(MempoolError::Full {
                txs: self.by_hash.len(),
                bytes: self.bytes,
            });
        }
        Ok(bytes)
    }

    fn remove(&mut self, hash: &Hash) -> Option<SignedTx> {
        let entry = self.by_hash.remove(hash)?;
        self.bytes -= entry.bytes as u64;
        if let Some(m) = self.by_sender.get_mut(&entry.tx.tx.sender) {
            m.remove(&entry.tx.tx.nonce);
            if m.is_empty() {
                self.by_sender.remove(&entry.tx.tx.sender);
            }
        }
        Some(entry.tx)
    }

    /// Removes a transaction that failed in a block being built, keeping why.
    pub fn evict(&mut self, hash: &Hash, reason: String) {
        if self.remove(hash).is_some() {
            self.remember(*hash, reason);
        }
    }

    /// Candidates for the next block, fairly interleaved across senders and
    /// in nonce order per sender, within the block's count and byte limits.
    /// The proposer still executes each one and evicts those that fail.
    pub fn candidates(&self, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut queues: Vec<std::collections::btree_map::Values<'_, u64, Hash>> =
            self.by_sender.values().map(|m| m.values()).collect();
        let mut out = Vec::new();
        let mut bytes = 0usize;
        loop {
            let mut progressed = false;
            for q in queues.iter_mut() {
                if out.len() >= max_txs {
                    return out;
                }
                if let Some(hash) = q.next() {
                    let entry = &self.by_hash[hash];
                    if bytes + entry.bytes > max_bytes {
                        return out;
                    }
                    bytes += entry.bytes;
                    out.push(entry.tx.clone());
                    progressed = true;
                }
            }
            if !progressed {
                return out;
            }
        }
    }

    /// After a block: drops the committed transactions and re-checks the
    /// rest against the new state (nonces used, senders revoked).
    pub fn update(&mut self, committed: &[SignedTx], state: &impl AccountView) {
        for tx in committed {
            self.remove(&tx.hash());
        }
        let senders: Vec<PublicKey> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let account = state.account(&sender);
            let hashes: Vec<(u64, Hash)> = self.by_sender[&sender]
                .iter()
                .map(|(n, h)| (*n, *h))
                .collect();
            for (nonce, hash) in hashes {
                let reason = match &account {
                    None => Some(format!("sender {sender} is not an account on this chain")),
                    Some(a) if !a.active => Some(format!("sender {sender} has been revoked")),
                    Some(a) if nonce <= a.nonce => {
                        Some(format!("nonce {nonce} was used by another transaction"))
                    }
                    Some(_) => None,
                };
                if let Some(reason) = reason {
                    self.evict(&hash, reason);
                }
            }
        }
    }
}

/// Checks a transaction's signature alone.
pub fn verify_signature(tx: &SignedTx, chain_id: &str) -> Result<(), SignatureError> {
    tx.tx.sender.verify(
        tally_ledger::Domain::Tx,
        chain_id,
        &tx.signed_message(),
        &tx.signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_ledger::testkit::TestChain;
    use tally_ledger::types::Op;

    struct View(BTreeMap<PublicKey, AccountState>);
    impl AccountView for View {
        fn account(&self, key: &PublicKey) -> Option<AccountState> {
            self.0.get(key).cloned()
        }
    }

    fn setup(max_txs: usize) -> (TestChain, Mempool, View) {
        let chain = TestChain::new(4, 4);
        let view = View(
            chain
                .account_keys
                .iter()
                .map(|k| {
                    (
                        k.public(),
                        AccountState {
                            role: tally_ledger::Role::Member,
                            active: true,
                            balance: 1_000,
                            nonce: 0,
                        },
                    )
                })
                .collect(),
        );
        let pool = Mempool::new(
            chain.chain_id(),
            chain.genesis.params.clone(),
            MempoolLimits {
                max_txs,
                max_bytes: 1 << 20,
                future_nonce_window: 4,
            },
        );
        (chain, pool, view)
    }

    #[test]
    fn admits_dedups_and_orders_by_nonce() {
        let (mut chain, mut pool, view) = setup(100);
        let a = chain.transfer(1, 2, 1);
        let b = chain.transfer(1, 2, 1);
        let c = chain.transfer(2, 1, 1);
        pool.admit(b.clone(), &view).unwrap();
        pool.admit(a.clone(), &view).unwrap();
        pool.admit(c.clone(), &view).unwrap();
        assert_eq!(
            pool.admit(a.clone(), &view),
            Err(MempoolError::Duplicate(a.hash()))
        );
        assert_eq!(pool.len(), 3);
        // Interleaved across senders, nonce order within each.
        let order: Vec<Hash> = pool
            .candidates(10, 1 << 20)
            .iter()
            .map(SignedTx::hash)
            .collect();
        let pos = |h: Hash| order.iter().position(|x| *x == h).unwrap();
        assert!(pos(a.hash()) < pos(b.hash()));
        assert_eq!(order.len(), 3);
        assert_eq!(pool.candidates(1, 1 << 20).len(), 1);
    }

    #[test]
    fn refuses_bad_signature_unknown_sender_stale_and_far_future_nonces() {
        let (mut chain, mut pool, mut view) = setup(100);
        let mut forged = chain.transfer(1, 2, 1);
        forged.signature.0[3] ^= 1;
        assert!(matches!(
            pool.admit(forged.clone(), &view),
            Err(MempoolError::Invalid(TxError::BadSignature(_)))
        ));
        assert!(matches!(
            pool.status(&forged.hash()),
            Some(PoolStatus::Rejected(_))
        ));

        let stranger = tally_ledger::Keypair::from_seed([0xcc; 32]);
        let tx = tally_ledger::Tx {
            chain_id: chain.chain_id().into(),
            sender: stranger.public(),
            nonce: 1,
            op: Op::Delete { key: b"k".to_vec() },
        }
        .sign(&stranger);
        assert_eq!(
            pool.admit(tx, &view),
            Err(MempoolError::Invalid(TxError::UnknownSender(
                stranger.public()
            )))
        );

        view.0
            .get_mut(&chain.account_keys[2].public())
            .unwrap()
            .nonce = 5;
        let stale = chain.transfer(2, 1, 1); // nonce 1
        assert_eq!(
            pool.admit(stale, &view),
            Err(MempoolError::StaleNonce {
                committed: 5,
                found: 1
            })
        );
        for _ in 0..8 {
            chain.transfer(3, 1, 1);
        }
        let far = chain.transfer(3, 1, 1); // nonce 9, next is 1, window 4
        assert_eq!(
            pool.admit(far, &view),
            Err(MempoolError::FutureNonce {
                next: 1,
                found: 9,
                window: 4
            })
        );
    }

    #[test]
    fn a_full_pool_refuses_clearly() {
        let (mut chain, mut pool, view) = setup(2);
        pool.admit(chain.transfer(1, 2, 1), &view).unwrap();
        pool.admit(chain.transfer(2, 1, 1), &view).unwrap();
        let err = pool.admit(chain.transfer(3, 1, 1), &view).unwrap_err();
        assert!(matches!(err, MempoolError::Full { txs: 2, .. }));
        assert!(err.to_string().contains("try again"));
    }

    #[test]
    fn update_drops_committed_and_evicts_with_a_reason() {
        let (mut chain, mut pool, mut view) = setup(100);
        let a = chain.transfer(1, 2, 1);
        let b = chain.transfer(1, 2, 1);
        let c = chain.transfer(2, 1, 1);
        for t in [&a, &b, &c] {
            pool.admit(t.clone(), &view).unwrap();
        }
        // Block commits `a`; account 2 is revoked in the same block.
        view.0
            .get_mut(&chain.account_keys[1].public())
            .unwrap()
            .nonce = 1;
        view.0
            .get_mut(&chain.account_keys[2].public())
            .unwrap()
            .active = false;
        pool.update(std::slice::from_ref(&a), &view);
        assert_eq!(pool.status(&a.hash()), None);
        assert_eq!(pool.status(&b.hash()), Some(PoolStatus::Pending));
        match pool.status(&c.hash()) {
            Some(PoolStatus::Rejected(reason)) => assert!(reason.contains("revoked"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.len(), 1);
    }
}
