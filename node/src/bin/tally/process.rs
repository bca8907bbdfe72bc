//! Running long work: the async runtime, logs, stop signals, and a node
//! started from its home until it is told to stop or one of its tasks dies.

use std::path::Path;

use anyhow::Context;

use crate::cli::{LogArgs, LogFormat};

pub fn init_logs(args: &LogArgs, default: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(args.log_level.as_deref().unwrap_or(default))
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    runtime_with(None)
}

/// A runtime with `threads` workers (default: one per core).
fn runtime_with(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = threads {
        builder.worker_threads(t);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// How long a node may take to stop after a task died.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for SIGINT (Ctrl-C) or SIGTERM.
async fn stop_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs the node in `home` until SIGINT or SIGTERM (a clean stop) or until
/// one of its tasks dies (an error, so the process exits non-zero and a
/// supervisor restarts it).
pub fn start_node(home: &Path, threads: Option<usize>, log: &LogArgs) -> anyhow::Result<()> {
    init_logs(log, "info,libp2p_gossipsub=error");
    let loaded = tally_node::home::load(home)?;
    if let Some(t) = threads {
        tally_node::set_threads(t);
    }
    let runtime = runtime_with(threads)?;
    let result = runtime.block_on(async move {
        let mut node =
            tally_node::node::start(&loaded, tally_node::node::Overrides::default()).await?;
        tokio::select! {
            _ = stop_signal() => {
                tracing::info!("stopping");
                node.stop().await?;
                tracing::info!("stopped cleanly");
                Ok(())
            }
            died = node.wait() => {
                // Stop what still runs; the death is what to report.
                match tokio::time::timeout(STOP_GRACE, node.stop()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(error = %format!("{e:#}"), "while stopping"),
                    Err(_) => tracing::warn!("the node did not stop within {STOP_GRACE:?}"),
                }
                Err(anyhow::Error::from(died))
            }
        }
    });
    // A task stuck in blocking work must not keep a failed node from
    // exiting.
    runtime.shutdown_timeout(STOP_GRACE);
    result
}
