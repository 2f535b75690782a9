use super::{RuntimeInfo, airbloc, airblocd};
use airbloc_eth::test_utils::spawn_anvil;
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

#[test]
fn node_status_through_the_cli() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(airblocd())
        .arg("--datadir")
        .arg(dir.path())
        .args(["--api.grpc-addr", "127.0.0.1:0", "--chain.rpc-url", &anvil.endpoint(), "--roles", "consumer"])
        .args(["--p2p.listen", "/ip4/127.0.0.1/tcp/0"])
        .env("AIRBLOC_KEYSTORE_PASSWORD", "pw-for-tests")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let runtime = loop {
        if let Ok(rt) = RuntimeInfo::read(dir.path()) {
            break rt;
        }
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    };

    let status = loop {
        let out = airbloc().args(["--json", "node", "status", "--datadir"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if status["chain_id"] == 31337 || Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["address"], runtime.address.as_str());
    assert_eq!(status["roles"], serde_json::json!(["consumer"]));
    assert_eq!(status["chain_id"], 31337);

    let table = airbloc().args(["node", "status", "--datadir"]).arg(dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains(&runtime.peer_id) && text.contains("31337"), "{text}");
    assert!(status["listen_addrs"][0].as_str().unwrap().starts_with("/ip4/127.0.0.1/tcp/"), "{status}");

    let out = airbloc().args(["--json", "node", "peers", "--datadir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let peers: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(peers["peers"], serde_json::json!([]));
    let table = airbloc().args(["node", "peers", "--datadir"]).arg(dir.path()).output().unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("no peers connected"));

    child.kill().unwrap();
    child.wait().unwrap();
    // node.json is stale now (kill -9 leaves it); the CLI says the node is unreachable.
    let out = airbloc().args(["node", "status", "--datadir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn node_status_without_a_node_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = airbloc().args(["node", "status", "--datadir"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is airblocd running"));
}

#[tokio::test]
async fn node_txs_lists_the_outbox() {
    use airbloc_eth::deploy::{DeployOptions, deploy_all};
    use alloy::{network::EthereumWallet, providers::Provider};
    let anvil = spawn_anvil();
    let secret: [u8; 32] = anvil.keys()[0].to_bytes().into();
    let key = airbloc_eth::keys::NodeKey::from_secret(&secret).unwrap();
    let provider = alloy::providers::ProviderBuilder::new()
        .wallet(EthereumWallet::from(key.signer().clone()))
        .connect_http(anvil.endpoint_url())
        .erased();
    let deployment =
        deploy_all(&provider, &DeployOptions { governor: key.address(), test_token: false }).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let mut child = Command::new(airblocd())
        .arg("--datadir")
        .arg(dir.path().join("node"))
        .args(["--p2p.listen", "/ip4/127.0.0.1/tcp/0", "--p2p.register", "false"])
        .args(["--api.grpc-addr", "127.0.0.1:0", "--chain.rpc-url", &anvil.endpoint(), "--chain.deployment"])
        .arg(&deployment_file)
        .env("AIRBLOC_KEYSTORE_PASSWORD", "pw-for-tests")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let datadir = dir.path().join("node");
    let deadline = Instant::now() + Duration::from_secs(30);
    while RuntimeInfo::read(&datadir).is_err() {
        assert!(Instant::now() < deadline, "node did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = airbloc().args(["node", "txs", "--all", "--datadir"]).arg(&datadir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no transactions"));
    let out = airbloc().args(["node", "resend", "nope", "--datadir"]).arg(&datadir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown id is 'not found'");
    let out = airbloc().args(["node", "cancel", "nope", "--datadir"]).arg(&datadir).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown id is 'not found'");
    let out = airbloc().args(["--json", "node", "status", "--datadir"]).arg(&datadir).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["deployment_loaded"], true);
    child.kill().unwrap();
    child.wait().unwrap();
}
