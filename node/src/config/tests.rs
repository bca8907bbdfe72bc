use super::*;

#[test]
fn local_config_round_trips_through_toml() {
    let c = NodeConfig::local("node0", NodeRole::Validator, 26656, 26657);
    let back: NodeConfig = toml::from_str(&c.to_toml()).unwrap();
    assert_eq!(back, c);
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn bad_configs_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let mut c = NodeConfig::local("node0", NodeRole::Validator, 1, 2);
    c.rpc.max_batch_len = 0;
    std::fs::write(&path, c.to_toml()).unwrap();
    let err = NodeConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("field `rpc.max_batch_len`: 0 is out of range (allowed 1 to 10000)"),
        "{err}"
    );

    let text = NodeConfig::local("n", NodeRole::Replica, 1, 2)
        .to_toml()
        .replace("moniker", "monicker");
    std::fs::write(&path, text).unwrap();
    let err = NodeConfig::load(&path).unwrap_err().to_string();
    assert!(err.contains("unknown field `monicker`"), "{err}");
}

/// A file is refused past the limit without being read to its end, even
/// when its size says nothing (a device that never ends).
#[test]
fn files_over_the_limit_are_refused_without_reading_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, vec![b'#'; CONFIG_BYTES_MAX as usize + 1]).unwrap();
    let err = NodeConfig::load(&path).unwrap_err();
    assert!(
        matches!(err, ConfigError::TooLarge { len, .. } if len == CONFIG_BYTES_MAX + 1),
        "{err}"
    );
    let err = NodeConfig::load(Path::new("/dev/zero")).unwrap_err();
    assert!(
        matches!(err, ConfigError::TooLarge { len, .. } if len == CONFIG_BYTES_MAX + 1),
        "{err}"
    );
    assert!(
        err.to_string().contains("more than the limit of 262144"),
        "{err}"
    );
}

fn sample() -> NodeConfig {
    NodeConfig::local("node0", NodeRole::Validator, 26656, 26657)
}

/// Loads `config` through a file, as `tally start` does.
fn load(config: &toml::Value) -> Result<NodeConfig, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    NodeConfig::load(&path)
}

fn set(v: &mut toml::Value, path: &str, value: toml::Value) {
    let slot = path
        .split('.')
        .fold(v, |v, key| v.get_mut(key).expect("key exists"));
    *slot = value;
}

fn assert_refused(err: FieldError, path: &str, needle: &str) {
    assert_eq!(err.field, path, "{err}");
    assert!(
        err.problem.contains(needle),
        "{err} should mention {needle:?}"
    );
}

/// One case per bound of every numeric key: just outside the range is
/// refused with the key and its range named, the bound itself loads.
#[test]
fn every_numeric_key_is_refused_just_outside_its_range() {
    // (key, lowest allowed, highest allowed)
    let table: &[(&str, i64, i64)] = &[
        ("p2p.max_connections", 1, 10_000),
        ("p2p.idle_timeout_ms", 1_000, 3_600_000),
        ("rpc.max_body_bytes", 1024, 64 << 20),
        ("rpc.max_connections", 1, 100_000),
        ("rpc.max_subscriptions_per_connection", 1, 100_000),
        ("rpc.max_batch_len", 1, 10_000),
        ("mempool.max_txs", 1, 10_000_000),
        ("mempool.max_bytes", 1024, 16 << 30),
        ("mempool.future_nonce_window", 1, 10_000),
        ("consensus.empty_block_interval_ms", 10, 60_000),
        ("consensus.block_fill_min_txs", 1, 100_000),
        ("consensus.clock_offset_ms", -86_400_000, 86_400_000),
    ];
    let base = toml::Value::try_from(sample()).unwrap();
    for &(path, min, max) in table {
        let allowed = format!("allowed {min} to {max}");
        for (value, ok) in [(min - 1, false), (min, true), (max, true), (max + 1, false)] {
            let mut v = base.clone();
            set(&mut v, path, value.into());
            match (ok, load(&v)) {
                (true, Ok(_)) => {}
                (true, Err(e)) => panic!("{path} = {value} refused: {e}"),
                (false, Ok(_)) => panic!("{path} = {value} accepted"),
                (false, Err(e)) => {
                    let message = e.to_string();
                    assert!(
                        message.contains(&format!(
                            "field `{path}`: {value} is out of range ({allowed})"
                        )),
                        "{message}"
                    );
                }
            }
        }
    }
}

