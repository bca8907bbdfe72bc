//! Block sync, as the driver runs it: requests planned by [`Sync`], each
//! answer's signatures checked on a blocking thread with the block rules,
//! then runs of blocks linked, re-executed over an in-memory overlay and
//! committed in one synced write; consensus restarts on the new tip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tracing::{debug, info, warn};

use tally_ledger::state::{Overlay, StateUpdate};
use tally_ledger::types::{Block, CommitCertificate};
use tally_ledger::verify::{check_certificate_matches, ContentError, Parent, Placement};

use super::{Driver, DriverError};
use crate::network::NetCommand;
use crate::node_core::should_sync;
use crate::sync::Penalty;

/// How often sync progress is logged while catching up.
const SYNC_LOG_EVERY: Duration = Duration::from_secs(2);

/// Blocks of one sync answer after their signatures were checked (off the
/// driver task): the valid prefix, and why the next one failed, if one did.
#[derive(Debug)]
pub struct CheckedBlocks {
    pub(super) peer: PeerId,
    pub(super) from: u64,
    pub(super) valid: Vec<(Block, CommitCertificate)>,
    pub(super) invalid: Option<(u64, String)>,
}

/// Sync throughput, for logs and status.
#[derive(Debug)]
pub(super) struct SyncMeter {
    pub(super) since: Instant,
    pub(super) blocks: u64,
    pub(super) txs: u64,
    pub(super) rate: f64,
    pub(super) logged: Instant,
}

