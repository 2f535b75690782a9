//! The libp2p perf protocol (`/perf/1.0.0`, libp2p/specs perf.md): the client sends the number of
//! bytes it wants back as a u64 (big endian), uploads its bytes and closes its write side; the
//! server reads to the end, then sends the requested bytes. Every node answers it, so transfer
//! throughput can be compared with what the transport itself does between the same two nodes.

use super::Network;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, Stream, StreamProtocol};
use std::io;
use tokio_util::sync::CancellationToken;

/// The perf protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/perf/1.0.0");
const BLOCK: usize = 64 * 1024;

/// Largest download a client may ask for (a perf server is not a free bandwidth source).
pub const MAX_DOWNLOAD: u64 = 16 << 30;

pub(crate) async fn serve(mut incoming: libp2p_stream::IncomingStreams, cancel: CancellationToken) {
    loop {
        let (_, stream) = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => match next { Some(s) => s, None => return },
        };
        tokio::spawn(async move {
            let _ = serve_one(stream).await;
        });
    }
}

async fn serve_one(mut stream: Stream) -> io::Result<()> {
    let mut size = [0u8; 8];
    stream.read_exact(&mut size).await?;
    let download = u64::from_be_bytes(size);
    if download > MAX_DOWNLOAD {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "perf download too large"));
    }
    let mut buf = vec![0u8; BLOCK];
    while stream.read(&mut buf).await? > 0 {}
    let mut left = download;
    while left > 0 {
        let n = left.min(BLOCK as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    stream.close().await
}

/// Runs one perf exchange with `peer`: uploads `upload` bytes, downloads `download` bytes.
pub async fn run(network: &Network, peer: PeerId, upload: u64, download: u64) -> io::Result<u64> {
    let mut stream = network.open_stream(peer, PROTOCOL).await.map_err(io::Error::other)?;
    stream.write_all(&download.to_be_bytes()).await?;
    let buf = vec![0u8; BLOCK];
    let mut left = upload;
    while left > 0 {
        let n = left.min(BLOCK as u64) as usize;
        stream.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    stream.close().await?;
    let mut received = 0u64;
    let mut buf = vec![0u8; BLOCK];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received += n as u64;
    }
    Ok(received)
}
