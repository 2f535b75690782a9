//! `airbloc.v1.Node`: identity, roles, chain connection, uptime.

use crate::{backend::NodeView, chain::contracts::roles, config::Role, p2p::Standing};
use airbloc_proto::v1::{self as pb, node_server::Node};
use std::{sync::Arc, time::Instant};
use tonic::{Request, Response, Status};

/// Facts about the node that do not change while it runs.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub address: String,
    pub peer_id: String,
    pub roles: Vec<Role>,
    pub chain_rpc_url: String,
    pub deployment_loaded: bool,
    pub started: Instant,
}

/// The Node service.
#[derive(Debug, Clone)]
pub struct NodeService {
    info: Arc<NodeInfo>,
    view: NodeView,
}

impl NodeService {
    pub fn new(info: NodeInfo, view: NodeView) -> Self {
        Self { info: Arc::new(info), view }
    }
}

fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Provider => pb::Role::Provider,
        Role::Consumer => pb::Role::Consumer,
        Role::Keeper => pb::Role::Keeper,
        Role::Bootnode => pb::Role::Bootnode,
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn peers(&self, _request: Request<pb::PeersRequest>) -> Result<Response<pb::PeersResponse>, Status> {
        let peers = self.view.network.peers().await;
        let services = self.view.services.get();
        let mut roles_by_address = std::collections::HashMap::new();
        if let Some(services) = &services {
            for address in peers.iter().filter_map(|p| p.address) {
                let row = services.state.node(address).map_err(|e| Status::internal(e.to_string()))?;
                roles_by_address.insert(address, row.map_or(0, |row| row.roles));
            }
        }
        let registered = |address| roles_by_address.get(&address).copied().unwrap_or(0);
        Ok(Response::new(pb::PeersResponse {
            peers: peers
                .into_iter()
                .map(|p| pb::Peer {
                    peer_id: p.peer_id.to_string(),
                    address: p.address.map(|a| a.to_string()).unwrap_or_default(),
                    admitted: p.standing == Standing::Admitted,
                    addrs: p.addresses.iter().map(ToString::to_string).collect(),
                    standing: format!("{:?}", p.standing).to_lowercase(),
                    agent: p.agent.unwrap_or_default(),
                    rtt_ms: p.rtt.map_or(0, |d| d.as_millis().max(1) as u32),
                    roles: roles_of(p.address.map_or(0, registered)),
                })
                .collect(),
        }))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let chain = &self.view.chain;
        let services = self.view.services.get();
        let services = services.as_ref();
        let (peers, listening) = (self.view.network.peers().await, self.view.network.listening().await);
        Ok(Response::new(pb::StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: self.info.address.clone(),
            peer_id: self.info.peer_id.clone(),
            roles: self.info.roles.iter().map(|r| role_to_proto(*r) as i32).collect(),
            chain_id: chain.chain_id(),
            uptime_seconds: self.info.started.elapsed().as_secs(),
            chain_connected: chain.connected(),
            chain_rpc_url: self.info.chain_rpc_url.clone(),
            chain_head: chain.head(),
            indexed_block: services.map_or(0, |s| s.indexer.progress().indexed),
            outbox_depth: services.map_or(0, |s| s.outbox.depth() as u64),
            peer_count: peers.len() as u32,
            listen_addrs: listening.iter().map(ToString::to_string).collect(),
            deployment_loaded: self.info.deployment_loaded,
        }))
    }
}

/// NodeRegistry role bits as API roles.
pub(crate) fn roles_of(bits: u8) -> Vec<i32> {
    [
        (roles::PROVIDER, pb::Role::Provider),
        (roles::CONSUMER, pb::Role::Consumer),
        (roles::KEEPER, pb::Role::Keeper),
        (roles::BOOTNODE, pb::Role::Bootnode),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, role)| role as i32)
    .collect()
}
