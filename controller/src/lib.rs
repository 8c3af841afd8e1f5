//! kseal-controller: keeps a decrypted Secret for every kseal SealedSecret.
//!
//! * [`reconcile`]: one SealedSecret → its Secret, status and Events;
//! * [`keys`]: sealing keys (Secrets), renewal, the public-key ConfigMap;
//! * [`http`]: health, metrics, public keys, verify and rewrap;
//! * [`record`]: signed records of owned Secrets, so a restart reads none;
//! * [`crypto_pool`]: decrypting off the async workers, bounded;
//! * [`rate_limit`]: the request and work budgets of the decrypting endpoints;
//! * [`leader`]: leader election on a Lease;
//! * [`listing`]: lists and watches whose memory others cannot grow;
//! * [`client`]: the Kubernetes client with a QPS limit;
//! * [`run`]: wiring it all together.
#![forbid(unsafe_code)]

pub mod cached;
pub mod client;
pub mod config;
pub mod context;
pub mod crd;
pub mod crypto_pool;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod listing;
pub mod metrics;
pub mod owned;
pub mod rate_limit;
pub mod reconcile;
pub mod record;
pub mod rollout;
pub mod rotation;
pub mod run;
pub mod sealing_keys;

pub use config::Settings;
pub use error::Error;
