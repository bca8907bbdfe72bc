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
    /// Sign a transaction locally and submit it to a node.
    Tx {
        #[command(subcommand)]
        command: TxCommand,
    },
    /// Ask a node about the chain.
    Query {
        #[command(subcommand)]
        command: QueryCommand,
    },
    /// Load generators and measurements.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Run a node from its home folder until SIGINT or SIGTERM.
    Start {
        #[arg(long)]
        home: PathBuf,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Re-verify a node's whole chain offline (works while the node runs).
    /// Exit codes: 0 all checks held, 1 could not run, 10 another chain,
    /// 11 missing block, 12 undecodable, 13 header, 14 certificate,
    /// 15 transaction, 16 state, 17 index.
    Audit {
        #[command(flatten)]
        args: tally_node::audit::AuditArgs,
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
        /// Node i listens for p2p on P+2i and JSON-RPC on P+2i+1; 0 lets the
        /// OS pick every port.
        #[arg(long, default_value_t = 26656)]
        base_port: u16,
        #[command(flatten)]
        log: LogArgs,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Submit signed transfers as fast as the nodes take them; report the
    /// committed tx/s and blocks/s.
    Load {
        /// JSON-RPC addresses, comma-separated; load is spread over them.
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:26657")]
        rpc: Vec<String>,
        /// A testnet's accounts folder (user*.pem keys are used).
        #[arg(long)]
        keys: PathBuf,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Build a long chain (or reuse the one in --dir) and time how fast a new
    /// replica catches it up from another node over 127.0.0.1.
    Sync {
        #[command(flatten)]
        chain: BenchChainArgs,
    },
    /// Build a long chain (or reuse the one in --dir) and time a full audit.
    Audit {
        #[command(flatten)]
        chain: BenchChainArgs,
        /// Threads checking signatures (default: one per core).
        #[arg(long)]
        threads: Option<usize>,
    },
}

#[derive(Debug, clap::Args)]
struct BenchChainArgs {
    /// Keep the chain here and reuse it next time (default: a temporary folder).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    blocks: u64,
    #[arg(long, default_value_t = 20)]
    txs_per_block: usize,
}

#[derive(Debug, clap::Args)]
struct TxArgs {
    /// The node's JSON-RPC address.
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    rpc: String,
    /// The sender's key file (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    key: PathBuf,
    /// Use this nonce instead of the account's next one.
    #[arg(long)]
    nonce: Option<u64>,
    /// Wait until the transaction is committed and print its height.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Subcommand)]
enum TxCommand {
    /// Move funds to another account.
    Transfer {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: u64,
    },
    /// Set a record in the sender's namespace (name and value as text).
    Put {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        value: String,
    },
    /// Remove a record from the sender's namespace.
    Delete {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        name: String,
    },
    /// Admin: admit an account (or change its role).
    Grant {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Admin: revoke an account.
    Revoke {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        account: String,
    },
}

#[derive(Debug, clap::Args)]
struct QueryArgs {
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    rpc: String,
    /// Print JSON for machines.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum QueryCommand {
    Status {
        #[command(flatten)]
        common: QueryArgs,
    },
    /// A block by height (default: the latest).
    Block {
        #[command(flatten)]
        common: QueryArgs,
        #[arg(default_value = "latest")]
        height: String,
    },
    Tx {
        #[command(flatten)]
        common: QueryArgs,
        hash: String,
    },
    Account {
        #[command(flatten)]
        common: QueryArgs,
        public_key: String,
        /// Verify a state proof against the certified header.
        #[arg(long)]
        prove: bool,
        /// The genesis to trust for the validator set (default: the node's).
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    Record {
        #[command(flatten)]
        common: QueryArgs,
        owner: String,
        name: String,
        #[arg(long)]
        prove: bool,
        #[arg(long)]
        genesis: Option<PathBuf>,
    },
    Validators {
        #[command(flatten)]
        common: QueryArgs,
    },
}

fn public_key(s: &str) -> anyhow::Result<tally_ledger::PublicKey> {
    tally_ledger::PublicKey::from_hex(s).map_err(|e| anyhow::anyhow!("public key {s:?}: {e}"))
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
        Command::Bench {
            command: BenchCommand::Load { rpc, keys, seconds },
        } => {
            runtime()?.block_on(tally_node::bench::load(&rpc, &keys, seconds))?;
        }
        Command::Bench {
            command: BenchCommand::Sync { chain },
        } => {
            runtime()?.block_on(tally_node::bench::sync(
                chain.dir.as_deref(),
                chain.blocks,
                chain.txs_per_block,
            ))?;
        }
        Command::Bench {
            command: BenchCommand::Audit { chain, threads },
        } => {
            tally_node::bench::audit(
                chain.dir.as_deref(),
                chain.blocks,
                chain.txs_per_block,
                threads,
            )?;
        }
        Command::Tx { command } => {
            use tally_node::client::TxKind;
            let (common, kind) = match command {
                TxCommand::Transfer { common, to, amount } => (
                    common,
                    TxKind::Transfer {
                        to: public_key(&to)?,
                        amount,
                    },
                ),
                TxCommand::Put {
                    common,
                    name,
                    value,
                } => (
                    common,
                    TxKind::Put {
                        name: name.into_bytes(),
                        value: value.into_bytes(),
                    },
                ),
                TxCommand::Delete { common, name } => (
                    common,
                    TxKind::Delete {
                        name: name.into_bytes(),
                    },
                ),
                TxCommand::Grant {
                    common,
                    account,
                    role,
                } => {
                    let role = match role.as_str() {
                        "admin" => tally_ledger::Role::Admin,
                        "member" => tally_ledger::Role::Member,
                        other => anyhow::bail!("--role {other:?}: use admin or member"),
                    };
                    (
                        common,
                        TxKind::Grant {
                            account: public_key(&account)?,
                            role,
                        },
                    )
                }
                TxCommand::Revoke { common, account } => (
                    common,
                    TxKind::Revoke {
                        account: public_key(&account)?,
                    },
                ),
            };
            runtime()?.block_on(tally_node::client::send_tx(
                &common.rpc,
                &common.key,
                kind,
                common.nonce,
                common.wait,
            ))?;
        }
        Command::Query { command } => {
            use tally_node::client::Query;
            use tally_rpc::types::BlockId;
            let (common, q) = match command {
                QueryCommand::Status { common } => (common, Query::Status),
                QueryCommand::Block { common, height } => {
                    let id = if height == "latest" {
                        BlockId::Latest
                    } else {
                        BlockId::Height(
                            height
                                .parse()
                                .with_context(|| format!("{height:?} is not a height"))?,
                        )
                    };
                    (common, Query::Block { id })
                }
                QueryCommand::Tx { common, hash } => (common, Query::Tx { hash }),
                QueryCommand::Account {
                    common,
                    public_key: k,
                    prove,
                    genesis,
                } => (
                    common,
                    Query::Account {
                        key: public_key(&k)?,
                        prove,
                        genesis,
                    },
                ),
                QueryCommand::Record {
                    common,
                    owner,
                    name,
                    prove,
                    genesis,
                } => (
                    common,
                    Query::Record {
                        owner: public_key(&owner)?,
                        name: name.into_bytes(),
                        prove,
                        genesis,
                    },
                ),
                QueryCommand::Validators { common } => (common, Query::Validators),
            };
            runtime()?.block_on(tally_node::client::query(&common.rpc, q, common.json))?;
        }
        Command::Start { home, log } => {
            init_logs(&log, "info,libp2p_gossipsub=error");
            let loaded = tally_node::home::load(&home)?;
            let runtime = runtime()?;
            let result = runtime.block_on(async move {
                let mut node =
                    tally_node::node::start(&loaded, tally_node::node::Overrides::default())
                        .await?;
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
            // A task stuck in blocking work must not keep a failed node
            // from exiting.
            runtime.shutdown_timeout(STOP_GRACE);
            result?;
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
        // Dispatched by main, which returns its own exit codes.
        Command::Audit { .. } => anyhow::bail!("audit is run by main"),
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
    let cli = Cli::parse();
    if let Command::Audit { args } = &cli.command {
        return ExitCode::from(tally_node::audit::run(args) as u8);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
