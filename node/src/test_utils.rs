//! Helpers for tests of this crate (feature `test-utils`).
//!
//! Anvil and the Foundry tools come from `airbloc_eth::test_utils` (re-exported here); this
//! module adds what needs the node: keys with their libp2p side, and the interop scripts.

use alloy::node_bindings::AnvilInstance;
use std::path::PathBuf;

pub use airbloc_eth::test_utils::{foundry_tool, spawn_anvil, spawn_anvil_with, workspace_root};

/// The Python interpreter of the test virtualenv (`.ci/.venv`, made by `.ci/bootstrap`) with the
/// interop packages (eciespy, eth-account).
pub fn python() -> PathBuf {
    let path = workspace_root().join(".ci/.venv/bin/python");
    assert!(path.is_file(), "{} not found — run `bash .ci/bootstrap`", path.display());
    path
}

/// Runs `program args…` with `input` on stdin and returns stdout as JSON. Panics with stderr on
/// failure. Used to drive the reference implementations (viem, @openzeppelin/merkle-tree,
/// eciespy, eth-account) from tests.
pub fn run_json(program: &std::path::Path, args: &[&str], input: &serde_json::Value) -> serde_json::Value {
    use std::{io::Write, process::Stdio};
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Path of a reference-implementation helper script under `node/tests/interop`.
pub fn interop_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(name)
}

/// The node key of anvil's dev account `index`.
pub fn dev_key(anvil: &AnvilInstance, index: usize) -> crate::keys::NodeKey {
    let secret: [u8; 32] = anvil.keys()[index].to_bytes().into();
    crate::keys::NodeKey::from_secret(&secret).expect("anvil dev keys are valid")
}

/// A provider that signs test transactions with `key` (alloy's recommended fillers).
pub fn signing_provider(anvil: &AnvilInstance, key: &crate::keys::NodeKey) -> alloy::providers::DynProvider {
    use alloy::providers::{Provider, ProviderBuilder};
    ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(key.signer().clone()))
        .connect_http(anvil.endpoint_url())
        .erased()
}

/// Deploys the contract suite from dev account 0, which also governs it. Returns the governor's
/// key, its signing provider and the deployment.
pub async fn deploy_local(
    anvil: &AnvilInstance,
    test_token: bool,
) -> (crate::keys::NodeKey, alloy::providers::DynProvider, crate::chain::Deployment) {
    let governor = dev_key(anvil, 0);
    let provider = signing_provider(anvil, &governor);
    let options = crate::chain::deploy::DeployOptions { governor: governor.address(), test_token };
    let deployment = crate::chain::deploy::deploy_all(&provider, &options).await.expect("deploy the contracts");
    (governor, provider, deployment)
}

/// Sends a contract call, waits for its receipt and asserts it succeeded; evaluates to the receipt.
#[macro_export]
macro_rules! mined {
    ($call:expr) => {{
        let receipt = $call.send().await.expect("sent").get_receipt().await.expect("receipt");
        assert!(receipt.status(), "transaction reverted: {:?}", receipt.transaction_hash);
        receipt
    }};
}
