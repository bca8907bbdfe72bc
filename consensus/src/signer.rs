//! The signer: the only place a validator's consensus key signs, and it
//! guards itself (safety rules, as CometBFT's privval and Aptos'
//! safety-rules do).
//!
//! Before a signature is released, the (height, round, step, message) it
//! signs is persisted through a [`SignerStateStore`] whose save is durable.
//! Asked again for the same step and the same message, the signer returns the
//! same signature; asked for a different message at that step, or for any
//! earlier step, it refuses. A signer reloaded from its persisted state
//! refuses exactly what the old one would have.

use borsh::{BorshDeserialize, BorshSerialize};

use tally_ledger::crypto::{Domain, Keypair, PublicKey, Signature};
use tally_ledger::encoding::{decode, encode};
use tally_ledger::signer_state::SignerStateStore;
use tally_ledger::types::{Proposal, SignedProposal, SignedVote, Vote, VoteKind};
use tally_ledger::Hash;

/// What is signed at a (height, round). Ordered as the steps happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, BorshSerialize, BorshDeserialize)]
pub enum SignStep {
    Proposal,
    Prevote,
    Precommit,
}

/// One message the signer signed.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignedRecord {
    pub height: u64,
    pub round: u32,
    pub step: SignStep,
    /// The signed message (vote or proposal encoding, before domain tags).
    pub message: Vec<u8>,
    pub signature: Signature,
}

/// The most messages of one height kept in the persisted history.
pub const HISTORY_MAX: usize = 48;

/// What the signer persists before releasing any signature: what it signed
/// at the latest height (for re-sending after a restart, newest last), and
/// the lock implied by its latest precommit for a block.
#[derive(Debug, Clone, Default, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SignerState {
    pub history: Vec<SignedRecord>,
    /// (height, round, block) of the latest precommit for a block.
    pub lock: Option<(u64, u32, Hash)>,
    /// The polka (2f+1 prevotes) that justified the lock: after a restart
    /// the node can still prove to its peers why it is locked.
    pub lock_proof: Vec<SignedVote>,
}

impl SignerState {
    pub fn last(&self) -> Option<&SignedRecord> {
        self.history.last()
    }
}

/// Why the signer refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    #[error("refusing to sign {step:?} at height {height} round {round}: already signed {last_step:?} at height {last_height} round {last_round}")]
    Regression {
        height: u64,
        round: u32,
        step: SignStep,
        last_height: u64,
        last_round: u32,
        last_step: SignStep,
    },
    #[error("refusing to sign a conflicting {step:?} at height {height} round {round}: a different one is already signed")]
    Conflict {
        height: u64,
        round: u32,
        step: SignStep,
    },
    #[error("could not persist the signer state, so nothing was signed: {0}")]
    Persist(String),
    #[error("the persisted signer state is unreadable: {0}; refusing to sign rather than risk double-signing")]
    Corrupt(String),
}

/// A self-guarding signer over a durable state store.
#[derive(Debug)]
pub struct Signer<S: SignerStateStore> {
    key: Keypair,
    chain_id: String,
    store: S,
    state: SignerState,
    /// This validator's index, for rebuilding signed votes from history.
    validator_index: u32,
}

