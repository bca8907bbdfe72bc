//! Serving blocks to syncing peers: what one peer may have in flight, and
//! reading the blocks off the network task.
//!
//! A peer may hold a validator key and ask for anything, as often as it
//! likes. Each request is admitted by a [`ServeLimiter`] before anything is
//! read: at most [`SERVE_REQUESTS_PER_PEER_MAX`] requests and about
//! [`SERVE_BYTES_PER_PEER_MAX`] bytes per peer, and at most
//! [`SERVE_REQUESTS_MAX`] over all peers, count from the request's arrival
//! until its response has been written out (or the request failed). The
//! network task then reads the blocks on a blocking thread
//! ([`read_blocks`]) and sends the response when they come back.
//!
//! A request over a limit is dropped unanswered: the peer's request fails at
//! once with a closed stream, nothing is read and nothing is sent. An empty
//! answer would say "I do not have these heights", which an honest syncing
//! node penalises and remembers (`sync::Penalty::CannotServe`), and an
//! honest node never goes over: it sends at most `sync::PER_PEER_REQUESTS`
//! (2) at once, half the per-peer limit, so that a request it gave up on
//! and we still serve does not count against its next ones.

use std::collections::HashMap;
use std::hash::Hash;

use libp2p::PeerId;
use tally_ledger::store::Store;

use crate::wire::{BlocksRequest, BlocksResponse, SYNC_BLOCKS_MAX, SYNC_RESPONSE_SOFT_BYTES};

/// Block requests from one peer being served at once.
pub const SERVE_REQUESTS_PER_PEER_MAX: usize = 4;
/// Response bytes for one peer in flight at once (two full responses). A
/// response always carries at least one block, so one large block may go
/// past this by its size.
pub const SERVE_BYTES_PER_PEER_MAX: usize = 2 * SYNC_RESPONSE_SOFT_BYTES;
/// Block requests being served at once over all peers: bounds the blocking
/// threads reading the store and the memory held by responses.
pub const SERVE_REQUESTS_MAX: usize = 32;

/// Why a block request was not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the peer already has {in_flight} block requests being served (at most {max})")]
    PeerRequests { in_flight: usize, max: usize },
    #[error("the peer already has {in_flight} response bytes in flight (at most {max})")]
    PeerBytes { in_flight: usize, max: usize },
    #[error("{in_flight} block requests are being served (at most {max} over all peers)")]
    Busy { in_flight: usize, max: usize },
}

