//! A node's home folder: `config.toml`, `genesis.json`, `node_key.pem`,
//! `validator_key.pem` (validators only) and `data/` (the database).
//! [`load`] checks that all of it fits together before a node starts.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

use tally_ledger::genesis::Genesis;
use tally_ledger::Keypair;

use crate::config::{NodeConfig, NodeRole};
use crate::keys::{peer_id, read_key_file};

pub const CONFIG_FILE: &str = "config.toml";
pub const GENESIS_FILE: &str = "genesis.json";
pub const NODE_KEY_FILE: &str = "node_key.pem";
pub const VALIDATOR_KEY_FILE: &str = "validator_key.pem";
pub const DATA_DIR: &str = "data";

/// Everything a node needs, loaded and cross-checked.
#[derive(Debug)]
pub struct NodeHome {
    pub dir: PathBuf,
    pub config: NodeConfig,
    pub genesis: Genesis,
    pub node_key: Keypair,
    pub validator_key: Option<Keypair>,
}

impl NodeHome {
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(DATA_DIR)
    }
}

/// Loads a home and checks that its parts agree: the node's PeerId is in
/// genesis under the config's role, and a validator's key is a genesis
/// validator's with that same PeerId.
pub fn load(dir: &Path) -> anyhow::Result<NodeHome> {
    if !dir.is_dir() {
        bail!(
            "home folder {} does not exist; create one with `tally init --home {} --chain-id ID` or `tally testnet`",
            dir.display(),
            dir.display()
        );
    }
    let config_path = dir.join(CONFIG_FILE);
    let config = NodeConfig::load(&config_path)?;
    let genesis_path = dir.join(GENESIS_FILE);
    let genesis = Genesis::load(&genesis_path)
        .with_context(|| format!("{} is not a valid genesis", genesis_path.display()))?;
    config.validate_for(&genesis.params).with_context(|| {
        format!(
            "config {} does not fit the chain's genesis",
            config_path.display()
        )
    })?;
    let node_key = read_key_file(&dir.join(NODE_KEY_FILE))?;
    let me = peer_id(&node_key).to_base58();
    // A validator or replica the chain admits later (a membership
    // change) is not in genesis: its node follows the chain until the state
    // names it. One genesis does name must use its own node key.
    let validator_key = match config.role {
        NodeRole::Validator => {
            let key = read_key_file(&dir.join(VALIDATOR_KEY_FILE))?;
            let entry = genesis
                .validators
                .iter()
                .find(|v| v.public_key == key.public());
            if let Some(entry) = entry.filter(|e| e.peer_id != me) {
                bail!(
                    "genesis lists validator {} with peer id {}, but this node's key is {}; check {}",
                    entry.name,
                    entry.peer_id,
                    me,
                    dir.join(NODE_KEY_FILE).display()
                );
            }
            Some(key)
        }
        NodeRole::Replica => None,
    };
    Ok(NodeHome {
        dir: dir.to_path_buf(),
        config,
        genesis,
        node_key,
        validator_key,
    })
}

/// Writes `contents` to `path` through a temporary file and a rename.
pub fn write_file_atomic(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
