//! The benchmarks: `cargo xtask bench-e2e` and `cargo xtask bench-hostile`.
//!
//! One harness, one scenario per file:
//!
//! - [`harness`]: what every benchmark is made of (notes, load, rounding,
//!   memory and CPU of a process, running tools, temporary directories,
//!   building the release binaries, the control plane side, watches until
//!   convergence, measured windows and restarts, generated objects, typed
//!   figures shared by scenarios, JSON output). It imports no scenario.
//! - Scenarios, each built from phase functions and returning typed
//!   figures (`serde::Serialize` structs, printed as JSON):
//!   [`e2e`] (baseline, sync, restart), [`rotation`] (kseal's key rotation
//!   and re-wrap of the N objects), [`rotation_load`] (rotation under
//!   load), [`bitnami_compare`] (Bitnami's side of `--compare bitnami`),
//!   [`hostile`] (`bench-hostile`). They import the harness and
//!   `kseal_testenv`, never each other.
//! - [`bitnami`]: the Bitnami controller driver (built with Go, run as a
//!   process, a forwarder for `kubeseal --re-encrypt`), used by
//!   [`bitnami_compare`].
//! - [`runner`]: `bench-e2e`'s flags, and the one place that composes
//!   scenarios.
//!
//! What the tests share with the benchmarks (free ports, polling, the
//! controller process, the API server's request counts) is in
//! `kseal_testenv`.

pub mod bitnami;
pub mod bitnami_compare;
pub mod e2e;
pub mod harness;
pub mod hostile;
pub mod rotation;
pub mod rotation_load;
pub mod runner;
