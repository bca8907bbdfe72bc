//! Governance on a running 4-validator network: a change proposed by one
//! admin of three applies only when a second approves it, and the RPC shows it
//! pending, then applied, with proofs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::time::Duration;

use jsonrpsee_http_client::HttpClientBuilder;

use tally_ledger::encoding::{encode, hex_serde};
use tally_ledger::governance::{ChangeRecord, Council};
use tally_ledger::state::StateKey;
use tally_ledger::types::{Op, Role};
use tally_ledger::Keypair;
use tally_node::client::check_proof;
use tally_rpc::types::{to_hex, StateProofInfo};
use tally_rpc::LedgerApiClient;
use tally_tests::{read_key, signed, wait_height, TestNet};

const LIVENESS: Duration = Duration::from_secs(120);

fn proof_value(p: &StateProofInfo) -> Vec<u8> {
    hex_serde::parse_vec(p.value.as_deref().expect("a value"), 1 << 20).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_applies_when_the_second_admin_approves_and_rpc_proves_each_step() {
    let mut net = TestNet::create(4, 0);
    let admin = read_key(&net.net_dir().join("accounts").join("admin.pem"));
    // Three admins (a spare beside the two a change needs).
    let users = net.user_keys();
    let second = Keypair::from_seed(users[1].seed());
    let second_key = second.public();
    let third_key = users[2].public();
    net.edit_genesis(|g| {
        for a in &mut g.accounts {
            if a.public_key == second_key || a.public_key == third_key {
                a.role = Role::Admin;
            }
        }
        g.governance.threshold = 2;
    });
    net.start_all().await;
    wait_height(&net.running(), 1, LIVENESS).await;
    let client = HttpClientBuilder::default().build(net.rpc_url(2)).unwrap();
    let genesis = (*net.handle(2).genesis).clone();
    let newcomer = Keypair::from_seed([0x5a; 32]).public();

    // The proposal commits, and changes nothing yet.
    let propose = signed(
        &admin,
        1,
        Op::GrantAccount {
            account: newcomer,
            role: Role::Member,
        },
    );
    let id = propose.hash();
    client
        .submit_tx_and_wait(to_hex(&encode(&propose)), None)
        .await
        .unwrap();
    let change = client.get_change(id.to_hex(), None).await.unwrap();
    assert_eq!(change.status, "pending");
    assert_eq!(change.approvals_counted, Some(1));
    assert_eq!(change.change["kind"], "grant");
    assert!(
        !client
            .get_account(newcomer.to_hex(), None)
            .await
            .unwrap()
            .exists
    );

    let gov = client.get_governance(Some(true)).await.unwrap();
    assert_eq!(gov.threshold, 2);
    assert_eq!(gov.admins.len(), 3);
    assert_eq!(gov.pending.len(), 1);
    assert_eq!(gov.pending[0].id, id.to_hex());
    let proof = gov.proof.unwrap();
    let council = Council::decode(&proof_value(&proof)).unwrap();
    assert_eq!(council.pending.len(), 1);
    check_proof(
        &genesis,
        &StateKey::Council,
        Some(&proof_value(&proof)),
        &proof,
        gov.height.0,
    )
    .unwrap();

    // The second admin's approval applies it.
    let approve = signed(&second, 1, Op::Approve { change: id });
    let done = client
        .submit_tx_and_wait(to_hex(&encode(&approve)), None)
        .await
        .unwrap();
    let change = client.get_change(id.to_hex(), Some(true)).await.unwrap();
    assert_eq!(change.status, "applied");
    assert_eq!(change.at.map(|h| h.0), Some(done.height.0));
    assert_eq!(change.approvals_counted, None);
    let proof = change.proof.unwrap();
    let record = ChangeRecord::decode(&proof_value(&proof)).unwrap();
    assert_eq!(record.approvals, vec![admin.public(), second_key]);
    check_proof(
        &genesis,
        &StateKey::Change(id),
        Some(&proof_value(&proof)),
        &proof,
        change.height.0,
    )
    .unwrap();
    assert!(
        client
            .get_account(newcomer.to_hex(), None)
            .await
            .unwrap()
            .exists
    );
    assert!(client
        .get_governance(None)
        .await
        .unwrap()
        .pending
        .is_empty());

    // A late approval is refused with the reason.
    let late = signed(&admin, 2, Op::Approve { change: id });
    let err = client
        .submit_tx_and_wait(to_hex(&encode(&late)), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is already applied at height"), "{err}");

    // An unknown id is not found.
    let err = client
        .get_change(tally_ledger::Hash([3; 32]).to_hex(), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not found") || err.contains("not_found"),
        "{err}"
    );
    net.stop_all().await;
}
