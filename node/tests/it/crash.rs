//! The real binary under faults: kill -9 at random moments while it works through intents, and
//! a chain endpoint that disappears for 30 s. Nothing acknowledged is lost; nothing is sent twice.

use super::support::NodeProcess;
use airbloc_node::{
    chain::{
        contracts::AppRegistry,
        deploy::{DeployOptions, deploy_all},
    },
    keys::NodeKey,
    test_utils::{foundry_tool, spawn_anvil},
};
use airbloc_proto::v1::{
    ListTransactionsRequest, StatusRequest, SubmitTransactionRequest, Transaction, admin_client::AdminClient,
    node_client::NodeClient,
};
use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, U256, keccak256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionRequest,
    sol_types::SolCall,
};
use rand::Rng;
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

async fn governor(endpoint: &str, secret: [u8; 32]) -> (NodeKey, DynProvider) {
    let key = NodeKey::from_secret(&secret).unwrap();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.signer().clone()))
        .connect_http(endpoint.parse().unwrap())
        .erased();
    (key, provider)
}

async fn fund(provider: &DynProvider, to: &str) {
    let to: Address = to.parse().unwrap();
    let tx = TransactionRequest::default().with_to(to).with_value(U256::from(10u64).pow(U256::from(19u64)));
    provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
}

fn register(apps: Address, name: &str) -> SubmitTransactionRequest {
    SubmitTransactionRequest {
        id: name.to_owned(),
        to: apps.to_string(),
        data: AppRegistry::registerCall { name: name.to_owned() }.abi_encode(),
        value: String::new(),
        label: format!("register app {name}"),
    }
}

async fn admin(
    node: &NodeProcess,
) -> AdminClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, airbloc_proto::BearerInterceptor>,
> {
    AdminClient::with_interceptor(node.channel().await, airbloc_proto::bearer(&node.token()).unwrap())
}

async fn all_transactions(node: &NodeProcess) -> Vec<Transaction> {
    admin(node)
        .await
        .list_transactions(ListTransactionsRequest { include_finished: true })
        .await
        .unwrap()
        .into_inner()
        .transactions
}

