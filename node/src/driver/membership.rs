//! The network follows the chain's membership: the driver names, as the
//! chain moves, the validator sets gossip is judged against and the nodes
//! allowed to connect, both read from the state after the tip.

use std::sync::Arc;

use tally_ledger::membership::read_allowed_nodes;
use tally_ledger::proposer::ProposerSchedule;
use tracing::warn;

use super::env::NodeEnv;
use super::{Driver, DriverError};
use crate::network::{peer_of, HeightSet, NetCommand};
use crate::node_core::{CoreEnv, CoreError};

impl Driver {
    /// Tells the network the sets of the height after the tip and of the
    /// one after it, and the members allowed to connect, once per height.
    pub(super) fn follow_membership(&mut self) -> Result<(), DriverError> {
        let rules = self.core.rules().clone();
        if self.announced == Some(rules.height) {
            return Ok(());
        }
        let env = NodeEnv::new(&self.store, &self.mempool, self.writing.as_ref());
        let state = env.state();
        let next = rules.next_set(state).map_err(CoreError::from)?;
        let next: HeightSet = if Arc::ptr_eq(&next, &rules.set) {
            (rules.set.clone(), rules.schedule.clone())
        } else {
            match self.next_set.take() {
                Some(known) if *known.0 == *next => known,
                _ => {
                    let schedule = Arc::new(ProposerSchedule::new(&next));
                    (next, schedule)
                }
            }
        };
        self.next_set = Some(next.clone());
        let tip = rules.height.saturating_sub(1);
        let allowed = read_allowed_nodes(state, tip)
            .map_err(CoreError::from)?
            .iter()
            .filter_map(|key| match peer_of(key) {
                Ok(peer) => Some(peer),
                Err(e) => {
                    warn!(%e, "a member's node key is not usable; it cannot connect");
                    None
                }
            })
            .collect();
        let sent = self.net.try_send(NetCommand::Membership {
            from: rules.height,
            sets: vec![(rules.set.clone(), rules.schedule.clone()), next],
            allowed,
        });
        // A full queue: told again after the next event.
        if sent.is_ok() {
            self.announced = Some(rules.height);
        }
        Ok(())
    }
}
