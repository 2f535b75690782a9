//! The RocksDB store: schema version, unknown tables, damage, batches, durability at close.

use airbloc_node::store::{Durability, SCHEMA_VERSION, Store, StoreError, cf};

#[test]
fn rows_batches_and_scans() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.put(cf::APPS, b"a", &"first", Durability::Sync).unwrap();
    let mut batch = store.batch();
    for i in 0u32..10 {
        batch.put(cf::RECORDS, &i.to_be_bytes(), &i);
    }
    batch.delete(cf::APPS, b"a");
    store.write(batch, Durability::Sync).unwrap();
    assert_eq!(store.get::<String>(cf::APPS, b"a").unwrap(), None, "the batch applied as a whole");
    let keys: Vec<u32> = store
        .scan_from(cf::RECORDS, &3u32.to_be_bytes())
        .map(|r| u32::from_be_bytes((*r.unwrap().0).try_into().unwrap()))
        .collect();
    assert_eq!(keys, (3..10).collect::<Vec<_>>());
    assert_eq!(store.scan_prefix(cf::RECORDS, &[0, 0, 0]).count(), 10);
}

#[test]
fn buffered_writes_survive_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        for i in 0u32..1000 {
            store.put(cf::RECORDS, &i.to_be_bytes(), &i, Durability::Buffered).unwrap();
        }
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.scan_from(cf::RECORDS, &[]).count(), 1000);
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_raw(cf::META, b"schema_version", &(SCHEMA_VERSION + 1).to_be_bytes(), Durability::Sync).unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
    assert!(err.to_string().contains("upgrade airblocd"));
}

#[test]
fn unknown_tables_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let _db = rocksdb::DB::open_cf(&opts, dir.path(), ["meta", "from_the_future"]).unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("from_the_future"), "{err}");
}

#[test]
fn a_damaged_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    std::fs::write(dir.path().join("CURRENT"), b"garbage\n").unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(err.to_string().contains("restore it from a backup"));
}
