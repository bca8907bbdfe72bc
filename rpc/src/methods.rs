//! The `ledger_*` methods: [`LedgerRpc`] answers each call over a
//! [`Backend`], reading the store directly and reaching consensus and the
//! mempool only through the backend.

use std::sync::Arc;
use std::time::Duration;

use jsonrpsee::core::{async_trait, SubscriptionResult};
use jsonrpsee::server::{PendingSubscriptionSink, SubscriptionMessage};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde_json::json;
use tokio::sync::broadcast;

use tally_ledger::encoding::{encode, hex_serde};
use tally_ledger::hash::merkle_proof;
use tally_ledger::state::{get_with_proof, read, AccountState, StateKey, StateProof};
use tally_ledger::store::{Store, EVIDENCE_PAGE_MAX};
use tally_ledger::types::{SignedTx, VoteKind, TX_BYTES_CAP};
use tally_ledger::{Hash, PublicKey};

use crate::api::{LedgerApiServer, RpcResult};
use crate::backend::{Backend, PoolState};
use crate::errors::{self, error, invalid_params, not_found};
use crate::types::*;

/// Most transactions in one `submitTxBatch`.
pub const SUBMIT_BATCH_MAX: usize = 256;
/// Longest wait `submitTxAndWait` accepts.
pub const WAIT_MAX: Duration = Duration::from_secs(120);
const WAIT_DEFAULT: Duration = Duration::from_secs(30);

/// The server's implementation of the API.
#[derive(Debug)]
pub struct LedgerRpc<B> {
    backend: Arc<B>,
}

pub(crate) fn parse_hash(s: &str) -> RpcResult<Hash> {
    Hash::from_hex(s).map_err(|e| invalid_params(format!("hash {s:?}: {e}")))
}

fn parse_key(s: &str) -> RpcResult<PublicKey> {
    PublicKey::from_hex(s).map_err(|e| invalid_params(format!("public key {s:?}: {e}")))
}

fn parse_tx(s: &str) -> RpcResult<SignedTx> {
    let bytes = hex_serde::parse_vec(s, TX_BYTES_CAP)
        .map_err(|e| invalid_params(format!("transaction: {e}")))?;
    SignedTx::decode(&bytes, TX_BYTES_CAP).map_err(|e| {
        error(
            errors::INVALID_TX,
            "invalid_tx",
            format!("transaction cannot be decoded: {e}"),
            json!(null),
        )
    })
}

pub(crate) fn store_error(e: impl std::fmt::Display) -> ErrorObjectOwned {
    error(
        errors::UNAVAILABLE,
        "unavailable",
        format!("the node's database failed: {e}"),
        json!(null),
    )
}

impl<B: Backend> LedgerRpc<B> {
    pub fn new(backend: Arc<B>) -> Self {
        LedgerRpc { backend }
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        self.backend.store()
    }

    fn committed_info(&self, hash: Hash) -> RpcResult<Option<TxInfo>> {
        let Some(loc) = self.store().tx_location(&hash).map_err(store_error)? else {
            return Ok(None);
        };
        let block = self
            .store()
            .block(loc.height)
            .map_err(store_error)?
            .ok_or_else(|| not_found(format!("block {}", loc.height)))?;
        let hashes = block.tx_hashes();
        let tx = block
            .txs
            .get(loc.index as usize)
            .map(|t| to_hex(&encode(t)));
        let proof = merkle_proof(&hashes, loc.index as usize).map(|p| TxProof {
            tx_root: block.header.tx_root.to_hex(),
            index: U64(p.index),
            leaf_count: U64(p.leaf_count),
            path: p.path.iter().map(Hash::to_hex).collect(),
        });
        Ok(Some(TxInfo {
            hash: hash.to_hex(),
            status: TxState::Committed,
            reason: None,
            height: Some(U64(loc.height)),
            index: Some(loc.index),
            tx,
            proof,
        }))
    }

