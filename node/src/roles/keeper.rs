//! The identity keeper role: accounts, consents and data exports for users without wallets.
//!
//! - **Accounts.** A user is named by an identity (e-mail, phone). Providers send only its
//!   digest (`keccak256(normalized identity)`); the keeper keys the digest with a secret derived
//!   from its node key ([`IdentityHasher`]) and creates `Users.createTemporary(keccak(preimage))`
//!   through the outbox. The account id is a function of the identity hash, so a sign-up sent
//!   twice (or after a crash) finds the same account and never sends a second transaction.
//! - **Policy.** Each user tells the keeper which consents providers may have without asking
//!   again ([`Grant`]); a provider's consent request outside the policy is refused. Revocations
//!   are always accepted.
//! - **Consents** are written as the user's controller. Changes that arrive together — from
//!   many providers and users — go into one `Consents.setConsents` transaction; each caller is
//!   answered once that transaction is mined and indexed.
//! - **Hand-over.** `Users.unlockTemporary(preimage, wallet)` gives the account to the user.
//! - **Export.** The keeper asks every admitted provider for the user's records, sealed to the
//!   user's key ("give me my data").

use super::RoleError;
use crate::{
    backend::Backend,
    chain::ChainServices,
    chain::{
        contracts::{Consents, Users, actions, roles},
        outbox::Call,
        state::{ConsentRow, UserRow},
    },
    crypto::{identity::IdentityHasher, wrap},
    keys::{NodeKey, address_of_peer},
    store::{Durability, cf},
};
use airbloc_proto::p2p::v1 as wire;
use alloy::{
    primitives::{Address, B256, U256, keccak256},
    sol_types::{SolCall, SolValue},
};
use serde::{Deserialize, Serialize};
use std::{sync::Arc, time::Duration};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// META key of the consent batch counter (one row, like the outbox sequence).
const BATCH_SEQ: &[u8] = b"keeper:consent_batch";
/// Most consent changes in one transaction.
pub const MAX_BATCH: usize = 256;
/// How long the first change of a batch waits for others to join it.
const BATCH_WINDOW: Duration = Duration::from_millis(150);

/// One kind of consent providers may have without asking the user again. `None` means any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub app: Option<B256>,
    pub action: u8,
    pub data_type: Option<B256>,
}

impl Grant {
    fn covers(&self, app: B256, action: u8, data_type: B256) -> bool {
        self.action == action && self.app.is_none_or(|a| a == app) && self.data_type.is_none_or(|d| d == data_type)
    }
}

crate::tables! {
    /// Accounts this keeper created, by user id.
    pub Accounts(cf::KEEPER_ACCOUNTS): B256 => Account;
}
crate::json_values!(Account);

/// What the keeper keeps about an account it created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub user: B256,
    pub identity_hash: B256,
    pub preimage: B256,
    pub policy: Vec<Grant>,
}

/// An account with its indexed chain state (`None` until the creation is indexed).
#[derive(Debug, Clone)]
pub struct AccountView {
    pub account: Account,
    pub chain: Option<UserRow>,
}

/// One consent change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsentChange {
    pub app: B256,
    pub action: u8,
    pub data_type: B256,
    pub allowed: bool,
}

/// One consent of a user, as indexed.
#[derive(Debug, Clone)]
pub struct ConsentState {
    pub app: B256,
    pub action: u8,
    pub data_type: B256,
    pub row: ConsentRow,
}

/// What one provider answered to an export.
#[derive(Debug, Clone)]
pub struct ProviderExport {
    pub provider: Address,
    pub result: Result<wire::RecordsResult, String>,
}

struct ConsentJob {
    inputs: Vec<Consents::ConsentInput>,
    reply: oneshot::Sender<Result<(String, u64), Arc<RoleError>>>,
}

/// The keeper.
#[derive(Clone)]
pub struct Keeper {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    key: NodeKey,
    hasher: IdentityHasher,
    jobs: mpsc::Sender<ConsentJob>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper").field("address", &self.inner.key.address()).finish_non_exhaustive()
    }
}

/// The id `Users.createTemporary` gives the account of an identity hash.
pub fn temporary_user_id(identity_hash: B256) -> B256 {
    keccak256(("airbloc.user.temporary".to_owned(), identity_hash).abi_encode_params())
}

