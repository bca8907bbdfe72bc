//! Governance: changes proposed by one admin and applied once a threshold of
//! admins approves them, before they expire. Each refusal is asserted with
//! its exact error.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_ledger::execution::{ApplyError, BlockExecError, TxError};
use tally_ledger::genesis::Genesis;
use tally_ledger::governance::{
    read_change, read_council, Change, ChangeStatus, GovernanceError, GovernanceParams,
    PendingChange, PENDING_PER_ADMIN_MAX,
};
use tally_ledger::state::read_account;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{Op, Role, SignedTx};
use tally_ledger::{Hash, Keypair, PublicKey};

/// Four validators; accounts 0, 1 and 2 are admins, 3 to 6 members; a
/// change needs `threshold` approvals and expires `expiry` blocks on.
fn council_chain(threshold: u32, expiry: u64) -> TestChain {
    council_of(3, threshold, expiry)
}

/// Like [`council_chain`] with accounts `0..admins` the admins (of 7).
fn council_of(admins: usize, threshold: u32, expiry: u64) -> TestChain {
    let base = TestChain::new(4, 7);
    let mut genesis: Genesis = base.genesis.clone();
    for a in &mut genesis.accounts[..admins] {
        a.role = Role::Admin;
    }
    genesis.governance = GovernanceParams {
        threshold,
        expiry_blocks: expiry,
    };
    genesis.validate().unwrap();
    TestChain::from_genesis(genesis, base.validator_keys, base.account_keys)
}

fn newcomer() -> PublicKey {
    Keypair::from_seed([0xab; 32]).public()
}

/// Account `from` proposes to grant `account` the `role`.
fn grant_tx(chain: &mut TestChain, from: usize, account: PublicKey, role: Role) -> SignedTx {
    chain.tx(from, Op::GrantAccount { account, role })
}

fn refused(chain: &TestChain, tx: &SignedTx) -> TxError {
    match chain.try_apply(tx) {
        Err(ApplyError::Tx(e)) => e,
        other => panic!("expected a tx error, got {other:?}"),
    }
}

fn status(chain: &TestChain, id: &Hash) -> ChangeStatus {
    read_change(&chain.state, id, chain.height())
        .unwrap()
        .expect("the change is recorded")
        .status_at(chain.height())
}

fn exists(chain: &TestChain, key: &PublicKey) -> bool {
    read_account(&chain.state, key, chain.height())
        .unwrap()
        .is_some()
}

#[test]
fn a_change_applies_when_the_threshold_approves_and_not_before() {
    let mut chain = council_chain(2, 100);
    let grant = grant_tx(&mut chain, 0, newcomer(), Role::Member);
    let id = grant.hash();
    chain.push(vec![grant]).unwrap();
    assert_eq!(status(&chain, &id), ChangeStatus::Pending);
    assert!(
        !exists(&chain, &newcomer()),
        "one approval of two applied it"
    );
    let council = read_council(&chain.state, chain.height()).unwrap();
    assert_eq!(
        council.pending,
        vec![PendingChange {
            id,
            expires_at: 101,
            proposer: chain.account_keys[0].public(),
        }]
    );

    // The proposer's second approval counts for nothing more.
    let again = chain.tx(0, Op::Approve { change: id });
    assert_eq!(
        refused(&chain, &again),
        TxError::Governance(GovernanceError::AlreadyApproved {
            id,
            approver: chain.account_keys[0].public(),
        })
    );
    // A member cannot approve.
    let member = chain.tx(3, Op::Approve { change: id });
    assert_eq!(
        refused(&chain, &member),
        TxError::NotAdmin(chain.account_keys[3].public())
    );

    let approve = chain.tx(1, Op::Approve { change: id });
    chain.push(vec![approve]).unwrap();
    assert_eq!(status(&chain, &id), ChangeStatus::Applied { height: 2 });
    assert!(exists(&chain, &newcomer()));
    let council = read_council(&chain.state, chain.height()).unwrap();
    assert!(council.pending.is_empty(), "{:?}", council.pending);

    // Applied once: a late approval is refused.
    let late = chain.tx(2, Op::Approve { change: id });
    assert_eq!(
        refused(&chain, &late),
        TxError::Governance(GovernanceError::NotPending {
            id,
            status: ChangeStatus::Applied { height: 2 },
        })
    );
}

