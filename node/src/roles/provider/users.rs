//! Users through the identity keeper: sign-up, consent requests, and exports of a user's records.

use super::*;

impl Provider {
    pub(super) async fn keeper_peer(&self) -> Result<libp2p::PeerId, ProviderError> {
        let keeper = self.inner.keeper.ok_or_else(|| {
            ProviderError::Invalid("no identity keeper configured: set provider.keeper to its node address".into())
        })?;
        let network = &self.inner.backend.network;
        network
            .connect_node(&self.services().state, keeper, std::time::Duration::from_secs(10))
            .await
            .map_err(|e| ProviderError::Unavailable(format!("cannot reach the keeper {keeper}: {e}")))
    }

    pub(super) fn identity_key(identity: &str) -> B256 {
        IdentityHasher::digest(identity)
    }

    /// Signs a user up through the keeper; returns the account id and whether it existed.
    pub async fn sign_up(&self, identity: &str, app: B256) -> Result<(B256, bool), ProviderError> {
        if IdentityHasher::normalize(identity).is_empty() {
            return Err(ProviderError::Invalid("the identity is empty".into()));
        }
        let peer = self.keeper_peer().await?;
        let network = &self.inner.backend.network;
        let request =
            wire::SignUpRequest { identity_digest: IdentityHasher::digest(identity).to_vec(), app_id: app.to_vec() };
        let answer = network.request(peer, wire::request::Body::SignUp(request)).await?;
        let Some(wire::response::Body::SignUp(result)) = answer.body else {
            return Err(ProviderError::Unavailable("the keeper gave an unexpected answer".into()));
        };
        let user = B256::try_from(result.user_id.as_slice())
            .map_err(|_| ProviderError::Unavailable("the keeper answered a malformed user id".into()))?;
        let services = self.services();
        // Ingest checks the indexed account and consents; wait until this node sees it.
        // (A store error ends the wait and is reported by the read below.)
        let _ = services
            .indexer
            .wait_until(|_| !matches!(services.state.user(user), Ok(None)), std::time::Duration::from_secs(30))
            .await;
        if services.state.user(user)?.is_none() {
            return Err(ProviderError::Unavailable(format!("user {user} is not indexed here yet; retry shortly")));
        }
        self.inner.backend.store.put_row::<Identities>(&Self::identity_key(identity), &user, Durability::Sync)?;
        Ok((user, result.existing))
    }

    /// The account of an identity signed up through the keeper.
    pub fn user_of_identity(&self, identity: &str) -> Result<Option<B256>, ProviderError> {
        self.inner.backend.store.get_row::<Identities>(&Self::identity_key(identity)).map_err(RoleError::from)
    }

    /// Asks the keeper to grant (or withdraw) consents for one of its users; returns the outbox
    /// id of the keeper's transaction once this node has indexed it.
    pub async fn request_consents(
        &self,
        user: B256,
        app: B256,
        items: Vec<wire::ConsentItem>,
    ) -> Result<String, ProviderError> {
        if items.is_empty() {
            return Err(ProviderError::Invalid("no consent changes given".into()));
        }
        let peer = self.keeper_peer().await?;
        let network = &self.inner.backend.network;
        let request = wire::ConsentRequest { user_id: user.to_vec(), app_id: app.to_vec(), items };
        let answer = network.request(peer, wire::request::Body::Consent(request)).await?;
        let Some(wire::response::Body::Consent(result)) = answer.body else {
            return Err(ProviderError::Unavailable("the keeper gave an unexpected answer".into()));
        };
        self.services().indexer.wait_for(result.block).await;
        Ok(result.tx_id)
    }

    /// A keeper (or the user's own node) asks for a user's records: everything this node holds
    /// for the user, pending or sealed, as NDJSON sealed to the given key.
    pub fn records_for(
        &self,
        peer: &libp2p::PeerId,
        request: &wire::RecordsRequest,
    ) -> Result<wire::RecordsResult, ProviderError> {
        let user = B256::try_from(request.user_id.as_slice())
            .map_err(|_| ProviderError::Invalid("user_id must be 32 bytes".into()))?;
        let services = self.services();
        let requester = address_of_peer(peer)
            .ok_or_else(|| ProviderError::Refused("the requester has no Ethereum identity".into()))?;
        let row = services
            .state
            .user(user)?
            .ok_or_else(|| ProviderError::NotFound(format!("user {user} is not registered")))?;
        if row.controller != requester && row.owner != requester {
            return Err(ProviderError::Refused(format!(
                "only the user's controller or owner gets their records; {requester} is neither"
            )));
        }
        let mut out = Vec::new();
        let mut count = 0u64;
        let mut push = |canonical: &[u8]| -> Result<(), ProviderError> {
            let record = Record::decode(canonical)?;
            let line = crate::roles::body::ndjson_line(&record)?;
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
            count += 1;
            if out.len() > MAX_EXPORT {
                return Err(ProviderError::Invalid(format!(
                    "the user's records exceed {MAX_EXPORT} bytes, more than one answer carries"
                )));
            }
            Ok(())
        };
        let store = &self.inner.backend.store;
        for row in store.scan_prefix(cf::RECORDS, &[]) {
            let (_, value) = row?;
            if value.len() >= 32 && value[..32] == user[..] {
                push(&stream::open(&self.inner.storage_key, &value[32..])?)?;
            }
        }
        for bundle in self.bundles()? {
            if bundle.parent.is_some() || !bundle.users.contains(&user) {
                continue;
            }
            let dek = wrap::unwrap_dek(self.inner.key.secret_bytes(), &bundle.wrapped_dek)?;
            let mut body = std::io::BufReader::new(std::fs::File::open(&bundle.file)?);
            while let Some((entry_user, sealed)) = crate::roles::body::read_entry(&mut body)? {
                if entry_user == user {
                    push(&stream::open(&dek, &sealed)?)?;
                }
            }
        }
        let sealed = wrap::wrap(&request.public_key, &out)
            .map_err(|e| ProviderError::Invalid(format!("cannot seal to that public key: {e}")))?;
        info!(target: "provider", %user, %requester, count, "records exported");
        Ok(wire::RecordsResult { sealed, count })
    }
}
