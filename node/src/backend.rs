//! The parts the node's services are built with, in the order the daemon builds them:
//! store → chain state (the index view) → network → chain services → roles.
//!
//! Nothing here is looked up late: a part exists before whatever uses it is constructed. The one
//! part that can legitimately come later — the chain services behind a WebSocket endpoint that is
//! not reachable yet — arrives through one typed notification, [`Ready`].
//!
//! - [`Backend`] — what a role is built with: the store, the chain services, the network.
//! - [`NodeView`] — what the node-wide observers (Status, Admin, `/metrics`) read.
//! - [`Ready`] / [`Publish`] — "this part is up now", as a watch channel.

use crate::{
    chain::{ChainServices, ChainStatus},
    p2p::Network,
    store::Store,
};
use std::sync::Arc;
use tokio::sync::watch;

/// What a role is built with. Cheap to clone; every field is shared.
#[derive(Debug, Clone)]
pub struct Backend {
    pub store: Arc<Store>,
    pub services: ChainServices,
    pub network: Network,
}

impl Backend {
    pub fn new(store: Arc<Store>, services: ChainServices, network: Network) -> Self {
        Self { store, services, network }
    }
}

/// What the node-wide services observe: everything is there from the start except the chain
/// services, which are [`Ready`] once the endpoint is reached.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub store: Arc<Store>,
    pub chain: ChainStatus,
    pub network: Network,
    pub services: Ready<ChainServices>,
}

/// A part that is up now or will be later; receivers see it the moment it is published.
#[derive(Debug, Clone)]
pub struct Ready<T>(watch::Receiver<Option<T>>);

/// The sending side of [`Ready`]; publishing consumes it (a part comes up once).
#[derive(Debug)]
pub struct Publish<T>(watch::Sender<Option<T>>);

/// A new, not yet published part.
pub fn ready<T>() -> (Publish<T>, Ready<T>) {
    let (tx, rx) = watch::channel(None);
    (Publish(tx), Ready(rx))
}

impl<T> Publish<T> {
    /// Makes the part available to every [`Ready`] (also those cloned before).
    pub fn publish(self, value: T) {
        self.0.send_replace(Some(value));
    }
}

impl<T: Clone> Ready<T> {
    /// A part that is up already.
    pub fn now(value: T) -> Self {
        let (_, rx) = watch::channel(Some(value));
        Self(rx)
    }

    /// The part, if it is up.
    pub fn get(&self) -> Option<T> {
        self.0.borrow().clone()
    }

    /// Waits until the part is up; `None` if it never will be (its [`Publish`] was dropped).
    pub async fn wait(&self) -> Option<T> {
        let mut rx = self.0.clone();
        rx.wait_for(Option::is_some).await.ok().and_then(|v| v.clone())
    }
}
