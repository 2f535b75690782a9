//! Fuzzes the streaming envelope decoder two ways:
//! 1. arbitrary bytes as a stream under a fixed key — must never panic;
//! 2. a real stream of fuzzer-chosen plaintext with fuzzer-chosen bytes flipped — must either
//!    return exactly the plaintext (no flip) or fail with an error, never return other bytes.
#![no_main]

use airbloc_crypto::{Dek, stream};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};

fuzz_target!(|input: &[u8]| {
    let dek = Dek::from_bytes([0x5A; 32]);
    let _ = stream::open(&dek, input);

    if input.len() < 2 {
        return;
    }
    let flips = usize::from(input[0] % 4);
    let split = (flips * 3 + 1).min(input.len());
    let (control, plaintext) = input.split_at(split);
    let mut sealed = Vec::new();
    let mut w = stream::EncryptWriter::with_segment_log2(&mut sealed, &dek, 12).unwrap();
    w.write_all(plaintext).unwrap();
    w.finish().unwrap();
    let original = sealed.clone();
    for flip in control[1..].chunks(3) {
        if flip.len() < 3 {
            break;
        }
        let at = (usize::from(flip[0]) << 8 | usize::from(flip[1])) % sealed.len();
        let mask = flip[2] | 1;
        sealed[at] ^= mask;
    }
    // Two flips of one byte can cancel out; compare with the original instead of counting.
    let flipped = sealed != original;
    let mut out = Vec::new();
    let result = stream::DecryptReader::new(sealed.as_slice(), &dek).read_to_end(&mut out);
    if flipped {
        assert!(result.is_err(), "a flipped byte went unnoticed");
    } else {
        result.unwrap();
        assert_eq!(out, plaintext);
    }
});
