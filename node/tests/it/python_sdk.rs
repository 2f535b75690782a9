//! The Python SDK (proto/python, built from the same .proto files with grpcio-tools and
//! installed into .ci/.venv by .ci/bootstrap) drives real nodes: status, ingest, seal, offer,
//! the consumer's catalog, a schema from the registry, an error as a gRPC status.

use super::world::{SCHEMA, World};
use airbloc_node::test_utils::{python, workspace_root};

#[tokio::test(flavor = "multi_thread")]
async fn python_clients_talk_to_a_node() {
    let w = World::new().await;
    let script = workspace_root().join("proto/python/tests/drive_node.py");
    let user = w.users[0].to_string();
    let output = tokio::process::Command::new(python())
        .arg(&script)
        .arg(w.dir.path().join("provider"))
        .arg(w.dir.path().join("consumer"))
        .args([w.app_id.to_string(), w.data_type_id.to_string(), user])
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "python: {}", String::from_utf8_lossy(&output.stderr));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["provider_address"], w.provider_node.runtime.address.as_str());
    assert_eq!(seen["chain_id"], 31337);
    assert_eq!(seen["accepted"], 90);
    assert_eq!(seen["rejected"], serde_json::json!((0..100).step_by(10).collect::<Vec<_>>()));
    let catalog = seen["catalog"].as_array().unwrap();
    assert_eq!(catalog.len(), 1, "{seen}");
    assert_eq!((&catalog[0]["bundle_id"], &catalog[0]["records"]), (&seen["bundle_id"], &serde_json::json!(90)));
    assert_eq!(catalog[0]["offers"][0], seen["offer_id"]);
    assert_eq!(seen["schema_json"], SCHEMA);
    assert_eq!(seen["bad_request"][0], "INVALID_ARGUMENT");
    assert!(seen["bad_request"][1].as_str().unwrap().contains("app_id must be 32 bytes"));
}
