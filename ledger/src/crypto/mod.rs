//! Keys and signatures.
//!
//! Signing uses ed25519-dalek. Verification uses the ZIP-215 rules
//! ([`zip215`], on `curve25519-dalek` with its run-time choice of the AVX2
//! backend), under which a signature is valid alone if and only if it is
//! valid in a batch: validity is one function of the bytes on every node
//! (docs/adr/0002-zip215-signature-validity.md, and ADR 0009 for the
//! implementation and the decompressed-key cache).
//!
//! Every signature is domain-separated: the signed bytes are
//! `encode(tag) || encode(chain_id) || message`, so a signature for one kind
//! of object, or one chain, is never valid for another.

use borsh::{BorshDeserialize, BorshSerialize};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::encoding::hex_serde;

mod zip215;
use zip215::Key;

/// What a signature is for. The tag is part of the signed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    Tx,
    Vote,
    Proposal,
    Status,
    /// A validator's consent to rotating its consensus key.
    Rotation,
}

impl Domain {
    /// The tag signed in front of every message of this domain.
    pub fn tag(self) -> &'static str {
        match self {
            Domain::Tx => "tally/tx/v1",
            Domain::Vote => "tally/vote/v1",
            Domain::Proposal => "tally/proposal/v1",
            Domain::Status => "tally/status/v1",
            Domain::Rotation => "tally/rotation/v1",
        }
    }
}

/// The exact bytes that are signed for `message` in `domain` on `chain_id`.
pub fn signing_bytes(domain: Domain, chain_id: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + chain_id.len() + 32);
    out.extend_from_slice(&crate::encoding::encode(domain.tag()));
    out.extend_from_slice(&crate::encoding::encode(chain_id));
    out.extend_from_slice(message);
    out
}

/// An ed25519 public key (an account, or a validator's consensus key).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, BorshSerialize, BorshDeserialize)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// True for keys anyone can forge signatures for under ZIP-215 (points of
    /// small order) and for bytes that are not a curve point at all. Tally
    /// never admits such a key as an account or validator.
    pub fn is_weak(&self) -> bool {
        match curve25519_dalek::edwards::CompressedEdwardsY(self.0).decompress() {
            Some(point) => point.is_small_order(),
            None => true,
        }
    }

    /// Lowercase hex with `0x`.
    pub fn to_hex(&self) -> String {
        hex_serde::to_hex(&self.0)
    }

    /// Parses hex with or without `0x`.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        hex_serde::parse_fixed::<32>(s).map(PublicKey)
    }

    /// Checks `signature` over `message` in `domain` on `chain_id`.
    pub fn verify(
        &self,
        domain: Domain,
        chain_id: &str,
        message: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        verify_raw(self, &signing_bytes(domain, chain_id, message), signature)
    }

    /// Checks `signature` over exactly `signed_bytes` (what
    /// [`signing_bytes`] returns; test vectors from outside Tally sign raw
    /// messages).
    pub fn verify_signed_bytes(
        &self,
        signed_bytes: &[u8],
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        verify_raw(self, signed_bytes, signature)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_serde::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_serde::deserialize(d).map(PublicKey)
    }
}

/// An ed25519 signature (64 bytes: R then s).
#[derive(Clone, Copy, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn to_hex(&self) -> String {
        hex_serde::to_hex(&self.0)
    }

    /// Parses hex with or without `0x`.
    pub fn from_hex(s: &str) -> Result<Self, String> {
        hex_serde::parse_fixed::<64>(s).map(Signature)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_serde::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        hex_serde::deserialize(d).map(Signature)
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("public key {0} is not a valid ed25519 point")]
    MalformedKey(PublicKey),
    #[error("signature does not verify for public key {0}")]
    Invalid(PublicKey),
}

/// Signatures this process has checked, alone or in batches.
static SIGNATURE_CHECKS: AtomicU64 = AtomicU64::new(0);

/// How many signatures this process has checked so far (each signature of
/// a batch counts once; a failed batch's re-checks count again). The node
/// exports it, so a benchmark can report checks per committed transaction.
pub fn signature_checks() -> u64 {
    SIGNATURE_CHECKS.load(Ordering::Relaxed)
}

fn verify_raw(key: &PublicKey, bytes: &[u8], signature: &Signature) -> Result<(), SignatureError> {
    SIGNATURE_CHECKS.fetch_add(1, Ordering::Relaxed);
    if zip215::verify(&decompressed(key)?, &signature.0, bytes) {
        Ok(())
    } else {
        Err(SignatureError::Invalid(*key))
    }
}

