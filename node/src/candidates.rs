//! Proposed block bodies kept for consensus, bounded so that no validator
//! can crowd out another's proposal.
//!
//! A body is kept in the slot of the proposal that carried it: one slot per
//! (height, round), filled by the first proposal for it, exactly as the
//! state machine keeps the first proposal of each round. A proposal's
//! signature was checked against the proposer of its round, so a Byzantine
//! validator that signs thousands of distinct proposals fills only the
//! slots of the rounds it proposes, and the honest proposal of every other
//! round is always kept. Slots exist for the height being decided (rounds
//! up to [`ROUND_WINDOW`] behind and ahead of the current one) and the
//! height after it (rounds up to [`ROUND_WINDOW`]). A block this node
//! builds goes in the slot of its own round like any other. The locked and
//! the valid block are pinned: kept whatever the round, until the height
//! ends.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tally_consensus::ROUND_WINDOW;
use tally_ledger::state::StateUpdate;
use tally_ledger::types::Block;
use tally_ledger::Hash;

/// The most bodies ever held: the slots of the height being decided, of the
/// height after it, and the two pinned ones (locked and valid).
pub const CANDIDATES_MAX: usize = (2 * ROUND_WINDOW as usize + 1) + (ROUND_WINDOW as usize + 1) + 2;

/// A proposed block, and the state after it once it was found valid.
#[derive(Debug)]
pub struct Candidate {
    pub block: Block,
    pub update: Option<StateUpdate>,
}

/// What became of an offered body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Kept in its slot.
    Kept,
    /// This body is already in this slot.
    Known,
    /// Not kept, and why.
    Refused(Refusal),
}

/// Why a body was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("block for height {found}, bodies are kept for heights {next} and {}", next + 1)]
    Height { next: u64, found: u64 },
    #[error(
        "proposal for round {round} of height {height} is outside the kept rounds {from}..={to}"
    )]
    Round {
        height: u64,
        round: u32,
        from: u32,
        to: u32,
    },
    #[error("another body was proposed first for height {height} round {round}")]
    SlotTaken { height: u64, round: u32 },
}

/// The bodies, by hash, and the slots that hold them.
#[derive(Debug)]
pub struct Candidates {
    /// The height being decided.
    next: u64,
    /// Its current round.
    round: u32,
    bodies: HashMap<Hash, Candidate>,
    slots: BTreeMap<(u64, u32), Hash>,
    pinned: BTreeSet<Hash>,
}

impl Candidates {
    pub fn new(next: u64) -> Self {
        Candidates {
            next,
            round: 0,
            bodies: HashMap::new(),
            slots: BTreeMap::new(),
            pinned: BTreeSet::new(),
        }
    }

    /// The rounds of `height` whose bodies are kept.
    fn rounds(&self, height: u64) -> (u32, u32) {
        if height == self.next {
            (
                self.round.saturating_sub(ROUND_WINDOW),
                self.round.saturating_add(ROUND_WINDOW),
            )
        } else {
            (0, ROUND_WINDOW)
        }
    }

    /// Offers the body of a proposal for `round` whose signature and block
    /// hash the caller checked.
    pub fn offer(&mut self, round: u32, block: Block) -> Offer {
        let height = block.height();
        if height != self.next && height != self.next.saturating_add(1) {
            return Offer::Refused(Refusal::Height {
                next: self.next,
                found: height,
            });
        }
        let (from, to) = self.rounds(height);
        if round < from || round > to {
            return Offer::Refused(Refusal::Round {
                height,
                round,
                from,
                to,
            });
        }
        let hash = block.hash();
        match self.slots.get(&(height, round)) {
            Some(h) if *h == hash => Offer::Known,
            Some(_) => Offer::Refused(Refusal::SlotTaken { height, round }),
            None => {
                self.slots.insert((height, round), hash);
                self.bodies.entry(hash).or_insert(Candidate {
                    block,
                    update: None,
                });
                Offer::Kept
            }
        }
    }

    /// Keeps a block this node built for `round`, already executed: in
    /// its round's slot (which only this node's signature could have
    /// filled).
    pub fn insert_own(&mut self, round: u32, block: Block, update: StateUpdate) -> Offer {
        let hash = block.hash();
        let offer = self.offer(round, block);
        if let Some(c) = self.bodies.get_mut(&hash) {
            c.update.get_or_insert(update);
        }
        offer
    }

    /// Keeps the locked block restored after a restart, whatever its round.
    pub fn restore_locked(&mut self, block: Block) -> Hash {
        let hash = block.hash();
        self.pinned.insert(hash);
        self.bodies.entry(hash).or_insert(Candidate {
            block,
            update: None,
        });
        hash
    }

    /// Pins exactly these bodies (the locked and the valid block), those
    /// that are held; earlier pins end.
    pub fn protect(&mut self, hashes: [Option<Hash>; 2]) {
        self.pinned = hashes
            .into_iter()
            .flatten()
            .filter(|h| self.bodies.contains_key(h))
            .collect();
        self.drop_unreferenced();
    }

    pub fn get(&self, hash: &Hash) -> Option<&Candidate> {
        self.bodies.get(hash)
    }

    pub fn get_mut(&mut self, hash: &Hash) -> Option<&mut Candidate> {
        self.bodies.get_mut(hash)
    }

