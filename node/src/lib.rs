//! # tally-node
//!
//! The `tally` binary's library: configuration, node homes, key files and
//! the commands that create them. Later layers (network, mempool, consensus
//! driver, RPC server) live here too; `consensus` and `ledger` stay free of
//! I/O.
//!
//! ```
//! use tally_node::testnet::{generate, TestnetSpec};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let spec = TestnetSpec {
//!     chain_id: "doc-net".into(),
//!     validators: 4,
//!     replicas: 1,
//!     accounts: 2,
//!     base_port: 36656,
//! };
//! let genesis = generate(&spec, &dir.path().join("net")).unwrap();
//! assert_eq!(genesis.validators.len(), 4);
//! let home = tally_node::home::load(&dir.path().join("net/node0")).unwrap();
//! assert!(home.validator_key.is_some());
//! ```

#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod candidates;
pub mod client;
pub mod config;
pub mod devnet;
pub mod driver;
pub mod explorer;
pub mod export;
pub mod handle;
pub mod home;
pub mod home_check;
pub mod keys;
pub mod mempool;
pub mod metrics;
pub mod network;
pub mod node;
pub mod node_core;
pub mod rpc_backend;
pub mod serve;
pub mod sig_checks;
pub mod sync;
#[cfg(feature = "byzantine")]
pub mod tap;
pub mod testnet;
pub mod version;
pub mod wire;

/// Threads the node's work may use at once, when set by `tally start
/// --threads`.
static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Limits the node's parallel work (runtime workers, signature checks at
/// once) to `threads`. Set once, before the node starts; later calls are
/// ignored.
pub fn set_threads(threads: usize) {
    let _ = THREADS.set(threads.max(1));
}

/// How many cores the node spreads its work over: `set_threads`, or every
/// core the process may use.
pub fn cores() -> usize {
    THREADS.get().copied().unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}

/// An error and its causes on one line, as `{:#}` prints them, but leaving
/// out a cause that the message before it already quotes (an error that
/// embeds its source in its own message would otherwise print it twice).
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    let mut previous = out.clone();
    for cause in e.chain().skip(1) {
        let message = cause.to_string();
        if !previous.contains(&message) {
            out.push_str(": ");
            out.push_str(&message);
        }
        previous = message;
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("disk said no")]
    struct Disk;

    #[derive(Debug, thiserror::Error)]
    #[error("storage failed: {0}")]
    struct Storage(#[from] Disk);

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let e = anyhow::Error::from(Storage(Disk)).context("the consensus task died");
        assert_eq!(
            format!("{e:#}"),
            "the consensus task died: storage failed: disk said no: disk said no"
        );
        assert_eq!(
            super::error_chain(&e),
            "the consensus task died: storage failed: disk said no"
        );
        let plain = anyhow::anyhow!("no such file").context("cannot read config.toml");
        assert_eq!(
            super::error_chain(&plain),
            "cannot read config.toml: no such file"
        );
    }
}
