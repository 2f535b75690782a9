//! `airbloc admin …`: deploying and governing the contracts, and a node's NodeRegistry entry.

use crate::{
    Failure,
    chain::{ChainArgs, RpcArgs, contract, send},
    client::output,
    exit,
    wallet::{KeyArgs, PasswordArgs},
};
use airbloc_eth::{
    contracts::{ControllerRegistry, NodeRegistry, roles},
    deploy::{DeployOptions, deploy_all},
};
use alloy::{
    primitives::{Address, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::{SolCall, SolEvent},
};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Deploy the airbloc contracts and write deployment.json.
    ///
    /// Example: airbloc admin deploy --rpc-url http://127.0.0.1:8545 --private-key-file dev.key --test-token
    Deploy(DeployArgs),
    /// Identity keepers allowed to act for users (ControllerRegistry; owner only).
    #[command(subcommand)]
    Controllers(ControllersCommand),
    /// A node's own NodeRegistry entry, signed with the node's key.
    #[command(subcommand)]
    Node(NodeEntryCommand),
    /// Active nodes in the NodeRegistry.
    Nodes {
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    rpc: RpcArgs,
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

/// The governor's signing key and the chain.
#[derive(Debug, Args)]
pub(crate) struct Governed {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    password: PasswordArgs,
    #[command(flatten)]
    chain: ChainArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ControllersCommand {
    /// Allow an identity keeper's node address to act for users.
    ///
    /// Example: airbloc admin controllers add 0xKeeper… --private-key-file governor.key
    Add {
        address: Address,
        #[command(flatten)]
        governor: Governed,
    },
    /// Withdraw that permission.
    Remove {
        address: Address,
        #[command(flatten)]
        governor: Governed,
    },
    /// Current controllers (from the registry's events).
    List {
        #[command(flatten)]
        chain: ChainArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum NodeEntryCommand {
    /// Register the node whose key signs (its PeerId comes from the same key).
    Register {
        /// Roles: provider, consumer, keeper, bootnode (comma separated).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Multiaddrs peers can dial.
        #[arg(long = "addr")]
        addrs: Vec<String>,
        #[command(flatten)]
        node: Governed,
    },
    /// Change the roles and addresses of the node's entry.
    Update {
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        #[arg(long = "addr")]
        addrs: Vec<String>,
        #[command(flatten)]
        node: Governed,
    },
    /// Take the node out of the network (peers stop admitting it).
    Deactivate {
        #[command(flatten)]
        node: Governed,
    },
}

fn role_bits(names: &[String]) -> Result<u8, Failure> {
    names.iter().try_fold(0u8, |bits, name| {
        Ok(bits
            | match name.trim() {
                "provider" => roles::PROVIDER,
                "consumer" => roles::CONSUMER,
                "keeper" => roles::KEEPER,
                "bootnode" => roles::BOOTNODE,
                other => {
                    return Err(Failure::new(
                        exit::USAGE,
                        format!("unknown role `{other}`: use provider, consumer, keeper or bootnode"),
                    ));
                }
            })
    })
}

fn role_names(bits: u8) -> Vec<&'static str> {
    [
        (roles::PROVIDER, "provider"),
        (roles::CONSUMER, "consumer"),
        (roles::KEEPER, "keeper"),
        (roles::BOOTNODE, "bootnode"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

impl Governed {
    async fn call(&self, name: &'static str, data: Vec<u8>) -> Result<alloy::rpc::types::TransactionReceipt, Failure> {
        self.call_with(&self.key.load(&self.password)?, name, data).await
    }

    /// Sends with a key already opened (a keystore is decrypted, or prompted for, once).
    async fn call_with(
        &self,
        key: &airbloc_eth::keys::NodeKey,
        name: &'static str,
        data: Vec<u8>,
    ) -> Result<alloy::rpc::types::TransactionReceipt, Failure> {
        let (provider, deployment) = self.chain.connect(Some(key)).await?;
        send(&provider, contract(&deployment, name)?, data, U256::ZERO).await
    }
}

fn print_tx(json: bool, receipt: &alloy::rpc::types::TransactionReceipt, what: &str) {
    output(
        json,
        serde_json::json!({ "tx": receipt.transaction_hash.to_string(), "block": receipt.block_number }),
        || println!("{what} (tx {}, block {})", receipt.transaction_hash, receipt.block_number.unwrap_or_default()),
    );
}

pub(crate) async fn run(cmd: AdminCommand, json: bool) -> Result<(), Failure> {
    match cmd {
        AdminCommand::Deploy(args) => {
            let key = args.key.load(&args.password)?;
            let deployer = key.address();
            let provider = args.rpc.connect(Some(&key)).await?;
            let options = DeployOptions { governor: args.governor.unwrap_or(deployer), test_token: args.test_token };
            let deployment =
                deploy_all(&provider, &options).await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
            deployment
                .save(&args.out)
                .map_err(|e| Failure::new(exit::FAILED, format!("cannot write {}: {e}", args.out.display())))?;
            output(json, serde_json::to_value(&deployment).expect("serializes"), || {
                println!("deployed to chain {} by {deployer}:", deployment.chain_id);
                for (name, d) in &deployment.contracts {
                    println!("  {name:<20} {}  (block {})", d.address, d.block);
                }
                println!("wrote {}", args.out.display());
            });
        }
        AdminCommand::Controllers(ControllersCommand::Add { address, governor }) => {
            let data = ControllerRegistry::addControllerCall { controller: address }.abi_encode();
            let receipt = governor.call("ControllerRegistry", data).await?;
            print_tx(json, &receipt, &format!("{address} is a controller"));
        }
        AdminCommand::Controllers(ControllersCommand::Remove { address, governor }) => {
            let data = ControllerRegistry::removeControllerCall { controller: address }.abi_encode();
            let receipt = governor.call("ControllerRegistry", data).await?;
            print_tx(json, &receipt, &format!("{address} is no longer a controller"));
        }
        AdminCommand::Controllers(ControllersCommand::List { chain }) => {
            let (provider, deployment) = chain.connect(None).await?;
            let registry = contract(&deployment, "ControllerRegistry")?;
            let from = deployment.contracts.get("ControllerRegistry").map_or(0, |c| c.block);
            let filter = Filter::new().address(registry).from_block(from);
            let logs = provider.get_logs(&filter).await.map_err(|e| Failure::new(exit::CHAIN, e.to_string()))?;
            let mut controllers: Vec<Address> = Vec::new();
            for log in logs {
                if let Ok(e) = ControllerRegistry::ControllerAdded::decode_log(&log.inner) {
                    controllers.retain(|c| *c != e.controller);
                    controllers.push(e.controller);
                } else if let Ok(e) = ControllerRegistry::ControllerRemoved::decode_log(&log.inner) {
                    controllers.retain(|c| *c != e.controller);
                }
            }
            let list: Vec<String> = controllers.iter().map(ToString::to_string).collect();
            output(json, serde_json::json!({ "controllers": list }), || {
                if list.is_empty() {
                    println!("no controllers — add one with `airbloc admin controllers add <address>`");
                }
                for c in &list {
                    println!("{c}");
                }
            });
        }
        AdminCommand::Node(NodeEntryCommand::Register { roles, addrs, node }) => {
            let key = node.key.load(&node.password)?;
            let data = NodeRegistry::registerCall {
                roles: role_bits(&roles)?,
                peerId: key.peer_id().to_bytes().into(),
                multiaddrs: addrs,
            }
            .abi_encode();
            let receipt = node.call_with(&key, "NodeRegistry", data).await?;
            print_tx(json, &receipt, &format!("registered {} ({})", key.address(), key.peer_id()));
        }
        AdminCommand::Node(NodeEntryCommand::Update { roles, addrs, node }) => {
            let data = NodeRegistry::updateCall { roles: role_bits(&roles)?, multiaddrs: addrs }.abi_encode();
            let receipt = node.call("NodeRegistry", data).await?;
            print_tx(json, &receipt, "updated");
        }
        AdminCommand::Node(NodeEntryCommand::Deactivate { node }) => {
            let receipt = node.call("NodeRegistry", NodeRegistry::deactivateCall {}.abi_encode()).await?;
            print_tx(json, &receipt, "deactivated");
        }
        AdminCommand::Nodes { chain } => {
            let (provider, deployment) = chain.connect(None).await?;
            let registry = NodeRegistry::new(contract(&deployment, "NodeRegistry")?, &provider);
            let chain_error = |e: alloy::contract::Error| Failure::new(exit::CHAIN, e.to_string());
            let count = registry.activeCount().call().await.map_err(chain_error)?;
            let addresses = registry.activeNodes(U256::ZERO, count).call().await.map_err(chain_error)?;
            let mut nodes = Vec::new();
            for address in addresses {
                let node = registry.getNode(address).call().await.map_err(chain_error)?;
                let peer_id = libp2p_peer_id(&node.peerId);
                nodes.push(serde_json::json!({
                    "address": address.to_string(),
                    "peer_id": peer_id,
                    "roles": role_names(node.roles),
                    "multiaddrs": node.multiaddrs,
                }));
            }
            output(json, serde_json::json!({ "nodes": nodes }), || {
                if nodes.is_empty() {
                    println!("no active nodes");
                }
                for n in &nodes {
                    println!(
                        "{}  {:<24} {}",
                        n["address"].as_str().unwrap_or_default(),
                        n["roles"]
                            .as_array()
                            .map(|r| r.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(","))
                            .unwrap_or_default(),
                        n["multiaddrs"].get(0).and_then(|a| a.as_str()).unwrap_or("-")
                    );
                }
            });
        }
    }
    Ok(())
}

/// A PeerId's text form from its bytes (base58 of the multihash).
fn libp2p_peer_id(bytes: &[u8]) -> String {
    airbloc_eth::keys::peer_id_text(bytes)
}
