//! libp2p networking between real nodes on loopback sockets, with admission decided by the
//! NodeRegistry as indexed from a real anvil.

use airbloc_node::{
    chain::{
        ChainServices, Deployment,
        contracts::{AppRegistry, DataRegistry, DataTypeRegistry, NodeRegistry, roles},
        indexer::{Indexer, IndexerConfig, IndexerHandle},
        outbox::{Outbox, OutboxConfig},
        state::ChainState,
    },
    crypto::chunks::ChunkManifest,
    daemon::connect,
    keys::NodeKey,
    mined,
    p2p::{
        self, Admission, Announced, BundleStatement, FetchRequest, FileBundles, NetworkConfig, NetworkEvent,
        RequestError, codec, gossip, transfer,
    },
    store::Store,
    test_utils::{deploy_local, dev_key, signing_provider, spawn_anvil},
};
use airbloc_proto::p2p::v1 as wire;
use alloy::{
    network::EthereumWallet,
    node_bindings::AnvilInstance,
    primitives::{Address, B256, U256, keccak256},
};
use futures::{AsyncReadExt, AsyncWriteExt};
use std::{
    io::Write,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

pub(crate) struct TestNode {
    pub(crate) key: NodeKey,
    pub(crate) network: p2p::Network,
    pub(crate) services: Option<ChainServices>,
    /// What the node serves over the transfer protocol; files can be added while it runs.
    pub(crate) bundles: Arc<FileBundles>,
    _dir: tempfile::TempDir,
}

impl TestNode {
    pub(crate) fn peer(&self) -> libp2p::PeerId {
        self.key.peer_id()
    }

    async fn addr(&self) -> libp2p::Multiaddr {
        let addrs = tokio::time::timeout(Duration::from_secs(4), self.network.listen_addrs()).await;
        let addr = addrs.expect("node listens in time").into_iter().next().expect("a listen address");
        addr.with(libp2p::multiaddr::Protocol::P2p(self.peer()))
    }

    /// Waits for `n` connected peers, woken by connection events.
    async fn wait_for_peers(&self, n: usize, within: Duration) {
        let mut events = self.network.events();
        let wait = async {
            loop {
                let peers = self.network.peers().await.len();
                if peers >= n {
                    return;
                }
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = events.recv().await {
                    panic!("the network stopped");
                }
            }
        };
        if tokio::time::timeout(within, wait).await.is_err() {
            panic!("only {} of {n} peers connected", self.network.peers().await.len());
        }
    }
}

/// A node with an outbox and an indexer over the deployment, admitting peers by the chain.
pub(crate) async fn chain_node(
    anvil: &AnvilInstance,
    deployment: &Deployment,
    key: NodeKey,
    bootnodes: Vec<libp2p::Multiaddr>,
    cancel: &CancellationToken,
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let provider = connect(&anvil.endpoint()).await.unwrap();
    let state = ChainState::new(store.clone());
    let outbox = Outbox::new(
        store.clone(),
        provider.clone(),
        EthereumWallet::from(key.signer().clone()),
        OutboxConfig::default(),
    )
    .unwrap();
    let (indexer, handle) = Indexer::over(
        &state,
        provider,
        deployment,
        IndexerConfig { poll_interval: Duration::from_millis(100), ..Default::default() },
    )
    .unwrap();
    let indexed = index_progress(&handle, cancel);
    tokio::spawn(indexer.run(cancel.clone()));
    let services = ChainServices {
        deployment: Arc::new(deployment.clone()),
        outbox,
        indexer: handle,
        state: state.clone(),
        shutdown: cancel.clone(),
    };
    let config = NetworkConfig {
        bootnodes,
        chain_id: deployment.chain_id,
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let (network, bundles) = start(&key, &config, Admission::Chain(state), Some(indexed), cancel);
    TestNode { key, network, services: Some(services), bundles, _dir: dir }
}

/// The indexer's last indexed block as the network follows it.
fn index_progress(indexer: &IndexerHandle, cancel: &CancellationToken) -> tokio::sync::watch::Receiver<u64> {
    let mut progress = indexer.subscribe();
    let (tx, rx) = tokio::sync::watch::channel(progress.borrow().indexed);
    let cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            let block = progress.borrow_and_update().indexed;
            tx.send_if_modified(|at| std::mem::replace(at, block) != block);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = progress.changed() => if changed.is_err() { return },
            }
        }
    });
    rx
}

