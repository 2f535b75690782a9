//! Streaming envelope encryption: AES-256-GCM in fixed-size segments (the STREAM construction),
//! so data of any size goes through in bounded memory and truncation, reordering, duplication and
//! any flipped bit are all detected — and named.
//!
//! # Format (version 1)
//!
//! ```text
//! header (40 bytes)
//!   magic "ABX1" (4) | version = 1 (1) | log2(segment size) (1) | reserved = 0 (2)
//!   salt (16, random per stream) | key check (16)
//! frame, repeated
//!   frame head (9): counter u32 BE | flags u8 (bit 0 = last) | plaintext length u32 BE
//!   body: ciphertext (length bytes) | GCM tag (16)
//! ```
//!
//! Keys: HKDF-SHA256(ikm = DEK, salt, info = "airbloc/stream/v1") yields the segment key (32),
//! a nonce prefix (7) and the key check (16). Each stream therefore has its own key, so one DEK
//! can seal any number of streams and records without nonce reuse, and a wrong DEK is reported
//! before any data is touched. The key check also makes the encryption key-committing.
//!
//! Segment `i` is sealed with nonce = prefix (7) ‖ i as u32 BE (4) ‖ flags (1) and additional
//! data = header ‖ frame head, so every clear field is authenticated. Every frame but the last
//! carries exactly one full segment; the last frame has the last flag and 0..=segment bytes.
//! A stream always ends with a last frame, even for empty input.