/// Waits until every listed id is final on the node.
async fn wait_all_final(node: &NodeProcess, ids: &[String], timeout: Duration) -> Vec<Transaction> {
    let deadline = Instant::now() + timeout;
    loop {
        let txs = all_transactions(node).await;
        let done = ids.iter().all(|id| txs.iter().any(|t| &t.id == id && t.state != "queued" && t.state != "sent"));
        if done {
            return txs;
        }
        assert!(Instant::now() < deadline, "not all transactions finished within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_moments_loses_nothing_and_sends_nothing_twice() {
    const TRIALS: usize = 20;
    const INTENTS: usize = 100;
    let mut rng = rand::thread_rng();
    for trial in 0..TRIALS {
        let anvil = spawn_anvil();
        let (gov_key, gov) = governor(&anvil.endpoint(), anvil.keys()[0].to_bytes().into()).await;
        let deployment =
            deploy_all(&gov, &DeployOptions { governor: gov_key.address(), test_token: false }).await.unwrap();
        let apps = deployment.address("AppRegistry").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let deployment_file = dir.path().join("deployment.json");
        deployment.save(&deployment_file).unwrap();
        let datadir = dir.path().join("node");
        let args = ["--chain.deployment", deployment_file.to_str().unwrap(), "--chain.confirmations", "0"];
        let ids: Vec<String> = (0..INTENTS).map(|i| format!("t{trial}-app-{i}")).collect();

        let mut node = NodeProcess::start(&datadir, &anvil.endpoint(), &args);
        fund(&gov, &node.runtime.address).await;
        let address: Address = node.runtime.address.parse().unwrap();

        // Submit while the node is killed at a random moment; some submissions get no answer.
        let kill_after = Duration::from_millis(rng.gen_range(0..800));
        let mut client = admin(&node).await;
        let submitter = {
            let ids = ids.clone();
            tokio::spawn(async move {
                let mut acknowledged = 0;
                for id in &ids {
                    if client.submit_transaction(register(apps, id)).await.is_err() {
                        break;
                    }
                    acknowledged += 1;
                }
                acknowledged
            })
        };
        tokio::time::sleep(kill_after).await;
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(5));
        let acknowledged = submitter.await.unwrap();
        drop(node);

        // Restart, kill once more at random, restart again.
        let mut node = NodeProcess::start(&datadir, &anvil.endpoint(), &args);
        let listed = all_transactions(&node).await;
        for id in &ids[..acknowledged] {
            assert!(listed.iter().any(|t| &t.id == id), "trial {trial}: acknowledged intent {id} was lost");
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(5));
        drop(node);
        let node = NodeProcess::start(&datadir, &anvil.endpoint(), &args);

        // The client retries everything it is unsure about, with the same ids.
        let mut client = admin(&node).await;
        for id in &ids {
            client.submit_transaction(register(apps, id)).await.unwrap();
        }
        let txs = wait_all_final(&node, &ids, Duration::from_secs(120)).await;
        for id in &ids {
            let tx = txs.iter().find(|t| &t.id == id).unwrap();
            assert_eq!(tx.state, "mined", "trial {trial}: {id} is {} ({})", tx.state, tx.reason);
        }
        let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
        assert_eq!(
            provider.get_transaction_count(address).await.unwrap(),
            INTENTS as u64,
            "trial {trial}: exactly one transaction per intent"
        );
        let registry = AppRegistry::new(apps, &provider);
        for id in ids.iter().step_by(17) {
            assert_eq!(registry.ownerOf(keccak256(id)).call().await.unwrap(), address);
        }
    }
}

/// anvil on a fixed port with its state in a file, stoppable with SIGTERM (which dumps the state).
fn start_anvil(port: u16, state: &Path) -> Child {
    let child = Command::new(foundry_tool("anvil"))
        .args(["--port", &port.to_string(), "--state"])
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "anvil did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thirty_second_chain_outage_pauses_chain_work_only() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("anvil-state.json");
    let mut anvil = start_anvil(port, &state);
    let endpoint = format!("http://127.0.0.1:{port}");
    // anvil's first dev account.
    let secret: [u8; 32] =
        hex::decode("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap().try_into().unwrap();
    let (gov_key, gov) = governor(&endpoint, secret).await;
    let deployment = deploy_all(&gov, &DeployOptions { governor: gov_key.address(), test_token: false }).await.unwrap();
    let apps = deployment.address("AppRegistry").unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let args = ["--chain.deployment", deployment_file.to_str().unwrap(), "--chain.confirmations", "0"];
    let node = NodeProcess::start(&dir.path().join("node"), &endpoint, &args);
    fund(&gov, &node.runtime.address).await;
    let address: Address = node.runtime.address.parse().unwrap();

    let before: Vec<String> = (0..5).map(|i| format!("before-{i}")).collect();
    let mut client = admin(&node).await;
    for id in &before {
        client.submit_transaction(register(apps, id)).await.unwrap();
    }
    wait_all_final(&node, &before, Duration::from_secs(30)).await;

    // The endpoint goes away (SIGTERM: anvil writes its state first).
    Command::new("kill").args(["-TERM", &anvil.id().to_string()]).status().unwrap();
    anvil.wait().unwrap();
    let outage = Instant::now();

    let mut status_client =
        NodeClient::with_interceptor(node.channel().await, airbloc_proto::bearer(&node.token()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = status_client.status(StatusRequest {}).await.unwrap().into_inner();
        if !status.chain_connected {
            break;
        }
        assert!(Instant::now() < deadline, "the outage never showed in Status");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Intents keep being accepted durably during the outage.
    let during: Vec<String> = (0..5).map(|i| format!("during-{i}")).collect();
    for id in &during {
        let tx = client.submit_transaction(register(apps, id)).await.unwrap().into_inner();
        assert_eq!(tx.state, "queued");
    }
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;
    let status = status_client.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(!status.chain_connected);
    assert_eq!(status.outbox_depth, 5);

    // Back on the same port with the same state: the queued work completes by itself.
    let mut anvil = start_anvil(port, &state);
    let txs = wait_all_final(&node, &during, Duration::from_secs(90)).await;
    for id in &during {
        assert_eq!(txs.iter().find(|t| &t.id == id).unwrap().state, "mined");
    }
    let provider = ProviderBuilder::new().connect_http(endpoint.parse().unwrap());
    assert_eq!(provider.get_transaction_count(address).await.unwrap(), 10);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !status_client.status(StatusRequest {}).await.unwrap().into_inner().chain_connected {
        assert!(Instant::now() < deadline, "Status never showed the endpoint back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = anvil.kill();
    let _ = anvil.wait();
}
