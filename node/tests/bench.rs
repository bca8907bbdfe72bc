//! `tally bench load` against four real `tally start` processes: a short
//! run whose report adds up against the chain itself; and the command with
//! a network of its own, as a sweep of puts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::ProcNet;
use tally_node::bench::load::{run, BenchOp, LoadSpec};
use tally_rpc::types::BlockId;
use tally_rpc::LedgerApiClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_reports_what_the_chain_holds() {
    let mut net = ProcNet::create("bench-test", 4, |_| {}, |_| {});
    net.spawn_all();
    for i in 0..4 {
        net.wait_rpc(i).await;
    }
    // The load starts on a live chain: a new network's validators first
    // hear one another (ADR 18), and senders whose transactions pile up
    // past the nonce window before the first block are refused.
    net.wait_height(&[0, 1, 2, 3], 1).await;
    let json = net.dir.path().join("load.json");
    let spec = LoadSpec {
        rpc: net.rpc_urls.iter().flatten().cloned().collect(),
        keys: net.net().join("accounts"),
        rate: Some(200),
        duration: Duration::from_secs(3),
        warmup: Duration::from_secs(1),
        senders: None,
        json: Some(json.clone()),
        metrics: Vec::new(),
        op: BenchOp::Transfer,
        tx_bytes: None,
    };
    let report = run(&spec).await.unwrap();

    // Every transaction the report counts as committed is in the chain
    // between the first and the last block it observed, and nothing else
    // is (this run is the only load).
    assert!(report.committed_total > 0, "{report:?}");
    let mut in_chain = 0u64;
    for h in report.first_height..=report.last_height {
        let block = net
            .client(0)
            .get_block_by_height(BlockId::Height(h), None)
            .await
            .unwrap();
        in_chain += block.tx_hashes.len() as u64;
    }
    assert_eq!(in_chain, report.committed_total, "{report:?}");
    // Sent = accepted + refused; accepted = committed + uncommitted.
    let refused: u64 = report.rejected.values().sum();
    assert_eq!(report.sent, report.accepted + refused, "{report:?}");
    assert_eq!(
        report.accepted,
        report.committed_total + report.uncommitted,
        "{report:?}"
    );
    let l = &report.latency_ms;
    assert!(
        0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max,
        "{l:?}"
    );
    assert!(
        report.blocks > 0 && report.txs_per_block > 0.0,
        "{report:?}"
    );

    // The JSON file holds the same report under the documented keys.
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for key in [
        "committed_tps",
        "offered_tps",
        "rejected",
        "uncommitted",
        "blocks",
        "txs_per_block",
    ] {
        assert!(v.get(key).is_some(), "{key} missing from {v}");
    }
    for key in ["p50", "p90", "p99", "max", "mean"] {
        assert!(v["latency_ms"][key].is_number(), "latency_ms.{key} missing");
    }
    let written = v["committed_tps"].as_f64().unwrap();
    assert!(
        (written - report.committed_tps).abs() < 1e-6,
        "{written} in the file"
    );
}

/// `tally bench load` without `--rpc` starts its own network for each point
/// of a sweep, loads it with puts of the asked size, and reports each node's
/// own figures.
#[test]
fn a_sweep_of_puts_on_its_own_network_reports_every_point() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("sweep.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "bench",
            "load",
            "--validators",
            "1",
            "--senders",
            "10",
            "--op",
            "put",
            "--tx-bytes",
            "1024",
            "--sweep",
            "40,80",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--json",
        ])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("throughput against latency"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let points = v["points"].as_array().unwrap();
    let offered: Vec<f64> = points
        .iter()
        .map(|p| p["offered_tps"].as_f64().unwrap())
        .collect();
    assert_eq!(offered, vec![40.0, 80.0]);
    for p in points {
        let num = |k: &str| p[k].as_f64().unwrap_or_else(|| panic!("{k} in {p}"));
        assert!(num("committed_total") > 0.0, "{p}");
        let refused: f64 = p["rejected"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_f64().unwrap())
            .sum();
        assert_eq!(num("sent"), num("accepted") + refused, "{p}");
        assert_eq!(
            num("accepted"),
            num("committed_total") + num("uncommitted"),
            "{p}"
        );
        let nodes = p["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1, "{p}");
        let node = &nodes[0];
        for key in ["cpu_s", "rss_mb", "sig_checks_per_tx", "fsyncs_per_s"] {
            assert!(node[key].as_f64().unwrap() > 0.0, "{key} in {node}");
        }
    }
}
