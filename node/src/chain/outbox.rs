//! The transaction outbox: every transaction the node intends is written down before it is
//! signed, and one sender task takes each from intent to final outcome.
//!
//! # Guarantees
//!
//! - **Nothing intended is lost.** [`Outbox::submit`] returns only after the intent is fsynced.
//! - **Nothing is sent twice.** Before a signed transaction is broadcast, its nonce and raw bytes
//!   are fsynced with the intent. After a crash the sender re-broadcasts exactly those bytes (same
//!   hash) instead of signing anew; fee bumps and cancellations reuse the same nonce, so at most
//!   one version of an intent can ever be mined.
//! - **Exactly-once submission.** The caller names each intent with an idempotency key. Looking
//!   the key up and writing the intent happen under one lock, so concurrent submissions of a key
//!   make one intent; the same key with a different call is refused with
//!   [`OutboxError::KeyConflict`].
//! - **One writer per transition.** Every change of an intent (submit, cancel, resend, and each
//!   step of the sender) reads the stored intent and writes its successor under the same lock, and
//!   the sender's steps apply only if the intent is still in the state they started from. A cancel
//!   or resend racing the sender is never overwritten, and a signature made for an intent that was
//!   cancelled meanwhile is dropped before it is broadcast.
//! - **A poisoned intent fails alone.** A call that would revert, or that the endpoint refuses to
//!   estimate for any other reason of its own (invalid opcode, more gas than a block holds), ends
//!   `Reverted` or `Failed` with the reason; the intents behind it go on. Only an unreachable or
//!   overloaded endpoint pauses the sender (with back-off), and an unfunded account pauses it
//!   until it is funded.
//! - **Reorgs are followed.** A transaction seen in a block is re-checked every pass until it is
//!   `confirmations` deep. If a reorg removes it (no receipt any more, or a receipt in another
//!   block), the intent goes back to waiting and its signed bytes are broadcast again (same nonce,
//!   same hash), so it ends mined exactly once. Only if a foreign transaction took its nonce
//!   meanwhile is it signed anew with a fresh nonce (its old versions can no longer be mined).
//! - **Reverts end.** A call that reverted in its receipt is reported to the caller with its
//!   decoded custom error, never retried forever.
//!
//! # Nonces
//!
//! A new transaction gets nonce = max(chain pending nonce, highest nonce held by an unfinished
//! local intent + 1). A transaction without a receipt for `stuck_after` (and at least one new
//! block) is re-signed with the same nonce and fees raised by 12.5 % (at least the current
//! estimate). Outages of the RPC endpoint pause the sender with exponential backoff; intents keep
//! queueing durably meanwhile.

use super::contracts::describe_revert;
use crate::store::{Durability, Store, StoreError, cf};
use alloy::{
    consensus::TxEnvelope,
    eips::{BlockId, Encodable2718},
    network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder},
    primitives::{Address, B256, Bytes, U256},
    providers::{DynProvider, Provider},
    rpc::types::{TransactionReceipt, TransactionRequest},
    transports::TransportError,
};
use serde::{Deserialize, Serialize};
use std::{
    future::IntoFuture,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const SEQ_KEY: &[u8] = b"outbox_seq";

/// A contract call (or transfer) the node wants on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    pub to: Address,
    pub data: Bytes,
    pub value: U256,
    /// What the transaction is for, in words (shown by `airbloc node txs`).
    pub label: String,
}

impl Call {
    /// Whether `other` would send the same transaction (the label is only a description).
    pub fn same_transaction(&self, other: &Call) -> bool {
        self.to == other.to && self.data == other.data && self.value == other.value
    }
}

/// A block that holds one version of a sent intent, not yet `confirmations` deep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inclusion {
    pub tx: B256,
    pub block: u64,
    pub block_hash: B256,
}

/// Where an intent stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum IntentState {
    /// Written down, not yet signed.
    Queued,
    /// Signed with `nonce` and broadcast; `txs` are the hashes of every version (fee bumps).
    Sent {
        nonce: u64,
        gas_limit: u64,
        #[serde(with = "u128_text")]
        max_fee: u128,
        #[serde(with = "u128_text")]
        priority_fee: u128,
        txs: Vec<B256>,
        /// The latest signed version, re-broadcast after a restart.
        raw: Bytes,
        sent_at_block: u64,
        sent_at: u64,
        /// The operator asked to replace the call with a 0-value transfer to self; every version
        /// signed from then on is such a transfer.
        cancelling: bool,
        /// Seen in a block that is not yet `confirmations` deep; re-checked every pass.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        included: Option<Inclusion>,
    },
    /// Included and confirmed.
    Mined { nonce: u64, tx: B256, block: u64, gas_used: u64 },
    /// The call reverted: at estimation (no transaction sent) or on chain.
    Reverted { nonce: Option<u64>, tx: Option<B256>, block: Option<u64>, reason: String },
    /// Replaced by a 0-value transfer at the operator's request.
    Cancelled { nonce: u64, tx: B256 },
    /// Cannot go through: the endpoint refused the call (no transaction sent), it was cancelled
    /// before it was signed, or its nonce was used by a transaction the outbox did not send.
    Failed { reason: String },
}

