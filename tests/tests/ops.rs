//! What operators run against the nodes: the Grafana dashboard and the
//! Prometheus alert rules in `ops/` use only metrics that nodes (or the
//! exporter) export, and every node's `/metrics` parses as Prometheus text;
//! SIGTERM during load stops a node cleanly with a database its audit
//! passes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tally_tests::faults::cluster::{tally_binary, Cluster, ClusterSpec};
use tally_tests::faults::load::Load;
use tally_tests::{repo_root, wait_height, TestNet};

/// `GET /metrics` from `addr`: the body.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// Every metric name a text exposition defines: its samples' names, and
/// the families it declares (a labelled family with no sample yet shows
/// only its `# TYPE` line; a counter's samples end in `_total`).
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_string());
            if kind == "counter" {
                names.insert(format!("{name}_total"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The `tally_…` names an ops file uses, without histogram suffixes.
fn used_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("tally_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_lowercase()
                || bytes[end].is_ascii_digit()
                || bytes[end] == b'_')
        {
            end += 1;
        }
        if boundary {
            let name = &text[start..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(name.to_string());
        }
        i = end.max(start + 1);
    }
    names
}

/// The files whose expressions must name real metrics.
fn ops_files() -> Vec<(String, String)> {
    let ops = repo_root().join("ops");
    ["grafana/tally.json", "prometheus/alerts.yml"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read_to_string(ops.join(f)).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_use_only_metrics_the_nodes_export() {
    let mut net = TestNet::create(4, 1);
    for i in 0..5 {
        let mut home = net.home(i);
        home.config.metrics.listen = Some("127.0.0.1:0".into());
        net.start_home(i, &home).await;
    }
    wait_height(&net.running(), 3, Duration::from_secs(60)).await;
    let mut exported = BTreeSet::new();
    for node in net.nodes.iter().flatten() {
        let addr = node.metrics_addr.expect("metrics on");
        // Peers' sync scores appear once their first status has come.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let text = loop {
            let text = scrape(addr).await;
            if text.contains("tally_peer_score{") {
                break text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no peer scores: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // A real parser: the exposition must parse as Prometheus text.
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
        assert!(scrape.samples.iter().any(|s| s.metric == "tally_height"));
        exported.extend(exported_names(&text));
    }
    // The exporter's own metrics, as it serves them.
    let export = tally_node::export::ExportMetrics::default().render();
    prometheus_parse::Scrape::parse(export.lines().map(|l| Ok(l.to_string())))
        .expect("the exporter's metrics parse");
    exported.extend(exported_names(&export));

    let mut used_anywhere = 0;
    for (file, text) in ops_files() {
        let used = used_names(&text);
        assert!(used.len() >= 5, "{file} names too few metrics: {used:?}");
        used_anywhere += used.len();
        let missing: Vec<_> = used.difference(&exported).collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics no node exports: {missing:?}"
        );
    }
    assert!(used_anywhere > 0);
    net.stop_all().await;
}

#[test]
fn the_name_reader_finds_names_and_strips_histogram_series() {
    let used = used_names(r#"rate(tally_x_bucket[5m]) / tally_y_total + my_tally_z"#);
    assert_eq!(
        used,
        BTreeSet::from(["tally_x".to_string(), "tally_y_total".to_string()])
    );
    let exported = exported_names("# TYPE tally_a counter\n# TYPE tally_b gauge\ntally_b 3\n");
    assert!(exported.contains("tally_a_total") && exported.contains("tally_b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_stops_cleanly_and_the_audit_passes() {
    let spec = ClusterSpec {
        replicas: 0,
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::create(&spec, |_| {}).await;
    cluster.start_all().await;
    let load = Load::start(&cluster.accounts(), 8, &spec.chain_id, cluster.clients(), 3);
    // Mid-load: blocks full of transactions are being written.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while load
        .stats
        .acknowledged
        .load(std::sync::atomic::Ordering::Relaxed)
        < 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the load commits nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = cluster.terminate(3).await;
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    let log = std::fs::read_to_string(&cluster.nodes[3].log).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
    // The nodes log JSON: each event keeps its field names.
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let fields_of = |message: &str| {
        events
            .iter()
            .filter(|e| e["fields"]["message"] == message)
            .map(|e| {
                let mut keys: Vec<String> =
                    e["fields"].as_object().unwrap().keys().cloned().collect();
                keys.sort();
                keys
            })
            .collect::<BTreeSet<_>>()
    };
    let committed = fields_of("committed block");
    assert_eq!(
        committed,
        BTreeSet::from([vec!["block", "height", "message", "round", "txs"]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()]),
        "one shape for every committed block"
    );
    for shape in fields_of("peer connected")
        .iter()
        .chain(&fields_of("peer disconnected"))
    {
        assert!(shape.contains(&"peer".to_string()), "{shape:?}");
    }
    load.stop().await;
    let audit = std::process::Command::new(tally_binary())
        .args(["audit", "--home"])
        .arg(&cluster.nodes[3].home)
        .output()
        .unwrap();
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}
