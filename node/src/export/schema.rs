//! The PostgreSQL schema of the export, as versioned migrations that the
//! exporter applies itself (docs/postgres.md describes every table).
//!
//! Each migration runs in its own transaction under an advisory lock, so
//! two exporters starting at once cannot both apply it, and a migration
//! that fails leaves the schema at the version before it.

use tokio_postgres::Client;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock held while migrating ("tally" in ASCII).
const MIGRATION_LOCK: i64 = 0x0074_616c_6c79;

/// Migrations in order; the version of the `i`th is `i + 1`.
const MIGRATIONS: &[&str] = &[V1];

const V1: &str = r#"
CREATE TABLE tally_export (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    chain_id     text NOT NULL,
    genesis_hash bytea NOT NULL,
    height       bigint NOT NULL,
    block_hash   bytea NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE blocks (
    height          bigint PRIMARY KEY,
    hash            bytea NOT NULL UNIQUE,
    prev_hash       bytea NOT NULL,
    time            timestamptz NOT NULL,
    time_ms         bigint NOT NULL,
    proposer        bytea NOT NULL,
    round           integer NOT NULL,
    tx_count        integer NOT NULL,
    size_bytes      integer NOT NULL,
    tx_root         bytea NOT NULL,
    state_root      bytea NOT NULL,
    validators_hash bytea NOT NULL
);

CREATE TABLE block_signers (
    height          bigint NOT NULL REFERENCES blocks,
    validator_index integer NOT NULL,
    public_key      bytea NOT NULL,
    power           numeric(20, 0) NOT NULL,
    PRIMARY KEY (height, validator_index)
);
CREATE INDEX block_signers_key ON block_signers (public_key, height);

CREATE TABLE transactions (
    hash     bytea PRIMARY KEY,
    height   bigint NOT NULL REFERENCES blocks,
    position integer NOT NULL,
    sender   bytea NOT NULL,
    nonce    numeric(20, 0) NOT NULL,
    kind     text NOT NULL,
    fields   jsonb NOT NULL,
    result   text NOT NULL,
    UNIQUE (height, position)
);
CREATE INDEX transactions_sender ON transactions (sender, height);
CREATE INDEX transactions_kind ON transactions (kind, height);

CREATE TABLE account_versions (
    public_key bytea NOT NULL,
    height     bigint NOT NULL,
    role       text NOT NULL,
    active     boolean NOT NULL,
    balance    numeric(20, 0) NOT NULL,
    nonce      numeric(20, 0) NOT NULL,
    PRIMARY KEY (public_key, height)
);

CREATE TABLE record_versions (
    owner  bytea NOT NULL,
    key    bytea NOT NULL,
    height bigint NOT NULL,
    value  bytea,
    PRIMARY KEY (owner, key, height)
);

CREATE TABLE state_versions (
    entry  text NOT NULL,
    height bigint NOT NULL,
    value  bytea,
    PRIMARY KEY (entry, height)
);

CREATE VIEW accounts AS
    SELECT DISTINCT ON (public_key)
        public_key, role, active, balance, nonce, height AS updated_at_height
    FROM account_versions
    ORDER BY public_key, height DESC;

CREATE VIEW records AS
    SELECT owner, key, value, updated_at_height FROM (
        SELECT DISTINCT ON (owner, key) owner, key, value, height AS updated_at_height
        FROM record_versions
        ORDER BY owner, key, height DESC
    ) latest
    WHERE value IS NOT NULL;

CREATE VIEW grants AS
    SELECT public_key, height, role, active FROM (
        SELECT public_key, height, role, active,
               lag(role) OVER w AS role_before, lag(active) OVER w AS active_before
        FROM account_versions
        WINDOW w AS (PARTITION BY public_key ORDER BY height)
    ) versions
    WHERE role IS DISTINCT FROM role_before OR active IS DISTINCT FROM active_before;
"#;

/// Brings the schema to [`SCHEMA_VERSION`]; returns the migrations
/// applied. A database at a newer version is refused.
pub async fn migrate(client: &mut Client) -> Result<Vec<i32>, MigrationError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS tally_schema (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(MigrationError::Sql)?;
    let mut applied = Vec::new();
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await.map_err(MigrationError::Sql)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(MigrationError::Sql)?;
        let newest: Option<i32> = tx
            .query_one("SELECT max(version) FROM tally_schema", &[])
            .await
            .map_err(MigrationError::Sql)?
            .get(0);
        if let Some(newest) = newest.filter(|v| *v > SCHEMA_VERSION) {
            return Err(MigrationError::Newer {
                found: newest,
                known: SCHEMA_VERSION,
            });
        }
        if newest.unwrap_or(0) >= version {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|e| MigrationError::Failed { version, error: e })?;
        tx.execute(
            "INSERT INTO tally_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(MigrationError::Sql)?;
        tx.commit().await.map_err(MigrationError::Sql)?;
        applied.push(version);
    }
    Ok(applied)
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error(
        "the database's schema is version {found}, newer than this build's {known}: upgrade tally"
    )]
    Newer { found: i32, known: i32 },
    #[error("migration {version} failed: {error}")]
    Failed {
        version: i32,
        error: tokio_postgres::Error,
    },
    #[error("{0}")]
    Sql(tokio_postgres::Error),
}
