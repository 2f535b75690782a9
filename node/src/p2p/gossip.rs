//! Gossip: gossipsub configuration, and the announcements nodes publish and check.
//!
//! Every message is signed by its author's libp2p key (strict mode), identified by a hash of its
//! content (a relayed copy is the same message), limited to [`MAX_GOSSIP`] bytes, and only on the
//! whitelisted topics. Nothing is forwarded before the application validated it:
//!
//! - a bundle announcement must carry an EIP-712 signature by the provider it names, and that
//!   provider must have registered exactly that bundle (app, data type, record count, size) on
//!   DataRegistry, as indexed — a receiver whose index has not reached the announced block
//!   waits for it on the index progress channel (up to [`INDEX_WAIT`]) and ignores the message
//!   if it still cannot check it;
//! - a node announcement must come from the node itself;
//! - announcements from the future or older than [`MAX_AGE`] are stale and dropped.
//!
//! Forged or contradicting messages are *rejected* (the forwarding peer's score falls); stale and
//! unverifiable ones are *ignored* (dropped, not forwarded, not penalised).

use super::admission::Admission;
use crate::{
    crypto::eip712::{self, BundleAnnouncement},
    keys::NodeKey,
};
use airbloc_proto::p2p::v1 as wire;
use alloy::{
    primitives::{Address, B256, Signature, U256},
    signers::SignerSync,
    sol_types::SolStruct,
};
use libp2p::{PeerId, gossipsub, identity::Keypair};
use prost::Message as _;
use std::{
    collections::HashMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tokio::sync::watch;

/// Gossip topic of bundle announcements.
pub const TOPIC_BUNDLES: &str = "/airbloc/bundles/1";
/// Gossip topic of node announcements.
pub const TOPIC_NODES: &str = "/airbloc/nodes/1";
/// Largest gossip message.
pub const MAX_GOSSIP: usize = 64 * 1024;
/// Oldest announcement accepted.
pub const MAX_AGE: Duration = Duration::from_secs(3600);
/// Allowed clock skew into the future.
pub const MAX_SKEW: Duration = Duration::from_secs(300);
/// How long a receiver waits for its indexer to reach an announced registration.
pub const INDEX_WAIT: Duration = Duration::from_secs(20);
/// Application score given to peers without admission: below the graylist threshold, so their
/// gossip is ignored and nothing is sent to them.
pub const UNADMITTED_SCORE: f64 = -10_000.0;

pub(crate) type Gossipsub = gossipsub::Behaviour<gossipsub::IdentityTransform, gossipsub::WhitelistSubscriptionFilter>;

/// The topics a node subscribes to and accepts.
pub fn topics() -> [gossipsub::IdentTopic; 2] {
    [gossipsub::IdentTopic::new(TOPIC_BUNDLES), gossipsub::IdentTopic::new(TOPIC_NODES)]
}

/// Builds gossipsub with the node's policy.
pub(crate) fn behaviour(key: &Keypair, heartbeat: Duration) -> Result<Gossipsub, String> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::Strict)
        .validate_messages()
        .max_transmit_size(MAX_GOSSIP)
        .heartbeat_interval(heartbeat)
        .duplicate_cache_time(MAX_AGE)
        .message_id_fn(|message: &gossipsub::Message| {
            // Content-hash ids: the same announcement relayed by several peers is one message.
            let mut preimage = message.topic.as_str().as_bytes().to_vec();
            preimage.extend_from_slice(&message.data);
            gossipsub::MessageId::from(alloy::primitives::keccak256(preimage).to_vec())
        })
        .build()
        .map_err(|e| e.to_string())?;
    let whitelist = gossipsub::WhitelistSubscriptionFilter(topics().iter().map(|t| t.hash()).collect());
    let mut behaviour = gossipsub::Behaviour::new_with_subscription_filter(
        gossipsub::MessageAuthenticity::Signed(key.clone()),
        config,
        whitelist,
    )
    .map_err(str::to_owned)?;
    behaviour.with_peer_score(score_params(), score_thresholds())?;
    Ok(behaviour)
}

fn score_params() -> gossipsub::PeerScoreParams {
    let topic = gossipsub::TopicScoreParams {
        // Quiet topics are normal here: no penalty for delivering few messages.
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        // Forged announcements cost dearly.
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    };
    gossipsub::PeerScoreParams {
        topics: topics().iter().map(|t| (t.hash(), topic.clone())).collect::<HashMap<_, _>>(),
        app_specific_weight: 1.0,
        // Nodes of a private network often share hosts; admission is decided by the chain.
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    }
}

fn score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

