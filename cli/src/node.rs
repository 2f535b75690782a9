//! `airbloc node …`: calls on a running node over gRPC.

use crate::{Failure, exit};
use airbloc_proto::v1::{
    ListTransactionsRequest, Role, StatusRequest, Transaction, TransactionId, admin_client::AdminClient,
    node_client::NodeClient,
};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// How to reach a node: its data dir (endpoint and token are read from `node.json` and
/// `api.token` there), or an explicit endpoint and token file.
#[derive(Debug, Clone, Args)]
pub(crate) struct Connection {
    /// Data dir of a local node.
    #[arg(long, env = "AIRBLOC_DATADIR", value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// gRPC endpoint, e.g. http://127.0.0.1:9640 (default: from the data dir).
    #[arg(long, env = "AIRBLOC_GRPC", value_name = "URL")]
    pub grpc: Option<String>,
    /// File holding the node's bearer token (default: from the data dir).
    #[arg(long, env = "AIRBLOC_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// Identity, roles, chain connection and uptime of a node.
    Status(Connection),
    /// Connected libp2p peers: address, standing in the NodeRegistry, roles, round trip.
    Peers(Connection),
    /// Transactions in the node's outbox (unfinished ones, or all with --all).
    Txs {
        #[command(flatten)]
        conn: Connection,
        /// Include mined, reverted, cancelled and failed transactions.
        #[arg(long)]
        all: bool,
    },
    /// Re-sign a stuck transaction with the same nonce and higher fees.
    Resend {
        #[command(flatten)]
        conn: Connection,
        /// Transaction id (see `airbloc node txs`).
        id: String,
    },
    /// Replace a sent transaction with a 0-value transfer to self, or drop a queued one.
    Cancel {
        #[command(flatten)]
        conn: Connection,
        /// Transaction id (see `airbloc node txs`).
        id: String,
    },
}

fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::Provider) => "provider",
        Ok(Role::Consumer) => "consumer",
        Ok(Role::Keeper) => "keeper",
        Ok(Role::Bootnode) => "bootnode",
        _ => "unknown",
    }
}

#[derive(serde::Deserialize)]
struct RuntimeInfo {
    grpc_addr: String,
    token_file: PathBuf,
}

impl Connection {
    async fn channel(&self) -> Result<(tonic::transport::Channel, String), Failure> {
        let runtime = match &self.datadir {
            Some(dir) => {
                let path = dir.join("node.json");
                let bytes = std::fs::read(&path).map_err(|e| {
                    Failure::new(
                        exit::NODE_UNREACHABLE,
                        format!(
                            "no running node at {} ({e}) — is airblocd running with --datadir {}?",
                            path.display(),
                            dir.display()
                        ),
                    )
                })?;
                Some(
                    serde_json::from_slice::<RuntimeInfo>(&bytes)
                        .map_err(|e| Failure::new(exit::FAILED, format!("{} is not valid: {e}", path.display())))?,
                )
            }
            None => None,
        };
        let endpoint = match (&self.grpc, &runtime) {
            (Some(url), _) => url.clone(),
            (None, Some(rt)) => format!("http://{}", rt.grpc_addr),
            (None, None) => {
                return Err(Failure::new(exit::USAGE, "give --datadir of a local node, or --grpc and --token-file"));
            }
        };
        let token_file = match (&self.token_file, &runtime) {
            (Some(f), _) => f.clone(),
            (None, Some(rt)) => rt.token_file.clone(),
            (None, None) => return Err(Failure::new(exit::USAGE, "give --token-file with the node's api.token")),
        };
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| Failure::new(exit::USAGE, format!("cannot read token file {}: {e}", token_file.display())))?;
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| Failure::new(exit::USAGE, format!("bad endpoint {endpoint}: {e}")))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| {
                Failure::new(
                    exit::NODE_UNREACHABLE,
                    format!("cannot reach node at {endpoint}: {e} — is airblocd running?"),
                )
            })?;
        Ok((channel, token.trim().to_owned()))
    }
}

fn status_failure(status: tonic::Status) -> Failure {
    let code = match status.code() {
        tonic::Code::NotFound => exit::NOT_FOUND,
        tonic::Code::Unavailable => exit::NODE_UNREACHABLE,
        tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => exit::USAGE,
        _ => exit::FAILED,
    };
    Failure::new(code, status.message().to_owned())
}

fn print_txs(txs: &[Transaction], json: bool) {
    if json {
        let list: Vec<_> = txs
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id, "label": t.label, "state": t.state, "nonce": t.nonce, "tx_hashes": t.tx_hashes,
                    "to": t.to, "block": t.block, "reason": t.reason, "created_at": t.created_at,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return;
    }
    if txs.is_empty() {
        println!("no transactions");
        return;
    }
    println!("{:<28} {:<9} {:>6} {:<68} {}", "ID", "STATE", "NONCE", "TX", "LABEL / REASON");
    for t in txs {
        let nonce = t.nonce.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        let hash = t.tx_hashes.last().cloned().unwrap_or_else(|| "-".into());
        let note = if t.reason.is_empty() { t.label.clone() } else { format!("{} — {}", t.label, t.reason) };
        println!("{:<28} {:<9} {:>6} {:<68} {}", t.id, t.state, nonce, hash, note);
    }
}

