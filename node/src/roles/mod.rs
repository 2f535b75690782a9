//! The roles a node runs over the shared backend. Each role owns its state in the node's store
//! and exposes a gRPC service (`api`).
//!
//! - [`provider`] — registry calls, record ingestion, bundles, offers, key delivery.
//! - [`consumer`] — catalog, orders, verified downloads, settlement.
//! - [`keeper`] — accounts, consents and exports for users without wallets.
//! - [`schemas`] — data type schemas by hash, served to and fetched from peers.
//! - [`body`] — the bundle body format both sides read and write.

pub mod body;
pub mod consumer;
pub mod keeper;
pub mod provider;
pub mod schemas;

use crate::backend::{Backend, ChainServices, TransactError};

/// The chain services every role needs, or the error that says how to get them.
pub(crate) fn chain_services(backend: &Backend) -> Result<&ChainServices, RoleError> {
    backend.services().ok_or_else(|| {
        RoleError::Unavailable("chain services are not running (set chain.deployment and check chain.rpc_url)".into())
    })
}

/// The p2p network, once started.
pub(crate) fn network(backend: &Backend) -> Result<&crate::p2p::Network, RoleError> {
    backend.network().ok_or_else(|| RoleError::Unavailable("the p2p network is not running".into()))
}

/// Why a role call failed; each kind maps to one gRPC code (`api`) and one p2p error code.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    /// The data does not match the chain: grounds for a dispute.
    #[error("the delivered data does not match the chain: {0}")]
    Mismatch(String),
    #[error("transaction {id} did not succeed: {state}")]
    Transaction { id: String, state: String },
    #[error("{0}")]
    Internal(String),
}

pub(crate) fn internal(e: impl std::fmt::Display) -> RoleError {
    RoleError::Internal(e.to_string())
}

impl From<TransactError> for RoleError {
    fn from(e: TransactError) -> Self {
        match e {
            TransactError::Submit { source, .. } => internal(source),
            TransactError::NotMined { id, state } => RoleError::Transaction { id, state },
        }
    }
}

impl RoleError {
    /// The error as a p2p wire error.
    pub fn to_wire(&self) -> airbloc_proto::p2p::v1::Error {
        use airbloc_proto::p2p::v1::ErrorCode;
        let code = match self {
            RoleError::Invalid(_) | RoleError::Mismatch(_) => ErrorCode::BadRequest,
            RoleError::NotFound(_) => ErrorCode::NotFound,
            RoleError::Forbidden(_) => ErrorCode::Forbidden,
            RoleError::Unavailable(_) | RoleError::Transaction { .. } => ErrorCode::Unavailable,
            RoleError::Internal(_) => ErrorCode::Internal,
        };
        crate::p2p::transfer::wire_error(code, self.to_string())
    }
}

impl From<crate::p2p::RequestError> for RoleError {
    /// A peer's answer, keeping its meaning (a refusal stays a refusal).
    fn from(e: crate::p2p::RequestError) -> Self {
        use airbloc_proto::p2p::v1::ErrorCode;
        match e {
            crate::p2p::RequestError::Remote { code: ErrorCode::Forbidden | ErrorCode::NotAdmitted, message } => {
                RoleError::Forbidden(format!("the peer refused: {message}"))
            }
            crate::p2p::RequestError::Remote { code: ErrorCode::NotFound, message } => {
                RoleError::NotFound(format!("the peer answered: {message}"))
            }
            crate::p2p::RequestError::Remote { code: ErrorCode::BadRequest, message } => {
                RoleError::Invalid(format!("the peer answered: {message}"))
            }
            other => RoleError::Unavailable(other.to_string()),
        }
    }
}
