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
    config::{ChainConfig, Config, Role},
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
    #[error(transparent)]
    Network(#[from] crate::p2p::NetworkError),
    #[error("cannot bind the metrics address {addr}: {source} — choose another with --metrics.addr")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("cannot start a role: {0}")]
    Role(String),
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

    let chain_id = deployment.as_ref().map(|d| d.chain_id);
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
    // The last indexed block, for the network's admission and gossip checks; fed once the
    // indexer runs.
    let (indexed_tx, indexed) = tokio::sync::watch::channel(0u64);
    if let Some(deployment) = deployment {
        let start = start_chain_services(
            config.chain.clone(),
            deployment,
            backend.clone(),
            indexed_tx,
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
    let registry = crate::metrics::Registry::new();
    let (network, network_builder) = start_network(&config, &key, chain_id, &backend, indexed, &registry)?;
    let role_services =
        start_roles(&config, &key, chain_id.is_some(), &backend, network_builder, datadir.path(), &tasks, &cancel)?;
    // Node.json names the real ports: wait (briefly) until every listener reported them.
    let listening = tokio::time::timeout(Duration::from_secs(2), network.listen_addrs()).await;
    let listening = match listening {
        Ok(addrs) => addrs,
        Err(_) => network.listening().await,
    };
    let p2p_addrs: Vec<String> = listening.iter().map(|a| format!("{a}/p2p/{}", network.local_peer_id())).collect();
    if config.p2p.register && chain_id.is_some() && !config.has_role(Role::Bootnode) {
        let announced = match config.p2p.external_addrs.is_empty() {
            true => listening.iter().map(ToString::to_string).collect(),
            false => config.p2p.external_addrs.clone(),
        };
        tasks.spawn(register_self(
            backend.clone(),
            key.peer_id(),
            roles_bits(&config.roles),
            announced,
            config.chain.indexer_lag,
            cancel.child_token(),
        ));
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
            p2p_addrs,
            token_file: token_file.clone(),
        })
        .map_err(|source| NodeError::Runtime { path: datadir.path().join(crate::datadir::RUNTIME_FILE), source })?;
    info!(target: "api", %grpc_addr, token_file = %token_file.display(), "gRPC API listening");

    tasks.spawn(chain.run(cancel.child_token()));
    if let Some(listener) = metrics_listener {
        tasks.spawn(crate::metrics::serve(listener, registry.clone(), backend.clone(), cancel.child_token()));
    }
    let api_task = tasks.spawn(api.serve(
        node_service,
        admin_service,
        role_services,
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
    indexed: tokio::sync::watch::Sender<u64>,
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
                deployment: Arc::new(deployment.clone()),
                outbox: outbox.clone(),
                indexer: handle,
                state: ChainState::new(backend.store.clone()),
            });
            info!(target: "chain", from = %outbox.from(), "outbox and indexer running");
            tasks.spawn(outbox.run(cancel.clone()));
            tasks.spawn(mirror_indexed(indexer.handle(), indexed, cancel.clone()));
            tasks.spawn(indexer.run(cancel));
        }
        Err(e) => warn!(target: "chain", error = %e, "chain services could not start"),
    }
}

/// Follows the indexer's progress into the network's view of the last indexed block.
async fn mirror_indexed(
    indexer: crate::chain::indexer::IndexerHandle,
    indexed: tokio::sync::watch::Sender<u64>,
    cancel: CancellationToken,
) {
    let mut progress = indexer.subscribe();
    loop {
        let block = progress.borrow_and_update().indexed;
        indexed.send_if_modified(|at| std::mem::replace(at, block) != block);
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = progress.changed() => if changed.is_err() { return },
        }
    }
}

/// Builds libp2p (listening; its loop starts with the roles' handlers in [`start_roles`]): chain
/// admission for nodes with a deployment; open admission (DHT only, no gossip) for bootnodes.
fn start_network(
    config: &Config,
    key: &keys::NodeKey,
    chain_id: Option<u64>,
    backend: &Backend,
    indexed: tokio::sync::watch::Receiver<u64>,
    registry: &crate::metrics::Registry,
) -> Result<(crate::p2p::Network, crate::p2p::NetworkBuilder), NodeError> {
    let bootnode = config.has_role(Role::Bootnode);
    let network_config = crate::p2p::NetworkConfig {
        listen: crate::p2p::parse_addrs(&config.p2p.listen)?,
        bootnodes: crate::p2p::parse_addrs(&config.p2p.bootnodes)?,
        mdns: config.p2p.mdns,
        chain_id: chain_id.unwrap_or_default(),
        max_connections: config.p2p.max_connections,
        gossip: !bootnode,
        ..Default::default()
    };
    let admission = match (bootnode, chain_id) {
        (false, Some(_)) => crate::p2p::Admission::Chain(ChainState::new(backend.store.clone())),
        (true, _) => crate::p2p::Admission::Open,
        (false, None) => {
            warn!(target: "p2p", "no chain.deployment: peers cannot be checked against the NodeRegistry; admission is open");
            crate::p2p::Admission::Open
        }
    };
    let (network, builder) = {
        let mut libp2p_registry = registry.libp2p();
        crate::p2p::build(&network_config, key.libp2p_keypair(), admission, &mut libp2p_registry)?
    };
    backend.set_network(network.clone());
    Ok((network, builder.index_progress(indexed)))
}

