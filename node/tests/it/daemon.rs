//! The `airblocd` binary as users run it: start, answer gRPC, refuse without the token,
//! health and reflection, the data-dir lock, and a clean stop on SIGTERM.

use super::support::{NodeProcess, PASSWORD, spawn};
use airbloc_node::{datadir::RUNTIME_FILE, keys, test_utils::spawn_anvil};
use airbloc_proto::v1::{Role, StatusRequest, node_client::NodeClient};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

#[tokio::test]
async fn status_with_token_names_the_node_and_its_chain() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &anvil.endpoint(), &["--roles", "provider,keeper"]);

    let key = keys::open_keystore(&dir.path().join("keystore.json"), PASSWORD).unwrap();
    let auth = airbloc_proto::bearer(&node.token()).unwrap();
    let mut client = NodeClient::with_interceptor(node.channel().await, auth);

    // The chain id arrives once the node has reached anvil; wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = client.status(StatusRequest {}).await.unwrap().into_inner();
        if status.chain_id.is_some() {
            break status;
        }
        assert!(Instant::now() < deadline, "node never reached anvil: {status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.address, key.address().to_string());
    assert_eq!(status.peer_id, key.peer_id().to_string());
    assert_eq!(status.roles, vec![Role::Provider as i32, Role::Keeper as i32]);
    assert_eq!(status.chain_id, Some(31337));
    assert!(status.chain_connected);
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(node.runtime.address, status.address);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["api.token", "keystore.json"] {
            let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file} must be private");
        }
    }
}

#[tokio::test]
async fn calls_without_the_right_token_are_unauthenticated_but_health_is_open() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);
    let channel = node.channel().await;

    let err = NodeClient::new(channel.clone()).status(StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("api.token"), "message says where the token is: {}", err.message());

    let wrong = airbloc_proto::bearer("00").unwrap();
    let err = NodeClient::with_interceptor(channel.clone(), wrong).status(StatusRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut reflection = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let err = reflection.server_reflection_info(tokio_stream::once(request)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "reflection needs the token too");

    for service in ["", "airbloc.v1.Node"] {
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32, "health of `{service}`");
    }
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);
    let auth = airbloc_proto::bearer(&node.token()).unwrap();
    let mut reflection = ServerReflectionClient::with_interceptor(node.channel().await, auth);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"airbloc.v1.Node".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
}

#[test]
fn sigterm_stops_the_node_cleanly_and_it_restarts_with_the_same_identity() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);
    let first = node.runtime.clone();
    let token = node.token();

    node.signal("TERM");
    let status = node.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "clean stop exits 0, got {status}");
    assert!(!dir.path().join(RUNTIME_FILE).exists(), "node.json is removed at a clean stop");
    drop(node);

    let again = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);
    assert_eq!(again.runtime.address, first.address, "same key after restart");
    assert_eq!(again.runtime.peer_id, first.peer_id);
    assert_eq!(again.token(), token, "same API token after restart");
}

#[test]
fn second_node_on_the_same_datadir_refuses_to_start() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let _node = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);

    let out = spawn(dir.path(), &anvil.endpoint(), &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another airblocd"), "{err}");
    assert!(err.contains(&format!("pid {}", _node.pid())), "{err}");
}

#[test]
fn lock_is_released_when_the_node_is_killed() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);
    node.signal("KILL");
    node.wait_exit(Duration::from_secs(5));
    drop(node);
    // node.json is stale after kill -9; the next start replaces it.
    let again = NodeProcess::start(dir.path(), &anvil.endpoint(), &[]);
    assert_eq!(again.runtime.pid, again.pid());
}

#[test]
fn wrong_password_and_missing_keystore_fail_with_clear_errors() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    drop(NodeProcess::start(dir.path(), &anvil.endpoint(), &[]));

    let out = super::support::command()
        .arg("--datadir")
        .arg(dir.path())
        .args(["--api.grpc-addr", "127.0.0.1:0", "--p2p.listen", "/ip4/127.0.0.1/tcp/0"])
        .env("AIRBLOC_KEYSTORE_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));

    let empty = tempfile::tempdir().unwrap();
    let out = super::support::command()
        .arg("--datadir")
        .arg(empty.path())
        .args(["--keystore.create", "false"])
        .env("AIRBLOC_KEYSTORE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist and keystore.create is off"));

    let out = super::support::command().arg("--datadir").arg(empty.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("AIRBLOC_KEYSTORE_PASSWORD"));
}

#[tokio::test]
async fn node_keeps_serving_while_the_chain_is_unreachable() {
    // Nothing listens on port 9 (discard) on loopback.
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(dir.path(), "http://127.0.0.1:9", &[]);
    let auth = airbloc_proto::bearer(&node.token()).unwrap();
    let status =
        NodeClient::with_interceptor(node.channel().await, auth).status(StatusRequest {}).await.unwrap().into_inner();
    assert!(!status.chain_connected);
    assert_eq!(status.chain_id, None);
}

#[test]
fn a_bad_deployment_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deployment.json");
    std::fs::write(&file, r#"{"chainId": 1, "contracts": {}}"#).unwrap();
    let out = spawn(&dir.path().join("data"), "http://127.0.0.1:9", &["--chain.deployment", file.to_str().unwrap()])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deployment has no") && err.contains("airbloc admin deploy"), "{err}");

    let out = spawn(&dir.path().join("data"), "http://127.0.0.1:9", &["--chain.deployment", "/nope.json"])
        .wait_with_output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read deployment file /nope.json"));
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text() {
    let anvil = spawn_anvil();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(
        dir.path(),
        &anvil.endpoint(),
        &["--metrics.enabled", "true", "--metrics.addr", "127.0.0.1:0"],
    );
    let auth = airbloc_proto::bearer(&node.token()).unwrap();
    NodeClient::with_interceptor(node.channel().await, auth).status(StatusRequest {}).await.unwrap();
    let _ = NodeClient::new(node.channel().await).status(StatusRequest {}).await;

    let addr = node.runtime.metrics_addr.expect("metrics address in node.json");
    let body = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains(r#"airbloc_grpc_calls_total{method="/airbloc.v1.Node/Status",code="Ok"} 1"#), "{body}");
    assert!(
        body.contains(r#"airbloc_grpc_calls_total{method="/airbloc.v1.Node/Status",code="Unauthenticated"} 1"#),
        "{body}"
    );
    assert!(body.contains(r#"airbloc_store_bytes{table="outbox"}"#), "{body}");
    assert!(body.contains("airbloc_chain_connected"), "{body}");
}
