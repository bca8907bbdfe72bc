//! The core's notices, as the operator reads them in the log.

use tracing::{error, info, warn};

use super::Driver;
use crate::node_core::Notice;

impl Driver {
    pub(super) fn notice(&mut self, notice: Notice) {
        match notice {
            Notice::Proposed {
                height,
                round,
                block_hash,
            } => info!(height, round, block = %block_hash.short(), "proposed"),
            Notice::InvalidBlock {
                height,
                round,
                block_hash,
                reason,
            } => {
                warn!(height, round, block = %block_hash.short(), %reason, "invalid proposed block")
            }
            Notice::DecidedUnknown {
                height,
                block_hash,
                reason,
            } => {
                warn!(height, block = %block_hash.short(), %reason, "decided a block this node cannot commit yet; it will sync it")
            }
            Notice::CannotPropose {
                height,
                round,
                reason,
            } => warn!(height, round, %reason, "cannot propose"),
            Notice::SignerFault(reason) => {
                self.metrics.signer_failures.inc();
                error!(%reason, "the signer cannot persist its state: this validator is not signing; check the disk and the data directory");
            }
            Notice::SignerRefused(reason) => warn!(%reason, "the signer refused"),
            Notice::SigningResumed { height } => info!(
                height,
                "no height this validator may have signed before is still open: signing resumes"
            ),
        }
    }
}
