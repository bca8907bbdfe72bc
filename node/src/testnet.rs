//! `tally testnet` and `tally init`: generate keys, genesis and node homes.

use anyhow::{bail, Context};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use tally_ledger::genesis::{Genesis, GenesisAccount, GenesisReplica, GenesisValidator, Params};
use tally_ledger::{Keypair, Role};

use crate::config::{NodeConfig, NodeRole};
use crate::home::{
    write_file_atomic, CONFIG_FILE, GENESIS_FILE, NODE_KEY_FILE, VALIDATOR_KEY_FILE,
};
use crate::keys::{peer_id, write_key_file};

/// Initial balance of each generated account.
pub const ACCOUNT_BALANCE: u64 = 1_000_000_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct TestnetSpec {
    pub chain_id: String,
    pub validators: usize,
    pub replicas: usize,
    /// Funded member accounts besides the admin.
    pub accounts: usize,
    pub base_port: u16,
}

struct NodePlan {
    name: String,
    role: NodeRole,
    node_key: Keypair,
    validator_key: Option<Keypair>,
    p2p_port: u16,
    rpc_port: u16,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The checks `tally start` makes, so that no generated home is refused there.
fn check_config(config: &NodeConfig, genesis: &Genesis) -> anyhow::Result<()> {
    config
        .validate()
        .and_then(|()| config.validate_for(&genesis.params))
        .with_context(|| format!("generated config of {} is invalid", config.moniker))
}

/// Creates `out/genesis.json`, a home per node (`out/node0`…, then
/// `out/replica0`…) and account keys in `out/accounts/`.
pub fn generate(spec: &TestnetSpec, out: &Path) -> anyhow::Result<Genesis> {
    if spec.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if spec.validators > 100 || spec.replicas > 100 || spec.accounts > 10_000 {
        bail!("at most 100 validators, 100 replicas and 10000 accounts in a generated testnet");
    }
    let nodes = spec.validators + spec.replicas;
    let last_port = u32::from(spec.base_port) + 2 * nodes as u32 - 1;
    if spec.base_port == 0 || last_port > u32::from(u16::MAX) {
        bail!(
            "--base-port {} leaves no room for {nodes} nodes (two ports each, up to {last_port})",
            spec.base_port
        );
    }
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose another --out or remove it",
            out.display()
        );
    }
    tally_ledger::types::check_chain_id(&spec.chain_id)
        .map_err(|e| anyhow::anyhow!("--chain-id: {e}"))?;

    let mut plans = Vec::with_capacity(nodes);
    for i in 0..nodes {
        let (name, role) = if i < spec.validators {
            (format!("node{i}"), NodeRole::Validator)
        } else {
            (format!("replica{}", i - spec.validators), NodeRole::Replica)
        };
        let port = spec.base_port + 2 * i as u16;
        plans.push(NodePlan {
            name,
            role,
            node_key: Keypair::generate()?,
            validator_key: if role == NodeRole::Validator {
                Some(Keypair::generate()?)
            } else {
                None
            },
            p2p_port: port,
            rpc_port: port + 1,
        });
    }
    let admin = Keypair::generate()?;
    let users = (0..spec.accounts)
        .map(|_| Keypair::generate())
        .collect::<Result<Vec<_>, _>>()?;

    let mut accounts = vec![GenesisAccount {
        public_key: admin.public(),
        role: Role::Admin,
        balance: ACCOUNT_BALANCE,
    }];
    accounts.extend(users.iter().map(|k| GenesisAccount {
        public_key: k.public(),
        role: Role::Member,
        balance: ACCOUNT_BALANCE,
    }));
    let genesis = Genesis {
        chain_id: spec.chain_id.clone(),
        genesis_time_ms: now_ms(),
        params: Params::default(),
        validators: plans
            .iter()
            .filter_map(|p| {
                p.validator_key.as_ref().map(|vk| GenesisValidator {
                    name: p.name.clone(),
                    public_key: vk.public(),
                    peer_id: peer_id(&p.node_key).to_base58(),
                    power: 10,
                })
            })
            .collect(),
        replicas: plans
            .iter()
            .filter(|p| p.role == NodeRole::Replica)
            .map(|p| GenesisReplica {
                name: p.name.clone(),
                peer_id: peer_id(&p.node_key).to_base58(),
            })
            .collect(),
        accounts,
        governance: Default::default(),
    };
    genesis.validate().context("generated genesis is invalid")?;
    let genesis_json = genesis.to_json();
    let addresses: Vec<String> = plans
        .iter()
        .map(|p| {
            format!(
                "/ip4/127.0.0.1/tcp/{}/p2p/{}",
                p.p2p_port,
                peer_id(&p.node_key)
            )
        })
        .collect();
    let configs = plans
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            let mut config = NodeConfig::local(&plan.name, plan.role, plan.p2p_port, plan.rpc_port);
            config.p2p.persistent_peers = addresses
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect();
            check_config(&config, &genesis)?;
            Ok(config)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_file_atomic(&out.join(GENESIS_FILE), genesis_json.as_bytes())?;
    let accounts_dir = out.join("accounts");
    write_key_file(&accounts_dir.join("admin.pem"), &admin)?;
    for (i, k) in users.iter().enumerate() {
        write_key_file(&accounts_dir.join(format!("user{i}.pem")), k)?;
    }
    for (plan, config) in plans.iter().zip(&configs) {
        let home = out.join(&plan.name);
        std::fs::create_dir_all(&home)
            .with_context(|| format!("cannot create {}", home.display()))?;
        write_file_atomic(&home.join(CONFIG_FILE), config.to_toml().as_bytes())?;
        write_file_atomic(&home.join(GENESIS_FILE), genesis_json.as_bytes())?;
        write_key_file(&home.join(NODE_KEY_FILE), &plan.node_key)?;
        if let Some(vk) = &plan.validator_key {
            write_key_file(&home.join(VALIDATOR_KEY_FILE), vk)?;
        }
    }
    Ok(genesis)
}

