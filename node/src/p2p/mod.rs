//! Peer-to-peer networking over rust-libp2p.
//!
//! One task owns the `Swarm` ([`NetworkLoop`]); the rest of the node holds a cheap cloneable
//! [`Network`] handle that sends it commands carrying a oneshot reply, and receives
//! [`NetworkEvent`]s — no libp2p event type leaks out of this module. Bulk transfers run on their
//! own streams ([`transfer`]) outside the swarm task, so a large download never delays gossip.
//!
//! The node builds it in dependency order ([`builder`]): [`build`] returns the handle (usable at
//! once) and a [`NetworkBuilder`]; the roles are made with the handle; [`NetworkBuilder::start`]
//! takes what they serve ([`Handlers`]) and returns the loop to spawn.
//!
//! - [`config`]: settings and multiaddr parsing; [`error`]: typed errors and wire errors;
//!   [`handle`]: the handle and its commands; [`behaviour`]: the composed behaviour and swarm;
//!   [`event_loop`]: the swarm task.
//! - Transport: TCP and QUIC, noise, yamux, connection limits; the libp2p identity is the node's
//!   secp256k1 key, so a peer's Ethereum address follows from its PeerId
//!   ([`crate::keys::address_of_peer`]).
//! - Discovery: identify feeds Kademlia (`/airbloc/kad/1.0.0`, server mode); bootnodes from config;
//!   mDNS behind a switch; newly found peers are dialled; provider records say who holds a bundle.
//!   A dial resolves when the swarm reports the connection, never by polling.
//! - Admission ([`admission`]): a peer whose address is not an active NodeRegistry entry (as
//!   indexed in the chain state) gets no application traffic — its requests and transfers are
//!   refused with `NOT_ADMITTED`, and its gossip score is pushed below the graylist threshold, so
//!   nothing is sent to it and what it sends is ignored. Standings are re-applied whenever the
//!   index advances; a node deactivated on chain is disconnected.
//! - Gossip ([`gossip`]): signed, validated announcements under 64 KiB.
//! - Request/response ([`codec`], [`rpc`]): protobuf frames with size limits checked before
//!   allocation; every inbound request gets a response.
//! - [`perf`]: the libp2p perf protocol, to compare transfers with the raw transport.

pub mod admission;
pub mod behaviour;
pub mod builder;
pub mod codec;
pub mod config;
pub mod error;
pub mod event_loop;
pub mod gossip;
pub mod handle;
pub mod perf;
pub mod rpc;
pub mod transfer;

pub use admission::{Admission, Standing};
pub use builder::{Handlers, NetworkBuilder, build};
pub use config::{NetworkConfig, parse_addrs, peer_of};
pub use error::{DialError, NetworkError, PublishError, RequestError, wire_error};
pub use event_loop::NetworkLoop;
pub use gossip::{Announced, BundleStatement, TOPIC_BUNDLES, TOPIC_NODES};
pub use handle::{Network, NetworkEvent, PeerInfo};
pub use rpc::RequestHandler;
pub use transfer::{BundleSource, FetchRequest, FileBundles, TransferStats};
