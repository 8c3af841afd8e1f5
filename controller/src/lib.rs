//! kseal-controller: keeps a decrypted Secret for every kseal SealedSecret.
//!
//! Its public face is what its binary, its tests, the fuzz targets and
//! xtask use: [`config`] (the command line), [`run`] (the controller),
//! [`crd`] (the CRD it serves), [`client`] (its rate-limited Kubernetes
//! client) and [`http::parse_sealed_secret_body`]. Everything else is
//! crate-private, so the compiler reports what nothing uses:
//!
//! * `reconcile`: one SealedSecret → its Secret, status and Events (the
//!   decision what to write is `reconcile::decision`, plain data in and out);
//! * `conditions`: the status condition types GitOps tools read;
//! * `rotation`: whether values are due for rotation or re-wrap;
//! * `rollout`: restarting the workloads that read a changed Secret;
//! * `metrics`: the Prometheus metrics, labelled by bounded sets;
//! * `sealing_keys`: sealing keys (Secrets), renewal, the public-key ConfigMap;
//! * `cached`, `owned`: the SealedSecrets and owned Secrets kept in memory;
//! * `context`: the state every reconcile and handler shares;
//! * `error`: why a reconcile failed, with a reason per variant;
//! * `events`: Kubernetes Events, off the reconcile path;
//! * [`http`]: health, metrics, public keys, verify and rewrap;
//! * `record`: signed records of owned Secrets, so a restart reads none;
//! * `crypto_pool`: decrypting off the async workers, bounded;
//! * `rate_limit`: the request and work budgets of the decrypting endpoints;
//! * `leader`: leader election on a Lease;
//! * `listing`: lists and watches whose memory others cannot grow;
//! * [`client`]: the Kubernetes client with a QPS limit;
//! * [`run`]: wiring it all together.
//!
//! CONTRIBUTING.md maps every module and its layer.
#![forbid(unsafe_code)]
// A `pub` item in a crate-private module says nothing true: `pub(crate)`.
#![warn(unreachable_pub)]

pub(crate) mod cached;
pub mod client;
pub(crate) mod conditions;
pub mod config;
pub(crate) mod context;
pub mod crd;
pub(crate) mod crypto_pool;
pub(crate) mod error;
pub(crate) mod events;
pub mod http;
pub(crate) mod leader;
pub(crate) mod listing;
pub(crate) mod metrics;
pub(crate) mod owned;
pub(crate) mod rate_limit;
pub(crate) mod reconcile;
pub(crate) mod record;
pub(crate) mod rollout;
pub(crate) mod rotation;
pub mod run;
pub(crate) mod sealing_keys;

pub use config::Settings;
