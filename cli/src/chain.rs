//! Talking to the chain directly (wallet and admin commands): the endpoint, the deployment,
//! and sending a transaction with its revert named.

use crate::{Failure, exit};
use airbloc_eth::{Deployment, contracts::describe_revert, keys::NodeKey};
use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, Bytes, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{TransactionReceipt, TransactionRequest},
};
use clap::Args;
use std::path::PathBuf;

/// The chain endpoint.
#[derive(Debug, Clone, Args)]
pub(crate) struct RpcArgs {
    /// Chain JSON-RPC endpoint.
    #[arg(long, env = "AIRBLOC_RPC_URL", default_value = "http://127.0.0.1:8545", help_heading = "Chain")]
    pub rpc_url: String,
}

/// The chain endpoint and the contracts on it.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChainArgs {
    #[command(flatten)]
    pub rpc: RpcArgs,
    /// deployment.json written by `airbloc admin deploy`.
    #[arg(
        long,
        env = "AIRBLOC_DEPLOYMENT",
        default_value = "deployment.json",
        value_name = "FILE",
        help_heading = "Chain"
    )]
    pub deployment: PathBuf,
}

impl RpcArgs {
    /// A provider for the endpoint, signing with `key` when given.
    pub(crate) async fn connect(&self, key: Option<&NodeKey>) -> Result<DynProvider, Failure> {
        let unreachable = |e: &dyn std::fmt::Display| {
            Failure::new(exit::CHAIN, format!("cannot reach the chain at {}: {e} — is the node running?", self.rpc_url))
        };
        let provider = match key {
            Some(key) => ProviderBuilder::new()
                .wallet(EthereumWallet::from(key.signer().clone()))
                .connect(&self.rpc_url)
                .await
                .map_err(|e| unreachable(&e))?
                .erased(),
            None => ProviderBuilder::new().connect(&self.rpc_url).await.map_err(|e| unreachable(&e))?.erased(),
        };
        provider.get_chain_id().await.map_err(|e| unreachable(&e))?;
        Ok(provider)
    }
}

impl ChainArgs {
    /// The provider and the deployment, after checking they are for the same chain.
    pub(crate) async fn connect(&self, key: Option<&NodeKey>) -> Result<(DynProvider, Deployment), Failure> {
        let deployment = Deployment::load(&self.deployment).map_err(|e| {
            Failure::new(
                exit::USAGE,
                format!(
                    "cannot read {} ({e}) — give --deployment with the file `airbloc admin deploy` wrote",
                    self.deployment.display()
                ),
            )
        })?;
        let provider = self.rpc.connect(key).await?;
        let chain_id = provider.get_chain_id().await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
        if chain_id != deployment.chain_id {
            return Err(Failure::new(
                exit::CHAIN,
                format!(
                    "wrong chain: {} is chain {chain_id}, but {} is for chain {} — check --rpc-url and --deployment",
                    self.rpc.rpc_url,
                    self.deployment.display(),
                    deployment.chain_id
                ),
            ));
        }
        Ok((provider, deployment))
    }
}

/// The address of a deployed contract.
pub(crate) fn contract(deployment: &Deployment, name: &'static str) -> Result<Address, Failure> {
    deployment.address(name).map_err(|e| Failure::new(exit::USAGE, e.to_string()))
}

/// Sends a transaction, waits for its receipt and names a revert.
pub(crate) async fn send(
    provider: &DynProvider,
    to: Address,
    data: Vec<u8>,
    value: U256,
) -> Result<TransactionReceipt, Failure> {
    let tx = TransactionRequest::default().with_to(to).with_input(Bytes::from(data)).with_value(value);
    let pending = provider.send_transaction(tx).await.map_err(|e| {
        let reason = e
            .as_error_resp()
            .and_then(|r| r.as_revert_data())
            .map(|data| describe_revert(&data))
            .unwrap_or_else(|| e.to_string());
        Failure::new(exit::CHAIN, format!("the chain refused the transaction: {reason}"))
    })?;
    let receipt = pending.get_receipt().await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
    if !receipt.status() {
        return Err(Failure::new(exit::CHAIN, format!("transaction {} reverted", receipt.transaction_hash)));
    }
    Ok(receipt)
}
