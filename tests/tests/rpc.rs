//! The JSON-RPC API against a running 4-validator network on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use jsonrpsee::core::client::{ClientT, SubscriptionClientT, SubscriptionKind};
use jsonrpsee::rpc_params;
use jsonrpsee::types::SubscriptionId;
use jsonrpsee_http_client::HttpClientBuilder;
use jsonrpsee_ws_client::WsClientBuilder;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use tally_ledger::encoding::encode;
use tally_ledger::hash::{verify_merkle_proof, MerkleProof};
use tally_ledger::state::StateKey;
use tally_ledger::types::{Op, Tx};
use tally_ledger::{Hash, Keypair};
use tally_node::client::check_proof;
use tally_rpc::types::{to_hex, BlockId, HeadInfo, TxInfo, TxState, U64};
use tally_rpc::LedgerApiClient;
use tally_tests::{wait_height, Sender, TestNet};

const LIVENESS: Duration = Duration::from_secs(120);

fn hex_tx(tx: &tally_ledger::SignedTx) -> String {
    to_hex(&encode(tx))
}

fn code_of(e: jsonrpsee::core::client::Error) -> (i32, String) {
    match e {
        jsonrpsee::core::client::Error::Call(o) => (o.code(), o.message().to_string()),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Posts raw bytes and returns the JSON body of the answer (or the status line).
async fn raw_post(addr: std::net::SocketAddr, body: &[u8]) -> (String, Option<Value>) {
    raw_post_with(addr, "", body).await
}

/// Like [`raw_post`], with more header lines (each ending in `\r\n`).
async fn raw_post_with(
    addr: std::net::SocketAddr,
    headers: &str,
    body: &[u8],
) -> (String, Option<Value>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json = match (body.find(['{', '[']), body.rfind(['}', ']'])) {
        (Some(a), Some(b)) if b >= a => serde_json::from_str(&body[a..=b]).ok(),
        _ => None,
    };
    (status, json)
}

async fn network() -> TestNet {
    let mut net = TestNet::create(4, 0);
    // Node 0 gets tight limits to test them.
    let mut h = net.home(0);
    h.config.rpc.max_connections = 6;
    h.config.rpc.max_subscriptions_per_connection = 2;
    h.config.rpc.max_batch_len = 4;
    net.start_home(0, &h).await;
    // Node 1 serves Prometheus metrics.
    let mut h = net.home(1);
    h.config.metrics.listen = Some("127.0.0.1:0".into());
    net.start_home(1, &h).await;
    net.start(2).await;
    // Node 3 requires a bearer token for submitting.
    let mut h = net.home(3);
    h.config.rpc.auth_token = Some("s3cret".into());
    net.start_home(3, &h).await;
    wait_height(&net.running(), 1, LIVENESS).await;
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_answers_and_proofs_verify() {
    let mut net = network().await;
    let url = net.rpc_url(1);
    let client = HttpClientBuilder::default().build(&url).unwrap();
    let chain = net.chain_id();
    let users = net.user_keys();
    let genesis = (*net.handle(1).genesis).clone();

    let status = client.status().await.unwrap();
    assert_eq!(status.chain_id, chain);
    assert_eq!(status.role, "validator");
    assert!(client.health().await.unwrap().ok);
    let validators = client.get_validators(None).await.unwrap();
    assert_eq!(validators.len(), 4);
    for (v, g) in validators.iter().zip(&genesis.validators) {
        assert_eq!(
            (&v.name, &v.peer_id, v.power.0),
            (&g.name, &g.peer_id, g.power)
        );
    }
    assert_eq!(
        client.get_validators(Some(U64(1))).await.unwrap(),
        client.get_validators(None).await.unwrap()
    );
    let far = client.get_validators(Some(U64(1 << 40))).await.unwrap_err();
    assert!(
        far.to_string().contains("the state names sets up to"),
        "{far}"
    );
    assert_eq!(client.get_genesis().await.unwrap()["chain_id"], chain);
    assert!(client
        .get_evidence(None, None, None)
        .await
        .unwrap()
        .evidence
        .is_empty());
    let _ = client.get_mempool().await.unwrap();

    // WebSocket subscriptions.
    let ws = WsClientBuilder::default()
        .build(net.ws_url(1))
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
    // Subscription ids are strings, read alike by every JSON client.
    assert!(
        matches!(
            heads.kind(),
            SubscriptionKind::Subscription(SubscriptionId::Str(id)) if id.len() == 16
        ),
        "{:?}",
        heads.kind()
    );
    let head = tokio::time::timeout(LIVENESS, heads.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(head.height.0 >= 1);

    // Submit: pending, then committed, then found with a proof.
    let mut alice = Sender::new(Keypair::from_seed(users[1].seed()), &chain);
    let bob = users[2].public();
    let tx1 = alice.transfer(bob, 10);
    let h1 = tx1.hash();
    let mut status_sub = ws
        .subscribe::<TxInfo, _>(
            "ledger_subscribeTxStatus",
            rpc_params![h1.to_hex()],
            "ledger_unsubscribeTxStatus",
        )
        .await
        .unwrap();
    let sent = client.submit_tx(hex_tx(&tx1)).await.unwrap();
    assert_eq!(sent.hash, h1.to_hex());
    let mut seen = Vec::new();
    while let Some(Ok(info)) = tokio::time::timeout(LIVENESS, status_sub.next())
        .await
        .unwrap()
    {
        seen.push(info.status);
        if info.status == TxState::Committed {
            break;
        }
    }
    assert_eq!(seen.last(), Some(&TxState::Committed), "{seen:?}");

    let tx2 = alice.transfer(bob, 20);
    let done = client
        .submit_tx_and_wait(hex_tx(&tx2), Some(tally_rpc::types::U64(60_000)))
        .await
        .unwrap();
    assert!(done.height.0 >= 1);
    let info = client.get_tx(tx2.hash().to_hex()).await.unwrap();
    assert_eq!(info.status, TxState::Committed);
    assert_eq!(info.height, Some(done.height));
    let proof = info.proof.clone().unwrap();
    let block = client
        .get_block_by_height(BlockId::Height(done.height.0), Some(true))
        .await
        .unwrap();
    assert_eq!(proof.tx_root, block.header.tx_root);
    let merkle = MerkleProof {
        index: proof.index.0,
        leaf_count: proof.leaf_count.0,
        path: proof
            .path
            .iter()
            .map(|p| Hash::from_hex(p).unwrap())
            .collect(),
    };
    let root = Hash::from_hex(&proof.tx_root).unwrap();
    assert!(verify_merkle_proof(&root, &tx2.hash(), &merkle));
    assert!(!verify_merkle_proof(&root, &tx1.hash(), &merkle));
    let by_hash = client
        .get_block_by_hash(block.hash.clone(), None)
        .await
        .unwrap();
    assert_eq!(by_hash.hash, block.hash);
    let cert = client
        .get_commit(BlockId::Height(done.height.0))
        .await
        .unwrap();
    assert_eq!(cert.block_hash, block.hash);

    // A record with a proof, and an account with a proof.
    let put = Tx {
        chain_id: chain.clone(),
        sender: alice.key.public(),
        nonce: alice.next_nonce,
        op: Op::Put {
            key: b"invoice-7".to_vec(),
            value: b"paid".to_vec(),
        },
    }
    .sign(&alice.key);
    alice.next_nonce += 1;
    client.submit_tx_and_wait(hex_tx(&put), None).await.unwrap();
    let rec = client
        .get_record(
            alice.key.public().to_hex(),
            to_hex(b"invoice-7"),
            Some(true),
        )
        .await
        .unwrap();
    assert_eq!(rec.value.as_deref(), Some(to_hex(b"paid").as_str()));
    let p = rec.proof.unwrap();
    let key = StateKey::Record {
        owner: alice.key.public(),
        key: b"invoice-7".to_vec(),
    };
    check_proof(&genesis, &key, Some(b"paid"), &p, rec.height.0).unwrap();

    let acct = client.get_account(bob.to_hex(), Some(true)).await.unwrap();
    assert_eq!(acct.balance.0, tally_node::testnet::ACCOUNT_BALANCE + 30);
    let p = acct.proof.unwrap();
    let value =
        tally_ledger::encoding::hex_serde::parse_vec(p.value.as_deref().unwrap(), 1024).unwrap();
    check_proof(
        &genesis,
        &StateKey::Account(bob),
        Some(&value),
        &p,
        acct.height.0,
    )
    .unwrap();
    // A proof with one byte changed fails.
    let mut tampered = p.clone();
    let mut bytes = tally_ledger::encoding::hex_serde::parse_vec(&tampered.proof, 1 << 20).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    tampered.proof = to_hex(&bytes);
    assert!(check_proof(
        &genesis,
        &StateKey::Account(bob),
        Some(&value),
        &tampered,
        acct.height.0
    )
    .is_err());

    // Batch submission.
    let batch = client
        .submit_tx_batch(vec![
            hex_tx(&alice.transfer(bob, 1)),
            hex_tx(&alice.transfer(bob, 1)),
        ])
        .await
        .unwrap();
    assert!(batch.iter().all(|b| b.hash.is_some()), "{batch:?}");

    // Prometheus metrics over HTTP.
    let metrics_addr = net.nodes[1].as_ref().unwrap().metrics_addr.unwrap();
    let mut stream = tokio::net::TcpStream::connect(metrics_addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for name in [
        "tally_height ",
        "tally_round ",
        "tally_peers ",
        "tally_mempool_txs ",
        "tally_mempool_bytes ",
        "tally_block_interval_seconds_bucket",
        "tally_proposal_handling_seconds_count",
        "tally_committed_txs_total ",
        "tally_gossip_messages_total{",
    ] {
        assert!(text.contains(name), "metrics lack {name}: {text}");
    }

    // Every method is documented.
    let methods: Value = client.request("rpc_methods", rpc_params![]).await.unwrap();
    let docs = std::fs::read_to_string(tally_tests::repo_root().join("docs/rpc.md")).unwrap();
    let names: Vec<String> = serde_json::from_value(methods["methods"].clone()).unwrap();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        assert!(
            docs.contains(&format!("### {name}")) || docs.contains(&format!("/ {name}")),
            "docs/rpc.md lacks {name}"
        );
    }
    drop((client, ws, heads, status_sub));
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_precise_errors_and_no_effect() {
    let mut net = network().await;
    let url = net.rpc_url(0);
    let addr = net.nodes[0].as_ref().unwrap().rpc_addr;
    let client = HttpClientBuilder::default().build(&url).unwrap();
    let chain = net.chain_id();
    let users = net.user_keys();

    // Transport-level JSON-RPC errors.
    let (_, v) = raw_post(addr, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":").await;
    assert_eq!(v.unwrap()["error"]["code"], -32700, "malformed JSON");
    let (_, v) = raw_post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"ledger_nope","params":[]}"#,
    )
    .await;
    assert_eq!(v.unwrap()["error"]["code"], -32601, "unknown method");
    let (_, v) = raw_post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"ledger_getTx","params":[42]}"#,
    )
    .await;
    assert_eq!(v.unwrap()["error"]["code"], -32602, "wrong param type");
    let (_, v) = raw_post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"ledger_getTx","params":["0xzz"]}"#,
    )
    .await;
    let v = v.unwrap();
    assert_eq!(v["error"]["code"], -32602, "invalid hex");
    assert!(v["error"]["message"].as_str().unwrap().contains("hash"));
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","params":["{}"]}}"#,
        "ab".repeat(1 << 20)
    );
    let (status, _) = raw_post(addr, big.as_bytes()).await;
    assert!(status.contains("413"), "oversized body: {status}");
    let calls: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","id":{i},"method":"ledger_health","params":[]}}"#))
        .collect();
    let (_, v) = raw_post(addr, format!("[{}]", calls.join(",")).as_bytes()).await;
    assert!(
        v.unwrap().to_string().contains("-32"),
        "a batch over the limit of 4 is refused"
    );

    // Ledger errors.
    let mut alice = Sender::new(Keypair::from_seed(users[1].seed()), &chain);
    let bob = users[2].public();
    let good = alice.transfer(bob, 1);
    let mut truncated = encode(&good);
    truncated.truncate(truncated.len() - 3);
    assert_eq!(
        code_of(client.submit_tx(to_hex(&truncated)).await.unwrap_err()).0,
        1,
        "truncated tx"
    );
    let oversized = Tx {
        chain_id: chain.clone(),
        sender: alice.key.public(),
        nonce: 1,
        op: Op::Put {
            key: b"k".to_vec(),
            value: vec![7; 70_000],
        },
    }
    .sign(&alice.key);
    let (code, msg) = code_of(client.submit_tx(hex_tx(&oversized)).await.unwrap_err());
    assert_eq!(code, 1, "oversized tx: {msg}");
    assert!(msg.contains("limit"), "{msg}");
    let mut forged = good.clone();
    forged.signature.0[5] ^= 1;
    assert_eq!(
        code_of(client.submit_tx(hex_tx(&forged)).await.unwrap_err()).0,
        2,
        "bad signature"
    );
    let mut elsewhere = Sender::new(Keypair::from_seed(users[3].seed()), "another-chain");
    let (code, _) = code_of(
        client
            .submit_tx(hex_tx(&elsewhere.transfer(bob, 1)))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 9, "wrong chain");
    let stranger = Keypair::generate().unwrap();
    let mut s = Sender::new(stranger, &chain);
    assert_eq!(
        code_of(
            client
                .submit_tx(hex_tx(&s.transfer(bob, 1)))
                .await
                .unwrap_err()
        )
        .0,
        5,
        "unknown sender"
    );

    client
        .submit_tx_and_wait(hex_tx(&good), None)
        .await
        .unwrap();
    let (code, msg) = code_of(client.submit_tx(hex_tx(&good)).await.unwrap_err());
    assert_eq!(code, 4, "replaying a committed tx is a stale nonce: {msg}");
    alice.next_nonce += 200;
    let far = alice.transfer(bob, 1);
    assert_eq!(
        code_of(client.submit_tx(hex_tx(&far)).await.unwrap_err()).0,
        4,
        "far-future nonce"
    );
    alice.next_nonce -= 201;
    let next = alice.transfer(bob, 1);
    client.submit_tx(hex_tx(&next)).await.unwrap();
    assert_eq!(
        code_of(client.submit_tx(hex_tx(&next)).await.unwrap_err()).0,
        3,
        "duplicate"
    );
    let (code, _) = code_of(client.get_tx(Hash([9; 32]).to_hex()).await.unwrap_err());
    assert_eq!(code, 7, "not found");

    // Too many subscriptions on one connection (limit 2).
    let ws = WsClientBuilder::default()
        .build(net.ws_url(0))
        .await
        .unwrap();
    let mut subs = Vec::new();
    for _ in 0..2 {
        subs.push(
            ws.subscribe::<HeadInfo, _>(
                "ledger_subscribeNewHeads",
                rpc_params![],
                "ledger_unsubscribeNewHeads",
            )
            .await
            .unwrap(),
        );
    }
    assert!(ws
        .subscribe::<HeadInfo, _>(
            "ledger_subscribeNewHeads",
            rpc_params![],
            "ledger_unsubscribeNewHeads"
        )
        .await
        .is_err());
    // Too many connections (limit 6, one is open).
    let mut clients = Vec::new();
    let mut refused = false;
    for _ in 0..8 {
        match WsClientBuilder::default().build(net.ws_url(0)).await {
            Ok(c) => clients.push(c),
            Err(_) => refused = true,
        }
    }
    assert!(refused, "connections beyond the limit are refused");
    drop((clients, subs, ws));

    // No effect on the node: it keeps committing, and the chain holds only
    // the good transaction.
    let h = net.handle(0).store.height();
    wait_height(&net.running(), h + 2, LIVENESS).await;
    assert!(client.health().await.unwrap().ok);
    assert!(net
        .handle(0)
        .store
        .tx_location(&forged.hash())
        .unwrap()
        .is_none());
    assert!(net
        .handle(0)
        .store
        .tx_location(&good.hash())
        .unwrap()
        .is_some());
    drop(client);
    net.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_guards_submitting_and_nothing_else() {
    let mut net = network().await;
    let addr = net.nodes[3].as_ref().unwrap().rpc_addr;
    let users = net.user_keys();
    let mut alice = Sender::new(Keypair::from_seed(users[1].seed()), &net.chain_id());
    let tx = alice.transfer(users[2].public(), 1);
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","params":["{}"]}}"#,
        hex_tx(&tx)
    );

    let (status, v) = raw_post(addr, call.as_bytes()).await;
    assert!(status.contains("401"), "{status}");
    assert_eq!(v.unwrap()["error"]["code"], 12);
    let batch = format!(
        r#"[{{"jsonrpc":"2.0","id":1,"method":"ledger_health","params":[]}},{}]"#,
        call
    );
    let (status, _) = raw_post(addr, batch.as_bytes()).await;
    assert!(
        status.contains("401"),
        "a submit hidden in a batch: {status}"
    );
    let (status, v) = raw_post(
        addr,
        br#"{"jsonrpc":"2.0","id":1,"method":"ledger_health","params":[]}"#,
    )
    .await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(v.unwrap()["result"]["ok"], true, "reads need no token");

    // However the body is written, a submit without the token never runs.
    let node = net.handle(3);
    let mut carol = Sender::new(Keypair::from_seed(users[3].seed()), &net.chain_id());
    for case in 0..tricky_submits("").len() {
        let tx = carol.transfer(users[2].public(), 1);
        let (name, body) = tricky_submits(&hex_tx(&tx)).swap_remove(case);
        let (status, answer) = raw_post(addr, &body).await;
        let seen = node.tx_status(tx.hash()).await.unwrap();
        assert_eq!(seen, None, "{name}: the submit ran ({status}, {answer:?})");
        let text = answer.map(|v| v.to_string()).unwrap_or_default();
        assert!(!text.contains(&tx.hash().to_hex()), "{name}: {text}");
    }
    // A body that slipped past a check reading the whole document runs
    // with the token: the gate, not the parser, stopped it above.
    let late = carol.transfer(users[2].public(), 1);
    let (_, body) = tricky_submits(&hex_tx(&late))
        .into_iter()
        .find(|(name, _)| *name == "deeply nested extra field")
        .unwrap();
    let (status, _) = raw_post_with(addr, "Authorization: Bearer s3cret\r\n", &body).await;
    assert!(status.contains("200"), "{status}");
    assert!(node.tx_status(late.hash()).await.unwrap().is_some());

    let mut headers = jsonrpsee_http_client::HeaderMap::new();
    headers.insert("Authorization", "Bearer s3cret".parse().unwrap());
    let authorized = HttpClientBuilder::default()
        .set_headers(headers.clone())
        .build(net.rpc_url(3))
        .unwrap();
    let sent = authorized.submit_tx(hex_tx(&tx)).await.unwrap();
    assert_eq!(sent.hash, tx.hash().to_hex());

    // Over WebSocket the same gate decides each call: reads need no
    // token, submits do.
    let ws = WsClientBuilder::default()
        .build(net.ws_url(3))
        .await
        .unwrap();
    assert_eq!(ws.status().await.unwrap().role, "validator");
    let tx = alice.transfer(users[2].public(), 1);
    let (code, _) = code_of(ws.submit_tx(hex_tx(&tx)).await.unwrap_err());
    assert_eq!(code, 12);
    assert_eq!(node.tx_status(tx.hash()).await.unwrap(), None);
    let ws = WsClientBuilder::default()
        .set_headers(headers)
        .build(net.ws_url(3))
        .await
        .unwrap();
    ws.submit_tx(hex_tx(&tx)).await.unwrap();
    drop(ws);
    net.stop_all().await;
}

