//! The block explorer as the node serves it: at `/` on the RPC port beside
//! JSON-RPC and WebSocket subscriptions, on an address of its own with its
//! origin allowed by CORS, or not at all. (The page itself is tested in a
//! real browser by `clients/typescript/test/explorer.test.ts`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::time::Duration;

use jsonrpsee::core::client::{ClientT, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee_ws_client::WsClientBuilder;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tally_rpc::types::HeadInfo;
use tally_tests::TestNet;

/// One HTTP/1.1 request; returns the status code, the headers (names in
/// lowercase) and the body.
async fn http(addr: SocketAddr, request_head: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("{request_head}Host: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP answer");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, out[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    http(addr, &format!("GET {path} HTTP/1.1\r\n")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_is_served_on_the_rpc_port_beside_the_api() {
    let mut net = TestNet::create(1, 0);
    net.start(0).await;
    let rpc = net.nodes[0].as_ref().unwrap().rpc_addr;
    assert_eq!(net.nodes[0].as_ref().unwrap().explorer_addr, None);

    let (status, headers, page) = get(rpc, "/").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("explorer.js"), "the page loads its script");
    for (path, kind) in [
        ("/explorer.js", "text/javascript; charset=utf-8"),
        ("/explorer.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = get(rpc, path).await;
        assert_eq!(
            (status, header(&headers, "content-type")),
            (200, Some(kind))
        );
        assert!(!body.is_empty(), "{path}");
    }
    let (_, _, config) = get(rpc, "/config.json").await;
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config, serde_json::json!({ "rpc": null }));
    // A path the site lacks is no page.
    assert_ne!(get(rpc, "/../Cargo.toml").await.0, 200);

    // JSON-RPC over HTTP and WebSocket subscriptions on the same `/`.
    let client = tally_rpc::LedgerApiClient::status(
        &jsonrpsee_http_client::HttpClientBuilder::default()
            .build(net.rpc_url(0))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(client.chain_id, net.chain_id());
    let ws = WsClientBuilder::default()
        .build(net.ws_url(0))
        .await
        .unwrap();
    let mut heads = ws
        .subscribe::<HeadInfo, _>(
            "ledger_subscribeNewHeads",
            rpc_params![],
            "ledger_unsubscribeNewHeads",
        )
        .await
        .unwrap();
    let head = tokio::time::timeout(Duration::from_secs(30), heads.next())
        .await
        .expect("a head within 30 s")
        .unwrap()
        .unwrap();
    assert!(head.height.0 >= 1);
    let genesis: Value = ws
        .request("ledger_getGenesis", rpc_params![])
        .await
        .unwrap();
    assert!(genesis.is_object());
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_moves_to_its_own_address_or_is_switched_off() {
    let mut net = TestNet::create(1, 0);
    let mut home = net.home(0);
    home.config.explorer.listen = Some("127.0.0.1:0".into());
    net.start_home(0, &home).await;
    let node = net.nodes[0].as_ref().unwrap();
    let (rpc, explorer) = (node.rpc_addr, node.explorer_addr.expect("its own address"));
    assert_ne!(rpc, explorer);

    let (status, _, page) = get(explorer, "/").await;
    assert_eq!(status, 200);
    assert!(String::from_utf8(page).unwrap().contains("explorer.js"));
    let (_, _, config) = get(explorer, "/config.json").await;
    let config: Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["rpc"], format!("http://{rpc}"));
    // Not on the RPC port any more; nothing but pages on its own.
    assert_ne!(get(rpc, "/").await.0, 200);
    let (status, _, _) = http(explorer, "POST / HTTP/1.1\r\nContent-Length: 0\r\n").await;
    assert_eq!(status, 405);
    // The page's origin may call the RPC.
    let (_, headers, _) = http(
        rpc,
        &format!(
            "OPTIONS / HTTP/1.1\r\nOrigin: http://{explorer}\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n"
        ),
    )
    .await;
    assert_eq!(
        header(&headers, "access-control-allow-origin"),
        Some(format!("http://{explorer}").as_str())
    );
    net.stop(0).await;

    let mut off = net.home(0);
    off.config.explorer.enabled = false;
    net.start_home(0, &off).await;
    let node = net.nodes[0].as_ref().unwrap();
    assert_eq!(node.explorer_addr, None);
    assert_ne!(get(node.rpc_addr, "/").await.0, 200);
    assert_ne!(get(node.rpc_addr, "/explorer.js").await.0, 200);
    net.stop_all().await;
}
