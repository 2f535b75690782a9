//! Networking figures, measured as ratios within one run on loopback:
//!
//! - bundle transfer of 1 GiB between two nodes (verified chunk by chunk, written to a file) vs
//!   the libp2p perf protocol over the same connection (TCP + noise + yamux), and vs a plain TCP
//!   copy of the same bytes;
//! - announcement propagation across 12 nodes (one publisher at a time): p50 and p99 from
//!   publish to receipt at every other node;
//! - memory per idle connection and per active transfer (process RSS deltas; both ends of each
//!   connection live in this process).
//!
//! Run: `cargo bench -p airbloc-node --bench p2p` (add `-- --quick` for 256 MiB transfers, or
//! `-- transfer` / `propagation` / `memory` for one part).
#![allow(clippy::unwrap_used)] // a benchmark stops loudly on any failure

use airbloc_node::{
    crypto::chunks::DEFAULT_CHUNK_SIZE,
    keys::NodeKey,
    p2p::{self, Admission, Announced, FetchRequest, FileBundles, NetworkConfig, NetworkEvent, perf, transfer},
};
use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::B256;
use std::{
    io::Write,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    rt.block_on(async {
        if run("transfer") {
            transfer_bench(if quick { 256 << 20 } else { 1 << 30 }).await;
        }
        if run("propagation") {
            propagation_bench(12, if quick { 50 } else { 200 }).await;
        }
        if run("memory") {
            memory_bench().await;
        }
    });
}

struct Node {
    key: NodeKey,
    network: p2p::Network,
    bundles: Arc<FileBundles>,
}

impl Node {
    fn start(config: NetworkConfig, cancel: &CancellationToken) -> Self {
        let key = NodeKey::random();
        let mut registry = prometheus_client::registry::Registry::default();
        let (network, builder) = p2p::build(&config, key.libp2p_keypair(), Admission::Open, &mut registry).unwrap();
        let bundles = Arc::new(FileBundles::default());
        let handlers = p2p::Handlers { requests: None, bundles: Some(bundles.clone()) };
        tokio::spawn(builder.start(handlers).run(cancel.clone()));
        Self { key, network, bundles }
    }

    async fn addr(&self) -> libp2p::Multiaddr {
        let addr = self.network.listen_addrs().await.into_iter().next().expect("a listen address");
        addr.with(libp2p::multiaddr::Protocol::P2p(self.key.peer_id()))
    }

    async fn wait_for_peers(&self, n: usize) {
        while self.network.peers().await.len() < n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn gbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

async fn transfer_bench(size: usize) {
    println!("== transfer: {} MiB between two nodes on loopback (best of 5) ==", size >> 20);
    let cancel = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let server = Node::start(NetworkConfig::default(), &cancel);
    let client = Node::start(NetworkConfig::default(), &cancel);
    client.network.dial(server.addr().await).await.unwrap();
    client.wait_for_peers(1).await;
    let source = dir.path().join("bundle.bin");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for _ in 0..size >> 20 {
            file.write_all(&block).unwrap();
        }
    }
    let bundles = &server.bundles;
    let bundle = B256::repeat_byte(1);
    let chunk_size = std::env::var("CHUNK").ok().and_then(|c| c.parse().ok()).unwrap_or(DEFAULT_CHUNK_SIZE);
    let manifest = bundles.add(bundle, &source, chunk_size).unwrap();
    let server_peer = server.key.peer_id();

    // Plain TCP copy of the same number of bytes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let buf = vec![0u8; 1 << 20];
                let mut left = size;
                while left > 0 {
                    let n = left.min(buf.len());
                    socket.write_all(&buf[..n]).await.unwrap();
                    left -= n;
                }
            });
        }
    });

    // Downloads land on tmpfs for the protocol figure (perf touches no disk either), and on the
    // data disk for the end-to-end figure.
    let shm = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let (mut best_perf, mut best_fetch, mut best_tcp, mut best_disk) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    for round in 0..5 {
        let t = Instant::now();
        let got = perf::run(&client.network, server_peer, 0, size as u64).await.unwrap();
        assert_eq!(got, size as u64);
        best_perf = best_perf.min(t.elapsed().as_secs_f64());

        for (dest_dir, best) in [(shm.path(), &mut best_fetch), (dir.path(), &mut best_disk)] {
            let dest = dest_dir.join(format!("download-{round}.bin"));
            let request =
                FetchRequest { bundle, manifest: manifest.clone(), peers: vec![server_peer], dest: dest.clone() };
            let t = Instant::now();
            let report = transfer::fetch(&client.network, &request, |_| {}, &CancellationToken::new()).await.unwrap();
            assert_eq!(report.fetched_bytes, size as u64);
            *best = best.min(t.elapsed().as_secs_f64());
            std::fs::remove_file(dest).unwrap();
        }

        let t = Instant::now();
        let mut socket = tokio::net::TcpStream::connect(tcp_addr).await.unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut received = 0;
        while received < size {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0);
            received += n;
        }
        best_tcp = best_tcp.min(t.elapsed().as_secs_f64());
    }
    let bytes = size as u64;
    println!("perf protocol (/perf/1.0.0, TCP+noise+yamux): {:.2} GB/s", gbps(bytes, best_perf));
    println!(
        "bundle transfer (verified, to tmpfs):          {:.2} GB/s = {:.0} % of perf",
        gbps(bytes, best_fetch),
        100.0 * best_perf / best_fetch
    );
    println!(
        "bundle transfer (verified, to disk + fsync):   {:.2} GB/s = {:.0} % of perf",
        gbps(bytes, best_disk),
        100.0 * best_perf / best_disk
    );
    println!(
        "plain TCP copy:                                {:.2} GB/s (transfer = {:.0} % of it)",
        gbps(bytes, best_tcp),
        100.0 * best_tcp / best_fetch
    );
    cancel.cancel();
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

