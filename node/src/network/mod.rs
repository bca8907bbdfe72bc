//! The libp2p network: TCP + Noise + Yamux, gossipsub for transactions,
//! consensus messages and status, request-response for block sync,
//! identify, connection limits and an allow-list built from genesis.
//!
//! Gossip is validated explicitly: a message is forwarded only after it was
//! decoded within its size bound and its signatures checked; invalid ones are
//! rejected and their sender's score lowered. Transaction batches are
//! checked on the signature checker threads with other waiting batches, so
//! the swarm keeps moving meanwhile. Messages are anonymous (every payload
//! is signed by its author) and identified by their topic and content, not
//! their envelope ([`message_id`], ADR 8).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    allow_block_list, connection_limits, gossipsub, identify, identity, noise, request_response,
    tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};

use tally_ledger::genesis::Genesis;
use tally_ledger::membership::read_allowed_nodes;
use tally_ledger::store::Store;
use tally_ledger::types::{Block, CommitCertificate, SignedTx};

use crate::metrics::Metrics;
use members::Members;

mod admission;
mod blocks;
mod intake;
mod members;
use crate::serve::{ServeLimiter, SERVE_REQUESTS_MAX};
use crate::wire::{
    self, BlocksRequest, BlocksResponse, ConsensusMsg, Status, SYNC_RESPONSE_SOFT_BYTES,
};
pub use admission::message_id;
pub use admission::HeightSet;
use admission::{HeightSets, Validator, Verdict};
use blocks::Served;
use intake::CheckedTxs;
pub use members::peer_of;

/// Redial backoff bounds for persistent peers.
const REDIAL_MIN: Duration = Duration::from_millis(500);
const REDIAL_MAX: Duration = Duration::from_secs(5);
/// Events queued towards the node before the network waits.
pub const EVENT_QUEUE: usize = 4096;
/// Gossipsub's heartbeat: mesh upkeep, and gossip of recent message ids.
const HEARTBEAT: Duration = Duration::from_millis(500);
/// Heartbeats over which a message id is gossiped to peers outside the mesh
/// (gossipsub's default).
const HISTORY_GOSSIP: u32 = 3;
/// A gossip message's id changes from one period to the next, counted on
/// each node's own clock ([`message_id`]): a node delivers and forwards the
/// same content at most once per period, however often and with whatever
/// sequence numbers it is sent. Shorter than the driver's re-send period
/// (`RESEND_AFTER`, 3 s), so that each of its re-sends of its own messages
/// after a stall falls in a new period and goes out. See ADR 7.
pub const GOSSIP_ID_PERIOD: Duration = Duration::from_secs(2);
/// How long gossipsub remembers a message id: through the id's period, and
/// for as long after as peers may still advertise it (`HISTORY_GOSSIP`
/// heartbeats), so that a node does not fetch again what it has seen.
const GOSSIP_DUPLICATE_TTL: Duration = Duration::from_secs(4);
const _: () = assert!(
    GOSSIP_DUPLICATE_TTL.as_millis()
        >= GOSSIP_ID_PERIOD.as_millis() + HEARTBEAT.as_millis() * HISTORY_GOSSIP as u128
);
/// Bytes of the borsh `u64` sequence number that starts every gossip payload.
const SEQ_BYTES: usize = 8;

#[derive(NetworkBehaviour)]
struct Behaviour {
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    sync: request_response::cbor::Behaviour<BlocksRequest, BlocksResponse>,
}

/// What the node asks of the network.
#[derive(Debug)]
pub enum NetCommand {
    PublishConsensus {
        msg: ConsensusMsg,
        seq: u64,
    },
    PublishTxs(Vec<SignedTx>),
    PublishStatus(Status),
    RequestBlocks {
        peer: PeerId,
        from: u64,
        to: u64,
    },
    AddPeer {
        peer: PeerId,
        addr: Multiaddr,
    },
    /// The chain moved: the validator sets of the heights from `from` on
    /// (consensus messages are judged against them) and the nodes allowed
    /// to connect (the others' connections are closed).
    Membership {
        from: u64,
        sets: Vec<HeightSet>,
        allowed: Vec<PeerId>,
    },
    /// Publishes raw bytes on a topic ("txs", "consensus" or "status"),
    /// unchecked: only for tests that prove peers reject bad gossip.
    PublishRaw {
        topic: &'static str,
        data: Vec<u8>,
    },
}

