//! The node's durable state: one RocksDB database, one column family per table.
//!
//! - Tables are named by the constants in [`cf`]; every one is created at open. Each is
//!   declared with its key and value types by [`tables!`](crate::tables) next to the types it
//!   holds, and read and written through [`Store::get_row`], [`Store::put_row`], [`Batch::put_row`]
//!   and [`Store::rows`] (see [`table`]).
//! - Values are JSON (chain state, outbox intents: small and human-inspectable with
//!   `ldb`) or raw bytes (records: the hot path). Keys are big-endian binary so scans are ordered.
//! - Multi-key updates go through one [`Batch`], written atomically.
//! - Each write names its [`Durability`]: anything acknowledged to a client or that guards a
//!   transaction (outbox) is `Sync` — fsynced before the call returns.
//! - The schema version is stored in `meta` and checked at open; a database written by a newer
//!   airblocd, or holding tables this build does not know, is refused with a clear error rather
//!   than misread.

pub mod table;

pub use table::Table;

use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::{Serialize, de::DeserializeOwned};
use std::{
    fmt,
    path::{Path, PathBuf},
};

/// Column family (table) names.
pub mod cf {
    /// Schema version, indexer cursor, outbox counters.
    pub const META: &str = "meta";
    /// Outbox intents by id.
    pub const OUTBOX: &str = "outbox";
    /// Outbox intent ids by submission sequence (for ordered processing).
    pub const OUTBOX_QUEUE: &str = "outbox_queue";
    /// Hashes of indexed blocks that carried events (reorg detection).
    pub const CHAIN_BLOCKS: &str = "chain_blocks";
    /// Previous values of derived rows, per block (reorg rollback).
    pub const CHAIN_UNDO: &str = "chain_undo";
    /// Derived chain state.
    pub const NODES: &str = "nodes";
    pub const CONTROLLERS: &str = "controllers";
    pub const USERS: &str = "users";
    pub const APPS: &str = "apps";
    pub const DATA_TYPES: &str = "data_types";
    pub const CONSENTS: &str = "consents";
    pub const BUNDLES: &str = "bundles";
    pub const OFFERS: &str = "offers";
    pub const ORDERS: &str = "orders";
    /// Ingested records (provider).
    pub const RECORDS: &str = "records";
    /// JSON Schemas of data types, by keccak-256 of their text.
    pub const SCHEMAS: &str = "schemas";
    /// Bundles this node sealed and provides (provider).
    pub const PROVIDED: &str = "provided";
    /// Accounts of identities signed up through the keeper, by identity digest (provider).
    pub const PROVIDER_IDENTITIES: &str = "provider_identities";
    /// Keys wrapped to each order's consumer, and whether they are committed (provider).
    pub const PROVIDER_DELIVERIES: &str = "provider_deliveries";
    /// Bundle keys delivered for this node's orders, by (order, bundle) (consumer).
    pub const CONSUMER_KEYS: &str = "consumer_keys";
    /// The derived bundle delivered in place of an offered one, by (order, bundle) (consumer).
    pub const CONSUMER_DELIVERED: &str = "consumer_delivered";
    /// The provider's signed served-root statements, by (order, bundle) (consumer).
    pub const CONSUMER_EVIDENCE: &str = "consumer_evidence";
    /// Accounts this keeper holds, by user id (keeper).
    pub const KEEPER_ACCOUNTS: &str = "keeper_accounts";

    /// Every table, in creation order.
    pub const ALL: &[&str] = &[
        META,
        OUTBOX,
        OUTBOX_QUEUE,
        CHAIN_BLOCKS,
        CHAIN_UNDO,
        NODES,
        CONTROLLERS,
        USERS,
        APPS,
        DATA_TYPES,
        CONSENTS,
        BUNDLES,
        OFFERS,
        ORDERS,
        RECORDS,
        SCHEMAS,
        PROVIDED,
        PROVIDER_IDENTITIES,
        PROVIDER_DELIVERIES,
        CONSUMER_KEYS,
        CONSUMER_DELIVERED,
        CONSUMER_EVIDENCE,
        KEEPER_ACCOUNTS,
    ];

    /// Tables derived from chain events (rolled back on reorgs).
    pub const DERIVED: &[&str] = &[NODES, CONTROLLERS, USERS, APPS, DATA_TYPES, CONSENTS, BUNDLES, OFFERS, ORDERS];
}

