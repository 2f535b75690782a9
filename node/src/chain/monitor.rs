//! Chain endpoint health.
//!
//! [`ChainMonitor`] keeps asking the configured JSON-RPC endpoint for its chain id and head,
//! records whether it answers, and backs off while it does not, so a chain outage shows in
//! `Node.Status` and never stops the rest of the node.

use alloy::providers::{Provider, ProviderBuilder};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How the chain endpoint looked at its last probe. Cheap to clone and read.
#[derive(Debug, Clone, Default)]
pub struct ChainStatus(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    chain_id: AtomicU64,
    head: AtomicU64,
    connected: AtomicBool,
}

impl ChainStatus {
    /// The chain id, once the endpoint has answered.
    pub fn chain_id(&self) -> Option<u64> {
        match self.0.chain_id.load(Ordering::Relaxed) {
            0 => None,
            id => Some(id),
        }
    }

    /// The last head block number seen.
    pub fn head(&self) -> u64 {
        self.0.head.load(Ordering::Relaxed)
    }

    /// Whether the endpoint answered the last probe.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }
}

/// Probes the chain endpoint in the background.
#[derive(Debug)]
pub struct ChainMonitor {
    rpc_url: String,
    /// Chain id the deployment file names; a different endpoint chain is reported loudly.
    expected_chain_id: Option<u64>,
    status: ChainStatus,
    interval: Duration,
}

impl ChainMonitor {
    pub fn new(rpc_url: String, expected_chain_id: Option<u64>) -> Self {
        Self { rpc_url, expected_chain_id, status: ChainStatus::default(), interval: Duration::from_secs(2) }
    }

    /// The shared status this monitor updates.
    pub fn status(&self) -> ChainStatus {
        self.status.clone()
    }

    /// Probes until `cancel` fires. Failures back off exponentially up to 30 s.
    pub async fn run(self, cancel: CancellationToken) {
        let mut backoff = self.interval;
        loop {
            let wait = match tokio::time::timeout(Duration::from_secs(5), self.probe()).await {
                Ok(Ok((chain_id, head))) => {
                    if !self.status.connected() {
                        info!(target: "chain", rpc = %self.rpc_url, chain_id, head, "chain endpoint reachable");
                        if let Some(expected) = self.expected_chain_id.filter(|e| *e != chain_id) {
                            error!(target: "chain", rpc = %self.rpc_url, chain_id, expected,
                                "the endpoint serves another chain than the deployment file names — check chain.rpc_url and chain.deployment");
                        }
                    }
                    self.status.0.chain_id.store(chain_id, Ordering::Relaxed);
                    self.status.0.head.store(head, Ordering::Relaxed);
                    self.status.0.connected.store(true, Ordering::Relaxed);
                    backoff = self.interval;
                    self.interval
                }
                failure => {
                    let reason = match failure {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out after 5 s".to_owned(),
                    };
                    if self.status.0.connected.swap(false, Ordering::Relaxed) || backoff == self.interval {
                        warn!(target: "chain", rpc = %self.rpc_url, %reason, "chain endpoint unreachable; retrying with backoff");
                    }
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    wait
                }
            };
            // Time is the point: the probe interval, or the back-off after a failed probe.
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn probe(&self) -> Result<(u64, u64), Box<dyn std::error::Error + Send + Sync>> {
        let provider = ProviderBuilder::new().connect(&self.rpc_url).await?;
        let chain_id = provider.get_chain_id().await?;
        let head = provider.get_block_number().await?;
        Ok((chain_id, head))
    }
}
