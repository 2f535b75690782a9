//! Keyed identity hashing for identity keepers.
//!
//! A keeper creates on-chain accounts for users who have no wallet, keyed by their identity
//! (an e-mail address, a phone number). Putting `keccak256(email)` on chain would let anyone test
//! guesses — e-mail addresses are few enough to enumerate. So the keeper first computes a
//! preimage with a secret only it holds:
//!
//! ```text
//! digest        = keccak256(normalized identity)  // what a provider sends the keeper
//! preimage      = HMAC-SHA256(key = keeper identity key, digest)
//! identity hash = keccak256(preimage)              // what `Users.createTemporary` stores
//! ```
//!
//! A provider signing a user up sends only the digest, over the authenticated, encrypted
//! connection to the keeper; the keeper needs nothing more to derive the same account.
//!
//! Without the key, the chain reveals nothing testable. When the user takes the account over,
//! the keeper reveals the preimage (`Users.unlockTemporary`), which still says nothing about the
//! identity itself. The key is derived from the keeper's node secret with HKDF, so it needs no
//! separate backup. Identities are normalized first (surrounding whitespace trimmed, lowercased),
//! so `Alice@Example.com ` and `alice@example.com` map to one account.

use alloy_primitives::{B256, keccak256};
use ring::{hkdf, hmac};
use std::fmt;

const INFO: &[u8] = b"airbloc/identity/v1";

/// The keeper's identity-hashing key.
pub struct IdentityHasher {
    key: hmac::Key,
}

impl fmt::Debug for IdentityHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityHasher(<redacted>)")
    }
}

impl IdentityHasher {
    /// Derives the key from the keeper node's secret.
    pub fn from_node_secret(secret: &[u8; 32]) -> Self {
        let okm = hkdf::Salt::new(hkdf::HKDF_SHA256, b"airbloc").extract(secret);
        let key: hmac::Key = okm.expand(&[INFO], hmac::HMAC_SHA256).expect("HMAC key length").into();
        Self { key }
    }

    /// How an identity is normalized before hashing.
    pub fn normalize(identity: &str) -> String {
        identity.trim().to_lowercase()
    }

    /// The unkeyed digest of an identity that providers send to the keeper.
    pub fn digest(identity: &str) -> B256 {
        keccak256(Self::normalize(identity).as_bytes())
    }

    /// The preimage of a digest, revealed at hand-over.
    pub fn preimage_of_digest(&self, digest: B256) -> B256 {
        B256::from_slice(hmac::sign(&self.key, digest.as_slice()).as_ref())
    }

    /// The preimage revealed at hand-over.
    pub fn preimage(&self, identity: &str) -> B256 {
        self.preimage_of_digest(Self::digest(identity))
    }

    /// The identity hash stored on chain.
    pub fn identity_hash(&self, identity: &str) -> B256 {
        keccak256(self.preimage(identity))
    }
}
