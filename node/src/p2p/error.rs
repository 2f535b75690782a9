//! The network's errors: starting it ([`NetworkError`]), reaching a peer ([`DialError`]), asking it
//! something ([`RequestError`]), publishing ([`PublishError`]); and the one place wire errors —
//! the `airbloc.p2p.v1.Error` a peer answers with — are built ([`wire_error`]) and read
//! ([`RequestError::from_wire`]).

use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::Address;
use libp2p::{Multiaddr, PeerId};
use std::time::Duration;

/// Builds the error a peer is answered with.
pub fn wire_error(code: wire::ErrorCode, message: impl Into<String>) -> wire::Error {
    wire::Error { code: code as i32, message: message.into() }
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

/// Why a peer could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot dial {target}: {reason} — check the address and that the peer is running")]
    Failed { target: String, reason: String },
    #[error(
        "could not connect to {peer} within {timeout:?} — the peer is offline or unreachable at its registered \
         addresses"
    )]
    Timeout { peer: String, timeout: Duration },
    #[error("no peer knows where {0} is — it is offline, or connect to a bootnode it also uses (p2p.bootnodes)")]
    NotFound(PeerId),
    #[error("{0} is not registered in the NodeRegistry — the node must register (or be indexed) first")]
    NotRegistered(Address),
    #[error("node {0} is deactivated in the NodeRegistry; it serves no one")]
    Deactivated(Address),
    #[error("the PeerId registered for {address} is malformed ({reason}); its operator must update the entry")]
    BadPeerId { address: Address, reason: String },
    #[error("cannot read the NodeRegistry index: {0}")]
    Index(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the network stopped (the node is shutting down)")]
    Stopped,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("peer {0} could not be reached or did not answer: {1}")]
    Unreachable(PeerId, String),
    #[error("peer answered with an error ({code:?}): {message}")]
    Remote { code: wire::ErrorCode, message: String },
    #[error("the network stopped (the node is shutting down)")]
    Stopped,
}

impl RequestError {
    /// The error a peer answered with.
    pub fn from_wire(error: wire::Error) -> Self {
        Self::Remote {
            code: wire::ErrorCode::try_from(error.code).unwrap_or(wire::ErrorCode::Unspecified),
            message: error.message,
        }
    }
}

/// Why a gossip message was not published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("no peer is subscribed to {0} yet — retry once connected to admitted peers")]
    NoPeers(&'static str),
    #[error("the message is {size} bytes; gossip carries at most {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("this message was already published (gossip drops duplicates)")]
    Duplicate,
    #[error("cannot publish on {topic}: {reason}")]
    Failed { topic: &'static str, reason: String },
    #[error("the network stopped (the node is shutting down)")]
    Stopped,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_wire_error_round_trips_with_its_code() {
        let error = wire_error(wire::ErrorCode::NotAdmitted, "register your node first");
        assert_eq!(
            RequestError::from_wire(error),
            RequestError::Remote { code: wire::ErrorCode::NotAdmitted, message: "register your node first".into() }
        );
    }

    #[test]
    fn an_unknown_code_reads_as_unspecified() {
        let error = wire::Error { code: 9999, message: "?".into() };
        assert!(matches!(
            RequestError::from_wire(error),
            RequestError::Remote { code: wire::ErrorCode::Unspecified, .. }
        ));
    }
}