/// What a node wants to say about a bundle it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleStatement {
    pub bundle_id: B256,
    pub app_id: B256,
    pub data_type_id: B256,
    pub record_count: u64,
    pub size: u64,
    pub price_hint: U256,
    pub price_token: Address,
    pub registered_block: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn typed(ann: &wire::BundleAnnouncement) -> Result<BundleAnnouncement, Verdict> {
    let b256 = |bytes: &[u8], what: &str| {
        B256::try_from(bytes).map_err(|_| Verdict::Reject(format!("{what} must be 32 bytes")))
    };
    let address = |bytes: &[u8], what: &str| {
        Address::try_from(bytes).map_err(|_| Verdict::Reject(format!("{what} must be 20 bytes")))
    };
    Ok(BundleAnnouncement {
        bundle: b256(&ann.bundle_id, "bundle_id")?,
        app: b256(&ann.app_id, "app_id")?,
        dataType: b256(&ann.data_type_id, "data_type_id")?,
        provider: address(&ann.provider, "provider")?,
        recordCount: ann.record_count,
        size: ann.size,
        priceHint: if ann.price_hint.len() <= 32 {
            U256::from_be_slice(&ann.price_hint)
        } else {
            return Err(Verdict::Reject("price_hint must be at most 32 bytes".into()));
        },
        priceToken: if ann.price_token.is_empty() { Address::ZERO } else { address(&ann.price_token, "price_token")? },
        issuedAt: ann.issued_at,
    })
}

/// Signs a bundle announcement with the provider's node key.
pub fn sign_bundle_announcement(key: &NodeKey, chain_id: u64, statement: &BundleStatement) -> wire::Announcement {
    let typed = BundleAnnouncement {
        bundle: statement.bundle_id,
        app: statement.app_id,
        dataType: statement.data_type_id,
        provider: key.address(),
        recordCount: statement.record_count,
        size: statement.size,
        priceHint: statement.price_hint,
        priceToken: statement.price_token,
        issuedAt: now_secs(),
    };
    let hash = typed.eip712_signing_hash(&eip712::node_domain(chain_id));
    let signature = key.signer().sign_hash_sync(&hash).expect("secp256k1 signing does not fail");
    wire::Announcement {
        body: Some(wire::announcement::Body::Bundle(wire::BundleAnnouncement {
            bundle_id: typed.bundle.to_vec(),
            app_id: typed.app.to_vec(),
            data_type_id: typed.dataType.to_vec(),
            provider: typed.provider.to_vec(),
            record_count: typed.recordCount,
            size: typed.size,
            price_hint: typed.priceHint.to_be_bytes::<32>().to_vec(),
            price_token: typed.priceToken.to_vec(),
            issued_at: typed.issuedAt,
            registered_block: statement.registered_block,
            signature: signature.as_bytes().to_vec(),
        })),
    }
}

/// The decision about one gossip message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid: deliver to the node and forward.
    Accept,
    /// Drop without penalty (stale, or not verifiable yet).
    Ignore(String),
    /// Drop and penalise the forwarding peer (forged, malformed, contradicting the chain).
    Reject(String),
}

impl Verdict {
    pub(crate) fn acceptance(&self) -> gossipsub::MessageAcceptance {
        match self {
            Self::Accept => gossipsub::MessageAcceptance::Accept,
            Self::Ignore(_) => gossipsub::MessageAcceptance::Ignore,
            Self::Reject(_) => gossipsub::MessageAcceptance::Reject,
        }
    }
}

/// A validated announcement, as delivered to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Announced {
    Bundle { announcement: wire::BundleAnnouncement, provider: Address },
    Node { peer: PeerId, announcement: wire::NodeAnnouncement },
}

/// Checks announcements against signatures and the indexed chain.
#[derive(Debug, Clone)]
pub struct Validator {
    pub admission: Admission,
    pub chain_id: u64,
    /// The last indexed block, when an indexer advances the chain state; without it the state
    /// is read as it is.
    pub indexed: Option<watch::Receiver<u64>>,
}

impl Validator {
    /// Decides about a message published by `author` on `topic`.
    pub async fn validate(&self, author: PeerId, topic: &str, data: &[u8]) -> (Verdict, Option<Announced>) {
        if !self.admission.admits(&author) {
            return (Verdict::Reject("author has no active NodeRegistry entry".into()), None);
        }
        let announcement = match wire::Announcement::decode(data) {
            Ok(a) => a,
            Err(e) => return (Verdict::Reject(format!("not an Announcement: {e}")), None),
        };
        match (topic, announcement.body) {
            (TOPIC_BUNDLES, Some(wire::announcement::Body::Bundle(bundle))) => match self.bundle(&bundle).await {
                Ok(provider) => (Verdict::Accept, Some(Announced::Bundle { announcement: bundle, provider })),
                Err(verdict) => (verdict, None),
            },
            (TOPIC_NODES, Some(wire::announcement::Body::Node(node))) => match fresh(node.issued_at) {
                Ok(()) => (Verdict::Accept, Some(Announced::Node { peer: author, announcement: node })),
                Err(verdict) => (verdict, None),
            },
            _ => (Verdict::Reject(format!("wrong announcement kind for topic {topic}")), None),
        }
    }

