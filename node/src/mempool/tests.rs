//! Unit tests of the parent module.

use super::*;
use tally_ledger::testkit::TestChain;
use tally_ledger::types::Op;

struct View(BTreeMap<PublicKey, AccountState>);
impl AccountView for View {
    fn account(&self, key: &PublicKey) -> Option<AccountState> {
        self.0.get(key).cloned()
    }
}

fn setup(max_txs: usize) -> (TestChain, Mempool, View) {
    setup_with(max_txs, 4)
}

fn setup_with(max_txs: usize, future_nonce_window: u32) -> (TestChain, Mempool, View) {
    let chain = TestChain::new(4, 4);
    let view = View(
        chain
            .account_keys
            .iter()
            .map(|k| {
                (
                    k.public(),
                    AccountState {
                        role: tally_ledger::Role::Member,
                        active: true,
                        balance: 1_000,
                        nonce: 0,
                    },
                )
            })
            .collect(),
    );
    let pool = Mempool::new(
        chain.chain_id(),
        chain.genesis.params.clone(),
        MempoolLimits {
            max_txs,
            max_bytes: 1 << 20,
            future_nonce_window,
        },
    );
    (chain, pool, view)
}

#[test]
fn admits_dedups_and_orders_by_nonce() {
    let (mut chain, mut pool, view) = setup(100);
    let a = chain.transfer(1, 2, 1);
    let b = chain.transfer(1, 2, 1);
    let c = chain.transfer(2, 1, 1);
    pool.admit(b.clone(), &view).unwrap();
    pool.admit(a.clone(), &view).unwrap();
    pool.admit(c.clone(), &view).unwrap();
    assert_eq!(
        pool.admit(a.clone(), &view),
        Err(MempoolError::Duplicate(a.hash()))
    );
    assert_eq!(pool.len(), 3);
    // Interleaved across senders, nonce order within each.
    let order: Vec<Hash> = pool
        .candidates(10, 1 << 20)
        .iter()
        .map(SignedTx::hash)
        .collect();
    let pos = |h: Hash| order.iter().position(|x| *x == h).unwrap();
    assert!(pos(a.hash()) < pos(b.hash()));
    assert_eq!(order.len(), 3);
    assert_eq!(pool.candidates(1, 1 << 20).len(), 1);
}

#[test]
fn refuses_bad_signature_unknown_sender_stale_and_far_future_nonces() {
    let (mut chain, mut pool, mut view) = setup(100);
    let mut forged = chain.transfer(1, 2, 1);
    forged.signature.0[3] ^= 1;
    assert!(matches!(
        pool.admit(forged.clone(), &view),
        Err(MempoolError::Invalid(TxError::BadSignature(_)))
    ));
    assert!(matches!(
        pool.status(&forged.hash()),
        Some(PoolStatus::Rejected(_))
    ));

    let stranger = tally_ledger::Keypair::from_seed([0xcc; 32]);
    let tx = tally_ledger::Tx {
        chain_id: chain.chain_id().into(),
        sender: stranger.public(),
        nonce: 1,
        op: Op::Delete { key: b"k".to_vec() },
    }
    .sign(&stranger);
    assert_eq!(
        pool.admit(tx, &view),
        Err(MempoolError::Invalid(TxError::UnknownSender(
            stranger.public()
        )))
    );

    view.0
        .get_mut(&chain.account_keys[2].public())
        .unwrap()
        .nonce = 5;
    let stale = chain.transfer(2, 1, 1); // nonce 1
    assert_eq!(
        pool.admit(stale, &view),
        Err(MempoolError::StaleNonce {
            committed: 5,
            found: 1
        })
    );
    for _ in 0..8 {
        chain.transfer(3, 1, 1);
    }
    let far = chain.transfer(3, 1, 1); // nonce 9, next is 1, window 4
    assert_eq!(
        pool.admit(far, &view),
        Err(MempoolError::FutureNonce {
            next: 1,
            found: 9,
            window: 4
        })
    );
}

#[test]
fn a_full_pool_refuses_clearly() {
    let (mut chain, mut pool, view) = setup(2);
    pool.admit(chain.transfer(1, 2, 1), &view).unwrap();
    pool.admit(chain.transfer(2, 1, 1), &view).unwrap();
    let err = pool.admit(chain.transfer(3, 1, 1), &view).unwrap_err();
    assert!(matches!(err, MempoolError::Full { txs: 2, .. }));
    assert!(err.to_string().contains("try again"));
}

