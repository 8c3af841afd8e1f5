//! Test support: one XChaCha20-Poly1305 ciphertext that opens under two
//! keys, the attack format v2's key commitment exists for.
//!
//! The Poly1305 tag of a ChaCha20-Poly1305 ciphertext (RFC 8439 §2.8) is
//! `(h(r) + s) mod 2^128`, with `h` the polynomial in `r` over GF(2^130-5)
//! whose coefficients are the 16-byte blocks of the associated data, the
//! ciphertext and the lengths, each plus 2^128. With one ciphertext block
//! `x` left free, `h` is linear in `x` for each key, so one linear equation
//! over the field makes both keys' tags equal (Len, Grubbs and Ristenpart,
//! "Partitioning Oracle Attacks", USENIX Security 2021, §3). The other
//! block is random; a few tries find an `x` that is a valid block and whose
//! tags agree without a carry.

use chacha20::XChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use num_bigint_dig::BigUint;
use rand::RngCore;

/// `C ‖ T` (two 16-byte blocks and the tag) that XChaCha20-Poly1305 opens
/// under both `key_1` and `key_2` with `nonce` and `aad`, to two different
/// plaintexts.
pub(crate) fn ciphertext(
    key_1: &[u8; 32],
    key_2: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
) -> Vec<u8> {
    let p = (BigUint::from(1u8) << 130) - BigUint::from(5u8);
    let two_128 = BigUint::from(1u8) << 128;
    let (r_1, s_1) = poly_key(key_1, nonce);
    let (r_2, s_2) = poly_key(key_2, nonce);
    loop {
        let mut first = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut first);
        // The blocks: padded AD, the random block, the free block (0 for
        // now: its coefficient is solved for below), the lengths.
        let mut blocks: Vec<BigUint> = aad
            .chunks(16)
            .map(|chunk| {
                let mut block = [0u8; 16];
                block[..chunk.len()].copy_from_slice(chunk);
                BigUint::from_bytes_le(&block) + &two_128
            })
            .collect();
        blocks.push(BigUint::from_bytes_le(&first) + &two_128);
        let free = blocks.len();
        blocks.push(BigUint::from(0u8));
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lengths[8..].copy_from_slice(&32u64.to_le_bytes());
        blocks.push(BigUint::from_bytes_le(&lengths) + &two_128);

        let eval = |r: &BigUint| {
            blocks
                .iter()
                .fold(BigUint::from(0u8), |acc, block| ((acc + block) * r) % &p)
        };
        let power = BigUint::from((blocks.len() - free) as u64);
        let (a_1, e_1) = (eval(&r_1), r_1.modpow(&power, &p));
        let (a_2, e_2) = (eval(&r_2), r_2.modpow(&power, &p));
        // a_1 + x e_1 + s_1 = a_2 + x e_2 + s_2  (mod p)
        let numerator = (&a_2 + &s_2 + &p * 2u8 - &a_1 - &s_1) % &p;
        let denominator = (&e_1 + &p - &e_2) % &p;
        let inverse = denominator.modpow(&(&p - 2u8), &p);
        let x = (numerator * inverse) % &p;
        if x < two_128 || x >= &two_128 * 2u8 {
            continue;
        }
        let h_1 = (&a_1 + &x * &e_1) % &p;
        let h_2 = (&a_2 + &x * &e_2) % &p;
        let tag_1 = (h_1 + &s_1) % &two_128;
        let tag_2 = (h_2 + &s_2) % &two_128;
        if tag_1 != tag_2 {
            continue;
        }
        let mut out = first.to_vec();
        out.extend(le_16(&(x - &two_128)));
        out.extend(le_16(&tag_1));
        return out;
    }
}

/// Poly1305's `r` (clamped) and `s` for XChaCha20-Poly1305: the first 32
/// bytes of the keystream (block 0).
fn poly_key(key: &[u8; 32], nonce: &[u8; 24]) -> (BigUint, BigUint) {
    let mut block = [0u8; 32];
    XChaCha20::new(key.into(), nonce.into()).apply_keystream(&mut block);
    let mut r = [0u8; 16];
    r.copy_from_slice(&block[..16]);
    for (byte, mask) in r.iter_mut().zip([
        0xff, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff,
        0x0f,
    ]) {
        *byte &= mask;
    }
    (
        BigUint::from_bytes_le(&r),
        BigUint::from_bytes_le(&block[16..]),
    )
}

fn le_16(n: &BigUint) -> [u8; 16] {
    let mut out = [0u8; 16];
    let bytes = n.to_bytes_le();
    out[..bytes.len()].copy_from_slice(&bytes);
    out
}
