//! The signature rule is ZIP-215, whatever crate checks it.
//!
//! Tally's verifier must accept exactly what two other ZIP-215 verifiers
//! accept (`ed25519-consensus`, which it replaced, alone and in batches, and
//! `ed25519-zebra` alone), alone and in batches, on random and on
//! adversarial inputs: small-order and mixed-order points, non-canonical
//! point encodings, non-canonical scalars. It must also give the ZIP-215
//! results of the public ed25519 edge-case vectors (speccheck `cases.txt`).

use curve25519_dalek::constants;
use proptest::prelude::*;
use tally_ledger::crypto::{BatchVerifier, Keypair, PublicKey, Signature};

fn ours_alone(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    PublicKey(*key)
        .verify_signed_bytes(msg, &Signature(*sig))
        .is_ok()
}

fn theirs_alone(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    ed25519_consensus::VerificationKey::try_from(*key)
        .and_then(|vk| vk.verify(&ed25519_consensus::Signature::from(*sig), msg))
        .is_ok()
}

fn zebra_alone(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    ed25519_zebra::VerificationKey::try_from(*key)
        .and_then(|vk| vk.verify(&ed25519_zebra::Signature::from_bytes(sig), msg))
        .is_ok()
}

type Case = ([u8; 32], Vec<u8>, [u8; 64]);

/// Tally's batch check; also asserts that its batch equation alone (before
/// the single checks that name culprits) gives the same verdict.
fn ours_batch(cases: &[Case]) -> bool {
    let mut batch = BatchVerifier::new();
    for (key, msg, sig) in cases {
        batch.add_signed_bytes(PublicKey(*key), msg.clone(), Signature(*sig));
    }
    let equation = batch.batch_equation_holds().expect("randomness");
    let verdict = batch.verify().is_ok();
    assert_eq!(equation, verdict, "the batch equation alone");
    verdict
}

fn theirs_batch(cases: &[Case]) -> bool {
    let mut batch = ed25519_consensus::batch::Verifier::new();
    for (key, msg, sig) in cases {
        batch.queue((
            ed25519_consensus::VerificationKeyBytes::from(*key),
            ed25519_consensus::Signature::from(*sig),
            msg,
        ));
    }
    batch.verify(rand_core_06::OsRng).is_ok()
}

/// A valid signature from an ordinary key, to put beside a case in a batch.
fn ordinary(n: u8) -> Case {
    let k = Keypair::from_seed([n; 32]);
    let msg = vec![n; 40];
    let sig = k.sign(tally_ledger::crypto::Domain::Tx, "c", &msg);
    let bytes = tally_ledger::crypto::signing_bytes(tally_ledger::crypto::Domain::Tx, "c", &msg);
    (k.public().0, bytes, sig.0)
}

/// Both verifiers agree on `case` alone, in a batch of one, and in a
/// batch with valid signatures; returns the verdict.
fn agree(case: &Case, what: &str) -> bool {
    let (key, msg, sig) = case;
    let alone = theirs_alone(key, msg, sig);
    assert_eq!(
        zebra_alone(key, msg, sig),
        alone,
        "{what}: the two references"
    );
    assert_eq!(ours_alone(key, msg, sig), alone, "{what}: alone");
    let one = std::slice::from_ref(case);
    assert_eq!(theirs_batch(one), alone, "{what}: their batch of one");
    assert_eq!(ours_batch(one), alone, "{what}: our batch of one");
    let mixed = vec![ordinary(1), case.clone(), ordinary(2)];
    assert_eq!(
        ours_batch(&mixed),
        theirs_batch(&mixed),
        "{what}: mixed batch"
    );
    assert_eq!(ours_batch(&mixed), alone, "{what}: mixed batch");
    alone
}

/// The group order l, little-endian.
fn group_order() -> [u8; 32] {
    let mut l = [0u8; 32];
    l[..16].copy_from_slice(&[
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14,
    ]);
    l[31] = 0x10;
    l
}

fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = a[i] as u16 + b[i] as u16 + carry;
        out[i] = v as u8;
        carry = v >> 8;
    }
    out
}

/// Every encoding of a small-order point: the eight canonical ones, and the
/// non-canonical y (y + p, for y < 19) with either sign bit.
fn small_order_and_noncanonical_encodings() -> Vec<[u8; 32]> {
    let mut out: Vec<[u8; 32]> = constants::EIGHT_TORSION
        .iter()
        .map(|p| p.compress().to_bytes())
        .collect();
    for y in 0u8..19 {
        // p = 2^255 - 19; y + p little-endian.
        let mut enc = [0xffu8; 32];
        enc[0] = 0xed + y;
        enc[31] = 0x7f;
        out.push(enc);
        let mut signed = enc;
        signed[31] |= 0x80;
        out.push(signed);
    }
    for p in constants::EIGHT_TORSION.iter() {
        let mut flipped = p.compress().to_bytes();
        flipped[31] ^= 0x80;
        out.push(flipped);
    }
    out
}

