//! Provider ingestion, measured as a ratio within one run: 1 KiB JSON records with schema and
//! consent checks, sealed and fsynced in batches, through the gRPC `Provider.Ingest` stream over
//! loopback vs the same ingestion called in process. Also the time to seal them into a bundle.
//!
//! Run: `cargo bench -p airbloc-node --bench roles` (add `-- --quick` for 20,000 records).
#![allow(clippy::unwrap_used)] // a benchmark stops loudly on any failure

use airbloc_node::{
    api::ProviderService,
    backend::{Backend, Ready},
    chain::{
        ChainServices,
        contracts::{AppRegistry, Consents, DataTypeRegistry, Users, actions},
        indexer::{Indexer, IndexerConfig},
        outbox::{Outbox, OutboxConfig},
        state::ChainState,
    },
    daemon::connect,
    mined,
    roles::provider::{IncomingRecord, Provider, Verdict},
    store::Store,
    test_utils::{deploy_local, spawn_anvil},
};
use airbloc_proto::v1::{IngestRecord, provider_client::ProviderClient, provider_server::ProviderServer};
use alloy::network::EthereumWallet;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;

const SCHEMA: &str = r#"{"type":"object","required":["id","note"],"properties":{"id":{"type":"integer"},"note":{"type":"string","maxLength":2000}}}"#;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 20_000 } else { 100_000 };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(bench(n));
}

async fn bench(n: u64) {
    println!("== ingest: {n} records of ~1 KiB, schema + consent checks, fsynced batches of 1,024 ==");
    let anvil = spawn_anvil();
    let (governor, provider_rpc, deployment) = deploy_local(&anvil, false).await;
    let at = |name| deployment.address(name).unwrap();
    let app = mined!(AppRegistry::new(at("AppRegistry"), provider_rpc.clone()).register("bench".into()))
        .decoded_log::<AppRegistry::AppRegistered>()
        .unwrap()
        .appId;
    let data_type = mined!(
        DataTypeRegistry::new(at("DataTypeRegistry"), provider_rpc.clone())
            .register("note".into(), alloy::primitives::keccak256(SCHEMA))
    )
    .decoded_log::<DataTypeRegistry::DataTypeRegistered>()
    .unwrap()
    .dataTypeId;
    let user = mined!(Users::new(at("Users"), provider_rpc.clone()).create())
        .decoded_log::<Users::UserCreated>()
        .unwrap()
        .userId;
    let consent = Consents::ConsentInput {
        userId: user,
        appId: app,
        action: actions::COLLECT,
        dataTypeId: data_type,
        allowed: true,
    };
    let block =
        mined!(Consents::new(at("Consents"), provider_rpc.clone()).setConsents(vec![consent])).block_number.unwrap();

    let cancel = CancellationToken::new();
    let make_provider = || async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db")).unwrap());
        let rpc = connect(&anvil.endpoint()).await.unwrap();
        let state = ChainState::new(store.clone());
        let outbox_config = OutboxConfig { confirmations: 0, ..OutboxConfig::default() };
        let outbox =
            Outbox::new(store.clone(), rpc.clone(), EthereumWallet::from(governor.signer().clone()), outbox_config)
                .unwrap();
        let (indexer, handle) = Indexer::over(
            &state,
            rpc,
            &deployment,
            IndexerConfig { poll_interval: Duration::from_millis(50), ..Default::default() },
        )
        .unwrap();
        tokio::spawn(indexer.run(cancel.clone()));
        tokio::spawn(outbox.clone().run(cancel.clone()));
        handle.wait_for(block).await;
        let services = ChainServices {
            deployment: Arc::new(deployment.clone()),
            outbox,
            indexer: handle,
            state,
            shutdown: cancel.clone(),
        };
        let key = airbloc_node::keys::NodeKey::from_secret(governor.secret_bytes()).unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let (network, builder) = airbloc_node::p2p::build(
            &airbloc_node::p2p::NetworkConfig::default(),
            key.libp2p_keypair(),
            airbloc_node::p2p::Admission::Open,
            &mut registry,
        )
        .unwrap();
        tokio::spawn(builder.start(airbloc_node::p2p::Handlers::default()).run(cancel.clone()));
        let backend = Backend::new(store, services, network);
        let provider = Provider::open(backend, key, dir.path(), None).unwrap();
        provider.store_schema(SCHEMA).unwrap();
        (provider, dir)
    };
    let note = "x".repeat(1000);
    let record = |i: u64| IncomingRecord {
        app,
        data_type,
        user,
        collected_at_ms: 1_700_000_000_000 + i,
        payload_json: format!(r#"{{"id":{i},"note":"{note}"}}"#),
    };

    // In process.
    let (local, _local_dir) = make_provider().await;
    let records: Vec<IncomingRecord> = (0..n).map(record).collect();
    let t = Instant::now();
    for batch in records.chunks(1024) {
        let local = local.clone();
        let batch = batch.to_vec();
        let verdicts = tokio::task::spawn_blocking(move || local.ingest(&batch)).await.unwrap().unwrap();
        assert!(verdicts.iter().all(|v| *v == Verdict::Accepted));
    }
    let in_process = n as f64 / t.elapsed().as_secs_f64();

    // Over gRPC on loopback.
    let (remote, _remote_dir) = make_provider().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ProviderServer::new(ProviderService::new(Ready::now(remote.clone()))))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let mut client = ProviderClient::connect(format!("http://{addr}")).await.unwrap();
    let wire: Vec<IngestRecord> = records
        .iter()
        .map(|r| IngestRecord {
            app_id: r.app.to_vec(),
            data_type_id: r.data_type.to_vec(),
            user_id: r.user.to_vec(),
            collected_at_ms: r.collected_at_ms,
            payload_json: r.payload_json.clone(),
            ..Default::default()
        })
        .collect();
    let t = Instant::now();
    let summary = client.ingest(futures::stream::iter(wire)).await.unwrap().into_inner();
    let over_grpc = n as f64 / t.elapsed().as_secs_f64();
    assert_eq!(summary.accepted, n);
    println!("in process: {in_process:.0} records/s");
    println!("gRPC:       {over_grpc:.0} records/s = {:.2} of in process", over_grpc / in_process);

    let t = Instant::now();
    let bundle = remote.seal(app, data_type).await.unwrap();
    println!(
        "seal {n} records ({} MiB) into a bundle, register it on anvil (automine) and index it: {:.2} s",
        bundle.size >> 20,
        t.elapsed().as_secs_f64()
    );
    cancel.cancel();
}
