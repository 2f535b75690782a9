//! The event indexer: follows the airbloc contracts' logs and keeps the derived chain state
//! ([`super::state`]) in the store.
//!
//! - Starts at the deployment block, reads logs in bounded pages (halved on provider errors,
//!   regrown on success), and stays `lag` blocks behind the head.
//! - Each page — its derived rows, the undo entries that restore their previous values, the
//!   hashes of the blocks that carried events, and the cursor (number and hash) — is written in
//!   one atomic batch, so a crash never leaves half a page.
//! - Before each page the cursor block's hash is compared with the chain's. On a mismatch (a
//!   reorg) the indexer walks back through the stored block hashes to the last block still on
//!   the canonical chain, restores every row changed after it from the undo log, and re-indexes
//!   from there.
//! - [`IndexerHandle::wait_for`] lets callers await "indexed up to block B".

use super::{
    Deployment,
    contracts::{
        AppRegistry, Consents, ControllerRegistry, DataRegistry, DataTypeRegistry, Exchange, NodeRegistry, Users,
    },
    state::{
        AppRow, BundleRow, ChainState, ConsentRow, DataTypeRow, NodeRow, OfferRow, OfferStatus, OrderRow, OrderStatus,
        UserRow, consent_key,
    },
};
use crate::store::{Durability, Store, StoreError, cf};
use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256},
    providers::{DynProvider, Provider},
    rpc::types::{Filter, Log},
    sol_types::SolEventInterface,
    transports::TransportError,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const CURSOR_KEY: &[u8] = b"indexer_cursor";
/// Undo entries older than this many blocks behind the cursor are pruned.
const UNDO_WINDOW: u64 = 256;

/// Indexer settings.
#[derive(Debug, Clone)]
pub struct IndexerConfig {
    /// Blocks to stay behind the head (0 follows the head, fine on anvil).
    pub lag: u64,
    /// Most blocks per `eth_getLogs` page.
    pub page_size: u64,
    /// Pause between polls when caught up.
    pub poll_interval: Duration,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        Self { lag: 0, page_size: 2000, poll_interval: Duration::from_millis(500) }
    }
}

/// Indexer failures.
#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chain endpoint: {0}")]
    Transport(#[from] TransportError),
    #[error("the chain has no block {0}")]
    MissingBlock(u64),
    #[error("the deployment names no {0}")]
    Deployment(#[from] super::deployment::DeploymentError),
}

/// Where the indexer is: the last fully indexed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub number: u64,
    /// `None` before the first page (the block before the deployment).
    pub hash: Option<B256>,
}

#[derive(Serialize, Deserialize)]
struct UndoEntry {
    table: String,
    key: Vec<u8>,
    previous: Option<Vec<u8>>,
}

/// Progress figures, for Status and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexerProgress {
    pub indexed: u64,
    pub head: u64,
    pub events: u64,
    pub reorgs: u64,
    /// Seconds spent waiting on the RPC endpoint vs applying events (cumulative).
    pub rpc_seconds: f64,
    pub apply_seconds: f64,
}

/// Lets other parts of the node await indexing progress (a watch channel the indexer publishes
/// to after every page; see [`super::state::ChainState::indexer`]).
#[derive(Debug, Clone)]
pub struct IndexerHandle {
    progress: watch::Receiver<IndexerProgress>,
    /// Fires when the indexer task has ended (node shutdown): nothing changes any more.
    stopped: CancellationToken,
}

/// The condition of [`IndexerHandle::wait_until`] did not hold in time.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the indexer did not reach the awaited state within {0:?} (indexed up to block {1})")]
pub struct WaitTimeout(pub Duration, pub u64);

impl IndexerHandle {
    pub(crate) fn new(progress: watch::Receiver<IndexerProgress>, stopped: CancellationToken) -> Self {
        Self { progress, stopped }
    }

    pub fn progress(&self) -> IndexerProgress {
        *self.progress.borrow()
    }

