//! Membership changes: validators added, removed, re-weighted and rotated,
//! replicas admitted and removed, each applying from the second block after
//! the one that approves it; every refusal with its exact reason; the
//! certificates of later heights judged by the set then in force.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use tally_ledger::audit::{audit, AuditOptions};
use tally_ledger::crypto::Domain;
use tally_ledger::execution::{ApplyError, BlockExecError, TxError};
use tally_ledger::genesis::{peer_id_from_node_key, Genesis};
use tally_ledger::governance::{
    read_change, Change, ChangeStatus, GovernanceError, GovernanceParams,
};
use tally_ledger::membership::{
    read_allowed_nodes, read_validators, rotation_message, MembershipError, Replicas,
};
use tally_ledger::state::{self, StateKey};
use tally_ledger::store::Store;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::{CommitCertificate, CommitSig, Op, Role, SignedTx};
use tally_ledger::verify::{
    verify_certificate, BlockError, CertificateError, ContentError, Placement,
};
use tally_ledger::{Keypair, PublicKey};

fn key(seed: u8) -> Keypair {
    Keypair::from_seed([seed; 32])
}

/// The identity point: a key anyone can sign for.
fn weak_key() -> PublicKey {
    let mut b = [0u8; 32];
    b[0] = 1;
    PublicKey(b)
}

fn add(name: &str, consensus: u8, node: u8, power: u64) -> Change {
    Change::AddValidator {
        name: name.into(),
        public_key: key(consensus).public(),
        node_key: key(node).public(),
        power,
    }
}

fn propose(chain: &mut TestChain, from: usize, change: Change) -> SignedTx {
    chain.tx(
        from,
        Op::Propose {
            change: Box::new(change),
        },
    )
}

/// Why `tx` is refused on the current state; its nonce is free again.
fn refused(chain: &mut TestChain, tx: &SignedTx) -> TxError {
    let error = match chain.try_apply(tx) {
        Err(ApplyError::Tx(e)) => e,
        other => panic!("expected a tx error, got {other:?}"),
    };
    chain.take_back(tx);
    error
}

fn membership(e: MembershipError) -> TxError {
    TxError::Membership(e)
}

/// The rotation of validator `index` of `chain`'s genesis to `new_key`,
/// with the old key's consent.
fn rotation(chain: &TestChain, index: usize, new_key: PublicKey) -> Change {
    let old = &chain.validator_keys[index];
    Change::RotateKey {
        public_key: old.public(),
        new_key,
        consent: old.sign(
            Domain::Rotation,
            chain.chain_id(),
            &rotation_message(&old.public(), &new_key),
        ),
    }
}

/// `block`'s certificate signed by `signers`: (index in the certificate,
/// signing key).
fn certificate(
    chain: &TestChain,
    cert: &CommitCertificate,
    signers: &[(u32, &Keypair)],
) -> CommitCertificate {
    let message = cert.vote().message();
    CommitCertificate {
        signatures: signers
            .iter()
            .map(|(index, k)| CommitSig {
                validator_index: *index,
                signature: k.sign(Domain::Vote, chain.chain_id(), &message),
            })
            .collect(),
        ..cert.clone()
    }
}

