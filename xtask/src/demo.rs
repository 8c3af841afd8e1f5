//! `cargo xtask demo`: kseal end to end on a local control plane. Seals a
//! Secret from `examples/demo/` with the cluster's key, applies it, shows the
//! Secret the controller made, rotates the key, re-wraps, and shows the value
//! still unsealing. Everything it starts is stopped when it ends.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_testenv::ControlPlane;
use kseal_testenv::controller::Controller;
use kseal_testenv::poll::Poll;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

pub fn run(in_cluster: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo(in_cluster))
}

/// A step's heading: bold on a terminal, plain text in a log or pipe.
fn step(text: &str) {
    use std::io::IsTerminal as _;
    if std::io::stdout().is_terminal() {
        println!("\n\x1b[1m==> {text}\x1b[0m");
    } else {
        println!("\n==> {text}");
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the CLI and the controller; returns the directory they are in.
/// Builds `kseal` and `kseal-controller` and returns the directory cargo
/// put them in, as cargo reports it (its JSON artifact messages), so the
/// demo runs exactly what it built, whatever target directory or profile
/// the environment picks.
fn build() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--message-format=json-render-diagnostics",
            "-p",
            "kseal-cli",
            "-p",
            "kseal-controller",
        ])
        .current_dir(repo_root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build failed");
    }
    let mut built = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            built.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let (Some(cli), Some(controller)) = (built.get("kseal"), built.get("kseal-controller")) else {
        bail!("cargo build reported no kseal and kseal-controller executables");
    };
    let dir = cli.parent().context("locating kseal")?;
    if controller.parent() != Some(dir) {
        bail!(
            "cargo built kseal in {} but kseal-controller in {}",
            dir.display(),
            controller.display()
        );
    }
    Ok(dir.to_path_buf())
}

/// Runs `kseal` and prints what it prints.
fn kseal(bin: &Path, args: &[&str], dir: &Path) -> Result<String> {
    println!("$ kseal {}", args.join(" "));
    let output = Command::new(bin.join("kseal"))
        .args(args)
        .current_dir(dir)
        .output()
        .context("running kseal")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("kseal {} failed", args.join(" "));
    }
    Ok(stdout)
}

/// Waits up to a minute for `check`, looking every 250 ms.
async fn wait_for<F, Fut>(what: &str, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    Poll::new(Duration::from_secs(60))
        .every(Duration::from_millis(250))
        .until(what, check)
        .await?;
    Ok(())
}

async fn apply(client: &Client, file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(file)?;
    let sealed: SealedSecret = serde_saphyr::from_str(&text)?;
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), "demo");
    api.patch(
        sealed.metadata.name.as_deref().unwrap_or_default(),
        &PatchParams::apply("kseal-demo").force(),
        &Patch::Apply(&sealed),
    )
    .await?;
    Ok(())
}