use super::Dek;
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey},
    hkdf,
};
use std::{
    io::{self, BufRead, Read, Write},
    ops::Range,
    pin::Pin,
    task::{Context, Poll, ready},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Magic bytes opening every stream.
pub const MAGIC: [u8; 4] = *b"ABX1";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 40;
/// Frame head length in bytes.
pub const FRAME_HEAD_LEN: usize = 9;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Default segment size: 64 KiB (log2 = 16).
pub const DEFAULT_SEGMENT_LOG2: u8 = 16;
/// Smallest allowed segment size (4 KiB).
pub const MIN_SEGMENT_LOG2: u8 = 12;
/// Largest allowed segment size (16 MiB): bounds what a reader allocates for a hostile header.
pub const MAX_SEGMENT_LOG2: u8 = 24;

const HKDF_INFO: &[u8] = b"airbloc/stream/v1";
const FLAG_LAST: u8 = 1;

/// Everything that can be wrong with a stream. Each names what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("not an airbloc encrypted stream (bad magic bytes)")]
    BadMagic,
    #[error("unsupported stream version {0} (this build reads version {VERSION}) — upgrade airblocd")]
    UnsupportedVersion(u8),
    #[error("invalid segment size 2^{0} in the header (allowed 2^{MIN_SEGMENT_LOG2} to 2^{MAX_SEGMENT_LOG2})")]
    BadSegmentSize(u8),
    #[error("the stream header is damaged (reserved bytes are not zero)")]
    BadHeader,
    #[error("wrong key, or the stream header was altered")]
    WrongKey,
    #[error("stream is truncated: it ends after {segments} complete segment(s) without its final segment")]
    Truncated { segments: u32 },
    #[error("segment {segment} declares {len} bytes, more than the segment size {max}")]
    OversizedSegment { segment: u32, len: u32, max: u32 },
    #[error("segment {found} appears again at position {position}: the stream has a duplicated segment")]
    DuplicatedSegment { position: u32, found: u32 },
    #[error("segment {found} appears at position {position}: segments were reordered or dropped")]
    OutOfOrderSegment { position: u32, found: u32 },
    #[error("segment {segment} was tampered with (authentication failed)")]
    Tampered { segment: u32 },
    #[error("data follows the final segment")]
    TrailingData,
    #[error("stream is too long: more than 2^32 segments")]
    TooManySegments,
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> Self {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// The per-stream key material derived from a DEK and the header salt.
struct StreamKey {
    key: LessSafeKey,
    prefix: [u8; 7],
    header: [u8; HEADER_LEN],
}

struct OkmLen(usize);
impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// (segment key, nonce prefix, key check) for a DEK and salt.
fn derive(dek: &Dek, salt: &[u8; 16]) -> (LessSafeKey, [u8; 7], [u8; 16]) {
    let mut okm = zeroize::Zeroizing::new([0u8; 55]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(dek.as_bytes())
        .expand(&[HKDF_INFO], OkmLen(55))
        .and_then(|okm_| okm_.fill(okm.as_mut()))
        .expect("55 bytes is a valid HKDF-SHA256 output length");
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).expect("32-byte AES-256 key"));
    let mut prefix = [0u8; 7];
    prefix.copy_from_slice(&okm[32..39]);
    let mut check = [0u8; 16];
    check.copy_from_slice(&okm[39..55]);
    (key, prefix, check)
}

impl StreamKey {
    fn new(dek: &Dek, segment_log2: u8) -> Self {
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        let (key, prefix, check) = derive(dek, &salt);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = VERSION;
        header[5] = segment_log2;
        header[8..24].copy_from_slice(&salt);
        header[24..40].copy_from_slice(&check);
        Self { key, prefix, header }
    }

    /// Parses and checks a header; returns the key and the segment size.
    fn open(dek: &Dek, header: &[u8]) -> Result<(Self, usize), StreamError> {
        if header[..4] != MAGIC {
            return Err(StreamError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(StreamError::UnsupportedVersion(header[4]));
        }
        let log2 = header[5];
        if !(MIN_SEGMENT_LOG2..=MAX_SEGMENT_LOG2).contains(&log2) {
            return Err(StreamError::BadSegmentSize(log2));
        }
        if header[6] != 0 || header[7] != 0 {
            return Err(StreamError::BadHeader);
        }
        let salt: [u8; 16] = header[8..24].try_into().expect("16 bytes");
        let (key, prefix, check) = derive(dek, &salt);
        if !ring_eq(&check, &header[24..40]) {
            return Err(StreamError::WrongKey);
        }
        let mut copy = [0u8; HEADER_LEN];
        copy.copy_from_slice(&header[..HEADER_LEN]);
        Ok((Self { key, prefix, header: copy }, 1usize << log2))
    }

    fn nonce(&self, counter: u32, flags: u8) -> Nonce {
        let mut n = [0u8; 12];
        n[..7].copy_from_slice(&self.prefix);
        n[7..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = flags;
        Nonce::assume_unique_for_key(n)
    }

    fn aad(&self, head: &[u8; FRAME_HEAD_LEN]) -> [u8; HEADER_LEN + FRAME_HEAD_LEN] {
        let mut aad = [0u8; HEADER_LEN + FRAME_HEAD_LEN];
        aad[..HEADER_LEN].copy_from_slice(&self.header);
        aad[HEADER_LEN..].copy_from_slice(head);
        aad
    }

    fn seal(&self, head: &[u8; FRAME_HEAD_LEN], data: &mut [u8]) -> Tag {
        let (counter, flags, _) = parse_head(head);
        self.key
            .seal_in_place_separate_tag(self.nonce(counter, flags), Aad::from(self.aad(head)), data)
            .expect("segment within AES-GCM limits")
    }

    /// Opens `body` (ciphertext ‖ tag) in place for the frame `head`, read at `position`.
    fn open_frame(&self, position: u32, head: &[u8; FRAME_HEAD_LEN], body: &mut [u8]) -> Result<(), StreamError> {
        let (counter, flags, _) = parse_head(head);
        let opened =
            self.key.open_in_place(self.nonce(counter, flags), Aad::from(self.aad(head)), body).map(|_| ()).is_ok();
        match (opened, counter.cmp(&position)) {
            (true, std::cmp::Ordering::Equal) => Ok(()),
            (true, std::cmp::Ordering::Less) => Err(StreamError::DuplicatedSegment { position, found: counter }),
            (true, std::cmp::Ordering::Greater) => Err(StreamError::OutOfOrderSegment { position, found: counter }),
            (false, _) => Err(StreamError::Tampered { segment: position }),
        }
    }
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

fn frame_head(counter: u32, last: bool, len: usize) -> [u8; FRAME_HEAD_LEN] {
    let mut head = [0u8; FRAME_HEAD_LEN];
    head[..4].copy_from_slice(&counter.to_be_bytes());
    head[4] = if last { FLAG_LAST } else { 0 };
    head[5..9].copy_from_slice(&(len as u32).to_be_bytes());
    head
}

fn parse_head(head: &[u8; FRAME_HEAD_LEN]) -> (u32, u8, u32) {
    let counter = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
    let len = u32::from_be_bytes(head[5..9].try_into().expect("4 bytes"));
    (counter, head[4], len)
}

// ------------------------------------------------------------------------------------ sealing

/// Seals segments for one stream; the sync and async writers drive it.
struct Sealer {
    key: StreamKey,
    segment: usize,
    counter: u32,
    /// Frame being assembled: head ‖ plaintext (sealed in place) ‖ tag.
    frame: Vec<u8>,
}

impl Sealer {
    fn new(dek: &Dek, segment_log2: u8) -> Self {
        assert!((MIN_SEGMENT_LOG2..=MAX_SEGMENT_LOG2).contains(&segment_log2), "segment size out of range");
        let segment = 1usize << segment_log2;
        let mut frame = Vec::with_capacity(FRAME_HEAD_LEN + segment + TAG_LEN);
        frame.resize(FRAME_HEAD_LEN, 0);
        Self { key: StreamKey::new(dek, segment_log2), segment, counter: 0, frame }
    }

    fn buffered(&self) -> usize {
        self.frame.len() - FRAME_HEAD_LEN
    }

    /// Copies as much of `data` as fits into the current segment; returns how much.
    fn absorb(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.segment - self.buffered());
        self.frame.extend_from_slice(&data[..n]);
        n
    }

    fn is_full(&self) -> bool {
        self.buffered() == self.segment
    }

    /// Seals the buffered segment; the frame bytes are ready in `self.frame` afterwards.
    fn seal(&mut self, last: bool) -> Result<(), StreamError> {
        let len = self.buffered();
        let head = frame_head(self.counter, last, len);
        self.frame[..FRAME_HEAD_LEN].copy_from_slice(&head);
        let tag = self.key.seal(&head, &mut self.frame[FRAME_HEAD_LEN..]);
        self.frame.extend_from_slice(tag.as_ref());
        self.counter = self.counter.checked_add(1).ok_or(StreamError::TooManySegments)?;
        Ok(())
    }

    /// Starts a new, empty frame after the sealed one was written out.
    fn reset(&mut self) {
        self.frame.truncate(FRAME_HEAD_LEN);
    }
}

/// Bytes of segments sealed or opened together. With more than one core they are processed in
/// parallel (each segment has its own nonce, so they are independent); memory per stream stays
/// bounded at about this much.
const BATCH_BYTES: usize = 4 << 20;

/// Segments per batch for a segment size.
fn batch_slots(segment: usize) -> usize {
    (BATCH_BYTES / segment).clamp(2, 256)
}

/// Seals `slots` (laid out back to back, `slot` bytes each: head ‖ plaintext ‖ tag) in place.
/// Every slot is a full non-final segment except, when `final_len` is given, the last one.
fn seal_slots(key: &StreamKey, buf: &mut [u8], slot: usize, base: u32, count: usize, final_len: Option<usize>) {
    let segment = slot - FRAME_HEAD_LEN - TAG_LEN;
    let work = |(i, chunk): (usize, &mut [u8])| {
        let last = final_len.is_some() && i == count - 1;
        let len = if last { final_len.unwrap_or(segment) } else { segment };
        let head = frame_head(base + i as u32, last, len);
        chunk[..FRAME_HEAD_LEN].copy_from_slice(&head);
        let tag = key.seal(&head, &mut chunk[FRAME_HEAD_LEN..FRAME_HEAD_LEN + len]);
        chunk[FRAME_HEAD_LEN + len..FRAME_HEAD_LEN + len + TAG_LEN].copy_from_slice(tag.as_ref());
    };
    let region = &mut buf[..count * slot];
    if count > 1 {
        use rayon::prelude::*;
        region.par_chunks_mut(slot).enumerate().for_each(work);
    } else {
        region.chunks_mut(slot).enumerate().for_each(work);
    }
}

/// Encrypts everything written to it into `inner`. Call [`EncryptWriter::finish`] at the end:
/// a stream dropped without it has no final segment and readers report it as truncated.
pub struct EncryptWriter<W: Write> {
    inner: W,
    key: StreamKey,
    segment: usize,
    slot: usize,
    counter: u32,
    /// `batch_slots` slots of head ‖ segment ‖ tag.
    batch: Vec<u8>,
    batch_slots: usize,
    /// Full slots before the current one.
    slots: usize,
    /// Plaintext bytes in the current slot.
    fill: usize,
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the header and returns a writer with 64 KiB segments.
    pub fn new(inner: W, dek: &Dek) -> io::Result<Self> {
        Self::with_segment_log2(inner, dek, DEFAULT_SEGMENT_LOG2)
    }

    /// As [`EncryptWriter::new`] with segments of 2^`segment_log2` bytes (12..=24).
    pub fn with_segment_log2(mut inner: W, dek: &Dek, segment_log2: u8) -> io::Result<Self> {
        assert!((MIN_SEGMENT_LOG2..=MAX_SEGMENT_LOG2).contains(&segment_log2), "segment size out of range");
        let key = StreamKey::new(dek, segment_log2);
        inner.write_all(&key.header)?;
        let segment = 1usize << segment_log2;
        let slot = FRAME_HEAD_LEN + segment + TAG_LEN;
        let batch_slots = batch_slots(segment);
        Ok(Self { inner, key, segment, slot, counter: 0, batch: Vec::new(), batch_slots, slots: 0, fill: 0 })
    }

    fn advance_counter(&mut self, n: usize) -> Result<u32, StreamError> {
        let base = self.counter;
        self.counter =
            u32::try_from(n).ok().and_then(|n| self.counter.checked_add(n)).ok_or(StreamError::TooManySegments)?;
        Ok(base)
    }

    /// Seals and writes a batch of full, non-final slots.
    fn flush_batch(&mut self) -> io::Result<()> {
        let count = self.batch_slots;
        let base = self.advance_counter(count)?;
        seal_slots(&self.key, &mut self.batch, self.slot, base, count, None);
        self.inner.write_all(&self.batch[..count * self.slot])?;
        self.slots = 0;
        Ok(())
    }

    /// Seals the final segment, flushes, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.batch.is_empty() {
            self.batch.resize(self.slot, 0);
        }
        let count = self.slots + 1;
        let base = self.advance_counter(count)?;
        seal_slots(&self.key, &mut self.batch, self.slot, base, count, Some(self.fill));
        let end = self.slots * self.slot + FRAME_HEAD_LEN + self.fill + TAG_LEN;
        self.inner.write_all(&self.batch[..end])?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.batch.is_empty() {
            // Allocated on first use: a writer for a tiny payload needs one slot only.
            let slots = if data.len() > self.segment { self.batch_slots } else { 1 };
            self.batch.resize(slots * self.slot, 0);
        }
        // A full segment is sealed as non-final only once more data arrives.
        if self.fill == self.segment {
            self.slots += 1;
            self.fill = 0;
            if self.batch.len() < (self.slots + 1) * self.slot {
                self.batch.resize(self.batch_slots * self.slot, 0);
            }
            if self.slots == self.batch_slots {
                self.flush_batch()?;
            }
        }
        let n = data.len().min(self.segment - self.fill);
        let at = self.slots * self.slot + FRAME_HEAD_LEN + self.fill;
        self.batch[at..at + n].copy_from_slice(&data[..n]);
        self.fill += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ------------------------------------------------------------------------------------ opening

/// What an [`Opener`] needs next.
enum Need {
    /// Exactly this many bytes (EOF before that is truncation).
    Exactly(usize),
    /// One more byte, to check that nothing follows the final segment.
    EndCheck,
}

enum Phase {
    Header,
    Head,
    Body { head: [u8; FRAME_HEAD_LEN], last: bool },
    End,
    Done,
}

/// Opens one stream, fed by the sync and async readers.
struct Opener {
    dek: Dek,
    key: Option<StreamKey>,
    segment: usize,
    position: u32,
    phase: Phase,
    buf: Vec<u8>,
    /// Decrypted bytes in `buf` not yet handed out.
    plain: Range<usize>,
}

impl Opener {
    fn new(dek: &Dek) -> Self {
        Self {
            dek: dek.clone(),
            key: None,
            segment: 0,
            position: 0,
            phase: Phase::Header,
            buf: Vec::with_capacity(HEADER_LEN),
            plain: 0..0,
        }
    }

    fn need(&self) -> Option<Need> {
        match &self.phase {
            Phase::Header => Some(Need::Exactly(HEADER_LEN)),
            Phase::Head => Some(Need::Exactly(FRAME_HEAD_LEN)),
            Phase::Body { head, .. } => Some(Need::Exactly(parse_head(head).2 as usize + TAG_LEN)),
            Phase::End => Some(Need::EndCheck),
            Phase::Done => None,
        }
    }

    /// Bytes `buf` must hold before [`Opener::step`] can proceed.
    fn target(&self) -> usize {
        match self.need() {
            Some(Need::Exactly(n)) => n,
            Some(Need::EndCheck) => 1,
            None => 0,
        }
    }

    /// Advances with what `buf` holds; `eof` says the source has no more bytes.
    /// Leaves decrypted bytes in `buf[plain]`.
    fn step(&mut self, eof: bool) -> Result<(), StreamError> {
        let have = self.buf.len();
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Header => {
                if have < HEADER_LEN {
                    // An empty source is a truncated stream too: every stream has a header.
                    debug_assert!(eof);
                    return Err(if have >= 4 && self.buf[..4] != MAGIC {
                        StreamError::BadMagic
                    } else {
                        StreamError::Truncated { segments: 0 }
                    });
                }
                let (key, segment) = StreamKey::open(&self.dek, &self.buf)?;
                self.key = Some(key);
                self.segment = segment;
                self.buf = Vec::with_capacity(segment + TAG_LEN);
                self.phase = Phase::Head;
            }
            Phase::Head => {
                if have < FRAME_HEAD_LEN {
                    return Err(StreamError::Truncated { segments: self.position });
                }
                let head: [u8; FRAME_HEAD_LEN] = self.buf[..FRAME_HEAD_LEN].try_into().expect("9 bytes");
                let (_, flags, len) = parse_head(&head);
                if len as usize > self.segment {
                    return Err(StreamError::OversizedSegment {
                        segment: self.position,
                        len,
                        max: self.segment as u32,
                    });
                }
                let last = flags == FLAG_LAST;
                if (flags & !FLAG_LAST) != 0 || (!last && len as usize != self.segment) {
                    return Err(StreamError::Tampered { segment: self.position });
                }
                self.buf.clear();
                self.phase = Phase::Body { head, last };
            }
            Phase::Body { head, last } => {
                let len = parse_head(&head).2 as usize;
                if have < len + TAG_LEN {
                    return Err(StreamError::Truncated { segments: self.position });
                }
                let key = self.key.as_ref().expect("header parsed");
                key.open_frame(self.position, &head, &mut self.buf[..len + TAG_LEN])?;
                self.plain = 0..len;
                if len == 0 {
                    self.buf.clear();
                }
                self.position = self.position.checked_add(1).ok_or(StreamError::TooManySegments)?;
                self.phase = if last { Phase::End } else { Phase::Head };
            }
            Phase::End => {
                if have > 0 {
                    return Err(StreamError::TrailingData);
                }
                debug_assert!(eof);
                self.phase = Phase::Done;
            }
            Phase::Done => {}
        }
        Ok(())
    }

    /// Drops handed-out plaintext once it is all consumed, making room for the next frame.
    fn consume(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        self.plain.start += n;
        if self.plain.is_empty() {
            self.plain = 0..0;
            self.buf.clear();
        }
    }

    fn plaintext(&self) -> &[u8] {
        &self.buf[self.plain.clone()]
    }
}

/// Decrypts a stream read from `inner`, a batch of segments at a time (in parallel when the
/// machine has several cores). Errors come back as `io::ErrorKind::InvalidData` wrapping a
/// [`StreamError`] (see [`stream_error`]).
pub struct DecryptReader<R: Read> {
    inner: R,
    dek: Dek,
    key: Option<StreamKey>,
    segment: usize,
    slot: usize,
    position: u32,
    buf: Vec<u8>,
    /// Plaintext ranges in `buf` still to hand out, in order.
    ready: std::collections::VecDeque<Range<usize>>,
    done: bool,
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_full<R: Read>(inner: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match inner.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl<R: Read> DecryptReader<R> {
    pub fn new(inner: R, dek: &Dek) -> Self {
        Self {
            inner,
            dek: dek.clone(),
            key: None,
            segment: 0,
            slot: 0,
            position: 0,
            buf: Vec::new(),
            ready: std::collections::VecDeque::new(),
            done: false,
        }
    }

    fn open_header(&mut self) -> Result<(), StreamError> {
        let mut header = [0u8; HEADER_LEN];
        let n = read_full(&mut self.inner, &mut header).map_err(|_| StreamError::Truncated { segments: 0 })?;
        if n < HEADER_LEN {
            return Err(if n >= 4 && header[..4] != MAGIC {
                StreamError::BadMagic
            } else {
                StreamError::Truncated { segments: 0 }
            });
        }
        let (key, segment) = StreamKey::open(&self.dek, &header)?;
        self.key = Some(key);
        self.segment = segment;
        self.slot = FRAME_HEAD_LEN + segment + TAG_LEN;
        Ok(())
    }

    /// Reads the next batch of frames and opens them.
    fn next_batch(&mut self) -> io::Result<()> {
        if self.key.is_none() {
            self.open_header()?;
        }
        let capacity = batch_slots(self.segment) * self.slot;
        if self.buf.len() != capacity {
            self.buf.resize(capacity, 0);
        }
        let n = read_full(&mut self.inner, &mut self.buf)?;
        let at_eof = n < capacity;

        // Walk the frame heads; non-final frames are all one size, so a full batch holds a
        // whole number of them and frames never straddle two batches.
        let mut frames: Vec<(usize, [u8; FRAME_HEAD_LEN])> = Vec::new();
        let mut off = 0;
        let mut problem: Option<StreamError> = None;
        let mut last_seen = false;
        while off < n && problem.is_none() {
            let position = self.position + frames.len() as u32;
            if off + FRAME_HEAD_LEN > n {
                problem = Some(StreamError::Truncated { segments: position });
                break;
            }
            let head: [u8; FRAME_HEAD_LEN] = self.buf[off..off + FRAME_HEAD_LEN].try_into().expect("9 bytes");
            let (_, flags, len) = parse_head(&head);
            let last = flags == FLAG_LAST;
            if len as usize > self.segment {
                problem = Some(StreamError::OversizedSegment { segment: position, len, max: self.segment as u32 });
            } else if (flags & !FLAG_LAST) != 0 || (!last && len as usize != self.segment) {
                problem = Some(StreamError::Tampered { segment: position });
            } else if off + FRAME_HEAD_LEN + len as usize + TAG_LEN > n {
                problem = Some(StreamError::Truncated { segments: position });
            } else {
                frames.push((off, head));
                off += FRAME_HEAD_LEN + len as usize + TAG_LEN;
                if last {
                    last_seen = true;
                    if off < n || (!at_eof && read_full(&mut self.inner, &mut [0u8; 1])? > 0) {
                        problem = Some(StreamError::TrailingData);
                    }
                    break;
                }
            }
        }
        if problem.is_none() && !last_seen && at_eof {
            problem = Some(StreamError::Truncated { segments: self.position + frames.len() as u32 });
        }

        // Open every complete frame; report the earliest failure, then any framing problem.
        let key = self.key.as_ref().expect("header read");
        let base = self.position;
        let mut bodies: Vec<(usize, &[u8; FRAME_HEAD_LEN], &mut [u8])> = Vec::with_capacity(frames.len());
        let mut rest: &mut [u8] = &mut self.buf[..off];
        let mut consumed = 0;
        for (i, (start, head)) in frames.iter().enumerate() {
            let len = parse_head(head).2 as usize;
            let (_, tail) = std::mem::take(&mut rest).split_at_mut(start - consumed);
            let (frame, tail) = tail.split_at_mut(FRAME_HEAD_LEN + len + TAG_LEN);
            consumed = start + FRAME_HEAD_LEN + len + TAG_LEN;
            rest = tail;
            bodies.push((i, head, &mut frame[FRAME_HEAD_LEN..]));
        }
        let open =
            |(i, head, body): (usize, &[u8; FRAME_HEAD_LEN], &mut [u8])| key.open_frame(base + i as u32, head, body);
        let results: Vec<Result<(), StreamError>> = if bodies.len() > 1 {
            use rayon::prelude::*;
            bodies.into_par_iter().map(open).collect()
        } else {
            bodies.into_iter().map(open).collect()
        };
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(err.into());
        }
        if let Some(err) = problem {
            return Err(err.into());
        }
        for (start, head) in &frames {
            let len = parse_head(head).2 as usize;
            if len > 0 {
                self.ready.push_back(start + FRAME_HEAD_LEN..start + FRAME_HEAD_LEN + len);
            }
        }
        self.position += frames.len() as u32;
        self.done = last_seen;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for DecryptReader<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.ready.is_empty() && !self.done {
            self.next_batch()?;
        }
        Ok(match self.ready.front() {
            Some(range) => &self.buf[range.clone()],
            None => &[],
        })
    }

    fn consume(&mut self, n: usize) {
        if let Some(front) = self.ready.front_mut() {
            front.start += n;
            if front.start >= front.end {
                self.ready.pop_front();
            }
        }
    }
}

/// The [`StreamError`] inside an error from a reader or writer of this module, if any.
pub fn stream_error(e: &io::Error) -> Option<&StreamError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<StreamError>())
}

// ------------------------------------------------------------------------------------ one-shot

/// Seals a small payload (a record) as a one-segment stream.
pub fn seal(dek: &Dek, plaintext: &[u8]) -> Vec<u8> {
    let log2 = segment_log2_for(plaintext.len());
    let mut out = Vec::with_capacity(HEADER_LEN + FRAME_HEAD_LEN + plaintext.len() + TAG_LEN);
    let mut writer = EncryptWriter::with_segment_log2(&mut out, dek, log2).expect("writing to a Vec cannot fail");
    writer.write_all(plaintext).expect("writing to a Vec cannot fail");
    writer.finish().expect("writing to a Vec cannot fail");
    out
}

/// Opens what [`seal`] (or any writer of this module) produced.
pub fn open(dek: &Dek, sealed: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::with_capacity(sealed.len().saturating_sub(HEADER_LEN + FRAME_HEAD_LEN + TAG_LEN));
    match DecryptReader::new(sealed, dek).read_to_end(&mut out) {
        Ok(_) => Ok(out),
        Err(e) => Err(stream_error(&e).cloned().unwrap_or(StreamError::Truncated { segments: 0 })),
    }
}

/// The smallest allowed segment size holding `len` bytes in one segment, or the largest.
fn segment_log2_for(len: usize) -> u8 {
    let mut log2 = MIN_SEGMENT_LOG2;
    while log2 < MAX_SEGMENT_LOG2 && (1usize << log2) < len {
        log2 += 1;
    }
    log2
}

// ------------------------------------------------------------------------------------ async

/// Async counterpart of [`EncryptWriter`]: `shutdown()` seals the final segment.
pub struct AsyncEncryptWriter<W> {
    inner: W,
    sealer: Sealer,
    /// Bytes of the pending header or frame already written to `inner`.
    written: usize,
    pending: Pending,
}

enum Pending {
    /// Writing the header.
    Header,
    /// Writing a sealed frame; `last` says whether it was the final one.
    Frame { last: bool },
    /// Nothing to write.
    Idle,
    /// Final frame written; the stream is complete.
    Finished,
}

impl<W: AsyncWrite + Unpin> AsyncEncryptWriter<W> {
    pub fn new(inner: W, dek: &Dek) -> Self {
        Self::with_segment_log2(inner, dek, DEFAULT_SEGMENT_LOG2)
    }

    pub fn with_segment_log2(inner: W, dek: &Dek, segment_log2: u8) -> Self {
        Self { inner, sealer: Sealer::new(dek, segment_log2), written: 0, pending: Pending::Header }
    }

    /// Writes out whatever is pending.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let source: &[u8] = match self.pending {
                Pending::Header => &self.sealer.key.header,
                Pending::Frame { .. } => &self.sealer.frame,
                Pending::Idle | Pending::Finished => return Poll::Ready(Ok(())),
            };
            if self.written == source.len() {
                self.written = 0;
                if matches!(self.pending, Pending::Frame { .. }) {
                    self.sealer.reset();
                }
                self.pending = if matches!(self.pending, Pending::Frame { last: true }) {
                    Pending::Finished
                } else {
                    Pending::Idle
                };
                continue;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &source[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
    }

    /// The inner writer, once the stream is finished.
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if matches!(this.pending, Pending::Finished) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream already finished")));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.sealer.is_full() {
            this.sealer.seal(false)?;
            this.pending = Pending::Frame { last: false };
            ready!(this.poll_drain(cx))?;
        }
        Poll::Ready(Ok(this.sealer.absorb(data)))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if matches!(this.pending, Pending::Idle) {
            this.sealer.seal(true)?;
            this.pending = Pending::Frame { last: true };
            ready!(this.poll_drain(cx))?;
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Async counterpart of [`DecryptReader`].
pub struct AsyncDecryptReader<R> {
    inner: R,
    opener: Opener,
}

impl<R: AsyncRead + Unpin> AsyncDecryptReader<R> {
    pub fn new(inner: R, dek: &Dek) -> Self {
        Self { inner, opener: Opener::new(dek) }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.opener.plain.is_empty() && !matches!(this.opener.phase, Phase::Done) {
            let target = this.opener.target();
            let mut eof = false;
            while this.opener.buf.len() < target {
                let start = this.opener.buf.len();
                this.opener.buf.resize(target, 0);
                let mut read_buf = ReadBuf::new(&mut this.opener.buf[start..]);
                let polled = Pin::new(&mut this.inner).poll_read(cx, &mut read_buf);
                let n = read_buf.filled().len();
                this.opener.buf.truncate(start + n);
                ready!(polled)?;
                if n == 0 {
                    eof = true;
                    break;
                }
            }
            this.opener.step(eof)?;
        }
        let available = this.opener.plaintext();
        let n = available.len().min(out.remaining());
        out.put_slice(&available[..n]);
        this.opener.consume(n);
        Poll::Ready(Ok(()))
    }
}