/// Keys decompressed so far, so that a validator's or a busy account's key
/// is decompressed once, not at every check. Bounded: when full it starts
/// again empty (a flood of distinct keys costs their decompression, never
/// memory). About 200 bytes an entry: some 13 MB when full.
const KEY_CACHE_ENTRIES: usize = 65_536;

fn decompressed(key: &PublicKey) -> Result<Key, SignatureError> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Key>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().ok().and_then(|c| c.get(&key.0).copied()) {
        return Ok(found);
    }
    let decoded = Key::decompress(key.0).ok_or(SignatureError::MalformedKey(*key))?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= KEY_CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key.0, decoded);
    }
    Ok(decoded)
}

/// The random 128-bit weights of a batch check: a 32-byte seed from the
/// operating system, expanded with SHA-512 in counter mode. A batch's
/// weights must be unpredictable to whoever chose its signatures.
struct BatchWeights {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl BatchWeights {
    /// `None` when the operating system gives no randomness; the caller then
    /// checks each signature alone, which needs none.
    fn from_os() -> Option<Self> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).ok()?;
        Some(BatchWeights {
            seed,
            counter: 0,
            block: [0; 64],
            used: 64,
        })
    }

    fn next(&mut self) -> u128 {
        use sha2::Digest;
        if self.used + 16 > self.block.len() {
            self.block = sha2::Sha512::new()
                .chain_update(self.seed)
                .chain_update(self.counter.to_le_bytes())
                .finalize()
                .into();
            self.counter += 1;
            self.used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&self.block[self.used..self.used + 16]);
        self.used += 16;
        u128::from_le_bytes(out)
    }
}

/// A private signing key. Debug output never shows the secret.
pub struct Keypair {
    inner: ed25519_dalek::SigningKey,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({})", self.public())
    }
}

/// Why a key could not be created or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("not a PKCS#8 PEM ed25519 private key: {0}")]
    Pem(String),
}

impl Keypair {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// The key whose 32-byte secret seed is `seed` (tests and simulations).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Keypair {
            inner: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// The 32-byte secret seed. Handle with care.
    pub fn seed(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.inner.verifying_key().to_bytes())
    }

    /// Signs `message` in `domain` on `chain_id`.
    pub fn sign(&self, domain: Domain, chain_id: &str, message: &[u8]) -> Signature {
        let bytes = signing_bytes(domain, chain_id, message);
        Signature(self.inner.sign(&bytes).to_bytes())
    }

    /// PKCS#8 PEM, the format of Tally's key files.
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyError> {
        self.inner
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| KeyError::Pem(e.to_string()))
    }

    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(|inner| Keypair { inner })
            .map_err(|e| KeyError::Pem(e.to_string()))
    }
}

/// Collects signatures and checks them together. Batch verification is only a
/// speed-up: under ZIP-215 the batch accepts exactly when every signature
/// verifies alone, and when it does not, each is checked alone to name the
/// culprits.
#[derive(Default)]
pub struct BatchVerifier {
    items: Vec<(PublicKey, Signature, Vec<u8>)>,
}

impl fmt::Debug for BatchVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchVerifier({} signatures)", self.items.len())
    }
}

