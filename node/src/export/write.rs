//! One verified block as rows, written in one PostgreSQL transaction with
//! the checkpoint, so that a block is in the database whole or not at all.
//!
//! Rows go in with one `INSERT … SELECT FROM unnest(…)` a table: a block of
//! thousands of transactions costs a handful of statements.

use tokio_postgres::{Client, Transaction};

use tally_ledger::describe::op_json;
use tally_ledger::execution::StateChange;
use tally_ledger::genesis::Genesis;
use tally_ledger::hash::Hash;
use tally_ledger::state::{AccountState, StateKey};
use tally_ledger::types::{Block, CommitCertificate, ValidatorSet};

/// Where the database stands: the last block written and its hash (height
/// 0 and the genesis hash before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub height: u64,
    pub hash: Hash,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the database holds chain {found:?} (genesis {found_hash}), not {expected:?} (genesis {expected_hash}): point --dsn at another database")]
    OtherChain {
        found: String,
        found_hash: Hash,
        expected: String,
        expected_hash: Hash,
    },
    #[error("the checkpoint moved to height {found} while this exporter wrote {expected}: is another exporter writing to this database?")]
    Raced { expected: u64, found: u64 },
    #[error("the database holds an invalid {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("{}", sql_detail(.0))]
    Sql(#[from] tokio_postgres::Error),
}

/// A PostgreSQL error with what lies under it (the server's message, the
/// parameter that would not convert), which its own text leaves out.
pub fn sql_detail(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn i64_of(v: u64, what: &'static str) -> Result<i64, WriteError> {
    i64::try_from(v).map_err(|_| WriteError::Corrupt {
        what,
        detail: format!("{v} does not fit PostgreSQL's bigint"),
    })
}

fn hash_of(bytes: &[u8], what: &'static str) -> Result<Hash, WriteError> {
    <[u8; 32]>::try_from(bytes)
        .map(Hash)
        .map_err(|_| WriteError::Corrupt {
            what,
            detail: format!("{} bytes, not 32", bytes.len()),
        })
}

/// Reads the checkpoint, or starts the export of `genesis`: its accounts at
/// height 0 and the checkpoint at the genesis hash, in one transaction.
pub async fn checkpoint(client: &mut Client, genesis: &Genesis) -> Result<Checkpoint, WriteError> {
    let genesis_hash = genesis.hash();
    let row = client
        .query_opt(
            "SELECT chain_id, genesis_hash, height, block_hash FROM tally_export",
            &[],
        )
        .await?;
    if let Some(row) = row {
        let chain_id: String = row.get(0);
        let found_hash = hash_of(row.get(1), "genesis hash")?;
        if chain_id != genesis.chain_id || found_hash != genesis_hash {
            return Err(WriteError::OtherChain {
                found: chain_id,
                found_hash,
                expected: genesis.chain_id.clone(),
                expected_hash: genesis_hash,
            });
        }
        let height: i64 = row.get(2);
        return Ok(Checkpoint {
            height: u64::try_from(height).map_err(|_| WriteError::Corrupt {
                what: "checkpoint",
                detail: format!("height {height}"),
            })?,
            hash: hash_of(row.get(3), "checkpoint hash")?,
        });
    }
    let tx = client.transaction().await?;
    let changes: Vec<StateChange> = genesis
        .accounts
        .iter()
        .map(|a| {
            let state = AccountState {
                role: a.role,
                active: true,
                balance: a.balance,
                nonce: 0,
            };
            let value = tally_ledger::encoding::encode(&state);
            (StateKey::Account(a.public_key), Some(value))
        })
        .collect();
    insert_changes(&tx, 0, &changes).await?;
    tx.execute(
        "INSERT INTO tally_export (chain_id, genesis_hash, height, block_hash) VALUES ($1, $2, 0, $2)",
        &[&genesis.chain_id, &genesis_hash.0.as_slice()],
    )
    .await?;
    tx.commit().await?;
    Ok(Checkpoint {
        height: 0,
        hash: genesis_hash,
    })
}

/// The hash the database holds for `height`, if it has that block.
pub async fn block_hash(client: &Client, height: u64) -> Result<Option<Hash>, WriteError> {
    let row = client
        .query_opt(
            "SELECT hash FROM blocks WHERE height = $1",
            &[&i64_of(height, "height")?],
        )
        .await?;
    row.map(|r| hash_of(r.get(0), "block hash")).transpose()
}

/// A verified block and what it did, ready to write.
#[derive(Debug)]
pub struct Verified<'a> {
    pub block: &'a Block,
    pub cert: &'a CommitCertificate,
    /// The set that decided the block (names the certificate's signers).
    pub set: &'a ValidatorSet,
    pub size_bytes: usize,
    pub changes: &'a [StateChange],
}

