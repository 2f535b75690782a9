//! The request/response wire codec: protobuf messages (`airbloc.p2p.v1`), each preceded by its
//! length as an unsigned varint. The length is checked against the protocol's limit before a
//! single byte of the body is allocated, so an oversized frame costs the receiver nothing.

use airbloc_proto::p2p::v1 as wire;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message;
use std::io;

/// The request/response protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/airbloc/rpc/1.0.0");
/// Largest request accepted.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Largest response accepted.
pub const MAX_RESPONSE: usize = 1024 * 1024;

/// Length-delimited protobuf codec with size limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProtoCodec;

async fn read_varint<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<usize> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8; 1];
        io.read_exact(&mut byte).await?;
        value |= u64::from(byte[0] & 0x7F) << shift;
        if byte[0] & 0x80 == 0 {
            return usize::try_from(value).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "length overflows"));
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "length varint longer than 10 bytes"))
}

/// Reads one length-delimited message of at most `limit` bytes.
pub async fn read_frame<M: Message + Default, T: AsyncRead + Unpin>(io: &mut T, limit: usize) -> io::Result<M> {
    let len = read_varint(io).await?;
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {limit}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    M::decode(buf.as_slice()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad frame: {e}")))
}

/// Writes one length-delimited message.
pub async fn write_frame<M: Message, T: AsyncWrite + Unpin>(io: &mut T, message: &M) -> io::Result<()> {
    let bytes = message.encode_length_delimited_to_vec();
    io.write_all(&bytes).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for ProtoCodec {
    type Protocol = StreamProtocol;
    type Request = wire::Request;
    type Response = wire::Response;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_REQUEST).await
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_RESPONSE).await
    }

    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, req: Self::Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req).await
    }

    async fn write_response<T>(&mut self, _: &Self::Protocol, io: &mut T, res: Self::Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn a_frame_round_trips() {
        let request = wire::Request {
            request_id: 7,
            body: Some(wire::request::Body::Ping(wire::Ping { payload: b"hi".to_vec() })),
        };
        let mut buf = Vec::new();
        block_on(write_frame(&mut Cursor::new(&mut buf), &request)).unwrap();
        let read: wire::Request = block_on(read_frame(&mut Cursor::new(&buf), MAX_REQUEST)).unwrap();
        assert_eq!(read, request);
    }

    #[test]
    fn an_oversized_length_is_refused_before_the_body_is_read() {
        // A length of 512 MiB and no body at all: refused on the length alone.
        let mut frame = Vec::new();
        prost::encoding::encode_varint(512 << 20, &mut frame);
        let err = block_on(read_frame::<wire::Request, _>(&mut Cursor::new(&frame), MAX_REQUEST)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("exceeds the 65536-byte limit"), "{err}");
    }

    #[test]
    fn a_frame_at_the_limit_is_accepted_and_one_byte_more_is_not() {
        let body = wire::Ping { payload: vec![1; 100] };
        let len = body.encoded_len();
        let mut buf = Vec::new();
        block_on(write_frame(&mut Cursor::new(&mut buf), &body)).unwrap();
        assert!(block_on(read_frame::<wire::Ping, _>(&mut Cursor::new(&buf), len)).is_ok());
        assert!(block_on(read_frame::<wire::Ping, _>(&mut Cursor::new(&buf), len - 1)).is_err());
    }

    #[test]
    fn an_endless_varint_and_garbage_are_invalid_data() {
        let endless = [0xffu8; 11];
        let err = block_on(read_frame::<wire::Request, _>(&mut Cursor::new(&endless), MAX_REQUEST)).unwrap_err();
        assert!(err.to_string().contains("longer than 10 bytes"), "{err}");
        let garbage = [5u8, 0xff, 0xff, 0xff, 0xff, 0xff];
        let err = block_on(read_frame::<wire::Request, _>(&mut Cursor::new(&garbage), MAX_REQUEST)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