    /// Removes and returns a body (to commit it).
    pub fn take(&mut self, hash: &Hash) -> Option<Candidate> {
        self.slots.retain(|_, h| h != hash);
        self.pinned.remove(hash);
        self.bodies.remove(hash)
    }

    /// Consensus moved to `round` of the height being decided: slots that
    /// fell out of the window are freed.
    pub fn set_round(&mut self, round: u32) {
        self.round = round;
        let (from, _) = self.rounds(self.next);
        let next = self.next;
        self.slots.retain(|(h, r), _| *h != next || *r >= from);
        self.drop_unreferenced();
    }

    /// Consensus moved on to height `next`: bodies of earlier heights go,
    /// and pins end with their height.
    pub fn advance(&mut self, next: u64) {
        self.next = next;
        self.round = 0;
        self.slots.retain(|(h, _), _| *h >= next);
        self.pinned.clear();
        self.drop_unreferenced();
        // Slots of the new height keep only its window.
        let (from, to) = self.rounds(next);
        self.slots
            .retain(|(h, r), _| *h != next || (*r >= from && *r <= to));
        self.bodies.retain(|_, c| c.block.height() >= next);
        self.drop_unreferenced();
    }

    fn drop_unreferenced(&mut self) {
        let slots = &self.slots;
        let pinned = &self.pinned;
        self.bodies
            .retain(|hash, _| pinned.contains(hash) || slots.values().any(|h| h == hash));
    }

    /// The height being decided.
    pub fn next(&self) -> u64 {
        self.next
    }

    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tally_ledger::testkit::TestChain;

    /// A distinct block at `height` (distinguished by `n`).
    fn block(chain: &TestChain, height: u64, n: u64) -> Block {
        let mut b = chain.build_block(vec![]).unwrap().0;
        b.header.height = height;
        b.header.time_ms = n;
        b
    }

    #[test]
    fn the_first_body_of_each_round_is_kept_and_a_flood_fills_only_its_own_slot() {
        let chain = TestChain::new(4, 1);
        let mut c = Candidates::new(1);
        assert_eq!(c.offer(0, block(&chain, 1, 1)), Offer::Kept);
        assert_eq!(c.offer(0, block(&chain, 1, 1)), Offer::Known);
        // Round 1's proposer signs 10,000 distinct bodies for its round.
        for n in 0..10_000 {
            let offer = c.offer(1, block(&chain, 1, 100 + n));
            if n == 0 {
                assert_eq!(offer, Offer::Kept);
            } else {
                assert_eq!(
                    offer,
                    Offer::Refused(Refusal::SlotTaken {
                        height: 1,
                        round: 1
                    })
                );
            }
        }
        // The honest proposal of round 2 is still kept.
        let honest = block(&chain, 1, 7);
        let hash = honest.hash();
        assert_eq!(c.offer(2, honest), Offer::Kept);
        assert!(c.get(&hash).is_some());
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn every_kept_slot_together_stays_within_the_limit() {
        let chain = TestChain::new(4, 1);
        let mut c = Candidates::new(1);
        let mut n = 0;
        for round in [0u32, 3, 20, 40] {
            c.set_round(round);
            for height in [0, 1, 2, 3] {
                for r in 0..=(round + 2 * ROUND_WINDOW) {
                    n += 1;
                    c.offer(r, block(&chain, height, n));
                }
            }
            let pins: Vec<Hash> = (0..2)
                .map(|_| {
                    n += 1;
                    c.restore_locked(block(&chain, 1, n))
                })
                .collect();
            c.protect([Some(pins[0]), Some(pins[1])]);
            assert!(c.len() <= CANDIDATES_MAX, "{} bodies", c.len());
        }
        assert_eq!(c.len(), CANDIDATES_MAX);
    }

    #[test]
    fn heights_and_rounds_outside_the_window_are_refused() {
        let chain = TestChain::new(4, 1);
        let mut c = Candidates::new(5);
        assert_eq!(
            c.offer(0, block(&chain, 7, 1)),
            Offer::Refused(Refusal::Height { next: 5, found: 7 })
        );
        assert_eq!(
            c.offer(0, block(&chain, 4, 1)),
            Offer::Refused(Refusal::Height { next: 5, found: 4 })
        );
        assert!(matches!(
            c.offer(ROUND_WINDOW + 1, block(&chain, 5, 1)),
            Offer::Refused(Refusal::Round { .. })
        ));
        assert!(matches!(
            c.offer(u32::MAX, block(&chain, 6, 1)),
            Offer::Refused(Refusal::Round { .. })
        ));
        assert_eq!(c.offer(ROUND_WINDOW, block(&chain, 6, 1)), Offer::Kept);
    }

    #[test]
    fn pinned_bodies_survive_round_changes_until_the_height_ends() {
        let chain = TestChain::new(4, 1);
        let mut c = Candidates::new(1);
        let locked = block(&chain, 1, 1);
        let hash = locked.hash();
        assert_eq!(c.offer(0, locked), Offer::Kept);
        c.protect([Some(hash), None]);
        let next = block(&chain, 2, 2);
        let next_hash = next.hash();
        assert_eq!(c.offer(0, next), Offer::Kept);
        c.set_round(100);
        assert!(c.get(&hash).is_some(), "the locked body outlives its slot");
        c.advance(2);
        assert!(c.get(&hash).is_none(), "a pin ends with its height");
        assert!(c.get(&next_hash).is_some(), "next height's body is kept");
    }
}
