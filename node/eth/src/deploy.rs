//! Deploys the airbloc contract suite and describes it as a [`Deployment`].
//!
//! One path for everyone: the integration tests, the local testnet and `airbloc admin deploy`
//! all call [`deploy_all`].

use crate::{
    contracts::{
        AppRegistry, Consents, ControllerRegistry, DataRegistry, DataTypeRegistry, Exchange, NodeRegistry, TestToken,
        Users,
    },
    deployment::{Deployed, Deployment},
};
use alloy::{
    contract::RawCallBuilder,
    primitives::Address,
    providers::{DynProvider, Provider},
};
use std::collections::BTreeMap;
use tracing::info;

/// What to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Owner of the ControllerRegistry (adds and removes identity keepers).
    pub governor: Address,
    /// Also deploy the mintable TestToken (local networks only).
    pub test_token: bool,
}

/// Why a deployment failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("deploying {contract}: {source}")]
    Send { contract: &'static str, source: alloy::contract::Error },
    #[error("deploying {contract}: waiting for the receipt: {source}")]
    Receipt { contract: &'static str, source: alloy::providers::PendingTransactionError },
    #[error("deploying {contract}: the transaction reverted (tx {tx}) — is the account funded?")]
    Reverted { contract: &'static str, tx: String },
    #[error("reading the chain id: {0}")]
    ChainId(#[from] alloy::transports::TransportError),
}

async fn send(contract: &'static str, builder: RawCallBuilder<&DynProvider>) -> Result<Deployed, DeployError> {
    let pending = builder.send().await.map_err(|source| DeployError::Send { contract, source })?;
    let receipt = pending.get_receipt().await.map_err(|source| DeployError::Receipt { contract, source })?;
    match (receipt.status(), receipt.contract_address) {
        (true, Some(address)) => {
            let block = receipt.block_number.unwrap_or_default();
            info!(target: "chain::deploy", contract, %address, block, "deployed");
            Ok(Deployed { address, block })
        }
        _ => Err(DeployError::Reverted { contract, tx: receipt.transaction_hash.to_string() }),
    }
}

/// Deploys every contract, in dependency order, from the provider's signer.
pub async fn deploy_all(provider: &DynProvider, options: &DeployOptions) -> Result<Deployment, DeployError> {
    let chain_id = provider.get_chain_id().await?;
    let mut contracts = BTreeMap::new();

    let controllers =
        send("ControllerRegistry", ControllerRegistry::deploy_builder(provider, options.governor)).await?;
    let nodes = send("NodeRegistry", NodeRegistry::deploy_builder(provider)).await?;
    let users = send("Users", Users::deploy_builder(provider, controllers.address)).await?;
    let apps = send("AppRegistry", AppRegistry::deploy_builder(provider)).await?;
    let data_types = send("DataTypeRegistry", DataTypeRegistry::deploy_builder(provider)).await?;
    let consents =
        send("Consents", Consents::deploy_builder(provider, users.address, apps.address, data_types.address)).await?;
    let data = send("DataRegistry", DataRegistry::deploy_builder(provider, apps.address, data_types.address)).await?;
    let exchange = send("Exchange", Exchange::deploy_builder(provider, data.address, apps.address)).await?;

    contracts.insert("ControllerRegistry".to_owned(), controllers);
    contracts.insert("NodeRegistry".to_owned(), nodes);
    contracts.insert("Users".to_owned(), users);
    contracts.insert("AppRegistry".to_owned(), apps);
    contracts.insert("DataTypeRegistry".to_owned(), data_types);
    contracts.insert("Consents".to_owned(), consents);
    contracts.insert("DataRegistry".to_owned(), data);
    contracts.insert("Exchange".to_owned(), exchange);
    if options.test_token {
        contracts.insert("TestToken".to_owned(), send("TestToken", TestToken::deploy_builder(provider)).await?);
    }
    Ok(Deployment { chain_id, contracts })
}
