//! `airbloc node …`: calls on a running node over gRPC.

use crate::{
    Failure,
    client::{Connection, status_failure},
};
use airbloc_proto::v1::{
    ListTransactionsRequest, Role, StatusRequest, Transaction, TransactionId, admin_client::AdminClient,
    node_client::NodeClient,
};
use clap::Subcommand;

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

pub(crate) fn role_name(role: i32) -> &'static str {
    match Role::try_from(role) {
        Ok(Role::Provider) => "provider",
        Ok(Role::Consumer) => "consumer",
        Ok(Role::Keeper) => "keeper",
        Ok(Role::Bootnode) => "bootnode",
        _ => "unknown",
    }
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
        let (channel, auth) = conn.authed().await?;
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
            let (channel, auth) = conn.authed().await?;
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
            let (channel, auth) = conn.authed().await?;
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
