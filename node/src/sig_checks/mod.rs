//! Signature checks of submitted and gossiped transactions, coalesced.
//! Batches that arrive while a check runs wait in a queue, and the next
//! check takes every batch waiting: under load each check covers many
//! signatures (a batch check costs less per signature the more it holds).
//! An idle node checks a batch as soon as it arrives. While one check
//! runs, another starts only for a backlog of [`PARALLEL_BACKLOG_MIN`]
//! transactions or more: smaller batches wait for the running check to end
//! (about a millisecond) and go together in the next, while a heavy load
//! still spreads over every core.
//!
//! The checks run on the node's own checker threads, one per core, at a
//! lower priority ([`CHECKER_NICE`]): checking transactions for the pool
//! gives way to the work that decides and commits blocks, which a busy
//! machine would otherwise slow down for everything waiting in a block.
//! One more thread, at the default priority, checks only when the backlog
//! reaches [`CATCH_UP_BACKLOG_MIN`]: a saturated machine still keeps up.
//!
//! Each transaction's result is its own: a bad signature in one client's
//! batch fails only that transaction (the batch check names the failures).
//! A job may bring its transactions encoded, with the decoding to run on
//! the checker's thread (gossip): a job that fails to decode gets its
//! reason and takes no part in the check.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

use tally_ledger::types::SignedTx;

use crate::handle::NodeStopped;
use crate::mempool::{check_signatures_grouped, MempoolError};

/// Transactions in one check, at most: a batch this large costs about as
/// little per signature as batch checking gets.
pub const CHECK_TXS_MAX: usize = 1024;

/// Transactions waiting for which a second (third, …) check starts beside
/// a running one.
pub const PARALLEL_BACKLOG_MIN: usize = 256;

/// Transactions queued or being checked, at most, from each source (RPC,
/// gossip); a caller waits for room beyond it, so clients cannot queue
/// unbounded work, and a flood from one source does not hold the other.
pub const QUEUED_TXS_MAX: usize = 8 * CHECK_TXS_MAX;

/// The checker threads' nice value (Linux; 0 is the default). At 5 a busy
/// core gives them about a third of the time it gives a thread at 0.
/// Measured at 6,000 tx/s on 2 cores (docs/performance.md): 0 leaves the
/// chain in long heights with large blocks, 5 and 10 in short ones.
pub const CHECKER_NICE: i32 = 5;

/// Transactions waiting for which the catch-up checker, at the default
/// priority, starts a check beside the others. On a saturated machine the
/// low-priority checks fall behind, and transactions reach proposals
/// before their batch is checked: checked on the consensus path, and again
/// in their batch (measured at the maximum rate on 2 cores: 1.08-1.58
/// signature checks per transaction without it, 0.98-1.07 with every
/// checker at 0, and about 12 % more throughput).
pub const CATCH_UP_BACKLOG_MIN: usize = 2 * CHECK_TXS_MAX;

/// A job's answer when its whole check failed inside the node (a fault,
/// logged, not the transactions').
pub const CHECK_FAILED: &str = "the transactions could not be checked";

/// A job's answer when making its transactions panicked (a fault in the
/// node's decoder, not necessarily in the bytes).
pub const READ_FAILED: &str = "the transactions could not be read";

/// Checks transactions' chain and signatures, by group: one result each.
pub type CheckFn = fn(&[SignedTx], &str, &[usize]) -> Vec<Result<(), MempoolError>>;

/// A transaction and the result of its chain and signature checks.
pub type Checked = (SignedTx, Result<(), MempoolError>);

/// Makes a job's transactions on the checker's thread, or says why not.
pub type Prepare = Box<dyn FnOnce() -> Result<Vec<SignedTx>, &'static str> + Send>;

/// A job's answer: its results, or why its transactions could not be made.
pub type Answer = Result<Vec<Checked>, &'static str>;

/// The coalescing checker (cheap to clone). The threads stop when the
/// last clone is dropped.
#[derive(Debug, Clone)]
pub struct SigChecks {
    shared: Arc<Shared>,
    _threads: Arc<Threads>,
}

#[derive(Debug)]
struct Shared {
    chain_id: String,
    /// [`check_signatures_grouped`], but for tests.
    check: CheckFn,
    queue: Mutex<Queue>,
    /// Wakes an idle checker: a job to take, or the stop.
    wake: Condvar,
    /// Wakes the catch-up checker: a large backlog, or the stop.
    wake_catch_up: Condvar,
    /// Room for submitted transactions, and for gossiped ones.
    rpc_room: Arc<Semaphore>,
    gossip_room: Arc<Semaphore>,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The weight of `jobs`.
    backlog: usize,
    /// Checkers checking now.
    checking: usize,
    stopped: bool,
}

