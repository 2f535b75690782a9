//! The task that owns the swarm: it takes [`Command`]s from the handles, turns swarm events into
//! [`NetworkEvent`]s and command replies, and hands slow work (gossip validation, role requests,
//! transfers) to other tasks so the swarm is never blocked.
//!
//! Waiting is by notification: a dial's reply waits in a pending map until the swarm reports the
//! connection (or its failure); a DHT lookup's reply until the query's last step; admission is
//! re-applied when the chain index advances. The only timer is the periodic Kademlia bootstrap,
//! where time itself is the point (the routing table is refreshed every so often).

use super::{
    admission::{Admission, Standing},
    behaviour::{Behaviour, BehaviourEvent},
    builder::{Handlers, NetworkBuilder},
    error::{DialError, PublishError, RequestError, wire_error},
    gossip,
    handle::{Command, Listening, NetworkEvent, PeerInfo},
    perf, rpc, transfer,
};
use crate::keys::address_of_peer;
use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::B256;
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, Swarm, gossipsub, identify, kad, mdns,
    metrics::{Metrics, Recorder},
    request_response,
    swarm::{ConnectionId, SwarmEvent, dial_opts::DialOpts},
};
use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often the DHT routing table is refreshed from the bootnodes and known peers.
const BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(30);

type DialReply = oneshot::Sender<Result<(), DialError>>;

/// Results of work the loop handed to tasks.
enum Internal {
    Respond(request_response::ResponseChannel<wire::Response>, wire::Response),
    Verdict { id: gossipsub::MessageId, via: PeerId, verdict: gossip::Verdict, announced: Option<gossip::Announced> },
}

#[derive(Debug, Default)]
struct PeerState {
    addresses: Vec<Multiaddr>,
    standing: Option<Standing>,
    agent: Option<String>,
    rtt: Option<Duration>,
}

/// The task that owns the swarm. Runs until cancelled or every handle is dropped.
pub struct NetworkLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    internal: mpsc::UnboundedReceiver<Internal>,
    events: broadcast::Sender<NetworkEvent>,
    listening: watch::Sender<Listening>,
    admission: Admission,
    indexed: Option<watch::Receiver<u64>>,
    validator: gossip::Validator,
    handlers: Handlers,
    metrics: Metrics,
    stats: std::sync::Arc<transfer::TransferStats>,
    /// Requests sent, by id, waiting for their response.
    pending_requests:
        HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<wire::Response, RequestError>>>,
    /// Dials of an address, by the connection they open.
    pending_dials: HashMap<ConnectionId, (Multiaddr, DialReply)>,
    /// Connects to a peer, answered by its first established connection.
    pending_connects: HashMap<PeerId, Vec<DialReply>>,
    /// DHT lookups of peers to connect to, by query.
    lookups: HashMap<kad::QueryId, (PeerId, bool)>,
    providers: HashMap<kad::QueryId, (oneshot::Sender<Vec<PeerId>>, HashSet<PeerId>)>,
    next_request_id: u64,
    peers: HashMap<PeerId, PeerState>,
    bootnodes: HashSet<PeerId>,
    max_connections: u32,
}

impl NetworkLoop {
    pub(crate) fn new(builder: NetworkBuilder, handlers: Handlers) -> Self {
        let (internal_tx, internal) = mpsc::unbounded_channel();
        let validator = gossip::Validator {
            admission: builder.admission.clone(),
            chain_id: builder.config.chain_id,
            indexed: builder.indexed.clone(),
        };
        Self {
            swarm: builder.swarm,
            commands: builder.commands,
            internal_tx,
            internal,
            events: builder.events,
            listening: builder.listening,
            admission: builder.admission,
            indexed: builder.indexed,
            validator,
            handlers,
            metrics: builder.metrics,
            stats: builder.stats,
            pending_requests: HashMap::new(),
            pending_dials: HashMap::new(),
            pending_connects: HashMap::new(),
            lookups: HashMap::new(),
            providers: HashMap::new(),
            next_request_id: 1,
            peers: HashMap::new(),
            bootnodes: builder.bootnodes,
            max_connections: builder.config.max_connections,
        }
    }

