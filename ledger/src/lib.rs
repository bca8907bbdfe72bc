//! # tally-ledger
//!
//! What Tally's replicated data *is* and when it is valid: transactions,
//! blocks and commit certificates ([`types`]); their one canonical encoding
//! ([`encoding`]); domain-separated ed25519 signatures with one validity rule
//! for single and batch checks ([`crypto`]); the genesis file ([`genesis`]);
//! deterministic execution over a Jellyfish Merkle state tree ([`execution`],
//! [`state`]); verification shared by sync and audit ([`verify`]); and the
//! RocksDB store ([`store`], behind the default `store` feature).
//!
//! ```
//! use tally_ledger::testkit::TestChain;
//! use tally_ledger::verify::verify_certificate;
//!
//! // Four validators, three funded accounts.
//! let mut chain = TestChain::new(4, 3);
//! let tx = chain.transfer(1, 2, 25);
//! let (block, cert, _update) = chain.push(vec![tx]).unwrap();
//! assert_eq!(block.height(), 1);
//! verify_certificate(&cert, &chain.validator_set, chain.chain_id()).unwrap();
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "store")]
pub mod audit;
pub mod crypto;
pub mod describe;
pub mod encoding;
pub mod execution;
pub mod genesis;
pub mod governance;
pub mod hash;
pub mod membership;
pub mod proposer;
pub mod signer_state;
pub mod state;
#[cfg(feature = "store")]
pub mod store;
pub mod testkit;
pub mod types;
pub mod verify;

pub use crypto::{Domain, Keypair, PublicKey, Signature};
pub use hash::Hash;
pub use types::{Block, CommitCertificate, Header, Op, Role, SignedTx, Tx, ValidatorSet};
