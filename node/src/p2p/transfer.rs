//! Bulk transfer of bundle ciphertext over a libp2p stream protocol (`/airbloc/transfer/1.0.0`).
//!
//! The downloader sends a [`wire::TransferRequest`] (bundle id, first chunk); the holder answers
//! with a [`wire::TransferHeader`] and then the raw ciphertext from that chunk to the end. The
//! downloader already holds the bundle's [`ChunkManifest`] (checked against the on-chain
//! `ciphertextHash`) and verifies every chunk before writing it:
//!
//! - **resumable**: a download restarts by re-verifying what is already on disk and asking for the
//!   first missing chunk; a broken connection is retried with back-off within one call;
//! - **tamper-evident**: a chunk that fails its hash is never written; the peer that sent it is
//!   dropped and the chunk is fetched again from the next holder;
//! - **bounded memory**: one chunk buffer on the sending side, a few in flight on the receiving
//!   side, whatever the bundle size;
//! - **concurrent and cancellable**: each upload runs in its own task (up to a limit; beyond it the
//!   holder answers `UNAVAILABLE`), and a download stops at its cancellation token.

/// Wire errors live in [`super::error`]; re-exported here where the roles first found them.
pub use super::error::wire_error;
use super::{Network, admission::Admission, codec};
use crate::crypto::chunks::ChunkManifest;
use airbloc_proto::p2p::v1 as wire;
use alloy::primitives::B256;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use std::{
    collections::HashMap,
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The transfer protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/airbloc/transfer/1.0.0");
/// Largest request or header frame.
const MAX_FRAME: usize = 4 * 1024;
/// How long a peer may take to send its request (or header) after opening a stream.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a chunk may take to arrive before the connection counts as broken.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// Uploads served at once; more are answered `UNAVAILABLE`.
pub const MAX_UPLOADS: usize = 32;
/// Chunks in flight between the network reader and the disk writer of one download.
const WRITE_QUEUE: usize = 8;

/// A bundle's ciphertext as a holder serves it.
#[derive(Debug, Clone)]
pub struct ServedBundle {
    pub path: PathBuf,
    pub manifest: Arc<ChunkManifest>,
}

/// What a node holds and whom it serves. The provider role decides by orders; tests and the
/// bootstrap use [`FileBundles`].
pub trait BundleSource: Send + Sync + 'static {
    /// The bundle `peer` asks for, or the error to answer with.
    fn serve(&self, peer: &PeerId, bundle: B256) -> Result<ServedBundle, wire::Error>;
}

/// Bundles kept as files, served to every admitted peer.
#[derive(Debug, Default)]
pub struct FileBundles {
    entries: RwLock<HashMap<B256, ServedBundle>>,
}

impl FileBundles {
    /// Adds a ciphertext file, computing its manifest; returns the manifest.
    pub fn add(&self, bundle: B256, path: &Path, chunk_size: u32) -> io::Result<Arc<ChunkManifest>> {
        let manifest = Arc::new(ChunkManifest::compute(std::fs::File::open(path)?, chunk_size)?);
        self.insert(bundle, ServedBundle { path: path.to_owned(), manifest: manifest.clone() });
        Ok(manifest)
    }

    /// Adds a ciphertext file with a known manifest.
    pub fn insert(&self, bundle: B256, served: ServedBundle) {
        self.entries.write().expect("bundles lock").insert(bundle, served);
    }
}

impl BundleSource for FileBundles {
    fn serve(&self, _peer: &PeerId, bundle: B256) -> Result<ServedBundle, wire::Error> {
        self.entries
            .read()
            .expect("bundles lock")
            .get(&bundle)
            .cloned()
            .ok_or_else(|| wire_error(wire::ErrorCode::NotFound, format!("this node does not hold bundle {bundle}")))
    }
}

/// Transfer counters, exported as metrics.
#[derive(Debug, Default)]
pub struct TransferStats {
    pub bytes_served: AtomicU64,
    pub bytes_fetched: AtomicU64,
    pub uploads_active: AtomicU64,
    pub downloads_active: AtomicU64,
    pub chunks_rejected: AtomicU64,
    pub uploads_refused: AtomicU64,
}

