//! Peer-to-peer networking over rust-libp2p.
//!
//! One task owns the `Swarm` ([`NetworkLoop`]); the rest of the node holds a cheap cloneable
//! [`Network`] handle that sends it commands carrying a oneshot reply, and receives
//! [`NetworkEvent`]s — no libp2p event type leaks out of this module. Bulk transfers run on their
//! own streams ([`transfer`]) outside the swarm task, so a large download never delays gossip.
//!
//! - Transport: TCP and QUIC, noise, yamux, connection limits; the libp2p identity is the node's
//!   secp256k1 key, so a peer's Ethereum address follows from its PeerId
//!   ([`crate::keys::address_of_peer`]).
//! - Discovery: identify feeds Kademlia (`/airbloc/kad/1.0.0`, server mode); bootnodes from config;
//!   mDNS behind a switch; newly found peers are dialled; provider records say who holds a bundle.
//! - Admission ([`admission`]): a peer whose address is not an active NodeRegistry entry (as
//!   indexed) gets no application traffic — its requests and transfers are refused with
//!   `NOT_ADMITTED`, and its gossip score is pushed below the graylist threshold, so nothing is sent
//!   to it and what it sends is ignored. A node deactivated on chain is disconnected.
//! - Gossip ([`gossip`]): signed, validated announcements under 64 KiB.
//! - Request/response ([`codec`], [`rpc`]): protobuf frames with size limits checked before
//!   allocation; every inbound request gets a response.

pub mod admission;
pub mod codec;
pub mod gossip;
pub mod perf;
pub mod rpc;
pub mod transfer;

pub use admission::{Admission, Standing};
pub use gossip::{Announced, BundleStatement, TOPIC_BUNDLES, TOPIC_NODES};
pub use rpc::RequestHandler;
pub use transfer::{BundleSource, FetchRequest, FileBundles, TransferStats};

use crate::keys::address_of_peer;
use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::B256;
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, connection_limits, gossipsub, identify,
    identity::Keypair,
    kad, mdns,
    metrics::{Metrics, Recorder},
    noise, ping,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, SwarmEvent, behaviour::toggle::Toggle, dial_opts::DialOpts},
    tcp, yamux,
};
use prost::Message as _;
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub listen: Vec<Multiaddr>,
    pub bootnodes: Vec<Multiaddr>,
    pub mdns: bool,
    pub request_timeout: Duration,
    /// Chain id of the deployment (the EIP-712 domain of announcements).
    pub chain_id: u64,
    /// Established connections allowed in total.
    pub max_connections: u32,
    /// Whether the node takes part in gossip (bootnodes do not).
    pub gossip: bool,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid multiaddr")],
            bootnodes: Vec::new(),
            mdns: false,
            request_timeout: Duration::from_secs(30),
            chain_id: 0,
            max_connections: 256,
            gossip: true,
            heartbeat: Duration::from_millis(500),
        }
    }
}

/// Errors starting the network.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("invalid p2p multiaddr {0:?}: {1} — fix p2p.listen / p2p.bootnodes")]
    BadAddress(String, String),
    #[error("cannot listen on {addr}: {message} — choose another with --p2p.listen")]
    Listen { addr: Multiaddr, message: String },
    #[error("libp2p setup failed: {0}")]
    Setup(String),
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("peer {0} could not be reached or did not answer: {1}")]
    Unreachable(PeerId, String),
    #[error("peer answered with an error ({code:?}): {message}")]
    Remote { code: wire::ErrorCode, message: String },
    #[error("the network stopped")]
    Stopped,
}

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub address: Option<alloy::primitives::Address>,
    pub standing: Standing,
    pub addresses: Vec<Multiaddr>,
    pub agent: Option<String>,
    pub rtt: Option<Duration>,
}

/// What the network tells the rest of the node.
#[derive(Debug, Clone)]
pub enum NetworkEvent {
    /// A validated announcement from an admitted peer.
    Announcement(Announced),
    PeerConnected(PeerId),
    PeerDisconnected(PeerId),
}

enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    DialPeer(PeerId, Vec<Multiaddr>, oneshot::Sender<Result<(), String>>),
    Disconnect(PeerId),
    Request(PeerId, wire::request::Body, oneshot::Sender<Result<wire::Response, RequestError>>),
    Publish(&'static str, Vec<u8>, oneshot::Sender<Result<(), String>>),
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Listening(oneshot::Sender<Vec<Multiaddr>>),
    Provide(B256),
    Providers(B256, oneshot::Sender<Vec<PeerId>>),
}

