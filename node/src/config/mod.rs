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
mod tests {
    use super::*;

    #[test]
    fn local_config_round_trips_through_toml() {
        let c = NodeConfig::local("node0", NodeRole::Validator, 26656, 26657);
        let back: NodeConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn bad_configs_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let mut c = NodeConfig::local("node0", NodeRole::Validator, 1, 2);
        c.rpc.max_batch_len = 0;
        std::fs::write(&path, c.to_toml()).unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("field `rpc.max_batch_len`: 0 is out of range (allowed 1 to 10000)"),
            "{err}"
        );

        let text = NodeConfig::local("n", NodeRole::Replica, 1, 2)
            .to_toml()
            .replace("moniker", "monicker");
        std::fs::write(&path, text).unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `monicker`"), "{err}");
    }

    /// A file is refused past the limit without being read to its end, even
    /// when its size says nothing (a device that never ends).
    #[test]
    fn files_over_the_limit_are_refused_without_reading_them_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, vec![b'#'; CONFIG_BYTES_MAX as usize + 1]).unwrap();
        let err = NodeConfig::load(&path).unwrap_err();
        assert!(
            matches!(err, ConfigError::TooLarge { len, .. } if len == CONFIG_BYTES_MAX + 1),
            "{err}"
        );
        let err = NodeConfig::load(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(err, ConfigError::TooLarge { len, .. } if len == CONFIG_BYTES_MAX + 1),
            "{err}"
        );
        assert!(
            err.to_string().contains("more than the limit of 262144"),
            "{err}"
        );
    }

    fn sample() -> NodeConfig {
        NodeConfig::local("node0", NodeRole::Validator, 26656, 26657)
    }

    /// Loads `config` through a file, as `tally start` does.
    fn load(config: &toml::Value) -> Result<NodeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
        NodeConfig::load(&path)
    }

    fn set(v: &mut toml::Value, path: &str, value: toml::Value) {
        let slot = path
            .split('.')
            .fold(v, |v, key| v.get_mut(key).expect("key exists"));
        *slot = value;
    }

    fn assert_refused(err: FieldError, path: &str, needle: &str) {
        assert_eq!(err.field, path, "{err}");
        assert!(
            err.problem.contains(needle),
            "{err} should mention {needle:?}"
        );
    }

    /// One case per bound of every numeric key: just outside the range is
    /// refused with the key and its range named, the bound itself loads.
    #[test]
    fn every_numeric_key_is_refused_just_outside_its_range() {
        // (key, lowest allowed, highest allowed)
        let table: &[(&str, i64, i64)] = &[
            ("p2p.max_connections", 1, 10_000),
            ("p2p.idle_timeout_ms", 1_000, 3_600_000),
            ("rpc.max_body_bytes", 1024, 64 << 20),
            ("rpc.max_connections", 1, 100_000),
            ("rpc.max_subscriptions_per_connection", 1, 100_000),
            ("rpc.max_batch_len", 1, 10_000),
            ("mempool.max_txs", 1, 10_000_000),
            ("mempool.max_bytes", 1024, 16 << 30),
            ("mempool.future_nonce_window", 1, 10_000),
            ("consensus.empty_block_interval_ms", 10, 60_000),
            ("consensus.block_fill_min_txs", 1, 100_000),
            ("consensus.clock_offset_ms", -86_400_000, 86_400_000),
        ];
        let base = toml::Value::try_from(sample()).unwrap();
        for &(path, min, max) in table {
            let allowed = format!("allowed {min} to {max}");
            for (value, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
                let mut v = base.clone();
                set(&mut v, path, value.into());
                match (ok, load(&v)) {
                    (true, Ok(_)) => {}
                    (true, Err(e)) => panic!("{path} = {value} refused: {e}"),
                    (false, Ok(_)) => panic!("{path} = {value} accepted"),
                    (false, Err(e)) => {
                        let message = e.to_string();
                        assert!(
                            message.contains(&format!(
                                "field `{path}`: {value} is out of range ({allowed})"
                            )),
                            "{message}"
                        );
                    }
                }
            }
        }
    }

    /// The string and list keys, each just outside and at its bound.
    #[test]
    fn strings_and_lists_are_refused_just_outside_their_range() {
        let check = |c: &NodeConfig, path: &str, needle: Option<&str>| match (needle, c.validate())
        {
            (None, Ok(())) => {}
            (None, Err(e)) => panic!("{path}: refused: {e}"),
            (Some(_), Ok(())) => panic!("{path}: accepted"),
            (Some(needle), Err(e)) => assert_refused(e, path, needle),
        };
        let mut c = sample();
        for (len, refused) in [(0, true), (1, false), (64, false), (65, true)] {
            c.moniker = "m".repeat(len);
            check(&c, "moniker", refused.then_some("allowed 1 to 64"));
        }

        let peer = tally_ledger::genesis::peer_id_from_node_key(
            &tally_ledger::Keypair::from_seed([3; 32]).public(),
        );
        let addr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}");
        let mut c = sample();
        c.p2p.persistent_peers = vec![addr.clone(); 1000];
        check(&c, "p2p.persistent_peers", None);
        c.p2p.persistent_peers.push(addr.clone());
        check(
            &c,
            "p2p.persistent_peers",
            Some("lists 1001 entries (allowed 0 to 1000)"),
        );
        c.p2p.persistent_peers = vec![addr, "/ip4/127.0.0.1/tcp/1".into()];
        check(
            &c,
            "p2p.persistent_peers[1]",
            Some("does not end with /p2p/"),
        );

        let mut c = sample();
        c.p2p.listen = "127.0.0.1:26656".into();
        check(&c, "p2p.listen", Some("not a multiaddress"));
        let mut c = sample();
        c.rpc.listen = "/ip4/127.0.0.1/tcp/1".into();
        check(&c, "rpc.listen", Some("not host:port"));
        let mut c = sample();
        c.metrics.listen = Some("localhost".into());
        check(&c, "metrics.listen", Some("not host:port"));
        c.metrics.listen = Some("127.0.0.1:0".into());
        check(&c, "metrics.listen", None);

        let mut c = sample();
        c.consensus.block_fill_wait_ms = 60_001;
        check(&c, "consensus.block_fill_wait_ms", Some("out of range"));
        c.consensus.block_fill_wait_ms = 60_000;
        check(&c, "consensus.block_fill_wait_ms", None);

        let mut c = sample();
        c.rpc.cors_origins = vec!["https://app.example.com:8080".into(); 100];
        check(&c, "rpc.cors_origins", None);
        c.rpc.cors_origins.push("http://localhost".into());
        check(
            &c,
            "rpc.cors_origins",
            Some("lists 101 entries (allowed 0 to 100)"),
        );
        for bad in [
            "*",
            "app.example.com",
            "https://",
            "https://a.example/path",
            "https://a b",
        ] {
            c.rpc.cors_origins = vec!["http://localhost:3000".into(), bad.into()];
            check(&c, "rpc.cors_origins[1]", Some("is not an origin"));
        }
        c.rpc.cors_origins = vec![format!("https://{}", "a".repeat(256 - 8))];
        check(&c, "rpc.cors_origins", None);
        c.rpc.cors_origins[0].push('a');
        check(&c, "rpc.cors_origins[0]", Some("at most 256 bytes"));

        let mut c = sample();
        for (len, refused) in [(15, true), (16, false), (256, false), (257, true)] {
            c.rpc.auth_token = Some("t".repeat(len));
            check(&c, "rpc.auth_token", refused.then_some("allowed 16 to 256"));
        }
        c.rpc.auth_token = Some("a token with spaces".into());
        check(&c, "rpc.auth_token", Some("printable ASCII"));
    }

    /// The keys bounded by the chain's parameters.
    #[test]
    fn limits_that_depend_on_genesis_hold_a_largest_transaction() {
        let params = Params::default();
        let tx = u64::from(params.tx_bytes_max);
        let mut c = sample();
        c.mempool.max_bytes = tx;
        c.rpc.max_body_bytes = (2 * tx + 1024) as u32;
        assert_eq!(c.validate_for(&params), Ok(()));

        c.mempool.max_bytes = tx - 1;
        assert_refused(
            c.validate_for(&params).unwrap_err(),
            "mempool.max_bytes",
            &format!(
                "{} is out of range (allowed {tx} to {})",
                tx - 1,
                16u64 << 30
            ),
        );
        c.mempool.max_bytes = tx;
        c.rpc.max_body_bytes -= 1;
        assert_refused(
            c.validate_for(&params).unwrap_err(),
            "rpc.max_body_bytes",
            &format!("allowed {} to {}", 2 * tx + 1024, 64u64 << 20),
        );
    }
}
