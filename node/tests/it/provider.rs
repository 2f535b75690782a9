//! The provider role in a real `airblocd` process on a real anvil, driven over gRPC: registry
//! calls, ingestion with schema and consent checks, sealing a bundle anchored on DataRegistry.

use super::support::NodeProcess;
use airbloc_node::{
    chain::contracts::{Consents, DataRegistry, Users, actions},
    mined,
    test_utils::{deploy_local, dev_key, signing_provider, spawn_anvil_with},
};
use airbloc_proto::v1::{
    IngestRecord, ListBundlesRequest, RegisterAppRequest, RegisterDataTypeRequest, RejectReason, SealBundleRequest,
    StatusRequest, node_client::NodeClient, provider_client::ProviderClient,
};
use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, U256},
    providers::Provider as _,
    rpc::types::TransactionRequest,
};
use std::time::Duration;
use tonic::{codegen::InterceptedService, transport::Channel};

type Authed = InterceptedService<Channel, airbloc_proto::BearerInterceptor>;

fn clients(node: &NodeProcess) -> (ProviderClient<Authed>, NodeClient<Authed>) {
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", node.runtime.grpc_addr)).unwrap().connect_lazy();
    let auth = airbloc_proto::bearer(&node.token()).unwrap();
    (ProviderClient::with_interceptor(channel.clone(), auth.clone()), NodeClient::with_interceptor(channel, auth))
}

const SCHEMA: &str = r#"{"type":"object","required":["temp"],"properties":{"temp":{"type":"number"},"city":{"type":"string"}},"additionalProperties":false}"#;

