//! Crypto formats with the node's keys and against other implementations: ECIES key wrapping
//! against eciespy, the Merkle tree against @openzeppelin/merkle-tree and DataRegistry, EIP-712
//! against eth-account, identity hashing, and secrets that never print. (The formats on their
//! own are tested in airbloc-crypto: `node/crypto/tests`.)

use airbloc_node::{
    chain::contracts::{AppRegistry, DataRegistry, DataTypeRegistry},
    crypto::{
        Dek,
        eip712::{BundleAnnouncement, node_domain},
        identity::IdentityHasher,
        merkle::{self, MerkleTree, record_leaf},
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

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
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
