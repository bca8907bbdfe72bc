//! `tally tx …` and `tally query …`: JSON-RPC client commands. Transactions
//! are signed locally; the node never sees a private key.

use std::path::Path;

use anyhow::{bail, Context};
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};

use tally_ledger::crypto::{Domain, Signature};
use tally_ledger::encoding::{decode, encode};
use tally_ledger::genesis::Genesis;
use tally_ledger::governance::Change;
use tally_ledger::membership::{rotation_message, Validators};
use tally_ledger::state::{verify_state_proof, AccountState, StateKey, StateProof};
use tally_ledger::types::{
    CommitCertificate, Header, Op, Role, Tx, ValidatorSet, HEADER_BYTES_MAX,
};
use tally_ledger::verify::verify_certificate;
use tally_ledger::{Hash, Keypair, PublicKey};
use tally_rpc::types::{
    to_hex, AccountInfo, BlockId, SetChangeInfo, StateProofInfo, SET_CHANGES_PAGE_MAX,
};
use tally_rpc::LedgerApiClient;

use crate::keys::read_key_file;

/// A client for the node at `url` (`http://host:port`).
pub fn connect(url: &str) -> anyhow::Result<HttpClient> {
    HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(150))
        .build(url)
        .with_context(|| format!("{url:?} is not a usable RPC address (expected http://host:port)"))
}

fn explain(e: jsonrpsee::core::client::Error, url: &str) -> anyhow::Error {
    match e {
        jsonrpsee::core::client::Error::Call(obj) => {
            let data = obj
                .data()
                .map(|d| format!(" ({})", d.get()))
                .unwrap_or_default();
            anyhow::anyhow!(
                "the node refused: {} [code {}]{data}",
                obj.message(),
                obj.code()
            )
        }
        jsonrpsee::core::client::Error::Transport(t) => {
            anyhow::anyhow!("cannot reach the node at {url}: {t}. Is it running? Check --rpc")
        }
        other => anyhow::anyhow!("RPC to {url} failed: {other}"),
    }
}

/// What a `tally tx` command does.
#[derive(Debug, Clone)]
pub enum TxKind {
    Transfer {
        to: PublicKey,
        amount: u64,
    },
    Put {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        name: Vec<u8>,
    },
    Grant {
        account: PublicKey,
        role: Role,
    },
    Revoke {
        account: PublicKey,
    },
    Approve {
        change: Hash,
    },
    /// Proposes a validator or replica change.
    Propose(Change),
    /// Proposes rotating a validator's consensus key.
    Rotate {
        public_key: PublicKey,
        new_key: PublicKey,
        consent: Consent,
    },
}

/// The old key's consent to a rotation.
#[derive(Debug, Clone)]
pub enum Consent {
    /// Signed here with the old key's file.
    KeyFile(std::path::PathBuf),
    /// Signed by the validator's operator (`tally key consent`).
    Signature(Signature),
}

/// The old key's signature consenting to rotating to `new_key` on
/// `chain_id`.
pub fn sign_consent(old: &Keypair, new_key: &PublicKey, chain_id: &str) -> Signature {
    old.sign(
        Domain::Rotation,
        chain_id,
        &rotation_message(&old.public(), new_key),
    )
}