#[test]
fn an_added_validator_decides_from_the_second_block_after_its_change() {
    let mut chain = TestChain::new(4, 3);
    let genesis_hash = chain.rules.validators_hash();
    let tx = propose(&mut chain, 0, add("node4", 0x41, 0x51, 10));
    chain.push(vec![tx]).unwrap(); // block 1 applies the change
    chain.hold_key(key(0x41));

    // The state after block 1 names the old set for block 2 and the new
    // one for block 3; block 2's header commits to both.
    assert_eq!(read_validators(&chain.state, 2).unwrap().0.len(), 4);
    let next = state::read(&chain.state, &StateKey::NextValidators, 1)
        .unwrap()
        .unwrap();
    let next = tally_ledger::membership::Validators::decode(&next).unwrap();
    assert_eq!(next.0.len(), 5);
    assert_eq!(next.0[4].name, "node4");
    let (block2, cert2, _) = chain.push(vec![]).unwrap();
    assert_eq!(block2.header.validators_hash, genesis_hash);
    assert_eq!(
        block2.header.next_validators_hash,
        next.set().unwrap().hash()
    );
    assert_eq!(cert2.signatures.len(), 4, "block 2 is the old set's");

    // Block 3 is the new set's: five signatures, a five-slot schedule.
    let rules3 = chain.rules.clone();
    assert_eq!(rules3.height, 3);
    assert_eq!(rules3.set.len(), 5);
    assert!((0..5).any(|r| rules3.schedule.proposer(3, r) == 4));
    let parent = chain.parent_of_next();
    let (block3, cert3, _) = chain.push(vec![]).unwrap();
    assert_eq!(cert3.signatures.len(), 5);
    assert_eq!(block3.header.validators_hash, next.set().unwrap().hash());
    verify_certificate(&cert3, &rules3.set, chain.chain_id()).unwrap();
    // The old set's rules refuse the block: its header names the new set.
    let placement = Placement {
        parent,
        round: 0,
        now_ms: None,
    };
    let size = tally_ledger::encoding::encoded_len(&block3);
    assert!(matches!(
        TestChain::new(4, 3)
            .rules
            .check_block(&block3, size, &placement),
        Err(BlockError::ValidatorsHash { .. })
    ));
    rules3.check_block(&block3, size, &placement).unwrap();
    // Block 4 carries block 3's certificate, checked against the new set.
    let (block4, _, _) = chain.push(vec![]).unwrap();
    assert_eq!(block4.last_commit.as_ref().unwrap().signatures.len(), 5);
    let rules4 = chain.rules.at_height(&chain.state, 4).unwrap();
    assert_eq!(rules4.check_certificates(&block4, None), Ok(5));
    assert!(matches!(
        TestChain::new(4, 3).rules.check_certificates(&block4, None),
        Err(ContentError::LastCommit(
            CertificateError::UnknownValidator { index: 4, .. }
        ))
    ));
}

#[test]
fn a_removed_validators_signatures_count_for_nothing() {
    let mut chain = TestChain::new(4, 3);
    let removed = chain.validator_keys[3].public();
    let tx = propose(
        &mut chain,
        0,
        Change::RemoveValidator {
            public_key: removed,
        },
    );
    chain.push(vec![tx]).unwrap();
    let (_, cert2, _) = chain.push(vec![]).unwrap();
    assert_eq!(cert2.signatures.len(), 4, "its removal applies at block 3");
    let set3 = chain.rules.set.clone();
    assert_eq!(set3.len(), 3);
    assert_eq!(set3.index_of(&removed), None);
    let (_, cert3, _) = chain.push(vec![]).unwrap();
    let k = &chain.validator_keys;
    // Its signature under its old index: no such validator any more.
    let at_old = certificate(&chain, &cert3, &[(0, &k[0]), (1, &k[1]), (3, &k[3])]);
    assert_eq!(
        verify_certificate(&at_old, &set3, chain.chain_id()),
        Err(CertificateError::UnknownValidator {
            position: 2,
            index: 3,
            len: 3
        })
    );
    // Under another validator's index: that validator's key must sign.
    let posing = certificate(&chain, &cert3, &[(0, &k[0]), (1, &k[1]), (2, &k[3])]);
    assert_eq!(
        verify_certificate(&posing, &set3, chain.chain_id()),
        Err(CertificateError::BadSignature { index: 2 })
    );
    // Without it, two of the three are not a quorum.
    let two = certificate(&chain, &cert3, &[(0, &k[0]), (1, &k[1])]);
    assert_eq!(
        verify_certificate(&two, &set3, chain.chain_id()),
        Err(CertificateError::NoQuorum {
            signed: 20,
            total: 30
        })
    );
    let three = certificate(&chain, &cert3, &[(0, &k[0]), (1, &k[1]), (2, &k[2])]);
    verify_certificate(&three, &set3, chain.chain_id()).unwrap();
}

