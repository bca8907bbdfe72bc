//! # tally-rpc
//!
//! Tally's JSON-RPC API (jsonrpsee, HTTP and WebSocket on one port): the
//! `ledger_*` API ([`api`]), its JSON types ([`types`]), error codes
//! ([`errors`]), the methods ([`methods`]) over a [`backend::Backend`] that
//! the node implements, the server that binds them ([`server`]), and the
//! static pages served beside them ([`site`]: the block explorer).
//! Clients use the generated [`api::LedgerApiClient`] trait over any
//! jsonrpsee client. Every method is documented with an example in
//! `docs/rpc.md`.
//!
//! ```
//! use tally_rpc::types::U64;
//! // u64 values travel as decimal strings and are read from numbers too.
//! assert_eq!(serde_json::to_string(&U64(7)).unwrap(), "\"7\"");
//! assert_eq!(serde_json::from_str::<U64>("7").unwrap(), U64(7));
//! ```

#![forbid(unsafe_code)]

pub mod api;
pub mod auth;
pub mod backend;
pub mod errors;
mod governance;
pub mod methods;
pub mod raw;
pub mod server;
pub mod site;
pub mod types;

pub use api::{LedgerApiClient, LedgerApiServer};
