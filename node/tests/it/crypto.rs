//! Crypto formats: the streaming envelope and its failure modes, ECIES key wrapping against
//! eciespy, the Merkle tree against @openzeppelin/merkle-tree and DataRegistry, EIP-712 against
//! eth-account, canonical records, identity hashing, and secrets that never print.

use airbloc_node::{
    chain::contracts::{AppRegistry, DataRegistry, DataTypeRegistry},
    crypto::{
        Dek,
        eip712::{BundleAnnouncement, node_domain},
        identity::IdentityHasher,
        merkle::{self, MerkleError, MerkleTree, record_leaf},
        record::{Record, RecordError},
        stream::{
            self, AsyncDecryptReader, AsyncEncryptWriter, DecryptReader, EncryptWriter, FRAME_HEAD_LEN, HEADER_LEN,
            StreamError, TAG_LEN, stream_error,
        },
        wrap::{self, WrapError},
    },
    keys::NodeKey,
    mined,
    test_utils::{deploy_local, interop_script, python, run_json, spawn_anvil},
};
use alloy::{
    primitives::{Address, B256, U256, keccak256},
    signers::{Signature, Signer},
    sol_types::SolStruct,
};
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

// ------------------------------------------------------------------------------- key wrapping

#[test]
fn wrap_round_trip_and_failures() {
    let key = NodeKey::random();
    let dek = Dek::generate();
    let wrapped = wrap::wrap_dek(&key.public_key_uncompressed(), &dek).unwrap();
    assert_eq!(wrapped.len(), wrap::WRAPPED_DEK_LEN);
    assert_eq!(wrap::unwrap_dek(key.secret_bytes(), &wrapped).unwrap(), dek);

    // A compressed recipient key works too.
    let compressed = k256::PublicKey::from_sec1_bytes(&key.public_key_uncompressed()).unwrap();
    let compressed = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&compressed, true);
    let wrapped2 = wrap::wrap_dek(compressed.as_bytes(), &dek).unwrap();
    assert_eq!(wrap::unwrap_dek(key.secret_bytes(), &wrapped2).unwrap(), dek);

    assert_eq!(wrap::unwrap_dek(NodeKey::random().secret_bytes(), &wrapped), Err(WrapError::DecryptionFailed));
    let mut tampered = wrapped.clone();
    tampered[100] ^= 1;
    assert_eq!(wrap::unwrap_dek(key.secret_bytes(), &tampered), Err(WrapError::DecryptionFailed));
    let mut bad_point = wrapped.clone();
    bad_point[10] ^= 1;
    assert_eq!(wrap::unwrap_dek(key.secret_bytes(), &bad_point), Err(WrapError::BadEphemeralKey));
    assert_eq!(wrap::unwrap_dek(key.secret_bytes(), &wrapped[..50]), Err(WrapError::TooShort { len: 50 }));
    assert_eq!(
        wrap::unwrap_dek(key.secret_bytes(), &[wrapped.clone(), vec![0]].concat()),
        Err(WrapError::WrongLength { len: wrap::WRAPPED_DEK_LEN + 1 })
    );

    assert_eq!(wrap::wrap(&[4u8; 64], b"x"), Err(WrapError::MalformedPublicKey { len: 64 }));
    assert_eq!(wrap::wrap(&[5u8; 65], b"x"), Err(WrapError::MalformedPublicKey { len: 65 }));
    let mut off_curve = [1u8; 65];
    off_curve[0] = 4;
    assert_eq!(wrap::wrap(&off_curve, b"x"), Err(WrapError::PointNotOnCurve));
}

#[test]
fn wrap_interoperates_with_eciespy_both_ways() {
    let key = NodeKey::random();
    let secret = hex::encode(key.secret_bytes());
    let script = interop_script("ecies_interop.py");
    let script = script.to_str().unwrap();
    for len in [32usize, 0, 1000] {
        let plain = data(len);
        // Ours → eciespy.
        let wrapped = wrap::wrap(&key.public_key_uncompressed(), &plain).unwrap();
        let answer = run_json(
            &python(),
            &[script],
            &serde_json::json!({"mode": "decrypt", "secret_key": secret, "data": hex::encode(&wrapped)}),
        );
        assert_eq!(hex::decode(answer["data"].as_str().unwrap()).unwrap(), plain, "eciespy unwraps ours ({len})");
        // eciespy → ours.
        let answer = run_json(
            &python(),
            &[script],
            &serde_json::json!({
                "mode": "encrypt",
                "public_key": hex::encode(key.public_key_uncompressed()),
                "data": hex::encode(&plain),
            }),
        );
        let theirs = hex::decode(answer["data"].as_str().unwrap()).unwrap();
        assert_eq!(wrap::unwrap(key.secret_bytes(), &theirs).unwrap().as_slice(), plain.as_slice());
    }
}