    /// Where a transaction stands, or `None` if this node never saw it.
    ///
    /// A transaction this node acknowledged must be found at every moment
    /// after the acknowledgement: pending, then committed or rejected. The
    /// store and the pool are two reads, and a commit can land between
    /// them; the node answers for a transaction of a block still being
    /// written as pending, and forgets it only once the block is in the
    /// store (see [`Backend::pool_state`]). So a pool that no longer knows
    /// the transaction means the store has it by now, and the store is read
    /// again. Reading the store first only saves a round trip
    /// to the node for committed transactions.
    async fn tx_lookup(&self, hash: Hash) -> RpcResult<Option<TxInfo>> {
        if let Some(info) = self.committed_info(hash)? {
            return Ok(Some(info));
        }
        let pooled = self.backend.pool_state(hash).await;
        let info = match pooled {
            Some(PoolState::Pending(tx)) => TxInfo {
                hash: hash.to_hex(),
                status: TxState::Pending,
                reason: None,
                height: None,
                index: None,
                tx: tx.map(|t| to_hex(&encode(&t))),
                proof: None,
            },
            Some(PoolState::Rejected(reason)) => TxInfo {
                hash: hash.to_hex(),
                status: TxState::Rejected,
                reason: Some(reason),
                height: None,
                index: None,
                tx: None,
                proof: None,
            },
            // Committed since the first read, or never seen.
            None => return self.committed_info(hash),
        };
        Ok(Some(info))
    }

    async fn tx_info(&self, hash: Hash) -> RpcResult<TxInfo> {
        self.tx_lookup(hash)
            .await?
            .ok_or_else(|| not_found(format!("transaction {hash}")))
    }

    fn height_of(&self, id: BlockId) -> u64 {
        match id {
            BlockId::Latest => self.store().height(),
            BlockId::Height(h) => h,
        }
    }

    /// Reads `key` at `height`, with a proof when asked.
    pub(crate) fn read_state(
        &self,
        key: &StateKey,
        height: u64,
        prove: bool,
    ) -> RpcResult<(Option<Vec<u8>>, Option<StateProofInfo>)> {
        if prove {
            let (value, proof) = self.state_proof(key, height)?;
            Ok((value, Some(proof)))
        } else {
            Ok((
                read(&**self.store(), key, height).map_err(store_error)?,
                None,
            ))
        }
    }

    /// A proof for `key` at the latest height, tied to that block.
    fn state_proof(
        &self,
        key: &StateKey,
        height: u64,
    ) -> RpcResult<(Option<Vec<u8>>, StateProofInfo)> {
        let (value, proof) = get_with_proof(&**self.store(), key, height).map_err(store_error)?;
        let (header, certificate, root) = match self.store().block(height).map_err(store_error)? {
            Some(b) => {
                let cert = self.store().certificate(height).map_err(store_error)?;
                (
                    to_hex(&encode(&b.header)),
                    cert.map(|c| to_hex(&encode(&c))).unwrap_or_default(),
                    b.header.state_root,
                )
            }
            None => (
                String::new(),
                String::new(),
                self.store().genesis_state_root(),
            ),
        };
        let info = StateProofInfo {
            state_root: root.to_hex(),
            proof: to_hex(&StateProof::to_bytes(&proof)),
            value: value.as_deref().map(to_hex),
            header,
            certificate,
        };
        Ok((value, info))
    }
}

#[async_trait]
impl<B: Backend> LedgerApiServer for LedgerRpc<B> {
    async fn submit_tx(&self, tx: String) -> RpcResult<TxSubmitted> {
        let tx = parse_tx(&tx)?;
        let hash = self.backend.submit_tx(tx).await?;
        Ok(TxSubmitted {
            hash: hash.to_hex(),
        })
    }

