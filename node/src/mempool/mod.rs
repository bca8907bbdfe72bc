//! The mempool: transactions admitted but not yet committed.
//!
//! Bounded by count and bytes, and per sender; deduplicated by hash; ordered
//! per sender by nonce, with a bounded window of future nonces; signature
//! and membership checked once on entry and re-checked against the state
//! after each committed block. Evicted and refused transactions leave a
//! reason that can be looked up by hash.
//!
//! A transaction behind a missing nonce cannot be included until the
//! missing one arrives. Such transactions are not offered to the block
//! builder, give way to executable ones when the pool is full, and are
//! evicted once their sender's gap has lasted [`NONCE_GAP_EXPIRY`].
//!
//! Time is an input: the mempool never reads the clock. [`Mempool::expire`]
//! tells it the time (the driver calls it on its tick) and admissions are
//! dated with the latest time it was told.
//!
//! Every call is O(log n), bounded by a named limit, or (`candidates`,
//! `update`) bounded by the pool's limits: the mempool never blocks
//! consensus.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use tally_ledger::encoding::encode;
use tally_ledger::execution::{check_tx_static, TxError};
use tally_ledger::genesis::Params;
use tally_ledger::state::AccountState;
use tally_ledger::types::SignedTx;
use tally_ledger::{Hash, PublicKey};

/// Reasons kept for refused and evicted transactions (oldest dropped first).
pub const REASONS_MAX: usize = 100_000;
/// Most transactions one sender may have pending. The future-nonce window
/// (64 by default) is usually the tighter bound; this one holds when the
/// window is raised, so that one account cannot fill the pool.
pub const SENDER_TXS_MAX: usize = 1_000;
/// A sender's transactions waiting behind a missing nonce are evicted once
/// the gap has lasted this long.
pub const NONCE_GAP_EXPIRY: Duration = Duration::from_secs(60);
/// Most transactions one [`Mempool::expire`] call evicts; the rest wait for
/// the next call.
pub const EXPIRE_TXS_MAX: usize = 4_096;
/// Most waiting transactions evicted to make room for one executable
/// newcomer in a full pool.
pub const MAKE_ROOM_TXS_MAX: usize = 256;

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
    #[error("sender {sender} already has {pending} transactions pending, the most one sender may have ({max}); try again after the next block")]
    SenderFull {
        sender: PublicKey,
        pending: usize,
        max: usize,
    },
    #[error("mempool is full ({txs} transactions, {bytes} bytes); try again after the next block")]
    Full { txs: usize, bytes: u64 },
    #[error("the node could not check this transaction's signature (a fault in the node, in its log); try again")]
    Unchecked,
}

/// Every [`MempoolError::kind`], so that metrics show each refusal from
/// the start (at zero) rather than from its first occurrence.
pub const REFUSAL_KINDS: [&str; 12] = [
    "bad_signature",
    "wrong_chain",
    "unknown_sender",
    "revoked_sender",
    "too_large",
    "invalid",
    "duplicate",
    "stale_nonce",
    "future_nonce",
    "sender_full",
    "mempool_full",
    "unchecked",
];

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
            MempoolError::SenderFull { .. } => "sender_full",
            MempoolError::Full { .. } => "mempool_full",
            MempoolError::Unchecked => "unchecked",
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

/// A moment as the mempool knows it: the time of an [`Mempool::expire`]
/// call, or before the first one (which then counts as that first time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    BeforeFirstExpire,
    At(Instant),
}

/// One sender's pending transactions.
#[derive(Debug)]
struct SenderQueue {
    /// By nonce; every nonce is at least `next`.
    txs: BTreeMap<u64, Hash>,
    /// The sender's next nonce in the latest committed state seen.
    next: u64,
    /// Since when some of its transactions wait behind a missing nonce;
    /// `None` while all of them are executable in order.
    gap_since: Option<Seen>,
}

impl SenderQueue {
    fn new(next: u64) -> Self {
        SenderQueue {
            txs: BTreeMap::new(),
            next,
            gap_since: None,
        }
    }

    /// True if some transaction waits behind a missing nonce: the nonces
    /// are not exactly `next, next + 1, …`. O(log n).
    fn has_gap(&self) -> bool {
        match (self.txs.first_key_value(), self.txs.last_key_value()) {
            (Some((&first, _)), Some((&last, _))) => {
                first != self.next || last - first + 1 != self.txs.len() as u64
            }
            _ => false,
        }
    }

