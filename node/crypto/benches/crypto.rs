//! Crypto figures, measured as ratios within one run (the machines are shared and noisy):
//!
//! - streaming envelope encrypt / decrypt of 1 GiB vs raw single-shot AES-256-GCM (ring);
//! - peak resident memory while encrypting a 2 GiB file through the streaming API (a child
//!   process, so the benchmark's own buffers do not count);
//! - Merkle tree over 1,000,000 records vs hashing the leaves alone; proof verification rate;
//! - ECIES key wraps and unwraps per second.
//!
//! Run: `cargo bench -p airbloc-crypto --bench crypto` (add `-- --quick` for 256 MiB / 100k).
#![allow(clippy::unwrap_used)] // a benchmark stops loudly on any failure

use airbloc_crypto::{
    Dek,
    merkle::{self, MerkleTree, record_leaf},
    stream::{DecryptReader, EncryptWriter},
    wrap,
};
use alloy_primitives::{B256, keccak256};
use k256::elliptic_curve::sec1::ToEncodedPoint;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use std::{
    hint::black_box,
    io::{BufRead, Read, Write},
    time::Instant,
};

const MIB: usize = 1 << 20;

fn gbps(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e9
}

fn best_of<F: FnMut() -> f64>(runs: usize, mut f: F) -> f64 {
    (0..runs).map(|_| f()).fold(f64::INFINITY, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        memory_child(&args[i + 1]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let size = if quick { 256 * MIB } else { 1024 * MIB };
    let leaves_n = if quick { 100_000 } else { 1_000_000 };

    println!("== envelope encryption ({} MiB) ==", size / MIB);
    let mut buf: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31)).collect();
    let raw_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());
    let raw = best_of(3, || {
        let t = Instant::now();
        let tag = raw_key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([1u8; 12]), Aad::empty(), &mut buf)
            .unwrap();
        let _ = black_box(tag);
        t.elapsed().as_secs_f64()
    });
    println!("raw single-shot AES-256-GCM (ring):  {:.2} GB/s", gbps(size, raw));

    let dek = Dek::generate();
    for log2 in [16u8, 18, 20] {
        let enc = best_of(3, || {
            let t = Instant::now();
            let mut w = EncryptWriter::with_segment_log2(std::io::sink(), &dek, log2).unwrap();
            for chunk in buf.chunks(4 * MIB) {
                w.write_all(chunk).unwrap();
            }
            w.finish().unwrap();
            t.elapsed().as_secs_f64()
        });
        let mut sealed = Vec::with_capacity(size + size / 1000 + 1024);
        {
            let mut w = EncryptWriter::with_segment_log2(&mut sealed, &dek, log2).unwrap();
            w.write_all(&buf).unwrap();
            w.finish().unwrap();
        }
        let dec = best_of(3, || {
            let t = Instant::now();
            let mut r = DecryptReader::new(sealed.as_slice(), &dek);
            let mut total = 0usize;
            loop {
                let n = r.fill_buf().unwrap().len();
                if n == 0 {
                    break;
                }
                total += n;
                r.consume(n);
            }
            assert_eq!(total, size);
            t.elapsed().as_secs_f64()
        });
        let kib = (1usize << log2) / 1024;
        println!(
            "streaming encrypt ({kib} KiB segments): {:.2} GB/s = {:.0}% of raw",
            gbps(size, enc),
            100.0 * raw / enc
        );
        println!(
            "streaming decrypt ({kib} KiB segments): {:.2} GB/s = {:.0}% of raw",
            gbps(size, dec),
            100.0 * raw / dec
        );
    }

    println!("\n== memory ==");
    memory_parent(if quick { 512 * MIB } else { 2048 * MIB });

    println!("\n== Merkle tree ({leaves_n} records) ==");
    let records: Vec<(B256, u64, B256)> =
        (0..leaves_n as u64).map(|i| (keccak256((i % 1000).to_be_bytes()), i, keccak256(i.to_be_bytes()))).collect();
    let mut leaves = Vec::new();
    let hash_only = best_of(3, || {
        let t = Instant::now();
        leaves = records.iter().map(|(u, i, h)| record_leaf(*u, *i, *h)).collect::<Vec<_>>();
        t.elapsed().as_secs_f64()
    });
    let mut tree = None;
    let build = best_of(3, || {
        let t = Instant::now();
        let leaves: Vec<B256> = records.iter().map(|(u, i, h)| record_leaf(*u, *i, *h)).collect();
        tree = Some(MerkleTree::new(&leaves).unwrap());
        t.elapsed().as_secs_f64()
    });
    let tree = tree.unwrap();
    println!("hash leaves only:        {:.3} s", hash_only);
    println!("hash leaves + build tree: {:.3} s = {:.2}x the leaf hashing", build, build / hash_only);
    let proofs: Vec<Vec<B256>> = (0..10_000).map(|i| tree.proof(i * (leaves_n / 10_000)).unwrap()).collect();
    let root = tree.root();
    let t = Instant::now();
    for (k, proof) in proofs.iter().enumerate() {
        assert!(merkle::verify(&root, &leaves[k * (leaves_n / 10_000)], proof));
    }
    let per = t.elapsed().as_secs_f64() / proofs.len() as f64;
    println!("proof verification:      {:.0} proofs/s (depth {})", 1.0 / per, proofs[0].len());

    println!("\n== key wrapping (ECIES secp256k1) ==");
    let secret = k256::SecretKey::random(&mut rand::rngs::OsRng);
    let public = secret.public_key().to_encoded_point(false);
    let public = public.as_bytes();
    let secret_bytes: [u8; 32] = secret.to_bytes().into();
    let n = 2000;
    let t = Instant::now();
    let wrapped: Vec<Vec<u8>> = (0..n).map(|_| wrap::wrap_dek(public, &dek).unwrap()).collect();
    let wrap_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for w in &wrapped {
        let _ = black_box(wrap::unwrap_dek(&secret_bytes, w).unwrap());
    }
    let unwrap_rate = n as f64 / t.elapsed().as_secs_f64();
    println!("wrap:   {wrap_rate:.0} /s\nunwrap: {unwrap_rate:.0} /s");
}

/// Writes a file of `size` bytes and encrypts it in a child process, reporting its peak RSS.
fn memory_parent(size: usize) {
    let dir = std::env::temp_dir().join(format!("airbloc-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.bin");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block: Vec<u8> = (0..MIB).map(|i| (i * 7) as u8).collect();
        for _ in 0..size / MIB {
            f.write_all(&block).unwrap();
        }
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe).arg("--memory-child").arg(&path).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    print!("{}", String::from_utf8_lossy(&out.stdout));
}

/// Encrypts the file through the streaming API into a second file; prints the peak RSS.
fn memory_child(path: &str) {
    let dek = Dek::generate();
    let mut input = std::fs::File::open(path).unwrap();
    let size = input.metadata().unwrap().len();
    let output = std::fs::File::create(format!("{path}.enc")).unwrap();
    let t = Instant::now();
    let mut w = EncryptWriter::new(output, &dek).unwrap();
    let mut chunk = vec![0u8; MIB];
    loop {
        let n = input.read(&mut chunk).unwrap();
        if n == 0 {
            break;
        }
        w.write_all(&chunk[..n]).unwrap();
    }
    w.finish().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM")).unwrap_or("VmHWM: ?");
    println!(
        "encrypting a {} MiB file to a file: peak RSS {} ({:.2} GB/s incl. disk)",
        size / MIB as u64,
        hwm.trim_start_matches("VmHWM:").trim(),
        size as f64 / secs / 1e9
    );
}
