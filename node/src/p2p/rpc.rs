//! Request/response dispatch. The network answers what it can itself (ping, bundle metadata from
//! the [`BundleSource`](super::transfer::BundleSource)); everything else goes to the role handler
//! the network was started with ([`super::Handlers`]). Every inbound request gets exactly one
//! response, also on error, and the requester handlers see is always the connection's
//! authenticated PeerId.

use super::error::wire_error;
use airbloc_proto::p2p::v1 as wire;
use futures::future::BoxFuture;
use libp2p::PeerId;

/// The answer of a handler: a response body or an error the peer can act on.
pub type HandlerResult = Result<wire::response::Body, wire::Error>;

/// Answers the requests of the node's roles (sign-up, consents, keys, records).
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request from the authenticated `peer`.
    fn handle(&self, peer: PeerId, body: wire::request::Body) -> BoxFuture<'static, HandlerResult>;
}

/// The answer when no handler serves a request.
pub fn unsupported(body: &wire::request::Body) -> wire::Error {
    let what = match body {
        wire::request::Body::Ping(_) => "ping",
        wire::request::Body::BundleMetadata(_) => "bundle metadata",
        wire::request::Body::SignUp(_) => "sign-up (identity keeper role)",
        wire::request::Body::Consent(_) => "consent requests (identity keeper role)",
        wire::request::Body::KeyDelivery(_) => "key delivery (consumer role)",
        wire::request::Body::KeyRequest(_) => "key requests (provider role)",
        wire::request::Body::Records(_) => "record export (provider role)",
        wire::request::Body::Schema(_) => "schemas (needs chain.deployment)",
    };
    wire_error(wire::ErrorCode::NotFound, format!("this node does not serve {what}"))
}

/// Wraps a handler result into the response for `request_id`.
pub fn response(request_id: u64, result: HandlerResult) -> wire::Response {
    let body = match result {
        Ok(body) => body,
        Err(error) => wire::response::Body::Error(error),
    };
    wire::Response { request_id, body: Some(body) }
}
