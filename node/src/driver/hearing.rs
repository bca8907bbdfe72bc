//! A home with no signer state and no blocks is new or wiped, and only the
//! network can tell which ([`crate::node_core::SigningPause`]). While such
//! a validator waits, the driver keeps each validator's reported height and
//! tells the core once validators holding more than 2/3 of the power have
//! reported.

use libp2p::PeerId;
use tally_ledger::membership::read_validators;
use tracing::warn;

use super::env::NodeEnv;
use super::{Driver, DriverError};
use crate::network::peer_of;
use crate::node_core::{quorum_height, CoreEnv, CoreError, Event};

impl Driver {
    /// Notes `report` (a peer and the height it reports), if the core still
    /// waits to hear the network, and feeds [`Event::PeersHeard`] once
    /// enough power has reported. With no report, checks whether this
    /// validator's own power is already enough (a network of one).
    pub(super) fn hear(&mut self, report: Option<(PeerId, u64)>) -> Result<(), DriverError> {
        if !self.core.pause().is_some_and(|p| p.awaiting_peers) {
            self.heard.clear();
            return Ok(());
        }
        let Some(me) = self.signer.as_ref().map(|s| s.public_key()) else {
            return Ok(());
        };
        let env = NodeEnv::new(&self.store, &self.mempool, self.writing.as_ref());
        let height = self.core.rules().height;
        let validators = read_validators(env.state(), height).map_err(CoreError::from)?;
        if let Some((peer, reported)) = report {
            // Only validators of the set count, one entry each: the map
            // is bounded by the set's size.
            let member = validators
                .0
                .iter()
                .any(|v| v.public_key != me && peer_of(&v.node_key).is_ok_and(|p| p == peer));
            if member {
                let h = self.heard.entry(peer).or_default();
                *h = (*h).max(reported);
            }
        }
        let mut own = 0u64;
        let mut total = 0u64;
        let mut heard = Vec::new();
        for v in &validators.0 {
            total = total.saturating_add(v.power);
            if v.public_key == me {
                own = own.saturating_add(v.power);
            } else if let Some(h) = peer_of(&v.node_key).ok().and_then(|p| self.heard.get(&p)) {
                heard.push((v.power, *h));
            }
        }
        if let Some(h) = quorum_height(own, total, &heard) {
            self.heard.clear();
            self.feed(Event::PeersHeard(h))?;
            if let Some(p) = self.core.pause() {
                warn!(
                    network_height = h,
                    until_past = p.until_past,
                    "the chain has moved on without this home (wiped?): this validator signs once the network decides past height {}",
                    p.until_past
                );
            }
        }
        Ok(())
    }
}
