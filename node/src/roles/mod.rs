//! The roles a node runs. Each is built by the daemon over a [`crate::backend::Backend`] — the
//! store, the chain services and the network, all up before the role exists — owns its state in
//! the node's store, and exposes a gRPC service (`api`) and p2p request handlers. Every failure
//! is one [`RoleError`], converted once to a gRPC status and once to a p2p wire error.
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

use crate::{
    chain::{TransactError, deployment::DeploymentError, outbox::OutboxError},
    p2p::RequestError,
    store::StoreError,
};
use airbloc_proto::p2p::v1::{self as wire, ErrorCode};

/// Why a role call failed. Each kind maps to one gRPC code ([`crate::api`]) and one p2p wire
/// error code ([`RoleError::to_wire`]); failures of the parts underneath keep their type.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// The caller's input is malformed or contradicts itself.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Not allowed (not the party of an order, no consent, not admitted, …).
    #[error("{0}")]
    Refused(String),
    /// Something the call needs is not there yet (a peer, a registration, an index row).
    #[error("{0}")]
    Unavailable(String),
    /// The data does not match the chain: grounds for a dispute.
    #[error("the delivered data does not match the chain: {0}")]
    Mismatch(String),
    /// A transaction could not be queued or did not succeed.
    #[error(transparent)]
    Transact(#[from] TransactError),
    /// A peer could not be reached or failed to answer.
    #[error("{0}")]
    Peer(RequestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Chain(#[from] DeploymentError),
    #[error("file I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// Sealing, opening, wrapping or hashing data failed.
    #[error("{0}")]
    Crypto(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot sign: {0}")]
    Sign(#[from] alloy::signers::Error),
    #[error("cannot encode or decode JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// One failure shared by every request of a batch (the keeper's consent transactions).
    #[error("{0}")]
    Batch(std::sync::Arc<RoleError>),
}

macro_rules! crypto_errors {
    ($($ty:ty),*) => {$(
        impl From<$ty> for RoleError {
            fn from(e: $ty) -> Self {
                RoleError::Crypto(Box::new(e))
            }
        }
    )*};
}
crypto_errors!(
    crate::crypto::wrap::WrapError,
    crate::crypto::stream::StreamError,
    crate::crypto::merkle::MerkleError,
    crate::crypto::record::RecordError,
    crate::crypto::chunks::ManifestError,
    std::string::FromUtf8Error
);

impl RoleError {
    /// The p2p wire error code of this failure.
    pub fn wire_code(&self) -> ErrorCode {
        match self {
            RoleError::Batch(inner) => inner.wire_code(),
            RoleError::Invalid(_) | RoleError::Mismatch(_) => ErrorCode::BadRequest,
            RoleError::NotFound(_) => ErrorCode::NotFound,
            RoleError::Refused(_) => ErrorCode::Forbidden,
            RoleError::Unavailable(_)
            | RoleError::Peer(_)
            | RoleError::Transact(TransactError::NotMined { .. } | TransactError::ShuttingDown { .. }) => {
                ErrorCode::Unavailable
            }
            RoleError::Transact(TransactError::Submit { .. })
            | RoleError::Store(_)
            | RoleError::Outbox(_)
            | RoleError::Chain(_)
            | RoleError::Io(_)
            | RoleError::Crypto(_)
            | RoleError::Sign(_)
            | RoleError::Json(_)
            | RoleError::Task(_) => ErrorCode::Internal,
        }
    }

    /// The error as a p2p wire error.
    pub fn to_wire(&self) -> wire::Error {
        crate::p2p::transfer::wire_error(self.wire_code(), self.to_string())
    }

    /// The error as a gRPC status.
    pub fn to_status(&self) -> tonic::Status {
        use tonic::Status;
        let message = self.to_string();
        match self {
            RoleError::Batch(inner) => inner.to_status(),
            RoleError::Invalid(_) => Status::invalid_argument(message),
            RoleError::NotFound(_) => Status::not_found(message),
            RoleError::Refused(_) => Status::permission_denied(message),
            RoleError::Unavailable(_) | RoleError::Peer(_) => Status::unavailable(message),
            RoleError::Mismatch(_) => Status::data_loss(message),
            RoleError::Transact(TransactError::NotMined { .. }) => Status::aborted(message),
            RoleError::Transact(TransactError::ShuttingDown { .. }) => Status::unavailable(message),
            RoleError::Transact(TransactError::Submit { .. })
            | RoleError::Store(_)
            | RoleError::Outbox(_)
            | RoleError::Chain(_)
            | RoleError::Io(_)
            | RoleError::Crypto(_)
            | RoleError::Sign(_)
            | RoleError::Json(_)
            | RoleError::Task(_) => Status::internal(message),
        }
    }
}

impl From<RoleError> for tonic::Status {
    fn from(e: RoleError) -> Self {
        e.to_status()
    }
}

impl From<RequestError> for RoleError {
    /// A peer's answer, keeping its meaning (a refusal stays a refusal).
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Remote { code: ErrorCode::Forbidden | ErrorCode::NotAdmitted, message } => {
                RoleError::Refused(format!("the peer refused: {message}"))
            }
            RequestError::Remote { code: ErrorCode::NotFound, message } => {
                RoleError::NotFound(format!("the peer answered: {message}"))
            }
            RequestError::Remote { code: ErrorCode::BadRequest, message } => {
                RoleError::Invalid(format!("the peer answered: {message}"))
            }
            other => RoleError::Peer(other),
        }
    }
}