impl<S: SignerStateStore> Signer<S> {
    /// Loads the persisted state (if any) and returns a signer that honours
    /// it. `validator_index` is this validator's place in the set.
    pub fn new(
        key: Keypair,
        chain_id: &str,
        validator_index: u32,
        store: S,
    ) -> Result<Self, SignerError> {
        let state = match store.load_signer_state().map_err(SignerError::Corrupt)? {
            None => SignerState::default(),
            Some(bytes) => decode::<SignerState>(&bytes, SIGNER_STATE_BYTES_MAX, "signer state")
                .map_err(|e| SignerError::Corrupt(e.to_string()))?,
        };
        Ok(Signer {
            key,
            chain_id: chain_id.to_string(),
            store,
            state,
            validator_index,
        })
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    pub fn last_signed(&self) -> Option<&SignedRecord> {
        self.state.last()
    }

    /// The (round, block) this validator is locked on at `height`, from its
    /// latest precommit for a block: a restarted node must honour it.
    pub fn lock_at(&self, height: u64) -> Option<(u32, Hash)> {
        self.state
            .lock
            .filter(|(h, _, _)| *h == height)
            .map(|(_, r, v)| (r, v))
    }

    /// The highest round signed at `height` (a restarted node resumes there).
    pub fn round_at(&self, height: u64) -> Option<u32> {
        self.state
            .last()
            .filter(|r| r.height == height)
            .map(|r| r.round)
    }

    /// Votes and proposals already signed at `height`, to send again after a
    /// restart (peers may never have received them).
    pub fn signed_at(&self, height: u64) -> (Vec<SignedProposal>, Vec<SignedVote>) {
        let mut proposals = Vec::new();
        let mut votes = Vec::new();
        for r in self.state.history.iter().filter(|r| r.height == height) {
            match r.step {
                SignStep::Proposal => {
                    if let Ok(proposal) = decode::<Proposal>(&r.message, 256, "proposal") {
                        proposals.push(SignedProposal {
                            proposal,
                            signature: r.signature,
                        });
                    }
                }
                SignStep::Prevote | SignStep::Precommit => {
                    if let Ok(vote) = decode::<Vote>(&r.message, 256, "vote") {
                        votes.push(SignedVote {
                            vote,
                            validator_index: self.validator_index,
                            signature: r.signature,
                        });
                    }
                }
            }
        }
        (proposals, votes)
    }

    pub fn sign_vote(&mut self, vote: &Vote) -> Result<Signature, SignerError> {
        self.sign_vote_with_polka(vote, &[])
    }

    /// Signs a vote; for a precommit for a block, `polka` (the prevotes that
    /// justify the lock it creates) is persisted with it.
    pub fn sign_vote_with_polka(
        &mut self,
        vote: &Vote,
        polka: &[SignedVote],
    ) -> Result<Signature, SignerError> {
        let step = match vote.kind {
            VoteKind::Prevote => SignStep::Prevote,
            VoteKind::Precommit => SignStep::Precommit,
        };
        self.sign(
            vote.height,
            vote.round,
            step,
            Domain::Vote,
            vote.message(),
            polka,
        )
    }

    /// The prevotes that justified the lock at `height` (see [`Signer::lock_at`]).
    pub fn lock_proof_at(&self, height: u64) -> Vec<SignedVote> {
        if self.lock_at(height).is_some() {
            self.state.lock_proof.clone()
        } else {
            Vec::new()
        }
    }

    pub fn sign_proposal(&mut self, proposal: &Proposal) -> Result<Signature, SignerError> {
        self.sign(
            proposal.height,
            proposal.round,
            SignStep::Proposal,
            Domain::Proposal,
            proposal.message(),
            &[],
        )
    }

    fn sign(
        &mut self,
        height: u64,
        round: u32,
        step: SignStep,
        domain: Domain,
        message: Vec<u8>,
        polka: &[SignedVote],
    ) -> Result<Signature, SignerError> {
        if let Some(last) = self.state.last() {
            match (height, round, step).cmp(&(last.height, last.round, last.step)) {
                std::cmp::Ordering::Less => {
                    return Err(SignerError::Regression {
                        height,
                        round,
                        step,
                        last_height: last.height,
                        last_round: last.round,
                        last_step: last.step,
                    })
                }
                std::cmp::Ordering::Equal => {
                    return if last.message == message {
                        Ok(last.signature)
                    } else {
                        Err(SignerError::Conflict {
                            height,
                            round,
                            step,
                        })
                    };
                }
                std::cmp::Ordering::Greater => {}
            }
        }
        let signature = self.key.sign(domain, &self.chain_id, &message);
        let mut next = self.state.clone();
        if next.last().is_some_and(|l| l.height != height) {
            next.history.clear();
        }
        if step == SignStep::Precommit {
            if let Ok(Vote { value: Some(v), .. }) = decode::<Vote>(&message, 256, "vote") {
                next.lock = Some((height, round, v));
                next.lock_proof = polka.to_vec();
            }
        }
        next.history.push(SignedRecord {
            height,
            round,
            step,
            message,
            signature,
        });
        if next.history.len() > HISTORY_MAX {
            next.history.remove(0);
        }
        // Persist first: the signature leaves only once the state is durable.
        self.store
            .save_signer_state(&encode(&next))
            .map_err(SignerError::Persist)?;
        self.state = next;
        Ok(signature)
    }
}

/// A persisted signer state is never larger than this.
pub const SIGNER_STATE_BYTES_MAX: usize = 512 << 10;

#[cfg(test)]
mod tests {
    use super::*;
    use tally_ledger::signer_state::MemorySignerState;
    use tally_ledger::Hash;

