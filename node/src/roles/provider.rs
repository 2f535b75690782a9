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

use crate::{
    backend::{Backend, ChainServices},
    chain::{
        contracts::{AppRegistry, DataRegistry, DataTypeRegistry, Exchange, actions},
        outbox::Call,
        state::{OfferRow, OrderRow},
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

const STORAGE_KEY: &[u8] = b"provider_storage_key";
/// META key prefix of identity digest → user id, for users signed up through the keeper.
const IDENTITY_PREFIX: &[u8] = b"identity:";
/// Largest export answered over the network (the p2p response limit, less framing).
const MAX_EXPORT: usize = p2p::codec::MAX_RESPONSE - 4096;
/// META key prefix of the keys wrapped for an order (kept so a retry sends the same bytes).
const DELIVERY_PREFIX: &[u8] = b"delivery:";
/// Records per fsynced write during ingestion.
pub const INGEST_BATCH: usize = 1024;

/// Why a provider call failed.
pub type ProviderError = super::RoleError;
use super::internal;

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

/// Keys wrapped for one order, in the offer's bundle order, and whether delivery was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Delivery {
    wrapped: Vec<(B256, Vec<u8>)>,
    submitted: bool,
    /// Per offered bundle, the derived bundle delivered instead (users withdrew consent).
    #[serde(default)]
    derived: Vec<(B256, B256)>,
    /// Per offered bundle, the root of the served records and the signed DeliveryProof over it.
    #[serde(default)]
    evidence: Vec<(B256, B256, Vec<u8>)>,
}

impl Delivery {
    fn delivered(&self, offered: B256) -> Option<B256> {
        self.derived.iter().find(|(o, _)| *o == offered).map(|(_, d)| *d)
    }

    /// The wire message carrying the key (and evidence) for one offered bundle.
    fn message(&self, order: B256, offered: B256, wrapped_key: Vec<u8>) -> wire::KeyDelivery {
        let (served_root, served_root_signature) = self
            .evidence
            .iter()
            .find(|(o, _, _)| *o == offered)
            .map(|(_, root, sig)| (root.to_vec(), sig.clone()))
            .unwrap_or_default();
        wire::KeyDelivery {
            order_id: order.to_vec(),
            bundle_id: offered.to_vec(),
            wrapped_key,
            delivered_bundle_id: self.delivered(offered).map(|d| d.to_vec()).unwrap_or_default(),
            served_root,
            served_root_signature,
        }
    }
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
    keeper: std::sync::OnceLock<Address>,
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
    /// Opens the provider over the node's store; `datadir` holds the bundle files.
    pub fn open(backend: Backend, key: NodeKey, datadir: &Path) -> Result<Self, ProviderError> {
        let store = &backend.store;
        let storage_key = match store.get_raw(cf::META, STORAGE_KEY).map_err(internal)? {
            Some(wrapped) => wrap::unwrap_dek(key.secret_bytes(), &wrapped)
                .map_err(|e| internal(format!("cannot unwrap the record storage key with this node key: {e}")))?,
            None => {
                let dek = Dek::generate();
                let wrapped = wrap::wrap_dek(&key.public_key_uncompressed(), &dek).map_err(internal)?;
                store.put_raw(cf::META, STORAGE_KEY, &wrapped, Durability::Sync).map_err(internal)?;
                dek
            }
        };
        let bundles_dir = datadir.join("bundles");
        std::fs::create_dir_all(&bundles_dir).map_err(internal)?;
        let provider = Self {
            inner: Arc::new(Inner {
                backend,
                key,
                bundles_dir,
                storage_key,
                validators: RwLock::default(),
                served: RwLock::default(),
                sealing: tokio::sync::Mutex::new(()),
                keeper: std::sync::OnceLock::new(),
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
            let (key, _) = row.map_err(internal)?;
            let group = (B256::from_slice(&key[..32]), B256::from_slice(&key[32..64]));
            groups.entry(group).or_insert(Pending { count: 0, since: std::time::Instant::now() }).count += 1;
        }
        *provider.inner.pending.lock().expect("pending lock") = groups;
        Ok(provider)
    }

    fn services(&self) -> Result<&ChainServices, ProviderError> {
        self.inner.backend.services().ok_or_else(|| {
            ProviderError::Unavailable(
                "chain services are not running (set chain.deployment and check chain.rpc_url)".into(),
            )
        })
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.inner.key.address()
    }

    /// Names the identity keeper users are signed up through (`provider.keeper`).
    pub fn set_keeper(&self, keeper: Address) {
        let _ = self.inner.keeper.set(keeper);
    }

    async fn keeper_peer(&self) -> Result<libp2p::PeerId, ProviderError> {
        let keeper = *self.inner.keeper.get().ok_or_else(|| {
            ProviderError::Invalid("no identity keeper configured: set provider.keeper to its node address".into())
        })?;
        let network = self.inner.backend.network().ok_or_else(|| ProviderError::Unavailable("no network".into()))?;
        network
            .connect_node(&self.services()?.state, keeper, std::time::Duration::from_secs(10))
            .await
            .map_err(|e| ProviderError::Unavailable(format!("cannot reach the keeper {keeper}: {e}")))
    }

    fn identity_key(identity: &str) -> Vec<u8> {
        [IDENTITY_PREFIX, IdentityHasher::digest(identity).as_slice()].concat()
    }

    /// Signs a user up through the keeper; returns the account id and whether it existed.
    pub async fn sign_up(&self, identity: &str, app: B256) -> Result<(B256, bool), ProviderError> {
        if IdentityHasher::normalize(identity).is_empty() {
            return Err(ProviderError::Invalid("the identity is empty".into()));
        }
        let peer = self.keeper_peer().await?;
        let network = self.inner.backend.network().ok_or_else(|| ProviderError::Unavailable("no network".into()))?;
        let request =
            wire::SignUpRequest { identity_digest: IdentityHasher::digest(identity).to_vec(), app_id: app.to_vec() };
        let answer = network.request(peer, wire::request::Body::SignUp(request)).await?;
        let Some(wire::response::Body::SignUp(result)) = answer.body else {
            return Err(ProviderError::Unavailable("the keeper gave an unexpected answer".into()));
        };
        let user = B256::try_from(result.user_id.as_slice())
            .map_err(|_| ProviderError::Unavailable("the keeper answered a malformed user id".into()))?;
        let services = self.services()?;
        // Ingest checks the indexed account and consents; wait until this node sees it.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while services.state.user(user).map_err(internal)?.is_none() {
            if tokio::time::Instant::now() > deadline {
                return Err(ProviderError::Unavailable(format!("user {user} is not indexed here yet; retry shortly")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.inner
            .backend
            .store
            .put(cf::META, &Self::identity_key(identity), &user, Durability::Sync)
            .map_err(internal)?;
        Ok((user, result.existing))
    }

    /// The account of an identity signed up through the keeper.
    pub fn user_of_identity(&self, identity: &str) -> Result<Option<B256>, ProviderError> {
        self.inner.backend.store.get(cf::META, &Self::identity_key(identity)).map_err(internal)
    }

    /// Asks the keeper to grant (or withdraw) consents for one of its users; returns the outbox
    /// id of the keeper's transaction once this node has indexed it.
    pub async fn request_consents(
        &self,
        user: B256,
        app: B256,
        items: Vec<wire::ConsentItem>,
    ) -> Result<String, ProviderError> {
        if items.is_empty() {
            return Err(ProviderError::Invalid("no consent changes given".into()));
        }
        let peer = self.keeper_peer().await?;
        let network = self.inner.backend.network().ok_or_else(|| ProviderError::Unavailable("no network".into()))?;
        let request = wire::ConsentRequest { user_id: user.to_vec(), app_id: app.to_vec(), items };
        let answer = network.request(peer, wire::request::Body::Consent(request)).await?;
        let Some(wire::response::Body::Consent(result)) = answer.body else {
            return Err(ProviderError::Unavailable("the keeper gave an unexpected answer".into()));
        };
        self.services()?.indexer.wait_for(result.block).await;
        Ok(result.tx_id)
    }

    /// A keeper (or the user's own node) asks for a user's records: everything this node holds
    /// for the user, pending or sealed, as NDJSON sealed to the given key.
    pub fn records_for(
        &self,
        peer: &libp2p::PeerId,
        request: &wire::RecordsRequest,
    ) -> Result<wire::RecordsResult, ProviderError> {
        let user = B256::try_from(request.user_id.as_slice())
            .map_err(|_| ProviderError::Invalid("user_id must be 32 bytes".into()))?;
        let services = self.services()?;
        let requester = address_of_peer(peer)
            .ok_or_else(|| ProviderError::Forbidden("the requester has no Ethereum identity".into()))?;
        let row = services
            .state
            .user(user)
            .map_err(internal)?
            .ok_or_else(|| ProviderError::NotFound(format!("user {user} is not registered")))?;
        if row.controller != requester && row.owner != requester {
            return Err(ProviderError::Forbidden(format!(
                "only the user's controller or owner gets their records; {requester} is neither"
            )));
        }
        let mut out = Vec::new();
        let mut count = 0u64;
        let mut push = |canonical: &[u8]| -> Result<(), ProviderError> {
            let record = Record::decode(canonical).map_err(internal)?;
            let payload: serde_json::Value = serde_json::from_slice(&record.payload).map_err(internal)?;
            let line = serde_json::json!({
                "user_id": record.user_id,
                "data_type": record.data_type,
                "collected_at_ms": record.collected_at_ms,
                "payload": payload,
            });
            serde_json::to_writer(&mut out, &line).map_err(internal)?;
            out.push(b'\n');
            count += 1;
            if out.len() > MAX_EXPORT {
                return Err(ProviderError::Invalid(format!(
                    "the user's records exceed {MAX_EXPORT} bytes, more than one answer carries"
                )));
            }
            Ok(())
        };
        let store = &self.inner.backend.store;
        for row in store.scan_prefix(cf::RECORDS, &[]) {
            let (_, value) = row.map_err(internal)?;
            if value.len() >= 32 && value[..32] == user[..] {
                push(&stream::open(&self.inner.storage_key, &value[32..]).map_err(internal)?)?;
            }
        }
        for bundle in self.bundles()? {
            if bundle.parent.is_some() || !bundle.users.contains(&user) {
                continue;
            }
            let dek = wrap::unwrap_dek(self.inner.key.secret_bytes(), &bundle.wrapped_dek).map_err(internal)?;
            let mut body = std::io::BufReader::new(std::fs::File::open(&bundle.file).map_err(internal)?);
            while let Some((entry_user, sealed)) = super::body::read_entry(&mut body).map_err(internal)? {
                if entry_user == user {
                    push(&stream::open(&dek, &sealed).map_err(internal)?)?;
                }
            }
        }
        let sealed = wrap::wrap(&request.public_key, &out)
            .map_err(|e| ProviderError::Invalid(format!("cannot seal to that public key: {e}")))?;
        info!(target: "provider", %user, %requester, count, "records exported");
        Ok(wire::RecordsResult { sealed, count })
    }

    /// Submits a call through the outbox and waits until it is mined; returns its block.
    async fn transact(&self, id: String, to: Address, data: Vec<u8>, label: String) -> Result<u64, ProviderError> {
        let call = Call { to, data: data.into(), value: U256::ZERO, label };
        Ok(self.services()?.transact(&id, call).await?)
    }

    /// Registers an app owned by this node.
    pub async fn register_app(&self, name: &str) -> Result<(B256, String), ProviderError> {
        if name.is_empty() || name.len() > 64 {
            return Err(ProviderError::Invalid("app names are 1 to 64 bytes".into()));
        }
        let registry = self.services()?.deployment.address("AppRegistry").map_err(internal)?;
        let id = format!("app:register:{name}");
        let data = AppRegistry::registerCall { name: name.to_owned() }.abi_encode();
        self.transact(id.clone(), registry, data, format!("register app {name}")).await?;
        Ok((keccak256(name.as_bytes()), id))
    }

    /// Registers a data type with its JSON Schema.
    pub async fn register_data_type(
        &self,
        name: &str,
        schema_json: &str,
    ) -> Result<(B256, B256, String), ProviderError> {
        let schema_hash = self.store_schema(schema_json)?;
        let registry = self.services()?.deployment.address("DataTypeRegistry").map_err(internal)?;
        let id = format!("datatype:register:{name}");
        let data = DataTypeRegistry::registerCall { name: name.to_owned(), schemaHash: schema_hash }.abi_encode();
        self.transact(id.clone(), registry, data, format!("register data type {name}")).await?;
        Ok((keccak256(name.as_bytes()), schema_hash, id))
    }

    /// Keeps a schema (after checking it compiles); returns its hash.
    pub fn store_schema(&self, schema_json: &str) -> Result<B256, ProviderError> {
        let schema: serde_json::Value = serde_json::from_str(schema_json)
            .map_err(|e| ProviderError::Invalid(format!("the schema is not JSON: {e}")))?;
        jsonschema::validator_for(&schema)
            .map_err(|e| ProviderError::Invalid(format!("not a valid JSON Schema: {e}")))?;
        super::schemas::Schemas::new(self.inner.backend.clone()).keep(schema_json)
    }

    /// Fetches the schema of a data type registered elsewhere from the network (by its on-chain
    /// hash) and keeps it.
    pub async fn fetch_schema(&self, data_type: B256) -> Result<B256, ProviderError> {
        let (_, schema_json) = super::schemas::Schemas::new(self.inner.backend.clone()).of_data_type(data_type).await?;
        self.add_schema(data_type, &schema_json)
    }

    /// Keeps the schema of a data type registered elsewhere, checked against its on-chain hash.
    pub fn add_schema(&self, data_type: B256, schema_json: &str) -> Result<B256, ProviderError> {
        let row = self.services()?.state.data_type(data_type).map_err(internal)?.ok_or_else(|| {
            ProviderError::NotFound(format!("data type {data_type} is not registered (or not indexed yet)"))
        })?;
        let hash = keccak256(schema_json.as_bytes());
        if hash != row.schema_hash {
            return Err(ProviderError::Invalid(format!(
                "this schema hashes to {hash}, but data type {data_type} has schema hash {} on chain",
                row.schema_hash
            )));
        }
        self.store_schema(schema_json)
    }

    fn validator(&self, data_type: B256) -> Result<Arc<jsonschema::Validator>, (Refusal, String)> {
        if let Some(v) = self.inner.validators.read().expect("validators lock").get(&data_type) {
            return Ok(v.clone());
        }
        let services = self.services().map_err(|e| (Refusal::UnknownDataType, e.to_string()))?;
        let row = services
            .state
            .data_type(data_type)
            .ok()
            .flatten()
            .filter(|row| !row.retired)
            .ok_or_else(|| (Refusal::UnknownDataType, format!("data type {data_type} is not registered")))?;
        let schema =
            self.inner.backend.store.get_raw(cf::SCHEMAS, row.schema_hash.as_slice()).ok().flatten().ok_or_else(
                || {
                    (
                        Refusal::UnknownDataType,
                        format!("this node does not have the schema of data type {data_type}; add it with AddSchema"),
                    )
                },
            )?;
        let schema: serde_json::Value =
            serde_json::from_slice(&schema).map_err(|e| (Refusal::UnknownDataType, e.to_string()))?;
        let validator =
            Arc::new(jsonschema::validator_for(&schema).map_err(|e| (Refusal::UnknownDataType, e.to_string()))?);
        self.inner.validators.write().expect("validators lock").insert(data_type, validator.clone());
        Ok(validator)
    }

    /// Checks one record; on success returns its store key and sealed value.
    fn check(&self, record: &IncomingRecord) -> Result<(Vec<u8>, Vec<u8>), (Refusal, String)> {
        let services = self.services().map_err(|e| (Refusal::Malformed, e.to_string()))?;
        let app = services
            .state
            .app(record.app)
            .ok()
            .flatten()
            .filter(|app| !app.retired)
            .ok_or_else(|| (Refusal::NotAuthorized, format!("app {} is not registered", record.app)))?;
        let me = self.address();
        if app.owner != me && !app.authorized.contains(&me) {
            return Err((Refusal::NotAuthorized, format!("this node ({me}) is not authorized for app {}", record.app)));
        }
        let validator = self.validator(record.data_type)?;
        let payload: serde_json::Value = serde_json::from_str(&record.payload_json)
            .map_err(|e| (Refusal::Malformed, format!("payload is not JSON: {e}")))?;
        if let Some(error) = validator.iter_errors(&payload).next() {
            return Err((Refusal::Schema, format!("{error} at {}", error.instance_path)));
        }
        let consent = services
            .state
            .consent(record.user, record.app, actions::COLLECT, record.data_type)
            .map_err(|e| (Refusal::NoConsent, e.to_string()))?;
        if !consent.history.last().is_some_and(|(_, allowed)| *allowed) {
            return Err((
                Refusal::NoConsent,
                format!("user {} has not allowed collection for this app and data type", record.user),
            ));
        }
        let canonical = Record {
            user_id: record.user,
            data_type: record.data_type,
            collected_at_ms: record.collected_at_ms,
            payload: record.payload_json.as_bytes().to_vec(),
        }
        .encode()
        .map_err(|e| (Refusal::Malformed, e.to_string()))?;
        let mut key = Vec::with_capacity(96);
        key.extend_from_slice(record.app.as_slice());
        key.extend_from_slice(record.data_type.as_slice());
        key.extend_from_slice(keccak256(&canonical).as_slice());
        let mut value = record.user.to_vec();
        value.extend_from_slice(&stream::seal(&self.inner.storage_key, &canonical));
        Ok((key, value))
    }

    /// Ingests a batch: every record gets a verdict; accepted ones are durable when this returns.
    pub fn ingest(&self, records: &[IncomingRecord]) -> Result<Vec<Verdict>, ProviderError> {
        let store = &self.inner.backend.store;
        let mut batch = store.batch();
        let mut verdicts = Vec::with_capacity(records.len());
        // Checking and sealing are CPU work per record: spread them over the cores.
        let checked: Vec<_> = {
            use rayon::prelude::*;
            records.par_iter().map(|record| self.check(record)).collect()
        };
        for checked in checked {
            match checked {
                Ok((key, value)) => {
                    if store.get_raw(cf::RECORDS, &key).map_err(internal)?.is_some() {
                        verdicts.push(Verdict::Duplicate);
                    } else {
                        batch.put_raw(cf::RECORDS, &key, &value);
                        verdicts.push(Verdict::Accepted);
                    }
                }
                Err((refusal, message)) => verdicts.push(Verdict::Refused(refusal, message)),
            }
        }
        if !batch.is_empty() {
            store.write(batch, Durability::Sync).map_err(internal)?;
            let mut pending = self.inner.pending.lock().expect("pending lock");
            for (record, verdict) in records.iter().zip(&verdicts) {
                if *verdict == Verdict::Accepted {
                    let now = std::time::Instant::now();
                    pending.entry((record.app, record.data_type)).or_insert(Pending { count: 0, since: now }).count +=
                        1;
                }
            }
        }
        Ok(verdicts)
    }

    /// Records waiting for a bundle, for an app and data type.
    pub fn pending(&self, app: B256, data_type: B256) -> Result<u64, ProviderError> {
        let prefix = [app.as_slice(), data_type.as_slice()].concat();
        Ok(self.inner.backend.store.scan_prefix(cf::RECORDS, &prefix).count() as u64)
    }

    /// Seals the pending records of `app` / `data_type` into a registered, announced bundle.
    pub async fn seal(&self, app: B256, data_type: B256) -> Result<ProvidedBundle, ProviderError> {
        let _sealing = self.inner.sealing.lock().await;
        let this = self.clone();
        let bundle =
            tokio::task::spawn_blocking(move || this.write_bundle(app, data_type)).await.map_err(internal)??;
        // Records that arrived while sealing stay pending.
        let left = self.pending(app, data_type)?;
        self.set_pending(app, data_type, left);
        self.register(bundle).await
    }

    fn set_pending(&self, app: B256, data_type: B256, count: u64) {
        let mut pending = self.inner.pending.lock().expect("pending lock");
        match count {
            0 => pending.remove(&(app, data_type)),
            count => pending.insert((app, data_type), Pending { count, since: std::time::Instant::now() }),
        };
    }

    /// Seals pending records on its own when a group reaches the policy's record count or age.
    pub async fn run_sealing(self, policy: SealPolicy, cancel: tokio_util::sync::CancellationToken) {
        if policy.max_records == 0 && policy.max_age.is_zero() {
            return;
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
            if self.inner.backend.services().is_none() {
                continue;
            }
            let due: Vec<(B256, B256)> = self
                .inner
                .pending
                .lock()
                .expect("pending lock")
                .iter()
                .filter(|(_, p)| {
                    (policy.max_records > 0 && p.count >= policy.max_records)
                        || (!policy.max_age.is_zero() && p.since.elapsed() >= policy.max_age)
                })
                .map(|(group, _)| *group)
                .collect();
            for (app, data_type) in due {
                match self.seal(app, data_type).await {
                    Ok(bundle) => {
                        info!(target: "provider", bundle = %bundle.bundle_id, records = bundle.record_count, "sealed by policy")
                    }
                    Err(e) => {
                        warn!(target: "provider", %app, %data_type, error = %e, "sealing by policy failed; retrying");
                        // Do not retry at once: count the group from now.
                        let left = self.pending(app, data_type).unwrap_or_default();
                        self.set_pending(app, data_type, left);
                    }
                }
            }
        }
    }

    fn write_bundle(&self, app: B256, data_type: B256) -> Result<ProvidedBundle, ProviderError> {
        let store = &self.inner.backend.store;
        let prefix = [app.as_slice(), data_type.as_slice()].concat();
        let mut keys = Vec::new();
        let records = store.scan_prefix(cf::RECORDS, &prefix).map(|row| {
            let (key, value) = row.map_err(internal)?;
            let user = B256::from_slice(&value[..32]);
            let canonical = stream::open(&self.inner.storage_key, &value[32..])
                .map_err(|e| internal(format!("a stored record does not open with the storage key: {e}")))?;
            keys.push(key);
            Ok((user, canonical.to_vec()))
        });
        let bundle = self
            .write_body(app, data_type, records)?
            .ok_or_else(|| ProviderError::NotFound("no pending records for this app and data type".into()))?;
        // One atomic write: the bundle exists and its records are no longer pending.
        let mut batch = store.batch();
        batch.put(cf::PROVIDED, bundle.bundle_id.as_slice(), &bundle);
        for key in &keys {
            batch.delete(cf::RECORDS, key);
        }
        store.write(batch, Durability::Sync).map_err(internal)?;
        info!(target: "provider", bundle_id = %bundle.bundle_id, records = bundle.record_count, size = bundle.size, "bundle sealed");
        Ok(bundle)
    }

    /// Writes a bundle body from (user, canonical record) pairs under a fresh key; `None` when
    /// there are no records. The bundle is not yet recorded in the store.
    fn write_body(
        &self,
        app: B256,
        data_type: B256,
        records: impl Iterator<Item = Result<(B256, Vec<u8>), ProviderError>>,
    ) -> Result<Option<ProvidedBundle>, ProviderError> {
        let dek = Dek::generate();
        let tmp = self
            .inner
            .bundles_dir
            .join(format!("sealing-{}.tmp", alloy::primitives::hex::encode(rand::random::<[u8; 8]>())));
        let mut body = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(internal)?);
        let (mut users, mut leaves) = (Vec::new(), Vec::new());
        let mut size = 0u64;
        let written = (|| {
            for record in records {
                let (user, canonical) = record?;
                let sealed = stream::seal(&dek, &canonical);
                size += super::body::write_entry(&mut body, user, &sealed).map_err(internal)?;
                leaves.push(super::body::leaf(user, leaves.len() as u64, &sealed));
                users.push(user);
            }
            Ok::<_, ProviderError>(())
        })();
        if written.is_err() || leaves.is_empty() {
            drop(body);
            let _ = std::fs::remove_file(&tmp);
            return written.map(|()| None);
        }
        let file = body.into_inner().map_err(|e| internal(e.error()))?;
        file.sync_all().map_err(internal)?;
        drop(file);
        let merkle_root = MerkleTree::new(&leaves).map_err(internal)?.root();
        let manifest = ChunkManifest::compute(std::fs::File::open(&tmp).map_err(internal)?, chunk_size_for(size))
            .map_err(internal)?;
        let ciphertext_hash = manifest.commitment();
        let record_count = leaves.len() as u64;
        let bundle_id =
            keccak256((self.address(), app, data_type, merkle_root, record_count, ciphertext_hash, size).abi_encode());
        let path = self.inner.bundles_dir.join(format!("{bundle_id}.bin"));
        std::fs::rename(&tmp, &path).map_err(internal)?;
        Ok(Some(ProvidedBundle {
            bundle_id,
            app,
            data_type,
            merkle_root,
            record_count,
            size,
            ciphertext_hash,
            chunk_size: manifest.chunk_size,
            chunk_hashes: manifest.concatenated().into(),
            wrapped_dek: wrap::wrap_dek(&self.inner.key.public_key_uncompressed(), &dek).map_err(internal)?,
            users,
            file: path,
            registered_block: None,
            parent: None,
            excluded: Vec::new(),
        }))
    }

    /// The bundle `parent` without the records of `excluded` users: new key, new root, its own
    /// registration. Made once per parent and excluded set, then reused.
    async fn derive(&self, parent: &ProvidedBundle, excluded: Vec<B256>) -> Result<ProvidedBundle, ProviderError> {
        let _sealing = self.inner.sealing.lock().await;
        let existing =
            self.bundles()?.into_iter().find(|b| b.parent == Some(parent.bundle_id) && b.excluded == excluded);
        let bundle = match existing {
            Some(bundle) if bundle.registered_block.is_some() => return Ok(bundle),
            Some(bundle) => bundle,
            None => {
                let this = self.clone();
                let parent = parent.clone();
                tokio::task::spawn_blocking(move || {
                    let dek =
                        wrap::unwrap_dek(this.inner.key.secret_bytes(), &parent.wrapped_dek).map_err(internal)?;
                    let mut input = std::io::BufReader::new(std::fs::File::open(&parent.file).map_err(internal)?);
                    let records = std::iter::from_fn(|| match super::body::read_entry(&mut input) {
                        Ok(Some(entry)) => Some(Ok(entry)),
                        Ok(None) => None,
                        Err(e) => Some(Err(internal(e))),
                    })
                    .filter(|entry| !matches!(entry, Ok((user, _)) if excluded.contains(user)))
                    .map(|entry| {
                        let (user, sealed) = entry?;
                        Ok((user, stream::open(&dek, &sealed).map_err(internal)?.to_vec()))
                    });
                    let mut bundle = this.write_body(parent.app, parent.data_type, records)?.ok_or_else(|| {
                        ProviderError::Invalid(format!(
                            "every user of bundle {} withdrew exchange consent; nothing can be delivered",
                            parent.bundle_id
                        ))
                    })?;
                    bundle.parent = Some(parent.bundle_id);
                    bundle.excluded = excluded;
                    this.inner
                        .backend
                        .store
                        .put(cf::PROVIDED, bundle.bundle_id.as_slice(), &bundle, Durability::Sync)
                        .map_err(internal)?;
                    info!(target: "provider", parent = %parent.bundle_id, bundle = %bundle.bundle_id, records = bundle.record_count, "derived bundle sealed");
                    Ok::<_, ProviderError>(bundle)
                })
                .await
                .map_err(internal)??
            }
        };
        self.register(bundle).await
    }

    /// Registers a sealed bundle on DataRegistry (idempotent), then serves and announces it.
    async fn register(&self, mut bundle: ProvidedBundle) -> Result<ProvidedBundle, ProviderError> {
        let registry = self.services()?.deployment.address("DataRegistry").map_err(internal)?;
        let data = DataRegistry::registerBundleCall {
            appId: bundle.app,
            dataTypeId: bundle.data_type,
            merkleRoot: bundle.merkle_root,
            recordCount: bundle.record_count,
            ciphertextHash: bundle.ciphertext_hash,
            size: bundle.size,
            locator: String::new(),
        }
        .abi_encode();
        let id = format!("bundle:register:{}", bundle.bundle_id);
        let block = self.transact(id, registry, data, format!("register bundle {}", bundle.bundle_id)).await?;
        bundle.registered_block = Some(block);
        self.inner
            .backend
            .store
            .put(cf::PROVIDED, bundle.bundle_id.as_slice(), &bundle, Durability::Sync)
            .map_err(internal)?;
        self.serve_bundle(&bundle);
        if bundle.parent.is_none() {
            self.announce(&bundle).await;
        }
        Ok(bundle)
    }

    /// Registers bundles sealed before a crash and announces every registered one.
    pub async fn resume(&self) {
        while self.inner.backend.services().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let Ok(bundles) = self.bundles() else { return };
        for bundle in bundles {
            match bundle.registered_block {
                Some(_) if bundle.parent.is_some() => {}
                Some(_) => self.announce(&bundle).await,
                None => {
                    if let Err(e) = self.register(bundle).await {
                        warn!(target: "provider", error = %e, "cannot register a sealed bundle");
                    }
                }
            }
        }
    }

    async fn announce(&self, bundle: &ProvidedBundle) {
        let (Some(network), Some(block), Some(services)) =
            (self.inner.backend.network(), bundle.registered_block, self.inner.backend.services())
        else {
            return;
        };
        let statement = BundleStatement {
            bundle_id: bundle.bundle_id,
            app_id: bundle.app,
            data_type_id: bundle.data_type,
            record_count: bundle.record_count,
            size: bundle.size,
            price_hint: U256::ZERO,
            price_token: Address::ZERO,
            registered_block: block,
        };
        let announcement =
            p2p::gossip::sign_bundle_announcement(&self.inner.key, services.deployment.chain_id, &statement);
        network.provide(bundle.bundle_id).await;
        if let Err(e) = network.announce(&announcement).await {
            // No subscribed peer yet; the DHT record still says who holds it.
            info!(target: "provider", bundle = %bundle.bundle_id, error = %e, "announcement not published");
        }
    }

    fn serve_bundle(&self, bundle: &ProvidedBundle) {
        if bundle.registered_block.is_none() {
            return;
        }
        let Ok(file) = std::fs::File::open(&bundle.file) else {
            warn!(target: "provider", path = %bundle.file.display(), "a provided bundle's file is missing");
            return;
        };
        let size_matches = file.metadata().is_ok_and(|m| m.len() == bundle.size);
        let manifest = match bundle.chunk_hashes.is_empty() {
            // Kept at sealing; the file's size is checked here, every chunk by each downloader.
            false if size_matches => {
                ChunkManifest::from_concatenated(bundle.chunk_size, bundle.size, &bundle.chunk_hashes)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
            _ => ChunkManifest::compute(file, bundle.chunk_size),
        };
        match manifest {
            Ok(manifest) if manifest.commitment() == bundle.ciphertext_hash => {
                let served = ServedBundle { path: bundle.file.clone(), manifest: Arc::new(manifest) };
                self.inner.served.write().expect("served lock").insert(bundle.bundle_id, served);
            }
            _ => {
                warn!(target: "provider", bundle = %bundle.bundle_id, "a provided bundle's file does not match its registration")
            }
        }
    }

    /// Bundles this node sealed.
    pub fn bundles(&self) -> Result<Vec<ProvidedBundle>, ProviderError> {
        self.inner
            .backend
            .store
            .scan_prefix(cf::PROVIDED, &[])
            .map(|row| {
                let (key, value) = row.map_err(internal)?;
                crate::store::decode(cf::PROVIDED, &key, &value).map_err(internal)
            })
            .collect()
    }

    /// Whether `consumer` holds an order that covers `bundle` (kept by the delivery loop).
    fn has_ordered(&self, consumer: Address, bundle: B256) -> bool {
        self.inner.ordered.read().expect("ordered lock").contains(&(consumer, bundle))
    }
}

impl Provider {
    /// Offers bundles on the Exchange; returns the offer id once mined and indexed.
    pub async fn create_offer(&self, terms: &OfferTerms) -> Result<(B256, String), ProviderError> {
        if terms.bundles.is_empty() {
            return Err(ProviderError::Invalid("an offer needs at least one bundle".into()));
        }
        if terms.delivery_window_secs == 0 || terms.dispute_window_secs == 0 || terms.expires_in_secs == 0 {
            return Err(ProviderError::Invalid("delivery window, dispute window and expiry must be positive".into()));
        }
        let services = self.services()?;
        for bundle in &terms.bundles {
            let provided = self.provided(*bundle)?;
            if provided.registered_block.is_none() {
                return Err(ProviderError::Invalid(format!("bundle {bundle} is not registered yet")));
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let expires_at = now + terms.expires_in_secs;
        let call_terms = Exchange::OfferTerms {
            bundleIds: terms.bundles.clone(),
            consumer: terms.consumer,
            token: terms.token,
            price: terms.price_wei,
            deliveryWindow: terms.delivery_window_secs,
            disputeWindow: terms.dispute_window_secs,
            expiresAt: expires_at,
        };
        let data = Exchange::createOfferCall { terms: call_terms.clone() }.abi_encode();
        let id = format!("offer:create:{}", keccak256(&data));
        let exchange = services.deployment.address("Exchange").map_err(internal)?;
        self.transact(id.clone(), exchange, data, format!("offer {} bundle(s)", terms.bundles.len())).await?;
        let me = self.address();
        let offer = services
            .state
            .offers()
            .map_err(internal)?
            .into_iter()
            .find(|(_, o)| {
                o.provider == me
                    && o.bundle_ids == terms.bundles
                    && o.expires_at == expires_at
                    && o.price == terms.price_wei
                    && o.token == terms.token
            })
            .map(|(id, _)| id)
            .ok_or_else(|| internal("the offer was mined but is not in the index"))?;
        Ok((offer, id))
    }

    fn provided(&self, bundle: B256) -> Result<ProvidedBundle, ProviderError> {
        self.inner
            .backend
            .store
            .get(cf::PROVIDED, bundle.as_slice())
            .map_err(internal)?
            .ok_or_else(|| ProviderError::NotFound(format!("this node did not seal bundle {bundle}")))
    }

    /// Serves orders on this node's offers until cancelled: checks exchange consent, wraps each
    /// bundle key to the consumer, delivers it over the network and records the delivery.
    pub async fn run_deliveries(self, cancel: tokio_util::sync::CancellationToken) {
        loop {
            if let Some(services) = self.inner.backend.services()
                && let Ok(orders) = services.state.orders()
            {
                let mut live = std::collections::HashSet::new();
                for (order_id, order) in orders {
                    if order.status == "refunded" || order.status == "disputed" {
                        continue;
                    }
                    let Ok(Some(offer)) = services.state.offer(order.offer) else { continue };
                    if offer.provider != self.address() {
                        continue;
                    }
                    // Allowed to fetch before its key arrives, so a download can start at once.
                    let pairs: Vec<_> = offer.bundle_ids.iter().map(|b| (order.consumer, *b)).collect();
                    self.inner.ordered.write().expect("ordered lock").extend(pairs.iter().copied());
                    live.extend(pairs);
                    if order.status != "placed" {
                        continue;
                    }
                    if let Err(e) = self.deliver(order_id, &order, &offer).await {
                        warn!(target: "provider", order = %order_id, error = %e, "delivery not done yet; retrying");
                    }
                }
                *self.inner.ordered.write().expect("ordered lock") = live;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
        }
    }

    /// The root of the records in `bundle`'s file as served now, and a DeliveryProof signature
    /// over it (leaf = root, empty proof): the node answers for what it serves.
    async fn served_root_statement(
        &self,
        order: B256,
        bundle: &ProvidedBundle,
    ) -> Result<(B256, Vec<u8>), ProviderError> {
        let services = self.services()?;
        let exchange = services.deployment.address("Exchange").map_err(internal)?;
        let domain = crate::crypto::eip712::exchange_domain(services.deployment.chain_id, exchange);
        let file = bundle.file.clone();
        let root = tokio::task::spawn_blocking(move || {
            let mut input = std::io::BufReader::new(std::fs::File::open(&file).map_err(internal)?);
            let mut leaves = Vec::new();
            while let Some((user, sealed)) = super::body::read_entry(&mut input).map_err(internal)? {
                leaves.push(super::body::leaf(user, leaves.len() as u64, &sealed));
            }
            Ok::<_, ProviderError>(MerkleTree::new(&leaves).map_err(internal)?.root())
        })
        .await
        .map_err(internal)??;
        let statement = crate::crypto::eip712::DeliveryProof {
            order,
            bundle: bundle.bundle_id,
            leaf: root,
            proofHash: crate::crypto::eip712::proof_hash(&[]),
        };
        use alloy::{signers::SignerSync, sol_types::SolStruct};
        let signature =
            self.inner.key.signer().sign_hash_sync(&statement.eip712_signing_hash(&domain)).map_err(internal)?;
        Ok((root, signature.as_bytes().to_vec()))
    }

    fn delivery_key(order: B256) -> Vec<u8> {
        [DELIVERY_PREFIX, order.as_slice()].concat()
    }

    async fn deliver(&self, order_id: B256, order: &OrderRow, offer: &OfferRow) -> Result<(), ProviderError> {
        let store = &self.inner.backend.store;
        let services = self.services()?;
        let mut delivery: Delivery = match store.get(cf::META, &Self::delivery_key(order_id)).map_err(internal)? {
            Some(d) => d,
            None => {
                let block = services.indexer.progress().indexed;
                let (mut wrapped, mut derived, mut evidence) = (Vec::new(), Vec::new(), Vec::new());
                for bundle_id in &offer.bundle_ids {
                    let bundle = self.provided(*bundle_id)?;
                    let mut withdrawn: Vec<B256> = bundle
                        .users
                        .iter()
                        .filter(|user| {
                            !services
                                .state
                                .consent(**user, bundle.app, actions::EXCHANGE, bundle.data_type)
                                .is_ok_and(|c| c.allowed_at(block))
                        })
                        .copied()
                        .collect();
                    let bundle = if withdrawn.is_empty() {
                        bundle
                    } else {
                        // Never their data: deliver the bundle without their records.
                        withdrawn.sort();
                        withdrawn.dedup();
                        info!(target: "provider", order = %order_id, bundle = %bundle_id, users = withdrawn.len(), "users withdrew exchange consent; delivering a derived bundle");
                        let sub = self.derive(&bundle, withdrawn).await?;
                        derived.push((*bundle_id, sub.bundle_id));
                        sub
                    };
                    let dek = wrap::unwrap_dek(self.inner.key.secret_bytes(), &bundle.wrapped_dek).map_err(internal)?;
                    let for_consumer = wrap::wrap_dek(&order.consumer_public_key, &dek)
                        .map_err(|e| ProviderError::Invalid(format!("the order's consumer key is unusable: {e}")))?;
                    wrapped.push((*bundle_id, for_consumer));
                    let (root, signature) = self.served_root_statement(order_id, &bundle).await?;
                    evidence.push((*bundle_id, root, signature));
                }
                let delivery = Delivery { wrapped, submitted: false, derived, evidence };
                store.put(cf::META, &Self::delivery_key(order_id), &delivery, Durability::Sync).map_err(internal)?;
                delivery
            }
        };
        if delivery.submitted {
            return Ok(());
        }
        let network = self.inner.backend.network().ok_or_else(|| ProviderError::Unavailable("no network".into()))?;
        let peer = network
            .connect_node(&services.state, order.consumer, std::time::Duration::from_secs(10))
            .await
            .map_err(ProviderError::Unavailable)?;
        for (bundle_id, wrapped_key) in &delivery.wrapped {
            let body = wire::request::Body::KeyDelivery(delivery.message(order_id, *bundle_id, wrapped_key.clone()));
            network.request(peer, body).await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        }
        let commitment = key_commitment(&delivery.wrapped);
        let data = Exchange::deliverCall {
            orderId: order_id,
            keyCommitment: commitment,
            consumerKeyHash: keccak256(&order.consumer_public_key),
        }
        .abi_encode();
        let exchange = services.deployment.address("Exchange").map_err(internal)?;
        let call =
            Call { to: exchange, data: data.into(), value: U256::ZERO, label: format!("deliver order {order_id}") };
        services.outbox.submit(&format!("order:deliver:{order_id}"), call).map_err(internal)?;
        delivery.submitted = true;
        store.put(cf::META, &Self::delivery_key(order_id), &delivery, Durability::Sync).map_err(internal)?;
        info!(target: "provider", order = %order_id, consumer = %order.consumer, "key delivered");
        Ok(())
    }

    /// Answers a consumer asking again for the key of its order.
    pub fn key_for(&self, peer: &libp2p::PeerId, request: &wire::KeyRequest) -> Result<wire::KeyDelivery, wire::Error> {
        let bad = |m: &str| p2p::transfer::wire_error(wire::ErrorCode::BadRequest, m);
        let order_id = B256::try_from(request.order_id.as_slice()).map_err(|_| bad("order_id must be 32 bytes"))?;
        let bundle_id = B256::try_from(request.bundle_id.as_slice()).map_err(|_| bad("bundle_id must be 32 bytes"))?;
        let forbidden = || {
            p2p::transfer::wire_error(
                wire::ErrorCode::Forbidden,
                "only the consumer of an order gets its key — place an order first",
            )
        };
        let services = self.inner.backend.services().ok_or_else(forbidden)?;
        let order = services.state.order(order_id).ok().flatten().ok_or_else(forbidden)?;
        if address_of_peer(peer) != Some(order.consumer) {
            return Err(forbidden());
        }
        let delivery: Delivery =
            self.inner.backend.store.get(cf::META, &Self::delivery_key(order_id)).ok().flatten().ok_or_else(|| {
                p2p::transfer::wire_error(wire::ErrorCode::Unavailable, "the key is not delivered yet; retry shortly")
            })?;
        let wrapped = delivery.wrapped.iter().find(|(b, _)| *b == bundle_id).ok_or_else(|| {
            p2p::transfer::wire_error(wire::ErrorCode::NotFound, "the order does not cover this bundle")
        })?;
        Ok(delivery.message(order_id, bundle_id, wrapped.1.clone()))
    }
}

/// The on-chain commitment to the keys delivered for an order: keccak-256 over the wrapped keys
/// in the offer's bundle order.
pub fn key_commitment(wrapped: &[(B256, Vec<u8>)]) -> B256 {
    keccak256(wrapped.iter().flat_map(|(_, w)| w.iter().copied()).collect::<Vec<u8>>())
}

impl BundleSource for Provider {
    /// Bundle ciphertext goes only to consumers that ordered it.
    fn serve(&self, peer: &libp2p::PeerId, bundle: B256) -> Result<ServedBundle, wire::Error> {
        let served = self.inner.served.read().expect("served lock").get(&bundle).cloned().ok_or_else(|| {
            p2p::transfer::wire_error(wire::ErrorCode::NotFound, format!("this node does not provide bundle {bundle}"))
        })?;
        let offered = self.provided(bundle).ok().and_then(|b| b.parent).unwrap_or(bundle);
        let ordered = address_of_peer(peer).is_some_and(|consumer| self.has_ordered(consumer, offered));
        if !ordered {
            return Err(p2p::transfer::wire_error(
                wire::ErrorCode::Forbidden,
                format!("bundle {bundle} is served only to consumers with an order for it — place an order first"),
            ));
        }
        Ok(served)
    }
}
