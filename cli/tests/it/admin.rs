use super::airbloc;
use airbloc_eth::{
    deployment::{CONTRACTS, Deployment},
    test_utils::spawn_anvil,
};
use alloy::providers::{Provider, ProviderBuilder};

#[tokio::test]
async fn admin_deploy_writes_a_deployment_with_code_at_every_address() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dev.key");
    std::fs::write(&key_file, hex::encode(anvil.keys()[0].to_bytes())).unwrap();
    let out = dir.path().join("deployment.json");

    let run = airbloc()
        .args(["admin", "deploy", "--rpc-url", &anvil.endpoint(), "--test-token", "--private-key-file"])
        .arg(&key_file)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("Exchange"), "{stdout}");

    let deployment = Deployment::load(&out).unwrap();
    assert_eq!(deployment.chain_id, 31337);
    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    for name in CONTRACTS.iter().chain(&["TestToken"]) {
        let address = deployment.contracts[*name].address;
        assert!(!provider.get_code_at(address).await.unwrap().is_empty(), "{name} has code");
    }
}

#[test]
fn admin_deploy_explains_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("bad.key");
    std::fs::write(&key_file, "not hex").unwrap();
    let run = airbloc()
        .args(["admin", "deploy", "--rpc-url", "http://127.0.0.1:9", "--private-key-file"])
        .arg(&key_file)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "usage error");
    assert!(String::from_utf8_lossy(&run.stderr).contains("32-byte private key"));

    std::fs::write(&key_file, "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80").unwrap();
    let run = airbloc()
        .args(["admin", "deploy", "--rpc-url", "http://127.0.0.1:9", "--private-key-file"])
        .arg(&key_file)
        .arg("--out")
        .arg(dir.path().join("d.json"))
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3), "chain error: {}", String::from_utf8_lossy(&run.stderr));
}
