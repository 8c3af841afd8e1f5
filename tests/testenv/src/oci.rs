//! OCI images without a container engine: a single-layer image written as an
//! OCI image layout in a tar archive, the format `ctr images import` reads.
//!
//! The layout is a handful of JSON files and one uncompressed tar layer, so
//! it is written directly (no Docker, no registry). Everything is
//! reproducible: fixed timestamps, owners and order.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// A file in the image's single layer.
#[derive(Debug, Clone)]
pub struct File {
    /// Absolute path inside the image, e.g. `/usr/local/bin/kseal-controller`.
    pub path: String,
    /// Mode bits, e.g. `0o755`.
    pub mode: u32,
    /// Contents.
    pub data: Vec<u8>,
}

/// What goes into the image config and the index.
#[derive(Debug, Clone, Default)]
pub struct Image {
    /// Full reference containerd stores the image under, e.g.
    /// `localhost/kseal/kseal-controller:dev` (the index annotation
    /// `io.containerd.image.name`).
    pub name: String,
    /// `User` of the config, e.g. `65532:65532`.
    pub user: String,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `ExposedPorts`, e.g. `8080/tcp`.
    pub exposed_ports: Vec<String>,
    /// Config labels and manifest annotations (OCI `org.opencontainers.image.*`).
    pub annotations: BTreeMap<String, String>,
    /// The layer's files (parent directories are added).
    pub files: Vec<File>,
}

/// What [`write_archive`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// `sha256:…` of the manifest (the image digest).
    pub manifest_digest: String,
    /// Size of the (uncompressed) layer in bytes.
    pub layer_size: usize,
}

/// Writes `image`, for this machine's architecture, as an OCI image layout
/// tar archive to `out` (atomically).
pub fn write_archive(image: &Image, out: &Path) -> Result<Written> {
    ensure!(!image.name.is_empty(), "an image needs a name");
    let built = manifest_blobs(image, go_arch())?;
    let manifest_digest = built.manifest.0.clone();
    let layer_size = built.layer.1.len();
    let tag = image.name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": manifest_digest,
            "size": built.manifest.1.len(),
            "platform": {"architecture": go_arch(), "os": "linux"},
            "annotations": {
                "io.containerd.image.name": image.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;
    write_layout(out, &index, built.blobs())?;
    Ok(Written {
        manifest_digest,
        layer_size,
    })
}

/// One platform's image in a multi-platform index: the GOARCH name
/// (`amd64`, `arm64`) and its files; name, user, entrypoint, ports and
/// annotations come from the index's [`Image`].
#[derive(Debug, Clone)]
pub struct Platform {
    /// GOARCH, as image configs and indexes spell it.
    pub arch: String,
    /// The layer's files for this platform.
    pub files: Vec<File>,
}

/// Writes a multi-platform image as an OCI image layout tar archive: the
/// layout's `index.json` names one image index (the image, under
/// `image.name`), which lists one manifest per platform (`linux/<arch>`).
/// `image.files` is ignored; each platform brings its own. The returned
/// digest is the image index's: what `docker pull`, containerd and a
/// chart's `image.digest` pin, and what a registry serves for every
/// platform. The same input gives the same bytes.
pub fn write_index_archive(image: &Image, platforms: &[Platform], out: &Path) -> Result<Written> {
    ensure!(!image.name.is_empty(), "an image needs a name");
    ensure!(!platforms.is_empty(), "an image index needs a platform");
    let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut manifests = Vec::new();
    let mut layer_size = 0;
    for platform in platforms {
        ensure!(
            !manifests
                .iter()
                .any(|m: &serde_json::Value| m["platform"]["architecture"] == platform.arch),
            "platform linux/{} given twice",
            platform.arch
        );
        let built = manifest_blobs(
            &Image {
                files: platform.files.clone(),
                ..image.clone()
            },
            &platform.arch,
        )?;
        layer_size += built.layer.1.len();
        manifests.push(json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": built.manifest.0,
            "size": built.manifest.1.len(),
            "platform": {"architecture": platform.arch, "os": "linux"},
        }));
        blobs.extend(built.blobs());
    }
    let image_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": manifests,
        "annotations": image.annotations,
    }))?;
    let index_digest = digest(&image_index);
    let tag = image.name.rsplit_once(':').map_or("latest", |(_, t)| t);
    let layout_index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": INDEX_MEDIA_TYPE,
            "digest": index_digest,
            "size": image_index.len(),
            "annotations": {
                "io.containerd.image.name": image.name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;
    blobs.push((index_digest.clone(), image_index));
    write_layout(out, &layout_index, blobs)?;
    Ok(Written {
        manifest_digest: index_digest,
        layer_size,
    })
}

const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image manifest with its config and layer, each as (digest, bytes).
struct ManifestBlobs {
    manifest: (String, Vec<u8>),
    config: (String, Vec<u8>),
    layer: (String, Vec<u8>),
}

impl ManifestBlobs {
    fn blobs(self) -> Vec<(String, Vec<u8>)> {
        vec![self.manifest, self.config, self.layer]
    }
}

fn manifest_blobs(image: &Image, arch: &str) -> Result<ManifestBlobs> {
    let layer = layer_tar(&image.files)?;
    let layer_digest = digest(&layer);
    let ports: serde_json::Map<String, serde_json::Value> = image
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), json!({})))
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": image.user,
            "Entrypoint": image.entrypoint,
            "Env": image.env,
            "ExposedPorts": ports,
            "Labels": image.annotations,
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "kseal-testenv oci"}],
    }))?;
    let config_digest = digest(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
        "annotations": image.annotations,
    }))?;
    Ok(ManifestBlobs {
        manifest: (digest(&manifest), manifest),
        config: (config_digest, config),
        layer: (layer_digest, layer),
    })
}