/// What the network tells the node. Signatures are already verified.
#[derive(Debug)]
pub enum NetEvent {
    Consensus(ConsensusMsg),
    Txs(Vec<SignedTx>),
    Status {
        peer: PeerId,
        status: Status,
        /// The sender's message counter: a lower one is an older message.
        seq: u64,
    },
    /// The answer to a block request for `from..=to`.
    Blocks {
        peer: PeerId,
        from: u64,
        to: u64,
        blocks: Vec<(Block, CommitCertificate)>,
    },
    BlocksFailed {
        peer: PeerId,
        from: u64,
        to: u64,
        reason: String,
    },
    Listening(Multiaddr),
}

/// Everything needed to start the network.
#[derive(Debug)]
pub struct NetworkSetup {
    pub node_key_seed: [u8; 32],
    pub listen: Multiaddr,
    /// Peers to keep connected, with their addresses.
    pub persistent_peers: Vec<(PeerId, Multiaddr)>,
    pub max_connections: u32,
    pub idle_timeout: Duration,
    /// Checks gossiped batches' signatures with submitted ones.
    pub sig_checks: crate::sig_checks::SigChecks,
}

struct Topics {
    txs: gossipsub::IdentTopic,
    consensus: gossipsub::IdentTopic,
    status: gossipsub::IdentTopic,
}

struct Redial {
    addr: Multiaddr,
    next_at: Instant,
    backoff: Duration,
}

/// The running network task.
pub struct Network {
    swarm: Swarm<Behaviour>,
    topics: Topics,
    validator: Arc<Validator>,
    /// The validator sets consensus messages are judged against.
    sets: HeightSets,
    /// The peers allowed to connect: the members the chain's state names.
    allowed: HashSet<PeerId>,
    /// Gossiped transaction batches being checked, by size in KiB (see
    /// [`intake::TX_CHECKS_KIB_MAX`]); the swarm waits for room.
    tx_checks: Arc<Semaphore>,
    sig_checks: crate::sig_checks::SigChecks,
    checked_tx: mpsc::UnboundedSender<CheckedTxs>,
    /// Bounded by the room: each result keeps its room until the network
    /// task takes it.
    checked_rx: mpsc::UnboundedReceiver<CheckedTxs>,
    /// Checks finish in any order but are handed on in the order the
    /// batches arrived (a sender's nonces stay in order): the number of the
    /// next batch to check, of the next to hand on, and the finished ones
    /// waiting for their turn (each holding its room, so bounded too).
    tx_check_seq: u64,
    tx_check_next: u64,
    tx_checks_done: BTreeMap<u64, CheckedTxs>,
    store: Arc<Store>,
    events: mpsc::Sender<NetEvent>,
    commands: mpsc::Receiver<NetCommand>,
    metrics: Arc<Metrics>,
    redial: BTreeMap<PeerId, Redial>,
    /// Peers with a connection.
    connected: HashSet<PeerId>,
    /// Connected peers whose identify announced this chain and genesis
    /// (the peers that count), with those connections.
    members: Members,
    /// Peers already warned about for another genesis (allow-listed ones
    /// only, so bounded by genesis).
    warned: HashSet<PeerId>,
    /// What identify announces: `/tally/<chain id>/<genesis hash>/1`.
    protocol_version: String,
    /// Block requests on their way: (peer, from, to).
    requests: HashMap<request_response::OutboundRequestId, (PeerId, u64, u64)>,
    /// Block requests from peers being served (read, then written out).
    serving: ServeLimiter<request_response::InboundRequestId>,
    served_tx: mpsc::Sender<Served>,
    served_rx: mpsc::Receiver<Served>,
    bad_messages: HashMap<PeerId, u32>,
    seq: u64,
    block_bytes_max: usize,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Network({})", self.swarm.local_peer_id())
    }
}

/// Why the network could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network setup failed: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: Multiaddr, reason: String },
}

fn setup_err(e: impl std::fmt::Display) -> NetworkError {
    NetworkError::Setup(e.to_string())
}

