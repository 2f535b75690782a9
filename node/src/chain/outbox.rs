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
//! - **Idempotent submission.** The caller names each intent with an idempotency key; submitting
//!   the same key again returns the existing intent.
//! - **Reverts end.** A call that would revert (seen by gas estimation) or did revert (seen in
//!   its receipt) is reported to the caller with its decoded custom error, never retried forever.
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
    rpc::types::TransactionRequest,
    transports::TransportError,
};
use serde::{Deserialize, Serialize};
use std::{
    future::IntoFuture,
    sync::{
        Arc,
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
        /// The latest version replaces the call with a 0-value transfer to self.
        cancelling: bool,
    },
    /// Included and confirmed.
    Mined { nonce: u64, tx: B256, block: u64, gas_used: u64 },
    /// The call reverted: at estimation (no transaction sent) or on chain.
    Reverted { nonce: Option<u64>, tx: Option<B256>, block: Option<u64>, reason: String },
    /// Replaced by a 0-value transfer at the operator's request.
    Cancelled { nonce: u64, tx: B256 },
    /// Cannot go through (e.g. its nonce was used by a transaction the outbox did not send).
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
    seq: AtomicU64,
    wake: Notify,
    updates: broadcast::Sender<String>,
    connected: AtomicBool,
    unfunded: AtomicBool,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn is_revert(e: &TransportError) -> Option<String> {
    let payload = e.as_error_resp()?;
    if let Some(data) = payload.as_revert_data() {
        return Some(describe_revert(&data));
    }
    let message = payload.message.to_lowercase();
    (message.contains("revert")).then(|| payload.message.to_string())
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
    /// returns the existing intent unchanged.
    pub fn submit(&self, id: &str, call: Call) -> Result<Intent, OutboxError> {
        let store = &self.inner.store;
        if let Some(existing) = store.get::<Intent>(cf::OUTBOX, id.as_bytes())? {
            return Ok(existing);
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let intent = Intent {
            id: id.to_owned(),
            seq,
            call,
            state: IntentState::Queued,
            created_at: now(),
            bump_requested: false,
        };
        let mut batch = store.batch();
        batch.put(cf::OUTBOX, id.as_bytes(), &intent);
        batch.put_raw(cf::OUTBOX_QUEUE, &seq.to_be_bytes(), id.as_bytes());
        batch.put_raw(cf::META, SEQ_KEY, &seq.to_be_bytes());
        store.write(batch, Durability::Sync)?;
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

    /// Asks the sender to re-sign a sent transaction with higher fees now.
    pub fn resend(&self, id: &str) -> Result<Intent, OutboxError> {
        self.mark(id, |intent| intent.bump_requested = true)
    }

    /// Replaces a sent transaction with a 0-value transfer to self (same nonce, higher fees), or
    /// drops a queued one before it is signed.
    pub fn cancel(&self, id: &str) -> Result<Intent, OutboxError> {
        self.mark(id, |intent| match &mut intent.state {
            IntentState::Queued => intent.state = IntentState::Failed { reason: "cancelled before sending".into() },
            IntentState::Sent { cancelling, .. } => {
                *cancelling = true;
                intent.bump_requested = true;
            }
            _ => {}
        })
    }

    fn mark(&self, id: &str, change: impl FnOnce(&mut Intent)) -> Result<Intent, OutboxError> {
        let mut intent = self.get(id)?.ok_or_else(|| OutboxError::Unknown(id.to_owned()))?;
        if intent.state.is_final() {
            return Err(OutboxError::AlreadyFinal { id: id.to_owned(), state: intent.state.name() });
        }
        change(&mut intent);
        self.save(&intent)?;
        self.inner.wake.notify_one();
        Ok(intent)
    }

    /// Persists several unfinished intents in one fsynced batch.
    fn save_many<'a>(&self, intents: impl Iterator<Item = &'a Intent>) -> Result<(), OutboxError> {
        let store = &self.inner.store;
        let mut batch = store.batch();
        for intent in intents {
            debug_assert!(!intent.state.is_final());
            batch.put(cf::OUTBOX, intent.id.as_bytes(), intent);
        }
        if !batch.is_empty() {
            store.write(batch, Durability::Sync)?;
        }
        Ok(())
    }

    /// Persists an intent (fsynced), dropping it from the queue once final.
    fn save(&self, intent: &Intent) -> Result<(), OutboxError> {
        let store = &self.inner.store;
        let mut batch = store.batch();
        batch.put(cf::OUTBOX, intent.id.as_bytes(), intent);
        if intent.state.is_final() {
            batch.delete(cf::OUTBOX_QUEUE, &intent.seq.to_be_bytes());
        }
        store.write(batch, Durability::Sync)?;
        if intent.state.is_final() {
            info!(target: "chain::outbox", id = %intent.id, state = intent.state.name(), label = %intent.call.label, "intent finished");
            let _ = self.inner.updates.send(intent.id.clone());
        }
        Ok(())
    }

    /// The sender task: runs until `cancel` fires.
    pub async fn run(self, cancel: CancellationToken) {
        let mut rebroadcast = true;
        let mut backoff = Duration::from_millis(500);
        loop {
            let wait = match self.step(rebroadcast).await {
                Ok(()) => {
                    rebroadcast = false;
                    self.inner.unfunded.store(false, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                    self.inner.connected.store(true, Ordering::Relaxed);
                    self.inner.config.poll_interval
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
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One pass over every unfinished intent.
    async fn step(&self, rebroadcast: bool) -> Result<(), OutboxError> {
        let pending = self.pending()?;
        if pending.is_empty() {
            return Ok(());
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
        let queued: Vec<Intent> = pending.into_iter().filter(|i| i.state == IntentState::Queued).collect();
        if queued.is_empty() {
            return Ok(());
        }
        let chain_next = provider.get_transaction_count(self.inner.from).block_id(BlockId::pending()).await?;
        let mut next = highest_local.map_or(chain_next, |h| chain_next.max(h + 1));
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
                fresh.iter().map(|intent| provider.estimate_gas(self.request(&intent.call)).into_future()),
            )
            .await;
            let mut signed = Vec::with_capacity(fresh.len());
            let mut outage = None;
            for (intent, estimate) in fresh.into_iter().zip(estimates) {
                let gas = match estimate {
                    Ok(gas) => gas,
                    Err(e) => match is_revert(&e) {
                        Some(reason) => {
                            let mut done = intent;
                            done.state = IntentState::Reverted { nonce: None, tx: None, block: None, reason };
                            self.save(&done)?;
                            continue;
                        }
                        None if e.to_string().contains("insufficient funds") => {
                            outage = Some(OutboxError::InsufficientFunds {
                                address: self.inner.from,
                                message: e.to_string(),
                            });
                            break;
                        }
                        None => {
                            outage = Some(e.into());
                            break;
                        }
                    },
                };
                let gas_limit = gas + gas / 5 + 10_000;
                let request = self.request(&intent.call);
                let (envelope, raw) =
                    self.sign(request, next, gas_limit, fees.max_fee_per_gas, fees.max_priority_fee_per_gas).await?;
                let mut sent = intent;
                sent.state = IntentState::Sent {
                    nonce: next,
                    gas_limit,
                    max_fee: fees.max_fee_per_gas,
                    priority_fee: fees.max_priority_fee_per_gas,
                    txs: vec![*envelope.tx_hash()],
                    raw: raw.clone(),
                    sent_at_block: head,
                    sent_at: now(),
                    cancelling: false,
                };
                next += 1;
                signed.push((sent, raw));
            }
            // Durable before broadcast: a crash from here on re-broadcasts these exact bytes.
            self.save_many(signed.iter().map(|(intent, _)| intent))?;
            for (intent, raw) in &signed {
                debug!(target: "chain::outbox", id = %intent.id, tx = ?intent.state, "broadcasting");
                self.broadcast(raw).await?;
            }
            if let Some(e) = outage {
                return Err(e);
            }
        }
        Ok(())
    }

    fn request(&self, call: &Call) -> TransactionRequest {
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

    /// Follows a sent intent to its outcome; bumps fees when it is stuck.
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
        } = intent.state
        else {
            return Ok(());
        };
        let provider = &self.inner.provider;
        for (version, hash) in txs.iter().enumerate().rev() {
            let Some(receipt) = provider.get_transaction_receipt(*hash).await? else { continue };
            let block = receipt.block_number.unwrap_or(head);
            if head < block + self.inner.config.confirmations {
                return Ok(());
            }
            // The newest version is the cancellation when one was requested.
            let is_cancel = cancelling && version == txs.len() - 1 && receipt.to == Some(self.inner.from);
            let mut done = intent.clone();
            done.state = if is_cancel {
                IntentState::Cancelled { nonce, tx: *hash }
            } else if receipt.status() {
                IntentState::Mined { nonce, tx: *hash, block, gas_used: receipt.gas_used }
            } else {
                let reason = self.revert_reason(&intent.call, block).await;
                IntentState::Reverted { nonce: Some(nonce), tx: Some(*hash), block: Some(block), reason }
            };
            return self.save(&done);
        }
        // No receipt for any version.
        let mined_nonce = provider.get_transaction_count(self.inner.from).block_id(BlockId::latest()).await?;
        if mined_nonce > nonce {
            // Our nonce was used, but by none of our versions (e.g. another wallet on the same key).
            // Check once more for a receipt that appeared meanwhile before giving up.
            for hash in txs {
                if provider.get_transaction_receipt(*hash).await?.is_some() {
                    return Ok(());
                }
            }
            let mut done = intent.clone();
            done.state = IntentState::Failed {
                reason: format!("nonce {nonce} was used by a transaction this node did not send"),
            };
            return self.save(&done);
        }
        let stuck = now().saturating_sub(sent_at) >= self.inner.config.stuck_after.as_secs() && head > sent_at_block;
        if !(stuck || intent.bump_requested) {
            // Missed a block: if the endpoint dropped it (e.g. sent before the account was funded,
            // or an endpoint restart), send the same bytes again.
            let lost = || async {
                let latest = *txs.last().expect("a sent intent has a version");
                Ok::<_, OutboxError>(provider.get_transaction_by_hash(latest).await?.is_none())
            };
            if rebroadcast || (head > sent_at_block + 1 && lost().await?) {
                self.broadcast(raw).await?;
            }
            return Ok(());
        }
        // Re-sign with the same nonce and higher fees (≥ 12.5 % more, as nodes require for a replacement).
        let fees = provider.estimate_eip1559_fees().await?;
        let max_fee = (max_fee + max_fee / 8 + 1).max(fees.max_fee_per_gas);
        let priority_fee = (priority_fee + priority_fee / 8 + 1).max(fees.max_priority_fee_per_gas).min(max_fee);
        let request = if cancelling {
            TransactionRequest::default().with_from(self.inner.from).with_to(self.inner.from).with_value(U256::ZERO)
        } else {
            self.request(&intent.call)
        };
        let gas_limit = if cancelling { 21_000 } else { gas_limit };
        let (envelope, new_raw) = self.sign(request, nonce, gas_limit, max_fee, priority_fee).await?;
        let mut bumped = intent.clone();
        let mut versions = txs.clone();
        versions.push(*envelope.tx_hash());
        bumped.bump_requested = false;
        bumped.state = IntentState::Sent {
            nonce,
            gas_limit,
            max_fee,
            priority_fee,
            txs: versions,
            raw: new_raw.clone(),
            sent_at_block: head,
            sent_at: now(),
            cancelling,
        };
        self.save(&bumped)?;
        info!(target: "chain::outbox", id = %intent.id, nonce, max_fee, cancelling, "re-sent with higher fees");
        self.broadcast(&new_raw).await
    }

    /// Replays a reverted call at its block to learn why it reverted.
    async fn revert_reason(&self, call: &Call, block: u64) -> String {
        let request = self.request(call);
        match self.inner.provider.call(request).block(BlockId::number(block.saturating_sub(1))).await {
            Ok(_) => "reverted on chain (the call succeeds on the parent block state)".to_owned(),
            Err(e) => is_revert(&e).unwrap_or_else(|| format!("reverted on chain ({e})")),
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
