//! The `ledger_*` JSON-RPC methods. `#[rpc]` generates the server trait the
//! node's RPC implements and a typed client trait (`LedgerApiClient`) that
//! works over any jsonrpsee HTTP or WebSocket client.

use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;

use crate::types::{
    AccountInfo, BatchItem, BlockId, BlockInfo, CertificateInfo, ChangeInfo, EvidencePage,
    GovernanceInfo, HeadInfo, HealthInfo, MempoolInfo, RecordInfo, SetChangeInfo, StatusInfo,
    TxCommitted, TxInfo, TxSubmitted, ValidatorInfo, U64,
};

pub type RpcResult<T> = Result<T, ErrorObjectOwned>;

#[rpc(server, client, namespace = "ledger")]
pub trait LedgerApi {
    /// Admits a signed transaction (encoded, hex) to the mempool.
    #[method(name = "submitTx")]
    async fn submit_tx(&self, tx: String) -> RpcResult<TxSubmitted>;

    /// Submits and waits until the transaction is committed, or the timeout.
    #[method(name = "submitTxAndWait")]
    async fn submit_tx_and_wait(
        &self,
        tx: String,
        timeout_ms: Option<U64>,
    ) -> RpcResult<TxCommitted>;

    /// Submits several transactions; one result each.
    #[method(name = "submitTxBatch")]
    async fn submit_tx_batch(&self, txs: Vec<String>) -> RpcResult<Vec<BatchItem>>;

    /// Where a transaction stands, with an inclusion proof once committed.
    #[method(name = "getTx")]
    async fn get_tx(&self, hash: String) -> RpcResult<TxInfo>;

    #[method(name = "getBlockByHeight")]
    async fn get_block_by_height(
        &self,
        height: BlockId,
        full: Option<bool>,
    ) -> RpcResult<BlockInfo>;

    #[method(name = "getBlockByHash")]
    async fn get_block_by_hash(&self, hash: String, full: Option<bool>) -> RpcResult<BlockInfo>;

    /// The commit certificate of a height.
    #[method(name = "getCommit")]
    async fn get_commit(&self, height: BlockId) -> RpcResult<CertificateInfo>;

    #[method(name = "status")]
    async fn status(&self) -> RpcResult<StatusInfo>;

    /// The validator set in force at `height` (default: the next block's).
    #[method(name = "getValidators")]
    async fn get_validators(&self, height: Option<U64>) -> RpcResult<Vec<ValidatorInfo>>;

    /// The changes of the validator set after height `after` (default 0),
    /// at most `SET_CHANGES_PAGE_MAX` (16) a page, oldest first: for each, the
    /// header and certificate of the block before it (certified by the set
    /// before, naming the new one in `next_validators_hash`) and the new
    /// set. A light client walks them from genesis.
    #[method(name = "getSetChanges")]
    async fn get_set_changes(&self, after: Option<U64>) -> RpcResult<Vec<SetChangeInfo>>;

    /// The genesis file, as JSON.
    #[method(name = "getGenesis")]
    async fn get_genesis(&self) -> RpcResult<serde_json::Value>;

    #[method(name = "health")]
    async fn health(&self) -> RpcResult<HealthInfo>;

    /// Equivocation evidence this node recorded, one record per offence, in
    /// (height, round, step, validator) order: from `from_height` (default
    /// 0) or from the `cursor` a previous page returned, at most `limit`
    /// (default and maximum 100) a page.
    #[method(name = "getEvidence")]
    async fn get_evidence(
        &self,
        from_height: Option<U64>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<EvidencePage>;

    #[method(name = "getMempool")]
    async fn get_mempool(&self) -> RpcResult<MempoolInfo>;

    /// An account at the latest height, optionally with a state proof.
    #[method(name = "getAccount")]
    async fn get_account(&self, public_key: String, prove: Option<bool>) -> RpcResult<AccountInfo>;

    /// A record of `owner` (key as hex), optionally with a state proof.
    #[method(name = "getRecord")]
    async fn get_record(
        &self,
        owner: String,
        key: String,
        prove: Option<bool>,
    ) -> RpcResult<RecordInfo>;

    /// The governance state at the latest height: the threshold, the admins
    /// and the pending changes, optionally with a proof of that state.
    #[method(name = "getGovernance")]
    async fn get_governance(&self, prove: Option<bool>) -> RpcResult<GovernanceInfo>;

    /// One change by id (the proposing transaction's hash): pending,
    /// applied or expired, optionally with a proof of its record.
    #[method(name = "getChange")]
    async fn get_change(&self, id: String, prove: Option<bool>) -> RpcResult<ChangeInfo>;

    /// One notification per committed block.
    #[subscription(name = "subscribeNewHeads" => "newHead", unsubscribe = "unsubscribeNewHeads", item = HeadInfo)]
    async fn subscribe_new_heads(&self) -> SubscriptionResult;

    /// The status of one transaction: now, and on each change until it is
    /// committed or rejected.
    #[subscription(name = "subscribeTxStatus" => "txStatus", unsubscribe = "unsubscribeTxStatus", item = TxInfo)]
    async fn subscribe_tx_status(&self, hash: String) -> SubscriptionResult;
}
