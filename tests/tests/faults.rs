//! Fault injection on real processes: 4 validators and a replica as
//! `tally start` processes, every peer link through a fault proxy, a load
//! of signed transfers over JSON-RPC, a fault schedule, then the
//! invariants of design.md section 12 on every node (see
//! `tally_tests::faults::check`). docs/faults.md lists the scenarios.
//!
//! The shortened scenarios run with the suite; the full ones are ignored:
//! `cargo test --release --workspace --test faults -- --ignored`. Each prints
//! its seed (`TALLY_FAULT_SEED` replays it) and its timeline, and a failed
//! one keeps its nodes' logs and data folders and prints where.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use tally_rpc::types::BlockId;
use tally_rpc::LedgerApiClient;
use tally_tests::faults::{
    run, Action, ClusterSpec, Expect, Outcome, Rng, Run, Scenario, Session, Twin,
};
use tally_tests::proxy::Faults;

use Action::*;

/// One scenario at a time: five processes under load fill two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

async fn scenario(name: &'static str, actions: Vec<Action>) -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().await;
    run(&Scenario::new(name, actions)).await
}

/// Scenario 1: Load and no faults.
fn baseline(load: u64) -> Vec<Action> {
    vec![Wait(secs(load)), Progress(1)]
}

/// Scenario 2: Each validator in turn SIGKILLed for `down`, then restarted.
fn kill_each(down: u64) -> Vec<Action> {
    (0..4)
        .flat_map(|v| [Kill(v), Wait(secs(down)), Start(v), Progress(2)])
        .collect()
}

/// Scenario 4: Two of four validators killed: no block without a quorum; then back.
fn quorum_lost(down: u64) -> Vec<Action> {
    vec![
        Kill(2),
        Kill(3),
        Stalled(secs(down)),
        Start(2),
        Start(3),
        Progress(3),
    ]
}

