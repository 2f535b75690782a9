//! `airbloc.v1.Provider`: apps, data types, ingestion and bundles over gRPC.

use crate::backend::Ready;
use crate::roles::provider::{IncomingRecord, OfferTerms, ProvidedBundle, Provider, Refusal, Verdict};
use airbloc_proto::v1::{self as pb, provider_server};
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

/// The Provider service.
#[derive(Debug, Clone)]
pub struct ProviderService {
    provider: Ready<Provider>,
}

impl ProviderService {
    /// The service of a role that is built once the chain services are up.
    pub fn new(provider: Ready<Provider>) -> Self {
        Self { provider }
    }

    fn provider(&self) -> Result<Provider, Status> {
        self.provider.get().ok_or_else(|| {
            Status::unavailable(
                "the chain services are not running yet — the node is still connecting to chain.rpc_url",
            )
        })
    }
}

use super::{convert::id32, status};

fn bundle_to_proto(b: &ProvidedBundle) -> pb::Bundle {
    pb::Bundle {
        bundle_id: b.bundle_id.to_vec(),
        app_id: b.app.to_vec(),
        data_type_id: b.data_type.to_vec(),
        record_count: b.record_count,
        size: b.size,
        merkle_root: b.merkle_root.to_vec(),
        ciphertext_hash: b.ciphertext_hash.to_vec(),
        registered_block: b.registered_block.unwrap_or_default(),
    }
}

fn reason(refusal: Refusal) -> pb::RejectReason {
    match refusal {
        Refusal::Malformed => pb::RejectReason::Malformed,
        Refusal::Schema => pb::RejectReason::Schema,
        Refusal::NoConsent => pb::RejectReason::NoConsent,
        Refusal::UnknownDataType => pb::RejectReason::UnknownDataType,
        Refusal::NotAuthorized => pb::RejectReason::NotAuthorized,
    }
}

impl ProviderService {
    async fn ingest_batch(
        &self,
        batch: Vec<(u64, Result<IncomingRecord, String>)>,
        summary: &mut pb::IngestSummary,
    ) -> Result<(), Status> {
        let (indices, records): (Vec<u64>, Vec<IncomingRecord>) = batch
            .into_iter()
            .filter_map(|(index, parsed)| match parsed {
                Ok(record) => Some((index, record)),
                Err(message) => {
                    summary.rejected.push(pb::Rejection { index, reason: pb::RejectReason::Malformed as i32, message });
                    None
                }
            })
            .unzip();
        let provider = self.provider()?;
        let verdicts = tokio::task::spawn_blocking(move || provider.ingest(&records))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(status)?;
        for (index, verdict) in indices.into_iter().zip(verdicts) {
            match verdict {
                Verdict::Accepted => summary.accepted += 1,
                Verdict::Duplicate => summary.duplicates += 1,
                Verdict::Refused(refusal, message) => {
                    summary.rejected.push(pb::Rejection { index, reason: reason(refusal) as i32, message })
                }
            }
        }
        Ok(())
    }
}

impl ProviderService {
    fn parse(&self, record: pb::IngestRecord) -> Result<IncomingRecord, String> {
        let user = match (record.user_id.is_empty(), record.identity.is_empty()) {
            (true, false) => {
                let provider = self.provider().map_err(|e| e.message().to_owned())?;
                provider.user_of_identity(&record.identity).map_err(|e| e.to_string())?.ok_or_else(|| {
                    "this identity has not been signed up through the keeper; call SignUp first".to_owned()
                })?
            }
            (false, true) => id32(&record.user_id, "user_id")?,
            (false, false) => return Err("give user_id or identity, not both".into()),
            (true, true) => return Err("user_id or identity is required".into()),
        };
        Ok(IncomingRecord {
            app: id32(&record.app_id, "app_id")?,
            data_type: id32(&record.data_type_id, "data_type_id")?,
            user,
            collected_at_ms: record.collected_at_ms,
            payload_json: record.payload_json,
        })
    }
}

#[tonic::async_trait]
impl provider_server::Provider for ProviderService {
    async fn register_app(
        &self,
        request: Request<pb::RegisterAppRequest>,
    ) -> Result<Response<pb::RegisterAppResponse>, Status> {
        let (app_id, tx_id) = self.provider()?.register_app(&request.into_inner().name).await.map_err(status)?;
        Ok(Response::new(pb::RegisterAppResponse { app_id: app_id.to_vec(), tx_id }))
    }

    async fn authorize_node(
        &self,
        request: Request<pb::AuthorizeNodeRequest>,
    ) -> Result<Response<pb::AuthorizeNodeResponse>, Status> {
        let request = request.into_inner();
        let app = id32(&request.app_id, "app_id").map_err(Status::invalid_argument)?;
        let node = request
            .node
            .parse()
            .map_err(|e| Status::invalid_argument(format!("node `{}` is not an address: {e}", request.node)))?;
        let tx_id = self.provider()?.authorize_node(app, node, request.authorized).await.map_err(status)?;
        Ok(Response::new(pb::AuthorizeNodeResponse { tx_id }))
    }

    async fn register_data_type(
        &self,
        request: Request<pb::RegisterDataTypeRequest>,
    ) -> Result<Response<pb::RegisterDataTypeResponse>, Status> {
        let request = request.into_inner();
        let (id, hash, tx_id) =
            self.provider()?.register_data_type(&request.name, &request.schema_json).await.map_err(status)?;
        Ok(Response::new(pb::RegisterDataTypeResponse { data_type_id: id.to_vec(), schema_hash: hash.to_vec(), tx_id }))
    }

