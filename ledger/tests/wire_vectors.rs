//! Golden vectors of the wire format, for clients in other languages: every
//! transaction kind and every change kind, signed with fixed seeds, with its
//! unsigned encoding, the exact bytes signed, the signed encoding, the hash
//! and the signature; a vote's signing bytes; a header's hash; state keys.
//!
//! The vectors live in `clients/typescript/test/vectors.json`, and the
//! TypeScript tests rebuild each one byte for byte. This test fails when
//! the file differs from what the Rust code makes, so neither side can drift
//! alone. After an intended change of format, rewrite the file with
//! `TALLY_WRITE_VECTORS=1 cargo test --release --test wire_vectors`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use serde_json::{json, Value};

use tally_ledger::crypto::{signing_bytes, Domain};
use tally_ledger::describe::op_json;
use tally_ledger::encoding::{self, hex_serde};
use tally_ledger::governance::Change;
use tally_ledger::hash::Hash;
use tally_ledger::membership::rotation_message;
use tally_ledger::state::StateKey;
use tally_ledger::types::{Header, Op, Role, Tx, Vote, VoteKind};
use tally_ledger::{Keypair, PublicKey};

const CHAIN_ID: &str = "tally-vectors";

fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

fn hex(bytes: &[u8]) -> String {
    hex_serde::to_hex(bytes)
}

fn pk(k: &PublicKey) -> String {
    k.to_hex()
}

/// Every op, and every change inside a proposal, with values that exercise
/// the encoding's corners (empty and long byte strings, u64 extremes).
fn ops() -> Vec<(&'static str, Op)> {
    let old = key(21);
    let new = key(22);
    let consent = old.sign(
        Domain::Rotation,
        CHAIN_ID,
        &rotation_message(&old.public(), &new.public()),
    );
    let changes = vec![
        (
            "propose_grant",
            Change::Grant {
                account: key(11).public(),
                role: Role::Admin,
            },
        ),
        (
            "propose_revoke",
            Change::Revoke {
                account: key(12).public(),
            },
        ),
        (
            "propose_add_validator",
            Change::AddValidator {
                name: "validator-5".into(),
                public_key: key(13).public(),
                node_key: key(14).public(),
                power: 10,
            },
        ),
        (
            "propose_remove_validator",
            Change::RemoveValidator {
                public_key: key(15).public(),
            },
        ),
        (
            "propose_set_power",
            Change::SetPower {
                public_key: key(16).public(),
                power: u64::MAX,
            },
        ),
        (
            "propose_rotate_key",
            Change::RotateKey {
                public_key: old.public(),
                new_key: new.public(),
                consent,
            },
        ),
        (
            "propose_add_replica",
            Change::AddReplica {
                name: "replica-ü".into(),
                node_key: key(17).public(),
            },
        ),
        (
            "propose_remove_replica",
            Change::RemoveReplica {
                node_key: key(18).public(),
            },
        ),
    ];
    let mut ops = vec![
        (
            "transfer",
            Op::Transfer {
                to: key(2).public(),
                amount: 1_000,
            },
        ),
        (
            "transfer_max",
            Op::Transfer {
                to: key(3).public(),
                amount: u64::MAX,
            },
        ),
        (
            "put",
            Op::Put {
                key: b"invoice/2026-0001".to_vec(),
                value: (0..=255u8).collect(),
            },
        ),
        (
            "put_empty_value",
            Op::Put {
                key: b"k".to_vec(),
                value: Vec::new(),
            },
        ),
        (
            "delete",
            Op::Delete {
                key: b"invoice/2026-0001".to_vec(),
            },
        ),
        (
            "grant_member",
            Op::GrantAccount {
                account: key(4).public(),
                role: Role::Member,
            },
        ),
        (
            "grant_admin",
            Op::GrantAccount {
                account: key(5).public(),
                role: Role::Admin,
            },
        ),
        (
            "revoke",
            Op::RevokeAccount {
                account: key(6).public(),
            },
        ),
        (
            "approve",
            Op::Approve {
                change: Hash::digest(b"a change id"),
            },
        ),
    ];
    ops.extend(changes.into_iter().map(|(name, change)| {
        (
            name,
            Op::Propose {
                change: Box::new(change),
            },
        )
    }));
    ops
}

fn tx_vectors() -> Vec<Value> {
    ops()
        .into_iter()
        .enumerate()
        .map(|(i, (name, op))| {
            let signer = key(1);
            let nonce = if i == 1 { u64::MAX } else { i as u64 + 1 };
            let tx = Tx {
                chain_id: CHAIN_ID.into(),
                sender: signer.public(),
                nonce,
                op,
            };
            let unsigned = encoding::encode(&tx);
            let signing = signing_bytes(Domain::Tx, CHAIN_ID, &unsigned);
            let op = op_json(&tx.op);
            let signed = tx.sign(&signer);
            json!({
                "name": name,
                "seed": hex(&signer.seed()),
                "sender": pk(&signer.public()),
                "chain_id": CHAIN_ID,
                "nonce": nonce.to_string(),
                "op": op,
                "tx": hex(&unsigned),
                "signing_bytes": hex(&signing),
                "signature": signed.signature.to_hex(),
                "signed_tx": hex(&encoding::encode(&signed)),
                "hash": signed.hash().to_hex(),
            })
        })
        .collect()
}

