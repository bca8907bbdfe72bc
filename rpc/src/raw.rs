//! `ledger_getRawBlocks`: blocks exactly as stored, for followers that
//! check them themselves (the PostgreSQL export). The other block methods
//! give a block's fields and the node's own certificate of it; a follower
//! that re-verifies needs the block's canonical bytes (its `last_commit`
//! included, which the fields leave out) and the certificate that decided
//! it.

use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use tally_ledger::encoding::hex_serde::to_hex;

use crate::api::RpcResult;
use crate::backend::Backend;
use crate::errors::{invalid_params, not_found};
use crate::methods::{store_error, LedgerRpc};
use crate::types::U64;

/// The most blocks one call returns.
pub const RAW_BLOCKS_MAX: u32 = 64;
/// Past this many bytes of blocks and certificates (before hex), a call
/// stops adding blocks; it always returns the first.
pub const RAW_BYTES_MAX: usize = 16 << 20;

/// A committed block as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawBlock {
    pub height: U64,
    /// The block's canonical encoding (hex).
    pub block: String,
    /// The certificate that decided it, encoded (hex).
    pub certificate: String,
}

#[rpc(server, client, namespace = "ledger")]
pub trait RawApi {
    /// Up to `count` consecutive committed blocks from `from` (at most
    /// [`RAW_BLOCKS_MAX`], fewer past [`RAW_BYTES_MAX`] or the tip).
    #[method(name = "getRawBlocks")]
    async fn get_raw_blocks(&self, from: U64, count: u32) -> RpcResult<Vec<RawBlock>>;
}

#[jsonrpsee::core::async_trait]
impl<B: Backend> RawApiServer for LedgerRpc<B> {
    async fn get_raw_blocks(&self, from: U64, count: u32) -> RpcResult<Vec<RawBlock>> {
        if from.0 == 0 {
            return Err(invalid_params("from: blocks start at height 1"));
        }
        if count == 0 || count > RAW_BLOCKS_MAX {
            return Err(invalid_params(format!(
                "count: {count} is out of range (allowed 1 to {RAW_BLOCKS_MAX})"
            )));
        }
        let store = self.store();
        let tip = store.height();
        if from.0 > tip {
            return Err(not_found(format!("block {} (the tip is {tip})", from.0)));
        }
        let last = from.0.saturating_add(u64::from(count) - 1).min(tip);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for height in from.0..=last {
            let block = store.block_bytes(height).map_err(store_error)?;
            let cert = store.certificate_bytes(height).map_err(store_error)?;
            let (Some(block), Some(cert)) = (block, cert) else {
                return Err(not_found(format!("block {height} or its certificate")));
            };
            bytes = bytes.saturating_add(block.len() + cert.len());
            if !out.is_empty() && bytes > RAW_BYTES_MAX {
                break;
            }
            out.push(RawBlock {
                height: U64(height),
                block: to_hex(&block),
                certificate: to_hex(&cert),
            });
        }
        Ok(out)
    }
}
