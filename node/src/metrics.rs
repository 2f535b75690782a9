//! Prometheus metrics: one registry for the process, served as text at `/metrics`.
//!
//! Counters are updated where things happen (gRPC calls by method and code); gauges are read
//! from the node view at scrape time (outbox depth and outcomes, indexer lag, store sizes, chain
//! connection), so a scrape always shows the current state.

use crate::backend::NodeView;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Counters kept by the process.
#[derive(Default)]
pub struct Registry {
    grpc_calls: Mutex<BTreeMap<(String, String), u64>>,
    /// libp2p's own metrics (bandwidth, connections, gossipsub, Kademlia, identify, ping).
    libp2p: Mutex<prometheus_client::registry::Registry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The registry libp2p records into (under the `libp2p_` prefix).
    pub fn libp2p(&self) -> std::sync::MutexGuard<'_, prometheus_client::registry::Registry> {
        self.libp2p.lock().expect("metrics lock")
    }

    /// Counts one finished gRPC call.
    pub fn grpc_call(&self, method: &str, code: &str) {
        let mut calls = self.grpc_calls.lock().expect("metrics lock");
        *calls.entry((method.to_owned(), code.to_owned())).or_default() += 1;
    }

    /// The text exposition of every metric.
    pub fn render(&self, view: &NodeView) -> String {
        let mut out = String::new();
        let chain = &view.chain;
        gauge(
            &mut out,
            "airbloc_chain_connected",
            "Whether the chain endpoint answered its last probe",
            chain.connected() as u64,
        );
        gauge(&mut out, "airbloc_chain_head", "Latest block reported by the chain endpoint", chain.head());
        if let Some(services) = view.services.get() {
            let progress = services.indexer.progress();
            gauge(&mut out, "airbloc_indexer_block", "Last indexed block", progress.indexed);
            gauge(
                &mut out,
                "airbloc_indexer_lag_blocks",
                "Blocks between the head and the indexer",
                progress.head.saturating_sub(progress.indexed),
            );
            gauge(&mut out, "airbloc_indexer_events_total", "Events indexed since start", progress.events);
            gauge(&mut out, "airbloc_indexer_reorgs_total", "Reorgs rolled back since start", progress.reorgs);
            gauge(
                &mut out,
                "airbloc_outbox_depth",
                "Transactions intended but not final",
                services.outbox.depth() as u64,
            );
            if let Ok(all) = services.outbox.all() {
                let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
                for intent in &all {
                    *by_state.entry(intent.state.name()).or_default() += 1;
                }
                let _ = writeln!(out, "# HELP airbloc_outbox_transactions Outbox transactions by state");
                let _ = writeln!(out, "# TYPE airbloc_outbox_transactions gauge");
                for (state, n) in by_state {
                    let _ = writeln!(out, "airbloc_outbox_transactions{{state=\"{state}\"}} {n}");
                }
            }
        }
        let _ = writeln!(out, "# HELP airbloc_store_bytes Approximate bytes per store table");
        let _ = writeln!(out, "# TYPE airbloc_store_bytes gauge");
        for (table, bytes) in view.store.sizes() {
            let _ = writeln!(out, "airbloc_store_bytes{{table=\"{table}\"}} {bytes}");
        }
        let _ = writeln!(out, "# HELP airbloc_grpc_calls_total gRPC calls by method and status code");
        let _ = writeln!(out, "# TYPE airbloc_grpc_calls_total counter");
        for ((method, code), n) in self.grpc_calls.lock().expect("metrics lock").iter() {
            let _ = writeln!(out, "airbloc_grpc_calls_total{{method=\"{method}\",code=\"{code}\"}} {n}");
        }
        {
            let network = &view.network;
            let stats = network.transfer_stats();
            let load = |v: &std::sync::atomic::AtomicU64| v.load(std::sync::atomic::Ordering::Relaxed);
            gauge(
                &mut out,
                "airbloc_transfer_bytes_served_total",
                "Bundle bytes uploaded to peers",
                load(&stats.bytes_served),
            );
            gauge(
                &mut out,
                "airbloc_transfer_bytes_fetched_total",
                "Bundle bytes downloaded and verified",
                load(&stats.bytes_fetched),
            );
            gauge(&mut out, "airbloc_transfer_uploads_active", "Uploads in progress", load(&stats.uploads_active));
            gauge(
                &mut out,
                "airbloc_transfer_downloads_active",
                "Downloads in progress",
                load(&stats.downloads_active),
            );
            gauge(
                &mut out,
                "airbloc_transfer_chunks_rejected_total",
                "Received chunks that failed their hash",
                load(&stats.chunks_rejected),
            );
            gauge(
                &mut out,
                "airbloc_transfer_uploads_refused_total",
                "Uploads refused as over the limit",
                load(&stats.uploads_refused),
            );
        }
        let mut libp2p = String::new();
        if prometheus_client::encoding::text::encode(&mut libp2p, &self.libp2p()).is_ok() {
            // OpenMetrics ends with `# EOF`; the Prometheus text format has no terminator.
            out.push_str(libp2p.trim_end().trim_end_matches("# EOF"));
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// Serves `GET /metrics` until cancelled.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, view: NodeView, cancel: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(target: "metrics", %addr, "serving /metrics");
    }
    loop {
        let (mut socket, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { debug!(target: "metrics", error = %e, "accept failed"); continue; }
            },
        };
        let registry = registry.clone();
        let view = view.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut request)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&request[..n]);
            let response = if head.starts_with("GET /metrics ") {
                let body = registry.render(&view);
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 22\r\nconnection: close\r\n\r\nonly /metrics is here\n"
                    .to_owned()
            };
            let _ = socket.write_all(response.as_bytes()).await;
            debug!(target: "metrics", %peer, "scraped");
        });
    }
}

/// Binds the metrics address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A tower layer counting gRPC calls by method and status code.
#[derive(Debug, Clone)]
pub struct GrpcMetricsLayer {
    registry: Arc<Registry>,
}

impl GrpcMetricsLayer {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcMetrics { inner, registry: self.registry.clone() }
    }
}

/// See [`GrpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    registry: Arc<Registry>,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let registry = self.registry.clone();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            // Errors are sent trailers-only, with the status in the headers; successes carry
            // grpc-status 0 in the trailers.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(|c| tonic::Code::from_bytes(c.as_bytes()))
                .unwrap_or(tonic::Code::Ok);
            registry.grpc_call(&method, &format!("{code:?}"));
            Ok(response)
        })
    }
}
