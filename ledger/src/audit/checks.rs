//! The audit's checks on each block (the block rules every node applies,
//! then the indexes), the replay to each state root, and the final
//! comparison of the stored state and indexes with the replayed chain.

use jmt::storage::TreeReader;
use jmt::KeyHash;

use super::{AuditError, Checked, Fault, FaultClass, Item, Replay, Rules, SetChange, Summary};
use crate::execution::{BlockExecError, TxError};
use crate::hash::{merkle_root, Hash};
use crate::state;
use crate::store::{Store, StoreError};
use crate::types::Block;
use crate::verify::{
    check_certificate_matches, BlockError, ChainRules, ContentError, Placement, StateCheckError,
};

/// Every check that needs no state and no validator set, run on many
/// threads ahead of the replay: the transaction root, the certificate is
/// for this block (not one altered after it was decided), each transaction's
/// limits and signature ([`ChainRules::check_transactions`], the call block
/// sync makes), then the indexes. A fault's message is the rule's own
/// reason, word for word what a validator or a syncing node would say.
pub(super) fn check_stateless(rules: &Rules<'_>, item: Item) -> Result<Checked, Fault> {
    let block = &item.block;
    let h = block.height();
    let tx_hashes = block.tx_hashes();
    let tx_root = merkle_root(&tx_hashes);
    if tx_root != block.header.tx_root {
        let e = BlockError::TxRoot {
            expected: tx_root,
            found: block.header.tx_root,
        };
        return Err(block_fault(h, e));
    }
    check_certificate_matches(block, &item.cert).map_err(|e| block_fault(h, e))?;
    let signatures = rules
        .chain
        .check_transactions(block)
        .map_err(|e| content_fault(h, e))?;
    check_indexes(rules.store, block, item.hash)?;
    Ok(Checked {
        item,
        tx_hashes,
        signatures: signatures as u64,
    })
}

fn content_fault(h: u64, e: ContentError) -> Fault {
    let message = e.to_string();
    match e {
        ContentError::Mismatch(e) => block_fault(h, e),
        ContentError::Certificate(_) => {
            Fault::new(FaultClass::Certificate, h, "certificate", message)
        }
        ContentError::LastCommit(_) => {
            Fault::new(FaultClass::Certificate, h, "last_commit", message)
        }
        ContentError::Tx { error, .. } => {
            let check = if matches!(error, TxError::BadSignature(_)) {
                "tx_signature"
            } else {
                "tx_rules"
            };
            Fault::new(FaultClass::Transaction, h, check, message)
        }
    }
}

pub(super) fn check_indexes(store: &Store, block: &Block, hash: Hash) -> Result<(), Fault> {
    let h = block.height();
    let io = |e: StoreError| {
        Fault::new(
            FaultClass::Index,
            h,
            "index_read",
            format!("an index entry cannot be read: {e}"),
        )
    };
    let indexed = store.block_height(&hash).map_err(io)?;
    if indexed != Some(h) {
        return Err(Fault::new(
            FaultClass::Index,
            h,
            "block_index",
            format!("the block-hash index maps block {hash} to {indexed:?}, not to its height"),
        )
        .with(h, format!("{indexed:?}")));
    }
    for (index, tx) in block.txs.iter().enumerate() {
        let tx_hash = tx.hash();
        let location = store.tx_location(&tx_hash).map_err(io)?;
        let at = location.map(|l| (l.height, l.index as usize));
        if at != Some((h, index)) {
            return Err(Fault::new(
                FaultClass::Index,
                h,
                "tx_index",
                format!("the transaction index maps tx {tx_hash} to {at:?}, but it is tx {index} of block {h}"),
            )
            .with(format!("({h}, {index})"), format!("{at:?}")));
        }
    }
    Ok(())
}