impl Keeper {
    /// The keeper and the task that writes consent batches (spawn it).
    ///
    /// The task ends when `cancel` fires: the batch in flight is finished or, if its transaction
    /// is still waiting to be mined, left queued in the (durable) outbox; queued requests are
    /// answered with a refusal.
    pub fn new(
        backend: Backend,
        key: NodeKey,
        cancel: CancellationToken,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static + use<>) {
        let (jobs, rx) = mpsc::channel(1024);
        let hasher = IdentityHasher::from_node_secret(key.secret_bytes());
        let keeper = Self { inner: Arc::new(Inner { backend: backend.clone(), key, hasher, jobs }) };
        (keeper, run_batches(backend, rx, cancel))
    }

    /// The chain services this role was built with.
    pub fn services(&self) -> &ChainServices {
        &self.inner.backend.services
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.inner.key.address()
    }

    fn ensure_controller(&self) -> Result<&ChainServices, RoleError> {
        let services = self.services();
        if !services.state.is_controller(self.address())? {
            return Err(RoleError::Unavailable(format!(
                "this keeper ({}) is not a registered controller; the ControllerRegistry owner adds it with \
                 `airbloc admin controllers add {}`",
                self.address(),
                self.address()
            )));
        }
        Ok(services)
    }

    fn stored(&self, user: B256) -> Result<Option<Account>, RoleError> {
        self.inner.backend.store.get_row::<Accounts>(&user).map_err(RoleError::from)
    }

    /// The account of an identity, if this keeper created it.
    pub fn account(&self, identity: &str) -> Result<AccountView, RoleError> {
        let user = temporary_user_id(keccak256(self.inner.hasher.preimage(identity)));
        self.view(user)
    }

    fn view(&self, user: B256) -> Result<AccountView, RoleError> {
        let account = self.stored(user)?.ok_or_else(|| {
            RoleError::NotFound("this keeper has no account for that identity; sign the user up first".into())
        })?;
        let chain = self.services().state.user(user)?;
        Ok(AccountView { account, chain })
    }

    /// Creates (or finds) the account of an identity.
    pub async fn sign_up(&self, identity: &str) -> Result<(AccountView, bool), RoleError> {
        if IdentityHasher::normalize(identity).is_empty() {
            return Err(RoleError::Invalid("the identity is empty".into()));
        }
        self.sign_up_digest(IdentityHasher::digest(identity)).await
    }

    /// Creates (or finds) the account of an identity digest; `true` when it already existed.
    pub async fn sign_up_digest(&self, digest: B256) -> Result<(AccountView, bool), RoleError> {
        let services = self.ensure_controller()?;
        let preimage = self.inner.hasher.preimage_of_digest(digest);
        let identity_hash = keccak256(preimage);
        let user = temporary_user_id(identity_hash);
        if self.stored(user)?.is_none() {
            let account = Account { user, identity_hash, preimage, policy: Vec::new() };
            self.inner.backend.store.put_row::<Accounts>(&user, &account, Durability::Sync)?;
        }
        let existing = services.state.user(user)?.is_some();
        if !existing {
            let users = services.deployment.address("Users")?;
            let call = Call {
                to: users,
                data: Users::createTemporaryCall { identityHash: identity_hash }.abi_encode().into(),
                value: U256::ZERO,
                label: format!("create temporary user {user}"),
            };
            if let Err(e) = services.transact(&format!("keeper:signup:{identity_hash}"), call).await {
                // Another request may have created it first.
                if services.state.user(user)?.is_none() {
                    return Err(e.into());
                }
            }
            info!(target: "keeper", %user, "temporary account created");
        }
        Ok((self.view(user)?, existing))
    }

    /// Replaces what providers may have without asking the user again.
    pub fn set_policy(&self, identity: &str, policy: Vec<Grant>) -> Result<AccountView, RoleError> {
        if let Some(bad) = policy.iter().find(|g| g.action > actions::EXCHANGE) {
            return Err(RoleError::Invalid(format!("action {} is neither 0 (collect) nor 1 (exchange)", bad.action)));
        }
        let mut view = self.account(identity)?;
        view.account.policy = policy;
        self.inner.backend.store.put_row::<Accounts>(&view.account.user, &view.account, Durability::Sync)?;
        Ok(view)
    }

    /// Sets consents for an identity as its controller; returns the outbox id and block.
    pub async fn set_consents(&self, identity: &str, changes: &[ConsentChange]) -> Result<(String, u64), RoleError> {
        let view = self.account(identity)?;
        self.write_consents(view.account.user, changes).await
    }

