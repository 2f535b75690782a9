//! The node's lifecycle: open the data dir, load the identity, start the services, run until
//! cancelled, stop them in order.
//!
//! [`run`] is what `airblocd` calls; the binary owns signals and the grace period.

use crate::{
    api::{
        self, NodeInfo, NodeService,
        auth::{ApiToken, TokenAuth},
    },
    chain::{ChainMonitor, Deployment},
    config::Config,
    datadir::{DataDir, DataDirError, RuntimeInfo},
    keys::{self, KeyError},
};
use std::{path::PathBuf, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot read or create the API token file {path}: {source}")]
    Token { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error("cannot write {path}: {source}")]
    Runtime { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Deployment(#[from] crate::chain::deployment::DeploymentError),
    #[error("a node task panicked: {0}")]
    Panic(String),
}

/// Runs the node until `cancel` fires or a service fails.
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), NodeError> {
    let started = Instant::now();
    let datadir = DataDir::open(&config.datadir)?;

    let keystore = config.in_datadir(&config.keystore.path);
    let key = {
        let password = keys::read_password(config.keystore.password_file.as_deref())?;
        let (key, created) = keys::load_or_create(&keystore, &password, config.keystore.create)?;
        if created {
            info!(target: "keys", path = %keystore.display(), "created a new node key");
        }
        key
    };
    info!(target: "keys", address = %key.address(), peer_id = %key.peer_id(), roles = ?config.roles, "node identity loaded");

    let token_file = config.in_datadir(&config.api.token_file);
    let token = ApiToken::load_or_create(&token_file)
        .map_err(|source| NodeError::Token { path: token_file.clone(), source })?;

    let deployment = match &config.chain.deployment {
        Some(path) => {
            let deployment = Deployment::load(path)?;
            info!(target: "chain", path = %path.display(), chain_id = deployment.chain_id, "contract deployment loaded");
            Some(deployment)
        }
        None => {
            warn!(target: "chain", "no chain.deployment configured; chain features are off until one is set");
            None
        }
    };

    let chain = ChainMonitor::new(config.chain.rpc_url.clone(), deployment.as_ref().map(|d| d.chain_id));
    let node_service = NodeService::new(
        NodeInfo {
            address: key.address().to_string(),
            peer_id: key.peer_id().to_string(),
            roles: config.roles.clone(),
            chain_rpc_url: config.chain.rpc_url.clone(),
            started,
        },
        chain.status(),
    );

    let api = api::bind(config.api.grpc_addr).await?;
    let grpc_addr = api.local_addr;
    datadir
        .write_runtime(&RuntimeInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: key.address().to_string(),
            peer_id: key.peer_id().to_string(),
            grpc_addr,
            token_file: token_file.clone(),
        })
        .map_err(|source| NodeError::Runtime { path: datadir.path().join(crate::datadir::RUNTIME_FILE), source })?;
    info!(target: "api", %grpc_addr, token_file = %token_file.display(), "gRPC API listening");

    let tasks = TaskTracker::new();
    tasks.spawn(chain.run(cancel.child_token()));
    let api_task = tasks.spawn(api.serve(node_service, TokenAuth::new(token), cancel.clone().cancelled_owned()));
    tasks.close();

    // The API runs until cancelled; if it ends first, it failed, and the node stops with it.
    let result = match api_task.await {
        Ok(result) => result.map_err(NodeError::from),
        Err(join) => Err(NodeError::Panic(join.to_string())),
    };
    if let Err(e) = &result {
        warn!(target: "node", error = %e, "service failed; stopping the node");
    }
    cancel.cancel();
    tasks.wait().await;
    datadir.clear_runtime();
    info!(target: "node", "stopped");
    result
}
