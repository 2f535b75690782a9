use super::{airbloc, airblocd};
use airbloc_node::{datadir::RuntimeInfo, test_utils::spawn_anvil};
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
