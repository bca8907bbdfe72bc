//! What the driver lends to others: the store and mempool as the core and
//! the mempool read them, and the signer's store.

use std::sync::{Arc, Mutex};

use tracing::warn;

use tally_ledger::state::{read_account, AccountState, PendingState};
use tally_ledger::store::Store;
use tally_ledger::types::{Block, CommitCertificate, SignedTx};
use tally_ledger::verify::Parent;
use tally_ledger::{Hash, PublicKey};

use crate::mempool::{AccountView, Mempool};
use crate::node_core::CoreEnv;

use super::writer::Writing;

/// Accounts as of a version of the state the driver sees.
pub(super) struct StoreView<'a> {
    pub(super) state: PendingState<'a, Store>,
    pub(super) version: u64,
}

/// The state at the newest decided block: the store, with the block being
/// written (if any) over it.
pub(super) fn tip_state<'a>(
    store: &'a Store,
    writing: Option<&'a Writing>,
) -> PendingState<'a, Store> {
    PendingState::new(store, writing.map(|w| &*w.update))
}

/// Accounts at the newest decided block (see [`tip_state`]).
pub(super) fn tip_view<'a>(store: &'a Store, writing: Option<&'a Writing>) -> StoreView<'a> {
    StoreView {
        state: tip_state(store, writing),
        version: writing.map_or_else(|| store.height(), |w| w.tip.height),
    }
}

impl AccountView for StoreView<'_> {
    fn account(&self, key: &PublicKey) -> Option<AccountState> {
        match read_account(&self.state, key, self.version) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "state read failed");
                None
            }
        }
    }
}

/// What the core reads: the state at the newest decided block (the store,
/// with the block being written over it), and the mempool.
pub(super) struct NodeEnv<'a> {
    pub(super) store: &'a Store,
    pub(super) mempool: &'a Mempool,
    pub(super) state: PendingState<'a, Store>,
    pub(super) writing: Option<&'a Writing>,
}

impl<'a> NodeEnv<'a> {
    pub(super) fn new(
        store: &'a Store,
        mempool: &'a Mempool,
        writing: Option<&'a Writing>,
    ) -> Self {
        NodeEnv {
            store,
            mempool,
            state: tip_state(store, writing),
            writing,
        }
    }
}

impl<'a> CoreEnv for NodeEnv<'a> {
    type State = PendingState<'a, Store>;

    fn state(&self) -> &PendingState<'a, Store> {
        &self.state
    }

    fn tip(&self) -> Parent {
        match self.writing {
            Some(w) => Parent {
                height: w.tip.height,
                hash: w.tip.block_hash,
                time_ms: w.tip.time_ms,
            },
            None => self.store.parent_of_next(),
        }
    }

    fn last_commit(&self) -> Option<CommitCertificate> {
        if let Some(w) = self.writing {
            return Some((*w.certificate).clone());
        }
        let tip = self.store.tip()?;
        match self.store.certificate(tip.height) {
            Ok(cert) => cert,
            Err(e) => {
                warn!(error = %e, height = tip.height, "the tip's certificate cannot be read");
                None
            }
        }
    }

    fn proposal_txs(&self, max_txs: usize, max_bytes: usize) -> Vec<SignedTx> {
        self.mempool.candidates(max_txs, max_bytes)
    }

    fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    fn tx_verified(&self, tx_hash: &Hash) -> bool {
        self.mempool.contains(tx_hash)
    }
}

/// Where the signer keeps its safety state: the store, with the body of a
/// block about to be locked on riding in the same synced write as the
/// precommit's record (see [`Store::save_signer_state_and_locked_block`]).
#[derive(Debug, Clone)]
pub struct SignerRecords {
    pub(super) store: Arc<Store>,
    /// Set just before the precommit that takes a lock is signed; written
    /// (and taken) with the signer's next record.
    pub(super) locking: Arc<Mutex<Option<Block>>>,
}

impl tally_ledger::signer_state::SignerStateStore for SignerRecords {
    fn load_signer_state(&self) -> Result<Option<Vec<u8>>, String> {
        self.store.signer_state().map_err(|e| e.to_string())
    }

    fn save_signer_state(&self, bytes: &[u8]) -> Result<(), String> {
        let locking = self.locking.lock().map_err(|e| e.to_string())?.take();
        self.store
            .save_signer_state_and_locked_block(bytes, locking.as_ref())
            .map_err(|e| e.to_string())
    }
}
