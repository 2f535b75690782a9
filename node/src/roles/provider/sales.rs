//! Selling: offers, deliveries (consent check, key wrapping, delivery record, served-root
//! statement), key requests, and serving ciphertext to ordering consumers only.

use super::*;

crate::json_values!(Delivery);

/// How soon a failed delivery is tried again.
const DELIVERY_RETRY: std::time::Duration = std::time::Duration::from_millis(500);
/// The longest the delivery loop sleeps without news from the indexer (a safety net).
const DELIVERY_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// Keys wrapped for one order, in the offer's bundle order, and whether delivery was recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Delivery {
    wrapped: Vec<(B256, Vec<u8>)>,
    submitted: bool,
    /// Per offered bundle, the derived bundle delivered instead (users withdrew consent).
    #[serde(default)]
    derived: Vec<(B256, B256)>,
    /// Per offered bundle, the root of the served records and the signed DeliveryProof over it.
    #[serde(default)]
    evidence: Vec<(B256, B256, Vec<u8>)>,
}

impl Delivery {
    fn delivered(&self, offered: B256) -> Option<B256> {
        self.derived.iter().find(|(o, _)| *o == offered).map(|(_, d)| *d)
    }

    /// The wire message carrying the key (and evidence) for one offered bundle.
    fn message(&self, order: B256, offered: B256, wrapped_key: Vec<u8>) -> wire::KeyDelivery {
        let (served_root, served_root_signature) = self
            .evidence
            .iter()
            .find(|(o, _, _)| *o == offered)
            .map(|(_, root, sig)| (root.to_vec(), sig.clone()))
            .unwrap_or_default();
        wire::KeyDelivery {
            order_id: order.to_vec(),
            bundle_id: offered.to_vec(),
            wrapped_key,
            delivered_bundle_id: self.delivered(offered).map(|d| d.to_vec()).unwrap_or_default(),
            served_root,
            served_root_signature,
        }
    }
}

impl Provider {
    /// Offers bundles on the Exchange; returns the offer id once mined and indexed.
    pub async fn create_offer(&self, terms: &OfferTerms) -> Result<(B256, String), ProviderError> {
        if terms.bundles.is_empty() {
            return Err(ProviderError::Invalid("an offer needs at least one bundle".into()));
        }
        if terms.delivery_window_secs == 0 || terms.dispute_window_secs == 0 || terms.expires_in_secs == 0 {
            return Err(ProviderError::Invalid("delivery window, dispute window and expiry must be positive".into()));
        }
        let services = self.services();
        for bundle in &terms.bundles {
            let provided = self.provided(*bundle)?;
            if provided.registered_block.is_none() {
                return Err(ProviderError::Invalid(format!("bundle {bundle} is not registered yet")));
            }
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let expires_at = now + terms.expires_in_secs;
        let call_terms = Exchange::OfferTerms {
            bundleIds: terms.bundles.clone(),
            consumer: terms.consumer,
            token: terms.token,
            price: terms.price_wei,
            deliveryWindow: terms.delivery_window_secs,
            disputeWindow: terms.dispute_window_secs,
            expiresAt: expires_at,
        };
        let data = Exchange::createOfferCall { terms: call_terms.clone() }.abi_encode();
        let id = format!("offer:create:{}", keccak256(&data));
        let exchange = services.deployment.address("Exchange")?;
        self.transact(id.clone(), exchange, data, format!("offer {} bundle(s)", terms.bundles.len())).await?;
        let me = self.address();
        let offer = services
            .state
            .offers()?
            .into_iter()
            .find(|(_, o)| {
                o.provider == me
                    && o.bundle_ids == terms.bundles
                    && o.expires_at == expires_at
                    && o.price == terms.price_wei
                    && o.token == terms.token
            })
            .map(|(id, _)| id)
            .ok_or_else(|| RoleError::Unavailable("the offer was mined but is not in the index yet".into()))?;
        Ok((offer, id))
    }

    pub(super) fn provided(&self, bundle: B256) -> Result<ProvidedBundle, ProviderError> {
        self.inner
            .backend
            .store
            .get(cf::PROVIDED, bundle.as_slice())?
            .ok_or_else(|| ProviderError::NotFound(format!("this node did not seal bundle {bundle}")))
    }

    /// Serves orders on this node's offers until cancelled: checks exchange consent, wraps each
    /// bundle key to the consumer, delivers it over the network and records the delivery. A
    /// round cut off by cancellation is safe: each delivery is recorded before it is sent, and
    /// the next start sends it again.
    pub async fn run_deliveries(self, cancel: tokio_util::sync::CancellationToken) {
        let services = &self.inner.backend.services;
        loop {
            // Read before the round, so a page indexed during it wakes the next one.
            let seen = services.indexer.progress().indexed;
            let Some(retry) = cancel.run_until_cancelled(self.delivery_round()).await else { return };
            // Next round on news from the chain (a page indexed: new orders, new states); after a
            // failure also when the retry interval has passed (time is the point: back-off).
            let wait = if retry { DELIVERY_RETRY } else { DELIVERY_IDLE };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = services.indexer.wait_until(|p| p.indexed > seen, wait) => {}
            }
        }
    }