/// `tally init`: a one-validator home at `home` (with its admin account key
/// in `home/accounts/admin.pem`).
pub fn init(home: &Path, chain_id: &str, p2p_port: u16, rpc_port: u16) -> anyhow::Result<Genesis> {
    if home.join(CONFIG_FILE).exists() || home.join(GENESIS_FILE).exists() {
        bail!(
            "{} already holds a node home; refusing to overwrite it",
            home.display()
        );
    }
    tally_ledger::types::check_chain_id(chain_id)
        .map_err(|e| anyhow::anyhow!("--chain-id: {e}"))?;
    let node_key = Keypair::generate()?;
    let validator_key = Keypair::generate()?;
    let admin = Keypair::generate()?;
    let genesis = Genesis {
        chain_id: chain_id.to_string(),
        genesis_time_ms: now_ms(),
        params: Params::default(),
        validators: vec![GenesisValidator {
            name: "node0".into(),
            public_key: validator_key.public(),
            peer_id: peer_id(&node_key).to_base58(),
            power: 10,
        }],
        replicas: vec![],
        accounts: vec![GenesisAccount {
            public_key: admin.public(),
            role: Role::Admin,
            balance: ACCOUNT_BALANCE,
        }],
        governance: Default::default(),
    };
    genesis.validate().context("generated genesis is invalid")?;
    let config = NodeConfig::local("node0", NodeRole::Validator, p2p_port, rpc_port);
    check_config(&config, &genesis)?;
    std::fs::create_dir_all(home).with_context(|| format!("cannot create {}", home.display()))?;
    write_file_atomic(&home.join(CONFIG_FILE), config.to_toml().as_bytes())?;
    write_file_atomic(&home.join(GENESIS_FILE), genesis.to_json().as_bytes())?;
    write_key_file(&home.join(NODE_KEY_FILE), &node_key)?;
    write_key_file(&home.join(VALIDATOR_KEY_FILE), &validator_key)?;
    write_key_file(&home.join("accounts").join("admin.pem"), &admin)?;
    Ok(genesis)
}
