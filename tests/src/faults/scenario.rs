//! Scenarios as data: a list of [`Action`]s run in order against a
//! [`Cluster`] under load, printed as a timeline with the seed that drew
//! any random choice. After the last action every fault is healed and every
//! node brought back, then the invariants are checked (see `check`).

use std::fmt;
use std::time::{Duration, Instant};

use tally_rpc::types::{BlockId, BlockInfo};
use tally_rpc::LedgerApiClient;

use crate::proxy::Faults;

use super::check::{self, Expect};
use super::cluster::{Cluster, ClusterSpec, Run, Usage};
use super::load::Load;

/// How long the cluster may take to commit again after the heal (I5):
/// a persistent peer's redial backs off to 5 s at most, and a restart or a catch-up takes the rest.
const RECOVERY: Duration = Duration::from_secs(90);

/// A node that takes longer than this to make the progress asked of it is
/// named in the timeline.
const SLOW_PROGRESS: Duration = Duration::from_secs(3);

/// One step of a scenario.
#[derive(Debug, Clone)]
pub enum Action {
    Wait(Duration),
    /// Wait until this long after the load started (a schedule's beat).
    Until(Duration),
    /// SIGKILL.
    Kill(usize),
    /// SIGTERM; the node must exit with status 0.
    Terminate(usize),
    Start(usize),
    /// SIGSTOP.
    Pause(usize),
    /// SIGCONT.
    Resume(usize),
    /// Cut every link between groups (a node in no group joins the first).
    Partition(Vec<Vec<usize>>),
    /// Cut both directions between each pair (other links unchanged).
    Cut(Vec<(usize, usize)>),
    /// The same faults on every link.
    SlowLinks(Faults),
    /// Heal the link cut last by this action, then cut both directions
    /// between two validators drawn from the seed.
    CutRandomLink,
    /// Every link back to normal.
    Heal,
    /// Record each running node's resident memory and open descriptors.
    Sample,
    /// No running node commits for this long (first letting a block that
    /// was already decided land).
    Stalled(Duration),
    /// Every running node commits `n` more blocks within the recovery
    /// bound.
    Progress(u64),
    /// These nodes commit `n` more blocks within the recovery bound.
    ProgressOf(Vec<usize>, u64),
    /// A wait of up to this long, drawn from the seed.
    RandomWait(Duration),
    /// Copy a (stopped) node's database aside.
    Backup(usize),
    /// Put a (stopped) node's backup back in place of its database.
    Restore(usize),
    /// Remove a (stopped) node's database.
    Wipe(usize),
    /// Cut bytes off the tail of a (stopped) node's newest write-ahead log.
    TruncateWal(usize, u64),
    /// Start a node whose database was damaged: it either starts (and the
    /// invariants judge what it kept) or refuses with an error saying
    /// this, and is then rebuilt from its peers on an empty database.
    StartOrRebuild(usize, &'static str),
    /// Set a node's clock offset (ms; applies at its next start).
    ClockOffset(usize, i64),
    /// No block committed during this long was proposed by this validator.
    ProposesNone(usize, Duration),
    /// Move a (stopped) node's database onto a tmpfs of this many bytes.
    LimitDisk(usize, u64),
    /// Fill that tmpfs to the last byte.
    FillDisk(usize),
    /// Free what `FillDisk` took.
    FreeDisk(usize),
    /// The node exits by itself within the recovery bound, with a failure
    /// status and a log that says this.
    Exits(usize, &'static str),
}

/// A named list of actions on a cluster.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub spec: ClusterSpec,
    pub actions: Vec<Action>,
    pub expect: Expect,
    /// The seed the actions were drawn from, if they were; otherwise one
    /// is drawn (see [`seed`]).
    pub seed: Option<u64>,
}

impl Scenario {
    pub fn new(name: &'static str, actions: Vec<Action>) -> Self {
        Self {
            name,
            spec: ClusterSpec::default(),
            actions,
            expect: Expect::default(),
            seed: None,
        }
    }
}

/// What a finished scenario measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    /// The height every node holds at the end.
    pub height: u64,
    /// Transactions clients saw committed.
    pub acknowledged: usize,
    /// From the heal to [`check::recovers`]' growth on every node.
    pub recovery: Duration,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: height {}, {} transactions acknowledged, recovered in {:.1} s",
            self.seed,
            self.height,
            self.acknowledged,
            self.recovery.as_secs_f64()
        )
    }
}