/// A node that admits everyone (a bootnode, or a transfer test without a chain).
fn open_node(key: NodeKey, config: NetworkConfig, cancel: &CancellationToken) -> TestNode {
    let (network, bundles) = start(&key, &config, Admission::Open, None, cancel);
    TestNode { key, network, services: None, bundles, _dir: tempfile::tempdir().unwrap() }
}

/// Builds a node's network serving a [`FileBundles`] and no role requests, and runs it.
fn start(
    key: &NodeKey,
    config: &NetworkConfig,
    admission: Admission,
    indexed: Option<tokio::sync::watch::Receiver<u64>>,
    cancel: &CancellationToken,
) -> (p2p::Network, Arc<FileBundles>) {
    let mut registry = prometheus_client::registry::Registry::default();
    let (network, mut builder) = p2p::build(config, key.libp2p_keypair(), admission, &mut registry).unwrap();
    if let Some(indexed) = indexed {
        builder = builder.index_progress(indexed);
    }
    let bundles = Arc::new(FileBundles::default());
    let handlers = p2p::Handlers { requests: None, bundles: Some(bundles.clone()) };
    tokio::spawn(builder.start(handlers).run(cancel.clone()));
    (network, bundles)
}

/// Registers `keys` as nodes on chain; returns the last block.
pub(crate) async fn register_nodes(anvil: &AnvilInstance, deployment: &Deployment, keys: &[&NodeKey]) -> u64 {
    let mut last = 0;
    for key in keys {
        let provider = signing_provider(anvil, key);
        let receipt = mined!(NodeRegistry::new(deployment.address("NodeRegistry").unwrap(), provider).register(
            roles::PROVIDER | roles::CONSUMER,
            key.peer_id().to_bytes().into(),
            vec![]
        ));
        last = receipt.block_number.unwrap();
    }
    last
}

pub(crate) async fn indexed(nodes: &[&TestNode], block: u64) {
    for node in nodes {
        let services = node.services.as_ref().unwrap();
        tokio::time::timeout(Duration::from_secs(20), services.indexer.wait_for(block)).await.expect("indexed");
    }
}

/// Registers an app, a data type and a bundle as `provider`; returns what an announcement states.
async fn register_bundle(
    anvil: &AnvilInstance,
    deployment: &Deployment,
    provider: &NodeKey,
    name: &str,
) -> BundleStatement {
    let p = signing_provider(anvil, provider);
    let at = |name| deployment.address(name).unwrap();
    let receipt = mined!(AppRegistry::new(at("AppRegistry"), p.clone()).register(name.into()));
    let app_id = receipt.decoded_log::<AppRegistry::AppRegistered>().unwrap().appId;
    let receipt = mined!(
        DataTypeRegistry::new(at("DataTypeRegistry"), p.clone()).register(format!("{name}-type"), keccak256("{}"))
    );
    let data_type_id = receipt.decoded_log::<DataTypeRegistry::DataTypeRegistered>().unwrap().dataTypeId;
    let receipt = mined!(DataRegistry::new(at("DataRegistry"), p).registerBundle(
        app_id,
        data_type_id,
        keccak256(name),
        10,
        keccak256("c"),
        4096,
        "".into()
    ));
    let bundle_id = receipt.decoded_log::<DataRegistry::BundleRegistered>().unwrap().bundleId;
    BundleStatement {
        bundle_id,
        app_id,
        data_type_id,
        record_count: 10,
        size: 4096,
        price_hint: U256::from(1000),
        price_token: Address::ZERO,
        registered_block: receipt.block_number.unwrap(),
    }
}

