//! Proposer selection: deterministic weighted round-robin.
//!
//! The schedule is the smooth weighted round-robin sequence (each step every
//! validator gains its power, the one with the most credit proposes and pays
//! the total), computed once per validator set. Slot `(height + round) mod
//! period` proposes at `height`, `round`: consecutive heights and rounds
//! rotate through the validators, each in proportion to its power. When the
//! total power is large, powers are scaled down (each keeps at least one
//! slot) so the period stays at most [`PERIOD_MAX`].

use crate::types::ValidatorSet;

/// The longest schedule kept in memory.
pub const PERIOD_MAX: u64 = 1 << 16;

/// The proposer of every (height, round) for one validator set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposerSchedule {
    slots: Vec<u32>,
}

impl ProposerSchedule {
    pub fn new(set: &ValidatorSet) -> Self {
        let total = set.total_power().max(1);
        let weights: Vec<u64> = set
            .validators()
            .iter()
            .map(|v| {
                if total <= PERIOD_MAX {
                    v.power
                } else {
                    // u128: power * PERIOD_MAX cannot overflow.
                    ((u128::from(v.power) * u128::from(PERIOD_MAX) / u128::from(total)) as u64)
                        .max(1)
                }
            })
            .collect();
        let period: u64 = weights.iter().sum();
        let mut credit = vec![0i128; weights.len()];
        let mut slots = Vec::with_capacity(period as usize);
        for _ in 0..period {
            for (c, w) in credit.iter_mut().zip(&weights) {
                *c += i128::from(*w);
            }
            // Highest credit wins; ties go to the lowest index.
            let mut best = 0;
            for i in 1..credit.len() {
                if credit[i] > credit[best] {
                    best = i;
                }
            }
            credit[best] -= i128::from(period);
            slots.push(best as u32);
        }
        ProposerSchedule { slots }
    }

    /// The index (in the validator set) of the proposer at `height`, `round`.
    pub fn proposer(&self, height: u64, round: u32) -> u32 {
        let period = self.slots.len() as u128;
        let slot = (u128::from(height) + u128::from(round)) % period;
        self.slots[slot as usize]
    }

    /// The length of one full rotation.
    pub fn period(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(powers: &[u64]) -> ValidatorSet {
        crate::testkit::validator_set(powers)
    }

    fn sequence(powers: &[u64], height_from: u64, n: u64) -> Vec<u32> {
        let s = ProposerSchedule::new(&set(powers));
        (height_from..height_from + n)
            .map(|h| s.proposer(h, 0))
            .collect()
    }

    #[test]
    fn table() {
        // (powers, first height, expected proposers of consecutive heights)
        let table: &[(&[u64], u64, &[u32])] = &[
            (&[1, 1, 1, 1], 0, &[0, 1, 2, 3, 0, 1, 2, 3]),
            (&[10, 10, 10, 10], 0, &[0, 1, 2, 3, 0, 1, 2, 3]),
            (&[1, 1, 1, 1], 1, &[1, 2, 3, 0]),
            (&[2, 1], 0, &[0, 1, 0, 0, 1, 0]),
            (&[3, 1, 1], 0, &[0, 1, 0, 2, 0, 0, 1, 0, 2, 0]),
            (&[1, 2, 3], 0, &[2, 1, 0, 2, 1, 2]),
        ];
        for (powers, from, expected) in table {
            assert_eq!(
                sequence(powers, *from, expected.len() as u64),
                expected.to_vec(),
                "{powers:?}"
            );
        }
    }

    #[test]
    fn rounds_rotate_like_heights() {
        let s = ProposerSchedule::new(&set(&[1, 1, 1, 1]));
        assert_eq!(s.proposer(5, 0), 1);
        assert_eq!(s.proposer(5, 1), 2);
        assert_eq!(s.proposer(5, 2), 3);
        assert_eq!(s.proposer(5, 3), 0);
    }

    #[test]
    fn shares_follow_power_even_when_scaled() {
        let powers = [1u64 << 40, 1 << 41, 1 << 40];
        let s = ProposerSchedule::new(&set(&powers));
        assert!(s.period() as u64 <= PERIOD_MAX);
        let mut counts = [0u64; 3];
        for h in 0..s.period() as u64 {
            counts[s.proposer(h, 0) as usize] += 1;
        }
        assert_eq!(counts[1], 2 * counts[0]);
        assert_eq!(counts[0], counts[2]);
        // Far heights and rounds do not overflow.
        let _ = s.proposer(u64::MAX, u32::MAX);
    }
}
