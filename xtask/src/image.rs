//! `cargo xtask image`: the controller image as an OCI archive, without a
//! container engine (see `kseal_testenv::image`).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Args as ClapArgs;
use kseal_testenv::image::{self, Build};

#[derive(ClapArgs)]
pub struct Args {
    /// Cargo profile of the static binary: `release` (fat LTO, what users
    /// run) or `image-test` (the tests' faster build).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Image name (default: localhost/kseal/kseal-controller:VERSION-PROFILE).
    #[arg(long)]
    name: Option<String>,
    /// Where to write the OCI archive (default: target/image/NAME.oci.tar).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let t = Instant::now();
    let built = image::build(&Build {
        profile: args.profile,
        name: args.name,
        out: args.out,
    })?;
    eprintln!(
        "kseal: built {} in {:.1}s (cargo {:.1}s), {} bytes, revision {}",
        built.name,
        t.elapsed().as_secs_f64(),
        built.cargo_time.as_secs_f64(),
        std::fs::metadata(&built.archive)?.len(),
        built.revision
    );
    eprintln!("kseal: digest {}", built.digest);
    eprintln!(
        "kseal: import with: ctr -n k8s.io images import {}",
        built.archive.display()
    );
    println!("{}", built.archive.display());
    Ok(())
}
