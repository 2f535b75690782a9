//! The roles a node runs over the shared backend. Each role owns its state in the node's store
//! and exposes a gRPC service (`api`).
//!
//! - [`provider`] — registry calls, record ingestion, bundles.

pub mod provider;
