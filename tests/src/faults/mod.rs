//! The fault-injection harness: real `tally start` processes, every peer
//! link through a fault proxy, a load of signed transactions over
//! JSON-RPC, a scenario of faults, and the invariants checked at the end.
//! The scenarios themselves are in `tests/tests/faults.rs`; docs/faults.md
//! lists them.

pub mod byzantine;
pub mod check;
pub mod cluster;
pub mod disk;
pub mod load;
pub mod outsider;
pub mod scenario;

pub use check::Expect;
pub use cluster::{Cluster, ClusterSpec, Run, Twin, Usage};
pub use load::{Acknowledged, Load};
pub use outsider::Outsider;
pub use scenario::{run, Action, Outcome, Rng, Scenario, Session};