    async fn submit_tx_and_wait(
        &self,
        tx: String,
        timeout_ms: Option<U64>,
    ) -> RpcResult<TxCommitted> {
        let wait = timeout_ms
            .map(|t| Duration::from_millis(t.0))
            .unwrap_or(WAIT_DEFAULT)
            .min(WAIT_MAX);
        let tx = parse_tx(&tx)?;
        let mut heads = self.backend.heads();
        let hash = self.backend.submit_tx(tx).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(loc) = self.store().tx_location(&hash).map_err(store_error)? {
                return Ok(TxCommitted {
                    hash: hash.to_hex(),
                    height: U64(loc.height),
                    index: loc.index,
                });
            }
            if let Some(PoolState::Rejected(reason)) = self.backend.pool_state(hash).await {
                return Err(error(
                    errors::INVALID_TX,
                    "rejected",
                    format!("transaction {hash} was rejected: {reason}"),
                    json!({ "hash": hash.to_hex(), "reason": reason }),
                ));
            }
            match tokio::time::timeout_at(deadline, heads.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    return Err(error(
                        errors::UNAVAILABLE,
                        "unavailable",
                        "the node is shutting down",
                        json!(null),
                    ))
                }
                Err(_) => {
                    return Err(error(
                        errors::TIMEOUT,
                        "timeout",
                        format!(
                            "transaction {hash} is still pending after {} ms",
                            wait.as_millis()
                        ),
                        json!({ "hash": hash.to_hex(), "status": "pending" }),
                    ))
                }
            }
        }
    }

    async fn submit_tx_batch(&self, txs: Vec<String>) -> RpcResult<Vec<BatchItem>> {
        if txs.len() > SUBMIT_BATCH_MAX {
            return Err(error(
                errors::TOO_MANY,
                "too_many",
                format!(
                    "{} transactions in one batch, more than {SUBMIT_BATCH_MAX}",
                    txs.len()
                ),
                json!({ "max": SUBMIT_BATCH_MAX }),
            ));
        }
        // Decode all, submit the decodable ones in one call, answer in order.
        let parsed: Vec<RpcResult<SignedTx>> = txs.iter().map(|t| parse_tx(t)).collect();
        let decoded: Vec<SignedTx> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .cloned()
            .collect();
        let mut submitted = self.backend.submit_txs(decoded).await.into_iter();
        let mut out = Vec::with_capacity(parsed.len());
        for p in parsed {
            let item = match p {
                Err(e) => BatchItem {
                    hash: None,
                    error: Some(ErrorInfo {
                        code: e.code(),
                        kind: "invalid_tx".into(),
                        message: e.message().to_string(),
                    }),
                },
                Ok(_) => match submitted.next() {
                    Some(Ok(h)) => BatchItem {
                        hash: Some(h.to_hex()),
                        error: None,
                    },
                    Some(Err(r)) => BatchItem {
                        hash: None,
                        error: Some(ErrorInfo {
                            code: r.code,
                            kind: r.kind.into(),
                            message: r.message,
                        }),
                    },
                    None => BatchItem {
                        hash: None,
                        error: Some(ErrorInfo {
                            code: errors::UNAVAILABLE,
                            kind: "unavailable".into(),
                            message: "the node gave no answer for this transaction".into(),
                        }),
                    },
                },
            };
            out.push(item);
        }
        Ok(out)
    }

    async fn get_tx(&self, hash: String) -> RpcResult<TxInfo> {
        let hash = parse_hash(&hash)?;
        self.tx_info(hash).await
    }

    async fn get_block_by_height(
        &self,
        height: BlockId,
        full: Option<bool>,
    ) -> RpcResult<BlockInfo> {
        let h = self.height_of(height);
        let block = self
            .store()
            .block(h)
            .map_err(store_error)?
            .ok_or_else(|| not_found(format!("block {h}")))?;
        let cert = self.store().certificate(h).map_err(store_error)?;
        Ok(BlockInfo::new(&block, cert.as_ref(), full.unwrap_or(false)))
    }

    async fn get_block_by_hash(&self, hash: String, full: Option<bool>) -> RpcResult<BlockInfo> {
        let hash = parse_hash(&hash)?;
        let block = self
            .store()
            .block_by_hash(&hash)
            .map_err(store_error)?
            .ok_or_else(|| not_found(format!("block {hash}")))?;
        let cert = self
            .store()
            .certificate(block.height())
            .map_err(store_error)?;
        Ok(BlockInfo::new(&block, cert.as_ref(), full.unwrap_or(false)))
    }

    async fn get_commit(&self, height: BlockId) -> RpcResult<CertificateInfo> {
        let h = self.height_of(height);
        let cert = self
            .store()
            .certificate(h)
            .map_err(store_error)?
            .ok_or_else(|| not_found(format!("commit certificate {h}")))?;
        Ok(CertificateInfo::from(&cert))
    }

    async fn status(&self) -> RpcResult<StatusInfo> {
        let info = self.backend.node_info().await?;
        let tip = self.store().tip();
        Ok(StatusInfo {
            chain_id: self.backend.genesis().chain_id.clone(),
            node_id: self.backend.node_id(),
            role: self.backend.role().to_string(),
            latest_height: U64(tip.map_or(0, |t| t.height)),
            latest_hash: tip.map(|t| t.block_hash.to_hex()),
            latest_time: tip.map(|t| U64(t.time_ms)),
            state_root: tip
                .map_or(self.store().genesis_state_root(), |t| t.state_root)
                .to_hex(),
            catching_up: info.catching_up,
            peers: info.peers,
            round: info.round,
            sync: info.sync,
        })
    }

    async fn get_validators(&self, height: Option<U64>) -> RpcResult<Vec<ValidatorInfo>> {
        self.validators_info(height.map(|h| h.0))
    }

    async fn get_set_changes(&self, after: Option<U64>) -> RpcResult<Vec<SetChangeInfo>> {
        self.set_changes_info(after.map_or(0, |h| h.0))
    }

    async fn get_genesis(&self) -> RpcResult<serde_json::Value> {
        serde_json::to_value(self.backend.genesis()).map_err(|e| invalid_params(e.to_string()))
    }

    async fn health(&self) -> RpcResult<HealthInfo> {
        let info = self.backend.node_info().await?;
        Ok(HealthInfo {
            ok: !info.catching_up && info.signer_fault.is_none(),
            height: U64(self.store().height()),
            peers: info.peers,
        })
    }

    async fn get_evidence(
        &self,
        from_height: Option<U64>,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> RpcResult<EvidencePage> {
        let start = match (cursor, from_height) {
            (Some(_), Some(_)) => {
                return Err(invalid_params("give fromHeight or cursor, not both"))
            }
            (Some(c), None) => {
                hex_serde::parse_vec(&c, 17).map_err(|e| invalid_params(format!("cursor: {e}")))?
            }
            (None, h) => h.map_or(0, |h| h.0).to_be_bytes().to_vec(),
        };
        let limit = limit.unwrap_or(EVIDENCE_PAGE_MAX as u32) as usize;
        let (page, next) = self
            .store()
            .evidence(&start, limit)
            .map_err(|e| invalid_params(e.to_string()))?;
        Ok(EvidencePage {
            evidence: page
                .iter()
                .map(|e| EvidenceInfo {
                    validator_index: e.validator_index(),
                    height: U64(e.first.vote.height),
                    round: e.first.vote.round,
                    kind: match e.first.vote.kind {
                        VoteKind::Prevote => "prevote".into(),
                        VoteKind::Precommit => "precommit".into(),
                    },
                    first: to_hex(&encode(&e.first)),
                    second: to_hex(&encode(&e.second)),
                })
                .collect(),
            next_cursor: next.map(|k| to_hex(&k)),
        })
    }

    async fn get_mempool(&self) -> RpcResult<MempoolInfo> {
        let info = self.backend.node_info().await?;
        Ok(MempoolInfo {
            size: U64(info.mempool_txs),
            bytes: U64(info.mempool_bytes),
        })
    }

    async fn get_account(&self, public_key: String, prove: Option<bool>) -> RpcResult<AccountInfo> {
        let key = parse_key(&public_key)?;
        let height = self.store().height();
        let state_key = StateKey::Account(key);
        let (value, proof) = self.read_state(&state_key, height, prove.unwrap_or(false))?;
        let account = value
            .map(|v| AccountState::decode(&v).map_err(store_error))
            .transpose()?;
        Ok(AccountInfo {
            exists: account.is_some(),
            balance: U64(account.as_ref().map_or(0, |a| a.balance)),
            nonce: U64(account.as_ref().map_or(0, |a| a.nonce)),
            role: account.as_ref().map(|a| a.role.as_str().to_string()),
            active: account.as_ref().is_some_and(|a| a.active),
            height: U64(height),
            proof,
        })
    }

    async fn get_record(
        &self,
        owner: String,
        key: String,
        prove: Option<bool>,
    ) -> RpcResult<RecordInfo> {
        let owner = parse_key(&owner)?;
        let max = self.backend.genesis().params.key_bytes_max as usize;
        let key = hex_serde::parse_vec(&key, max)
            .map_err(|e| invalid_params(format!("record key: {e}")))?;
        let height = self.store().height();
        let state_key = StateKey::Record { owner, key };
        let (value, proof) = self.read_state(&state_key, height, prove.unwrap_or(false))?;
        Ok(RecordInfo {
            exists: value.is_some(),
            value: value.as_deref().map(to_hex),
            height: U64(height),
            proof,
        })
    }

    async fn get_governance(&self, prove: Option<bool>) -> RpcResult<GovernanceInfo> {
        self.governance_info(prove.unwrap_or(false))
    }

    async fn get_change(&self, id: String, prove: Option<bool>) -> RpcResult<ChangeInfo> {
        self.change_info(parse_hash(&id)?, prove.unwrap_or(false))
    }

    async fn subscribe_new_heads(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut heads = self.backend.heads();
        let sink = pending.accept().await?;
        loop {
            tokio::select! {
                _ = sink.closed() => break,
                head = heads.recv() => match head {
                    Ok(h) => {
                        let msg = SubscriptionMessage::from(serde_json::value::to_raw_value(&h)?);
                        if sink.send(msg).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        Ok(())
    }

    async fn subscribe_tx_status(
        &self,
        pending: PendingSubscriptionSink,
        hash: String,
    ) -> SubscriptionResult {
        let hash = match parse_hash(&hash) {
            Ok(h) => h,
            Err(e) => {
                pending.reject(e).await;
                return Ok(());
            }
        };
        let mut heads = self.backend.heads();
        let sink = pending.accept().await?;
        let mut last: Option<TxState> = None;
        loop {
            // An error here means the transaction was not seen yet.
            let info = self.tx_info(hash).await.ok();
            if let Some(info) = info {
                if last != Some(info.status) {
                    last = Some(info.status);
                    let done = info.status != TxState::Pending;
                    sink.send(SubscriptionMessage::from(serde_json::value::to_raw_value(
                        &info,
                    )?))
                    .await?;
                    if done {
                        break;
                    }
                }
            }
            tokio::select! {
                _ = sink.closed() => break,
                r = heads.recv() => if let Err(broadcast::error::RecvError::Closed) = r { break },
            }
        }
        Ok(())
    }
}

/// Every method the server answers, for `rpc_methods` and the docs test.
pub fn method_names<B: Backend>(module: &RpcModule<LedgerRpc<B>>) -> Vec<String> {
    let mut names: Vec<String> = module.method_names().map(str::to_string).collect();
    names.push("rpc_methods".into());
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use std::sync::Mutex;

    use tally_ledger::genesis::Genesis;
    use tally_ledger::state::StateUpdate;
    use tally_ledger::store::Store;
    use tally_ledger::testkit::TestChain;
    use tally_ledger::types::{Block, CommitCertificate};

    use super::*;
    use crate::backend::NodeInfo;
    use crate::errors::Rejection;

    /// A node whose block commits while the RPC server asks the pool, in
    /// the node's order: the block is written to the store, then the pool
    /// forgets its transactions.
    struct CommitsDuringPoolRead {
        store: Arc<Store>,
        genesis: Genesis,
        pending: Hash,
        block: Mutex<Option<(Block, CommitCertificate, StateUpdate)>>,
        heads: broadcast::Sender<HeadInfo>,
    }

    impl Backend for CommitsDuringPoolRead {
        fn store(&self) -> &Arc<Store> {
            &self.store
        }
        fn genesis(&self) -> &Genesis {
            &self.genesis
        }
        fn node_id(&self) -> String {
            "mock".into()
        }
        fn role(&self) -> &'static str {
            "replica"
        }
        async fn submit_tx(&self, tx: SignedTx) -> Result<Hash, Rejection> {
            Ok(tx.hash())
        }
        async fn pool_state(&self, hash: Hash) -> Option<PoolState> {
            let commit = self.block.lock().unwrap().take();
            match commit {
                Some((block, cert, update)) => {
                    self.store.commit_block(&block, &cert, &update).unwrap();
                    None
                }
                None => (hash == self.pending).then_some(PoolState::Pending(None)),
            }
        }
        async fn node_info(&self) -> Result<NodeInfo, Rejection> {
            Err(Rejection {
                code: errors::UNAVAILABLE,
                kind: "unavailable",
                message: "mock".into(),
            })
        }
        fn heads(&self) -> broadcast::Receiver<HeadInfo> {
            self.heads.subscribe()
        }
    }

    /// The transaction acknowledged, committed in the block that lands
    /// during the first pool read, and one that stays pending.
    fn racing_node(dir: &std::path::Path) -> (LedgerRpc<CommitsDuringPoolRead>, Hash, Hash) {
        let mut chain = TestChain::new(4, 3);
        let store = Arc::new(Store::open(dir, &chain.genesis).unwrap());
        let committed = chain.transfer(1, 2, 5);
        let pending = chain.transfer(1, 2, 5);
        let (block, cert, update) = chain.push(vec![committed.clone()]).unwrap();
        let backend = CommitsDuringPoolRead {
            store,
            genesis: chain.genesis.clone(),
            pending: pending.hash(),
            block: Mutex::new(Some((block, cert, update))),
            heads: broadcast::channel(1).0,
        };
        (
            LedgerRpc::new(Arc::new(backend)),
            committed.hash(),
            pending.hash(),
        )
    }

    #[tokio::test]
    async fn a_transaction_committed_between_the_two_reads_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let (rpc, committed, pending) = racing_node(dir.path());
        let info = rpc.get_tx(committed.to_hex()).await.unwrap();
        assert_eq!(info.status, TxState::Committed);
        assert_eq!(info.height, Some(U64(1)));
        assert!(info.proof.is_some());
        let info = rpc.get_tx(pending.to_hex()).await.unwrap();
        assert_eq!(info.status, TxState::Pending);
        let unknown = rpc.get_tx(Hash::ZERO.to_hex()).await.unwrap_err();
        assert_eq!(unknown.code(), errors::NOT_FOUND);
    }
}
