//! The pod sandbox ("pause") image, built locally: no registry is reachable.
//! A ~30-line static C program (`tests/testenv/pause/pause.c`) on an empty
//! image, cached by the hash of its source.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, ensure};

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
    let hash = oci::digest(SOURCE.as_bytes());
    let short = &hash["sha256:".len().."sha256:".len() + 12];
    let name = format!("localhost/kseal-testenv/pause:{short}");
    let dir = crate::bins::cache_root()?.join("images");
    let archive = dir.join(format!("pause-{short}.tar"));
    if archive.is_file() {
        return Ok(PauseImage { name, archive });
    }
    std::fs::create_dir_all(&dir)?;
    let work = tempfile::tempdir()?;
    let src = work.path().join("pause.c");
    let bin = work.path().join("pause");
    std::fs::write(&src, SOURCE)?;
    let out = Command::new("gcc")
        .args(["-Os", "-static", "-s", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .context("running gcc to build the pause program")?;
    ensure!(
        out.status.success(),
        "building the pause program failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    oci::write_archive(
        &oci::Image {
            name: name.clone(),
            user: "65535:65535".into(),
            entrypoint: vec!["/pause".into()],
            files: vec![oci::File {
                path: "/pause".into(),
                mode: 0o755,
                data: std::fs::read(&bin)?,
            }],
            ..oci::Image::default()
        },
        &archive,
    )?;
    Ok(PauseImage { name, archive })
}
