//! The event indexer against a real anvil: every contract's events land in the derived state,
//! pages are bounded, and after a reorg the state equals a fresh index of the canonical chain.

use airbloc_node::{
    chain::{
        Deployment,
        contracts::{
            AppRegistry, Consents, ControllerRegistry, DataRegistry, DataTypeRegistry, NodeRegistry, Users, actions,
        },
        deploy::{DeployOptions, deploy_all},
        indexer::{Indexer, IndexerConfig},
        state::ChainState,
    },
    daemon::connect,
    keys::NodeKey,
    store::Store,
    test_utils::{dev_key, signing_provider, spawn_anvil},
};
use alloy::{
    node_bindings::AnvilInstance,
    primitives::{B256, U256, keccak256},
    providers::{DynProvider, Provider},
};
use std::sync::Arc;

fn actor(anvil: &AnvilInstance, i: usize) -> (NodeKey, DynProvider) {
    let key = dev_key(anvil, i);
    let provider = signing_provider(anvil, &key);
    (key, provider)
}

use airbloc_node::mined;

/// Indexes until caught up with the head; returns the state view.
async fn index_to_head(indexer: &mut Indexer, provider: &DynProvider) {
    let head = provider.get_block_number().await.unwrap();
    for _ in 0..10_000 {
        indexer.step().await.unwrap();
        if indexer_progress(indexer) >= head {
            return;
        }
    }
    panic!("indexer did not catch up");
}

fn indexer_progress(indexer: &Indexer) -> u64 {
    indexer.handle().progress().indexed
}

fn new_indexer(store: &Arc<Store>, provider: &DynProvider, deployment: &Deployment, page_size: u64) -> Indexer {
    Indexer::new(store.clone(), provider.clone(), deployment, IndexerConfig { page_size, ..Default::default() })
        .unwrap()
        .0
}

#[tokio::test]
async fn indexes_every_contract_and_recovers_from_a_reorg() {
    let anvil = spawn_anvil();
    let (governor, gov) = actor(&anvil, 0);
    let (provider_key, prov) = actor(&anvil, 1);
    let (alice, alice_p) = actor(&anvil, 2);
    let deployment =
        deploy_all(&gov, &DeployOptions { governor: governor.address(), test_token: false }).await.unwrap();
    let at = |name| deployment.address(name).unwrap();

    // One path through the registries.
    mined!(NodeRegistry::new(at("NodeRegistry"), &prov).register(
        1,
        provider_key.peer_id().to_bytes().into(),
        vec!["/ip4/127.0.0.1/tcp/1".into()]
    ));
    mined!(ControllerRegistry::new(at("ControllerRegistry"), &gov).addController(provider_key.address()));
    let created = mined!(Users::new(at("Users"), &alice_p).create());
    let alice_id = created.inner.logs()[0].log_decode::<Users::UserCreated>().unwrap().inner.data.userId;
    mined!(AppRegistry::new(at("AppRegistry"), &prov).register("weather".into()));
    mined!(DataTypeRegistry::new(at("DataTypeRegistry"), &prov).register("location".into(), keccak256("{}")));
    let (app, data_type) = (keccak256("weather"), keccak256("location"));
    let consent = |allowed| Consents::ConsentInput {
        userId: alice_id,
        appId: app,
        action: actions::COLLECT,
        dataTypeId: data_type,
        allowed,
    };
    let first_consent = mined!(Consents::new(at("Consents"), &alice_p).setConsents(vec![consent(true)]));
    mined!(DataRegistry::new(at("DataRegistry"), &prov).registerBundle(
        app,
        data_type,
        keccak256("root"),
        10,
        keccak256("body"),
        100,
        "".into()
    ));

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let reader = connect(&anvil.endpoint()).await.unwrap();
    let mut indexer = new_indexer(&store, &reader, &deployment, 3);
    index_to_head(&mut indexer, &reader).await;
    let state = ChainState::new(store.clone());

    assert!(state.is_active_node(provider_key.address()).unwrap());
    assert!(state.is_controller(provider_key.address()).unwrap());
    assert_eq!(state.user(alice_id).unwrap().unwrap().owner, alice.address());
    assert_eq!(state.app(app).unwrap().unwrap().owner, provider_key.address());
    assert_eq!(state.data_type(data_type).unwrap().unwrap().name, "location");
    let consent_block = first_consent.block_number.unwrap();
    let row = state.consent(alice_id, app, actions::COLLECT, data_type).unwrap();
    assert!(row.allowed_at(consent_block) && !row.allowed_at(consent_block - 1));
    let bundles = state.dump().unwrap().into_iter().filter(|(t, _, _)| *t == "bundles").count();
    assert_eq!(bundles, 1);

    // A branch that will be reorged away: a consent revocation and an app.
    let snapshot: U256 = reader.raw_request("evm_snapshot".into(), ()).await.unwrap();
    mined!(Consents::new(at("Consents"), &alice_p).setConsents(vec![consent(false)]));
    mined!(AppRegistry::new(at("AppRegistry"), &prov).register("reorged-away".into()));
    index_to_head(&mut indexer, &reader).await;
    assert!(state.app(keccak256("reorged-away")).unwrap().is_some());
    assert!(!state.consent(alice_id, app, actions::COLLECT, data_type).unwrap().history.last().unwrap().1);

    // The canonical branch: different contents, and longer.
    let reverted: bool = reader.raw_request("evm_revert".into(), (snapshot,)).await.unwrap();
    assert!(reverted);
    // A fresh provider: the old one's block poller has already seen the reverted block numbers.
    let (_, prov) = actor(&anvil, 1);
    mined!(AppRegistry::new(at("AppRegistry"), &prov).register("canonical".into()));
    for _ in 0..3 {
        let _: String = reader.raw_request("evm_mine".into(), ()).await.unwrap();
    }
    index_to_head(&mut indexer, &reader).await;
    assert_eq!(indexer.handle().progress().reorgs, 1, "the reorg was seen");
    assert!(state.app(keccak256("reorged-away")).unwrap().is_none(), "reorged-away state is gone");
    assert!(state.app(keccak256("canonical")).unwrap().is_some());
    assert!(state.consent(alice_id, app, actions::COLLECT, data_type).unwrap().history.last().unwrap().1);

    // The state equals a fresh index of the canonical chain.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh_store = Arc::new(Store::open(fresh_dir.path()).unwrap());
    let mut fresh = new_indexer(&fresh_store, &reader, &deployment, 1000);
    index_to_head(&mut fresh, &reader).await;
    assert_eq!(state.dump().unwrap(), ChainState::new(fresh_store).dump().unwrap());
    let _ = B256::ZERO;
}
