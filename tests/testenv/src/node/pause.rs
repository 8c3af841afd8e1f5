//! The pod sandbox ("pause") image, built locally: no registry is reachable.
//! A ~30-line static C program (`tests/testenv/pause/pause.c`) on an empty
//! image, cached by the hash of its source.

use std::path::PathBuf;

use anyhow::Result;

use crate::oci;

/// The C source of the pause program.
pub const SOURCE: &str = include_str!("../../pause/pause.c");

/// A built pause image.
#[derive(Debug, Clone)]
pub struct PauseImage {
    /// The image name containerd knows it by.
    pub name: String,
    /// The OCI archive to import.
    pub archive: PathBuf,
}

/// Builds the pause image into the cache (`<cache>/images/`) unless it is
/// there already.
pub fn ensure() -> Result<PauseImage> {
    let (name, archive) = oci::static_c_image("pause", SOURCE, "65535:65535")?;
    Ok(PauseImage { name, archive })
}
