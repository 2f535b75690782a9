//! libp2p `PeerId`s without libp2p: the text and byte forms the CLI shows and the NodeRegistry
//! stores.
//!
//! A PeerId is a multihash of the peer's public key in libp2p's protobuf encoding
//! (`PublicKey { KeyType type = 1; bytes data = 2; }`). Keys of at most 42 encoded bytes — a
//! secp256k1 key is 37 — are inlined with the identity hash (code `0x00`); longer ones are
//! hashed with SHA-256 (code `0x12`). The text form is base58btc of the multihash bytes.
//! The node crate checks this against `libp2p-identity` for many keys.

use std::fmt;

/// Multihash code of the identity "hash" (the digest is the input).
const IDENTITY: u8 = 0x00;
/// Multihash code of SHA-256.
const SHA2_256: u8 = 0x12;
/// libp2p inlines public keys up to this encoded length with the identity hash.
const MAX_INLINE_KEY_LENGTH: usize = 42;
/// The longest digest a libp2p multihash holds.
const MAX_DIGEST_LENGTH: usize = 64;
/// `KeyType::Secp256k1` in libp2p's key protobuf.
const KEY_TYPE_SECP256K1: u8 = 2;

/// A libp2p peer id: the multihash bytes, shown as base58btc.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    multihash: Vec<u8>,
}

/// Bytes that are not a libp2p peer id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a libp2p peer id: {0}")]
pub struct InvalidPeerId(&'static str);

impl PeerId {
    /// The peer id of a secp256k1 public key in compressed SEC1 form.
    pub fn from_secp256k1(compressed: &[u8; 33]) -> Self {
        // protobuf: field 1 (varint) = Secp256k1, field 2 (bytes, length 33) = the key.
        let mut encoded = Vec::with_capacity(4 + compressed.len());
        encoded.extend_from_slice(&[0x08, KEY_TYPE_SECP256K1, 0x12, compressed.len() as u8]);
        encoded.extend_from_slice(compressed);
        debug_assert!(encoded.len() <= MAX_INLINE_KEY_LENGTH);
        let mut multihash = Vec::with_capacity(2 + encoded.len());
        multihash.extend_from_slice(&[IDENTITY, encoded.len() as u8]);
        multihash.extend_from_slice(&encoded);
        Self { multihash }
    }

    /// Parses multihash bytes, accepting what libp2p accepts: an inlined key (identity hash)
    /// or a SHA-256 digest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidPeerId> {
        // Both accepted codes and every allowed digest length (≤ 64) are one-byte varints.
        let [code, len, digest @ ..] = bytes else {
            return Err(InvalidPeerId("shorter than a multihash header"));
        };
        if usize::from(*len) != digest.len() || digest.len() > MAX_DIGEST_LENGTH {
            return Err(InvalidPeerId("digest length does not match the multihash header"));
        }
        match *code {
            IDENTITY if digest.len() <= MAX_INLINE_KEY_LENGTH => Ok(Self { multihash: bytes.to_vec() }),
            IDENTITY => Err(InvalidPeerId("inlined key too long")),
            SHA2_256 => Ok(Self { multihash: bytes.to_vec() }),
            _ => Err(InvalidPeerId("unsupported multihash code")),
        }
    }

    /// The multihash bytes (what the NodeRegistry stores).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.multihash.clone()
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bs58::encode(&self.multihash).into_string())
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secp256k1_peer_ids_inline_the_key_and_start_with_16uiu2() {
        let mut key = [0x11u8; 33];
        key[0] = 0x02;
        let peer = PeerId::from_secp256k1(&key);
        let bytes = peer.to_bytes();
        assert_eq!(bytes.len(), 39);
        assert_eq!(&bytes[..6], &[0x00, 37, 0x08, 0x02, 0x12, 33]);
        assert_eq!(&bytes[6..], &key);
        assert!(peer.to_string().starts_with("16Uiu2"), "{peer}");
        assert_eq!(PeerId::from_bytes(&bytes), Ok(peer));
    }

    #[test]
    fn from_bytes_refuses_what_libp2p_refuses() {
        assert!(PeerId::from_bytes(&[]).is_err());
        assert!(PeerId::from_bytes(&[0x00, 3, 1, 2]).is_err(), "length mismatch");
        assert!(PeerId::from_bytes(&[0x01, 1, 1]).is_err(), "unknown code");
        let long = [&[0x00u8, 43][..], &[7u8; 43]].concat();
        assert!(PeerId::from_bytes(&long).is_err(), "identity over 42 bytes");
        let sha = [&[0x12u8, 32][..], &[7u8; 32]].concat();
        assert!(PeerId::from_bytes(&sha).is_ok());
    }
}
