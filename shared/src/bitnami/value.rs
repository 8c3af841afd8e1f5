//! One Bitnami sealed value: `base64(u16be(len(R)) ‖ R ‖ G)`, R the RSA-OAEP
//! wrapped session key, G the AES-256-GCM ciphertext (zero nonce, no AAD).

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use rsa::Oaep;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::ValueError;
use super::rsa_keys::BitnamiKeyring;
use crate::binding::Scope;
use crate::secret::SecretBytes;

/// AES-256 session key length.
const SESSION_KEY_LEN: usize = 32;

/// The OAEP label Bitnami binds a value to: `namespace/name` (strict),
/// `namespace` (namespace-wide) or empty (cluster-wide).
pub fn oaep_label(scope: Scope, namespace: &str, name: &str) -> String {
    match scope {
        Scope::Strict => format!("{namespace}/{name}"),
        Scope::NamespaceWide => namespace.to_owned(),
        Scope::ClusterWide => String::new(),
    }
}

/// Decrypts one `spec.encryptedData` value with whichever key opens it under
/// `label`. Returns the plaintext and the index of the key that opened it.
pub fn decrypt_value(
    keyring: &BitnamiKeyring,
    encoded: &str,
    label: &str,
) -> Result<(SecretBytes, usize), ValueError> {
    // Go's base64.StdEncoding (what Bitnami decodes with) skips line breaks.
    let compact: String = encoded
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n' | ' ' | '\t'))
        .collect();
    let bytes = BASE64_STANDARD
        .decode(compact)
        .map_err(|_| ValueError::NotBase64)?;
    let (length, rest) = bytes.split_at_checked(2).ok_or(ValueError::TooShort)?;
    let rsa_len = usize::from(u16::from_be_bytes([length[0], length[1]]));
    let (wrapped, sealed) = rest.split_at_checked(rsa_len).ok_or(ValueError::TooShort)?;
    let mut rng = rand::rngs::OsRng;
    for (index, key) in keyring.try_order() {
        // OAEP ciphertexts are exactly as long as the modulus.
        if wrapped.len() != key.rsa().size() {
            continue;
        }
        let padding = if label.is_empty() {
            Oaep::new::<Sha256>()
        } else {
            Oaep::new_with_label::<Sha256, _>(label)
        };
        let Ok(session_key) = key.rsa().decrypt_blinded(&mut rng, padding, wrapped) else {
            continue;
        };
        let session_key = Zeroizing::new(session_key);
        keyring.remember(index);
        if session_key.len() != SESSION_KEY_LEN {
            return Err(ValueError::BadSessionKey(session_key.len()));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&session_key).map_err(|_| ValueError::BadSessionKey(0))?;
        let plaintext = cipher
            .decrypt(&Nonce::default(), sealed)
            .map_err(|_| ValueError::Corrupt)?;
        return Ok((SecretBytes::new(plaintext), index));
    }
    Err(ValueError::NoMatchingKey {
        tried: keyring.len(),
    })
}
