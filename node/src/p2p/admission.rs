//! Who may use the node's application protocols: peers whose address (from the secp256k1 key
//! inside their PeerId) is an active NodeRegistry entry, as indexed.
//!
//! The policy reads the chain index directly ([`ChainState`], a view over the store); the event
//! loop re-applies it to every connected peer whenever the index advances (the progress channel
//! given to [`super::NetworkBuilder::index_progress`]) and to each new connection.

use crate::{chain::state::ChainState, keys::address_of_peer};
use libp2p::PeerId;

/// Where a peer stands with this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// An active NodeRegistry entry (or admission is open): full service.
    Admitted,
    /// Not registered (or not yet indexed): DHT, identify and ping only.
    Unregistered,
    /// Registered once and deactivated on chain: disconnected.
    Deactivated,
}

/// The admission policy.
#[derive(Debug, Clone)]
pub enum Admission {
    /// Everyone (bootnodes, which serve the DHT only, and nodes without a contract deployment).
    Open,
    /// Only peers whose address is an active NodeRegistry entry, as indexed.
    Chain(ChainState),
}

impl Admission {
    /// Where `peer` stands right now.
    pub fn standing(&self, peer: &PeerId) -> Standing {
        match self {
            Self::Open => Standing::Admitted,
            Self::Chain(state) => {
                let Some(address) = address_of_peer(peer) else {
                    return Standing::Unregistered;
                };
                match state.node(address) {
                    // The PeerId registered for the address must be this one: a key may rotate its
                    // PeerId only by updating the registry.
                    Ok(Some(row)) if row.active && row.peer_id.as_ref() == peer.to_bytes().as_slice() => {
                        Standing::Admitted
                    }
                    Ok(Some(row)) if !row.active => Standing::Deactivated,
                    _ => Standing::Unregistered,
                }
            }
        }
    }

    /// Whether `peer` gets application traffic right now.
    pub fn admits(&self, peer: &PeerId) -> bool {
        self.standing(peer) == Standing::Admitted
    }

    /// The chain index the policy reads, if it reads one.
    pub fn chain_state(&self) -> Option<&ChainState> {
        match self {
            Self::Open => None,
            Self::Chain(state) => Some(state),
        }
    }
}