pub(crate) async fn run(cmd: NodeCommand, json: bool) -> Result<(), Failure> {
    let admin = |conn: Connection| async move {
        let (channel, token) = conn.channel().await?;
        let auth = airbloc_proto::bearer(&token)
            .map_err(|e| Failure::new(exit::USAGE, format!("token is not a valid header value: {e}")))?;
        Ok::<_, Failure>(AdminClient::with_interceptor(channel, auth))
    };
    match cmd {
        NodeCommand::Txs { conn, all } => {
            let txs = admin(conn)
                .await?
                .list_transactions(ListTransactionsRequest { include_finished: all })
                .await
                .map_err(status_failure)?
                .into_inner()
                .transactions;
            print_txs(&txs, json);
            Ok(())
        }
        NodeCommand::Resend { conn, id } => {
            let tx = admin(conn).await?.resend_transaction(TransactionId { id }).await.map_err(status_failure)?;
            print_txs(&[tx.into_inner()], json);
            Ok(())
        }
        NodeCommand::Cancel { conn, id } => {
            let tx = admin(conn).await?.cancel_transaction(TransactionId { id }).await.map_err(status_failure)?;
            print_txs(&[tx.into_inner()], json);
            Ok(())
        }
        NodeCommand::Peers(conn) => {
            let (channel, token) = conn.channel().await?;
            let auth = airbloc_proto::bearer(&token)
                .map_err(|e| Failure::new(exit::USAGE, format!("token is not a valid header value: {e}")))?;
            let peers = NodeClient::with_interceptor(channel, auth)
                .peers(airbloc_proto::v1::PeersRequest {})
                .await
                .map_err(status_failure)?
                .into_inner()
                .peers;
            if json {
                let peers: Vec<_> = peers
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "peer_id": p.peer_id,
                            "address": p.address,
                            "admitted": p.admitted,
                            "standing": p.standing,
                            "roles": p.roles.iter().map(|r| role_name(*r)).collect::<Vec<_>>(),
                            "agent": p.agent,
                            "rtt_ms": p.rtt_ms,
                            "addrs": p.addrs,
                        })
                    })
                    .collect();
                println!("{:#}", serde_json::json!({ "peers": peers }));
            } else if peers.is_empty() {
                println!("no peers connected");
            } else {
                println!("{:<44} {:<13} {:<18} {:>6}  address", "address", "standing", "roles", "rtt");
                for p in &peers {
                    let roles: Vec<&str> = p.roles.iter().map(|r| role_name(*r)).collect();
                    let roles = if roles.is_empty() { "-".to_owned() } else { roles.join(",") };
                    let address = if p.address.is_empty() { "-" } else { p.address.as_str() };
                    println!(
                        "{address:<44} {:<13} {roles:<18} {:>4}ms  {}",
                        p.standing,
                        p.rtt_ms,
                        p.addrs.first().map_or("-", String::as_str)
                    );
                }
            }
            Ok(())
        }
        NodeCommand::Status(conn) => {
            let (channel, token) = conn.channel().await?;
            let auth = airbloc_proto::bearer(&token)
                .map_err(|e| Failure::new(exit::USAGE, format!("token is not a valid header value: {e}")))?;
            let status = NodeClient::with_interceptor(channel, auth)
                .status(StatusRequest {})
                .await
                .map_err(status_failure)?
                .into_inner();
            let roles: Vec<&str> = status.roles.iter().map(|r| role_name(*r)).collect();
            if json {
                let value = serde_json::json!({
                    "version": status.version,
                    "address": status.address,
                    "peer_id": status.peer_id,
                    "roles": roles,
                    "chain_id": status.chain_id,
                    "chain_connected": status.chain_connected,
                    "chain_rpc_url": status.chain_rpc_url,
                    "uptime_seconds": status.uptime_seconds,
                    "chain_head": status.chain_head,
                    "indexed_block": status.indexed_block,
                    "outbox_depth": status.outbox_depth,
                    "peer_count": status.peer_count,
                    "listen_addrs": status.listen_addrs,
                    "deployment_loaded": status.deployment_loaded,
                });
                println!("{value:#}");
            } else {
                let chain = match status.chain_id {
                    Some(id) => format!("{id} ({})", if status.chain_connected { "connected" } else { "unreachable" }),
                    None => "unknown (endpoint not reached yet)".to_owned(),
                };
                println!("version   {}", status.version);
                println!("address   {}", status.address);
                println!("peer id   {}", status.peer_id);
                println!("roles     {}", if roles.is_empty() { "-".to_owned() } else { roles.join(", ") });
                println!("chain     {chain} via {}", status.chain_rpc_url);
                if status.deployment_loaded {
                    println!("indexed   block {} of {}", status.indexed_block, status.chain_head);
                    println!("outbox    {} pending", status.outbox_depth);
                } else {
                    println!("contracts not configured (set chain.deployment)");
                }
                println!("peers     {}", status.peer_count);
                println!("uptime    {}s", status.uptime_seconds);
            }
            Ok(())
        }
    }
}
