//! The provider role: registry calls, record ingestion and bundles.
//!
//! - **Ingest.** Each record is checked against its data type's JSON Schema (kept by the node,
//!   its keccak-256 on chain) and the user's `collect` consent as indexed, then sealed under the
//!   node's storage key and written; a batch is fsynced before it is acknowledged. The store key is
//!   `app ‖ data type ‖ keccak(canonical record)`, so a record sent twice is stored once.
//! - **Bundles.** Sealing takes the pending records of an app and data type, seals each under a
//!   fresh bundle key, and writes the body: per record `user id (32) ‖ length (u32 BE) ‖ sealed`.
//!   Leaves are `record_leaf(user, index, keccak(sealed))`; the root, the record count, the chunk
//!   manifest commitment (as `ciphertextHash`) and the size go to DataRegistry through the outbox.
//!   The bundle key is kept only wrapped to the node key. The records leave the pending set in the
//!   same atomic write that records the bundle, so a crash never loses or duplicates them; a bundle
//!   not yet registered is registered again at start (idempotent outbox id).

mod bundles;
mod ingest;
mod registry;
mod sales;
mod users;

pub use sales::key_commitment;

use crate::{
    backend::Backend,
    chain::ChainServices,
    chain::{
        contracts::{AppRegistry, DataRegistry, DataTypeRegistry, Exchange, actions},
        outbox::Call,
        state::{OfferRow, OrderRow, OrderStatus},
    },
    crypto::{
        Dek,
        chunks::{ChunkManifest, chunk_size_for},
        identity::IdentityHasher,
        merkle::MerkleTree,
        record::Record,
        stream, wrap,
    },
    keys::{NodeKey, address_of_peer},
    p2p::{self, BundleSource, BundleStatement, transfer::ServedBundle},
    roles::RoleError,
    store::{Durability, cf},
};
use airbloc_proto::p2p::v1 as wire;
use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::{SolCall, SolValue},
};
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};
use tracing::{info, warn};

/// META key of the record storage key (wrapped to the node key): one row, not a table.
const STORAGE_KEY: &[u8] = b"provider_storage_key";
/// Largest export answered over the network (the p2p response limit, less framing).
const MAX_EXPORT: usize = p2p::codec::MAX_RESPONSE - 4096;
/// Records per fsynced write during ingestion.
pub const INGEST_BATCH: usize = 1024;

crate::tables! {
    /// Identity digest → user id, for users signed up through the keeper.
    Identities(cf::PROVIDER_IDENTITIES): B256 => B256;
    /// The keys wrapped for an order (kept so a retry sends the same bytes), by order id.
    Deliveries(cf::PROVIDER_DELIVERIES): B256 => sales::Delivery;
}

/// Why a provider call failed.
pub type ProviderError = crate::roles::RoleError;

/// One record as an app hands it in.
#[derive(Debug, Clone)]
pub struct IncomingRecord {
    pub app: B256,
    pub data_type: B256,
    pub user: B256,
    pub collected_at_ms: u64,
    pub payload_json: String,
}

/// Why one record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Schema,
    NoConsent,
    UnknownDataType,
    NotAuthorized,
}

/// The outcome of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Duplicate,
    Refused(Refusal, String),
}

/// A bundle this node sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvidedBundle {
    pub bundle_id: B256,
    pub app: B256,
    pub data_type: B256,
    pub merkle_root: B256,
    pub record_count: u64,
    pub size: u64,
    pub ciphertext_hash: B256,
    pub chunk_size: u32,
    /// The bundle key, ECIES-wrapped to the node key.
    pub wrapped_dek: Vec<u8>,
    /// BLAKE3 of each chunk of the file, concatenated (the manifest, so a start needs no re-hash).
    #[serde(default)]
    pub chunk_hashes: alloy::primitives::Bytes,
    /// Users of the records, in record order (for consent checks at sale time).
    pub users: Vec<B256>,
    pub file: PathBuf,
    /// Block of the DataRegistry registration, once mined.
    pub registered_block: Option<u64>,
    /// For a derived bundle: the bundle it was made from, without the records of `excluded`.
    #[serde(default)]
    pub parent: Option<B256>,
    #[serde(default)]
    pub excluded: Vec<B256>,
}