pub(super) fn block_fault(height: u64, e: BlockError) -> Fault {
    let message = e.to_string();
    let header = |check| Fault::new(FaultClass::Header, height, check, message.clone());
    match e {
        BlockError::ChainId { expected, found } => header("chain_id").with(expected, found),
        BlockError::Height { expected, found } => header("height").with(expected, found),
        BlockError::PrevHash { expected, found } => header("prev_hash").with(expected, found),
        BlockError::TxRoot { expected, found } => header("tx_root").with(expected, found),
        BlockError::ValidatorsHash { expected, found } => {
            header("validators_hash").with(expected, found)
        }
        BlockError::NextValidatorsHash { expected, found } => {
            header("next_validators_hash").with(expected, found)
        }
        BlockError::LastCommitHash { expected, found } => {
            header("last_commit_hash").with(expected, found)
        }
        BlockError::Time { parent, found } => {
            header("time").with(format!("after {parent}"), found)
        }
        BlockError::TimeAhead { now, found } => {
            header("time").with(format!("at most {now} + drift"), found)
        }
        BlockError::TimeOutOfRange { found } => {
            header("time").with(format!("at most {}", crate::verify::BLOCK_TIME_MS_MAX), found)
        }
        BlockError::TooLarge { max, found } => header("block_size").with(max, found),
        BlockError::TooManyTxs { max, found } => header("tx_count").with(max, found),
        BlockError::ProposerUnknown { proposer } => {
            header("proposer").with("a validator", proposer)
        }
        BlockError::ProposerNoTurn {
            proposer,
            expected_key,
            ..
        } => header("proposer").with(expected_key, proposer),
        BlockError::CertificateMismatch {
            expected, found, ..
        } => Fault::new(
            FaultClass::Header,
            height,
            "block_hash",
            format!("the block hashes to {expected}, but its certificate decided {found}: the block was altered after it was decided"),
        )
        .with(found, expected),
        BlockError::LastCommitHeight { expected, found } => {
            Fault::new(FaultClass::Certificate, height, "last_commit", message).with(expected, found)
        }
        BlockError::LastCommitBlock { expected, found } => {
            Fault::new(FaultClass::Certificate, height, "last_commit", message).with(expected, found)
        }
        BlockError::MissingLastCommit { .. }
        | BlockError::UnexpectedLastCommit
        | BlockError::LastCommit(_) => {
            Fault::new(FaultClass::Certificate, height, "last_commit", message)
        }
    }
}

/// Judges a checked block by the rules of its height (the validator sets
/// the replayed state names: [`ChainRules::at_height`]), the same calls
/// consensus and block sync make: the block rules
/// ([`ChainRules::check_block`]), its certificates
/// ([`ChainRules::check_certificates`]), then executes it against the
/// replay and compares the root. `chain` follows the heights; a change of
/// the set is recorded in the summary.
pub(super) fn execute(
    chain: &mut ChainRules,
    replay: &mut Replay<'_>,
    checked: Checked,
    summary: &mut Summary,
) -> Result<u64, Fault> {
    let item = &checked.item;
    let block = &item.block;
    let h = block.height();
    let height = item.parent.height.saturating_add(1);
    let at = chain.at_height(&*replay, height).map_err(|e| {
        Fault::new(
            FaultClass::State,
            height,
            "validator_set",
            format!("the replayed state names no valid validator set for height {height}: {e}"),
        )
    })?;
    if at.validators_hash() != chain.validators_hash() {
        summary.set_changes.push(SetChange {
            height,
            validators: at.set.len(),
            total_power: at.set.total_power(),
            validators_hash: at.validators_hash().to_string(),
        });
    }
    *chain = at;
    let placement = Placement {
        parent: item.parent,
        round: item.cert.round,
        now_ms: None,
    };
    chain
        .check_block_hashed(
            block,
            Some(&checked.tx_hashes),
            item.encoded_len,
            &placement,
        )
        .map_err(|e| block_fault(h, e))?;
    let signatures = chain
        .check_certificates(block, Some(&item.cert))
        .map_err(|e| content_fault(h, e))?;
    let update = chain.check_state(block, &*replay).map_err(|e| {
        let message = e.to_string();
        match e {
            StateCheckError::Execution(BlockExecError::InvalidTx { .. }) => {
                Fault::new(FaultClass::Transaction, h, "tx_execution", message)
            }
            StateCheckError::Execution(BlockExecError::State(e)) => Fault::new(
                FaultClass::State,
                h,
                "replay",
                format!("the replayed state cannot be read: {e}"),
            ),
            StateCheckError::StateRoot { expected, found } => {
                Fault::new(FaultClass::State, h, "state_root", message).with(expected, found)
            }
        }
    })?;
    summary.signatures += signatures as u64;
    replay.top.apply_latest(&update.batch);
    summary.blocks += 1;
    summary.txs += block.txs.len() as u64;
    summary.signatures += checked.signatures;
    Ok(h)
}

