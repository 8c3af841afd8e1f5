//! Containers for secret material: zeroized on drop, never printed.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// Plaintext bytes of a Secret value. Zeroized when dropped; `Debug` prints
/// only the length.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of the bytes (wiped on drop).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes; keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
}

impl From<String> for SecretBytes {
    fn from(s: String) -> Self {
        Self::new(s.into_bytes())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.0.len())
    }
}

/// Length of a data-encryption key in bytes.
pub const DATA_KEY_LEN: usize = 32;

/// A per-value data-encryption key (DEK). Zeroized when dropped; `Debug`
/// prints nothing of it.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    /// Takes the bytes of a decrypted key; the source buffer is wiped.
    pub(crate) fn from_slice_wiping(bytes: &mut [u8]) -> Option<Self> {
        let key = (bytes.len() == DATA_KEY_LEN).then(|| {
            let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
            key.copy_from_slice(bytes);
            Self(key)
        });
        bytes.zeroize();
        key
    }

    /// The key bytes; keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_nothing_secret() {
        let value = SecretBytes::from(b"hunter2".to_vec());
        assert_eq!(format!("{value:?}"), "SecretBytes(<redacted 7 bytes>)");
        let key = DataKey::generate();
        assert_eq!(format!("{key:?}"), "DataKey(<redacted>)");
    }

    #[test]
    fn data_keys_are_random() {
        assert_ne!(DataKey::generate().expose(), DataKey::generate().expose());
    }
}
