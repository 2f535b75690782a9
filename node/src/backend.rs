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

/// Why [`ChainServices::transact`] did not get a transaction mined.
#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    #[error("cannot queue transaction {id}: {source}")]
    Submit { id: String, source: crate::chain::outbox::OutboxError },
    #[error("transaction {id} did not succeed: {state}")]
    NotMined { id: String, state: String },
}

impl ChainServices {
    /// Submits a call through the outbox under an idempotency key, waits until it is mined and
    /// until the indexer has seen its block (hot paths read the index); returns the block.
    pub async fn transact(&self, id: &str, call: crate::chain::outbox::Call) -> Result<u64, TransactError> {
        self.outbox.submit(id, call).map_err(|source| TransactError::Submit { id: id.to_owned(), source })?;
        let intent = self
            .outbox
            .wait(id)
            .await
            .map_err(|e| TransactError::NotMined { id: id.to_owned(), state: e.to_string() })?;
        match intent.state {
            crate::chain::outbox::IntentState::Mined { block, .. } => {
                self.indexer.wait_for(block).await;
                Ok(block)
            }
            other => Err(TransactError::NotMined { id: id.to_owned(), state: other.name().to_owned() }),
        }
    }
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
