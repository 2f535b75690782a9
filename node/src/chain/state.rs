//! Chain state derived from contract events, as the indexer keeps it in the store. Hot paths
//! (admission, consent checks, the catalog) read it here instead of calling the chain.

use super::indexer::{IndexerHandle, IndexerProgress, load_cursor};
use crate::store::{Store, StoreError, cf};
use alloy::primitives::{Address, B256, Bytes, U256};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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

/// Where an Exchange offer stands. Stored as its lower-case name (`"open"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfferStatus {
    /// Orders may be placed.
    Open,
    /// Withdrawn by the provider.
    Cancelled,
    /// An order on it was disputed.
    Disputed,
}

/// Where an Exchange order stands. Stored as its lower-case name (`"placed"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Paid into escrow; the provider owes the key.
    Placed,
    /// The provider committed the key on chain; the consumer may settle or dispute.
    Delivered,
    /// Paid out to the provider.
    Settled,
    /// Paid back to the consumer (delivery missed).
    Refunded,
    /// Disputed by the consumer.
    Disputed,
}

impl OfferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Cancelled => "cancelled",
            Self::Disputed => "disputed",
        }
    }
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Delivered => "delivered",
            Self::Settled => "settled",
            Self::Refunded => "refunded",
            Self::Disputed => "disputed",
        }
    }

    /// Whether the order has ended: no more delivery, and its escrow is paid out or frozen.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::Settled | Self::Refunded | Self::Disputed)
    }

    /// Whether the provider still serves the order's bundles (a refunded or disputed order is
    /// no longer served).
    pub fn is_served(self) -> bool {
        !matches!(self, Self::Refunded | Self::Disputed)
    }
}

impl std::fmt::Display for OfferStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    pub status: OfferStatus,
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
    pub status: OrderStatus,
    pub block: u64,
}

/// The derived tables, each with its key and row type.
pub mod tables {
    use super::*;

    crate::tables! {
        /// NodeRegistry entries by node address.
        pub Nodes(cf::NODES): Address => NodeRow;
        /// ControllerRegistry members (present and `true` while registered).
        pub Controllers(cf::CONTROLLERS): Address => bool;
        /// Users by user id.
        pub Users(cf::USERS): B256 => UserRow;
        /// AppRegistry entries by app id.
        pub Apps(cf::APPS): B256 => AppRow;
        /// DataTypeRegistry entries by data type id.
        pub DataTypes(cf::DATA_TYPES): B256 => DataTypeRow;
        /// Consent histories by (user, app, action, data type).
        pub Consents(cf::CONSENTS): ConsentKey => ConsentRow;
        /// DataRegistry bundles by bundle id.
        pub Bundles(cf::BUNDLES): B256 => BundleRow;
        /// Exchange offers by offer id.
        pub Offers(cf::OFFERS): B256 => OfferRow;
        /// Exchange orders by order id.
        pub Orders(cf::ORDERS): B256 => OrderRow;
    }
}

crate::json_values!(NodeRow, UserRow, AppRow, DataTypeRow, ConsentRow, BundleRow, OfferRow, OrderRow);

/// The key of a consent: user ‖ app ‖ action ‖ data type (97 bytes, so a user's consents are
/// one prefix scan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentKey {
    pub user: B256,
    pub app: B256,
    pub action: u8,
    pub data_type: B256,
}

impl crate::store::table::Key for ConsentKey {
    fn to_key(&self) -> Vec<u8> {
        consent_key(self.user, self.app, self.action, self.data_type)
    }
    fn from_key(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == 97).then(|| ConsentKey {
            user: B256::from_slice(&bytes[..32]),
            app: B256::from_slice(&bytes[32..64]),
            action: bytes[64],
            data_type: B256::from_slice(&bytes[65..97]),
        })
    }
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

/// Read access to the derived state, and the indexer's progress over it.
///
/// Built right after the store opens — before the chain connection — so admission and gossip
/// read the index from the start; the indexer, started later, publishes its progress here.
#[derive(Debug, Clone)]
pub struct ChainState {
    store: Arc<Store>,
    progress: Arc<watch::Sender<IndexerProgress>>,
    indexer_stopped: CancellationToken,
}

