//! The node's identity: one secp256k1 secret that is both its Ethereum account and, in the
//! node, its libp2p identity.
//!
//! - [`NodeKey`] holds the secret (zeroized on drop, never printed) and derives the Ethereum
//!   address, an alloy signer and the secp256k1 [`PeerId`] from it. (The libp2p keypair lives in
//!   the node crate, which wraps this key.)
//! - [`open_keystore`] / [`write_keystore`] read and write Web3 Secret Storage v3 files (scrypt,
//!   AES-128-CTR), the format of geth, `cast wallet` and other Ethereum wallets. Files are
//!   written 0600.
//! - [`read_password`] takes the keystore password from a file or `AIRBLOC_KEYSTORE_PASSWORD`,
//!   never from a command-line argument (those show up in `ps`).

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};
use zeroize::Zeroizing;

mod peer_id;

pub use peer_id::{InvalidPeerId, PeerId};

/// Environment variable read for the keystore password when no password file is configured.
pub const PASSWORD_ENV: &str = "AIRBLOC_KEYSTORE_PASSWORD";

/// Errors loading or storing the node key. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "keystore {0} does not exist and keystore.create is off — create one (`airbloc wallet new`) or allow creation with --keystore.create true"
    )]
    Missing(PathBuf),
    #[error("wrong password for keystore {0} — check the password file or {PASSWORD_ENV}")]
    WrongPassword(PathBuf),
    #[error("keystore {path} is not a valid Web3 Secret Storage v3 file ({reason}) — restore it from a backup")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot access keystore {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot read keystore password file {path}: {source}")]
    PasswordFile { path: PathBuf, source: io::Error },
    #[error("no keystore password — set keystore.password_file (--keystore.password-file) or {PASSWORD_ENV}")]
    NoPassword,
    #[error("the keystore password is empty — an empty password does not protect the key")]
    EmptyPassword,
    #[error("invalid secp256k1 secret key: {0}")]
    InvalidSecret(String),
}

/// The node's secp256k1 key and everything derived from it.
pub struct NodeKey {
    secret: Zeroizing<[u8; 32]>,
    signer: PrivateKeySigner,
}

impl NodeKey {
    /// A fresh random key.
    pub fn random() -> Self {
        loop {
            let mut secret = Zeroizing::new([0u8; 32]);
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, secret.as_mut());
            // Rejection sampling: the odds of an out-of-range secret are ~2^-128.
            if let Ok(key) = Self::from_secret(&secret) {
                return key;
            }
        }
    }

    /// The key for a 32-byte secret.
    pub fn from_secret(secret: &[u8; 32]) -> Result<Self, KeyError> {
        let signer = PrivateKeySigner::from_slice(secret).map_err(|e| KeyError::InvalidSecret(e.to_string()))?;
        Ok(Self { secret: Zeroizing::new(*secret), signer })
    }

    /// The Ethereum address of the key.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The libp2p PeerId a node with this key has.
    pub fn peer_id(&self) -> PeerId {
        PeerId::from_secp256k1(&self.public_key_compressed())
    }

    /// An alloy signer for transactions and EIP-712 messages.
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }

    /// The uncompressed SEC1 public key (65 bytes, `0x04 ‖ x ‖ y`), as used for key wrapping.
    pub fn public_key_uncompressed(&self) -> [u8; 65] {
        let point = self.signer.credential().verifying_key().to_encoded_point(false);
        point.as_bytes().try_into().expect("uncompressed SEC1 points are 65 bytes")
    }

    /// The compressed SEC1 public key (33 bytes, `0x02/0x03 ‖ x`), as libp2p encodes it.
    pub fn public_key_compressed(&self) -> [u8; 33] {
        let point = self.signer.credential().verifying_key().to_encoded_point(true);
        point.as_bytes().try_into().expect("compressed SEC1 points are 33 bytes")
    }

    /// The raw secret, for code that must hand it to a wallet format.
    pub fn secret_bytes(&self) -> &[u8; 32] {
        &self.secret
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

/// The text form of PeerId bytes (as stored in the NodeRegistry); hex when they are not a PeerId.
pub fn peer_id_text(bytes: &[u8]) -> String {
    PeerId::from_bytes(bytes).map_or_else(|_| format!("0x{}", hex::encode(bytes)), |p| p.to_string())
}

/// Reads the keystore password: from `password_file` when given, else from
/// [`PASSWORD_ENV`]. One trailing newline in the file is ignored.
pub fn read_password(password_file: Option<&Path>) -> Result<Zeroizing<String>, KeyError> {
    let password = match password_file {
        Some(path) => {
            let text = fs::read_to_string(path)
                .map_err(|source| KeyError::PasswordFile { path: path.to_path_buf(), source })?;
            let trimmed = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            Zeroizing::new(trimmed.to_owned())
        }
        None => Zeroizing::new(std::env::var(PASSWORD_ENV).map_err(|_| KeyError::NoPassword)?),
    };
    if password.is_empty() {
        return Err(KeyError::EmptyPassword);
    }
    Ok(password)
}

/// Decrypts a v3 keystore.
pub fn open_keystore(path: &Path, password: &str) -> Result<NodeKey, KeyError> {
    if !path.exists() {
        return Err(KeyError::Missing(path.to_path_buf()));
    }
    let secret = eth_keystore::decrypt_key(path, password).map_err(|e| match e {
        eth_keystore::KeystoreError::MacMismatch => KeyError::WrongPassword(path.to_path_buf()),
        eth_keystore::KeystoreError::StdIo(e) => KeyError::Io { path: path.to_path_buf(), source: io::Error::other(e) },
        other => KeyError::Corrupt { path: path.to_path_buf(), reason: other.to_string() },
    })?;
    let secret = Zeroizing::new(secret);
    let bytes: &[u8; 32] = secret.as_slice().try_into().map_err(|_| KeyError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("secret is {} bytes, expected 32", secret.len()),
    })?;
    NodeKey::from_secret(bytes)
}