    async fn add_schema(
        &self,
        request: Request<pb::AddSchemaRequest>,
    ) -> Result<Response<pb::AddSchemaResponse>, Status> {
        let request = request.into_inner();
        let data_type = id32(&request.data_type_id, "data_type_id").map_err(Status::invalid_argument)?;
        let hash = match request.schema_json.is_empty() {
            true => self.provider()?.fetch_schema(data_type).await,
            false => self.provider()?.add_schema(data_type, &request.schema_json),
        }
        .map_err(status)?;
        Ok(Response::new(pb::AddSchemaResponse { schema_hash: hash.to_vec() }))
    }

    async fn ingest(
        &self,
        request: Request<Streaming<pb::IngestRecord>>,
    ) -> Result<Response<pb::IngestSummary>, Status> {
        let mut stream = request.into_inner();
        // Receiving the next batch overlaps checking and storing the previous one.
        let (batches, mut to_store) = tokio::sync::mpsc::channel::<Vec<(u64, Result<IncomingRecord, String>)>>(2);
        let this = self.clone();
        let storing = tokio::spawn(async move {
            let mut summary = pb::IngestSummary::default();
            while let Some(batch) = to_store.recv().await {
                this.ingest_batch(batch, &mut summary).await?;
            }
            Ok::<_, Status>(summary)
        });
        let mut batch = Vec::with_capacity(crate::roles::provider::INGEST_BATCH);
        let mut index = 0u64;
        let received = async {
            while let Some(record) = stream.next().await {
                // A broken stream ends the call; what was acknowledged before stays stored.
                let record = record?;
                batch.push((index, self.parse(record)));
                index += 1;
                if batch.len() >= crate::roles::provider::INGEST_BATCH
                    && batches.send(std::mem::take(&mut batch)).await.is_err()
                {
                    break;
                }
            }
            if !batch.is_empty() {
                let _ = batches.send(batch).await;
            }
            Ok::<_, Status>(())
        }
        .await;
        drop(batches);
        let mut summary = storing.await.map_err(|e| Status::internal(e.to_string()))??;
        received?;
        summary.rejected.sort_by_key(|r| r.index);
        Ok(Response::new(summary))
    }

    async fn seal_bundle(&self, request: Request<pb::SealBundleRequest>) -> Result<Response<pb::Bundle>, Status> {
        let request = request.into_inner();
        let app = id32(&request.app_id, "app_id").map_err(Status::invalid_argument)?;
        let data_type = id32(&request.data_type_id, "data_type_id").map_err(Status::invalid_argument)?;
        let bundle = self.provider()?.seal(app, data_type).await.map_err(status)?;
        Ok(Response::new(bundle_to_proto(&bundle)))
    }

    async fn list_bundles(
        &self,
        _: Request<pb::ListBundlesRequest>,
    ) -> Result<Response<pb::ListBundlesResponse>, Status> {
        let bundles = self.provider()?.bundles().map_err(status)?;
        Ok(Response::new(pb::ListBundlesResponse { bundles: bundles.iter().map(bundle_to_proto).collect() }))
    }

    async fn sign_up(
        &self,
        request: Request<pb::ProviderSignUpRequest>,
    ) -> Result<Response<pb::ProviderSignUpResponse>, Status> {
        let request = request.into_inner();
        let app = id32(&request.app_id, "app_id").map_err(Status::invalid_argument)?;
        let (user, existing) = self.provider()?.sign_up(&request.identity, app).await.map_err(status)?;
        Ok(Response::new(pb::ProviderSignUpResponse { user_id: user.to_vec(), existing }))
    }

    async fn request_consents(
        &self,
        request: Request<pb::RequestConsentsRequest>,
    ) -> Result<Response<pb::RequestConsentsResponse>, Status> {
        let request = request.into_inner();
        let user = id32(&request.user_id, "user_id").map_err(Status::invalid_argument)?;
        let app = id32(&request.app_id, "app_id").map_err(Status::invalid_argument)?;
        let items = super::convert::consent_changes(&request.changes)?
            .into_iter()
            .map(|c| {
                if c.app != app {
                    return Err(Status::invalid_argument("every change must be for the request's app_id"));
                }
                Ok(airbloc_proto::p2p::v1::ConsentItem {
                    action: c.action.into(),
                    data_type_id: c.data_type.to_vec(),
                    allow: c.allowed,
                })
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let tx_id = self.provider()?.request_consents(user, app, items).await.map_err(status)?;
        Ok(Response::new(pb::RequestConsentsResponse { tx_id }))
    }

    async fn create_offer(
        &self,
        request: Request<pb::CreateOfferRequest>,
    ) -> Result<Response<pb::CreateOfferResponse>, Status> {
        let request = request.into_inner();
        let bundles = request
            .bundle_ids
            .iter()
            .map(|b| id32(b, "bundle_ids"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Status::invalid_argument)?;
        let price_wei = request.price_wei.parse().map_err(|e| {
            Status::invalid_argument(format!("price_wei `{}` is not a decimal amount: {e}", request.price_wei))
        })?;
        let address = |text: &str, what: &str| match text {
            "" => Ok(alloy::primitives::Address::ZERO),
            text => {
                text.parse().map_err(|e| Status::invalid_argument(format!("{what} `{text}` is not an address: {e}")))
            }
        };
        let terms = OfferTerms {
            bundles,
            consumer: address(&request.consumer, "consumer")?,
            token: address(&request.token, "token")?,
            price_wei,
            delivery_window_secs: request.delivery_window_secs,
            dispute_window_secs: request.dispute_window_secs,
            expires_in_secs: request.expires_in_secs,
        };
        let (offer_id, tx_id) = self.provider()?.create_offer(&terms).await.map_err(status)?;
        Ok(Response::new(pb::CreateOfferResponse { offer_id: offer_id.to_vec(), tx_id }))
    }
}
