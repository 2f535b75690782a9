//! EIP-712 typed data of the airbloc contracts.
//!
//! The type strings here must match the contracts' typehashes byte for byte:
//!
//! - `Consents`: `ConsentBatch(bytes32 user,Consent[] consents,uint256 nonce,uint256 deadline)`
//!   with `Consent(bytes32 app,uint8 action,bytes32 dataType,bool allowed)`, domain
//!   `{name: "airbloc Consents", version: "1", chainId, verifyingContract}`.
//! - `Exchange`: `DeliveryProof(bytes32 order,bytes32 bundle,bytes32 leaf,bytes32 proofHash)`,
//!   domain `{name: "airbloc Exchange", version: "1", chainId, verifyingContract}`.

use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::{Eip712Domain, eip712_domain, sol};

sol! {
    /// One consent change inside a signed batch.
    #[derive(Debug, PartialEq, Eq)]
    struct Consent {
        bytes32 app;
        uint8 action;
        bytes32 dataType;
        bool allowed;
    }

    /// A user's signed batch of consent changes, relayable by anyone.
    #[derive(Debug, PartialEq, Eq)]
    struct ConsentBatch {
        bytes32 user;
        Consent[] consents;
        uint256 nonce;
        uint256 deadline;
    }

    /// A provider's statement that it delivered `leaf` with proof `proofHash` for `order`.
    #[derive(Debug, PartialEq, Eq)]
    struct DeliveryProof {
        bytes32 order;
        bytes32 bundle;
        bytes32 leaf;
        bytes32 proofHash;
    }
}

/// The EIP-712 domain of a deployed `Consents` contract.
pub fn consents_domain(chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    eip712_domain! { name: "airbloc Consents", version: "1", chain_id: chain_id, verifying_contract: verifying_contract, }
}

/// The EIP-712 domain of a deployed `Exchange` contract.
pub fn exchange_domain(chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    eip712_domain! { name: "airbloc Exchange", version: "1", chain_id: chain_id, verifying_contract: verifying_contract, }
}

/// The `proofHash` of a [`DeliveryProof`]: keccak256 of the packed proof nodes.
pub fn proof_hash(proof: &[B256]) -> B256 {
    let mut packed = Vec::with_capacity(proof.len() * 32);
    for node in proof {
        packed.extend_from_slice(node.as_slice());
    }
    keccak256(packed)
}

sol! {
    /// A provider's signed announcement of a registered bundle, gossiped to consumers. Receivers
    /// check the signature and the indexed DataRegistry entry before accepting and forwarding it.
    #[derive(Debug, PartialEq, Eq)]
    struct BundleAnnouncement {
        bytes32 bundle;
        bytes32 app;
        bytes32 dataType;
        address provider;
        uint64 recordCount;
        uint64 size;
        uint256 priceHint;
        address priceToken;
        uint64 issuedAt;
    }
}

/// The EIP-712 domain of node statements (signed off chain, checked by peers).
pub fn node_domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! { name: "airbloc Node", version: "1", chain_id: chain_id, }
}
