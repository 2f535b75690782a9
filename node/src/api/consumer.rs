//! `airbloc.v1.Consumer`: catalog, orders, downloads, settlement over gRPC.

use super::convert::id32;
use crate::{
    backend::Ready,
    chain::state::OfferStatus,
    roles::consumer::{Consumer, OrderView},
};
use airbloc_proto::v1::{self as pb, consumer_server};
use alloy::primitives::Address;
use std::pin::Pin;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// The Consumer service.
#[derive(Debug, Clone)]
pub struct ConsumerService {
    consumer: Ready<Consumer>,
}

impl ConsumerService {
    /// The service of a role that is built once the chain services are up.
    pub fn new(consumer: Ready<Consumer>) -> Self {
        Self { consumer }
    }

    fn consumer(&self) -> Result<Consumer, Status> {
        self.consumer.get().ok_or_else(|| {
            Status::unavailable(
                "the chain services are not running yet — the node is still connecting to chain.rpc_url",
            )
        })
    }
}

use super::status;

fn order_info(view: &OrderView, tx_id: String) -> pb::OrderInfo {
    pb::OrderInfo {
        order_id: view.id.to_vec(),
        offer_id: view.row.offer.to_vec(),
        status: view.row.status.to_string(),
        amount_wei: view.row.amount.to_string(),
        bundle_ids: view.bundles.iter().map(|b| b.to_vec()).collect(),
        key_received: view.key_received,
        deliver_by: view.row.deliver_by,
        tx_id,
    }
}

fn arg<T>(result: Result<T, String>) -> Result<T, Status> {
    result.map_err(Status::invalid_argument)
}

type ProgressStream = Pin<Box<dyn futures::Stream<Item = Result<pb::DownloadProgress, Status>> + Send>>;

#[tonic::async_trait]
impl consumer_server::Consumer for ConsumerService {
    async fn catalog(&self, request: Request<pb::CatalogRequest>) -> Result<Response<pb::CatalogResponse>, Status> {
        let request = request.into_inner();
        let consumer = self.consumer()?;
        let services = consumer.services();
        let provider: Option<Address> = match request.provider.as_str() {
            "" => None,
            text => Some(text.parse().map_err(|e| Status::invalid_argument(format!("provider `{text}`: {e}")))?),
        };
        let offers = services.state.offers().map_err(|e| Status::internal(e.to_string()))?;
        let bundles = services.state.bundles().map_err(|e| Status::internal(e.to_string()))?;
        let entries = bundles
            .into_iter()
            .filter(|(_, b)| b.active)
            .filter(|(_, b)| request.app_id.is_empty() || b.app.as_slice() == request.app_id.as_slice())
            .filter(|(_, b)| {
                request.data_type_id.is_empty() || b.data_type.as_slice() == request.data_type_id.as_slice()
            })
            .filter(|(_, b)| provider.is_none_or(|p| p == b.provider))
            .map(|(id, b)| pb::CatalogEntry {
                bundle_id: id.to_vec(),
                app_id: b.app.to_vec(),
                data_type_id: b.data_type.to_vec(),
                provider: b.provider.to_string(),
                record_count: b.record_count,
                size: b.size,
                offers: offers
                    .iter()
                    .filter(|(_, o)| o.status == OfferStatus::Open && o.bundle_ids.contains(&id))
                    .map(|(offer_id, o)| pb::CatalogOffer {
                        offer_id: offer_id.to_vec(),
                        price_wei: o.price.to_string(),
                        token: o.token.to_string(),
                        expires_at: o.expires_at,
                    })
                    .collect(),
            })
            .collect();
        Ok(Response::new(pb::CatalogResponse { entries }))
    }

    async fn place_order(&self, request: Request<pb::PlaceOrderRequest>) -> Result<Response<pb::OrderInfo>, Status> {
        let offer = arg(id32(&request.into_inner().offer_id, "offer_id"))?;
        let (view, tx) = self.consumer()?.place_order(offer).await.map_err(status)?;
        Ok(Response::new(order_info(&view, tx)))
    }

    async fn get_order(&self, request: Request<pb::GetOrderRequest>) -> Result<Response<pb::OrderInfo>, Status> {
        let order = arg(id32(&request.into_inner().order_id, "order_id"))?;
        Ok(Response::new(order_info(&self.consumer()?.order(order).map_err(status)?, String::new())))
    }

    type DownloadStream = ProgressStream;

    async fn download(&self, request: Request<pb::DownloadRequest>) -> Result<Response<Self::DownloadStream>, Status> {
        let request = request.into_inner();
        let order = arg(id32(&request.order_id, "order_id"))?;
        let bundle = arg(id32(&request.bundle_id, "bundle_id"))?;
        if request.output_path.is_empty() {
            return Err(Status::invalid_argument("output_path is required"));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let consumer = self.consumer()?;
        tokio::spawn(async move {
            // The download stops when the caller goes away.
            let cancel = CancellationToken::new();
            let progress_tx = tx.clone();
            let watcher = {
                let cancel = cancel.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    tx.closed().await;
                    cancel.cancel();
                })
            };
            let progress = move |p: crate::p2p::transfer::Progress| {
                let _ = progress_tx.try_send(Ok(pb::DownloadProgress {
                    bytes: p.bytes,
                    total: p.total,
                    ..Default::default()
                }));
            };
            let result =
                consumer.download(order, bundle, std::path::Path::new(&request.output_path), progress, &cancel).await;
            let last = result.map(|done| pb::DownloadProgress {
                bytes: done.bytes,
                total: done.bytes,
                done: true,
                records: done.records,
                output_path: done.output.display().to_string(),
            });
            let _ = tx.send(last.map_err(status)).await;
            watcher.abort();
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as ProgressStream))
    }

    async fn settle(&self, request: Request<pb::OrderAction>) -> Result<Response<pb::OrderInfo>, Status> {
        let order = arg(id32(&request.into_inner().order_id, "order_id"))?;
        let (view, tx) = self.consumer()?.settle(order).await.map_err(status)?;
        Ok(Response::new(order_info(&view, tx)))
    }

    async fn refund(&self, request: Request<pb::OrderAction>) -> Result<Response<pb::OrderInfo>, Status> {
        let order = arg(id32(&request.into_inner().order_id, "order_id"))?;
        let (view, tx) = self.consumer()?.refund(order).await.map_err(status)?;
        Ok(Response::new(order_info(&view, tx)))
    }

    async fn dispute(&self, request: Request<pb::OrderAction>) -> Result<Response<pb::OrderInfo>, Status> {
        let order = arg(id32(&request.into_inner().order_id, "order_id"))?;
        let (view, tx) = self.consumer()?.dispute(order).await.map_err(status)?;
        Ok(Response::new(order_info(&view, tx)))
    }
}
