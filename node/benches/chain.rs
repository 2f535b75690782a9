//! Store, indexer and outbox figures, measured as ratios within one run:
//!
//! - durable (fsynced) writes of 1 KiB records in batches of 1,000 through the store facade vs
//!   raw RocksDB `WriteBatch` writes of the same bytes with the same sync setting;
//! - indexer catch-up over 10,000 events on a real anvil: events per second, and the share of
//!   time spent waiting on the RPC endpoint vs applying;
//! - outbox: confirmed transactions per second with 1,000 intents queued against anvil mining a
//!   block a second, vs a plain sequential sender (pre-assigned nonces) in the same run.
//!
//! Run: `cargo bench -p airbloc-node --bench chain` (add `-- --quick` for smaller figures).
#![allow(clippy::unwrap_used)] // a benchmark stops loudly on any failure

use airbloc_node::{
    chain::{
        contracts::{AppRegistry, Consents, ControllerRegistry, DataTypeRegistry, Users, actions},
        indexer::{Indexer, IndexerConfig},
        outbox::{Call, Outbox, OutboxConfig},
    },
    daemon::connect,
    mined,
    store::{Durability, Store, cf},
    test_utils::{deploy_local, dev_key, spawn_anvil_with},
};
use alloy::{
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{B256, Bytes, U256, keccak256},
    providers::Provider,
    rpc::types::TransactionRequest,
};
use std::{sync::Arc, time::Instant};
use tokio_util::sync::CancellationToken;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    store_bench(if quick { 20 } else { 100 });
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        indexer_bench(if quick { 20 } else { 100 }).await;
        outbox_bench(if quick { 200 } else { 1000 }).await;
    });
}

fn store_bench(batches: usize) {
    println!("== store: durable 1 KiB records, batches of 1,000 ({batches} batches) ==");
    let record = vec![0x5Au8; 1024];
    let dir = tempfile::tempdir().unwrap();

    let raw_dir = dir.path().join("raw");
    let raw = {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        let db = rocksdb::DB::open_cf(&opts, &raw_dir, ["records"]).unwrap();
        let handle = db.cf_handle("records").unwrap();
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        let t = Instant::now();
        for b in 0..batches {
            let mut batch = rocksdb::WriteBatch::default();
            for i in 0..1000u64 {
                batch.put_cf(handle, ((b as u64) * 1000 + i).to_be_bytes(), &record);
            }
            db.write_opt(batch, &wo).unwrap();
        }
        t.elapsed().as_secs_f64()
    };

    let store = Store::open(&dir.path().join("facade")).unwrap();
    let facade = {
        let t = Instant::now();
        for b in 0..batches {
            let mut batch = store.batch();
            for i in 0..1000u64 {
                batch.put_raw(cf::RECORDS, &((b as u64) * 1000 + i).to_be_bytes(), &record);
            }
            store.write(batch, Durability::Sync).unwrap();
        }
        t.elapsed().as_secs_f64()
    };
    let mb = (batches * 1000 * 1024) as f64 / 1e6;
    println!("raw RocksDB WriteBatch (sync): {:.1} MB/s, {:.0} records/s", mb / raw, batches as f64 * 1000.0 / raw);
    println!(
        "store facade (sync):           {:.1} MB/s, {:.0} records/s = {:.0}% of raw",
        mb / facade,
        batches as f64 * 1000.0 / facade,
        100.0 * raw / facade
    );
}