impl ChainState {
    pub fn new(store: Arc<Store>) -> Self {
        // A damaged cursor is reported by the indexer when it starts; the view starts at 0.
        let indexed = match load_cursor(&store) {
            Ok(cursor) => cursor.map_or(0, |c| c.number),
            Err(e) => {
                tracing::warn!(target: "chain::state", error = %e, "cannot read the indexer cursor");
                0
            }
        };
        let (progress, _) = watch::channel(IndexerProgress { indexed, ..Default::default() });
        Self { store, progress: Arc::new(progress), indexer_stopped: CancellationToken::new() }
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub(crate) fn indexer_stopped(&self) -> CancellationToken {
        self.indexer_stopped.clone()
    }

    pub(crate) fn progress_sender(&self) -> Arc<watch::Sender<IndexerProgress>> {
        self.progress.clone()
    }

    /// A handle on the indexer's progress (also before the indexer starts: it then stays put).
    pub fn indexer(&self) -> IndexerHandle {
        IndexerHandle::new(self.progress.subscribe(), self.indexer_stopped.clone())
    }

    pub fn node(&self, address: Address) -> Result<Option<NodeRow>, StoreError> {
        self.store.get_row::<tables::Nodes>(&address)
    }

    /// Whether `address` has an active NodeRegistry entry.
    pub fn is_active_node(&self, address: Address) -> Result<bool, StoreError> {
        Ok(self.node(address)?.is_some_and(|n| n.active))
    }

    pub fn is_controller(&self, address: Address) -> Result<bool, StoreError> {
        Ok(self.store.get_row::<tables::Controllers>(&address)?.unwrap_or(false))
    }

    pub fn user(&self, id: B256) -> Result<Option<UserRow>, StoreError> {
        self.store.get_row::<tables::Users>(&id)
    }

    pub fn app(&self, id: B256) -> Result<Option<AppRow>, StoreError> {
        self.store.get_row::<tables::Apps>(&id)
    }

    pub fn data_type(&self, id: B256) -> Result<Option<DataTypeRow>, StoreError> {
        self.store.get_row::<tables::DataTypes>(&id)
    }

    pub fn consent(&self, user: B256, app: B256, action: u8, data_type: B256) -> Result<ConsentRow, StoreError> {
        Ok(self.store.get_row::<tables::Consents>(&ConsentKey { user, app, action, data_type })?.unwrap_or_default())
    }

    pub fn bundle(&self, id: B256) -> Result<Option<BundleRow>, StoreError> {
        self.store.get_row::<tables::Bundles>(&id)
    }

    pub fn offer(&self, id: B256) -> Result<Option<OfferRow>, StoreError> {
        self.store.get_row::<tables::Offers>(&id)
    }

    pub fn order(&self, id: B256) -> Result<Option<OrderRow>, StoreError> {
        self.store.get_row::<tables::Orders>(&id)
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
        self.store.rows::<tables::Nodes>().collect()
    }

    /// Every indexed bundle, by id.
    pub fn bundles(&self) -> Result<Vec<(B256, BundleRow)>, StoreError> {
        self.store.rows::<tables::Bundles>().collect()
    }

    /// Every indexed offer, by id.
    pub fn offers(&self) -> Result<Vec<(B256, OfferRow)>, StoreError> {
        self.store.rows::<tables::Offers>().collect()
    }

    /// Every indexed order, by id.
    pub fn orders(&self) -> Result<Vec<(B256, OrderRow)>, StoreError> {
        self.store.rows::<tables::Orders>().collect()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses_keep_their_stored_names() {
        for (status, name) in [
            (OrderStatus::Placed, "placed"),
            (OrderStatus::Delivered, "delivered"),
            (OrderStatus::Settled, "settled"),
            (OrderStatus::Refunded, "refunded"),
            (OrderStatus::Disputed, "disputed"),
        ] {
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<OrderStatus>(&format!("\"{name}\"")).unwrap(), status);
            assert_eq!(status.to_string(), name);
        }
        for (status, name) in
            [(OfferStatus::Open, "open"), (OfferStatus::Cancelled, "cancelled"), (OfferStatus::Disputed, "disputed")]
        {
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{name}\""));
            assert_eq!(status.to_string(), name);
        }
    }

    #[test]
    fn closed_and_served_orders() {
        assert!(!OrderStatus::Placed.is_closed() && OrderStatus::Placed.is_served());
        assert!(!OrderStatus::Delivered.is_closed() && OrderStatus::Delivered.is_served());
        assert!(OrderStatus::Settled.is_closed() && OrderStatus::Settled.is_served());
        assert!(OrderStatus::Refunded.is_closed() && !OrderStatus::Refunded.is_served());
        assert!(OrderStatus::Disputed.is_closed() && !OrderStatus::Disputed.is_served());
    }

    #[test]
    fn consent_history_answers_per_block() {
        let row = ConsentRow { history: vec![(5, true), (9, false), (12, true)], set_by_user: false };
        assert!(!row.allowed_at(4));
        assert!(row.allowed_at(5) && row.allowed_at(8));
        assert!(!row.allowed_at(9) && !row.allowed_at(11));
        assert!(row.allowed_at(12) && row.allowed_at(100));
        assert!(!ConsentRow::default().allowed_at(100));
    }
}