/// Writes an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`)
/// as a tar archive to `out`, atomically. Blobs are written once each, in
/// digest order.
fn write_layout(out: &Path, index: &[u8], blobs: Vec<(String, Vec<u8>)>) -> Result<()> {
    let blobs: BTreeMap<String, Vec<u8>> = blobs.into_iter().collect();
    let mut archive = Tar::default();
    archive.dir("blobs/");
    archive.dir("blobs/sha256/");
    archive.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    archive.file("index.json", 0o644, index)?;
    for (d, bytes) in &blobs {
        let name = format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        archive.file(&name, 0o644, bytes)?;
    }
    let bytes = archive.finish();

    let dir = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    fs::write(tmp.path(), bytes)?;
    // Readable like any build output (the temp file is created 0600).
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(out)
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// The GOARCH name of this machine, as image configs spell it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `sha256:<hex>`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn layer_tar(files: &[File]) -> Result<Vec<u8>> {
    let mut tar = Tar::default();
    let mut dirs = std::collections::BTreeSet::new();
    let mut sorted: Vec<&File> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in sorted {
        let rel = f.path.trim_start_matches('/');
        ensure!(
            !rel.is_empty() && !rel.split('/').any(|c| c == ".." || c.is_empty()),
            "bad path in image: {:?}",
            f.path
        );
        let mut prefix = String::new();
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            prefix.push_str(part);
            prefix.push('/');
            if dirs.insert(prefix.clone()) {
                tar.dir(&prefix);
            }
        }
        tar.file(rel, f.mode, &f.data)?;
    }
    Ok(tar.finish())
}

/// A minimal ustar writer: regular files and directories, owner 0:0,
/// mtime 0, names under 100 bytes.
#[derive(Default)]
struct Tar {
    out: Vec<u8>,
}

impl Tar {
    fn dir(&mut self, name: &str) {
        // Directory names are short literals or prefixes of checked paths.
        let _ = self.entry(name, 0o755, b'5', &[]);
    }

    fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> Result<()> {
        self.entry(name, mode, b'0', data)
    }

    fn entry(&mut self, name: &str, mode: u32, kind: u8, data: &[u8]) -> Result<()> {
        ensure!(name.len() < 100, "tar entry name too long: {name}");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], u64::from(mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[148..156].fill(b' ');
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        self.out.extend_from_slice(&h);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.extend(std::iter::repeat_n(0u8, 1024));
        self.out
    }
}

/// Zero-padded octal with a trailing NUL, filling the field.
fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    field[..width].copy_from_slice(&s.as_bytes()[s.len() - width..]);
    field[width] = 0;
}

/// A static C program as an image of its own: built with `gcc -static`
/// into `/PROGRAM` on an empty image run as `user`, cached as
/// `<cache>/images/PROGRAM-<hash>.tar` by the hash of its source (no
/// registry is reachable here). Returns the image name containerd knows it
/// by (`localhost/kseal-testenv/PROGRAM:<hash>`) and the OCI archive.
pub fn static_c_image(
    program: &str,
    source: &str,
    user: &str,
) -> Result<(String, std::path::PathBuf)> {
    let hash = digest(source.as_bytes());
    let short = &hash["sha256:".len().."sha256:".len() + 12];
    let name = format!("localhost/kseal-testenv/{program}:{short}");
    let dir = crate::bins::cache_root()?.join("images");
    let archive = dir.join(format!("{program}-{short}.tar"));
    if archive.is_file() {
        return Ok((name, archive));
    }
    fs::create_dir_all(&dir)?;
    let work = tempfile::tempdir()?;
    let src = work.path().join(format!("{program}.c"));
    let bin = work.path().join(program);
    fs::write(&src, source)?;
    let out = std::process::Command::new("gcc")
        .args(["-Os", "-static", "-s", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .with_context(|| format!("running gcc to build the {program} program"))?;
    ensure!(
        out.status.success(),
        "building the {program} program failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = format!("/{program}");
    write_archive(
        &Image {
            name: name.clone(),
            user: user.into(),
            entrypoint: vec![path.clone()],
            files: vec![File {
                path,
                mode: 0o755,
                data: fs::read(&bin)?,
            }],
            ..Image::default()
        },
        &archive,
    )?;
    Ok((name, archive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_tar_reads_the_layer_and_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image {
            name: "localhost/test/x:1".into(),
            user: "65532:65532".into(),
            entrypoint: vec!["/bin/x".into()],
            files: vec![File {
                path: "/bin/x".into(),
                mode: 0o755,
                data: b"hello".to_vec(),
            }],
            ..Image::default()
        };
        let out = dir.path().join("x.tar");
        let written = write_archive(&image, &out).unwrap();
        let list = std::process::Command::new("tar")
            .arg("-tvf")
            .arg(&out)
            .output()
            .unwrap();
        assert!(list.status.success());
        let text = String::from_utf8(list.stdout).unwrap();
        assert!(text.contains("index.json"), "{text}");
        let manifest_blob = written.manifest_digest.trim_start_matches("sha256:");
        assert!(text.contains(manifest_blob), "{text}");
        // The index names the image for containerd.
        let idx = std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&out)
            .arg("index.json")
            .output()
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(&idx.stdout).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"]["io.containerd.image.name"],
            "localhost/test/x:1"
        );
        // Same input, same bytes.
        let again = dir.path().join("y.tar");
        write_archive(&image, &again).unwrap();
        assert_eq!(fs::read(&out).unwrap(), fs::read(&again).unwrap());
    }
}
