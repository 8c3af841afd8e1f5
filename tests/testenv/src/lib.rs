//! Test support for kseal's tests, demo and benchmarks: a real Kubernetes
//! control plane ([`ControlPlane`]), a real worker node ([`node`]), a
//! loopback OCI registry ([`registry`]), releases built from the repository
//! ([`release`]), the images they run ([`image`], [`probe`]), Flux's and
//! Argo CD's health code ([`health`]), the Go programs all of these need,
//! built once and cached ([`go_build`], [`bins`]), and the fixtures tests
//! and benches share ([`controller`], [`poll`], [`api_requests`],
//! [`ports`]). CONTRIBUTING.md maps every module.
//!
//! [`ControlPlane::start`] runs etcd, kube-apiserver and
//! kube-controller-manager as local processes, built from the upstream Go
//! modules pinned in `tests/versions.env` (see [`bins::ensure`]) and cached
//! outside the repository. Each control plane has its own temp dir (PKI,
//! kubeconfigs, etcd data, one log per component) and ports reserved for
//! it (see [`ports`]), and kills
//! everything it started when dropped, also during a panic (after printing the
//! tail of each log).
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let Some(_) = kseal_testenv::bins_or_skip() else { return Ok(()) };
//! let cp = kseal_testenv::ControlPlane::start().await?;
//! let admin = cp.client().await?;
//! let alice = cp.mint_user("alice", &["team-a"])?.client().await?;
//! # let _ = (admin, alice); Ok(()) }
//! ```

pub mod api_requests;
pub mod bins;
pub mod certs;
mod cluster;
pub mod controller;
pub mod go_build;
pub mod health;
pub mod http;
pub mod image;
pub mod node;
pub mod oci;
pub mod poll;
pub mod ports;
pub mod probe;
pub mod process;
mod published;
pub mod registry;
pub mod release;
pub mod release_tools;
pub mod sealed_secrets;
pub mod system;
pub mod versions;

pub use bins::BinDir;
pub use cluster::{
    ADMIN_USER, ControlPlane, DEFAULT_READY_TIMEOUT, KUBELET_CLIENT_USER, Options, Startup, User,
    client_from_kubeconfig,
};
pub use node::{HostSnapshot, Node, NodeStartup};
pub use published::published_recipients;
pub use versions::Versions;

/// Whether `CI=true` is set: then missing prerequisites fail tests instead of
/// skipping them.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// For end-to-end tests: the binaries (built if missing), or `None` after a
/// loud message when they cannot be built outside CI. Under `CI=true` a build
/// failure panics, so CI never silently skips.
pub fn bins_or_skip() -> Option<BinDir> {
    match bins::ensure() {
        Ok(bins) => Some(bins),
        Err(e) if is_ci() => panic!("CI=true and the test binaries cannot be built: {e:#}"),
        Err(e) => {
            say(&format!(
                "\n!!!!! SKIPPING end-to-end test: the control-plane binaries cannot be built \
                 ({e:#}).\n!!!!! Install Go (see tests/README.md) or set KSEAL_TEST_BIN_DIR; \
                 under CI=true this is a failure.\n"
            ));
            None
        }
    }
}

/// Writes a line to stderr past libtest's output capture (which only catches
/// `eprintln!`), so skip notices and build progress show even for passing
/// tests.
pub(crate) fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether the CustomResourceDefinition `name` exists and is `Established`
/// (its resource can be used). One request; callers poll.
pub async fn crd_established(client: &kube::Client, name: &str) -> bool {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    kube::Api::<CustomResourceDefinition>::all(client.clone())
        .get(name)
        .await
        .ok()
        .and_then(|crd| crd.status)
        .and_then(|status| status.conditions)
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}