#[test]
fn a_change_without_enough_approvals_expires() {
    let mut chain = council_chain(2, 2);
    let revoke = chain.tx(
        0,
        Op::Propose {
            change: Box::new(Change::Revoke {
                account: chain.account_keys[4].public(),
            }),
        },
    );
    let id = revoke.hash();
    chain.push(vec![revoke]).unwrap(); // height 1: expires after 3
    chain.push(vec![]).unwrap();
    chain.push(vec![]).unwrap();
    assert_eq!(status(&chain, &id), ChangeStatus::Pending);
    chain.push(vec![]).unwrap(); // height 4
    assert_eq!(status(&chain, &id), ChangeStatus::Expired { at: 3 });
    let approve = chain.tx(1, Op::Approve { change: id });
    assert_eq!(
        refused(&chain, &approve),
        TxError::Governance(GovernanceError::Expired { id, at: 3 })
    );
    // In a block the refusal names the transaction.
    match chain.build_block(vec![approve]) {
        Err(BlockExecError::InvalidTx {
            index: 0, error, ..
        }) => assert_eq!(
            error,
            TxError::Governance(GovernanceError::Expired { id, at: 3 })
        ),
        other => panic!("expected an invalid tx, got {other:?}"),
    }
    let target = chain.account_keys[4].public();
    let account = read_account(&chain.state, &target, chain.height())
        .unwrap()
        .unwrap();
    assert!(account.active, "an expired revoke applied");
}

#[test]
fn a_threshold_of_one_applies_at_once_as_grants_always_did() {
    let mut chain = TestChain::new(4, 2);
    let grant = grant_tx(&mut chain, 0, newcomer(), Role::Member);
    let id = grant.hash();
    chain.push(vec![grant]).unwrap();
    assert!(exists(&chain, &newcomer()));
    assert_eq!(status(&chain, &id), ChangeStatus::Applied { height: 1 });
}

#[test]
fn an_unknown_change_cannot_be_approved() {
    let mut chain = council_chain(2, 10);
    let id = Hash([7; 32]);
    let approve = chain.tx(1, Op::Approve { change: id });
    assert_eq!(
        refused(&chain, &approve),
        TxError::Governance(GovernanceError::UnknownChange(id))
    );
}

#[test]
fn a_change_is_checked_when_proposed_and_again_when_it_applies() {
    let mut chain = council_chain(2, 10);
    let target = chain.account_keys[4].public();
    // Two proposals to revoke the same account; the first applies, and the
    // second's final approval is then refused for what it finds.
    let first = chain.tx(0, Op::RevokeAccount { account: target });
    let second = chain.tx(1, Op::RevokeAccount { account: target });
    let (first_id, second_id) = (first.hash(), second.hash());
    chain.push(vec![first, second]).unwrap();
    let approve_first = chain.tx(2, Op::Approve { change: first_id });
    chain.push(vec![approve_first]).unwrap();
    assert_eq!(
        status(&chain, &first_id),
        ChangeStatus::Applied { height: 2 }
    );
    let approve_second = chain.tx(2, Op::Approve { change: second_id });
    assert_eq!(
        refused(&chain, &approve_second),
        TxError::AlreadyRevoked(target)
    );
    assert_eq!(status(&chain, &second_id), ChangeStatus::Pending);
    // A proposal that could not apply now is refused at once.
    let missing = chain.tx(
        0,
        Op::RevokeAccount {
            account: newcomer(),
        },
    );
    assert_eq!(
        refused(&chain, &missing),
        TxError::AccountNotFound(newcomer())
    );
}

#[test]
fn the_admins_always_keep_one_more_than_the_threshold() {
    let mut chain = council_chain(2, 10);
    // Three admins, threshold two: revoking one would leave no spare.
    let admin2 = chain.account_keys[2].public();
    let revoke = chain.tx(0, Op::RevokeAccount { account: admin2 });
    let below = TxError::Governance(GovernanceError::AdminsBelowThreshold {
        admins: 2,
        threshold: 2,
    });
    assert_eq!(refused(&chain, &revoke), below);
    // Nor may one step down to member.
    let admin1 = chain.account_keys[1].public();
    let demote = grant_tx(&mut chain, 1, admin1, Role::Member);
    assert_eq!(refused(&chain, &demote), below);
}

#[test]
fn an_approver_who_leaves_no_longer_counts() {
    let mut chain = council_of(5, 3, 100);
    let grant = grant_tx(&mut chain, 0, newcomer(), Role::Member);
    let grant_id = grant.hash();
    let approve = chain.tx(1, Op::Approve { change: grant_id });
    chain.push(vec![grant, approve]).unwrap();
    assert_eq!(status(&chain, &grant_id), ChangeStatus::Pending);

    // Admin 1, an approver, is revoked by three others.
    let revoke = chain.tx(
        2,
        Op::RevokeAccount {
            account: chain.account_keys[1].public(),
        },
    );
    let revoke_id = revoke.hash();
    let a3 = chain.tx(3, Op::Approve { change: revoke_id });
    let a4 = chain.tx(4, Op::Approve { change: revoke_id });
    chain.push(vec![revoke, a3, a4]).unwrap();
    let council = read_council(&chain.state, chain.height()).unwrap();
    assert_eq!(council.admins.len(), 4);

    // A third approval is now only the second that counts.
    let a2 = chain.tx(2, Op::Approve { change: grant_id });
    chain.push(vec![a2]).unwrap();
    assert_eq!(status(&chain, &grant_id), ChangeStatus::Pending);
    assert!(!exists(&chain, &newcomer()));
    let a3 = chain.tx(3, Op::Approve { change: grant_id });
    chain.push(vec![a3]).unwrap();
    assert!(exists(&chain, &newcomer()));
}

