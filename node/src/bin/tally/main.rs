//! `tally`: the Tally ledger node and its tools. This file dispatches the
//! command line ([`cli`]); requests to a node are built in [`requests`] and
//! long-running work is set up in [`process`].

mod cli;
mod process;
mod requests;

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use tally_ledger::genesis::Genesis;
use tally_ledger::Keypair;
use tally_node::keys::{peer_id, read_key_file, write_key_file};
use tally_node::testnet::{generate, init, TestnetSpec};

use cli::{BenchCommand, Cli, Command, ConfigCommand, GenesisCommand, KeyCommand};
use process::{init_logs, runtime, start_node};
use requests::{query_request, tx_request};

fn print_key(key: &Keypair) {
    println!("public key: {}", key.public());
    println!("peer id:    {}", peer_id(key));
}

fn create_testnet(spec: TestnetSpec, out: &Path) -> anyhow::Result<()> {
    let genesis = generate(&spec, out)?;
    let TestnetSpec {
        validators,
        replicas,
        base_port,
        ..
    } = spec;
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
    Ok(())
}

fn check_genesis(file: &Path) -> anyhow::Result<()> {
    let genesis = Genesis::load(file)
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
    Ok(())
}

/// `tally man`: the top page and one per subcommand, from the clap
/// definition, so the pages never drift from the flags.
fn write_man_pages(out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut pages = vec![("tally".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("tally-{}", sub.get_name());
        pages.push((
            name.clone(),
            sub.clone().display_name(name.clone()).bin_name(name),
        ));
    }
    for (name, page) in pages {
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page).render(&mut bytes)?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        write_stdout(format!("wrote {}\n", path.display()).as_bytes())?;
    }
    Ok(())
}

/// Writes to standard output; a reader that went away (`| head`) ends the
/// output quietly instead of failing.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
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
        Command::Key {
            command:
                KeyCommand::Consent {
                    file,
                    new_key,
                    chain_id,
                },
        } => {
            let old = read_key_file(&file)?;
            let new_key = requests::public_key(&new_key)?;
            println!(
                "{}",
                tally_node::client::sign_consent(&old, &new_key, &chain_id).to_hex()
            );
        }
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
        } => create_testnet(
            TestnetSpec {
                chain_id,
                validators,
                replicas,
                accounts,
                base_port,
            },
            &out,
        )?,
        Command::Bench {
            command:
                BenchCommand::Load {
                    rpc,
                    keys,
                    metrics,
                    validators,
                    replicas,
                    threads,
                    block_fill_min_txs,
                    block_fill_wait_ms,
                    rate,
                    max: _,
                    sweep,
                    duration,
                    warmup,
                    senders,
                    op,
                    tx_bytes,
                    json,
                },
        } => {
            let command = tally_node::bench::command::LoadCommand {
                rpc,
                keys,
                metrics,
                validators,
                replicas,
                threads,
                block_fill: block_fill_min_txs.zip(block_fill_wait_ms),
                rate,
                sweep,
                duration: Duration::from_secs(duration),
                warmup: Duration::from_secs(warmup),
                senders,
                op,
                tx_bytes,
                json,
            };
            runtime()?.block_on(tally_node::bench::command::run(&command))?;
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
            let (common, kind) = tx_request(command)?;
            runtime()?.block_on(tally_node::client::send_tx(
                &common.rpc,
                &common.key,
                kind,
                common.nonce,
                common.wait,
            ))?;
        }
        Command::Query { command } => {
            let (common, q) = query_request(command)?;
            runtime()?.block_on(tally_node::client::query(&common.rpc, q, common.json))?;
        }
        Command::Start { home, threads, log } => start_node(&home, threads.map(usize::from), &log)?,
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
        Command::Export { command } => process::export(command)?,
        Command::Config {
            command: ConfigCommand::Check { home },
        } => {
            let findings = tally_node::home_check::check(&home);
            for f in &findings {
                match &f.result {
                    Ok(note) => println!("ok    {:<18} {note}", f.part),
                    Err(problem) => println!("FAIL  {:<18} {problem}", f.part),
                }
            }
            let failed = findings.iter().filter(|f| f.result.is_err()).count();
            if failed > 0 {
                anyhow::bail!("{failed} problem(s) in {}", home.display());
            }
            println!("{} is ready to start", home.display());
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tally", &mut script);
            write_stdout(&script)?;
        }
        Command::Man { out } => write_man_pages(&out)?,
        // Dispatched by main, which returns its own exit codes.
        Command::Audit { .. } => anyhow::bail!("audit is run by main"),
        Command::Genesis {
            command: GenesisCommand::Check { file },
        } => check_genesis(&file)?,
    }
    Ok(())
}

/// Keeps a long-running node's resident memory at what it uses. glibc
/// raises its mmap threshold each time a mapped block is freed (up to 32
/// MiB), so after the first large block (a 4 MB block body, a write batch)
/// RocksDB's 1 MiB memtable blocks and the like come from the heap instead,
/// where freed memory fragments and stays resident. A node's heap stayed
/// at 55-86 MB over 25 minutes while its resident memory grew from 100 to
/// 168 MB; with the threshold fixed it stays flat (docs/faults.md,
/// ADR 13). An operator's own `MALLOC_MMAP_THRESHOLD_` is left alone.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fix_mmap_threshold() {
    /// The size from which malloc serves an allocation with its own
    /// mapping, returned to the system as soon as it is freed.
    const MMAP_THRESHOLD_BYTES: i32 = 128 << 10;
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
        return;
    }
    // SAFETY: `mallopt` only sets a parameter of glibc's allocator, which
    // takes its own lock; the value is within glibc's allowed range (at
    // most 32 MiB), so the call cannot fail, and nothing depends on it for
    // correctness.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

/// A one-shot command whose reader goes away (`tally query … | head`) ends
/// at once and quietly, as other Unix tools do, instead of panicking in
/// its next print. Processes that serve (`start`, `devnet`, `export`,
/// `bench`) keep ignoring the signal: their logs' reader going away must
/// not stop them. Sockets are unaffected either way (Rust sends with
/// `MSG_NOSIGNAL`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn end_quietly_on_closed_stdout(command: &Command) {
    if matches!(
        command,
        Command::Start { .. }
            | Command::Devnet { .. }
            | Command::Export { .. }
            | Command::Bench { .. }
    ) {
        return;
    }
    // SAFETY: `signal` only sets SIGPIPE's disposition back to the default
    // (the Rust runtime set it to ignored); it runs before any thread of
    // this process starts and touches no memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn end_quietly_on_closed_stdout(_: &Command) {}

fn main() -> ExitCode {
    fix_mmap_threshold();
    let cli = Cli::parse();
    end_quietly_on_closed_stdout(&cli.command);
    if let Command::Audit { args } = &cli.command {
        return ExitCode::from(tally_node::audit::run(args) as u8);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", tally_node::error_chain(&e));
            ExitCode::FAILURE
        }
    }
}