/// Signs and submits a transaction; prints its hash (and height with `wait`).
pub async fn send_tx(
    url: &str,
    key_file: &Path,
    kind: TxKind,
    nonce: Option<u64>,
    wait: bool,
) -> anyhow::Result<()> {
    let key = read_key_file(key_file)?;
    let client = connect(url)?;
    let genesis: Genesis =
        serde_json::from_value(client.get_genesis().await.map_err(|e| explain(e, url))?)
            .context("the node sent a genesis this client cannot read")?;
    let nonce = match nonce {
        Some(n) => n,
        None => {
            let account = client
                .get_account(key.public().to_hex(), None)
                .await
                .map_err(|e| explain(e, url))?;
            if !account.exists {
                bail!(
                    "account {} does not exist on chain {}; an admin must grant it first",
                    key.public(),
                    genesis.chain_id
                );
            }
            account.nonce.0 + 1
        }
    };
    let op = match kind {
        TxKind::Transfer { to, amount } => Op::Transfer { to, amount },
        TxKind::Put { name, value } => Op::Put { key: name, value },
        TxKind::Delete { name } => Op::Delete { key: name },
        TxKind::Grant { account, role } => Op::GrantAccount { account, role },
        TxKind::Revoke { account } => Op::RevokeAccount { account },
        TxKind::Approve { change } => Op::Approve { change },
        TxKind::Propose(change) => Op::Propose {
            change: Box::new(change),
        },
        TxKind::Rotate {
            public_key,
            new_key,
            consent,
        } => {
            let consent = match consent {
                Consent::Signature(s) => s,
                Consent::KeyFile(file) => {
                    let old = read_key_file(&file)?;
                    if old.public() != public_key {
                        bail!(
                            "{} holds key {}, not the validator's key {public_key}",
                            file.display(),
                            old.public()
                        );
                    }
                    sign_consent(&old, &new_key, &genesis.chain_id)
                }
            };
            Op::Propose {
                change: Box::new(Change::RotateKey {
                    public_key,
                    new_key,
                    consent,
                }),
            }
        }
    };
    let governs = matches!(
        op,
        Op::GrantAccount { .. }
            | Op::RevokeAccount { .. }
            | Op::Approve { .. }
            | Op::Propose { .. }
    );
    let tx = Tx {
        chain_id: genesis.chain_id.clone(),
        sender: key.public(),
        nonce,
        op,
    }
    .sign(&key);
    let encoded = to_hex(&encode(&tx));
    if wait {
        let done = client
            .submit_tx_and_wait(encoded, None)
            .await
            .map_err(|e| explain(e, url))?;
        println!("{}", done.hash);
        println!(
            "committed at height {} (index {})",
            done.height.0, done.index
        );
        if governs {
            let id = match &tx.tx.op {
                Op::Approve { change } => change.to_hex(),
                _ => done.hash.clone(),
            };
            let change = client
                .get_change(id, None)
                .await
                .map_err(|e| explain(e, url))?;
            let threshold = client
                .get_governance(None)
                .await
                .map_err(|e| explain(e, url))?
                .threshold;
            print_change(&change, threshold);
        }
    } else {
        let sent = client
            .submit_tx(encoded)
            .await
            .map_err(|e| explain(e, url))?;
        println!("{}", sent.hash);
    }
    Ok(())
}

/// What `tally query` asks.
#[derive(Debug, Clone)]
pub enum Query {
    Status,
    Block {
        id: BlockId,
    },
    Tx {
        hash: String,
    },
    Account {
        key: PublicKey,
        prove: bool,
        genesis: Option<std::path::PathBuf>,
    },
    Record {
        owner: PublicKey,
        name: Vec<u8>,
        prove: bool,
        genesis: Option<std::path::PathBuf>,
    },
    Validators {
        height: Option<u64>,
    },
    Governance,
    Change {
        id: String,
    },
}