/// The on-disk schema this build writes and understands.
pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";

/// Whether a write must reach the disk before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the write-ahead log before returning: survives power loss and kill -9.
    Sync,
    /// Written to the WAL without fsync: survives a process crash, not a power loss.
    Buffered,
}

/// Store failures. Each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot open the store at {path}: {source} — if it is damaged, restore it from a backup or move it away to resync"
    )]
    Open { path: PathBuf, source: rocksdb::Error },
    #[error(
        "the store at {path} has schema version {found}, newer than this airblocd understands ({SCHEMA_VERSION}) — upgrade airblocd"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error(
        "the store at {path} holds tables this airblocd does not know ({names}) — it was written by another version; upgrade airblocd or use another data dir"
    )]
    UnknownTables { path: PathBuf, names: String },
    #[error("the store's schema version record is damaged — restore the data dir from a backup")]
    BadSchemaRecord,
    #[error("store I/O failed: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("row {key} in table {table} cannot be decoded: {message}")]
    Codec { table: &'static str, key: String, message: String },
}

/// The database.
pub struct Store {
    db: DB,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn options() -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.increase_parallelism(2);
    opts.set_max_background_jobs(2);
    opts.set_keep_log_file_num(4);
    opts
}

impl Store {
    /// Opens (creating if needed) the store at `path`, checking the schema version and tables.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let opts = options();
        let existing = DB::list_cf(&opts, path).unwrap_or_default();
        let unknown: Vec<&str> =
            existing.iter().map(String::as_str).filter(|n| *n != "default" && !cf::ALL.contains(n)).collect();
        if !unknown.is_empty() {
            return Err(StoreError::UnknownTables { path: path.to_path_buf(), names: unknown.join(", ") });
        }
        let descriptors = cf::ALL.iter().map(|name| ColumnFamilyDescriptor::new(*name, options()));
        let db = DB::open_cf_descriptors(&opts, path, descriptors)
            .map_err(|source| StoreError::Open { path: path.to_path_buf(), source })?;
        let store = Self { db, path: path.to_path_buf() };
        match store.get_raw(cf::META, SCHEMA_KEY)? {
            None => store.put_raw(cf::META, SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes(), Durability::Sync)?,
            Some(bytes) => {
                let found = u32::from_be_bytes(bytes.as_slice().try_into().map_err(|_| StoreError::BadSchemaRecord)?);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path: path.to_path_buf(), found });
                }
            }
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn handle(&self, table: &'static str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(table).unwrap_or_else(|| panic!("table {table} is created at open"))
    }

    fn write_options(durability: Durability) -> WriteOptions {
        let mut wo = WriteOptions::default();
        wo.set_sync(durability == Durability::Sync);
        wo
    }

    pub fn get_raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.handle(table), key)?)
    }

    pub fn put_raw(
        &self,
        table: &'static str,
        key: &[u8],
        value: &[u8],
        durability: Durability,
    ) -> Result<(), StoreError> {
        Ok(self.db.put_cf_opt(self.handle(table), key, value, &Self::write_options(durability))?)
    }

    /// Reads and decodes a JSON row.
    pub fn get<V: DeserializeOwned>(&self, table: &'static str, key: &[u8]) -> Result<Option<V>, StoreError> {
        self.get_raw(table, key)?.map(|bytes| decode(table, key, &bytes)).transpose()
    }

    /// Encodes and writes one JSON row.
    pub fn put<V: Serialize>(
        &self,
        table: &'static str,
        key: &[u8],
        value: &V,
        durability: Durability,
    ) -> Result<(), StoreError> {
        self.put_raw(table, key, &encode(value), durability)
    }

    /// Reads one row of a typed table.
    pub fn get_row<T: Table>(&self, key: &T::Key) -> Result<Option<T::Value>, StoreError> {
        let key = table::Key::to_key(key);
        self.get_raw(T::NAME, &key)?.map(|bytes| table::decode_value::<T>(&key, &bytes)).transpose()
    }

    /// Writes one row of a typed table.
    pub fn put_row<T: Table>(&self, key: &T::Key, value: &T::Value, durability: Durability) -> Result<(), StoreError> {
        self.put_raw(T::NAME, &table::Key::to_key(key), &table::Value::to_value(value), durability)
    }

    /// Whether a typed table has a row under `key`.
    pub fn has_row<T: Table>(&self, key: &T::Key) -> Result<bool, StoreError> {
        Ok(self.get_raw(T::NAME, &table::Key::to_key(key))?.is_some())
    }

    /// Every row of a typed table, in key order.
    pub fn rows<T: Table>(&self) -> impl Iterator<Item = Result<(T::Key, T::Value), StoreError>> + '_ {
        self.scan_from(T::NAME, &[]).map(|row| {
            let (key, value) = row?;
            Ok((table::decode_key::<T>(&key)?, table::decode_value::<T>(&key, &value)?))
        })
    }

    /// A new, empty batch of writes.
    pub fn batch(&self) -> Batch<'_> {
        Batch { store: self, inner: WriteBatch::default() }
    }

    /// Writes a batch atomically.
    pub fn write(&self, batch: Batch<'_>, durability: Durability) -> Result<(), StoreError> {
        Ok(self.db.write_opt(batch.inner, &Self::write_options(durability))?)
    }

    /// Every row of `table` whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        table: &'static str,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), StoreError>> + '_ {
        let prefix = prefix.to_vec();
        self.db
            .iterator_cf(self.handle(table), IteratorMode::From(&prefix, rocksdb::Direction::Forward))
            .map(|item| item.map_err(StoreError::from))
            .take_while(move |item| item.as_ref().map(|(k, _)| k.starts_with(&prefix)).unwrap_or(true))
    }

    /// Every row of `table` with key ≥ `start`, in key order.
    pub fn scan_from(
        &self,
        table: &'static str,
        start: &[u8],
    ) -> impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), StoreError>> + '_ {
        self.db
            .iterator_cf(self.handle(table), IteratorMode::From(start, rocksdb::Direction::Forward))
            .map(|item| item.map_err(StoreError::from))
    }

    /// Rows of `table` from the end backwards, starting at keys ≤ `start`.
    pub fn scan_back(
        &self,
        table: &'static str,
        start: &[u8],
    ) -> impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), StoreError>> + '_ {
        self.db
            .iterator_cf(self.handle(table), IteratorMode::From(start, rocksdb::Direction::Reverse))
            .map(|item| item.map_err(StoreError::from))
    }

    /// Approximate bytes per table (SST files plus memtables), for metrics.
    pub fn sizes(&self) -> Vec<(&'static str, u64)> {
        cf::ALL
            .iter()
            .map(|name| {
                let h = self.handle(name);
                let prop = |p: &str| self.db.property_int_value_cf(h, p).ok().flatten().unwrap_or(0);
                (*name, prop("rocksdb.total-sst-files-size") + prop("rocksdb.cur-size-all-mem-tables"))
            })
            .collect()
    }

    /// Flushes memtables and syncs the WAL; called at shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        for name in cf::ALL {
            self.db.flush_cf(self.handle(name))?;
        }
        Ok(())
    }
}

