//! # airbloc-proto
//!
//! The wire types of airbloc and the Rust SDK for talking to an `airblocd` node.
//!
//! - [`v1`] — the gRPC API (`airbloc.v1`): generated message types, a client per service
//!   (e.g. [`v1::node_client::NodeClient`]) and a server trait per service for the node.
//! - [`p2p::v1`] — the messages nodes exchange over libp2p (`airbloc.p2p.v1`).
//! - [`FILE_DESCRIPTOR_SET`] — the encoded descriptors of every file, served by the node's
//!   gRPC reflection.
//!
//! Every call but health needs the node's bearer token (found in `<datadir>/api.token`):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use airbloc_proto::v1::{node_client::NodeClient, StatusRequest};
//! let token = std::fs::read_to_string("/var/lib/airbloc/api.token")?;
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9640").connect().await?;
//! let mut node = NodeClient::with_interceptor(channel, airbloc_proto::bearer(token.trim())?);
//! let status = node.status(StatusRequest {}).await?.into_inner();
//! println!("{} {}", status.address, status.peer_id);
//! # Ok(()) }
//! ```

/// The gRPC API, package `airbloc.v1`.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    tonic::include_proto!("airbloc.v1");
}

/// Messages exchanged between nodes over libp2p.
pub mod p2p {
    /// Package `airbloc.p2p.v1`.
    pub mod v1 {
        #![allow(missing_docs, unreachable_pub, clippy::all)]
        tonic::include_proto!("airbloc.p2p.v1");
    }
}

/// Encoded `FileDescriptorSet` of all airbloc .proto files, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/airbloc_descriptor.bin"));

/// Metadata key carrying the bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// An interceptor that adds `authorization: Bearer <token>` to every request.
///
/// Fails when the token holds characters that cannot appear in a header.
pub fn bearer(token: &str) -> Result<BearerInterceptor, tonic::metadata::errors::InvalidMetadataValue> {
    let value = format!("Bearer {token}").parse()?;
    Ok(BearerInterceptor { value })
}

/// Adds the node's bearer token to outgoing requests; see [`bearer`].
#[derive(Clone)]
pub struct BearerInterceptor {
    value: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl std::fmt::Debug for BearerInterceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerInterceptor(<redacted>)")
    }
}

impl tonic::service::Interceptor for BearerInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert(AUTHORIZATION, self.value.clone());
        Ok(req)
    }
}