impl BatchVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(n: usize) -> Self {
        BatchVerifier {
            items: Vec::with_capacity(n),
        }
    }

    /// Queues one signature; its position is its index in the error list.
    pub fn add(
        &mut self,
        key: PublicKey,
        domain: Domain,
        chain_id: &str,
        message: &[u8],
        signature: Signature,
    ) {
        self.items
            .push((key, signature, signing_bytes(domain, chain_id, message)));
    }

    /// Queues one signature over exactly `signed_bytes` (see
    /// [`PublicKey::verify_signed_bytes`]).
    pub fn add_signed_bytes(
        &mut self,
        key: PublicKey,
        signed_bytes: Vec<u8>,
        signature: Signature,
    ) {
        self.items.push((key, signature, signed_bytes));
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The batch equation alone, without the single checks that name the
    /// culprits: `None` when the operating system gives no randomness.
    /// [`BatchVerifier::verify`] uses it; tests hold it to the single rule.
    #[doc(hidden)]
    pub fn batch_equation_holds(&self) -> Option<bool> {
        let mut weights = BatchWeights::from_os()?;
        // A key that is not a point fails the batch.
        let keys: Option<Vec<Key>> = self
            .items
            .iter()
            .map(|(key, _, _)| decompressed(key).ok())
            .collect();
        let Some(keys) = keys else {
            return Some(false);
        };
        let items = keys
            .into_iter()
            .zip(&self.items)
            .map(|(key, (_, sig, bytes))| (key, &sig.0, bytes.as_slice()));
        Some(zip215::verify_batch(items, || weights.next()))
    }

    /// `Ok` when every queued signature is valid; otherwise the indices (in
    /// the order added) of the invalid ones with their reasons.
    pub fn verify(self) -> Result<(), Vec<(usize, SignatureError)>> {
        // One group: when the batch equation fails, every signature alone.
        self.verify_groups(&[])
    }

    /// As [`BatchVerifier::verify`], for signatures queued in consecutive
    /// groups of `group_lens` (the rest is one more group). When the batch
    /// fails, each group is a batch of its own and only a failing group's
    /// signatures are checked one by one: a bad signature costs single
    /// checks in its own group only. Every signature passes a rule `verify`
    /// uses: the batch equation over a set holding it, or the single check.
    pub fn verify_groups(self, group_lens: &[usize]) -> Result<(), Vec<(usize, SignatureError)>> {
        if self.items.is_empty() {
            return Ok(());
        }
        SIGNATURE_CHECKS.fetch_add(self.items.len() as u64, Ordering::Relaxed);
        if self.batch_equation_holds() == Some(true) {
            return Ok(());
        }
        let total = self.items.len();
        let mut items = self.items.into_iter();
        let mut failures = Vec::new();
        let mut start = 0;
        let mut lens: Vec<usize> = group_lens.to_vec();
        let listed = lens.iter().fold(0usize, |a, n| a.saturating_add(*n));
        if listed < total {
            lens.push(total - listed);
        }
        for len in lens {
            let group = BatchVerifier {
                items: items.by_ref().take(len).collect(),
            };
            let n = group.items.len();
            // The whole batch was this group: its equation already failed.
            let holds = n < total && n > 1 && group.batch_equation_holds() == Some(true);
            if !holds {
                for (i, (key, sig, bytes)) in group.items.iter().enumerate() {
                    if let Err(e) = verify_raw(key, bytes, sig) {
                        failures.push((start + i, e));
                    }
                }
            }
            start += n;
        }
        if failures.is_empty() {
            // Cannot happen under ZIP-215 (batch and single agree); if it ever
            // did, single verification is the rule, so accept.
            Ok(())
        } else {
            Err(failures)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::edwards::CompressedEdwardsY;

    const CHAIN: &str = "test-chain";

    fn key(n: u8) -> Keypair {
        Keypair::from_seed([n; 32])
    }

    #[test]
    fn groups_name_the_same_failures_as_one_batch() {
        // 3 groups and a leftover; forgeries in one group, several or none.
        let lens = [4usize, 1, 6];
        for bad in [
            vec![],
            vec![2],
            vec![4],
            vec![0, 7, 12],
            vec![5, 6, 7, 8, 9, 10],
        ] {
            let mut one = BatchVerifier::new();
            let mut grouped = BatchVerifier::new();
            for i in 0..13u8 {
                let k = key(i);
                let msg = [i; 9];
                let mut sig = k.sign(Domain::Tx, CHAIN, &msg);
                if bad.contains(&usize::from(i)) {
                    sig.0[0] ^= 1;
                }
                one.add(k.public(), Domain::Tx, CHAIN, &msg, sig);
                grouped.add(k.public(), Domain::Tx, CHAIN, &msg, sig);
            }
            let expect = one.verify();
            let got = grouped.verify_groups(&lens);
            let positions = |r: &Result<(), Vec<(usize, SignatureError)>>| match r {
                Ok(()) => Vec::new(),
                Err(f) => f.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            };
            assert_eq!(positions(&got), positions(&expect), "bad {bad:?}");
            assert_eq!(positions(&got), bad);
        }
        // Lengths past the end, and no lengths at all.
        assert!(BatchVerifier::new().verify_groups(&[3]).is_ok());
        let mut v = BatchVerifier::new();
        let k = key(1);
        let mut sig = k.sign(Domain::Tx, CHAIN, b"m");
        sig.0[1] ^= 1;
        v.add(k.public(), Domain::Tx, CHAIN, b"m", sig);
        assert_eq!(v.verify_groups(&[5, 5]).unwrap_err().len(), 1);
    }

    #[test]
    fn a_good_signature_verifies() {
        let k = key(1);
        let sig = k.sign(Domain::Tx, CHAIN, b"hello");
        assert_eq!(k.public().verify(Domain::Tx, CHAIN, b"hello", &sig), Ok(()));
    }

    #[test]
    fn wrong_chain_domain_bit_and_key_all_fail() {
        let k = key(1);
        let sig = k.sign(Domain::Tx, CHAIN, b"hello");
        let pk = k.public();
        let invalid = Err(SignatureError::Invalid(pk));
        assert_eq!(
            pk.verify(Domain::Tx, "other-chain", b"hello", &sig),
            invalid
        );
        assert_eq!(pk.verify(Domain::Vote, CHAIN, b"hello", &sig), invalid);
        assert_eq!(pk.verify(Domain::Tx, CHAIN, b"hellp", &sig), invalid);
        let mut flipped = sig;
        flipped.0[10] ^= 1;
        assert_eq!(pk.verify(Domain::Tx, CHAIN, b"hello", &flipped), invalid);
        let other = key(2).public();
        assert_eq!(
            other.verify(Domain::Tx, CHAIN, b"hello", &sig),
            Err(SignatureError::Invalid(other))
        );
        // Non-canonical s (s + l): ledger/tests/signature_rule.rs.
    }

    fn single_ok(pk: &PublicKey, msg: &[u8], sig: &Signature) -> bool {
        pk.verify(Domain::Tx, CHAIN, msg, sig).is_ok()
    }

    fn batch_ok(pk: &PublicKey, msg: &[u8], sig: &Signature, with_good: bool) -> bool {
        let mut b = BatchVerifier::new();
        if with_good {
            for n in 1..4u8 {
                let k = key(n);
                b.add(
                    k.public(),
                    Domain::Tx,
                    CHAIN,
                    b"x",
                    k.sign(Domain::Tx, CHAIN, b"x"),
                );
            }
        }
        b.add(*pk, Domain::Tx, CHAIN, msg, *sig);
        b.verify().is_ok()
    }

    /// Accepted in a batch iff accepted alone, on edge cases where plain
    /// ed25519 implementations disagree.
    #[test]
    fn batch_and_single_agree_on_edge_cases() {
        let msg = b"edge";
        let mut cases: Vec<(&str, PublicKey, Signature)> = Vec::new();

        let k = key(9);
        cases.push(("ordinary", k.public(), k.sign(Domain::Tx, CHAIN, msg)));

        for t in 1..8 {
            let (pk, sig) = crate::testkit::mixed_order_signature(
                [3u8; 32],
                t,
                0,
                &signing_bytes(Domain::Tx, CHAIN, msg),
            );
            cases.push(("mixed-order R", pk, sig));
        }

        // Small-order public key (the identity) with R = identity and s = 0.
        let identity = CompressedEdwardsY::from_slice(&{
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        })
        .unwrap();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(identity.as_bytes());
        cases.push((
            "small-order key",
            PublicKey(identity.to_bytes()),
            Signature(sig),
        ));

        // Non-canonical encoding of the identity point (y = p + 1).
        let mut noncanon = [0u8; 32];
        noncanon[0] = 0xee;
        noncanon[1..31].fill(0xff);
        noncanon[31] = 0x7f;
        let mut sig2 = [0u8; 64];
        sig2[..32].copy_from_slice(&noncanon);
        cases.push((
            "non-canonical R and key",
            PublicKey(noncanon),
            Signature(sig2),
        ));

        // Garbage key bytes that are not a point.
        let mut garbage = [0u8; 32];
        garbage[0] = 2;
        cases.push((
            "not a point",
            PublicKey(garbage),
            k.sign(Domain::Tx, CHAIN, msg),
        ));

        // Wrong signature for the message.
        cases.push((
            "wrong message",
            k.public(),
            k.sign(Domain::Tx, CHAIN, b"other"),
        ));

        for (name, pk, sig) in &cases {
            let alone = single_ok(pk, msg, sig);
            assert_eq!(alone, batch_ok(pk, msg, sig, false), "{name}: batch of one");
            assert_eq!(
                alone,
                batch_ok(pk, msg, sig, true),
                "{name}: batch with others"
            );
        }
        // The cases cover both outcomes, so the agreement above is not vacuous.
        assert!(cases.iter().any(|(_, pk, sig)| single_ok(pk, msg, sig)));
        assert!(cases.iter().any(|(_, pk, sig)| !single_ok(pk, msg, sig)));
        assert!(PublicKey(identity.to_bytes()).is_weak());
        assert!(!k.public().is_weak());
    }

    #[test]
    fn batch_names_the_bad_signatures() {
        let mut b = BatchVerifier::new();
        for n in 0..10u8 {
            let k = key(n + 1);
            let msg = if n == 3 || n == 7 {
                b"bad".as_slice()
            } else {
                b"ok"
            };
            b.add(
                k.public(),
                Domain::Vote,
                CHAIN,
                b"ok",
                k.sign(Domain::Vote, CHAIN, msg),
            );
        }
        let failed: Vec<usize> = b
            .verify()
            .unwrap_err()
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, vec![3, 7]);
    }

    #[test]
    fn pem_round_trip() {
        let k = Keypair::generate().unwrap();
        let pem = k.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = Keypair::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.public(), k.public());
        assert!(matches!(
            Keypair::from_pkcs8_pem("nonsense"),
            Err(KeyError::Pem(_))
        ));
    }
}