/// Terms of a new offer.
#[derive(Debug, Clone)]
pub struct OfferTerms {
    pub bundles: Vec<B256>,
    /// Only this consumer may order; zero for anyone.
    pub consumer: Address,
    /// Payment token; zero for ETH.
    pub token: Address,
    /// Price in the token's smallest unit (wei for ETH).
    pub price_wei: U256,
    pub delivery_window_secs: u64,
    pub dispute_window_secs: u64,
    pub expires_in_secs: u64,
}

/// The provider.
#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    key: NodeKey,
    bundles_dir: PathBuf,
    storage_key: Dek,
    validators: RwLock<HashMap<B256, Arc<jsonschema::Validator>>>,
    served: RwLock<HashMap<B256, ServedBundle>>,
    sealing: tokio::sync::Mutex<()>,
    /// The identity keeper users are signed up through (`provider.keeper`).
    keeper: Option<Address>,
    /// Pending records per (app, data type): how many, and since when.
    pending: std::sync::Mutex<HashMap<(B256, B256), Pending>>,
    /// (consumer, bundle) of every live order on this node's offers: who may fetch what.
    ordered: RwLock<std::collections::HashSet<(Address, B256)>>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    count: u64,
    since: std::time::Instant,
}

/// When pending records are sealed without being asked (`provider.seal_records`,
/// `provider.seal_age_secs`); zero turns a trigger off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    pub max_records: u64,
    pub max_age: std::time::Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("address", &self.inner.key.address()).finish_non_exhaustive()
    }
}

impl Provider {
    /// Opens the provider over the node's store; `datadir` holds the bundle files; `keeper` is the
    /// identity keeper users are signed up through, if any.
    pub fn open(
        backend: Backend,
        key: NodeKey,
        datadir: &Path,
        keeper: Option<Address>,
    ) -> Result<Self, ProviderError> {
        let store = &backend.store;
        let storage_key = match store.get_raw(cf::META, STORAGE_KEY)? {
            Some(wrapped) => wrap::unwrap_dek(key.secret_bytes(), &wrapped).map_err(|e| {
                RoleError::Crypto(format!("cannot unwrap the record storage key with this node key: {e}").into())
            })?,
            None => {
                let dek = Dek::generate();
                let wrapped = wrap::wrap_dek(&key.public_key_uncompressed(), &dek)?;
                store.put_raw(cf::META, STORAGE_KEY, &wrapped, Durability::Sync)?;
                dek
            }
        };
        let bundles_dir = datadir.join("bundles");
        std::fs::create_dir_all(&bundles_dir)?;
        let provider = Self {
            inner: Arc::new(Inner {
                backend,
                key,
                bundles_dir,
                storage_key,
                validators: RwLock::default(),
                served: RwLock::default(),
                sealing: tokio::sync::Mutex::new(()),
                keeper,
                pending: std::sync::Mutex::default(),
                ordered: RwLock::default(),
            }),
        };
        for bundle in provider.bundles()? {
            provider.serve_bundle(&bundle);
        }
        // What was pending before a restart counts from now.
        let mut groups: HashMap<(B256, B256), Pending> = HashMap::new();
        for row in provider.inner.backend.store.scan_prefix(cf::RECORDS, &[]) {
            let (key, _) = row?;
            let group = (B256::from_slice(&key[..32]), B256::from_slice(&key[32..64]));
            groups.entry(group).or_insert(Pending { count: 0, since: std::time::Instant::now() }).count += 1;
        }
        *provider.inner.pending.lock().expect("pending lock") = groups;
        Ok(provider)
    }

    /// The chain services this role was built with.
    pub fn services(&self) -> &ChainServices {
        &self.inner.backend.services
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.inner.key.address()
    }
}