fn roles_bits(roles: &[Role]) -> u8 {
    use crate::chain::contracts::roles;
    roles.iter().fold(0, |bits, role| {
        bits | match role {
            Role::Provider => roles::PROVIDER,
            Role::Consumer => roles::CONSUMER,
            Role::Keeper => roles::KEEPER,
            Role::Bootnode => roles::BOOTNODE,
        }
    })
}

/// Registers the node in the NodeRegistry (or updates its entry) once the indexer has caught up,
/// through the outbox: an idempotency key per PeerId and address set, so restarts never send it
/// twice.
async fn register_self(
    backend: Backend,
    peer_id: libp2p::PeerId,
    roles: u8,
    mut addrs: Vec<String>,
    lag: u64,
    cancel: CancellationToken,
) {
    use crate::chain::{contracts::NodeRegistry, outbox::Call};
    use alloy::sol_types::SolCall;
    addrs.truncate(8);
    let services = loop {
        if let Some(services) = backend.services() {
            let progress = services.indexer.progress();
            if progress.head > 0 && progress.indexed >= progress.head.saturating_sub(lag) {
                break services;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    let address = services.outbox.from();
    let Ok(registry) = services.deployment.address("NodeRegistry") else { return };
    let existing = match services.state.node(address) {
        Ok(existing) => existing,
        Err(e) => return warn!(target: "p2p", error = %e, "cannot read the NodeRegistry index"),
    };
    let (id, data, label) = match existing {
        None => (
            format!("node:register:{peer_id}"),
            NodeRegistry::registerCall { roles, peerId: peer_id.to_bytes().into(), multiaddrs: addrs.clone() }
                .abi_encode(),
            "register this node in the NodeRegistry",
        ),
        Some(row) if !row.active => {
            return warn!(target: "p2p", %address, "this node is deactivated in the NodeRegistry; peers will not admit it");
        }
        Some(row) if row.roles == roles && row.multiaddrs == addrs => return,
        Some(_) => (
            format!("node:update:{}", alloy::primitives::keccak256(format!("{roles}:{}", addrs.join(",")))),
            NodeRegistry::updateCall { roles, multiaddrs: addrs.clone() }.abi_encode(),
            "update this node's NodeRegistry entry",
        ),
    };
    let call = Call { to: registry, data: data.into(), value: alloy::primitives::U256::ZERO, label: label.into() };
    match services.outbox.submit(&id, call) {
        Ok(intent) => info!(target: "p2p", id = %intent.id, ?addrs, "NodeRegistry entry submitted"),
        Err(e) => warn!(target: "p2p", error = %e, "cannot submit the NodeRegistry entry"),
    }
}

/// Starts the provider, consumer and keeper roles the config asks for (each needs a deployment),
/// then the network's event loop with what they serve.
#[allow(clippy::too_many_arguments)]
fn start_roles(
    config: &Config,
    key: &keys::NodeKey,
    has_deployment: bool,
    backend: &Backend,
    network: crate::p2p::NetworkBuilder,
    datadir: &std::path::Path,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<crate::api::RoleServices, NodeError> {
    use crate::roles::{consumer::Consumer, consumer::RoleRequests, keeper::Keeper, provider::Provider};
    let mut requests = RoleRequests::default();
    let mut bundles: Option<Arc<dyn crate::p2p::BundleSource>> = None;
    if has_deployment {
        requests.schemas = Some(crate::roles::schemas::Schemas::new(backend.clone()));
    }
    for role in [Role::Provider, Role::Consumer, Role::Keeper] {
        if config.has_role(role) && !has_deployment {
            warn!(target: "node", ?role, "this role needs chain.deployment; its API is off");
        }
    }
    let provider = match config.has_role(Role::Provider) && has_deployment {
        true => {
            let provider = Provider::open(backend.clone(), keys::NodeKey::from_secret(key.secret_bytes())?, datadir)
                .map_err(|e| NodeError::Role(e.to_string()))?;
            bundles = Some(Arc::new(provider.clone()));
            if let Some(keeper) = config.provider.keeper {
                provider.set_keeper(keeper);
            }
            let resume = provider.clone();
            tasks.spawn(async move { resume.resume().await });
            tasks.spawn(provider.clone().run_deliveries(cancel.child_token()));
            let policy = crate::roles::provider::SealPolicy {
                max_records: config.provider.seal_records,
                max_age: Duration::from_secs(config.provider.seal_age_secs),
            };
            tasks.spawn(provider.clone().run_sealing(policy, cancel.child_token()));
            requests.provider = Some(provider.clone());
            Some(crate::api::ProviderService::new(provider))
        }
        false => None,
    };
    let consumer = match config.has_role(Role::Consumer) && has_deployment {
        true => {
            let consumer = Consumer::new(backend.clone(), keys::NodeKey::from_secret(key.secret_bytes())?, datadir);
            requests.consumer = Some(consumer.clone());
            Some(crate::api::ConsumerService::new(consumer, backend.clone()))
        }
        false => None,
    };
    let keeper = match config.has_role(Role::Keeper) && has_deployment {
        true => {
            let (keeper, batches) = Keeper::new(backend.clone(), keys::NodeKey::from_secret(key.secret_bytes())?);
            tasks.spawn(batches);
            requests.keeper = Some(keeper.clone());
            Some(crate::api::KeeperService::new(keeper))
        }
        false => None,
    };
    let handlers = crate::p2p::Handlers { requests: Some(Arc::new(requests)), bundles };
    tasks.spawn(network.start(handlers).run(cancel.child_token()));
    let registry = has_deployment.then(|| crate::api::RegistryService::new(backend.clone()));
    Ok(crate::api::RoleServices { registry, provider, consumer, keeper })
}
