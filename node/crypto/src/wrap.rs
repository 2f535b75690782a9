//! Key wrapping with ECIES over secp256k1, byte-compatible with the default configuration of the
//! `eciesjs` (JavaScript) and `eciespy` (Python) libraries:
//!
//! ```text
//! wrapped = ephemeral public key (65, uncompressed) ‖ nonce (16) ‖ tag (16) ‖ ciphertext
//! key     = HKDF-SHA256(ikm = ephemeral public key (65) ‖ shared point (65, uncompressed),
//!                       salt = none, info = none, 32 bytes)
//! cipher  = AES-256-GCM with the 16-byte nonce, no associated data
//! ```
//!
//! So a user with `ecies.decrypt(secret, wrapped)` in Python or JavaScript can unwrap a data key
//! this node wrapped to them, and the other way round.

use super::Dek;
use aes_gcm::{
    AesGcm, KeyInit,
    aead::{AeadInPlace, generic_array::GenericArray},
    aes::Aes256,
};
use k256::{
    AffinePoint, ProjectivePoint, PublicKey, SecretKey,
    elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint},
};
use ring::hkdf;
use zeroize::Zeroizing;

/// AES-256-GCM with eciespy's 16-byte nonce.
type Aes256Gcm16 = AesGcm<Aes256, aes_gcm::aead::consts::U16>;

const EPHEMERAL_LEN: usize = 65;
const NONCE_LEN: usize = 16;
const TAG_LEN: usize = 16;
/// Bytes ECIES adds around the plaintext.
pub const OVERHEAD: usize = EPHEMERAL_LEN + NONCE_LEN + TAG_LEN;
/// Length of a wrapped 32-byte DEK.
pub const WRAPPED_DEK_LEN: usize = OVERHEAD + 32;

/// Why wrapping or unwrapping failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrapError {
    #[error("malformed public key: expected 65 bytes starting 0x04 or 33 bytes starting 0x02/0x03, got {len} bytes")]
    MalformedPublicKey { len: usize },
    #[error("the public key is not a point on secp256k1")]
    PointNotOnCurve,
    #[error("wrapped key is {len} bytes; at least {OVERHEAD} are needed (ephemeral key, nonce, tag)")]
    TooShort { len: usize },
    #[error("wrapped data key is {len} bytes, expected {WRAPPED_DEK_LEN}")]
    WrongLength { len: usize },
    #[error("the ephemeral key in the wrapped data is not a valid secp256k1 point")]
    BadEphemeralKey,
    #[error("cannot unwrap: wrong private key, or the wrapped data was altered")]
    DecryptionFailed,
    #[error("invalid secp256k1 private key")]
    BadSecretKey,
}

/// Parses a SEC1 public key (uncompressed or compressed), naming what is wrong.
pub fn parse_public_key(bytes: &[u8]) -> Result<PublicKey, WrapError> {
    let well_formed = matches!((bytes.len(), bytes.first()), (65, Some(0x04)) | (33, Some(0x02 | 0x03)));
    if !well_formed {
        return Err(WrapError::MalformedPublicKey { len: bytes.len() });
    }
    PublicKey::from_sec1_bytes(bytes).map_err(|_| WrapError::PointNotOnCurve)
}

fn shared_key(ephemeral_public: &[u8], shared_point: &AffinePoint) -> Zeroizing<[u8; 32]> {
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let shared = shared_point.to_encoded_point(false);
    let mut master = Zeroizing::new(Vec::with_capacity(130));
    master.extend_from_slice(ephemeral_public);
    master.extend_from_slice(shared.as_bytes());
    let mut key = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
        .extract(&master)
        .expand(&[], Len32)
        .and_then(|okm| okm.fill(key.as_mut()))
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    key
}

/// Encrypts `plaintext` to `recipient` (SEC1 public key bytes).
pub fn wrap(recipient: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, WrapError> {
    let recipient = parse_public_key(recipient)?;
    let ephemeral = SecretKey::random(&mut rand::rngs::OsRng);
    let ephemeral_public = ephemeral.public_key().to_encoded_point(false);
    let shared = (ProjectivePoint::from(*recipient.as_affine()) * *ephemeral.to_nonzero_scalar()).to_affine();
    let key = shared_key(ephemeral_public.as_bytes(), &shared);

    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let mut body = plaintext.to_vec();
    let tag = Aes256Gcm16::new(GenericArray::from_slice(key.as_ref()))
        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), b"", &mut body)
        .expect("plaintext within AES-GCM limits");

    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(ephemeral_public.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&tag);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts what [`wrap`] (or eciesjs / eciespy) produced for the holder of `secret`.
pub fn unwrap(secret: &[u8; 32], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
    if wrapped.len() < OVERHEAD {
        return Err(WrapError::TooShort { len: wrapped.len() });
    }
    let secret = SecretKey::from_slice(secret).map_err(|_| WrapError::BadSecretKey)?;
    let (ephemeral_bytes, rest) = wrapped.split_at(EPHEMERAL_LEN);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let (tag, ciphertext) = rest.split_at(TAG_LEN);
    if ephemeral_bytes[0] != 0x04 {
        return Err(WrapError::BadEphemeralKey);
    }
    let encoded = k256::EncodedPoint::from_bytes(ephemeral_bytes).map_err(|_| WrapError::BadEphemeralKey)?;
    let ephemeral: Option<AffinePoint> = AffinePoint::from_encoded_point(&encoded).into();
    let ephemeral = ephemeral.ok_or(WrapError::BadEphemeralKey)?;
    let shared = (ProjectivePoint::from(ephemeral) * *secret.to_nonzero_scalar()).to_affine();
    let key = shared_key(ephemeral_bytes, &shared);

    let mut body = Zeroizing::new(ciphertext.to_vec());
    Aes256Gcm16::new(GenericArray::from_slice(key.as_ref()))
        .decrypt_in_place_detached(GenericArray::from_slice(nonce), b"", &mut body, GenericArray::from_slice(tag))
        .map_err(|_| WrapError::DecryptionFailed)?;
    Ok(body)
}

/// Wraps a DEK to `recipient`.
pub fn wrap_dek(recipient: &[u8], dek: &Dek) -> Result<Vec<u8>, WrapError> {
    wrap(recipient, dek.as_bytes())
}

/// Unwraps a DEK; the wrapped form must be exactly [`WRAPPED_DEK_LEN`] bytes.
pub fn unwrap_dek(secret: &[u8; 32], wrapped: &[u8]) -> Result<Dek, WrapError> {
    if wrapped.len() != WRAPPED_DEK_LEN {
        return Err(if wrapped.len() < OVERHEAD {
            WrapError::TooShort { len: wrapped.len() }
        } else {
            WrapError::WrongLength { len: wrapped.len() }
        });
    }
    let plain = unwrap(secret, wrapped)?;
    let bytes: [u8; 32] = plain.as_slice().try_into().expect("length checked");
    Ok(Dek::from_bytes(bytes))
}