    /// One pass over the indexed orders; returns whether something should be tried again soon.
    async fn delivery_round(&self) -> bool {
        let services = &self.inner.backend.services;
        let orders = match services.state.orders() {
            Ok(orders) => orders,
            Err(e) => {
                warn!(target: "provider", error = %e, "cannot read the indexed orders");
                return true;
            }
        };
        let mut retry = false;
        let mut live = std::collections::HashSet::new();
        // Each offer is read once per round, however many orders it has.
        let mut offers: HashMap<B256, Option<Arc<OfferRow>>> = HashMap::new();
        for (order_id, order) in orders {
            if !order.status.is_served() {
                continue;
            }
            let offer = offers
                .entry(order.offer)
                .or_insert_with(|| match services.state.offer(order.offer) {
                    Ok(offer) => offer.filter(|o| o.provider == self.address()).map(Arc::new),
                    Err(e) => {
                        warn!(target: "provider", offer = %order.offer, error = %e, "cannot read an indexed offer");
                        retry = true;
                        None
                    }
                })
                .clone();
            let Some(offer) = offer else { continue };
            // Allowed to fetch before its key arrives, so a download can start at once.
            let pairs: Vec<_> = offer.bundle_ids.iter().map(|b| (order.consumer, *b)).collect();
            self.inner.ordered.write().expect("ordered lock").extend(pairs.iter().copied());
            live.extend(pairs);
            if order.status != OrderStatus::Placed {
                continue;
            }
            if let Err(e) = self.deliver(order_id, &order, &offer).await {
                warn!(target: "provider", order = %order_id, error = %e, "delivery not done yet; retrying");
                retry = true;
            }
        }
        *self.inner.ordered.write().expect("ordered lock") = live;
        retry
    }

    /// The root of the records this node wrote into `bundle`'s file (computed from those exact
    /// leaves at sealing; the file's chunks are pinned by the registered ciphertextHash), and a
    /// DeliveryProof signature over it (leaf = root, empty proof): the node answers for what it
    /// serves.
    pub(super) fn served_root_statement(
        &self,
        order: B256,
        bundle: &ProvidedBundle,
    ) -> Result<(B256, Vec<u8>), ProviderError> {
        use alloy::{signers::SignerSync, sol_types::SolStruct};
        let services = self.services();
        let exchange = services.deployment.address("Exchange")?;
        let domain = crate::crypto::eip712::exchange_domain(services.deployment.chain_id, exchange);
        let statement = crate::crypto::eip712::DeliveryProof {
            order,
            bundle: bundle.bundle_id,
            leaf: bundle.merkle_root,
            proofHash: crate::crypto::eip712::proof_hash(&[]),
        };
        let signature = self.inner.key.signer().sign_hash_sync(&statement.eip712_signing_hash(&domain))?;
        Ok((bundle.merkle_root, signature.as_bytes().to_vec()))
    }

