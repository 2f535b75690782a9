//! End-to-end time of one sale with real `airblocd` processes on a real anvil (1 s blocks):
//! 100 MiB of 1 KiB records from the first ingested record to the decrypted NDJSON at the
//! consumer, with each stage's share — ingest (gRPC stream, schema + consent, encrypted,
//! fsynced), seal (body, Merkle root, chunk manifest, DataRegistry registration), offer (until the
//! consumer's catalog shows it), order (escrow mined), delivery (the provider checks consents,
//! wraps the key, delivers it and records it on chain), download (transfer, chunk and root
//! verification, decryption, NDJSON written).
//!
//! Run: `cargo bench -p airbloc-node --bench exchange` (add `-- --quick` for 10 MiB).
#![allow(clippy::unwrap_used)] // a benchmark stops loudly on any failure

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "../tests/it/world.rs"]
mod world;

use airbloc_proto::v1::{IngestRecord, PlaceOrderRequest};
use alloy::primitives::U256;
use std::time::{Duration, Instant};
use world::World;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mib: u64 = if quick { 10 } else { 100 };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(bench(mib));
}

async fn bench(mib: u64) {
    let mut w = World::new().await;
    // ~1 KiB payloads; only records the world's users accept (consent and schema).
    let filler = "x".repeat(960);
    let records: Vec<IngestRecord> = (0..)
        .filter(|i| World::accepted(*i))
        .map(|i| IngestRecord { payload_json: format!(r#"{{"steps":{i},"device":"{filler}"}}"#), ..w.record(i) })
        .take((mib << 20) as usize / 1024)
        .collect();
    let bytes: usize = records.iter().map(|r| r.payload_json.len()).sum();
    let n = records.len() as u64;

    let mut stages: Vec<(&str, Duration)> = Vec::new();
    let start = Instant::now();
    let mut t = Instant::now();
    let summary = w.provider.ingest(futures::stream::iter(records)).await.unwrap().into_inner();
    assert_eq!(summary.accepted, n, "{:?}", summary.rejected.first());
    stages.push(("ingest", t.elapsed()));

    // Seal and offer are one helper; split them by the seal's own timing.
    t = Instant::now();
    let (bundle_id, offer_id) = w.seal_and_offer(U256::from(1000u64), 3600).await;
    stages.push(("seal + offer indexed at the consumer", t.elapsed()));

    t = Instant::now();
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id }).await.unwrap().into_inner();
    stages.push(("order (escrow mined)", t.elapsed()));

    t = Instant::now();
    w.wait_order(&order.order_id, Duration::from_secs(120), |o| o.key_received).await;
    stages.push(("key delivered", t.elapsed()));

    t = Instant::now();
    let output = w.download_file(&order.order_id, &bundle_id, "out.ndjson").await;
    stages.push(("download + verify + decrypt", t.elapsed()));
    let total = start.elapsed();
    let lines = std::fs::read_to_string(&output).unwrap().lines().count() as u64;
    assert_eq!(lines, n);

    println!("end to end: {n} records, {:.1} MiB of payload, {:.2} s", bytes as f64 / 1048576.0, total.as_secs_f64());
    for (stage, took) in &stages {
        println!(
            "  {stage:<38} {:>7.2} s  {:>5.1} %",
            took.as_secs_f64(),
            100.0 * took.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!("  (chain stages wait for 1 s blocks: anvil --block-time 1)");
}
