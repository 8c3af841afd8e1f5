//! `cargo xtask release`'s library, for both platforms, checked with the
//! tools users check a release with: GNU tar and `sha256sum`, cosign,
//! helm, krew, and the binaries themselves. (Publishing and installing
//! from a registry: controller/tests/in_cluster.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use kseal_testenv::release::{self, Arch, Manifest, Options, Signer, VERSION};
use serde_json::Value;

/// Every file `build` writes besides `SHA256SUMS`, its bundle,
/// `cosign.pub` and `release.json`.
fn expected_files() -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for arch in ["amd64", "arm64"] {
        for bin in ["kseal", "kseal-controller"] {
            files.insert(format!("{bin}-{VERSION}-linux-{arch}.tar.gz"));
            files.insert(format!("{bin}-{VERSION}-linux-{arch}.cdx.json"));
        }
    }
    files.insert(format!("kseal-controller-{VERSION}.oci.tar"));
    files.insert(format!("kseal-{VERSION}.tgz"));
    files.insert("kseal.krew.yaml".into());
    files.insert("provenance.intoto.json".into());
    files.insert("release.json".into());
    files
}

#[test]
fn a_release_for_both_platforms_holds_what_users_check() {
    let Some(bins) = kseal_testenv::bins_or_skip() else {
        return;
    };
    let tools = kseal_testenv::release_tools::ensure().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("release");
    let built = release::build(&Options {
        out: dir.clone(),
        profile: "image-test".into(),
        platforms: Arch::ALL.to_vec(),
        registry: "registry.example/kseal-dev".into(),
        signer: Some(Signer::Ephemeral),
        download_url: Some("https://downloads.example/v{version}".into()),
        image_annotations: BTreeMap::new(),
    })
    .unwrap();
    eprintln!("cargo: {:.1}s", built.cargo_time.as_secs_f64());
    let m = Manifest::read(&dir).unwrap();
    assert_eq!(m, built.manifest);
    assert_eq!(m.version, VERSION);
    assert_eq!(m.platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(
        m.image_repository,
        "registry.example/kseal-dev/kseal-controller"
    );
    assert_eq!(
        m.chart_repository,
        "oci://registry.example/kseal-dev/charts"
    );

    // Exactly the files the docs list.
    let listed: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut want = expected_files();
    for extra in ["SHA256SUMS", "SHA256SUMS.cosign.bundle", "cosign.pub"] {
        want.insert(extra.into());
    }
    want.insert(format!("kseal-{VERSION}.tgz.cosign.bundle"));
    want.insert("provenance.intoto.json.cosign.bundle".into());
    assert_eq!(listed, want);
    // Every file is for everyone to read (cosign writes its bundles 0600).
    for f in &listed {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{f} is {mode:o}");
    }

    // SHA256SUMS: what sha256sum checks, over every release file.
    let sums = fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    let in_sums: BTreeSet<String> = sums
        .lines()
        .map(|l| l.split_once("  ").unwrap().1.to_owned())
        .collect();
    assert_eq!(in_sums, expected_files());
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // Signatures, as a user verifies them; a changed file fails.
    release::verify_dir(&tools.cosign, &dir).unwrap();
    let tampered = work.path().join("tampered");
    fs::create_dir(&tampered).unwrap();
    for f in ["SHA256SUMS", "SHA256SUMS.cosign.bundle", "cosign.pub"] {
        fs::copy(dir.join(f), tampered.join(f)).unwrap();
    }
    let mut changed = sums.clone().into_bytes();
    changed[0] = if changed[0] == b'0' { b'1' } else { b'0' };
    fs::write(tampered.join("SHA256SUMS"), changed).unwrap();
    let refused = release::verify_blob(
        &tools.cosign,
        &tampered.join("cosign.pub"),
        &tampered.join("SHA256SUMS"),
    );
    assert!(refused.is_err(), "a changed SHA256SUMS verified");

    // Archives: GNU tar reads them; each holds a static binary for its
    // platform; this machine's run.
    let mut controllers = BTreeMap::new();
    for arch in Arch::ALL {
        for bin in ["kseal", "kseal-controller"] {
            let archive = dir.join(format!("{bin}-{VERSION}-linux-{}.tar.gz", arch.goarch()));
            let out = work.path().join(format!("{bin}-{}", arch.goarch()));
            fs::create_dir(&out).unwrap();
            let tar = Command::new("tar")
                .arg("-xzf")
                .arg(&archive)
                .arg("-C")
                .arg(&out)
                .output()
                .unwrap();
            assert!(tar.status.success(), "{tar:?}");
            let names: BTreeSet<String> = fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(
                names,
                [bin, "LICENSE", "README.md"]
                    .map(String::from)
                    .into_iter()
                    .collect()
            );
            let binary = fs::read(out.join(bin)).unwrap();
            assert_static_elf(&binary, arch, bin);
            if Some(arch) == Arch::host() {
                let version = Command::new(out.join(bin))
                    .arg("--version")
                    .output()
                    .unwrap();
                assert!(version.status.success(), "{version:?}");
                let text = String::from_utf8_lossy(&version.stdout);
                assert!(text.contains(VERSION), "{bin} --version: {text}");
            }
            if bin == "kseal-controller" {
                controllers.insert(arch.goarch(), binary);
            }

            // The SBOM names the package and crates actually linked.
            let sbom: Value = serde_json::from_str(
                &fs::read_to_string(
                    dir.join(format!("{bin}-{VERSION}-linux-{}.cdx.json", arch.goarch())),
                )
                .unwrap(),
            )
            .unwrap();
            assert_eq!(sbom["bomFormat"], "CycloneDX");
            let names = component_names(&sbom);
            assert!(names.contains("ring"), "{bin} SBOM lacks ring");
            assert!(names.contains("age"), "{bin} SBOM lacks age");
            let (has, lacks) = if bin == "kseal" {
                ("clap", "axum")
            } else {
                ("axum", "clap_mangen")
            };
            assert!(names.contains(has), "{bin} SBOM lacks {has}");
            assert!(!names.contains(lacks), "{bin} SBOM lists {lacks}");
        }
    }

    // The image: one index, a manifest per platform, each with that
    // platform's controller.
    check_image(&dir.join(&m.image_file), &m.image_digest, &controllers);

    // The chart: helm reads it; its image is the index, by digest.
    let chart = dir.join(&m.chart_file);
    let helm = |args: &[&str]| {
        let out = Command::new(bins.helm())
            .args(args)
            .arg(&chart)
            .env("HELM_CACHE_HOME", work.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", work.path().join("helm/config"))
            .env("HELM_DATA_HOME", work.path().join("helm/data"))
            .output()
            .unwrap();
        assert!(out.status.success(), "helm {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let shown = helm(&["show", "chart"]);
    assert!(
        shown.contains(&format!("\nversion: {VERSION}\n")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("appVersion: {VERSION}\n")),
        "{shown}"
    );
    let rendered = helm(&["template", "kseal"]);
    assert!(
        rendered.contains(&format!("image: \"{}\"\n", m.image_ref())),
        "the rendered Deployment does not run {}",
        m.image_ref()
    );

    // krew's own code installs the plugin from the manifest and the archive.
    let host = Arch::host().unwrap();
    let krew_root = work.path().join("krew");
    let install = Command::new(&tools.krew)
        .arg("install")
        .arg(format!(
            "--manifest={}",
            dir.join("kseal.krew.yaml").display()
        ))
        .arg(format!(
            "--archive={}",
            dir.join(format!("kseal-{VERSION}-linux-{}.tar.gz", host.goarch()))
                .display()
        ))
        .env("KREW_ROOT", &krew_root)
        // A krew with a version tag checks GitHub for upgrades otherwise.
        .env("KREW_NO_UPGRADE_CHECK", "1")
        .env("KREW_OS", "linux")
        .env("KREW_ARCH", host.goarch())
        .output()
        .unwrap();
    assert!(install.status.success(), "krew install: {install:?}");
    let plugin = Command::new(krew_root.join("bin/kubectl-kseal"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(plugin.status.success(), "{plugin:?}");
    assert!(String::from_utf8_lossy(&plugin.stdout).contains(VERSION));
    let krew = fs::read_to_string(dir.join("kseal.krew.yaml")).unwrap();
    assert!(krew.contains(&format!(
        "uri: https://downloads.example/v{VERSION}/kseal-{VERSION}-linux-arm64.tar.gz"
    )));

    // Provenance: every release file and the image, by digest.
    let statement: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("provenance.intoto.json")).unwrap())
            .unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects: BTreeMap<String, String> = statement["subject"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["digest"]["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for line in sums.lines() {
        let (hex, name) = line.split_once("  ").unwrap();
        if name != "provenance.intoto.json" {
            assert_eq!(subjects.get(name).map(String::as_str), Some(hex), "{name}");
        }
    }
    assert_eq!(
        subjects
            .get(&format!("{}:{VERSION}", m.image_repository))
            .map(|d| format!("sha256:{d}")),
        Some(m.image_digest.clone())
    );
    assert_eq!(
        statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"]["gitCommit"],
        m.revision.as_str()
    );

    // The release workflow's way: built unsigned (no bundle, no key), then
    // signed by the publishing script, which first checks SHA256SUMS.
    let unsigned_dir = work.path().join("unsigned");
    let unsigned = release::build(&Options {
        out: unsigned_dir.clone(),
        profile: "image-test".into(),
        platforms: vec![Arch::host().unwrap()],
        registry: "registry.example/kseal-dev".into(),
        signer: None,
        download_url: None,
        image_annotations: BTreeMap::new(),
    })
    .unwrap();
    assert!(unsigned.signer.is_none());
    let names: Vec<String> = fs::read_dir(&unsigned_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".cosign.bundle") || n == "cosign.pub"),
        "{names:?}"
    );
    let signer = Signer::Ephemeral.prepare().unwrap();
    // A file changed after the build is refused before anything is signed.
    let chart_path = unsigned_dir.join(&unsigned.manifest.chart_file);
    let chart_bytes = fs::read(&chart_path).unwrap();
    fs::write(&chart_path, b"not the chart").unwrap();
    let refused = signer.run_script("sign", &unsigned_dir, false);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("does not match its SHA256SUMS")
    );
    assert!(!unsigned_dir.join("SHA256SUMS.cosign.bundle").exists());
    fs::write(&chart_path, chart_bytes).unwrap();
    signer.run_script("sign", &unsigned_dir, false).unwrap();
    release::verify_dir(&tools.cosign, &unsigned_dir).unwrap();

    // A second build into the same, now full, directory is refused.
    let again = release::build(&Options {
        out: dir.clone(),
        profile: "image-test".into(),
        platforms: vec![host],
        registry: "registry.example/kseal-dev".into(),
        signer: Some(Signer::Ephemeral),
        download_url: None,
        image_annotations: BTreeMap::new(),
    });
    assert!(again.unwrap_err().to_string().contains("not empty"));
}

/// A static ELF executable for `arch`: the right machine, no program
/// interpreter (nothing to load at run time).
fn assert_static_elf(binary: &[u8], arch: Arch, name: &str) {
    assert_eq!(&binary[..4], b"\x7fELF", "{name}: not ELF");
    assert_eq!(binary[4], 2, "{name}: not 64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([binary[o], binary[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(binary[o..o + 8].try_into().unwrap());
    let machine = u16_at(18);
    let want = match arch {
        Arch::Amd64 => 62,  // EM_X86_64
        Arch::Arm64 => 183, // EM_AARCH64
    };
    assert_eq!(machine, want, "{name} for {arch:?}: e_machine {machine}");
    let (phoff, phentsize, phnum) = (u64_at(32) as usize, u16_at(54) as usize, u16_at(56));
    for i in 0..usize::from(phnum) {
        let p_type = u32::from_le_bytes(
            binary[phoff + i * phentsize..phoff + i * phentsize + 4]
                .try_into()
                .unwrap(),
        );
        assert_ne!(p_type, 3, "{name} for {arch:?} has a PT_INTERP: not static");
    }
}

/// Two releases built at once in one process (as controller/tests/in_cluster
/// does) write their SBOMs at once: each must get its own, and none may be
/// left in the source tree. cargo cyclonedx writes beside every member's
/// Cargo.toml, so a scratch name shared by two calls lets one call read,
/// or delete, the other's.
#[test]
fn sboms_written_at_the_same_time_do_not_meet() {
    // The release tools come with the rest of the end-to-end set.
    if kseal_testenv::bins_or_skip().is_none() {
        return;
    }
    let arch = Arch::host().expect("a release platform");
    let tools = release::toolchain::ensure(&[arch.rust_target()]).unwrap();
    // A stem of this test's own: the other test in this binary, and CI's
    // background `cargo xtask release` in the same checkout, write SBOMs
    // with the usual stems at the same time.
    let stem = format!("sbom-race-{}", std::process::id());
    let work = tempfile::tempdir().unwrap();
    let calls: Vec<(&str, std::path::PathBuf)> = (0..6)
        .map(|i| {
            let name = if i % 2 == 0 {
                "kseal"
            } else {
                "kseal-controller"
            };
            let dir = work.path().join(i.to_string());
            fs::create_dir(&dir).unwrap();
            (name, dir)
        })
        .collect();
    // All start together, so the cargo cyclonedx runs overlap.
    let start = std::sync::Barrier::new(calls.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|(name, dir)| {
                s.spawn(|| {
                    start.wait();
                    release::sbom(&tools, dir, &stem, name, arch)
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    for (name, dir) in &calls {
        let file = dir.join(format!("{stem}.cdx.json"));
        let sbom: Value = serde_json::from_str(&fs::read_to_string(file).unwrap()).unwrap();
        let names = component_names(&sbom);
        let (has, lacks) = if *name == "kseal" {
            ("clap", "axum")
        } else {
            ("axum", "clap_mangen")
        };
        assert!(names.contains(has), "{name}'s SBOM lacks {has}");
        assert!(!names.contains(lacks), "{name}'s SBOM lists {lacks}");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for member in ["cli", "controller", "shared", "xtask", "tests/testenv"] {
        for entry in fs::read_dir(root.join(member)).unwrap() {
            let file = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !(file.starts_with(".release-sbom-") && file.ends_with(&format!("-{stem}.json"))),
                "{member}/{file} was left behind"
            );
        }
    }
}

fn component_names(sbom: &Value) -> BTreeSet<String> {
    sbom["components"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The OCI layout: `index.json` names the image index `digest`, which
/// lists linux/amd64 and linux/arm64, whose single layers hold
/// `/usr/local/bin/kseal-controller` equal to that platform's archive.
fn check_image(archive: &Path, digest: &str, controllers: &BTreeMap<&str, Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let tar = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(tar.status.success(), "{tar:?}");
    let blob = |d: &str| {
        let bytes = fs::read(
            dir.path()
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .unwrap();
        assert_eq!(
            kseal_testenv::oci::digest(&bytes),
            d,
            "blob {d} is not its digest"
        );
        bytes
    };
    let layout: Value =
        serde_json::from_slice(&fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(layout["manifests"][0]["digest"], digest);
    let index: Value = serde_json::from_slice(&blob(digest)).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let mut seen = BTreeSet::new();
    for entry in index["manifests"].as_array().unwrap() {
        let arch = entry["platform"]["architecture"].as_str().unwrap();
        assert_eq!(entry["platform"]["os"], "linux");
        seen.insert(arch.to_owned());
        let manifest: Value =
            serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["config"]["User"], "65532:65532");
        let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
        let layer_path = dir.path().join(format!("layer-{arch}.tar"));
        fs::write(&layer_path, layer).unwrap();
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(&layer_path)
            .arg("usr/local/bin/kseal-controller")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stdout == controllers[arch],
            "the {arch} image does not hold the {arch} controller"
        );
    }
    assert_eq!(
        seen,
        ["amd64", "arm64"].map(String::from).into_iter().collect()
    );
}
