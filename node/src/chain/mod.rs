//! Everything the node does with the Ethereum chain.
//!
//! - [`contracts`] — typed alloy bindings over the committed contract artifacts.
//! - [`deployment`] — `deployment.json`: chain id and where each contract lives.
//! - [`deploy`] — deploys the whole suite (used by tests, the testnet and `airbloc admin deploy`).
//! - [`monitor`] — endpoint health, chain id and head, for Status and outage handling.

pub mod contracts;
pub mod deploy;
pub mod deployment;
pub mod indexer;
pub mod monitor;
pub mod outbox;
pub mod state;

pub use deployment::Deployment;
pub use monitor::{ChainMonitor, ChainStatus};
