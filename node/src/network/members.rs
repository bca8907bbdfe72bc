//! Which peers may connect and which connected peers count. The allow-list
//! follows the members the chain's state names. A connected peer counts
//! once its identify showed this chain and genesis, tracked per connection
//! (a node run with a member's key but another genesis has its own
//! connection closed, not the member's).

use std::collections::{HashMap, HashSet};

use libp2p::swarm::ConnectionId;
use libp2p::{identity, PeerId};
use tracing::{info, warn};

use tally_ledger::crypto::PublicKey;

use super::{Network, REDIAL_MIN};

/// The PeerId of a node's ed25519 network key.
pub fn peer_of(node_key: &PublicKey) -> Result<PeerId, String> {
    let key = identity::ed25519::PublicKey::try_from_bytes(&node_key.0)
        .map_err(|e| format!("node key {node_key} is not an ed25519 key: {e}"))?;
    Ok(identity::PublicKey::from(key).to_peer_id())
}

impl Network {
    /// A connection counts once identify shows its peer runs this chain
    /// and genesis. One that runs another is closed, and only that one: a
    /// node run with a member's key must not push the member out. It keeps
    /// its place on the allow-list: its operator may fix its genesis.
    pub(super) fn on_identified(&mut self, peer: PeerId, conn: ConnectionId, version: &str) {
        if version != self.protocol_version {
            if self.warned.insert(peer) {
                warn!(%peer, theirs = version, ours = %self.protocol_version,
                    "peer runs another chain or genesis; closing its connections");
            }
            self.metrics.invalid("another genesis");
            self.swarm.close_connection(conn);
            return;
        }
        if self.members.identified(peer, conn) {
            info!(%peer, "peer connected");
        }
        if let Some(r) = self.redial.get_mut(&peer) {
            r.backoff = REDIAL_MIN;
        }
        self.metrics.peers.set(self.members.len() as i64);
    }

    /// Allows the members the chain now names and closes the connections
    /// of the nodes it no longer does.
    pub(super) fn follow_members(&mut self, allowed: Vec<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let now: HashSet<PeerId> = allowed.into_iter().filter(|p| *p != local).collect();
        for peer in now.difference(&self.allowed) {
            info!(%peer, "the chain admitted a member: it may connect");
            self.swarm.behaviour_mut().allow.allow_peer(*peer);
        }
        for peer in self.allowed.difference(&now) {
            info!(%peer, "the chain removed a member: closing its connections");
            // Closes its connections and refuses new ones.
            self.swarm.behaviour_mut().allow.disallow_peer(*peer);
            self.redial.remove(peer);
        }
        self.allowed = now;
    }
}

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
