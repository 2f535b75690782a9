//! The consumer role: catalog, orders, verified downloads, settlement.
//!
//! A download checks everything against the chain before a byte is trusted: the chunk manifest
//! the provider sends must hash to the bundle's on-chain `ciphertextHash`; every chunk is checked
//! as it arrives; the record count and the Merkle root recomputed from the body must equal the
//! registration; every record must open under the delivered key and decode canonically. Only
//! then is the NDJSON output moved into place.

use super::{RoleError, body};
use crate::{
    backend::Backend,
    chain::ChainServices,
    chain::{
        contracts::Exchange,
        outbox::{Call, IntentState},
        state::{OfferStatus, OrderRow},
    },
    crypto::{chunks::ChunkManifest, merkle::MerkleTree, record::Record, stream, wrap},
    keys::{NodeKey, address_of_peer},
    p2p::{self, transfer},
    store::{Durability, cf},
};
use airbloc_proto::p2p::v1 as wire;
use alloy::{
    primitives::{Address, B256, U256},
    sol_types::SolCall,
};
use std::{
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

crate::tables! {
    /// Bundle keys delivered for this node's orders (wrapped to the node key), by (order, bundle).
    Keys(cf::CONSUMER_KEYS): (B256, B256) => Vec<u8>;
    /// The derived bundle delivered in place of an offered one, by (order, offered bundle).
    Delivered(cf::CONSUMER_DELIVERED): (B256, B256) => B256;
    /// The provider's signed served-root statement, by (order, offered bundle).
    EvidenceRows(cf::CONSUMER_EVIDENCE): (B256, B256) => Evidence;
}
crate::json_values!(Evidence);

/// A provider's signed statement of the root of the records it served for an order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Evidence {
    bundle: B256,
    root: B256,
    signature: Vec<u8>,
}

/// Why a consumer call failed.
pub type ConsumerError = super::RoleError;

/// An order as the consumer sees it.
#[derive(Debug, Clone)]
pub struct OrderView {
    pub id: B256,
    pub row: OrderRow,
    pub bundles: Vec<B256>,
    pub key_received: bool,
}

/// What a finished download produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The bundle whose data was written: the offered one, or the derived one delivered instead.
    pub bundle: B256,
    pub records: u64,
    pub bytes: u64,
    pub output: PathBuf,
}

/// The consumer.
#[derive(Clone)]
pub struct Consumer {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    key: NodeKey,
    datadir: PathBuf,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("address", &self.inner.key.address()).finish_non_exhaustive()
    }
}

impl Consumer {
    pub fn new(backend: Backend, key: NodeKey, datadir: &Path) -> Self {
        Self { inner: Arc::new(Inner { backend, key, datadir: datadir.to_owned() }) }
    }

    /// The chain services this role was built with.
    pub fn services(&self) -> &ChainServices {
        &self.inner.backend.services
    }

    pub fn address(&self) -> Address {
        self.inner.key.address()
    }

    /// Accepts a key a provider delivers for one of this node's orders.
    pub async fn accept_key(&self, peer: &libp2p::PeerId, delivery: wire::KeyDelivery) -> Result<(), RoleError> {
        let bad = |m: String| RoleError::Invalid(m);
        let order_id =
            B256::try_from(delivery.order_id.as_slice()).map_err(|_| bad("order_id must be 32 bytes".into()))?;
        let bundle_id =
            B256::try_from(delivery.bundle_id.as_slice()).map_err(|_| bad("bundle_id must be 32 bytes".into()))?;
        let services = self.services();
        // The provider saw the order; give our indexer a moment to see it too (a store error
        // ends the wait and is reported below).
        let _ = services
            .indexer
            .wait_until(|_| !matches!(services.state.order(order_id), Ok(None)), Duration::from_secs(10))
            .await;
        let order =
            services.state.order(order_id)?.ok_or_else(|| RoleError::NotFound(format!("unknown order {order_id}")))?;
        let offer = services.state.offer(order.offer)?.ok_or_else(|| RoleError::NotFound("unknown offer".into()))?;
        let forbidden = |m: &str| RoleError::Refused(m.into());
        if order.consumer != self.address() {
            return Err(forbidden("this node did not place that order"));
        }
        if address_of_peer(peer) != Some(offer.provider) {
            return Err(forbidden("only the offer's provider delivers its keys"));
        }
        if !offer.bundle_ids.contains(&bundle_id) {
            return Err(bad(format!("bundle {bundle_id} is not part of the order")));
        }
        // It must open with our key; a useless key is refused now, not at download time.
        wrap::unwrap_dek(self.inner.key.secret_bytes(), &delivery.wrapped_key)
            .map_err(|e| bad(format!("the wrapped key does not open with this node's key: {e}")))?;
        self.keep_key(order_id, bundle_id, &delivery).await?;
        info!(target: "consumer", order = %order_id, bundle = %bundle_id, "bundle key received");
        Ok(())
    }