#[tokio::test(flavor = "multi_thread")]
async fn records_are_checked_stored_and_sealed_into_an_anchored_bundle() {
    let anvil = spawn_anvil_with(&["--block-time", "1"]);
    let (_, governor, deployment) = deploy_local(&anvil, false).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let node = NodeProcess::start(
        &dir.path().join("provider"),
        &anvil.endpoint(),
        &["--roles", "provider", "--chain.deployment", deployment_file.to_str().unwrap(), "--chain.confirmations", "0"],
    );
    let address: Address = node.runtime.address.parse().unwrap();
    governor
        .send_transaction(TransactionRequest::default().with_to(address).with_value(U256::from(10u128.pow(19))))
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let (mut provider, mut status) = clients(&node);

    let app = provider.register_app(RegisterAppRequest { name: "weather".into() }).await.unwrap().into_inner();
    let app_id = B256::from_slice(&app.app_id);
    let bad_schema = provider
        .register_data_type(RegisterDataTypeRequest { name: "broken".into(), schema_json: "{not json".into() })
        .await
        .unwrap_err();
    assert_eq!(bad_schema.code(), tonic::Code::InvalidArgument);
    assert!(bad_schema.message().contains("not JSON"), "{}", bad_schema.message());
    let data_type = provider
        .register_data_type(RegisterDataTypeRequest { name: "reading".into(), schema_json: SCHEMA.into() })
        .await
        .unwrap()
        .into_inner();
    let data_type_id = B256::from_slice(&data_type.data_type_id);

    // Alice allows collection; Bob has an account but never consented.
    let at = |name| deployment.address(name).unwrap();
    let mut users = Vec::new();
    for i in [3, 4] {
        let wallet = signing_provider(&anvil, &dev_key(&anvil, i));
        let receipt = mined!(Users::new(at("Users"), wallet.clone()).create());
        users.push((wallet, receipt.decoded_log::<Users::UserCreated>().unwrap().userId));
    }
    let (alice_wallet, alice) = users[0].clone();
    let bob = users[1].1;
    let input = Consents::ConsentInput {
        userId: alice,
        appId: app_id,
        action: actions::COLLECT,
        dataTypeId: data_type_id,
        allowed: true,
    };
    let block = mined!(Consents::new(at("Consents"), alice_wallet).setConsents(vec![input])).block_number.unwrap();
    while status.status(StatusRequest {}).await.unwrap().into_inner().indexed_block < block {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1,000 records: most valid from Alice; every 10th breaks the schema; every 7th is Bob's;
    // one has a short user id.
    let record = |i: u64| {
        let user = if i % 7 == 3 { bob } else { alice };
        let payload = if i % 10 == 5 {
            format!(r#"{{"temp":"hot","n":{i}}}"#)
        } else {
            format!(r#"{{"temp":{i}.5,"city":"Seoul"}}"#)
        };
        IngestRecord {
            app_id: app_id.to_vec(),
            data_type_id: data_type_id.to_vec(),
            user_id: if i == 999 { vec![1; 5] } else { user.to_vec() },
            collected_at_ms: 1_700_000_000_000 + i,
            payload_json: payload,
            ..Default::default()
        }
    };
    let records: Vec<IngestRecord> = (0..1000).map(record).collect();
    let summary = provider.ingest(futures::stream::iter(records.clone())).await.unwrap().into_inner();
    let expected_rejections = |i: u64| i == 999 || i % 10 == 5 || i % 7 == 3;
    let accepted = (0..1000).filter(|i| !expected_rejections(*i)).count() as u64;
    assert_eq!(summary.accepted, accepted);
    assert_eq!(summary.rejected.len() as u64, 1000 - accepted);
    for rejection in &summary.rejected {
        let i = rejection.index;
        let expected = if i == 999 {
            RejectReason::Malformed
        } else if i % 10 == 5 {
            RejectReason::Schema
        } else {
            RejectReason::NoConsent
        };
        assert_eq!(rejection.reason, expected as i32, "record {i}: {}", rejection.message);
        assert!(!rejection.message.is_empty());
    }
    // Sent again, nothing is stored twice.
    let again = provider.ingest(futures::stream::iter(records)).await.unwrap().into_inner();
    assert_eq!((again.accepted, again.duplicates), (0, accepted));

    // Sealing: one bundle with exactly the accepted records, anchored on chain.
    let bundle = provider
        .seal_bundle(SealBundleRequest { app_id: app_id.to_vec(), data_type_id: data_type_id.to_vec() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bundle.record_count, accepted);
    let on_chain = DataRegistry::new(at("DataRegistry"), &governor)
        .getBundle(B256::from_slice(&bundle.bundle_id))
        .call()
        .await
        .unwrap();
    assert_eq!(on_chain.provider, address);
    assert_eq!(on_chain.merkleRoot.to_vec(), bundle.merkle_root);
    assert_eq!(on_chain.ciphertextHash.to_vec(), bundle.ciphertext_hash);
    assert_eq!((on_chain.recordCount, on_chain.size), (bundle.record_count, bundle.size));
    let listed = provider.list_bundles(ListBundlesRequest {}).await.unwrap().into_inner().bundles;
    assert_eq!(listed, vec![bundle]);
    // Nothing is left to seal.
    let empty = provider
        .seal_bundle(SealBundleRequest { app_id: app_id.to_vec(), data_type_id: data_type_id.to_vec() })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::NotFound);
    // Bad ids are named.
    let err = provider.seal_bundle(SealBundleRequest { app_id: vec![1], data_type_id: vec![] }).await.unwrap_err();
    assert!(err.message().contains("app_id must be 32 bytes"), "{}", err.message());

    // Sealing by policy: at 100 pending records, and when the oldest has waited 2 s.
    drop(node);
    let node = NodeProcess::start(
        &dir.path().join("provider"),
        &anvil.endpoint(),
        &[
            "--roles",
            "provider",
            "--chain.deployment",
            deployment_file.to_str().unwrap(),
            "--chain.confirmations",
            "0",
            "--provider.seal-records",
            "100",
            "--provider.seal-age-secs",
            "2",
        ],
    );
    let (mut provider, _) = clients(&node);
    let fresh = |from: u64, n: u64| -> Vec<IngestRecord> {
        (from..from + n)
            .map(|i| IngestRecord {
                app_id: app_id.to_vec(),
                data_type_id: data_type_id.to_vec(),
                user_id: alice.to_vec(),
                collected_at_ms: 1_800_000_000_000 + i,
                payload_json: format!(r#"{{"temp":{i}}}"#),
                ..Default::default()
            })
            .collect()
    };
    let client = provider.clone();
    let wait_bundles = move |count: usize| {
        let mut provider = client.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let bundles = provider.list_bundles(ListBundlesRequest {}).await.unwrap().into_inner().bundles;
                if bundles.len() >= count && bundles.iter().all(|b| b.registered_block > 0) {
                    return bundles;
                }
                assert!(tokio::time::Instant::now() < deadline, "no bundle sealed by policy: {bundles:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let summary = provider.ingest(futures::stream::iter(fresh(0, 150))).await.unwrap().into_inner();
    assert_eq!(summary.accepted, 150);
    let bundles = wait_bundles(2).await;
    assert!(bundles.iter().any(|b| b.record_count == 150), "{bundles:?}");
    let started = std::time::Instant::now();
    provider.ingest(futures::stream::iter(fresh(150, 5))).await.unwrap();
    let bundles = wait_bundles(3).await;
    assert!(bundles.iter().any(|b| b.record_count == 5), "{bundles:?}");
    assert!(started.elapsed() >= Duration::from_secs(2), "sealed by age, not before");
}
