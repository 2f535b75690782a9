//! The node's lifecycle: open the data dir, load the identity, start the services, run until
//! cancelled, stop them in order.
//!
//! [`run`] is what `airblocd` calls; the binary owns signals and the grace period.

use crate::{
    api::{
        self, AdminService, NodeInfo, NodeService,
        auth::{ApiToken, TokenAuth},
    },
    backend::{Backend, NodeView, Publish, Ready, ready},
    chain::{
        ChainMonitor, ChainServices, Deployment,
        indexer::{Indexer, IndexerConfig},
        outbox::{Outbox, OutboxConfig},
        state::ChainState,
    },
    config::{Config, Role},
    datadir::{DataDir, DataDirError, RuntimeInfo},
    keys::{self, KeyError},
    roles::{consumer::Consumer, consumer::RoleRequests, keeper::Keeper, provider::Provider},
    store::{Store, StoreError},
};
use alloy::{
    network::EthereumWallet,
    providers::{DynProvider, Provider as _, ProviderBuilder, WsConnect},
};
use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{error, info, warn};

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
///
/// Parts are built in dependency order and passed in: store → chain state (the index view) →
/// network → chain services (outbox, indexer, deployment) → roles. The chain services need the
/// endpoint; behind a WebSocket endpoint that is down they come up later, and the roles (and
/// their gRPC services, which answer `unavailable` until then) with them.
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
    let state = ChainState::new(store.clone());
    let chain = ChainMonitor::new(config.chain.rpc_url.clone(), deployment.as_ref().map(|d| d.chain_id));
    let registry = crate::metrics::Registry::new();
    let tasks = TaskTracker::new();
    let (handlers_tx, handlers) = match deployment.is_some() {
        true => {
            let (tx, handlers) = LateHandlers::new();
            (Some(tx), handlers)
        }
        false => (None, crate::p2p::Handlers::default()),
    };
    let network = start_network(&config, &key, chain_id, &state, handlers, &registry, &tasks, &cancel).await?;
    let (publish_services, services) = ready::<ChainServices>();
    let view = NodeView { store: store.clone(), chain: chain.status(), network: network.clone(), services };
    let node_service = NodeService::new(
        NodeInfo {
            address: key.address().to_string(),
            peer_id: key.peer_id().to_string(),
            roles: config.roles.clone(),
            chain_rpc_url: config.chain.rpc_url.clone(),
            deployment_loaded: deployment.is_some(),
            started,
        },
        view.clone(),
    );
    let admin_service = AdminService::new(view.clone());

    let api = api::bind(config.api.grpc_addr).await?;
    let grpc_addr = api.local_addr;
    let (role_services, roles) = RolePlan::new(&config, deployment.is_some());
    if let Some(deployment) = deployment {
        let start = start_chain(ChainStart {
            config: config.clone(),
            deployment,
            store: store.clone(),
            state,
            network: network.clone(),
            key: keys::NodeKey::from_secret(key.secret_bytes())?,
            datadir: datadir.path().to_owned(),
            services: publish_services,
            roles,
            handlers: handlers_tx,
            tasks: tasks.clone(),
            cancel: cancel.clone(),
        });
        if config.chain.rpc_url.starts_with("ws") {
            tasks.spawn(async move {
                if let Err(e) = start.await {
                    error!(target: "node", error = %e, "the roles could not start");
                }
            });
        } else {
            start.await.map_err(|e| NodeError::Role(e.to_string()))?;
        }
    }
    // node.json names the real ports: wait (briefly) until every listener reported them.
    let listening = match tokio::time::timeout(Duration::from_secs(2), network.listen_addrs()).await {
        Ok(addrs) => addrs,
        Err(_) => network.listening().await,
    };
    let p2p_addrs: Vec<String> = listening.iter().map(|a| format!("{a}/p2p/{}", network.local_peer_id())).collect();
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
        tasks.spawn(crate::metrics::serve(listener, registry.clone(), view.clone(), cancel.child_token()));
    }
    let api_task = tasks.spawn(api.serve(
        node_service,
        admin_service,
        role_services,
        TokenAuth::new(token),
        registry,
        cancel.clone(),
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
    drop(view);
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

/// What [`start_chain`] builds the chain services and the roles from.
struct ChainStart {
    config: Config,
    deployment: Deployment,
    store: Arc<Store>,
    state: ChainState,
    network: crate::p2p::Network,
    key: keys::NodeKey,
    datadir: PathBuf,
    services: Publish<ChainServices>,
    roles: RolePlan,
    handlers: Option<PublishHandlers>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

/// Connects to the chain (retrying while a WebSocket endpoint is down), starts the outbox and the
/// indexer, then the roles over them, and publishes both. HTTP endpoints need no connection up
/// front, so for them this finishes at once, before the node announces itself.
async fn start_chain(start: ChainStart) -> Result<(), StartError> {
    let ChainStart {
        config,
        deployment,
        store,
        state,
        network,
        key,
        datadir,
        services,
        roles,
        handlers,
        tasks,
        cancel,
    } = start;
    let chain = &config.chain;
    let mut backoff = Duration::from_millis(500);
    let provider = loop {
        match connect(&chain.rpc_url).await {
            Ok(provider) => break provider,
            Err(e) => {
                warn!(target: "chain", rpc = %chain.rpc_url, error = %e, "cannot connect; retrying");
                // Time is the point: back-off between connection attempts.
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    let outbox_config = OutboxConfig {
        confirmations: chain.confirmations,
        stuck_after: Duration::from_secs(chain.stuck_after_secs),
        ..OutboxConfig::default()
    };
    let indexer_config =
        IndexerConfig { lag: chain.indexer_lag, page_size: chain.log_page_size, ..IndexerConfig::default() };
    let wallet = EthereumWallet::from(key.signer().clone());
    let started = Outbox::new(store.clone(), provider.clone(), wallet, outbox_config)
        .map_err(StartError::Outbox)
        .and_then(|outbox| {
            let (indexer, handle) =
                Indexer::over(&state, provider, &deployment, indexer_config).map_err(StartError::Indexer)?;
            Ok((outbox, indexer, handle))
        });
    let (outbox, indexer, handle) = match started {
        Ok(started) => started,
        // The node keeps serving what needs no chain; the roles' APIs answer `unavailable`.
        Err(e) => {
            warn!(target: "chain", error = %e, "chain services could not start");
            return Ok(());
        }
    };
    let chain_services = ChainServices {
        deployment: Arc::new(deployment),
        outbox: outbox.clone(),
        indexer: handle,
        state,
        shutdown: cancel.clone(),
    };
    info!(target: "chain", from = %outbox.from(), "outbox and indexer running");
    tasks.spawn(outbox.run(cancel.child_token()));
    tasks.spawn(indexer.run(cancel.child_token()));
    services.publish(chain_services.clone());

    let backend = Backend::new(store, chain_services.clone(), network.clone());
    roles.start(&config, &key, &backend, handlers, &datadir, &tasks, &cancel)?;
    if config.p2p.register && !config.has_role(Role::Bootnode) {
        let announced = match config.p2p.external_addrs.is_empty() {
            true => network.listening().await.iter().map(ToString::to_string).collect(),
            false => config.p2p.external_addrs.clone(),
        };
        tasks.spawn(register_self(
            chain_services,
            key.peer_id(),
            roles_bits(&config.roles),
            announced,
            config.chain.indexer_lag,
            cancel.child_token(),
        ));
    }
    Ok(())
}

/// Why the chain services or the roles could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("the outbox cannot start: {0}")]
    Outbox(crate::chain::outbox::OutboxError),
    #[error("the indexer cannot start: {0}")]
    Indexer(crate::chain::indexer::IndexerError),
    #[error(transparent)]
    Role(#[from] crate::roles::RoleError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Builds libp2p and starts its event loop: chain admission for nodes with a deployment; open
/// admission (DHT only, no gossip) for bootnodes. The loop serves the roles' requests and bundles
/// through `handlers`, which answer `unavailable` until the roles are published (they need the
/// chain services, which may come up later).
#[allow(clippy::too_many_arguments)]
async fn start_network(
    config: &Config,
    key: &keys::NodeKey,
    chain_id: Option<u64>,
    state: &ChainState,
    handlers: crate::p2p::Handlers,
    registry: &crate::metrics::Registry,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> Result<crate::p2p::Network, NodeError> {
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
        (false, Some(_)) => crate::p2p::Admission::Chain(state.clone()),
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
    let (indexed_tx, indexed) = tokio::sync::watch::channel(0u64);
    tasks.spawn(mirror_indexed(state.indexer(), indexed_tx, cancel.child_token()));
    tasks.spawn(builder.index_progress(indexed).start(handlers).run(cancel.child_token()));
    Ok(network)
}

/// Follows the indexer's progress into the network's view of the last indexed block (admission
/// and gossip checks re-run when it moves).
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

/// The roles' network handlers, published once the roles run; until then requests are answered
/// `unavailable` and no bundle is served.
#[derive(Clone)]
struct LateHandlers {
    requests: Ready<Arc<dyn crate::p2p::RequestHandler>>,
    bundles: Ready<Arc<dyn crate::p2p::BundleSource>>,
}

/// Where [`RolePlan::start`] publishes the roles' network handlers.
struct PublishHandlers {
    requests: Publish<Arc<dyn crate::p2p::RequestHandler>>,
    bundles: Publish<Arc<dyn crate::p2p::BundleSource>>,
}

impl LateHandlers {
    fn new() -> (PublishHandlers, crate::p2p::Handlers) {
        let (requests_tx, requests) = ready();
        let (bundles_tx, bundles) = ready();
        let late = Arc::new(Self { requests, bundles });
        let handlers = crate::p2p::Handlers { requests: Some(late.clone()), bundles: Some(late) };
        (PublishHandlers { requests: requests_tx, bundles: bundles_tx }, handlers)
    }
}

impl crate::p2p::RequestHandler for LateHandlers {
    fn handle(
        &self,
        peer: libp2p::PeerId,
        body: airbloc_proto::p2p::v1::request::Body,
    ) -> futures::future::BoxFuture<'static, crate::p2p::rpc::HandlerResult> {
        match self.requests.get() {
            Some(handler) => handler.handle(peer, body),
            None => Box::pin(async {
                Err(crate::p2p::wire_error(
                    airbloc_proto::p2p::v1::ErrorCode::Unavailable,
                    "this node's roles are starting (waiting for the chain endpoint); try again shortly",
                ))
            }),
        }
    }
}

impl crate::p2p::BundleSource for LateHandlers {
    fn serve(
        &self,
        peer: &libp2p::PeerId,
        bundle: alloy::primitives::B256,
    ) -> Result<crate::p2p::transfer::ServedBundle, airbloc_proto::p2p::v1::Error> {
        match self.bundles.get() {
            Some(source) => source.serve(peer, bundle),
            None => Err(crate::p2p::wire_error(
                airbloc_proto::p2p::v1::ErrorCode::Unavailable,
                "this node's roles are starting; try again shortly",
            )),
        }
    }
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
    services: ChainServices,
    peer_id: libp2p::PeerId,
    roles: u8,
    mut addrs: Vec<String>,
    lag: u64,
    cancel: CancellationToken,
) {
    use crate::chain::{contracts::NodeRegistry, outbox::Call};
    use alloy::sol_types::SolCall;
    addrs.truncate(8);
    let caught_up = |p: &crate::chain::indexer::IndexerProgress| p.head > 0 && p.indexed >= p.head.saturating_sub(lag);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            waited = services.indexer.wait_until(caught_up, Duration::from_secs(60)) => match waited {
                Ok(_) => break,
                Err(e) => info!(target: "p2p", "not registering in the NodeRegistry yet: {e}"),
            },
        }
    }
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

/// The roles the config switches on: their gRPC services exist from the start (they answer
/// `unavailable` until the chain services are up); the roles themselves are built over the chain
/// services in [`RolePlan::start`].
struct RolePlan {
    registry: Option<Publish<Backend>>,
    provider: Option<Publish<Provider>>,
    consumer: Option<Publish<Consumer>>,
    keeper: Option<Publish<Keeper>>,
}

impl RolePlan {
    fn new(config: &Config, has_deployment: bool) -> (crate::api::RoleServices, Self) {
        for role in [Role::Provider, Role::Consumer, Role::Keeper] {
            if config.has_role(role) && !has_deployment {
                warn!(target: "node", ?role, "this role needs chain.deployment; its API is off");
            }
        }
        let mut services = crate::api::RoleServices::default();
        let mut plan = Self { registry: None, provider: None, consumer: None, keeper: None };
        if has_deployment {
            let (tx, rx) = ready();
            services.registry = Some(crate::api::RegistryService::new(rx));
            plan.registry = Some(tx);
        }
        if has_deployment && config.has_role(Role::Provider) {
            let (tx, rx) = ready();
            services.provider = Some(crate::api::ProviderService::new(rx));
            plan.provider = Some(tx);
        }
        if has_deployment && config.has_role(Role::Consumer) {
            let (tx, rx) = ready();
            services.consumer = Some(crate::api::ConsumerService::new(rx));
            plan.consumer = Some(tx);
        }
        if has_deployment && config.has_role(Role::Keeper) {
            let (tx, rx) = ready();
            services.keeper = Some(crate::api::KeeperService::new(rx));
            plan.keeper = Some(tx);
        }
        (services, plan)
    }

    /// Builds the roles over `backend`, starts their tasks, installs their network request
    /// handler and publishes them to their gRPC services.
    fn start(
        self,
        config: &Config,
        key: &keys::NodeKey,
        backend: &Backend,
        handlers: Option<PublishHandlers>,
        datadir: &std::path::Path,
        tasks: &TaskTracker,
        cancel: &CancellationToken,
    ) -> Result<(), StartError> {
        let mut requests = RoleRequests {
            schemas: Some(crate::roles::schemas::Schemas::new(backend.clone())),
            ..RoleRequests::default()
        };
        let mut bundles: Option<Arc<dyn crate::p2p::BundleSource>> = None;
        if let Some(publish) = self.provider {
            let node_key = keys::NodeKey::from_secret(key.secret_bytes())?;
            let provider = Provider::open(backend.clone(), node_key, datadir, config.provider.keeper)?;
            bundles = Some(Arc::new(provider.clone()));
            let resume = provider.clone();
            let resume_cancel = cancel.child_token();
            tasks.spawn(async move {
                // Unfinished registrations stay in the store and are resumed at the next start.
                resume_cancel.run_until_cancelled(resume.resume()).await;
            });
            tasks.spawn(provider.clone().run_deliveries(cancel.child_token()));
            let policy = crate::roles::provider::SealPolicy {
                max_records: config.provider.seal_records,
                max_age: Duration::from_secs(config.provider.seal_age_secs),
            };
            tasks.spawn(provider.clone().run_sealing(policy, cancel.child_token()));
            requests.provider = Some(provider.clone());
            publish.publish(provider);
        }
        if let Some(publish) = self.consumer {
            let consumer = Consumer::new(backend.clone(), keys::NodeKey::from_secret(key.secret_bytes())?, datadir);
            requests.consumer = Some(consumer.clone());
            publish.publish(consumer);
        }
        if let Some(publish) = self.keeper {
            let (keeper, batches) =
                Keeper::new(backend.clone(), keys::NodeKey::from_secret(key.secret_bytes())?, cancel.child_token());
            tasks.spawn(batches);
            requests.keeper = Some(keeper.clone());
            publish.publish(keeper);
        }
        if let Some(handlers) = handlers {
            handlers.requests.publish(Arc::new(requests));
            if let Some(bundles) = bundles {
                handlers.bundles.publish(bundles);
            }
        }
        if let Some(publish) = self.registry {
            publish.publish(backend.clone());
        }
        Ok(())
    }
}
