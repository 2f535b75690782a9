//! Integration tests of airbloc-node: one binary, one module per concern.
//! Real anvil, real files, and the real `airblocd` binary where a process must run or die.

#![allow(unreachable_pub)]

mod anvil;
mod config;
mod contracts;
mod crypto;
mod daemon;
mod keystore;
mod support;
