//! While a validator's signing pause lasts ([`crate::node_core::SigningPause`]),
//! the driver keeps each validator's reported height and tells the core
//! the network's height once validators holding more than 2/3 of the power
//! have reported: the height that validators holding more than 1/3 report.
//! Reports of nodes that are not validators of the set do not count.

use std::time::{Duration, Instant};

use libp2p::PeerId;
use tally_ledger::membership::read_validators;
use tracing::warn;

use super::env::NodeEnv;
use super::{Driver, DriverError};
use crate::network::peer_of;
use crate::node_core::{quorum_height, CoreEnv, CoreError, Event, NEW_NETWORK_GRACE_MS};

impl Driver {
    /// Notes `report` (a peer and the height it reports) while the core is
    /// paused, and feeds [`Event::PeersHeard`] when the network's height is
    /// known and tells the core something new. Without a report, checks
    /// again (a network of one; the grace of [`NEW_NETWORK_GRACE_MS`]).
    pub(super) fn hear(&mut self, report: Option<(PeerId, u64)>) -> Result<(), DriverError> {
        let Some(pause) = self.core.pause().cloned() else {
            self.heard.clear();
            self.heard_above_since = None;
            return Ok(());
        };
        let Some(me) = self.signer.as_ref().map(|s| s.public_key()) else {
            return Ok(());
        };
        let env = NodeEnv::new(&self.store, &self.mempool, self.writing.as_ref());
        let height = self.core.rules().height;
        let validators = read_validators(env.state(), height).map_err(CoreError::from)?;
        // Each other validator's peer id and power, once.
        let mut own = 0u64;
        let mut total = 0u64;
        let mut others = Vec::new();
        for v in &validators.0 {
            total = total.saturating_add(v.power);
            if v.public_key == me {
                own = own.saturating_add(v.power);
            } else {
                others.push((peer_of(&v.node_key).ok(), v.power));
            }
        }
        if let Some((peer, reported)) = report {
            // Only validators of the set count, one entry each: the map
            // is bounded by the set's size.
            if others.iter().any(|(p, _)| *p == Some(peer)) {
                let h = self.heard.entry(peer).or_default();
                *h = (*h).max(reported);
            }
        }
        let heard: Vec<(u64, u64)> = others
            .iter()
            .filter_map(|(p, power)| Some((*power, *self.heard.get(p.as_ref()?)?)))
            .collect();
        // With others in the set, at least one of them is heard.
        if !others.is_empty() && heard.is_empty() {
            return Ok(());
        }
        let Some(network) = quorum_height(own, total, &heard) else {
            return Ok(());
        };
        if pause.awaiting_peers
            && network == 0
            && self.store.height() == 0
            && heard.iter().any(|(_, h)| *h > 0)
        {
            // A member says the chain moved on, too little power to be
            // sure: block sync (which asks that member) may bring a block,
            // which a liar cannot.
            let since = *self.heard_above_since.get_or_insert_with(Instant::now);
            if since.elapsed() < Duration::from_millis(NEW_NETWORK_GRACE_MS) {
                return Ok(());
            }
        }
        if !pause.awaiting_peers && network <= pause.until_past {
            return Ok(());
        }
        self.feed(Event::PeersHeard(network))?;
        if let Some(p) = self.core.pause().filter(|_| pause.awaiting_peers) {
            warn!(
                network_height = network,
                until_past = p.until_past,
                "the chain has moved on without this home (wiped?): this validator signs once the network decides past height {}",
                p.until_past
            );
        }
        Ok(())
    }
}