/// Serves inbound transfer streams until cancelled. A stream costs a small task until its request
/// arrives (or [`FRAME_TIMEOUT`] passes); only then does it take one of [`MAX_UPLOADS`] slots, so
/// peers that open streams and never write cannot crowd out real downloads.
pub(crate) async fn serve(
    mut incoming: libp2p_stream::IncomingStreams,
    admission: Admission,
    source: Option<Arc<dyn BundleSource>>,
    stats: Arc<TransferStats>,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_UPLOADS));
    loop {
        let (peer, mut stream) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => match next { Some(s) => s, None => return },
        };
        let admission = admission.clone();
        let source = source.clone();
        let stats = stats.clone();
        let cancel = cancel.clone();
        let slots = slots.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                result = serve_one(peer, &mut stream, &admission, &source, &slots, &stats) => {
                    if let Err(e) = result {
                        debug!(target: "p2p::transfer", %peer, error = %e, "upload ended");
                    }
                }
            }
        });
    }
}

async fn serve_one(
    peer: PeerId,
    stream: &mut Stream,
    admission: &Admission,
    source: &Option<Arc<dyn BundleSource>>,
    slots: &Arc<Semaphore>,
    stats: &TransferStats,
) -> io::Result<()> {
    let request: wire::TransferRequest = tokio::time::timeout(FRAME_TIMEOUT, codec::read_frame(stream, MAX_FRAME))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no transfer request within the timeout"))??;
    let refuse = |error: wire::Error| wire::TransferHeader { error: Some(error), ..Default::default() };
    let decision = (|| {
        if !admission.admits(&peer) {
            return Err(wire_error(
                wire::ErrorCode::NotAdmitted,
                "this node serves only peers with an active NodeRegistry entry — register your node first",
            ));
        }
        let bundle = B256::try_from(request.bundle_id.as_slice())
            .map_err(|_| wire_error(wire::ErrorCode::BadRequest, "bundle_id must be 32 bytes"))?;
        let source =
            source.as_ref().ok_or_else(|| wire_error(wire::ErrorCode::NotFound, "this node serves no bundles"))?;
        let served = source.serve(&peer, bundle)?;
        if request.from_chunk > served.manifest.count() {
            return Err(wire_error(
                wire::ErrorCode::BadRequest,
                format!("chunk {} is past the end ({} chunks)", request.from_chunk, served.manifest.count()),
            ));
        }
        Ok(served)
    })();
    let permit = match &decision {
        Ok(_) => match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                stats.uploads_refused.fetch_add(1, Ordering::Relaxed);
                let error = wire_error(wire::ErrorCode::Unavailable, "too many transfers in progress; retry shortly");
                codec::write_frame(stream, &refuse(error)).await?;
                return stream.close().await;
            }
        },
        Err(_) => None,
    };
    let served = match decision {
        Ok(served) => served,
        Err(error) => {
            codec::write_frame(stream, &refuse(error)).await?;
            return stream.close().await;
        }
    };
    stats.uploads_active.fetch_add(1, Ordering::Relaxed);
    let _active = scopeguard(|| {
        stats.uploads_active.fetch_sub(1, Ordering::Relaxed);
    });
    let _permit = permit;
    let manifest = &served.manifest;
    let mut file = match std::fs::File::open(&served.path) {
        Ok(file) => file,
        Err(e) => {
            warn!(target: "p2p::transfer", path = %served.path.display(), error = %e, "cannot open a served bundle");
            let error = wire_error(wire::ErrorCode::Internal, "the bundle is unavailable on this node");
            codec::write_frame(stream, &refuse(error)).await?;
            return stream.close().await;
        }
    };
    let header = wire::TransferHeader {
        error: None,
        size: manifest.size,
        chunk_size: manifest.chunk_size,
        from_chunk: request.from_chunk,
    };
    codec::write_frame(stream, &header).await?;
    file.seek(SeekFrom::Start(manifest.offset(request.from_chunk)))?;
    let mut buf = vec![0u8; manifest.chunk_size as usize];
    for index in request.from_chunk..manifest.count() {
        let len = manifest.chunk_len(index);
        // Page-cache reads of one chunk are short; a blocking-pool hop per chunk costs more.
        file.read_exact(&mut buf[..len])?;
        stream.write_all(&buf[..len]).await?;
        stats.bytes_served.fetch_add(len as u64, Ordering::Relaxed);
    }
    stream.close().await
}

