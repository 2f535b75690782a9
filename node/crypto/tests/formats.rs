//! The crypto formats on their own: the streaming envelope and every way it can be damaged,
//! one-shot sealing, Merkle tree input checks and forged proofs, canonical records. (Interop with
//! other implementations and with the deployed contracts is tested in airbloc-node.)
#![allow(clippy::unwrap_used)] // a test stops loudly on any failure

use airbloc_crypto::{
    Dek,
    merkle::{self, MerkleError, MerkleTree, record_leaf},
    record::{Record, RecordError},
    stream::{
        self, AsyncDecryptReader, AsyncEncryptWriter, DecryptReader, EncryptWriter, FRAME_HEAD_LEN, HEADER_LEN,
        StreamError, TAG_LEN, stream_error,
    },
};
use alloy_primitives::{B256, keccak256};
use std::io::{Read, Write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SEG: usize = 1 << 12;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

fn encrypt(dek: &Dek, plain: &[u8]) -> Vec<u8> {
    let mut w = EncryptWriter::with_segment_log2(Vec::new(), dek, 12).unwrap();
    // Uneven writes exercise segment boundaries.
    for chunk in plain.chunks(1000) {
        w.write_all(chunk).unwrap();
    }
    w.finish().unwrap()
}

fn decrypt(dek: &Dek, sealed: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut out = Vec::new();
    DecryptReader::new(sealed, dek)
        .read_to_end(&mut out)
        .map_err(|e| stream_error(&e).cloned().expect("stream error"))?;
    Ok(out)
}

/// Byte ranges of each frame in a sealed stream with 4 KiB segments.
fn frames(sealed: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    while at < sealed.len() {
        let len = u32::from_be_bytes(sealed[at + 5..at + 9].try_into().unwrap()) as usize;
        let end = at + FRAME_HEAD_LEN + len + TAG_LEN;
        out.push(at..end);
        at = end;
    }
    out
}

fn sample_records(n: usize) -> Vec<(B256, u64, B256)> {
    (0..n).map(|i| (keccak256(format!("user-{}", i % 5)), i as u64, keccak256(format!("ciphertext-{i}")))).collect()
}

#[test]
fn stream_round_trips_every_size_around_segment_boundaries() {
    let dek = Dek::generate();
    for len in [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 3 * SEG + 17, 100_000] {
        let plain = data(len);
        let sealed = encrypt(&dek, &plain);
        assert_eq!(decrypt(&dek, &sealed).unwrap(), plain, "len {len}");
        // One frame per started segment; empty input still has its final frame.
        let expected_frames = len.div_ceil(SEG).max(1);
        assert_eq!(frames(&sealed).len(), expected_frames, "len {len}");
        // Reading in tiny pieces gives the same bytes.
        let mut reader = DecryptReader::new(sealed.as_slice(), &dek);
        let mut byte = [0u8; 7];
        let mut slow = Vec::new();
        loop {
            let n = reader.read(&mut byte).unwrap();
            if n == 0 {
                break;
            }
            slow.extend_from_slice(&byte[..n]);
        }
        assert_eq!(slow, plain);
    }
}

#[test]
fn each_stream_has_its_own_key_and_nonces() {
    let dek = Dek::generate();
    let plain = data(5000);
    let (a, b) = (encrypt(&dek, &plain), encrypt(&dek, &plain));
    assert_ne!(a, b, "same DEK and plaintext never give the same ciphertext");
    assert_eq!(decrypt(&dek, &a).unwrap(), decrypt(&dek, &b).unwrap());
}

#[tokio::test]
async fn async_and_sync_forms_interoperate() {
    let dek = Dek::generate();
    let plain = data(3 * SEG + 5);

    let mut writer = AsyncEncryptWriter::with_segment_log2(Vec::new(), &dek, 12);
    for chunk in plain.chunks(333) {
        writer.write_all(chunk).await.unwrap();
    }
    writer.shutdown().await.unwrap();
    let sealed = writer.into_inner();
    assert_eq!(decrypt(&dek, &sealed).unwrap(), plain, "async writer → sync reader");

    let sealed = encrypt(&dek, &plain);
    let mut out = Vec::new();
    AsyncDecryptReader::new(sealed.as_slice(), &dek).read_to_end(&mut out).await.unwrap();
    assert_eq!(out, plain, "sync writer → async reader");

    // Async reader surfaces stream errors too.
    let mut cut = sealed.clone();
    cut.truncate(cut.len() - 3);
    let err = AsyncDecryptReader::new(cut.as_slice(), &dek).read_to_end(&mut Vec::new()).await.unwrap_err();
    assert!(matches!(stream_error(&err), Some(StreamError::Truncated { .. })), "{err}");
}

#[test]
fn one_shot_seal_and_open() {
    let dek = Dek::generate();
    for plain in [&b""[..], b"{\"lat\":37.5}", &data(70_000)] {
        let sealed = stream::seal(&dek, plain);
        assert_eq!(stream::open(&dek, &sealed).unwrap(), plain);
    }
    assert_eq!(stream::seal(&dek, b"x").len(), HEADER_LEN + FRAME_HEAD_LEN + 1 + TAG_LEN);
}

#[test]
fn every_kind_of_damage_is_named() {
    let dek = Dek::generate();
    let plain = data(3 * SEG + 100); // frames: 0, 1, 2 full; 3 final
    let sealed = encrypt(&dek, &plain);
    let f = frames(&sealed);
    assert_eq!(f.len(), 4);

    // Wrong key.
    assert_eq!(decrypt(&Dek::generate(), &sealed), Err(StreamError::WrongKey));

    // Truncation: the final frame dropped; cut inside a frame; cut inside the header; nothing.
    assert_eq!(decrypt(&dek, &sealed[..f[3].start]), Err(StreamError::Truncated { segments: 3 }));
    assert_eq!(decrypt(&dek, &sealed[..f[1].start + 20]), Err(StreamError::Truncated { segments: 1 }));
    assert_eq!(decrypt(&dek, &sealed[..10]), Err(StreamError::Truncated { segments: 0 }));
    assert_eq!(decrypt(&dek, &[]), Err(StreamError::Truncated { segments: 0 }));

    // A flipped bit in a segment body, in its tag, and in its clear frame head.
    for (at, segment) in [(f[2].start + FRAME_HEAD_LEN + 5, 2), (f[1].end - 1, 1), (f[3].end - 20, 3)] {
        let mut bad = sealed.clone();
        bad[at] ^= 0x01;
        assert_eq!(decrypt(&dek, &bad), Err(StreamError::Tampered { segment }), "byte {at}");
    }
    let mut bad = sealed.clone();
    bad[f[3].start + 4] ^= 0x02; // unknown flag bit
    assert_eq!(decrypt(&dek, &bad), Err(StreamError::Tampered { segment: 3 }));
    let mut bad = sealed.clone();
    bad[f[0].start + 3] ^= 0x01; // counter says 1 at position 0, but the tag was made for 0
    assert_eq!(decrypt(&dek, &bad), Err(StreamError::Tampered { segment: 0 }));

    // Reordered and duplicated segments.
    let mut swapped = sealed[..HEADER_LEN].to_vec();
    for i in [0, 2, 1, 3] {
        swapped.extend_from_slice(&sealed[f[i].clone()]);
    }
    assert_eq!(decrypt(&dek, &swapped), Err(StreamError::OutOfOrderSegment { position: 1, found: 2 }));
    let mut dropped = sealed[..HEADER_LEN].to_vec();
    for i in [0, 2, 3] {
        dropped.extend_from_slice(&sealed[f[i].clone()]);
    }
    assert_eq!(decrypt(&dek, &dropped), Err(StreamError::OutOfOrderSegment { position: 1, found: 2 }));
    let mut duplicated = sealed[..HEADER_LEN].to_vec();
    for i in [0, 1, 1, 2, 3] {
        duplicated.extend_from_slice(&sealed[f[i].clone()]);
    }
    assert_eq!(decrypt(&dek, &duplicated), Err(StreamError::DuplicatedSegment { position: 2, found: 1 }));

    // Data after the final segment.
    let mut trailing = sealed.clone();
    trailing.push(0);
    assert_eq!(decrypt(&dek, &trailing), Err(StreamError::TrailingData));

    // Header damage: magic, version, segment size, reserved bytes, salt.
    let header_cases: [(usize, u8, StreamError); 5] = [
        (0, b'X', StreamError::BadMagic),
        (4, 9, StreamError::UnsupportedVersion(9)),
        (5, 40, StreamError::BadSegmentSize(40)),
        (6, 1, StreamError::BadHeader),
        (10, 0xFF, StreamError::WrongKey),
    ];
    for (at, value, expected) in header_cases {
        let mut bad = sealed.clone();
        bad[at] = if bad[at] == value { value ^ 1 } else { value };
        assert_eq!(decrypt(&dek, &bad), Err(expected), "header byte {at}");
    }

    // An oversized length field is refused before anything is allocated or read.
    let mut bad = sealed.clone();
    bad[f[0].start + 5..f[0].start + 9].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(decrypt(&dek, &bad), Err(StreamError::OversizedSegment { segment: 0, len: u32::MAX, max: SEG as u32 }));

    // Each error says what happened in words.
    assert!(StreamError::Truncated { segments: 3 }.to_string().contains("truncated"));
    assert!(StreamError::DuplicatedSegment { position: 2, found: 1 }.to_string().contains("duplicated"));
}

#[test]
fn encrypt_writer_dropped_without_finish_reads_as_truncated() {
    let dek = Dek::generate();
    let mut out = Vec::new();
    {
        let mut w = EncryptWriter::with_segment_log2(&mut out, &dek, 12).unwrap();
        w.write_all(&data(2 * SEG + 1)).unwrap();
    }
    assert!(matches!(decrypt(&dek, &out), Err(StreamError::Truncated { .. })));
}

#[test]
fn merkle_rejects_bad_input_and_forged_proofs() {
    assert_eq!(MerkleTree::new(&[]).unwrap_err(), MerkleError::Empty);
    let leaves: Vec<B256> = sample_records(5).iter().map(|(u, i, h)| record_leaf(*u, *i, *h)).collect();
    let tree = MerkleTree::new(&leaves).unwrap();
    assert_eq!(tree.proof(5).unwrap_err(), MerkleError::OutOfRange { index: 5, len: 5 });
    assert_eq!(tree.multiproof(&[1, 1]).unwrap_err(), MerkleError::Duplicate(1));
    let proof = tree.proof(2).unwrap();
    assert!(!merkle::verify(&tree.root(), &leaves[3], &proof));
    let mut multi = tree.multiproof(&[0, 4]).unwrap();
    multi.leaves[0] = B256::repeat_byte(9);
    assert!(!merkle::verify_multi(&tree.root(), &multi));
}

#[test]
fn records_encode_canonically() {
    let record = Record {
        user_id: keccak256("u"),
        data_type: keccak256("t"),
        collected_at_ms: 1_760_000_000_123,
        payload: br#"{"b":1.10,"a":[1e3]}"#.to_vec(),
    };
    let bytes = record.encode().unwrap();
    assert_eq!(Record::decode(&bytes).unwrap(), record);
    assert_eq!(record.encode().unwrap(), bytes, "deterministic");
    // The payload is kept byte for byte: numbers are not re-printed, keys not re-ordered.
    assert!(bytes.ends_with(br#"{"b":1.10,"a":[1e3]}"#));

    assert_eq!(Record::decode(&bytes[..10]), Err(RecordError::TooShort(10)));
    let mut bad = bytes.clone();
    bad[0] = 2;
    assert_eq!(Record::decode(&bad), Err(RecordError::UnsupportedVersion(2)));
    let mut bad = bytes;
    bad.push(0);
    assert!(matches!(Record::decode(&bad), Err(RecordError::LengthMismatch { .. })));
}