/// Publishes until the mesh has formed (publishing fails while no peer is subscribed).
async fn publish(node: &TestNode, announcement: &wire::Announcement) {
    for _ in 0..200 {
        if node.network.announce(announcement).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not publish");
}

/// Waits for a bundle announcement of `bundle` on `events`.
async fn announced(
    events: &mut tokio::sync::broadcast::Receiver<NetworkEvent>,
    bundle: B256,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await {
                Ok(NetworkEvent::Announcement(Announced::Bundle { announcement, .. }))
                    if announcement.bundle_id == bundle.to_vec() =>
                {
                    return;
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn five_nodes_discover_each_other_from_one_bootnode_and_an_announcement_reaches_all() {
    let anvil = spawn_anvil();
    let (_, _, deployment) = deploy_local(&anvil, false).await;
    let cancel = CancellationToken::new();
    let boot = open_node(NodeKey::random(), NetworkConfig { gossip: false, ..Default::default() }, &cancel);
    let boot_addr = boot.addr().await;
    let keys: Vec<NodeKey> = (1..=5).map(|i| dev_key(&anvil, i)).collect();
    let block = register_nodes(&anvil, &deployment, &keys.iter().collect::<Vec<_>>()).await;
    let mut nodes = Vec::new();
    for key in keys {
        nodes.push(chain_node(&anvil, &deployment, key, vec![boot_addr.clone()], &cancel).await);
    }
    indexed(&nodes.iter().collect::<Vec<_>>(), block).await;
    // Each node found the four others (and the bootnode) through the DHT alone.
    for node in &nodes {
        node.wait_for_peers(5, Duration::from_secs(30)).await;
    }
    let statement = register_bundle(&anvil, &deployment, &nodes[0].key, "weather").await;
    let mut receivers: Vec<_> = nodes[1..].iter().map(|n| n.network.events()).collect();
    let announcement = gossip::sign_bundle_announcement(&nodes[0].key, deployment.chain_id, &statement);
    publish(&nodes[0], &announcement).await;
    for (i, events) in receivers.iter_mut().enumerate() {
        assert!(
            announced(events, statement.bundle_id, Duration::from_secs(30)).await,
            "node {} got the announcement",
            i + 2
        );
    }
    // Provider records: who holds a bundle is found through the DHT.
    nodes[0].network.provide(statement.bundle_id).await;
    let mut holders = Vec::new();
    for _ in 0..50 {
        holders = nodes[4].network.providers(statement.bundle_id).await;
        if !holders.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(holders, vec![nodes[0].peer()]);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn unregistered_and_deactivated_nodes_get_no_application_traffic() {
    let anvil = spawn_anvil();
    let (_, _, deployment) = deploy_local(&anvil, false).await;
    let cancel = CancellationToken::new();
    let (ka, kb, kc) = (dev_key(&anvil, 1), dev_key(&anvil, 2), dev_key(&anvil, 3));
    let block = register_nodes(&anvil, &deployment, &[&ka, &kb]).await;
    let a = chain_node(&anvil, &deployment, ka, vec![], &cancel).await;
    let b = chain_node(&anvil, &deployment, kb, vec![], &cancel).await;
    let c = chain_node(&anvil, &deployment, kc, vec![], &cancel).await;
    indexed(&[&a, &b, &c], block).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), vec![7u8; 100_000]).unwrap();
    let manifest = a.bundles.add(B256::repeat_byte(1), file.path(), 16 * 1024).unwrap();

    let a_addr = a.addr().await;
    let mut a_events = a.network.events();
    let mut c_events = c.network.events();
    b.network.dial(a_addr.clone()).await.unwrap();
    c.network.dial(a_addr).await.unwrap();
    a.wait_for_peers(2, Duration::from_secs(10)).await;

    // B (admitted) gets answers; C (not registered) is told to register first.
    let ping = || wire::request::Body::Ping(wire::Ping { payload: b"hi".to_vec() });
    let pong = b.network.request(a.peer(), ping()).await.unwrap();
    assert_eq!(pong.body, Some(wire::response::Body::Pong(wire::Pong { payload: b"hi".to_vec() })));
    match c.network.request(a.peer(), ping()).await.unwrap_err() {
        RequestError::Remote { code, message } => {
            assert_eq!(code, wire::ErrorCode::NotAdmitted);
            assert!(message.contains("register your node"), "{message}");
        }
        other => panic!("expected NOT_ADMITTED, got {other:?}"),
    }
    // C cannot download bundle data either.
    let dest = tempfile::tempdir().unwrap();
    let request = FetchRequest {
        bundle: B256::repeat_byte(1),
        manifest: manifest.clone(),
        peers: vec![a.peer()],
        dest: dest.path().join("x"),
    };
    let err = transfer::fetch(&c.network, &request, |_| {}, &CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("NOT_ADMITTED"), "{err}");
    let report = transfer::fetch(
        &b.network,
        &FetchRequest { dest: dest.path().join("b"), ..request },
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.fetched_bytes, 100_000);

    // A knows who is who.
    let peers = a.network.peers().await;
    let standing = |node: &TestNode| peers.iter().find(|p| p.peer_id == node.peer()).map(|p| p.standing);
    assert_eq!(standing(&b), Some(p2p::Standing::Admitted));
    assert_eq!(standing(&c), Some(p2p::Standing::Unregistered));

    // Gossip: B's announcement reaches A, C's is never accepted, and C receives nothing.
    let deployment_chain = deployment.chain_id;
    let from_b = register_bundle(&anvil, &deployment, &b.key, "from-b").await;
    let from_c = register_bundle(&anvil, &deployment, &c.key, "from-c").await;
    indexed(&[&a], from_c.registered_block).await;
    let _ = c.network.announce(&gossip::sign_bundle_announcement(&c.key, deployment_chain, &from_c)).await;
    publish(&b, &gossip::sign_bundle_announcement(&b.key, deployment_chain, &from_b)).await;
    assert!(announced(&mut a_events, from_b.bundle_id, Duration::from_secs(15)).await, "A got B's announcement");
    assert!(!announced(&mut a_events, from_c.bundle_id, Duration::from_secs(2)).await, "C's gossip was accepted");
    assert!(!announced(&mut c_events, from_b.bundle_id, Duration::from_millis(100)).await, "C received gossip");

    // B is deactivated on chain: A disconnects it.
    let receipt = mined!(
        NodeRegistry::new(deployment.address("NodeRegistry").unwrap(), signing_provider(&anvil, &b.key)).deactivate()
    );
    indexed(&[&a], receipt.block_number.unwrap()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.network.peers().await.iter().any(|p| p.peer_id == b.peer()) {
        assert!(tokio::time::Instant::now() < deadline, "A kept the deactivated node connected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_unknown_announcements_are_dropped_and_never_forwarded() {
    let anvil = spawn_anvil();
    let (_, _, deployment) = deploy_local(&anvil, false).await;
    let cancel = CancellationToken::new();
    let keys: Vec<NodeKey> = (1..=3).map(|i| dev_key(&anvil, i)).collect();
    let block = register_nodes(&anvil, &deployment, &keys.iter().collect::<Vec<_>>()).await;
    let mut nodes = Vec::new();
    for key in keys {
        nodes.push(chain_node(&anvil, &deployment, key, vec![], &cancel).await);
    }
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // A line: A — B — C. C hears A only through B.
    b.network.dial(a.addr().await).await.unwrap();
    c.network.dial(b.addr().await).await.unwrap();
    b.wait_for_peers(2, Duration::from_secs(10)).await;
    let genuine = register_bundle(&anvil, &deployment, &b.key, "genuine").await;
    indexed(&[a, b, c], genuine.registered_block.max(block)).await;
    let mut b_events = b.network.events();
    let mut c_events = c.network.events();
    let chain_id = deployment.chain_id;

    // A signs an announcement for B's bundle with its own key, naming itself as the provider…
    let stolen = gossip::sign_bundle_announcement(&a.key, chain_id, &genuine);
    // …names B as the provider but signs with its own key…
    let mut forged = gossip::sign_bundle_announcement(&a.key, chain_id, &genuine);
    if let Some(wire::announcement::Body::Bundle(bundle)) = &mut forged.body {
        bundle.provider = b.key.address().to_vec();
    }
    // …and announces a bundle the chain has never seen.
    let unknown = gossip::sign_bundle_announcement(
        &a.key,
        chain_id,
        &BundleStatement { bundle_id: B256::repeat_byte(9), ..genuine.clone() },
    );
    for announcement in [&stolen, &forged, &unknown] {
        publish(a, announcement).await;
    }
    assert!(
        !announced(&mut b_events, genuine.bundle_id, Duration::from_secs(3)).await,
        "B accepted a forged announcement"
    );
    assert!(
        !announced(&mut b_events, B256::repeat_byte(9), Duration::from_millis(100)).await,
        "B accepted an unknown bundle"
    );
    assert!(
        !announced(&mut c_events, genuine.bundle_id, Duration::from_millis(100)).await,
        "B forwarded a forged announcement"
    );
    assert!(
        !announced(&mut c_events, B256::repeat_byte(9), Duration::from_millis(100)).await,
        "B forwarded an unknown bundle"
    );
    // The genuine announcement from B travels to C, and a replay of it is delivered once.
    let real = gossip::sign_bundle_announcement(&b.key, chain_id, &genuine);
    publish(b, &real).await;
    assert!(
        announced(&mut c_events, genuine.bundle_id, Duration::from_secs(15)).await,
        "C got the genuine announcement"
    );
    let _ = a.network.announce(&real).await;
    assert!(!announced(&mut c_events, genuine.bundle_id, Duration::from_secs(2)).await, "a replay was delivered twice");
    // Oversized gossip is refused at the publisher.
    assert!(a.network.publish(p2p::TOPIC_BUNDLES, vec![0; gossip::MAX_GOSSIP + 1]).await.is_err());
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_silent_streams_and_unknown_bundles_get_clear_errors() {
    let cancel = CancellationToken::new();
    let server = open_node(NodeKey::random(), NetworkConfig::default(), &cancel);
    let client = open_node(NodeKey::random(), NetworkConfig::default(), &cancel);
    client.network.dial(server.addr().await).await.unwrap();
    client.wait_for_peers(1, Duration::from_secs(10)).await;
    let peer = server.peer();

    // An oversized request frame: a length far above the limit, and no body. The server reads
    // the length, refuses, and closes the stream without allocating.
    let mut stream = client.network.open_stream(peer, codec::PROTOCOL).await.unwrap();
    stream.write_all(&varint(512 << 20)).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await.expect("stream closed");
    assert!(closed.is_err() || buf.is_empty());

    // Garbage that is not a protobuf Request.
    let mut stream = client.network.open_stream(peer, codec::PROTOCOL).await.unwrap();
    stream.write_all(&[5, 0xff, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await.expect("stream closed");

    // Streams opened and never written on both protocols: they hold nothing the node needs.
    let mut silent = Vec::new();
    for _ in 0..40 {
        silent.push(client.network.open_stream(peer, transfer::PROTOCOL).await.unwrap());
        silent.push(client.network.open_stream(peer, codec::PROTOCOL).await.unwrap());
    }

    // An oversized transfer request.
    let mut stream = client.network.open_stream(peer, transfer::PROTOCOL).await.unwrap();
    stream.write_all(&varint(1 << 30)).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await.expect("stream closed");

    // An unknown bundle: a NOT_FOUND header, not a hang.
    let mut stream = client.network.open_stream(peer, transfer::PROTOCOL).await.unwrap();
    codec::write_frame(&mut stream, &wire::TransferRequest { bundle_id: vec![1; 32], from_chunk: 0 }).await.unwrap();
    let header: wire::TransferHeader = codec::read_frame(&mut stream, 4096).await.unwrap();
    let error = header.error.unwrap();
    assert_eq!(error.code, wire::ErrorCode::NotFound as i32);
    assert!(error.message.contains("no bundles") || error.message.contains("does not hold"), "{}", error.message);
    // A bundle id of the wrong length.
    let server_bundles = server.bundles.clone();
    let mut stream = client.network.open_stream(peer, transfer::PROTOCOL).await.unwrap();
    codec::write_frame(&mut stream, &wire::TransferRequest { bundle_id: vec![1; 3], from_chunk: 0 }).await.unwrap();
    let header: wire::TransferHeader = codec::read_frame(&mut stream, 4096).await.unwrap();
    assert_eq!(header.error.unwrap().code, wire::ErrorCode::BadRequest as i32);
    // Metadata of an unknown bundle over request/response.
    let err = client
        .network
        .request(peer, wire::request::Body::BundleMetadata(wire::BundleMetadataRequest { bundle_id: vec![2; 32] }))
        .await
        .unwrap_err();
    assert!(matches!(err, RequestError::Remote { code: wire::ErrorCode::NotFound, .. }), "{err:?}");
    // A role request this node does not serve.
    let err = client
        .network
        .request(
            peer,
            wire::request::Body::SignUp(wire::SignUpRequest { identity_digest: vec![1; 32], app_id: vec![2; 32] }),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RequestError::Remote { code: wire::ErrorCode::NotFound, ref message } if message.contains("keeper")),
        "{err:?}"
    );

    // After all that, the node still serves a real transfer and answers pings.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"x".repeat(50_000)).unwrap();
    let manifest = server_bundles.add(B256::repeat_byte(3), file.path(), 4096).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let request =
        FetchRequest { bundle: B256::repeat_byte(3), manifest, peers: vec![peer], dest: dest.path().join("out") };
    transfer::fetch(&client.network, &request, |_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!(std::fs::read(dest.path().join("out")).unwrap(), std::fs::read(file.path()).unwrap());
    let pong = client.network.request(peer, wire::request::Body::Ping(wire::Ping { payload: vec![1] })).await.unwrap();
    assert!(matches!(pong.body, Some(wire::response::Body::Pong(_))));
    drop(silent);
    cancel.cancel();
}

fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Writes `size` bytes of a cheap deterministic pattern.
fn pattern_file(path: &std::path::Path, size: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0;
    let mut n = 0u64;
    while written < size {
        for (i, b) in block.iter_mut().enumerate() {
            *b = (i as u64 ^ n.wrapping_mul(0x9e37_79b9)) as u8;
        }
        n += 1;
        let len = block.len().min(size - written);
        file.write_all(&block[..len]).unwrap();
        written += len;
    }
    file.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_1_gib_transfer_survives_a_broken_connection_and_a_restart_and_refetches_a_tampered_chunk() {
    const SIZE: usize = 1 << 30;
    let cancel = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let good = open_node(NodeKey::random(), NetworkConfig::default(), &cancel);
    let bad = open_node(NodeKey::random(), NetworkConfig::default(), &cancel);
    let consumer = open_node(NodeKey::random(), NetworkConfig::default(), &cancel);
    let original = dir.path().join("bundle.bin");
    pattern_file(&original, SIZE + 12345);
    let bundle = B256::repeat_byte(0xb0);
    let manifest = good.bundles.add(bundle, &original, airbloc_node::crypto::chunks::DEFAULT_CHUNK_SIZE).unwrap();
    // The bad holder serves a copy with one byte changed in chunk 700.
    let tampered = dir.path().join("tampered.bin");
    std::fs::copy(&original, &tampered).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(&tampered).unwrap();
        file.write_all_at(&[0x42 ^ 0xff], 700 * (1 << 20) + 17).unwrap();
    }
    bad.bundles.insert(bundle, transfer::ServedBundle { path: tampered, manifest: manifest.clone() });
    for holder in [&good, &bad] {
        consumer.network.dial(holder.addr().await).await.unwrap();
    }
    consumer.wait_for_peers(2, Duration::from_secs(10)).await;
    let dest = dir.path().join("download.bin");
    let request = FetchRequest { bundle, manifest: manifest.clone(), peers: vec![good.peer()], dest: dest.clone() };

    // 1. The connection breaks at ~30 %: the same call reconnects and resumes.
    let network = consumer.network.clone();
    let good_peer = good.peer();
    let broke = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = CancellationToken::new();
    let report = {
        let broke = broke.clone();
        let stopper = stop.clone();
        transfer::fetch(
            &consumer.network,
            &request,
            move |p| {
                if p.bytes > p.total * 3 / 10 && !broke.swap(true, Ordering::SeqCst) {
                    let network = network.clone();
                    tokio::spawn(async move { network.disconnect(good_peer).await });
                }
                // 2. At ~60 % the download is stopped (a node restart).
                if p.bytes > p.total * 6 / 10 {
                    stopper.cancel();
                }
            },
            &stop,
        )
        .await
    };
    let err = report.unwrap_err();
    assert!(matches!(err, transfer::FetchError::Cancelled(_)), "{err}");
    assert!(broke.load(Ordering::SeqCst));

    // 3. Started again, it verifies what is on disk and fetches only the rest.
    let report = transfer::fetch(&consumer.network, &request, |_| {}, &CancellationToken::new()).await.unwrap();
    assert!(report.resumed_bytes > (SIZE as u64) / 2, "resumed from {}", report.resumed_bytes);
    assert_eq!(report.resumed_bytes + report.fetched_bytes, manifest.size);
    let downloaded = ChunkManifest::compute(std::fs::File::open(&dest).unwrap(), manifest.chunk_size).unwrap();
    assert_eq!(downloaded, *manifest, "byte-identical");

    // 4. From the tampering holder first: the bad chunk is caught, and fetched from the next one.
    let dest2 = dir.path().join("second.bin");
    let request = FetchRequest { peers: vec![bad.peer(), good.peer()], dest: dest2.clone(), ..request };
    let report = transfer::fetch(&consumer.network, &request, |_| {}, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.rejected_chunks, 1);
    assert_eq!(ChunkManifest::compute(std::fs::File::open(&dest2).unwrap(), manifest.chunk_size).unwrap(), *manifest);
    assert_eq!(consumer.network.transfer_stats().chunks_rejected.load(Ordering::Relaxed), 1);
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread")]
async fn airblocd_processes_register_themselves_find_each_other_and_admit_each_other() {
    use super::support::NodeProcess;
    use airbloc_proto::v1::{PeersRequest, Role, StatusRequest, node_client::NodeClient};
    use alloy::{network::TransactionBuilder, providers::Provider, rpc::types::TransactionRequest};

    let anvil = airbloc_node::test_utils::spawn_anvil_with(&["--block-time", "1"]);
    let (_, governor, deployment) = deploy_local(&anvil, false).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    let deployment_arg = deployment_file.to_str().unwrap();
    let rpc = anvil.endpoint();
    let boot = NodeProcess::start(
        &dir.path().join("boot"),
        &rpc,
        &["--roles", "bootnode", "--chain.deployment", deployment_arg],
    );
    let boot_addr = boot.runtime.p2p_addrs[0].clone();
    let start = |name: &str, roles: &str| {
        NodeProcess::start(
            &dir.path().join(name),
            &rpc,
            &["--roles", roles, "--chain.deployment", deployment_arg, "--p2p.bootnodes", &boot_addr],
        )
    };
    let provider = start("provider", "provider");
    let consumer = start("consumer", "consumer");
    // Gas for their NodeRegistry entries.
    for node in [&provider, &consumer] {
        let to: Address = node.runtime.address.parse().unwrap();
        let tx = TransactionRequest::default().with_to(to).with_value(U256::from(10u128.pow(19)));
        governor.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    }
    let client = |node: &NodeProcess| {
        let auth = airbloc_proto::bearer(&node.token()).unwrap();
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.runtime.grpc_addr))
            .unwrap()
            .connect_lazy();
        NodeClient::with_interceptor(channel, auth)
    };
    let mut at_provider = client(&provider);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let consumer_peer = consumer.runtime.peer_id.clone();
    loop {
        let peers = at_provider.peers(PeersRequest {}).await.unwrap().into_inner().peers;
        if let Some(peer) = peers.iter().find(|p| p.peer_id == consumer_peer && p.admitted) {
            assert_eq!(peer.address.to_lowercase(), consumer.runtime.address.to_lowercase());
            assert_eq!(peer.roles, vec![Role::Consumer as i32], "roles from its NodeRegistry entry");
            assert_eq!(peer.standing, "admitted");
            assert!(peer.agent.starts_with("airblocd/"), "{}", peer.agent);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the consumer was not found and admitted: {peers:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let status = at_provider.status(StatusRequest {}).await.unwrap().into_inner();
    assert!(status.peer_count >= 2, "bootnode and consumer: {}", status.peer_count);
    assert!(status.listen_addrs.iter().any(|a| a.starts_with("/ip4/127.0.0.1/tcp/")), "{:?}", status.listen_addrs);
    // The bootnode served discovery only: it is connected to both but registered nowhere.
    let boot_peers = client(&boot).peers(PeersRequest {}).await.unwrap().into_inner().peers;
    assert!(boot_peers.len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_js_libp2p_peer_identifies_pings_and_once_registered_receives_an_announcement() {
    use super::support::NodeProcess;
    use alloy::{network::TransactionBuilder, providers::Provider, rpc::types::TransactionRequest};
    use std::io::{BufRead, BufReader};

    let anvil = airbloc_node::test_utils::spawn_anvil_with(&["--block-time", "1"]);
    let (_, governor, deployment) = deploy_local(&anvil, false).await;
    let dir = tempfile::tempdir().unwrap();
    let deployment_file = dir.path().join("deployment.json");
    deployment.save(&deployment_file).unwrap();
    // The airblocd process everyone talks to; it registers itself.
    let hub = NodeProcess::start(
        &dir.path().join("hub"),
        &anvil.endpoint(),
        &["--roles", "consumer", "--chain.deployment", deployment_file.to_str().unwrap()],
    );
    let hub_address: Address = hub.runtime.address.parse().unwrap();
    let tx = TransactionRequest::default().with_to(hub_address).with_value(U256::from(10u128.pow(19)));
    governor.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    // The js peer's key (dev account 6) and an in-process provider (dev account 7), both registered.
    let js_key = dev_key(&anvil, 6);
    let block = register_nodes(&anvil, &deployment, &[&js_key, &dev_key(&anvil, 7)]).await;
    let cancel = CancellationToken::new();
    let provider = chain_node(&anvil, &deployment, dev_key(&anvil, 7), vec![], &cancel).await;
    indexed(&[&provider], block).await;
    // Wait until the hub's own entry is indexed at the provider, so they admit each other.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !provider.services.as_ref().unwrap().state.is_active_node(hub_address).unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "the hub never registered itself");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let script = airbloc_node::test_utils::workspace_root().join("node/tests/interop/js-libp2p/peer.mjs");
    let mut js = std::process::Command::new("node")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("node runs (bash .ci/bootstrap installs js-libp2p)");
    let input = serde_json::json!({
        "privateKey": alloy::primitives::hex::encode(js_key.secret_bytes()),
        "dial": hub.runtime.p2p_addrs[0],
        "topic": p2p::TOPIC_BUNDLES,
        "timeoutMs": 60000,
    });
    js.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = js.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(serde_json::from_str::<serde_json::Value>(&line).unwrap());
        }
    });
    let started = next_line(&mut lines).await;
    assert_eq!(started["peerId"], js_key.peer_id().to_string(), "same secp256k1 PeerId in js and Rust");
    let mut seen_identify = false;
    let mut seen_ping = false;
    while !(seen_identify && seen_ping) {
        let line = next_line(&mut lines).await;
        if let Some(identified) = line.get("identified") {
            assert!(identified["agent"].as_str().unwrap().starts_with("airblocd/"), "{identified}");
            let protocols = identified["protocols"].as_array().unwrap();
            assert!(protocols.iter().any(|p| p == "/meshsub/1.1.0"), "{protocols:?}");
            seen_identify = true;
        }
        if line.get("pingMs").is_some() {
            seen_ping = true;
        }
        assert!(line.get("error").is_none(), "{line}");
    }
    // The provider joins and announces a bundle; the hub checks it and forwards it to the js peer.
    provider.network.dial(hub.runtime.p2p_addrs[0].parse().unwrap()).await.unwrap();
    let statement = register_bundle(&anvil, &deployment, &provider.key, "interop").await;
    let announcement = gossip::sign_bundle_announcement(&provider.key, deployment.chain_id, &statement);
    publish(&provider, &announcement).await;
    let line = loop {
        let line = next_line(&mut lines).await;
        assert!(line.get("error").is_none(), "{line}");
        if line.get("message").is_some() {
            break line;
        }
    };
    let data = alloy::primitives::hex::decode(line["message"].as_str().expect("a gossip message")).unwrap();
    use prost::Message;
    assert_eq!(wire::Announcement::decode(data.as_slice()).unwrap(), announcement);
    assert_eq!(line["from"], provider.peer().to_string());
    assert!(js.wait().unwrap().success());
    cancel.cancel();
}

async fn next_line(lines: &mut tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(60), lines.recv())
        .await
        .expect("js peer output in time")
        .expect("js peer output")
}