    /// Stores a delivered key. A key for a derived bundle is accepted only when the chain says
    /// that bundle comes from the same provider, app and data type and holds fewer records.
    async fn keep_key(&self, order: B256, offered: B256, delivery: &wire::KeyDelivery) -> Result<(), ConsumerError> {
        let store = &self.inner.backend.store;
        let mut batch = store.batch();
        if !delivery.delivered_bundle_id.is_empty() {
            let derived = B256::try_from(delivery.delivered_bundle_id.as_slice())
                .map_err(|_| ConsumerError::Invalid("delivered_bundle_id must be 32 bytes".into()))?;
            let state = &self.services().state;
            let parent = state
                .bundle(offered)?
                .ok_or_else(|| ConsumerError::NotFound(format!("bundle {offered} is not indexed")))?;
            // The provider registered it just before delivering; give our index a moment.
            let _ = self
                .services()
                .indexer
                .wait_until(|_| !matches!(state.bundle(derived), Ok(None)), Duration::from_secs(10))
                .await;
            let row = state
                .bundle(derived)?
                .ok_or_else(|| ConsumerError::NotFound(format!("derived bundle {derived} is not registered")))?;
            if row.provider != parent.provider
                || row.app != parent.app
                || row.data_type != parent.data_type
                || row.record_count >= parent.record_count
            {
                return Err(ConsumerError::Invalid(format!(
                    "bundle {derived} is not a subset of {offered} by the same provider, app and data type"
                )));
            }
            batch.put_row::<Delivered>(&(order, offered), &derived);
        }
        if !delivery.served_root.is_empty() {
            let evidence = self.check_evidence(order, offered, delivery).await?;
            batch.put_row::<EvidenceRows>(&(order, offered), &evidence);
        }
        batch.put_row::<Keys>(&(order, offered), &delivery.wrapped_key);
        store.write(batch, Durability::Sync).map_err(RoleError::from)
    }

    /// The served-root statement must be signed by the offer's provider to be evidence.
    async fn check_evidence(
        &self,
        order: B256,
        offered: B256,
        delivery: &wire::KeyDelivery,
    ) -> Result<Evidence, ConsumerError> {
        use alloy::sol_types::SolStruct;
        let services = self.services();
        let bundle = match delivery.delivered_bundle_id.is_empty() {
            true => offered,
            false => B256::from_slice(&delivery.delivered_bundle_id),
        };
        let root = B256::try_from(delivery.served_root.as_slice())
            .map_err(|_| ConsumerError::Invalid("served_root must be 32 bytes".into()))?;
        let signature = alloy::primitives::Signature::try_from(delivery.served_root_signature.as_slice())
            .map_err(|e| ConsumerError::Invalid(format!("bad served-root signature: {e}")))?;
        let exchange = services.deployment.address("Exchange")?;
        let statement = crate::crypto::eip712::DeliveryProof {
            order,
            bundle,
            leaf: root,
            proofHash: crate::crypto::eip712::proof_hash(&[]),
        };
        let digest = statement
            .eip712_signing_hash(&crate::crypto::eip712::exchange_domain(services.deployment.chain_id, exchange));
        let signer = signature
            .recover_address_from_prehash(&digest)
            .map_err(|e| ConsumerError::Invalid(format!("bad served-root signature: {e}")))?;
        let offer = match services.state.order(order)? {
            Some(row) => services.state.offer(row.offer)?,
            None => None,
        };
        let provider = offer
            .map(|o| o.provider)
            .ok_or_else(|| ConsumerError::NotFound(format!("order {order} is not indexed")))?;
        if signer != provider {
            return Err(ConsumerError::Invalid(format!(
                "the served-root statement is signed by {signer}, not by the provider {provider}"
            )));
        }
        Ok(Evidence { bundle, root, signature: delivery.served_root_signature.clone() })
    }

