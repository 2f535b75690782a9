//! The chain services a node runs once its endpoint is reachable: the contract deployment, the
//! transaction outbox, the indexer's handle and the derived state. Roles are built with them.

use super::{
    Deployment,
    indexer::IndexerHandle,
    outbox::{Call, IntentState, Outbox, OutboxError},
    state::ChainState,
};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Chain-facing services: built by the daemon after the chain connection, passed to the roles.
#[derive(Debug, Clone)]
pub struct ChainServices {
    pub deployment: Arc<Deployment>,
    pub outbox: Outbox,
    pub indexer: IndexerHandle,
    pub state: ChainState,
    /// The node's cancellation: waits for transactions end when it fires (the intents stay in
    /// the durable outbox and are sent after a restart).
    pub shutdown: CancellationToken,
}

/// Why [`ChainServices::transact`] did not get a transaction mined.
#[derive(Debug, thiserror::Error)]
pub enum TransactError {
    #[error("cannot queue transaction {id}: {source}")]
    Submit { id: String, source: OutboxError },
    #[error("transaction {id} did not succeed: {state}")]
    NotMined { id: String, state: String },
    #[error("the node is shutting down; transaction {id} stays queued and is sent after the restart")]
    ShuttingDown { id: String },
}

impl ChainServices {
    /// Submits a call through the outbox under an idempotency key, waits until it is mined and
    /// until the indexer has seen its block (hot paths read the index); returns the block.
    pub async fn transact(&self, id: &str, call: Call) -> Result<u64, TransactError> {
        self.outbox.submit(id, call).map_err(|source| TransactError::Submit { id: id.to_owned(), source })?;
        let shutting_down = || TransactError::ShuttingDown { id: id.to_owned() };
        let intent = tokio::select! {
            waited = self.outbox.wait(id) => {
                waited.map_err(|e| TransactError::NotMined { id: id.to_owned(), state: e.to_string() })?
            }
            _ = self.shutdown.cancelled() => return Err(shutting_down()),
        };
        match intent.state {
            IntentState::Mined { block, .. } => {
                tokio::select! {
                    _ = self.indexer.wait_for(block) => Ok(block),
                    _ = self.shutdown.cancelled() => Err(shutting_down()),
                }
            }
            other => Err(TransactError::NotMined { id: id.to_owned(), state: other.name().to_owned() }),
        }
    }
}
