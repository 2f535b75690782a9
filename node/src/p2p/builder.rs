//! Building the network in the node's dependency order, without late binding:
//!
//! 1. [`build`] makes the swarm, starts listening, dials the bootnodes and returns the
//!    [`Network`] handle — usable at once, its commands queue until the loop runs — and a
//!    [`NetworkBuilder`];
//! 2. the roles are constructed with the handle;
//! 3. [`NetworkBuilder::start`] takes what the roles serve ([`Handlers`]) and returns the
//!    [`NetworkLoop`] the node spawns.

use super::{
    admission::Admission,
    behaviour::{self, Behaviour},
    config::{NetworkConfig, peer_of},
    error::NetworkError,
    event_loop::NetworkLoop,
    gossip,
    handle::{Command, Listening, Network, NetworkEvent},
    rpc::RequestHandler,
    transfer::{BundleSource, TransferStats},
};
use libp2p::{PeerId, Swarm, identity::Keypair, metrics::Metrics};
use std::{collections::HashSet, sync::Arc};
use tokio::sync::{broadcast, mpsc, watch};
use tracing::warn;

/// What the node's roles serve over the network. A node without roles (a bootnode) passes the
/// default: role requests are answered `NOT_FOUND`, and no bundles are served.
#[derive(Clone, Default)]
pub struct Handlers {
    /// Answers role requests (sign-up, consents, keys, records, schemas).
    pub requests: Option<Arc<dyn RequestHandler>>,
    /// What the node holds and whom it serves, over the transfer protocol and bundle-metadata
    /// requests.
    pub bundles: Option<Arc<dyn BundleSource>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers")
            .field("requests", &self.requests.is_some())
            .field("bundles", &self.bundles.is_some())
            .finish()
    }
}

/// The network between [`build`] and [`NetworkBuilder::start`]: a swarm listening, not yet
/// polled.
pub struct NetworkBuilder {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) events: broadcast::Sender<NetworkEvent>,
    pub(crate) listening: watch::Sender<Listening>,
    pub(crate) admission: Admission,
    pub(crate) indexed: Option<watch::Receiver<u64>>,
    pub(crate) metrics: Metrics,
    pub(crate) stats: Arc<TransferStats>,
    pub(crate) bootnodes: HashSet<PeerId>,
    pub(crate) config: NetworkConfig,
}

impl std::fmt::Debug for NetworkBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkBuilder").field("local_peer_id", self.swarm.local_peer_id()).finish_non_exhaustive()
    }
}

/// Builds the swarm, starts listening and dials the bootnodes. libp2p metrics (bandwidth,
/// connections, gossip, DHT) go into `registry`.
pub fn build(
    config: &NetworkConfig,
    key: &Keypair,
    admission: Admission,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<(Network, NetworkBuilder), NetworkError> {
    let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
    let mut swarm = behaviour::swarm(key, config, registry)?;
    if config.gossip {
        for topic in gossip::topics() {
            swarm.behaviour_mut().gossipsub.subscribe(&topic).map_err(|e| setup(&e))?;
        }
    }
    let mut listeners = HashSet::new();
    for addr in &config.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen { addr: addr.clone(), message: e.to_string() })?;
        listeners.insert(id);
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
    let control = swarm.behaviour().streams.new_control();
    let stats = Arc::new(TransferStats::default());
    let (commands_tx, commands) = mpsc::channel(1024);
    let (events, _) = broadcast::channel(4096);
    let (listening, listening_rx) = watch::channel(Listening { addrs: Vec::new(), pending: listeners });
    let network = Network {
        commands: commands_tx,
        local_peer_id: key.public().to_peer_id(),
        events: events.clone(),
        listening: listening_rx,
        control,
        stats: stats.clone(),
        dial_timeout: config.request_timeout,
    };
    let builder = NetworkBuilder {
        swarm,
        commands,
        events,
        listening,
        admission,
        indexed: None,
        metrics,
        stats,
        bootnodes,
        config: config.clone(),
    };
    Ok((network, builder))
}

impl NetworkBuilder {
    /// The chain index's progress: the last indexed block. Admission is re-applied to every
    /// connected peer whenever it advances, and gossip validation waits on it for announcements
    /// of blocks not indexed yet. Without it (open admission, tests) the index is read as it is.
    pub fn index_progress(mut self, indexed: watch::Receiver<u64>) -> Self {
        self.indexed = Some(indexed);
        self
    }

    /// Takes what the node serves and returns the event loop, ready to be spawned.
    pub fn start(self, handlers: Handlers) -> NetworkLoop {
        NetworkLoop::new(self, handlers)
    }
}
