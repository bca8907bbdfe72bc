//! Vote keeping for one height: one vote per validator per round and step,
//! weighted tallies, equivocation evidence, and a bound on memory.

use std::collections::BTreeMap;

use tally_ledger::types::{
    CommitCertificate, CommitSig, Evidence, SignedVote, ValidatorSet, VoteKind,
};
use tally_ledger::Hash;

/// Votes for rounds more than this far ahead of the current round are not
/// stored (only the round number is remembered, for round skipping).
pub const ROUND_WINDOW: u32 = 8;

/// Why a vote was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("validator index {index} is not in the validator set of {len}")]
    NotValidator { index: u32, len: usize },
    #[error("message for height {found}, consensus is at height {expected}")]
    WrongHeight { expected: u64, found: u64 },
    #[error("message for round {round}, more than {ROUND_WINDOW} rounds ahead of round {current}")]
    RoundTooFarAhead { round: u32, current: u32 },
    #[error("a different proposal for height {height} round {round} was already received")]
    ConflictingProposal { height: u64, round: u32 },
    #[error(
        "proposal for round {round} claims proof-of-lock round {pol_round}, which is not earlier"
    )]
    BadPolRound { round: u32, pol_round: u32 },
    #[error("commit certificate is invalid: {0}")]
    InvalidCertificate(String),
}

/// What happened to a vote that was taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Counted.
    New,
    /// The same vote again; nothing changed.
    Duplicate,
    /// A second, different vote for the same round and step: not counted,
    /// both kept as evidence.
    Equivocation(Box<Evidence>),
    /// Far-future round: only its round number was remembered.
    RoundNoted,
}

/// Distinct values one validator's equivocating votes may add to the
/// tallies in one round and step (values that were proposed are always
/// taken, see [`VoteKeeper::add`]).
pub const EQUIVOCATIONS_COUNTED_MAX: usize = 4;

/// The votes of one kind in one round.
#[derive(Debug, Clone, Default)]
struct VoteSet {
    /// Each validator's votes: the first, then any conflicting ones.
    by_validator: BTreeMap<u32, Vec<SignedVote>>,
    power_by_value: BTreeMap<Option<Hash>, u64>,
    /// Power of the validators that voted at all, each counted once.
    power_any: u64,
}

#[derive(Debug, Clone, Default)]
struct RoundVotes {
    prevotes: VoteSet,
    precommits: VoteSet,
}

impl RoundVotes {
    fn set(&self, kind: VoteKind) -> &VoteSet {
        match kind {
            VoteKind::Prevote => &self.prevotes,
            VoteKind::Precommit => &self.precommits,
        }
    }

    fn set_mut(&mut self, kind: VoteKind) -> &mut VoteSet {
        match kind {
            VoteKind::Prevote => &mut self.prevotes,
            VoteKind::Precommit => &mut self.precommits,
        }
    }
}

/// The votes of one height.
#[derive(Debug, Clone)]
pub struct VoteKeeper {
    height: u64,
    set: ValidatorSet,
    rounds: BTreeMap<u32, RoundVotes>,
    /// Highest round each validator sent any message for (L55).
    max_round: Vec<Option<u32>>,
    evidence: Vec<Evidence>,
}

impl VoteKeeper {
    pub fn new(height: u64, set: ValidatorSet) -> Self {
        let n = set.len();
        VoteKeeper {
            height,
            set,
            rounds: BTreeMap::new(),
            max_round: vec![None; n],
            evidence: Vec::new(),
        }
    }

    pub fn height(&self) -> u64 {
        self.height
    }

