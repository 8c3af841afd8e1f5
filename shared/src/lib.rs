//! kseal's core library: the sealed-value format, its crypto, cluster keys,
//! and the manifests that carry sealed values.
//!
//! Layers, from the bottom:
//! * [`keys`]: age X25519 identities and recipients, key ids, key files;
//! * [`binding`]: what a value is bound to (scope, namespace, name, key);
//! * [`envelope`]: sealing, opening and re-wrapping one value;
//! * [`sealed_secret`]: the `SealedSecret` resource types;
//! * [`manifest`]: Secrets and SealedSecrets in YAML/JSON files;
//! * [`validation`]: Kubernetes' naming rules and what makes a SealedSecret
//!   well-formed;
//! * [`config`]: `.kseal.yaml` rules that pick recipients by path;
//! * [`bitnami`]: reading Bitnami sealed-secrets, to migrate them.
#![forbid(unsafe_code)]

pub mod backup;
pub mod binding;
pub mod bitnami;
pub mod config;
pub mod envelope;
pub mod error;
pub mod keys;
pub mod manifest;
pub mod sealed_secret;
pub mod secret;
pub mod validation;
mod wrapped_key;

pub use binding::{Binding, Scope};
pub use envelope::{Keyring, SealedValue, open, rewrap, seal};
pub use error::{KeyError, SealError};
pub use keys::{Identity, KeyId, Recipient};
pub use sealed_secret::{SealedSecret, SealedSecretSpec, SealedSecretStatus};
pub use secret::{DataKey, SecretBytes};

// Re-exported so callers use the same age (and its `secrecy`) as this crate.
pub use age;
