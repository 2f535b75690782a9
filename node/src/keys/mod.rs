//! The node's identity: one secp256k1 secret that is both its Ethereum account and its libp2p
//! identity.
//!
//! The key itself, v3 keystores and password reading live in [`airbloc_eth::keys`] (shared with
//! the CLI, which builds without libp2p); this module adds the libp2p side: [`NodeKey`] carries
//! the libp2p keypair beside the Ethereum key, and [`address_of_peer`] reads the Ethereum
//! address back out of a secp256k1 `PeerId`.

use alloy::{
    primitives::{Address, keccak256},
    signers::local::PrivateKeySigner,
};
use libp2p_identity::{Keypair, PeerId, PublicKey, secp256k1};
use std::{fmt, path::Path};
use zeroize::Zeroizing;

pub use airbloc_eth::keys::{KeyError, PASSWORD_ENV, create_private_dir, peer_id_text, read_password, set_mode};

/// The node's secp256k1 key with its libp2p keypair.
pub struct NodeKey {
    key: airbloc_eth::keys::NodeKey,
    keypair: Keypair,
}

impl NodeKey {
    /// A fresh random key.
    pub fn random() -> Self {
        airbloc_eth::keys::NodeKey::random().into()
    }

    /// The key for a 32-byte secret.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, KeyError> {
        airbloc_eth::keys::NodeKey::from_secret(secret).map(Self::from)
    }

    /// The Ethereum address of the key.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The libp2p PeerId of the key.
    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    /// An alloy signer for transactions and EIP-712 messages.
    pub fn signer(&self) -> &PrivateKeySigner {
        self.key.signer()
    }

    /// The libp2p identity keypair.
    pub fn libp2p_keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The uncompressed SEC1 public key (65 bytes, `0x04 ‖ x ‖ y`), as used for key wrapping.
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        self.key.public_key_uncompressed()
    }

    /// The raw secret, for code that must hand it to a wallet format.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        self.key.secret_bytes()
    }

    /// The key without its libp2p side.
    pub fn eth(&self) -> &airbloc_eth::keys::NodeKey {
        &self.key
    }
}

impl From<airbloc_eth::keys::NodeKey> for NodeKey {
    fn from(key: airbloc_eth::keys::NodeKey) -> Self {
        let mut secret = Zeroizing::new(*key.secret_bytes());
        let sk = secp256k1::SecretKey::try_from_bytes(secret.as_mut())
            .expect("a secret alloy accepts is a valid secp256k1 scalar");
        let keypair = Keypair::from(secp256k1::Keypair::from(sk));
        Self { key, keypair }
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("address", &format_args!("{}", self.address()))
            .field("peer_id", &format_args!("{}", self.peer_id()))
            .finish()
    }
}

/// The Ethereum address behind a secp256k1 PeerId, or `None` for other key types.
///
/// secp256k1 PeerIds inline the public key (identity multihash), so a peer's Ethereum address
/// can be checked from its PeerId alone.
pub fn address_of_peer(peer: &PeerId) -> Option<Address> {
    // Multihash bytes: code (varint) ‖ digest length (varint) ‖ digest. Identity code is 0x00,
    // and an encoded secp256k1 key is far shorter than 128 bytes, so both varints are one byte.
    let bytes = peer.to_bytes();
    let (&code, rest) = bytes.split_first()?;
    let (&len, digest) = rest.split_first()?;
    if code != 0x00 || usize::from(len) != digest.len() {
        return None;
    }
    let public = PublicKey::try_decode_protobuf(digest).ok()?.try_into_secp256k1().ok()?;
    let uncompressed = public.to_bytes_uncompressed();
    Some(Address::from_slice(&keccak256(&uncompressed[1..])[12..]))
}

/// Decrypts a v3 keystore.
pub fn open_keystore(path: &Path, password: &str) -> Result<NodeKey, KeyError> {
    airbloc_eth::keys::open_keystore(path, password).map(NodeKey::from)
}

/// Encrypts `key` into a v3 keystore at `path` (mode 0600). Fails if `path` exists.
pub fn write_keystore(path: &Path, key: &NodeKey, password: &str) -> Result<(), KeyError> {
    airbloc_eth::keys::write_keystore(path, &key.key, password)
}

/// Opens the keystore at `path`, creating a fresh key there first when it is missing and
/// `create` is set. Returns the key and whether it was created.
pub fn load_or_create(path: &Path, password: &str, create: bool) -> Result<(NodeKey, bool), KeyError> {
    airbloc_eth::keys::load_or_create(path, password, create).map(|(key, created)| (key.into(), created))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_and_address_come_from_one_secret() {
        let key = NodeKey::random();
        assert_eq!(address_of_peer(&key.peer_id()), Some(key.address()));
        let again = NodeKey::from_secret(key.secret_bytes()).unwrap();
        assert_eq!(again.address(), key.address());
        assert_eq!(again.peer_id(), key.peer_id());
    }

    #[test]
    fn keystore_peer_id_without_libp2p_matches_libp2p_identity() {
        let anvil_zero = hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap();
        let fixed = [anvil_zero.as_slice().try_into().unwrap(), [1u8; 32], [0xfe; 32]];
        let keys = fixed.iter().map(|s| NodeKey::from_secret(s).unwrap()).chain((0..32).map(|_| NodeKey::random()));
        for key in keys {
            let light = key.eth().peer_id();
            let libp2p = key.peer_id();
            assert_eq!(light.to_bytes(), libp2p.to_bytes(), "{libp2p}");
            assert_eq!(light.to_string(), libp2p.to_string());
            assert_eq!(peer_id_text(&libp2p.to_bytes()), libp2p.to_string());
            assert_eq!(PeerId::from_bytes(&light.to_bytes()).unwrap(), libp2p);
        }
        // A SHA-256 peer id (how libp2p names keys too long to inline) reads the same in both.
        let hashed = [&[0x12u8, 32][..], &[7u8; 32]].concat();
        assert_eq!(peer_id_text(&hashed), PeerId::from_bytes(&hashed).unwrap().to_string());
    }

    #[test]
    fn keystore_round_trip_keeps_the_libp2p_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        let key = NodeKey::random();
        write_keystore(&path, &key, "pw").unwrap();
        let opened = open_keystore(&path, "pw").unwrap();
        assert_eq!(opened.peer_id(), key.peer_id());
        assert_eq!(opened.address(), key.address());
    }

    #[test]
    fn known_vector_anvil_account_zero() {
        // anvil's first dev account.
        let secret = hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap();
        let key = NodeKey::from_secret(secret.as_slice().try_into().unwrap()).unwrap();
        assert_eq!(key.address().to_string(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = NodeKey::random();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&hex::encode(key.secret_bytes())));
        assert!(shown.contains(&key.address().to_string()));
    }

    #[test]
    fn zero_secret_is_rejected() {
        assert!(matches!(NodeKey::from_secret(&[0u8; 32]), Err(KeyError::InvalidSecret(_))));
    }
}
