//! `config.toml`: a node's local settings (addresses, limits, peers). Strict:
//! unknown keys are refused, every limit is range-checked.

use serde::{Deserialize, Serialize};
use std::path::Path;

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
}

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
    #[error("config {path} is {len} bytes, more than the limit of {CONFIG_BYTES_MAX}")]
    TooLarge { path: String, len: u64 },
    #[error("config {path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
}

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
            },
            metrics: MetricsConfig::default(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let read_err = |e: std::io::Error| ConfigError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > CONFIG_BYTES_MAX {
            return Err(ConfigError::TooLarge { path: shown, len });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let config: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: shown.clone(),
            reason: e.to_string().trim().to_string(),
        })?;
        config.validate().map_err(|reason| ConfigError::Invalid {
            path: shown,
            reason,
        })?;
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        // Invariant: the config is plain strings and numbers.
        #[allow(clippy::expect_used)]
        toml::to_string_pretty(self).expect("config serialises to TOML")
    }

    /// Range checks; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let ranges: [(&str, u64, u64, u64); 9] = [
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
                64 << 20,
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
            ("mempool.max_bytes", self.mempool.max_bytes, 1024, 16 << 30),
            (
                "consensus.empty_block_interval_ms",
                self.consensus.empty_block_interval_ms,
                10,
                3_600_000,
            ),
        ];
        for (name, value, min, max) in ranges {
            if value < min || value > max {
                return Err(format!(
                    "{name} = {value} is out of range (allowed {min} to {max})"
                ));
            }
        }
        if self.moniker.is_empty() || self.moniker.len() > 64 {
            return Err("moniker must be 1 to 64 characters".into());
        }
        if self.p2p.persistent_peers.len() > 1_000 {
            return Err("p2p.persistent_peers lists more than 1000 peers".into());
        }
        if !self.p2p.listen.starts_with('/') {
            return Err(format!(
                "p2p.listen = {:?} is not a multiaddress like /ip4/127.0.0.1/tcp/26656",
                self.p2p.listen
            ));
        }
        self.rpc
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("rpc.listen = {:?} is not host:port: {e}", self.rpc.listen))?;
        if let Some(m) = &self.metrics.listen {
            m.parse::<std::net::SocketAddr>()
                .map_err(|e| format!("metrics.listen = {m:?} is not host:port: {e}"))?;
        }
        Ok(())
    }
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
            err.contains("rpc.max_batch_len = 0 is out of range"),
            "{err}"
        );

        let text = NodeConfig::local("n", NodeRole::Replica, 1, 2)
            .to_toml()
            .replace("moniker", "monicker");
        std::fs::write(&path, text).unwrap();
        let err = NodeConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("unknown field `monicker`"), "{err}");

        std::fs::write(&path, vec![b'#'; CONFIG_BYTES_MAX as usize + 1]).unwrap();
        assert!(matches!(
            NodeConfig::load(&path),
            Err(ConfigError::TooLarge { .. })
        ));
    }
}