/// Several writes applied atomically by [`Store::write`].
pub struct Batch<'a> {
    store: &'a Store,
    inner: WriteBatch,
}

impl Batch<'_> {
    pub fn put_raw(&mut self, table: &'static str, key: &[u8], value: &[u8]) {
        self.inner.put_cf(self.store.handle(table), key, value);
    }

    pub fn put<V: Serialize>(&mut self, table: &'static str, key: &[u8], value: &V) {
        self.put_raw(table, key, &encode(value));
    }

    /// Adds a write of one row of a typed table.
    pub fn put_row<T: Table>(&mut self, key: &T::Key, value: &T::Value) {
        self.put_raw(T::NAME, &table::Key::to_key(key), &table::Value::to_value(value));
    }

    pub fn delete(&mut self, table: &'static str, key: &[u8]) {
        self.inner.delete_cf(self.store.handle(table), key);
    }

    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

fn encode<V: Serialize>(value: &V) -> Vec<u8> {
    serde_json::to_vec(value).expect("store rows always serialize")
}

/// Decodes a JSON row, naming the table and key when it fails.
pub fn decode<V: DeserializeOwned>(table: &'static str, key: &[u8], bytes: &[u8]) -> Result<V, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Codec {
        table,
        key: hex::encode(key),
        message: e.to_string(),
    })
}