/// Results of work the loop handed to tasks.
enum Internal {
    Respond(request_response::ResponseChannel<wire::Response>, wire::Response),
    Verdict { id: gossipsub::MessageId, via: PeerId, verdict: gossip::Verdict, announced: Option<Announced> },
}

/// Pluggable parts the roles install after start.
#[derive(Default)]
struct Installed {
    source: Arc<RwLock<Option<Arc<dyn BundleSource>>>>,
    handler: RwLock<Option<Arc<dyn RequestHandler>>>,
}

/// Handle to the network; cheap to clone.
#[derive(Clone)]
pub struct Network {
    commands: mpsc::Sender<Command>,
    local_peer_id: PeerId,
    events: broadcast::Sender<NetworkEvent>,
    control: libp2p_stream::Control,
    installed: Arc<Installed>,
    stats: Arc<TransferStats>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("local_peer_id", &self.local_peer_id).finish_non_exhaustive()
    }
}

impl Network {
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Subscribes to network events.
    pub fn events(&self) -> broadcast::Receiver<NetworkEvent> {
        self.events.subscribe()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Dials an address.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), String> {
        self.ask(|tx| Command::Dial(addr, tx)).await.unwrap_or_else(|| Err("the network stopped".into()))
    }

    /// Connects to `peer` at `addrs` (or wherever the DHT says it is) and waits up to `timeout`.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>, timeout: Duration) -> Result<(), String> {
        if self.is_connected(peer).await {
            return Ok(());
        }
        self.ask(|tx| Command::DialPeer(peer, addrs, tx)).await.unwrap_or_else(|| Err("the network stopped".into()))?;
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.is_connected(peer).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("could not connect to {peer} within {timeout:?}"))
    }

    /// Connects to the node registered on chain under `address`: its NodeRegistry entry names the
    /// PeerId and addresses; the DHT fills in when those are stale.
    pub async fn connect_node(
        &self,
        state: &crate::chain::state::ChainState,
        address: alloy::primitives::Address,
        timeout: Duration,
    ) -> Result<PeerId, String> {
        let row = state
            .node(address)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{address} is not registered in the NodeRegistry"))?;
        if !row.active {
            return Err(format!("node {address} is deactivated"));
        }
        let peer = PeerId::from_bytes(&row.peer_id).map_err(|e| format!("bad PeerId registered for {address}: {e}"))?;
        let addrs = row.multiaddrs.iter().filter_map(|a| a.parse().ok()).collect();
        self.connect(peer, addrs, timeout).await?;
        Ok(peer)
    }

    async fn is_connected(&self, peer: PeerId) -> bool {
        self.peers().await.iter().any(|p| p.peer_id == peer)
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect(peer)).await;
    }

    /// Sends a request and waits for the response (or the request timeout).
    pub async fn request(&self, peer: PeerId, body: wire::request::Body) -> Result<wire::Response, RequestError> {
        self.ask(|tx| Command::Request(peer, body, tx)).await.unwrap_or(Err(RequestError::Stopped))
    }

    /// Publishes raw bytes on a gossip topic.
    pub async fn publish(&self, topic: &'static str, data: Vec<u8>) -> Result<(), String> {
        self.ask(|tx| Command::Publish(topic, data, tx)).await.unwrap_or_else(|| Err("the network stopped".into()))
    }

    /// Publishes an announcement on its topic.
    pub async fn announce(&self, announcement: &wire::Announcement) -> Result<(), String> {
        let topic = match announcement.body {
            Some(wire::announcement::Body::Node(_)) => TOPIC_NODES,
            _ => TOPIC_BUNDLES,
        };
        self.publish(topic, announcement.encode_to_vec()).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Command::Peers).await.unwrap_or_default()
    }

    /// Addresses the node listens on (resolved: real ports, one per interface).
    pub async fn listening(&self) -> Vec<Multiaddr> {
        self.ask(Command::Listening).await.unwrap_or_default()
    }

    /// Announces in the DHT that this node holds `bundle`.
    pub async fn provide(&self, bundle: B256) {
        let _ = self.commands.send(Command::Provide(bundle)).await;
    }

    /// Asks the DHT which peers hold `bundle`.
    pub async fn providers(&self, bundle: B256) -> Vec<PeerId> {
        self.ask(|tx| Command::Providers(bundle, tx)).await.unwrap_or_default()
    }

    /// Opens a raw stream to `peer` (dialling it if needed).
    pub async fn open_stream(
        &self,
        peer: PeerId,
        protocol: StreamProtocol,
    ) -> Result<libp2p::Stream, libp2p_stream::OpenStreamError> {
        self.control.clone().open_stream(peer, protocol).await
    }

    /// Installs what the node serves over the transfer protocol and bundle-metadata requests.
    pub fn set_bundle_source(&self, source: Arc<dyn BundleSource>) {
        *self.installed.source.write().expect("source lock") = Some(source);
    }

    /// Installs the handler of role requests.
    pub fn set_request_handler(&self, handler: Arc<dyn RequestHandler>) {
        *self.installed.handler.write().expect("handler lock") = Some(handler);
    }

    /// Transfer counters.
    pub fn transfer_stats(&self) -> &TransferStats {
        &self.stats
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossip::Gossipsub,
    mdns: Toggle<mdns::tokio::Behaviour>,
    rpc: request_response::Behaviour<codec::ProtoCodec>,
    streams: libp2p_stream::Behaviour,
}