/// What to download.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub bundle: B256,
    pub manifest: Arc<ChunkManifest>,
    /// Holders to ask, in order of preference.
    pub peers: Vec<PeerId>,
    /// File the ciphertext is written to; an existing partial file is resumed.
    pub dest: PathBuf,
}

/// Progress of a download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub bytes: u64,
    pub total: u64,
}

/// How a download went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Bytes already on disk and verified when the download started.
    pub resumed_bytes: u64,
    /// Bytes received over the network and written.
    pub fetched_bytes: u64,
    /// Chunks that failed verification and were fetched again.
    pub rejected_chunks: u64,
    /// Streams reopened after a broken connection or a bad chunk.
    pub reconnects: u32,
}

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no peer could deliver bundle {bundle}: {reasons}")]
    Exhausted { bundle: B256, reasons: String },
    #[error("download cancelled; {0} bytes verified on disk, run it again to resume")]
    Cancelled(u64),
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Retries per peer after a broken connection.
const ATTEMPTS_PER_PEER: u32 = 5;

enum StreamOutcome {
    Done,
    /// The connection broke or timed out after delivering up to (not including) this chunk.
    Broken(String),
    /// The peer refused or lied; try the next one.
    PeerFailed(String),
}

/// Downloads a bundle's ciphertext into `request.dest`, verifying every chunk.
pub async fn fetch(
    network: &Network,
    request: &FetchRequest,
    mut progress: impl FnMut(Progress) + Send,
    cancel: &CancellationToken,
) -> Result<FetchReport, FetchError> {
    let manifest = request.manifest.clone();
    let io_err = |source| FetchError::Io { path: request.dest.clone(), source };
    let dest = request.dest.clone();
    let check = manifest.clone();
    let (file, mut next) = tokio::task::spawn_blocking(move || open_and_verify_prefix(&dest, &check))
        .await
        .expect("verification task")
        .map_err(io_err)?;
    let mut report = FetchReport { resumed_bytes: manifest.offset(next).min(manifest.size), ..Default::default() };
    if next > 0 {
        info!(target: "p2p::transfer", bundle = %request.bundle, chunks = next, "resuming a partial download");
    }
    progress(Progress { bytes: report.resumed_bytes, total: manifest.size });
    let stats = network.transfer_stats();
    stats.downloads_active.fetch_add(1, Ordering::Relaxed);
    let _active = scopeguard(|| {
        stats.downloads_active.fetch_sub(1, Ordering::Relaxed);
    });

    // Chunks are verified and written by a blocking thread, so hashing and disk writes overlap
    // with reading the next chunks from the network.
    let (writer_tx, writer_rx) = tokio::sync::mpsc::channel::<ToWriter>(WRITE_QUEUE);
    let (recycle_tx, mut recycle_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let written = Arc::new(Written { bad: AtomicU64::new(NONE), ..Default::default() });
    let writer = {
        let manifest = manifest.clone();
        let written = written.clone();
        tokio::task::spawn_blocking(move || write_chunks(file, &manifest, next, writer_rx, recycle_tx, &written))
    };
    let mut pipe = Pipe { to_writer: writer_tx, recycled: &mut recycle_rx, written: &written };
    let mut reasons = Vec::new();
    let mut peers = request.peers.iter();
    let mut current = peers.next().copied();
    let mut attempts = 0u32;
    let result = loop {
        if next >= manifest.count() {
            break Ok(());
        }
        let Some(peer) = current else {
            break Err(FetchError::Exhausted { bundle: request.bundle, reasons: reasons.join("; ") });
        };
        if cancel.is_cancelled() {
            break Err(FetchError::Cancelled(manifest.offset(next)));
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => break Err(FetchError::Cancelled(manifest.offset(next))),
            outcome = fetch_from(network, peer, request.bundle, &manifest, &mut next, &mut pipe, &mut progress) => outcome,
        };
        match outcome {
            StreamOutcome::Done => {}
            StreamOutcome::Broken(reason) => {
                attempts += 1;
                report.reconnects += 1;
                if attempts >= ATTEMPTS_PER_PEER {
                    reasons.push(format!("{peer}: {reason}"));
                    current = peers.next().copied();
                    attempts = 0;
                } else {
                    debug!(target: "p2p::transfer", %peer, %reason, attempts, "stream broke; resuming");
                    // Time is the point: back off before resuming from the same peer.
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempts))).await;
                }
            }
            StreamOutcome::PeerFailed(reason) => {
                warn!(target: "p2p::transfer", %peer, %reason, "dropping a holder");
                reasons.push(format!("{peer}: {reason}"));
                report.reconnects += 1;
                current = peers.next().copied();
                attempts = 0;
            }
        }
    };
    drop(pipe);
    let outcome = writer.await.expect("writer task");
    report.fetched_bytes = written.bytes.load(Ordering::Relaxed);
    report.rejected_chunks = written.rejected.load(Ordering::Relaxed);
    stats.bytes_fetched.fetch_add(report.fetched_bytes, Ordering::Relaxed);
    stats.chunks_rejected.fetch_add(report.rejected_chunks, Ordering::Relaxed);
    outcome.map_err(io_err)?;
    result.map(|()| report)
}

