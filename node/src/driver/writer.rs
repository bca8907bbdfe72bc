//! The commit writer: a thread of its own that makes decided blocks durable,
//! so that the consensus driver goes on to the next height while the
//! synced write of the last one runs.
//!
//! What stays true (ADR 11):
//!
//! - one write at a time, in height order: the driver waits for a write
//!   before it hands over the next block ([`Driver::settle`]);
//! - the core builds and checks the next block over the decided block's
//!   state in memory ([`PendingState`]), which is exactly what the write
//!   puts on disk;
//! - nothing a client can see as committed (the commit notification, the
//!   tip RPC reads, the status peers read) comes before the write is
//!   durable;
//! - a crash during the write loses only a decided block that every other
//!   validator holds with its certificate: the node syncs it back. Its
//!   signer's records are written apart and first, so it never signs
//!   against them.
//!
//! [`Driver::settle`]: super::Driver
//! [`PendingState`]: tally_ledger::state::PendingState

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;

use tokio::sync::mpsc;

use tally_ledger::state::StateUpdate;
use tally_ledger::store::{Store, StoreError, Tip};
use tally_ledger::types::{Block, CommitCertificate, SignedTx};
use tally_ledger::Hash;

/// A block handed to the writer and not yet reported durable.
#[derive(Debug)]
pub(super) struct Writing {
    pub(super) block: Arc<Block>,
    pub(super) certificate: Arc<CommitCertificate>,
    pub(super) update: Arc<StateUpdate>,
    /// The tip once the write is done.
    pub(super) tip: Tip,
    /// The block's transactions by hash (their index in the block).
    txs: HashMap<Hash, usize>,
    result: std_mpsc::Receiver<Result<Tip, StoreError>>,
}

impl Writing {
    /// The transaction `hash` if this block holds it.
    pub(super) fn tx(&self, hash: &Hash) -> Option<&SignedTx> {
        self.txs.get(hash).and_then(|&i| self.block.txs.get(i))
    }

    /// Waits for the write to end (at once when the writer has reported
    /// it).
    pub(super) fn wait(&self) -> Result<Tip, StoreError> {
        self.result.recv().unwrap_or_else(|_| {
            Err(StoreError::Rejected(
                "the commit writer stopped before it wrote the block".into(),
            ))
        })
    }
}

struct Job {
    block: Arc<Block>,
    certificate: Arc<CommitCertificate>,
    update: Arc<StateUpdate>,
    result: std_mpsc::SyncSender<Result<Tip, StoreError>>,
}

/// The handle of the writer thread; dropping it ends the thread once the
/// write in hand is done, and waits for that, so the store is closed when
/// the node says it is.
#[derive(Debug)]
pub(super) struct CommitWriter {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CommitWriter {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl CommitWriter {
    /// Starts the thread. After each write it wakes the driver through
    /// `written` with the height it wrote.
    pub(super) fn start(
        store: Arc<Store>,
        written: mpsc::UnboundedSender<u64>,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("tally-commit".into())
            .spawn(move || {
                for job in queue {
                    let height = job.block.height();
                    let result = store.commit_block(&job.block, &job.certificate, &job.update);
                    // The driver may have gone (shutdown): nothing to tell.
                    let _ = job.result.send(result);
                    let _ = written.send(height);
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands a decided block to the writer. The caller waits for the write
    /// before it hands over another ([`Writing::wait`]).
    pub(super) fn write(
        &self,
        block: Arc<Block>,
        certificate: Arc<CommitCertificate>,
        update: Arc<StateUpdate>,
    ) -> Writing {
        let (result_tx, result) = std_mpsc::sync_channel(1);
        let tip = Tip {
            height: block.height(),
            block_hash: block.hash(),
            state_root: update.root,
            time_ms: block.header.time_ms,
        };
        let job = Job {
            block: block.clone(),
            certificate: certificate.clone(),
            update: update.clone(),
            result: result_tx,
        };
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job).map_err(|std_mpsc::SendError(job)| job),
            None => Err(job),
        };
        if let Err(job) = sent {
            // The thread is gone: report it through the result.
            let _ = job.result.send(Err(StoreError::Rejected(
                "the commit writer thread is not running".into(),
            )));
        }
        let txs = update
            .tx_hashes_of(&block)
            .iter()
            .enumerate()
            .map(|(i, h)| (*h, i))
            .collect();
        Writing {
            block,
            certificate,
            update,
            tip,
            txs,
            result,
        }
    }
}
