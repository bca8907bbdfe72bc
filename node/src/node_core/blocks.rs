//! The core's block work: building a proposal, judging a proposed block
//! with the one validity rule, and committing a decided one.

use tally_ledger::encoding::encoded_len;
use tally_ledger::execution::{ApplyError, BlockExecutor, TxError};
use tally_ledger::hash::merkle_root;
use tally_ledger::state::StateUpdate;
use tally_ledger::types::{
    last_commit_hash, Block, CommitCertificate, Header, BLOCK_OVERHEAD_BYTES_MAX,
};
use tally_ledger::verify::{next_block_time, InvalidBlock, Placement};
use tally_ledger::Hash;
use tracing::debug;

use tally_consensus::{Input, Output};

use super::{CoreEnv, CoreError, Effect, NodeCore, Notice, Now, Timer, Update};
use crate::candidates::Offer;

impl NodeCore {
    /// The block rule on a proposed block at `placement`, over the state
    /// after the tip; signatures this node already verified are skipped.
    fn check_candidate<E: CoreEnv>(
        &self,
        block: &Block,
        placement: &Placement,
        env: &E,
    ) -> Result<StateUpdate, InvalidBlock> {
        let size = encoded_len(block);
        self.rules
            .check_proposed_except(block, size, placement, env.state(), |tx_hash| {
                env.tx_verified(tx_hash)
            })
    }

