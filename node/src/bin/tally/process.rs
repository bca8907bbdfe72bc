//! Running long work: the async runtime, logs, stop signals, and a node
//! started from its home until it is told to stop or one of its tasks dies.

use std::path::Path;

use anyhow::Context;

use crate::cli::{ExportCommand, LogArgs, LogFormat};

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

/// `tally export …`.
pub fn export(command: ExportCommand) -> anyhow::Result<()> {
    match command {
        ExportCommand::Postgres {
            home,
            rpc,
            genesis,
            dsn,
            data,
            metrics,
            log,
        } => {
            init_logs(&log, "info");
            let (rpc, genesis) = match (home, rpc, genesis) {
                (Some(home), _, _) => {
                    let loaded = tally_node::home::load(&home)?;
                    (
                        format!("http://{}", loaded.config.rpc.listen),
                        loaded.genesis,
                    )
                }
                (None, Some(rpc), Some(genesis)) => (
                    rpc,
                    tally_ledger::genesis::Genesis::load(&genesis)
                        .with_context(|| format!("cannot load genesis {}", genesis.display()))?,
                ),
                _ => anyhow::bail!("give --home, or --rpc with --genesis"),
            };
            let spec = tally_node::export::ExportSpec {
                rpc,
                genesis,
                dsn,
                data_dir: data,
                metrics,
            };
            runtime()?.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let mut export = tokio::spawn(tally_node::export::run(spec, stop_rx));
                tokio::select! {
                    _ = stop_signal() => {
                        // The block being written finishes or rolls back.
                        tracing::info!("stopping the export");
                        let _ = stop_tx.send(true);
                        export.await.context("the export task panicked")?
                    }
                    done = &mut export => done.context("the export task panicked")?,
                }
            })
        }
        ExportCommand::Status { dsn, rpc, json } => {
            let status =
                runtime()?.block_on(tally_node::export::status::read(&dsn, rpc.as_deref()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                println!("{status}");
            }
            Ok(())
        }
    }
}
