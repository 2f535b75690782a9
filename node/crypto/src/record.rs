//! The canonical bytes of a record.
//!
//! Whatever feeds a hash must encode one way only. A record is encoded as:
//!
//! ```text
//! version     u8 = 1
//! user id     32 bytes
//! data type   32 bytes
//! collected   u64 big-endian (Unix milliseconds)
//! payload     u32 big-endian length ‖ the JSON payload exactly as received
//! ```
//!
//! Fields come in this fixed order, every variable-length field is length-prefixed, integers are
//! big-endian binary, and the payload keeps the producer's bytes: no map re-ordering, no number
//! re-formatting (a float is never re-printed as text), so the same record always yields the same
//! bytes and so the same ciphertext hash commitment for the same key and nonce material.

use alloy_primitives::B256;

/// Version byte of the encoding.
pub const RECORD_VERSION: u8 = 1;
const FIXED_LEN: usize = 1 + 32 + 32 + 8 + 4;

/// Why bytes are not a canonical record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is {0} bytes, shorter than the {FIXED_LEN}-byte fixed part")]
    TooShort(usize),
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u8),
    #[error("record payload length {declared} does not match the {actual} bytes present")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("record payload of {0} bytes exceeds the 4 GiB limit")]
    TooLarge(usize),
}

/// One record as it is stored and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub user_id: B256,
    pub data_type: B256,
    pub collected_at_ms: u64,
    pub payload: Vec<u8>,
}

impl Record {
    /// The canonical encoding.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let len = u32::try_from(self.payload.len()).map_err(|_| RecordError::TooLarge(self.payload.len()))?;
        let mut out = Vec::with_capacity(FIXED_LEN + self.payload.len());
        out.push(RECORD_VERSION);
        out.extend_from_slice(self.user_id.as_slice());
        out.extend_from_slice(self.data_type.as_slice());
        out.extend_from_slice(&self.collected_at_ms.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.payload);
        Ok(out)
    }

    /// Parses a canonical encoding; anything else is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() < FIXED_LEN {
            return Err(RecordError::TooShort(bytes.len()));
        }
        if bytes[0] != RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion(bytes[0]));
        }
        let declared = u32::from_be_bytes(bytes[73..77].try_into().expect("4 bytes")) as usize;
        let actual = bytes.len() - FIXED_LEN;
        if declared != actual {
            return Err(RecordError::LengthMismatch { declared, actual });
        }
        Ok(Self {
            user_id: B256::from_slice(&bytes[1..33]),
            data_type: B256::from_slice(&bytes[33..65]),
            collected_at_ms: u64::from_be_bytes(bytes[65..73].try_into().expect("8 bytes")),
            payload: bytes[FIXED_LEN..].to_vec(),
        })
    }
}
