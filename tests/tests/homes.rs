//! A generated testnet is ready to run: every home loads and checks, every
//! node's store opens on the shared genesis, and the example genesis in the
//! repository is valid.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::os::unix::fs::PermissionsExt;

use tally_ledger::genesis::Genesis;
use tally_ledger::store::Store;
use tally_node::home;
use tally_node::testnet::{generate, TestnetSpec};

#[test]
fn the_example_genesis_is_valid() {
    let path = tally_tests::repo_root().join("genesis/example.json");
    let genesis = Genesis::load(&path).expect("genesis/example.json is valid");
    assert_eq!(genesis.validators.len(), 4);
    assert!(!genesis.replicas.is_empty());
}

#[test]
fn testnet_homes_load_and_their_stores_open() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let spec = TestnetSpec {
        chain_id: "homes-test".into(),
        validators: 4,
        replicas: 1,
        accounts: 3,
        base_port: 40000,
    };
    let genesis = generate(&spec, &out).unwrap();
    let mut genesis_hashes = Vec::new();
    for name in ["node0", "node1", "node2", "node3", "replica0"] {
        let h = home::load(&out.join(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert_eq!(h.genesis, genesis);
        assert_eq!(h.validator_key.is_some(), name.starts_with("node"));
        let store = Store::open(&h.data_dir(), &h.genesis).unwrap();
        assert_eq!(store.height(), 0);
        genesis_hashes.push(store.genesis_hash());
        for file in ["node_key.pem", "validator_key.pem"] {
            let path = out.join(name).join(file);
            if path.exists() {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
    }
    genesis_hashes.dedup();
    assert_eq!(genesis_hashes.len(), 1, "every node opens the same chain");
}

#[test]
fn a_home_whose_key_is_not_in_genesis_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("net");
    let spec = TestnetSpec {
        chain_id: "homes-test".into(),
        validators: 2,
        replicas: 0,
        accounts: 0,
        base_port: 41000,
    };
    generate(&spec, &out).unwrap();
    // Swap node1's node key into node0: its PeerId no longer matches genesis.
    std::fs::copy(
        out.join("node1/node_key.pem"),
        out.join("node0/node_key.pem"),
    )
    .unwrap();
    let err = home::load(&out.join("node0")).unwrap_err().to_string();
    assert!(err.contains("peer id"), "{err}");
    // A group-readable key is refused.
    std::fs::set_permissions(
        out.join("node1/validator_key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = format!("{:#}", home::load(&out.join("node1")).unwrap_err());
    assert!(err.contains("chmod 600"), "{err}");
}

/// The binary's own view of a home, its version, completions and man
/// pages, as an operator runs them.
#[test]
fn the_cli_checks_a_home_and_describes_itself() {
    let tally = tally_tests::faults::cluster::tally_binary();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&tally)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let spec = TestnetSpec {
        chain_id: "cli-test".into(),
        validators: 1,
        replicas: 0,
        accounts: 1,
        base_port: 30000,
    };
    generate(&spec, dir.path()).unwrap();
    let home = dir.path().join("node0");
    let home = home.to_str().unwrap();
    let (code, out, _) = run(&["config", "check", "--home", home]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("is ready to start"), "{out}");
    let key = dir.path().join("node0/validator_key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (code, out, err) = run(&["config", "check", "--home", home]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("FAIL  validator_key.pem") && out.contains("chmod 600"),
        "{out}"
    );
    assert!(err.contains("1 problem(s)"), "{err}");

    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("tally 0."), "{out}");
    assert!(
        out.contains("(commit ") && out.contains("formats: genesis 1, database 1, wire 1"),
        "{out}"
    );

    let (code, out, _) = run(&["completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("complete -F _tally") && out.contains("export"),
        "the script knows the subcommands"
    );

    // A reader that went away ends a command quietly, not with a panic.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(&tally)
        .args(["genesis", "check"])
        .arg(dir.path().join("genesis.json"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        std::os::unix::process::ExitStatusExt::signal(&out.status) == Some(13),
        "ended by SIGPIPE: {:?} {stderr}",
        out.status
    );

    let man = dir.path().join("man");
    let (code, _, _) = run(&["man", "--out", man.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    let page = std::fs::read_to_string(man.join("tally-export.1")).unwrap();
    assert!(page.contains(".TH tally-export"), "{page}");
    assert!(std::fs::read_to_string(man.join("tally.1"))
        .unwrap()
        .contains("config"));
}
