//! Block sync's request-response protocol on the network task: answers
//! read off the task within per-peer limits, and responses handed to the
//! driver after decoding within their bound.

use libp2p::{request_response, PeerId};
use tracing::debug;

use super::{NetEvent, Network};
use crate::serve::read_blocks;
use crate::wire::{self, BlocksRequest, BlocksResponse, SYNC_RESPONSE_SOFT_BYTES};

/// A block response read off the network task, on its way back to be sent.
pub(super) struct Served {
    pub(super) request_id: request_response::InboundRequestId,
    pub(super) channel: request_response::ResponseChannel<BlocksResponse>,
    pub(super) response: BlocksResponse,
    pub(super) blocks: u32,
}

impl Network {
    pub(super) async fn on_sync(
        &mut self,
        event: request_response::Event<BlocksRequest, BlocksResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request_id,
                    request,
                    channel,
                } => self.serve_blocks(peer, request_id, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let Some((_, from, to)) = self.requests.remove(&request_id) else {
                        return;
                    };
                    let max = SYNC_RESPONSE_SOFT_BYTES + self.block_bytes_max + 64 * 1024;
                    match wire::decode_blocks(&response.encoded, max) {
                        Ok(blocks) => {
                            self.deliver(NetEvent::Blocks {
                                peer,
                                from,
                                to,
                                blocks,
                            })
                            .await
                        }
                        Err(e) => {
                            self.penalise(peer, "undecodable sync response");
                            self.deliver(NetEvent::BlocksFailed {
                                peer,
                                from,
                                to,
                                reason: format!("undecodable response: {e}"),
                            })
                            .await;
                        }
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, from, to)) = self.requests.remove(&request_id) {
                    self.deliver(NetEvent::BlocksFailed {
                        peer,
                        from,
                        to,
                        reason: error.to_string(),
                    })
                    .await;
                }
            }
            request_response::Event::ResponseSent { request_id, .. } => {
                self.serving.finish(request_id);
            }
            request_response::Event::InboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if self.serving.finish(request_id) {
                    debug!(%peer, %error, "serving a block request failed");
                }
            }
        }
    }

    /// Admits a peer's block request within its limits (see
    /// [`crate::serve`]) and reads the blocks on a blocking thread; the
    /// response comes back through `served_rx`. A request over a limit is
    /// dropped unanswered: the peer sees its request fail at once.
    pub(super) fn serve_blocks(
        &mut self,
        peer: PeerId,
        request_id: request_response::InboundRequestId,
        request: BlocksRequest,
        channel: request_response::ResponseChannel<BlocksResponse>,
    ) {
        let budget = match self.serving.start(peer, request_id) {
            Ok(budget) => budget,
            Err(refusal) => {
                debug!(%peer, from = request.from, to = request.to, %refusal, "block request refused");
                self.metrics
                    .sync_serve_refused
                    .get_or_create(&crate::metrics::ReasonLabel {
                        reason: refusal.reason().to_string(),
                    })
                    .inc();
                return;
            }
        };
        let store = self.store.clone();
        let served = self.served_tx.clone();
        tokio::task::spawn_blocking(move || {
            let (response, blocks) = read_blocks(&store, request, budget);
            // Fails only when the network has stopped.
            let _ = served.blocking_send(Served {
                request_id,
                channel,
                response,
                blocks,
            });
        });
    }

    /// Sends a response read off the network task, unless its request
    /// failed meanwhile.
    pub(super) fn on_served(&mut self, served: Served) {
        if !self
            .serving
            .read(served.request_id, served.response.encoded.len())
        {
            return;
        }
        self.metrics
            .sync_served_blocks
            .inc_by(u64::from(served.blocks));
        if self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(served.channel, served.response)
            .is_err()
        {
            // The request timed out or its connection closed.
            self.serving.finish(served.request_id);
        }
    }
}