fn rotation_vector() -> Value {
    let (old, new) = (key(21), key(22));
    let message = rotation_message(&old.public(), &new.public());
    json!({
        "old_seed": hex(&old.seed()),
        "old_key": pk(&old.public()),
        "new_key": pk(&new.public()),
        "chain_id": CHAIN_ID,
        "message": hex(&message),
        "signing_bytes": hex(&signing_bytes(Domain::Rotation, CHAIN_ID, &message)),
        "signature": old.sign(Domain::Rotation, CHAIN_ID, &message).to_hex(),
    })
}

fn vote_vectors() -> Vec<Value> {
    let signer = key(31);
    let votes = [
        Vote {
            kind: VoteKind::Precommit,
            height: 7,
            round: 2,
            value: Some(Hash::digest(b"block")),
        },
        Vote {
            kind: VoteKind::Prevote,
            height: u64::MAX,
            round: u32::MAX,
            value: None,
        },
    ];
    votes
        .iter()
        .map(|vote| {
            let message = vote.message();
            json!({
                "seed": hex(&signer.seed()),
                "public_key": pk(&signer.public()),
                "kind": match vote.kind { VoteKind::Prevote => "prevote", VoteKind::Precommit => "precommit" },
                "height": vote.height.to_string(),
                "round": vote.round,
                "value": vote.value.map(|h| h.to_hex()),
                "message": hex(&message),
                "signing_bytes": hex(&signing_bytes(Domain::Vote, CHAIN_ID, &message)),
                "signature": signer.sign(Domain::Vote, CHAIN_ID, &message).to_hex(),
            })
        })
        .collect()
}

fn header_vector() -> Value {
    let header = Header {
        chain_id: CHAIN_ID.into(),
        height: 42,
        time_ms: 1_790_000_000_123,
        prev_hash: Hash::digest(b"prev"),
        tx_root: Hash::digest(b"txs"),
        state_root: Hash::digest(b"state"),
        validators_hash: Hash::digest(b"validators"),
        next_validators_hash: Hash::digest(b"next validators"),
        proposer: key(41).public(),
        last_commit_hash: Hash::ZERO,
    };
    json!({
        "header": serde_json::to_value(&header).unwrap(),
        "encoding": hex(&encoding::encode(&header)),
        "hash": header.hash().to_hex(),
    })
}

fn state_key_vectors() -> Vec<Value> {
    let owner = key(51).public();
    let keys = [
        ("account", StateKey::Account(owner)),
        (
            "record",
            StateKey::Record {
                owner,
                key: b"invoice/2026-0001".to_vec(),
            },
        ),
        ("council", StateKey::Council),
        ("validators", StateKey::Validators),
        ("next_validators", StateKey::NextValidators),
        ("replicas", StateKey::Replicas),
    ];
    keys.iter()
        .map(|(name, k)| {
            json!({
                "name": name,
                "owner": pk(&owner),
                "encoding": hex(&encoding::encode(k)),
                "tree_key": hex(&k.key_hash().0),
            })
        })
        .collect()
}

fn vectors() -> Value {
    json!({
        "about": "Golden vectors of Tally's wire format, written by ledger/tests/wire_vectors.rs; see docs/wire-format.md",
        "domains": {
            "tx": Domain::Tx.tag(),
            "vote": Domain::Vote.tag(),
            "proposal": Domain::Proposal.tag(),
            "status": Domain::Status.tag(),
            "rotation": Domain::Rotation.tag(),
        },
        "transactions": tx_vectors(),
        "rotation_consent": rotation_vector(),
        "votes": vote_vectors(),
        "header": header_vector(),
        "state_keys": state_key_vectors(),
    })
}

#[test]
fn the_committed_vectors_are_what_the_code_makes() {
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test"),
    )
    .join("../clients/typescript/test/vectors.json");
    let made = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("TALLY_WRITE_VECTORS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &made).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; write it with TALLY_WRITE_VECTORS=1",
            path.display()
        )
    });
    assert!(
        committed == made,
        "{} differs from what the Rust encoding makes: either the wire format changed \
         (rewrite the file with TALLY_WRITE_VECTORS=1 and update the TypeScript client) \
         or the file was edited by hand",
        path.display()
    );
}

#[test]
fn every_op_kind_has_a_vector() {
    let names: Vec<&str> = ops().iter().map(|(_, op)| op.name()).collect();
    for kind in [
        "transfer", "put", "delete", "grant", "revoke", "propose", "approve",
    ] {
        assert!(names.contains(&kind), "no vector for {kind}");
    }
    let changes = ops()
        .into_iter()
        .filter_map(|(_, op)| match op {
            Op::Propose { change } => Some(change.name()),
            _ => None,
        })
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(changes.len(), 8, "one vector per change kind: {changes:?}");
}