/// Encrypts `key` into a v3 keystore at `path` (mode 0600). Fails if `path` exists.
///
/// The file is written inside a private (0700) temporary directory next to `path` and then
/// renamed into place, so it is never readable by others, even for a moment.
pub fn write_keystore(path: &Path, key: &NodeKey, password: &str) -> Result<(), KeyError> {
    let io_err = |source| KeyError::Io { path: path.to_path_buf(), source };
    if path.exists() {
        return Err(io_err(io::Error::new(io::ErrorKind::AlreadyExists, "refusing to overwrite an existing keystore")));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err)?;
    let staging = parent.join(format!(".keystore-staging-{}", std::process::id()));
    create_private_dir(&staging).map_err(io_err)?;
    let result = (|| {
        eth_keystore::encrypt_key(&staging, &mut rand::rngs::OsRng, key.secret_bytes(), password, Some("key.json"))
            .map_err(|e| io_err(io::Error::other(e.to_string())))?;
        let staged = staging.join("key.json");
        // Name the account in the file, as geth and cast do, so it can be listed unopened.
        let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&staged).map_err(io_err)?)
            .map_err(|e| io_err(io::Error::other(e.to_string())))?;
        json["address"] = serde_json::Value::String(hex::encode(key.address()));
        fs::write(&staged, json.to_string()).map_err(io_err)?;
        set_mode(&staged, 0o600).map_err(io_err)?;
        fs::rename(&staged, path).map_err(io_err)
    })();
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Opens the keystore at `path`, creating a fresh key there first when it is missing and
/// `create` is set. Returns the key and whether it was created.
pub fn load_or_create(path: &Path, password: &str, create: bool) -> Result<(NodeKey, bool), KeyError> {
    if path.exists() {
        return open_keystore(path, password).map(|k| (k, false));
    }
    if !create {
        return Err(KeyError::Missing(path.to_path_buf()));
    }
    let key = NodeKey::random();
    write_keystore(path, &key, password)?;
    Ok((key, true))
}

/// Creates a directory readable only by its owner.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
    }
    #[cfg(not(unix))]
    fs::create_dir_all(path)
}

/// Sets a file's permission bits (no-op off Unix).
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn address_and_peer_id_come_from_one_secret() {
        let key = NodeKey::random();
        let again = NodeKey::from_secret(key.secret_bytes()).unwrap();
        assert_eq!(again.address(), key.address());
        assert_eq!(again.peer_id(), key.peer_id());
    }

    #[test]
    fn keystore_round_trip_keeps_the_key_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystores/node.json");
        let key = NodeKey::random();
        write_keystore(&path, &key, "pw").unwrap();
        assert_eq!(open_keystore(&path, "pw").unwrap().address(), key.address());
        assert!(matches!(open_keystore(&path, "other"), Err(KeyError::WrongPassword(_))));
        assert!(matches!(write_keystore(&path, &key, "pw"), Err(KeyError::Io { .. })));
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["address"], hex::encode(key.address()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn load_or_create_creates_only_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keystore.json");
        assert!(matches!(load_or_create(&path, "pw", false), Err(KeyError::Missing(_))));
        let (created, fresh) = load_or_create(&path, "pw", true).unwrap();
        assert!(fresh);
        let (opened, fresh) = load_or_create(&path, "pw", false).unwrap();
        assert!(!fresh);
        assert_eq!(opened.address(), created.address());
    }

    #[test]
    fn password_file_loses_one_trailing_newline_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        fs::write(&file, "secret\r\n").unwrap();
        assert_eq!(read_password(Some(file.as_path())).unwrap().as_str(), "secret");
        fs::write(&file, "\n").unwrap();
        assert!(matches!(read_password(Some(file.as_path())), Err(KeyError::EmptyPassword)));
        let missing = dir.path().join("missing");
        assert!(matches!(read_password(Some(missing.as_path())), Err(KeyError::PasswordFile { .. })));
    }

    #[test]
    fn peer_id_text_falls_back_to_hex() {
        let key = NodeKey::random();
        assert_eq!(peer_id_text(&key.peer_id().to_bytes()), key.peer_id().to_string());
        assert_eq!(peer_id_text(&[1, 2, 3]), "0x010203");
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