const NONE: u64 = u64::MAX;

/// What the writer thread reports back.
#[derive(Debug, Default)]
struct Written {
    /// First chunk that failed verification and is not yet re-fetched (`NONE` when none).
    bad: AtomicU64,
    bytes: AtomicU64,
    rejected: AtomicU64,
}

enum ToWriter {
    Chunk(u64, Vec<u8>),
    /// Answered with the next chunk the writer expects, once everything before it is handled.
    Flush(tokio::sync::oneshot::Sender<u64>),
}

/// The reader's end of the writer pipeline.
struct Pipe<'a> {
    to_writer: tokio::sync::mpsc::Sender<ToWriter>,
    recycled: &'a mut tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    written: &'a Written,
}

impl Pipe<'_> {
    /// A chunk that failed verification since the last call, if any.
    fn take_bad(&self) -> Option<u64> {
        match self.written.bad.swap(NONE, Ordering::AcqRel) {
            NONE => None,
            index => Some(index),
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn fetch_from(
    network: &Network,
    peer: PeerId,
    bundle: B256,
    manifest: &ChunkManifest,
    next: &mut u64,
    pipe: &mut Pipe<'_>,
    progress: &mut (impl FnMut(Progress) + Send),
) -> StreamOutcome {
    let rejected = |index| StreamOutcome::PeerFailed(format!("chunk {index} does not match its hash"));
    let mut stream = match network.open_stream(peer, PROTOCOL).await {
        Ok(stream) => stream,
        Err(e @ libp2p_stream::OpenStreamError::UnsupportedProtocol(_)) => {
            return StreamOutcome::PeerFailed(e.to_string());
        }
        Err(e) => return StreamOutcome::Broken(e.to_string()),
    };
    let request = wire::TransferRequest { bundle_id: bundle.to_vec(), from_chunk: *next };
    if let Err(e) = codec::write_frame(&mut stream, &request).await {
        return StreamOutcome::Broken(e.to_string());
    }
    let header: wire::TransferHeader =
        match tokio::time::timeout(FRAME_TIMEOUT, codec::read_frame(&mut stream, MAX_FRAME)).await {
            Ok(Ok(header)) => header,
            Ok(Err(e)) => return StreamOutcome::Broken(e.to_string()),
            Err(_) => return StreamOutcome::Broken("no transfer header within the timeout".into()),
        };
    if let Some(error) = header.error {
        let code = wire::ErrorCode::try_from(error.code).unwrap_or(wire::ErrorCode::Unspecified);
        return match code {
            wire::ErrorCode::Unavailable => StreamOutcome::Broken(error.message),
            _ => StreamOutcome::PeerFailed(format!("{}: {}", code.as_str_name(), error.message)),
        };
    }
    if header.size != manifest.size || header.chunk_size != manifest.chunk_size || header.from_chunk != *next {
        return StreamOutcome::PeerFailed(format!(
            "peer offers {} bytes in chunks of {} from chunk {}, the manifest says {} in chunks of {} (asked from {})",
            header.size, header.chunk_size, header.from_chunk, manifest.size, manifest.chunk_size, next
        ));
    }
    while *next < manifest.count() {
        let index = *next;
        let len = manifest.chunk_len(index);
        let mut buf = pipe.recycled.try_recv().unwrap_or_default();
        buf.resize(len, 0);
        match tokio::time::timeout(CHUNK_TIMEOUT, stream.read_exact(&mut buf)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return StreamOutcome::Broken(format!("chunk {index}: {e}")),
            Err(_) => return StreamOutcome::Broken(format!("chunk {index} did not arrive within {CHUNK_TIMEOUT:?}")),
        }
        if pipe.to_writer.send(ToWriter::Chunk(index, buf)).await.is_err() {
            return StreamOutcome::PeerFailed("the writer stopped".into());
        }
        *next += 1;
        if let Some(bad) = pipe.take_bad() {
            *next = bad;
            return rejected(bad);
        }
        progress(Progress { bytes: manifest.offset(*next).min(manifest.size), total: manifest.size });
    }
    // Everything arrived; wait until it is verified.
    let (tx, rx) = tokio::sync::oneshot::channel();
    if pipe.to_writer.send(ToWriter::Flush(tx)).await.is_err() {
        return StreamOutcome::PeerFailed("the writer stopped".into());
    }
    let expected = rx.await.unwrap_or(0);
    if let Some(bad) = pipe.take_bad() {
        *next = bad;
        return rejected(bad);
    }
    debug_assert_eq!(expected, manifest.count());
    StreamOutcome::Done
}

/// Opens (or creates) the destination and finds the first chunk not already present and valid.
fn open_and_verify_prefix(dest: &Path, manifest: &ChunkManifest) -> io::Result<(std::fs::File, u64)> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dest)?;
    let on_disk = file.metadata()?.len();
    let mut buf = vec![0u8; manifest.chunk_size as usize];
    let mut next = 0;
    while next < manifest.count() && manifest.offset(next) + manifest.chunk_len(next) as u64 <= on_disk {
        let len = manifest.chunk_len(next);
        file.read_exact(&mut buf[..len])?;
        if !manifest.verify(next, &buf[..len]) {
            break;
        }
        next += 1;
    }
    Ok((file, next))
}

