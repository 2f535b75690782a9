//! Chain state derived from contract events, as the indexer keeps it in the store. Hot paths
//! (admission, consent checks, the catalog) read it here instead of calling the chain.

use crate::store::{Store, StoreError, cf};
use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A NodeRegistry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRow {
    pub roles: u8,
    pub peer_id: Bytes,
    pub multiaddrs: Vec<String>,
    pub active: bool,
    pub block: u64,
}

/// A Users entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub owner: Address,
    pub controller: Address,
    pub temporary: bool,
    pub identity_hash: B256,
}

/// An AppRegistry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRow {
    pub name: String,
    pub owner: Address,
    pub authorized: Vec<Address>,
    pub retired: bool,
}

/// A DataTypeRegistry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataTypeRow {
    pub name: String,
    pub owner: Address,
    pub schema_hash: B256,
    pub version: u32,
    pub retired: bool,
}

/// One consent's history: (block, allowed), oldest first, one entry per block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRow {
    pub history: Vec<(u64, bool)>,
    pub set_by_user: bool,
}

impl ConsentRow {
    /// Whether the consent held at the end of `block`.
    pub fn allowed_at(&self, block: u64) -> bool {
        let i = self.history.partition_point(|(b, _)| *b <= block);
        i > 0 && self.history[i - 1].1
    }
}

/// A DataRegistry bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleRow {
    pub app: B256,
    pub data_type: B256,
    pub provider: Address,
    pub merkle_root: B256,
    pub record_count: u64,
    pub ciphertext_hash: B256,
    pub size: u64,
    pub locator: String,
    pub active: bool,
    pub block: u64,
}

/// An Exchange offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferRow {
    pub provider: Address,
    pub consumer: Address,
    pub bundle_ids: Vec<B256>,
    pub token: Address,
    pub price: U256,
    pub delivery_window: u64,
    pub dispute_window: u64,
    pub expires_at: u64,
    pub status: String,
}

/// An Exchange order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    pub offer: B256,
    pub consumer: Address,
    pub token: Address,
    pub amount: U256,
    pub consumer_public_key: Bytes,
    pub deliver_by: u64,
    pub dispute_by: u64,
    pub key_commitment: B256,
    pub status: String,
    pub block: u64,
}

/// Key of a consent row.
pub fn consent_key(user: B256, app: B256, action: u8, data_type: B256) -> Vec<u8> {
    let mut key = Vec::with_capacity(97);
    key.extend_from_slice(user.as_slice());
    key.extend_from_slice(app.as_slice());
    key.push(action);
    key.extend_from_slice(data_type.as_slice());
    key
}

/// Read access to the derived state.
#[derive(Debug, Clone)]
pub struct ChainState {
    store: Arc<Store>,
}

impl ChainState {
    pub fn new(store: Arc<Store>) -> Self {
        Self { store }
    }

    pub fn node(&self, address: Address) -> Result<Option<NodeRow>, StoreError> {
        self.store.get(cf::NODES, address.as_slice())
    }

    /// Whether `address` has an active NodeRegistry entry.
    pub fn is_active_node(&self, address: Address) -> Result<bool, StoreError> {
        Ok(self.node(address)?.is_some_and(|n| n.active))
    }

    pub fn is_controller(&self, address: Address) -> Result<bool, StoreError> {
        Ok(self.store.get::<bool>(cf::CONTROLLERS, address.as_slice())?.unwrap_or(false))
    }

    pub fn user(&self, id: B256) -> Result<Option<UserRow>, StoreError> {
        self.store.get(cf::USERS, id.as_slice())
    }

    pub fn app(&self, id: B256) -> Result<Option<AppRow>, StoreError> {
        self.store.get(cf::APPS, id.as_slice())
    }

    pub fn data_type(&self, id: B256) -> Result<Option<DataTypeRow>, StoreError> {
        self.store.get(cf::DATA_TYPES, id.as_slice())
    }

    pub fn consent(&self, user: B256, app: B256, action: u8, data_type: B256) -> Result<ConsentRow, StoreError> {
        Ok(self.store.get(cf::CONSENTS, &consent_key(user, app, action, data_type))?.unwrap_or_default())
    }

    pub fn bundle(&self, id: B256) -> Result<Option<BundleRow>, StoreError> {
        self.store.get(cf::BUNDLES, id.as_slice())
    }

    pub fn offer(&self, id: B256) -> Result<Option<OfferRow>, StoreError> {
        self.store.get(cf::OFFERS, id.as_slice())
    }

    pub fn order(&self, id: B256) -> Result<Option<OrderRow>, StoreError> {
        self.store.get(cf::ORDERS, id.as_slice())
    }

    fn rows<V: serde::de::DeserializeOwned>(&self, table: &'static str) -> Result<Vec<(B256, V)>, StoreError> {
        self.store
            .scan_prefix(table, &[])
            .map(|row| {
                let (key, value) = row?;
                Ok((B256::from_slice(&key), crate::store::decode(table, &key, &value)?))
            })
            .collect()
    }

    /// Every consent of a user: (app, action, data type, history).
    pub fn consents_of(&self, user: B256) -> Result<Vec<(B256, u8, B256, ConsentRow)>, StoreError> {
        self.store
            .scan_prefix(cf::CONSENTS, user.as_slice())
            .filter_map(|row| match row {
                Ok((key, _)) if key.len() != 97 => None,
                Ok((key, value)) => Some(
                    crate::store::decode(cf::CONSENTS, &key, &value)
                        .map(|row| (B256::from_slice(&key[32..64]), key[64], B256::from_slice(&key[65..97]), row)),
                ),
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    /// Every NodeRegistry entry, by address.
    pub fn nodes(&self) -> Result<Vec<(Address, NodeRow)>, StoreError> {
        self.store
            .scan_prefix(cf::NODES, &[])
            .map(|row| {
                let (key, value) = row?;
                Ok((Address::from_slice(&key), crate::store::decode(cf::NODES, &key, &value)?))
            })
            .collect()
    }

    /// Every indexed bundle, by id.
    pub fn bundles(&self) -> Result<Vec<(B256, BundleRow)>, StoreError> {
        self.rows(cf::BUNDLES)
    }

    /// Every indexed offer, by id.
    pub fn offers(&self) -> Result<Vec<(B256, OfferRow)>, StoreError> {
        self.rows(cf::OFFERS)
    }

    /// Every indexed order, by id.
    pub fn orders(&self) -> Result<Vec<(B256, OrderRow)>, StoreError> {
        self.rows(cf::ORDERS)
    }

    /// Every row of every derived table as (table, key, JSON value), for comparisons and dumps.
    pub fn dump(&self) -> Result<Vec<(&'static str, Vec<u8>, serde_json::Value)>, StoreError> {
        let mut out = Vec::new();
        for table in cf::DERIVED {
            for row in self.store.scan_from(table, &[]) {
                let (key, value) = row?;
                out.push((*table, key.to_vec(), crate::store::decode(table, &key, &value)?));
            }
        }
        Ok(out)
    }
}