impl Driver {
    pub(super) fn penalised(&mut self, peer: PeerId, penalty: Penalty, what: &str) {
        self.metrics
            .sync_rejected
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: penalty.reason().to_string(),
            })
            .inc();
        let score = self.sync.score(&peer);
        warn!(%peer, reason = penalty.reason(), score, "peer scored down: {what}");
    }

    /// Sends the block requests sync wants now: when more than one block
    /// behind, or one behind with no commit for a while (one block behind is
    /// normal for a moment in consensus: the block arrives by consensus).
    pub(super) fn request_blocks(&mut self) {
        let tip = self.store.height();
        let now = Instant::now();
        let target = self.sync.target(now);
        if !should_sync(tip, target, self.core.since_commit_ms(self.now())) {
            return;
        }
        for (peer, from, to) in self.sync.plan(tip, now) {
            debug!(%peer, from, to, "requesting blocks");
            if self
                .net
                .try_send(NetCommand::RequestBlocks { peer, from, to })
                .is_err()
            {
                self.sync.on_failed(peer, from, Instant::now());
            }
        }
    }

    /// Metrics every tick; a progress line every few seconds while catching
    /// up, and one when it starts and ends.
    pub(super) fn report_sync(&mut self) {
        let now = Instant::now();
        let tip = self.store.height();
        let target = self.sync.target(now);
        let catching_up = self.sync.catching_up(tip, now);
        self.metrics.catching_up.set(i64::from(catching_up));
        self.metrics.sync_target_height.set(target as i64);
        for v in self.sync.peers(now) {
            self.metrics
                .peer_score
                .get_or_create(&crate::metrics::PeerLabel {
                    peer: v.peer.to_string(),
                })
                .set(i64::from(v.score));
        }
        let elapsed = self.meter.since.elapsed();
        if elapsed >= SYNC_LOG_EVERY {
            self.meter.rate = self.meter.blocks as f64 / elapsed.as_secs_f64();
            let tx_rate = self.meter.txs as f64 / elapsed.as_secs_f64();
            if catching_up && self.meter.logged.elapsed() >= SYNC_LOG_EVERY {
                info!(
                    height = tip,
                    target,
                    behind = target.saturating_sub(tip),
                    blocks_per_s = format!("{:.0}", self.meter.rate),
                    txs_per_s = format!("{tx_rate:.0}"),
                    "catching up"
                );
                self.meter.logged = now;
            }
            self.meter.since = now;
            self.meter.blocks = 0;
            self.meter.txs = 0;
        }
        if catching_up != self.was_catching_up {
            if catching_up {
                info!(
                    height = tip,
                    target, "behind the network: syncing blocks from peers"
                );
            } else {
                info!(height = tip, "caught up: following consensus");
            }
            self.was_catching_up = catching_up;
        }
    }

    /// An answer to a block request: hand it to a blocking thread for the
    /// signature checks (several answers are checked in parallel).
    pub(super) fn on_blocks(
        &mut self,
        peer: PeerId,
        from: u64,
        to: u64,
        blocks: Vec<(Block, CommitCertificate)>,
    ) {
        match self.sync.on_answer(peer, from, to, &blocks, Instant::now()) {
            Ok(true) => {}
            Ok(false) => return,
            Err(p) => {
                self.penalised(peer, p, "bad answer to a block request");
                self.request_blocks();
                return;
            }
        }
        let rules = self.core.rules().clone();
        let out = self.checked_tx.clone();
        tokio::task::spawn_blocking(move || {
            let mut valid = Vec::with_capacity(blocks.len());
            let mut invalid = None;
            for (block, cert) in blocks {
                // The certificates wait for the sets of their heights,
                // which the state before each block names (execute_run);
                // a certificate for another block is refused before the
                // transactions cost anything.
                let checked = check_certificate_matches(&block, &cert)
                    .map_err(ContentError::Mismatch)
                    .and_then(|()| rules.check_transactions(&block));
                match checked {
                    Ok(_) => valid.push((block, cert)),
                    Err(e) => {
                        invalid = Some((block.height(), e.to_string()));
                        break;
                    }
                }
            }
            let _ = out.blocking_send(CheckedBlocks {
                peer,
                from,
                valid,
                invalid,
            });
        });
    }

    pub(super) fn on_checked(&mut self, checked: CheckedBlocks) -> Result<(), DriverError> {
        let CheckedBlocks {
            peer,
            from,
            valid,
            invalid,
        } = checked;
        if let Some((height, reason)) = &invalid {
            warn!(%peer, height, %reason, "peer served an invalid block");
        }
        self.sync
            .on_checked(peer, from, valid, invalid.is_some(), Instant::now());
        if invalid.is_some() {
            self.penalised(peer, Penalty::InvalidBlock, "it served an invalid block");
        }
        self.commit_synced()?;
        self.request_blocks();
        Ok(())
    }

    /// Executes the verified blocks that extend the tip, in order, and
    /// commits each run in one atomic write; restarts consensus at the new
    /// height.
    pub(super) fn commit_synced(&mut self) -> Result<(), DriverError> {
        // Synced blocks go on top of the tip on disk.
        self.settle()?;
        let before = self.store.height();
        loop {
            let run = self.sync.take_ready(self.store.height());
            if run.is_empty() {
                break;
            }
            let (good, bad) = self.execute_run(&run);
            if !good.is_empty() {
                let items: Vec<(&Block, &CommitCertificate, &StateUpdate)> = good
                    .iter()
                    .zip(&run)
                    .map(|(u, r)| (&r.block, &r.cert, u))
                    .collect();
                let tip = self.store.commit_blocks(&items)?;
                let blocks: Vec<(&Block, &StateUpdate)> =
                    items.iter().map(|(b, _, u)| (*b, *u)).collect();
                self.meter.blocks += blocks.len() as u64;
                self.meter.txs += blocks.iter().map(|(b, _)| b.txs.len() as u64).sum::<u64>();
                self.metrics.sync_blocks.inc_by(blocks.len() as u64);
                debug!(
                    from = blocks[0].0.height(),
                    to = tip.height,
                    "committed synced blocks"
                );
                // The run is on disk: one re-check of the pool at its end.
                let tx_hashes: Vec<tally_ledger::Hash> = blocks
                    .iter()
                    .flat_map(|(b, u)| u.tx_hashes_of(b).into_owned())
                    .collect();
                self.observe_block_interval();
                self.forget_committed(&tx_hashes, None, tip.height);
                self.after_commit(&blocks, tip)?;
            }
            if let Some((index, reason)) = bad {
                let r = &run[index];
                warn!(peer = %r.peer, height = r.block.height(), %reason, "peer served an invalid block");
                self.sync.on_invalid_block(r.peer, Instant::now());
                self.penalised(r.peer, Penalty::InvalidBlock, "it served an invalid block");
                break;
            }
        }
        if self.store.height() > before {
            if !self.sync.catching_up(self.store.height(), Instant::now()) {
                info!(
                    from = before + 1,
                    to = self.store.height(),
                    "committed blocks from peers"
                );
            }
            self.restart()?;
        }
        Ok(())
    }

    /// Links and re-executes a run of blocks on top of the tip, over an
    /// in-memory overlay of the state: the updates of the valid prefix, and
    /// the position and reason of the first invalid block.
    pub(super) fn execute_run(
        &self,
        run: &[crate::sync::Ready],
    ) -> (Vec<StateUpdate>, Option<(usize, String)>) {
        let tip = self.store.height();
        let mut overlay = Overlay::new(Some((&*self.store, tip)));
        let mut parent = self.store.parent_of_next();
        let mut rules = self.core.rules().clone();
        let mut updates = Vec::with_capacity(run.len());
        for (index, r) in run.iter().enumerate() {
            let block = &r.block;
            let placement = Placement {
                parent,
                round: r.cert.round,
                now_ms: None,
            };
            let size = tally_ledger::encoding::encoded_len(block);
            let checked = rules
                .at_height(&overlay, parent.height.saturating_add(1))
                .map_err(|e| e.to_string())
                .and_then(|at| {
                    rules = Arc::new(at);
                    rules
                        .check_block(block, size, &placement)
                        .map_err(|e| e.to_string())
                })
                .and_then(|()| {
                    rules
                        .check_certificates(block, Some(&r.cert))
                        .map_err(|e| e.to_string())
                })
                .and_then(|_| {
                    rules
                        .check_state(block, &overlay)
                        .map_err(|e| e.to_string())
                });
            match checked {
                Ok(update) => {
                    overlay.top.apply(&update.batch.node_batch);
                    parent = Parent::of(block);
                    updates.push(update);
                }
                Err(reason) => return (updates, Some((index, reason))),
            }
        }
        (updates, None)
    }
}
