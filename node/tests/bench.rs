//! `tally bench load` against four real `tally start` processes: a short
//! run whose report adds up against the chain itself.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::ProcNet;
use tally_node::bench::load::{run, LoadSpec};
use tally_rpc::types::BlockId;
use tally_rpc::LedgerApiClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_reports_what_the_chain_holds() {
    let mut net = ProcNet::create("bench-test", 4, |_| {}, |_| {});
    net.spawn_all();
    for i in 0..4 {
        net.wait_rpc(i).await;
    }
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
