//! The roles a node runs over the shared backend. Each role owns its state in the node's store
//! and exposes a gRPC service (`api`).
//!
//! - [`provider`] — registry calls, record ingestion, bundles, offers, key delivery.
//! - [`consumer`] — catalog, orders, verified downloads, settlement.
//! - [`body`] — the bundle body format both sides read and write.

pub mod body;
pub mod consumer;
pub mod provider;