    /// Resolves once every block up to `block` is indexed, or once the indexer has stopped.
    pub async fn wait_for(&self, block: u64) {
        let mut rx = self.progress.clone();
        tokio::select! {
            _ = rx.wait_for(|p| p.indexed >= block) => {}
            _ = self.stopped.cancelled() => {}
        }
    }

    /// Resolves once `predicate` holds after a page (checked now and after every page), or fails
    /// after `timeout`. The predicate may read the store: the page is written before progress is
    /// published.
    pub async fn wait_until(
        &self,
        mut predicate: impl FnMut(&IndexerProgress) -> bool,
        timeout: Duration,
    ) -> Result<IndexerProgress, WaitTimeout> {
        let mut rx = self.progress.clone();
        let waited = tokio::select! {
            waited = tokio::time::timeout(timeout, rx.wait_for(|p| predicate(p))) => waited,
            // The indexer is gone (shutdown): nothing will change any more.
            _ = self.stopped.cancelled() => return Err(WaitTimeout(timeout, self.progress().indexed)),
        };
        match waited {
            Ok(Ok(progress)) => Ok(*progress),
            Ok(Err(_)) | Err(_) => Err(WaitTimeout(timeout, self.progress().indexed)),
        }
    }

    /// The progress as a watch channel, for parts that follow it.
    pub fn subscribe(&self) -> watch::Receiver<IndexerProgress> {
        self.progress.clone()
    }
}

/// The indexer task.
pub struct Indexer {
    handle: IndexerHandle,
    store: Arc<Store>,
    provider: DynProvider,
    config: IndexerConfig,
    addresses: Contracts,
    first_block: u64,
    page_size: u64,
    progress: Arc<watch::Sender<IndexerProgress>>,
    stopped: CancellationToken,
}

#[derive(Debug, Clone, Copy)]
struct Contracts {
    nodes: Address,
    controllers: Address,
    users: Address,
    apps: Address,
    data_types: Address,
    consents: Address,
    data: Address,
    exchange: Address,
}

impl Indexer {
    /// An indexer over a fresh view of `store`.
    pub fn new(
        store: Arc<Store>,
        provider: DynProvider,
        deployment: &Deployment,
        config: IndexerConfig,
    ) -> Result<(Self, IndexerHandle), IndexerError> {
        Self::over(&ChainState::new(store), provider, deployment, config)
    }

    /// An indexer that keeps `state` and publishes its progress there (so everyone holding the
    /// view, built before the chain connection, sees it).
    pub fn over(
        state: &ChainState,
        provider: DynProvider,
        deployment: &Deployment,
        config: IndexerConfig,
    ) -> Result<(Self, IndexerHandle), IndexerError> {
        let store = state.store().clone();
        let addresses = Contracts {
            nodes: deployment.address("NodeRegistry")?,
            controllers: deployment.address("ControllerRegistry")?,
            users: deployment.address("Users")?,
            apps: deployment.address("AppRegistry")?,
            data_types: deployment.address("DataTypeRegistry")?,
            consents: deployment.address("Consents")?,
            data: deployment.address("DataRegistry")?,
            exchange: deployment.address("Exchange")?,
        };
        let first_block = deployment.first_block();
        let cursor = load_cursor(&store)?.map_or(first_block.saturating_sub(1), |c| c.number);
        let progress = state.progress_sender();
        progress.send_modify(|p| p.indexed = cursor);
        let page_size = config.page_size.max(1);
        let handle = state.indexer();
        let stopped = state.indexer_stopped();
        Ok((
            Self {
                handle: handle.clone(),
                store,
                provider,
                config,
                addresses,
                first_block,
                page_size,
                progress,
                stopped,
            },
            handle,
        ))
    }

    /// A handle observing this indexer.
    pub fn handle(&self) -> IndexerHandle {
        self.handle.clone()
    }

    fn cursor(&self) -> Result<Cursor, IndexerError> {
        Ok(load_cursor(&self.store)?.unwrap_or(Cursor { number: self.first_block.saturating_sub(1), hash: None }))
    }

    /// Runs until cancelled; RPC failures back off and retry.
    pub async fn run(self, cancel: CancellationToken) {
        let stopped = self.stopped.clone();
        self.follow(cancel).await;
        stopped.cancel();
    }

