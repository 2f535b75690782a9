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
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};
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
    let again = outbox.submit("weather", setup.register("weather")).unwrap();
    assert_eq!(first, again, "same id, same intent");
    match outbox.submit("weather", setup.register("something else")) {
        Err(OutboxError::KeyConflict { id }) => assert_eq!(id, "weather"),
        other => panic!("a reused id with another call must be refused, got {other:?}"),
    }
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

/// Polls `check` every 20 ms until it returns `Some`, failing after `timeout`.
async fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_submits_of_a_hundred_keys_make_a_hundred_transactions() {
    let setup = setup(spawn_anvil()).await;
    let (outbox, provider) = setup.outbox(OutboxConfig { confirmations: 0, ..Default::default() }).await;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(outbox.clone().run(cancel.clone()));

    // All released at once onto the blocking pool (hundreds of threads), while the sender signs.
    let start = Arc::new(tokio::sync::Barrier::new(1_000));
    let submits: Vec<_> = (0..1_000)
        .map(|i| {
            let (outbox, start) = (outbox.clone(), start.clone());
            let id = format!("key-{}", i % 100);
            let call = setup.register(&id);
            tokio::spawn(async move {
                start.wait().await;
                tokio::task::spawn_blocking(move || (id.clone(), outbox.submit(&id, call))).await.unwrap()
            })
        })
        .collect();
    let mut seqs: HashMap<String, HashSet<u64>> = HashMap::new();
    for submit in submits {
        let (id, intent) = submit.await.unwrap();
        seqs.entry(id).or_default().insert(intent.unwrap().seq);
    }
    assert_eq!(seqs.len(), 100);
    assert!(seqs.values().all(|s| s.len() == 1), "every submission of a key returned the same intent");
    assert_eq!(outbox.all().unwrap().len(), 100, "one intent per key");
    match outbox.submit("key-7", setup.register("key-8")) {
        Err(OutboxError::KeyConflict { id }) => assert_eq!(id, "key-7"),
        other => panic!("a reused key with another call must be refused, got {other:?}"),
    }

    let waits = seqs.keys().map(|id| outbox.wait(id));
    let results = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(waits)).await.unwrap();
    for result in results {
        let IntentState::Mined { tx, .. } = result.unwrap().state else { panic!("not mined") };
        let receipt = provider.get_transaction_receipt(tx).await.unwrap().expect("a receipt on chain");
        assert!(receipt.status());
    }
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 100, "exactly 100 transactions");
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_and_resend_racing_the_sender_lose_no_update() {
    let setup = setup(spawn_anvil()).await;
    let config = OutboxConfig {
        confirmations: 0,
        stuck_after: Duration::from_secs(3600),
        poll_interval: Duration::from_millis(20),
    };
    let (outbox, provider) = setup.outbox(config).await;
    // Nothing is mined until every request has been acted on.
    let _: () = provider.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(outbox.clone().run(cancel.clone()));

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Asked {
        Nothing,
        CancelledQueued,
        CancelledSent,
        Resent,
    }
    const N: usize = 90;
    let ids: Vec<String> = (0..N).map(|i| format!("race-{i}")).collect();
    let mut racers = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        outbox.submit(id, setup.register(id)).unwrap();
        let (outbox, id) = (outbox.clone(), id.clone());
        let delay = Duration::from_millis(rand::random::<u64>() % 200);
        racers.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let asked = match i % 3 {
                0 => match outbox.cancel(&id).unwrap().state {
                    IntentState::Failed { .. } => Asked::CancelledQueued,
                    IntentState::Sent { cancelling: true, .. } => Asked::CancelledSent,
                    other => panic!("cancel answered {other:?}"),
                },
                1 => match outbox.resend(&id).unwrap().state {
                    IntentState::Queued => Asked::Nothing,
                    IntentState::Sent { .. } => Asked::Resent,
                    other => panic!("resend answered {other:?}"),
                },
                _ => Asked::Nothing,
            };
            (id, asked)
        }));
    }
    let mut asked = HashMap::new();
    for racer in racers {
        let (id, what) = racer.await.unwrap();
        asked.insert(id, what);
    }
    // Every request acted on: nothing queued, no bump owed.
    let versions = eventually("the sender acts on every request", Duration::from_secs(30), || {
        let all = outbox.all().unwrap();
        let settled = all.iter().all(|i| match &i.state {
            IntentState::Queued => false,
            IntentState::Sent { .. } => !i.bump_requested,
            _ => true,
        });
        settled.then(|| all.into_iter().map(|i| (i.id.clone(), i.state.clone())).collect::<HashMap<_, _>>())
    })
    .await;
    for (id, what) in &asked {
        match (what, &versions[id]) {
            (Asked::CancelledQueued, IntentState::Failed { reason }) => {
                assert!(reason.contains("cancelled"), "{reason}")
            }
            (Asked::CancelledSent | Asked::Resent, IntentState::Sent { txs, .. }) => {
                assert!(txs.len() >= 2, "{id}: {what:?} answered but no new version was signed")
            }
            (Asked::Nothing, IntentState::Sent { txs, .. }) => assert_eq!(txs.len(), 1, "{id}"),
            (what, state) => panic!("{id}: asked {what:?}, now {state:?}"),
        }
    }

    // Blocks from now on, until every intent is final.
    let miner = {
        let provider = provider.clone();
        tokio::spawn(async move {
            loop {
                let _: String = provider.raw_request("evm_mine".into(), ()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let apps = AppRegistry::new(setup.apps, &provider);
    let mut nonced = 0;
    for (id, what) in &asked {
        let outcome = tokio::time::timeout(Duration::from_secs(30), outbox.wait(id)).await.unwrap();
        let owner = apps.ownerOf(keccak256(id)).call().await.unwrap();
        match what {
            Asked::CancelledQueued => {
                assert!(matches!(outcome, Err(OutboxError::Failed { .. })), "{id}: {outcome:?}");
                assert_eq!(owner, Address::ZERO, "{id}: cancelled before sending, yet it ran");
            }
            Asked::CancelledSent => {
                nonced += 1;
                assert!(matches!(outcome, Err(OutboxError::Cancelled { .. })), "{id}: {outcome:?}");
                assert_eq!(owner, Address::ZERO, "{id}: cancelled, yet it ran");
            }
            Asked::Resent | Asked::Nothing => {
                nonced += 1;
                assert!(matches!(outcome.unwrap().state, IntentState::Mined { .. }), "{id}");
                assert_eq!(owner, setup.key.address(), "{id}");
            }
        }
    }
    miner.abort();
    assert!(asked.values().any(|a| *a == Asked::CancelledSent) && asked.values().any(|a| *a == Asked::Resent));
    assert_eq!(
        provider.get_transaction_count(setup.key.address()).await.unwrap(),
        nonced,
        "one transaction per signed intent, no gaps"
    );
    assert_eq!(outbox.depth(), 0);
    cancel.cancel();
}

#[tokio::test]
async fn a_poisoned_intent_fails_alone_while_the_others_are_mined() {
    let setup = setup(spawn_anvil()).await;
    let (outbox, provider) = setup.outbox(OutboxConfig { confirmations: 0, ..Default::default() }).await;
    // Contracts the endpoint refuses to estimate: an invalid opcode, and a loop that needs more
    // gas than a block holds.
    let invalid = Address::repeat_byte(0xaa);
    let endless = Address::repeat_byte(0xbb);
    let _: () = provider.raw_request("anvil_setCode".into(), (invalid, Bytes::from_static(&[0xfe]))).await.unwrap();
    let _: () = provider
        .raw_request("anvil_setCode".into(), (endless, Bytes::from_static(&[0x5b, 0x60, 0x00, 0x56])))
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    tokio::spawn(outbox.clone().run(cancel.clone()));

    let poison = |to: Address, label: &str| Call {
        to,
        data: Bytes::from_static(b"\x01"),
        value: U256::ZERO,
        label: label.into(),
    };
    let mut good = Vec::new();
    for i in 0..10 {
        let id = format!("good-{i}");
        outbox.submit(&id, setup.register(&id)).unwrap();
        good.push(id);
        if i == 2 {
            outbox.submit("poison-invalid", poison(invalid, "invalid opcode")).unwrap();
        }
        if i == 5 {
            outbox.submit("poison-endless", poison(endless, "endless loop")).unwrap();
        }
    }
    for (id, expected) in [("poison-invalid", "InvalidFEOpcode"), ("poison-endless", "exceeds allowance")] {
        match tokio::time::timeout(Duration::from_secs(30), outbox.wait(id)).await.unwrap() {
            Err(OutboxError::Failed { reason, .. }) => assert!(reason.contains(expected), "{id}: {reason}"),
            other => panic!("{id}: expected to fail alone, got {other:?}"),
        }
    }
    for id in &good {
        let mined = tokio::time::timeout(Duration::from_secs(30), outbox.wait(id)).await.unwrap().unwrap();
        assert!(matches!(mined.state, IntentState::Mined { .. }));
    }
    assert!(outbox.connected(), "a refused call is not an outage");
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 10, "poison sent nothing");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_that_removes_a_mined_transaction_sends_it_again_and_it_is_mined_once() {
    let setup = setup(spawn_anvil()).await;
    let config = OutboxConfig { confirmations: 3, poll_interval: Duration::from_millis(50), ..Default::default() };
    let (outbox, provider) = setup.outbox(config).await;
    let cancel = CancellationToken::new();
    tokio::spawn(outbox.clone().run(cancel.clone()));

    outbox.submit("reorg-me", setup.register("reorg-me")).unwrap();
    let first = eventually("included in a block", Duration::from_secs(30), || {
        match outbox.get("reorg-me").unwrap().unwrap().state {
            IntentState::Sent { included, .. } => included,
            _ => None,
        }
    })
    .await;
    let _: () = provider.raw_request("anvil_mine".into(), (1u64,)).await.unwrap();
    let head = provider.get_block_number().await.unwrap();
    assert!(head < first.block + 3, "still short of its confirmations");
    // Replace the blocks from its block on; anvil drops the transaction with them.
    let depth = head - first.block + 1;
    let _: () = provider.raw_request("anvil_reorg".into(), (depth, Vec::<()>::new())).await.unwrap();
    assert!(provider.get_transaction_receipt(first.tx).await.unwrap().is_none(), "the reorg removed it");
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 0);

    // Blocks keep coming until the outbox counts it final.
    let miner = {
        let provider = provider.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _: () = provider.raw_request("anvil_mine".into(), (1u64,)).await.unwrap();
            }
        })
    };
    let mined = tokio::time::timeout(Duration::from_secs(30), outbox.wait("reorg-me")).await.unwrap().unwrap();
    miner.abort();
    let IntentState::Mined { nonce, tx, block, .. } = mined.state else { unreachable!() };
    assert_eq!((nonce, tx), (0, first.tx), "the same signed bytes, same nonce, sent again");
    assert_eq!(mined.reorgs, 1);
    let receipt = provider.get_transaction_receipt(tx).await.unwrap().expect("mined again");
    assert_eq!(receipt.block_number, Some(block));
    assert_ne!(receipt.block_hash, Some(first.block_hash), "in a block of the new chain");
    assert_eq!(provider.get_transaction_count(setup.key.address()).await.unwrap(), 1, "mined exactly once");
    let apps = AppRegistry::new(setup.apps, &provider);
    assert_eq!(apps.ownerOf(keccak256("reorg-me")).call().await.unwrap(), setup.key.address());
    cancel.cancel();
}
