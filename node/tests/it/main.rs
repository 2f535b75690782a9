//! Integration tests of airbloc-node: one binary, one module per concern.
//! Real anvil, real files, and the real `airblocd` binary where a process must run or die.
#![allow(clippy::unwrap_used)] // a test stops loudly on any failure
#![allow(unreachable_pub)]

mod anvil;
mod config;
mod contracts;
mod crash;
mod crypto;
mod daemon;
mod dispute;
mod exchange;
mod indexer;
mod keeper;
mod keystore;
mod outbox;
mod p2p;
mod provider;
mod python_sdk;
mod shutdown;
mod store;
mod support;
mod world;
