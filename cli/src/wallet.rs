//! Where a command's signing key comes from: a v3 keystore (password from a file or
//! `AIRBLOC_KEYSTORE_PASSWORD`, never an argument) or a file holding a hex private key.

use crate::{Failure, exit};
use airbloc_node::keys::{self, NodeKey};
use clap::Args;
use std::path::PathBuf;
use zeroize::Zeroizing;

#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false, id = "key_source")]
pub(crate) struct KeyArgs {
    /// Web3 v3 keystore of the signing account.
    #[arg(long, env = "AIRBLOC_KEYSTORE", value_name = "FILE", help_heading = "Signer")]
    pub(crate) keystore: Option<PathBuf>,
    /// File holding the signing account's private key as hex (e.g. anvil's dev keys).
    #[arg(long, env = "AIRBLOC_PRIVATE_KEY_FILE", value_name = "FILE", help_heading = "Signer")]
    pub(crate) private_key_file: Option<PathBuf>,
}

/// The keystore password file, when a keystore is used.
#[derive(Debug, Clone, Args)]
pub(crate) struct PasswordArgs {
    /// File holding the keystore password (else AIRBLOC_KEYSTORE_PASSWORD is read).
    #[arg(long, env = "AIRBLOC_KEYSTORE_PASSWORD_FILE", value_name = "FILE", help_heading = "Signer")]
    pub(crate) password_file: Option<PathBuf>,
}

impl KeyArgs {
    pub(crate) fn load(&self, password: &PasswordArgs) -> Result<NodeKey, Failure> {
        if let Some(path) = &self.keystore {
            let pw = keys::read_password(password.password_file.as_deref())
                .map_err(|e| Failure::new(exit::USAGE, e.to_string()))?;
            return keys::open_keystore(path, &pw).map_err(|e| Failure::new(exit::USAGE, e.to_string()));
        }
        let path = self.private_key_file.as_ref().expect("clap requires one key source");
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Failure::new(exit::USAGE, format!("cannot read {}: {e}", path.display())))?,
        );
        let hex_text = text.trim().trim_start_matches("0x");
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_text, secret.as_mut()).map_err(|_| {
            Failure::new(exit::USAGE, format!("{} must hold a 32-byte private key in hex", path.display()))
        })?;
        NodeKey::from_secret(&secret).map_err(|e| Failure::new(exit::USAGE, e.to_string()))
    }
}