    async fn follow(mut self, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let wait = match self.step().await {
                Ok(true) => {
                    backoff = Duration::from_millis(500);
                    Duration::ZERO
                }
                Ok(false) => {
                    backoff = Duration::from_millis(500);
                    self.config.poll_interval
                }
                Err(e) => {
                    warn!(target: "chain::indexer", error = %e, "indexing paused; retrying with backoff");
                    if matches!(e, IndexerError::Transport(_)) && self.page_size > 1 {
                        self.page_size = (self.page_size / 2).max(1);
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    wait
                }
            };
            // Time is the point: the chain has no push for new blocks over HTTP, so a caught-up
            // indexer looks again after the poll interval; failures back off.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn block_hash(&self, number: u64) -> Result<B256, IndexerError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await?
            .ok_or(IndexerError::MissingBlock(number))?;
        Ok(block.header.hash)
    }

    /// Indexes one page. Returns whether there may be more to do right away.
    pub async fn step(&mut self) -> Result<bool, IndexerError> {
        let rpc_started = std::time::Instant::now();
        let head = self.provider.get_block_number().await?;
        let cursor = self.cursor()?;
        if let Some(hash) = cursor.hash {
            if self.block_hash(cursor.number).await? != hash {
                self.rollback_reorg(cursor).await?;
                return Ok(true);
            }
        }
        let target = head.saturating_sub(self.config.lag);
        if cursor.number >= target {
            self.progress.send_modify(|p| p.head = head);
            return Ok(false);
        }
        let from = cursor.number + 1;
        let to = target.min(from + self.page_size - 1);
        let before = self.block_hash(to).await?;
        let filter = Filter::new().address(self.addresses.all().to_vec()).from_block(from).to_block(to);
        let logs = match self.provider.get_logs(&filter).await {
            Ok(logs) => logs,
            Err(e) => {
                self.page_size = (self.page_size / 2).max(1);
                debug!(target: "chain::indexer", page = self.page_size, error = %e, "getLogs failed; smaller pages");
                return Err(e.into());
            }
        };
        if self.block_hash(to).await? != before {
            // A reorg happened while the page was read; read it again.
            return Ok(true);
        }
        let rpc_seconds = rpc_started.elapsed().as_secs_f64();
        let apply_started = std::time::Instant::now();
        let events = logs.len() as u64;
        self.apply_page(&logs, Cursor { number: to, hash: Some(before) })?;
        let apply_seconds = apply_started.elapsed().as_secs_f64();
        if self.page_size < self.config.page_size {
            self.page_size = (self.page_size * 2).min(self.config.page_size);
        }
        self.progress.send_modify(|p| {
            p.indexed = to;
            p.head = head;
            p.events += events;
            p.rpc_seconds += rpc_seconds;
            p.apply_seconds += apply_seconds;
        });
        debug!(target: "chain::indexer", from, to, events, "indexed");
        Ok(to < target)
    }

    /// Applies a page of logs and moves the cursor, atomically.
    fn apply_page(&self, logs: &[Log], cursor: Cursor) -> Result<(), IndexerError> {
        let mut overlay = Overlay::new(&self.store);
        let mut block_hashes: BTreeMap<u64, B256> = BTreeMap::new();
        for log in logs {
            let (Some(block), Some(hash)) = (log.block_number, log.block_hash) else { continue };
            if log.removed {
                continue;
            }
            block_hashes.insert(block, hash);
            overlay.block = block;
            if let Err(e) = self.apply_log(&mut overlay, log, block) {
                // A log our contracts emitted but this build cannot decode: skip it loudly.
                warn!(target: "chain::indexer", block, tx = ?log.transaction_hash, error = %e, "undecodable log skipped");
            }
        }
        if let Some(hash) = cursor.hash {
            block_hashes.insert(cursor.number, hash);
        }
        let mut batch = self.store.batch();
        overlay.write_into(&mut batch)?;
        for (number, hash) in &block_hashes {
            batch.put_raw(cf::CHAIN_BLOCKS, &number.to_be_bytes(), hash.as_slice());
        }
        batch.put(cf::META, CURSOR_KEY, &cursor);
        // Prune undo entries and block hashes beyond the reorg window.
        let horizon = cursor.number.saturating_sub(UNDO_WINDOW);
        for row in self.store.scan_from(cf::CHAIN_UNDO, &[]) {
            let (key, _) = row?;
            if u64::from_be_bytes(key[..8].try_into().expect("undo key")) >= horizon {
                break;
            }
            batch.delete(cf::CHAIN_UNDO, &key);
        }
        self.store.write(batch, Durability::Buffered)?;
        Ok(())
    }

    /// Restores the state of the last block both chains share and moves the cursor there.
    async fn rollback_reorg(&self, cursor: Cursor) -> Result<(), IndexerError> {
        let mut fork = None;
        let start = cursor.number.to_be_bytes();
        let stored: Vec<(u64, B256)> = self
            .store
            .scan_back(cf::CHAIN_BLOCKS, &start)
            .map(|row| row.map(|(k, v)| (u64::from_be_bytes(k[..8].try_into().expect("key")), B256::from_slice(&v))))
            .collect::<Result<_, _>>()?;
        for (number, hash) in stored {
            if self.block_hash(number).await? == hash {
                fork = Some(Cursor { number, hash: Some(hash) });
                break;
            }
        }
        let fork = fork.unwrap_or(Cursor { number: self.first_block.saturating_sub(1), hash: None });
        let mut batch = self.store.batch();
        let mut restored = 0usize;
        for row in self.store.scan_back(cf::CHAIN_UNDO, &[0xFF; 12]) {
            let (key, value) = row?;
            let block = u64::from_be_bytes(key[..8].try_into().expect("undo key"));
            if block <= fork.number {
                break;
            }
            let entry: UndoEntry = crate::store::decode(cf::CHAIN_UNDO, &key, &value)?;
            let table = table_name(&entry.table);
            match entry.previous {
                Some(previous) => batch.put_raw(table, &entry.key, &previous),
                None => batch.delete(table, &entry.key),
            }
            batch.delete(cf::CHAIN_UNDO, &key);
            restored += 1;
        }
        for row in self.store.scan_from(cf::CHAIN_BLOCKS, &(fork.number + 1).to_be_bytes()) {
            let (key, _) = row?;
            batch.delete(cf::CHAIN_BLOCKS, &key);
        }
        batch.put(cf::META, CURSOR_KEY, &fork);
        self.store.write(batch, Durability::Buffered)?;
        info!(target: "chain::indexer", from = cursor.number, to = fork.number, restored, "reorg: rolled back");
        self.progress.send_modify(|p| {
            p.indexed = fork.number;
            p.reorgs += 1;
        });
        Ok(())
    }

    /// Applies one log: decoded by the contract that emitted it, then handled by that
    /// contract's function below (one per contract / event family).
    fn apply_log(&self, o: &mut Overlay<'_>, log: &Log, block: u64) -> Result<(), Box<dyn std::error::Error>> {
        match log.address() {
            a if a == self.addresses.nodes => {
                apply_node_registry(o, NodeRegistry::NodeRegistryEvents::decode_log(&log.inner)?.data, block)
            }
            a if a == self.addresses.controllers => {
                apply_controller_registry(o, ControllerRegistry::ControllerRegistryEvents::decode_log(&log.inner)?.data)
            }
            a if a == self.addresses.users => apply_users(o, Users::UsersEvents::decode_log(&log.inner)?.data),
            a if a == self.addresses.apps => {
                apply_app_registry(o, AppRegistry::AppRegistryEvents::decode_log(&log.inner)?.data)
            }
            a if a == self.addresses.data_types => {
                apply_data_type_registry(o, DataTypeRegistry::DataTypeRegistryEvents::decode_log(&log.inner)?.data)
            }
            a if a == self.addresses.consents => {
                apply_consents(o, Consents::ConsentsEvents::decode_log(&log.inner)?.data, block)
            }
            a if a == self.addresses.data => {
                apply_data_registry(o, DataRegistry::DataRegistryEvents::decode_log(&log.inner)?.data, block)
            }
            a if a == self.addresses.exchange => {
                apply_exchange(o, Exchange::ExchangeEvents::decode_log(&log.inner)?.data, block)
            }
            _ => {}
        }
        Ok(())
    }
}

impl Contracts {
    fn all(&self) -> [Address; 8] {
        [self.nodes, self.controllers, self.users, self.apps, self.data_types, self.consents, self.data, self.exchange]
    }
}

pub(crate) fn load_cursor(store: &Store) -> Result<Option<Cursor>, StoreError> {
    store.get(cf::META, CURSOR_KEY)
}

fn table_name(name: &str) -> &'static str {
    cf::ALL.iter().copied().find(|t| *t == name).unwrap_or(cf::META)
}

