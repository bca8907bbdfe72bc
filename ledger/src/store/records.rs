//! What a validator keeps for its own safety and reports: the signer's
//! record, the body of the block it locks on, the height it has passed
//! after losing its record, and evidence of equivocation.

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::*;

/// Where an offence sits in the evidence column: height, round, step and
/// validator, so each offence has one record and pages run by height.
fn evidence_key(e: &Evidence) -> [u8; 17] {
    let v = &e.first.vote;
    let mut key = [0u8; 17];
    key[..8].copy_from_slice(&v.height.to_be_bytes());
    key[8..12].copy_from_slice(&v.round.to_be_bytes());
    key[12] = match v.kind {
        crate::types::VoteKind::Prevote => 0,
        crate::types::VoteKind::Precommit => 1,
    };
    key[13..].copy_from_slice(&e.validator_index().to_be_bytes());
    key
}

impl Store {
    /// The signer's persisted safety state (see the consensus signer).
    pub fn signer_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_meta(META_SIGNER)
    }

    /// Persists the signer's safety state with a synced write; returns only
    /// once it is durable.
    pub fn save_signer_state(&self, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_meta_synced(META_SIGNER, bytes, META_BYTES_MAX, "signer state")
    }

    /// Records an equivocation once per offence (validator, height, round,
    /// step): true if it was new. Not synced: evidence is a report, not a
    /// safety record, and a lost one is found again from the votes.
    pub fn record_evidence(&self, evidence: &Evidence) -> Result<bool, StoreError> {
        let key = evidence_key(evidence);
        let cf = self.cf(CF_EVIDENCE);
        if self.db.get_pinned_cf(cf, key)?.is_some() {
            return Ok(false);
        }
        self.db.put_cf(cf, key, encode(evidence))?;
        Ok(true)
    }

    /// Up to `limit` (at most [`EVIDENCE_PAGE_MAX`]) offences in
    /// (height, round, step, validator) order, starting at `cursor` (a
    /// height's big-endian bytes, or the cursor a previous page returned),
    /// and the cursor of the next page when there is one.
    pub fn evidence(
        &self,
        cursor: &[u8],
        limit: usize,
    ) -> Result<(Vec<Evidence>, Option<Vec<u8>>), StoreError> {
        if cursor.len() > 17 {
            return Err(StoreError::Rejected(format!(
                "an evidence cursor is at most 17 bytes, this one is {}",
                cursor.len()
            )));
        }
        let limit = limit.clamp(1, EVIDENCE_PAGE_MAX);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_EVIDENCE),
            IteratorMode::From(cursor, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if out.len() == limit {
                return Ok((out, Some(key.to_vec())));
            }
            let evidence = decode::<Evidence>(&value, EVIDENCE_BYTES_MAX, "evidence")
                .map_err(|e| StoreError::Corrupt(format!("evidence record: {e}")))?;
            out.push(evidence);
        }
        Ok((out, None))
    }

    /// The height up to which this validator committed blocks without
    /// signing at them (through block sync, or decided without it): with
    /// the signer's own record, what it has accounted for.
    pub fn signer_passed(&self) -> Result<Option<u64>, StoreError> {
        match self.get_meta(META_SIGNER_PASSED)? {
            None => Ok(None),
            Some(bytes) => decode::<u64>(&bytes, 8, "signer passed height")
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("signer passed height: {e}"))),
        }
    }

    /// Records [`Store::signer_passed`], synced.
    pub fn save_signer_passed(&self, height: u64) -> Result<(), StoreError> {
        self.put_meta_synced(
            META_SIGNER_PASSED,
            &encode(&height),
            8,
            "signer passed height",
        )
    }

    /// Writes one metadata entry of at most `max` bytes, synced.
    fn put_meta_synced(
        &self,
        key: &[u8],
        bytes: &[u8],
        max: usize,
        what: &str,
    ) -> Result<(), StoreError> {
        within(bytes, max, what)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key, bytes);
        self.write_synced(batch)
    }

    /// The body of the block this validator last locked on (see
    /// [`Store::save_locked_block`]), if any.
    pub fn locked_block(&self) -> Result<Option<Block>, StoreError> {
        match self.get_meta(META_LOCKED_BLOCK)? {
            None => Ok(None),
            Some(bytes) => Block::decode(&bytes, BLOCK_BYTES_CAP)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("locked block: {e}"))),
        }
    }

    /// Keeps the body of a block this validator is about to lock on (before
    /// it signs the precommit), synced: after a restart it still holds the
    /// block its lock names and can propose it again. Without it, validators
    /// locked on a block nobody holds any more could never move on.
    pub fn save_locked_block(&self, block: &Block) -> Result<(), StoreError> {
        self.put_meta_synced(
            META_LOCKED_BLOCK,
            &encode(block),
            BLOCK_BYTES_CAP,
            "locked block",
        )
    }

    /// Persists the signer's safety state and, when given, the body of the
    /// block it is locking on, in one synced write: the precommit that
    /// takes a lock is released only once both are durable, at the cost of
    /// one fsync instead of two.
    pub fn save_signer_state_and_locked_block(
        &self,
        bytes: &[u8],
        locked: Option<&Block>,
    ) -> Result<(), StoreError> {
        within(bytes, META_BYTES_MAX, "signer state")?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), META_SIGNER, bytes);
        if let Some(block) = locked {
            let body = encode(block);
            within(&body, BLOCK_BYTES_CAP, "locked block")?;
            batch.put_cf(self.cf(CF_META), META_LOCKED_BLOCK, body);
        }
        self.write_synced(batch)
    }
}

impl crate::signer_state::SignerStateStore for Store {
    fn load_signer_state(&self) -> Result<Option<Vec<u8>>, String> {
        self.signer_state().map_err(|e| e.to_string())
    }

    fn save_signer_state(&self, bytes: &[u8]) -> Result<(), String> {
        Store::save_signer_state(self, bytes).map_err(|e| e.to_string())
    }
}