    /// Disputes a delivery: for a bundle whose served root (signed by the provider) differs from
    /// its registered root, submits that statement to `Exchange.dispute`.
    pub async fn dispute(&self, order_id: B256) -> Result<(OrderView, String), ConsumerError> {
        let order = self.order(order_id)?;
        let services = self.services();
        let store = &self.inner.backend.store;
        let mut checked = Vec::new();
        for offered in &order.bundles {
            let Some(evidence) = store.get_row::<EvidenceRows>(&(order_id, *offered))? else {
                continue;
            };
            let registered = services
                .state
                .bundle(evidence.bundle)?
                .ok_or_else(|| ConsumerError::NotFound(format!("bundle {} is not registered", evidence.bundle)))?;
            if registered.merkle_root == evidence.root {
                checked.push(evidence.bundle);
                continue;
            }
            let data = Exchange::disputeCall {
                orderId: order_id,
                bundleId: evidence.bundle,
                leaf: evidence.root,
                proof: Vec::new(),
                providerSignature: evidence.signature.into(),
            }
            .abi_encode();
            return self.order_call(order_id, "dispute", data).await;
        }
        Err(ConsumerError::Invalid(match checked.is_empty() {
            true => format!("order {order_id} has no signed delivery statement to dispute with (no key delivered yet)"),
            false => format!(
                "the provider's signed roots match the chain for {} bundle(s): the data is what was registered, nothing to dispute",
                checked.len()
            ),
        }))
    }

    /// The bundle whose data the key for (order, offered bundle) opens.
    fn delivered_bundle(&self, order: B256, offered: B256) -> Result<B256, ConsumerError> {
        Ok(self.inner.backend.store.get_row::<Delivered>(&(order, offered))?.unwrap_or(offered))
    }

    async fn transact(&self, id: String, call: Call) -> Result<u64, ConsumerError> {
        Ok(self.services().transact(&id, call).await?)
    }

    /// Orders an offer, paying its price into escrow.
    pub async fn place_order(&self, offer_id: B256) -> Result<(OrderView, String), ConsumerError> {
        let services = self.services();
        let offer = services
            .state
            .offer(offer_id)?
            .ok_or_else(|| ConsumerError::NotFound(format!("offer {offer_id} is not known (or not indexed yet)")))?;
        if offer.status != OfferStatus::Open {
            return Err(ConsumerError::Invalid(format!("offer {offer_id} is {}", offer.status)));
        }
        let exchange = services.deployment.address("Exchange")?;
        let value = match offer.token {
            Address::ZERO => offer.price,
            token => {
                // The exchange pulls the price from this node's token balance.
                let approve = crate::chain::contracts::IERC20::approveCall { spender: exchange, amount: offer.price }
                    .abi_encode();
                let call = Call {
                    to: token,
                    data: approve.into(),
                    value: U256::ZERO,
                    label: format!("allow the exchange {} of token {token} for offer {offer_id}", offer.price),
                };
                self.transact(format!("order:approve:{offer_id}"), call).await?;
                U256::ZERO
            }
        };
        let data = Exchange::orderCall {
            offerId: offer_id,
            consumerPublicKey: self.inner.key.public_key_uncompressed().to_vec().into(),
        }
        .abi_encode();
        let id = format!("order:place:{offer_id}");
        let call = Call { to: exchange, data: data.into(), value, label: format!("order offer {offer_id}") };
        self.transact(id.clone(), call).await?;
        let me = self.address();
        let (order_id, _) = services
            .state
            .orders()?
            .into_iter()
            .find(|(_, o)| o.offer == offer_id && o.consumer == me)
            .ok_or_else(|| RoleError::Unavailable("the order was mined but is not in the index yet".into()))?;
        Ok((self.order(order_id)?, id))
    }

