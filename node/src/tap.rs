//! A hook on the consensus messages a node publishes, compiled only with
//! the `byzantine` feature. The fault suite's Byzantine validator (a test
//! binary) uses it to sign and send conflicting proposals and votes next to
//! the node's own; the `tally` binary never sets it.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::network::NetCommand;
use crate::wire::ConsensusMsg;

/// Given a consensus message the node is about to publish, what to publish
/// instead (the message itself, others, or nothing), in that order.
pub type Rewrite = dyn Fn(&ConsensusMsg) -> Vec<ConsensusMsg> + Send + Sync;

/// A shared [`Rewrite`].
#[derive(Clone)]
pub struct ConsensusTap(pub Arc<Rewrite>);

impl fmt::Debug for ConsensusTap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConsensusTap")
    }
}

/// Passes every command from the driver (`from`) on to the network (`to`),
/// each published consensus message replaced by what `tap` returns. Ends
/// when either side is gone.
pub async fn run(
    tap: ConsensusTap,
    mut from: mpsc::Receiver<NetCommand>,
    to: mpsc::Sender<NetCommand>,
) -> anyhow::Result<()> {
    while let Some(command) = from.recv().await {
        let out = match command {
            NetCommand::PublishConsensus { msg, seq } => (tap.0)(&msg)
                .into_iter()
                .map(|msg| NetCommand::PublishConsensus { msg, seq })
                .collect(),
            other => vec![other],
        };
        for command in out {
            if to.send(command).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}