fn print_change(c: &tally_rpc::types::ChangeInfo, threshold: u32) {
    println!("change {} ({})", c.id, c.change);
    match (c.status.as_str(), &c.at) {
        ("pending", _) => println!(
            "  pending: {} of {threshold} approvals, open until height {}",
            c.approvals_counted.unwrap_or(0),
            c.expires_at.0
        ),
        (status, Some(at)) => println!("  {status} at height {}", at.0),
        (status, None) => println!("  {status} after height {}", c.expires_at.0),
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs a query and prints the answer (readable, or JSON with `json`).
pub async fn query(url: &str, q: Query, json: bool) -> anyhow::Result<()> {
    let client = connect(url)?;
    let e = |err| explain(err, url);
    match q {
        Query::Status => {
            let s = client.status().await.map_err(e)?;
            if json {
                return print_json(&s);
            }
            println!("chain       {}", s.chain_id);
            println!("node        {} ({})", s.node_id, s.role);
            println!("height      {}", s.latest_height.0);
            println!(
                "block       {}",
                s.latest_hash.unwrap_or_else(|| "(none yet)".into())
            );
            println!("state root  {}", s.state_root);
            println!("round       {}", s.round);
            println!("peers       {}", s.peers);
            println!("catching up {}", s.catching_up);
            println!(
                "sync        target {}, {} behind, {:.0} blocks/s, {} peers scored",
                s.sync.target_height.0,
                s.sync.blocks_behind.0,
                s.sync.blocks_per_second,
                s.sync.peers.len()
            );
        }
        Query::Block { id } => {
            let b = client
                .get_block_by_height(id, Some(false))
                .await
                .map_err(e)?;
            if json {
                return print_json(&b);
            }
            println!("height     {}", b.header.height.0);
            println!("hash       {}", b.hash);
            println!("time_ms    {}", b.header.time_ms.0);
            println!("prev       {}", b.header.prev_hash);
            println!("proposer   {}", b.header.proposer);
            println!("state root {}", b.header.state_root);
            println!("txs        {}", b.tx_hashes.len());
            for t in &b.tx_hashes {
                println!("  {t}");
            }
            if let Some(c) = &b.certificate {
                println!(
                    "certified  round {} by {} validators",
                    c.round,
                    c.signatures.len()
                );
            }
        }
        Query::Tx { hash } => {
            let t = client.get_tx(hash).await.map_err(e)?;
            if json {
                return print_json(&t);
            }
            println!("hash    {}", t.hash);
            println!("status  {:?}", t.status);
            if let Some(r) = &t.reason {
                println!("reason  {r}");
            }
            if let (Some(h), Some(i)) = (t.height, t.index) {
                println!("height  {} (index {i})", h.0);
            }
        }
        Query::Account {
            key,
            prove,
            genesis,
        } => {
            let a = client
                .get_account(key.to_hex(), Some(prove))
                .await
                .map_err(e)?;
            if prove {
                let verdict = check_account_proof(&client, url, &key, &a, genesis.as_deref()).await;
                if json {
                    print_json(&a)?;
                }
                let msg = verdict?;
                if !json {
                    print_account(&a);
                }
                println!("proof: {msg}");
            } else if json {
                print_json(&a)?;
            } else {
                print_account(&a);
            }
        }
        Query::Record {
            owner,
            name,
            prove,
            genesis,
        } => {
            let r = client
                .get_record(owner.to_hex(), to_hex(&name), Some(prove))
                .await
                .map_err(e)?;
            if json {
                print_json(&r)?;
            } else {
                match &r.value {
                    Some(v) => println!("value   {v}"),
                    None => println!("value   (none)"),
                }
                println!("height  {}", r.height.0);
            }
            if let Some(p) = &r.proof {
                let trusted = trusted_genesis(&client, url, genesis.as_deref()).await?;
                let value = p.value.as_deref().map(parse_hex).transpose()?;
                let (set, walked) = proven_set(&client, url, &trusted, r.height.0).await?;
                let mut msg = check_proof_against(
                    &trusted.chain_id,
                    &set,
                    &StateKey::Record { owner, key: name },
                    value.as_deref(),
                    p,
                    r.height.0,
                )?;
                msg.push_str(&walked_note(walked));
                println!("proof: {msg}");
            }
        }
        Query::Validators { height } => {
            let v = client
                .get_validators(height.map(tally_rpc::types::U64))
                .await
                .map_err(e)?;
            if json {
                return print_json(&v);
            }
            for x in v {
                println!(
                    "{:>3}  {:<12} power {:<6} {}  {}",
                    x.index, x.name, x.power.0, x.public_key, x.peer_id
                );
            }
        }
        Query::Governance => {
            let g = client.get_governance(None).await.map_err(e)?;
            if json {
                return print_json(&g);
            }
            println!("height     {}", g.height.0);
            println!(
                "threshold  {} of {} admins, changes open for {} blocks",
                g.threshold,
                g.admins.len(),
                g.expiry_blocks.0
            );
            for a in &g.admins {
                println!("  admin {a}");
            }
            println!("pending    {}", g.pending.len());
            for c in &g.pending {
                print_change(c, g.threshold);
            }
        }
        Query::Change { id } => {
            let c = client.get_change(id, None).await.map_err(e)?;
            if json {
                return print_json(&c);
            }
            let threshold = client.get_governance(None).await.map_err(e)?.threshold;
            print_change(&c, threshold);
        }
    }
    Ok(())
}

fn print_account(a: &AccountInfo) {
    if !a.exists {
        println!("no such account (height {})", a.height.0);
        return;
    }
    println!("balance {}", a.balance.0);
    println!("nonce   {}", a.nonce.0);
    println!(
        "role    {}{}",
        a.role.clone().unwrap_or_default(),
        if a.active { "" } else { " (revoked)" }
    );
    println!("height  {}", a.height.0);
}

fn parse_hex(s: &str) -> anyhow::Result<Vec<u8>> {
    tally_ledger::encoding::hex_serde::parse_vec(s, 64 << 20)
        .map_err(|e| anyhow::anyhow!("bad hex from node: {e}"))
}

fn walked_note(walked: usize) -> String {
    match walked {
        0 => String::new(),
        n => format!(" (the validator set proven from genesis through {n} change(s))"),
    }
}

async fn trusted_genesis(
    client: &HttpClient,
    url: &str,
    file: Option<&Path>,
) -> anyhow::Result<Genesis> {
    match file {
        Some(path) => Ok(Genesis::load(path)?),
        None => {
            let v = client.get_genesis().await.map_err(|e| explain(e, url))?;
            Ok(serde_json::from_value(v)?)
        }
    }
}

async fn check_account_proof(
    client: &HttpClient,
    url: &str,
    key: &PublicKey,
    a: &AccountInfo,
    genesis_file: Option<&Path>,
) -> anyhow::Result<String> {
    let Some(p) = &a.proof else {
        bail!("the node returned no proof")
    };
    let genesis = trusted_genesis(client, url, genesis_file).await?;
    let value = p.value.as_deref().map(parse_hex).transpose()?;
    if let Some(v) = &value {
        let state = AccountState::decode(v)
            .map_err(|e| anyhow::anyhow!("proof value is not an account: {e}"))?;
        if state.balance != a.balance.0 || state.nonce != a.nonce.0 {
            bail!("the proven account differs from the one reported");
        }
    }
    let (set, walked) = proven_set(client, url, &genesis, a.height.0).await?;
    let mut msg = check_proof_against(
        &genesis.chain_id,
        &set,
        &StateKey::Account(*key),
        value.as_deref(),
        p,
        a.height.0,
    )?;
    msg.push_str(&walked_note(walked));
    if genesis_file.is_none() {
        msg.push_str(" (validator set taken from the node's genesis; pass --genesis FILE to check against your own)");
    }
    Ok(msg)
}

/// Verifies a state proof against the header's state root, and the header
/// against its certificate and the genesis validator set (for a chain
/// whose set never changed; see [`check_proof_against`]).
pub fn check_proof(
    genesis: &Genesis,
    key: &StateKey,
    value: Option<&[u8]>,
    p: &StateProofInfo,
    height: u64,
) -> anyhow::Result<String> {
    check_proof_against(
        &genesis.chain_id,
        &genesis.validator_set()?,
        key,
        value,
        p,
        height,
    )
}

/// The validator set that decides `height`, proven from genesis: each
/// change of the set up to `height` is checked against the set before it
/// (the block before the change is certified by that set, and its header
/// names the new one), so nothing but the genesis file is trusted. A node
/// that leaves a change out is caught: a later header names a set the walk
/// does not hold. Returns the set and the number of changes walked.
pub async fn proven_set(
    client: &HttpClient,
    url: &str,
    genesis: &Genesis,
    height: u64,
) -> anyhow::Result<(ValidatorSet, usize)> {
    let mut set = genesis.validator_set()?;
    let mut after = 0;
    let mut walked = 0;
    loop {
        let page = client
            .get_set_changes(Some(tally_rpc::types::U64(after)))
            .await
            .map_err(|e| explain(e, url))?;
        let full = page.len() >= SET_CHANGES_PAGE_MAX;
        for change in page {
            let at = change.height.0;
            if at <= after {
                bail!("INVALID: the node listed the set change at {at} after the one at {after}");
            }
            if at > height {
                return Ok((set, walked));
            }
            set = next_set(&genesis.chain_id, &set, &change)
                .map_err(|e| anyhow::anyhow!("INVALID: the set change at height {at}: {e}"))?;
            after = at;
            walked += 1;
        }
        if !full {
            return Ok((set, walked));
        }
    }
}

/// The set a change names, once checked against the set before it.
fn next_set(
    chain_id: &str,
    set: &ValidatorSet,
    change: &SetChangeInfo,
) -> anyhow::Result<ValidatorSet> {
    let header: Header = decode(&parse_hex(&change.header)?, HEADER_BYTES_MAX, "header")?;
    let cert = CommitCertificate::decode(&parse_hex(&change.certificate)?)?;
    if header.height.saturating_add(1) != change.height.0
        || cert.height != header.height
        || cert.block_hash != header.hash()
    {
        bail!("its header or certificate is for another block");
    }
    if header.validators_hash != set.hash() {
        bail!(
            "block {} was decided by validators {}, not by the set proven before it ({}): a change is missing",
            header.height,
            header.validators_hash.short(),
            set.hash().short()
        );
    }
    verify_certificate(&cert, set, chain_id)?;
    let next = Validators::decode(&parse_hex(&change.validators)?)?.set()?;
    if next.hash() != header.next_validators_hash {
        bail!(
            "the listed validators are not the ones block {} names",
            header.height
        );
    }
    Ok(next)
}

/// Verifies a state proof against the header's state root, and the header
/// against its certificate by `set`, the set proven to decide its height
/// ([`proven_set`]).
pub fn check_proof_against(
    chain_id: &str,
    set: &ValidatorSet,
    key: &StateKey,
    value: Option<&[u8]>,
    p: &StateProofInfo,
    height: u64,
) -> anyhow::Result<String> {
    let root = Hash::from_hex(&p.state_root).map_err(|e| anyhow::anyhow!("state root: {e}"))?;
    let proof = StateProof::from_bytes(&parse_hex(&p.proof)?)?;
    verify_state_proof(&root, key, value, &proof).map_err(|e| anyhow::anyhow!("INVALID: {e}"))?;
    if height == 0 {
        return Ok("valid against the genesis state root".into());
    }
    let header: Header = decode(&parse_hex(&p.header)?, 64 << 10, "header")?;
    let cert: CommitCertificate = CommitCertificate::decode(&parse_hex(&p.certificate)?)?;
    if header.state_root != root || header.height != height {
        bail!("INVALID: the header does not carry this state root");
    }
    if cert.block_hash != header.hash() || cert.height != height {
        bail!("INVALID: the certificate is for another block");
    }
    if header.validators_hash != set.hash() {
        bail!(
            "INVALID: block {height} names validators {}, not the set proven for its height ({})",
            header.validators_hash.short(),
            set.hash().short()
        );
    }
    verify_certificate(&cert, set, chain_id)
        .map_err(|e| anyhow::anyhow!("INVALID certificate: {e}"))?;
    Ok(format!(
        "valid: state root {} of block {} (height {height}) certified by {} validators",
        root.short(),
        header.hash().short(),
        cert.signatures.len()
    ))
}
