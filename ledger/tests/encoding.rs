//! Property tests: every encoded type round-trips to the same bytes, and no
//! byte string panics a decoder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use proptest::prelude::*;
use tally_ledger::crypto::{PublicKey, Signature};
use tally_ledger::encoding::{decode, encode};
use tally_ledger::governance::Change;
use tally_ledger::hash::Hash;
use tally_ledger::state::{AccountState, StateProof};
use tally_ledger::types::{
    Block, CommitCertificate, CommitSig, Header, Op, Role, SignedTx, Tx, Vote, VoteKind,
};

fn key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey)
}

fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn sig() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        Signature(s)
    })
}

fn propose(change: Change) -> Op {
    Op::Propose {
        change: Box::new(change),
    }
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Admin), Just(Role::Member)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), any::<u64>()).prop_map(|(to, amount)| Op::Transfer { to, amount }),
        (
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(any::<u8>(), 0..80)
        )
            .prop_map(|(key, value)| Op::Put { key, value }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(|key| Op::Delete { key }),
        (key(), role()).prop_map(|(account, role)| Op::GrantAccount { account, role }),
        key().prop_map(|account| Op::RevokeAccount { account }),
        (key(), role()).prop_map(|(account, role)| propose(Change::Grant { account, role })),
        key().prop_map(|account| propose(Change::Revoke { account })),
        ("[a-z]{0,70}", key(), key(), any::<u64>()).prop_map(
            |(name, public_key, node_key, power)| {
                propose(Change::AddValidator {
                    name,
                    public_key,
                    node_key,
                    power,
                })
            }
        ),
        key().prop_map(|public_key| propose(Change::RemoveValidator { public_key })),
        (key(), any::<u64>())
            .prop_map(|(public_key, power)| propose(Change::SetPower { public_key, power })),
        (key(), key(), any::<[u8; 32]>()).prop_map(|(public_key, new_key, half)| {
            let mut consent = [0u8; 64];
            consent[..32].copy_from_slice(&half);
            propose(Change::RotateKey {
                public_key,
                new_key,
                consent: Signature(consent),
            })
        }),
        ("[a-z]{0,70}", key())
            .prop_map(|(name, node_key)| propose(Change::AddReplica { name, node_key })),
        key().prop_map(|node_key| propose(Change::RemoveReplica { node_key })),
        any::<[u8; 32]>().prop_map(|h| Op::Approve { change: Hash(h) }),
    ]
}

fn signed_tx() -> impl Strategy<Value = SignedTx> {
    ("[a-z0-9-]{1,20}", key(), any::<u64>(), op(), sig()).prop_map(
        |(chain_id, sender, nonce, op, signature)| SignedTx {
            tx: Tx {
                chain_id,
                sender,
                nonce,
                op,
            },
            signature,
        },
    )
}

fn cert() -> impl Strategy<Value = CommitCertificate> {
    (
        any::<u64>(),
        any::<u32>(),
        hash(),
        prop::collection::vec((any::<u32>(), sig()), 0..6),
    )
        .prop_map(|(height, round, block_hash, sigs)| CommitCertificate {
            height,
            round,
            block_hash,
            signatures: sigs
                .into_iter()
                .map(|(validator_index, signature)| CommitSig {
                    validator_index,
                    signature,
                })
                .collect(),
        })
}

fn header() -> impl Strategy<Value = Header> {
    (
        "[a-z0-9-]{1,20}",
        any::<u64>(),
        any::<u64>(),
        hash(),
        hash(),
        hash(),
        hash(),
        hash(),
        key(),
        hash(),
    )
        .prop_map(
            |(
                chain_id,
                height,
                time_ms,
                prev_hash,
                tx_root,
                state_root,
                validators_hash,
                next_validators_hash,
                proposer,
                last_commit_hash,
            )| Header {
                chain_id,
                height,
                time_ms,
                prev_hash,
                tx_root,
                state_root,
                validators_hash,
                next_validators_hash,
                proposer,
                last_commit_hash,
            },
        )
}

fn block() -> impl Strategy<Value = Block> {
    (
        header(),
        prop::collection::vec(signed_tx(), 0..5),
        prop::option::of(cert()),
    )
        .prop_map(|(header, txs, last_commit)| Block {
            header,
            txs,
            last_commit,
        })
}

fn round_trip<T>(value: &T)
where
    T: borsh::BorshSerialize + borsh::BorshDeserialize + PartialEq + std::fmt::Debug,
{
    let bytes = encode(value);
    let back: T = decode(&bytes, usize::MAX, "value").expect("decodes");
    assert_eq!(&back, value);
    assert_eq!(encode(&back), bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn txs_round_trip(tx in signed_tx()) { round_trip(&tx); }

    #[test]
    fn blocks_round_trip(b in block()) { round_trip(&b); }

    #[test]
    fn certificates_round_trip(c in cert()) { round_trip(&c); }

    #[test]
    fn votes_round_trip(h in any::<u64>(), r in any::<u32>(), v in prop::option::of(hash()), pre in any::<bool>()) {
        let kind = if pre { VoteKind::Prevote } else { VoteKind::Precommit };
        round_trip(&Vote { kind, height: h, round: r, value: v });
    }

    #[test]
    fn account_states_round_trip(role in role(), active in any::<bool>(), balance in any::<u64>(), nonce in any::<u64>()) {
        round_trip(&AccountState { role, active, balance, nonce });
    }

    /// Decode-then-re-encode gives back the input bytes for anything accepted.
    #[test]
    fn random_bytes_never_panic_and_accepted_bytes_are_canonical(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(tx) = SignedTx::decode(&bytes, 1 << 20) { prop_assert_eq!(encode(&tx), bytes.clone()); }
        if let Ok(b) = Block::decode(&bytes, 1 << 20) { prop_assert_eq!(encode(&b), bytes.clone()); }
        if let Ok(c) = CommitCertificate::decode(&bytes) { prop_assert_eq!(encode(&c), bytes.clone()); }
        if let Ok(v) = decode::<Vote>(&bytes, 1024, "vote") { prop_assert_eq!(encode(&v), bytes.clone()); }
        if let Ok(a) = AccountState::decode(&bytes) { prop_assert_eq!(encode(&a), bytes.clone()); }
        let _ = StateProof::from_bytes(&bytes);
    }

    /// Mutating one byte of a valid encoding never panics the decoder.
    #[test]
    fn mutated_encodings_never_panic(b in block(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&b);
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(back) = Block::decode(&bytes, 1 << 20) { prop_assert_eq!(encode(&back), bytes); }
    }
}