impl IntentState {
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Queued | Self::Sent { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent { .. } => "sent",
            Self::Mined { .. } => "mined",
            Self::Reverted { .. } => "reverted",
            Self::Cancelled { .. } => "cancelled",
            Self::Failed { .. } => "failed",
        }
    }

    /// The version hashes of a sent intent (empty otherwise).
    fn versions(&self) -> &[B256] {
        match self {
            Self::Sent { txs, .. } => txs,
            _ => &[],
        }
    }
}

/// One intended transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The caller's idempotency key.
    pub id: String,
    /// Submission order.
    pub seq: u64,
    pub call: Call,
    pub state: IntentState,
    /// Unix seconds of submission.
    pub created_at: u64,
    /// The operator asked for a fee bump.
    #[serde(default)]
    pub bump_requested: bool,
    /// How many times a block holding one of its transactions was reorganised away.
    #[serde(default)]
    pub reorgs: u32,
}

/// Outbox failures.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("chain endpoint: {0}")]
    Transport(#[from] TransportError),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("no transaction with id {0}")]
    Unknown(String),
    #[error(
        "transaction id {id} is already used for a different call — submit the same call to get that transaction, or choose a new id"
    )]
    KeyConflict { id: String },
    #[error("transaction {id} is already {state}; nothing to do")]
    AlreadyFinal { id: String, state: &'static str },
    #[error("transaction {id} reverted: {reason}")]
    Reverted { id: String, reason: String },
    #[error("transaction {id} was cancelled")]
    Cancelled { id: String },
    #[error("transaction {id} failed: {reason}")]
    Failed { id: String, reason: String },
    #[error("the outbox stopped")]
    Stopped,
    #[error(
        "{address} has too little ETH to pay for its transactions ({message}) — send it some; queued transactions go out once it is funded"
    )]
    InsufficientFunds { address: Address, message: String },
}

/// Outbox settings.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// Blocks on top of a transaction's block before it counts as final.
    pub confirmations: u64,
    /// How long a transaction may wait without a receipt before its fees are bumped.
    pub stuck_after: Duration,
    /// How often the sender looks at the chain when nothing wakes it.
    pub poll_interval: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self { confirmations: 1, stuck_after: Duration::from_secs(30), poll_interval: Duration::from_millis(500) }
    }
}

/// Handle to the outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("from", &self.inner.from).finish()
    }
}

