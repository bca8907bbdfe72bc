//! The `tally` binary's set-up commands, run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use tally_node::config::NodeConfig;

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()
        .expect("runs tally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn testnet_makes_homes_that_validate_with_private_keys_and_distinct_ports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let o = tally(&[
        "testnet",
        "--validators",
        "4",
        "--replicas",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--base-port",
        "31000",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("4 validators, 1 replicas"),
        "{}",
        stdout(&o)
    );

    let mut ports = BTreeSet::new();
    for (i, name) in ["node0", "node1", "node2", "node3", "replica0"]
        .iter()
        .enumerate()
    {
        let home = out.join(name);
        let loaded = tally_node::home::load(&home).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(mode(&home.join("node_key.pem")), 0o600);
        if name.starts_with("node") {
            assert_eq!(mode(&home.join("validator_key.pem")), 0o600);
        } else {
            assert!(!home.join("validator_key.pem").exists());
        }
        let config = NodeConfig::load(&home.join("config.toml")).unwrap();
        assert_eq!(config, loaded.config);
        let p2p = 31000 + 2 * i as u16;
        assert_eq!(config.p2p.listen, format!("/ip4/127.0.0.1/tcp/{p2p}"));
        assert_eq!(config.rpc.listen, format!("127.0.0.1:{}", p2p + 1));
        assert_eq!(
            config.p2p.persistent_peers.len(),
            4,
            "wired to every other node"
        );
        assert!(ports.insert(p2p) && ports.insert(p2p + 1));
    }
    for account in ["admin.pem", "user0.pem", "user3.pem"] {
        assert_eq!(
            mode(&out.join("accounts").join(account)),
            0o600,
            "{account}"
        );
    }
    let g = tally(&[
        "genesis",
        "check",
        out.join("genesis.json").to_str().unwrap(),
    ]);
    assert!(g.status.success(), "{}", stderr(&g));
    assert!(stdout(&g).contains("5 accounts"), "{}", stdout(&g));

    // A second run into the same folder refuses to overwrite it.
    let again = tally(&["testnet", "--out", out.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
}

#[test]
fn keygen_and_key_show_agree_and_refuse_loose_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let o = tally(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(mode(&key), 0o600);
    let generated = stdout(&o);
    let public = generated
        .lines()
        .find(|l| l.starts_with("public key: 0x"))
        .expect("prints the public key");
    let peer = generated
        .lines()
        .find(|l| l.starts_with("peer id:    12D3KooW"))
        .expect("prints the peer id");
    let shown = stdout(&tally(&["key", "show", key.to_str().unwrap()]));
    assert!(shown.contains(public) && shown.contains(peer), "{shown}");

    assert!(
        !tally(&["keygen", "--out", key.to_str().unwrap()])
            .status
            .success(),
        "never overwrites"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = tally(&["key", "show", key.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
}

#[test]
fn init_makes_a_one_validator_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("solo");
    let o = tally(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--chain-id",
        "solo-chain",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let loaded = tally_node::home::load(&home).unwrap();
    assert_eq!(loaded.genesis.chain_id, "solo-chain");
    assert_eq!(loaded.genesis.validators.len(), 1);
    assert!(loaded.validator_key.is_some());
    assert_eq!(mode(&home.join("accounts/admin.pem")), 0o600);
    let again = tally(&[
        "init",
        "--home",
        home.to_str().unwrap(),
        "--chain-id",
        "solo-chain",
    ]);
    assert!(!again.status.success());
}

#[test]
fn a_bad_genesis_is_reported_with_its_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    std::fs::write(
        &path,
        r#"{"chain_id":"x","genesis_time_ms":1,"params":{},"validators":[]}"#,
    )
    .unwrap();
    let o = tally(&["genesis", "check", path.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("params"), "{}", stderr(&o));
}

/// `genesis check` and `start` refuse a value out of range, naming the field
/// and what it may be, before anything runs.
#[test]
fn out_of_range_values_are_refused_with_their_field_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("solo");
    let o = tally(&["init", "--home", home.to_str().unwrap(), "--chain-id", "c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let genesis_path = home.join("genesis.json");
    let good = std::fs::read_to_string(&genesis_path).unwrap();

    // (genesis params key, value, what the error says)
    let cases = [
        (
            "block_bytes_max",
            1024,
            "`params.block_bytes_max`: 1024 is out of range (allowed 133929 to 67108864)",
        ),
        (
            "timeout_propose_ms",
            0,
            "`params.timeout_propose_ms`: 0 is out of range (allowed 10 to 60000)",
        ),
        (
            "timeout_delta_ms",
            0,
            "`params.timeout_delta_ms`: 0 is out of range (allowed 10 to 60000)",
        ),
    ];
    for (key, value, message) in cases {
        let mut g: serde_json::Value = serde_json::from_str(&good).unwrap();
        g["params"][key] = value.into();
        std::fs::write(&genesis_path, g.to_string()).unwrap();
        for args in [
            vec!["genesis", "check", genesis_path.to_str().unwrap()],
            vec!["start", "--home", home.to_str().unwrap()],
        ] {
            let o = tally(&args);
            assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        }
    }
    std::fs::write(&genesis_path, &good).unwrap();

    let config_path = home.join("config.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replace("future_nonce_window = 64", "future_nonce_window = 0"),
    )
    .unwrap();
    let o = tally(&["start", "--home", home.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "field `mempool.future_nonce_window`: 0 is out of range (allowed 1 to 10000)"
        ),
        "{}",
        stderr(&o)
    );

    let o = tally(&["genesis", "check", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("more than the limit of 16777216"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn version_is_printed() {
    let o = tally(&["--version"]);
    assert!(o.status.success());
    assert!(stdout(&o).starts_with("tally "), "{}", stdout(&o));
}

#[test]
fn audit_exits_zero_on_a_clean_chain_and_with_the_class_code_on_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let genesis_path = dir.path().join("genesis.json");
    let genesis = tally_node::bench::build_chain(&db, &genesis_path, 30, 5, false).unwrap();
    let (db_s, genesis_s) = (db.to_str().unwrap(), genesis_path.to_str().unwrap());

    let o = tally(&["audit", "--db", db_s, "--genesis", genesis_s]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("OK: every check held"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("transactions    150"), "{}", stdout(&o));
    // Piped: no progress bar.
    assert!(!stderr(&o).contains("auditing"), "{}", stderr(&o));

    let o = tally(&[
        "audit",
        "--db",
        db_s,
        "--genesis",
        genesis_s,
        "--json",
        "--from",
        "10",
        "--to",
        "20",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["summary"]["blocks"], 11);
    assert_eq!(report["summary"]["txs"], 55);

    // One certificate signature broken at height 17.
    {
        let store = tally_ledger::store::Store::open(&db, &genesis).unwrap();
        let mut cert = store.certificate(17).unwrap().unwrap();
        cert.signatures[0].signature.0[0] ^= 1;
        store
            .tamper_raw(
                "certificates",
                &17u64.to_be_bytes(),
                Some(&tally_ledger::encoding::encode(&cert)),
            )
            .unwrap();
    }
    let o = tally(&["audit", "--db", db_s, "--genesis", genesis_s]);
    assert_eq!(o.status.code(), Some(14), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("FAULT at height 17 [certificate / certificate]"),
        "{}",
        stdout(&o)
    );
    let o = tally(&["audit", "--db", db_s, "--genesis", genesis_s, "--json"]);
    assert_eq!(o.status.code(), Some(14));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["fault"]["class"], "certificate");
    assert_eq!(report["fault"]["height"], 17);
    assert_eq!(report["summary"]["blocks"], 16);

    // Nothing to audit there: exit 1 and a message that says what to pass.
    let o = tally(&["audit", "--home", dir.path().join("nope").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not a node home folder"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_sync_builds_a_chain_and_a_new_replica_catches_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("bench");
    let o = tally(&[
        "bench",
        "sync",
        "--dir",
        d.to_str().unwrap(),
        "--blocks",
        "60",
        "--txs-per-block",
        "5",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("synced 60 blocks, 300 txs in "),
        "{}",
        stdout(&o)
    );
    // The second run reuses the chain and syncs a fresh replica again.
    let o = tally(&["bench", "sync", "--dir", d.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reusing the chain"), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("synced 60 blocks, 300 txs"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn audit_draws_a_progress_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let genesis = dir.path().join("genesis.json");
    tally_node::bench::build_chain(&db, &genesis, 40, 2, false).unwrap();
    // `script` runs the command on a pseudo-terminal and copies its output.
    let command = format!(
        "{} audit --db {} --genesis {}",
        env!("CARGO_BIN_EXE_tally"),
        db.display(),
        genesis.display()
    );
    let o = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("runs script (util-linux)");
    let text = stdout(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("auditing"), "no progress bar: {text}");
    assert!(text.contains("blocks"), "{text}");
    assert!(text.contains("OK: every check held"), "{text}");
}