    fn vote(kind: VoteKind, height: u64, round: u32, value: Option<u8>) -> Vote {
        Vote {
            kind,
            height,
            round,
            value: value.map(|b| Hash([b; 32])),
        }
    }

    fn signer(store: &MemorySignerState) -> Signer<MemorySignerState> {
        Signer::new(Keypair::from_seed([7; 32]), "chain", 0, store.clone()).unwrap()
    }

    #[test]
    fn same_request_same_signature_and_it_verifies() {
        let store = MemorySignerState::new();
        let mut s = signer(&store);
        let v = vote(VoteKind::Prevote, 5, 0, Some(1));
        let a = s.sign_vote(&v).unwrap();
        let b = s.sign_vote(&v).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            s.public_key()
                .verify(Domain::Vote, "chain", &v.message(), &a),
            Ok(())
        );
    }

    #[test]
    fn conflicting_vote_is_refused() {
        let store = MemorySignerState::new();
        let mut s = signer(&store);
        s.sign_vote(&vote(VoteKind::Prevote, 5, 0, Some(1)))
            .unwrap();
        assert_eq!(
            s.sign_vote(&vote(VoteKind::Prevote, 5, 0, Some(2))),
            Err(SignerError::Conflict {
                height: 5,
                round: 0,
                step: SignStep::Prevote
            })
        );
        assert_eq!(
            s.sign_vote(&vote(VoteKind::Prevote, 5, 0, None)),
            Err(SignerError::Conflict {
                height: 5,
                round: 0,
                step: SignStep::Prevote
            })
        );
    }

    #[test]
    fn earlier_steps_rounds_and_heights_are_refused() {
        let store = MemorySignerState::new();
        let mut s = signer(&store);
        s.sign_vote(&vote(VoteKind::Precommit, 5, 2, Some(1)))
            .unwrap();
        for earlier in [
            vote(VoteKind::Prevote, 5, 2, Some(1)),
            vote(VoteKind::Precommit, 5, 1, Some(1)),
            vote(VoteKind::Precommit, 4, 9, Some(1)),
        ] {
            assert!(
                matches!(s.sign_vote(&earlier), Err(SignerError::Regression { .. })),
                "{earlier:?}"
            );
        }
        let p = Proposal {
            height: 5,
            round: 2,
            pol_round: None,
            block_hash: Hash([1; 32]),
        };
        assert!(matches!(
            s.sign_proposal(&p),
            Err(SignerError::Regression { .. })
        ));
        // Later ones are fine.
        s.sign_vote(&vote(VoteKind::Prevote, 5, 3, None)).unwrap();
        s.sign_vote(&vote(VoteKind::Prevote, 6, 0, Some(3)))
            .unwrap();
    }

    #[test]
    fn a_restarted_signer_refuses_what_the_old_one_would() {
        let store = MemorySignerState::new();
        let v = vote(VoteKind::Precommit, 9, 1, Some(4));
        let sig = signer(&store).sign_vote(&v).unwrap();
        // "Restart": a new signer over the same persisted state.
        let mut again = signer(&store);
        assert_eq!(again.sign_vote(&v), Ok(sig));
        assert!(matches!(
            again.sign_vote(&vote(VoteKind::Precommit, 9, 1, Some(5))),
            Err(SignerError::Conflict { .. })
        ));
        assert!(matches!(
            again.sign_vote(&vote(VoteKind::Prevote, 9, 1, Some(4))),
            Err(SignerError::Regression { .. })
        ));
    }

