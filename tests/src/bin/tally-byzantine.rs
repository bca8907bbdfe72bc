//! `tally-byzantine start --home DIR [--log-format json]`: runs the node in
//! DIR like `tally start`, but as a Byzantine validator that equivocates
//! (see `tally_tests::faults::byzantine`). For the fault suite only.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

/// How long the node may take to stop once a task died.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %tally_node::error_chain(&e), "the Byzantine node failed");
            eprintln!("error: {}", tally_node::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let home = args
        .iter()
        .position(|a| a == "--home")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .context("usage: tally-byzantine start --home DIR [--log-format json]")?;
    let filter = tracing_subscriber::EnvFilter::new("info,libp2p_gossipsub=error");
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if args.iter().any(|a| a == "json") {
        logs.json().try_init()
    } else {
        logs.try_init()
    };

    let loaded = tally_node::home::load(&home)?;
    let key = loaded
        .validator_key
        .as_ref()
        .context("the home has no validator key")?;
    let key = tally_ledger::Keypair::from_seed(key.seed());
    let index = loaded
        .genesis
        .validators
        .iter()
        .position(|v| v.public_key == key.public())
        .context("the validator key is not in genesis")? as u32;
    let tap =
        tally_tests::faults::byzantine::equivocating(key, index, loaded.genesis.chain_id.clone());
    tracing::warn!(validator = index, "this node equivocates on purpose");
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        let overrides = tally_node::node::Overrides {
            consensus_tap: Some(tap),
            ..Default::default()
        };
        let mut node = tally_node::node::start(&loaded, overrides).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => node.stop().await,
            died = node.wait() => {
                let _ = tokio::time::timeout(STOP_GRACE, node.stop()).await;
                Err(anyhow::Error::from(died))
            }
        }
    });
    runtime.shutdown_timeout(STOP_GRACE);
    result
}