#[test]
fn update_drops_committed_and_evicts_with_a_reason() {
    let (mut chain, mut pool, mut view) = setup(100);
    let a = chain.transfer(1, 2, 1);
    let b = chain.transfer(1, 2, 1);
    let c = chain.transfer(2, 1, 1);
    for t in [&a, &b, &c] {
        pool.admit(t.clone(), &view).unwrap();
    }
    // Block commits `a`; account 2 is revoked in the same block.
    view.0
        .get_mut(&chain.account_keys[1].public())
        .unwrap()
        .nonce = 1;
    view.0
        .get_mut(&chain.account_keys[2].public())
        .unwrap()
        .active = false;
    pool.update(&[a.hash()], &view);
    assert_eq!(pool.status(&a.hash()), None);
    assert_eq!(pool.status(&b.hash()), Some(PoolStatus::Pending));
    match pool.status(&c.hash()) {
        Some(PoolStatus::Rejected(reason)) => assert!(reason.contains("revoked"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(pool.len(), 1);
}

fn rejected(pool: &Mempool, tx: &SignedTx) -> String {
    match pool.status(&tx.hash()) {
        Some(PoolStatus::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn one_sender_cannot_hold_more_than_its_cap() {
    let (mut chain, mut pool, view) = setup_with(50_000, 20_000);
    let sender = chain.account_keys[1].public();
    let mut admitted = 0;
    let mut refused = 0;
    for _ in 0..10_000 {
        match pool.admit(chain.transfer(1, 2, 1), &view) {
            Ok(_) => admitted += 1,
            Err(e) => {
                assert_eq!(
                    e,
                    MempoolError::SenderFull {
                        sender,
                        pending: SENDER_TXS_MAX,
                        max: SENDER_TXS_MAX
                    }
                );
                refused += 1;
            }
        }
    }
    assert_eq!(
        (admitted, refused),
        (SENDER_TXS_MAX, 10_000 - SENDER_TXS_MAX)
    );
    assert_eq!(pool.len(), SENDER_TXS_MAX);
    let message = pool
        .admit(chain.transfer(1, 2, 1), &view)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(&sender.to_string()) && message.contains("(1000)"),
        "{message}"
    );
    // Other senders are not affected.
    pool.admit(chain.transfer(2, 1, 1), &view).unwrap();
    assert_eq!(pool.len(), SENDER_TXS_MAX + 1);
}

#[test]
fn a_gap_that_never_fills_is_evicted_with_its_age() {
    let (mut chain, mut pool, mut view) = setup(100);
    let t0 = Instant::now();
    // Sender 1 skips nonce 2: its nonce 3 and 4 wait behind the gap,
    // admitted before the mempool was first told the time.
    let one = chain.transfer(1, 2, 1);
    chain.transfer(1, 2, 1);
    let three = chain.transfer(1, 2, 1);
    let four = chain.transfer(1, 2, 1);
    for t in [&one, &three, &four] {
        pool.admit(t.clone(), &view).unwrap();
    }
    assert_eq!(pool.expire(t0), 0);
    // Sender 2 is executable and old: never evicted for age.
    let ready = chain.transfer(2, 1, 1);
    pool.admit(ready.clone(), &view).unwrap();
    // Sender 3's gap fills in time.
    let late = chain.transfer(3, 1, 1);
    let waiting = chain.transfer(3, 1, 1);
    assert_eq!(pool.expire(t0 + Duration::from_secs(10)), 0);
    pool.admit(waiting.clone(), &view).unwrap();

    // Only executable transactions are offered to the block builder.
    let offered: Vec<Hash> = pool
        .candidates(100, 1 << 20)
        .iter()
        .map(SignedTx::hash)
        .collect();
    assert_eq!(offered.len(), 2);
    assert!(offered.contains(&one.hash()) && offered.contains(&ready.hash()));

    assert_eq!(pool.expire(t0 + Duration::from_secs(30)), 0);
    pool.admit(late.clone(), &view).unwrap();
    // Nonce 1 of sender 1 is committed: its gap (nonce 2) remains, and
    // keeps its age.
    view.0
        .get_mut(&chain.account_keys[1].public())
        .unwrap()
        .nonce = 1;
    pool.update(&[one.hash()], &view);
    assert_eq!(pool.expire(t0 + Duration::from_secs(59)), 0);
    assert_eq!(pool.expire(t0 + Duration::from_secs(60)), 2);
    for t in [&three, &four] {
        assert_eq!(
            rejected(&pool, t),
            "stuck behind a nonce gap for 60 s: nonce 2 never arrived"
        );
    }
    for t in [&ready, &late, &waiting] {
        assert_eq!(pool.status(&t.hash()), Some(PoolStatus::Pending));
    }
    assert_eq!(pool.expire(t0 + Duration::from_secs(3600)), 0);
    assert_eq!(pool.len(), 3);
}

#[test]
fn a_full_pool_of_waiting_txs_makes_room_for_an_executable_newcomer() {
    let (mut chain, mut pool, view) = setup(3);
    // Sender 1 fills the pool with nonces 2, 3 and 4: all wait for 1.
    chain.transfer(1, 2, 1);
    let waiting: Vec<SignedTx> = (0..3).map(|_| chain.transfer(1, 2, 1)).collect();
    for t in &waiting {
        pool.admit(t.clone(), &view).unwrap();
    }
    // A newcomer that would wait too is refused.
    chain.transfer(2, 1, 1);
    let gapped = chain.transfer(2, 1, 1);
    assert!(matches!(
        pool.admit(gapped, &view),
        Err(MempoolError::Full { txs: 3, .. })
    ));
    // An executable one takes the place of the highest waiting nonce.
    let ready = chain.transfer(3, 1, 1);
    pool.admit(ready.clone(), &view).unwrap();
    assert_eq!(pool.len(), 3);
    assert_eq!(pool.status(&ready.hash()), Some(PoolStatus::Pending));
    assert_eq!(pool.status(&waiting[0].hash()), Some(PoolStatus::Pending));
    assert_eq!(pool.status(&waiting[1].hash()), Some(PoolStatus::Pending));
    assert_eq!(
        rejected(&pool, &waiting[2]),
        "evicted to make room in a full mempool: it waits behind nonce 1, which has not arrived"
    );
}

#[test]
fn a_batch_is_checked_together_and_each_failure_named_at_its_place() {
    let (mut chain, mut pool, view) = setup(100);
    let good = chain.transfer(1, 2, 1);
    let mut other_chain = chain.transfer(1, 2, 1);
    other_chain.tx.chain_id = "another-chain".into();
    let mut forged = chain.transfer(2, 1, 1);
    forged.signature.0[0] ^= 1;
    let good_too = chain.transfer(2, 1, 1);
    let txs = vec![good.clone(), other_chain.clone(), forged.clone(), good_too];
    let checks = check_signatures(&txs, chain.chain_id());
    assert_eq!(checks[0], Ok(()));
    assert!(matches!(
        checks[1],
        Err(MempoolError::Invalid(TxError::WrongChain { .. }))
    ));
    assert!(matches!(
        checks[2],
        Err(MempoolError::Invalid(TxError::BadSignature(_)))
    ));
    assert_eq!(checks[3], Ok(()));
    // A failed check is the transaction's remembered refusal.
    let check = checks[2].clone();
    assert!(pool.admit_checked(forged.clone(), check, &view).is_err());
    assert!(matches!(
        pool.status(&forged.hash()),
        Some(PoolStatus::Rejected(_))
    ));
    assert_eq!(
        pool.admit_checked(good.clone(), Ok(()), &view),
        Ok(good.hash())
    );
    // A check that failed inside the node is no refusal: the same
    // transaction is taken when it comes again.
    let unchecked = chain.transfer(3, 1, 1);
    assert_eq!(
        pool.admit_checked(unchecked.clone(), Err(MempoolError::Unchecked), &view),
        Err(MempoolError::Unchecked)
    );
    assert_eq!(pool.status(&unchecked.hash()), None);
    assert_eq!(
        pool.admit_gossiped(unchecked.clone(), &view),
        Ok(unchecked.hash())
    );
}

#[test]
fn a_refused_transaction_echoed_by_gossip_stays_refused_but_a_client_may_send_it_again() {
    let (mut chain, mut pool, mut view) = setup(100);
    for _ in 0..8 {
        chain.transfer(3, 1, 1);
    }
    let far = chain.transfer(3, 1, 1); // nonce 9, next is 1, window 4
    assert!(matches!(
        pool.admit_verified(far.clone(), &view),
        Err(MempoolError::FutureNonce { .. })
    ));
    // The sender's nonce moves on: the transaction would be admissible now.
    view.0
        .get_mut(&chain.account_keys[3].public())
        .unwrap()
        .nonce = 7;
    assert_eq!(
        pool.admit_gossiped(far.clone(), &view),
        Err(MempoolError::Duplicate(far.hash()))
    );
    assert!(rejected(&pool, &far).contains("nonce"));
    assert_eq!(pool.admit_verified(far.clone(), &view), Ok(far.hash()));
    assert_eq!(pool.status(&far.hash()), Some(PoolStatus::Pending));
    // A transaction it never refused comes in by gossip as before.
    let next = chain.transfer(2, 1, 1);
    assert_eq!(pool.admit_gossiped(next.clone(), &view), Ok(next.hash()));
}
