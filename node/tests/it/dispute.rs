//! A provider whose registration does not match the data it serves (its registered Merkle root
//! is not the root of its records): the consumer's download refuses the data with `DATA_LOSS`,
//! and a dispute carrying the provider's own signed statement of the root it served refunds the
//! consumer in full. The faulty provider is built from the library (a real airblocd never
//! registers such a bundle); the consumer is a real `airblocd` process.

use super::{
    p2p::{chain_node, indexed, register_nodes},
    world::World,
};
use airbloc_node::{
    chain::contracts::{AppRegistry, DataRegistry, DataTypeRegistry, Exchange},
    crypto::{
        Dek,
        chunks::{ChunkManifest, chunk_size_for},
        eip712::{DeliveryProof, exchange_domain, proof_hash},
        merkle::MerkleTree,
        record::Record,
        stream, wrap,
    },
    keys::NodeKey,
    mined,
    roles::body,
    test_utils::{dev_key, signing_provider},
};
use airbloc_proto::{
    p2p::v1 as wire,
    v1::{DownloadRequest, OrderAction, PlaceOrderRequest},
};
use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::SignerSync,
    sol_types::SolStruct,
};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_that_does_not_match_the_chain_is_disputed_and_refunded() {
    let mut w = World::new().await;
    let cancel = CancellationToken::new();
    let key = dev_key(&w.anvil, 9);
    let wallet = signing_provider(&w.anvil, &key);
    let deployment = w.deployment.clone();
    let at = |name| deployment.address(name).unwrap();

    // The faulty provider's records, sealed, and a registration with the wrong root.
    let app = mined!(AppRegistry::new(at("AppRegistry"), &wallet).register("shady".into()))
        .decoded_log::<AppRegistry::AppRegistered>()
        .unwrap()
        .appId;
    let data_type =
        mined!(DataTypeRegistry::new(at("DataTypeRegistry"), &wallet).register("shady-type".into(), keccak256("{}")))
            .decoded_log::<DataTypeRegistry::DataTypeRegistered>()
            .unwrap()
            .dataTypeId;
    let dek = Dek::generate();
    let path = w.dir.path().join("shady.bin");
    let mut file = std::fs::File::create(&path).unwrap();
    let (mut leaves, mut size) = (Vec::new(), 0u64);
    for i in 0..5u64 {
        let canonical = Record {
            user_id: w.users[0],
            data_type,
            collected_at_ms: 1_700_000_000_000 + i,
            payload: format!(r#"{{"n":{i}}}"#).into_bytes(),
        }
        .encode()
        .unwrap();
        let sealed = stream::seal(&dek, &canonical);
        size += body::write_entry(&mut file, w.users[0], &sealed).unwrap();
        leaves.push(body::leaf(w.users[0], i, &sealed));
    }
    drop(file);
    let served_root = MerkleTree::new(&leaves).unwrap().root();
    let manifest = ChunkManifest::compute(std::fs::File::open(&path).unwrap(), chunk_size_for(size)).unwrap();
    let bundle = mined!(DataRegistry::new(at("DataRegistry"), &wallet).registerBundle(
        app,
        data_type,
        keccak256("not the root of those records"),
        5,
        manifest.commitment(),
        size,
        String::new()
    ))
    .decoded_log::<DataRegistry::BundleRegistered>()
    .unwrap()
    .bundleId;
    let price = U256::from(777u64);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let terms = Exchange::OfferTerms {
        bundleIds: vec![bundle],
        consumer: Address::ZERO,
        token: Address::ZERO,
        price,
        deliveryWindow: 600,
        disputeWindow: 600,
        expiresAt: now + 3600,
    };
    let exchange = Exchange::new(at("Exchange"), &wallet);
    let offer = mined!(exchange.createOffer(terms)).decoded_log::<Exchange::OfferCreated>().unwrap().offerId;

    // On the network, serving the file.
    let block = register_nodes(&w.anvil, &w.deployment, &[&key]).await;
    let fake = chain_node(
        &w.anvil,
        &w.deployment,
        NodeKey::from_secret(key.secret_bytes()).unwrap(),
        vec![w.boot_addr.parse().unwrap()],
        &cancel,
    )
    .await;
    fake.bundles.add(bundle, &path, manifest.chunk_size).unwrap();
    indexed(&[&fake], block).await;
    super::world::wait_indexed(&w.consumer_node, block + 1).await;

    // The consumer orders; the provider delivers the key with its signed served root.
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id: offer.to_vec() }).await.unwrap().into_inner();
    let order_id = B256::from_slice(&order.order_id);
    let state = &fake.services.as_ref().unwrap().state;
    let row = loop {
        if let Some(row) = state.order(order_id).unwrap() {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wrapped_key = wrap::wrap_dek(&row.consumer_public_key, &dek).unwrap();
    let statement = DeliveryProof { order: order_id, bundle, leaf: served_root, proofHash: proof_hash(&[]) };
    let digest = statement.eip712_signing_hash(&exchange_domain(w.deployment.chain_id, at("Exchange")));
    let signature = key.signer().sign_hash_sync(&digest).unwrap();
    let consumer_address: Address = w.consumer_node.runtime.address.parse().unwrap();
    let peer = fake.network.connect_node(state, consumer_address, Duration::from_secs(10)).await.unwrap();
    let delivery = wire::KeyDelivery {
        order_id: order_id.to_vec(),
        bundle_id: bundle.to_vec(),
        wrapped_key: wrapped_key.clone(),
        delivered_bundle_id: vec![],
        served_root: served_root.to_vec(),
        served_root_signature: signature.as_bytes().to_vec(),
    };
    fake.network.request(peer, wire::request::Body::KeyDelivery(delivery)).await.unwrap();
    // A fresh signer: register_nodes sent from this key through another provider (nonce cache).
    let exchange = Exchange::new(at("Exchange"), signing_provider(&w.anvil, &key));
    mined!(exchange.deliver(order_id, keccak256(&wrapped_key), keccak256(&row.consumer_public_key)));
    w.wait_order(&order.order_id, Duration::from_secs(30), |o| o.key_received && o.status == "delivered").await;

    // The download finds the records do not match the registered root.
    let refused = w
        .consumer
        .download(DownloadRequest {
            order_id: order.order_id.clone(),
            bundle_id: bundle.to_vec(),
            output_path: w.dir.path().join("shady.ndjson").display().to_string(),
        })
        .await;
    let error = match refused {
        Err(e) => e,
        Ok(stream) => {
            let mut stream = stream.into_inner();
            loop {
                match stream.message().await {
                    Err(e) => break e,
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("the download of mismatching data succeeded"),
                }
            }
        }
    };
    assert_eq!(error.code(), tonic::Code::DataLoss, "{error}");
    assert!(!w.dir.path().join("shady.ndjson").exists(), "nothing unverified is written");

    // The dispute refunds the consumer in full.
    let disputed = w.consumer.dispute(OrderAction { order_id: order.order_id.clone() }).await.unwrap().into_inner();
    assert_eq!(disputed.status, "disputed");
    let credits = Exchange::new(at("Exchange"), &w.governor).credits(consumer_address, Address::ZERO).call().await;
    assert_eq!(credits.unwrap(), price);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_honest_delivery_cannot_be_disputed() {
    let mut w = World::new().await;
    let inputs: Vec<_> = (0..50).filter(|i| World::accepted(*i)).map(|i| w.record(i)).collect();
    w.provider.ingest(futures::stream::iter(inputs)).await.unwrap();
    let (_, offer_id) = w.seal_and_offer(U256::from(1000u64), 600).await;
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id }).await.unwrap().into_inner();
    w.wait_order(&order.order_id, Duration::from_secs(60), |o| o.key_received && o.status == "delivered").await;
    let refused = w.consumer.dispute(OrderAction { order_id: order.order_id.clone() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("nothing to dispute"), "{}", refused.message());
}
