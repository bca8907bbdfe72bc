//! A fault proxy for one link: a TCP relay on 127.0.0.1 that the harness
//! puts between two nodes, so that real libp2p traffic can be delayed,
//! throttled, black-holed or cut, each direction on its own, on command.
//!
//! The node that dials connects to the proxy's address; the proxy dials
//! the real listener and copies bytes both ways. The faults apply to bytes
//! as they pass:
//!
//! - **delay** (with **jitter**): each chunk read is released no earlier
//!   than its arrival plus the delay, and never before the chunk ahead of
//!   it (a TCP stream keeps its order, so jitter cannot reorder bytes);
//! - **rate**: at most that many bytes per second leave in that direction;
//! - **black hole**: bytes read are dropped; the connection stays open, as
//!   on a link that lost its route;
//! - **cut**: every connection through the proxy is closed at once, and new
//!   ones are closed as they arrive, until the cut heals.
//!
//! The kernel's `netem` is not available on the project's machines; this
//! relay is what the fault scenarios use instead.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The most bytes read in one go; a chunk is the unit of delay.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks in flight in one direction of one connection. A full queue stops
/// reading, so a slow link pushes back on the sender as TCP would.
const QUEUE_CHUNKS: usize = 256;

/// What is done to the bytes going one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    pub delay: Duration,
    /// Each chunk's delay is `delay` plus up to this much, drawn anew.
    pub jitter: Duration,
    /// Bytes per second; `None` is unlimited.
    pub rate: Option<u64>,
    pub blackhole: bool,
}

/// The state of a link: faults each way, and whether it is cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// From the dialing side to the listening side.
    pub forward: Faults,
    /// From the listening side back to the dialing side.
    pub backward: Faults,
    pub cut: bool,
}

/// One link's relay; dropping it stops the relay and closes its
/// connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: Target,
    state: watch::Sender<LinkState>,
    dropped: Arc<Dropped>,
    accept: JoinHandle<()>,
}

/// Where connections go; `None` closes them as they arrive (the node
/// behind the link has not started yet).
type Target = Arc<Mutex<Option<SocketAddr>>>;