struct Job {
    prepare: Prepare,
    /// Its transactions, or an estimate of how many before they are made.
    weight: usize,
    reply: oneshot::Sender<Answer>,
    /// Its room in the queue, freed when the job is answered or dropped.
    room: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("weight", &self.weight).finish()
    }
}

/// The checker threads; dropping it stops them and waits for them.
#[derive(Debug)]
struct Threads {
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.wake.notify_all();
        self.shared.wake_catch_up.notify_all();
        let me = std::thread::current().id();
        for handle in self.handles.drain(..) {
            // A checker never holds the last clone, but never join oneself.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

impl SigChecks {
    /// A checker for `chain_id` with `checkers` threads at a low priority
    /// (at least one), and with more than one, the catch-up checker.
    pub fn new(chain_id: String, checkers: usize) -> std::io::Result<SigChecks> {
        SigChecks::with_check(chain_id, checkers, check_signatures_grouped)
    }

    fn with_check(chain_id: String, checkers: usize, check: CheckFn) -> std::io::Result<SigChecks> {
        let shared = Arc::new(Shared {
            chain_id,
            check,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            wake_catch_up: Condvar::new(),
            rpc_room: Arc::new(Semaphore::new(QUEUED_TXS_MAX)),
            gossip_room: Arc::new(Semaphore::new(QUEUED_TXS_MAX)),
        });
        let mut threads = Threads {
            shared: shared.clone(),
            handles: Vec::new(),
        };
        let catch_up = (checkers > 1).then_some(true);
        for catch_up in std::iter::repeat_n(false, checkers.max(1)).chain(catch_up) {
            let shared = shared.clone();
            let name = if catch_up {
                "tally-catch-up"
            } else {
                "tally-sigcheck"
            };
            let handle = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    if !catch_up {
                        lower_priority();
                    }
                    shared.run(catch_up);
                })?;
            threads.handles.push(handle);
        }
        Ok(SigChecks {
            shared,
            _threads: Arc::new(threads),
        })
    }

    /// Checks submitted `txs` (their chain, then their signatures): one
    /// result each, in order. Waits for room in the queue first.
    pub async fn check(&self, txs: Vec<SignedTx>) -> Result<Vec<Checked>, NodeStopped> {
        if txs.is_empty() {
            return Ok(Vec::new());
        }
        let weight = txs.len();
        let room = self.shared.rpc_room.clone();
        match self.queue(room, weight, Box::new(move || Ok(txs))).await? {
            Ok(checked) => Ok(checked),
            // `prepare` above cannot fail, so this is [`CHECK_FAILED`]
            // outside every guarded part of a check: never seen so far.
            Err(_) => Err(NodeStopped),
        }
    }

    /// Checks the gossiped transactions `prepare` makes on the checker's
    /// thread; `weight` is about how many it will make (for room in the
    /// queue and the size of a check).
    pub async fn check_with(&self, weight: usize, prepare: Prepare) -> Result<Answer, NodeStopped> {
        let room = self.shared.gossip_room.clone();
        self.queue(room, weight, prepare).await
    }

    async fn queue(
        &self,
        room: Arc<Semaphore>,
        weight: usize,
        prepare: Prepare,
    ) -> Result<Answer, NodeStopped> {
        let weight = weight.max(1);
        // A batch larger than the queue takes the whole queue.
        let want = weight.min(QUEUED_TXS_MAX) as u32;
        let room = room
            .acquire_many_owned(want)
            .await
            .map_err(|_| NodeStopped)?;
        let (reply, answer) = oneshot::channel();
        {
            let mut q = self.shared.lock();
            q.jobs.push_back(Job {
                prepare,
                weight,
                reply,
                room,
            });
            q.backlog += weight;
            self.shared.wake_for(&q);
        }
        answer.await.map_err(|_| NodeStopped)
    }
}

