//! The command line: every subcommand and its flags.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tally",
    version = tally_node::version::LONG,
    about = "Tally: a permissioned BFT ledger node"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// Run the node's work on at most this many threads at once
        /// (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: Option<u16>,
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
    /// Check a node home: the config (every key), the genesis, the key
    /// files' modes and keys, and that the database is this genesis's.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell) to standard output.
    Completions { shell: clap_complete::Shell },
    /// Write man pages generated from this command line: tally.1 and one
    /// for each subcommand (tally-start.1, …).
    Man {
        /// The folder to write them to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Copy the ledger into other databases, verified block by block.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
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
pub enum ConfigCommand {
    /// Report every problem of a node home, one line each; exit 1 if any.
    Check {
        #[arg(long)]
        home: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Follow a node and write each committed block (its certificate's
    /// signers, transactions and state changes) into PostgreSQL in one
    /// transaction with the checkpoint, after verifying it against the
    /// genesis. Resumes from the checkpoint; runs until SIGINT or SIGTERM.
    Postgres {
        /// A node home to follow: its RPC address and genesis.
        #[arg(long, conflicts_with_all = ["rpc", "genesis"], required_unless_present = "rpc")]
        home: Option<PathBuf>,
        /// The node's JSON-RPC address (a read replica is the natural one).
        #[arg(long, requires = "genesis")]
        rpc: Option<String>,
        /// The chain's genesis file, the one thing the export trusts.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// PostgreSQL connection string, e.g. `host=/run/postgresql
        /// dbname=ledger` or `postgres://user@host/db`.
        #[arg(long, env = "TALLY_EXPORT_DSN", hide_env_values = true)]
        dsn: String,
        /// The exporter's own state tree (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Serve Prometheus metrics (lag, height) on host:port.
        #[arg(long)]
        metrics: Option<std::net::SocketAddr>,
        #[command(flatten)]
        log: LogArgs,
    },
    /// Where the export in a database stands, and its lag behind a node.
    Status {
        #[arg(long, env = "TALLY_EXPORT_DSN", hide_env_values = true)]
        dsn: String,
        /// Compare with this node's height.
        #[arg(long)]
        rpc: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Offer signed transactions at a rate (open loop) or as fast as the
    /// nodes take them, and report committed tx/s, blocks, latency
    /// percentiles, refusals and each node's CPU, memory, fsyncs and
    /// signature checks. Without --rpc it starts its own network of
    /// `tally start` processes on 127.0.0.1. Transactions are signed before
    /// the timed window.
    Load {
        /// Load these running nodes (JSON-RPC addresses, comma-separated;
        /// senders are spread over them) instead of starting a network.
        #[arg(long, value_delimiter = ',', requires = "keys")]
        rpc: Vec<String>,
        /// With --rpc: the testnet's accounts folder; every user*.pem key is
        /// a sender (`tally testnet --accounts K` creates K funded ones).
        #[arg(long)]
        keys: Option<PathBuf>,
        /// With --rpc: each node's metrics address (host:port),
        /// comma-separated, to report its CPU, memory, fsyncs and signature
        /// checks.
        #[arg(long, value_delimiter = ',')]
        metrics: Vec<String>,
        /// Validators of the network to start (without --rpc).
        #[arg(long, default_value_t = 4, conflicts_with = "rpc")]
        validators: usize,
        /// Read replicas of the network to start (without --rpc).
        #[arg(long, default_value_t = 0, conflicts_with = "rpc")]
        replicas: usize,
        /// `tally start --threads` for the nodes it starts (default: every core).
        #[arg(long, conflicts_with = "rpc")]
        threads: Option<usize>,
        /// consensus.block_fill_min_txs for the nodes it starts.
        #[arg(long, conflicts_with = "rpc", requires = "block_fill_wait_ms")]
        block_fill_min_txs: Option<u32>,
        /// consensus.block_fill_wait_ms for the nodes it starts.
        #[arg(long, conflicts_with = "rpc", requires = "block_fill_min_txs")]
        block_fill_wait_ms: Option<u64>,
        /// Offered transactions per second (0: none, to measure an idle
        /// network).
        #[arg(long, conflicts_with_all = ["max", "sweep"], required_unless_present_any = ["max", "sweep"])]
        rate: Option<u64>,
        /// Send as fast as the nodes take them.
        #[arg(long, conflicts_with = "sweep")]
        max: bool,
        /// Run at each of these offered rates (comma-separated), or without
        /// rates at --max and then 10, 25, 50, 75 and 90 % of what it
        /// committed, and print throughput against latency. Each point gets
        /// a new network (without --rpc).
        #[arg(long, num_args = 0.., value_delimiter = ',')]
        sweep: Option<Vec<u64>>,
        /// Seconds measured, after the warm-up.
        #[arg(long, alias = "seconds", default_value_t = 20)]
        duration: u64,
        /// Seconds of load before the measured window.
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        /// Senders (accounts) the load comes from.
        #[arg(long, default_value_t = 1000)]
        senders: usize,
        /// What each transaction does.
        #[arg(long, value_enum, default_value = "transfer")]
        op: tally_node::bench::load::BenchOp,
        /// With --op put: each transaction's encoded size in bytes.
        #[arg(long)]
        tx_bytes: Option<usize>,
        /// Also write the report (a sweep: every point) as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
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
pub struct BenchChainArgs {
    /// Keep the chain here and reuse it next time (default: a temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long, default_value_t = 10_000)]
    pub blocks: u64,
    #[arg(long, default_value_t = 20)]
    pub txs_per_block: usize,
}

#[derive(Debug, clap::Args)]
pub struct TxArgs {
    /// The node's JSON-RPC address.
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    pub rpc: String,
    /// The sender's key file (PKCS#8 PEM, mode 0600).
    #[arg(long)]
    pub key: PathBuf,
    /// Use this nonce instead of the account's next one.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transaction is committed and print its height.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
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
    /// Admin: admit an account (or change its role). With a governance
    /// threshold above 1 this proposes the change; other admins approve it.
    Grant {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Admin: revoke an account (a proposal, as for grant).
    Revoke {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        account: String,
    },
    /// Admin: approve a pending change, by its id (the hash of the
    /// transaction that proposed it).
    Approve {
        #[command(flatten)]
        common: TxArgs,
        change: String,
    },
    /// Admin: propose a change of the validator set (it applies two blocks
    /// after the block that reaches the approval threshold).
    Validator {
        #[command(subcommand)]
        command: ValidatorCommand,
    },
    /// Admin: propose admitting or removing a read replica.
    Replica {
        #[command(subcommand)]
        command: ReplicaCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ValidatorCommand {
    /// Add a validator.
    Add {
        #[command(flatten)]
        common: TxArgs,
        /// A name for it, unique among validators and replicas.
        #[arg(long)]
        name: String,
        /// Its consensus key (hex; `tally key show` prints it).
        #[arg(long)]
        public_key: String,
        /// Its node's PeerId.
        #[arg(long)]
        peer_id: String,
        #[arg(long)]
        power: u64,
    },
    /// Remove a validator, by its consensus key.
    Remove {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        public_key: String,
    },
    /// Set a validator's voting power.
    Power {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        public_key: String,
        #[arg(long)]
        power: u64,
    },
    /// Replace a validator's consensus key; the old key must consent.
    Rotate {
        #[command(flatten)]
        common: TxArgs,
        /// The validator's current consensus key.
        #[arg(long)]
        public_key: String,
        /// The new consensus key.
        #[arg(long)]
        new_key: String,
        /// The old key's file, to sign its consent here (or give --consent).
        #[arg(long, conflicts_with = "consent")]
        old_key_file: Option<PathBuf>,
        /// The old key's consent signature (hex), made with `tally key
        /// consent` by the validator's operator.
        #[arg(long)]
        consent: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Admit a replica's node.
    Add {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        peer_id: String,
    },
    /// Remove a replica, by its node's PeerId.
    Remove {
        #[command(flatten)]
        common: TxArgs,
        #[arg(long)]
        peer_id: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    #[arg(long, default_value = "http://127.0.0.1:26657")]
    pub rpc: String,
    /// Print JSON for machines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
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
    /// The validator set in force at a height (default: the next block's).
    Validators {
        #[command(flatten)]
        common: QueryArgs,
        #[arg(long)]
        height: Option<u64>,
    },
    /// The admins, the approval threshold and the pending changes.
    Governance {
        #[command(flatten)]
        common: QueryArgs,
    },
    /// One change by id: pending, applied or expired.
    Change {
        #[command(flatten)]
        common: QueryArgs,
        id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `tally_node=debug`.
    #[arg(long, env = "TALLY_LOG")]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Print a key file's public key and PeerId.
    Show { file: PathBuf },
    /// Sign a validator's consent to rotating its consensus key (run by
    /// the validator's operator with the current key; an admin then
    /// proposes `tally tx validator rotate --consent <signature>`).
    Consent {
        /// The validator's current consensus key file.
        file: PathBuf,
        /// The new consensus key (hex).
        #[arg(long)]
        new_key: String,
        /// The chain's id.
        #[arg(long)]
        chain_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenesisCommand {
    /// Validate a genesis file and print its hash.
    Check { file: PathBuf },
}
