//! Application error codes (positive; JSON-RPC's own codes are negative).
//! Each error carries a message a person understands and, in `data`, a
//! machine-readable `kind` and details.

use jsonrpsee::types::ErrorObjectOwned;
use serde_json::json;

pub const INVALID_TX: i32 = 1;
pub const BAD_SIGNATURE: i32 = 2;
pub const DUPLICATE: i32 = 3;
pub const BAD_NONCE: i32 = 4;
pub const NOT_A_MEMBER: i32 = 5;
pub const MEMPOOL_FULL: i32 = 6;
pub const NOT_FOUND: i32 = 7;
pub const TIMEOUT: i32 = 8;
pub const WRONG_CHAIN: i32 = 9;
pub const UNAVAILABLE: i32 = 10;
pub const TOO_MANY: i32 = 11;
pub const UNAUTHORIZED: i32 = 12;
/// JSON-RPC's "invalid params", used for malformed hex and the like.
pub const INVALID_PARAMS: i32 = -32602;

/// Every application code with its kind, for docs and `rpc_methods`.
pub const CODES: &[(i32, &str)] = &[
    (INVALID_TX, "invalid_tx"),
    (BAD_SIGNATURE, "bad_signature"),
    (DUPLICATE, "duplicate"),
    (BAD_NONCE, "bad_nonce"),
    (NOT_A_MEMBER, "not_a_member"),
    (MEMPOOL_FULL, "mempool_full"),
    (NOT_FOUND, "not_found"),
    (TIMEOUT, "timeout"),
    (WRONG_CHAIN, "wrong_chain"),
    (UNAVAILABLE, "unavailable"),
    (TOO_MANY, "too_many"),
    (UNAUTHORIZED, "unauthorized"),
];

/// A refusal from the node, as the RPC layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: i32,
    pub kind: &'static str,
    pub message: String,
}

pub fn error(
    code: i32,
    kind: &str,
    message: impl Into<String>,
    detail: serde_json::Value,
) -> ErrorObjectOwned {
    let message = message.into();
    ErrorObjectOwned::owned(
        code,
        message,
        Some(json!({ "kind": kind, "detail": detail })),
    )
}

pub fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, message.into(), None::<()>)
}

pub fn not_found(what: impl Into<String>) -> ErrorObjectOwned {
    let what = what.into();
    error(
        NOT_FOUND,
        "not_found",
        format!("{what} not found"),
        json!({ "what": what }),
    )
}

impl From<Rejection> for ErrorObjectOwned {
    fn from(r: Rejection) -> Self {
        error(r.code, r.kind, r.message, serde_json::Value::Null)
    }
}