impl Network {
    /// Builds the swarm, subscribes to the chain's topics and starts
    /// listening. Returns the network and the channel ends the node uses.
    pub fn new(
        setup: NetworkSetup,
        genesis: &Genesis,
        store: Arc<Store>,
        metrics: Arc<Metrics>,
    ) -> Result<(Self, mpsc::Sender<NetCommand>, mpsc::Receiver<NetEvent>), NetworkError> {
        let keypair =
            identity::Keypair::ed25519_from_bytes(setup.node_key_seed).map_err(setup_err)?;
        let local = keypair.public().to_peer_id();
        // Every protocol name carries the chain id and the genesis hash,
        // so a node with another genesis (under the same chain id too)
        // shares no topic or protocol with this one.
        let net = &format!("{}/{}", genesis.chain_id, &genesis.hash().to_hex()[..16]);
        let protocol_version = format!("/tally/{net}/1");
        let topics = Topics {
            txs: gossipsub::IdentTopic::new(format!("/tally/{net}/txs/1")),
            consensus: gossipsub::IdentTopic::new(format!("/tally/{net}/consensus/1")),
            status: gossipsub::IdentTopic::new(format!("/tally/{net}/status/1")),
        };
        let block_bytes_max = genesis.params.block_bytes_max as usize;
        let consensus_bytes_max = block_bytes_max + 64 * 1024;
        let tx_batch_bytes_max = (genesis.params.tx_bytes_max as usize)
            .saturating_mul(wire::TX_BATCH_MAX)
            .min(16 << 20);

        let gossip_config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .message_id_fn({
                let status = topics.status.hash();
                let start = Instant::now();
                move |m: &gossipsub::Message| {
                    let period = start.elapsed().as_millis() / GOSSIP_ID_PERIOD.as_millis();
                    message_id(&m.topic, &m.data, m.topic == status, period as u64)
                }
            })
            .duplicate_cache_time(GOSSIP_DUPLICATE_TTL)
            .history_gossip(HISTORY_GOSSIP as usize)
            .validate_messages()
            .max_transmit_size(consensus_bytes_max)
            .max_transmit_size_for_topic(tx_batch_bytes_max, topics.txs.hash())
            .max_transmit_size_for_topic(wire::STATUS_BYTES_MAX, topics.status.hash())
            .mesh_n_low(2)
            .mesh_n(3)
            .mesh_n_high(6)
            .mesh_outbound_min(1)
            .heartbeat_interval(HEARTBEAT)
            .build()
            .map_err(setup_err)?;
        let mut gossip =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)
                .map_err(setup_err)?;
        gossip
            .with_peer_score(
                gossipsub::PeerScoreParams::default(),
                gossipsub::PeerScoreThresholds::default(),
            )
            .map_err(setup_err)?;
        for t in [&topics.txs, &topics.consensus, &topics.status] {
            gossip.subscribe(t).map_err(setup_err)?;
        }

        // The members the state after the tip names (the genesis ones on
        // a new chain); the node updates them as blocks commit.
        let mut allow = allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
        let members = read_allowed_nodes(&*store, store.height()).map_err(setup_err)?;
        let mut allowed = HashSet::new();
        for key in members {
            let peer = peer_of(&key).map_err(setup_err)?;
            if peer != local {
                allow.allow_peer(peer);
                allowed.insert(peer);
            }
        }
        let limits = connection_limits::Behaviour::new(
            connection_limits::ConnectionLimits::default()
                .with_max_established(Some(setup.max_connections))
                .with_max_established_per_peer(Some(2))
                .with_max_pending_incoming(Some(setup.max_connections)),
        );
        let sync_protocol =
            StreamProtocol::try_from_owned(format!("/tally/{net}/sync/1")).map_err(setup_err)?;
        let codec =
            request_response::cbor::codec::Codec::<BlocksRequest, BlocksResponse>::default()
                .set_request_size_maximum(1024)
                .set_response_size_maximum((SYNC_RESPONSE_SOFT_BYTES + consensus_bytes_max) as u64);
        let sync = request_response::Behaviour::with_codec(
            codec,
            [(sync_protocol, request_response::ProtocolSupport::Full)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(20)),
        );
        let identify = identify::Behaviour::new(identify::Config::new(
            protocol_version.clone(),
            keypair.public(),
        ));

        let behaviour = Behaviour {
            allow,
            limits,
            gossipsub: gossip,
            identify,
            sync,
        };
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(setup_err)?
            .with_behaviour(|_| behaviour)
            .map_err(setup_err)?
            .with_swarm_config(|c| c.with_idle_connection_timeout(setup.idle_timeout))
            .build();
        swarm
            .listen_on(setup.listen.clone())
            .map_err(|e| NetworkError::Listen {
                addr: setup.listen.clone(),
                reason: e.to_string(),
            })?;
        info!(peer_id = %local, allowed_peers = allowed.len(), "network configured");

