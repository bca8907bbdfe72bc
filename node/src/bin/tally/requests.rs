//! `tally tx` and `tally query`: turn the command line into the client's
//! requests.

use anyhow::Context;

use tally_ledger::crypto::Signature;
use tally_ledger::genesis::node_key_from_peer_id;
use tally_ledger::governance::Change;
use tally_ledger::{PublicKey, Role};
use tally_node::client::{Consent, Query, TxKind};
use tally_rpc::types::BlockId;

use crate::cli::{QueryArgs, QueryCommand, ReplicaCommand, TxArgs, TxCommand, ValidatorCommand};

/// Reads a hex public key given on the command line.
pub fn public_key(s: &str) -> anyhow::Result<PublicKey> {
    PublicKey::from_hex(s).map_err(|e| anyhow::anyhow!("public key {s:?}: {e}"))
}

/// The transaction a `tally tx` command asks for, with its common flags.
pub fn tx_request(command: TxCommand) -> anyhow::Result<(TxArgs, TxKind)> {
    Ok(match command {
        TxCommand::Transfer { common, to, amount } => (
            common,
            TxKind::Transfer {
                to: public_key(&to)?,
                amount,
            },
        ),
        TxCommand::Put {
            common,
            name,
            value,
        } => (
            common,
            TxKind::Put {
                name: name.into_bytes(),
                value: value.into_bytes(),
            },
        ),
        TxCommand::Delete { common, name } => (
            common,
            TxKind::Delete {
                name: name.into_bytes(),
            },
        ),
        TxCommand::Grant {
            common,
            account,
            role,
        } => {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                "member" => Role::Member,
                other => anyhow::bail!("--role {other:?}: use admin or member"),
            };
            (
                common,
                TxKind::Grant {
                    account: public_key(&account)?,
                    role,
                },
            )
        }
        TxCommand::Revoke { common, account } => (
            common,
            TxKind::Revoke {
                account: public_key(&account)?,
            },
        ),
        TxCommand::Approve { common, change } => (
            common,
            TxKind::Approve {
                change: tally_ledger::Hash::from_hex(&change)
                    .map_err(|e| anyhow::anyhow!("change id {change:?}: {e}"))?,
            },
        ),
        TxCommand::Validator { command } => validator_request(command)?,
        TxCommand::Replica { command } => match command {
            ReplicaCommand::Add {
                common,
                name,
                peer_id,
            } => (
                common,
                TxKind::Propose(Change::AddReplica {
                    name,
                    node_key: node_key(&peer_id)?,
                }),
            ),
            ReplicaCommand::Remove { common, peer_id } => (
                common,
                TxKind::Propose(Change::RemoveReplica {
                    node_key: node_key(&peer_id)?,
                }),
            ),
        },
    })
}

/// Reads a PeerId given on the command line as the node key it names.
fn node_key(peer_id: &str) -> anyhow::Result<PublicKey> {
    node_key_from_peer_id(peer_id).map_err(|e| anyhow::anyhow!("--peer-id {peer_id:?}: {e}"))
}

fn validator_request(command: ValidatorCommand) -> anyhow::Result<(TxArgs, TxKind)> {
    Ok(match command {
        ValidatorCommand::Add {
            common,
            name,
            public_key: key,
            peer_id,
            power,
        } => (
            common,
            TxKind::Propose(Change::AddValidator {
                name,
                public_key: public_key(&key)?,
                node_key: node_key(&peer_id)?,
                power,
            }),
        ),
        ValidatorCommand::Remove {
            common,
            public_key: key,
        } => (
            common,
            TxKind::Propose(Change::RemoveValidator {
                public_key: public_key(&key)?,
            }),
        ),
        ValidatorCommand::Power {
            common,
            public_key: key,
            power,
        } => (
            common,
            TxKind::Propose(Change::SetPower {
                public_key: public_key(&key)?,
                power,
            }),
        ),
        ValidatorCommand::Rotate {
            common,
            public_key: key,
            new_key,
            old_key_file,
            consent,
        } => {
            let consent = match (old_key_file, consent) {
                (Some(file), None) => Consent::KeyFile(file),
                (None, Some(sig)) => Consent::Signature(
                    Signature::from_hex(&sig)
                        .map_err(|e| anyhow::anyhow!("--consent {sig:?}: {e}"))?,
                ),
                _ => anyhow::bail!(
                    "a rotation needs the old key's consent: give --old-key-file or --consent"
                ),
            };
            (
                common,
                TxKind::Rotate {
                    public_key: public_key(&key)?,
                    new_key: public_key(&new_key)?,
                    consent,
                },
            )
        }
    })
}

/// The query a `tally query` command asks for, with its common flags.
pub fn query_request(command: QueryCommand) -> anyhow::Result<(QueryArgs, Query)> {
    Ok(match command {
        QueryCommand::Status { common } => (common, Query::Status),
        QueryCommand::Block { common, height } => {
            let id = if height == "latest" {
                BlockId::Latest
            } else {
                BlockId::Height(
                    height
                        .parse()
                        .with_context(|| format!("{height:?} is not a height"))?,
                )
            };
            (common, Query::Block { id })
        }
        QueryCommand::Tx { common, hash } => (common, Query::Tx { hash }),
        QueryCommand::Account {
            common,
            public_key: k,
            prove,
            genesis,
        } => (
            common,
            Query::Account {
                key: public_key(&k)?,
                prove,
                genesis,
            },
        ),
        QueryCommand::Record {
            common,
            owner,
            name,
            prove,
            genesis,
        } => (
            common,
            Query::Record {
                owner: public_key(&owner)?,
                name: name.into_bytes(),
                prove,
                genesis,
            },
        ),
        QueryCommand::Validators { common, height } => (common, Query::Validators { height }),
        QueryCommand::Governance { common } => (common, Query::Governance),
        QueryCommand::Change { common, id } => (common, Query::Change { id }),
    })
}