/// After the walk: the stored state equals the replayed one at `to`, and
/// the indexes and the tip record hold nothing the blocks do not.
pub(super) fn final_checks(
    rules: &Rules<'_>,
    replay: &Replay<'_>,
    from: u64,
    to: u64,
    summary: &Summary,
) -> Result<Option<Fault>, AuditError> {
    let store = rules.store;
    if to == 0 {
        return Ok(None);
    }
    let state_fault = |check, message: String| Fault::new(FaultClass::State, to, check, message);
    let stored_root = state::root_at(store, to).map_err(StoreError::from)?;
    let replayed_root = state::root_at(replay, to).map_err(StoreError::from)?;
    if stored_root != replayed_root {
        return Ok(Some(
            state_fault(
                "stored_state_root",
                format!("the stored state tree at height {to} has root {stored_root}, the replay gives {replayed_root}"),
            )
            .with(replayed_root, stored_root),
        ));
    }
    // Every stored value against the replay, then the replayed keys the
    // store does not have.
    let mut mismatch: Option<Fault> = None;
    let mut compared = std::collections::HashSet::new();
    store.for_each_state_value(to, |key_hash, stored| {
        compared.insert(key_hash);
        if mismatch.is_none() {
            let replayed = replay.get_value_option(to, key_hash).map_err(state_read)?;
            if replayed != stored {
                mismatch = Some(value_fault(
                    to,
                    key_hash,
                    replayed.as_deref(),
                    stored.as_deref(),
                ));
            }
        }
        Ok(())
    })?;
    if let Some(f) = mismatch {
        return Ok(Some(f));
    }
    for (key_hash, replayed) in replay.top.values_at(to) {
        if compared.contains(&key_hash) {
            continue;
        }
        let stored = store.get_value_option(to, key_hash).map_err(state_read)?;
        if stored != replayed {
            return Ok(Some(value_fault(
                to,
                key_hash,
                replayed.as_deref(),
                stored.as_deref(),
            )));
        }
    }
    let tip = store.tip();
    if to == summary.tip {
        if let Some(tip) = tip {
            let block = store.block(to)?.map(|b| b.hash());
            if block != Some(tip.block_hash) {
                return Ok(Some(
                    Fault::new(
                        FaultClass::Index,
                        to,
                        "tip",
                        "the recorded tip names a different block than the one stored at its height".into(),
                    )
                    .with(format!("{block:?}"), tip.block_hash),
                ));
            }
        }
        if store.block_bytes(to + 1)?.is_some() {
            return Ok(Some(Fault::new(
                FaultClass::Index,
                to + 1,
                "tip",
                format!(
                    "a block is stored at height {}, above the recorded tip {to}",
                    to + 1
                ),
            )));
        }
        if from == 1 {
            let (block_entries, tx_entries) = store.index_counts()?;
            if block_entries != to {
                return Ok(Some(
                    Fault::new(
                        FaultClass::Index,
                        to,
                        "block_index_count",
                        format!("the block-hash index has {block_entries} entries for {to} blocks"),
                    )
                    .with(to, block_entries),
                ));
            }
            if tx_entries != summary.txs {
                return Ok(Some(
                    Fault::new(
                        FaultClass::Index,
                        to,
                        "tx_index_count",
                        format!(
                            "the transaction index has {tx_entries} entries for {} transactions",
                            summary.txs
                        ),
                    )
                    .with(summary.txs, tx_entries),
                ));
            }
        }
    }
    Ok(None)
}

pub(super) fn value_fault(
    height: u64,
    key_hash: KeyHash,
    replayed: Option<&[u8]>,
    stored: Option<&[u8]>,
) -> Fault {
    let show = |v: Option<&[u8]>| {
        v.map_or_else(
            || "nothing".to_string(),
            |v| format!("0x{}", hex::encode(v)),
        )
    };
    Fault::new(
        FaultClass::State,
        height,
        "stored_state",
        format!(
            "the stored state at height {height} holds {} for key {}, the replay gives {}",
            show(stored),
            hex::encode(key_hash.0),
            show(replayed)
        ),
    )
    .with(show(replayed), show(stored))
}

pub(super) fn state_read(e: anyhow::Error) -> StoreError {
    StoreError::Corrupt(format!("the state cannot be read: {e:#}"))
}
