//! The whole exchange with real `airblocd` processes on a real anvil, driven over gRPC: a
//! provider ingests and seals, a consumer orders, receives the key, downloads, verifies,
//! decrypts and settles; the provider is paid.

use super::{
    p2p::{chain_node, indexed, register_nodes},
    support::NodeProcess,
};
use airbloc_node::{
    chain::contracts::{Consents, Exchange, Users, actions},
    mined,
    p2p::{FetchRequest, RequestError, transfer},
    test_utils::{deploy_local, dev_key, signing_provider, spawn_anvil_with},
};
use airbloc_proto::{
    p2p::v1 as wire,
    v1::{
        CatalogRequest, CreateOfferRequest, DownloadRequest, GetOrderRequest, IngestRecord, OrderAction,
        PlaceOrderRequest, RegisterAppRequest, RegisterDataTypeRequest, SealBundleRequest, StatusRequest,
        consumer_client::ConsumerClient, node_client::NodeClient, provider_client::ProviderClient,
    },
};
use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, U256},
    providers::Provider as _,
    rpc::types::TransactionRequest,
};
use std::{collections::BTreeSet, time::Duration};
use tokio_util::sync::CancellationToken;
use tonic::{codegen::InterceptedService, transport::Channel};

type Authed = InterceptedService<Channel, airbloc_proto::BearerInterceptor>;

fn channel(node: &NodeProcess) -> (Channel, airbloc_proto::BearerInterceptor) {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", node.runtime.grpc_addr)).unwrap().connect_lazy();
    (channel, airbloc_proto::bearer(&node.token()).unwrap())
}

fn node_client(node: &NodeProcess) -> NodeClient<Authed> {
    let (c, a) = channel(node);
    NodeClient::with_interceptor(c, a)
}

const SCHEMA: &str = r#"{"type":"object","required":["steps"],"properties":{"steps":{"type":"integer","minimum":0},"device":{"type":"string"}}}"#;
const RECORDS: u64 = 10_000;

