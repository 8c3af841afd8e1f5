//! `cargo xtask test-bins`: build and cache the upstream binaries.

use std::time::Instant;

use anyhow::Result;

pub fn run() -> Result<()> {
    let t = Instant::now();
    let bins = kseal_testenv::bins::ensure()?;
    eprintln!(
        "kseal: test binaries ready in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // The directory alone on stdout, for scripts: BIN=$(cargo xtask test-bins).
    println!("{}", bins.path().display());
    Ok(())
}
