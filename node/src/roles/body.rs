//! The bundle body: per record `user id (32) ‖ length (u32 BE) ‖ record sealed under the bundle key`.
//! The user id is in the clear so anyone holding the body can recompute the Merkle leaves
//! (`record_leaf(user, index, keccak(sealed))`) and check them against the on-chain root before
//! decrypting anything.

use crate::crypto::merkle::record_leaf;
use alloy::primitives::{B256, keccak256};
use std::io::{self, Read, Write};

/// Largest sealed record accepted when reading a body.
pub const MAX_ENTRY: u32 = 64 << 20;

/// Writes one entry; returns the bytes written.
pub fn write_entry(out: &mut impl Write, user: B256, sealed: &[u8]) -> io::Result<u64> {
    let len =
        u32::try_from(sealed.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record too large"))?;
    out.write_all(user.as_slice())?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(sealed)?;
    Ok(36 + u64::from(len))
}

/// Reads the next entry, or `None` at a clean end.
pub fn read_entry(input: &mut impl Read) -> io::Result<Option<(B256, Vec<u8>)>> {
    let mut head = [0u8; 36];
    let mut filled = 0;
    while filled < head.len() {
        match input.read(&mut head[filled..])? {
            0 if filled == 0 => return Ok(None),
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "bundle body ends inside an entry header")),
            n => filled += n,
        }
    }
    let len = u32::from_be_bytes(head[32..].try_into().expect("4 bytes"));
    if len > MAX_ENTRY {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a bundle entry claims {len} bytes")));
    }
    let mut sealed = vec![0u8; len as usize];
    input.read_exact(&mut sealed)?;
    Ok(Some((B256::from_slice(&head[..32]), sealed)))
}

/// The leaf of entry `index`.
pub fn leaf(user: B256, index: u64, sealed: &[u8]) -> B256 {
    record_leaf(user, index, keccak256(sealed))
}

/// A record as the NDJSON line consumers and exports write: user, data type, collection time and
/// the payload as JSON.
pub fn ndjson_line(record: &crate::crypto::record::Record) -> Result<serde_json::Value, serde_json::Error> {
    let payload: serde_json::Value = serde_json::from_slice(&record.payload)?;
    Ok(serde_json::json!({
        "user_id": record.user_id,
        "data_type": record.data_type,
        "collected_at_ms": record.collected_at_ms,
        "payload": payload,
    }))
}