/// Pending writes of one page, with read-your-writes and per-block undo entries.
struct Overlay<'a> {
    store: &'a Store,
    block: u64,
    rows: HashMap<(&'static str, Vec<u8>), Option<Vec<u8>>>,
    touched: HashSet<(u64, &'static str, Vec<u8>)>,
    undo: Vec<(u64, UndoEntry)>,
    /// The first store read that failed: the page is then not written (and is retried).
    failed: Option<StoreError>,
}

impl<'a> Overlay<'a> {
    fn new(store: &'a Store) -> Self {
        Self { store, block: 0, rows: HashMap::new(), touched: HashSet::new(), undo: Vec::new(), failed: None }
    }

    fn current(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.rows.get(&(table, key.to_vec())) {
            Some(value) => Ok(value.clone()),
            None => self.store.get_raw(table, key),
        }
    }

    fn get<V: DeserializeOwned>(&self, table: &'static str, key: &[u8]) -> Result<Option<V>, StoreError> {
        self.current(table, key)?.map(|bytes| crate::store::decode(table, key, &bytes)).transpose()
    }

    /// A row as the page has it so far; a failed read fails the page (see `failed`).
    fn read<V: DeserializeOwned>(&mut self, table: &'static str, key: &[u8]) -> Option<V> {
        match self.get(table, key) {
            Ok(row) => row,
            Err(e) => {
                self.failed.get_or_insert(e);
                None
            }
        }
    }

    fn set(&mut self, table: &'static str, key: &[u8], value: Option<Vec<u8>>) {
        if self.touched.insert((self.block, table, key.to_vec())) {
            let previous = match self.current(table, key) {
                Ok(previous) => previous,
                Err(e) => {
                    self.failed.get_or_insert(e);
                    None
                }
            };
            self.undo.push((self.block, UndoEntry { table: table.to_owned(), key: key.to_vec(), previous }));
        }
        self.rows.insert((table, key.to_vec()), value);
    }

    fn put<V: Serialize>(&mut self, table: &'static str, key: &[u8], value: &V) {
        self.set(table, key, Some(serde_json::to_vec(value).expect("rows serialize")));
    }

    fn delete(&mut self, table: &'static str, key: &[u8]) {
        self.set(table, key, None);
    }

    /// Changes an existing row; events for unknown rows (never created) are ignored.
    fn update<V: Serialize + DeserializeOwned>(
        &mut self,
        table: &'static str,
        key: &[u8],
        change: impl FnOnce(&mut V),
    ) {
        match self.get::<V>(table, key) {
            Ok(Some(mut row)) => {
                change(&mut row);
                self.put(table, key, &row);
            }
            Ok(None) => {}
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
    }

    fn write_into(self, batch: &mut crate::store::Batch<'_>) -> Result<(), StoreError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        for ((table, key), value) in &self.rows {
            match value {
                Some(v) => batch.put_raw(table, key, v),
                None => batch.delete(table, key),
            }
        }
        for (i, (block, entry)) in self.undo.iter().enumerate() {
            let mut key = block.to_be_bytes().to_vec();
            key.extend_from_slice(&(i as u32).to_be_bytes());
            batch.put(cf::CHAIN_UNDO, &key, entry);
        }
        Ok(())
    }
}

/// NodeRegistry events.
fn apply_node_registry(o: &mut Overlay<'_>, event: NodeRegistry::NodeRegistryEvents, block: u64) {
    use NodeRegistry::NodeRegistryEvents as E;
    match event {
        E::NodeRegistered(e) => o.put(
            cf::NODES,
            e.node.as_slice(),
            &NodeRow { roles: e.roles, peer_id: e.peerId, multiaddrs: e.multiaddrs, active: true, block },
        ),
        E::NodeUpdated(e) => o.update::<NodeRow>(cf::NODES, e.node.as_slice(), |n| {
            n.roles = e.roles;
            n.multiaddrs = e.multiaddrs.clone();
        }),
        E::NodeDeactivated(e) => o.update::<NodeRow>(cf::NODES, e.node.as_slice(), |n| n.active = false),
    }
}

/// ControllerRegistry events.
fn apply_controller_registry(o: &mut Overlay<'_>, event: ControllerRegistry::ControllerRegistryEvents) {
    use ControllerRegistry::ControllerRegistryEvents as E;
    match event {
        E::ControllerAdded(e) => o.put(cf::CONTROLLERS, e.controller.as_slice(), &true),
        E::ControllerRemoved(e) => o.delete(cf::CONTROLLERS, e.controller.as_slice()),
        _ => {}
    }
}

/// Users events.
fn apply_users(o: &mut Overlay<'_>, event: Users::UsersEvents) {
    use Users::UsersEvents as E;
    match event {
        E::UserCreated(e) => o.put(
            cf::USERS,
            e.userId.as_slice(),
            &UserRow { owner: e.owner, controller: Address::ZERO, temporary: false, identity_hash: B256::ZERO },
        ),
        E::TemporaryUserCreated(e) => o.put(
            cf::USERS,
            e.userId.as_slice(),
            &UserRow { owner: Address::ZERO, controller: e.controller, temporary: true, identity_hash: e.identityHash },
        ),
        E::TemporaryUserUnlocked(e) => o.update::<UserRow>(cf::USERS, e.userId.as_slice(), |u| {
            u.owner = e.newOwner;
            u.temporary = false;
        }),
        E::ControllerChanged(e) => o.update::<UserRow>(cf::USERS, e.userId.as_slice(), |u| u.controller = e.controller),
    }
}

/// AppRegistry events.
fn apply_app_registry(o: &mut Overlay<'_>, event: AppRegistry::AppRegistryEvents) {
    use AppRegistry::AppRegistryEvents as E;
    match event {
        E::AppRegistered(e) => o.put(
            cf::APPS,
            e.appId.as_slice(),
            &AppRow { name: e.name, owner: e.owner, authorized: vec![], retired: false },
        ),
        E::AppOwnershipTransferred(e) => o.update::<AppRow>(cf::APPS, e.appId.as_slice(), |app| {
            app.owner = e.newOwner;
            app.authorized.clear();
        }),
        E::AppUnregistered(e) => o.update::<AppRow>(cf::APPS, e.appId.as_slice(), |app| {
            app.owner = Address::ZERO;
            app.retired = true;
            app.authorized.clear();
        }),
        E::AppAuthorizationChanged(e) => o.update::<AppRow>(cf::APPS, e.appId.as_slice(), |app| {
            app.authorized.retain(|x| *x != e.account);
            if e.authorized {
                app.authorized.push(e.account);
            }
        }),
    }
}

/// DataTypeRegistry events.
fn apply_data_type_registry(o: &mut Overlay<'_>, event: DataTypeRegistry::DataTypeRegistryEvents) {
    use DataTypeRegistry::DataTypeRegistryEvents as E;
    match event {
        E::DataTypeRegistered(e) => o.put(
            cf::DATA_TYPES,
            e.dataTypeId.as_slice(),
            &DataTypeRow { name: e.name, owner: e.owner, schema_hash: e.schemaHash, version: 1, retired: false },
        ),
        E::SchemaUpdated(e) => o.update::<DataTypeRow>(cf::DATA_TYPES, e.dataTypeId.as_slice(), |t| {
            t.schema_hash = e.schemaHash;
            t.version = e.version;
        }),
        E::DataTypeUnregistered(e) => o.update::<DataTypeRow>(cf::DATA_TYPES, e.dataTypeId.as_slice(), |t| {
            t.owner = Address::ZERO;
            t.retired = true;
        }),
    }
}

/// Consents events.
fn apply_consents(o: &mut Overlay<'_>, event: Consents::ConsentsEvents, block: u64) {
    use Consents::ConsentsEvents as E;
    if let E::ConsentChanged(e) = event {
        let key = consent_key(e.userId, e.appId, e.action, e.dataTypeId);
        let mut row: ConsentRow = o.read(cf::CONSENTS, &key).unwrap_or_default();
        match row.history.last_mut() {
            Some(last) if last.0 == block => last.1 = e.allowed,
            _ => row.history.push((block, e.allowed)),
        }
        row.set_by_user |= e.byUser;
        o.put(cf::CONSENTS, &key, &row);
    }
}

/// DataRegistry events.
fn apply_data_registry(o: &mut Overlay<'_>, event: DataRegistry::DataRegistryEvents, block: u64) {
    use DataRegistry::DataRegistryEvents as E;
    match event {
        E::BundleRegistered(e) => o.put(
            cf::BUNDLES,
            e.bundleId.as_slice(),
            &BundleRow {
                app: e.appId,
                data_type: e.dataTypeId,
                provider: e.provider,
                merkle_root: e.merkleRoot,
                record_count: e.recordCount,
                ciphertext_hash: e.ciphertextHash,
                size: e.size,
                locator: e.locator,
                active: true,
                block,
            },
        ),
        E::BundleUnregistered(e) => o.update::<BundleRow>(cf::BUNDLES, e.bundleId.as_slice(), |b| b.active = false),
    }
}

/// Exchange events.
fn apply_exchange(o: &mut Overlay<'_>, event: Exchange::ExchangeEvents, block: u64) {
    use Exchange::ExchangeEvents as E;
    match event {
        E::OfferCreated(e) => o.put(
            cf::OFFERS,
            e.offerId.as_slice(),
            &OfferRow {
                provider: e.provider,
                consumer: e.consumer,
                bundle_ids: e.bundleIds,
                token: e.token,
                price: e.price,
                delivery_window: e.deliveryWindow,
                dispute_window: e.disputeWindow,
                expires_at: e.expiresAt,
                status: OfferStatus::Open,
            },
        ),
        E::OfferCancelled(e) => {
            o.update::<OfferRow>(cf::OFFERS, e.offerId.as_slice(), |x| x.status = OfferStatus::Cancelled)
        }
        E::OrderPlaced(e) => o.put(
            cf::ORDERS,
            e.orderId.as_slice(),
            &OrderRow {
                offer: e.offerId,
                consumer: e.consumer,
                token: e.token,
                amount: e.amount,
                consumer_public_key: e.consumerPublicKey,
                deliver_by: e.deliverBy,
                dispute_by: 0,
                key_commitment: B256::ZERO,
                status: OrderStatus::Placed,
                block,
            },
        ),
        E::OrderDelivered(e) => o.update::<OrderRow>(cf::ORDERS, e.orderId.as_slice(), |x| {
            x.status = OrderStatus::Delivered;
            x.key_commitment = e.keyCommitment;
            x.dispute_by = e.disputeBy;
        }),
        E::OrderSettled(e) => {
            o.update::<OrderRow>(cf::ORDERS, e.orderId.as_slice(), |x| x.status = OrderStatus::Settled)
        }
        E::OrderRefunded(e) => {
            o.update::<OrderRow>(cf::ORDERS, e.orderId.as_slice(), |x| x.status = OrderStatus::Refunded)
        }
        E::OrderDisputed(e) => {
            o.update::<OrderRow>(cf::ORDERS, e.orderId.as_slice(), |x| x.status = OrderStatus::Disputed);
            o.update::<OfferRow>(cf::OFFERS, e.offerId.as_slice(), |x| x.status = OfferStatus::Disputed);
        }
        E::Withdrawn(_) | E::EIP712DomainChanged(_) => {}
    }
}
