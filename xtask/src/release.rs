//! `cargo xtask release`: a whole release into one directory, optionally
//! pushed to a registry and signed there (see `kseal_testenv::release`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args as ClapArgs;
use kseal_testenv::release::{self, Arch, Options, Signer};

#[derive(ClapArgs)]
pub struct Args {
    /// The release directory to create (must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Cargo profile of the binaries: `release` (fat LTO; what is published)
    /// or `image-test` (the same code, built faster).
    #[arg(long, default_value = "release")]
    profile: String,
    /// A platform to build for, `linux/amd64` or `linux/arm64`; repeat for
    /// several [default: both].
    #[arg(long = "platform", value_name = "PLATFORM")]
    platforms: Vec<Arch>,
    /// Registry and namespace the image and the chart are published under:
    /// the image is `<REGISTRY>/kseal-controller`, the chart
    /// `oci://<REGISTRY>/charts/kseal`, and the chart pins the image by
    /// digest there.
    #[arg(long, default_value = release::PUBLIC_REGISTRY)]
    registry: String,
    /// Sign with this cosign private key (its password in
    /// `COSIGN_PASSWORD`); `cosign.pub` goes into the release. Without it
    /// and without --keyless, a key pair is made for this release only.
    #[arg(long, value_name = "KEY", conflicts_with = "keyless")]
    signing_key: Option<PathBuf>,
    /// Sign with Sigstore keyless signing (the hosted CI's OIDC identity).
    #[arg(long)]
    keyless: bool,
    /// Build only: no signatures (the release workflow signs in a job of
    /// its own with build-support/release-publish.sh).
    #[arg(long, conflicts_with_all = ["signing_key", "keyless", "push"])]
    no_sign: bool,
    /// Push the image index and the chart to --registry and sign them there.
    #[arg(long)]
    push: bool,
    /// The registry speaks plain HTTP (a registry on loopback).
    #[arg(long, requires = "push")]
    plain_http: bool,
    /// Base URL the CLI archives will be downloaded from, for the krew
    /// manifest [default: the GitHub release of this version].
    #[arg(long, value_name = "URL")]
    download_url: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let t = Instant::now();
    let platforms = if args.platforms.is_empty() {
        Arch::ALL.to_vec()
    } else {
        args.platforms
    };
    let signer = match (args.signing_key, args.keyless) {
        _ if args.no_sign => None,
        (Some(key), _) => Some(Signer::Key(key)),
        (None, true) => Some(Signer::Keyless),
        (None, false) => {
            eprintln!(
                "kseal: no --signing-key: signing with a key pair made for this release \
                 (cosign.pub in the release verifies it; the private key is not kept)"
            );
            Some(Signer::Ephemeral)
        }
    };
    let built = release::build(&Options {
        out: args.out,
        profile: args.profile,
        platforms,
        registry: args.registry,
        signer,
        download_url: args.download_url,
        image_annotations: BTreeMap::new(),
    })?;
    let m = &built.manifest;
    eprintln!(
        "kseal: release {} in {} ({:.1}s, cargo {:.1}s)",
        m.version,
        built.dir.display(),
        t.elapsed().as_secs_f64(),
        built.cargo_time.as_secs_f64()
    );
    eprintln!("kseal: image {}", m.image_ref());
    if args.push {
        let published = release::publish(&built, args.plain_http)?;
        eprintln!(
            "kseal: pushed and signed {} and {}:{} ({})",
            published.image, published.chart, m.version, published.chart_digest
        );
    }
    println!("{}", built.dir.display());
    Ok(())
}
