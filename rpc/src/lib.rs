//! # tally-rpc
//!
//! Will hold Tally's JSON-RPC API (jsonrpsee): the `ledger_*` method
//! definitions and their types, the server over a backend trait that the
//! node implements, and a typed client. It has no API yet: the methods
//! arrive with the running node, which they need as a backend.

#![forbid(unsafe_code)]