/// Parses configured multiaddrs, naming the bad one.
pub fn parse_addrs(addrs: &[String]) -> Result<Vec<Multiaddr>, NetworkError> {
    addrs
        .iter()
        .map(|a| a.parse().map_err(|e: libp2p::multiaddr::Error| NetworkError::BadAddress(a.clone(), e.to_string())))
        .collect()
}

/// The PeerId at the end of a `/p2p/<id>` multiaddr.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// The task that owns the swarm.
pub struct NetworkLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal: mpsc::UnboundedReceiver<Internal>,
    events: broadcast::Sender<NetworkEvent>,
    admission: Admission,
    validator: gossip::Validator,
    installed: Arc<Installed>,
    metrics: Metrics,
    incoming: Vec<tokio::task::JoinHandle<()>>,
    serving: CancellationToken,
    pending: HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<wire::Response, RequestError>>>,
    providers: HashMap<kad::QueryId, (oneshot::Sender<Vec<PeerId>>, HashSet<PeerId>)>,
    wanted: HashSet<PeerId>,
    next_request_id: u64,
    peers: HashMap<PeerId, PeerState>,
    listening: Vec<Multiaddr>,
    bootnodes: HashSet<PeerId>,
    max_connections: u32,
}

#[derive(Debug, Default)]
struct PeerState {
    addresses: Vec<Multiaddr>,
    standing: Option<Standing>,
    agent: Option<String>,
    rtt: Option<Duration>,
}

/// Builds the swarm, starts listening and dials the bootnodes. libp2p metrics (bandwidth,
/// connections, gossip, DHT) go into `registry`.
pub fn start(
    key: &Keypair,
    config: &NetworkConfig,
    admission: Admission,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<(Network, NetworkLoop), NetworkError> {
    let local_peer_id = key.public().to_peer_id();
    let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_pending_incoming(Some(64))
        .with_max_established_per_peer(Some(4));
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(StreamProtocol::new("/airbloc/kad/1.0.0"));
            kad_config.set_query_timeout(Duration::from_secs(30));
            let store_config = kad::store::MemoryStoreConfig { max_provided_keys: 1 << 20, ..Default::default() };
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::with_config(peer_id, store_config),
                kad_config,
            );
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = match config.mdns {
                true => Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?),
                false => None,
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(
                    identify::Config::new("/airbloc/id/1.0.0".into(), key.public())
                        .with_agent_version(format!("airblocd/{}", env!("CARGO_PKG_VERSION"))),
                ),
                ping: ping::Behaviour::default(),
                kad,
                gossipsub: gossip::behaviour(key, config.heartbeat)?,
                mdns: Toggle::from(mdns),
                rpc: request_response::Behaviour::with_codec(
                    codec::ProtoCodec,
                    [(codec::PROTOCOL, ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(config.request_timeout)
                        .with_max_concurrent_streams(256),
                ),
                streams: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| setup(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    if config.gossip {
        for topic in gossip::topics() {
            swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| setup(&e))?;
        }
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen { addr: addr.clone(), message: e.to_string() })?;
    }
    let mut bootnodes = HashSet::new();
    for addr in &config.bootnodes {
        if let Some(peer) = peer_of(addr) {
            swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
            bootnodes.insert(peer);
        } else {
            warn!(target: "p2p", %addr, "bootnode address has no /p2p/<PeerId>; it is dialled but not added to the DHT");
        }
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(target: "p2p", %addr, error = %e, "cannot dial bootnode");
        }
    }
    let metrics = Metrics::new(registry);
    let mut control = swarm.behaviour().streams.new_control();
    let serving = CancellationToken::new();
    let installed = Arc::new(Installed::default());
    let stats = Arc::new(TransferStats::default());
    let transfers = control.accept(transfer::PROTOCOL).map_err(|e| setup(&e))?;
    let perf_streams = control.accept(perf::PROTOCOL).map_err(|e| setup(&e))?;
    let incoming = vec![
        tokio::spawn(transfer::serve(
            transfers,
            admission.clone(),
            installed.source.clone(),
            stats.clone(),
            serving.clone(),
        )),
        tokio::spawn(perf::serve(perf_streams, serving.clone())),
    ];
    let (commands_tx, commands) = mpsc::channel(1024);
    let (internal_tx, internal) = mpsc::unbounded_channel();
    let (events, _) = broadcast::channel(4096);
    let network = Network {
        commands: commands_tx,
        local_peer_id,
        events: events.clone(),
        control,
        installed: installed.clone(),
        stats,
    };
    let validator = gossip::Validator { admission: admission.clone(), chain_id: config.chain_id };
    let event_loop = NetworkLoop {
        swarm,
        commands,
        internal_tx,
        internal,
        events,
        admission,
        validator,
        installed,
        metrics,
        incoming,
        serving,
        pending: HashMap::new(),
        providers: HashMap::new(),
        wanted: HashSet::new(),
        next_request_id: 1,
        peers: HashMap::new(),
        listening: Vec::new(),
        bootnodes,
        max_connections: config.max_connections,
    };
    Ok((network, event_loop))
}

