//! The gRPC API.
//!
//! Services are thin: each holds a handle to node state and answers from it. Every service but
//! health sits behind [`auth::TokenAuth`]. Standard gRPC health (`grpc.health.v1`) and
//! reflection (v1 and v1alpha) are served.

mod admin;
pub mod auth;
mod consumer;
mod convert;
mod keeper;
mod node;
mod provider;
mod registry;

pub use admin::AdminService;
pub use consumer::ConsumerService;
pub use keeper::KeeperService;
pub use node::{NodeInfo, NodeService};
pub use provider::ProviderService;
pub use registry::RegistryService;

use airbloc_proto::v1::{
    admin_server::AdminServer, consumer_server::ConsumerServer, keeper_server::KeeperServer, node_server::NodeServer,
    provider_server::ProviderServer, registry_server::RegistryServer,
};

/// The services of the roles a node runs; `None` for a role that is off.
#[derive(Debug, Default)]
pub struct RoleServices {
    pub registry: Option<RegistryService>,
    pub provider: Option<ProviderService>,
    pub consumer: Option<ConsumerService>,
    pub keeper: Option<KeeperService>,
}
use std::{net::SocketAddr, time::Duration};
use tokio_util::sync::CancellationToken;

/// How long in-flight calls may run on after shutdown begins (within the binary's 10 s grace).
pub const DRAIN: Duration = Duration::from_secs(3);
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{service::interceptor::InterceptedService, transport::Server};

/// Errors starting the API.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot bind gRPC address {addr}: {source} — choose another with --api.grpc-addr")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// A bound, not yet serving, gRPC endpoint.
#[derive(Debug)]
pub struct BoundApi {
    listener: TcpListener,
    /// The address actually bound.
    pub local_addr: SocketAddr,
}

/// Binds the gRPC address (port 0 picks a free port).
pub async fn bind(addr: SocketAddr) -> Result<BoundApi, ApiError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ApiError::Bind { addr, source })?;
    let local_addr = listener.local_addr().map_err(|source| ApiError::Bind { addr, source })?;
    Ok(BoundApi { listener, local_addr })
}

impl BoundApi {
    /// Serves every service until `shutdown` fires, then finishes in-flight calls — for at most
    /// [`DRAIN`]; calls still running then are closed (their work is durable: the outbox and
    /// the store hold it for the restart).
    pub async fn serve(
        self,
        node: NodeService,
        admin: AdminService,
        roles: RoleServices,
        auth: auth::TokenAuth,
        metrics: std::sync::Arc<crate::metrics::Registry>,
        shutdown: CancellationToken,
    ) -> Result<(), ApiError> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<NodeServer<NodeService>>().await;
        health_reporter.set_serving::<AdminServer<AdminService>>().await;
        let RoleServices { registry, provider, consumer, keeper } = roles;
        if registry.is_some() {
            health_reporter.set_serving::<RegistryServer<RegistryService>>().await;
        }
        if provider.is_some() {
            health_reporter.set_serving::<ProviderServer<ProviderService>>().await;
        }
        if consumer.is_some() {
            health_reporter.set_serving::<ConsumerServer<ConsumerService>>().await;
        }
        if keeper.is_some() {
            health_reporter.set_serving::<KeeperServer<KeeperService>>().await;
        }

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airbloc_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(airbloc_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let server = Server::builder()
            .layer(crate::metrics::GrpcMetricsLayer::new(metrics))
            .add_service(health_service)
            .add_service(InterceptedService::new(reflection_v1, auth.clone()))
            .add_service(InterceptedService::new(reflection_v1alpha, auth.clone()))
            .add_service(InterceptedService::new(NodeServer::new(node), auth.clone()))
            .add_service(InterceptedService::new(AdminServer::new(admin), auth.clone()))
            .add_optional_service(registry.map(|r| InterceptedService::new(RegistryServer::new(r), auth.clone())))
            .add_optional_service(provider.map(|p| InterceptedService::new(ProviderServer::new(p), auth.clone())))
            .add_optional_service(consumer.map(|c| InterceptedService::new(ConsumerServer::new(c), auth.clone())))
            .add_optional_service(keeper.map(|k| InterceptedService::new(KeeperServer::new(k), auth)))
            .serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown.clone().cancelled_owned());
        let drained = async {
            shutdown.cancelled().await;
            // Time is the point: the bound on how long in-flight calls may still run.
            tokio::time::sleep(DRAIN).await;
        };
        tokio::select! {
            served = server => served?,
            _ = drained => tracing::warn!(target: "api", "calls still running {DRAIN:?} after shutdown began; closing them"),
        }
        Ok(())
    }
}

/// A role error as a gRPC status, one code per kind (see [`crate::roles::RoleError::to_status`]).
pub(crate) fn status(e: crate::roles::RoleError) -> tonic::Status {
    e.to_status()
}
