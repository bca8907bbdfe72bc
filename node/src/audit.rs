//! `tally audit`: the command around [`tally_ledger::audit`]. It opens a
//! node's database beside the running node, re-verifies the chain, prints a
//! summary (or the first fault) and exits with a code per fault class.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::json;
use tally_ledger::audit::{self, AuditOptions, Fault, FaultClass, Progress, Report};
use tally_ledger::genesis::Genesis;

use crate::home::{DATA_DIR, GENESIS_FILE};

/// The audit could not run (bad arguments, unreadable files): exit code 1.
pub const EXIT_ERROR: i32 = 1;

/// What `tally audit` was asked to do.
#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// A node's home folder (its database and genesis are used).
    #[arg(long, conflicts_with_all = ["db", "genesis"])]
    pub home: Option<PathBuf>,
    /// The database folder (with --genesis), instead of --home.
    #[arg(long, requires = "genesis")]
    pub db: Option<PathBuf>,
    /// The genesis file the database must belong to (with --db).
    #[arg(long, requires = "db")]
    pub genesis: Option<PathBuf>,
    /// First height to check; above 1, the stored state of the height
    /// before is trusted as the starting point.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Last height to check (default: the tip).
    #[arg(long)]
    pub to: Option<u64>,
    /// Threads verifying signatures (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print a machine-readable JSON report on stdout.
    #[arg(long)]
    pub json: bool,
}

impl AuditArgs {
    fn paths(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        match (&self.home, &self.db, &self.genesis) {
            (Some(home), _, _) => {
                anyhow::ensure!(
                    home.is_dir(),
                    "{} is not a node home folder (it does not exist); pass the folder `tally init` or `tally testnet` made",
                    home.display()
                );
                Ok((home.join(DATA_DIR), home.join(GENESIS_FILE)))
            }
            (None, Some(db), Some(genesis)) => Ok((db.clone(), genesis.clone())),
            _ => anyhow::bail!("say which chain to audit: --home DIR, or --db PATH --genesis FILE"),
        }
    }
}

/// Runs the audit and returns the process exit code: 0 when every check
/// held, 1 when the audit could not run, else the fault class's code.
pub fn run(args: &AuditArgs) -> i32 {
    match audit_chain(args) {
        Ok((report, genesis)) => {
            if args.json {
                println!("{}", report_json(&report, &genesis));
            } else {
                print_report(&report, &genesis);
            }
            report.exit_code()
        }
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    json!({ "ok": false, "exit_code": EXIT_ERROR, "error": crate::error_chain(&e) })
                );
            }
            eprintln!("error: {}", crate::error_chain(&e));
            EXIT_ERROR
        }
    }
}

/// Audits the chain `args` names; the report carries any fault.
pub fn audit_chain(args: &AuditArgs) -> anyhow::Result<(Report, Genesis)> {
    let (db, genesis_path) = args.paths()?;
    let genesis = Genesis::load(&genesis_path)
        .with_context(|| format!("{} is not a valid genesis", genesis_path.display()))?;
    let options = AuditOptions {
        from: args.from,
        to: args.to,
        threads: args.threads.unwrap_or(AuditOptions::default().threads),
    };
    let report = audit_db(&db, &genesis, &options, !args.json)?;
    Ok((report, genesis))
}

/// Opens `db` beside any running node and audits it. With `show_progress`
/// a progress bar is drawn on a terminal (never when stderr is piped).
pub fn audit_db(
    db: &Path,
    genesis: &Genesis,
    options: &AuditOptions,
    show_progress: bool,
) -> anyhow::Result<Report> {
    if !db.join("CURRENT").is_file() {
        anyhow::bail!(
            "{} is not a database folder (no CURRENT file); with --home, pass the node's home folder",
            db.display()
        );
    }
    let scratch = tempfile::tempdir().context("cannot create a scratch folder")?;
    let store = match audit::open(db, scratch.path(), genesis)
        .with_context(|| format!("cannot open {}", db.display()))?
    {
        Ok(store) => store,
        Err(fault) => return Ok(wrong_chain(fault, options)),
    };
    let bar = (show_progress && std::io::stderr().is_terminal()).then(progress_bar);
    let mut on_progress = |p: Progress| {
        if let Some(bar) = &bar {
            if bar.length().is_none() {
                bar.set_length(p.to + 1 - p.from);
            }
            bar.set_position(p.height + 1 - p.from);
            bar.set_message(format!("{} txs", p.txs));
        }
    };
    let report = audit::audit(&store, genesis, options, &mut on_progress)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

fn wrong_chain(fault: Fault, options: &AuditOptions) -> Report {
    Report {
        summary: audit::Summary {
            from: options.from,
            ..Default::default()
        },
        fault: Some(fault),
    }
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::no_length();
    let style = indicatif::ProgressStyle::with_template(
        "auditing {bar:40} {pos}/{len} blocks, {msg}, {per_sec}, ETA {eta}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

fn print_report(report: &Report, genesis: &Genesis) {
    let s = &report.summary;
    if report.fault.as_ref().map(|f| f.class) != Some(FaultClass::WrongChain) {
        println!(
            "audited chain {} heights {}..={} (tip {})",
            genesis.chain_id, s.from, s.to, s.tip
        );
        println!("  blocks checked  {}", s.blocks);
        println!("  transactions    {}", s.txs);
        println!("  signatures      {}", s.signatures);
        for c in &s.set_changes {
            println!(
                "  validator set   from height {}: {} validators, power {}, hash {}",
                c.height, c.validators, c.total_power, c.validators_hash
            );
        }
        println!(
            "  time            {:.2} s ({:.0} tx/s, {:.0} blocks/s)",
            s.elapsed_ms as f64 / 1000.0,
            s.tx_rate(),
            s.block_rate()
        );
    }
    match &report.fault {
        None => println!("OK: every check held"),
        Some(f) => {
            println!(
                "FAULT at height {} [{} / {}]: {}",
                f.height,
                class_name(f.class),
                f.check,
                f.message
            );
            if let Some(e) = &f.expected {
                println!("  expected  {e}");
            }
            if let Some(found) = &f.found {
                println!("  found     {found}");
            }
            println!("exit code {}", f.class.exit_code());
        }
    }
}

/// The class as the JSON report and the text output name it.
pub fn class_name(class: FaultClass) -> String {
    serde_json::to_value(class)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn report_json(report: &Report, genesis: &Genesis) -> serde_json::Value {
    json!({
        "ok": report.fault.is_none(),
        "exit_code": report.exit_code(),
        "chain_id": genesis.chain_id,
        "genesis_hash": genesis.hash().to_string(),
        "summary": report.summary,
        "tx_per_second": report.summary.tx_rate(),
        "fault": report.fault,
    })
}