    /// One of this node's orders.
    pub fn order(&self, order_id: B256) -> Result<OrderView, ConsumerError> {
        let services = self.services();
        let row = services
            .state
            .order(order_id)?
            .filter(|o| o.consumer == self.address())
            .ok_or_else(|| ConsumerError::NotFound(format!("this node has no order {order_id}")))?;
        let bundles = services.state.offer(row.offer)?.map(|o| o.bundle_ids).unwrap_or_default();
        let store = &self.inner.backend.store;
        let mut key_received = true;
        for bundle in &bundles {
            key_received &= store.has_row::<Keys>(&(order_id, *bundle))?;
        }
        Ok(OrderView { id: order_id, row, bundles, key_received })
    }

    async fn wrapped_key(
        &self,
        order: &OrderView,
        bundle: B256,
        provider: libp2p::PeerId,
    ) -> Result<Vec<u8>, ConsumerError> {
        let store = &self.inner.backend.store;
        if let Some(key) = store.get_row::<Keys>(&(order.id, bundle))? {
            return Ok(key);
        }
        let network = &self.inner.backend.network;
        let request = wire::KeyRequest { order_id: order.id.to_vec(), bundle_id: bundle.to_vec() };
        match network.request(provider, wire::request::Body::KeyRequest(request)).await {
            Ok(wire::Response { body: Some(wire::response::Body::Key(delivery)), .. }) => {
                self.keep_key(order.id, bundle, &delivery).await?;
                Ok(delivery.wrapped_key)
            }
            Ok(_) => {
                Err(ConsumerError::Unavailable("the provider answered the key request with something else".into()))
            }
            Err(e) => Err(ConsumerError::Unavailable(format!(
                "the key has not arrived and the provider did not send it: {e}"
            ))),
        }
    }