/// Scenario 7: A 2|2 partition (no quorum anywhere), then 1|3 (the three go on).
fn partitions(each: u64) -> Vec<Action> {
    vec![
        Partition(vec![vec![0, 1], vec![2, 3]]),
        Stalled(secs(each)),
        Partition(vec![vec![0], vec![1, 2, 3]]),
        ProgressOf(vec![1, 2, 3], 3),
        Wait(secs(each)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s01_baseline_short() {
    scenario("1 baseline (short)", baseline(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s01_baseline() {
    scenario("1 baseline", baseline(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_kill_each_validator_short() {
    scenario("2 SIGKILL each validator (short)", kill_each(4)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s02_kill_each_validator() {
    scenario("2 SIGKILL each validator", kill_each(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s03_pause_a_validator() {
    let actions = vec![Pause(2), Wait(secs(30)), Resume(2), Progress(3)];
    scenario("3 SIGSTOP a validator", actions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_quorum_lost_short() {
    scenario("4 quorum lost (short)", quorum_lost(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s04_quorum_lost() {
    scenario("4 quorum lost", quorum_lost(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s05_all_killed_at_once() {
    let mut actions = vec![Wait(secs(10))];
    actions.extend((0..5).map(Kill));
    actions.push(Wait(secs(2)));
    actions.extend((0..5).map(Start));
    actions.push(Progress(3));
    scenario("5 all killed at once", actions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s06_rolling_restart() {
    let actions = (0..5)
        .flat_map(|i| [Terminate(i), Start(i), Progress(2)])
        .collect();
    scenario("6 rolling SIGTERM restart", actions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_partitions_short() {
    scenario("7 partitions 2|2 then 1|3 (short)", partitions(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s07_partitions() {
    scenario("7 partitions 2|2 then 1|3", partitions(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s08_slow_unstable_links() {
    let mut actions = vec![SlowLinks(Faults {
        delay: Duration::from_millis(100),
        jitter: Duration::from_millis(50),
        rate: Some(1 << 20),
        blackhole: false,
    })];
    for _ in 0..6 {
        actions.extend([CutRandomLink, Wait(secs(10))]);
    }
    actions.push(Progress(2));
    scenario("8 slow and unstable links", actions).await;
}

/// Scenario 13: outsiders. A stranger that wrote itself into its own
/// genesis, and replica0's key run with another genesis (same chain id,
/// another start time) while replica0 runs too, both dialing every
/// validator. Neither gets a block or a peer, the member key's other
/// connection is closed without pushing replica0 out, and the chain goes
/// on.
async fn outsiders(watch: u64) -> Outcome {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut s = Session::begin(&Scenario::new("13 outsiders", vec![])).await;
    s.say("start a stranger, and replica0's key on another genesis");
    let log_before = std::fs::metadata(&s.cluster.nodes[0].log).unwrap().len() as usize;
    let stranger = s
        .cluster
        .outsider("stranger", None, |g, me| {
            g.replicas.push(tally_ledger::genesis::GenesisReplica {
                name: "stranger".into(),
                peer_id: me.into(),
            })
        })
        .await;
    let forked = s
        .cluster
        .outsider("forked", Some(4), |g, _| g.genesis_time_ms += 1)
        .await;
    s.play(&Progress(5)).await;
    s.play(&Wait(secs(watch))).await;
    for outsider in [&stranger, &forked] {
        let status = outsider.client.status().await.unwrap();
        assert_eq!(
            (status.latest_height.0, status.peers),
            (0, 0),
            "{} got peers or blocks of a chain it is not part of",
            outsider.name
        );
    }
    for i in 0..4 {
        assert_eq!(s.cluster.nodes[i].run(), Run::Running);
        let peers = s.cluster.client(i).unwrap().status().await.unwrap().peers;
        assert_eq!(
            peers, 4,
            "{} counts {peers} peers, not its 3 validators and replica0",
            s.cluster.nodes[i].name
        );
    }
    // Whether the member key's connection was refused by identify (its
    // other genesis) or by the limit of two connections per peer (replica0
    // holds them), replica0 was never pushed out.
    let log = std::fs::read_to_string(&s.cluster.nodes[0].log).unwrap();
    assert!(
        !log[log_before..]
            .lines()
            .any(|l| l.contains(&forked.peer_id) && l.contains("peer disconnected")),
        "refusing the node with another genesis pushed replica0 out"
    );
    // With replica0 stopped the key has no connection in the way: the
    // forked node gets through the allow-list, and identify sends it away.
    s.say("stop replica0: the forked node's dial now reaches identify");
    assert!(s.cluster.terminate(4).await.success());
    let deadline = std::time::Instant::now() + secs(60);
    loop {
        let log = std::fs::read_to_string(&s.cluster.nodes[0].log).unwrap();
        if log[log_before..].lines().any(|l| {
            l.contains(&forked.peer_id) && l.contains("peer runs another chain or genesis")
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node0 never refused the node with another genesis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = forked.client.status().await.unwrap();
    assert_eq!((status.latest_height.0, status.peers), (0, 0));
    drop((stranger, forked));
    s.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s13_outsiders_short() {
    outsiders(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s13_outsiders() {
    outsiders(30).await;
}

/// Scenario 9: One validator's clock 20 s ahead, then 20 s behind. Its proposals
/// (ahead) are refused; behind, it refuses the others'. The rest commit,
/// and no block is timed ahead of the real clock (checked at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s09_clock_skew() {
    let actions = vec![
        Terminate(1),
        ClockOffset(1, 20_000),
        Start(1),
        ProposesNone(1, secs(30)),
        Terminate(1),
        ClockOffset(1, -20_000),
        Start(1),
        Wait(secs(30)),
        Progress(3),
    ];
    scenario("9 clock skew ±20 s on one validator", actions).await;
}

/// Scenario 10: Twins. A sixth process (node 5) runs with validator 1's
/// keys and a copy of its home. It talks to nodes 2 and 3, and validator 1
/// to node 0 and the replica; each side hears the other's messages through
/// relays, so both twins sign at the same heights, and where they differ
/// (each proposes its own block at validator 1's turns) honest nodes see
/// both votes. Then a partition puts the twins on opposite sides, {0, 1,
/// replica} | {2, 3, twin}, where only the twin's side has a quorum and
/// commits with the twin's votes; the other side rejoins by sync. No fork,
/// and evidence against validator 1 on honest nodes, over RPC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s10_twins() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let twin = 5;
    let actions = vec![
        Wait(secs(20)),
        Partition(vec![vec![0, 1, 4], vec![2, 3, twin]]),
        ProgressOf(vec![2, 3, twin], 10),
        Wait(secs(20)),
        Heal,
        Wait(secs(10)),
    ];
    let scenario = Scenario {
        spec: ClusterSpec {
            twins: vec![Twin {
                of: 1,
                peers: vec![2, 3],
            }],
            ..ClusterSpec::default()
        },
        expect: Expect { equivocators: &[1] },
        ..Scenario::new("10 twins of validator 1", actions)
    };
    run(&scenario).await;
}

/// Scenario 11: Validator 3 runs `tally-byzantine`: a real node that sends
/// a second, valid block with each of its proposals (first, at odd
/// heights) and a conflicting vote before each of its votes. Node 0 is
/// then killed, leaving exactly a quorum with the Byzantine node in it,
/// which must still commit. Safety holds, some of its second blocks are
/// committed (peers took them while its own consensus held the first),
/// and evidence against validator 3 is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s11_byzantine_validator() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let scenario = Scenario {
        spec: ClusterSpec {
            binaries: vec![(3, env!("CARGO_BIN_EXE_tally-byzantine").into())],
            ..ClusterSpec::default()
        },
        expect: Expect { equivocators: &[3] },
        ..Scenario::new("11 an equivocating proposer and double voter", vec![])
    };
    let mut s = Session::begin(&scenario).await;
    for action in [
        Wait(secs(40)),
        Kill(0),
        ProgressOf(vec![1, 2, 3], 5),
        Wait(secs(10)),
        Start(0),
        Progress(5),
    ] {
        s.play(&action).await;
    }
    let (first, second, pairs) = committed_of_pairs(&s.cluster, 3).await;
    s.say(&format!(
        "validator 3 proposed {pairs} pairs; committed: {first} first blocks, {second} second"
    ));
    assert!(second > 0, "no second block of validator 3 was committed");
    s.finish().await;
}

/// Of the pairs of proposals that node `byzantine` logged ("second
/// proposal"), how many first blocks and how many second blocks node 1
/// holds at their heights, and how many pairs there were.
async fn committed_of_pairs(
    cluster: &tally_tests::faults::Cluster,
    byzantine: usize,
) -> (usize, usize, usize) {
    let log = std::fs::read_to_string(&cluster.nodes[byzantine].log).unwrap();
    let client = cluster.client(1).expect("node1 runs");
    let (mut first, mut second, mut pairs) = (0, 0, 0);
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let f = &v["fields"];
        if f["message"] != "second proposal" {
            continue;
        }
        pairs += 1;
        let height = f["height"].as_u64().unwrap();
        let Ok(block) = client
            .get_block_by_height(BlockId::Height(height), None)
            .await
        else {
            continue;
        };
        let hash = block.hash.trim_start_matches("0x");
        let named = |k: &str| f[k].as_str().unwrap().trim_start_matches("0x") == hash;
        first += usize::from(named("first"));
        second += usize::from(named("second"));
    }
    (first, second, pairs)
}

/// Scenario 14: SIGKILL of a validator 50 times at random moments, then a
/// replica's write-ahead log torn: it recovers or refuses with a clear
/// error (and is rebuilt from its peers); it never serves a wrong block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s14_kills_and_a_torn_log() {
    let mut actions = Vec::new();
    for _ in 0..50 {
        actions.extend([RandomWait(Duration::from_millis(800)), Kill(3), Start(3)]);
    }
    actions.extend([
        Progress(2),
        Kill(4),
        TruncateWal(4, 200),
        StartOrRebuild(4, "database"),
        Progress(3),
    ]);
    scenario("14 kill -9 x50 and a torn WAL", actions).await;
}

/// Scenario 15: A validator's home restored from a backup 100 blocks old (store
/// and signer state): it catches up and never equivocates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s15_restored_from_an_old_backup() {
    let actions = vec![
        Terminate(2),
        Backup(2),
        Start(2),
        Progress(100),
        Terminate(2),
        Restore(2),
        Start(2),
        Progress(5),
    ];
    scenario("15 validator restored from an old backup", actions).await;
}

/// Scenario 16: A validator's disk fills up: it stops with a clear error and a
/// failure status, the others go on, and once space is freed it restarts
/// and catches up. Needs root (it mounts a tmpfs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s16_disk_full() {
    let actions = vec![
        Terminate(3),
        LimitDisk(3, 512 << 20),
        Start(3),
        Wait(secs(5)),
        FillDisk(3),
        Exits(3, "No space left on device"),
        ProgressOf(vec![0, 1, 2], 10),
        FreeDisk(3),
        Start(3),
        Progress(3),
    ];
    scenario("16 disk full", actions).await;
}

/// Scenario 17's schedule: at the start of each minute one fault drawn
/// from the seed (a kill, a pause, a 2|2 partition, an isolated validator,
/// slow links, a clean restart, a replica killed) for 20 s, the chain
/// committing again after it, and at the minute's end a sample of every
/// node's memory and descriptors.
fn soak(seed: u64, minutes: u64) -> Vec<Action> {
    let mut rng = Rng(seed.rotate_left(17) | 1);
    let mut actions = vec![Sample];
    for minute in 1..=minutes {
        let v = rng.below(4) as usize;
        let w = (v + 1 + rng.below(3) as usize) % 4;
        let rest: Vec<usize> = (0..4).filter(|n| *n != v && *n != w).collect();
        let others: Vec<usize> = (0..4).filter(|n| *n != v).collect();
        let fault = match rng.below(7) {
            0 => vec![Kill(v), Wait(secs(20)), Start(v)],
            1 => vec![Pause(v), Wait(secs(20)), Resume(v)],
            2 => vec![Partition(vec![vec![v, w], rest]), Wait(secs(20)), Heal],
            3 => vec![Partition(vec![vec![v], others]), Wait(secs(20)), Heal],
            4 => vec![
                SlowLinks(Faults {
                    delay: Duration::from_millis(100),
                    jitter: Duration::from_millis(50),
                    rate: Some(1 << 20),
                    blackhole: false,
                }),
                Wait(secs(20)),
                Heal,
            ],
            5 => vec![Terminate(v), Start(v)],
            _ => vec![Kill(4), Wait(secs(20)), Start(4)],
        };
        actions.extend(fault);
        actions.extend([Progress(2), Until(secs(60 * minute)), Sample]);
    }
    actions
}

/// Scenario 17: a long run, 30 minutes by default (`TALLY_SOAK_MINUTES`),
/// of load with a random fault every minute; the invariants at the end,
/// and every process that lived through 5 samples or more kept its memory
/// and descriptors flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the 30-minute soak: cargo test --release --workspace --test faults -- --ignored s17"]
async fn s17_soak() {
    let minutes = std::env::var("TALLY_SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(30);
    let seed = tally_tests::faults::scenario::seed();
    let mut scenario = Scenario::new("17 soak", soak(seed, minutes));
    scenario.seed = Some(seed);
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut s = Session::begin(&scenario).await;
    for action in &scenario.actions {
        s.play(action).await;
    }
    let judged = tally_tests::faults::check::flat(&s.cluster, &s.samples, 5);
    println!("resources flat for {judged} processes");
    assert!(
        judged > 0 || minutes < 5,
        "no process lived through 5 samples: nothing was judged"
    );
    s.finish().await;
}

#[path = "faults/flood.rs"]
mod flood;

/// Scenario 12: floods. With pools of 2,000 transactions and 64 RPC
/// connections a node: 20,480 valid transfers (10× a pool) at once, 100
/// WebSocket connections and 100 subscriptions on one, 200 raw peers
/// sending garbage or a 1 GiB frame header; then the committed spam
/// replayed. The chain keeps committing (a block interval at most 3× the
/// baseline's), the limits refuse the excess, every raw peer is closed,
/// memory stays bounded, replays are refused and (I4) nothing is committed
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full fault scenario: cargo test --release --workspace --test faults -- --ignored"]
async fn s12_floods() {
    const POOL: u32 = 2_000;
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut scenario = Scenario::new("12 floods", vec![]);
    scenario.spec.extra_accounts = 320;
    scenario.spec.config = |c| {
        c.mempool.max_txs = POOL;
        c.rpc.max_connections = 64;
    };
    let mut s = Session::begin(&scenario).await;
    s.play(&Sample).await;
    s.say("baseline: blocks over 15 s");
    let base = flood::blocks_in(&s.cluster, 0, secs(15)).await;
    let spam = flood::spam(&s.cluster.accounts(), 8..328, 64, &scenario.spec.chain_id);
    assert!(spam.len() >= 10 * POOL as usize);
    let ws_url = format!("ws://{}", s.cluster.nodes[1].rpc.clone().unwrap());
    let p2p = s.cluster.link(0, 1).target().expect("node1 listens");

    s.say("subscriptions and connections beyond the limits on node1");
    let (ws, subs, refused_subs) = flood::subscriptions(&ws_url, 100).await;
    let (held, refused_conns) = flood::connections(&ws_url, 100).await;
    s.say(&format!(
        "  {} subscriptions granted, {refused_subs} refused; {} connections held, {refused_conns} refused",
        subs.len(),
        held.len()
    ));
    assert!(
        refused_subs > 0 && refused_conns > 0,
        "the limits refused nothing"
    );

    s.say(&format!(
        "{} transfers at once; 200 garbage peers on node1",
        spam.len()
    ));
    let garbage = tokio::spawn(flood::garbage(p2p, 200));
    let during = flood::blocks_in(&s.cluster, 0, secs(15));
    let (submitted, during) = tokio::join!(flood::submit(&s.cluster, &spam), during);
    let (accepted, refused) = submitted;
    let closed = garbage.await.unwrap();
    s.say(&format!(
        "  {} accepted, {refused} refused; {closed} of 200 raw peers closed; blocks in 15 s: {base} before, {during} during",
        accepted.len()
    ));
    assert!(refused > 0, "a pool took 10× its capacity");
    assert!(!accepted.is_empty(), "no spam was accepted");
    assert_eq!(closed, 200, "a raw peer sending garbage was kept open");
    assert!(
        during * 3 >= base,
        "the block interval under the flood is more than 3× the baseline's ({base} blocks before, {during} during)"
    );
    drop((held, subs, ws));

    s.play(&Progress(5)).await;
    let replay = flood::committed(&s.cluster, 0, &accepted).await;
    assert!(!replay.is_empty(), "none of the spam committed");
    let (again, _) = flood::submit(&s.cluster, &replay).await;
    s.say(&format!(
        "replayed {} committed transfers: {} accepted",
        replay.len(),
        again.len()
    ));
    assert!(
        again.is_empty(),
        "a committed transaction was accepted again"
    );
    s.play(&Sample).await;
    for u in &s.samples {
        let first = s.samples.iter().find(|f| f.pid == u.pid).unwrap();
        assert!(
            u.rss_kb <= first.rss_kb * 2 + 128 * 1024,
            "{} grew from {} MB to {} MB under the flood",
            s.cluster.nodes[u.node].name,
            first.rss_kb / 1024,
            u.rss_kb / 1024
        );
    }
    s.finish().await;
}