    async fn write_consents(&self, user: B256, changes: &[ConsentChange]) -> Result<(String, u64), RoleError> {
        if changes.is_empty() {
            return Err(RoleError::Invalid("no consent changes given".into()));
        }
        let services = self.ensure_controller()?;
        let state = &services.state;
        let row = state
            .user(user)?
            .ok_or_else(|| RoleError::Unavailable(format!("user {user} is not indexed yet; retry shortly")))?;
        if row.controller != self.address() {
            return Err(RoleError::Refused(format!(
                "user {user} is controlled by {}, not by this keeper — the user changes consents with their wallet",
                row.controller
            )));
        }
        let mut inputs = Vec::with_capacity(changes.len());
        for c in changes {
            if c.action > actions::EXCHANGE {
                return Err(RoleError::Invalid(format!("action {} is neither 0 (collect) nor 1 (exchange)", c.action)));
            }
            if state.app(c.app)?.is_none_or(|a| a.retired) {
                return Err(RoleError::NotFound(format!("app {} is not registered", c.app)));
            }
            if state.data_type(c.data_type)?.is_none_or(|d| d.retired) {
                return Err(RoleError::NotFound(format!("data type {} is not registered", c.data_type)));
            }
            if state.consent(user, c.app, c.action, c.data_type)?.set_by_user {
                return Err(RoleError::Refused(format!(
                    "the user set this consent with their own wallet; only they can change it (app {}, action {}, data type {})",
                    c.app, c.action, c.data_type
                )));
            }
            inputs.push(Consents::ConsentInput {
                userId: user,
                appId: c.app,
                action: c.action,
                dataTypeId: c.data_type,
                allowed: c.allowed,
            });
        }
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(ConsentJob { inputs, reply })
            .await
            .map_err(|_| RoleError::Unavailable("the keeper is stopping".into()))?;
        answer.await.map_err(|_| RoleError::Unavailable("the keeper is stopping".into()))?.map_err(RoleError::Batch)
    }

    /// Every consent of an identity's account, as indexed.
    pub fn consents(&self, identity: &str) -> Result<Vec<ConsentState>, RoleError> {
        let user = self.account(identity)?.account.user;
        let rows = self.services().state.consents_of(user)?;
        Ok(rows.into_iter().map(|(app, action, data_type, row)| ConsentState { app, action, data_type, row }).collect())
    }

    /// Hands the account over to the user's wallet.
    pub async fn unlock(&self, identity: &str, new_owner: Address) -> Result<AccountView, RoleError> {
        if new_owner == Address::ZERO {
            return Err(RoleError::Invalid("the new owner must be a wallet address, not zero".into()));
        }
        let services = self.ensure_controller()?;
        let view = self.account(identity)?;
        let Some(row) = &view.chain else {
            return Err(RoleError::Unavailable("the account is not indexed yet; retry shortly".into()));
        };
        if !row.temporary {
            return Err(RoleError::Invalid(format!("the account already belongs to {}", row.owner)));
        }
        if services.state.user(keccak256(("airbloc.user", new_owner).abi_encode_params()))?.is_some() {
            return Err(RoleError::Invalid(format!("{new_owner} already has an account; use another wallet")));
        }
        let users = services.deployment.address("Users")?;
        let call = Call {
            to: users,
            data: Users::unlockTemporaryCall { identityPreimage: view.account.preimage, newOwner: new_owner }
                .abi_encode()
                .into(),
            value: U256::ZERO,
            label: format!("hand user {} to {new_owner}", view.account.user),
        };
        services.transact(&format!("keeper:unlock:{}:{new_owner}", view.account.user), call).await?;
        info!(target: "keeper", user = %view.account.user, %new_owner, "account handed over");
        self.view(view.account.user)
    }