    async fn bundle(&self, ann: &wire::BundleAnnouncement) -> Result<Address, Verdict> {
        let typed = typed(ann)?;
        fresh(typed.issuedAt)?;
        let signature = Signature::try_from(ann.signature.as_slice())
            .map_err(|e| Verdict::Reject(format!("bad signature: {e}")))?;
        let hash = typed.eip712_signing_hash(&eip712::node_domain(self.chain_id));
        let signer = signature
            .recover_address_from_prehash(&hash)
            .map_err(|e| Verdict::Reject(format!("bad signature: {e}")))?;
        if signer != typed.provider {
            return Err(Verdict::Reject(format!("signed by {signer}, not by the provider {}", typed.provider)));
        }
        let Some(state) = self.admission.chain_state() else {
            return Ok(signer);
        };
        let behind = self.indexed.as_ref().filter(|indexed| *indexed.borrow() < ann.registered_block);
        if let Some(indexed) = behind {
            // The provider saw its registration confirmed; give our indexer time to see it too.
            let mut indexed = indexed.clone();
            let reached = tokio::time::timeout(INDEX_WAIT, indexed.wait_for(|b| *b >= ann.registered_block))
                .await
                .is_ok_and(|r| r.is_ok());
            if !reached {
                return Err(Verdict::Ignore(format!(
                    "our index has not reached block {}; cannot check the bundle yet",
                    ann.registered_block
                )));
            }
        }
        let row = state
            .bundle(typed.bundle)
            .map_err(|e| Verdict::Ignore(format!("store: {e}")))?
            .ok_or_else(|| Verdict::Reject(format!("bundle {} is not registered on DataRegistry", typed.bundle)))?;
        let matches = row.active
            && row.provider == typed.provider
            && row.app == typed.app
            && row.data_type == typed.dataType
            && row.record_count == typed.recordCount
            && row.size == typed.size;
        if !matches {
            return Err(Verdict::Reject(format!("announcement of {} contradicts DataRegistry", typed.bundle)));
        }
        Ok(signer)
    }
}

fn fresh(issued_at: u64) -> Result<(), Verdict> {
    let now = now_secs();
    if issued_at > now + MAX_SKEW.as_secs() {
        return Err(Verdict::Ignore(format!("issued {}s in the future", issued_at - now)));
    }
    if issued_at + MAX_AGE.as_secs() < now {
        return Err(Verdict::Ignore(format!("stale: issued {}s ago", now - issued_at)));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn freshness_allows_skew_and_drops_stale_or_future_announcements() {
        let now = now_secs();
        assert_eq!(fresh(now), Ok(()));
        assert_eq!(fresh(now + MAX_SKEW.as_secs() - 5), Ok(()));
        assert!(matches!(fresh(now + MAX_SKEW.as_secs() + 60), Err(Verdict::Ignore(m)) if m.contains("future")));
        assert!(matches!(fresh(now - MAX_AGE.as_secs() - 60), Err(Verdict::Ignore(m)) if m.contains("stale")));
    }

    #[test]
    fn a_signed_announcement_reads_back_as_the_statement_it_signs() {
        let key = NodeKey::random();
        let statement = BundleStatement {
            bundle_id: B256::repeat_byte(1),
            app_id: B256::repeat_byte(2),
            data_type_id: B256::repeat_byte(3),
            record_count: 10,
            size: 4096,
            price_hint: U256::from(1000),
            price_token: Address::ZERO,
            registered_block: 7,
        };
        let Some(wire::announcement::Body::Bundle(ann)) = sign_bundle_announcement(&key, 31337, &statement).body else {
            panic!("a bundle announcement");
        };
        let typed = typed(&ann).unwrap();
        assert_eq!((typed.bundle, typed.provider, typed.size), (statement.bundle_id, key.address(), 4096));
        let signature = Signature::try_from(ann.signature.as_slice()).unwrap();
        let hash = typed.eip712_signing_hash(&eip712::node_domain(31337));
        assert_eq!(signature.recover_address_from_prehash(&hash).unwrap(), key.address());
    }

    #[test]
    fn malformed_fields_are_rejected_by_name() {
        let ann = wire::BundleAnnouncement { bundle_id: vec![1; 31], ..Default::default() };
        assert!(matches!(typed(&ann), Err(Verdict::Reject(m)) if m.contains("bundle_id")));
        let ann = wire::BundleAnnouncement {
            bundle_id: vec![1; 32],
            app_id: vec![2; 32],
            data_type_id: vec![3; 32],
            provider: vec![4; 20],
            price_hint: vec![0; 33],
            ..Default::default()
        };
        assert!(matches!(typed(&ann), Err(Verdict::Reject(m)) if m.contains("price_hint")));
    }
}
