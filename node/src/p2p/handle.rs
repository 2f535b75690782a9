//! The handle the rest of the node holds: [`Network`], cheap to clone, usable as soon as
//! [`super::build`] returns. Each call sends a [`Command`] carrying a oneshot reply to the task
//! that owns the swarm ([`super::NetworkLoop`]); commands sent before that task runs wait in the
//! queue. What the network reports back is a [`NetworkEvent`] — no libp2p event type leaks out.

use super::{
    admission::Standing,
    error::{DialError, PublishError, RequestError},
    gossip::{Announced, MAX_GOSSIP, TOPIC_BUNDLES, TOPIC_NODES},
    transfer::TransferStats,
};
use crate::chain::state::ChainState;
use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::{Address, B256};
use libp2p::{Multiaddr, PeerId, StreamProtocol, core::transport::ListenerId};
use prost::Message as _;
use std::{collections::HashSet, sync::Arc, time::Duration};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// A connected peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    pub address: Option<Address>,
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

/// What a handle asks of the swarm task.
pub(crate) enum Command {
    /// Dial an address; answered when the connection is established or the dial failed.
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), DialError>>,
    },
    /// Connect to a peer (its addresses, else the DHT); answered once connected or failed.
    Connect {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: oneshot::Sender<Result<(), DialError>>,
    },
    Disconnect(PeerId),
    Request {
        peer: PeerId,
        body: wire::request::Body,
        reply: oneshot::Sender<Result<wire::Response, RequestError>>,
    },
    Publish {
        topic: &'static str,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Provide(B256),
    Providers(B256, oneshot::Sender<Vec<PeerId>>),
}

/// The node's listen addresses, as the swarm reports them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listening {
    pub(crate) addrs: Vec<Multiaddr>,
    /// Listeners that have reported neither an address nor their end yet.
    pub(crate) pending: HashSet<ListenerId>,
}

/// Handle to the network; cheap to clone.
#[derive(Clone)]
pub struct Network {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) events: broadcast::Sender<NetworkEvent>,
    pub(crate) listening: watch::Receiver<Listening>,
    pub(crate) control: libp2p_stream::Control,
    pub(crate) stats: Arc<TransferStats>,
    pub(crate) dial_timeout: Duration,
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

    /// Sends a command and waits for its reply; `None` once the network stopped.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Dials an address and waits until the connection is established (or the dial failed, or
    /// the request timeout passed).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), DialError> {
        let target = addr.to_string();
        let dial = self.ask(|reply| Command::Dial { addr, reply });
        match tokio::time::timeout(self.dial_timeout, dial).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(DialError::Stopped),
            Err(_) => Err(DialError::Timeout { peer: target, timeout: self.dial_timeout }),
        }
    }

    /// Connects to `peer` at `addrs` (or wherever the DHT says it is) and waits up to `timeout`
    /// for the connection; returns at once when already connected.
    pub async fn connect(&self, peer: PeerId, addrs: Vec<Multiaddr>, timeout: Duration) -> Result<(), DialError> {
        let connect = self.ask(|reply| Command::Connect { peer, addrs, reply });
        match tokio::time::timeout(timeout, connect).await {
            Ok(Some(result)) => result,
            Ok(None) => Err(DialError::Stopped),
            Err(_) => Err(DialError::Timeout { peer: peer.to_string(), timeout }),
        }
    }

    /// Connects to the node registered on chain under `address`: its NodeRegistry entry names the
    /// PeerId and addresses; the DHT fills in when those are stale.
    pub async fn connect_node(
        &self,
        state: &ChainState,
        address: Address,
        timeout: Duration,
    ) -> Result<PeerId, DialError> {
        let row =
            state.node(address).map_err(|e| DialError::Index(Box::new(e)))?.ok_or(DialError::NotRegistered(address))?;
        if !row.active {
            return Err(DialError::Deactivated(address));
        }
        let peer =
            PeerId::from_bytes(&row.peer_id).map_err(|e| DialError::BadPeerId { address, reason: e.to_string() })?;
        let addrs = row.multiaddrs.iter().filter_map(|a| a.parse().ok()).collect();
        self.connect(peer, addrs, timeout).await?;
        Ok(peer)
    }

    /// Closes every connection to `peer`.
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.commands.send(Command::Disconnect(peer)).await;
    }

    /// Sends a request and waits for the response (or the request timeout).
    pub async fn request(&self, peer: PeerId, body: wire::request::Body) -> Result<wire::Response, RequestError> {
        self.ask(|reply| Command::Request { peer, body, reply }).await.unwrap_or(Err(RequestError::Stopped))
    }

    /// Publishes raw bytes on a gossip topic.
    pub async fn publish(&self, topic: &'static str, data: Vec<u8>) -> Result<(), PublishError> {
        if data.len() > MAX_GOSSIP {
            return Err(PublishError::TooLarge { size: data.len(), limit: MAX_GOSSIP });
        }
        self.ask(|reply| Command::Publish { topic, data, reply }).await.unwrap_or(Err(PublishError::Stopped))
    }

    /// Publishes an announcement on its topic.
    pub async fn announce(&self, announcement: &wire::Announcement) -> Result<(), PublishError> {
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

    /// Addresses the node listens on so far (resolved: real ports, one per interface).
    pub async fn listening(&self) -> Vec<Multiaddr> {
        self.listening.borrow().addrs.clone()
    }

    /// Waits until every configured listener has reported its addresses (or failed), then
    /// returns them. Needs the event loop running; returns what is known if the network stopped.
    pub async fn listen_addrs(&self) -> Vec<Multiaddr> {
        let mut listening = self.listening.clone();
        let _ = listening.wait_for(|l| l.pending.is_empty()).await;
        listening.borrow().addrs.clone()
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

    /// Transfer counters.
    pub fn transfer_stats(&self) -> &TransferStats {
        &self.stats
    }
}
