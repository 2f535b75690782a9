//! The contract suite on a real anvil: deployed by the same deployer users run, one path through
//! every contract with decoded events, custom errors decoded in Rust, EIP-712 consents signed by
//! viem, and the gas figures of the operations users pay for.

use airbloc_node::{
    chain::{
        contracts::{
            AppRegistry, Consents, ControllerRegistry, DataRegistry, DataTypeRegistry, Exchange, NodeRegistry, Users,
            actions, roles,
        },
        deploy::{DeployOptions, deploy_all},
        deployment::Deployment,
    },
    crypto::eip712::{Consent, ConsentBatch, consents_domain},
    keys::NodeKey,
    test_utils::{dev_key, signing_provider, spawn_anvil, workspace_root},
};
use alloy::{
    node_bindings::AnvilInstance,
    primitives::{Address, B256, Bytes, U256, keccak256},
    providers::{DynProvider, Provider},
    rpc::types::TransactionReceipt,
    signers::Signer,
    sol_types::{SolEvent, SolStruct, SolValue},
};
use std::{io::Write, process::Stdio};

struct Actor {
    key: NodeKey,
    provider: DynProvider,
}

impl Actor {
    fn new(anvil: &AnvilInstance, index: usize) -> Self {
        let key = dev_key(anvil, index);
        let provider = signing_provider(anvil, &key);
        Self { key, provider }
    }

    fn address(&self) -> Address {
        self.key.address()
    }
}

/// The first log of type `E` in a receipt.
fn event<E: SolEvent>(receipt: &TransactionReceipt) -> E {
    receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| log.log_decode::<E>().ok())
        .map(|decoded| decoded.inner.data)
        .unwrap_or_else(|| panic!("no {} event in {:?}", E::SIGNATURE, receipt.transaction_hash))
}

use airbloc_node::mined;

fn leaf(user: B256, index: u64, ciphertext_hash: B256) -> B256 {
    keccak256(keccak256((user, index, ciphertext_hash).abi_encode()))
}

fn hash_pair(a: B256, b: B256) -> B256 {
    if a < b {
        keccak256([a.as_slice(), b.as_slice()].concat())
    } else {
        keccak256([b.as_slice(), a.as_slice()].concat())
    }
}