    /// Downloads, verifies and decrypts one bundle of an order into `output` (NDJSON).
    pub async fn download(
        &self,
        order_id: B256,
        bundle_id: B256,
        output: &Path,
        progress: impl FnMut(transfer::Progress) + Send,
        cancel: &CancellationToken,
    ) -> Result<Downloaded, ConsumerError> {
        let order = self.order(order_id)?;
        if !order.bundles.contains(&bundle_id) {
            return Err(ConsumerError::Invalid(format!("order {order_id} does not cover bundle {bundle_id}")));
        }
        let services = self.services();
        let row = services
            .state
            .bundle(bundle_id)?
            .ok_or_else(|| ConsumerError::NotFound(format!("bundle {bundle_id} is not registered")))?;
        let network = self.inner.backend.network.clone();
        let provider = network
            .connect_node(&services.state, row.provider, Duration::from_secs(15))
            .await
            .map_err(|e| ConsumerError::Unavailable(e.to_string()))?;
        let wrapped = self.wrapped_key(&order, bundle_id, provider).await?;
        let dek = wrap::unwrap_dek(self.inner.key.secret_bytes(), &wrapped)
            .map_err(|e| ConsumerError::Mismatch(e.to_string()))?;
        // Users may have withdrawn consent since the bundle was offered: the key then opens a
        // derived bundle without their records, checked against its own registration.
        let offered_id = bundle_id;
        let bundle_id = self.delivered_bundle(order_id, offered_id)?;
        let row = match bundle_id == offered_id {
            true => row,
            false => services
                .state
                .bundle(bundle_id)?
                .ok_or_else(|| ConsumerError::NotFound(format!("bundle {bundle_id} is not registered")))?,
        };

        let metadata = match network
            .request(
                provider,
                wire::request::Body::BundleMetadata(wire::BundleMetadataRequest { bundle_id: bundle_id.to_vec() }),
            )
            .await
        {
            Ok(wire::Response { body: Some(wire::response::Body::BundleMetadata(m)), .. }) => m,
            Ok(_) => return Err(ConsumerError::Unavailable("the provider sent no bundle metadata".into())),
            Err(e) => return Err(ConsumerError::Unavailable(format!("bundle metadata: {e}"))),
        };
        let manifest = ChunkManifest::from_concatenated(metadata.chunk_size, metadata.size, &metadata.chunk_hashes)
            .map_err(|e| ConsumerError::Mismatch(e.to_string()))?;
        if manifest.commitment() != row.ciphertext_hash || manifest.size != row.size {
            return Err(ConsumerError::Mismatch(
                "the chunk manifest does not hash to the registered ciphertextHash".into(),
            ));
        }
        let downloads = self.inner.datadir.join("downloads");
        let ciphertext = downloads.join(format!("{bundle_id}.bin"));
        let request = transfer::FetchRequest {
            bundle: bundle_id,
            manifest: Arc::new(manifest),
            peers: vec![provider],
            dest: ciphertext.clone(),
        };
        transfer::fetch(&network, &request, progress, cancel).await.map_err(|e| match e {
            transfer::FetchError::Io { path, source } => {
                RoleError::Io(std::io::Error::new(source.kind(), format!("cannot write {}: {source}", path.display())))
            }
            e => ConsumerError::Unavailable(e.to_string()),
        })?;

        let output = if output.is_absolute() { output.to_owned() } else { self.inner.datadir.join(output) };
        let expected_root = row.merkle_root;
        let expected_count = row.record_count;
        let written = tokio::task::spawn_blocking(move || {
            decrypt_body(&ciphertext, &dek, expected_root, expected_count, &output)
        })
        .await??;
        info!(target: "consumer", order = %order_id, bundle = %bundle_id, records = written.records, "bundle downloaded and verified");
        Ok(Downloaded { bundle: bundle_id, ..written })
    }

    /// Releases the payment of an order to its provider.
    pub async fn settle(&self, order_id: B256) -> Result<(OrderView, String), ConsumerError> {
        self.order_call(order_id, "settle", Exchange::settleCall { orderId: order_id }.abi_encode()).await
    }

    /// Takes back the payment of an order the provider did not deliver in time.
    pub async fn refund(&self, order_id: B256) -> Result<(OrderView, String), ConsumerError> {
        self.order_call(order_id, "refund", Exchange::refundCall { orderId: order_id }.abi_encode()).await
    }

    async fn order_call(
        &self,
        order_id: B256,
        what: &str,
        data: Vec<u8>,
    ) -> Result<(OrderView, String), ConsumerError> {
        self.order(order_id)?;
        let exchange = self.services().deployment.address("Exchange")?;
        // A reverted attempt (e.g. a refund before the window closed) must not block a later one.
        let outbox = &self.services().outbox;
        let mut attempt = 0u32;
        let id = loop {
            let id = match attempt {
                0 => format!("order:{what}:{order_id}"),
                n => format!("order:{what}:{order_id}:{n}"),
            };
            match outbox.get(&id)? {
                Some(intent) if intent.state.is_final() && !matches!(intent.state, IntentState::Mined { .. }) => {
                    attempt += 1
                }
                _ => break id,
            }
        };
        let call =
            Call { to: exchange, data: data.into(), value: U256::ZERO, label: format!("{what} order {order_id}") };
        self.transact(id.clone(), call).await?;
        Ok((self.order(order_id)?, id))
    }
}

