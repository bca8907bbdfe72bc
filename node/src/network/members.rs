//! Which connected peers count: those whose identify showed this chain and
//! genesis, tracked per connection (a node run with a member's key but
//! another genesis has its own connection closed, not the member's).

use std::collections::{HashMap, HashSet};

use libp2p::swarm::ConnectionId;
use libp2p::PeerId;

/// Identified connections by peer.
#[derive(Debug, Default)]
pub(super) struct Members {
    conns: HashMap<PeerId, HashSet<ConnectionId>>,
}

impl Members {
    /// Records an identified connection; true if it is the peer's first.
    pub(super) fn identified(&mut self, peer: PeerId, conn: ConnectionId) -> bool {
        let conns = self.conns.entry(peer).or_default();
        let first = conns.is_empty();
        conns.insert(conn);
        first
    }

    /// Forgets a closed connection; true if the peer had identified
    /// connections and this was the last.
    pub(super) fn closed(&mut self, peer: PeerId, conn: ConnectionId) -> bool {
        let Some(conns) = self.conns.get_mut(&peer) else {
            return false;
        };
        conns.remove(&conn);
        if !conns.is_empty() {
            return false;
        }
        self.conns.remove(&peer);
        true
    }

    /// Peers with at least one identified connection.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_counts_until_its_last_identified_connection_closes() {
        let mut m = Members::default();
        let peer = PeerId::random();
        let (a, b, stray) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
        );
        assert!(m.identified(peer, a));
        assert!(!m.identified(peer, b));
        assert_eq!(m.len(), 1);
        // A connection that never identified (another genesis) closes.
        assert!(!m.closed(peer, stray));
        assert!(!m.closed(peer, a));
        assert_eq!(m.len(), 1);
        assert!(m.closed(peer, b));
        assert_eq!(m.len(), 0);
        assert!(!m.closed(peer, b));
    }
}
