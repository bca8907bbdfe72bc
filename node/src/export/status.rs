//! `tally export status`: where the database stands, and how far behind
//! the node it is.

use serde::Serialize;

/// What `tally export status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ExportStatus {
    pub chain_id: String,
    pub genesis_hash: String,
    pub height: u64,
    pub block_hash: String,
    /// When the checkpoint last moved (RFC 3339, the database's clock).
    pub updated_at: String,
    pub schema_version: i32,
    /// The node's height, when asked with `--rpc`.
    pub chain_height: Option<u64>,
    /// Blocks the node has that the database lacks.
    pub lag_blocks: Option<u64>,
}

/// Reads the export's state from the database at `dsn`, and the node's
/// height from `rpc` if given.
pub async fn read(dsn: &str, rpc: Option<&str>) -> anyhow::Result<ExportStatus> {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}. Check --dsn"))?;
    let connection = tokio::spawn(connection);
    let row = client
        .query_opt(
            "SELECT chain_id, genesis_hash, height, block_hash,
                    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                    (SELECT max(version) FROM tally_schema)
             FROM tally_export",
            &[],
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "this database holds no Tally export ({e}); start one with `tally export postgres`"
            )
        })?
        .ok_or_else(|| anyhow::anyhow!("the export has not started in this database"))?;
    let hex = |b: &[u8]| tally_ledger::encoding::hex_serde::to_hex(b);
    let height: i64 = row.get(2);
    let height = u64::try_from(height).unwrap_or(0);
    let chain_height = match rpc {
        None => None,
        Some(url) => {
            let node = crate::client::connect(url)?;
            let status = tally_rpc::LedgerApiClient::status(&node)
                .await
                .map_err(|e| anyhow::anyhow!("cannot ask the node at {url}: {e}"))?;
            Some(status.latest_height.0)
        }
    };
    drop(client);
    let _ = connection.await;
    Ok(ExportStatus {
        chain_id: row.get(0),
        genesis_hash: hex(row.get(1)),
        height,
        block_hash: hex(row.get(3)),
        updated_at: row.get(4),
        schema_version: row.get::<_, Option<i32>>(5).unwrap_or(0),
        chain_height,
        lag_blocks: chain_height.map(|c| c.saturating_sub(height)),
    })
}

impl std::fmt::Display for ExportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chain        {} (genesis {})",
            self.chain_id, self.genesis_hash
        )?;
        writeln!(
            f,
            "exported to  height {} ({})",
            self.height, self.block_hash
        )?;
        writeln!(f, "updated at   {}", self.updated_at)?;
        writeln!(f, "schema       version {}", self.schema_version)?;
        match (self.chain_height, self.lag_blocks) {
            (Some(c), Some(lag)) => write!(f, "node height  {c}, {lag} blocks behind"),
            _ => write!(f, "node height  unknown (give --rpc to compare)"),
        }
    }
}