    /// Asks every admitted provider for the user's records sealed to `public_key` (65 bytes).
    pub async fn export(&self, identity: &str, public_key: &[u8]) -> Result<Vec<ProviderExport>, RoleError> {
        wrap::parse_public_key(public_key)
            .map_err(|e| RoleError::Invalid(format!("not an uncompressed secp256k1 public key: {e}")))?;
        let user = self.account(identity)?.account.user;
        let services = self.services();
        let network = &self.inner.backend.network;
        let providers: Vec<Address> = services
            .state
            .nodes()?
            .into_iter()
            .filter(|(address, row)| row.active && row.roles & roles::PROVIDER != 0 && *address != self.address())
            .map(|(address, _)| address)
            .collect();
        let asks = providers.into_iter().map(|provider| async move {
            let result = async {
                let peer = network
                    .connect_node(&services.state, provider, Duration::from_secs(10))
                    .await
                    .map_err(|e| e.to_string())?;
                let request = wire::RecordsRequest { user_id: user.to_vec(), public_key: public_key.to_vec() };
                match network.request(peer, wire::request::Body::Records(request)).await {
                    Ok(wire::Response { body: Some(wire::response::Body::Records(records)), .. }) => Ok(records),
                    Ok(other) => Err(format!("unexpected answer {other:?}")),
                    Err(e) => Err(e.to_string()),
                }
            }
            .await;
            ProviderExport { provider, result }
        });
        Ok(futures::future::join_all(asks).await)
    }

    /// Opens an export sealed to this keeper's own key.
    pub fn open_export(&self, sealed: &[u8]) -> Result<String, RoleError> {
        let plain = wrap::unwrap(self.inner.key.secret_bytes(), sealed)?;
        String::from_utf8(plain.to_vec()).map_err(RoleError::from)
    }

    /// This keeper's public key (exports sealed to it can be opened with [`Keeper::open_export`]).
    pub fn public_key(&self) -> [u8; 65] {
        self.inner.key.public_key_uncompressed()
    }

    /// Checks that `peer` runs an admitted provider node for `app`; returns its address.
    fn provider_for_app(&self, peer: &libp2p::PeerId, app: B256) -> Result<Address, RoleError> {
        let services = self.services();
        let address =
            address_of_peer(peer).ok_or_else(|| RoleError::Refused("the requester has no Ethereum identity".into()))?;
        let node = services.state.node(address)?;
        if !node.is_some_and(|n| n.active && n.roles & roles::PROVIDER != 0) {
            return Err(RoleError::Refused(format!("{address} is not an active provider node in the NodeRegistry")));
        }
        let app_row = services
            .state
            .app(app)?
            .filter(|a| !a.retired)
            .ok_or_else(|| RoleError::NotFound(format!("app {app} is not registered")))?;
        if app_row.owner != address && !app_row.authorized.contains(&address) {
            return Err(RoleError::Refused(format!("{address} is not authorized for app {app}")));
        }
        Ok(address)
    }

    /// A provider's sign-up request.
    pub async fn handle_sign_up(
        &self,
        peer: &libp2p::PeerId,
        request: wire::SignUpRequest,
    ) -> Result<wire::SignUpResult, RoleError> {
        let digest = B256::try_from(request.identity_digest.as_slice())
            .map_err(|_| RoleError::Invalid("identity_digest must be 32 bytes".into()))?;
        let app = B256::try_from(request.app_id.as_slice())
            .map_err(|_| RoleError::Invalid("app_id must be 32 bytes".into()))?;
        let provider = self.provider_for_app(peer, app)?;
        let (view, existing) = self.sign_up_digest(digest).await?;
        info!(target: "keeper", %provider, user = %view.account.user, existing, "sign-up for a provider");
        Ok(wire::SignUpResult { user_id: view.account.user.to_vec(), existing })
    }

    /// A provider's consent request: granted within the user's policy, revocations always.
    pub async fn handle_consent(
        &self,
        peer: &libp2p::PeerId,
        request: wire::ConsentRequest,
    ) -> Result<wire::ConsentResult, RoleError> {
        let user = B256::try_from(request.user_id.as_slice())
            .map_err(|_| RoleError::Invalid("user_id must be 32 bytes".into()))?;
        let app = B256::try_from(request.app_id.as_slice())
            .map_err(|_| RoleError::Invalid("app_id must be 32 bytes".into()))?;
        self.provider_for_app(peer, app)?;
        let account =
            self.stored(user)?.ok_or_else(|| RoleError::NotFound(format!("this keeper does not hold user {user}")))?;
        let mut changes = Vec::with_capacity(request.items.len());
        for item in &request.items {
            let data_type = B256::try_from(item.data_type_id.as_slice())
                .map_err(|_| RoleError::Invalid("data_type_id must be 32 bytes".into()))?;
            let action = u8::try_from(item.action)
                .ok()
                .filter(|a| *a <= actions::EXCHANGE)
                .ok_or_else(|| RoleError::Invalid(format!("action {} is unknown", item.action)))?;
            if item.allow && !account.policy.iter().any(|g| g.covers(app, action, data_type)) {
                return Err(RoleError::Refused(format!(
                    "user {user} has not allowed this keeper to grant action {action} on data type {data_type} to app {app}"
                )));
            }
            changes.push(ConsentChange { app, action, data_type, allowed: item.allow });
        }
        let (tx_id, block) = self.write_consents(user, &changes).await?;
        Ok(wire::ConsentResult { tx_id, block })
    }
}

