//! One test per execution rule, each asserting the exact error, plus
//! determinism and state proofs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_ledger::execution::{execute_block, ApplyError, BlockExecError, BlockExecutor, TxError};
use tally_ledger::state::{
    get_with_proof, root_at, verify_state_proof, AccountState, StateKey, StateProof,
};
use tally_ledger::testkit::{TestChain, TEST_BALANCE};
use tally_ledger::types::{Op, Role, Tx};
use tally_ledger::{Keypair, PublicKey};

fn rejected(chain: &TestChain, tx: &tally_ledger::SignedTx) -> TxError {
    match chain.try_apply(tx) {
        Err(ApplyError::Tx(e)) => e,
        other => panic!("expected a tx error, got {other:?}"),
    }
}

fn stranger() -> Keypair {
    Keypair::from_seed([0xee; 32])
}

#[test]
fn unknown_sender_is_refused() {
    let chain = TestChain::new(4, 3);
    let k = stranger();
    let tx = Tx {
        chain_id: chain.chain_id().into(),
        sender: k.public(),
        nonce: 1,
        op: Op::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    }
    .sign(&k);
    assert_eq!(rejected(&chain, &tx), TxError::UnknownSender(k.public()));
}

#[test]
fn revoked_sender_is_refused() {
    let mut chain = TestChain::new(4, 3);
    let member = chain.account_keys[1].public();
    let revoke = chain.tx(0, Op::RevokeAccount { account: member });
    chain.push(vec![revoke]).unwrap();
    let tx = chain.transfer(1, 2, 5);
    assert_eq!(rejected(&chain, &tx), TxError::RevokedSender(member));
}

#[test]
fn non_admin_cannot_grant_or_revoke() {
    let mut chain = TestChain::new(4, 3);
    let member = chain.account_keys[1].public();
    let grant = chain.tx(
        1,
        Op::GrantAccount {
            account: stranger().public(),
            role: Role::Member,
        },
    );
    assert_eq!(rejected(&chain, &grant), TxError::NotAdmin(member));
    let target = chain.account_keys[2].public();
    let mut chain2 = TestChain::new(4, 3);
    let revoke = chain2.tx(1, Op::RevokeAccount { account: target });
    assert_eq!(rejected(&chain2, &revoke), TxError::NotAdmin(member));
}

#[test]
fn admin_grants_and_the_new_member_can_transact() {
    let mut chain = TestChain::new(4, 2);
    let newcomer = stranger();
    let grant = chain.tx(
        0,
        Op::GrantAccount {
            account: newcomer.public(),
            role: Role::Member,
        },
    );
    let fund = chain.tx(
        0,
        Op::Transfer {
            to: newcomer.public(),
            amount: 40,
        },
    );
    chain.push(vec![grant, fund]).unwrap();
    let put = Tx {
        chain_id: chain.chain_id().into(),
        sender: newcomer.public(),
        nonce: 1,
        op: Op::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    }
    .sign(&newcomer);
    assert_eq!(chain.try_apply(&put), Ok(()));
    let admin = chain.account_keys[0].public();
    let self_revoke = chain.tx(0, Op::RevokeAccount { account: admin });
    assert_eq!(rejected(&chain, &self_revoke), TxError::RevokeSelf);
}

#[test]
fn nonces_are_strict() {
    let mut chain = TestChain::new(4, 3);
    let first = chain.transfer(1, 2, 1);
    chain.push(vec![first.clone()]).unwrap();
    // Old: replaying nonce 1.
    assert_eq!(
        rejected(&chain, &first),
        TxError::BadNonce {
            expected: 2,
            found: 1
        }
    );
    // Future: skipping nonce 2.
    let _skipped = chain.transfer(1, 2, 1);
    let future = chain.transfer(1, 2, 1);
    assert_eq!(
        rejected(&chain, &future),
        TxError::BadNonce {
            expected: 2,
            found: 3
        }
    );
}

#[test]
fn insufficient_balance_is_refused() {
    let mut chain = TestChain::new(4, 3);
    let tx = chain.transfer(1, 2, TEST_BALANCE + 1);
    assert_eq!(
        rejected(&chain, &tx),
        TxError::InsufficientBalance {
            balance: TEST_BALANCE,
            amount: TEST_BALANCE + 1
        }
    );
}