struct Inner {
    store: Arc<Store>,
    provider: DynProvider,
    wallet: EthereumWallet,
    from: Address,
    chain_id: AtomicU64,
    config: OutboxConfig,
    /// Held (never across an await) by every read-modify-write of an intent.
    writer: Mutex<()>,
    seq: AtomicU64,
    wake: Notify,
    updates: broadcast::Sender<String>,
    connected: AtomicBool,
    unfunded: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ()> {
        // The guarded data is the store, which a panicking writer leaves consistent (each write is
        // one atomic batch), so a poisoned lock is still good.
        self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// What a chain request that failed means for the sender.
#[derive(Debug)]
enum Failure {
    /// The call reverts: the intent ends `Reverted` with the decoded reason.
    Revert(String),
    /// The endpoint refuses this call for a reason of its own: the intent ends `Failed`.
    Intent(String),
    /// The account cannot pay: sending pauses until it is funded.
    Unfunded(String),
    /// The endpoint is unreachable, overloaded or rate-limiting: sending pauses with back-off.
    Outage(TransportError),
}

fn classify(e: TransportError) -> Failure {
    let Some(payload) = e.as_error_resp() else { return Failure::Outage(e) };
    if let Some(data) = payload.as_revert_data() {
        return Failure::Revert(describe_revert(&data));
    }
    match classify_response(payload.code, &payload.message) {
        ResponseKind::Revert => Failure::Revert(payload.message.to_string()),
        ResponseKind::Unfunded => Failure::Unfunded(e.to_string()),
        ResponseKind::Transient => Failure::Outage(e),
        ResponseKind::Intent => Failure::Intent(payload.message.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResponseKind {
    Revert,
    Unfunded,
    Transient,
    Intent,
}

/// Sorts a JSON-RPC error answer: the endpoint answered, so unless the answer says it is busy or
/// limiting us, the fault lies with the call.
fn classify_response(code: i64, message: &str) -> ResponseKind {
    let message = message.to_lowercase();
    const TRANSIENT: [&str; 8] = [
        "rate limit",
        "too many requests",
        "request limit",
        "header not found",
        "timeout",
        "timed out",
        "try again",
        "temporarily unavailable",
    ];
    if message.contains("insufficient funds") {
        ResponseKind::Unfunded
    } else if matches!(code, 429 | -32005) || TRANSIENT.iter().any(|t| message.contains(t)) {
        ResponseKind::Transient
    } else if message.contains("revert") {
        ResponseKind::Revert
    } else {
        ResponseKind::Intent
    }
}

/// The nonce of the next new transaction.
fn next_nonce(chain_pending: u64, highest_local: Option<u64>) -> u64 {
    highest_local.map_or(chain_pending, |highest| chain_pending.max(highest + 1))
}

/// Fees for a replacement: at least 12.5 % above the last version (nodes refuse less) and at
/// least the current estimate; the priority fee never above the fee cap.
fn bumped_fees(max_fee: u128, priority_fee: u128, estimate_max: u128, estimate_priority: u128) -> (u128, u128) {
    let max = (max_fee + max_fee / 8 + 1).max(estimate_max);
    let priority = (priority_fee + priority_fee / 8 + 1).max(estimate_priority).min(max);
    (max, priority)
}

/// Gas limit for an estimate: 20 % and 10,000 gas of headroom.
fn gas_limit_for(estimate: u64) -> u64 {
    estimate.saturating_add(estimate / 5).saturating_add(10_000)
}

// The state transitions. Each takes the stored intent and returns its successor (`None`: leave
// it as it is); they run under the writer lock.

fn on_cancel(current: &Intent) -> Result<Option<Intent>, OutboxError> {
    let mut next = current.clone();
    match &mut next.state {
        IntentState::Queued => next.state = IntentState::Failed { reason: "cancelled before sending".into() },
        IntentState::Sent { cancelling: true, .. } if current.bump_requested => return Ok(None),
        IntentState::Sent { cancelling, .. } => {
            *cancelling = true;
            next.bump_requested = true;
        }
        state => return Err(OutboxError::AlreadyFinal { id: current.id.clone(), state: state.name() }),
    }
    Ok(Some(next))
}

fn on_resend(current: &Intent) -> Result<Option<Intent>, OutboxError> {
    match &current.state {
        // Its first signature uses the fees of that moment anyway.
        IntentState::Queued => Ok(None),
        IntentState::Sent { .. } if current.bump_requested => Ok(None),
        IntentState::Sent { .. } => Ok(Some(Intent { bump_requested: true, ..current.clone() })),
        state => Err(OutboxError::AlreadyFinal { id: current.id.clone(), state: state.name() }),
    }
}

/// A queued intent leaves the queue (signed, reverted or refused), unless it changed meanwhile.
fn on_queued_done(current: &Intent, state: IntentState) -> Option<Intent> {
    (current.state == IntentState::Queued).then(|| Intent { state, bump_requested: false, ..current.clone() })
}

/// A sent intent moves on, if it still holds the versions the sender looked at.
fn on_sent(current: &Intent, seen: &[B256], change: impl FnOnce(&mut Intent)) -> Option<Intent> {
    if !matches!(current.state, IntentState::Sent { .. }) || current.state.versions() != seen {
        return None;
    }
    let mut next = current.clone();
    change(&mut next);
    Some(next)
}

/// A new version was signed from `seen`. Requests that arrived after the sender looked stay
/// pending: a resend gets another version, a cancel gets a cancelling version.
fn on_bumped(current: &Intent, seen: &Intent, signed: IntentState) -> Option<Intent> {
    let IntentState::Sent { cancelling: signed_cancel, .. } = signed else { return None };
    on_sent(current, seen.state.versions(), |next| {
        let cancel_requested = matches!(current.state, IntentState::Sent { cancelling: true, .. });
        next.bump_requested = (current.bump_requested && !seen.bump_requested) || (cancel_requested && !signed_cancel);
        next.state = signed;
        if let IntentState::Sent { cancelling, .. } = &mut next.state {
            *cancelling |= cancel_requested;
        }
    })
}

impl Outbox {
    /// An outbox sending from `wallet`'s default signer through `provider`.
    pub fn new(
        store: Arc<Store>,
        provider: DynProvider,
        wallet: EthereumWallet,
        config: OutboxConfig,
    ) -> Result<Self, OutboxError> {
        let from = <EthereumWallet as alloy::network::NetworkWallet<alloy::network::Ethereum>>::default_signer_address(
            &wallet,
        );
        let seq = match store.get_raw(cf::META, SEQ_KEY)? {
            Some(bytes) => u64::from_be_bytes(bytes.as_slice().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        let (updates, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                provider,
                wallet,
                from,
                chain_id: AtomicU64::new(0),
                config,
                writer: Mutex::new(()),
                seq: AtomicU64::new(seq),
                wake: Notify::new(),
                updates,
                connected: AtomicBool::new(false),
                unfunded: AtomicBool::new(false),
            }),
        })
    }

    /// The sending address.
    pub fn from(&self) -> Address {
        self.inner.from
    }

    /// Durably records an intent (fsynced) and wakes the sender. Submitting an id that exists
    /// with the same call returns the existing intent unchanged (also when both submissions race);
    /// with a different call it is refused with [`OutboxError::KeyConflict`].
    pub fn submit(&self, id: &str, call: Call) -> Result<Intent, OutboxError> {
        let store = &self.inner.store;
        let guard = self.inner.lock();
        if let Some(existing) = store.get::<Intent>(cf::OUTBOX, id.as_bytes())? {
            if !existing.call.same_transaction(&call) {
                return Err(OutboxError::KeyConflict { id: id.to_owned() });
            }
            return Ok(existing);
        }
        let seq = self.inner.seq.load(Ordering::SeqCst) + 1;
        let intent = Intent {
            id: id.to_owned(),
            seq,
            call,
            state: IntentState::Queued,
            created_at: now(),
            bump_requested: false,
            reorgs: 0,
        };
        let mut batch = store.batch();
        batch.put(cf::OUTBOX, id.as_bytes(), &intent);
        batch.put_raw(cf::OUTBOX_QUEUE, &seq.to_be_bytes(), id.as_bytes());
        batch.put_raw(cf::META, SEQ_KEY, &seq.to_be_bytes());
        store.write(batch, Durability::Sync)?;
        self.inner.seq.store(seq, Ordering::SeqCst);
        drop(guard);
        debug!(target: "chain::outbox", id, seq, label = %intent.call.label, "intent queued");
        self.inner.wake.notify_one();
        Ok(intent)
    }

    /// One intent by id.
    pub fn get(&self, id: &str) -> Result<Option<Intent>, OutboxError> {
        Ok(self.inner.store.get(cf::OUTBOX, id.as_bytes())?)
    }

    /// Unfinished intents in submission order.
    pub fn pending(&self) -> Result<Vec<Intent>, OutboxError> {
        let store = &self.inner.store;
        let mut out = Vec::new();
        for row in store.scan_from(cf::OUTBOX_QUEUE, &[]) {
            let (_, id) = row?;
            if let Some(intent) = store.get::<Intent>(cf::OUTBOX, &id)? {
                out.push(intent);
            }
        }
        Ok(out)
    }

    /// Every intent, oldest first (including finished ones).
    pub fn all(&self) -> Result<Vec<Intent>, OutboxError> {
        let mut out = Vec::new();
        for row in self.inner.store.scan_from(cf::OUTBOX, &[]) {
            let (key, value) = row?;
            out.push(crate::store::decode::<Intent>(cf::OUTBOX, &key, &value)?);
        }
        out.sort_by_key(|i| i.seq);
        Ok(out)
    }

    /// Number of unfinished intents.
    pub fn depth(&self) -> usize {
        self.inner.store.scan_from(cf::OUTBOX_QUEUE, &[]).count()
    }

    /// Whether the last chain request succeeded.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Waits until the intent is final. Ok for mined; the error names reverts and cancellations.
    pub async fn wait(&self, id: &str) -> Result<Intent, OutboxError> {
        let mut updates = self.inner.updates.subscribe();
        loop {
            let intent = self.get(id)?.ok_or_else(|| OutboxError::Unknown(id.to_owned()))?;
            match &intent.state {
                IntentState::Mined { .. } => return Ok(intent),
                IntentState::Reverted { reason, .. } => {
                    return Err(OutboxError::Reverted { id: id.to_owned(), reason: reason.clone() });
                }
                IntentState::Cancelled { .. } => return Err(OutboxError::Cancelled { id: id.to_owned() }),
                IntentState::Failed { reason } => {
                    return Err(OutboxError::Failed { id: id.to_owned(), reason: reason.clone() });
                }
                IntentState::Queued | IntentState::Sent { .. } => {}
            }
            loop {
                match updates.recv().await {
                    Ok(updated) if updated == id => break,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return Err(OutboxError::Stopped),
                }
            }
        }
    }

    /// Asks the sender to re-sign a sent transaction with higher fees now (a queued one is
    /// signed with current fees anyway). Requests made before the sender acts coalesce.
    pub fn resend(&self, id: &str) -> Result<Intent, OutboxError> {
        self.request(id, on_resend)
    }

    /// Replaces a sent transaction with a 0-value transfer to self (same nonce, higher fees), or
    /// drops a queued one before it is signed. If a version of the call is mined first, the
    /// intent still ends mined.
    pub fn cancel(&self, id: &str) -> Result<Intent, OutboxError> {
        self.request(id, on_cancel)
    }

    fn request(
        &self,
        id: &str,
        change: impl FnOnce(&Intent) -> Result<Option<Intent>, OutboxError>,
    ) -> Result<Intent, OutboxError> {
        let intent = self.update(id, change)?;
        self.inner.wake.notify_one();
        Ok(intent)
    }

    /// The one way an intent changes: under the writer lock, `change` sees the stored intent and
    /// returns its successor (or `None` to keep it); the successor is written fsynced, and taken
    /// off the queue once final. Returns the intent as stored afterwards.
    fn update(
        &self,
        id: &str,
        change: impl FnOnce(&Intent) -> Result<Option<Intent>, OutboxError>,
    ) -> Result<Intent, OutboxError> {
        let store = &self.inner.store;
        let guard = self.inner.lock();
        let current = store.get::<Intent>(cf::OUTBOX, id.as_bytes())?.ok_or_else(|| OutboxError::Unknown(id.into()))?;
        let Some(next) = change(&current)? else { return Ok(current) };
        let mut batch = store.batch();
        batch.put(cf::OUTBOX, next.id.as_bytes(), &next);
        if next.state.is_final() {
            batch.delete(cf::OUTBOX_QUEUE, &next.seq.to_be_bytes());
        }
        store.write(batch, Durability::Sync)?;
        drop(guard);
        if next.state.is_final() {
            info!(target: "chain::outbox", id = %next.id, state = next.state.name(), label = %next.call.label, "intent finished");
        }
        let _ = self.inner.updates.send(next.id.clone());
        Ok(next)
    }

    /// Moves a sender-held snapshot on if the stored intent still matches it; `true` if it did.
    fn advance(&self, id: &str, change: impl FnOnce(&Intent) -> Option<Intent>) -> Result<bool, OutboxError> {
        let mut moved = false;
        self.update(id, |current| {
            let next = change(current);
            moved = next.is_some();
            Ok(next)
        })?;
        Ok(moved)
    }

    /// Writes freshly signed intents in one fsynced batch, in nonce order, stopping at the first
    /// that is no longer queued (cancelled meanwhile): its nonce and every later one are dropped
    /// unsent, to be signed again. Returns the written ones.
    fn commit_signed(&self, signed: Vec<Intent>) -> Result<Vec<Intent>, OutboxError> {
        let store = &self.inner.store;
        let guard = self.inner.lock();
        let mut batch = store.batch();
        let mut written = Vec::with_capacity(signed.len());
        for intent in signed {
            let current = store.get::<Intent>(cf::OUTBOX, intent.id.as_bytes())?;
            let Some(next) = current.as_ref().and_then(|current| on_queued_done(current, intent.state.clone())) else {
                break;
            };
            batch.put(cf::OUTBOX, next.id.as_bytes(), &next);
            written.push(next);
        }
        if !batch.is_empty() {
            store.write(batch, Durability::Sync)?;
        }
        drop(guard);
        for intent in &written {
            let _ = self.inner.updates.send(intent.id.clone());
        }
        Ok(written)
    }

    /// The sender task: runs until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut rebroadcast = true;
        let mut backoff = Duration::from_millis(500);
        loop {
            let wait = match self.step(rebroadcast).await {
                Ok(again) => {
                    rebroadcast = false;
                    self.inner.unfunded.store(false, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                    self.inner.connected.store(true, Ordering::Relaxed);
                    if again { Duration::ZERO } else { self.inner.config.poll_interval }
                }
                Err(e @ OutboxError::InsufficientFunds { .. }) => {
                    // Not an outage: the endpoint answered. Check again soon, quietly after the first,
                    // and re-broadcast what was signed meanwhile.
                    rebroadcast = true;
                    if !self.inner.unfunded.swap(true, Ordering::Relaxed) {
                        warn!(target: "chain::outbox", error = %e, "sending paused");
                    }
                    Duration::from_secs(1)
                }
                Err(e) => {
                    if self.inner.connected.swap(false, Ordering::Relaxed) {
                        warn!(target: "chain::outbox", error = %e, "sending paused; retrying with backoff");
                    }
                    // After an outage, re-broadcast everything in flight: the endpoint may have lost it.
                    rebroadcast = true;
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    wait
                }
            };
            // Time is the point: the receipt poll interval, or the back-off after an outage; a new
            // intent wakes the sender at once.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass over every unfinished intent. `Ok(true)`: run again right away (signatures were
    /// dropped because an intent changed while they were made).
    async fn step(&self, rebroadcast: bool) -> Result<bool, OutboxError> {
        let pending = self.pending()?;
        if pending.is_empty() {
            return Ok(false);
        }
        let provider = &self.inner.provider;
        if self.inner.chain_id.load(Ordering::Relaxed) == 0 {
            self.inner.chain_id.store(provider.get_chain_id().await?, Ordering::Relaxed);
        }
        let head = provider.get_block_number().await?;
        let mut highest_local: Option<u64> = None;
        for intent in &pending {
            if let IntentState::Sent { nonce, .. } = intent.state {
                highest_local = Some(highest_local.map_or(nonce, |h| h.max(nonce)));
                self.track(intent.clone(), head, rebroadcast).await?;
            }
        }
        let queued: Vec<&Intent> = pending.iter().filter(|i| i.state == IntentState::Queued).collect();
        if queued.is_empty() {
            return Ok(false);
        }
        let chain_next = provider.get_transaction_count(self.inner.from).block_id(BlockId::pending()).await?;
        let mut next = next_nonce(chain_next, highest_local);
        let fees = provider.estimate_eip1559_fees().await?;
        // Estimates run concurrently per chunk; signing is local; the signed chunk is persisted in
        // one fsynced batch before any of it is broadcast.
        for chunk in queued.chunks(32) {
            let mut fresh = Vec::with_capacity(chunk.len());
            for intent in chunk {
                // The intent may have been cancelled while this pass ran.
                if let Some(intent) = self.get(&intent.id)?.filter(|i| i.state == IntentState::Queued) {
                    fresh.push(intent);
                }
            }
            let estimates = futures::future::join_all(
                fresh.iter().map(|intent| provider.estimate_gas(self.call_request(&intent.call)).into_future()),
            )
            .await;
            let mut signed = Vec::with_capacity(fresh.len());
            let mut outage = None;
            for (intent, estimate) in fresh.into_iter().zip(estimates) {
                let gas = match estimate.map_err(classify) {
                    Ok(gas) => gas,
                    Err(Failure::Revert(reason)) => {
                        let state = IntentState::Reverted { nonce: None, tx: None, block: None, reason };
                        self.advance(&intent.id, |current| on_queued_done(current, state))?;
                        continue;
                    }
                    Err(Failure::Intent(reason)) => {
                        warn!(target: "chain::outbox", id = %intent.id, %reason, "the endpoint refuses this call; it fails alone");
                        let reason = format!("gas estimation refused the call: {reason}");
                        self.advance(&intent.id, |current| on_queued_done(current, IntentState::Failed { reason }))?;
                        continue;
                    }
                    Err(Failure::Unfunded(message)) => {
                        outage = Some(OutboxError::InsufficientFunds { address: self.inner.from, message });
                        break;
                    }
                    Err(Failure::Outage(e)) => {
                        outage = Some(e.into());
                        break;
                    }
                };
                let gas_limit = gas_limit_for(gas);
                let request = self.call_request(&intent.call);
                let (envelope, raw) =
                    self.sign(request, next, gas_limit, fees.max_fee_per_gas, fees.max_priority_fee_per_gas).await?;
                let mut sent = intent;
                sent.state = IntentState::Sent {
                    nonce: next,
                    gas_limit,
                    max_fee: fees.max_fee_per_gas,
                    priority_fee: fees.max_priority_fee_per_gas,
                    txs: vec![*envelope.tx_hash()],
                    raw,
                    sent_at_block: head,
                    sent_at: now(),
                    cancelling: false,
                    included: None,
                };
                next += 1;
                signed.push(sent);
            }
            let count = signed.len();
            // Durable before broadcast: a crash from here on re-broadcasts these exact bytes.
            let written = self.commit_signed(signed)?;
            for intent in &written {
                if let IntentState::Sent { nonce, ref raw, .. } = intent.state {
                    debug!(target: "chain::outbox", id = %intent.id, nonce, "broadcasting");
                    self.broadcast(raw).await?;
                }
            }
            if written.len() < count {
                debug!(target: "chain::outbox", dropped = count - written.len(), "an intent changed while signing; signing the rest again");
                return Ok(true);
            }
            if let Some(e) = outage {
                return Err(e);
            }
        }
        Ok(false)
    }

    fn call_request(&self, call: &Call) -> TransactionRequest {
        TransactionRequest::default()
            .with_from(self.inner.from)
            .with_to(call.to)
            .with_input(call.data.clone())
            .with_value(call.value)
    }

    async fn sign(
        &self,
        request: TransactionRequest,
        nonce: u64,
        gas_limit: u64,
        max_fee: u128,
        priority_fee: u128,
    ) -> Result<(TxEnvelope, Bytes), OutboxError> {
        let request = request
            .with_nonce(nonce)
            .with_chain_id(self.inner.chain_id.load(Ordering::Relaxed))
            .with_gas_limit(gas_limit)
            .with_max_fee_per_gas(max_fee)
            .with_max_priority_fee_per_gas(priority_fee);
        let envelope = request.build(&self.inner.wallet).await.map_err(|e| OutboxError::Sign(e.to_string()))?;
        let raw = Bytes::from(envelope.encoded_2718());
        Ok((envelope, raw))
    }

    /// Sends signed bytes; "already known" and "nonce too low" answers mean it is (or was) there.
    async fn broadcast(&self, raw: &Bytes) -> Result<(), OutboxError> {
        match self.inner.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(()),
            // Kept as sent; re-broadcast with the same bytes once the account is funded.
            Err(e) if e.to_string().contains("insufficient funds") => {
                Err(OutboxError::InsufficientFunds { address: self.inner.from, message: e.to_string() })
            }
            Err(e) if e.as_error_resp().is_some() => {
                debug!(target: "chain::outbox", error = %e, "broadcast answered with an error (kept for tracking)");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The newest version of `txs` that has a receipt.
    async fn find_receipt(&self, txs: &[B256]) -> Result<Option<TransactionReceipt>, OutboxError> {
        for hash in txs.iter().rev() {
            if let Some(receipt) = self.inner.provider.get_transaction_receipt(*hash).await? {
                return Ok(Some(receipt));
            }
        }
        Ok(None)
    }

    /// Follows a sent intent to its outcome: re-checks its block until it is deep enough, sends
    /// it again when a reorg removed it, bumps fees when it is stuck.
    async fn track(&self, intent: Intent, head: u64, rebroadcast: bool) -> Result<(), OutboxError> {
        let IntentState::Sent {
            nonce,
            gas_limit,
            max_fee,
            priority_fee,
            ref txs,
            ref raw,
            sent_at_block,
            sent_at,
            cancelling,
            ref included,
        } = intent.state
        else {
            return Ok(());
        };
        let provider = &self.inner.provider;
        if let Some(receipt) = self.find_receipt(txs).await? {
            let tx = receipt.transaction_hash;
            let block = receipt.block_number.unwrap_or(head);
            let block_hash = receipt.block_hash.unwrap_or_default();
            if head < block + self.inner.config.confirmations {
                let inclusion = Inclusion { tx, block, block_hash };
                if included.as_ref() != Some(&inclusion) {
                    // Seen before in another block: a reorg moved it.
                    let moved = included.is_some();
                    debug!(target: "chain::outbox", id = %intent.id, %tx, block, moved, "included; waiting for confirmations");
                    self.advance(&intent.id, |current| {
                        on_sent(current, txs, |next| {
                            next.reorgs += u32::from(moved);
                            if let IntentState::Sent { included, .. } = &mut next.state {
                                *included = Some(inclusion);
                            }
                        })
                    })?;
                }
                return Ok(());
            }
            // A cancellation is the 0-value transfer to self that replaced the call.
            let is_cancel = cancelling && receipt.to == Some(self.inner.from) && intent.call.to != self.inner.from;
            let state = if is_cancel {
                IntentState::Cancelled { nonce, tx }
            } else if receipt.status() {
                IntentState::Mined { nonce, tx, block, gas_used: receipt.gas_used }
            } else {
                let reason = self.revert_reason(&intent.call, block).await;
                IntentState::Reverted { nonce: Some(nonce), tx: Some(tx), block: Some(block), reason }
            };
            self.advance(&intent.id, |current| on_sent(current, txs, |next| next.state = state))?;
            return Ok(());
        }
        // No receipt for any version.
        let reorged = included.is_some();
        if let Some(gone) = included {
            warn!(target: "chain::outbox", id = %intent.id, tx = %gone.tx, block = gone.block, "a reorg removed the transaction; sending it again");
            let cleared = self.advance(&intent.id, |current| {
                on_sent(current, txs, |next| {
                    next.reorgs += 1;
                    if let IntentState::Sent { included, .. } = &mut next.state {
                        *included = None;
                    }
                })
            })?;
            if !cleared {
                return Ok(());
            }
        }
        let mined_nonce = provider.get_transaction_count(self.inner.from).block_id(BlockId::latest()).await?;
        if mined_nonce > nonce {
            // Our nonce was used, but by none of our versions (e.g. another wallet on the same key).
            // Check once more for a receipt that appeared meanwhile before giving up.
            if self.find_receipt(txs).await?.is_some() {
                return Ok(());
            }
            let was_included = reorged || intent.reorgs > 0;
            self.advance(&intent.id, |current| {
                on_sent(current, txs, |next| {
                    if was_included {
                        // None of its versions can be mined any more: sign it anew with a fresh nonce.
                        next.state = IntentState::Queued;
                    } else {
                        next.state = IntentState::Failed {
                            reason: format!("nonce {nonce} was used by a transaction this node did not send"),
                        };
                    }
                })
            })?;
            if was_included {
                warn!(target: "chain::outbox", id = %intent.id, nonce, "after a reorg its nonce was taken by another transaction; signing it again with a new nonce");
                self.inner.wake.notify_one();
            }
            return Ok(());
        }
        let stuck = now().saturating_sub(sent_at) >= self.inner.config.stuck_after.as_secs() && head > sent_at_block;
        if !(stuck || intent.bump_requested) {
            // Missed a block: if the endpoint dropped it (e.g. sent before the account was funded,
            // an endpoint restart, or a reorg), send the same bytes again.
            let lost = || async {
                let latest = *txs.last().expect("a sent intent has a version");
                Ok::<_, OutboxError>(provider.get_transaction_by_hash(latest).await?.is_none())
            };
            if rebroadcast || reorged || (head > sent_at_block + 1 && lost().await?) {
                self.broadcast(raw).await?;
            }
            return Ok(());
        }
        // Re-sign with the same nonce and higher fees.
        let estimate = provider.estimate_eip1559_fees().await?;
        let (max_fee, priority_fee) =
            bumped_fees(max_fee, priority_fee, estimate.max_fee_per_gas, estimate.max_priority_fee_per_gas);
        let request = if cancelling {
            TransactionRequest::default().with_from(self.inner.from).with_to(self.inner.from).with_value(U256::ZERO)
        } else {
            self.call_request(&intent.call)
        };
        let gas_limit = if cancelling { 21_000 } else { gas_limit };
        let (envelope, new_raw) = self.sign(request, nonce, gas_limit, max_fee, priority_fee).await?;
        let mut versions = txs.clone();
        versions.push(*envelope.tx_hash());
        let signed = IntentState::Sent {
            nonce,
            gas_limit,
            max_fee,
            priority_fee,
            txs: versions,
            raw: new_raw.clone(),
            sent_at_block: head,
            sent_at: now(),
            cancelling,
            included: None,
        };
        // Durable before broadcast; dropped unsent if the intent moved on meanwhile.
        if self.advance(&intent.id, |current| on_bumped(current, &intent, signed))? {
            info!(target: "chain::outbox", id = %intent.id, nonce, max_fee, cancelling, "re-sent with higher fees");
            self.broadcast(&new_raw).await?;
        }
        Ok(())
    }

    /// Replays a reverted call at its block to learn why it reverted.
    async fn revert_reason(&self, call: &Call, block: u64) -> String {
        let request = self.call_request(call);
        match self.inner.provider.call(request).block(BlockId::number(block.saturating_sub(1))).await {
            Ok(_) => "reverted on chain (the call succeeds on the parent block state)".to_owned(),
            Err(e) => match classify(e) {
                Failure::Revert(reason) => reason,
                Failure::Intent(message) | Failure::Unfunded(message) => format!("reverted on chain ({message})"),
                Failure::Outage(e) => format!("reverted on chain (the replay failed: {e})"),
            },
        }
    }
}

/// Fees are u128 in alloy; JSON numbers are not, so they are stored as decimal text.
mod u128_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(value: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&value.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn intent(state: IntentState) -> Intent {
        Intent {
            id: "x".into(),
            seq: 1,
            call: Call {
                to: Address::repeat_byte(1),
                data: Bytes::from_static(b"call"),
                value: U256::ZERO,
                label: "x".into(),
            },
            state,
            created_at: 0,
            bump_requested: false,
            reorgs: 0,
        }
    }

    fn sent(txs: &[u8], cancelling: bool) -> IntentState {
        IntentState::Sent {
            nonce: 7,
            gas_limit: 50_000,
            max_fee: 100,
            priority_fee: 10,
            txs: txs.iter().map(|b| B256::repeat_byte(*b)).collect(),
            raw: Bytes::new(),
            sent_at_block: 1,
            sent_at: 0,
            cancelling,
            included: None,
        }
    }

    #[test]
    fn fee_bumps_add_an_eighth_and_follow_the_market() {
        assert_eq!(bumped_fees(800, 80, 0, 0), (901, 91), "12.5 % and one wei more than before");
        assert_eq!(bumped_fees(800, 80, 2_000, 300), (2_000, 300), "never below the current estimate");
        assert_eq!(bumped_fees(100, 100, 0, 500), (113, 113), "the tip never exceeds the fee cap");
        assert_eq!(bumped_fees(0, 0, 0, 0), (1, 1));
    }

    #[test]
    fn gas_limits_leave_headroom() {
        assert_eq!(gas_limit_for(21_000), 35_200);
        assert_eq!(gas_limit_for(u64::MAX), u64::MAX);
    }

    #[test]
    fn the_next_nonce_is_above_both_the_chain_and_local_intents() {
        assert_eq!(next_nonce(5, None), 5);
        assert_eq!(next_nonce(5, Some(9)), 10, "local intents the chain has not seen yet");
        assert_eq!(next_nonce(12, Some(9)), 12, "the chain is ahead (e.g. another wallet)");
        assert_eq!(next_nonce(0, Some(0)), 1);
    }

    #[test]
    fn error_answers_are_sorted_into_outages_and_refused_calls() {
        assert_eq!(classify_response(-32603, "EVM error InvalidFEOpcode"), ResponseKind::Intent);
        assert_eq!(
            classify_response(-32003, "Out of gas: gas required exceeds allowance: 30000000"),
            ResponseKind::Intent
        );
        assert_eq!(classify_response(3, "execution reverted: NameUnavailable"), ResponseKind::Revert);
        assert_eq!(classify_response(-32000, "insufficient funds for gas * price + value"), ResponseKind::Unfunded);
        assert_eq!(classify_response(-32005, "request limit exceeded"), ResponseKind::Transient);
        assert_eq!(classify_response(429, "Too Many Requests"), ResponseKind::Transient);
        assert_eq!(classify_response(-32000, "header not found"), ResponseKind::Transient);
    }

    #[test]
    fn cancel_drops_a_queued_intent_and_marks_a_sent_one() {
        let dropped = on_cancel(&intent(IntentState::Queued)).unwrap().unwrap();
        assert!(matches!(dropped.state, IntentState::Failed { .. }));
        let marked = on_cancel(&intent(sent(&[1], false))).unwrap().unwrap();
        assert!(matches!(marked.state, IntentState::Sent { cancelling: true, .. }) && marked.bump_requested);
        assert!(on_cancel(&marked).unwrap().is_none(), "a pending cancel is not asked twice");
        let mined = intent(IntentState::Mined { nonce: 7, tx: B256::ZERO, block: 3, gas_used: 1 });
        assert!(matches!(on_cancel(&mined), Err(OutboxError::AlreadyFinal { state: "mined", .. })));
    }

    #[test]
    fn resend_asks_for_a_bump_only_of_a_sent_intent() {
        assert!(on_resend(&intent(IntentState::Queued)).unwrap().is_none());
        assert!(on_resend(&intent(sent(&[1], false))).unwrap().unwrap().bump_requested);
        let failed = intent(IntentState::Failed { reason: "x".into() });
        assert!(matches!(on_resend(&failed), Err(OutboxError::AlreadyFinal { .. })));
    }

    #[test]
    fn a_signature_for_an_intent_cancelled_meanwhile_is_dropped() {
        let cancelled = on_cancel(&intent(IntentState::Queued)).unwrap().unwrap();
        assert!(on_queued_done(&cancelled, sent(&[1], false)).is_none());
        let signed = on_queued_done(&intent(IntentState::Queued), sent(&[1], false)).unwrap();
        assert_eq!(signed.state, sent(&[1], false));
    }

    #[test]
    fn the_sender_moves_only_the_versions_it_looked_at() {
        let current = intent(sent(&[1, 2], false));
        assert!(on_sent(&current, &[B256::repeat_byte(1)], |_| {}).is_none(), "a newer version exists");
        assert!(on_sent(&current, current.state.versions(), |_| {}).is_some());
        assert!(on_sent(&intent(IntentState::Queued), &[], |_| {}).is_none());
    }

    #[test]
    fn a_cancel_arriving_during_a_bump_is_not_lost() {
        let seen = Intent { bump_requested: true, ..intent(sent(&[1], false)) };
        // The operator cancels while the sender signs a plain fee bump.
        let current = on_cancel(&seen).unwrap().unwrap();
        let after = on_bumped(&current, &seen, sent(&[1, 2], false)).unwrap();
        assert!(matches!(after.state, IntentState::Sent { cancelling: true, .. }), "still cancelling");
        assert!(after.bump_requested, "a cancelling version is still to be signed");
        assert_eq!(after.state.versions().len(), 2);
        // The next bump signs the cancellation and fulfils the request.
        let done = on_bumped(&after, &after, sent(&[1, 2, 3], true)).unwrap();
        assert!(!done.bump_requested);
    }

    #[test]
    fn a_resend_arriving_during_a_bump_gets_its_own_version() {
        let seen = Intent { bump_requested: true, ..intent(sent(&[1], false)) };
        let after = on_bumped(&seen, &seen, sent(&[1, 2], false)).unwrap();
        assert!(!after.bump_requested, "the request it answered is done");
        let quiet = intent(sent(&[1], false));
        let current = on_resend(&quiet).unwrap().unwrap();
        let after = on_bumped(&current, &quiet, sent(&[1, 2], false)).unwrap();
        assert!(after.bump_requested, "a resend made after the sender looked is still owed");
    }

    #[test]
    fn the_same_key_means_the_same_transaction_whatever_the_label() {
        let a = intent(IntentState::Queued).call;
        let relabelled = Call { label: "another description".into(), ..a.clone() };
        assert!(a.same_transaction(&relabelled));
        assert!(!a.same_transaction(&Call { data: Bytes::from_static(b"other"), ..a.clone() }));
        assert!(!a.same_transaction(&Call { value: U256::from(1), ..a.clone() }));
    }
}
