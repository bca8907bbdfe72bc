//! # tally-consensus
//!
//! Tendermint consensus ("The latest gossip on BFT consensus", Buchman,
//! Kwon, Milosevic, arXiv:1807.04938) as a pure, deterministic state machine:
//! [`Consensus::handle`] takes an [`Input`] and returns the [`Output`]s to
//! carry out. There is no I/O here: no clock, no disk, no network, no
//! randomness. The node owns timers, the signer's storage and the sockets.
//!
//! [`signer::Signer`] is the only place a validator key signs consensus
//! messages; it persists what it signs before releasing a signature and
//! refuses to sign anything that conflicts.
//!
//! ```
//! use tally_consensus::{Consensus, Output, Timeouts, TimeoutKind};
//! use tally_ledger::testkit::TestChain;
//!
//! let chain = TestChain::new(4, 1);
//! let timeouts = Timeouts { propose_ms: 1000, prevote_ms: 500, precommit_ms: 500, delta_ms: 500 };
//! // Validator 2 at height 1; the proposer of (1, 0) is validator 1.
//! let mut node = Consensus::new("tally-test", chain.validator_set.clone(), Some(2), timeouts, 1);
//! assert_eq!(node.start(), vec![Output::ScheduleTimeout {
//!     height: 1, round: 0, kind: TimeoutKind::Propose, duration_ms: 1000,
//! }]);
//! ```

#![forbid(unsafe_code)]

pub mod machine;
pub mod signer;
pub mod votes;

pub use machine::{Consensus, Input, Output, Step, TimeoutKind, Timeouts};
pub use signer::{SignStep, Signer, SignerError, SignerState};
pub use votes::{DropReason, ROUND_WINDOW};
