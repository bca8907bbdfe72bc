//! The one canonical binary encoding of everything that is hashed or signed.
//!
//! Tally uses borsh: it is specified, one value has exactly one encoding, and
//! decoding checks enum tags, option tags and UTF-8. On top of borsh this
//! module enforces two rules that every decoder in Tally relies on:
//!
//! * the input is bounded *before* anything is decoded or allocated, and
//! * trailing bytes are an error, so `encode(decode(b)) == b` for every
//!   accepted `b`.

use borsh::{BorshDeserialize, BorshSerialize};

/// Why bytes could not be decoded. `what` names the kind of object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: &'static str, reason: String },
}

/// Encodes a value canonically.
pub fn encode<T: BorshSerialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Invariant: writing into a Vec cannot fail, and no Tally type holds a
    // collection longer than u32::MAX (every length is bounded far below it).
    #[allow(clippy::expect_used)]
    value
        .serialize(&mut out)
        .expect("borsh encoding into a Vec is infallible for Tally types");
    out
}

/// The length of `value`'s encoding, counted without building it.
pub fn encoded_len<T: BorshSerialize + ?Sized>(value: &T) -> usize {
    // Invariant: as in `encode`, counting cannot fail for Tally types.
    #[allow(clippy::expect_used)]
    borsh::object_length(value).expect("borsh length counting is infallible for Tally types")
}

/// Decodes `bytes` as a `T`, refusing inputs over `max_len` bytes before
/// looking at them and refusing trailing bytes after the value.
pub fn decode<T: BorshDeserialize>(
    bytes: &[u8],
    max_len: usize,
    what: &'static str,
) -> Result<T, DecodeError> {
    if bytes.len() > max_len {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            max: max_len,
        });
    }
    borsh::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })
}

/// Serde helpers for `0x`-prefixed lowercase hex, accepting input with or
/// without the prefix.
pub mod hex_serde {
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    /// Formats bytes as `0x` followed by lowercase hex.
    pub fn to_hex(bytes: &[u8]) -> String {
        format!("0x{}", hex::encode(bytes))
    }

    /// Parses hex with or without `0x` into exactly `N` bytes.
    pub fn parse_fixed<const N: usize>(s: &str) -> Result<[u8; N], String> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.len() != 2 * N {
            return Err(format!(
                "expected {} hex digits ({N} bytes), found {}",
                2 * N,
                digits.len()
            ));
        }
        let mut out = [0u8; N];
        hex::decode_to_slice(digits, &mut out).map_err(|e| format!("invalid hex: {e}"))?;
        Ok(out)
    }

    /// Parses hex with or without `0x` into bytes of any length up to `max`.
    pub fn parse_vec(s: &str, max: usize) -> Result<Vec<u8>, String> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.len() > 2 * max {
            return Err(format!(
                "{} hex digits is more than the limit of {} bytes",
                digits.len(),
                max
            ));
        }
        hex::decode(digits).map_err(|e| format!("invalid hex: {e}"))
    }

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_fixed::<N>(&s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&7u64);
        bytes.push(0);
        let err = decode::<u64>(&bytes, 64, "number").unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { what: "number", .. }));
    }

    #[test]
    fn oversize_input_is_refused_before_decoding() {
        let bytes = vec![0u8; 65];
        assert_eq!(
            decode::<Vec<u8>>(&bytes, 64, "blob"),
            Err(DecodeError::TooLarge {
                what: "blob",
                len: 65,
                max: 64
            })
        );
    }

    #[test]
    fn huge_length_prefix_does_not_allocate_or_panic() {
        // A Vec<u64> that claims u32::MAX elements but carries none.
        let bytes = u32::MAX.to_le_bytes();
        assert!(decode::<Vec<u64>>(&bytes, 64, "list").is_err());
    }

    #[test]
    fn hex_accepts_both_forms_and_names_the_problem() {
        assert_eq!(hex_serde::parse_fixed::<2>("0xabcd"), Ok([0xab, 0xcd]));
        assert_eq!(hex_serde::parse_fixed::<2>("ABCD"), Ok([0xab, 0xcd]));
        assert!(hex_serde::parse_fixed::<2>("0xabc")
            .unwrap_err()
            .contains("expected 4 hex digits"));
        assert!(hex_serde::parse_fixed::<2>("0xzzzz")
            .unwrap_err()
            .contains("invalid hex"));
    }
}
