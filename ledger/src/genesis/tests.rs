//! Unit tests of the parent module.

use super::*;
use crate::crypto::Keypair;

pub(crate) fn sample() -> Genesis {
    let v = |i: u8| GenesisValidator {
        name: format!("node{i}"),
        public_key: Keypair::from_seed([i + 1; 32]).public(),
        peer_id: peer_id_from_node_key(&Keypair::from_seed([i + 100; 32]).public()),
        power: 10,
    };
    Genesis {
        chain_id: "tally-test".into(),
        genesis_time_ms: 1_700_000_000_000,
        params: Params::default(),
        validators: (0..4).map(v).collect(),
        replicas: vec![GenesisReplica {
            name: "replica0".into(),
            peer_id: peer_id_from_node_key(&Keypair::from_seed([200; 32]).public()),
        }],
        accounts: vec![GenesisAccount {
            public_key: Keypair::from_seed([50; 32]).public(),
            role: Role::Admin,
            balance: 1_000,
        }],
        governance: Default::default(),
    }
}

fn json_of(g: &Genesis) -> serde_json::Value {
    serde_json::from_str(&g.to_json()).unwrap()
}

fn err_of(v: serde_json::Value) -> GenesisError {
    Genesis::from_json(v.to_string().as_bytes()).unwrap_err()
}

fn assert_field(err: GenesisError, path: &str, needle: &str) {
    match &err {
        GenesisError::Field { field, problem } => {
            assert_eq!(field, path, "{err}");
            assert!(problem.contains(needle), "{err} should mention {needle:?}");
        }
        other => panic!("expected a field error at {path}, got {other}"),
    }
}

#[test]
fn sample_round_trips_and_hash_ignores_formatting() {
    let g = sample();
    let back = Genesis::from_json(g.to_json().as_bytes()).unwrap();
    assert_eq!(back, g);
    let compact = serde_json::to_vec(&json_of(&g)).unwrap();
    assert_eq!(Genesis::from_json(&compact).unwrap().hash(), g.hash());
    let mut other = g.clone();
    other.chain_id = "tally-other".into();
    assert_ne!(other.hash(), g.hash());
}

#[test]
fn malformed_genesis_files_give_precise_errors() {
    let base = json_of(&sample());

    let mut v = base.clone();
    v["validators"] = serde_json::json!([]);
    assert_field(err_of(v), "validators", "empty");

    let mut v = base.clone();
    v["validators"][2]["power"] = 0.into();
    assert_field(err_of(v), "validators[2].power", "at least 1");

    let mut v = base.clone();
    v["validators"][1]["public_key"] = v["validators"][0]["public_key"].clone();
    assert_field(
        err_of(v),
        "validators[1].public_key",
        "duplicate validator key",
    );

    let mut v = base.clone();
    v["validators"][3]["public_key"] = "0x12zz".into();
    assert_field(
        err_of(v),
        "validators[3].public_key",
        "expected 64 hex digits",
    );

    let mut v = base.clone();
    v["validators"][0]["public_key"] = format!("0x{}", "zz".repeat(32)).into();
    assert_field(err_of(v), "validators[0].public_key", "invalid hex");

    let mut v = base.clone();
    v["accounts"][0]["role"] = "boss".into();
    assert_field(err_of(v), "accounts[0].role", "unknown variant `boss`");

    let mut v = base.clone();
    v["params"]["block_txs_max"] = 0.into();
    assert_field(err_of(v), "params.block_txs_max", "out of range");

    let mut v = base.clone();
    v["params"]["tx_bytes_max"] = 100_000.into();
    v["params"]["block_bytes_max"] = 150_000.into();
    assert_field(
        err_of(v),
        "params.block_bytes_max",
        &format!("allowed {} to", BLOCK_OVERHEAD_BYTES_MAX + 100_000),
    );

    let mut v = base.clone();
    v["validators"][0]["power"] = (TOTAL_POWER_MAX - 5).into();
    assert_field(err_of(v), "validators[1].power", "overflows");

    let mut v = base.clone();
    v["validators"][1]["power"] = serde_json::json!(-3);
    assert_field(err_of(v), "validators[1].power", "invalid value");

    let mut v = base.clone();
    v["replicas"][0]["peer_id"] = v["validators"][0]["peer_id"].clone();
    assert_field(err_of(v), "replicas[0].peer_id", "duplicate peer id");

    let mut v = base.clone();
    v["replicas"][0]["peer_id"] = "QmNotEd25519".into();
    assert_field(err_of(v), "replicas[0].peer_id", "not an ed25519");

    let mut v = base.clone();
    v["accounts"] = serde_json::json!([v["accounts"][0], v["accounts"][0]]);
    assert_field(err_of(v), "accounts[1].public_key", "duplicate account");

    let mut v = base.clone();
    v["chain_id"] = "bad chain".into();
    assert_field(err_of(v), "chain_id", "letters, digits");

    let mut v = base.clone();
    v["params"]["timeout_propos_ms"] = 5.into();
    assert_field(
        err_of(v),
        "params.timeout_propos_ms",
        "unknown field `timeout_propos_ms`",
    );

    let mut v = base.clone();
    let mut weak = [0u8; 32];
    weak[0] = 1;
    v["accounts"][0]["public_key"] = hex::encode(weak).into();
    assert_field(err_of(v), "accounts[0].public_key", "small-order");

    assert!(matches!(
        Genesis::from_json(b"{\"chain_id\": "),
        Err(GenesisError::Syntax(_))
    ));
    let huge = vec![b' '; GENESIS_BYTES_MAX as usize + 1];
    assert!(matches!(
        Genesis::from_json(&huge),
        Err(GenesisError::TooLarge { .. })
    ));
}

