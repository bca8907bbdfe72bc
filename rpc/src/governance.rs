//! `ledger_getGovernance`, `ledger_getChange` and `ledger_getValidators`:
//! the governance state, its changes and the validators, read from the
//! store's state.

use tally_ledger::genesis::peer_id_from_node_key;
use tally_ledger::governance::{ChangeRecord, ChangeStatus, Council};
use tally_ledger::membership::{read_entry, read_validators, Validators};
use tally_ledger::state::StateKey;
use tally_ledger::Hash;

use crate::api::RpcResult;
use crate::backend::Backend;
use crate::errors::not_found;
use crate::methods::{store_error as internal, LedgerRpc};
use crate::types::{
    to_hex, ChangeInfo, GovernanceInfo, SetChangeInfo, ValidatorInfo, SET_CHANGES_PAGE_MAX, U64,
};
use tally_ledger::encoding::encode;

impl<B: Backend> LedgerRpc<B> {
    /// The set changes after height `after`, with what proves each.
    pub(crate) fn set_changes_info(&self, after: u64) -> RpcResult<Vec<SetChangeInfo>> {
        let store = self.store();
        let heights = store
            .set_changes(after, SET_CHANGES_PAGE_MAX)
            .map_err(internal)?;
        let mut out = Vec::with_capacity(heights.len());
        for height in heights {
            let before = height - 1;
            let missing = || internal(format!("block {before} is missing"));
            let block = store.block(before).map_err(internal)?.ok_or_else(missing)?;
            let cert = store
                .certificate(before)
                .map_err(internal)?
                .ok_or_else(missing)?;
            let validators = read_validators(&**store, height).map_err(internal)?;
            out.push(SetChangeInfo {
                height: U64(height),
                header: to_hex(&encode(&block.header)),
                certificate: to_hex(&encode(&cert)),
                validators: to_hex(&encode(&validators)),
            });
        }
        Ok(out)
    }

    /// The validators of `height` (default: the next block's), up to the
    /// block after the next, whose set the state after the tip already
    /// names.
    pub(crate) fn validators_info(&self, height: Option<u64>) -> RpcResult<Vec<ValidatorInfo>> {
        let tip = self.store().height();
        let next = tip.saturating_add(1);
        let height = height.unwrap_or(next);
        if height == 0 || height > next.saturating_add(1) {
            return Err(not_found(format!(
                "the validator set of height {height}: heights start at 1, and the state names sets up to {}",
                next + 1
            )));
        }
        let validators = if height > next {
            let key = StateKey::NextValidators;
            read_entry(&**self.store(), &key, tip, Validators::decode).map_err(internal)?
        } else {
            read_validators(&**self.store(), height).map_err(internal)?
        };
        Ok(validators
            .0
            .iter()
            .enumerate()
            .map(|(i, v)| ValidatorInfo {
                index: i as u32,
                name: v.name.clone(),
                public_key: v.public_key.to_hex(),
                peer_id: peer_id_from_node_key(&v.node_key),
                power: U64(v.power),
            })
            .collect())
    }

    pub(crate) fn governance_info(&self, prove: bool) -> RpcResult<GovernanceInfo> {
        let height = self.store().height();
        let (value, proof) = self.read_state(&StateKey::Council, height, prove)?;
        let bytes = value.ok_or_else(|| internal("the governance state is missing"))?;
        let council = Council::decode(&bytes).map_err(|e| internal(e.to_string()))?;
        let mut pending = Vec::with_capacity(council.pending.len());
        for p in &council.pending {
            let id = p.id;
            let (value, _) = self.read_state(&StateKey::Change(id), height, false)?;
            let Some(bytes) = value else {
                return Err(internal(format!("pending change {id} has no record")));
            };
            let record = ChangeRecord::decode(&bytes).map_err(|e| internal(e.to_string()))?;
            // Expired ones stay listed until the next proposal prunes them.
            if record.status_at(height + 1) == ChangeStatus::Pending {
                pending.push(change_info(id, &record, &council, height, None));
            }
        }
        Ok(GovernanceInfo {
            threshold: council.threshold,
            expiry_blocks: U64(council.expiry_blocks),
            admins: council.admins.iter().map(|a| a.to_hex()).collect(),
            pending,
            height: U64(height),
            proof,
        })
    }

    pub(crate) fn change_info(&self, id: Hash, prove: bool) -> RpcResult<ChangeInfo> {
        let height = self.store().height();
        let (value, proof) = self.read_state(&StateKey::Change(id), height, prove)?;
        let bytes = value.ok_or_else(|| not_found(format!("change {id}")))?;
        let record = ChangeRecord::decode(&bytes).map_err(|e| internal(e.to_string()))?;
        let (council, _) = self.read_state(&StateKey::Council, height, false)?;
        let council = council
            .ok_or_else(|| internal("the governance state is missing"))
            .and_then(|b| Council::decode(&b).map_err(|e| internal(e.to_string())))?;
        Ok(change_info(id, &record, &council, height, proof))
    }
}

fn change_info(
    id: Hash,
    record: &ChangeRecord,
    council: &Council,
    height: u64,
    proof: Option<crate::types::StateProofInfo>,
) -> ChangeInfo {
    // As the next block will find it: one that block can no longer approve
    // is expired.
    let (status, at) = match record.status_at(height.saturating_add(1)) {
        ChangeStatus::Pending => ("pending", None),
        ChangeStatus::Applied { height } => ("applied", Some(U64(height))),
        ChangeStatus::Withdrawn { height } => ("withdrawn", Some(U64(height))),
        ChangeStatus::Expired { .. } => ("expired", None),
    };
    let pending = status == "pending";
    ChangeInfo {
        id: id.to_hex(),
        change: serde_json::to_value(&record.change).unwrap_or_default(),
        proposer: record.proposer.to_hex(),
        proposed_at: U64(record.proposed_at),
        expires_at: U64(record.expires_at),
        approvals: record.approvals.iter().map(|a| a.to_hex()).collect(),
        approvals_counted: pending.then(|| record.approvals_counted(council) as u32),
        status: status.into(),
        at,
        height: U64(height),
        proof,
    }
}