    /// The proposer may build its block: builds it now, or waits (a
    /// [`Timer::BuildBlock`]) for transactions when none are pending (up to
    /// the empty-block interval since the last commit) or for a fuller
    /// block when fewer than the fill minimum are (up to the fill wait).
    pub(super) fn request_build<E: CoreEnv>(
        &mut self,
        height: u64,
        round: u32,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<Output>, CoreError> {
        let pending = env.mempool_len();
        let wait_ms = if pending == 0 {
            self.fill_deadline_ms = None;
            self.empty_block_interval_ms
                .saturating_sub(self.since_commit_ms(now))
        } else if pending >= self.fill.min_txs || round > 0 {
            // Later rounds propose at once: peers' propose timeouts there
            // leave no room for a wait.
            0
        } else {
            // Never past the empty-block interval after the last commit:
            // peers' round-0 propose timeouts include that interval, not
            // more.
            let latest = self
                .last_commit_ms
                .saturating_add(self.empty_block_interval_ms);
            let deadline = *self
                .fill_deadline_ms
                .get_or_insert(now.mono_ms.saturating_add(self.fill.wait_ms).min(latest));
            deadline.saturating_sub(now.mono_ms)
        };
        if wait_ms == 0 {
            return self.build_block(height, round, now, env, fx);
        }
        self.wait_to_build(height, round, now, wait_ms, fx);
        Ok(Vec::new())
    }

    /// Waits `wait_ms` before trying to build again, with one timer: a new
    /// one only if it fires before the one already set.
    fn wait_to_build(
        &mut self,
        height: u64,
        round: u32,
        now: Now,
        wait_ms: u64,
        fx: &mut Vec<Effect>,
    ) {
        self.waiting_build = Some((height, round));
        let at = now.mono_ms.saturating_add(wait_ms);
        if self.build_timer_at.is_none_or(|t| at < t) {
            self.build_timer_at = Some(at);
            fx.push(Effect::SetTimer {
                after_ms: wait_ms,
                timer: Timer::BuildBlock { height, round },
            });
        }
    }

    /// Forgets any wait to build: a new height or a restart.
    pub(super) fn stop_waiting_to_build(&mut self) {
        self.waiting_build = None;
        self.fill_deadline_ms = None;
        self.build_timer_at = None;
    }

    /// Builds the block to propose from the mempool: transactions are
    /// executed in order and those that fail are evicted with their reason
    /// (a later nonce waits: the ones before it may still be on their way).
    pub(super) fn build_block<E: CoreEnv>(
        &mut self,
        height: u64,
        round: u32,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<Output>, CoreError> {
        self.stop_waiting_to_build();
        let parent = env.tip();
        let (Some(me), true) = (self.me(), height == parent.height.saturating_add(1)) else {
            return Ok(Vec::new());
        };
        let rules = self.rules.clone();
        let params = &rules.params;
        let txs = env.proposal_txs(
            params.block_txs_max as usize,
            // Room for everything but transactions (genesis guarantees it
            // leaves at least one largest transaction).
            (params.block_bytes_max as usize).saturating_sub(BLOCK_OVERHEAD_BYTES_MAX),
        );
        let mut exec =
            BlockExecutor::new(env.state(), Some(parent.height), &rules.chain_id, params)?;
        let mut included = Vec::with_capacity(txs.len());
        let mut tx_hashes = Vec::with_capacity(txs.len());
        let mut evicted = Vec::new();
        for tx in txs {
            match exec.apply(&tx) {
                Ok(()) => {
                    tx_hashes.push(tx.hash());
                    included.push(tx);
                }
                Err(ApplyError::Tx(TxError::BadNonce { expected, found })) if found > expected => {}
                Err(e) => evicted.push((tx.hash(), e.to_string())),
            }
        }
        if !evicted.is_empty() {
            fx.push(Effect::EvictTxs(evicted));
        }
        // Nothing includable yet (the pool holds only transactions behind a
        // nonce gap): an empty block waits for the empty-block interval like
        // any other, or a lone validator would commit empty blocks without
        // end.
        let waited = self.since_commit_ms(now);
        if included.is_empty() && waited < self.empty_block_interval_ms {
            self.wait_to_build(
                height,
                round,
                now,
                self.empty_block_interval_ms - waited,
                fx,
            );
            return Ok(Vec::new());
        }
        let mut update = exec.finish(height)?;
        let Some(time_ms) = next_block_time(parent.time_ms, now.wall_ms) else {
            fx.push(Effect::Notice(Notice::CannotPropose {
                height,
                round,
                reason: format!(
                    "the parent's time {} ms leaves no valid time for a child",
                    parent.time_ms
                ),
            }));
            return Ok(Vec::new());
        };
        let Some(proposer) = rules.set.get(me).map(|v| v.public_key) else {
            return Ok(Vec::new());
        };
        let last_commit = env.last_commit();
        let block = Block {
            header: Header {
                chain_id: rules.chain_id.clone(),
                height,
                time_ms,
                prev_hash: parent.hash,
                tx_root: merkle_root(&tx_hashes),
                state_root: update.root,
                validators_hash: rules.validators_hash(),
                next_validators_hash: rules.next_validators_hash(),
                proposer,
                last_commit_hash: last_commit_hash(last_commit.as_ref()),
            },
            txs: included,
            last_commit,
        };
        update.tx_hashes = tx_hashes;
        let block_hash = block.hash();
        debug!(height, round, txs = block.txs.len(), "built block");
        if let Offer::Refused(reason) = self.candidates.insert_own(round, block, update) {
            fx.push(Effect::Notice(Notice::CannotPropose {
                height,
                round,
                reason: reason.to_string(),
            }));
            return Ok(Vec::new());
        }
        Ok(self.machine.handle(Input::BlockToPropose {
            height,
            round,
            block_hash,
        }))
    }

    /// Validates a block proposed in `round`: `Some(verdict)`, or `None`
    /// while the block is not here yet (or its parent is not committed).
    /// The same rules sync and the audit apply ([`ChainRules`]), plus the
    /// block time against this validator's clock.
    pub(super) fn validate<E: CoreEnv>(
        &mut self,
        height: u64,
        round: u32,
        block_hash: Hash,
        now: Now,
        env: &E,
        fx: &mut Vec<Effect>,
    ) -> Option<bool> {
        let parent = env.tip();
        if height != parent.height.saturating_add(1) || self.committing.is_some() {
            return None;
        }
        let candidate = self.candidates.get(&block_hash)?;
        if candidate.update.is_some() {
            return Some(true);
        }
        let placement = Placement {
            parent,
            round,
            now_ms: Some(now.wall_ms),
        };
        match self.check_candidate(&candidate.block, &placement, env) {
            Ok(update) => {
                if let Some(c) = self.candidates.get_mut(&block_hash) {
                    c.update = Some(update);
                }
                Some(true)
            }
            Err(e) => {
                fx.push(Effect::Notice(Notice::InvalidBlock {
                    height,
                    round,
                    block_hash,
                    reason: e.to_string(),
                }));
                Some(false)
            }
        }
    }

    /// Consensus decided: commit the block if this node holds it and it
    /// passes every rule (a quorum decided it, so not against this node's
    /// clock); otherwise block sync brings it.
    pub(super) fn decided<E: CoreEnv>(
        &mut self,
        height: u64,
        round: u32,
        block_hash: Hash,
        certificate: CommitCertificate,
        env: &E,
        fx: &mut Vec<Effect>,
    ) {
        let parent = env.tip();
        if height != parent.height.saturating_add(1) {
            return; // committed through sync already
        }
        let Some(candidate) = self.candidates.take(&block_hash) else {
            fx.push(Effect::Notice(Notice::DecidedUnknown {
                height,
                block_hash,
                reason: "this node does not hold the block".into(),
            }));
            return;
        };
        let update = match candidate.update {
            Some(u) => u,
            None => {
                let placement = Placement {
                    parent,
                    round,
                    now_ms: None,
                };
                match self.check_candidate(&candidate.block, &placement, env) {
                    Ok(u) => u,
                    Err(e) => {
                        fx.push(Effect::Notice(Notice::DecidedUnknown {
                            height,
                            block_hash,
                            reason: format!("the block fails this node's checks: {e}"),
                        }));
                        return;
                    }
                }
            }
        };
        self.committing = Some(height);
        fx.push(Effect::Commit {
            block: Box::new(candidate.block),
            certificate,
            update: Update(Box::new(update)),
        });
    }
}
