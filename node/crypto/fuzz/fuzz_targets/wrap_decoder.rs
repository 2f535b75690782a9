//! Fuzzes ECIES unwrapping: arbitrary bytes must give an error or (if by chance valid) bytes,
//! never a panic; a real wrapped key with a flipped byte must never unwrap.
#![no_main]

use airbloc_crypto::{Dek, wrap};
use libfuzzer_sys::fuzz_target;

const SECRET: [u8; 32] = [0x11; 32];

fuzz_target!(|input: &[u8]| {
    let _ = wrap::unwrap(&SECRET, input);
    let _ = wrap::unwrap_dek(&SECRET, input);
    let _ = wrap::parse_public_key(input);

    if input.len() >= 3 {
        let secret = k256::SecretKey::from_slice(&SECRET).expect("valid secret");
        let public = k256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&secret.public_key(), false);
        let mut wrapped = wrap::wrap_dek(public.as_bytes(), &Dek::from_bytes([input[0]; 32])).unwrap();
        let at = (usize::from(input[1]) << 8 | usize::from(input[2])) % wrapped.len();
        wrapped[at] ^= 0x80;
        assert!(wrap::unwrap_dek(&SECRET, &wrapped).is_err(), "a flipped byte went unnoticed");
    }
});