/// Bytes lost in black holes, and a wake-up for whoever waits on them.
#[derive(Debug, Default)]
struct Dropped {
    bytes: AtomicU64,
    notify: Notify,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a port the OS picks) and relays every
    /// connection to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Self> {
        let proxy = Self::unrouted().await?;
        proxy.set_target(target);
        Ok(proxy)
    }

    /// Listens on 127.0.0.1 with nowhere to relay to yet: connections are
    /// closed as they arrive until [`FaultProxy::set_target`].
    pub async fn unrouted() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, watcher) = watch::channel(LinkState::default());
        let dropped = Arc::new(Dropped::default());
        let target = Target::default();
        let accept = tokio::spawn(accept_loop(
            listener,
            target.clone(),
            watcher,
            dropped.clone(),
        ));
        Ok(Self {
            addr,
            target,
            state,
            dropped,
            accept,
        })
    }

    /// Where dialers connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> Option<SocketAddr> {
        *self.target.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Relays new connections to `target` (a restarted node listens on a
    /// new port); connections already relayed keep their old target.
    pub fn set_target(&self, target: SocketAddr) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = Some(target);
    }

    pub fn state(&self) -> LinkState {
        *self.state.borrow()
    }

    /// Replaces the link's faults (and cut) for every connection, current
    /// and future.
    pub fn set(&self, state: LinkState) {
        self.state.send_replace(state);
    }

    /// Cuts the link, or heals the cut.
    pub fn set_cut(&self, cut: bool) {
        self.state.send_modify(|s| s.cut = cut);
    }

    /// No faults, not cut.
    pub fn heal(&self) {
        self.set(LinkState::default());
    }

    /// Bytes black holes have dropped so far, both ways.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped.bytes.load(Ordering::SeqCst)
    }

    /// Returns once black holes have dropped at least `bytes` in all.
    pub async fn dropped_at_least(&self, bytes: u64) {
        loop {
            let notified = self.dropped.notify.notified();
            if self.dropped_bytes() >= bytes {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Closes every connection: their pumps watch the state and stop
        // when its sender is gone.
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: Target,
    state: watch::Receiver<LinkState>,
    dropped: Arc<Dropped>,
) {
    let seed = Arc::new(Mutex::new(0x9e37_79b9_7f4a_7c15_u64));
    loop {
        let inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(_) => {
                // Out of descriptors or the like: try again shortly rather
                // than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let to = *target.lock().unwrap_or_else(|p| p.into_inner());
        let Some(to) = to.filter(|_| !state.borrow().cut) else {
            drop(inbound);
            continue;
        };
        let state = state.clone();
        let seed = seed.clone();
        let dropped = dropped.clone();
        tokio::spawn(async move {
            let Ok(outbound) = TcpStream::connect(to).await else {
                return;
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            relay(inbound, outbound, state, seed, dropped).await;
        });
    }
}

/// Copies both ways until either side closes or the link is cut.
async fn relay(
    inbound: TcpStream,
    outbound: TcpStream,
    mut state: watch::Receiver<LinkState>,
    seed: Arc<Mutex<u64>>,
    dropped: Arc<Dropped>,
) {
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    let forward = pump(
        in_read,
        out_write,
        state.clone(),
        true,
        seed.clone(),
        dropped.clone(),
    );
    let backward = pump(out_read, in_write, state.clone(), false, seed, dropped);
    let cut = async {
        loop {
            if state.borrow_and_update().cut {
                return;
            }
            if state.changed().await.is_err() {
                return;
            }
        }
    };
    // Whichever ends first ends the connection: both halves are dropped.
    tokio::select! {
        _ = forward => {}
        _ = backward => {}
        _ = cut => {}
    }
}

/// One direction: reads chunks, drops them in a black hole, and hands the
/// rest to a writer that holds each until its release time and keeps to
/// the rate.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    state: watch::Receiver<LinkState>,
    forward: bool,
    seed: Arc<Mutex<u64>>,
    dropped: Arc<Dropped>,
) {
    let faults = move |s: &watch::Receiver<LinkState>| {
        let s = *s.borrow();
        if forward {
            s.forward
        } else {
            s.backward
        }
    };
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE_CHUNKS);
    let reader_state = state.clone();
    let reader = async move {
        let mut last_release = Instant::now();
        let mut buf = vec![0u8; CHUNK_BYTES];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let f = faults(&reader_state);
            if f.blackhole {
                dropped.bytes.fetch_add(n as u64, Ordering::SeqCst);
                dropped.notify.notify_waiters();
                continue;
            }
            let jitter = jitter_of(f.jitter, &seed);
            let release = (Instant::now() + f.delay + jitter).max(last_release);
            last_release = release;
            if tx.send((release, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let writer = async move {
        let mut sent: VecDeque<(Instant, usize)> = VecDeque::new();
        while let Some((release, bytes)) = rx.recv().await {
            tokio::time::sleep_until(release).await;
            // Under a rate, a chunk leaves in tenths of a second's worth.
            let rate = faults(&state).rate.map(|r| r.max(1));
            let piece = rate.map_or(bytes.len(), |r| {
                (r / 10).clamp(1, CHUNK_BYTES as u64) as usize
            });
            for part in bytes.chunks(piece.max(1)) {
                if let Some(rate) = rate {
                    throttle(&mut sent, part.len(), rate).await;
                }
                if to.write_all(part).await.is_err() {
                    return;
                }
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Waits until sending `len` more bytes keeps the last second's total at
/// or under `rate`.
async fn throttle(sent: &mut VecDeque<(Instant, usize)>, len: usize, rate: u64) {
    let window = Duration::from_secs(1);
    loop {
        let now = Instant::now();
        while sent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= window)
        {
            sent.pop_front();
        }
        let in_window: u64 = sent.iter().map(|(_, n)| *n as u64).sum();
        if in_window == 0 || in_window + len as u64 <= rate {
            sent.push_back((now, len));
            return;
        }
        match sent.front() {
            Some((oldest, _)) => tokio::time::sleep_until(*oldest + window).await,
            None => return,
        }
    }
}

/// A delay in `[0, max]` from a small shared generator (xorshift).
fn jitter_of(max: Duration, seed: &Mutex<u64>) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut s = seed.lock().unwrap_or_else(|p| p.into_inner());
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    let micros = max.as_micros().min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(*s % (micros + 1))
}