#[test]
fn balance_overflow_is_refused() {
    let mut g = TestChain::new(4, 3).genesis;
    g.accounts[1].balance = u64::MAX;
    g.accounts[2].balance = u64::MAX;
    let base = TestChain::new(4, 3);
    let mut chain = TestChain::from_genesis(g, base.validator_keys, base.account_keys);
    let tx = chain.transfer(1, 2, 1);
    assert_eq!(
        rejected(&chain, &tx),
        TxError::BalanceOverflow {
            balance: u64::MAX,
            amount: 1
        }
    );
}

#[test]
fn oversize_key_and_value_are_refused() {
    let mut chain = TestChain::new(4, 3);
    let max_key = chain.genesis.params.key_bytes_max as usize;
    let max_value = chain.genesis.params.value_bytes_max as usize;
    let big_key = chain.tx(
        1,
        Op::Put {
            key: vec![1; max_key + 1],
            value: vec![],
        },
    );
    assert_eq!(
        rejected(&chain, &big_key),
        TxError::KeyTooLarge {
            len: max_key + 1,
            max: max_key
        }
    );
    let mut chain = TestChain::new(4, 3);
    let big_value = chain.tx(
        1,
        Op::Put {
            key: b"k".to_vec(),
            value: vec![0; max_value + 1],
        },
    );
    assert_eq!(
        rejected(&chain, &big_value),
        TxError::ValueTooLarge {
            len: max_value + 1,
            max: max_value
        }
    );
    let mut chain = TestChain::new(4, 3);
    let empty = chain.tx(1, Op::Delete { key: vec![] });
    assert_eq!(rejected(&chain, &empty), TxError::EmptyKey);
}

#[test]
fn transfer_to_self_and_zero_amount_are_refused() {
    let mut chain = TestChain::new(4, 3);
    let tx = chain.transfer(1, 1, 5);
    assert_eq!(rejected(&chain, &tx), TxError::SelfTransfer);
    let mut chain = TestChain::new(4, 3);
    let tx = chain.transfer(1, 2, 0);
    assert_eq!(rejected(&chain, &tx), TxError::ZeroAmount);
}

#[test]
fn transfer_to_unknown_recipient_is_refused() {
    let mut chain = TestChain::new(4, 3);
    let to = stranger().public();
    let tx = chain.tx(1, Op::Transfer { to, amount: 3 });
    assert_eq!(rejected(&chain, &tx), TxError::UnknownRecipient(to));
}

#[test]
fn wrong_chain_is_refused() {
    let chain = TestChain::new(4, 3);
    let k = &chain.account_keys[1];
    let tx = Tx {
        chain_id: "other".into(),
        sender: k.public(),
        nonce: 1,
        op: Op::Delete { key: b"x".to_vec() },
    }
    .sign(k);
    assert_eq!(
        rejected(&chain, &tx),
        TxError::WrongChain {
            expected: "tally-test".into(),
            found: "other".into()
        }
    );
}

#[test]
fn records_are_namespaced_and_delete_needs_a_record() {
    let mut chain = TestChain::new(4, 3);
    let put = chain.tx(
        1,
        Op::Put {
            key: b"shared".to_vec(),
            value: b"one".to_vec(),
        },
    );
    chain.push(vec![put]).unwrap();
    // Account 2 deleting the same key finds nothing in its own namespace.
    let del = chain.tx(
        2,
        Op::Delete {
            key: b"shared".to_vec(),
        },
    );
    assert_eq!(
        rejected(&chain, &del),
        TxError::RecordNotFound(b"shared".to_vec())
    );
    let owner = chain.account_keys[1].public();
    let key = StateKey::Record {
        owner,
        key: b"shared".to_vec(),
    };
    let (value, _) = get_with_proof(&chain.state, &key, chain.height()).unwrap();
    assert_eq!(value.as_deref(), Some(&b"one"[..]));
}

#[test]
fn a_refused_tx_changes_nothing() {
    let mut chain = TestChain::new(4, 3);
    let good = chain.transfer(1, 2, 10);
    let bad = chain.transfer(1, 2, TEST_BALANCE * 2);
    let mut exec = BlockExecutor::new(
        &chain.state,
        Some(0),
        chain.chain_id(),
        &chain.genesis.params,
    )
    .unwrap();
    exec.apply(&good).unwrap();
    assert!(exec.apply(&bad).is_err());
    let sender: AccountState = exec
        .account(&chain.account_keys[1].public())
        .unwrap()
        .unwrap();
    assert_eq!(sender.balance, TEST_BALANCE - 10);
    assert_eq!(sender.nonce, 1);
}

