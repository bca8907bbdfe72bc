//! Block sync bookkeeping: what each peer claims and how far it can be
//! trusted, which block ranges are requested from whom, and which verified
//! blocks wait to be executed and committed in order.
//!
//! The driver owns a [`Sync`] and does the I/O: it sends the requests
//! [`Sync::plan`] returns, verifies answers (signatures in parallel, off the
//! driver task), and executes and commits what [`Sync::take_ready`] hands
//! back. Everything here is plain data and decisions, so it is tested
//! without a network.
//!
//! Peers are scored. Timeouts, empty answers to a height the peer claimed,
//! a claimed height that goes down, answers for the wrong heights and
//! invalid blocks cost points; good answers earn some back. A peer at or
//! below [`BAN_SCORE`] is not asked for a while and its claims do not count
//! towards the sync target. A peer that could not serve a height it claimed
//! is believed only up to what it served, for [`CAP_FOR`]: the node never
//! chases a height that nobody delivers.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tally_ledger::types::{Block, CommitCertificate};

use crate::wire::SYNC_BLOCKS_MAX;

/// A request without an answer after this long goes to another peer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests (waiting or being verified) at once, over all peers.
pub const MAX_REQUESTS: usize = 8;
/// Requests at once to one peer.
pub const PER_PEER_REQUESTS: usize = 2;
/// How far ahead of the tip blocks are fetched.
pub const WINDOW: u64 = 8 * SYNC_BLOCKS_MAX;
/// Blocks handed to the driver for one atomic commit.
pub const COMMIT_RUN_MAX: usize = 256;
/// At or below this score a peer is not asked and not believed.
pub const BAN_SCORE: i32 = -50;
/// How long a ban lasts; the peer comes back at [`BAN_SCORE`] / 2.
pub const BAN_FOR: Duration = Duration::from_secs(60);
/// How long a peer that failed to serve a claimed height is capped.
pub const CAP_FOR: Duration = Duration::from_secs(30);
const SCORE_MAX: i32 = 100;
const SCORE_GOOD: i32 = 2;

/// What a peer did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    /// No answer within [`REQUEST_TIMEOUT`], or the request failed.
    Timeout,
    /// It answered nothing for heights it claimed to have.
    CannotServe,
    /// It reported a height, then a lower one.
    HeightWentDown,
    /// It answered with blocks for heights that were not asked.
    WrongHeights,
    /// It served a block that fails verification.
    InvalidBlock,
}

impl Penalty {
    pub fn points(self) -> i32 {
        match self {
            Penalty::Timeout => 10,
            Penalty::CannotServe => 10,
            Penalty::HeightWentDown => 20,
            Penalty::WrongHeights => 30,
            Penalty::InvalidBlock => 100,
        }
    }

    /// A short label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Penalty::Timeout => "timeout",
            Penalty::CannotServe => "cannot_serve_claimed_height",
            Penalty::HeightWentDown => "height_went_down",
            Penalty::WrongHeights => "wrong_heights",
            Penalty::InvalidBlock => "invalid_block",
        }
    }
}

#[derive(Debug, Clone)]
struct Peer {
    claimed: u64,
    /// The sequence number of its newest status message.
    status_seq: u64,
    /// Believed only up to this height until the instant.
    cap: Option<(u64, Instant)>,
    score: i32,
    banned_until: Option<Instant>,
    requests: usize,
}

impl Peer {
    fn new() -> Self {
        Peer {
            claimed: 0,
            status_seq: 0,
            cap: None,
            score: 0,
            banned_until: None,
            requests: 0,
        }
    }

    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|t| now < t)
    }

    /// The height this peer is believed to serve.
    fn height(&self, now: Instant) -> u64 {
        if self.banned(now) {
            return 0;
        }
        match self.cap {
            Some((cap, until)) if now < until => self.claimed.min(cap),
            _ => self.claimed,
        }
    }
}

/// One peer as `status` and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub peer: PeerId,
    pub claimed_height: u64,
    pub believed_height: u64,
    pub score: i32,
    pub banned: bool,
}

#[derive(Debug, Clone, Copy)]
struct Request {
    peer: PeerId,
    to: u64,
    sent: Instant,
    /// Answered; its blocks are being verified.
    checking: bool,
}