/// Request bodies that a parser other than the server's might read
/// differently. Each calls `ledger_submitTx` with `tx` in some way; none may
/// run it without the token.
fn tricky_submits(tx: &str) -> Vec<(&'static str, Vec<u8>)> {
    let call =
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","params":["{tx}"]}}"#);
    let with = |extra: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","params":["{tx}"],"pad":{extra}}}"#
        )
    };
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let health = r#"{"jsonrpc":"2.0","id":2,"method":"ledger_health","params":[]}"#;
    let cases: Vec<(&'static str, String)> = vec![
        ("plain", call.clone()),
        ("in a batch after a read", format!("[{health},{call}]")),
        ("in a batch before a read", format!("[{call},{health}]")),
        (
            "duplicate method keys, submit last",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_status","method":"ledger_submitTx","params":["{tx}"]}}"#
            ),
        ),
        (
            "duplicate method keys, submit first",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","method":"ledger_status","params":["{tx}"]}}"#
            ),
        ),
        ("leading whitespace", format!(" \r\n\t{call}")),
        ("byte order mark", format!("\u{feff}{call}")),
        (
            "upper case",
            call.replace("ledger_submitTx", "LEDGER_SUBMITTX"),
        ),
        (
            "mixed case",
            call.replace("ledger_submitTx", "ledger_SubmitTx"),
        ),
        (
            "escaped name",
            call.replace("ledger_submitTx", r"ledger_submi\u0074Tx"),
        ),
        (
            "notification",
            format!(r#"{{"jsonrpc":"2.0","method":"ledger_submitTx","params":["{tx}"]}}"#),
        ),
        (
            "notification in a batch",
            format!(
                r#"[{health},{{"jsonrpc":"2.0","method":"ledger_submitTx","params":["{tx}"]}}]"#
            ),
        ),
        ("trailing garbage", format!("{call}garbage")),
        ("two objects", format!("{call}{health}")),
        (
            "named params",
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"ledger_submitTx","params":{{"tx":"{tx}"}}}}"#
            ),
        ),
        // Fields a strict reader of the whole document fails on, while the
        // server skips them: nesting past serde_json's depth limit, a lone
        // surrogate, a number out of range.
        ("deeply nested extra field", with(&deep)),
        ("lone surrogate in an extra field", with(r#""\ud800""#)),
        ("huge number in an extra field", with("1e400")),
        (
            "batch with a deeply nested entry",
            format!("[{call},{deep}]"),
        ),
    ];
    cases
        .into_iter()
        .map(|(n, b)| (n, b.into_bytes()))
        .collect()
}
