//! # airbloc-eth
//!
//! The chain-facing pieces of airbloc that need neither storage nor networking, shared by the
//! node (`airblocd`) and the command-line tool (`airbloc`):
//!
//! - [`contracts`] — typed alloy bindings over the committed contract artifacts.
//! - [`deployment`] — `deployment.json`: chain id and where each contract lives.
//! - [`deploy`] — deploys the whole suite (tests, the testnet and `airbloc admin deploy`).
//! - [`keys`] — the node key (secp256k1): Ethereum address, secp256k1 `PeerId` text, v3 keystores,
//!   password reading.
//! - `test_utils` (feature `test-utils`) — anvil, the Foundry tools, a deployed suite for tests.

pub mod contracts;
pub mod deploy;
pub mod deployment;
pub mod keys;

#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use deployment::Deployment;
