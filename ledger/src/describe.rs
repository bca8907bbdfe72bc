//! Transactions as JSON, field by field: byte strings and keys as `0x` hex,
//! u64 values as decimal strings (JSON numbers lose precision past 2^53),
//! each with a `kind`. For readers that are not Rust: the PostgreSQL export
//! stores these, and the wire-format vectors show them beside the bytes.
//!
//! ```
//! use tally_ledger::describe::op_json;
//! use tally_ledger::types::Op;
//! let op = Op::Delete { key: b"k".to_vec() };
//! assert_eq!(op_json(&op), serde_json::json!({ "kind": "delete", "key": "0x6b" }));
//! ```

use serde_json::{json, Value};

use crate::encoding::hex_serde;
use crate::governance::Change;
use crate::types::Op;
use crate::PublicKey;

fn hex(bytes: &[u8]) -> String {
    hex_serde::to_hex(bytes)
}

fn pk(k: &PublicKey) -> String {
    k.to_hex()
}

/// A change as JSON: its kind and fields.
pub fn change_json(change: &Change) -> Value {
    match change {
        Change::Grant { account, role } => {
            json!({ "kind": "grant", "account": pk(account), "role": role.as_str() })
        }
        Change::Revoke { account } => json!({ "kind": "revoke", "account": pk(account) }),
        Change::AddValidator {
            name,
            public_key,
            node_key,
            power,
        } => json!({
            "kind": "add_validator", "name": name, "public_key": pk(public_key),
            "node_key": pk(node_key), "power": power.to_string(),
        }),
        Change::RemoveValidator { public_key } => {
            json!({ "kind": "remove_validator", "public_key": pk(public_key) })
        }
        Change::SetPower { public_key, power } => json!({
            "kind": "set_power", "public_key": pk(public_key), "power": power.to_string(),
        }),
        Change::RotateKey {
            public_key,
            new_key,
            consent,
        } => json!({
            "kind": "rotate_key", "public_key": pk(public_key), "new_key": pk(new_key),
            "consent": consent.to_hex(),
        }),
        Change::AddReplica { name, node_key } => {
            json!({ "kind": "add_replica", "name": name, "node_key": pk(node_key) })
        }
        Change::RemoveReplica { node_key } => {
            json!({ "kind": "remove_replica", "node_key": pk(node_key) })
        }
    }
}

/// A transaction's operation as JSON: its kind and fields.
pub fn op_json(op: &Op) -> Value {
    match op {
        Op::Transfer { to, amount } => {
            json!({ "kind": "transfer", "to": pk(to), "amount": amount.to_string() })
        }
        Op::Put { key, value } => json!({ "kind": "put", "key": hex(key), "value": hex(value) }),
        Op::Delete { key } => json!({ "kind": "delete", "key": hex(key) }),
        Op::GrantAccount { account, role } => {
            json!({ "kind": "grant", "account": pk(account), "role": role.as_str() })
        }
        Op::RevokeAccount { account } => json!({ "kind": "revoke", "account": pk(account) }),
        Op::Propose { change } => json!({ "kind": "propose", "change": change_json(change) }),
        Op::Approve { change } => json!({ "kind": "approve", "change": change.to_hex() }),
    }
}
