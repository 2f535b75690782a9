//! The shared backend every role and API service works over: the store, the chain view, and —
//! once a deployment is configured and the endpoint reached — the outbox and the indexer; and the
//! p2p network handle.

use crate::{
    chain::{ChainStatus, Deployment, indexer::IndexerHandle, outbox::Outbox, state::ChainState},
    p2p::Network,
    store::Store,
};
use std::sync::{Arc, OnceLock};

/// Chain-facing services, available once the chain client is up.
#[derive(Debug, Clone)]
pub struct ChainServices {
    pub deployment: Arc<Deployment>,
    pub outbox: Outbox,
    pub indexer: IndexerHandle,
    pub state: ChainState,
}

/// Cheap to clone; every field is shared.
#[derive(Debug, Clone)]
pub struct Backend {
    pub store: Arc<Store>,
    pub chain: ChainStatus,
    services: Arc<OnceLock<ChainServices>>,
    network: Arc<OnceLock<Network>>,
}

impl Backend {
    pub fn new(store: Arc<Store>, chain: ChainStatus) -> Self {
        Self { store, chain, services: Arc::new(OnceLock::new()), network: Arc::new(OnceLock::new()) }
    }

    /// The chain services, when started.
    pub fn services(&self) -> Option<&ChainServices> {
        self.services.get()
    }

    /// The p2p network, when started.
    pub fn network(&self) -> Option<&Network> {
        self.network.get()
    }

    /// Publishes the network handle (once).
    pub fn set_network(&self, network: Network) {
        let _ = self.network.set(network);
    }

    /// Publishes the chain services (once).
    pub fn set_services(&self, services: ChainServices) {
        let _ = self.services.set(services);
    }
}
