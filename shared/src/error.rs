//! Error types. No variant carries secret material: values, keys and
//! decrypted bytes never reach a message.

use thiserror::Error;

/// Problems with keys, identity files and recipient lists.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("invalid recipient {recipient:?}: {reason}")]
    InvalidRecipient {
        recipient: String,
        reason: &'static str,
    },
    #[error("invalid identity: {reason}")]
    InvalidIdentity { reason: &'static str },
    #[error("identity file, line {line}: {reason}")]
    IdentityFileLine { line: usize, reason: String },
    #[error("recipients file, line {line}: {reason}")]
    RecipientsFileLine { line: usize, reason: String },
    #[error("the identity file contains no identities")]
    NoIdentities,
    #[error("the recipients file contains no recipients")]
    NoRecipients,
    #[error("invalid key id (expected 16 lowercase hex digits)")]
    InvalidKeyId,
}

/// Why a sealed value could not be parsed, sealed, opened or re-wrapped.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SealError {
    #[error("not a kseal sealed value (expected \"kseal:v1:…\")")]
    NotSealedValue,
    #[error("unsupported sealed-value format version {0:?} (this kseal reads v1)")]
    UnsupportedVersion(String),
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    #[error("no recipients to seal to")]
    NoRecipients,
    #[error("invalid binding: {0}")]
    InvalidBinding(String),
    #[error("none of the given identities matches the value's key ids ({key_ids})")]
    NoMatchingIdentity { key_ids: String },
    #[error("the data key could not be unwrapped (wrong key or tampered value)")]
    UnwrapFailed,
    #[error(
        "decryption failed: the value was tampered with, or moved to another key, name, namespace or scope than it was sealed for"
    )]
    DecryptFailed,
    #[error("the value is larger than the 1 MiB a Kubernetes Secret can hold")]
    TooLarge,
    #[error("internal error: {0}")]
    Internal(&'static str),
}