/// The seed from `TALLY_FAULT_SEED`, or one from the clock.
pub fn seed() -> u64 {
    std::env::var("TALLY_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

/// A small deterministic generator (xorshift) for the scenario's choices.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Runs `scenario`: starts the cluster and the load, plays the actions,
/// heals, and checks every invariant. Panics (keeping the folder) on the
/// first broken one.
pub async fn run(scenario: &Scenario) -> Outcome {
    let mut session = Session::begin(scenario).await;
    for action in &scenario.actions {
        session.play(action).await;
    }
    session.finish().await
}

/// A scenario under way: the cluster, its load and the timeline.
#[derive(Debug)]
pub struct Session {
    pub cluster: Cluster,
    name: &'static str,
    expect: Expect,
    load: Load,
    seed: u64,
    rng: Rng,
    began: Instant,
    cut: Option<(usize, usize)>,
    /// What `Sample` recorded.
    pub samples: Vec<Usage>,
}

impl Session {
    /// Starts every node, waits for height 2 everywhere, starts the load.
    pub async fn begin(scenario: &Scenario) -> Self {
        let seed = scenario.seed.unwrap_or_else(seed);
        println!("scenario {}: TALLY_FAULT_SEED={seed}", scenario.name);
        let mut cluster = Cluster::create(&scenario.spec, |_| {}).await;
        cluster.start_all().await;
        let all: Vec<usize> = (0..cluster.nodes.len()).collect();
        cluster.wait_height(&all, 2, RECOVERY).await;
        let load = Load::start(
            &cluster.accounts(),
            scenario.spec.accounts,
            &scenario.spec.chain_id,
            cluster.clients(),
            seed,
        );
        Self {
            cluster,
            name: scenario.name,
            expect: scenario.expect,
            load,
            seed,
            rng: Rng(seed),
            began: Instant::now(),
            cut: None,
            samples: Vec::new(),
        }
    }

    /// Prints a line of the timeline.
    pub fn say(&self, what: &str) {
        println!("  [{:7.1} s] {what}", self.began.elapsed().as_secs_f64());
    }

    pub async fn play(&mut self, action: &Action) {
        self.say(&format!("{action:?}"));
        if let Action::Until(at) = action {
            tokio::time::sleep_until((self.began + *at).into()).await;
            return;
        }
        if let Action::Sample = action {
            let now = self.cluster.usage();
            for u in &now {
                println!(
                    "             {} (pid {}): {} MB resident, {} descriptors",
                    self.cluster.nodes[u.node].name,
                    u.pid,
                    u.rss_kb / 1024,
                    u.fds
                );
            }
            self.samples.extend(now);
            return;
        }
        play(&mut self.cluster, action, &mut self.rng, &mut self.cut).await;
    }

    /// Heals every link, brings every node back, waits for the chain to
    /// grow (I5), stops the load and the nodes, and checks the rest.
    pub async fn finish(mut self) -> Outcome {
        self.say("heal and restart");
        let cluster = &mut self.cluster;
        cluster.heal();
        for i in 0..cluster.nodes.len() {
            match cluster.nodes[i].run() {
                Run::Down => cluster.start(i).await,
                Run::Paused => cluster.resume(i),
                Run::Running => {}
            }
        }
        let recovery = check::recovers(cluster, RECOVERY).await;
        let acknowledged = self.load.stop().await;
        assert!(!acknowledged.is_empty(), "the load committed nothing");
        println!(
            "  [{:7.1} s] recovered in {:.1} s; {} transactions acknowledged; checking",
            self.began.elapsed().as_secs_f64(),
            recovery.as_secs_f64(),
            acknowledged.len()
        );
        check::evidence(cluster, self.expect).await;
        for i in 0..cluster.nodes.len() {
            let status = cluster.terminate(i).await;
            assert!(
                status.success(),
                "{} exited with {status} after SIGTERM",
                cluster.nodes[i].name
            );
        }
        let height = check::databases(cluster, &acknowledged, self.expect);
        let outcome = Outcome {
            seed: self.seed,
            height,
            acknowledged: acknowledged.len(),
            recovery,
        };
        println!("scenario {}: passed; {outcome}", self.name);
        outcome
    }
}

async fn play(
    cluster: &mut Cluster,
    action: &Action,
    rng: &mut Rng,
    cut: &mut Option<(usize, usize)>,
) {
    match action {
        Action::Wait(d) => tokio::time::sleep(*d).await,
        Action::Kill(i) => cluster.kill(*i),
        Action::Terminate(i) => {
            let status = cluster.terminate(*i).await;
            assert!(
                status.success(),
                "{} exited with {status} after SIGTERM",
                cluster.nodes[*i].name
            );
        }
        Action::Start(i) => cluster.start(*i).await,
        Action::Pause(i) => cluster.pause(*i),
        Action::Resume(i) => cluster.resume(*i),
        Action::Partition(groups) => cluster.partition(groups),
        Action::Cut(pairs) => {
            for &(a, b) in pairs {
                cluster.cut_pair(a, b, true);
            }
        }
        Action::SlowLinks(faults) => cluster.slow_links(*faults),
        Action::CutRandomLink => {
            if let Some((a, b)) = cut.take() {
                cluster.cut_pair(a, b, false);
            }
            let n = cluster.validators() as u64;
            let a = rng.below(n) as usize;
            let b = (a + 1 + rng.below(n - 1) as usize) % n as usize;
            println!(
                "             cut {} <-> {}",
                cluster.nodes[a].name, cluster.nodes[b].name
            );
            cluster.cut_pair(a, b, true);
            *cut = Some((a, b));
        }
        Action::Heal => cluster.heal(),
        Action::Sample | Action::Until(_) => {} // the session handles them
        Action::Stalled(d) => stalled(cluster, *d).await,
        Action::Progress(n) => {
            let running: Vec<usize> = (0..cluster.nodes.len())
                .filter(|i| cluster.nodes[*i].run() == Run::Running)
                .collect();
            progress(cluster, &running, *n).await;
        }
        Action::ProgressOf(nodes, n) => progress(cluster, nodes, *n).await,
        Action::RandomWait(max) => {
            let micros = max.as_micros().min(u128::from(u64::MAX)) as u64;
            tokio::time::sleep(Duration::from_micros(rng.below(micros + 1))).await;
        }
        Action::ClockOffset(i, ms) => cluster.configure(*i, |c| c.consensus.clock_offset_ms = *ms),
        Action::ProposesNone(v, d) => proposes_none(cluster, *v, *d).await,
        Action::LimitDisk(i, bytes) => cluster.limit_disk(*i, *bytes),
        Action::FillDisk(i) => {
            let bytes = cluster.fill_disk(*i);
            println!("             filled with {bytes} bytes");
        }
        Action::FreeDisk(i) => cluster.free_disk(*i),
        Action::Exits(i, says) => {
            let (status, log) = cluster.exited(*i, RECOVERY).await;
            let name = &cluster.nodes[*i].name;
            assert!(!status.success(), "{name} exited with {status}");
            let line = log.lines().rev().find(|l| l.contains(says));
            let line = line.unwrap_or_else(|| panic!("{name} exited without saying {says:?}"));
            println!("             exited ({status}): {line}");
        }
        Action::Backup(i) => cluster.backup(*i),
        Action::Restore(i) => cluster.restore(*i),
        Action::Wipe(i) => cluster.wipe(*i),
        Action::TruncateWal(i, bytes) => {
            let (file, cut) = cluster.truncate_wal(*i, *bytes);
            println!("             cut {cut} bytes off {}", file.display());
        }
        Action::StartOrRebuild(i, says) => {
            let Some(log) = cluster.start_or_refusal(*i).await else {
                println!("             it started on what it kept");
                return;
            };
            let line = log.lines().find(|l| l.contains(says));
            let line = line.unwrap_or_else(|| {
                panic!(
                    "{} refused without saying {says:?}:\n{log}",
                    cluster.nodes[*i].name
                )
            });
            println!("             refused: {line}");
            cluster.wipe(*i);
            cluster.start(*i).await;
        }
    }
}

/// Waits for `nodes` to commit `n` blocks beyond the highest height any
/// running node holds now.
async fn progress(cluster: &Cluster, nodes: &[usize], n: u64) {
    let top = cluster.heights().await.into_iter().map(|(_, h)| h).max();
    let target = top.unwrap_or(0) + n;
    let began = Instant::now();
    for &i in nodes {
        let from = cluster.height(i).await;
        let waiting = Instant::now();
        let left = RECOVERY.saturating_sub(began.elapsed());
        cluster.wait_height(&[i], target, left).await;
        if waiting.elapsed() > SLOW_PROGRESS {
            println!(
                "             {} reached {target} (from {from:?}) {:.1} s in",
                cluster.nodes[i].name,
                began.elapsed().as_secs_f64()
            );
        }
    }
}

/// Asserts that none of the blocks committed during `d` was proposed by
/// validator `v` (checked on the first running node that answers).
async fn proposes_none(cluster: &Cluster, v: usize, d: Duration) {
    let (_, from) = answering(cluster).await;
    tokio::time::sleep(d).await;
    let (node, to) = answering(cluster).await;
    assert!(to > from, "nothing was committed in {d:?}");
    let key = cluster.genesis.validators[v].public_key.to_hex();
    for (h, block) in blocks(cluster, node, from + 1..=to).await {
        assert_ne!(
            block.header.proposer, key,
            "block {h} was proposed by {}",
            cluster.nodes[v].name
        );
    }
    println!(
        "             {} blocks, none by {}",
        to - from,
        cluster.nodes[v].name
    );
}

/// Asserts that no block proposed after this moment is committed during
/// `d`: every block above the height held now is timed before now (a block
/// decided before the fault may still land). Every running node must
/// answer.
async fn stalled(cluster: &Cluster, d: Duration) {
    let since = super::load::wall_ms();
    let (_, from) = answering(cluster).await;
    tokio::time::sleep(d).await;
    let (node, to) = answering(cluster).await;
    for (h, block) in blocks(cluster, node, from + 1..=to).await {
        assert!(
            block.header.time_ms.0 <= since,
            "block {h} was proposed {} ms into a fault that left no quorum",
            block.header.time_ms.0 - since
        );
    }
}

/// Node `node`'s blocks at `heights`, over RPC.
async fn blocks(
    cluster: &Cluster,
    node: usize,
    heights: std::ops::RangeInclusive<u64>,
) -> Vec<(u64, BlockInfo)> {
    let client = cluster.client(node).expect("it runs");
    let mut out = Vec::new();
    for h in heights {
        let block = client
            .get_block_by_height(BlockId::Height(h), None)
            .await
            .unwrap_or_else(|e| panic!("block {h} from {}: {e}", cluster.nodes[node].name));
        out.push((h, block));
    }
    out
}

/// The highest height the running nodes hold, and a node that holds it;
/// panics if a running node does not answer.
async fn answering(cluster: &Cluster) -> (usize, u64) {
    let mut best = (0, 0);
    for (i, node) in cluster.nodes.iter().enumerate() {
        if node.run() != Run::Running {
            continue;
        }
        let h = cluster
            .height(i)
            .await
            .unwrap_or_else(|| panic!("{} does not answer", node.name));
        if h >= best.1 {
            best = (i, h);
        }
    }
    best
}
