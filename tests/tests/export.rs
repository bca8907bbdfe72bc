//! `tally export postgres` against a real PostgreSQL server and a network of
//! real node processes under load: the exporter, the database and the node
//! it follows are each killed mid-stream, and afterwards every block is in
//! the database once, none is missing, and the rows match the chain. A
//! database that disagrees with the chain, and a node that serves a block
//! that does not verify, are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tally_ledger::types::Op;
use tally_node::keys::read_key_file;
use tally_rpc::types::BlockId;
use tally_rpc::LedgerApiClient;
use tally_tests::faults::cluster::{tally_binary, Cluster, ClusterSpec};
use tally_tests::faults::load::Load;
use tally_tests::pg::PgServer;
use tally_tests::proxy::FaultProxy;
use tally_tests::signed;

const LIMIT: Duration = Duration::from_secs(60);

/// A `tally export postgres` process.
struct Exporter {
    child: Option<Child>,
    log: PathBuf,
    args: Vec<String>,
}

impl Exporter {
    fn start(rpc: &str, genesis: &Path, dsn: &str, data: &Path, log: PathBuf) -> Self {
        let args = vec![
            "export".into(),
            "postgres".into(),
            "--rpc".into(),
            rpc.into(),
            "--genesis".into(),
            genesis.display().to_string(),
            "--dsn".into(),
            dsn.into(),
            "--data".into(),
            data.display().to_string(),
        ];
        let mut e = Exporter {
            child: None,
            log,
            args,
        };
        e.spawn();
        e
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.child = Some(
            Command::new(tally_binary())
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("tally export starts"),
        );
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to end by itself; its exit code.
    async fn exited(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the exporter still runs: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn db(dsn: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .expect("connects to the test database");
    tokio::spawn(connection);
    client
}

/// The export's checkpoint height, or 0 while there is none (or the
/// database is down).
async fn exported(dsn: &str) -> u64 {
    let Ok((client, connection)) = tokio_postgres::connect(dsn, tokio_postgres::NoTls).await else {
        return 0;
    };
    tokio::spawn(connection);
    match client
        .query_opt("SELECT height FROM tally_export", &[])
        .await
    {
        Ok(Some(row)) => u64::try_from(row.get::<_, i64>(0)).unwrap(),
        _ => 0,
    }
}

/// Waits until the export reaches `height`.
async fn exported_past(dsn: &str, height: u64, exporter: &Exporter) -> u64 {
    let deadline = Instant::now() + LIMIT;
    loop {
        let at = exported(dsn).await;
        if at >= height {
            return at;
        }
        assert!(
            Instant::now() < deadline,
            "the export stays at {at}, short of {height}: {}",
            exporter.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn node_height(cluster: &Cluster, i: usize) -> u64 {
    cluster.height(i).await.unwrap_or(0)
}

/// Waits until node `i` passes `height`.
async fn node_past(cluster: &Cluster, i: usize, height: u64) -> u64 {
    let deadline = Instant::now() + LIMIT;
    loop {
        let h = node_height(cluster, i).await;
        if h > height {
            return h;
        }
        assert!(Instant::now() < deadline, "node {i} stays at {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rpc_addr(cluster: &Cluster, i: usize) -> SocketAddr {
    cluster.nodes[i].rpc.as_ref().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_survives_kills_of_itself_the_database_and_the_node() {
    // The chain id `signed` signs for.
    let spec = ClusterSpec {
        chain_id: "tally-test".into(),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::create(&spec, |_| {}).await;
    cluster.start_all().await;
    let replica = cluster.validators();
    let genesis = cluster.dir().join("net").join("genesis.json");
    let pg = PgServer::start();
    let dsn = pg.dsn();
    // Through a proxy, so the exporter keeps its address across the
    // replica's restarts (it binds a new port each time).
    let proxy = FaultProxy::start(rpc_addr(&cluster, replica))
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut exporter = Exporter::start(
        &format!("http://{}", proxy.addr()),
        &genesis,
        &dsn,
        &work.path().join("export"),
        work.path().join("export.log"),
    );

    // Records, a removal and a grant besides the load's transfers.
    let chain_id = "tally-test";
    let user = read_key_file(&cluster.accounts().join("user0.pem")).unwrap();
    let admin = read_key_file(&cluster.accounts().join("admin.pem")).unwrap();
    let newcomer = tally_ledger::Keypair::from_seed([77; 32]);
    let client = cluster.client(0).unwrap();
    let hex =
        |t: &tally_ledger::SignedTx| tally_rpc::types::to_hex(&tally_ledger::encoding::encode(t));
    let extra = [
        signed(
            &user,
            1,
            Op::Put {
                key: b"invoice/1".to_vec(),
                value: b"open".to_vec(),
            },
        ),
        signed(
            &user,
            2,
            Op::Put {
                key: b"invoice/2".to_vec(),
                value: b"open".to_vec(),
            },
        ),
        signed(
            &user,
            3,
            Op::Put {
                key: b"invoice/1".to_vec(),
                value: b"paid".to_vec(),
            },
        ),
        signed(
            &user,
            4,
            Op::Delete {
                key: b"invoice/2".to_vec(),
            },
        ),
        signed(
            &admin,
            1,
            Op::GrantAccount {
                account: newcomer.public(),
                role: tally_ledger::Role::Member,
            },
        ),
    ];
    for tx in &extra {
        client
            .submit_tx_and_wait(hex(tx), None)
            .await
            .expect("committed");
    }
    // user0 made the records; the load pays from the others.
    let load = Load::start(&cluster.accounts(), 8, chain_id, cluster.clients(), 7);
    let senders_from = 1;

    // 1. The exporter, killed mid-stream and started again.
    let at = exported_past(&dsn, 5, &exporter).await;
    exporter.kill();
    node_past(&cluster, 0, at + 10).await;
    exporter.spawn();
    let at = exported_past(&dsn, at + 10, &exporter).await;

    // One exporter a database: a second one is refused, the first goes on.
    let mut second = Exporter::start(
        &format!("http://{}", proxy.addr()),
        &genesis,
        &dsn,
        &work.path().join("second"),
        work.path().join("second.log"),
    );
    assert_eq!(second.exited(LIMIT).await, Some(1), "{}", second.log());
    assert!(
        second
            .log()
            .contains("another exporter is writing to this database"),
        "{}",
        second.log()
    );
    let at = exported_past(&dsn, at + 3, &exporter).await;

    // 2. The database, killed (no checkpoint, recovery from its log).
    pg.kill();
    node_past(&cluster, 0, node_height(&cluster, 0).await + 10).await;
    pg.restart();
    let at = exported_past(&dsn, at + 10, &exporter).await;

    // 3. The node it follows, killed and started on a new port.
    cluster.kill(replica);
    node_past(&cluster, 0, node_height(&cluster, 0).await + 10).await;
    cluster.start(replica).await;
    proxy.set_target(rpc_addr(&cluster, replica));
    let at = exported_past(&dsn, at + 10, &exporter).await;
    assert!(at > 25);

    let acknowledged = load.stop().await;
    assert!(!acknowledged.is_empty(), "the load committed nothing");
    // What the load left pending commits first: then the state stays put
    // (only empty blocks follow) and the node's latest state is the
    // export's.
    let deadline = Instant::now() + LIMIT;
    for i in 0..cluster.validators() {
        let client = cluster.client(i).unwrap();
        while client.get_mempool().await.unwrap().size.0 > 0 {
            assert!(
                Instant::now() < deadline,
                "node {i}'s mempool does not drain"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let tip = node_past(&cluster, replica, node_height(&cluster, 0).await).await;
    exported_past(&dsn, tip, &exporter).await;
    // Empty blocks keep coming: stop the export to compare a fixed prefix.
    exporter.kill();
    let at = exported(&dsn).await;
    let node = cluster.client(replica).unwrap();
    let db = db(&dsn).await;

    // `tally export status` reads the same checkpoint, and the lag.
    let status = Command::new(tally_binary())
        .args(["export", "status", "--json", "--dsn", &dsn, "--rpc"])
        .arg(format!("http://{}", proxy.addr()))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["height"], at);
    assert_eq!(status["chain_id"], "tally-test");
    let lag = status["lag_blocks"].as_u64().unwrap();
    assert_eq!(status["chain_height"].as_u64().unwrap() - at, lag);

    // Every block once, none missing, each as the chain has it.
    let row = db
        .query_one(
            "SELECT count(*), min(height), max(height), sum(tx_count) FROM blocks",
            &[],
        )
        .await
        .unwrap();
    let (count, min, max): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((count, min, max), (at as i64, 1, at as i64));
    let tx_total: i64 = row.get(3);
    let mut chain_txs = 0i64;
    for h in 1..=at {
        let block = node
            .get_block_by_height(BlockId::Height(h), None)
            .await
            .unwrap();
        chain_txs += block.tx_hashes.len() as i64;
        let row = db
            .query_one(
                "SELECT hash, tx_count FROM blocks WHERE height = $1",
                &[&(h as i64)],
            )
            .await
            .unwrap();
        assert_eq!(
            tally_rpc::types::to_hex(row.get::<_, &[u8]>(0)),
            block.hash,
            "block {h}"
        );
        assert_eq!(
            row.get::<_, i32>(1) as usize,
            block.tx_hashes.len(),
            "block {h}"
        );
    }
    let stored: i64 = db
        .query_one("SELECT count(*) FROM transactions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((stored, tx_total), (chain_txs, chain_txs));
    // Every transaction a client saw committed is there, at its height.
    for a in acknowledged.iter().filter(|a| a.height <= at) {
        let hash = tally_ledger::Hash::from_hex(&a.hash).unwrap();
        let row = db
            .query_one(
                "SELECT height FROM transactions WHERE hash = $1",
                &[&hash.0.as_slice()],
            )
            .await
            .unwrap_or_else(|e| panic!("acknowledged {} is not exported: {e}", a.hash));
        assert_eq!(row.get::<_, i64>(0) as u64, a.height);
    }

    // The current state: every sender's balance and nonce as the node has them.
    for i in senders_from..8 {
        let key = read_key_file(&cluster.accounts().join(format!("user{i}.pem"))).unwrap();
        let account = node.get_account(key.public().to_hex(), None).await.unwrap();
        let row = db
            .query_one(
                "SELECT balance::text, nonce::text FROM accounts WHERE public_key = $1",
                &[&key.public().0.as_slice()],
            )
            .await
            .unwrap();
        assert_eq!(
            row.get::<_, String>(0),
            account.balance.0.to_string(),
            "user{i}"
        );
        assert_eq!(
            row.get::<_, String>(1),
            account.nonce.0.to_string(),
            "user{i}"
        );
    }
    // Records with their history, and the grant.
    let records = db
        .query(
            "SELECT key, value FROM records WHERE owner = $1 ORDER BY key",
            &[&user.public().0.as_slice()],
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "invoice/2 was removed");
    assert_eq!(records[0].get::<_, &[u8]>(0), b"invoice/1");
    assert_eq!(records[0].get::<_, &[u8]>(1), b"paid");
    let versions: i64 = db
        .query_one(
            "SELECT count(*) FROM record_versions WHERE owner = $1",
            &[&user.public().0.as_slice()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        versions, 4,
        "two puts of invoice/1, one put and one removal of invoice/2"
    );
    let granted: i64 = db
        .query_one(
            "SELECT count(*) FROM grants WHERE public_key = $1 AND role = 'member'",
            &[&newcomer.public().0.as_slice()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(granted, 1);
    let signers: i64 = db
        .query_one("SELECT count(DISTINCT height) FROM block_signers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        signers, at as i64,
        "every block names its certificate's signers"
    );

    // A database that disagrees with the chain is refused: a fresh exporter
    // re-verifies what the database holds and finds block 3 altered.
    db.execute(
        "UPDATE blocks SET hash = '\\x00' || substring(hash from 2) WHERE height = 3",
        &[],
    )
    .await
    .unwrap();
    let mut fresh = Exporter::start(
        &format!("http://{}", proxy.addr()),
        &genesis,
        &dsn,
        &work.path().join("fresh"),
        work.path().join("fresh.log"),
    );
    let code = fresh.exited(LIMIT).await;
    assert_eq!(code, Some(1), "{}", fresh.log());
    assert!(
        fresh.log().contains("the database holds block 3 as 0x00"),
        "{}",
        fresh.log()
    );
}

/// An HTTP proxy in front of a node's RPC that changes one hex digit of
/// every block `ledger_getRawBlocks` answers with: a node that lies.
async fn lying_proxy(target: SocketAddr) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                // One request per connection: read the head, then the body.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, length) = loop {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (end + 4, length);
                    }
                };
                while buf.len() < head_end + length {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = buf[head_end..head_end + length].to_vec();
                let answer = forward_post(target, &body).await;
                let mut json: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                if String::from_utf8_lossy(&body).contains("ledger_getRawBlocks") {
                    for raw in json["result"].as_array_mut().into_iter().flatten() {
                        let hex = raw["block"].as_str().unwrap().to_string();
                        let mut chars: Vec<char> = hex.chars().collect();
                        let i = chars.len() / 2;
                        chars[i] = if chars[i] == '0' { '1' } else { '0' };
                        raw["block"] = serde_json::Value::String(chars.into_iter().collect());
                    }
                }
                let out = serde_json::to_vec(&json).unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    out.len()
                );
                let _ = client.write_all(head.as_bytes()).await;
                let _ = client.write_all(&out).await;
            });
        }
    });
    addr
}

/// Posts a JSON-RPC body to `target` and returns the answer's body.
async fn forward_post(target: SocketAddr, body: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(target).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {target}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    out[split + 4..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_serves_a_wrong_block_cannot_put_it_into_the_database() {
    let mut net = tally_tests::TestNet::create(1, 0);
    net.start_all().await;
    tally_tests::wait_height(&net.running(), 3, LIMIT).await;
    let pg = PgServer::start();
    let liar = lying_proxy(net.nodes[0].as_ref().unwrap().rpc_addr).await;
    let work = tempfile::tempdir().unwrap();
    let mut exporter = Exporter::start(
        &format!("http://{liar}"),
        &net.net_dir().join("genesis.json"),
        &pg.dsn(),
        &work.path().join("export"),
        work.path().join("export.log"),
    );
    let code = exporter.exited(LIMIT).await;
    assert_eq!(code, Some(1), "{}", exporter.log());
    assert!(
        exporter.log().contains("block 1 from http://")
            && exporter.log().contains("does not verify"),
        "{}",
        exporter.log()
    );
    let db = db(&pg.dsn()).await;
    let blocks: i64 = db
        .query_one("SELECT count(*) FROM blocks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(blocks, 0, "nothing from the lying node was written");
    net.stop_all().await;
}
