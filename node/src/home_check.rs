//! `tally config check`: every part of a node home checked on its own, so
//! that one run lists every problem (with the field, file or mode at
//! fault), not only the first one a start would stop at.

use std::path::Path;

use tally_ledger::genesis::{peer_id_from_node_key, Genesis};
use tally_ledger::store::Store;

use crate::config::{NodeConfig, NodeRole};
use crate::home::{CONFIG_FILE, DATA_DIR, GENESIS_FILE, NODE_KEY_FILE, VALIDATOR_KEY_FILE};
use crate::keys::read_key_file;

/// One part of a home and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file, folder or key checked (`config.toml`, `data/`).
    pub part: String,
    /// `Ok(note)` with what holds, or `Err(problem)`.
    pub result: Result<String, String>,
}

impl Finding {
    fn ok(part: &str, note: impl Into<String>) -> Self {
        Finding {
            part: part.into(),
            result: Ok(note.into()),
        }
    }

    fn fail(part: &str, problem: impl std::fmt::Display) -> Self {
        Finding {
            part: part.into(),
            result: Err(problem.to_string()),
        }
    }
}

/// Checks the home at `dir`: the config (each key's range), the genesis,
/// the config against the genesis, the key files (readable, mode 0600,
/// the keys genesis names for this node), and that the database belongs
/// to this genesis. Never writes.
pub fn check(dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        out.push(Finding::fail(
            &dir.display().to_string(),
            "is not a folder; create a home with `tally init` or `tally testnet`",
        ));
        return out;
    }
    let config = match NodeConfig::load(&dir.join(CONFIG_FILE)) {
        Ok(c) => {
            out.push(Finding::ok(
                CONFIG_FILE,
                format!("{:?} {}", c.role, c.moniker),
            ));
            Some(c)
        }
        Err(e) => {
            out.push(Finding::fail(CONFIG_FILE, e));
            None
        }
    };
    let genesis = match Genesis::load(&dir.join(GENESIS_FILE)) {
        Ok(g) => {
            out.push(Finding::ok(
                GENESIS_FILE,
                format!("chain {}, hash {}", g.chain_id, g.hash()),
            ));
            Some(g)
        }
        Err(e) => {
            out.push(Finding::fail(GENESIS_FILE, e));
            None
        }
    };
    if let (Some(c), Some(g)) = (&config, &genesis) {
        if let Err(e) = c.validate_for(&g.params) {
            out.push(Finding::fail(
                CONFIG_FILE,
                format!("{e} (against the genesis parameters)"),
            ));
        }
    }
    let node_key = match read_key_file(&dir.join(NODE_KEY_FILE)) {
        Ok(k) => {
            out.push(Finding::ok(NODE_KEY_FILE, "mode 0600"));
            Some(k)
        }
        Err(e) => {
            out.push(Finding::fail(NODE_KEY_FILE, e));
            None
        }
    };
    if config
        .as_ref()
        .is_some_and(|c| c.role == NodeRole::Validator)
    {
        out.push(check_validator_key(
            dir,
            genesis.as_ref(),
            node_key.as_ref(),
        ));
    }
    if let Some(g) = &genesis {
        out.push(check_database(&dir.join(DATA_DIR), g));
    }
    out
}

fn check_validator_key(
    dir: &Path,
    genesis: Option<&Genesis>,
    node_key: Option<&tally_ledger::Keypair>,
) -> Finding {
    let key = match read_key_file(&dir.join(VALIDATOR_KEY_FILE)) {
        Ok(k) => k,
        Err(e) => return Finding::fail(VALIDATOR_KEY_FILE, e),
    };
    let named = genesis.and_then(|g| g.validators.iter().find(|v| v.public_key == key.public()));
    match (named, node_key) {
        (Some(v), Some(node)) => {
            let me = peer_id_from_node_key(&node.public());
            if v.peer_id == me {
                Finding::ok(VALIDATOR_KEY_FILE, format!("genesis validator {}", v.name))
            } else {
                Finding::fail(
                    VALIDATOR_KEY_FILE,
                    format!(
                        "genesis names validator {} with peer id {}, but {NODE_KEY_FILE} is {me}",
                        v.name, v.peer_id
                    ),
                )
            }
        }
        _ => Finding::ok(
            VALIDATOR_KEY_FILE,
            format!(
                "mode 0600; key {} is not in genesis (it votes once a membership change names it)",
                key.public()
            ),
        ),
    }
}

fn check_database(data: &Path, genesis: &Genesis) -> Finding {
    let part = format!("{DATA_DIR}/");
    if !data.exists() {
        return Finding::ok(&part, "no database yet: the first start creates it");
    }
    match Store::open_read_only(data, genesis) {
        Ok(store) => Finding::ok(
            &part,
            format!("genesis hash matches; height {}", store.height()),
        ),
        Err(e) => Finding::fail(&part, e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn failed(findings: &[Finding]) -> Vec<(String, String)> {
        findings
            .iter()
            .filter_map(|f| f.result.clone().err().map(|e| (f.part.clone(), e)))
            .collect()
    }

    #[test]
    fn a_generated_home_passes_and_each_fault_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::testnet::TestnetSpec {
            chain_id: "tally-check".into(),
            validators: 1,
            replicas: 0,
            accounts: 1,
            base_port: 30000,
        };
        crate::testnet::generate(&spec, dir.path()).unwrap();
        let home = dir.path().join("node0");
        assert_eq!(failed(&check(&home)), vec![]);

        // Two faults at once: both are reported.
        let config = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("max_batch_len = 64", "max_batch_len = 0"),
        )
        .unwrap();
        let key = home.join(NODE_KEY_FILE);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let failed = failed(&check(&home));
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed[0].0, CONFIG_FILE);
        assert!(failed[0].1.contains("rpc.max_batch_len"), "{failed:?}");
        assert_eq!(failed[1].0, NODE_KEY_FILE);
        assert!(failed[1].1.contains("chmod 600"), "{failed:?}");
    }

    #[test]
    fn a_database_of_another_genesis_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = crate::testnet::TestnetSpec {
            chain_id: "tally-one".into(),
            validators: 1,
            replicas: 0,
            accounts: 1,
            base_port: 30000,
        };
        crate::testnet::generate(&spec, &dir.path().join("one")).unwrap();
        spec.chain_id = "tally-two".into();
        crate::testnet::generate(&spec, &dir.path().join("two")).unwrap();
        let one = dir.path().join("one/node0");
        let two = dir.path().join("two/node0");
        let other = Genesis::load(&two.join(GENESIS_FILE)).unwrap();
        drop(Store::open(&two.join(DATA_DIR), &other).unwrap());
        std::fs::rename(two.join(DATA_DIR), one.join(DATA_DIR)).unwrap();
        let failed = failed(&check(&one));
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0].0, "data/");
    }
}