#[tokio::test]
async fn deploy_then_one_path_through_every_contract() {
    let anvil = spawn_anvil();
    let governor = Actor::new(&anvil, 0);
    let keeper = Actor::new(&anvil, 1);
    let provider = Actor::new(&anvil, 2);
    let consumer = Actor::new(&anvil, 3);
    let alice = Actor::new(&anvil, 4);

    let deployment = deploy_all(&governor.provider, &DeployOptions { governor: governor.address(), test_token: true })
        .await
        .expect("deploy");
    assert_eq!(deployment.chain_id, 31337);

    // deployment.json round-trips and names every contract.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployment.json");
    deployment.save(&file).unwrap();
    assert_eq!(Deployment::load(&file).unwrap(), deployment);
    let at = |name| deployment.address(name).unwrap();

    // NodeRegistry: the provider node registers itself with the PeerId of its own key.
    let peer_id = Bytes::from(provider.key.peer_id().to_bytes());
    let nodes = NodeRegistry::new(at("NodeRegistry"), provider.provider.clone());
    let receipt = mined!(nodes.register(
        roles::PROVIDER | roles::CONSUMER,
        peer_id.clone(),
        vec!["/ip4/127.0.0.1/tcp/9650".into()]
    ));
    let registered: NodeRegistry::NodeRegistered = event(&receipt);
    assert_eq!(registered.node, provider.address());
    assert_eq!(registered.peerId, peer_id);
    assert!(nodes.hasRole(provider.address(), roles::PROVIDER).call().await.unwrap());

    // Someone else's PeerId is refused, with the custom error decoded.
    let err = NodeRegistry::new(at("NodeRegistry"), alice.provider.clone())
        .register(roles::CONSUMER, peer_id.clone(), vec![])
        .call()
        .await
        .unwrap_err();
    let decoded = err.as_decoded_interface_error::<NodeRegistry::NodeRegistryErrors>().expect("custom error");
    assert!(matches!(decoded, NodeRegistry::NodeRegistryErrors::PeerIdMismatch(_)), "{decoded:?}");

    // ControllerRegistry: the governor admits the keeper.
    let controllers = ControllerRegistry::new(at("ControllerRegistry"), governor.provider.clone());
    let receipt = mined!(controllers.addController(keeper.address()));
    assert_eq!(event::<ControllerRegistry::ControllerAdded>(&receipt).controller, keeper.address());

    // Users: alice with a wallet, and a wallet-less user through the keeper.
    let receipt = mined!(Users::new(at("Users"), alice.provider.clone()).create());
    let alice_id = event::<Users::UserCreated>(&receipt).userId;
    let preimage = B256::repeat_byte(0x42);
    let identity_hash = keccak256(preimage);
    let receipt = mined!(Users::new(at("Users"), keeper.provider.clone()).createTemporary(identity_hash));
    let temp = event::<Users::TemporaryUserCreated>(&receipt);
    assert_eq!(temp.controller, keeper.address());
    let temp_id = temp.userId;

    // AppRegistry and DataTypeRegistry.
    let receipt = mined!(AppRegistry::new(at("AppRegistry"), provider.provider.clone()).register("weather".into()));
    let app_id = event::<AppRegistry::AppRegistered>(&receipt).appId;
    assert_eq!(app_id, keccak256("weather"));
    let schema_hash = keccak256(br#"{"type":"object"}"#);
    let receipt = mined!(
        DataTypeRegistry::new(at("DataTypeRegistry"), provider.provider.clone())
            .register("location".into(), schema_hash)
    );
    let data_type_id = event::<DataTypeRegistry::DataTypeRegistered>(&receipt).dataTypeId;

    // Consents: alice directly; the keeper for its user.
    let consents = Consents::new(at("Consents"), alice.provider.clone());
    let input = |user, action, allowed| Consents::ConsentInput {
        userId: user,
        appId: app_id,
        action,
        dataTypeId: data_type_id,
        allowed,
    };
    let receipt = mined!(consents.setConsents(vec![input(alice_id, actions::COLLECT, true)]));
    let changed = event::<Consents::ConsentChanged>(&receipt);
    assert!(changed.allowed && changed.byUser);
    let single_consent_gas = receipt.gas_used;
    let receipt = mined!(
        Consents::new(at("Consents"), keeper.provider.clone())
            .setConsents(vec![input(temp_id, actions::COLLECT, true), input(temp_id, actions::EXCHANGE, true)])
    );
    assert!(!event::<Consents::ConsentChanged>(&receipt).byUser);
    let block = receipt.block_number.unwrap();
    assert!(
        consents.isAllowedAt(temp_id, app_id, actions::EXCHANGE, data_type_id, U256::from(block)).call().await.unwrap()
    );
    assert!(
        !consents
            .isAllowedAt(temp_id, app_id, actions::EXCHANGE, data_type_id, U256::from(block - 1))
            .call()
            .await
            .unwrap()
    );

    // DataRegistry: a two-record bundle; its proofs verify on chain.
    let user = alice_id;
    let (c0, c1) = (keccak256("record 0 ciphertext"), keccak256("record 1 ciphertext"));
    let (l0, l1) = (leaf(user, 0, c0), leaf(user, 1, c1));
    let root = hash_pair(l0, l1);
    let data = DataRegistry::new(at("DataRegistry"), provider.provider.clone());
    let register = data.registerBundle(app_id, data_type_id, root, 2, keccak256("body"), 2048, "".into());
    let receipt = mined!(register);
    let register_bundle_gas = receipt.gas_used;
    let bundle_id = event::<DataRegistry::BundleRegistered>(&receipt).bundleId;
    assert!(data.verify(bundle_id, l0, vec![l1]).call().await.unwrap());
    assert!(data.verifyRecord(bundle_id, user, 1, c1, vec![l0]).call().await.unwrap());
    assert!(!data.verify(bundle_id, keccak256("forged"), vec![l1]).call().await.unwrap());
    // The same bundle again reverts with the named error a retrying node relies on.
    let err = data
        .registerBundle(app_id, data_type_id, root, 2, keccak256("body"), 2048, "".into())
        .call()
        .await
        .unwrap_err();
    match err.as_decoded_interface_error::<DataRegistry::DataRegistryErrors>() {
        Some(DataRegistry::DataRegistryErrors::BundleExists(e)) => assert_eq!(e.bundleId, bundle_id),
        other => panic!("expected BundleExists, got {other:?}"),
    }

    // Exchange: offer → order (ETH in escrow) → deliver → settle → withdraw.
    let price = U256::from(10u64).pow(U256::from(17u64));
    let exchange = Exchange::new(at("Exchange"), provider.provider.clone());
    let now = provider.provider.get_block_by_number(Default::default()).await.unwrap().unwrap().header.timestamp;
    let terms = Exchange::OfferTerms {
        bundleIds: vec![bundle_id],
        consumer: consumer.address(),
        token: Address::ZERO,
        price,
        deliveryWindow: 3600,
        disputeWindow: 86400,
        expiresAt: now + 86400,
    };
    let receipt = mined!(exchange.createOffer(terms));
    let mut flow_gas = receipt.gas_used;
    let offer_id = event::<Exchange::OfferCreated>(&receipt).offerId;

    let consumer_key = Bytes::from(consumer.key.public_key_uncompressed().to_vec());
    let as_consumer = Exchange::new(at("Exchange"), consumer.provider.clone());
    let receipt = mined!(as_consumer.order(offer_id, consumer_key.clone()).value(price));
    flow_gas += receipt.gas_used;
    let placed = event::<Exchange::OrderPlaced>(&receipt);
    assert_eq!(placed.amount, price);
    let order_id = placed.orderId;
    assert_eq!(provider.provider.get_balance(at("Exchange")).await.unwrap(), price, "payment in escrow");

    let receipt = mined!(exchange.deliver(order_id, keccak256("wrapped key"), keccak256(&consumer_key)));
    flow_gas += receipt.gas_used;
    assert_eq!(event::<Exchange::OrderDelivered>(&receipt).keyCommitment, keccak256("wrapped key"));
    let receipt = mined!(as_consumer.settle(order_id));
    flow_gas += receipt.gas_used;
    assert_eq!(event::<Exchange::OrderSettled>(&receipt).provider, provider.address());
    let before = provider.provider.get_balance(provider.address()).await.unwrap();
    let receipt = mined!(exchange.withdraw(Address::ZERO));
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    let after = provider.provider.get_balance(provider.address()).await.unwrap();
    assert_eq!(after + fee - before, price, "provider paid once, in full");
    assert_eq!(provider.provider.get_balance(at("Exchange")).await.unwrap(), U256::ZERO);

    // 100 consents in one transaction (50 data types × 2 actions).
    let types = DataTypeRegistry::new(at("DataTypeRegistry"), provider.provider.clone());
    let mut batch = Vec::new();
    for i in 0..50 {
        let receipt = mined!(types.register(format!("type-{i}"), schema_hash));
        let id = event::<DataTypeRegistry::DataTypeRegistered>(&receipt).dataTypeId;
        for action in [actions::COLLECT, actions::EXCHANGE] {
            batch.push(Consents::ConsentInput {
                userId: alice_id,
                appId: app_id,
                action,
                dataTypeId: id,
                allowed: true,
            });
        }
    }
    let receipt = mined!(consents.setConsents(batch).gas(10_000_000));
    let batch_gas = receipt.gas_used;

    println!(
        "gas: registerBundle {register_bundle_gas}, one consent {single_consent_gas}, 100 consents batched {batch_gas} \
         ({} per consent), offer→order→deliver→settle {flow_gas}",
        batch_gas / 100
    );
    assert!(batch_gas < single_consent_gas * 100, "batching is cheaper than 100 transactions");
}

/// Runs the viem helper with `input` on stdin and returns its JSON answer.
fn viem(input: serde_json::Value) -> serde_json::Value {
    let script = workspace_root().join("contracts/test/js/consent-eip712.mjs");
    let mut child = std::process::Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "viem helper failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn eip712_consents_signed_by_viem_are_accepted_and_ours_verify_with_viem() {
    let anvil = spawn_anvil();
    let governor = Actor::new(&anvil, 0);
    let alice = Actor::new(&anvil, 1);
    let relayer = Actor::new(&anvil, 2);
    let deployment = deploy_all(&governor.provider, &DeployOptions { governor: governor.address(), test_token: false })
        .await
        .unwrap();
    let at = |name| deployment.address(name).unwrap();

    let app_id = event::<AppRegistry::AppRegistered>(&mined!(
        AppRegistry::new(at("AppRegistry"), governor.provider.clone()).register("app".into())
    ))
    .appId;
    let data_type_id = event::<DataTypeRegistry::DataTypeRegistered>(&mined!(
        DataTypeRegistry::new(at("DataTypeRegistry"), governor.provider.clone())
            .register("steps".into(), keccak256("{}"))
    ))
    .dataTypeId;
    let alice_id =
        event::<Users::UserCreated>(&mined!(Users::new(at("Users"), alice.provider.clone()).create())).userId;

    let consents = Consents::new(at("Consents"), relayer.provider.clone());
    let domain = consents_domain(deployment.chain_id, at("Consents"));
    let deadline = U256::from(4_000_000_000u64);
    let batch = |nonce: u64, action: u8| ConsentBatch {
        user: alice_id,
        consents: vec![Consent { app: app_id, action, dataType: data_type_id, allowed: true }],
        nonce: U256::from(nonce),
        deadline,
    };
    let signed = |b: &ConsentBatch| {
        b.consents
            .iter()
            .map(|c| Consents::SignedConsent {
                appId: c.app,
                action: c.action,
                dataTypeId: c.dataType,
                allowed: c.allowed,
            })
            .collect::<Vec<_>>()
    };
    let message_json = |b: &ConsentBatch| {
        serde_json::json!({
            "user": b.user.to_string(),
            "consents": b.consents.iter().map(|c| serde_json::json!({
                "app": c.app.to_string(), "action": c.action, "dataType": c.dataType.to_string(), "allowed": c.allowed,
            })).collect::<Vec<_>>(),
            "nonce": b.nonce.to_string(),
            "deadline": b.deadline.to_string(),
        })
    };

    // Our typed-data hash equals the contract's digest.
    let first = batch(0, actions::COLLECT);
    let ours = first.eip712_signing_hash(&domain);
    let theirs = consents.consentBatchDigest(alice_id, signed(&first), first.nonce, deadline).call().await.unwrap();
    assert_eq!(ours, theirs);

    // viem signs; anyone relays; the contract accepts.
    let answer = viem(serde_json::json!({
        "mode": "sign",
        "privateKey": format!("0x{}", hex::encode(alice.key.secret_bytes())),
        "chainId": deployment.chain_id,
        "verifyingContract": at("Consents").to_string(),
        "message": message_json(&first),
    }));
    let signature: Bytes = answer["signature"].as_str().unwrap().parse().unwrap();
    let receipt = mined!(consents.setConsentsBySig(alice_id, signed(&first), deadline, signature.clone()));
    let changed = event::<Consents::ConsentChanged>(&receipt);
    assert_eq!(changed.by, alice.address());
    assert!(consents.isAllowed(alice_id, app_id, actions::COLLECT, data_type_id).call().await.unwrap());
    // A replay of the same signature is refused.
    assert!(consents.setConsentsBySig(alice_id, signed(&first), deadline, signature).call().await.is_err());

    // We sign; viem verifies; the contract accepts.
    let second = batch(1, actions::EXCHANGE);
    let signature = alice.key.signer().sign_typed_data(&second, &domain).await.unwrap();
    let signature = Bytes::from(signature.as_bytes().to_vec());
    let answer = viem(serde_json::json!({
        "mode": "verify",
        "address": alice.address().to_string(),
        "signature": signature.to_string(),
        "chainId": deployment.chain_id,
        "verifyingContract": at("Consents").to_string(),
        "message": message_json(&second),
    }));
    assert_eq!(answer["valid"], serde_json::Value::Bool(true));
    mined!(consents.setConsentsBySig(alice_id, signed(&second), deadline, signature));
    assert!(consents.isAllowed(alice_id, app_id, actions::EXCHANGE, data_type_id).call().await.unwrap());
}
