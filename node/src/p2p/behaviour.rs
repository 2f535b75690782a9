//! The composed libp2p behaviour and the swarm it runs in: connection limits first (they gate
//! every connection), then identify, ping, Kademlia, gossipsub, mDNS (optional, as a `Toggle`),
//! request/response and raw streams; TCP and QUIC transports with noise and yamux.

use super::{codec, config::NetworkConfig, error::NetworkError, gossip};
use libp2p::{
    StreamProtocol, Swarm, connection_limits, identify,
    identity::Keypair,
    kad, mdns, noise, ping,
    request_response::{self, ProtocolSupport},
    swarm::{NetworkBehaviour, behaviour::toggle::Toggle},
    tcp, yamux,
};
use std::time::Duration;

/// The Kademlia protocol of airbloc networks (a private DHT, not the public IPFS one).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/airbloc/kad/1.0.0");
/// The identify protocol version nodes announce.
pub const IDENTIFY_PROTOCOL: &str = "/airbloc/id/1.0.0";

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) limits: connection_limits::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) ping: ping::Behaviour,
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) gossipsub: gossip::Gossipsub,
    pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    pub(crate) rpc: request_response::Behaviour<codec::ProtoCodec>,
    pub(crate) streams: libp2p_stream::Behaviour,
}

/// Builds the swarm for `key` with the node's policy; bandwidth metrics go into `registry`.
pub(crate) fn swarm(
    key: &Keypair,
    config: &NetworkConfig,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<Behaviour>, NetworkError> {
    let setup = |e: &dyn std::fmt::Display| NetworkError::Setup(e.to_string());
    let limits = connection_limits::ConnectionLimits::default()
        .with_max_established(Some(config.max_connections))
        .with_max_pending_incoming(Some(64))
        .with_max_established_per_peer(Some(4));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(tcp::Config::default().nodelay(true), noise::Config::new, yamux::Config::default)
        .map_err(|e| setup(&e))?
        .with_quic()
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            kad_config.set_query_timeout(Duration::from_secs(30));
            let store_config = kad::store::MemoryStoreConfig { max_provided_keys: 1 << 20, ..Default::default() };
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                kad::store::MemoryStore::with_config(peer_id, store_config),
                kad_config,
            );
            // A private network: every node serves the DHT, whatever its reachability.
            kad.set_mode(Some(kad::Mode::Server));
            let mdns = match config.mdns {
                true => Some(mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id)?),
                false => None,
            };
            Ok(Behaviour {
                limits: connection_limits::Behaviour::new(limits),
                identify: identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
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
    Ok(swarm)
}
