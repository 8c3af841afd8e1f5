//! kseal's core library: the sealed-value format, its crypto, cluster keys,
//! and the manifests that carry sealed values.
//!
//! Layers, from the bottom (a module uses only modules above it in this
//! list; `tests/module_layers.rs` keeps the modules free of cycles):
//! * [`secret`]: containers for secret material, wiped on drop;
//! * [`x25519`]: age X25519 identities and recipients, key ids, key files;
//! * [`error`]: why a sealed value could not be parsed, sealed or opened;
//! * [`names`]: Kubernetes' naming rules (object names, namespaces, data,
//!   label and annotation keys, label values);
//! * [`yaml`]: the parser's options and limits for YAML anyone may write;
//! * [`binding`]: what a value is bound to (scope, namespace, name, key);
//! * [`envelope`]: sealing, opening and re-wrapping one value;
//! * [`rotation`]: how old a sealed value may get (max age);
//! * [`sealed_secret`]: the `SealedSecret` resource types;
//! * [`generate`]: generated values (`spec.generated`);
//! * [`secret_type`]: the API server's rules for the built-in Secret types
//!   (`kubernetes.io/tls`, `…/dockerconfigjson`, …);
//! * [`validation`]: what makes a SealedSecret well-formed;
//! * [`manifest`]: Secrets and SealedSecrets in YAML/JSON files;
//! * [`contract`]: what kseal puts on a cluster: the labels, annotations,
//!   ConfigMap and HTTP API the CLI and the controller share;
//! * [`published`]: the cluster's published public keys, checked before
//!   anything is sealed to them;
//! * [`config`]: `.kseal.yaml` rules that pick recipients by path;
//! * [`pins`]: cluster keys pinned in recipients files;
//! * [`consumers`]: how pod templates read Secrets, and which reads keep an
//!   old value (`spec.rollout`);
//! * [`backup`]: key backups for an offline recovery key;
//! * [`bitnami`]: reading Bitnami sealed-secrets, to migrate them;
//! * [`error_text`]: errors (kube's among them) as sentences for people.
//!
//! Every public item has one path: its module's (there are no re-exports at
//! the crate root, apart from the `age` crate itself, and
//! [`looks_like_rust_debug`], a test helper whose module is private).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backup;
pub mod binding;
pub mod bitnami;
pub mod config;
pub mod consumers;
pub mod contract;
pub mod envelope;
pub mod error;
pub mod error_text;
pub mod generate;
pub mod manifest;
pub mod names;
pub mod pins;
pub mod published;
pub mod rotation;
mod rust_debug;
pub mod sealed_secret;
pub mod secret;
pub mod secret_type;
pub mod validation;
pub mod x25519;
pub mod yaml;

// Re-exported so callers use the same age (and its `secrecy`) as this crate.
pub use age;
// A test helper for every crate (its module holds nothing else).
pub use rust_debug::looks_like_rust_debug;