impl Refusal {
    /// A short label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::PeerRequests { .. } => "peer_requests",
            Refusal::PeerBytes { .. } => "peer_bytes",
            Refusal::Busy { .. } => "busy",
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Load {
    requests: usize,
    bytes: usize,
}

#[derive(Debug, Clone, Copy)]
struct Serving {
    peer: PeerId,
    /// The response's byte budget until it is read, then its size.
    bytes: usize,
}

/// Counts what each peer has in flight; `K` identifies a request (libp2p's
/// inbound request id). See the module documentation.
#[derive(Debug)]
pub struct ServeLimiter<K> {
    peers: HashMap<PeerId, Load>,
    serving: HashMap<K, Serving>,
}

impl<K: Hash + Eq + Copy> Default for ServeLimiter<K> {
    fn default() -> Self {
        ServeLimiter {
            peers: HashMap::new(),
            serving: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> ServeLimiter<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits request `key` from `peer`, or says why not. Returns the byte
    /// budget of its response, reserved until [`ServeLimiter::finish`].
    pub fn start(&mut self, peer: PeerId, key: K) -> Result<usize, Refusal> {
        if self.serving.len() >= SERVE_REQUESTS_MAX {
            return Err(Refusal::Busy {
                in_flight: self.serving.len(),
                max: SERVE_REQUESTS_MAX,
            });
        }
        let load = self.peers.get(&peer).copied().unwrap_or_default();
        if load.requests >= SERVE_REQUESTS_PER_PEER_MAX {
            return Err(Refusal::PeerRequests {
                in_flight: load.requests,
                max: SERVE_REQUESTS_PER_PEER_MAX,
            });
        }
        if load.bytes >= SERVE_BYTES_PER_PEER_MAX {
            return Err(Refusal::PeerBytes {
                in_flight: load.bytes,
                max: SERVE_BYTES_PER_PEER_MAX,
            });
        }
        let budget = (SERVE_BYTES_PER_PEER_MAX - load.bytes).min(SYNC_RESPONSE_SOFT_BYTES);
        let load = self.peers.entry(peer).or_default();
        load.requests += 1;
        load.bytes += budget;
        self.serving.insert(
            key,
            Serving {
                peer,
                bytes: budget,
            },
        );
        Ok(budget)
    }

    /// The response to `key` was read and is `bytes` long: that replaces its
    /// budget. False if the request already finished (it failed meanwhile):
    /// the response is then not to be sent.
    pub fn read(&mut self, key: K, bytes: usize) -> bool {
        let Some(serving) = self.serving.get_mut(&key) else {
            return false;
        };
        if let Some(load) = self.peers.get_mut(&serving.peer) {
            load.bytes = load.bytes - serving.bytes + bytes;
        }
        serving.bytes = bytes;
        true
    }

    /// Request `key` is over: its response was written out, or it failed.
    /// False if it was not in flight (refused, or finished already).
    pub fn finish(&mut self, key: K) -> bool {
        let Some(serving) = self.serving.remove(&key) else {
            return false;
        };
        if let Some(load) = self.peers.get_mut(&serving.peer) {
            load.requests -= 1;
            load.bytes -= serving.bytes;
            if load.requests == 0 {
                self.peers.remove(&serving.peer);
            }
        }
        true
    }

    /// Requests from `peer` in flight, and their bytes.
    pub fn load(&self, peer: &PeerId) -> (usize, usize) {
        self.peers
            .get(peer)
            .map_or((0, 0), |l| (l.requests, l.bytes))
    }
}

/// Reads blocks `from..=to` (at most [`SYNC_BLOCKS_MAX`], up to the tip) and
/// their certificates. The stored bytes are the canonical encodings, so the
/// response is put together from them without decoding: a borsh `Vec` of
/// pairs. It stays within `budget` bytes, except that the first block always
/// goes in (a block may be larger than a budget; a response must progress).
/// Returns the response and how many blocks it holds. Blocking: call it off
/// the async tasks.
pub fn read_blocks(store: &Store, request: BlocksRequest, budget: usize) -> (BlocksResponse, u32) {
    let tip = store.height();
    let to = request
        .to
        .min(tip)
        .min(request.from.saturating_add(SYNC_BLOCKS_MAX - 1));
    let mut count: u32 = 0;
    let mut encoded = vec![0u8; 4];
    for h in request.from.max(1)..=to {
        let (Ok(Some(block)), Ok(Some(cert))) = (store.block_bytes(h), store.certificate_bytes(h))
        else {
            break;
        };
        if count > 0 && encoded.len() + block.len() + cert.len() > budget {
            break;
        }
        encoded.extend_from_slice(&block);
        encoded.extend_from_slice(&cert);
        count += 1;
    }
    encoded[..4].copy_from_slice(&count.to_le_bytes());
    (BlocksResponse { encoded }, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_ledger::testkit::TestChain;

    const MIB: usize = 1 << 20;

    #[test]
    fn a_peer_gets_at_most_its_requests_served_at_once() {
        let mut limiter = ServeLimiter::new();
        let flooder = PeerId::random();
        // Each admitted request is read at once (1 MiB) and its response is
        // still being written out when the next request arrives.
        let mut served = Vec::new();
        for k in 0..100 {
            match limiter.start(flooder, k) {
                Ok(_) => {
                    assert!(limiter.read(k, MIB));
                    served.push(k);
                }
                Err(refusal) => assert_eq!(
                    refusal,
                    Refusal::PeerRequests {
                        in_flight: SERVE_REQUESTS_PER_PEER_MAX,
                        max: SERVE_REQUESTS_PER_PEER_MAX
                    }
                ),
            }
        }
        assert_eq!(served, vec![0, 1, 2, 3]);
        assert_eq!(limiter.load(&flooder).0, SERVE_REQUESTS_PER_PEER_MAX);
        // Another peer is served meanwhile.
        let honest = PeerId::random();
        assert!(limiter.start(honest, 1000).is_ok());
        // One finishes: one more of the flood is admitted, and no more.
        assert!(limiter.finish(0));
        assert!(!limiter.finish(0), "a request finishes once");
        assert!(limiter.start(flooder, 200).is_ok());
        assert!(matches!(
            limiter.start(flooder, 201),
            Err(Refusal::PeerRequests { .. })
        ));
        for k in [1, 2, 3, 200] {
            assert!(limiter.finish(k));
        }
        assert_eq!(limiter.load(&flooder), (0, 0));
    }

    #[test]
    fn a_peer_gets_at_most_its_bytes_in_flight() {
        let mut limiter = ServeLimiter::new();
        let peer = PeerId::random();
        assert_eq!(limiter.start(peer, 1), Ok(SYNC_RESPONSE_SOFT_BYTES));
        assert_eq!(limiter.start(peer, 2), Ok(SYNC_RESPONSE_SOFT_BYTES));
        // Two full budgets use the peer's bytes: a third request is refused
        // although it has requests to spare.
        assert_eq!(
            limiter.start(peer, 3),
            Err(Refusal::PeerBytes {
                in_flight: SERVE_BYTES_PER_PEER_MAX,
                max: SERVE_BYTES_PER_PEER_MAX
            })
        );
        // The first response came out at 1 MiB: what its budget left over
        // goes to the next request, and no more.
        assert!(limiter.read(1, MIB));
        assert_eq!(
            limiter.start(peer, 4),
            Ok(SERVE_BYTES_PER_PEER_MAX - SYNC_RESPONSE_SOFT_BYTES - MIB)
        );
        assert_eq!(limiter.load(&peer), (3, SERVE_BYTES_PER_PEER_MAX));
        // A request that failed while being read: its late response is not
        // sent, and its bytes are free.
        assert!(limiter.finish(2));
        assert!(!limiter.read(2, MIB));
        assert_eq!(
            limiter.load(&peer).1,
            SERVE_BYTES_PER_PEER_MAX - SYNC_RESPONSE_SOFT_BYTES
        );
    }

    #[test]
    fn requests_over_all_peers_are_bounded() {
        let mut limiter = ServeLimiter::new();
        let peers: Vec<PeerId> = (0..SERVE_REQUESTS_MAX).map(|_| PeerId::random()).collect();
        for (k, peer) in peers.iter().enumerate() {
            assert!(limiter.start(*peer, k).is_ok());
        }
        assert_eq!(
            limiter.start(PeerId::random(), 999),
            Err(Refusal::Busy {
                in_flight: SERVE_REQUESTS_MAX,
                max: SERVE_REQUESTS_MAX
            })
        );
        assert!(limiter.finish(0));
        assert!(limiter.start(PeerId::random(), 999).is_ok());
    }

    #[test]
    fn a_response_stays_within_its_budget_but_always_carries_a_block() {
        let mut chain = TestChain::new(4, 4);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &chain.genesis).unwrap();
        for _ in 0..5 {
            let txs = (0..20).map(|_| chain.transfer(1, 2, 1)).collect();
            let (block, cert, update) = chain.push(txs).unwrap();
            store.commit_block(&block, &cert, &update).unwrap();
        }
        let all = BlocksRequest { from: 1, to: 100 };
        let decode = |r: &BlocksResponse| {
            crate::wire::decode_blocks(&r.encoded, SYNC_RESPONSE_SOFT_BYTES)
                .unwrap()
                .iter()
                .map(|(b, _)| b.height())
                .collect::<Vec<u64>>()
        };
        let (full, count) = read_blocks(&store, all, SYNC_RESPONSE_SOFT_BYTES);
        assert_eq!((decode(&full), count), (vec![1, 2, 3, 4, 5], 5));
        let per_block = full.encoded.len() / 5;
        let (two, count) = read_blocks(&store, all, 4 + 2 * per_block + per_block / 2);
        assert_eq!((decode(&two), count), (vec![1, 2], 2));
        let (one, count) = read_blocks(&store, BlocksRequest { from: 3, to: 4 }, 1);
        assert_eq!((decode(&one), count), (vec![3], 1));
        let (none, count) = read_blocks(&store, BlocksRequest { from: 6, to: 9 }, MIB);
        assert_eq!((decode(&none), count), (vec![], 0));
    }
}