/// Writes one block and moves the checkpoint from `from` to it, in one
/// transaction. The checkpoint moves only if it still stands at `from`.
pub async fn write_block(
    client: &mut Client,
    from: Checkpoint,
    v: &Verified<'_>,
) -> Result<Checkpoint, WriteError> {
    let block = v.block;
    let h = &block.header;
    let height = i64_of(h.height, "height")?;
    let hash = block.hash();
    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO blocks (height, hash, prev_hash, time, time_ms, proposer, round, tx_count,
                             size_bytes, tx_root, state_root, validators_hash)
         VALUES ($1, $2, $3, to_timestamp($4::bigint / 1000.0), $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &height,
            &hash.0.as_slice(),
            &h.prev_hash.0.as_slice(),
            &i64_of(h.time_ms, "block time")?,
            &h.proposer.0.as_slice(),
            &i32::try_from(v.cert.round).unwrap_or(i32::MAX),
            &i32::try_from(block.txs.len()).unwrap_or(i32::MAX),
            &i32::try_from(v.size_bytes).unwrap_or(i32::MAX),
            &h.tx_root.0.as_slice(),
            &h.state_root.0.as_slice(),
            &h.validators_hash.0.as_slice(),
        ],
    )
    .await?;
    insert_signers(&tx, height, v).await?;
    insert_transactions(&tx, height, block).await?;
    insert_changes(&tx, height, v.changes).await?;
    let moved = tx
        .execute(
            "UPDATE tally_export SET height = $1, block_hash = $2, updated_at = now()
             WHERE height = $3",
            &[&height, &hash.0.as_slice(), &i64_of(from.height, "height")?],
        )
        .await?;
    if moved != 1 {
        let found: i64 = tx
            .query_one("SELECT height FROM tally_export", &[])
            .await?
            .get(0);
        return Err(WriteError::Raced {
            expected: from.height,
            found: u64::try_from(found).unwrap_or(0),
        });
    }
    tx.commit().await?;
    Ok(Checkpoint {
        height: h.height,
        hash,
    })
}

async fn insert_signers(
    tx: &Transaction<'_>,
    height: i64,
    v: &Verified<'_>,
) -> Result<(), WriteError> {
    let mut index = Vec::new();
    let mut key = Vec::new();
    let mut power = Vec::new();
    for sig in &v.cert.signatures {
        // The certificate was verified against this set: every index is in it.
        let Some(validator) = v.set.get(sig.validator_index) else {
            continue;
        };
        index.push(i32::try_from(sig.validator_index).unwrap_or(i32::MAX));
        key.push(validator.public_key.0.to_vec());
        power.push(validator.power.to_string());
    }
    tx.execute(
        "INSERT INTO block_signers (height, validator_index, public_key, power)
         SELECT $1, i, k, p::numeric FROM unnest($2::integer[], $3::bytea[], $4::text[]) AS s(i, k, p)",
        &[&height, &index, &key, &power],
    )
    .await?;
    Ok(())
}