async fn indexer_bench(users: usize) {
    println!("\n== indexer catch-up ({} events) ==", users * 100);
    let anvil = spawn_anvil_with(&[]);
    let (governor, gov, deployment) = deploy_local(&anvil, false).await;
    let at = |name| deployment.address(name).unwrap();
    mined!(ControllerRegistry::new(at("ControllerRegistry"), &gov).addController(governor.address()));
    AppRegistry::new(at("AppRegistry"), &gov).register("app".into()).send().await.unwrap().get_receipt().await.unwrap();
    let mut types = Vec::new();
    for i in 0..50 {
        let name = format!("type-{i}");
        mined!(DataTypeRegistry::new(at("DataTypeRegistry"), &gov).register(name.clone(), keccak256("{}")));
        types.push(keccak256(name));
    }
    let users_c = Users::new(at("Users"), &gov);
    let consents = Consents::new(at("Consents"), &gov);
    for u in 0..users {
        let hash = keccak256(format!("identity-{u}"));
        users_c.createTemporary(hash).send().await.unwrap().get_receipt().await.unwrap();
        let user = keccak256(alloy::sol_types::SolValue::abi_encode_params(&("airbloc.user.temporary", hash)));
        let batch: Vec<_> = types
            .iter()
            .flat_map(|t| {
                [actions::COLLECT, actions::EXCHANGE].map(|action| Consents::ConsentInput {
                    userId: user,
                    appId: keccak256("app"),
                    action,
                    dataTypeId: *t,
                    allowed: true,
                })
            })
            .collect();
        consents.setConsents(batch).gas(8_000_000).send().await.unwrap().get_receipt().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let reader = connect(&anvil.endpoint()).await.unwrap();
    let head = reader.get_block_number().await.unwrap();
    let (mut indexer, handle) =
        Indexer::new(store, reader, &deployment, IndexerConfig { page_size: 2000, ..Default::default() }).unwrap();
    let t = Instant::now();
    while handle.progress().indexed < head {
        indexer.step().await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let p = handle.progress();
    println!(
        "{} events over {} blocks in {:.2} s = {:.0} events/s; time waiting on RPC {:.0}%, applying {:.0}%",
        p.events,
        head,
        secs,
        p.events as f64 / secs,
        100.0 * p.rpc_seconds / (p.rpc_seconds + p.apply_seconds),
        100.0 * p.apply_seconds / (p.rpc_seconds + p.apply_seconds)
    );
}

async fn outbox_bench(n: usize) {
    println!("\n== outbox vs plain sender ({n} transactions, 1 s blocks) ==");
    // Plain sender: pre-assigned nonces, fire everything, wait for the last receipt.
    let plain_rate = {
        let anvil = spawn_anvil_with(&["--block-time", "1", "--gas-limit", "300000000"]);
        let sender = dev_key(&anvil, 1);
        let provider = connect(&anvil.endpoint()).await.unwrap();
        let wallet = EthereumWallet::from(sender.signer().clone());
        let fees = provider.estimate_eip1559_fees().await.unwrap();
        let t = Instant::now();
        let mut last = B256::ZERO;
        for nonce in 0..n as u64 {
            let tx = TransactionRequest::default()
                .with_to(sender.address())
                .with_value(U256::from(1))
                .with_nonce(nonce)
                .with_chain_id(31337)
                .with_gas_limit(21_000)
                .with_max_fee_per_gas(fees.max_fee_per_gas)
                .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
            let envelope = tx.build(&wallet).await.unwrap();
            last = *provider
                .send_raw_transaction(&alloy::eips::Encodable2718::encoded_2718(&envelope))
                .await
                .unwrap()
                .tx_hash();
        }
        while provider.get_transaction_receipt(last).await.unwrap().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        n as f64 / t.elapsed().as_secs_f64()
    };
    let outbox_rate = {
        let anvil = spawn_anvil_with(&["--block-time", "1", "--gas-limit", "300000000"]);
        let sender = dev_key(&anvil, 1);
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path()).unwrap());
        let provider = connect(&anvil.endpoint()).await.unwrap();
        let outbox = Outbox::new(
            store,
            provider,
            EthereumWallet::from(sender.signer().clone()),
            OutboxConfig { confirmations: 1, ..Default::default() },
        )
        .unwrap();
        for i in 0..n {
            outbox
                .submit(
                    &format!("tx-{i}"),
                    Call { to: sender.address(), data: Bytes::new(), value: U256::from(1), label: String::new() },
                )
                .unwrap();
        }
        let cancel = CancellationToken::new();
        let t = Instant::now();
        tokio::spawn(outbox.clone().run(cancel.clone()));
        for i in 0..n {
            outbox.wait(&format!("tx-{i}")).await.unwrap();
        }
        cancel.cancel();
        n as f64 / t.elapsed().as_secs_f64()
    };
    println!("plain sequential sender:  {plain_rate:.0} tx/s (included)");
    println!(
        "outbox (1 confirmation):  {outbox_rate:.0} tx/s (confirmed) = {:.0}% of plain",
        100.0 * outbox_rate / plain_rate
    );
}
