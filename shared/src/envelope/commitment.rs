//! Key commitment for format v2.
//!
//! XChaCha20-Poly1305, like every Poly1305-based AEAD, is not
//! key-committing: whoever seals a value can compute one nonce and
//! ciphertext that open under two data keys to two different plaintexts
//! (Len, Grubbs and Ristenpart, "Partitioning Oracle Attacks", USENIX
//! Security 2021). For kseal that breaks the review promise of `rewrap`: a
//! commit that only changes the wrapped data key could change the value.
//!
//! v2 derives the AEAD key and a commitment from the data key, stores the
//! commitment in the value, and checks it before decrypting: the
//! "committing key derivation" fix of Albertini, Duong, Gueron, Kölbl,
//! Luykx and Schmieg ("How to Abuse and Fix Authenticated Encryption
//! Without Key Commitment", USENIX Security 2022), as deployed in the AWS
//! Encryption SDK's message format v2:
//!
//! ```text
//! K_aead ‖ K_commit = HKDF-SHA-256(ikm = DEK, salt = N, info = "kseal.dev/sealed-value/v2", L = 64)
//! ```
//!
//! Two data keys (or two nonces) with the same commitment would be an
//! HKDF-SHA-256 (HMAC-SHA-256) collision, so a value opens under exactly one
//! (data key, nonce) pair; with the key and nonce fixed, the keystream and
//! so the plaintext are fixed too. Standard primitives only, so an outside
//! implementation needs nothing unusual.

use hkdf::Hkdf;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::NONCE_LEN;
use crate::secret::DataKey;

/// Length of the key commitment, bytes.
pub const COMMITMENT_LEN: usize = 32;

/// HKDF `info` of the v2 key derivation.
pub(crate) const KDF_INFO: &[u8] = b"kseal.dev/sealed-value/v2";

/// What v2 derives from a data key and nonce.
pub(crate) struct DerivedKeys {
    /// The XChaCha20-Poly1305 key (secret; zeroized on drop).
    pub aead_key: Zeroizing<[u8; 32]>,
    /// The commitment stored in the value (public).
    pub commitment: [u8; COMMITMENT_LEN],
}

/// `K_aead ‖ K_commit = HKDF-SHA-256(DEK, salt = N, info, 64)`.
pub(crate) fn derive(data_key: &DataKey, nonce: &[u8; NONCE_LEN]) -> DerivedKeys {
    let mut okm = Zeroizing::new([0u8; 64]);
    // 64 bytes is far below HKDF-SHA-256's limit of 255 × 32: cannot fail.
    let _ = Hkdf::<Sha256>::new(Some(nonce), data_key.expose()).expand(KDF_INFO, &mut *okm);
    let mut aead_key = Zeroizing::new([0u8; 32]);
    aead_key.copy_from_slice(&okm[..32]);
    let mut commitment = [0u8; COMMITMENT_LEN];
    commitment.copy_from_slice(&okm[32..]);
    DerivedKeys {
        aead_key,
        commitment,
    }
}

/// Compares commitments in constant time.
pub(crate) fn matches(derived: &[u8; COMMITMENT_LEN], stored: &[u8; COMMITMENT_LEN]) -> bool {
    derived.ct_eq(stored).into()
}
