//! The node's lifecycle: open the data dir, load the identity, start the services, run until
//! cancelled, stop them in order.
//!
//! [`run`] is what `airblocd` calls; the binary owns signals and the grace period.

use crate::{
    api::{
        self, AdminService, NodeInfo, NodeService,
        auth::{ApiToken, TokenAuth},
    },
    backend::{Backend, ChainServices},
    chain::{
        ChainMonitor, Deployment,
        indexer::{Indexer, IndexerConfig},
        outbox::{Outbox, OutboxConfig},
        state::ChainState,
    },
    config::{ChainConfig, Config},
    datadir::{DataDir, DataDirError, RuntimeInfo},
    keys::{self, KeyError},
    store::{Store, StoreError},
};
use alloy::{
    network::EthereumWallet,
    providers::{DynProvider, Provider, ProviderBuilder, WsConnect},
};
use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
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
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot bind the metrics address {addr}: {source} — choose another with --metrics.addr")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
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

    let store = Arc::new(Store::open(&datadir.path().join("db"))?);
    let chain = ChainMonitor::new(config.chain.rpc_url.clone(), deployment.as_ref().map(|d| d.chain_id));
    let backend = Backend::new(store.clone(), chain.status());
    let node_service = NodeService::new(
        NodeInfo {
            address: key.address().to_string(),
            peer_id: key.peer_id().to_string(),
            roles: config.roles.clone(),
            chain_rpc_url: config.chain.rpc_url.clone(),
            deployment_loaded: deployment.is_some(),
            started,
        },
        backend.clone(),
    );
    let admin_service = AdminService::new(backend.clone());

    let api = api::bind(config.api.grpc_addr).await?;
    let grpc_addr = api.local_addr;
    let tasks = TaskTracker::new();
    if let Some(deployment) = deployment {
        let start = start_chain_services(
            config.chain.clone(),
            deployment,
            backend.clone(),
            EthereumWallet::from(key.signer().clone()),
            tasks.clone(),
            cancel.child_token(),
        );
        if config.chain.rpc_url.starts_with("ws") {
            tasks.spawn(start);
        } else {
            start.await;
        }
    }
    let metrics_listener = match config.metrics.enabled {
        true => Some(
            crate::metrics::bind(config.metrics.addr)
                .await
                .map_err(|source| NodeError::Metrics { addr: config.metrics.addr, source })?,
        ),
        false => None,
    };
    let metrics_addr = metrics_listener.as_ref().and_then(|l| l.local_addr().ok());
    datadir
        .write_runtime(&RuntimeInfo {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: key.address().to_string(),
            peer_id: key.peer_id().to_string(),
            grpc_addr,
            metrics_addr,
            token_file: token_file.clone(),
        })
        .map_err(|source| NodeError::Runtime { path: datadir.path().join(crate::datadir::RUNTIME_FILE), source })?;
    info!(target: "api", %grpc_addr, token_file = %token_file.display(), "gRPC API listening");

    tasks.spawn(chain.run(cancel.child_token()));
    let registry = crate::metrics::Registry::new();
    if let Some(listener) = metrics_listener {
        tasks.spawn(crate::metrics::serve(listener, registry.clone(), backend.clone(), cancel.child_token()));
    }
    let api_task = tasks.spawn(api.serve(
        node_service,
        admin_service,
        TokenAuth::new(token),
        registry,
        cancel.clone().cancelled_owned(),
    ));
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
    drop(backend);
    if let Err(e) = store.flush() {
        warn!(target: "store", error = %e, "flush at shutdown failed");
    }
    datadir.clear_runtime();
    info!(target: "node", "stopped");
    result
}

/// A provider for the endpoint: HTTP needs no connection up front; WebSocket connects now.
pub async fn connect(rpc_url: &str) -> Result<DynProvider, alloy::transports::TransportError> {
    let builder = ProviderBuilder::new().disable_recommended_fillers();
    if rpc_url.starts_with("ws://") || rpc_url.starts_with("wss://") {
        Ok(builder.connect_ws(WsConnect::new(rpc_url)).await?.erased())
    } else {
        let url = rpc_url.parse().map_err(|e| alloy::transports::TransportErrorKind::custom_str(&format!("{e}")))?;
        Ok(builder.connect_http(url).erased())
    }
}

/// Connects to the chain (retrying while a WebSocket endpoint is down), then starts the outbox
/// and the indexer and publishes them on the backend. HTTP endpoints need no connection up front,
/// so for them this finishes at once, before the node announces itself.
async fn start_chain_services(
    config: ChainConfig,
    deployment: Deployment,
    backend: Backend,
    wallet: EthereumWallet,
    tasks: TaskTracker,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(500);
    let provider = loop {
        match connect(&config.rpc_url).await {
            Ok(provider) => break provider,
            Err(e) => {
                warn!(target: "chain", rpc = %config.rpc_url, error = %e, "cannot connect; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    let outbox_config = OutboxConfig {
        confirmations: config.confirmations,
        stuck_after: Duration::from_secs(config.stuck_after_secs),
        ..OutboxConfig::default()
    };
    let indexer_config =
        IndexerConfig { lag: config.indexer_lag, page_size: config.log_page_size, ..IndexerConfig::default() };
    let started = Outbox::new(backend.store.clone(), provider.clone(), wallet, outbox_config)
        .map_err(|e| e.to_string())
        .and_then(|outbox| {
            Indexer::new(backend.store.clone(), provider, &deployment, indexer_config)
                .map(|(indexer, handle)| (outbox, indexer, handle))
                .map_err(|e| e.to_string())
        });
    match started {
        Ok((outbox, indexer, handle)) => {
            backend.set_services(ChainServices {
                outbox: outbox.clone(),
                indexer: handle,
                state: ChainState::new(backend.store.clone()),
            });
            info!(target: "chain", from = %outbox.from(), "outbox and indexer running");
            tasks.spawn(outbox.run(cancel.clone()));
            tasks.spawn(indexer.run(cancel));
        }
        Err(e) => warn!(target: "chain", error = %e, "chain services could not start"),
    }
}