    #[test]
    fn nothing_is_signed_when_persisting_fails() {
        #[derive(Debug)]
        struct Failing;
        impl SignerStateStore for Failing {
            fn load_signer_state(&self) -> Result<Option<Vec<u8>>, String> {
                Ok(None)
            }
            fn save_signer_state(&self, _: &[u8]) -> Result<(), String> {
                Err("disk full".into())
            }
        }
        let mut s = Signer::new(Keypair::from_seed([7; 32]), "chain", 0, Failing).unwrap();
        assert_eq!(
            s.sign_vote(&vote(VoteKind::Prevote, 1, 0, None)),
            Err(SignerError::Persist("disk full".into()))
        );
        assert_eq!(s.last_signed(), None);
    }

    #[test]
    fn the_lock_and_the_history_survive_a_restart() {
        let store = MemorySignerState::new();
        let mut s = signer(&store);
        let p = Proposal {
            height: 3,
            round: 1,
            pol_round: None,
            block_hash: Hash([2; 32]),
        };
        s.sign_proposal(&p).unwrap();
        s.sign_vote(&vote(VoteKind::Prevote, 3, 1, Some(2)))
            .unwrap();
        s.sign_vote(&vote(VoteKind::Precommit, 3, 1, Some(2)))
            .unwrap();
        s.sign_vote(&vote(VoteKind::Prevote, 3, 2, None)).unwrap();
        let again = signer(&store);
        assert_eq!(again.lock_at(3), Some((1, Hash([2; 32]))));
        assert_eq!(again.lock_at(4), None);
        assert_eq!(again.round_at(3), Some(2));
        let (proposals, votes) = again.signed_at(3);
        assert_eq!(proposals.len(), 1);
        assert_eq!(votes.len(), 3);
        for v in &votes {
            assert_eq!(
                again
                    .public_key()
                    .verify(Domain::Vote, "chain", &v.vote.message(), &v.signature),
                Ok(())
            );
        }
        // A new height starts a new history.
        let mut again = again;
        again
            .sign_vote(&vote(VoteKind::Prevote, 4, 0, None))
            .unwrap();
        assert_eq!(again.signed_at(3).1.len(), 0);
        assert_eq!(again.signed_at(4).1.len(), 1);
    }

    #[test]
    fn the_lock_its_proof_and_the_last_record_are_kept_for_their_height() {
        let store = MemorySignerState::new();
        let mut s = signer(&store);
        assert_eq!(s.last_signed(), None);
        let prevote = vote(VoteKind::Prevote, 5, 2, Some(1));
        let signature = s.sign_vote(&prevote).unwrap();
        let polka = vec![SignedVote {
            vote: prevote,
            validator_index: 0,
            signature,
        }];
        s.sign_vote_with_polka(&vote(VoteKind::Precommit, 5, 2, Some(1)), &polka)
            .unwrap();
        assert_eq!(s.lock_at(5), Some((2, Hash([1; 32]))));
        assert_eq!(s.lock_proof_at(5), polka);
        assert_eq!(s.lock_proof_at(6), vec![]);
        let last = s.last_signed().unwrap();
        assert_eq!(
            (last.height, last.round, last.step),
            (5, 2, SignStep::Precommit)
        );
        // A restart reads the same back.
        let again = signer(&store);
        assert_eq!(again.lock_proof_at(5), polka);
    }

    #[test]
    fn the_history_keeps_the_latest_records_of_one_height() {
        let store = MemorySignerState::new();
        let mut s = signer(&store);
        let extra = 5;
        for round in 0..(HISTORY_MAX + extra) as u32 {
            s.sign_vote(&vote(VoteKind::Prevote, 5, round, None))
                .unwrap();
        }
        let (_, votes) = s.signed_at(5);
        assert_eq!(votes.len(), HISTORY_MAX);
        assert_eq!(votes[0].vote.round, extra as u32);
        assert_eq!(
            votes.last().map(|v| v.vote.round),
            Some((HISTORY_MAX + extra - 1) as u32)
        );
    }

    #[test]
    fn corrupt_state_refuses_to_start() {
        let store = MemorySignerState::new();
        store.save_signer_state(b"garbage").unwrap();
        assert!(matches!(
            Signer::new(Keypair::from_seed([7; 32]), "chain", 0, store),
            Err(SignerError::Corrupt(_))
        ));
    }
}
