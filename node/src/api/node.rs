//! `airbloc.v1.Node`: identity, roles, chain connection, uptime.

use crate::{backend::Backend, config::Role};
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
    backend: Backend,
}

impl NodeService {
    pub fn new(info: NodeInfo, backend: Backend) -> Self {
        Self { info: Arc::new(info), backend }
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
    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let chain = &self.backend.chain;
        let services = self.backend.services();
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
            peer_count: 0,
            deployment_loaded: self.info.deployment_loaded,
        }))
    }
}