#[test]
fn a_rotated_key_stops_counting_and_the_new_one_counts() {
    let mut chain = TestChain::new(4, 3);
    let new_key = key(0x61);
    let change = rotation(&chain, 1, new_key.public());
    let tx = propose(&mut chain, 0, change);
    chain.push(vec![tx]).unwrap();
    chain.hold_key(key(0x61));
    chain.push(vec![]).unwrap();
    let set3 = chain.rules.set.clone();
    assert_eq!(set3.get(1).unwrap().public_key, new_key.public());
    let (_, cert3, _) = chain.push(vec![]).unwrap();
    let k = &chain.validator_keys;
    let old = certificate(&chain, &cert3, &[(0, &k[0]), (1, &k[1]), (2, &k[2])]);
    assert_eq!(
        verify_certificate(&old, &set3, chain.chain_id()),
        Err(CertificateError::BadSignature { index: 1 })
    );
    let new = certificate(&chain, &cert3, &[(0, &k[0]), (1, &new_key), (2, &k[2])]);
    verify_certificate(&new, &set3, chain.chain_id()).unwrap();
    // The validator keeps its name, node and power.
    let entry = &read_validators(&chain.state, 4).unwrap().0[1];
    assert_eq!(entry.name, "node1");
    assert_eq!(entry.power, 10);
}

#[test]
fn changes_that_break_a_limit_are_refused_with_their_reason() {
    let mut chain = TestChain::new(4, 3);
    let k: Vec<PublicKey> = chain.validator_keys.iter().map(|k| k.public()).collect();

    // More than a third of the power (40) moved.
    let tx = propose(&mut chain, 0, add("big", 0x41, 0x51, 14));
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::TooMuchPowerMoved {
            moved: 14,
            total: 40
        })
    );
    let tx = propose(
        &mut chain,
        0,
        Change::SetPower {
            public_key: k[0],
            power: 24,
        },
    );
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::TooMuchPowerMoved {
            moved: 14,
            total: 40
        })
    );
    // Within a block the changes add up: each alone moves a quarter.
    let first = propose(&mut chain, 0, add("a", 0x41, 0x51, 10));
    let second = propose(&mut chain, 0, add("b", 0x42, 0x52, 10));
    let back = first.clone();
    match chain.build_block(vec![first, second]) {
        Err(BlockExecError::InvalidTx {
            index: 1, error, ..
        }) => assert_eq!(
            error,
            membership(MembershipError::TooMuchPowerMoved {
                moved: 20,
                total: 40
            })
        ),
        other => panic!("expected the second change refused, got {other:?}"),
    }
    chain.take_back(&back);

    // Keys in use, by consensus key and by node key.
    let change = rotation(&chain, 0, k[1]);
    let tx = propose(&mut chain, 0, change);
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::ConsensusKeyInUse {
            key: k[1],
            name: "node1".into()
        })
    );
    let node_key =
        tally_ledger::genesis::node_key_from_peer_id(&chain.genesis.validators[2].peer_id).unwrap();
    let tx = propose(
        &mut chain,
        0,
        Change::AddReplica {
            name: "r".into(),
            node_key,
        },
    );
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::NodeKeyInUse {
            peer_id: chain.genesis.validators[2].peer_id.clone(),
            name: "node2".into()
        })
    );
    let tx = propose(&mut chain, 0, add("node1", 0x41, 0x51, 1));
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::NameInUse("node1".into()))
    );

    // Weak keys.
    let change = rotation(&chain, 0, weak_key());
    let tx = propose(&mut chain, 0, change);
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::WeakKey(weak_key()))
    );
    let tx = propose(
        &mut chain,
        0,
        Change::AddValidator {
            name: "w".into(),
            public_key: weak_key(),
            node_key: key(0x52).public(),
            power: 1,
        },
    );
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::WeakKey(weak_key()))
    );

    // A rotation the old key did not sign.
    let mut forged = rotation(&chain, 0, key(0x62).public());
    if let Change::RotateKey { consent, .. } = &mut forged {
        *consent = key(0x62).sign(
            Domain::Rotation,
            chain.chain_id(),
            &rotation_message(&k[0], &key(0x62).public()),
        );
    }
    let tx = propose(&mut chain, 0, forged);
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::NoConsent(k[0]))
    );
    // Consent given on another chain does not count here.
    let old = &chain.validator_keys[0];
    let elsewhere = Change::RotateKey {
        public_key: k[0],
        new_key: key(0x62).public(),
        consent: old.sign(
            Domain::Rotation,
            "another-chain",
            &rotation_message(&k[0], &key(0x62).public()),
        ),
    };
    let tx = propose(&mut chain, 0, elsewhere);
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::NoConsent(k[0]))
    );

    // Zero power, and validators that do not exist.
    let tx = propose(
        &mut chain,
        0,
        Change::SetPower {
            public_key: k[0],
            power: 0,
        },
    );
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::ZeroPower)
    );
    let stranger = key(0x63).public();
    let tx = propose(
        &mut chain,
        0,
        Change::RemoveValidator {
            public_key: stranger,
        },
    );
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::UnknownValidator(stranger))
    );
    // Only admins propose.
    let tx = propose(&mut chain, 1, add("m", 0x41, 0x51, 1));
    assert_eq!(
        refused(&mut chain, &tx),
        TxError::NotAdmin(chain.account_keys[1].public())
    );
}

