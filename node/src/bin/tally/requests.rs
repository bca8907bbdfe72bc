//! `tally tx` and `tally query`: turn the command line into the client's
//! requests.

use anyhow::Context;

use tally_ledger::{PublicKey, Role};
use tally_node::client::{Query, TxKind};
use tally_rpc::types::BlockId;

use crate::cli::{QueryArgs, QueryCommand, TxArgs, TxCommand};

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