async fn wait_ready(client: &Client, key_id: &str) -> Result<()> {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), "demo");
    wait_for("the SealedSecret to be Ready", || async {
        api.get("db-credentials")
            .await
            .ok()
            .and_then(|s| s.status)
            .is_some_and(|status| {
                status.key_ids.iter().any(|id| id == key_id)
                    && status
                        .conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
    })
    .await?;
    let status = api.get("db-credentials").await?.status.unwrap_or_default();
    for condition in &status.conditions {
        println!(
            "SealedSecret demo/db-credentials: {}={} ({}: {}); sealed to key {}",
            condition.type_,
            condition.status,
            condition.reason,
            condition.message,
            status.key_ids.join(",")
        );
    }
    Ok(())
}

async fn show_secret(client: &Client) -> Result<()> {
    let secret = Api::<Secret>::namespaced(client.clone(), "demo")
        .get("db-credentials")
        .await?;
    println!(
        "Secret demo/db-credentials (type {}):",
        secret.type_.as_deref().unwrap_or("Opaque")
    );
    for (key, value) in secret.data.unwrap_or_default() {
        println!("  {key}: {}", String::from_utf8_lossy(&value.0));
    }
    Ok(())
}

async fn demo(in_cluster: bool) -> Result<()> {
    let started = Instant::now();
    step("Building kseal and kseal-controller");
    let bin = build()?;
    println!(
        "the `$ kseal` lines below run {}, against a control plane removed \
         when the demo ends",
        bin.join("kseal").display()
    );
    // In a cluster, as users install: a release (the code behind `cargo
    // xtask release`, this machine's platform, the faster profile)
    // published to a registry on loopback, verified, installed from there.
    let published = if in_cluster {
        Some(publish_release().await?)
    } else {
        None
    };
    let cp = start_control_plane(in_cluster).await?;
    let client = cp.client().await?;
    let kubeconfig = cp.admin_kubeconfig().display().to_string();
    println!(
        "up in {:.1}s; kubeconfig {kubeconfig}",
        cp.start_time().as_secs_f64()
    );
    let work = cp.dir().join("demo");
    std::fs::create_dir_all(&work)?;
    install_crd(&client, in_cluster).await?;

    // The local controller, if any, and its URL for --online (none in a
    // cluster: --online goes through the API server's service proxy to the
    // Pod, as users' does).
    let (controller, url) = match (&published, cp.node()) {
        (Some(p), Some(node)) => {
            node.trust_registry(&p.registry.host())?;
            helm_install(&cp, p, &kubeconfig)?;
            (None, None)
        }
        _ => {
            step("Running kseal-controller (it generates and publishes a key on first start)");
            let controller = Controller::builder(bin.join("kseal-controller"), &kubeconfig)
                .log_dir(cp.dir())
                .no_key_renewal()
                .start()?;
            let url = controller.url("");
            (Some(controller), Some(url))
        }
    };
    walkthrough(&bin, &client, &kubeconfig, &work, url.as_deref()).await?;

    step("Stopping the controller and the control plane");
    if let Some(mut c) = controller {
        c.process.terminate(Duration::from_secs(5));
    }
    drop(cp);
    println!(
        "demo finished in {:.0}s; nothing is left running",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn start_control_plane(in_cluster: bool) -> Result<ControlPlane> {
    if in_cluster {
        step("Starting a local control plane with a real node (kubelet, containerd, kube-proxy)");
        ControlPlane::start_with(kseal_testenv::Options {
            node: true,
            ..kseal_testenv::Options::default()
        })
        .await
    } else {
        step("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager)");
        ControlPlane::start().await
    }
}

async fn install_crd(client: &Client, in_cluster: bool) -> Result<()> {
    step("Installing the SealedSecret CRD and namespaces");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &kseal_shared::sealed_secret::custom_resource_definition(),
    )
    .await?;
    let namespaces: &[&str] = if in_cluster {
        &["demo"]
    } else {
        &["kseal-system", "demo"]
    };
    for name in namespaces {
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some((*name).to_owned());
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
    }
    wait_for("the CRD to be established", || {
        kseal_testenv::crd_established(client, "sealedsecrets.kseal.dev")
    })
    .await
}

/// The release verified, then installed from the registry with `helm
/// install`; shows the Pod.
fn helm_install(cp: &ControlPlane, p: &DemoRelease, kubeconfig: &str) -> Result<()> {
    step("Verifying the release as a user does, then helm install from the registry");
    verify_release(p)?;
    let version = &p.release.manifest.version;
    run_shown_kube(
        cp,
        cp.bins().helm(),
        &[
            "install",
            "kseal",
            &p.published.chart,
            "--version",
            version,
            "--plain-http",
            "--namespace",
            "kseal-system",
            "--create-namespace",
            "--wait",
            "--timeout",
            "120s",
            "--kubeconfig",
            kubeconfig,
        ],
    )?;
    println!(
        "the node's containerd pulled {} from the registry",
        p.published.image
    );
    run_shown_kube(
        cp,
        cp.bins().kubectl(),
        &[
            "get",
            "pods",
            "-n",
            "kseal-system",
            "-o",
            "wide",
            "--kubeconfig",
            kubeconfig,
        ],
    )
}

/// What a user does: fetch the key, seal, apply, see the Secret, rotate,
/// re-wrap (online, through `url` when given), apply again.
async fn walkthrough(
    bin: &Path,
    client: &Client,
    kubeconfig: &str,
    work: &Path,
    url: Option<&str>,
) -> Result<()> {
    wait_for("the public key", || {
        let published = Command::new(bin.join("kseal"))
            .args(["fetch-keys", "--kubeconfig", kubeconfig])
            .output()
            .is_ok_and(|o| o.status.success());
        async move { published }
    })
    .await?;
    let fetched = kseal(bin, &["fetch-keys", "--kubeconfig", kubeconfig], work)?;
    let first_key = fetched
        .lines()
        .find(|l| l.starts_with("age1"))
        .map(|r| kseal_shared::x25519::KeyId::of_recipient_str(r).to_string())
        .unwrap_or_default();

    step("Sealing examples/demo/secret.yaml with the cluster's public key");
    let example = repo_root().join("examples/demo/secret.yaml");
    let sealed = work.join("db-credentials.sealed.yaml");
    let example = example.display().to_string();
    let sealed_path = sealed.display().to_string();
    kseal(
        bin,
        &[
            "seal",
            "--kubeconfig",
            kubeconfig,
            "-f",
            &example,
            "-o",
            &sealed_path,
        ],
        work,
    )?;
    print!("{}", std::fs::read_to_string(&sealed)?);
    kseal(bin, &["inspect", &sealed_path], work)?;

    step("Applying the SealedSecret; the controller unseals it into a Secret");
    apply(client, &sealed).await?;
    wait_ready(client, &first_key).await?;
    show_secret(client).await?;

    step("Rotating the key: the controller generates a new active key");
    let rotated = kseal(bin, &["keys", "rotate", "--kubeconfig", kubeconfig], work)?;
    let new_key = rotated
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();

    step("Re-wrapping the file to the new key (ciphertexts stay byte-identical)");
    let mut rewrap = vec!["rewrap", "--online", "--kubeconfig", kubeconfig];
    if let Some(url) = url {
        rewrap.extend(["--controller-url", url]);
    }
    rewrap.extend(["--in-place", &sealed_path]);
    kseal(bin, &rewrap, work)?;
    kseal(bin, &["inspect", &sealed_path], work)?;

    step("Applying the re-wrapped SealedSecret: it still unseals, now with the new key");
    apply(client, &sealed).await?;
    wait_ready(client, &new_key).await?;
    show_secret(client).await
}

/// A release published to a registry on loopback for the in-cluster demo.
struct DemoRelease {
    _parent: tempfile::TempDir,
    registry: kseal_testenv::registry::Registry,
    release: kseal_testenv::release::Release,
    published: kseal_testenv::release::Published,
    cosign: PathBuf,
}

async fn publish_release() -> Result<DemoRelease> {
    use kseal_testenv::release::{self, Arch, Options, Signer};
    step(
        "Building a release for this machine (cargo xtask release; static binaries, SBOMs, image index, chart, signatures)",
    );
    let tools = kseal_testenv::release_tools::ensure()?;
    let registry = kseal_testenv::registry::Registry::start(&tools)?;
    // A new directory of our own; the release goes inside it.
    let parent = tempfile::Builder::new()
        .prefix("kseal-demo-release-")
        .tempdir()?;
    let dir = parent.path().join("release");
    let registry_name = format!("{}/kseal-dev", registry.host());
    let release = tokio::task::spawn_blocking(move || {
        release::build(&Options {
            out: dir,
            profile: "image-test".to_owned(),
            platforms: vec![Arch::host().context("this machine is neither amd64 nor arm64")?],
            registry: registry_name,
            signer: Some(Signer::Ephemeral),
            download_url: None,
            image_annotations: Default::default(),
        })
    })
    .await??;
    println!("{}", release.dir.display());
    for entry in std::fs::read_dir(&release.dir)? {
        println!("  {}", entry?.file_name().to_string_lossy());
    }
    step(&format!(
        "Publishing to the registry on loopback ({}): image index, chart, signatures",
        registry.host()
    ));
    let published = release::publish(&release, true)?;
    println!(
        "{}\n{}:{}",
        published.image, published.chart, release.manifest.version
    );
    Ok(DemoRelease {
        _parent: parent,
        registry,
        release,
        published,
        cosign: tools.cosign,
    })
}

/// The README's verification steps, run and shown.
fn verify_release(p: &DemoRelease) -> Result<()> {
    let dir = &p.release.dir;
    let shown_dir = dir.display();
    println!("$ cd {shown_dir}");
    let sums = Command::new("sha256sum")
        .args(["--check", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .context("running sha256sum")?;
    println!("$ sha256sum --check SHA256SUMS");
    print!("{}", String::from_utf8_lossy(&sums.stdout));
    if !sums.status.success() {
        bail!("sha256sum --check failed");
    }
    // A key-signed release: the key is the trust root, so cosign gets an
    // empty Sigstore trusted root and no transparency log (README, Install).
    let public = dir.join("cosign.pub");
    let trusted_root = dir.with_file_name("trusted-root.json");
    std::fs::write(&trusted_root, kseal_testenv::release::EMPTY_TRUSTED_ROOT)?;
    let shown = |args: Vec<OsString>| -> Vec<String> {
        args.into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let args = shown(kseal_testenv::release::verify_blob_args(
        &public,
        &trusted_root,
        &dir.join("SHA256SUMS"),
    ));
    run_shown(
        p.cosign.clone(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let chart = format!(
        "{}@{}",
        p.published.chart.trim_start_matches("oci://"),
        p.published.chart_digest
    );
    for reference in [p.published.image.as_str(), chart.as_str()] {
        let mut args = shown(kseal_testenv::release::verify_artifact_args(
            &public,
            &trusted_root,
            reference,
        ));
        args.push("--allow-http-registry".to_owned());
        run_shown(
            p.cosign.clone(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
    }
    let _ = std::fs::remove_file(&trusted_root);
    Ok(())
}

/// [`run_shown`] for kubectl or helm talking to `cp`, with its own
/// discovery cache: `~/.kube/cache/<host>_<port>` may hold what an earlier
/// control plane on the same address served.
fn run_shown_kube(cp: &ControlPlane, program: PathBuf, args: &[&str]) -> Result<()> {
    run_shown_with(program, args, &[("KUBECACHEDIR", cp.kube_cache_dir())])
}

/// Runs a command and shows it and its output.
fn run_shown(program: PathBuf, args: &[&str]) -> Result<()> {
    run_shown_with(program, args, &[])
}

/// [`run_shown`] with environment variables set (not shown).
fn run_shown_with(program: PathBuf, args: &[&str], env: &[(&str, PathBuf)]) -> Result<()> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shown: Vec<&str> = args
        .iter()
        .copied()
        .take_while(|a| *a != "--kubeconfig")
        .collect();
    println!("$ {name} {}", shown.join(" "));
    let output = Command::new(&program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .with_context(|| format!("running {name}"))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("{name} failed");
    }
    Ok(())
}
