//! The anvil harness itself: a fresh chain per test.

use airbloc_node::test_utils::spawn_anvil;
use alloy::{
    primitives::U256,
    providers::{Provider, ProviderBuilder},
};

#[tokio::test]
async fn fresh_anvil_answers_chain_id_and_balances() {
    let anvil = spawn_anvil();
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    assert_eq!(provider.get_chain_id().await.unwrap(), 31337);
    let balance = provider.get_balance(anvil.addresses()[0]).await.unwrap();
    // anvil funds its dev accounts with 10,000 ETH.
    assert_eq!(balance, U256::from(10_000u64) * U256::from(10u64).pow(U256::from(18u64)));
}

#[tokio::test]
async fn two_anvils_run_side_by_side() {
    let a = spawn_anvil();
    let b = spawn_anvil();
    assert_ne!(a.port(), b.port());
}
