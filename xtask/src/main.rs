//! Repository automation: `cargo xtask <task>`.

mod bench;
mod cluster;
mod demo;
mod gen_gomod;
mod image;
mod release;
mod test_bins;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "kseal repository automation")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build (if missing) and cache etcd, the Kubernetes binaries (apiserver,
    /// controller-manager, scheduler, kubelet, kube-proxy, kubectl) and helm
    /// for the versions pinned in tests/versions.env; print the directory.
    TestBins,
    /// Run a local control plane.
    Cluster {
        #[command(subcommand)]
        action: cluster::Action,
    },
    /// Run kseal end to end on a local control plane: seal, apply, unseal,
    /// rotate, re-wrap; stops everything when done.
    Demo {
        /// Run the controller as users do: the image (built here, no
        /// Docker) on a real node, installed with `helm install`, `--online`
        /// through the API server's service proxy. Builds a static controller
        /// the first time (minutes); then about as fast as without.
        #[arg(long)]
        in_cluster: bool,
    },
    /// Measure kseal end to end on a local control plane: N SealedSecrets to
    /// N Secrets against a direct-create baseline, peak memory, restart;
    /// prints the figures as JSON on the last line.
    BenchE2e(bench::runner::Args),
    /// Measure the controller's peak memory with hostile objects (owned-label
    /// Secrets and SealedSecrets as large as the API server allows); prints
    /// the figures as JSON on the last line.
    BenchHostile(bench::hostile::Args),
    /// Build the controller image as an OCI archive (static binary on an
    /// empty base, user 65532), without a container engine; prints its path.
    Image(image::Args),
    /// Build a release into one directory: static binaries for Linux
    /// amd64 and arm64 in archives, SBOMs, the controller image as an OCI
    /// index, the chart pinned to it, a krew manifest, provenance,
    /// SHA256SUMS and cosign signatures; with --push, publish the image and
    /// the chart to a registry and sign them there (docs/releasing.md).
    Release(release::Args),
    /// Regenerate the wrapper Go modules in tests/gomod/ from tests/versions.env
    /// (needs the Go module proxy).
    GenGomod,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::TestBins => test_bins::run(),
        Task::Cluster { action } => cluster::run(action),
        Task::GenGomod => gen_gomod::run(),
        Task::Demo { in_cluster } => demo::run(in_cluster),
        Task::BenchE2e(args) => bench::runner::run(args),
        Task::BenchHostile(args) => bench::hostile::run(args),
        Task::Image(args) => image::run(args),
        Task::Release(args) => release::run(args),
    }
}