/// Collects consent changes that arrive together into one `setConsents` transaction.
async fn run_batches(backend: Backend, mut jobs: mpsc::Receiver<ConsentJob>, cancel: CancellationToken) {
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut count = batch[0].inputs.len();
        // Time is the point: changes arriving within the window share one transaction.
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        while count < MAX_BATCH {
            tokio::select! {
                _ = &mut window => break,
                job = jobs.recv() => match job {
                    Some(job) => {
                        count += job.inputs.len();
                        batch.push(job);
                    }
                    None => break,
                },
            }
        }
        // A transaction in flight at shutdown stays queued in the durable outbox (and is sent
        // after the restart); `transact` returns as soon as the node is cancelled.
        let result = write_batch(&backend, &batch).await;
        if let Err(e) = &result {
            warn!(target: "keeper", error = %e, changes = count, "consent batch failed");
        }
        for job in batch {
            let _ = job.reply.send(result.clone());
        }
    }
    // Shutting down: answer whatever is still queued instead of dropping it silently.
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        let _ = job.reply.send(Err(Arc::new(RoleError::Unavailable(
            "the node is shutting down; send the consent changes again after it restarts".into(),
        ))));
    }
}

async fn write_batch(backend: &Backend, batch: &[ConsentJob]) -> Result<(String, u64), Arc<RoleError>> {
    write_consents(backend, batch).await.map_err(Arc::new)
}

async fn write_consents(backend: &Backend, batch: &[ConsentJob]) -> Result<(String, u64), RoleError> {
    let services = &backend.services;
    let store = &backend.store;
    // A fresh id per batch (persisted first), so equal batches at different times are each sent.
    let seq = store.get::<u64>(cf::META, BATCH_SEQ)?.unwrap_or(0) + 1;
    store.put(cf::META, BATCH_SEQ, &seq, Durability::Sync)?;
    let inputs: Vec<_> = batch.iter().flat_map(|job| job.inputs.iter().cloned()).collect();
    let changes = inputs.len();
    let call = Call {
        to: services.deployment.address("Consents")?,
        data: Consents::setConsentsCall { inputs }.abi_encode().into(),
        value: U256::ZERO,
        label: format!("{changes} consent change(s) as controller"),
    };
    let id = format!("keeper:consents:{seq}");
    let block = services.transact(&id, call).await?;
    info!(target: "keeper", %id, changes, requests = batch.len(), block, "consents written");
    Ok((id, block))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const COLLECT: u8 = 0;
    const EXCHANGE: u8 = 1;

    #[test]
    fn a_grant_covers_its_action_and_what_it_names() {
        let (app, other_app) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let (steps, heart) = (B256::repeat_byte(3), B256::repeat_byte(4));
        let exact = Grant { app: Some(app), action: EXCHANGE, data_type: Some(steps) };
        assert!(exact.covers(app, EXCHANGE, steps));
        assert!(!exact.covers(app, COLLECT, steps), "another action");
        assert!(!exact.covers(other_app, EXCHANGE, steps), "another app");
        assert!(!exact.covers(app, EXCHANGE, heart), "another data type");

        let any_app = Grant { app: None, action: EXCHANGE, data_type: Some(steps) };
        assert!(any_app.covers(app, EXCHANGE, steps) && any_app.covers(other_app, EXCHANGE, steps));
        assert!(!any_app.covers(app, EXCHANGE, heart));

        let any_type = Grant { app: Some(app), action: COLLECT, data_type: None };
        assert!(any_type.covers(app, COLLECT, steps) && any_type.covers(app, COLLECT, heart));
        assert!(!any_type.covers(other_app, COLLECT, steps));

        let everything = Grant { app: None, action: COLLECT, data_type: None };
        assert!(everything.covers(other_app, COLLECT, heart));
        assert!(!everything.covers(other_app, EXCHANGE, heart), "a grant never widens to another action");
    }
}
