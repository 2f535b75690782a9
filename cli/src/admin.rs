//! `airbloc admin …`: deploying and governing the contracts.

use crate::{
    Failure, exit,
    wallet::{KeyArgs, PasswordArgs},
};
use airbloc_node::chain::deploy::{DeployOptions, deploy_all};
use alloy::{
    network::EthereumWallet,
    primitives::Address,
    providers::{Provider, ProviderBuilder},
};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Deploy the airbloc contracts and write deployment.json.
    ///
    /// Example: airbloc admin deploy --rpc-url http://127.0.0.1:8545 --private-key-file dev.key --test-token
    Deploy(DeployArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Chain JSON-RPC endpoint.
    #[arg(long, env = "AIRBLOC_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    password: PasswordArgs,
    /// Owner of the ControllerRegistry (default: the deploying account).
    #[arg(long, value_name = "ADDRESS")]
    governor: Option<Address>,
    /// Also deploy the mintable TestToken (local networks only).
    #[arg(long)]
    test_token: bool,
    /// Where to write deployment.json.
    #[arg(long, default_value = "deployment.json", value_name = "FILE")]
    out: PathBuf,
}

pub(crate) async fn run(cmd: AdminCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        AdminCommand::Deploy(args) => {
            let key = args.key.load(&args.password)?;
            let deployer = key.address();
            let provider = ProviderBuilder::new()
                .wallet(EthereumWallet::from(key.signer().clone()))
                .connect(&args.rpc_url)
                .await
                .map_err(|e| Failure::new(exit::CHAIN, format!("cannot reach {}: {e}", args.rpc_url)))?
                .erased();
            let options = DeployOptions { governor: args.governor.unwrap_or(deployer), test_token: args.test_token };
            let deployment =
                deploy_all(&provider, &options).await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
            deployment
                .save(&args.out)
                .map_err(|e| Failure::new(exit::FAILED, format!("cannot write {}: {e}", args.out.display())))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&deployment).expect("serializes"));
            } else {
                println!("deployed to chain {} by {deployer}:", deployment.chain_id);
                for (name, d) in &deployment.contracts {
                    println!("  {name:<20} {}  (block {})", d.address, d.block);
                }
                println!("wrote {}", args.out.display());
            }
            Ok(())
        }
    }
}
