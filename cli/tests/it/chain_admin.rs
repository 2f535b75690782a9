//! Wallet and admin commands that only need the chain: NodeRegistry entries signed with a node's
//! keystore, controllers, ERC-20 balances and transfers, and the chain's refusals as exit code 3.

use super::airbloc;
use airbloc_eth::{
    contracts::TestToken,
    mined,
    test_utils::{dev_key, signing_provider, spawn_anvil},
};
use alloy::primitives::U256;
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let out = airbloc().arg("--json").args(args).output().unwrap();
    assert!(out.status.success(), "airbloc {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn code(args: &[&str]) -> (Option<i32>, String) {
    let out = airbloc().args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn node_entries_controllers_and_tokens() {
    let anvil = spawn_anvil();
    let rpc = anvil.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(p("governor.key"), hex::encode(anvil.keys()[0].to_bytes())).unwrap();
    std::fs::write(p("other.key"), hex::encode(anvil.keys()[3].to_bytes())).unwrap();
    std::fs::write(p("pw"), "pw").unwrap();
    let governor = ["--private-key-file", &p("governor.key")];
    let chain = ["--rpc-url", &rpc, "--deployment", &p("deployment.json")];
    json(
        &[&["admin", "deploy", "--test-token", "--rpc-url", &rpc, "--out", &p("deployment.json")][..], &governor[..]]
            .concat(),
    );

    // A node's own entry, signed with its keystore; its PeerId comes from the same key.
    let node = json(&["wallet", "new", "--name", "node", "--dir", &p("keys"), "--password-file", &p("pw")]);
    let address = node["address"].as_str().unwrap();
    json(&[&["wallet", "send", "--to", address, "--amount", "1eth", "--rpc-url", &rpc][..], &governor[..]].concat());
    let signer = ["--keystore", &format!("{}/node.json", p("keys")), "--password-file", &p("pw")];
    let peer_id = json(&[&["wallet", "address"][..], &signer[..]].concat())["peer_id"].as_str().unwrap().to_owned();
    json(
        &[
            &["admin", "node", "register", "--roles", "provider,consumer", "--addr", "/ip4/127.0.0.1/tcp/9999"][..],
            &signer[..],
            &chain[..],
        ]
        .concat(),
    );
    let nodes = json(&[&["admin", "nodes"][..], &chain[..]].concat());
    assert_eq!(nodes["nodes"][0]["address"], address);
    assert_eq!(nodes["nodes"][0]["peer_id"], peer_id.as_str());
    assert_eq!(nodes["nodes"][0]["roles"], serde_json::json!(["provider", "consumer"]));
    json(&[&["admin", "node", "update", "--roles", "keeper"][..], &signer[..], &chain[..]].concat());
    assert_eq!(
        json(&[&["admin", "nodes"][..], &chain[..]].concat())["nodes"][0]["roles"],
        serde_json::json!(["keeper"])
    );
    let (exit, stderr) =
        code(&[&["admin", "node", "register", "--roles", "juggler"][..], &signer[..], &chain[..]].concat());
    assert_eq!(exit, Some(1), "{stderr}");
    assert!(stderr.contains("unknown role"), "{stderr}");
    json(&[&["admin", "node", "deactivate"][..], &signer[..], &chain[..]].concat());
    assert_eq!(json(&[&["admin", "nodes"][..], &chain[..]].concat())["nodes"], serde_json::json!([]));

    // Controllers: only the registry's owner adds them.
    json(&[&["admin", "controllers", "add", address][..], &governor[..], &chain[..]].concat());
    assert_eq!(
        json(&[&["admin", "controllers", "list"][..], &chain[..]].concat())["controllers"],
        serde_json::json!([address])
    );
    json(&[&["admin", "controllers", "remove", address][..], &governor[..], &chain[..]].concat());
    assert_eq!(
        json(&[&["admin", "controllers", "list"][..], &chain[..]].concat())["controllers"],
        serde_json::json!([])
    );
    let (exit, stderr) = code(
        &[&["admin", "controllers", "add", address, "--private-key-file", &p("other.key")][..], &chain[..]].concat(),
    );
    assert_eq!(exit, Some(3), "{stderr}");
    assert!(stderr.contains("OwnableUnauthorizedAccount"), "{stderr}");

    // ERC-20: balance and transfer.
    let deployment = airbloc_eth::Deployment::load(dir.path().join("deployment.json").as_path()).unwrap();
    let token = deployment.address("TestToken").unwrap();
    let holder = dev_key(&anvil, 0);
    mined!(
        TestToken::new(token, signing_provider(&anvil, &holder))
            .mint(holder.address(), U256::from(10u64).pow(U256::from(20u64)))
    );
    json(
        &[
            &["wallet", "send", "--to", address, "--amount", "5", "--token", &token.to_string(), "--rpc-url", &rpc][..],
            &governor[..],
        ]
        .concat(),
    );
    let balance = json(&["wallet", "balance", address, "--token", &token.to_string(), "--rpc-url", &rpc]);
    assert_eq!(balance["balance"], "5000000000000000000");
    let (exit, stderr) = code(&[
        "wallet",
        "send",
        "--to",
        address,
        "--amount",
        "five",
        "--rpc-url",
        &rpc,
        "--private-key-file",
        &p("governor.key"),
    ]);
    assert_eq!(exit, Some(1), "{stderr}");
    assert!(stderr.contains("not a number"), "{stderr}");
}
