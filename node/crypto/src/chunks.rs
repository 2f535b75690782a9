//! Chunk manifests: how a bundle's ciphertext is cut for transfer and checked piece by piece.
//!
//! The ciphertext is cut into fixed-size chunks (the last one shorter); each chunk is hashed with
//! BLAKE3. The manifest's [`commitment`](ChunkManifest::commitment) — keccak-256 over the chunk
//! size, the total size and the chunk hashes — is the bundle's `ciphertextHash` on DataRegistry, so
//! a downloader that fetched the manifest from any peer checks it against the chain once and then
//! every chunk against its hash as it arrives, before writing it.
//!
//! Commitment preimage: `chunk_size (u32 BE) ‖ size (u64 BE) ‖ blake3(chunk_0) ‖ … ‖ blake3(chunk_n-1)`.

use alloy_primitives::{B256, keccak256};
use std::io::{self, Read};

/// Default chunk size: 256 KiB (fine-grained enough to overlap verification with receiving).
pub const DEFAULT_CHUNK_SIZE: u32 = 256 << 10;
/// Most chunks a manifest has when the chunk size is chosen by [`chunk_size_for`]: the manifest
/// stays under 512 KiB, within one request/response frame.
pub const MAX_CHUNKS: u64 = 16 * 1024;

/// The chunk size for a ciphertext of `size` bytes: the default, doubled until the manifest has
/// at most [`MAX_CHUNKS`] hashes.
pub fn chunk_size_for(size: u64) -> u32 {
    let mut chunk = DEFAULT_CHUNK_SIZE;
    while size.div_ceil(u64::from(chunk)) > MAX_CHUNKS && chunk < MAX_CHUNK_SIZE {
        chunk *= 2;
    }
    chunk
}
/// Smallest allowed chunk size.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest allowed chunk size.
pub const MAX_CHUNK_SIZE: u32 = 16 << 20;

/// Why a manifest is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    #[error("{got} chunk hashes for {size} bytes in chunks of {chunk_size} (expected {expected})")]
    Count { got: usize, expected: u64, size: u64, chunk_size: u32 },
    #[error("chunk hashes must be 32 bytes each; got {0} bytes")]
    Encoding(usize),
}

/// Size, chunk size and the BLAKE3 of every chunk of a ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkManifest {
    pub chunk_size: u32,
    pub size: u64,
    pub hashes: Vec<[u8; 32]>,
}

/// BLAKE3-256 of one chunk.
pub fn chunk_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

impl ChunkManifest {
    /// Validates a manifest received from a peer.
    pub fn new(chunk_size: u32, size: u64, hashes: Vec<[u8; 32]>) -> Result<Self, ManifestError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(ManifestError::ChunkSize(chunk_size));
        }
        let expected = size.div_ceil(u64::from(chunk_size));
        if hashes.len() as u64 != expected {
            return Err(ManifestError::Count { got: hashes.len(), expected, size, chunk_size });
        }
        Ok(Self { chunk_size, size, hashes })
    }

    /// Decodes concatenated 32-byte hashes (the wire form) and validates.
    pub fn from_concatenated(chunk_size: u32, size: u64, hashes: &[u8]) -> Result<Self, ManifestError> {
        if !hashes.len().is_multiple_of(32) {
            return Err(ManifestError::Encoding(hashes.len()));
        }
        let expected = size.div_ceil(u64::from(chunk_size.max(1)));
        if hashes.len() as u64 / 32 != expected {
            return Err(ManifestError::Count { got: hashes.len() / 32, expected, size, chunk_size });
        }
        Self::new(chunk_size, size, hashes.chunks_exact(32).map(|h| h.try_into().expect("32 bytes")).collect())
    }

    /// The hashes concatenated (the wire form).
    pub fn concatenated(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// Hashes everything `reader` yields, in chunks of `chunk_size`.
    pub fn compute(mut reader: impl Read, chunk_size: u32) -> io::Result<Self> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, ManifestError::ChunkSize(chunk_size)));
        }
        let mut buf = vec![0u8; chunk_size as usize];
        let mut hashes = Vec::new();
        let mut size = 0u64;
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break;
            }
            hashes.push(chunk_hash(&buf[..filled]));
            size += filled as u64;
            if filled < buf.len() {
                break;
            }
        }
        Ok(Self { chunk_size, size, hashes })
    }

    /// Number of chunks.
    pub fn count(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// Byte offset where chunk `index` starts.
    pub fn offset(&self, index: u64) -> u64 {
        index * u64::from(self.chunk_size)
    }

    /// Length of chunk `index` (the last one may be shorter).
    pub fn chunk_len(&self, index: u64) -> usize {
        let start = self.offset(index);
        (self.size.saturating_sub(start)).min(u64::from(self.chunk_size)) as usize
    }

    /// Whether `data` is chunk `index`.
    pub fn verify(&self, index: u64, data: &[u8]) -> bool {
        self.hashes.get(index as usize).is_some_and(|h| data.len() == self.chunk_len(index) && chunk_hash(data) == *h)
    }

    /// The commitment registered on chain as the bundle's `ciphertextHash`.
    pub fn commitment(&self) -> B256 {
        let mut preimage = Vec::with_capacity(12 + self.hashes.len() * 32);
        preimage.extend_from_slice(&self.chunk_size.to_be_bytes());
        preimage.extend_from_slice(&self.size.to_be_bytes());
        for hash in &self.hashes {
            preimage.extend_from_slice(hash);
        }
        keccak256(preimage)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_checks() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let manifest = ChunkManifest::compute(data.as_slice(), 4096).unwrap();
        assert_eq!(manifest.count(), 3);
        assert_eq!(manifest.chunk_len(2), 10_000 - 8192);
        assert!(manifest.verify(1, &data[4096..8192]));
        assert!(!manifest.verify(1, &data[0..4096]));
        assert!(!manifest.verify(3, &[]));
        let wire = ChunkManifest::from_concatenated(4096, 10_000, &manifest.concatenated()).unwrap();
        assert_eq!(wire.commitment(), manifest.commitment());
        assert!(ChunkManifest::from_concatenated(4096, 20_000, &manifest.concatenated()).is_err());
        assert!(ChunkManifest::from_concatenated(1, 10_000, &manifest.concatenated()).is_err());
        assert_eq!(chunk_size_for(1 << 30), DEFAULT_CHUNK_SIZE);
        assert_eq!(chunk_size_for(16 << 30), 1 << 20);
        let empty = ChunkManifest::compute(&[][..], 4096).unwrap();
        assert_eq!((empty.count(), empty.size), (0, 0));
    }
}