/// Verifies a downloaded body against the registration and writes its records as NDJSON.
fn decrypt_body(
    ciphertext: &Path,
    dek: &crate::crypto::Dek,
    expected_root: B256,
    expected_count: u64,
    output: &Path,
) -> Result<Downloaded, ConsumerError> {
    let mismatch = |m: String| ConsumerError::Mismatch(m);
    // Pass 1: leaves and root, before anything is decrypted.
    let mut reader = BufReader::new(std::fs::File::open(ciphertext)?);
    let mut leaves = Vec::new();
    while let Some((user, sealed)) = body::read_entry(&mut reader).map_err(|e| mismatch(e.to_string()))? {
        leaves.push(body::leaf(user, leaves.len() as u64, &sealed));
    }
    if leaves.len() as u64 != expected_count {
        return Err(mismatch(format!("{} records, the registration says {expected_count}", leaves.len())));
    }
    let root = MerkleTree::new(&leaves).map_err(|e| mismatch(e.to_string()))?.root();
    if root != expected_root {
        return Err(mismatch(format!("Merkle root {root}, the registration says {expected_root}")));
    }
    // Pass 2: decrypt into a temporary file, then move it into place.
    if let Some(parent) = output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = output.with_extension("partial");
    let mut out = BufWriter::new(std::fs::File::create(&tmp)?);
    let mut reader = BufReader::new(std::fs::File::open(ciphertext)?);
    let mut records = 0u64;
    while let Some((user, sealed)) = body::read_entry(&mut reader)? {
        let plain = stream::open(dek, &sealed).map_err(|e| mismatch(format!("record {records}: {e}")))?;
        let record = Record::decode(&plain).map_err(|e| mismatch(format!("record {records}: {e}")))?;
        if record.user_id != user {
            return Err(mismatch(format!("record {records} names another user than its entry")));
        }
        let line = body::ndjson_line(&record).map_err(|e| mismatch(format!("record {records}: {e}")))?;
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        records += 1;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, output)?;
    let bytes = std::fs::metadata(ciphertext)?.len();
    Ok(Downloaded { bundle: B256::ZERO, records, bytes, output: output.to_owned() })
}

/// Routes role requests arriving over the network to the roles this node runs.
#[derive(Clone, Default)]
pub struct RoleRequests {
    pub provider: Option<super::provider::Provider>,
    pub consumer: Option<Consumer>,
    pub keeper: Option<super::keeper::Keeper>,
    pub schemas: Option<super::schemas::Schemas>,
}

impl p2p::RequestHandler for RoleRequests {
    fn handle(
        &self,
        peer: libp2p::PeerId,
        body: wire::request::Body,
    ) -> futures::future::BoxFuture<'static, p2p::rpc::HandlerResult> {
        let this = self.clone();
        Box::pin(async move {
            if let (wire::request::Body::Schema(request), Some(schemas)) = (&body, &this.schemas) {
                return schemas.answer(request).map(wire::response::Body::Schema).map_err(|e| e.to_wire());
            }
            match (body, &this.provider, &this.consumer, &this.keeper) {
                (wire::request::Body::KeyDelivery(delivery), _, Some(consumer), _) => consumer
                    .accept_key(&peer, delivery)
                    .await
                    .map(|()| wire::response::Body::KeyDelivery(wire::KeyDeliveryAck {}))
                    .map_err(|e| e.to_wire()),
                (wire::request::Body::KeyRequest(request), Some(provider), _, _) => {
                    provider.key_for(&peer, &request).map(wire::response::Body::Key).map_err(|e| e.to_wire())
                }
                (wire::request::Body::Records(request), Some(provider), _, _) => {
                    provider.records_for(&peer, &request).map(wire::response::Body::Records).map_err(|e| e.to_wire())
                }
                (wire::request::Body::SignUp(request), _, _, Some(keeper)) => keeper
                    .handle_sign_up(&peer, request)
                    .await
                    .map(wire::response::Body::SignUp)
                    .map_err(|e| e.to_wire()),
                (wire::request::Body::Consent(request), _, _, Some(keeper)) => keeper
                    .handle_consent(&peer, request)
                    .await
                    .map(wire::response::Body::Consent)
                    .map_err(|e| e.to_wire()),
                (body, _, _, _) => Err(p2p::rpc::unsupported(&body)),
            }
        })
    }
}