/// Sets the field at a dotted JSON path, e.g. `params.tx_bytes_max`.
fn set(v: &mut serde_json::Value, path: &str, value: u64) {
    let slot = path.split('.').fold(v, |v, key| &mut v[key]);
    *slot = value.into();
}

/// One case per bound of every numeric field: just outside the range is
/// refused with the field and its range named, the bound itself is
/// accepted. Bounds that follow from other parameters are tested with
/// those set (`with`).
#[test]
fn every_numeric_field_is_refused_just_outside_its_range() {
    let tx = u64::from(Params::default().tx_bytes_max);
    let key = u64::from(Params::default().key_bytes_max);
    let put_room = tx - PUT_TX_FRAMING_BYTES_MAX as u64;
    let small_tx: &[(&str, u64)] = &[
        ("params.tx_bytes_max", 512),
        ("params.key_bytes_max", 1),
        ("params.value_bytes_max", 0),
    ];
    // (field, lowest allowed, highest allowed, other fields set first)
    type Case<'a> = (&'a str, u64, u64, &'a [(&'a str, u64)]);
    let table: &[Case<'_>] = &[
        ("genesis_time_ms", 0, 253_402_300_799_999, &[]),
        ("params.tx_bytes_max", 512, 1 << 20, small_tx),
        ("params.key_bytes_max", 1, 1024, &[]),
        ("params.key_bytes_max", 1, 512 - 181, small_tx),
        ("params.value_bytes_max", 0, put_room - key, &[]),
        ("params.value_bytes_max", 0, 512 - 181 - 1, small_tx),
        (
            "params.block_bytes_max",
            BLOCK_OVERHEAD_BYTES_MAX as u64 + tx,
            64 << 20,
            &[],
        ),
        (
            "params.block_bytes_max",
            BLOCK_OVERHEAD_BYTES_MAX as u64 + 512,
            64 << 20,
            small_tx,
        ),
        ("params.block_txs_max", 1, 100_000, &[]),
        ("params.timeout_propose_ms", 10, 60_000, &[]),
        ("params.timeout_prevote_ms", 10, 60_000, &[]),
        ("params.timeout_precommit_ms", 10, 60_000, &[]),
        ("params.timeout_delta_ms", 10, 60_000, &[]),
    ];
    let base = json_of(&sample());
    for &(path, min, max, with) in table {
        let mut v = base.clone();
        for &(other, value) in with {
            set(&mut v, other, value);
        }
        let allowed = format!("allowed {min} to {max}");
        let mut cases = vec![(min, true), (max, true), (max + 1, false)];
        if min > 0 {
            cases.push((min - 1, false));
        }
        for (value, ok) in cases {
            let mut v = v.clone();
            set(&mut v, path, value);
            let got = Genesis::from_json(v.to_string().as_bytes());
            match (ok, got) {
                (true, Ok(_)) => {}
                (true, Err(e)) => panic!("{path} = {value} refused: {e}"),
                (false, Ok(_)) => panic!("{path} = {value} accepted"),
                (false, Err(e)) => {
                    let message = e.to_string();
                    assert_field(e, path, &allowed);
                    assert!(message.contains(&value.to_string()), "{message}");
                }
            }
        }
    }
}

