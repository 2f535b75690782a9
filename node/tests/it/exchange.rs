//! The whole exchange with real `airblocd` processes on a real anvil, driven over gRPC: a
//! provider ingests and seals, a consumer orders, receives the key, downloads, verifies,
//! decrypts and settles; the provider is paid.

use super::{
    p2p::{chain_node, indexed, register_nodes},
    world::{World, expected, wait_indexed},
};
use airbloc_node::{
    chain::contracts::Exchange,
    p2p::{RequestError, transfer},
    test_utils::dev_key,
};
use airbloc_proto::{
    p2p::v1 as wire,
    v1::{CatalogRequest, DataTypeRef, DownloadRequest, GetOrderRequest, IngestRecord, OrderAction, PlaceOrderRequest},
};
use alloy::primitives::{Address, U256};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const RECORDS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread")]
async fn a_record_goes_from_provider_to_a_paying_consumer_decrypted_and_verified() {
    let mut w = World::new().await;
    // 10,000 records: every 13th breaks the schema, the third user's are refused.
    let inputs: Vec<IngestRecord> = (0..RECORDS).map(|i| w.record(i)).collect();
    let summary = w.provider.ingest(futures::stream::iter(inputs.clone())).await.unwrap().into_inner();
    let accepted: Vec<&IngestRecord> =
        inputs.iter().enumerate().filter(|(i, _)| World::accepted(*i as u64)).map(|(_, r)| r).collect();
    assert_eq!(summary.accepted, accepted.len() as u64);
    assert_eq!(summary.rejected.len(), inputs.len() - accepted.len());
    let price = U256::from(10u128.pow(18));
    let (bundle_id, offer_id) = w.seal_and_offer(price, 3600).await;

    // The consumer finds it in its catalog and orders.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let request = CatalogRequest { app_id: w.app_id.to_vec(), ..Default::default() };
        let entries = w.consumer.catalog(request).await.unwrap().into_inner().entries;
        if let Some(entry) = entries.into_iter().find(|e| e.bundle_id == bundle_id && !e.offers.is_empty()) {
            break entry;
        }
        assert!(tokio::time::Instant::now() < deadline, "the offer never reached the consumer's catalog");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(entry.record_count, accepted.len() as u64);
    // The data type's schema comes from the network, checked against its on-chain hash.
    let (c, a) = super::world::channel(&w.consumer_node);
    let data_type = airbloc_proto::v1::registry_client::RegistryClient::with_interceptor(c, a)
        .get_data_type(DataTypeRef { data_type_id: entry.data_type_id.clone(), name: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((data_type.name.as_str(), data_type.schema_json.as_str()), ("daily-steps", super::world::SCHEMA));
    assert_eq!(entry.offers[0].offer_id, offer_id);
    assert_eq!(entry.offers[0].price_wei, price.to_string());
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id: offer_id.clone() }).await.unwrap().into_inner();
    // The provider delivers the key on its own.
    w.wait_order(&order.order_id, Duration::from_secs(60), |o| o.key_received && o.status == "delivered").await;

    // A node that did not order gets neither key nor data.
    let cancel = CancellationToken::new();
    let stranger_key = dev_key(&w.anvil, 8);
    let block = register_nodes(&w.anvil, &w.deployment, &[&stranger_key]).await;
    let stranger = chain_node(&w.anvil, &w.deployment, stranger_key, vec![], &cancel).await;
    indexed(&[&stranger], block).await;
    wait_indexed(&w.provider_node, block).await;
    let provider_peer: libp2p::PeerId = w.provider_node.runtime.peer_id.parse().unwrap();
    stranger.network.dial(w.provider_node.runtime.p2p_addrs[0].parse().unwrap()).await.unwrap();
    let key_request = wire::KeyRequest { order_id: order.order_id.clone(), bundle_id: bundle_id.clone() };
    let refused =
        stranger.network.request(provider_peer, wire::request::Body::KeyRequest(key_request)).await.unwrap_err();
    assert!(matches!(refused, RequestError::Remote { code: wire::ErrorCode::Forbidden, .. }), "{refused:?}");
    let metadata = wire::BundleMetadataRequest { bundle_id: bundle_id.clone() };
    let refused =
        stranger.network.request(provider_peer, wire::request::Body::BundleMetadata(metadata)).await.unwrap_err();
    assert!(matches!(refused, RequestError::Remote { code: wire::ErrorCode::Forbidden, .. }), "{refused:?}");
    let mut stream = stranger.network.open_stream(provider_peer, transfer::PROTOCOL).await.unwrap();
    let request = wire::TransferRequest { bundle_id: bundle_id.clone(), from_chunk: 0 };
    airbloc_node::p2p::codec::write_frame(&mut stream, &request).await.unwrap();
    let header: wire::TransferHeader = airbloc_node::p2p::codec::read_frame(&mut stream, 4096).await.unwrap();
    assert_eq!(header.error.unwrap().code, wire::ErrorCode::Forbidden as i32);
    cancel.cancel();

    // Download, verify, decrypt: exactly the accepted inputs.
    let got = w.download(&order.order_id, &bundle_id, "records.ndjson").await;
    assert_eq!(got, expected(&accepted), "the decrypted records are exactly the accepted inputs");

    // Settle: the provider is paid the price.
    let settled = w.consumer.settle(OrderAction { order_id: order.order_id.clone() }).await.unwrap().into_inner();
    assert_eq!(settled.status, "settled");
    let exchange = Exchange::new(w.deployment.address("Exchange").unwrap(), &w.governor);
    let provider_address: Address = w.provider_node.runtime.address.parse().unwrap();
    assert_eq!(exchange.credits(provider_address, Address::ZERO).call().await.unwrap(), price);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_killed_before_delivery_delivers_after_restart_and_a_killed_consumer_downloads_after_restart() {
    let mut w = World::new().await;
    // Bigger records, so the download takes a while.
    let big = "z".repeat(16 * 1024);
    let inputs: Vec<IngestRecord> = (0..3000)
        .filter(|i| World::accepted(*i))
        .map(|i| IngestRecord { payload_json: format!(r#"{{"steps":{i},"device":"{big}"}}"#), ..w.record(i) })
        .collect();
    let summary = w.provider.ingest(futures::stream::iter(inputs.clone())).await.unwrap().into_inner();
    assert_eq!(summary.accepted, inputs.len() as u64);
    let (bundle_id, offer_id) = w.seal_and_offer(U256::from(1000), 3600).await;

    // The provider dies; the order is placed while it is down.
    w.provider_node.signal("KILL");
    w.provider_node.wait_exit(Duration::from_secs(10));
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id }).await.unwrap().into_inner();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let info = w.consumer.get_order(GetOrderRequest { order_id: order.order_id.clone() }).await.unwrap().into_inner();
    assert!(!info.key_received && info.status == "placed");
    // Back up, it finds the order and delivers.
    let rpc = w.anvil.endpoint();
    w.provider_node = World::start_node(&w.dir, &rpc, &w.boot_addr, "provider", "provider");
    w.wait_order(&order.order_id, Duration::from_secs(60), |o| o.key_received && o.status == "delivered").await;

    // The consumer dies in the middle of the download, restarts and finishes it.
    let output = w.dir.path().join("partial.ndjson");
    let mut progress = w
        .consumer
        .download(DownloadRequest {
            order_id: order.order_id.clone(),
            bundle_id: bundle_id.clone(),
            output_path: output.display().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(message) = progress.message().await.unwrap() {
        if message.bytes > 0 && !message.done {
            break;
        }
    }
    w.kill_and_restart("consumer").await;
    assert!(!output.exists(), "no output before verification");
    let got = w.download(&order.order_id, &bundle_id, "records.ndjson").await;
    assert_eq!(got, expected(&inputs.iter().collect::<Vec<_>>()));
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_delivered_within_the_window_is_refunded() {
    let mut w = World::new().await;
    let inputs: Vec<IngestRecord> = (0..100).filter(|i| World::accepted(*i)).map(|i| w.record(i)).collect();
    w.provider.ingest(futures::stream::iter(inputs)).await.unwrap();
    let price = U256::from(5_000u64);
    let (_, offer_id) = w.seal_and_offer(price, 3).await;
    // The provider is gone before anyone orders.
    w.provider_node.signal("KILL");
    w.provider_node.wait_exit(Duration::from_secs(10));
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id }).await.unwrap().into_inner();
    assert_eq!(order.status, "placed");
    // Too early: the chain refuses, and the error names why.
    let early = w.consumer.refund(OrderAction { order_id: order.order_id.clone() }).await.unwrap_err();
    assert!(early.message().contains("DeliveryWindowOpen"), "{}", early.message());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refunded = w.consumer.refund(OrderAction { order_id: order.order_id.clone() }).await;
    let refunded = match refunded {
        Ok(info) => info.into_inner(),
        Err(e) => panic!("refund after the window: {e}"),
    };
    assert_eq!(refunded.status, "refunded");
    let consumer_address: Address = w.consumer_node.runtime.address.parse().unwrap();
    let exchange = Exchange::new(w.deployment.address("Exchange").unwrap(), &w.governor);
    assert_eq!(exchange.credits(consumer_address, Address::ZERO).call().await.unwrap(), price);
}
