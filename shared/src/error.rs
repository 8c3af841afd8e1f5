//! Why a sealed value could not be parsed, sealed, opened or re-wrapped
//! ([`SealError`]; the key files' errors are [`crate::x25519::KeyError`]).
//! No variant carries secret material: values, keys and decrypted bytes
//! never reach a message.

use thiserror::Error;

use crate::x25519::KeyId;

/// Why a sealed value could not be parsed, sealed, opened or re-wrapped.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SealError {
    /// Does not start with `kseal:`.
    #[error("not a kseal sealed value (expected \"kseal:v2:…\")")]
    NotSealedValue,
    /// A version this library does not read (shown only when it looks like
    /// one).
    #[error("unsupported sealed-value format version {0:?} (this kseal reads v1 and v2)")]
    UnsupportedVersion(String),
    /// The value breaks a rule of the format (`docs/format.md`).
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// Sealing needs at least one recipient.
    #[error("no recipients to seal to")]
    NoRecipients,
    /// The scope, namespace, name or data key cannot bind a value.
    #[error("invalid binding: {0}")]
    InvalidBinding(String),
    /// None of the given identities is one the value is wrapped to.
    #[error(
        "none of the given identities matches the value's key ids ({})",
        comma_separated(key_ids)
    )]
    NoMatchingIdentity {
        /// The key ids the value is wrapped to.
        key_ids: Vec<KeyId>,
    },
    /// The wrapped data key does not open (wrong key, or tampered).
    #[error("the data key could not be unwrapped (wrong key or tampered value)")]
    UnwrapFailed,
    /// The data key does not match the value's key commitment (v2): the
    /// wrapped key was replaced or the value was tampered with.
    #[error(
        "the data key does not match the value's key commitment: the wrapped key was replaced, or the value was tampered with"
    )]
    CommitmentMismatch,
    /// The value does not decrypt under its binding.
    #[error(
        "decryption failed: the value was tampered with, or moved to another key, name, namespace or scope than it was sealed for"
    )]
    DecryptFailed,
    /// More than a Secret can hold.
    #[error("the value is larger than the 1 MiB a Kubernetes Secret can hold")]
    TooLarge,
    /// A primitive failed where it cannot (random source, encryption).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// `a, b, c`: key ids as error messages list them.
fn comma_separated(key_ids: &[KeyId]) -> String {
    key_ids
        .iter()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
