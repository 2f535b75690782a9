//! `airbloc.v1.Admin`: the transaction outbox for operators.

use crate::{
    backend::NodeView,
    chain::outbox::{Call, Intent, IntentState, OutboxError},
};
use airbloc_proto::v1::{self as pb, admin_server::Admin};
use alloy::primitives::{Address, Bytes, U256};
use tonic::{Request, Response, Status};

/// The Admin service.
#[derive(Debug, Clone)]
pub struct AdminService {
    view: NodeView,
}

impl AdminService {
    pub fn new(view: NodeView) -> Self {
        Self { view }
    }

    fn outbox(&self) -> Result<crate::chain::outbox::Outbox, Status> {
        self.view.services.get().map(|s| s.outbox).ok_or_else(|| {
            Status::failed_precondition(
                "the chain client is not running — configure chain.deployment (--chain.deployment) and check chain.rpc_url",
            )
        })
    }
}

fn to_status(e: OutboxError) -> Status {
    match e {
        OutboxError::Unknown(_) => Status::not_found(e.to_string()),
        OutboxError::AlreadyFinal { .. } => Status::failed_precondition(e.to_string()),
        OutboxError::KeyConflict { .. } => Status::already_exists(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

fn to_proto(intent: Intent) -> pb::Transaction {
    let mut tx = pb::Transaction {
        id: intent.id,
        label: intent.call.label,
        state: intent.state.name().to_owned(),
        to: intent.call.to.to_string(),
        created_at: intent.created_at,
        seq: intent.seq,
        ..Default::default()
    };
    match intent.state {
        IntentState::Queued => {}
        IntentState::Sent { nonce, txs, .. } => {
            tx.nonce = Some(nonce);
            tx.tx_hashes = txs.iter().map(|h| h.to_string()).collect();
        }
        IntentState::Mined { nonce, tx: hash, block, .. } => {
            tx.nonce = Some(nonce);
            tx.tx_hashes = vec![hash.to_string()];
            tx.block = Some(block);
        }
        IntentState::Reverted { nonce, tx: hash, block, reason } => {
            tx.nonce = nonce;
            tx.tx_hashes = hash.map(|h| vec![h.to_string()]).unwrap_or_default();
            tx.block = block;
            tx.reason = reason;
        }
        IntentState::Cancelled { nonce, tx: hash } => {
            tx.nonce = Some(nonce);
            tx.tx_hashes = vec![hash.to_string()];
        }
        IntentState::Failed { reason } => tx.reason = reason,
    }
    tx
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn submit_transaction(
        &self,
        request: Request<pb::SubmitTransactionRequest>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let r = request.into_inner();
        if r.id.is_empty() || r.id.len() > 256 {
            return Err(Status::invalid_argument("id must be 1 to 256 characters — it is the idempotency key"));
        }
        let to: Address = r.to.parse().map_err(|_| {
            Status::invalid_argument(format!("`to` is not an address: {:?} (expected 0x + 40 hex)", r.to))
        })?;
        let value = if r.value.is_empty() {
            U256::ZERO
        } else {
            r.value.parse::<U256>().map_err(|_| {
                Status::invalid_argument(format!("`value` is not a decimal amount of wei: {:?}", r.value))
            })?
        };
        let call = Call { to, data: Bytes::from(r.data), value, label: r.label };
        let intent = self.outbox()?.submit(&r.id, call).map_err(to_status)?;
        Ok(Response::new(to_proto(intent)))
    }

    async fn get_transaction(&self, request: Request<pb::TransactionId>) -> Result<Response<pb::Transaction>, Status> {
        let id = request.into_inner().id;
        let intent = self
            .outbox()?
            .get(&id)
            .map_err(to_status)?
            .ok_or_else(|| Status::not_found(format!("no transaction with id {id}")))?;
        Ok(Response::new(to_proto(intent)))
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        let outbox = self.outbox()?;
        let intents =
            if request.into_inner().include_finished { outbox.all() } else { outbox.pending() }.map_err(to_status)?;
        Ok(Response::new(pb::ListTransactionsResponse { transactions: intents.into_iter().map(to_proto).collect() }))
    }

    async fn resend_transaction(
        &self,
        request: Request<pb::TransactionId>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let intent = self.outbox()?.resend(&request.into_inner().id).map_err(to_status)?;
        Ok(Response::new(to_proto(intent)))
    }

    async fn cancel_transaction(
        &self,
        request: Request<pb::TransactionId>,
    ) -> Result<Response<pb::Transaction>, Status> {
        let intent = self.outbox()?.cancel(&request.into_inner().id).map_err(to_status)?;
        Ok(Response::new(to_proto(intent)))
    }
}
