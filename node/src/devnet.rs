//! `tally devnet`: a whole local network in one command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::broadcast::error::RecvError;

use crate::home;
use crate::node::{start, Overrides, RunningNode};
use crate::testnet::{generate, TestnetSpec};

/// What `tally devnet` was asked for.
#[derive(Debug, Clone)]
pub struct DevnetSpec {
    pub validators: usize,
    pub replicas: usize,
    pub home: Option<PathBuf>,
    pub base_port: u16,
}

fn node_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut nodes: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(home::CONFIG_FILE).is_file())
        .collect();
    // Validators (node0…) first, then replicas, each in numeric order.
    nodes.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let replica = name.starts_with("replica");
        let n: u64 = name
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0);
        (replica, n)
    });
    Ok(nodes)
}

/// Creates (or reuses) the devnet folder, runs every node until Ctrl-C, and
/// prints each node's addresses and a line per committed block.
pub async fn run(spec: DevnetSpec) -> anyhow::Result<()> {
    let (_tmp, dir) = match &spec.home {
        Some(dir) if dir.join("genesis.json").is_file() => {
            println!("restarting the devnet in {}", dir.display());
            (None, dir.clone())
        }
        Some(dir) => {
            create(&spec, dir)?;
            (None, dir.clone())
        }
        None => {
            let tmp = tempfile::Builder::new().prefix("tally-devnet-").tempdir()?;
            let dir = tmp.path().join("net");
            create(&spec, &dir)?;
            (Some(tmp), dir)
        }
    };
    // --base-port 0: every listener on a port the OS picks, peers wired here.
    let ephemeral = spec.base_port == 0;
    let mut nodes: Vec<(String, RunningNode)> = Vec::new();
    for path in node_dirs(&dir)? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let mut loaded = home::load(&path)?;
        let overrides = if ephemeral {
            loaded.config.p2p.persistent_peers.clear();
            Overrides::ephemeral()
        } else {
            Overrides::default()
        };
        let node = start(&loaded, overrides)
            .await
            .with_context(|| format!("cannot start {name}"))?;
        if ephemeral {
            for (_, other) in &nodes {
                node.link(other).await;
            }
        }
        println!(
            "{name:<10} up   rpc http://{}   p2p {}",
            node.rpc_addr, node.p2p_addr
        );
        nodes.push((name, node));
    }
    let Some((_, first)) = nodes.first() else {
        anyhow::bail!("{} holds no node homes", dir.display());
    };
    println!(
        "devnet running from {}; press Ctrl-C to stop",
        dir.display()
    );
    let mut commits = first.handle.subscribe_commits();
    // A node whose task died fails the whole devnet, after the others stop.
    let mut failure = None;
    loop {
        let deaths = futures::future::select_all(
            nodes
                .iter_mut()
                .map(|(name, node)| Box::pin(async move { (name.clone(), node.wait().await) })),
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            ((name, died), _, _) = deaths => {
                failure = Some(anyhow::Error::from(died).context(format!("node {name} failed")));
                break;
            }
            c = commits.recv() => match c {
                Ok(c) => println!("block {:>6}  {}  {} txs", c.height, c.block_hash.short(), c.txs.len()),
                Err(RecvError::Lagged(n)) => println!("({n} blocks not shown)"),
                Err(RecvError::Closed) => break,
            },
        }
    }
    println!("stopping {} nodes…", nodes.len());
    for (name, node) in nodes {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(10), node.stop())
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")))
        {
            eprintln!("{name}: {}", crate::error_chain(&e));
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    match &spec.home {
        Some(dir) => println!(
            "stopped; restart with `tally devnet --home {}`",
            dir.display()
        ),
        None => println!("stopped; the temporary devnet folder was removed"),
    }
    Ok(())
}

fn create(spec: &DevnetSpec, dir: &Path) -> anyhow::Result<()> {
    let testnet = TestnetSpec {
        chain_id: "tally-devnet".into(),
        validators: spec.validators,
        replicas: spec.replicas,
        accounts: 4,
        // With --base-port 0 the configured ports are not used.
        base_port: if spec.base_port == 0 {
            26656
        } else {
            spec.base_port
        },
    };
    let genesis = generate(&testnet, dir)?;
    println!(
        "created devnet {} in {}: {} validators, {} replicas; account keys in {}",
        genesis.chain_id,
        dir.display(),
        spec.validators,
        spec.replicas,
        dir.join("accounts").display()
    );
    Ok(())
}