async fn propagation_bench(nodes: usize, messages: usize) {
    println!("== propagation: {nodes} nodes, {messages} announcements, one bootnode for discovery ==");
    let cancel = CancellationToken::new();
    let boot = Node::start(NetworkConfig { gossip: false, ..Default::default() }, &cancel);
    let boot_addr = boot.addr().await;
    let heartbeat = Duration::from_millis(200);
    let all: Vec<Node> = (0..nodes)
        .map(|_| {
            Node::start(NetworkConfig { bootnodes: vec![boot_addr.clone()], heartbeat, ..Default::default() }, &cancel)
        })
        .collect();
    for node in &all {
        node.wait_for_peers(6).await;
    }
    // Let the meshes form.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut listeners = Vec::new();
    for node in &all {
        let mut events = node.network.events();
        let latencies = latencies.clone();
        listeners.push(tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                if let NetworkEvent::Announcement(Announced::Node { announcement, .. }) = event {
                    let sent: u64 = announcement.addrs[0].parse().unwrap();
                    latencies.lock().unwrap().push(now_micros().saturating_sub(sent));
                }
            }
        }));
    }
    for i in 0..messages {
        let announcement = wire::Announcement {
            body: Some(wire::announcement::Body::Node(wire::NodeAnnouncement {
                roles: 1,
                addrs: vec![now_micros().to_string(), i.to_string()],
                issued_at: SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs(),
            })),
        };
        all[i % nodes].network.announce(&announcement).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut samples = latencies.lock().unwrap().clone();
    samples.sort_unstable();
    let expected = messages * (nodes - 1);
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)] as f64 / 1000.0;
    println!(
        "delivered {} of {} (message, receiver) pairs; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        expected,
        pct(0.5),
        pct(0.99),
        *samples.last().unwrap() as f64 / 1000.0
    );
    cancel.cancel();
    for listener in listeners {
        listener.abort();
    }
}

async fn memory_bench() {
    const CLIENTS: usize = 50;
    const TRANSFERS: usize = 8;
    println!("== memory: {CLIENTS} idle connections, then {TRANSFERS} concurrent transfers ==");
    let cancel = CancellationToken::new();
    let server = Node::start(NetworkConfig::default(), &cancel);
    let addr = server.addr().await;
    let clients: Vec<Node> =
        (0..CLIENTS).map(|_| Node::start(NetworkConfig { gossip: false, ..Default::default() }, &cancel)).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes();
    for client in &clients {
        client.network.dial(addr.clone()).await.unwrap();
    }
    server.wait_for_peers(CLIENTS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_bytes();
    println!(
        "idle connection (both ends, after identify/kad/gossip handshakes): {:.0} KiB each",
        after.saturating_sub(before) as f64 / CLIENTS as f64 / 1024.0
    );

    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("bundle.bin");
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let block = vec![0x33u8; 1 << 20];
        for _ in 0..256 {
            file.write_all(&block).unwrap();
        }
    }
    let manifest = server.bundles.add(B256::ZERO, &source, DEFAULT_CHUNK_SIZE).unwrap();
    let idle = rss_bytes();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss_bytes(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let server_peer = server.key.peer_id();
    let downloads: Vec<_> = clients[..TRANSFERS]
        .iter()
        .enumerate()
        .map(|(i, client)| {
            let network = client.network.clone();
            let request = FetchRequest {
                bundle: B256::ZERO,
                manifest: manifest.clone(),
                peers: vec![server_peer],
                dest: dir.path().join(format!("d{i}")),
            };
            tokio::spawn(async move {
                transfer::fetch(&network, &request, |_| {}, &CancellationToken::new()).await.unwrap()
            })
        })
        .collect();
    for download in downloads {
        download.await.unwrap();
    }
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "active transfer (both ends, 256 MiB each, {TRANSFERS} at once): peak +{:.1} MiB each (file pages excluded: RSS counts anonymous + mapped)",
        peak.saturating_sub(idle) as f64 / TRANSFERS as f64 / (1 << 20) as f64
    );
    cancel.cancel();
}
