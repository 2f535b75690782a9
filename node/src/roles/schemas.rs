//! Data type schemas: kept by hash in the store, served to any peer, fetched from peers by the
//! hash on DataTypeRegistry — the chain says which text is right, so any holder will do.

use super::RoleError;
use crate::{
    backend::Backend,
    store::{Durability, cf},
};
use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::{B256, keccak256};
use std::time::Duration;

/// Schemas by hash.
#[derive(Debug, Clone)]
pub struct Schemas {
    backend: Backend,
}

impl Schemas {
    pub fn new(backend: Backend) -> Self {
        Self { backend }
    }

    /// The schema with this hash, if this node has it.
    pub fn local(&self, hash: B256) -> Result<Option<String>, RoleError> {
        let raw = self.backend.store.get_raw(cf::SCHEMAS, hash.as_slice())?;
        raw.map(|bytes| String::from_utf8(bytes).map_err(RoleError::from)).transpose()
    }

    /// Keeps a schema text under its hash.
    pub fn keep(&self, schema_json: &str) -> Result<B256, RoleError> {
        let hash = keccak256(schema_json.as_bytes());
        self.backend.store.put_raw(cf::SCHEMAS, hash.as_slice(), schema_json.as_bytes(), Durability::Sync)?;
        Ok(hash)
    }

    /// The schema of a registered data type: from the store, else from the data type owner's
    /// node, else from any connected peer; checked against the on-chain hash and kept.
    pub async fn of_data_type(&self, data_type: B256) -> Result<(crate::chain::state::DataTypeRow, String), RoleError> {
        let services = &self.backend.services;
        let row = services.state.data_type(data_type)?.ok_or_else(|| {
            RoleError::NotFound(format!("data type {data_type} is not registered (or not indexed yet)"))
        })?;
        if let Some(json) = self.local(row.schema_hash)? {
            return Ok((row, json));
        }
        let network = &self.backend.network;
        let mut peers = Vec::new();
        if let Ok(owner) = network.connect_node(&services.state, row.owner, Duration::from_secs(10)).await {
            peers.push(owner);
        }
        for peer in network.peers().await {
            if !peers.contains(&peer.peer_id) {
                peers.push(peer.peer_id);
            }
        }
        let mut last = format!("no connected peer holds schema {}", row.schema_hash);
        for peer in peers {
            let request = wire::SchemaRequest { schema_hash: row.schema_hash.to_vec() };
            match network.request(peer, wire::request::Body::Schema(request)).await {
                Ok(wire::Response { body: Some(wire::response::Body::Schema(schema)), .. })
                    if keccak256(schema.schema_json.as_bytes()) == row.schema_hash =>
                {
                    self.keep(&schema.schema_json)?;
                    return Ok((row, schema.schema_json));
                }
                Ok(_) => last = format!("peer {peer} answered a schema that does not match the on-chain hash"),
                Err(e) => last = e.to_string(),
            }
        }
        Err(RoleError::NotFound(format!("cannot get the schema of data type {data_type}: {last}")))
    }

    /// Answers a peer's schema request.
    pub fn answer(&self, request: &wire::SchemaRequest) -> Result<wire::Schema, RoleError> {
        let hash = B256::try_from(request.schema_hash.as_slice())
            .map_err(|_| RoleError::Invalid("schema_hash must be 32 bytes".into()))?;
        let schema_json = self.local(hash)?.ok_or_else(|| RoleError::NotFound(format!("no schema {hash} here")))?;
        Ok(wire::Schema { schema_json })
    }
}
