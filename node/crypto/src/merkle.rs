//! OpenZeppelin's standard Merkle tree, as built by `@openzeppelin/merkle-tree`
//! (`StandardMerkleTree.of(values, types)`) and verified by `MerkleProof` on chain.
//!
//! - leaf = keccak256(keccak256(abi.encode(values))) — see [`record_leaf`] for bundle records;
//! - leaves are sorted by hash, then laid out as a complete binary tree in an array of
//!   `2n - 1` nodes, leaves at the end in reverse order;
//! - each parent = keccak256 of its two children sorted (smaller first).
//!
//! So a root, proof or multiproof from this module equals the library's, and `DataRegistry.verify`
//! accepts it.

use alloy_primitives::{B256, keccak256};
use alloy_sol_types::SolValue;

/// Why a tree cannot be built or a multiproof requested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("a Merkle tree needs at least one leaf")]
    Empty,
    #[error("leaf index {index} is out of range (the tree has {len} leaves)")]
    OutOfRange { index: usize, len: usize },
    #[error("leaf index {0} is listed twice")]
    Duplicate(usize),
}

/// The standard-tree leaf of one bundle record: user id, record index, ciphertext hash.
pub fn record_leaf(user_id: B256, record_index: u64, ciphertext_hash: B256) -> B256 {
    keccak256(keccak256((user_id, record_index, ciphertext_hash).abi_encode()))
}

/// Hash of a sorted pair.
#[inline]
pub fn hash_pair(a: &B256, b: &B256) -> B256 {
    let mut buf = [0u8; 64];
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    buf[..32].copy_from_slice(lo.as_slice());
    buf[32..].copy_from_slice(hi.as_slice());
    keccak256(buf)
}

/// A built tree over leaf hashes.
#[derive(Debug, Clone)]
pub struct MerkleTree {
    nodes: Vec<B256>,
    /// For each leaf in input order, its position in `nodes`.
    positions: Vec<usize>,
}

/// A proof for several leaves at once, in OpenZeppelin's `multiProofVerify` shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiProof {
    /// The proven leaves, in the order verification consumes them.
    pub leaves: Vec<B256>,
    pub proof: Vec<B256>,
    pub proof_flags: Vec<bool>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (already-hashed standard leaves, in input order).
    pub fn new(leaves: &[B256]) -> Result<Self, MerkleError> {
        let n = leaves.len();
        if n == 0 {
            return Err(MerkleError::Empty);
        }
        // Sort leaf indices by hash; ties keep input order (a stable sort, as the library's).
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| leaves[a].cmp(&leaves[b]));
        let len = 2 * n - 1;
        let mut nodes = vec![B256::ZERO; len];
        let mut positions = vec![0usize; n];
        for (rank, &input) in order.iter().enumerate() {
            let position = len - 1 - rank;
            nodes[position] = leaves[input];
            positions[input] = position;
        }
        for i in (0..len - n).rev() {
            nodes[i] = hash_pair(&nodes[2 * i + 1], &nodes[2 * i + 2]);
        }
        Ok(Self { nodes, positions })
    }

    pub fn root(&self) -> B256 {
        self.nodes[0]
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The leaf hash of input leaf `index`.
    pub fn leaf(&self, index: usize) -> Result<B256, MerkleError> {
        self.position(index).map(|p| self.nodes[p])
    }

    fn position(&self, index: usize) -> Result<usize, MerkleError> {
        self.positions.get(index).copied().ok_or(MerkleError::OutOfRange { index, len: self.len() })
    }

    /// The proof for input leaf `index` (siblings from the leaf up).
    pub fn proof(&self, index: usize) -> Result<Vec<B256>, MerkleError> {
        let mut i = self.position(index)?;
        let mut proof = Vec::new();
        while i > 0 {
            let sibling = if i % 2 == 1 { i + 1 } else { i - 1 };
            proof.push(self.nodes[sibling]);
            i = (i - 1) / 2;
        }
        Ok(proof)
    }

    /// A multiproof for several input leaves.
    pub fn multiproof(&self, indices: &[usize]) -> Result<MultiProof, MerkleError> {
        let mut positions = indices.iter().map(|&i| self.position(i)).collect::<Result<Vec<_>, _>>()?;
        positions.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(w) = positions.windows(2).find(|w| w[0] == w[1]) {
            let dup = self.positions.iter().position(|&p| p == w[0]).expect("position of a leaf");
            return Err(MerkleError::Duplicate(dup));
        }
        let leaves = positions.iter().map(|&p| self.nodes[p]).collect();
        let mut stack: std::collections::VecDeque<usize> = positions.iter().copied().collect();
        let mut proof = Vec::new();
        let mut proof_flags = Vec::new();
        while let Some(&j) = stack.front() {
            if j == 0 {
                break;
            }
            stack.pop_front();
            let sibling = if j % 2 == 1 { j + 1 } else { j - 1 };
            let parent = (j - 1) / 2;
            if stack.front() == Some(&sibling) {
                proof_flags.push(true);
                stack.pop_front();
            } else {
                proof_flags.push(false);
                proof.push(self.nodes[sibling]);
            }
            stack.push_back(parent);
        }
        if indices.is_empty() {
            proof.push(self.nodes[0]);
        }
        Ok(MultiProof { leaves, proof, proof_flags })
    }
}

/// Whether `proof` links `leaf` to `root` (OpenZeppelin `MerkleProof.verify`).
pub fn verify(root: &B256, leaf: &B256, proof: &[B256]) -> bool {
    proof.iter().fold(*leaf, |acc, node| hash_pair(&acc, node)) == *root
}

/// Whether a multiproof links its leaves to `root` (OpenZeppelin `multiProofVerify`).
pub fn verify_multi(root: &B256, multi: &MultiProof) -> bool {
    let leaves_len = multi.leaves.len();
    let proof_len = multi.proof.len();
    let total = multi.proof_flags.len();
    if leaves_len + proof_len != total + 1 {
        return false;
    }
    let mut hashes = Vec::with_capacity(total);
    let (mut leaf_pos, mut hash_pos, mut proof_pos) = (0, 0, 0);
    let next = |hashes: &Vec<B256>, leaf_pos: &mut usize, hash_pos: &mut usize| -> B256 {
        if *leaf_pos < leaves_len {
            *leaf_pos += 1;
            multi.leaves[*leaf_pos - 1]
        } else {
            *hash_pos += 1;
            hashes[*hash_pos - 1]
        }
    };
    for i in 0..total {
        let a = next(&hashes, &mut leaf_pos, &mut hash_pos);
        let b = if multi.proof_flags[i] {
            next(&hashes, &mut leaf_pos, &mut hash_pos)
        } else {
            if proof_pos >= proof_len {
                return false;
            }
            proof_pos += 1;
            multi.proof[proof_pos - 1]
        };
        hashes.push(hash_pair(&a, &b));
    }
    let computed = if total > 0 {
        if proof_pos != proof_len {
            return false;
        }
        hashes[total - 1]
    } else if leaves_len > 0 {
        multi.leaves[0]
    } else {
        multi.proof[0]
    };
    computed == *root
}
