#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use super::*;
use tally_ledger::execution::TxError;
use tally_ledger::testkit::TestChain;

fn bad_signature(mut tx: SignedTx) -> SignedTx {
    tx.signature.0[0] ^= 1;
    tx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_each_get_their_own_results_in_order() {
    let mut chain = TestChain::new(4, 8);
    let checks = SigChecks::new(chain.chain_id().to_string(), 1).unwrap();
    let mut calls = Vec::new();
    let mut expected = Vec::new();
    for client in 0..40usize {
        let mut txs = Vec::new();
        let mut want = Vec::new();
        for i in 0..(1 + client % 7) {
            let tx = chain.transfer(client % 8, (client + 1) % 8, 1);
            // Every fifth transaction is forged.
            if (client + i) % 5 == 0 {
                txs.push(bad_signature(tx));
                want.push(false);
            } else {
                txs.push(tx);
                want.push(true);
            }
        }
        expected.push((txs.iter().map(SignedTx::hash).collect::<Vec<_>>(), want));
        let checks = checks.clone();
        calls.push(tokio::spawn(async move { checks.check(txs).await }));
    }
    for (call, (hashes, want)) in calls.into_iter().zip(expected) {
        let got = call.await.unwrap().unwrap();
        assert_eq!(
            got.iter().map(|(tx, _)| tx.hash()).collect::<Vec<_>>(),
            hashes
        );
        for ((_, result), ok) in got.iter().zip(want) {
            match result {
                Ok(()) => assert!(ok),
                Err(MempoolError::Invalid(TxError::BadSignature(_))) => assert!(!ok),
                Err(e) => panic!("unexpected {e}"),
            }
        }
    }
    // No check is left running or waiting, and every room was given back.
    let q = checks.shared.lock();
    assert_eq!((q.checking, q.jobs.len(), q.backlog), (0, 0, 0));
    drop(q);
    assert_eq!(
        (
            checks.shared.rpc_room.available_permits(),
            checks.shared.gossip_room.available_permits()
        ),
        (QUEUED_TXS_MAX, QUEUED_TXS_MAX)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_make_its_transactions_gets_its_reason_and_others_are_checked() {
    let mut chain = TestChain::new(4, 4);
    let checks = SigChecks::new(chain.chain_id().to_string(), 1).unwrap();
    let good = chain.transfer(0, 1, 1);
    let hash = good.hash();
    let (failed, panicked, ok) = tokio::join!(
        checks.check_with(3, Box::new(|| Err("undecodable transaction batch"))),
        checks.check_with(3, Box::new(|| panic!("a decoder bug"))),
        checks.check_with(1, Box::new(move || Ok(vec![good]))),
    );
    assert_eq!(
        failed.unwrap().unwrap_err(),
        "undecodable transaction batch"
    );
    assert_eq!(panicked.unwrap().unwrap_err(), READ_FAILED);
    let ok = ok.unwrap().unwrap();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].0.hash(), hash);
    assert!(ok[0].1.is_ok());
    assert_eq!(
        (
            checks.shared.rpc_room.available_permits(),
            checks.shared.gossip_room.available_permits()
        ),
        (QUEUED_TXS_MAX, QUEUED_TXS_MAX)
    );
}

/// The real check, but a fault in it (a panic) for any transaction
/// of the chain "poison".
fn poisoned(txs: &[SignedTx], chain_id: &str, groups: &[usize]) -> Vec<Result<(), MempoolError>> {
    assert!(
        txs.iter().all(|tx| tx.tx.chain_id != "poison"),
        "a fault in the check"
    );
    check_signatures_grouped(txs, chain_id, groups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_that_panics_fails_only_the_batch_it_panics_on() {
    let mut chain = TestChain::new(4, 4);
    let checks = SigChecks::with_check(chain.chain_id().to_string(), 1, poisoned).unwrap();
    // The one checker is held, so that both batches below wait and go
    // into one check.
    let (first, release_tx) = held_check(&checks, 1, chain.transfer(3, 0, 1)).await;
    let mut poison = chain.transfer(0, 1, 1);
    poison.tx.chain_id = "poison".into();
    let others = vec![
        chain.transfer(1, 2, 1),
        bad_signature(chain.transfer(2, 3, 1)),
    ];
    let at_fault = tokio::spawn({
        let checks = checks.clone();
        async move { checks.check(vec![poison]).await }
    });
    let innocent = tokio::spawn({
        let checks = checks.clone();
        async move { checks.check(others).await }
    });
    until_waiting(&checks, 2).await;
    release_tx.send(()).unwrap();
    assert!(first.await.unwrap().unwrap().is_ok());
    let at_fault = at_fault.await.unwrap().unwrap();
    assert!(matches!(at_fault[..], [(_, Err(MempoolError::Unchecked))]));
    let innocent = innocent.await.unwrap().unwrap();
    assert!(matches!(
        innocent[..],
        [
            (_, Ok(())),
            (_, Err(MempoolError::Invalid(TxError::BadSignature(_))))
        ]
    ));
    // The checker goes on.
    let later = checks.check(vec![chain.transfer(3, 0, 1)]).await.unwrap();
    assert!(later[0].1.is_ok());
}

/// Yields until `checks` holds `jobs` waiting jobs.
async fn until_waiting(checks: &SigChecks, jobs: usize) {
    while checks.shared.lock().jobs.len() != jobs {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_wait_for_the_running_check_and_a_backlog_starts_another() {
    let mut chain = TestChain::new(4, 4);
    let checks = SigChecks::new(chain.chain_id().to_string(), 2).unwrap();
    // The first check is held until released: it occupies a checker.
    let (first, release_tx) = held_check(&checks, 1, chain.transfer(0, 1, 1)).await;
    // A small batch waits: no second checker for it.
    let small = tokio::spawn({
        let checks = checks.clone();
        let txs = vec![chain.transfer(1, 2, 1)];
        async move { checks.check(txs).await }
    });
    until_waiting(&checks, 1).await;
    assert_eq!(checks.shared.lock().checking, 1);
    // A backlog starts a second checker, which takes both waiting
    // batches while the first check is still held.
    let large = checks.check_with(
        PARALLEL_BACKLOG_MIN,
        Box::new({
            let txs = vec![chain.transfer(2, 3, 1), chain.transfer(3, 0, 1)];
            move || Ok(txs)
        }),
    );
    let large = large.await.unwrap().unwrap();
    assert_eq!(large.len(), 2);
    let small = small.await.unwrap().unwrap();
    assert!(small.len() == 1 && small[0].1.is_ok());
    assert!(!first.is_finished());
    release_tx.send(()).unwrap();
    assert!(first.await.unwrap().unwrap().is_ok());
}

/// A check held until `release` sends, taking `weight`; returns when
/// a checker has started it.
async fn held_check(
    checks: &SigChecks,
    weight: usize,
    tx: SignedTx,
) -> (
    tokio::task::JoinHandle<Result<Answer, NodeStopped>>,
    std::sync::mpsc::Sender<()>,
) {
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let task = tokio::spawn({
        let checks = checks.clone();
        async move {
            let prepare = move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(vec![tx])
            };
            checks.check_with(weight, Box::new(prepare)).await
        }
    });
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap())
        .await
        .unwrap();
    (task, release_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_is_checked_while_every_low_priority_checker_is_busy() {
    let mut chain = TestChain::new(4, 4);
    let checks = SigChecks::new(chain.chain_id().to_string(), 2).unwrap();
    // Both low-priority checkers are held (the second by a backlog).
    let (first, release_first) = held_check(&checks, 1, chain.transfer(0, 1, 1)).await;
    let (second, release_second) =
        held_check(&checks, PARALLEL_BACKLOG_MIN, chain.transfer(1, 2, 1)).await;
    assert_eq!(checks.shared.lock().checking, 2);
    // A batch just under the catch-up backlog waits for them.
    let heavy = tokio::spawn({
        let checks = checks.clone();
        let txs = vec![chain.transfer(2, 3, 1)];
        async move {
            let prepare = Box::new(move || Ok(txs));
            checks.check_with(CATCH_UP_BACKLOG_MIN - 1, prepare).await
        }
    });
    until_waiting(&checks, 1).await;
    assert_eq!(checks.shared.lock().checking, 2);
    // One more makes the backlog large: the catch-up checker takes the
    // heavy batch (a whole check's worth) while the others are held.
    let light = tokio::spawn({
        let checks = checks.clone();
        let txs = vec![chain.transfer(3, 0, 1)];
        async move { checks.check_with(1, Box::new(move || Ok(txs))).await }
    });
    let heavy = tokio::time::timeout(std::time::Duration::from_secs(60), heavy)
        .await
        .expect("the catch-up checker took the backlog");
    assert!(heavy.unwrap().unwrap().unwrap()[0].1.is_ok());
    assert!(!first.is_finished() && !second.is_finished());
    // The light batch left is no large backlog: it waits for them.
    until_waiting(&checks, 1).await;
    release_first.send(()).unwrap();
    release_second.send(()).unwrap();
    assert!(first.await.unwrap().unwrap().is_ok());
    assert!(second.await.unwrap().unwrap().is_ok());
    assert!(light.await.unwrap().unwrap().unwrap()[0].1.is_ok());
}

#[tokio::test]
async fn the_threads_stop_when_the_last_clone_is_dropped() {
    let mut chain = TestChain::new(4, 2);
    let checks = SigChecks::new(chain.chain_id().to_string(), 2).unwrap();
    let other = checks.clone();
    let got = other.check(vec![chain.transfer(0, 1, 1)]).await.unwrap();
    assert!(got[0].1.is_ok());
    let shared = Arc::downgrade(&checks.shared);
    drop(checks);
    assert!(
        shared.upgrade().is_some(),
        "a clone still holds the threads"
    );
    // The last clone joins the threads, which held the shared state.
    drop(other);
    assert!(shared.upgrade().is_none());
}

#[tokio::test]
async fn a_transaction_for_another_chain_says_so() {
    let mut chain = TestChain::new(4, 2);
    let checks = SigChecks::new("another-chain".into(), 2).unwrap();
    let got = checks.check(vec![chain.transfer(0, 1, 1)]).await.unwrap();
    assert!(matches!(
        got[0].1,
        Err(MempoolError::Invalid(TxError::WrongChain { .. }))
    ));
    assert!(checks.check(Vec::new()).await.unwrap().is_empty());
}
