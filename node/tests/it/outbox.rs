//! The transaction outbox against a real anvil and a real RocksDB.

use airbloc_node::{
    chain::{
        contracts::AppRegistry,
        outbox::{Call, IntentState, Outbox, OutboxConfig, OutboxError},
    },
    daemon::connect,
    keys::NodeKey,
    store::Store,
    test_utils::{deploy_local, dev_key, spawn_anvil, spawn_anvil_with},
};
use alloy::{
    network::EthereumWallet,
    node_bindings::AnvilInstance,
    primitives::{Address, Bytes, U256, keccak256},
    providers::{DynProvider, Provider},
    sol_types::SolCall,
};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;

struct Setup {
    anvil: AnvilInstance,
    apps: Address,
    key: NodeKey,
    _dir: tempfile::TempDir,
    store: Arc<Store>,
}

async fn setup(anvil: AnvilInstance) -> Setup {
    let (_, _, deployment) = deploy_local(&anvil, false).await;
    let key = dev_key(&anvil, 1);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    Setup { apps: deployment.address("AppRegistry").unwrap(), anvil, key, _dir: dir, store }
}

impl Setup {
    async fn outbox(&self, config: OutboxConfig) -> (Outbox, DynProvider) {
        let provider = connect(&self.anvil.endpoint()).await.unwrap();
        let outbox =
            Outbox::new(self.store.clone(), provider.clone(), EthereumWallet::from(self.key.signer().clone()), config)
                .unwrap();
        (outbox, provider)
    }

    fn register(&self, name: &str) -> Call {
        Call {
            to: self.apps,
            data: Bytes::from(AppRegistry::registerCall { name: name.to_owned() }.abi_encode()),
            value: U256::ZERO,
            label: format!("register app {name}"),
        }
    }
}

async fn many_intents_mined_exactly_once(anvil: AnvilInstance, confirmations: u64) {
    let setup = setup(anvil).await;
    let (outbox, provider) = setup.outbox(OutboxConfig { confirmations, ..Default::default() }).await;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(outbox.clone().run(cancel.clone()));

    let ids: Vec<String> = (0..200).map(|i| format!("app-{i}")).collect();
    for id in &ids {
        outbox.submit(id, setup.register(id)).unwrap();
    }
    let waits = ids.iter().map(|id| outbox.wait(id));
    let results = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(waits)).await.unwrap();
    let mut nonces = Vec::new();
    for result in results {
        match result.unwrap().state {
            IntentState::Mined { nonce, .. } => nonces.push(nonce),
            other => panic!("not mined: {other:?}"),
        }
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (0..200).collect::<Vec<u64>>(), "nonces without gaps or repeats");
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 200, "exactly 200 transactions");
    let apps = AppRegistry::new(setup.apps, &provider);
    for id in ids.iter().step_by(37) {
        assert_eq!(apps.ownerOf(keccak256(id)).call().await.unwrap(), setup.key.address());
    }
    assert_eq!(outbox.depth(), 0);
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn two_hundred_intents_with_automine() {
    many_intents_mined_exactly_once(spawn_anvil(), 0).await;
}

#[tokio::test]
async fn two_hundred_intents_with_one_second_blocks() {
    many_intents_mined_exactly_once(spawn_anvil_with(&["--block-time", "1"]), 1).await;
}

#[tokio::test]
async fn reverts_are_reported_with_the_decoded_error_and_ids_are_idempotent() {
    let setup = setup(spawn_anvil()).await;
    let (outbox, provider) = setup.outbox(OutboxConfig { confirmations: 0, ..Default::default() }).await;
    let cancel = CancellationToken::new();
    tokio::spawn(outbox.clone().run(cancel.clone()));

    let first = outbox.submit("weather", setup.register("weather")).unwrap();
    let again = outbox.submit("weather", setup.register("something else")).unwrap();
    assert_eq!(first, again, "same id, same intent");
    outbox.wait("weather").await.unwrap();

    outbox.submit("weather-twice", setup.register("weather")).unwrap();
    match outbox.wait("weather-twice").await {
        Err(OutboxError::Reverted { reason, .. }) => assert!(reason.contains("NameUnavailable"), "{reason}"),
        other => panic!("expected a revert, got {other:?}"),
    }
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 1, "the revert sent nothing");
    cancel.cancel();
}

#[tokio::test]
async fn a_new_outbox_on_the_same_store_finishes_what_the_old_one_started() {
    let setup = setup(spawn_anvil()).await;
    {
        let (outbox, _) = setup.outbox(OutboxConfig { confirmations: 0, ..Default::default() }).await;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(outbox.clone().run(cancel.clone()));
        for i in 0..60 {
            outbox.submit(&format!("r-{i}"), setup.register(&format!("r-{i}"))).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        cancel.cancel();
        task.await.unwrap();
    }
    let (outbox, provider) = setup.outbox(OutboxConfig { confirmations: 0, ..Default::default() }).await;
    let cancel = CancellationToken::new();
    tokio::spawn(outbox.clone().run(cancel.clone()));
    for i in 0..60 {
        assert!(matches!(outbox.wait(&format!("r-{i}")).await.unwrap().state, IntentState::Mined { .. }));
    }
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 60);
    cancel.cancel();
}

#[tokio::test]
async fn stuck_transactions_are_bumped_and_can_be_cancelled() {
    let setup = setup(spawn_anvil()).await;
    let (outbox, provider) = setup
        .outbox(OutboxConfig { confirmations: 0, stuck_after: Duration::from_secs(3600), ..Default::default() })
        .await;
    // Stop mining: transactions wait in the pool.
    let _: () = provider.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(outbox.clone().run(cancel.clone()));

    outbox.submit("bump-me", setup.register("bump-me")).unwrap();
    outbox.submit("cancel-me", setup.register("cancel-me")).unwrap();
    let sent = |id: &str| {
        let outbox = outbox.clone();
        let id = id.to_owned();
        async move {
            loop {
                if let IntentState::Sent { txs, .. } = outbox.get(&id).unwrap().unwrap().state {
                    return txs;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), sent("bump-me")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), sent("cancel-me")).await.unwrap();

    outbox.resend("bump-me").unwrap();
    outbox.cancel("cancel-me").unwrap();
    let versions = |id: &'static str| {
        let outbox = outbox.clone();
        async move {
            loop {
                if let IntentState::Sent { txs, .. } = outbox.get(id).unwrap().unwrap().state {
                    if txs.len() == 2 {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), versions("bump-me")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), versions("cancel-me")).await.unwrap();

    let _: String = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    assert!(matches!(outbox.wait("bump-me").await.unwrap().state, IntentState::Mined { .. }));
    assert!(matches!(outbox.wait("cancel-me").await, Err(OutboxError::Cancelled { .. })));
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 2, "one transaction per nonce");
    let apps = AppRegistry::new(setup.apps, &provider);
    assert_eq!(
        apps.ownerOf(keccak256("cancel-me")).call().await.unwrap(),
        Address::ZERO,
        "the cancelled call never ran"
    );
    cancel.cancel();
}
