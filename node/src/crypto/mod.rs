//! Cryptographic formats shared with other implementations.
//!
//! - [`eip712`] — typed-data structs and domains for consents and delivery proofs, so any
//!   Ethereum wallet library (viem, ethers, eth-account) produces signatures the contracts and
//!   the node accept.

pub mod eip712;
