//! The ZIP-215 verification equations, on curve25519-dalek (which picks its
//! AVX2 or AVX-512 backend at run time).
//!
//! A signature `(R, s)` by key `A` over `M` is valid when `s` is a canonical
//! scalar, `A` and `R` decode as curve points (non-canonical encodings
//! accepted), and `[8]([s]B - R - [k]A)` is the identity, with
//! `k = SHA-512(R || A || M)` over the bytes as given. A batch checks
//! `[8](Σ zᵢ(Rᵢ + kᵢAᵢ - sᵢB))` with random 128-bit `zᵢ`, which is the
//! identity when every signature is valid and, with overwhelming
//! probability, not otherwise: under these cofactored equations a batch
//! accepts exactly what single checks accept (ADR 2, ADR 9).
//!
//! Keys come decompressed ([`Key`]), so a key seen before costs no
//! decompression.

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use sha2::{Digest, Sha512};

/// A public key with its decompressed point.
#[derive(Clone, Copy)]
pub(super) struct Key {
    bytes: [u8; 32],
    point: EdwardsPoint,
}

impl Key {
    /// `None` when the bytes are not a curve point.
    pub(super) fn decompress(bytes: [u8; 32]) -> Option<Key> {
        CompressedEdwardsY(bytes)
            .decompress()
            .map(|point| Key { bytes, point })
    }
}

/// A signature's parts, checked for form: R a point, s canonical, and the
/// challenge k.
struct Parts {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

fn parts(key: &Key, signature: &[u8; 64], message: &[u8]) -> Option<Parts> {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let digest: [u8; 64] = Sha512::new()
        .chain_update(r_bytes)
        .chain_update(key.bytes)
        .chain_update(message)
        .finalize()
        .into();
    Some(Parts {
        r,
        s,
        k: Scalar::from_bytes_mod_order_wide(&digest),
    })
}

/// One signature alone.
pub(super) fn verify(key: &Key, signature: &[u8; 64], message: &[u8]) -> bool {
    let Some(p) = parts(key, signature, message) else {
        return false;
    };
    // [s]B - [k]A, compared with R up to the small-order part.
    let r_prime = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &-key.point, &p.s);
    (p.r - r_prime).mul_by_cofactor().is_identity()
}

/// Several signatures at once; `coefficient` gives each its random 128-bit
/// weight. True only if (with overwhelming probability) every one is valid.
pub(super) fn verify_batch<'a>(
    items: impl ExactSizeIterator<Item = (Key, &'a [u8; 64], &'a [u8])>,
    mut coefficient: impl FnMut() -> u128,
) -> bool {
    let n = items.len();
    let mut scalars = Vec::with_capacity(2 * n + 1);
    let mut points = Vec::with_capacity(2 * n + 1);
    let mut b = Scalar::ZERO;
    for (key, signature, message) in items {
        let Some(p) = parts(&key, signature, message) else {
            return false;
        };
        let z = Scalar::from(coefficient());
        b -= z * p.s;
        scalars.push(z);
        points.push(p.r);
        scalars.push(z * p.k);
        points.push(key.point);
    }
    scalars.push(b);
    points.push(ED25519_BASEPOINT_POINT);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}
