//! `airbloc.v1.Keeper`: accounts, consents, hand-over and exports for users without wallets.

use super::{
    convert::{action, consent_changes, consents_to_proto, optional_id},
    status,
};
use crate::backend::Ready;
use crate::roles::keeper::{AccountView, Grant, Keeper};
use airbloc_proto::v1::{self as pb, keeper_server};
use alloy::primitives::Address;
use tonic::{Request, Response, Status};

/// The Keeper service.
#[derive(Debug, Clone)]
pub struct KeeperService {
    keeper: Ready<Keeper>,
}

impl KeeperService {
    /// The service of a role that is built once the chain services are up.
    pub fn new(keeper: Ready<Keeper>) -> Self {
        Self { keeper }
    }

    fn keeper(&self) -> Result<Keeper, Status> {
        self.keeper.get().ok_or_else(|| {
            Status::unavailable(
                "the chain services are not running yet — the node is still connecting to chain.rpc_url",
            )
        })
    }
}

fn account(view: &AccountView) -> pb::Account {
    let (status, owner, controller) = match &view.chain {
        None => ("pending", String::new(), String::new()),
        Some(row) if row.temporary => ("temporary", String::new(), row.controller.to_string()),
        Some(row) => ("active", row.owner.to_string(), row.controller.to_string()),
    };
    pb::Account {
        user_id: view.account.user.to_vec(),
        identity_hash: view.account.identity_hash.to_vec(),
        status: status.into(),
        owner,
        controller,
        policy: view
            .account
            .policy
            .iter()
            .map(|g| pb::Grant {
                app_id: g.app.map(|a| a.to_vec()).unwrap_or_default(),
                action: g.action.into(),
                data_type_id: g.data_type.map(|d| d.to_vec()).unwrap_or_default(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl keeper_server::Keeper for KeeperService {
    async fn sign_up(&self, request: Request<pb::KeeperSignUpRequest>) -> Result<Response<pb::Account>, Status> {
        let (view, _) = self.keeper()?.sign_up(&request.into_inner().identity).await.map_err(status)?;
        Ok(Response::new(account(&view)))
    }

    async fn get_account(&self, request: Request<pb::IdentityRequest>) -> Result<Response<pb::Account>, Status> {
        Ok(Response::new(account(&self.keeper()?.account(&request.into_inner().identity).map_err(status)?)))
    }

    async fn set_policy(&self, request: Request<pb::SetPolicyRequest>) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        let grants = request
            .grants
            .iter()
            .map(|g| {
                Ok(Grant {
                    app: optional_id(&g.app_id, "app_id")?,
                    action: action(g.action)?,
                    data_type: optional_id(&g.data_type_id, "data_type_id")?,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        Ok(Response::new(account(&self.keeper()?.set_policy(&request.identity, grants).map_err(status)?)))
    }

    async fn set_consents(
        &self,
        request: Request<pb::SetConsentsRequest>,
    ) -> Result<Response<pb::SetConsentsResponse>, Status> {
        let request = request.into_inner();
        let changes = consent_changes(&request.changes)?;
        let (tx_id, block) = self.keeper()?.set_consents(&request.identity, &changes).await.map_err(status)?;
        Ok(Response::new(pb::SetConsentsResponse { tx_id, block }))
    }

    async fn list_consents(
        &self,
        request: Request<pb::IdentityRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let consents = self.keeper()?.consents(&request.into_inner().identity).map_err(status)?;
        Ok(Response::new(consents_to_proto(consents.into_iter().map(|c| (c.app, c.action, c.data_type, c.row)))))
    }

    async fn unlock(&self, request: Request<pb::UnlockRequest>) -> Result<Response<pb::Account>, Status> {
        let request = request.into_inner();
        let owner: Address = request
            .new_owner
            .parse()
            .map_err(|_| Status::invalid_argument(format!("new_owner {:?} is not a 0x address", request.new_owner)))?;
        Ok(Response::new(account(&self.keeper()?.unlock(&request.identity, owner).await.map_err(status)?)))
    }

    async fn export(&self, request: Request<pb::ExportRequest>) -> Result<Response<pb::ExportResponse>, Status> {
        let request = request.into_inner();
        let own = request.public_key.is_empty();
        let key = if own { self.keeper()?.public_key().to_vec() } else { request.public_key };
        let answers = self.keeper()?.export(&request.identity, &key).await.map_err(status)?;
        let mut providers = Vec::with_capacity(answers.len());
        for answer in answers {
            let mut export = pb::ProviderExport { provider: answer.provider.to_string(), ..Default::default() };
            match answer.result {
                Ok(records) => {
                    export.count = records.count;
                    match own {
                        true => export.records_ndjson = self.keeper()?.open_export(&records.sealed).map_err(status)?,
                        false => export.sealed = records.sealed,
                    }
                }
                Err(e) => export.error = e,
            }
            providers.push(export);
        }
        Ok(Response::new(pb::ExportResponse { providers }))
    }
}