    /// Takes a vote whose signature the caller has verified.
    ///
    /// A validator's conflicting vote becomes evidence, and still counts
    /// towards the tally of its own value (once per value): quorums for two
    /// values intersect in more than 1/3 of the power, so they can only
    /// both form if an honest validator voted twice, and counting lets a
    /// polka seen by one honest node be seen by all (CometBFT reaches the
    /// same with `SetPeerMaj23`). At most [`EQUIVOCATIONS_COUNTED_MAX`]
    /// values are taken per validator, except values `proposed` says were
    /// proposed at this height.
    pub fn add(
        &mut self,
        signed: SignedVote,
        current_round: u32,
        proposed: impl Fn(&Hash) -> bool,
    ) -> Result<Added, DropReason> {
        let v = signed.vote;
        if v.height != self.height {
            return Err(DropReason::WrongHeight {
                expected: self.height,
                found: v.height,
            });
        }
        let index = signed.validator_index;
        let power = self
            .set
            .get(index)
            .map(|val| val.power)
            .ok_or(DropReason::NotValidator {
                index,
                len: self.set.len(),
            })?;
        self.note_round(index, v.round);
        if v.round > current_round.saturating_add(ROUND_WINDOW) {
            return Ok(Added::RoundNoted);
        }
        let set = self.rounds.entry(v.round).or_default().set_mut(v.kind);
        let Some(existing) = set.by_validator.get_mut(&index) else {
            // Cannot overflow: total power is bounded by TOTAL_POWER_MAX.
            *set.power_by_value.entry(v.value).or_insert(0) += power;
            set.power_any += power;
            set.by_validator.insert(index, vec![signed]);
            return Ok(Added::New);
        };
        if existing.iter().any(|e| e.vote == v) {
            return Ok(Added::Duplicate);
        }
        let evidence = Evidence {
            first: existing[0].clone(),
            second: signed.clone(),
        };
        let counted =
            existing.len() < EQUIVOCATIONS_COUNTED_MAX || v.value.as_ref().is_some_and(&proposed);
        if counted {
            existing.push(signed);
            *set.power_by_value.entry(v.value).or_insert(0) += power;
        }
        let known = self.evidence.iter().any(|e| {
            e.first.validator_index == index
                && e.first.vote.round == v.round
                && e.first.vote.kind == v.kind
        });
        if !known {
            self.evidence.push(evidence.clone());
        }
        Ok(Added::Equivocation(Box::new(evidence)))
    }

    /// Remembers that `validator` sent a message for `round` (votes and
    /// proposals both count for round skipping).
    pub fn note_round(&mut self, validator: u32, round: u32) {
        if let Some(slot) = self.max_round.get_mut(validator as usize) {
            if slot.is_none_or(|r| round > r) {
                *slot = Some(round);
            }
        }
    }

    /// True when more than 2/3 of the power voted `value` (`None` = nil).
    pub fn has_quorum_for(&self, round: u32, kind: VoteKind, value: Option<Hash>) -> bool {
        self.rounds.get(&round).is_some_and(|r| {
            let p = r.set(kind).power_by_value.get(&value).copied().unwrap_or(0);
            self.set.is_quorum(p)
        })
    }

    /// True when more than 2/3 of the power voted anything in this step.
    pub fn has_quorum_any(&self, round: u32, kind: VoteKind) -> bool {
        self.rounds
            .get(&round)
            .is_some_and(|r| self.set.is_quorum(r.set(kind).power_any))
    }

    /// Rounds (in order) where some block has a precommit quorum.
    pub fn precommit_quorums(&self) -> Vec<(u32, Hash)> {
        let mut out = Vec::new();
        for (round, votes) in &self.rounds {
            for (value, power) in &votes.precommits.power_by_value {
                if let Some(hash) = value {
                    if self.set.is_quorum(*power) {
                        out.push((*round, *hash));
                    }
                }
            }
        }
        out
    }

    /// The highest round above `current` that validators with more than 1/3
    /// of the power have reached (L55), if any.
    pub fn skip_round(&self, current: u32) -> Option<u32> {
        let mut reached: Vec<(u32, u64)> = self
            .max_round
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                r.filter(|r| *r > current)
                    .map(|r| (r, self.set.validators()[i].power))
            })
            .collect();
        reached.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut power = 0u64;
        for (round, p) in reached {
            power += p;
            if self.set.exceeds_one_third(power) {
                return Some(round);
            }
        }
        None
    }

    /// The certificate made of the precommits for `block_hash` in `round`.
    pub fn certificate(&self, round: u32, block_hash: Hash) -> CommitCertificate {
        let signatures = self
            .rounds
            .get(&round)
            .map(|r| {
                r.precommits
                    .by_validator
                    .iter()
                    .filter_map(|(i, votes)| {
                        votes
                            .iter()
                            .find(|v| v.vote.value == Some(block_hash))
                            .map(|v| CommitSig {
                                validator_index: *i,
                                signature: v.signature,
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        CommitCertificate {
            height: self.height,
            round,
            block_hash,
            signatures,
        }
    }

    /// The prevotes for `value` in `round`: the proof of a polka, sent along
    /// with a proposal whose proof-of-lock round is `round`.
    pub fn prevotes_for(&self, round: u32, value: Hash) -> Vec<SignedVote> {
        self.rounds
            .get(&round)
            .map(|r| {
                r.prevotes
                    .by_validator
                    .values()
                    .filter_map(|votes| votes.iter().find(|v| v.vote.value == Some(value)).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Evidence gathered at this height.
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }

    /// How many votes are stored (for bounds checks in tests).
    pub fn stored_votes(&self) -> usize {
        self.rounds
            .values()
            .map(|r| {
                r.prevotes
                    .by_validator
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
                    + r.precommits
                        .by_validator
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()
            })
            .sum()
    }
}