#[test]
fn the_last_validator_cannot_be_removed() {
    let mut chain = TestChain::new(1, 3);
    let only = chain.validator_keys[0].public();
    let tx = propose(&mut chain, 0, Change::RemoveValidator { public_key: only });
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::EmptySet)
    );
}

/// Four validators; accounts 0, 1 and 2 admins with a threshold of 2.
fn council_chain(expiry: u64) -> TestChain {
    let base = TestChain::new(4, 5);
    let mut genesis: Genesis = base.genesis.clone();
    for a in &mut genesis.accounts[..3] {
        a.role = Role::Admin;
    }
    genesis.governance = GovernanceParams {
        threshold: 2,
        expiry_blocks: expiry,
    };
    genesis.validate().unwrap();
    TestChain::from_genesis(genesis, base.validator_keys, base.account_keys)
}

fn next_len(chain: &TestChain) -> usize {
    let bytes = state::read(&chain.state, &StateKey::NextValidators, chain.height())
        .unwrap()
        .unwrap();
    tally_ledger::membership::Validators::decode(&bytes)
        .unwrap()
        .0
        .len()
}

#[test]
fn a_validator_change_below_the_threshold_waits_and_then_expires() {
    let mut chain = council_chain(2);
    let tx = propose(&mut chain, 0, add("node4", 0x41, 0x51, 10));
    let id = tx.hash();
    chain.push(vec![tx]).unwrap();
    assert_eq!(next_len(&chain), 4, "one approval of two applied it");
    for _ in 0..3 {
        chain.push(vec![]).unwrap();
    }
    let late = chain.tx(1, Op::Approve { change: id });
    assert_eq!(
        refused(&mut chain, &late),
        TxError::Governance(GovernanceError::Expired { id, at: 3 })
    );
    assert_eq!(next_len(&chain), 4);

    // Approved in time, it applies with the approval.
    let tx = propose(&mut chain, 0, add("node4", 0x41, 0x51, 10));
    let id = tx.hash();
    chain.push(vec![tx]).unwrap();
    let approve = chain.tx(2, Op::Approve { change: id });
    chain.push(vec![approve]).unwrap();
    let h = chain.height();
    assert_eq!(
        read_change(&chain.state, &id, h)
            .unwrap()
            .unwrap()
            .status_at(h),
        ChangeStatus::Applied { height: h }
    );
    assert_eq!(next_len(&chain), 5);
    assert_eq!(read_validators(&chain.state, h + 1).unwrap().0.len(), 4);
}

