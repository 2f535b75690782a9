//! # airbloc-crypto
//!
//! Cryptography with formats shared with other implementations. A crate of its own, light on
//! dependencies, so clients and fuzzers can use it without the node's storage and networking.
//!
//! - [`Dek`] — a bundle's 256-bit data-encryption key; zeroized on drop, never printed.
//! - [`stream`] — streaming AES-256-GCM envelope encryption in segments (STREAM), sync and
//!   async, plus a one-shot form for record payloads.
//! - [`wrap`] — wrapping a DEK to a secp256k1 public key with ECIES in the eciesjs / eciespy
//!   default format, so Python and JavaScript clients can unwrap it.
//! - [`merkle`] — OpenZeppelin's standard Merkle tree (roots, proofs, multiproofs) as verified by
//!   `DataRegistry` and `@openzeppelin/merkle-tree`.
//! - [`record`] — the canonical bytes of a record, the only encoding that feeds hashes.
//! - [`identity`] — keyed identity hashing for identity keepers.
//! - [`chunks`] — chunk manifests: per-chunk SHA-256 under one on-chain commitment, for transfers.
//! - [`eip712`] — typed data for consents, delivery proofs and node statements.

pub mod chunks;
pub mod eip712;
pub mod identity;
pub mod merkle;
pub mod record;
pub mod stream;
pub mod wrap;

use std::fmt;
use zeroize::Zeroizing;

/// A 256-bit data-encryption key. One per bundle; stored only wrapped.
#[derive(Clone)]
pub struct Dek(Zeroizing<[u8; 32]>);

impl Dek {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Dek(<redacted>)")
    }
}

impl PartialEq for Dek {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(other.0.as_ref()).into()
    }
}

impl Eq for Dek {}
