//! Shutdown that finishes its work: SIGTERM to every role while it is busy — a provider sealing
//! and ingesting, a consumer ordering, a keeper signing users up and writing consents, a
//! bootnode serving the DHT — ends each process cleanly, well within the 10 s grace period.

use super::{support::log_file, world::World};
use airbloc_proto::v1::{IngestRecord, PlaceOrderRequest, ProviderSignUpRequest, SealBundleRequest};
use alloy::primitives::U256;
use std::time::{Duration, Instant};

/// Well within airblocd's grace period (10 s): a node that needs it has cut work off.
const CLEAN_EXIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread")]
async fn every_role_stops_cleanly_on_sigterm_mid_work() {
    let mut w = World::start(true).await;
    let records: Vec<IngestRecord> = (0..200).map(|i| w.record(i)).collect();
    w.provider.ingest(futures::stream::iter(records)).await.unwrap();
    let (_, offer_id) = w.seal_and_offer(U256::from(1000u64), 3600).await;

    // Work in flight on every role: each call waits for a transaction to be mined and indexed.
    let mut provider = w.provider.clone();
    let (app_id, data_type_id) = (w.app_id.to_vec(), w.data_type_id.to_vec());
    let more: Vec<IngestRecord> = (200..400).map(|i| w.record(i)).collect();
    let sealing = tokio::spawn(async move {
        let _ = provider.ingest(futures::stream::iter(more)).await;
        let _ = provider.seal_bundle(SealBundleRequest { app_id, data_type_id }).await;
    });
    let mut signing = w.provider.clone();
    let app_id = w.app_id.to_vec();
    let signing_up = tokio::spawn(async move {
        for i in 0..20 {
            let request = ProviderSignUpRequest { identity: format!("user{i}@example.com"), app_id: app_id.clone() };
            let _ = signing.sign_up(request).await;
        }
    });
    let mut consumer = w.consumer.clone();
    let ordering = tokio::spawn(async move {
        let _ = consumer.place_order(PlaceOrderRequest { offer_id }).await;
    });
    // Let the calls reach the nodes (they take seconds to complete on a 1 s block time).
    tokio::time::sleep(Duration::from_millis(700)).await;

    let keeper = w.keeper_node.as_mut().unwrap();
    let mut nodes = vec![
        ("keeper", keeper as &mut super::support::NodeProcess),
        ("provider", &mut w.provider_node),
        ("consumer", &mut w.consumer_node),
        ("bootnode", &mut w._boot),
    ];
    for (_, node) in &nodes {
        node.signal("TERM");
    }
    let signalled = Instant::now();
    for (role, node) in &mut nodes {
        let status = node.wait_exit(CLEAN_EXIT);
        let log = std::fs::read_to_string(log_file(&w.dir.path().join(role_dir(role)))).unwrap_or_default();
        assert!(status.success(), "the {role} exited with {status} after SIGTERM; its log:\n{log}");
        assert!(!log.contains("did not stop within"), "the {role} cut its work off:\n{log}");
        assert!(log.contains("stopped"), "the {role} did not log its orderly stop:\n{log}");
    }
    assert!(signalled.elapsed() < CLEAN_EXIT, "the nodes took {:?} to stop", signalled.elapsed());
    for task in [sealing, signing_up, ordering] {
        let _ = task.await;
    }
}

/// The data dir name World gives each role.
fn role_dir(role: &str) -> &'static str {
    match role {
        "keeper" => "keeper",
        "provider" => "provider",
        "consumer" => "consumer",
        _ => "boot",
    }
}