async fn insert_transactions(
    tx: &Transaction<'_>,
    height: i64,
    block: &Block,
) -> Result<(), WriteError> {
    let n = block.txs.len();
    let (mut hash, mut position, mut sender) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut nonce, mut kind, mut fields) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (i, signed) in block.txs.iter().enumerate() {
        hash.push(signed.hash().0.to_vec());
        position.push(i32::try_from(i).unwrap_or(i32::MAX));
        sender.push(signed.tx.sender.0.to_vec());
        nonce.push(signed.tx.nonce.to_string());
        kind.push(signed.tx.op.name());
        fields.push(op_json(&signed.tx.op));
    }
    // Every transaction of a committed block applied: a block with one
    // that fails is invalid, so none is ever stored.
    tx.execute(
        "INSERT INTO transactions (hash, height, position, sender, nonce, kind, fields, result)
         SELECT h, $1, p, s, n::numeric, k, f, 'applied'
         FROM unnest($2::bytea[], $3::integer[], $4::bytea[], $5::text[], $6::text[], $7::jsonb[])
              AS t(h, p, s, n, k, f)",
        &[&height, &hash, &position, &sender, &nonce, &kind, &fields],
    )
    .await?;
    Ok(())
}

/// The name a governance or membership entry has in `state_versions`.
fn entry_name(key: &StateKey) -> Option<String> {
    match key {
        StateKey::Account(_) | StateKey::Record { .. } => None,
        StateKey::Council => Some("council".into()),
        StateKey::Change(id) => Some(format!("change:{}", id.to_hex())),
        StateKey::Validators => Some("validators".into()),
        StateKey::NextValidators => Some("next_validators".into()),
        StateKey::Replicas => Some("replicas".into()),
    }
}

async fn insert_changes(
    tx: &Transaction<'_>,
    height: i64,
    changes: &[StateChange],
) -> Result<(), WriteError> {
    let (mut acc_key, mut role, mut active, mut balance, mut nonce) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut owner, mut rec_key, mut rec_value) = (Vec::new(), Vec::new(), Vec::new());
    let (mut entry, mut entry_value) = (Vec::new(), Vec::new());
    for (key, value) in changes {
        match key {
            StateKey::Account(pk) => {
                // Accounts are never removed from the state.
                let Some(bytes) = value else { continue };
                let state = AccountState::decode(bytes).map_err(|e| WriteError::Corrupt {
                    what: "account",
                    detail: format!("{pk}: {e}"),
                })?;
                acc_key.push(pk.0.to_vec());
                role.push(state.role.as_str());
                active.push(state.active);
                balance.push(state.balance.to_string());
                nonce.push(state.nonce.to_string());
            }
            StateKey::Record { owner: o, key: k } => {
                owner.push(o.0.to_vec());
                rec_key.push(k.clone());
                rec_value.push(value.clone());
            }
            other => {
                if let Some(name) = entry_name(other) {
                    entry.push(name);
                    entry_value.push(value.clone());
                }
            }
        }
    }
    if !acc_key.is_empty() {
        tx.execute(
            "INSERT INTO account_versions (public_key, height, role, active, balance, nonce)
             SELECT k, $1, r, a, b::numeric, n::numeric
             FROM unnest($2::bytea[], $3::text[], $4::boolean[], $5::text[], $6::text[]) AS t(k, r, a, b, n)",
            &[&height, &acc_key, &role, &active, &balance, &nonce],
        )
        .await?;
    }
    if !owner.is_empty() {
        tx.execute(
            "INSERT INTO record_versions (owner, key, height, value)
             SELECT o, k, $1, v FROM unnest($2::bytea[], $3::bytea[], $4::bytea[]) AS t(o, k, v)",
            &[&height, &owner, &rec_key, &rec_value],
        )
        .await?;
    }
    if !entry.is_empty() {
        tx.execute(
            "INSERT INTO state_versions (entry, height, value)
             SELECT e, $1, v FROM unnest($2::text[], $3::bytea[]) AS t(e, v)",
            &[&height, &entry, &entry_value],
        )
        .await?;
    }
    Ok(())
}