        let now = Instant::now();
        let redial = setup
            .persistent_peers
            .into_iter()
            .filter(|(p, _)| *p != local)
            .map(|(p, addr)| {
                (
                    p,
                    Redial {
                        addr,
                        next_at: now,
                        backoff: REDIAL_MIN,
                    },
                )
            })
            .collect();
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let (commands_tx, commands_rx) = mpsc::channel(EVENT_QUEUE);
        // Seldom full (SERVE_REQUESTS_MAX requests are served at once); when
        // it is, a reading thread waits.
        let (served_tx, served_rx) = mpsc::channel(SERVE_REQUESTS_MAX);
        let (checked_tx, checked_rx) = mpsc::unbounded_channel();
        let network = Network {
            swarm,
            topics,
            validator: Arc::new(Validator {
                chain_id: genesis.chain_id.clone(),
                tx_batch_bytes_max,
                consensus_bytes_max,
            }),
            // The node names the sets of its heights when consensus starts.
            sets: HeightSets::default(),
            allowed,
            tx_checks: Arc::new(Semaphore::new(intake::TX_CHECKS_KIB_MAX)),
            sig_checks: setup.sig_checks,
            checked_tx,
            checked_rx,
            tx_check_seq: 0,
            tx_check_next: 0,
            tx_checks_done: BTreeMap::new(),
            store,
            events: events_tx,
            commands: commands_rx,
            metrics,
            redial,
            connected: HashSet::new(),
            members: Members::default(),
            warned: HashSet::new(),
            protocol_version,
            requests: HashMap::new(),
            serving: ServeLimiter::new(),
            served_tx,
            served_rx,
            bad_messages: HashMap::new(),
            // Starts at the wall clock in microseconds: it grows across
            // restarts (a node publishes far fewer than a million messages a
            // second), so peers can tell a stale status from a new one, and
            // two nodes' identical status messages are rarely identical bytes.
            seq: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            block_bytes_max,
        };
        Ok((network, commands_tx, events_rx))
    }

    pub fn local_peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs until `shutdown` turns true or every command sender is gone.
    pub async fn run(mut self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                event = self.swarm.select_next_some() => self.on_swarm_event(event).await,
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                // Never `None`: the network holds a sender.
                Some(served) = self.served_rx.recv() => self.on_served(served),
                Some(checked) = self.checked_rx.recv() => self.on_checked_txs(checked).await,
                _ = tick.tick() => self.redial(),
            }
        }
        debug!("network stopped");
    }

    fn redial(&mut self) {
        let now = Instant::now();
        for (peer, r) in self.redial.iter_mut() {
            if self.connected.contains(peer) || r.next_at > now {
                continue;
            }
            debug!(%peer, addr = %r.addr, "dialing persistent peer");
            if let Err(e) = self.swarm.dial(r.addr.clone()) {
                debug!(%peer, error = %e, "dial failed");
            }
            r.next_at = now + r.backoff;
            r.backoff = (r.backoff * 2).min(REDIAL_MAX);
        }
    }

    fn publish(&mut self, topic: &'static str, data: Vec<u8>) {
        let t = match topic {
            "txs" => self.topics.txs.clone(),
            "consensus" => self.topics.consensus.clone(),
            _ => self.topics.status.clone(),
        };
        match self.swarm.behaviour_mut().gossipsub.publish(t, data) {
            Ok(_) => self.metrics.gossip(topic, "out"),
            Err(
                gossipsub::PublishError::NoPeersSubscribedToTopic
                | gossipsub::PublishError::Duplicate,
            ) => {}
            Err(e) => debug!(topic, error = %e, "publish failed"),
        }
    }

    fn on_command(&mut self, command: NetCommand) {
        match command {
            NetCommand::PublishConsensus { msg, seq } => {
                self.publish("consensus", wire::encode_envelope(seq, &msg))
            }
            NetCommand::PublishTxs(txs) => {
                for chunk in txs.chunks(wire::TX_BATCH_MAX) {
                    self.seq += 1;
                    let data = wire::encode_envelope(self.seq, &chunk.to_vec());
                    self.publish("txs", data);
                }
            }
            NetCommand::PublishStatus(status) => {
                self.seq += 1;
                let data = wire::encode_envelope(self.seq, &status);
                self.publish("status", data);
            }
            NetCommand::RequestBlocks { peer, from, to } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, BlocksRequest { from, to });
                self.requests.insert(id, (peer, from, to));
            }
            NetCommand::PublishRaw { topic, data } => self.publish(topic, data),
            NetCommand::Membership {
                from,
                sets,
                allowed,
            } => {
                self.sets.update(from, sets);
                self.follow_members(allowed);
            }
            NetCommand::AddPeer { peer, addr } => {
                self.redial.insert(
                    peer,
                    Redial {
                        addr,
                        next_at: Instant::now(),
                        backoff: REDIAL_MIN,
                    },
                );
                self.redial();
            }
        }
    }

    fn penalise(&mut self, peer: PeerId, reason: &'static str) {
        let count = self.bad_messages.entry(peer).or_insert(0);
        *count += 1;
        self.metrics.invalid(reason);
        warn!(%peer, reason, count = *count, "rejected gossip");
        // Each rejected message costs the peer score; below gossipsub's
        // thresholds its gossip is ignored.
        let score = -f64::from(*count);
        self.swarm
            .behaviour_mut()
            .gossipsub
            .set_application_score(&peer, score);
    }

    async fn deliver(&mut self, event: NetEvent) {
        if self.events.send(event).await.is_err() {
            debug!("node stopped; dropping network event");
        }
    }

    async fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(%address, "listening");
                self.deliver(NetEvent::Listening(address)).await;
            }
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } => {
                let addr = endpoint.get_remote_address();
                let first = self.connected.insert(peer_id);
                debug!(peer = %peer_id, %addr, first, "connection established");
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.connected.remove(&peer_id);
                }
                if self.members.closed(peer_id, connection_id) {
                    info!(peer = %peer_id, "peer disconnected");
                }
                self.metrics.peers.set(self.members.len() as i64);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                connection_id,
                info,
            })) => self.on_identified(peer_id, connection_id, &info.protocol_version),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Error {
                peer_id,
                connection_id,
                error,
            })) => {
                // Every connection either proves its chain or goes.
                debug!(peer = %peer_id, %error, "identify failed; closing the connection");
                self.swarm.close_connection(connection_id);
            }
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => {
                debug!(addr = %send_back_addr, %error, "incoming connection refused");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.on_gossip(propagation_source, message_id, message)
                    .await;
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event).await,
            _ => {}
        }
    }

    async fn on_gossip(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let topic = message.topic;
        let (acceptance, event, reason) = if topic == self.topics.consensus.hash() {
            self.metrics.gossip("consensus", "in");
            match self.validator.consensus(&message.data, &self.sets) {
                Verdict::Accept(m) => (
                    gossipsub::MessageAcceptance::Accept,
                    Some(NetEvent::Consensus(m)),
                    "",
                ),
                Verdict::Ignore(r) => (gossipsub::MessageAcceptance::Ignore, None, r),
                Verdict::Reject(r) => (gossipsub::MessageAcceptance::Reject, None, r),
            }
        } else if topic == self.topics.txs.hash() {
            self.metrics.gossip("txs", "in");
            return self.check_txs(source, id, message.data).await;
        } else if topic == self.topics.status.hash() {
            self.metrics.gossip("status", "in");
            match wire::decode_status(&message.data) {
                // Status is a hint about a peer's height: it is not forwarded.
                Ok(env) => (
                    gossipsub::MessageAcceptance::Ignore,
                    Some(NetEvent::Status {
                        peer: source,
                        status: env.body,
                        seq: env.seq,
                    }),
                    "",
                ),
                Err(_) => (
                    gossipsub::MessageAcceptance::Reject,
                    None,
                    "undecodable status",
                ),
            }
        } else {
            (gossipsub::MessageAcceptance::Reject, None, "unknown topic")
        };
        self.validated(source, id, acceptance, reason, event).await;
    }

    /// Reports a gossip message's verdict to gossipsub (which forwards it
    /// only if accepted), penalises a sender of invalid gossip and hands an
    /// accepted message's content to the node.
    async fn validated(
        &mut self,
        source: PeerId,
        id: gossipsub::MessageId,
        acceptance: gossipsub::MessageAcceptance,
        reason: &'static str,
        event: Option<NetEvent>,
    ) {
        if matches!(acceptance, gossipsub::MessageAcceptance::Reject) {
            self.penalise(source, reason);
        }
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        if let Some(e) = event {
            self.deliver(e).await;
        }
    }
}

/// Splits `/ip4/…/tcp/…/p2p/<PeerId>` into the peer and its address.
pub fn parse_peer_addr(s: &str) -> Result<(PeerId, Multiaddr), String> {
    let addr: Multiaddr = s
        .parse()
        .map_err(|e| format!("{s:?} is not a multiaddress: {e}"))?;
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(peer)) => Ok((peer, addr)),
        _ => Err(format!("{s:?} does not end with /p2p/<PeerId>")),
    }
}