#[test]
fn replicas_are_admitted_and_removed_and_the_allowed_nodes_follow() {
    let mut chain = TestChain::new(4, 3);
    let replica = key(0x71).public();
    let tx = propose(
        &mut chain,
        0,
        Change::AddReplica {
            name: "auditor".into(),
            node_key: replica,
        },
    );
    chain.push(vec![tx]).unwrap();
    let replicas = state::read(&chain.state, &StateKey::Replicas, 1)
        .unwrap()
        .unwrap();
    assert_eq!(Replicas::decode(&replicas).unwrap().0[0].name, "auditor");
    assert!(read_allowed_nodes(&chain.state, 1)
        .unwrap()
        .contains(&replica));
    let again = propose(
        &mut chain,
        0,
        Change::AddReplica {
            name: "auditor2".into(),
            node_key: replica,
        },
    );
    assert_eq!(
        refused(&mut chain, &again),
        membership(MembershipError::NodeKeyInUse {
            peer_id: peer_id_from_node_key(&replica),
            name: "auditor".into()
        })
    );
    let tx = propose(&mut chain, 0, Change::RemoveReplica { node_key: replica });
    chain.push(vec![tx]).unwrap();
    assert!(!read_allowed_nodes(&chain.state, 2)
        .unwrap()
        .contains(&replica));
    let tx = propose(&mut chain, 0, Change::RemoveReplica { node_key: replica });
    assert_eq!(
        refused(&mut chain, &tx),
        membership(MembershipError::UnknownReplica(peer_id_from_node_key(
            &replica
        )))
    );

    // A removed validator's node stays allowed until its removal applies.
    let v3 = chain.validator_keys[3].public();
    let node3 =
        tally_ledger::genesis::node_key_from_peer_id(&chain.genesis.validators[3].peer_id).unwrap();
    let tx = propose(&mut chain, 0, Change::RemoveValidator { public_key: v3 });
    chain.push(vec![tx]).unwrap();
    let h = chain.height();
    assert!(read_allowed_nodes(&chain.state, h)
        .unwrap()
        .contains(&node3));
    chain.push(vec![]).unwrap();
    assert!(!read_allowed_nodes(&chain.state, h + 1)
        .unwrap()
        .contains(&node3));
}

#[test]
fn the_audit_checks_every_certificate_against_the_set_of_its_height() {
    let mut chain = TestChain::new(4, 3);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db"), &chain.genesis).unwrap();
    let newcomer = key(0x41);
    let rotated = key(0x61);
    let mut plan: Vec<Option<Change>> = vec![Some(add("node4", 0x41, 0x51, 10)), None, None];
    plan.push(Some(rotation(&chain, 2, rotated.public())));
    plan.extend([None, None]);
    plan.push(Some(Change::RemoveValidator {
        public_key: chain.validator_keys[0].public(),
    }));
    plan.extend([None, None, None]);
    chain.hold_key(newcomer);
    chain.hold_key(rotated);
    for change in plan {
        let txs = match change {
            Some(c) => vec![propose(&mut chain, 0, c)],
            None => vec![chain.transfer(1, 2, 1)],
        };
        let (block, cert, update) = chain.push(txs).unwrap();
        store.commit_block(&block, &cert, &update).unwrap();
    }
    let report = audit(
        &store,
        &chain.genesis,
        &AuditOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.fault, None);
    let changes: Vec<(u64, usize)> = report
        .summary
        .set_changes
        .iter()
        .map(|c| (c.height, c.validators))
        .collect();
    assert_eq!(changes, vec![(3, 5), (6, 5), (9, 4)]);
    assert_eq!(report.summary.blocks, 10);
}