/// A signature by the secret `a` whose R and A carry torsion components:
/// valid under the cofactored (ZIP-215) equation only.
fn mixed_order(a: [u8; 32], torsion_r: usize, torsion_a: usize, msg: &[u8]) -> Case {
    let (key, sig) = tally_ledger::testkit::mixed_order_signature(a, torsion_r, torsion_a, msg);
    (key.0, msg.to_vec(), sig.0)
}

#[test]
fn adversarial_points_and_scalars_get_the_same_verdict() {
    let msg = b"adversarial".to_vec();
    let points = small_order_and_noncanonical_encodings();
    let l = group_order();
    let one = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    let scalars = [[0u8; 32], one, l, add_le(&l, &one), [0xff; 32]];
    let (mut accepted, mut refused) = (0, 0);
    for key in &points {
        for r in &points {
            for s in &scalars {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(r);
                sig[32..].copy_from_slice(s);
                if agree(&(*key, msg.clone(), sig), "small-order key and R") {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
        }
    }
    // Small-order keys with small-order R and s = 0 verify under ZIP-215;
    // non-canonical s never does: both outcomes are exercised.
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );

    let a = [5u8; 32];
    for tr in 0..8 {
        for ta in 0..8 {
            let case = mixed_order(a, tr, ta, &msg);
            assert!(agree(&case, "mixed-order R and key"), "torsion {tr} {ta}");
            // The same signature with s + l (same scalar, non-canonical).
            let mut bad = case.clone();
            let s: [u8; 32] = bad.2[32..].try_into().expect("32 bytes");
            bad.2[32..].copy_from_slice(&add_le(&s, &l));
            assert!(!agree(&bad, "s + l"), "torsion {tr} {ta}");
        }
    }
    // An ordinary signature with a non-canonical encoding of its R: the
    // point decodes to the same R, but the hash covers the bytes.
    let (key, m, sig) = ordinary(9);
    assert!(agree(&(key, m.clone(), sig), "ordinary"));
    let mut noncanon_key = key;
    noncanon_key[31] ^= 0x80;
    agree(&(noncanon_key, m, sig), "flipped key sign bit");
}

/// The twelve vectors of ed25519-speccheck (`cases.txt`), with the
/// results its table gives for ZIP-215 ("Zebra": V V V V V V X X X V V V).
#[test]
fn speccheck_vectors_give_the_zip215_results() {
    const CASES: [(&str, &str, &str, bool); 12] = [
        ("8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000", true),
        ("9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04", true),
        ("aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e", true),
        ("9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79", "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d", "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009", true),
        ("e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c", "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d", "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09", true),
        ("e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c", "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d", "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405", true),
        ("85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40", "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623", "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514", false),
        ("85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40", "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623", "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22", false),
        ("9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f", false),
        ("9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41", "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908", true),
        ("e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04", true),
        ("39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff", "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04", true),
    ];
    for (i, (msg, key, sig, expected)) in CASES.iter().enumerate() {
        let msg = hex::decode(msg).expect("hex");
        let key: [u8; 32] = hex::decode(key).expect("hex").try_into().expect("32");
        let sig: [u8; 64] = hex::decode(sig).expect("hex").try_into().expect("64");
        let case = (key, msg, sig);
        assert_eq!(agree(&case, &format!("case {i}")), *expected, "case {i}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random keys, messages and signatures, valid or with one byte
    /// changed anywhere (key, R, s or message).
    #[test]
    fn random_signatures_get_the_same_verdict(
        seed in any::<[u8; 32]>(),
        msg in proptest::collection::vec(any::<u8>(), 0..200),
        flip in 0usize..200,
        bit in 0u8..8,
        tamper in any::<bool>(),
    ) {
        let k = Keypair::from_seed(seed);
        let bytes = tally_ledger::crypto::signing_bytes(tally_ledger::crypto::Domain::Tx, "c", &msg);
        let sig = k.sign(tally_ledger::crypto::Domain::Tx, "c", &msg).0;
        let mut case = (k.public().0, bytes, sig);
        if tamper {
            let at = flip % (32 + 64 + case.1.len());
            if at < 32 {
                case.0[at] ^= 1 << bit;
            } else if at < 96 {
                case.2[at - 32] ^= 1 << bit;
            } else {
                case.1[at - 96] ^= 1 << bit;
            }
        }
        let verdict = agree(&case, "random");
        prop_assert!(tamper || verdict, "an untampered signature verifies");
    }
}
