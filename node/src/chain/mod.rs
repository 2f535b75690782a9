//! Everything the node does with the Ethereum chain.
//!
//! - [`contracts`] — typed alloy bindings over the committed contract artifacts.
//! - [`deployment`] — `deployment.json`: chain id and where each contract lives.
//! - [`deploy`] — deploys the whole suite (used by tests, the testnet and `airbloc admin deploy`).
//!
//!   These three live in the `airbloc-eth` crate (shared with the CLI) and are re-exported here.
//! - [`monitor`] — endpoint health, chain id and head, for Status and outage handling.
//! - [`outbox`] — durable, exactly-once transaction submission (nonces, fee bumps, receipts).
//! - [`indexer`] — follows the contracts' events into the store, rolling back reorgs.
//! - [`state`] — the derived state the indexer keeps (nodes, users, consents, bundles, offers,
//!   orders) and its progress; hot paths read it instead of calling the chain.
//! - [`services`] — the bundle the roles are built with: deployment, outbox, indexer, state.

pub use airbloc_eth::{contracts, deploy, deployment};
pub mod indexer;
pub mod monitor;
pub mod outbox;
pub mod services;
pub mod state;

pub use deployment::Deployment;
pub use monitor::{ChainMonitor, ChainStatus};
pub use services::{ChainServices, TransactError};
