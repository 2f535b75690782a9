//! `airbloc.v1.Registry`: the indexed chain state — apps, data types with schemas, users and
//! consents, bundles, offers, nodes. Served by every node with a deployment.

use super::{
    convert::{consents_to_proto, id32},
    node::roles_of,
    status,
};
use crate::{
    backend::{Backend, Ready},
    chain::state::{ChainState, OfferStatus},
    roles::schemas::Schemas,
};
use airbloc_proto::v1::{self as pb, registry_server};
use alloy::primitives::{Address, B256, keccak256};
use tonic::{Request, Response, Status};

/// The Registry service.
#[derive(Debug, Clone)]
pub struct RegistryService {
    backend: Ready<Backend>,
}

impl RegistryService {
    pub fn new(backend: Ready<Backend>) -> Self {
        Self { backend }
    }

    fn backend(&self) -> Result<Backend, Status> {
        self.backend.get().ok_or_else(|| {
            Status::unavailable(
                "the chain services are not running yet — the node is still connecting to chain.rpc_url",
            )
        })
    }

    fn state(&self) -> Result<ChainState, Status> {
        Ok(self.backend()?.services.state)
    }
}

/// An id given as 32 bytes, or derived from a name (registry ids are keccak256(name)).
fn id_or_name(id: &[u8], name: &str, what: &str) -> Result<B256, Status> {
    match (id.is_empty(), name.is_empty()) {
        (false, _) => id32(id, what).map_err(Status::invalid_argument),
        (true, false) => Ok(keccak256(name.as_bytes())),
        (true, true) => Err(Status::invalid_argument(format!("give {what} or a name"))),
    }
}

fn store_error(e: crate::store::StoreError) -> Status {
    Status::internal(e.to_string())
}

fn address_or_empty(address: Address) -> String {
    if address == Address::ZERO { String::new() } else { address.to_string() }
}

#[tonic::async_trait]
impl registry_server::Registry for RegistryService {
    async fn get_app(&self, request: Request<pb::AppRef>) -> Result<Response<pb::AppInfo>, Status> {
        let request = request.into_inner();
        let id = id_or_name(&request.app_id, &request.name, "app_id")?;
        let app = self.state()?.app(id).map_err(store_error)?.ok_or_else(|| {
            Status::not_found(format!("app {id} is not registered (or not indexed yet by this node)"))
        })?;
        Ok(Response::new(pb::AppInfo {
            app_id: id.to_vec(),
            name: app.name,
            owner: app.owner.to_string(),
            authorized: app.authorized.iter().map(ToString::to_string).collect(),
            retired: app.retired,
        }))
    }

    async fn get_data_type(&self, request: Request<pb::DataTypeRef>) -> Result<Response<pb::DataTypeInfo>, Status> {
        let request = request.into_inner();
        let id = id_or_name(&request.data_type_id, &request.name, "data_type_id")?;
        let (row, schema_json) = Schemas::new(self.backend()?).of_data_type(id).await.map_err(status)?;
        Ok(Response::new(pb::DataTypeInfo {
            data_type_id: id.to_vec(),
            name: row.name,
            owner: row.owner.to_string(),
            schema_hash: row.schema_hash.to_vec(),
            schema_json,
            version: row.version,
        }))
    }

    async fn get_user(&self, request: Request<pb::UserRef>) -> Result<Response<pb::UserInfo>, Status> {
        let id = id32(&request.into_inner().user_id, "user_id").map_err(Status::invalid_argument)?;
        let user = self
            .state()?
            .user(id)
            .map_err(store_error)?
            .ok_or_else(|| Status::not_found(format!("user {id} is not registered (or not indexed yet)")))?;
        Ok(Response::new(pb::UserInfo {
            user_id: id.to_vec(),
            status: if user.temporary { "temporary" } else { "active" }.into(),
            owner: address_or_empty(user.owner),
            controller: address_or_empty(user.controller),
        }))
    }

    async fn list_user_consents(
        &self,
        request: Request<pb::UserRef>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let id = id32(&request.into_inner().user_id, "user_id").map_err(Status::invalid_argument)?;
        let rows = self.state()?.consents_of(id).map_err(store_error)?;
        Ok(Response::new(consents_to_proto(rows.into_iter())))
    }

    async fn get_bundle(&self, request: Request<pb::BundleRef>) -> Result<Response<pb::BundleInfo>, Status> {
        let id = id32(&request.into_inner().bundle_id, "bundle_id").map_err(Status::invalid_argument)?;
        let b = self
            .state()?
            .bundle(id)
            .map_err(store_error)?
            .ok_or_else(|| Status::not_found(format!("bundle {id} is not registered (or not indexed yet)")))?;
        Ok(Response::new(pb::BundleInfo {
            bundle_id: id.to_vec(),
            app_id: b.app.to_vec(),
            data_type_id: b.data_type.to_vec(),
            provider: b.provider.to_string(),
            merkle_root: b.merkle_root.to_vec(),
            record_count: b.record_count,
            ciphertext_hash: b.ciphertext_hash.to_vec(),
            size: b.size,
            active: b.active,
            registered_block: b.block,
        }))
    }

    async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersResponse>, Status> {
        let request = request.into_inner();
        let provider: Option<Address> = match request.provider.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|e| Status::invalid_argument(format!("provider `{text}`: {e}")))?),
        };
        let offers = self
            .state()?
            .offers()
            .map_err(store_error)?
            .into_iter()
            .filter(|(_, o)| o.status == OfferStatus::Open && provider.is_none_or(|p| p == o.provider))
            .map(|(id, o)| pb::OfferInfo {
                offer_id: id.to_vec(),
                provider: o.provider.to_string(),
                bundle_ids: o.bundle_ids.iter().map(|b| b.to_vec()).collect(),
                token: address_or_empty(o.token),
                price: o.price.to_string(),
                consumer: address_or_empty(o.consumer),
                expires_at: o.expires_at,
                status: o.status.to_string(),
                delivery_window_secs: o.delivery_window,
            })
            .collect();
        Ok(Response::new(pb::ListOffersResponse { offers }))
    }

    async fn list_nodes(&self, _: Request<pb::ListNodesRequest>) -> Result<Response<pb::ListNodesResponse>, Status> {
        let nodes = self
            .state()?
            .nodes()
            .map_err(store_error)?
            .into_iter()
            .map(|(address, n)| pb::NodeEntry {
                address: address.to_string(),
                peer_id: libp2p::PeerId::from_bytes(&n.peer_id).map(|p| p.to_string()).unwrap_or_default(),
                roles: roles_of(n.roles),
                multiaddrs: n.multiaddrs,
                active: n.active,
            })
            .collect();
        Ok(Response::new(pb::ListNodesResponse { nodes }))
    }
}