/// Lowers the calling thread's priority to [`CHECKER_NICE`] (Linux: nice
/// is per thread). Best effort: a node that cannot still checks.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), CHECKER_NICE) {
            warn!(error = %e, "cannot lower the signature checkers' priority");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue's state stays whole across a panic elsewhere: every
        // change to it is one push, one drain or one count.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the checkers `q` calls for: one for jobs while none checks,
    /// or for a backlog; the catch-up checker for a large backlog.
    fn wake_for(&self, q: &Queue) {
        if ready(q, false) {
            self.wake.notify_one();
        }
        if ready(q, true) {
            self.wake_catch_up.notify_one();
        }
    }

    /// A checker thread: while no other checks, or for a backlog (the
    /// catch-up checker: for a large backlog only), takes every waiting
    /// job (up to [`CHECK_TXS_MAX`] transactions, at least one job),
    /// checks them together and answers each; else sleeps.
    fn run(&self, catch_up: bool) {
        let mut q = self.lock();
        loop {
            if q.stopped {
                return;
            }
            if ready(&q, catch_up) {
                let jobs = take_jobs(&mut q);
                q.checking += 1;
                // What is left may call for another checker.
                self.wake_for(&q);
                drop(q);
                let (prepares, replies): (Vec<_>, Vec<_>) = jobs
                    .into_iter()
                    .map(|job| (job.prepare, (job.reply, job.room)))
                    .collect();
                let jobs_len = replies.len();
                // The check guards its own parts; a panic outside them
                // still answers every job (and the checker goes on).
                let answers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.answers(prepares)
                }))
                .unwrap_or_else(|_| (0..jobs_len).map(|_| Err(CHECK_FAILED)).collect());
                // Counted out, and the room freed, before anyone hears: a
                // caller with its answer finds its check wholly over.
                self.lock().checking -= 1;
                for ((reply, room), answer) in replies.into_iter().zip(answers) {
                    drop(room);
                    let _ = reply.send(answer);
                }
                q = self.lock();
                continue;
            }
            let wake = if catch_up {
                &self.wake_catch_up
            } else {
                &self.wake
            };
            q = wake.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Each job's answer, in order: its transactions made (on this
    /// thread), then checked with every other job's.
    fn answers(&self, prepares: Vec<Prepare>) -> Vec<Answer> {
        // Each job's transactions, or why it has none; a preparation that
        // panicked is a job that failed.
        let mut lens = Vec::with_capacity(prepares.len());
        let mut all = Vec::new();
        for prepare in prepares {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(prepare)) {
                Ok(Ok(txs)) => {
                    lens.push(Ok(txs.len()));
                    all.extend(txs);
                }
                Ok(Err(reason)) => lens.push(Err(reason)),
                Err(_) => lens.push(Err(READ_FAILED)),
            }
        }
        let groups: Vec<usize> = lens.iter().map(|l| *l.as_ref().unwrap_or(&0)).collect();
        let mut results = self.check_groups(&all, &groups).into_iter();
        debug!(jobs = lens.len(), txs = all.len(), "signatures checked");
        let mut txs = all.into_iter();
        lens.into_iter()
            .map(|len| {
                // One result per group, failed jobs' (empty) ones too;
                // `None` if its check failed inside the node: not the
                // transactions' fault, and they are not taken.
                let checked = results.next().flatten();
                let group = txs.by_ref().take(len?);
                Ok(match checked {
                    Some(checked) => group.zip(checked).collect(),
                    None => group.map(|tx| (tx, Err(MempoolError::Unchecked))).collect(),
                })
            })
            .collect()
    }

    /// The results of each group of `all` (consecutive, `groups` long;
    /// empty groups included), checked together. A check that panics is a
    /// fault in the node: each group is then checked alone, and only a
    /// group whose own check fails has no results.
    fn check_groups(
        &self,
        all: &[SignedTx],
        groups: &[usize],
    ) -> Vec<Option<Vec<Result<(), MempoolError>>>> {
        let check = |txs: &[SignedTx], groups: &[usize]| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (self.check)(txs, &self.chain_id, groups)
            }))
            .ok()
            .filter(|results| results.len() == txs.len())
        };
        if let Some(results) = check(all, groups) {
            let mut results = results.into_iter();
            return groups
                .iter()
                .map(|&n| Some(results.by_ref().take(n).collect()))
                .collect();
        }
        warn!(
            txs = all.len(),
            "a signature check failed inside the node; checking each batch alone"
        );
        let mut at = 0usize;
        groups
            .iter()
            .map(|&n| {
                let part = all.get(at..at.saturating_add(n)).unwrap_or_default();
                at = at.saturating_add(n);
                check(part, &[n])
            })
            .collect()
    }
}

/// Whether `q` holds work for a checker (the catch-up one, or another).
fn ready(q: &Queue, catch_up: bool) -> bool {
    if catch_up {
        q.backlog >= CATCH_UP_BACKLOG_MIN
    } else {
        !q.jobs.is_empty() && (q.checking == 0 || q.backlog >= PARALLEL_BACKLOG_MIN)
    }
}

/// The jobs for one check: every waiting job up to [`CHECK_TXS_MAX`]
/// transactions, and at least one.
fn take_jobs(q: &mut Queue) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut txs = 0;
    while let Some(job) = q.jobs.front() {
        if !jobs.is_empty() && txs + job.weight > CHECK_TXS_MAX {
            break;
        }
        txs += job.weight;
        jobs.extend(q.jobs.pop_front());
    }
    q.backlog -= txs;
    jobs
}

#[cfg(test)]
mod tests;