#[test]
fn a_block_with_a_bad_signature_names_the_tx() {
    let mut chain = TestChain::new(4, 3);
    let ok = chain.transfer(1, 2, 1);
    let mut forged = chain.transfer(2, 1, 1);
    forged.signature.0[0] ^= 1;
    let hash = forged.hash();
    let err = execute_block(
        &chain.state,
        1,
        chain.chain_id(),
        &chain.genesis.params,
        &[ok, forged],
    )
    .unwrap_err();
    match err {
        BlockExecError::InvalidTx {
            index: 1,
            hash: h,
            error: TxError::BadSignature(_),
        } => assert_eq!(h, hash),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn the_same_block_gives_the_same_root_on_two_fresh_states() {
    let mut a = TestChain::new(4, 5);
    let b = TestChain::new(4, 5);
    let txs: Vec<_> = (0..50)
        .map(|i| a.transfer(1 + i % 4, 1 + (i + 1) % 4, 1 + i as u64))
        .collect();
    let put = a.tx(
        1,
        Op::Put {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
    );
    let mut all = txs;
    all.push(put);
    let ua = execute_block(&a.state, 1, a.chain_id(), &a.genesis.params, &all).unwrap();
    let ub = execute_block(&b.state, 1, b.chain_id(), &b.genesis.params, &all).unwrap();
    assert_eq!(ua.root, ub.root);
    assert_ne!(
        ua.root,
        root_at(&a.state, 0).unwrap(),
        "the block changed the state"
    );
}

#[test]
fn state_proofs_verify_inclusion_and_absence_and_fail_elsewhere() {
    let mut chain = TestChain::new(4, 3);
    let tx = chain.transfer(1, 2, 7);
    chain.push(vec![tx]).unwrap();
    let root1 = root_at(&chain.state, 1).unwrap();
    let root0 = root_at(&chain.state, 0).unwrap();
    let account = StateKey::Account(chain.account_keys[2].public());

    let (value, proof) = get_with_proof(&chain.state, &account, 1).unwrap();
    let value = value.unwrap();
    let state = AccountState::decode(&value).unwrap();
    assert_eq!(state.balance, TEST_BALANCE + 7);
    assert_eq!(
        verify_state_proof(&root1, &account, Some(&value), &proof),
        Ok(())
    );
    // Against another root, or with another value, it fails.
    assert!(verify_state_proof(&root0, &account, Some(&value), &proof).is_err());
    assert!(verify_state_proof(&root1, &account, Some(b"other"), &proof).is_err());
    assert!(verify_state_proof(&root1, &account, None, &proof).is_err());

    // Absence.
    let missing = StateKey::Account(PublicKey([9; 32]));
    let (none, absent) = get_with_proof(&chain.state, &missing, 1).unwrap();
    assert!(none.is_none());
    assert_eq!(verify_state_proof(&root1, &missing, None, &absent), Ok(()));
    assert!(verify_state_proof(&root1, &missing, Some(b"x"), &absent).is_err());

    // The proof survives its encoding, and a changed byte breaks it.
    let bytes = proof.to_bytes();
    let back = StateProof::from_bytes(&bytes).unwrap();
    assert_eq!(
        verify_state_proof(&root1, &account, Some(&value), &back),
        Ok(())
    );
    // Any one changed byte either fails to decode or fails to verify, and
    // some changes decode (so verification itself is what catches them).
    let mut caught_by_verification = 0;
    for i in 0..bytes.len() {
        let mut tampered = bytes.clone();
        tampered[i] ^= 1;
        if let Ok(p) = StateProof::from_bytes(&tampered) {
            assert!(
                verify_state_proof(&root1, &account, Some(&value), &p).is_err(),
                "byte {i}"
            );
            caught_by_verification += 1;
        }
    }
    assert!(caught_by_verification > 0);
    // Older versions stay provable.
    let (old, old_proof) = get_with_proof(&chain.state, &account, 0).unwrap();
    assert_eq!(
        verify_state_proof(&root0, &account, old.as_deref(), &old_proof),
        Ok(())
    );
}
