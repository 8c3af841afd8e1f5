//! Why a reconcile failed. Each variant has a stable `reason`, used as the
//! `Ready` condition's reason, the Event reason and a metric label. No
//! variant carries secret material.

use kseal_shared::SealError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value does not open: tampered, or moved to another key, name,
    /// namespace or scope than it was sealed for.
    #[error("value {key:?} cannot be decrypted: {source}")]
    DecryptFailed {
        key: String,
        #[source]
        source: SealError,
    },
    /// A value names only keys this controller does not have.
    #[error("value {key:?} is sealed to key(s) {key_ids} that this cluster does not hold")]
    UnknownKey { key: String, key_ids: String },
    /// A value is sealed only to keys that were retired.
    #[error(
        "value {key:?} is sealed to retired key(s) {key_ids}: re-wrap it to the active key (kseal rewrap), or restore the key"
    )]
    RetiredKey { key: String, key_ids: String },
    /// A value is not a well-formed sealed value.
    #[error("value {key:?} is malformed: {source}")]
    MalformedValue {
        key: String,
        #[source]
        source: SealError,
    },
    /// The SealedSecret itself is unusable (no namespace for its scope, bad key
    /// name, no values).
    #[error("invalid SealedSecret: {0}")]
    InvalidSpec(String),
    /// A Secret with the same name exists and is not ours.
    #[error(
        "Secret {0:?} exists and is not owned by this SealedSecret; annotate it with kseal.dev/managed=\"true\" to let kseal take it over"
    )]
    SecretNotOwned(String),
    /// The Secret is immutable and its contents differ.
    #[error("Secret {0:?} is immutable and its data differs; delete it to let kseal re-create it")]
    SecretImmutable(String),
    /// A Kubernetes API call failed (usually transient).
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Serialization of an object failed.
    #[error("serialization error: {0}")]
    Serialization(#[from] serde_json::Error),
}

impl Error {
    /// CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::DecryptFailed { .. } => "DecryptFailed",
            Error::UnknownKey { .. } => "UnknownKey",
            Error::RetiredKey { .. } => "RetiredKey",
            Error::MalformedValue { .. } => "MalformedValue",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::SecretNotOwned(_) => "SecretNotOwned",
            Error::SecretImmutable(_) => "SecretImmutable",
            Error::Kube(_) => "KubernetesError",
            Error::Serialization(_) => "SerializationError",
        }
    }

    /// Errors that retrying will not fix until something changes (the
    /// object, the keys, the Secret): retried slowly, never in a hot loop.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Error::Kube(_) | Error::Serialization(_))
    }

    /// Every reason, for pre-registering metric labels.
    pub const REASONS: &'static [&'static str] = &[
        "DecryptFailed",
        "UnknownKey",
        "RetiredKey",
        "MalformedValue",
        "InvalidSpec",
        "SecretNotOwned",
        "SecretImmutable",
        "KubernetesError",
        "SerializationError",
    ];
}