/// A verified block waiting for its turn, with the peer that served it.
#[derive(Debug)]
pub struct Ready {
    pub peer: PeerId,
    pub block: Block,
    pub cert: CommitCertificate,
}

/// Block sync state. See the module documentation.
#[derive(Debug, Default)]
pub struct Sync {
    peers: HashMap<PeerId, Peer>,
    /// Requests by first height.
    requests: BTreeMap<u64, Request>,
    ready: BTreeMap<u64, Ready>,
}

impl Sync {
    pub fn new() -> Self {
        Self::default()
    }

    fn peer(&mut self, peer: PeerId) -> &mut Peer {
        self.peers.entry(peer).or_insert_with(Peer::new)
    }

    /// A peer announced its height in its message number `seq`. An older
    /// message than one already seen (reordered on the way) is ignored; a
    /// newer one with a lower height costs points (and is believed: the
    /// peer may have lost data).
    pub fn on_status(
        &mut self,
        peer: PeerId,
        height: u64,
        seq: u64,
        now: Instant,
    ) -> Option<Penalty> {
        let p = self.peer(peer);
        if seq <= p.status_seq {
            return None;
        }
        p.status_seq = seq;
        let went_down = height < p.claimed;
        p.claimed = height;
        if went_down {
            self.penalise(peer, Penalty::HeightWentDown, now);
            return Some(Penalty::HeightWentDown);
        }
        None
    }

    /// Lowers a peer's score; at [`BAN_SCORE`] it is banned for
    /// [`BAN_FOR`] and its requests are dropped.
    pub fn penalise(&mut self, peer: PeerId, penalty: Penalty, now: Instant) {
        let p = self.peer(peer);
        p.score = p.score.saturating_sub(penalty.points()).max(-1000);
        if p.score <= BAN_SCORE && !p.banned(now) {
            p.banned_until = Some(now + BAN_FOR);
            p.score = p.score.min(BAN_SCORE);
            self.requests.retain(|_, r| r.peer != peer || r.checking);
            if let Some(p) = self.peers.get_mut(&peer) {
                p.requests = 0;
            }
        }
    }

    fn reward(&mut self, peer: PeerId) {
        let p = self.peer(peer);
        p.score = (p.score + SCORE_GOOD).min(SCORE_MAX);
    }

    /// The best height a believed peer offers (0 with no peers).
    pub fn target(&self, now: Instant) -> u64 {
        self.peers
            .values()
            .map(|p| p.height(now))
            .max()
            .unwrap_or(0)
    }

    /// True while the node is more than one block behind the target.
    pub fn catching_up(&self, tip: u64, now: Instant) -> bool {
        self.target(now) > tip + 1
    }

    /// Expires requests that timed out (penalising their peers), lifts
    /// bans that ran out, and returns the requests to send now: gaps in
    /// `tip+1 ..= tip+WINDOW`, each to a believed peer with the most points
    /// and spare capacity.
    pub fn plan(&mut self, tip: u64, now: Instant) -> Vec<(PeerId, u64, u64)> {
        let expired: Vec<(u64, PeerId)> = self
            .requests
            .iter()
            .filter(|(_, r)| !r.checking && now.duration_since(r.sent) >= REQUEST_TIMEOUT)
            .map(|(from, r)| (*from, r.peer))
            .collect();
        for (from, peer) in expired {
            self.requests.remove(&from);
            self.release(peer);
            self.penalise(peer, Penalty::Timeout, now);
        }
        for p in self.peers.values_mut() {
            if p.banned_until.is_some_and(|t| now >= t) {
                p.banned_until = None;
                p.score = BAN_SCORE / 2;
            }
        }
        let done: Vec<(u64, PeerId, bool)> = self
            .requests
            .iter()
            .filter(|(_, r)| r.to <= tip)
            .map(|(from, r)| (*from, r.peer, r.checking))
            .collect();
        for (from, peer, checking) in done {
            self.requests.remove(&from);
            if !checking {
                self.release(peer);
            }
        }
        self.ready = self.ready.split_off(&(tip + 1));

        let mut out = Vec::new();
        let mut height = tip + 1;
        while self.requests.len() < MAX_REQUESTS && height <= tip + WINDOW {
            // Skip what is ready or requested.
            if self.ready.contains_key(&height) {
                height += 1;
                continue;
            }
            if let Some((_, r)) = self.requests.range(..=height).next_back() {
                if r.to >= height {
                    height = r.to + 1;
                    continue;
                }
            }
            let gap_end = self
                .requests
                .range(height..)
                .next()
                .map(|(from, _)| from - 1)
                .into_iter()
                .chain(self.ready.range(height..).next().map(|(h, _)| h - 1))
                .min()
                .unwrap_or(u64::MAX);
            let Some(peer) = self.choose(height, now) else {
                break;
            };
            let peer_height = self.peers.get(&peer).map_or(0, |p| p.height(now));
            let to = (height + SYNC_BLOCKS_MAX - 1)
                .min(peer_height)
                .min(gap_end)
                .min(tip + WINDOW);
            self.requests.insert(
                height,
                Request {
                    peer,
                    to,
                    sent: now,
                    checking: false,
                },
            );
            self.peer(peer).requests += 1;
            out.push((peer, height, to));
            height = to + 1;
        }
        out
    }

