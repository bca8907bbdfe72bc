//! `tally`: the Tally ledger node and its tools.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use tally_ledger::genesis::Genesis;
use tally_ledger::Keypair;
use tally_node::keys::{peer_id, read_key_file, write_key_file};
use tally_node::testnet::{generate, init, TestnetSpec};

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version,
    about = "Tally: a permissioned BFT ledger node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new ed25519 key file (PKCS#8 PEM, mode 0600).
    Keygen {
        /// Where to write the key; an existing file is never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Inspect key files.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Create a one-validator node home.
    Init {
        #[arg(long)]
        home: PathBuf,
        #[arg(long)]
        chain_id: String,
        #[arg(long, default_value_t = 26656)]
        p2p_port: u16,
        #[arg(long, default_value_t = 26657)]
        rpc_port: u16,
    },
    /// Create a local testnet: genesis, one home per node, account keys.
    Testnet {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "tally-devnet")]
        chain_id: String,
        /// Node i listens for p2p on P+2i and JSON-RPC on P+2i+1.
        #[arg(long, default_value_t = 26656)]
        base_port: u16,
        /// Funded member accounts to create besides the admin.
        #[arg(long, default_value_t = 4)]
        accounts: usize,
    },
    /// Work with genesis files.
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },
    /// Run a node from its home folder until SIGINT or SIGTERM.
    Start {
        #[arg(long)]
        home: PathBuf,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Run a whole local network in this process: creates it (in a temporary
    /// folder unless --home is given) or restarts the one in --home.
    Devnet {
        #[arg(long, default_value_t = 4)]
        validators: usize,
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        #[arg(long)]
        home: Option<PathBuf>,
        #[arg(long, default_value_t = 26656)]
        base_port: u16,
        #[command(flatten)]
        log: LogArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `tally_node=debug`.
    #[arg(long, env = "TALLY_LOG")]
    log_level: Option<String>,
}

fn init_logs(args: &LogArgs, default: &str) {
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

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

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print a key file's public key and PeerId.
    Show { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum GenesisCommand {
    /// Validate a genesis file and print its hash.
    Check { file: PathBuf },
}

fn print_key(key: &Keypair) {
    println!("public key: {}", key.public());
    println!("peer id:    {}", peer_id(key));
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Keygen { out } => {
            let key = Keypair::generate()?;
            write_key_file(&out, &key)?;
            println!("wrote {}", out.display());
            print_key(&key);
        }
        Command::Key {
            command: KeyCommand::Show { file },
        } => print_key(&read_key_file(&file)?),
        Command::Init {
            home,
            chain_id,
            p2p_port,
            rpc_port,
        } => {
            let genesis = init(&home, &chain_id, p2p_port, rpc_port)?;
            println!(
                "initialised {} for chain {}",
                home.display(),
                genesis.chain_id
            );
            println!("genesis hash: {}", genesis.hash());
        }
        Command::Testnet {
            validators,
            replicas,
            out,
            chain_id,
            base_port,
            accounts,
        } => {
            let spec = TestnetSpec {
                chain_id,
                validators,
                replicas,
                accounts,
                base_port,
            };
            let genesis = generate(&spec, &out)?;
            println!(
                "created testnet {} in {}: {validators} validators, {replicas} replicas, {} accounts",
                genesis.chain_id,
                out.display(),
                genesis.accounts.len()
            );
            for i in 0..validators + replicas {
                let name = if i < validators {
                    format!("node{i}")
                } else {
                    format!("replica{}", i - validators)
                };
                let port = u32::from(base_port) + 2 * i as u32;
                println!(
                    "  {name:<10} p2p 127.0.0.1:{port}  rpc http://127.0.0.1:{}",
                    port + 1
                );
            }
            println!("genesis hash: {}", genesis.hash());
        }
        Command::Start { home, log } => {
            init_logs(&log, "info,libp2p_gossipsub=error");
            let loaded = tally_node::home::load(&home)?;
            runtime()?.block_on(async move {
                let node = tally_node::node::start(&loaded, None).await?;
                let mut node = node;
                tokio::select! {
                    _ = stop_signal() => {
                        tracing::info!("stopping");
                        node.stop().await?;
                        tracing::info!("stopped cleanly");
                        Ok::<(), anyhow::Error>(())
                    }
                    r = node.wait() => r,
                }
            })?;
        }
        Command::Devnet {
            validators,
            replicas,
            home,
            base_port,
            log,
        } => {
            init_logs(&log, "warn,libp2p_gossipsub=error");
            let spec = tally_node::devnet::DevnetSpec {
                validators,
                replicas,
                home,
                base_port,
            };
            runtime()?.block_on(tally_node::devnet::run(spec))?;
        }
        Command::Genesis {
            command: GenesisCommand::Check { file },
        } => {
            let genesis = Genesis::load(&file)
                .with_context(|| format!("{} is not a valid genesis", file.display()))?;
            println!(
                "{} is valid: chain {}, {} validators, {} replicas, {} accounts",
                file.display(),
                genesis.chain_id,
                genesis.validators.len(),
                genesis.replicas.len(),
                genesis.accounts.len()
            );
            println!("genesis hash: {}", genesis.hash());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
