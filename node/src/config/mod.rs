//! `config.toml`: a node's local settings (addresses, limits, peers). Strict:
//! unknown keys are refused, every limit is range-checked.

use serde::{Deserialize, Serialize};
use std::path::Path;

use tally_ledger::genesis::Params;

/// A config file larger than this is refused before it is read.
pub const CONFIG_BYTES_MAX: u64 = 256 << 10;

/// Whether this node votes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Validator,
    Replica,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// A name for logs.
    pub moniker: String,
    pub role: NodeRole,
    pub p2p: P2pConfig,
    pub rpc: RpcConfig,
    pub mempool: MempoolConfig,
    pub consensus: ConsensusConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub explorer: ExplorerConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct P2pConfig {
    /// libp2p multiaddress to listen on, e.g. `/ip4/127.0.0.1/tcp/26656`.
    pub listen: String,
    /// Peers to keep connected to, as `/ip4/…/tcp/…/p2p/<PeerId>`.
    pub persistent_peers: Vec<String>,
    pub max_connections: u32,
    pub idle_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcConfig {
    /// `host:port`; 127.0.0.1 unless you mean to expose the node.
    pub listen: String,
    pub max_body_bytes: u32,
    pub max_connections: u32,
    pub max_subscriptions_per_connection: u32,
    pub max_batch_len: u32,
    /// Origins allowed by CORS; empty means none.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// If set, calls to submitting methods need `Authorization: Bearer
    /// <token>` on their HTTP request (or WebSocket upgrade request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MempoolConfig {
    pub max_txs: u32,
    pub max_bytes: u64,
    /// How far past a sender's next nonce a tx may wait in the pool.
    pub future_nonce_window: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusConfig {
    /// With no transactions pending, propose a block this often.
    pub empty_block_interval_ms: u64,
    /// As round 0's proposer, with fewer transactions than this pending,
    /// wait up to `block_fill_wait_ms` for more before proposing: fewer,
    /// fuller blocks under load. 1 proposes as soon as anything is pending.
    #[serde(default = "default_block_fill_min_txs")]
    pub block_fill_min_txs: u32,
    /// The longest such wait, from when the block could be proposed (or the
    /// first transaction arrived). At most `empty_block_interval_ms`.
    #[serde(default = "default_block_fill_wait_ms")]
    pub block_fill_wait_ms: u64,
    /// Added to this node's wall clock (block times it proposes and
    /// checks), to test a validator with a wrong clock. Keep 0; within
    /// ±1 day.
    #[serde(default)]
    pub clock_offset_ms: i64,
}

/// The largest `consensus.clock_offset_ms` either way: one day.
pub const CLOCK_OFFSET_MS_MAX: i64 = 86_400_000;

fn default_block_fill_min_txs() -> u32 {
    DEFAULT_BLOCK_FILL_MIN_TXS
}

fn default_block_fill_wait_ms() -> u64 {
    DEFAULT_BLOCK_FILL_WAIT_MS
}

/// Chosen from `tally bench load --sweep` (docs/performance.md).
pub const DEFAULT_BLOCK_FILL_MIN_TXS: u32 = 2_000;
pub const DEFAULT_BLOCK_FILL_WAIT_MS: u64 = 50;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` for Prometheus `/metrics`; absent means off.
    #[serde(default)]
    pub listen: Option<String>,
}

/// The block explorer: a web page compiled into the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplorerConfig {
    /// Serve it at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `host:port` to serve it on instead of the RPC port. Its origin is
    /// then allowed by the RPC server's CORS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The RPC URL the page calls when served on its own address (when the
    /// RPC listens on 0.0.0.0, say, and browsers reach it by a host name).
    /// By default `http://` and `rpc.listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_url: Option<String>,
}

impl Default for ExplorerConfig {
    fn default() -> Self {
        ExplorerConfig {
            enabled: true,
            listen: None,
            rpc_url: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// What is wrong with a config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config {path} is at least {len} bytes, more than the limit of {CONFIG_BYTES_MAX}")]
    TooLarge { path: String, len: u64 },
    #[error("config {path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
}

/// A key whose value a node cannot run with; `field` is its dotted path,
/// e.g. `rpc.max_batch_len`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

fn field(field: impl Into<String>, problem: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// The longest moniker, CORS origin and bearer token.
pub const MONIKER_BYTES_MAX: usize = 64;
pub const CORS_ORIGIN_BYTES_MAX: usize = 256;
pub const AUTH_TOKEN_BYTES_MAX: usize = 256;
/// The shortest bearer token: anything shorter is guessed too easily.
pub const AUTH_TOKEN_BYTES_MIN: usize = 16;
/// The most persistent peers, and the most CORS origins.
pub const PERSISTENT_PEERS_MAX: usize = 1_000;
pub const CORS_ORIGINS_MAX: usize = 100;
/// The largest mempool, and the largest RPC request body.
pub const MEMPOOL_BYTES_MAX: u64 = 16 << 30;
pub const RPC_BODY_BYTES_MAX: u64 = 64 << 20;
/// Extra room in an RPC request body around one hex-encoded transaction.
pub const RPC_BODY_FRAMING_BYTES: u64 = 1024;

impl NodeConfig {
    /// Defaults for a node listening on `p2p_port` and `rpc_port` of 127.0.0.1.
    pub fn local(moniker: &str, role: NodeRole, p2p_port: u16, rpc_port: u16) -> Self {
        NodeConfig {
            moniker: moniker.to_string(),
            role,
            p2p: P2pConfig {
                listen: format!("/ip4/127.0.0.1/tcp/{p2p_port}"),
                persistent_peers: vec![],
                max_connections: 64,
                idle_timeout_ms: 60_000,
            },
            rpc: RpcConfig {
                listen: format!("127.0.0.1:{rpc_port}"),
                max_body_bytes: 1 << 20,
                max_connections: 100,
                max_subscriptions_per_connection: 64,
                max_batch_len: 64,
                cors_origins: vec![],
                auth_token: None,
            },
            mempool: MempoolConfig {
                max_txs: 50_000,
                max_bytes: 64 << 20,
                future_nonce_window: 64,
            },
            consensus: ConsensusConfig {
                empty_block_interval_ms: 1_000,
                block_fill_min_txs: DEFAULT_BLOCK_FILL_MIN_TXS,
                block_fill_wait_ms: DEFAULT_BLOCK_FILL_WAIT_MS,
                clock_offset_ms: 0,
            },
            metrics: MetricsConfig::default(),
            explorer: ExplorerConfig::default(),
        }
    }

    /// Reads and validates a config file, reading no more than the size
    /// limit.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let bytes = tally_ledger::genesis::read_file_bounded(path, CONFIG_BYTES_MAX)
            .map_err(|e| ConfigError::Read {
                path: shown.clone(),
                reason: e.to_string(),
            })?
            .map_err(|len| ConfigError::TooLarge {
                path: shown.clone(),
                len,
            })?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: shown.clone(),
            reason,
        };
        let text = String::from_utf8(bytes).map_err(|e| invalid(e.to_string()))?;
        let config: NodeConfig =
            toml::from_str(&text).map_err(|e| invalid(e.to_string().trim().to_string()))?;
        config.validate().map_err(|e| invalid(e.to_string()))?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        // Invariant: the config is plain strings and numbers.
        #[allow(clippy::expect_used)]
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }

    /// Every key's range: what a node cannot run with is refused, naming
    /// the key and the values it may take.
    pub fn validate(&self) -> Result<(), FieldError> {
        let ranges: [(&str, u64, u64, u64); 12] = [
            (
                "p2p.max_connections",
                self.p2p.max_connections.into(),
                1,
                10_000,
            ),
            (
                "p2p.idle_timeout_ms",
                self.p2p.idle_timeout_ms,
                1_000,
                3_600_000,
            ),
            (
                "rpc.max_body_bytes",
                self.rpc.max_body_bytes.into(),
                1024,
                RPC_BODY_BYTES_MAX,
            ),
            (
                "rpc.max_connections",
                self.rpc.max_connections.into(),
                1,
                100_000,
            ),
            (
                "rpc.max_subscriptions_per_connection",
                self.rpc.max_subscriptions_per_connection.into(),
                1,
                100_000,
            ),
            (
                "rpc.max_batch_len",
                self.rpc.max_batch_len.into(),
                1,
                10_000,
            ),
            (
                "mempool.max_txs",
                self.mempool.max_txs.into(),
                1,
                10_000_000,
            ),
            (
                "mempool.max_bytes",
                self.mempool.max_bytes,
                1024,
                MEMPOOL_BYTES_MAX,
            ),
            // 0 would refuse every transaction, even the next nonce.
            (
                "mempool.future_nonce_window",
                self.mempool.future_nonce_window.into(),
                1,
                10_000,
            ),
            // Round 0's propose timeout includes this wait, so a long one
            // stalls every height whose proposer is down.
            (
                "consensus.empty_block_interval_ms",
                self.consensus.empty_block_interval_ms,
                10,
                60_000,
            ),
            (
                "consensus.block_fill_min_txs",
                self.consensus.block_fill_min_txs.into(),
                1,
                tally_ledger::genesis::BLOCK_TXS_MAX_CAP,
            ),
            // The core never waits past the empty-block interval after the
            // last commit (every validator's round-0 propose timeout
            // includes it), whatever this says.
            (
                "consensus.block_fill_wait_ms",
                self.consensus.block_fill_wait_ms,
                0,
                60_000,
            ),
        ];
        for (name, value, min, max) in ranges {
            if value < min || value > max {
                return Err(field(
                    name,
                    format!("{value} is out of range (allowed {min} to {max})"),
                ));
            }
        }
        let offset = self.consensus.clock_offset_ms;
        if offset.unsigned_abs() > CLOCK_OFFSET_MS_MAX.unsigned_abs() {
            return Err(field(
                "consensus.clock_offset_ms",
                format!("{offset} is out of range (allowed -{CLOCK_OFFSET_MS_MAX} to {CLOCK_OFFSET_MS_MAX})"),
            ));
        }
        let lists = [
            (
                "p2p.persistent_peers",
                self.p2p.persistent_peers.len(),
                PERSISTENT_PEERS_MAX,
            ),
            (
                "rpc.cors_origins",
                self.rpc.cors_origins.len(),
                CORS_ORIGINS_MAX,
            ),
        ];
        for (name, len, max) in lists {
            if len > max {
                return Err(field(
                    name,
                    format!("lists {len} entries (allowed 0 to {max})"),
                ));
            }
        }
        if self.moniker.is_empty() || self.moniker.len() > MONIKER_BYTES_MAX {
            return Err(field(
                "moniker",
                format!(
                    "is {} bytes long (allowed 1 to {MONIKER_BYTES_MAX})",
                    self.moniker.len()
                ),
            ));
        }
        self.p2p.listen.parse::<libp2p::Multiaddr>().map_err(|e| {
            field(
                "p2p.listen",
                format!(
                    "{:?} is not a multiaddress like /ip4/127.0.0.1/tcp/26656: {e}",
                    self.p2p.listen
                ),
            )
        })?;
        for (i, peer) in self.p2p.persistent_peers.iter().enumerate() {
            crate::network::parse_peer_addr(peer)
                .map_err(|e| field(format!("p2p.persistent_peers[{i}]"), e))?;
        }
        self.rpc
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| {
                field(
                    "rpc.listen",
                    format!("{:?} is not host:port: {e}", self.rpc.listen),
                )
            })?;
        for (i, origin) in self.rpc.cors_origins.iter().enumerate() {
            check_origin(origin).map_err(|p| field(format!("rpc.cors_origins[{i}]"), p))?;
        }
        if let Some(token) = &self.rpc.auth_token {
            check_token(token).map_err(|p| field("rpc.auth_token", p))?;
        }
        if let Some(m) = &self.metrics.listen {
            m.parse::<std::net::SocketAddr>()
                .map_err(|e| field("metrics.listen", format!("{m:?} is not host:port: {e}")))?;
        }
        if let Some(m) = &self.explorer.listen {
            m.parse::<std::net::SocketAddr>()
                .map_err(|e| field("explorer.listen", format!("{m:?} is not host:port: {e}")))?;
        }
        if let Some(url) = &self.explorer.rpc_url {
            check_origin(url).map_err(|p| {
                field(
                    "explorer.rpc_url",
                    format!("{p}; the page calls the RPC at this origin"),
                )
            })?;
        }
        Ok(())
    }

    /// The keys whose range depends on the chain's parameters: the mempool
    /// and an RPC request must each hold a transaction of the largest size.
    pub fn validate_for(&self, params: &Params) -> Result<(), FieldError> {
        let tx_bytes_max = u64::from(params.tx_bytes_max);
        if self.mempool.max_bytes < tx_bytes_max {
            return Err(field(
                "mempool.max_bytes",
                format!(
                    "{} is out of range (allowed {tx_bytes_max} to {MEMPOOL_BYTES_MAX}); the pool must hold a transaction of the genesis tx_bytes_max",
                    self.mempool.max_bytes,
                ),
            ));
        }
        // A transaction travels hex-encoded in a JSON request.
        let body_min = 2 * tx_bytes_max + RPC_BODY_FRAMING_BYTES;
        if u64::from(self.rpc.max_body_bytes) < body_min {
            return Err(field(
                "rpc.max_body_bytes",
                format!(
                    "{} is out of range (allowed {body_min} to {RPC_BODY_BYTES_MAX}); a request must hold a hex-encoded transaction of the genesis tx_bytes_max",
                    self.rpc.max_body_bytes,
                ),
            ));
        }
        Ok(())
    }
}

/// A CORS origin: `http://` or `https://`, a host and an optional port, no
/// path. A wildcard is refused: the server lists origins one by one.
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("{origin:?} is not an origin like https://app.example.com (a wildcard is not supported; list each origin)")
        })?;
    if origin.len() > CORS_ORIGIN_BYTES_MAX
        || rest.is_empty()
        || !rest.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
    {
        return Err(format!(
            "{origin:?} is not an origin like https://app.example.com:8080 (scheme, host and port only, at most {CORS_ORIGIN_BYTES_MAX} bytes)"
        ));
    }
    Ok(())
}

/// A bearer token: printable ASCII without spaces, long enough not to guess.
fn check_token(token: &str) -> Result<(), String> {
    if token.len() < AUTH_TOKEN_BYTES_MIN || token.len() > AUTH_TOKEN_BYTES_MAX {
        return Err(format!(
            "is {} bytes long (allowed {AUTH_TOKEN_BYTES_MIN} to {AUTH_TOKEN_BYTES_MAX})",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may hold only printable ASCII characters without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