// ------------------------------------------------------------------------------- Merkle trees

fn sample_records(n: usize) -> Vec<(B256, u64, B256)> {
    (0..n).map(|i| (keccak256(format!("user-{}", i % 5)), i as u64, keccak256(format!("ciphertext-{i}")))).collect()
}

#[test]
fn merkle_matches_openzeppelin_merkle_tree() {
    let script = interop_script("merkle.mjs");
    for n in [1usize, 2, 3, 7, 16, 33] {
        let records = sample_records(n);
        let leaves: Vec<B256> = records.iter().map(|(u, i, h)| record_leaf(*u, *i, *h)).collect();
        let tree = MerkleTree::new(&leaves).unwrap();
        let proof_indices: Vec<usize> = (0..n).collect();
        let multi_indices: Vec<usize> = (0..n).filter(|i| i % 3 != 1).collect();
        let answer = run_json(
            std::path::Path::new("node"),
            &[script.to_str().unwrap()],
            &serde_json::json!({
                "values": records.iter().map(|(u, i, h)| serde_json::json!([u.to_string(), i.to_string(), h.to_string()])).collect::<Vec<_>>(),
                "proofs": proof_indices,
                "multi": multi_indices,
            }),
        );
        let parse = |v: &serde_json::Value| v.as_str().unwrap().parse::<B256>().unwrap();
        assert_eq!(tree.root(), parse(&answer["root"]), "root of {n}");
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(*leaf, parse(&answer["leaves"][i]), "leaf hash {i}");
            let theirs: Vec<B256> = answer["proofs"][i].as_array().unwrap().iter().map(parse).collect();
            assert_eq!(tree.proof(i).unwrap(), theirs, "proof {i} of {n}");
            assert!(merkle::verify(&tree.root(), leaf, &theirs));
        }
        let ours = tree.multiproof(&multi_indices).unwrap();
        let theirs = &answer["multi"];
        assert_eq!(ours.leaves, theirs["leaves"].as_array().unwrap().iter().map(parse).collect::<Vec<_>>());
        assert_eq!(ours.proof, theirs["proof"].as_array().unwrap().iter().map(parse).collect::<Vec<_>>());
        assert_eq!(
            ours.proof_flags,
            theirs["proofFlags"].as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect::<Vec<_>>()
        );
        assert!(merkle::verify_multi(&tree.root(), &ours), "multiproof of {n} verifies");
    }
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

#[tokio::test]
async fn merkle_proofs_verify_on_the_deployed_data_registry() {
    let anvil = spawn_anvil();
    let (key, provider, deployment) = deploy_local(&anvil, false).await;
    let at = |name| deployment.address(name).unwrap();
    mined!(AppRegistry::new(at("AppRegistry"), &provider).register("app".into()));
    mined!(DataTypeRegistry::new(at("DataTypeRegistry"), &provider).register("t".into(), keccak256("{}")));

    let records = sample_records(37);
    let leaves: Vec<B256> = records.iter().map(|(u, i, h)| record_leaf(*u, *i, *h)).collect();
    let tree = MerkleTree::new(&leaves).unwrap();
    let data = DataRegistry::new(at("DataRegistry"), &provider);
    let (app, data_type) = (keccak256("app"), keccak256("t"));
    mined!(data.registerBundle(app, data_type, tree.root(), 37, keccak256("body"), 1, "".into()));
    let bundle =
        data.bundleIdOf(key.address(), app, data_type, tree.root(), 37, keccak256("body"), 1).call().await.unwrap();
    for i in [0usize, 1, 17, 36] {
        let (u, idx, h) = records[i];
        assert!(data.verify(bundle, leaves[i], tree.proof(i).unwrap()).call().await.unwrap());
        assert!(data.verifyRecord(bundle, u, idx, h, tree.proof(i).unwrap()).call().await.unwrap());
    }
    let multi = tree.multiproof(&[3, 8, 21, 30]).unwrap();
    assert!(data.verifyMulti(bundle, multi.proof, multi.proof_flags, multi.leaves).call().await.unwrap());
    assert!(!data.verify(bundle, leaves[1], tree.proof(2).unwrap()).call().await.unwrap());
}

// ------------------------------------------------------------------------------- EIP-712

