//! The shared backend every role and API service works over: the store, the chain view, and —
//! once a deployment is configured and the endpoint reached — the outbox and the indexer.

use crate::{
    chain::{ChainStatus, indexer::IndexerHandle, outbox::Outbox, state::ChainState},
    store::Store,
};
use std::sync::{Arc, OnceLock};

/// Chain-facing services, available once the chain client is up.
#[derive(Debug, Clone)]
pub struct ChainServices {
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
}

impl Backend {
    pub fn new(store: Arc<Store>, chain: ChainStatus) -> Self {
        Self { store, chain, services: Arc::new(OnceLock::new()) }
    }

    /// The chain services, when started.
    pub fn services(&self) -> Option<&ChainServices> {
        self.services.get()
    }

    /// Publishes the chain services (once).
    pub fn set_services(&self, services: ChainServices) {
        let _ = self.services.set(services);
    }
}
