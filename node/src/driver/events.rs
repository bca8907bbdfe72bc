//! What arrives at the driver from outside the core: network events (gossip,
//! peers' status, block sync answers) and requests from RPC, tests and the
//! devnet.

use super::*;

impl Driver {
    /// The transaction `hash` if it is in the block being written.
    fn writing_tx(&self, hash: &Hash) -> Option<SignedTx> {
        self.writing.as_ref()?.tx(hash).cloned()
    }

    /// True when `tx` is in the block being written: a copy that arrives
    /// meanwhile is a duplicate, not a transaction to refuse (its nonce is
    /// used by itself), so no refusal is remembered against its hash.
    fn being_written(&self, tx: &SignedTx) -> Option<Hash> {
        let writing = self.writing.as_ref()?;
        let hash = tx.hash();
        writing.tx(&hash).map(|_| hash)
    }

    pub(super) fn on_net_event(&mut self, event: NetEvent) -> Result<(), DriverError> {
        match event {
            NetEvent::Consensus(ConsensusMsg::Vote(v)) => self.feed(Event::Vote(v))?,
            NetEvent::Consensus(ConsensusMsg::Proposal { proposal, block }) => {
                self.feed(Event::Proposal { proposal, block })?
            }
            NetEvent::Txs(txs) => {
                let view = tip_view(&self.store, self.writing.as_ref());
                for tx in txs {
                    if self.being_written(&tx).is_some() {
                        continue;
                    }
                    if let Err(e) = self.mempool.admit_gossiped(tx, &view) {
                        if !matches!(e, MempoolError::Duplicate(_)) {
                            self.metrics.rejected(e.kind());
                        }
                    }
                }
                self.after_txs_arrived()?;
            }
            NetEvent::Status { peer, status, seq } => {
                if let Some(p) = self
                    .sync
                    .on_status(peer, status.height, seq, Instant::now())
                {
                    self.penalised(peer, p, "it reported a lower height than before");
                }
                self.hear(Some((peer, status.height)))?;
                if status.height > self.store.height() {
                    self.request_blocks();
                }
            }
            NetEvent::Blocks {
                peer,
                from,
                to,
                blocks,
            } => self.on_blocks(peer, from, to, blocks),
            NetEvent::BlocksFailed {
                peer,
                from,
                to,
                reason,
            } => {
                debug!(%peer, from, to, %reason, "block request failed");
                self.sync.on_failed(peer, from, Instant::now());
                self.request_blocks();
            }
            NetEvent::Listening(_) => {}
        }
        Ok(())
    }

    fn after_txs_arrived(&mut self) -> Result<(), DriverError> {
        self.metrics.mempool_txs.set(self.mempool.len() as i64);
        self.metrics.mempool_bytes.set(self.mempool.bytes() as i64);
        self.feed(Event::TxsArrived)
    }

    pub(super) fn on_request(&mut self, request: NodeRequest) -> Result<(), DriverError> {
        match request {
            NodeRequest::SubmitTxs { txs, reply } => {
                let view = tip_view(&self.store, self.writing.as_ref());
                let mut results = Vec::with_capacity(txs.len());
                for (tx, check) in txs {
                    if let Some(hash) = self.being_written(&tx) {
                        results.push(Err(MempoolError::Duplicate(hash)));
                        continue;
                    }
                    let result = self.mempool.admit_checked(tx.clone(), check, &view);
                    match &result {
                        Ok(_) => self.outgoing_txs.push(tx),
                        Err(e) => self.metrics.rejected(e.kind()),
                    }
                    results.push(result);
                }
                let _ = reply.send(results);
                self.after_txs_arrived()?;
            }
            NodeRequest::TxStatus { hash, reply } => {
                let answer = match self.writing_tx(&hash) {
                    // In the block being written: pending until the write
                    // is durable, when the store has it.
                    Some(tx) => (Some(PoolStatus::Pending), Some(tx)),
                    None => (self.mempool.status(&hash), self.mempool.get(&hash).cloned()),
                };
                let _ = reply.send(answer);
            }
            NodeRequest::Status { reply } => {
                let tip = self.store.tip();
                let now = Instant::now();
                let height = tip.map_or(0, |t| t.height);
                let (pending, requests) = self.sync.pending();
                let _ = reply.send(NodeStatus {
                    height,
                    decided_height: self.writing.as_ref().map_or(height, |w| w.tip.height),
                    block_hash: tip.map(|t| t.block_hash),
                    round: self.core.round(),
                    step: self.core.machine().step(),
                    peers_max_height: self.sync.target(now),
                    catching_up: self.sync.catching_up(height, now),
                    sync_blocks_per_second: self.meter.rate,
                    sync_pending_blocks: pending,
                    sync_requests: requests,
                    peers: self.sync.peers(now),
                    mempool_txs: self.mempool.len(),
                    mempool_bytes: self.mempool.bytes(),
                    signing_paused: self.core.pause().cloned(),
                    signer_fault: self.core.signer_fault().map(str::to_string),
                });
            }
            NodeRequest::Evidence { reply } => {
                let (page, _) = self.store.evidence(&[], EVIDENCE_PAGE_MAX)?;
                let _ = reply.send(page);
            }
        }
        Ok(())
    }
}