fn announcement(provider: Address) -> BundleAnnouncement {
    BundleAnnouncement {
        bundle: keccak256("bundle"),
        app: keccak256("app"),
        dataType: keccak256("type"),
        provider,
        recordCount: 1000,
        size: 1 << 20,
        priceHint: U256::from(10u64).pow(U256::from(17u64)),
        priceToken: Address::ZERO,
        issuedAt: 1_760_000_000,
    }
}

fn typed_data_json(a: &BundleAnnouncement, chain_id: u64) -> serde_json::Value {
    serde_json::json!({
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "BundleAnnouncement": [
                {"name": "bundle", "type": "bytes32"}, {"name": "app", "type": "bytes32"},
                {"name": "dataType", "type": "bytes32"}, {"name": "provider", "type": "address"},
                {"name": "recordCount", "type": "uint64"}, {"name": "size", "type": "uint64"},
                {"name": "priceHint", "type": "uint256"}, {"name": "priceToken", "type": "address"},
                {"name": "issuedAt", "type": "uint64"},
            ],
        },
        "primaryType": "BundleAnnouncement",
        "domain": {"name": "airbloc Node", "version": "1", "chainId": chain_id},
        "message": {
            "bundle": a.bundle.to_string(), "app": a.app.to_string(), "dataType": a.dataType.to_string(),
            "provider": a.provider.to_string(), "recordCount": a.recordCount, "size": a.size,
            "priceHint": a.priceHint.to_string(), "priceToken": a.priceToken.to_string(), "issuedAt": a.issuedAt,
        },
    })
}

#[tokio::test]
async fn node_statements_interoperate_with_eth_account() {
    let key = NodeKey::random();
    let statement = announcement(key.address());
    let domain = node_domain(31337);
    let script = interop_script("eip712_interop.py");
    let script = script.to_str().unwrap();

    // eth-account signs; we recover the provider.
    let answer = run_json(
        &python(),
        &[script],
        &serde_json::json!({
            "mode": "sign",
            "private_key": format!("0x{}", hex::encode(key.secret_bytes())),
            "typed_data": typed_data_json(&statement, 31337),
        }),
    );
    let signature: Signature = answer["signature"].as_str().unwrap().parse().unwrap();
    let hash = statement.eip712_signing_hash(&domain);
    assert_eq!(signature.recover_address_from_prehash(&hash).unwrap(), key.address());

    // We sign; eth-account recovers the provider.
    let ours = key.signer().sign_typed_data(&statement, &domain).await.unwrap();
    let answer = run_json(
        &python(),
        &[script],
        &serde_json::json!({
            "mode": "recover",
            "signature": format!("0x{}", hex::encode(ours.as_bytes())),
            "typed_data": typed_data_json(&statement, 31337),
        }),
    );
    assert_eq!(answer["address"].as_str().unwrap(), key.address().to_string());

    // A changed field no longer recovers the provider.
    let mut forged = statement.clone();
    forged.recordCount += 1;
    let recovered = ours.recover_address_from_prehash(&forged.eip712_signing_hash(&domain)).unwrap();
    assert_ne!(recovered, key.address());
}

// ------------------------------------------------------------------------------- records, identities, secrets

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
    let mut bad = bytes.clone();
    bad.push(0);
    assert!(matches!(Record::decode(&bad), Err(RecordError::LengthMismatch { .. })));
}

#[test]
fn identity_hashes_are_keyed_and_normalized() {
    let keeper = NodeKey::random();
    let hasher = IdentityHasher::from_node_secret(keeper.secret_bytes());
    let a = hasher.identity_hash("Alice@Example.com ");
    assert_eq!(a, hasher.identity_hash("alice@example.com"));
    assert_eq!(a, keccak256(hasher.preimage("alice@example.com")));
    assert_ne!(a, keccak256("alice@example.com"), "not guessable without the key");
    let other = IdentityHasher::from_node_secret(NodeKey::random().secret_bytes());
    assert_ne!(a, other.identity_hash("alice@example.com"), "another keeper's key gives another hash");
}

#[test]
fn secrets_never_print() {
    let dek = Dek::from_bytes([0xAB; 32]);
    let key = NodeKey::random();
    let hasher = IdentityHasher::from_node_secret(key.secret_bytes());
    let shown = format!("{dek:?} {key:?} {hasher:?}");
    assert!(!shown.contains(&hex::encode([0xAB; 32])) && !shown.to_lowercase().contains("abababab"));
    assert!(!shown.contains(&hex::encode(key.secret_bytes())));
    assert!(shown.contains("redacted"));
}
