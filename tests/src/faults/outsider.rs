//! A node that is not part of the cluster's chain but tries to join it: a
//! stranger whose key is in no genesis of ours (it wrote itself into its
//! own copy), or a member's key run with another chain's genesis. It dials
//! every validator through the proxies, as a member would.

use std::path::PathBuf;
use std::process::Child;

use jsonrpsee_http_client::HttpClient;
use tally_ledger::genesis::Genesis;
use tally_node::config::NodeConfig;
use tally_node::testnet::{generate, TestnetSpec};

use super::cluster::{launch, Cluster};

/// A running outsider; killed when dropped.
#[derive(Debug)]
pub struct Outsider {
    pub name: String,
    pub home: PathBuf,
    pub peer_id: String,
    pub client: HttpClient,
    child: Child,
}

impl Drop for Outsider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Starts an outsider replica named `name`. Its node key is member
    /// `key_from`'s, or a fresh one; its genesis is the cluster's as
    /// `edit` changes it (given the outsider's PeerId). Its data folder is
    /// its own.
    pub async fn outsider(
        &self,
        name: &str,
        key_from: Option<usize>,
        edit: impl FnOnce(&mut Genesis, &str),
    ) -> Outsider {
        let made = self.dir().join(format!("{name}-home"));
        let own = generate(
            &TestnetSpec {
                chain_id: self.genesis.chain_id.clone(),
                validators: 1,
                replicas: 1,
                accounts: 1,
                base_port: 20000,
            },
            &made,
        )
        .expect("outsider home generates");
        let home = made.join("replica0");
        let peer_id = match key_from {
            Some(member) => {
                std::fs::copy(
                    self.nodes[member].home.join("node_key.pem"),
                    home.join("node_key.pem"),
                )
                .expect("copy node key");
                self.nodes[member].peer_id.clone()
            }
            None => own.replicas[0].peer_id.clone(),
        };
        let mut genesis = self.genesis.clone();
        edit(&mut genesis, &peer_id);
        std::fs::write(home.join("genesis.json"), genesis.to_json()).expect("write genesis");
        let path = home.join("config.toml");
        let mut config = NodeConfig::load(&path).expect("config loads");
        config.p2p.listen = "/ip4/127.0.0.1/tcp/0".into();
        config.rpc.listen = "127.0.0.1:0".into();
        config.p2p.persistent_peers = self.validator_addrs();
        std::fs::write(&path, config.to_toml()).expect("write config");
        let log = self.dir().join(format!("{name}.log"));
        let (child, started) = launch(self.binary(), name, &home, &log).await;
        Outsider {
            name: name.to_string(),
            home,
            peer_id,
            client: started.client,
            child,
        }
    }
}