#[test]
fn an_admin_who_leaves_withdraws_its_pending_changes() {
    let mut chain = council_chain(2, 100);
    let grant = grant_tx(&mut chain, 2, newcomer(), Role::Member);
    let grant_id = grant.hash();
    // Admin 3 first, so that two admins and a spare remain.
    let member3 = chain.account_keys[3].public();
    let promote = grant_tx(&mut chain, 0, member3, Role::Admin);
    let promote_id = promote.hash();
    chain.push(vec![grant, promote]).unwrap();
    let approve = chain.tx(1, Op::Approve { change: promote_id });
    chain.push(vec![approve]).unwrap();
    let revoke = chain.tx(
        0,
        Op::RevokeAccount {
            account: chain.account_keys[2].public(),
        },
    );
    let revoke_id = revoke.hash();
    let approve = chain.tx(1, Op::Approve { change: revoke_id });
    chain.push(vec![revoke, approve]).unwrap();
    assert_eq!(
        status(&chain, &revoke_id),
        ChangeStatus::Applied { height: 3 }
    );
    assert_eq!(
        status(&chain, &grant_id),
        ChangeStatus::Withdrawn { height: 3 }
    );
    let council = read_council(&chain.state, chain.height()).unwrap();
    assert!(council.pending.is_empty(), "{:?}", council.pending);
    let approve = chain.tx(0, Op::Approve { change: grant_id });
    assert_eq!(
        refused(&chain, &approve),
        TxError::Governance(GovernanceError::NotPending {
            id: grant_id,
            status: ChangeStatus::Withdrawn { height: 3 },
        })
    );
}

#[test]
fn each_admin_has_a_bounded_number_of_pending_changes() {
    let mut chain = council_chain(2, 3);
    let key = |seed: u8| Keypair::from_seed([seed; 32]).public();
    let own: Vec<SignedTx> = (0..PENDING_PER_ADMIN_MAX)
        .map(|i| grant_tx(&mut chain, 2, key(i as u8 + 1), Role::Member))
        .collect();
    chain.push(own).unwrap();
    let one_more = grant_tx(&mut chain, 2, key(99), Role::Member);
    assert_eq!(
        refused(&chain, &one_more),
        TxError::Governance(GovernanceError::TooManyPending {
            proposer: chain.account_keys[2].public(),
            max: PENDING_PER_ADMIN_MAX,
        })
    );
    // Another admin is not held back by them.
    let other = grant_tx(&mut chain, 0, key(98), Role::Member);
    assert_eq!(chain.try_apply(&other), Ok(()));
    // Once they expire (after height 4), a new proposal prunes them.
    for _ in 0..4 {
        chain.push(vec![]).unwrap();
    }
    chain.push(vec![one_more]).unwrap();
    let council = read_council(&chain.state, chain.height()).unwrap();
    assert_eq!(council.pending.len(), 1, "{:?}", council.pending);
}

#[test]
fn genesis_governance_is_validated() {
    let chain = council_chain(2, 10);
    let mut g = chain.genesis.clone();
    // Three admins: a threshold of three leaves no spare for a lost key.
    g.governance.threshold = 3;
    let e = g.validate().unwrap_err().to_string();
    assert!(
        e.contains("governance.threshold")
            && e.contains("at least 4 admin accounts")
            && e.contains("found 3"),
        "{e}"
    );
    g.governance.threshold = 2;
    g.validate().unwrap();
    g.governance.threshold = 0;
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("at least 1"), "{e}");
    g.governance.threshold = 2;
    g.governance.expiry_blocks = 0;
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("governance.expiry_blocks"), "{e}");
    // A genesis without the section keeps threshold 1.
    let mut json: serde_json::Value = serde_json::from_str(&chain.genesis.to_json()).unwrap();
    json.as_object_mut().unwrap().remove("governance");
    let g = Genesis::from_json(json.to_string().as_bytes()).unwrap();
    assert_eq!(g.governance, GovernanceParams::default());
    assert_eq!(g.governance.threshold, 1);
}