fn validator(i: u32) -> GenesisValidator {
    let seed = |tag: u8| {
        let mut seed = [tag; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        seed
    };
    GenesisValidator {
        name: format!("v{i}"),
        public_key: Keypair::from_seed(seed(1)).public(),
        peer_id: peer_id_from_node_key(&Keypair::from_seed(seed(2)).public()),
        power: 1,
    }
}

/// The bounds on lengths and counts, each just outside and at the bound.
#[test]
fn lengths_and_counts_are_refused_just_outside_their_range() {
    let check = |g: &Genesis, path: &str, needle: Option<&str>| match (needle, g.validate()) {
        (None, Ok(())) => {}
        (None, Err(e)) => panic!("{path}: refused: {e}"),
        (Some(_), Ok(())) => panic!("{path}: accepted"),
        (Some(needle), Err(e)) => assert_field(e, path, needle),
    };
    let mut g = sample();
    for (len, refused) in [(0, true), (1, false), (64, false), (65, true)] {
        g.chain_id = "c".repeat(len);
        check(&g, "chain_id", refused.then_some("1 to 64 characters"));
    }
    let mut g = sample();
    for (len, refused) in [(0, true), (1, false), (64, false), (65, true)] {
        g.validators[1].name = "n".repeat(len);
        check(&g, "validators[1].name", refused.then_some("1 to 64"));
    }
    let mut g = sample();
    for (len, refused) in [(0, true), (1, false), (64, false), (65, true)] {
        g.replicas[0].name = "r".repeat(len);
        check(&g, "replicas[0].name", refused.then_some("1 to 64"));
    }

    let mut g = sample();
    g.validators = (0..1000).map(validator).collect();
    check(&g, "validators", None);
    g.validators.push(validator(1000));
    check(&g, "validators", Some("limit of 1000"));
    g.validators.clear();
    check(&g, "validators", Some("empty"));
    g.validators.push(validator(0));
    check(&g, "validators", None);

    let mut g = sample();
    g.validators[0].power = 1;
    check(&g, "validators[0].power", None);
    g.validators[0].power = 0;
    check(&g, "validators[0].power", Some("at least 1"));
    g.validators[0].power = TOTAL_POWER_MAX - 30;
    check(&g, "validators[0].power", None);
    g.validators[0].power += 1;
    check(&g, "validators[3].power", Some("overflows"));

    let mut g = sample();
    g.replicas = (0..1000)
        .map(|i| GenesisReplica {
            name: format!("r{i}"),
            peer_id: validator(10_000 + i).peer_id,
        })
        .collect();
    check(&g, "replicas", None);
    g.replicas.push(GenesisReplica {
        name: "one-too-many".into(),
        peer_id: validator(20_000).peer_id,
    });
    check(&g, "replicas", Some("more than 1000"));

    let mut g = sample();
    g.accounts = (0..100_000u32)
        .map(|i| GenesisAccount {
            public_key: validator(i).public_key,
            role: Role::Member,
            balance: u64::MAX,
        })
        .collect();
    check(&g, "accounts", None);
    g.accounts.push(g.accounts[0].clone());
    check(&g, "accounts", Some("more than 100000"));
}

/// A file is refused past the limit without being read to its end, even
/// when its size says nothing (a device that never ends).
#[test]
fn files_over_the_limit_are_refused_without_reading_them_whole() {
    assert!(matches!(
        Genesis::load(Path::new("/dev/zero")),
        Err(GenesisError::TooLarge { len }) if len == GENESIS_BYTES_MAX + 1
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("genesis.json");
    std::fs::write(&path, vec![b' '; GENESIS_BYTES_MAX as usize + 10]).unwrap();
    assert!(matches!(
        Genesis::load(&path),
        Err(GenesisError::TooLarge { len }) if len == GENESIS_BYTES_MAX + 10
    ));
    std::fs::write(&path, sample().to_json()).unwrap();
    assert_eq!(Genesis::load(&path), Ok(sample()));
    assert_eq!(
        read_file_bounded(&path, 3).unwrap(),
        Err(path.metadata().unwrap().len())
    );
}

#[test]
fn peer_id_round_trip() {
    let k = Keypair::from_seed([5; 32]).public();
    let id = peer_id_from_node_key(&k);
    assert!(id.starts_with("12D3KooW"), "{id}");
    assert_eq!(node_key_from_peer_id(&id), Ok(k));
    assert!(node_key_from_peer_id("0OIl").is_err());
}
