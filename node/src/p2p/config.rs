//! Network settings, and the parsing of the multiaddrs they name.

use super::error::NetworkError;
use libp2p::{Multiaddr, PeerId, multiaddr::Protocol};
use std::time::Duration;

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    pub listen: Vec<Multiaddr>,
    pub bootnodes: Vec<Multiaddr>,
    pub mdns: bool,
    /// How long a request (and a dial through [`super::Network::dial`]) may take.
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
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_address_is_named_in_the_error() {
        let err = parse_addrs(&["/ip4/127.0.0.1/tcp/1".into(), "not-an-addr".into()]).unwrap_err();
        assert!(err.to_string().contains("\"not-an-addr\""), "{err}");
        assert!(err.to_string().contains("p2p.listen"), "{err}");
    }

    #[test]
    fn the_peer_id_is_read_from_the_p2p_suffix() {
        let peer = PeerId::random();
        let with: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}").parse().unwrap();
        assert_eq!(peer_of(&with), Some(peer));
        assert_eq!(peer_of(&"/ip4/127.0.0.1/tcp/4001".parse().unwrap()), None);
    }
}