impl NetworkLoop {
    /// Runs until cancelled or every handle is dropped.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut admission_check = tokio::time::interval(Duration::from_secs(1));
        let mut bootstrap = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(internal) = self.internal.recv() => self.on_internal(internal),
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = admission_check.tick() => self.refresh_admission(),
                _ = bootstrap.tick() => {
                    if !self.bootnodes.is_empty() || self.peers.len() > 1 {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
        }
        self.serving.cancel();
        for task in self.incoming.drain(..) {
            let _ = task.await;
        }
        for (_, reply) in self.pending.drain() {
            let _ = reply.send(Err(RequestError::Stopped));
        }
        info!(target: "p2p", "network stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial(addr, reply) => {
                let _ = reply.send(self.swarm.dial(addr).map_err(|e| e.to_string()));
            }
            Command::DialPeer(peer, addrs, reply) => {
                let opts = DialOpts::peer_id(peer).addresses(addrs).extend_addresses_through_behaviour().build();
                let result = match self.swarm.dial(opts) {
                    Ok(()) => Ok(()),
                    Err(libp2p::swarm::DialError::NoAddresses) => {
                        // Ask the DHT where it is; dialled when the query finds it.
                        self.wanted.insert(peer);
                        self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                        Ok(())
                    }
                    // Already connected, or a dial (e.g. from discovery) is under way: the caller
                    // waits for the connection either way.
                    Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(result);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Request(peer, body, reply) => {
                let request_id = self.next_request_id;
                self.next_request_id += 1;
                let id =
                    self.swarm.behaviour_mut().rpc.send_request(&peer, wire::Request { request_id, body: Some(body) });
                self.pending.insert(id, reply);
            }
            Command::Publish(topic, data, reply) => {
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            Command::Peers(reply) => {
                let peers = self
                    .peers
                    .iter()
                    .map(|(peer, state)| PeerInfo {
                        peer_id: *peer,
                        address: address_of_peer(peer),
                        standing: self.admission.standing(peer),
                        addresses: state.addresses.clone(),
                        agent: state.agent.clone(),
                        rtt: state.rtt,
                    })
                    .collect();
                let _ = reply.send(peers);
            }
            Command::Listening(reply) => {
                let _ = reply.send(self.listening.clone());
            }
            Command::Provide(bundle) => {
                if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(kad::RecordKey::new(&bundle)) {
                    warn!(target: "p2p", %bundle, error = %e, "cannot record a provider entry");
                }
            }
            Command::Providers(bundle, reply) => {
                let id = self.swarm.behaviour_mut().kad.get_providers(kad::RecordKey::new(&bundle));
                self.providers.insert(id, (reply, HashSet::new()));
            }
        }
    }

    fn on_internal(&mut self, internal: Internal) {
        match internal {
            Internal::Respond(channel, response) => {
                let _ = self.swarm.behaviour_mut().rpc.send_response(channel, response);
            }
            Internal::Verdict { id, via, verdict, announced } => {
                match &verdict {
                    gossip::Verdict::Accept => {}
                    gossip::Verdict::Ignore(reason) => debug!(target: "p2p::gossip", %via, %reason, "ignored"),
                    gossip::Verdict::Reject(reason) => info!(target: "p2p::gossip", %via, %reason, "rejected"),
                }
                self.swarm.behaviour_mut().gossipsub.report_message_validation_result(&id, &via, verdict.acceptance());
                if let Some(announced) = announced {
                    let _ = self.events.send(NetworkEvent::Announcement(announced));
                }
            }
        }
    }

    /// Applies each connected peer's current standing: gossip score, and disconnection of
    /// nodes deactivated on chain.
    fn refresh_admission(&mut self) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.apply_standing(peer);
        }
    }

