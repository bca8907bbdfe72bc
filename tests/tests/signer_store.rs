//! The consensus signer persisting through the RocksDB store: a validator
//! restarted on its database refuses what it refused before the restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;

use tally_consensus::{Signer, SignerError};
use tally_ledger::store::Store;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{Vote, VoteKind};
use tally_ledger::Hash;

#[test]
fn a_signer_reopened_on_the_store_refuses_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = TestChain::new(4, 1);
    let key = || tally_ledger::Keypair::from_seed(chain.validator_keys[0].seed());
    let vote = |value: u8| Vote {
        kind: VoteKind::Precommit,
        height: 5,
        round: 2,
        value: Some(Hash([value; 32])),
    };

    let first_signature = {
        let store = Arc::new(Store::open(dir.path(), &chain.genesis).unwrap());
        let mut signer = Signer::new(key(), chain.chain_id(), 0, store).unwrap();
        signer.sign_vote(&vote(1)).unwrap()
    };
    // The node restarts: a new process would open the database again.
    let store = Arc::new(Store::open(dir.path(), &chain.genesis).unwrap());
    let mut signer = Signer::new(key(), chain.chain_id(), 0, store).unwrap();
    assert_eq!(signer.sign_vote(&vote(1)), Ok(first_signature));
    assert_eq!(
        signer.sign_vote(&vote(2)),
        Err(SignerError::Conflict {
            height: 5,
            round: 2,
            step: tally_consensus::SignStep::Precommit
        })
    );
    assert_eq!(signer.lock_at(5), Some((2, Hash([1; 32]))));
}
