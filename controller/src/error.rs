//! Why a reconcile failed. Each variant has a stable [`Reason`], used as the
//! `Ready` condition's reason, the Event reason and a metric label. No
//! variant carries secret material.

use kseal_shared::contract::ValueFailureReason;
use kseal_shared::error::SealError;
use kseal_shared::x25519::KeyId;

/// Declares [`Reason`] and its `ALL` list from one list of names, so the
/// two cannot disagree.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Why a reconcile failed, as a condition reason, Event reason and
        /// metric label (CamelCase, stable).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// Every reason, for pre-registering metric labels.
            pub const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            /// The CamelCase name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    /// See [`Error::DecryptFailed`].
    DecryptFailed,
    /// See [`Error::UnknownKey`].
    UnknownKey,
    /// See [`Error::RetiredKey`].
    RetiredKey,
    /// See [`Error::MalformedValue`].
    MalformedValue,
    /// See [`Error::InvalidSpec`].
    InvalidSpec,
    /// See [`Error::TooManyValues`].
    TooManyValues,
    /// See [`Error::SecretNotOwned`].
    SecretNotOwned,
    /// See [`Error::SecretImmutable`].
    SecretImmutable,
    /// See [`Error::PolicyDenied`].
    PolicyDenied,
    /// See [`Error::Kube`].
    KubernetesError,
    /// See [`Error::Serialization`].
    SerializationError,
    /// See [`Error::Internal`].
    InternalError,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ValueFailureReason> for Reason {
    fn from(reason: ValueFailureReason) -> Self {
        match reason {
            ValueFailureReason::MalformedValue => Reason::MalformedValue,
            ValueFailureReason::UnknownKey => Reason::UnknownKey,
            ValueFailureReason::RetiredKey => Reason::RetiredKey,
            ValueFailureReason::DecryptFailed => Reason::DecryptFailed,
            ValueFailureReason::InvalidSpec => Reason::InvalidSpec,
        }
    }
}

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
    /// More values than any reader accepts
    /// ([`kseal_shared::sealed_secret::MAX_VALUES`]); refused before any
    /// decryption.
    #[error(
        "spec.encryptedData has {count} values; at most {max} are accepted (split the Secret)",
        max = kseal_shared::sealed_secret::MAX_VALUES
    )]
    TooManyValues { count: usize },
    /// A Secret with the same name exists and is not ours.
    #[error(
        "Secret {0:?} exists and is not owned by this SealedSecret; annotate it with kseal.dev/managed=\"true\" to let kseal take it over"
    )]
    SecretNotOwned(String),
    /// The Secret is immutable and its contents differ.
    #[error("Secret {0:?} is immutable and its data differs; delete it to let kseal re-create it")]
    SecretImmutable(String),
    /// The SealedSecret asks for a Secret the policy does not allow (a
    /// reserved or dangerous type, label or annotation), or lives in the
    /// controller's own namespace.
    #[error("not allowed: {0}")]
    PolicyDenied(String),
    /// A Kubernetes API call failed (usually transient).
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    /// Serialization of an object failed.
    #[error("serialization error: {0}")]
    Serialization(#[from] serde_json::Error),
    /// A bug inside the controller (e.g. decrypting panicked); retried.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Why a value under data key `key` does not open, with the reason
    /// [`ValueFailureReason::of`] gives (the same as the HTTP API's).
    pub fn value_failure(
        key: &str,
        source: SealError,
        is_retired: impl Fn(&KeyId) -> bool,
    ) -> Self {
        let key = key.to_owned();
        let key_ids = match &source {
            SealError::NoMatchingIdentity { key_ids } => key_ids
                .iter()
                .map(KeyId::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        match ValueFailureReason::of(&source, is_retired) {
            ValueFailureReason::MalformedValue => Error::MalformedValue { key, source },
            ValueFailureReason::UnknownKey => Error::UnknownKey { key, key_ids },
            ValueFailureReason::RetiredKey => Error::RetiredKey { key, key_ids },
            ValueFailureReason::DecryptFailed => Error::DecryptFailed { key, source },
            ValueFailureReason::InvalidSpec => Error::InvalidSpec(source.to_string()),
        }
    }

    /// The reason for conditions, events and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            Error::DecryptFailed { .. } => Reason::DecryptFailed,
            Error::UnknownKey { .. } => Reason::UnknownKey,
            Error::RetiredKey { .. } => Reason::RetiredKey,
            Error::MalformedValue { .. } => Reason::MalformedValue,
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::TooManyValues { .. } => Reason::TooManyValues,
            Error::SecretNotOwned(_) => Reason::SecretNotOwned,
            Error::SecretImmutable(_) => Reason::SecretImmutable,
            Error::PolicyDenied(_) => Reason::PolicyDenied,
            Error::Kube(_) => Reason::KubernetesError,
            Error::Serialization(_) => Reason::SerializationError,
            Error::Internal(_) => Reason::InternalError,
        }
    }

    /// Errors that retrying will not fix until something changes (the
    /// object, the keys, the Secret): retried slowly, never in a hot loop.
    pub fn is_permanent(&self) -> bool {
        !matches!(
            self,
            Error::Kube(_) | Error::Serialization(_) | Error::Internal(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant maps to a reason that is pre-registered as a metric
    /// label, and every value failure reason has a reconcile reason.
    #[test]
    fn every_error_has_a_registered_reason() {
        let id: KeyId = "0123456789abcdef".parse().unwrap();
        let errors = [
            Error::value_failure("k", SealError::DecryptFailed, |_| false),
            Error::value_failure(
                "k",
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                |_| false,
            ),
            Error::value_failure(
                "k",
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                |_| true,
            ),
            Error::value_failure("k", SealError::Malformed("x"), |_| false),
            Error::value_failure("k", SealError::InvalidBinding("x".into()), |_| false),
            Error::InvalidSpec("x".into()),
            Error::TooManyValues { count: 2000 },
            Error::Internal("x".into()),
            Error::SecretNotOwned("s".into()),
            Error::SecretImmutable("s".into()),
            Error::PolicyDenied("p".into()),
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
            Error::Serialization(serde_json::from_str::<u8>("x").unwrap_err()),
        ];
        let reasons: Vec<Reason> = errors.iter().map(Error::reason).collect();
        for reason in Reason::ALL {
            assert!(reasons.contains(reason), "no error has reason {reason}");
        }
        for reason in ValueFailureReason::ALL {
            assert_eq!(Reason::from(reason).as_str(), reason.as_str());
        }
        let metrics = crate::metrics::Metrics::new();
        let rendered = metrics.render(&Default::default(), &[]);
        for reason in Reason::ALL {
            assert!(
                rendered.contains(&format!("reason=\"{reason}\"")),
                "{reason} is not a metric label"
            );
        }
    }
}
