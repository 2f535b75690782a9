//! # airbloc-node
//!
//! The library behind `airblocd`, the airbloc node daemon. Every participant in an airbloc
//! network runs the same daemon with one or more roles switched on (provider, consumer,
//! identity keeper, bootnode).
//!
//! ## Parts
//!
//! - [`config`] — layered settings: defaults < TOML file < `AIRBLOC_*` environment < flags.
//! - [`crypto`] — formats shared with other implementations (EIP-712 typed data).
//! - [`keys`] — the node key (secp256k1): Ethereum address, libp2p `PeerId`, v3 keystores.
//! - [`datadir`] — the exclusively locked data directory and the runtime info file.
//! - [`chain`] — the Ethereum chain: contract bindings and deployment, endpoint health, the
//!   durable transaction outbox, the event indexer and the chain state it derives.
//! - [`api`] — the gRPC services, bearer-token auth, health and reflection.
//! - [`store`] — RocksDB: a column family per table, atomic batches, per-write durability.
//! - [`backend`] — what the roles are built with (store, chain services, network), what the
//!   node-wide services observe, and the one "ready" notification for parts that come up later.
//! - [`roles`] — the provider, consumer and identity keeper, their schemas and bundle format.
//! - [`p2p`] — libp2p: transport, discovery, admission, gossip, request/response.
//! - [`metrics`] — Prometheus text at `/metrics`.
//! - [`daemon`] — the lifecycle that wires the parts together and stops them in order.
//!
//! ## How a start goes
//!
//! `airblocd` parses flags and the config file into a [`config::Config`], starts tracing, then
//! [`daemon::run`] locks the data dir, opens (or creates) the keystore, loads (or creates) the
//! API token, and builds the parts in dependency order, each passed to the next: the store, the
//! chain state over it, the p2p network (admission reads the chain state), the chain services
//! (outbox, indexer), the roles over them. It binds the gRPC server, publishes
//! `<datadir>/node.json`, and serves until the root cancellation token fires (SIGINT/SIGTERM);
//! every task then ends — finishing or durably leaving its work — and the store is flushed last.

pub mod api;
pub mod backend;
pub mod chain;
pub mod config;
pub mod daemon;

/// Crypto formats (the `airbloc-crypto` crate): envelopes, key wrapping, Merkle trees, EIP-712.
pub use airbloc_crypto as crypto;
pub mod datadir;
pub mod keys;
pub mod metrics;
pub mod p2p;
pub mod roles;
pub mod store;

#[cfg(feature = "test-utils")]
pub mod test_utils;
