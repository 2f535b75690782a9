//! Helpers for tests of this crate and the others in the workspace (feature `test-utils`).
//!
//! The chain toolchain (anvil, forge, cast) is installed by `.ci/bootstrap` from the npm
//! registry into `contracts/node_modules`; [`foundry_tool`] finds it there, or in
//! `$AIRBLOC_FOUNDRY_BIN` when set.

use crate::{
    Deployment,
    deploy::{DeployOptions, deploy_all},
    keys::NodeKey,
};
use alloy::{
    node_bindings::{Anvil, AnvilInstance},
    providers::DynProvider,
};
use std::path::PathBuf;

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("node/eth sits two levels under the workspace root")
        .to_path_buf()
}

/// Path to a Foundry binary (`anvil`, `forge`, `cast`).
///
/// Panics with what to run when it is not installed.
pub fn foundry_tool(name: &str) -> PathBuf {
    let path = match std::env::var_os("AIRBLOC_FOUNDRY_BIN") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => workspace_root()
            .join("contracts/node_modules/@foundry-rs")
            .join(format!("{name}-linux-amd64"))
            .join("bin")
            .join(name),
    };
    assert!(path.is_file(), "{} not found — run `bash .ci/bootstrap` to install the chain toolchain", path.display());
    path
}

/// A fresh anvil on a free port; it stops when the returned value drops.
pub fn spawn_anvil() -> AnvilInstance {
    Anvil::at(foundry_tool("anvil")).try_spawn().expect("anvil starts")
}

/// A fresh anvil with extra command-line arguments (e.g. `["--block-time", "1"]`).
pub fn spawn_anvil_with(args: &[&str]) -> AnvilInstance {
    Anvil::at(foundry_tool("anvil")).args(args.iter().copied()).try_spawn().expect("anvil starts")
}

/// The key of anvil's dev account `index`.
pub fn dev_key(anvil: &AnvilInstance, index: usize) -> NodeKey {
    let secret: [u8; 32] = anvil.keys()[index].to_bytes().into();
    NodeKey::from_secret(&secret).expect("anvil dev keys are valid")
}

/// A provider that signs test transactions with `key` (alloy's recommended fillers).
pub fn signing_provider(anvil: &AnvilInstance, key: &NodeKey) -> DynProvider {
    use alloy::providers::{Provider, ProviderBuilder};
    ProviderBuilder::new()
        .wallet(alloy::network::EthereumWallet::from(key.signer().clone()))
        .connect_http(anvil.endpoint_url())
        .erased()
}

/// Deploys the contract suite from dev account 0, which also governs it. Returns the governor's
/// key, its signing provider and the deployment.
pub async fn deploy_local(anvil: &AnvilInstance, test_token: bool) -> (NodeKey, DynProvider, Deployment) {
    let governor = dev_key(anvil, 0);
    let provider = signing_provider(anvil, &governor);
    let options = DeployOptions { governor: governor.address(), test_token };
    let deployment = deploy_all(&provider, &options).await.expect("deploy the contracts");
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
