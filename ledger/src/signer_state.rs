//! Where a validator's signer persists its safety state (the last message it
//! signed). The RocksDB store implements [`SignerStateStore`] with synced
//! writes; [`MemorySignerState`] serves tests and simulations, where a
//! "restart" keeps it while losing everything else.

use std::sync::{Arc, Mutex};

/// Durable storage of the signer's state. `save` returns only once the bytes
/// would survive a crash.
pub trait SignerStateStore {
    fn load_signer_state(&self) -> Result<Option<Vec<u8>>, String>;
    fn save_signer_state(&self, bytes: &[u8]) -> Result<(), String>;
}

/// Signer state kept in memory, shared by clones (one per "restart").
#[derive(Debug, Clone, Default)]
pub struct MemorySignerState {
    inner: Arc<Mutex<Option<Vec<u8>>>>,
}

impl MemorySignerState {
    pub fn new() -> Self {
        Self::default()
    }
}

impl SignerStateStore for MemorySignerState {
    fn load_signer_state(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .inner
            .lock()
            .map_err(|_| "signer state lock poisoned".to_string())?
            .clone())
    }

    fn save_signer_state(&self, bytes: &[u8]) -> Result<(), String> {
        *self
            .inner
            .lock()
            .map_err(|_| "signer state lock poisoned".to_string())? = Some(bytes.to_vec());
        Ok(())
    }
}

impl<T: SignerStateStore + ?Sized> SignerStateStore for Arc<T> {
    fn load_signer_state(&self) -> Result<Option<Vec<u8>>, String> {
        (**self).load_signer_state()
    }

    fn save_signer_state(&self, bytes: &[u8]) -> Result<(), String> {
        (**self).save_signer_state(bytes)
    }
}
