//! The identity keeper with real `airblocd` processes: users without wallets are signed up by a
//! provider through the keeper, consents are granted within each user's policy, a revoked
//! exchange consent keeps that user's records out of a sale, a user gets their own data, and an
//! account is handed over to a wallet.

use super::world::{World, channel};
use airbloc_node::{
    chain::contracts::{Exchange, TestToken},
    test_utils::dev_key,
};
use airbloc_proto::v1::{
    ConsentChange, Grant, IdentityRequest, IngestRecord, OrderAction, PlaceOrderRequest, ProviderSignUpRequest,
    RequestConsentsRequest, SetConsentsRequest, SetPolicyRequest, UnlockRequest, keeper_client::KeeperClient,
};
use alloy::primitives::{B256, U256};
use std::{collections::BTreeSet, time::Duration};

const COLLECT: u32 = 0;
const EXCHANGE: u32 = 1;

#[tokio::test(flavor = "multi_thread")]
async fn users_signed_up_through_the_keeper_sell_only_what_they_still_allow() {
    let mut w = World::start(true).await;
    let keeper_node = w.keeper_node.as_ref().unwrap();
    let keeper_address = keeper_node.runtime.address.clone();
    let (c, a) = channel(keeper_node);
    let mut keeper = KeeperClient::with_interceptor(c, a);
    let identities = ["alice@example.com", "Bob@Example.com ", "carol@example.com", "dave@example.com"];

    // The provider signs its users up through the keeper (waits until the keeper's node is
    // admitted and the accounts are indexed).
    let mut users = Vec::new();
    for identity in identities {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let signed = loop {
            let request = ProviderSignUpRequest { identity: identity.into(), app_id: w.app_id.to_vec() };
            match w.provider.sign_up(request).await {
                Ok(r) => break r.into_inner(),
                Err(e) if e.code() == tonic::Code::Unavailable && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(e) => panic!("sign-up of {identity}: {e}"),
            }
        };
        assert!(!signed.existing);
        users.push(B256::from_slice(&signed.user_id));
    }
    // Signing up again finds the same account; identities are normalized.
    let again = w
        .provider
        .sign_up(ProviderSignUpRequest { identity: "bob@example.com".into(), app_id: w.app_id.to_vec() })
        .await
        .unwrap()
        .into_inner();
    assert!(again.existing);
    assert_eq!(B256::from_slice(&again.user_id), users[1]);
    let account = keeper.get_account(IdentityRequest { identity: "alice@example.com".into() }).await.unwrap();
    let account = account.into_inner();
    assert_eq!(account.status, "temporary");
    assert_eq!(account.controller.to_lowercase(), keeper_address.to_lowercase());

    // Each user tells the keeper what providers may have; dave allows collection only.
    for (i, identity) in identities.iter().enumerate() {
        let actions: &[u32] = if i == 3 { &[COLLECT] } else { &[COLLECT, EXCHANGE] };
        let grants = actions
            .iter()
            .map(|action| Grant { app_id: w.app_id.to_vec(), action: *action, data_type_id: vec![] })
            .collect();
        keeper.set_policy(SetPolicyRequest { identity: (*identity).into(), grants }).await.unwrap();
    }
    let (app_id, data_type_id) = (w.app_id, w.data_type_id);
    let change = move |action, allowed| ConsentChange {
        app_id: app_id.to_vec(),
        action,
        data_type_id: data_type_id.to_vec(),
        allowed,
    };
    // The provider asks for consents; the four requests run at once and share transactions.
    let asks = users.iter().enumerate().map(|(i, user)| {
        let mut provider = w.provider.clone();
        let changes =
            if i == 3 { vec![change(COLLECT, true)] } else { vec![change(COLLECT, true), change(EXCHANGE, true)] };
        let request = RequestConsentsRequest { user_id: user.to_vec(), app_id: w.app_id.to_vec(), changes };
        async move { provider.request_consents(request).await.map(|r| r.into_inner().tx_id) }
    });
    let tx_ids: Vec<String> = futures::future::join_all(asks).await.into_iter().map(Result::unwrap).collect();
    assert!(
        tx_ids.iter().collect::<BTreeSet<_>>().len() < tx_ids.len(),
        "concurrent consent requests are batched: {tx_ids:?}"
    );
    // Outside dave's policy: refused.
    let request = RequestConsentsRequest {
        user_id: users[3].to_vec(),
        app_id: w.app_id.to_vec(),
        changes: vec![change(EXCHANGE, true)],
    };
    let refused = w.provider.request_consents(request).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");

    // Records come in by identity; an identity never signed up is rejected.
    let inputs: Vec<IngestRecord> = (0..10_000u64)
        .map(|i| IngestRecord {
            user_id: vec![],
            identity: identities[(i % 4) as usize].into(),
            ..w.record(i * 3) // multiples of 3 are always schema-valid unless divisible by 13
        })
        .collect();
    let mut stream_in = inputs.clone();
    stream_in.push(IngestRecord { user_id: vec![], identity: "mallory@example.com".into(), ..w.record(1) });
    let summary = w.provider.ingest(futures::stream::iter(stream_in)).await.unwrap().into_inner();
    let valid = |i: u64| (i * 3) % 13 != 0;
    assert_eq!(summary.accepted, (0..10_000).filter(|i| valid(*i)).count() as u64);
    assert!(summary.rejected.iter().any(|r| r.index == 10_000 && r.message.contains("SignUp")), "{summary:?}");

    // Priced in an ERC-20: the consumer holds some of the test token.
    let token = w.deployment.address("TestToken").unwrap();
    let consumer_address: alloy::primitives::Address = w.consumer_node.runtime.address.parse().unwrap();
    let price = U256::from(250u64) * U256::from(10u64.pow(18));
    airbloc_node::mined!(TestToken::new(token, &w.governor).mint(consumer_address, price * U256::from(2u64)));
    let (bundle_id, offer_id) = w.seal_and_offer_in(price, 3600, &token.to_string()).await;

    // Carol withdraws exchange consent through the keeper before anyone orders.
    let revoked = keeper
        .set_consents(SetConsentsRequest { identity: identities[2].into(), changes: vec![change(EXCHANGE, false)] })
        .await
        .unwrap()
        .into_inner();
    super::world::wait_indexed(&w.provider_node, revoked.block).await;
    let history = keeper.list_consents(IdentityRequest { identity: identities[2].into() }).await.unwrap().into_inner();
    let exchange = history.consents.iter().find(|c| c.action == EXCHANGE).unwrap();
    assert_eq!(exchange.history.iter().map(|e| e.allowed).collect::<Vec<_>>(), [true, false]);
    assert!(!exchange.allowed && !exchange.set_by_user);

    // The consumer buys the bundle: what arrives lacks carol's and dave's records, and the
    // derived bundle's root verifies (the download checks it against the chain).
    let order = w.consumer.place_order(PlaceOrderRequest { offer_id }).await.unwrap().into_inner();
    w.wait_order(&order.order_id, Duration::from_secs(90), |o| o.key_received && o.status == "delivered").await;
    let got = w.download(&order.order_id, &bundle_id, "records.ndjson").await;
    let expected: BTreeSet<(String, u64, String)> = inputs
        .iter()
        .enumerate()
        .filter(|(i, _)| valid(*i as u64) && i % 4 < 2)
        .map(|(i, r)| {
            let payload: serde_json::Value = serde_json::from_str(&r.payload_json).unwrap();
            (users[i % 4].to_string(), r.collected_at_ms, payload.to_string())
        })
        .collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected, "exactly the records of users who still allow exchange");
    w.consumer.settle(OrderAction { order_id: order.order_id.clone() }).await.unwrap();
    let exchange = Exchange::new(w.deployment.address("Exchange").unwrap(), &w.governor);
    let provider_address: alloy::primitives::Address = w.provider_node.runtime.address.parse().unwrap();
    assert_eq!(exchange.credits(provider_address, token).call().await.unwrap(), price, "paid in the token");
    let token_balance = TestToken::new(token, &w.governor).balanceOf(consumer_address).call().await.unwrap();
    assert_eq!(token_balance, price, "the consumer paid exactly the price");

    // Alice asks for her data: the keeper collects it from the provider.
    let export = keeper
        .export(airbloc_proto::v1::ExportRequest { identity: identities[0].into(), public_key: vec![] })
        .await
        .unwrap()
        .into_inner();
    let from_provider = export
        .providers
        .iter()
        .find(|p| p.provider.to_lowercase() == w.provider_node.runtime.address.to_lowercase())
        .unwrap_or_else(|| panic!("no answer from the provider: {export:?}"));
    assert!(from_provider.error.is_empty(), "{}", from_provider.error);
    let alice = inputs.iter().enumerate().filter(|(i, _)| valid(*i as u64) && i % 4 == 0).count();
    assert_eq!(from_provider.count, alice as u64);
    assert_eq!(from_provider.records_ndjson.lines().count(), alice);
    assert!(from_provider.records_ndjson.lines().all(|l| l.contains(&users[0].to_string())));

    // Bob takes his account over with a wallet.
    let wallet = dev_key(&w.anvil, 9).address();
    let unlocked = keeper
        .unlock(UnlockRequest { identity: identities[1].into(), new_owner: wallet.to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unlocked.status, "active");
    assert_eq!(unlocked.owner.to_lowercase(), wallet.to_string().to_lowercase());
    assert_eq!(B256::from_slice(&unlocked.user_id), users[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keeper_killed_during_sign_ups_creates_each_account_exactly_once() {
    let mut w = World::start(true).await;
    let keeper_address: alloy::primitives::Address = w.keeper_node.as_ref().unwrap().runtime.address.parse().unwrap();
    let identities: Vec<String> = (0..20).map(|i| format!("user-{i}@example.com")).collect();
    let sign_up_all = |node: &super::support::NodeProcess| {
        let (c, a) = channel(node);
        let keeper = KeeperClient::with_interceptor(c, a);
        let identities = identities.clone();
        async move {
            let asks = identities.into_iter().map(|identity| {
                let mut keeper = keeper.clone();
                async move { keeper.sign_up(airbloc_proto::v1::KeeperSignUpRequest { identity }).await }
            });
            futures::future::join_all(asks).await
        }
    };
    // The keeper must have indexed its controller listing before it signs anyone up.
    use alloy::providers::Provider as _;
    let head = w.governor.get_block_number().await.unwrap();
    super::world::wait_indexed(w.keeper_node.as_ref().unwrap(), head).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let first = sign_up_all(w.keeper_node.as_ref().unwrap());
    // Killed while the sign-ups are in flight.
    let in_flight = tokio::spawn(first);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let keeper = w.keeper_node.as_mut().unwrap();
    keeper.signal("KILL");
    keeper.wait_exit(Duration::from_secs(10));
    let answered = in_flight.await.unwrap().iter().filter(|a| a.is_ok()).count();
    assert!(answered < 20, "the kill came after every sign-up finished; nothing was in flight");
    let rpc = w.anvil.endpoint();
    *keeper = World::start_node(&w.dir, &rpc, &w.boot_addr, "keeper", "keeper");
    // Asked again after the restart, every identity gets its account.
    let users: Vec<B256> = loop {
        let answers = sign_up_all(w.keeper_node.as_ref().unwrap()).await;
        if answers.iter().all(Result::is_ok) {
            break answers.into_iter().map(|a| B256::from_slice(&a.unwrap().into_inner().user_id)).collect();
        }
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(60), "sign-ups keep failing: {answers:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(users.iter().collect::<std::collections::BTreeSet<_>>().len(), 20);
    // Exactly one transaction per account, plus the keeper's own NodeRegistry entry.
    let sent = w.governor.get_transaction_count(keeper_address).await.unwrap();
    assert_eq!(sent, 21, "20 accounts + 1 registration, none twice");
}