/// The string and list keys, each just outside and at its bound.
#[test]
fn strings_and_lists_are_refused_just_outside_their_range() {
    let check = |c: &NodeConfig, path: &str, needle: Option<&str>| match (needle, c.validate()) {
        (None, Ok(())) => {}
        (None, Err(e)) => panic!("{path}: refused: {e}"),
        (Some(_), Ok(())) => panic!("{path}: accepted"),
        (Some(needle), Err(e)) => assert_refused(e, path, needle),
    };
    let mut c = sample();
    for (len, refused) in [(0, true), (1, false), (64, false), (65, true)] {
        c.moniker = "m".repeat(len);
        check(&c, "moniker", refused.then_some("allowed 1 to 64"));
    }

    let peer = tally_ledger::genesis::peer_id_from_node_key(
        &tally_ledger::Keypair::from_seed([3; 32]).public(),
    );
    let addr = format!("/ip4/127.0.0.1/tcp/1/p2p/{peer}");
    let mut c = sample();
    c.p2p.persistent_peers = vec![addr.clone(); 1000];
    check(&c, "p2p.persistent_peers", None);
    c.p2p.persistent_peers.push(addr.clone());
    check(
        &c,
        "p2p.persistent_peers",
        Some("lists 1001 entries (allowed 0 to 1000)"),
    );
    c.p2p.persistent_peers = vec![addr, "/ip4/127.0.0.1/tcp/1".into()];
    check(
        &c,
        "p2p.persistent_peers[1]",
        Some("does not end with /p2p/"),
    );

    let mut c = sample();
    c.p2p.listen = "127.0.0.1:26656".into();
    check(&c, "p2p.listen", Some("not a multiaddress"));
    let mut c = sample();
    c.rpc.listen = "/ip4/127.0.0.1/tcp/1".into();
    check(&c, "rpc.listen", Some("not host:port"));
    let mut c = sample();
    c.metrics.listen = Some("localhost".into());
    check(&c, "metrics.listen", Some("not host:port"));
    c.metrics.listen = Some("127.0.0.1:0".into());
    check(&c, "metrics.listen", None);

    let mut c = sample();
    c.consensus.block_fill_wait_ms = 60_001;
    check(&c, "consensus.block_fill_wait_ms", Some("out of range"));
    c.consensus.block_fill_wait_ms = 60_000;
    check(&c, "consensus.block_fill_wait_ms", None);

    let mut c = sample();
    c.rpc.cors_origins = vec!["https://app.example.com:8080".into(); 100];
    check(&c, "rpc.cors_origins", None);
    c.rpc.cors_origins.push("http://localhost".into());
    check(
        &c,
        "rpc.cors_origins",
        Some("lists 101 entries (allowed 0 to 100)"),
    );
    for bad in [
        "*",
        "app.example.com",
        "https://",
        "https://a.example/path",
        "https://a b",
    ] {
        c.rpc.cors_origins = vec!["http://localhost:3000".into(), bad.into()];
        check(&c, "rpc.cors_origins[1]", Some("is not an origin"));
    }
    c.rpc.cors_origins = vec![format!("https://{}", "a".repeat(256 - 8))];
    check(&c, "rpc.cors_origins", None);
    c.rpc.cors_origins[0].push('a');
    check(&c, "rpc.cors_origins[0]", Some("at most 256 bytes"));

    let mut c = sample();
    for (len, refused) in [(15, true), (16, false), (256, false), (257, true)] {
        c.rpc.auth_token = Some("t".repeat(len));
        check(&c, "rpc.auth_token", refused.then_some("allowed 16 to 256"));
    }
    c.rpc.auth_token = Some("a token with spaces".into());
    check(&c, "rpc.auth_token", Some("printable ASCII"));
}

/// The keys bounded by the chain's parameters.
#[test]
fn limits_that_depend_on_genesis_hold_a_largest_transaction() {
    let params = Params::default();
    let tx = u64::from(params.tx_bytes_max);
    let mut c = sample();
    c.mempool.max_bytes = tx;
    c.rpc.max_body_bytes = (2 * tx + 1024) as u32;
    assert_eq!(c.validate_for(&params), Ok(()));

    c.mempool.max_bytes = tx - 1;
    assert_refused(
        c.validate_for(&params).unwrap_err(),
        "mempool.max_bytes",
        &format!(
            "{} is out of range (allowed {tx} to {})",
            tx - 1,
            16u64 << 30
        ),
    );
    c.mempool.max_bytes = tx;
    c.rpc.max_body_bytes -= 1;
    assert_refused(
        c.validate_for(&params).unwrap_err(),
        "rpc.max_body_bytes",
        &format!("allowed {} to {}", 2 * tx + 1024, 64u64 << 20),
    );
}