    /// The executable transactions: the run of consecutive nonces from
    /// `next`. Bounded by [`SENDER_TXS_MAX`].
    fn executable(&self) -> impl Iterator<Item = &Hash> {
        self.txs
            .iter()
            .zip(self.next..)
            .take_while(|((nonce, _), expected)| **nonce == *expected)
            .map(|((_, hash), _)| hash)
    }

    /// The first nonce missing from the executable run.
    fn first_missing(&self) -> u64 {
        self.next + self.executable().count() as u64
    }
}

#[derive(Debug)]
pub struct Mempool {
    chain_id: String,
    params: Params,
    limits: MempoolLimits,
    by_hash: HashMap<Hash, Entry>,
    by_sender: BTreeMap<PublicKey, SenderQueue>,
    /// Senders with a nonce gap, oldest gap first.
    gapped: BTreeSet<(Seen, PublicKey)>,
    bytes: u64,
    /// The latest time given to [`Mempool::expire`].
    now: Seen,
    /// The first time given to [`Mempool::expire`].
    first_now: Option<Instant>,
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
            gapped: BTreeSet::new(),
            bytes: 0,
            now: Seen::BeforeFirstExpire,
            first_now: None,
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

    /// True when the pool holds this transaction. Every pooled transaction's
    /// signature was verified on admission (alone, or in a gossip batch),
    /// so validation skips the signatures of the ones it holds.
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
        self.admit_hashed(tx, hash, state)
    }

    /// Admits a transaction that came by gossip (signature verified). One
    /// this node has refused already is not taken again: a peer that still
    /// held it echoes it, and taking it would turn its status back to
    /// pending and judge it again. A client may still submit it again.
    pub fn admit_gossiped(
        &mut self,
        tx: SignedTx,
        state: &impl AccountView,
    ) -> Result<Hash, MempoolError> {
        let hash = tx.hash();
        if self.reasons.contains_key(&hash) {
            return Err(MempoolError::Duplicate(hash));
        }
        self.admit_hashed(tx, hash, state)
    }

    fn admit_hashed(
        &mut self,
        tx: SignedTx,
        hash: Hash,
        state: &impl AccountView,
    ) -> Result<Hash, MempoolError> {
        let result = self
            .check(&tx, hash, state)
            .and_then(|(bytes, next)| self.make_room(&tx, bytes, next).map(|()| (bytes, next)));
        match result {
            Ok((bytes, next)) => {
                let sender = tx.tx.sender;
                self.by_sender
                    .entry(sender)
                    .or_insert_with(|| SenderQueue::new(next))
                    .txs
                    .insert(tx.tx.nonce, hash);
                self.bytes += bytes as u64;
                self.by_hash.insert(hash, Entry { tx, bytes });
                self.reasons.remove(&hash);
                self.refresh_gap(sender);
                Ok(hash)
            }
            Err(e) => {
                if !matches!(
                    e,
                    MempoolError::Duplicate(_)
                        | MempoolError::SenderFull { .. }
                        | MempoolError::Full { .. }
                ) {
                    self.remember(hash, e.to_string());
                }
                Err(e)
            }
        }
    }

    /// Checks the signature, then admits.
    pub fn admit(&mut self, tx: SignedTx, state: &impl AccountView) -> Result<Hash, MempoolError> {
        let check = check_signatures(std::slice::from_ref(&tx), &self.chain_id).remove(0);
        self.admit_checked(tx, check, state)
    }

    /// Admits a transaction whose chain and signature were checked
    /// elsewhere ([`check_signatures`], off the driver task): a failed check
    /// is remembered as the transaction's refusal, a passed one admits it.
    pub fn admit_checked(
        &mut self,
        tx: SignedTx,
        check: Result<(), MempoolError>,
        state: &impl AccountView,
    ) -> Result<Hash, MempoolError> {
        match check {
            Ok(()) => self.admit_verified(tx, state),
            // Not the transaction's fault: it may come again.
            Err(MempoolError::Unchecked) => Err(MempoolError::Unchecked),
            Err(err) => {
                self.remember(tx.hash(), err.to_string());
                Err(err)
            }
        }
    }

    /// Everything but room in the pool: returns the transaction's encoded
    /// size and its sender's next nonce.
    fn check(
        &self,
        tx: &SignedTx,
        hash: Hash,
        state: &impl AccountView,
    ) -> Result<(usize, u64), MempoolError> {
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
        if let Some(queue) = self.by_sender.get(&sender) {
            if let Some(existing) = queue.txs.get(&tx.tx.nonce) {
                // One tx per (sender, nonce): the first one wins.
                return Err(MempoolError::Duplicate(*existing));
            }
            if queue.txs.len() >= SENDER_TXS_MAX {
                return Err(MempoolError::SenderFull {
                    sender,
                    pending: queue.txs.len(),
                    max: SENDER_TXS_MAX,
                });
            }
        }
        Ok((encode(tx).len(), next))
    }

    fn fits(&self, bytes: usize) -> bool {
        self.by_hash.len() < self.limits.max_txs
            && self.bytes + bytes as u64 <= self.limits.max_bytes
    }

    /// Room for a transaction of `bytes`. In a full pool, an executable
    /// newcomer (its nonce is the next one its sender needs) takes the place
    /// of transactions that wait behind a nonce gap, oldest gap first,
    /// other senders only, at most [`MAKE_ROOM_TXS_MAX`] of them. A
    /// newcomer that would itself wait is refused.
    fn make_room(&mut self, tx: &SignedTx, bytes: usize, next: u64) -> Result<(), MempoolError> {
        let full = |pool: &Mempool| MempoolError::Full {
            txs: pool.by_hash.len(),
            bytes: pool.bytes,
        };
        if self.fits(bytes) {
            return Ok(());
        }
        if bytes as u64 > self.limits.max_bytes {
            return Err(full(self));
        }
        let sender = tx.tx.sender;
        let first_missing = self
            .by_sender
            .get(&sender)
            .map_or(next, SenderQueue::first_missing);
        if tx.tx.nonce != first_missing {
            return Err(full(self));
        }
        for _ in 0..MAKE_ROOM_TXS_MAX {
            let Some(victim) = self.gapped.iter().map(|(_, s)| *s).find(|s| *s != sender) else {
                break;
            };
            self.evict_last(victim);
            if self.fits(bytes) {
                return Ok(());
            }
        }
        Err(full(self))
    }

    /// Evicts the highest nonce of a sender with a gap (it waits behind
    /// the gap, so it is never executable).
    fn evict_last(&mut self, sender: PublicKey) {
        let Some(queue) = self.by_sender.get(&sender) else {
            return;
        };
        let missing = queue.first_missing();
        let Some((_, &hash)) = queue.txs.last_key_value() else {
            return;
        };
        self.evict(
            &hash,
            format!(
                "evicted to make room in a full mempool: it waits behind nonce {missing}, which has not arrived"
            ),
        );
    }

    /// Tells the mempool the time, and evicts the transactions of senders
    /// whose nonce gap has lasted [`NONCE_GAP_EXPIRY`] (at most
    /// [`EXPIRE_TXS_MAX`] per call). Returns how many were evicted.
    pub fn expire(&mut self, now: Instant) -> usize {
        let first = *self.first_now.get_or_insert(now);
        // Instants are monotonic, but a caller's may come out of order.
        self.now = self.now.max(Seen::At(now));
        let mut evicted = 0;
        while evicted < EXPIRE_TXS_MAX {
            let Some(&(seen, sender)) = self.gapped.first() else {
                break;
            };
            let since = match seen {
                Seen::At(t) => t,
                Seen::BeforeFirstExpire => first,
            };
            let waited = now.saturating_duration_since(since);
            if waited < NONCE_GAP_EXPIRY {
                break;
            }
            let Some(queue) = self.by_sender.get(&sender) else {
                // Not reached: a sender leaves `gapped` with its queue.
                self.gapped.remove(&(seen, sender));
                continue;
            };
            let missing = queue.first_missing();
            let waiting: Vec<Hash> = queue
                .txs
                .range(missing..)
                .rev()
                .take(EXPIRE_TXS_MAX - evicted)
                .map(|(_, h)| *h)
                .collect();
            for hash in waiting {
                self.evict(
                    &hash,
                    format!(
                        "stuck behind a nonce gap for {} s: nonce {missing} never arrived",
                        waited.as_secs()
                    ),
                );
                evicted += 1;
            }
        }
        evicted
    }

    /// Keeps `gapped` in step with one sender's queue after it changed.
    fn refresh_gap(&mut self, sender: PublicKey) {
        let Some(queue) = self.by_sender.get_mut(&sender) else {
            return;
        };
        match (queue.has_gap(), queue.gap_since) {
            (true, None) => {
                queue.gap_since = Some(self.now);
                self.gapped.insert((self.now, sender));
            }
            (false, Some(since)) => {
                queue.gap_since = None;
                self.gapped.remove(&(since, sender));
            }
            _ => {}
        }
    }

    fn remove(&mut self, hash: &Hash) -> Option<SignedTx> {
        let entry = self.by_hash.remove(hash)?;
        self.bytes -= entry.bytes as u64;
        let sender = entry.tx.tx.sender;
        if let Some(queue) = self.by_sender.get_mut(&sender) {
            queue.txs.remove(&entry.tx.tx.nonce);
            if queue.txs.is_empty() {
                if let Some(since) = queue.gap_since {
                    self.gapped.remove(&(since, sender));
                }
                self.by_sender.remove(&sender);
            } else {
                self.refresh_gap(sender);
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
    /// Only executable transactions are offered: those behind a nonce gap
    /// would only take a place in the block they cannot use. The proposer
    /// still executes each one and evicts those that fail.
    pub fn candidates(&self, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut queues: Vec<_> = self
            .by_sender
            .values()
            .map(SenderQueue::executable)
            .collect();
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

    /// After a block: drops the committed transactions (by their hashes)
    /// and re-checks the rest against the new state (nonces used, senders
    /// revoked).
    pub fn update(&mut self, committed: &[Hash], state: &impl AccountView) {
        for hash in committed {
            self.remove(hash);
        }
        let senders: Vec<PublicKey> = self.by_sender.keys().copied().collect();
        for sender in senders {
            let account = state.account(&sender);
            let Some(queue) = self.by_sender.get_mut(&sender) else {
                continue;
            };
            if let Some(a) = &account {
                queue.next = a.nonce.saturating_add(1);
            }
            let hashes: Vec<(u64, Hash)> = queue.txs.iter().map(|(n, h)| (*n, *h)).collect();
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
            self.refresh_gap(sender);
        }
    }
}

/// The checks admission makes before the pool: each transaction's chain,
/// then its signature, all signatures in one batch. A transaction for
/// another chain would fail its signature too; "wrong chain" is the useful
/// answer, so it comes first. Pure: runs on any thread.
pub fn check_signatures(txs: &[SignedTx], chain_id: &str) -> Vec<Result<(), MempoolError>> {
    check_signatures_grouped(txs, chain_id, &[])
}

/// As [`check_signatures`], for transactions from several sources in
/// consecutive groups of `group_lens`: when a signature is bad, only its
/// own group's are checked one by one (see
/// [`tally_ledger::crypto::BatchVerifier::verify_groups`]).
pub fn check_signatures_grouped(
    txs: &[SignedTx],
    chain_id: &str,
    group_lens: &[usize],
) -> Vec<Result<(), MempoolError>> {
    let mut out: Vec<Result<(), MempoolError>> = txs
        .iter()
        .map(|tx| {
            if tx.tx.chain_id == chain_id {
                Ok(())
            } else {
                Err(MempoolError::Invalid(TxError::WrongChain {
                    expected: chain_id.to_string(),
                    found: tx.tx.chain_id.clone(),
                }))
            }
        })
        .collect();
    let same_chain: Vec<usize> = (0..txs.len()).filter(|&i| out[i].is_ok()).collect();
    let mut batch = tally_ledger::crypto::BatchVerifier::with_capacity(same_chain.len());
    for &i in &same_chain {
        let tx = &txs[i];
        batch.add(
            tx.tx.sender,
            tally_ledger::Domain::Tx,
            chain_id,
            &tx.signed_message(),
            tx.signature,
        );
    }
    // Each group's length among the transactions in the batch.
    let mut in_batch = Vec::with_capacity(group_lens.len());
    let mut start = 0usize;
    for &len in group_lens {
        let end = start.saturating_add(len).min(txs.len());
        in_batch.push(out[start..end].iter().filter(|r| r.is_ok()).count());
        start = end;
    }
    if let Err(failures) = batch.verify_groups(&in_batch) {
        for (position, e) in failures {
            out[same_chain[position]] = Err(MempoolError::Invalid(TxError::BadSignature(e)));
        }
    }
    out
}

#[cfg(test)]
mod tests;