async fn wait_indexed(node: &NodeProcess, block: u64) {
    let mut client = node_client(node);
    while client.status(StatusRequest {}).await.unwrap().into_inner().indexed_block < block {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_goes_from_provider_to_a_paying_consumer_decrypted_and_verified() {
    let anvil = spawn_anvil_with(&["--block-time", "1"]);
    let (_, governor, deployment) = deploy_local(&anvil, false).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let deployment_arg = deployment_file.to_str().unwrap();
    let rpc = anvil.endpoint();
    let boot = NodeProcess::start(
        &dir.path().join("boot"),
        &rpc,
        &["--roles", "bootnode", "--chain.deployment", deployment_arg],
    );
    let boot_addr = boot.runtime.p2p_addrs[0].clone();
    let start = |name: &str, role: &str| {
        let args = [
            "--roles",
            role,
            "--chain.deployment",
            deployment_arg,
            "--chain.confirmations",
            "0",
            "--p2p.bootnodes",
            &boot_addr,
        ];
        NodeProcess::start(&dir.path().join(name), &rpc, &args)
    };
    let provider_node = start("provider", "provider");
    let consumer_node = start("consumer", "consumer");
    let provider_address: Address = provider_node.runtime.address.parse().unwrap();
    let consumer_address: Address = consumer_node.runtime.address.parse().unwrap();
    for to in [provider_address, consumer_address] {
        let tx = TransactionRequest::default().with_to(to).with_value(U256::from(10u128.pow(20)));
        governor.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    }
    let (c, a) = channel(&provider_node);
    let mut provider = ProviderClient::with_interceptor(c, a);
    let (c, a) = channel(&consumer_node);
    let mut consumer = ConsumerClient::with_interceptor(c, a);

    // The provider's app and data type.
    let app_id = B256::from_slice(
        &provider.register_app(RegisterAppRequest { name: "fitness".into() }).await.unwrap().into_inner().app_id,
    );
    let data_type_id = B256::from_slice(
        &provider
            .register_data_type(RegisterDataTypeRequest { name: "daily-steps".into(), schema_json: SCHEMA.into() })
            .await
            .unwrap()
            .into_inner()
            .data_type_id,
    );

    // Three users: two allow collection and exchange, the third allows nothing.
    let at = |name| deployment.address(name).unwrap();
    let mut users = Vec::new();
    let mut last_block = 0;
    for (i, allow) in [(5, true), (6, true), (7, false)] {
        let wallet = signing_provider(&anvil, &dev_key(&anvil, i));
        let user = mined!(Users::new(at("Users"), wallet.clone()).create())
            .decoded_log::<Users::UserCreated>()
            .unwrap()
            .userId;
        if allow {
            let consents = [actions::COLLECT, actions::EXCHANGE].map(|action| Consents::ConsentInput {
                userId: user,
                appId: app_id,
                action,
                dataTypeId: data_type_id,
                allowed: true,
            });
            last_block =
                mined!(Consents::new(at("Consents"), wallet).setConsents(consents.to_vec())).block_number.unwrap();
        }
        users.push(user);
    }
    wait_indexed(&provider_node, last_block).await;

    // 10,000 records: every 13th breaks the schema, the third user's are refused.
    let record = |i: u64| IngestRecord {
        app_id: app_id.to_vec(),
        data_type_id: data_type_id.to_vec(),
        user_id: users[(i % 3) as usize].to_vec(),
        collected_at_ms: 1_750_000_000_000 + i,
        payload_json: if i % 13 == 0 {
            format!(r#"{{"steps":"many-{i}"}}"#)
        } else {
            format!(r#"{{"steps":{i},"device":"band-{}"}}"#, i % 5)
        },
    };
    let inputs: Vec<IngestRecord> = (0..RECORDS).map(record).collect();
    let summary = provider.ingest(futures::stream::iter(inputs.clone())).await.unwrap().into_inner();
    let accepted: Vec<&IngestRecord> =
        inputs.iter().enumerate().filter(|(i, _)| i % 3 != 2 && i % 13 != 0).map(|(_, r)| r).collect();
    assert_eq!(summary.accepted, accepted.len() as u64);
    assert_eq!(summary.rejected.len(), inputs.len() - accepted.len());

    let bundle = provider
        .seal_bundle(SealBundleRequest { app_id: app_id.to_vec(), data_type_id: data_type_id.to_vec() })
        .await
        .unwrap()
        .into_inner();
    let price = U256::from(10u128.pow(18));
    let offer = provider
        .create_offer(CreateOfferRequest {
            bundle_ids: vec![bundle.bundle_id.clone()],
            price_wei: price.to_string(),
            consumer: String::new(),
            delivery_window_secs: 3600,
            dispute_window_secs: 3600,
            expires_in_secs: 3600,
        })
        .await
        .unwrap()
        .into_inner();

    // The consumer finds it in its catalog and orders.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let entry = loop {
        let entries = consumer
            .catalog(CatalogRequest { app_id: app_id.to_vec(), ..Default::default() })
            .await
            .unwrap()
            .into_inner()
            .entries;
        if let Some(entry) = entries.into_iter().find(|e| e.bundle_id == bundle.bundle_id && !e.offers.is_empty()) {
            break entry;
        }
        assert!(tokio::time::Instant::now() < deadline, "the offer never reached the consumer's catalog");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(entry.record_count, accepted.len() as u64);
    assert_eq!(entry.offers[0].offer_id, offer.offer_id);
    assert_eq!(entry.offers[0].price_wei, price.to_string());
    let order =
        consumer.place_order(PlaceOrderRequest { offer_id: offer.offer_id.clone() }).await.unwrap().into_inner();

    // The provider delivers the key on its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let info = consumer.get_order(GetOrderRequest { order_id: order.order_id.clone() }).await.unwrap().into_inner();
        if info.key_received && info.status == "delivered" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no delivery: {info:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A node that did not order gets neither key nor data.
    let cancel = CancellationToken::new();
    let stranger_key = dev_key(&anvil, 8);
    let block = register_nodes(&anvil, &deployment, &[&stranger_key]).await;
    let stranger = chain_node(&anvil, &deployment, stranger_key, vec![], &cancel).await;
    indexed(&[&stranger], block).await;
    wait_indexed(&provider_node, block).await;
    let provider_peer: libp2p::PeerId = provider_node.runtime.peer_id.parse().unwrap();
    stranger.network.dial(provider_node.runtime.p2p_addrs[0].parse().unwrap()).await.unwrap();
    let bundle_id = B256::from_slice(&bundle.bundle_id);
    let refused = stranger
        .network
        .request(
            provider_peer,
            wire::request::Body::KeyRequest(wire::KeyRequest {
                order_id: order.order_id.clone(),
                bundle_id: bundle.bundle_id.clone(),
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, RequestError::Remote { code: wire::ErrorCode::Forbidden, .. }), "{refused:?}");
    let refused = stranger
        .network
        .request(
            provider_peer,
            wire::request::Body::BundleMetadata(wire::BundleMetadataRequest { bundle_id: bundle.bundle_id.clone() }),
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, RequestError::Remote { code: wire::ErrorCode::Forbidden, .. }), "{refused:?}");
    let manifest = airbloc_node::crypto::chunks::ChunkManifest::new(4096, 0, vec![]).unwrap();
    let request = FetchRequest {
        bundle: bundle_id,
        manifest: manifest.into(),
        peers: vec![provider_peer],
        dest: dir.path().join("stolen"),
    };
    let _ = transfer::fetch(&stranger.network, &request, |_| {}, &CancellationToken::new()).await;
    let mut stream = stranger.network.open_stream(provider_peer, transfer::PROTOCOL).await.unwrap();
    airbloc_node::p2p::codec::write_frame(
        &mut stream,
        &wire::TransferRequest { bundle_id: bundle.bundle_id.clone(), from_chunk: 0 },
    )
    .await
    .unwrap();
    let header: wire::TransferHeader = airbloc_node::p2p::codec::read_frame(&mut stream, 4096).await.unwrap();
    assert_eq!(header.error.unwrap().code, wire::ErrorCode::Forbidden as i32);
    cancel.cancel();

    // Download, verify, decrypt.
    let output = dir.path().join("records.ndjson");
    let mut progress = consumer
        .download(DownloadRequest {
            order_id: order.order_id.clone(),
            bundle_id: bundle.bundle_id.clone(),
            output_path: output.display().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(message) = progress.message().await.unwrap() {
        last = Some(message);
    }
    let last = last.unwrap();
    assert!(last.done);
    assert_eq!(last.records, accepted.len() as u64);
    let got: BTreeSet<(String, u64, String)> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["data_type"], serde_json::json!(data_type_id));
            (
                v["user_id"].as_str().unwrap().to_owned(),
                v["collected_at_ms"].as_u64().unwrap(),
                v["payload"].to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, u64, String)> = accepted
        .iter()
        .map(|r| {
            let payload: serde_json::Value = serde_json::from_str(&r.payload_json).unwrap();
            (B256::from_slice(&r.user_id).to_string(), r.collected_at_ms, payload.to_string())
        })
        .collect();
    assert_eq!(got, want, "the decrypted records are exactly the accepted inputs");

    // Settle: the provider is paid the price.
    let settled = consumer.settle(OrderAction { order_id: order.order_id.clone() }).await.unwrap().into_inner();
    assert_eq!(settled.status, "settled");
    let credit =
        Exchange::new(at("Exchange"), &governor).credits(provider_address, Address::ZERO).call().await.unwrap();
    assert_eq!(credit, price);
}
