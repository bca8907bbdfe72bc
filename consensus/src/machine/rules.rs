//! The algorithm's upon-rules (the line numbers are those of the Tendermint
//! paper's Algorithm 1), tried in order until none fires.

use super::*;

impl Consensus {
    /// Applies every rule whose condition holds until none does.
    pub(super) fn apply_rules(&mut self, out: &mut Vec<Output>) {
        loop {
            let fired = self.l49_decide(out)
                || self.l55_round_skip(out)
                || self.l22_fresh_proposal(out)
                || self.l28_proposal_with_pol(out)
                || self.l34_prevote_timeout(out)
                || self.l36_polka_for_value(out)
                || self.l44_polka_for_nil(out)
                || self.l47_precommit_timeout(out);
            if !fired {
                break;
            }
        }
    }

    fn current_proposal(&self) -> Option<Proposal> {
        self.proposals.get(&self.round).copied()
    }

    /// L22: a fresh proposal (no proof-of-lock) in the propose step.
    fn l22_fresh_proposal(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some(p) = self.current_proposal().filter(|p| p.pol_round.is_none()) else {
            return false;
        };
        let Some(&valid) = self.verdicts.get(&p.block_hash) else {
            return false; // wait for the verdict
        };
        let unlocked_or_same = self.locked.is_none_or(|(_, v)| v == p.block_hash);
        let value = (valid && unlocked_or_same).then_some(p.block_hash);
        self.vote(VoteKind::Prevote, value, out);
        self.step = Step::Prevote;
        true
    }

    /// L28: a proposal carrying a proof-of-lock round `vr` with a polka in `vr`.
    fn l28_proposal_with_pol(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Propose {
            return false;
        }
        let Some(p) = self.current_proposal() else {
            return false;
        };
        let Some(vr) = p.pol_round else {
            return false;
        };
        if vr >= self.round
            || !self
                .votes
                .has_quorum_for(vr, VoteKind::Prevote, Some(p.block_hash))
        {
            return false;
        }
        let Some(&valid) = self.verdicts.get(&p.block_hash) else {
            return false;
        };
        let lock_ok = match self.locked {
            None => true,
            Some((lr, lv)) => lr <= vr || lv == p.block_hash,
        };
        let value = (valid && lock_ok).then_some(p.block_hash);
        self.vote(VoteKind::Prevote, value, out);
        self.step = Step::Prevote;
        true
    }

    /// L34: 2f+1 prevotes of any kind in the prevote step, for the first time.
    fn l34_prevote_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote
            || self.prevote_timeout_scheduled
            || !self.votes.has_quorum_any(self.round, VoteKind::Prevote)
        {
            return false;
        }
        self.prevote_timeout_scheduled = true;
        self.schedule(TimeoutKind::Prevote, out);
        true
    }

    /// L36: a valid proposal and a polka for it, step >= prevote, first time.
    fn l36_polka_for_value(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step < Step::Prevote || self.polka_seen {
            return false;
        }
        let Some(p) = self.current_proposal() else {
            return false;
        };
        if self.verdicts.get(&p.block_hash) != Some(&true)
            || !self
                .votes
                .has_quorum_for(self.round, VoteKind::Prevote, Some(p.block_hash))
        {
            return false;
        }
        self.polka_seen = true;
        if self.step == Step::Prevote {
            debug_assert_eq!(
                self.verdicts.get(&p.block_hash),
                Some(&true),
                "locks only a valid value"
            );
            self.locked = Some((self.round, p.block_hash));
            self.vote(VoteKind::Precommit, Some(p.block_hash), out);
            self.step = Step::Precommit;
        }
        self.valid = Some((self.round, p.block_hash));
        true
    }

    /// L44: a polka for nil in the prevote step.
    fn l44_polka_for_nil(&mut self, out: &mut Vec<Output>) -> bool {
        if self.step != Step::Prevote
            || !self
                .votes
                .has_quorum_for(self.round, VoteKind::Prevote, None)
        {
            return false;
        }
        self.vote(VoteKind::Precommit, None, out);
        self.step = Step::Precommit;
        true
    }

    /// L47: 2f+1 precommits of any kind, for the first time.
    fn l47_precommit_timeout(&mut self, out: &mut Vec<Output>) -> bool {
        if self.precommit_timeout_scheduled
            || !self.votes.has_quorum_any(self.round, VoteKind::Precommit)
        {
            return false;
        }
        self.precommit_timeout_scheduled = true;
        self.schedule(TimeoutKind::Precommit, out);
        true
    }

    /// L49: 2f+1 precommits for a value in any round, and the value is
    /// valid: decide. The paper also waits for the proposal message; here
    /// the value is identified by its hash, and the node fetches and
    /// validates the block itself when the proposal was missed.
    fn l49_decide(&mut self, out: &mut Vec<Output>) -> bool {
        for (round, value) in self.votes.precommit_quorums() {
            match self.verdicts.get(&value) {
                Some(true) => {
                    let cert = self.votes.certificate(round, value);
                    self.decide(cert, out);
                    return true;
                }
                Some(false) => {}
                None => self.request_validation(round, value, out),
            }
        }
        false
    }

    /// L55: more than 1/3 of the power is in a higher round: go there.
    fn l55_round_skip(&mut self, out: &mut Vec<Output>) -> bool {
        match self.votes.skip_round(self.round) {
            Some(round) => {
                self.start_round(round, out);
                true
            }
            None => false,
        }
    }
}