    /// The believed peer with spare capacity that has `height`: most
    /// points first, then fewest requests.
    fn choose(&self, height: u64, now: Instant) -> Option<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.height(now) >= height && p.requests < PER_PEER_REQUESTS)
            .max_by_key(|(id, p)| (p.score, std::cmp::Reverse(p.requests), id.to_bytes()))
            .map(|(id, _)| *id)
    }

    fn release(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.requests = p.requests.saturating_sub(1);
        }
    }

    /// An answer arrived for `from..=to`. `Ok(true)`: verify the blocks
    /// (then call [`Sync::on_checked`]); `Ok(false)`: nothing to do (a late
    /// answer, or an honest short one); `Err`: the peer misbehaved and was
    /// penalised.
    pub fn on_answer(
        &mut self,
        peer: PeerId,
        from: u64,
        to: u64,
        blocks: &[(Block, CommitCertificate)],
        now: Instant,
    ) -> Result<bool, Penalty> {
        let ours = self
            .requests
            .get(&from)
            .is_some_and(|r| r.peer == peer && r.to == to && !r.checking);
        if !ours {
            return Ok(false);
        }
        let in_order = blocks.len() as u64 <= to - from + 1
            && blocks
                .iter()
                .enumerate()
                .all(|(i, (b, _))| b.height() == from + i as u64);
        if !in_order {
            self.requests.remove(&from);
            self.release(peer);
            self.penalise(peer, Penalty::WrongHeights, now);
            return Err(Penalty::WrongHeights);
        }
        if blocks.is_empty() {
            // It claimed `from` or more and served nothing: believe it only
            // up to below `from` for a while.
            self.requests.remove(&from);
            self.release(peer);
            let p = self.peer(peer);
            p.cap = Some((from - 1, now + CAP_FOR));
            self.penalise(peer, Penalty::CannotServe, now);
            return Err(Penalty::CannotServe);
        }
        // A short answer is honest (responses have a byte budget): the rest
        // becomes a gap that the next plan requests again.
        let served_to = from + blocks.len() as u64 - 1;
        if let Some(r) = self.requests.get_mut(&from) {
            r.to = served_to;
            r.checking = true;
        }
        self.release(peer);
        self.reward(peer);
        Ok(true)
    }

    /// A request failed in the network (timeout, closed connection).
    pub fn on_failed(&mut self, peer: PeerId, from: u64, now: Instant) {
        if self
            .requests
            .get(&from)
            .is_some_and(|r| r.peer == peer && !r.checking)
        {
            self.requests.remove(&from);
            self.release(peer);
            self.penalise(peer, Penalty::Timeout, now);
        }
    }

    /// The verified blocks of the request at `from` (in order, all valid),
    /// and the height and reason of the first invalid one, if any.
    pub fn on_checked(
        &mut self,
        peer: PeerId,
        from: u64,
        valid: Vec<(Block, CommitCertificate)>,
        invalid: bool,
        now: Instant,
    ) {
        self.requests.remove(&from);
        for (block, cert) in valid {
            self.ready
                .entry(block.height())
                .or_insert(Ready { peer, block, cert });
        }
        if invalid {
            self.penalise(peer, Penalty::InvalidBlock, now);
        }
    }

    /// Consecutive ready blocks from `tip + 1` (at most [`COMMIT_RUN_MAX`]).
    pub fn take_ready(&mut self, tip: u64) -> Vec<Ready> {
        self.ready = self.ready.split_off(&(tip + 1));
        let mut run = Vec::new();
        let mut next = tip + 1;
        while run.len() < COMMIT_RUN_MAX {
            match self.ready.remove(&next) {
                Some(r) => run.push(r),
                None => break,
            }
            next += 1;
        }
        run
    }

    /// A block `peer` served failed when executed or linked: ban the peer
    /// and forget every block it served.
    pub fn on_invalid_block(&mut self, peer: PeerId, now: Instant) {
        self.ready.retain(|_, r| r.peer != peer);
        self.penalise(peer, Penalty::InvalidBlock, now);
    }

    /// Blocks verified and waiting, and requests outstanding.
    pub fn pending(&self) -> (usize, usize) {
        (self.ready.len(), self.requests.len())
    }

    /// A peer's score (0 for a peer not seen yet).
    pub fn score(&self, peer: &PeerId) -> i32 {
        self.peers.get(peer).map_or(0, |p| p.score)
    }

    pub fn peers(&self, now: Instant) -> Vec<PeerView> {
        let mut v: Vec<PeerView> = self
            .peers
            .iter()
            .map(|(id, p)| PeerView {
                peer: *id,
                claimed_height: p.claimed,
                believed_height: p.height(now),
                score: p.score,
                banned: p.banned(now),
            })
            .collect();
        v.sort_by_key(|p| p.peer.to_bytes());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_ledger::testkit::TestChain;

    fn chain(n: usize) -> Vec<(Block, CommitCertificate)> {
        let mut c = TestChain::new(4, 2);
        (0..n)
            .map(|_| {
                let (b, cert, _) = c.push(vec![]).unwrap();
                (b, cert)
            })
            .collect()
    }

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|_| PeerId::random()).collect()
    }

    #[test]
    fn ranges_spread_over_peers_and_stay_within_their_heights() {
        let now = Instant::now();
        let mut s = Sync::new();
        let p = peers(3);
        s.on_status(p[0], 1000, 1, now);
        s.on_status(p[1], 1000, 2, now);
        s.on_status(p[2], 100, 3, now);
        let plan = s.plan(0, now);
        // p2 can take only ranges that start at or below 100.
        assert!((4..=MAX_REQUESTS.min(3 * PER_PEER_REQUESTS)).contains(&plan.len()));
        // Consecutive, non-overlapping ranges from height 1.
        let mut next = 1;
        for (peer, from, to) in &plan {
            assert_eq!(*from, next);
            assert!(to - from < SYNC_BLOCKS_MAX);
            let claimed = if *peer == p[2] { 100 } else { 1000 };
            assert!(*to <= claimed);
            next = to + 1;
        }
        for peer in &p {
            assert!(plan.iter().filter(|(q, _, _)| q == peer).count() <= PER_PEER_REQUESTS);
        }
        // Nothing more while all are busy.
        assert!(s.plan(0, now).is_empty());
    }

    #[test]
    fn a_timed_out_request_goes_to_another_peer_and_costs_points() {
        let now = Instant::now();
        let mut s = Sync::new();
        let p = peers(2);
        s.on_status(p[0], 10, 4, now);
        let first = s.plan(0, now);
        assert_eq!(first, vec![(p[0], 1, 10)]);
        s.on_status(p[1], 10, 5, now);
        let later = now + REQUEST_TIMEOUT;
        let again = s.plan(0, later);
        assert_eq!(again, vec![(p[1], 1, 10)]);
        let view = s.peers(later);
        let score = |peer| view.iter().find(|v| v.peer == peer).unwrap().score;
        assert_eq!(score(p[0]), -Penalty::Timeout.points());
        assert_eq!(score(p[1]), 0);
    }

    #[test]
    fn a_peer_claiming_heights_it_cannot_serve_is_capped_and_not_chased() {
        let now = Instant::now();
        let mut s = Sync::new();
        let liar = PeerId::random();
        s.on_status(liar, 1_000_000, 6, now);
        assert_eq!(s.target(now), 1_000_000);
        let plan = s.plan(50, now);
        let (_, from, to) = plan[0];
        assert_eq!(
            s.on_answer(liar, from, to, &[], now),
            Err(Penalty::CannotServe)
        );
        // Believed only up to what it has, so the node is not behind it.
        assert_eq!(s.target(now), 50);
        assert!(!s.catching_up(50, now));
        // Its renewed claims count only once the cap runs out.
        s.on_status(liar, 2_000_000, 7, now);
        assert_eq!(s.target(now), 50);
        assert_eq!(s.target(now + CAP_FOR), 2_000_000);
    }

    #[test]
    fn an_older_status_message_is_not_taken_for_a_lower_height() {
        let now = Instant::now();
        let mut s = Sync::new();
        let p = PeerId::random();
        assert_eq!(s.on_status(p, 100, 7, now), None);
        // Message 6 (height 90) arrives after message 7: stale, ignored.
        assert_eq!(s.on_status(p, 90, 6, now), None);
        assert_eq!(s.peers(now)[0].score, 0);
        assert_eq!(s.target(now), 100);
    }

    #[test]
    fn a_height_going_down_costs_points_and_repeated_faults_ban() {
        let now = Instant::now();
        let mut s = Sync::new();
        let p = PeerId::random();
        assert_eq!(s.on_status(p, 100, 8, now), None);
        assert_eq!(s.on_status(p, 90, 9, now), Some(Penalty::HeightWentDown));
        assert_eq!(s.on_status(p, 1000, 10, now), None);
        assert_eq!(s.on_status(p, 90, 11, now), Some(Penalty::HeightWentDown));
        assert_eq!(s.on_status(p, 1000, 12, now), None);
        let view = &s.peers(now)[0];
        assert_eq!(view.score, -40);
        assert!(!view.banned);
        s.on_status(p, 10, 13, now);
        let view = &s.peers(now)[0];
        assert!(view.banned);
        assert_eq!(s.target(now), 0);
        assert!(s.plan(0, now).is_empty());
        // The ban runs out; the peer is asked again, on probation.
        let later = now + BAN_FOR;
        s.on_status(p, 20, 14, later);
        assert_eq!(s.plan(0, later).len(), 1);
        assert_eq!(s.peers(later)[0].score, BAN_SCORE / 2);
    }

    #[test]
    fn answers_are_checked_against_the_request() {
        let now = Instant::now();
        let blocks = chain(5);
        let mut s = Sync::new();
        let p = peers(2);
        s.on_status(p[0], 5, 15, now);
        assert_eq!(s.plan(0, now), vec![(p[0], 1, 5)]);
        // From someone else, or for a range never asked: ignored.
        assert_eq!(s.on_answer(p[1], 1, 5, &blocks, now), Ok(false));
        assert_eq!(s.on_answer(p[0], 2, 5, &blocks[1..], now), Ok(false));
        // Out of order: penalised, and the range is asked again.
        let mut shuffled = blocks.clone();
        shuffled.swap(0, 1);
        assert_eq!(
            s.on_answer(p[0], 1, 5, &shuffled, now),
            Err(Penalty::WrongHeights)
        );
        assert_eq!(s.plan(0, now), vec![(p[0], 1, 5)]);
        // A short honest answer: the rest is asked again.
        assert_eq!(s.on_answer(p[0], 1, 5, &blocks[..3], now), Ok(true));
        s.on_checked(p[0], 1, blocks[..3].to_vec(), false, now);
        assert_eq!(s.plan(0, now), vec![(p[0], 4, 5)]);
        let run = s.take_ready(0);
        assert_eq!(
            run.iter().map(|r| r.block.height()).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(s.take_ready(3).is_empty());
    }

    #[test]
    fn an_invalid_block_bans_the_peer_and_drops_what_it_served() {
        let now = Instant::now();
        let blocks = chain(8);
        let mut s = Sync::new();
        let p = peers(2);
        s.on_status(p[0], 8, 16, now);
        s.on_status(p[1], 8, 17, now);
        // p0 serves 1..=4 (valid), p1 serves 5..=8 with 7 invalid.
        let plan = s.plan(0, now);
        assert_eq!(plan.len(), 1); // one range covers all 8 heights
        let (first, _, _) = plan[0];
        let other = if first == p[0] { p[1] } else { p[0] };
        s.on_checked(first, 1, blocks[..6].to_vec(), true, now);
        assert!(s.peers(now).iter().any(|v| v.peer == first && v.banned));
        // The valid blocks before the bad one are kept.
        assert_eq!(s.pending().0, 6);
        let plan = s.plan(0, now);
        assert_eq!(plan, vec![(other, 7, 8)]);
        s.on_invalid_block(other, now);
        assert_eq!(s.target(now), 0);
    }
}