    pub(super) async fn deliver(
        &self,
        order_id: B256,
        order: &OrderRow,
        offer: &OfferRow,
    ) -> Result<(), ProviderError> {
        let store = &self.inner.backend.store;
        let services = self.services();
        let mut delivery: Delivery = match store.get_row::<Deliveries>(&order_id)? {
            Some(d) => d,
            None => {
                let block = services.indexer.progress().indexed;
                let (mut wrapped, mut derived, mut evidence) = (Vec::new(), Vec::new(), Vec::new());
                for bundle_id in &offer.bundle_ids {
                    let bundle = self.provided(*bundle_id)?;
                    let mut withdrawn = Vec::new();
                    for user in &bundle.users {
                        let consent = services.state.consent(*user, bundle.app, actions::EXCHANGE, bundle.data_type)?;
                        if !consent.allowed_at(block) {
                            withdrawn.push(*user);
                        }
                    }
                    let bundle = if withdrawn.is_empty() {
                        bundle
                    } else {
                        // Never their data: deliver the bundle without their records.
                        withdrawn.sort();
                        withdrawn.dedup();
                        info!(target: "provider", order = %order_id, bundle = %bundle_id, users = withdrawn.len(), "users withdrew exchange consent; delivering a derived bundle");
                        let sub = self.derive(&bundle, withdrawn).await?;
                        derived.push((*bundle_id, sub.bundle_id));
                        sub
                    };
                    let dek = wrap::unwrap_dek(self.inner.key.secret_bytes(), &bundle.wrapped_dek)?;
                    let for_consumer = wrap::wrap_dek(&order.consumer_public_key, &dek)
                        .map_err(|e| ProviderError::Invalid(format!("the order's consumer key is unusable: {e}")))?;
                    wrapped.push((*bundle_id, for_consumer));
                    let (root, signature) = self.served_root_statement(order_id, &bundle)?;
                    evidence.push((*bundle_id, root, signature));
                }
                let delivery = Delivery { wrapped, submitted: false, derived, evidence };
                store.put_row::<Deliveries>(&order_id, &delivery, Durability::Sync)?;
                delivery
            }
        };
        if delivery.submitted {
            return Ok(());
        }
        let network = &self.inner.backend.network;
        let peer = network
            .connect_node(&services.state, order.consumer, std::time::Duration::from_secs(10))
            .await
            .map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        for (bundle_id, wrapped_key) in &delivery.wrapped {
            let body = wire::request::Body::KeyDelivery(delivery.message(order_id, *bundle_id, wrapped_key.clone()));
            network.request(peer, body).await.map_err(|e| ProviderError::Unavailable(e.to_string()))?;
        }
        let commitment = key_commitment(&delivery.wrapped);
        let data = Exchange::deliverCall {
            orderId: order_id,
            keyCommitment: commitment,
            consumerKeyHash: keccak256(&order.consumer_public_key),
        }
        .abi_encode();
        let exchange = services.deployment.address("Exchange")?;
        let call =
            Call { to: exchange, data: data.into(), value: U256::ZERO, label: format!("deliver order {order_id}") };
        services.outbox.submit(&format!("order:deliver:{order_id}"), call)?;
        delivery.submitted = true;
        store.put_row::<Deliveries>(&order_id, &delivery, Durability::Sync)?;
        info!(target: "provider", order = %order_id, consumer = %order.consumer, "key delivered");
        Ok(())
    }

    /// Answers a consumer asking again for the key of its order.
    pub fn key_for(&self, peer: &libp2p::PeerId, request: &wire::KeyRequest) -> Result<wire::KeyDelivery, RoleError> {
        let bad = |m: &str| RoleError::Invalid(m.into());
        let order_id = B256::try_from(request.order_id.as_slice()).map_err(|_| bad("order_id must be 32 bytes"))?;
        let bundle_id = B256::try_from(request.bundle_id.as_slice()).map_err(|_| bad("bundle_id must be 32 bytes"))?;
        let forbidden =
            || RoleError::Refused("only the consumer of an order gets its key — place an order first".into());
        let services = &self.inner.backend.services;
        let order = services.state.order(order_id)?.ok_or_else(forbidden)?;
        if address_of_peer(peer) != Some(order.consumer) {
            return Err(forbidden());
        }
        let delivery: Delivery = self
            .inner
            .backend
            .store
            .get_row::<Deliveries>(&order_id)?
            .ok_or_else(|| RoleError::Unavailable("the key is not delivered yet; retry shortly".into()))?;
        let wrapped = delivery
            .wrapped
            .iter()
            .find(|(b, _)| *b == bundle_id)
            .ok_or_else(|| RoleError::NotFound("the order does not cover this bundle".into()))?;
        Ok(delivery.message(order_id, bundle_id, wrapped.1.clone()))
    }
}

/// The on-chain commitment to the keys delivered for an order: keccak-256 over the wrapped keys
/// in the offer's bundle order.
pub fn key_commitment(wrapped: &[(B256, Vec<u8>)]) -> B256 {
    keccak256(wrapped.iter().flat_map(|(_, w)| w.iter().copied()).collect::<Vec<u8>>())
}

impl BundleSource for Provider {
    /// Bundle ciphertext goes only to consumers that ordered it.
    fn serve(&self, peer: &libp2p::PeerId, bundle: B256) -> Result<ServedBundle, wire::Error> {
        let served = self.inner.served.read().expect("served lock").get(&bundle).cloned().ok_or_else(|| {
            p2p::transfer::wire_error(wire::ErrorCode::NotFound, format!("this node does not provide bundle {bundle}"))
        })?;
        let offered = match self.provided(bundle) {
            Ok(provided) => provided.parent.unwrap_or(bundle),
            Err(RoleError::NotFound(_)) => bundle,
            Err(e) => return Err(e.to_wire()),
        };
        let ordered = address_of_peer(peer).is_some_and(|consumer| self.has_ordered(consumer, offered));
        if !ordered {
            return Err(p2p::transfer::wire_error(
                wire::ErrorCode::Forbidden,
                format!("bundle {bundle} is served only to consumers with an order for it — place an order first"),
            ));
        }
        Ok(served)
    }
}