/// Verifies chunks and writes the good ones in order; a bad chunk is reported through
/// `written.bad`, and chunks after it are dropped until the same index arrives again. At the end
/// the file is truncated to the exact size and synced.
fn write_chunks(
    mut file: std::fs::File,
    manifest: &ChunkManifest,
    first: u64,
    mut chunks: tokio::sync::mpsc::Receiver<ToWriter>,
    recycle: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    written: &Written,
) -> io::Result<()> {
    file.seek(SeekFrom::Start(manifest.offset(first)))?;
    let mut expected = first;
    while let Some(message) = chunks.blocking_recv() {
        match message {
            ToWriter::Chunk(index, buf) => {
                if index == expected {
                    if manifest.verify(index, &buf) {
                        file.write_all(&buf)?;
                        expected += 1;
                        written.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    } else {
                        written.rejected.fetch_add(1, Ordering::Relaxed);
                        written.bad.store(index, Ordering::Release);
                    }
                }
                let _ = recycle.send(buf);
            }
            ToWriter::Flush(reply) => {
                let _ = reply.send(expected);
            }
        }
    }
    if expected >= manifest.count() {
        file.set_len(manifest.size)?;
    }
    file.sync_all()
}

fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CHUNK: u32 = 4096;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn manifest(data: &[u8]) -> ChunkManifest {
        ChunkManifest::compute(data, CHUNK).unwrap()
    }

    #[test]
    fn a_partial_file_resumes_after_its_last_verified_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let original = data(3 * CHUNK as usize + 100);
        let manifest = manifest(&original);
        let dest = dir.path().join("sub/partial");
        // Nothing on disk: start at chunk 0 (and the directory is created).
        assert_eq!(open_and_verify_prefix(&dest, &manifest).unwrap().1, 0);
        // Two full chunks and half of the third: resume at chunk 2.
        std::fs::write(&dest, &original[..2 * CHUNK as usize + 10]).unwrap();
        assert_eq!(open_and_verify_prefix(&dest, &manifest).unwrap().1, 2);
        // A corrupted second chunk: resume at chunk 1, whatever follows.
        let mut bad = original.clone();
        bad[CHUNK as usize + 5] ^= 0xff;
        std::fs::write(&dest, &bad).unwrap();
        assert_eq!(open_and_verify_prefix(&dest, &manifest).unwrap().1, 1);
        // Everything there: nothing left to fetch.
        std::fs::write(&dest, &original).unwrap();
        assert_eq!(open_and_verify_prefix(&dest, &manifest).unwrap().1, manifest.count());
    }

    #[test]
    fn the_writer_drops_a_bad_chunk_reports_it_and_accepts_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let original = data(3 * CHUNK as usize + 100);
        let manifest = manifest(&original);
        let dest = dir.path().join("out");
        let (file, first) = open_and_verify_prefix(&dest, &manifest).unwrap();
        let chunk = |i: u64| original[manifest.offset(i) as usize..][..manifest.chunk_len(i)].to_vec();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let (recycle, _recycled) = tokio::sync::mpsc::unbounded_channel();
        let written = Written { bad: AtomicU64::new(NONE), ..Default::default() };
        let mut tampered = chunk(1);
        tampered[0] ^= 1;
        for message in [
            ToWriter::Chunk(0, chunk(0)),
            ToWriter::Chunk(1, tampered),
            // Sent before the reader learnt of the bad chunk: dropped.
            ToWriter::Chunk(2, chunk(2)),
            ToWriter::Chunk(1, chunk(1)),
            ToWriter::Chunk(2, chunk(2)),
            ToWriter::Chunk(3, chunk(3)),
        ] {
            tx.try_send(message).ok().unwrap();
        }
        drop(tx);
        write_chunks(file, &manifest, first, rx, recycle, &written).unwrap();
        assert_eq!(written.bad.load(Ordering::Relaxed), 1);
        assert_eq!(written.rejected.load(Ordering::Relaxed), 1);
        assert_eq!(written.bytes.load(Ordering::Relaxed), manifest.size);
        assert_eq!(std::fs::read(&dest).unwrap(), original);
    }

    #[test]
    fn file_bundles_serve_what_they_hold_and_name_what_they_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        std::fs::write(&path, data(10_000)).unwrap();
        let bundles = FileBundles::default();
        let manifest = bundles.add(B256::repeat_byte(1), &path, CHUNK).unwrap();
        assert_eq!(manifest.count(), 3);
        let peer = PeerId::random();
        assert_eq!(bundles.serve(&peer, B256::repeat_byte(1)).unwrap().path, path);
        let error = bundles.serve(&peer, B256::repeat_byte(2)).unwrap_err();
        assert_eq!(error.code, wire::ErrorCode::NotFound as i32);
        assert!(error.message.contains("does not hold"), "{}", error.message);
    }
}