    /// Runs until `cancel` fires or every handle is dropped; then stops the stream servers and
    /// answers every waiting caller.
    pub async fn run(mut self, cancel: CancellationToken) {
        let serving = CancellationToken::new();
        let mut control = self.swarm.behaviour().streams.new_control();
        let mut incoming = Vec::new();
        match control.accept(transfer::PROTOCOL) {
            Ok(streams) => incoming.push(tokio::spawn(transfer::serve(
                streams,
                self.admission.clone(),
                self.handlers.bundles.clone(),
                self.stats.clone(),
                serving.clone(),
            ))),
            Err(e) => warn!(target: "p2p", error = %e, "cannot serve the transfer protocol"),
        }
        match control.accept(perf::PROTOCOL) {
            Ok(streams) => incoming.push(tokio::spawn(perf::serve(streams, serving.clone()))),
            Err(e) => warn!(target: "p2p", error = %e, "cannot serve the perf protocol"),
        }
        // Time is the point here: the routing table is refreshed every so often.
        let mut bootstrap = tokio::time::interval(BOOTSTRAP_INTERVAL);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                Some(internal) = self.internal.recv() => self.on_internal(internal),
                event = self.swarm.select_next_some() => self.on_event(event),
                advanced = index_advanced(&mut self.indexed) => match advanced {
                    true => self.refresh_admission(),
                    // The indexer stopped: standings no longer change.
                    false => self.indexed = None,
                },
                _ = bootstrap.tick() => {
                    if !self.bootnodes.is_empty() || self.peers.len() > 1 {
                        let _ = self.swarm.behaviour_mut().kad.bootstrap();
                    }
                }
            }
        }
        serving.cancel();
        for task in incoming {
            let _ = task.await;
        }
        for (_, reply) in self.pending_requests.drain() {
            let _ = reply.send(Err(RequestError::Stopped));
        }
        for (_, (_, reply)) in self.pending_dials.drain() {
            let _ = reply.send(Err(DialError::Stopped));
        }
        for reply in self.pending_connects.drain().flat_map(|(_, replies)| replies) {
            let _ = reply.send(Err(DialError::Stopped));
        }
        self.listening.send_modify(|l| l.pending.clear());
        info!(target: "p2p", "network stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Dial { addr, reply } => {
                self.pending_dials.retain(|_, (_, reply)| !reply.is_closed());
                let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.pending_dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(DialError::Failed { target: addr.to_string(), reason: e.to_string() }));
                    }
                }
            }
            Command::Connect { peer, addrs, reply } => self.connect(peer, addrs, reply),
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Request { peer, body, reply } => {
                let request_id = self.next_request_id;
                self.next_request_id += 1;
                let id =
                    self.swarm.behaviour_mut().rpc.send_request(&peer, wire::Request { request_id, body: Some(body) });
                self.pending_requests.insert(id, reply);
            }
            Command::Publish { topic, data, reply } => {
                let size = data.len();
                let result = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(gossipsub::IdentTopic::new(topic), data)
                    .map(|_| ())
                    .map_err(|e| match e {
                        gossipsub::PublishError::NoPeersSubscribedToTopic => PublishError::NoPeers(topic),
                        gossipsub::PublishError::MessageTooLarge => {
                            PublishError::TooLarge { size, limit: gossip::MAX_GOSSIP }
                        }
                        gossipsub::PublishError::Duplicate => PublishError::Duplicate,
                        other => PublishError::Failed { topic, reason: other.to_string() },
                    });
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

    /// Connects to `peer`: answered at once when connected, else when its first connection is
    /// established or every way to reach it failed.
    fn connect(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, reply: DialReply) {
        if self.swarm.is_connected(&peer) {
            let _ = reply.send(Ok(()));
            return;
        }
        self.pending_connects.retain(|_, replies| {
            replies.retain(|r| !r.is_closed());
            !replies.is_empty()
        });
        let opts = DialOpts::peer_id(peer).addresses(addrs).extend_addresses_through_behaviour().build();
        match self.swarm.dial(opts) {
            Ok(()) => {}
            Err(libp2p::swarm::DialError::NoAddresses) => {
                // Ask the DHT where it is; dialled when the lookup finds it.
                let id = self.swarm.behaviour_mut().kad.get_closest_peers(peer);
                self.lookups.insert(id, (peer, false));
            }
            // A dial (e.g. from discovery) is under way: its outcome answers this one too.
            Err(libp2p::swarm::DialError::DialPeerConditionFalse(_)) => {}
            Err(e) => {
                let _ = reply.send(Err(DialError::Failed { target: peer.to_string(), reason: e.to_string() }));
                return;
            }
        }
        self.pending_connects.entry(peer).or_default().push(reply);
    }

    fn answer_connects(&mut self, peer: &PeerId, result: impl Fn() -> Result<(), DialError>) {
        for reply in self.pending_connects.remove(peer).unwrap_or_default() {
            let _ = reply.send(result());
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
            SwarmEvent::NewListenAddr { listener_id, address } => {
                info!(target: "p2p", %address, "listening");
                self.listening.send_modify(|l| {
                    l.addrs.push(address);
                    l.pending.remove(&listener_id);
                });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listening.send_modify(|l| l.addrs.retain(|a| *a != address));
            }
            SwarmEvent::ListenerClosed { listener_id, addresses, .. } => self.listening.send_modify(|l| {
                l.pending.remove(&listener_id);
                l.addrs.retain(|a| !addresses.contains(a));
            }),
            SwarmEvent::ListenerError { error, .. } => warn!(target: "p2p", %error, "listener error"),
            SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, num_established, .. } => {
                if let Some((_, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                self.answer_connects(&peer_id, || Ok(()));
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
            SwarmEvent::OutgoingConnectionError { connection_id, peer_id, error } => {
                if let Some((addr, reply)) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(DialError::Failed { target: addr.to_string(), reason: error.to_string() }));
                }
                if let Some(peer) = peer_id
                    && !self.swarm.is_connected(&peer)
                {
                    let reason = error.to_string();
                    self.answer_connects(&peer, || {
                        Err(DialError::Failed { target: peer.to_string(), reason: reason.clone() })
                    });
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
                kad::QueryResult::GetClosestPeers(result) => self.on_lookup(id, result, step.last),
                _ => {}
            },
            _ => {}
        }
    }

    /// A step of a DHT lookup for a peer to connect to: dial it once found; when the lookup
    /// ends without finding it, its waiters learn so.
    fn on_lookup(&mut self, id: kad::QueryId, result: kad::GetClosestPeersResult, last: bool) {
        let Some((wanted, dialled)) = self.lookups.get_mut(&id) else { return };
        let wanted = *wanted;
        let found = match result {
            Ok(ok) => ok.peers,
            Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
        };
        if !*dialled && let Some(info) = found.into_iter().find(|info| info.peer_id == wanted) {
            *dialled = true;
            let opts = DialOpts::peer_id(wanted).addresses(info.addrs).build();
            if let Err(e) = self.swarm.dial(opts) {
                debug!(target: "p2p", peer = %wanted, error = %e, "cannot dial a peer found in the DHT");
            }
        }
        if last
            && let Some((_, dialled)) = self.lookups.remove(&id)
            && !dialled
            && !self.swarm.is_connected(&wanted)
        {
            self.answer_connects(&wanted, || Err(DialError::NotFound(wanted)));
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
                    if let Some(reply) = self.pending_requests.remove(&request_id) {
                        let result = match response.body {
                            Some(wire::response::Body::Error(e)) => Err(RequestError::from_wire(e)),
                            _ => Ok(response),
                        };
                        let _ = reply.send(result);
                    }
                }
            },
            request_response::Event::OutboundFailure { peer, request_id, error, .. } => {
                if let Some(reply) = self.pending_requests.remove(&request_id) {
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
            Err(wire_error(
                wire::ErrorCode::NotAdmitted,
                "this node answers only peers with an active NodeRegistry entry — register your node first",
            ))
        } else {
            match request.body {
                None => Err(wire_error(wire::ErrorCode::BadRequest, "empty request")),
                Some(wire::request::Body::Ping(ping)) => {
                    Ok(wire::response::Body::Pong(wire::Pong { payload: ping.payload }))
                }
                Some(wire::request::Body::BundleMetadata(request)) => self.bundle_metadata(&peer, &request),
                Some(body) => match self.handlers.requests.clone() {
                    None => Err(rpc::unsupported(&body)),
                    Some(handler) => {
                        // Role work may touch the chain or the disk: never inside the swarm task.
                        let internal = self.internal_tx.clone();
                        tokio::spawn(async move {
                            let result = handler.handle(peer, body).await;
                            let _ = internal.send(Internal::Respond(channel, rpc::response(id, result)));
                        });
                        return;
                    }
                },
            }
        };
        let _ = self.swarm.behaviour_mut().rpc.send_response(channel, rpc::response(id, result));
    }

    fn bundle_metadata(&self, peer: &PeerId, request: &wire::BundleMetadataRequest) -> rpc::HandlerResult {
        let bundle = B256::try_from(request.bundle_id.as_slice())
            .map_err(|_| wire_error(wire::ErrorCode::BadRequest, "bundle_id must be 32 bytes"))?;
        let source = self
            .handlers
            .bundles
            .as_ref()
            .ok_or_else(|| wire_error(wire::ErrorCode::NotFound, "this node serves no bundles"))?;
        let served = source.serve(peer, bundle)?;
        Ok(wire::response::Body::BundleMetadata(wire::BundleMetadata {
            bundle_id: bundle.to_vec(),
            size: served.manifest.size,
            chunk_size: served.manifest.chunk_size,
            chunk_hashes: served.manifest.concatenated(),
        }))
    }
}

/// Resolves when the chain index advanced (`true`) or its sender is gone (`false`); never
/// without an index.
async fn index_advanced(indexed: &mut Option<watch::Receiver<u64>>) -> bool {
    match indexed {
        Some(indexed) => indexed.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