    fn apply_standing(&mut self, peer: PeerId) {
        let standing = self.admission.standing(&peer);
        let Some(state) = self.peers.get_mut(&peer) else { return };
        if state.standing == Some(standing) {
            return;
        }
        state.standing = Some(standing);
        let score = if standing == Standing::Admitted { 0.0 } else { gossip::UNADMITTED_SCORE };
        self.swarm.behaviour_mut().gossipsub.set_application_score(&peer, score);
        match standing {
            Standing::Admitted => info!(target: "p2p", %peer, "peer admitted"),
            Standing::Unregistered => debug!(target: "p2p", %peer, "peer is not registered; DHT only"),
            Standing::Deactivated => {
                info!(target: "p2p", %peer, "peer is deactivated in the NodeRegistry; disconnecting");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(target: "p2p", %address, "listening");
                self.listening.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => self.listening.retain(|a| *a != address),
            SwarmEvent::ConnectionEstablished { peer_id, endpoint, num_established, .. } => {
                let state = self.peers.entry(peer_id).or_default();
                state.addresses.push(endpoint.get_remote_address().clone());
                if num_established.get() == 1 {
                    debug!(target: "p2p", %peer_id, "connected");
                    let _ = self.events.send(NetworkEvent::PeerConnected(peer_id));
                }
                self.apply_standing(peer_id);
                if self.bootnodes.contains(&peer_id) {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, endpoint, num_established, .. } => {
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                    let _ = self.events.send(NetworkEvent::PeerDisconnected(peer_id));
                } else if let Some(state) = self.peers.get_mut(&peer_id) {
                    let addr = endpoint.get_remote_address();
                    if let Some(i) = state.addresses.iter().position(|a| a == addr) {
                        state.addresses.remove(i);
                    }
                }
            }
            SwarmEvent::Behaviour(event) => self.on_behaviour(event),
            _ => {}
        }
    }

    fn on_behaviour(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(event) => {
                self.metrics.record(&event);
                if let identify::Event::Received { peer_id, info, .. } = event {
                    if let Some(state) = self.peers.get_mut(&peer_id) {
                        state.agent = Some(info.agent_version.clone());
                    }
                    for addr in info.listen_addrs {
                        self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
            }
            BehaviourEvent::Ping(event) => {
                self.metrics.record(&event);
                if let (Ok(rtt), Some(state)) = (&event.result, self.peers.get_mut(&event.peer)) {
                    state.rtt = Some(*rtt);
                }
            }
            BehaviourEvent::Kad(event) => {
                self.metrics.record(&event);
                self.on_kad(event);
            }
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer_id, addr) in found {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr.clone());
                    self.maybe_dial(peer_id);
                }
            }
            BehaviourEvent::Gossipsub(event) => {
                self.metrics.record(&event);
                if let gossipsub::Event::Message { propagation_source, message_id, message } = event {
                    self.on_gossip(propagation_source, message_id, message);
                }
            }
            BehaviourEvent::Rpc(event) => self.on_rpc(event),
            _ => {}
        }
    }

    /// Dials a newly discovered peer while below the connection budget.
    fn maybe_dial(&mut self, peer: PeerId) {
        if peer == *self.swarm.local_peer_id() || self.peers.contains_key(&peer) {
            return;
        }
        if self.peers.len() as u32 >= self.max_connections / 2 {
            return;
        }
        let _ = self.swarm.dial(DialOpts::peer_id(peer).build());
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::RoutingUpdated { peer, is_new_peer: true, .. } => self.maybe_dial(peer),
            kad::Event::OutboundQueryProgressed { id, result, step, .. } => match result {
                kad::QueryResult::GetProviders(result) => {
                    if let Some((_, found)) = self.providers.get_mut(&id)
                        && let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result
                    {
                        found.extend(providers);
                    }
                    if step.last
                        && let Some((reply, found)) = self.providers.remove(&id)
                    {
                        let _ = reply.send(found.into_iter().collect());
                    }
                }
                kad::QueryResult::GetClosestPeers(Ok(ok)) => {
                    for info in ok.peers {
                        if self.wanted.remove(&info.peer_id) {
                            let opts = DialOpts::peer_id(info.peer_id).addresses(info.addrs).build();
                            let _ = self.swarm.dial(opts);
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn on_gossip(&mut self, via: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let Some(author) = message.source else {
            // Strict validation makes this unreachable; treat it as forged if it ever happens.
            self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                &id,
                &via,
                gossipsub::MessageAcceptance::Reject,
            );
            return;
        };
        let validator = self.validator.clone();
        let internal = self.internal_tx.clone();
        let admitted_via = self.admission.admits(&via);
        tokio::spawn(async move {
            let (verdict, announced) = if admitted_via {
                validator.validate(author, message.topic.as_str(), &message.data).await
            } else {
                (gossip::Verdict::Reject("relayed by a peer without an active NodeRegistry entry".into()), None)
            };
            let _ = internal.send(Internal::Verdict { id, via, verdict, announced });
        });
    }

    fn on_rpc(&mut self, event: request_response::Event<wire::Request, wire::Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request { request, channel, .. } => self.answer(peer, request, channel),
                request_response::Message::Response { request_id, response } => {
                    if let Some(reply) = self.pending.remove(&request_id) {
                        let result = match response.body {
                            Some(wire::response::Body::Error(e)) => Err(RequestError::Remote {
                                code: wire::ErrorCode::try_from(e.code).unwrap_or(wire::ErrorCode::Unspecified),
                                message: e.message,
                            }),
                            _ => Ok(response),
                        };
                        let _ = reply.send(result);
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.pending.remove(&request_id) {
                    let _ = reply.send(Err(RequestError::Unreachable(peer, error.to_string())));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(target: "p2p::rpc", %peer, %error, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// Every inbound request gets an answer; the requester is the connection's PeerId.
    fn answer(
        &mut self,
        peer: PeerId,
        request: wire::Request,
        channel: request_response::ResponseChannel<wire::Response>,
    ) {
        let id = request.request_id;
        let result = if !self.admission.admits(&peer) {
            Err(transfer::wire_error(
                wire::ErrorCode::NotAdmitted,
                "this node answers only peers with an active NodeRegistry entry — register your node first",
            ))
        } else {
            match request.body {
                None => Err(transfer::wire_error(wire::ErrorCode::BadRequest, "empty request")),
                Some(wire::request::Body::Ping(ping)) => {
                    Ok(wire::response::Body::Pong(wire::Pong { payload: ping.payload }))
                }
                Some(wire::request::Body::BundleMetadata(request)) => self.bundle_metadata(&peer, &request),
                Some(body) => {
                    let handler = self.installed.handler.read().expect("handler lock").clone();
                    match handler {
                        None => Err(rpc::unsupported(&body)),
                        Some(handler) => {
                            let internal = self.internal_tx.clone();
                            tokio::spawn(async move {
                                let result = handler.handle(peer, body).await;
                                let _ = internal.send(Internal::Respond(channel, rpc::response(id, result)));
                            });
                            return;
                        }
                    }
                }
            }
        };
        let _ = self.swarm.behaviour_mut().rpc.send_response(channel, rpc::response(id, result));
    }

    fn bundle_metadata(&self, peer: &PeerId, request: &wire::BundleMetadataRequest) -> rpc::HandlerResult {
        let bundle = B256::try_from(request.bundle_id.as_slice())
            .map_err(|_| transfer::wire_error(wire::ErrorCode::BadRequest, "bundle_id must be 32 bytes"))?;
        let source = self.installed.source.read().expect("source lock").clone();
        let source =
            source.ok_or_else(|| transfer::wire_error(wire::ErrorCode::NotFound, "this node serves no bundles"))?;
        let served = source.serve(peer, bundle)?;
        Ok(wire::response::Body::BundleMetadata(wire::BundleMetadata {
            bundle_id: bundle.to_vec(),
            size: served.manifest.size,
            chunk_size: served.manifest.chunk_size,
            chunk_hashes: served.manifest.concatenated(),
        }))
    }
}
