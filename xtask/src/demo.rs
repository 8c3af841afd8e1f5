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
use kseal_testenv::process::Component;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

pub fn run(in_cluster: bool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo(in_cluster))
}

fn step(text: &str) {
    println!("\n\x1b[1m==> {text}\x1b[0m");
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds the CLI and the controller; returns the directory they are in.
fn build() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "kseal-cli",
            "-p",
            "kseal-controller",
        ])
        .current_dir(repo_root())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build failed");
    }
    // xtask itself runs from the same target directory and profile.
    let exe = std::env::current_exe()?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("locating the target directory")
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

async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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
    let image = if in_cluster {
        step("Building the controller image (static binary, empty base, user 65532; no Docker)");
        let built = kseal_testenv::image::build(&kseal_testenv::image::Build {
            profile: "image-test".to_owned(),
            name: Some(format!("{}:demo", kseal_testenv::image::LOCAL_REPOSITORY)),
            out: None,
        })?;
        println!("{} ({})", built.name, built.archive.display());
        Some(built)
    } else {
        None
    };

    let cp = if in_cluster {
        step("Starting a local control plane with a real node (kubelet, containerd, kube-proxy)");
        ControlPlane::start_with(kseal_testenv::Options {
            node: true,
            ..kseal_testenv::Options::default()
        })
        .await?
    } else {
        step("Starting a local control plane (etcd, kube-apiserver, kube-controller-manager)");
        ControlPlane::start().await?
    };
    let client = cp.client().await?;
    let kubeconfig = cp.admin_kubeconfig().display().to_string();
    println!(
        "up in {:.1}s; kubeconfig {kubeconfig}",
        cp.start_time().as_secs_f64()
    );
    let work = cp.dir().join("demo");
    std::fs::create_dir_all(&work)?;

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
        kseal_testenv::crd_established(&client, "sealedsecrets.kseal.dev")
    })
    .await?;

    let mut controller = None;
    // The local controller's API port, reserved until the demo ends.
    let mut api_port = None;
    let url = match (&image, cp.node()) {
        (Some(image), Some(node)) => {
            step("helm install charts/kseal with that image: the controller runs in a Pod");
            node.import_image(&image.archive)?;
            let (repository, tag) = image.name.rsplit_once(':').unwrap_or((&image.name, "demo"));
            let set =
                format!("image.repository={repository},image.tag={tag},image.pullPolicy=Never");
            let chart = repo_root().join("charts/kseal").display().to_string();
            run_shown(
                cp.bins().helm(),
                &[
                    "install",
                    "kseal",
                    &chart,
                    "--namespace",
                    "kseal-system",
                    "--create-namespace",
                    "--wait",
                    "--timeout",
                    "120s",
                    "--set",
                    &set,
                    "--kubeconfig",
                    &kubeconfig,
                ],
            )?;
            run_shown(
                cp.bins().kubectl(),
                &[
                    "get",
                    "pods",
                    "-n",
                    "kseal-system",
                    "-o",
                    "wide",
                    "--kubeconfig",
                    &kubeconfig,
                ],
            )?;
            // No URL: --online goes through the API server's service proxy
            // to the Pod, as users' does.
            None
        }
        _ => {
            step("Running kseal-controller (it generates and publishes a key on first start)");
            let port = api_port.insert(kseal_testenv::ports::reserve()?).get();
            let args = local_controller_args(&kubeconfig, port);
            let mut process = Component::new(
                "kseal-controller",
                bin.join("kseal-controller"),
                args,
                cp.dir().join("kseal-controller.log"),
            );
            process.start()?;
            controller = Some(process);
            Some(format!("http://127.0.0.1:{port}"))
        }
    };
    wait_for("the public key", || {
        let published = Command::new(bin.join("kseal"))
            .args(["fetch-keys", "--kubeconfig", &kubeconfig])
            .output()
            .is_ok_and(|o| o.status.success());
        async move { published }
    })
    .await?;
    let fetched = kseal(&bin, &["fetch-keys", "--kubeconfig", &kubeconfig], &work)?;
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
        &bin,
        &[
            "seal",
            "--kubeconfig",
            &kubeconfig,
            "-f",
            &example,
            "-o",
            &sealed_path,
        ],
        &work,
    )?;
    print!("{}", std::fs::read_to_string(&sealed)?);
    kseal(&bin, &["inspect", &sealed_path], &work)?;

    step("Applying the SealedSecret; the controller unseals it into a Secret");
    apply(&client, &sealed).await?;
    wait_ready(&client, &first_key).await?;
    show_secret(&client).await?;

    step("Rotating the key: the controller generates a new active key");
    let rotated = kseal(
        &bin,
        &["keys", "rotate", "--kubeconfig", &kubeconfig],
        &work,
    )?;
    let new_key = rotated
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();

    step("Re-wrapping the file to the new key (ciphertexts stay byte-identical)");
    let mut rewrap = vec!["rewrap", "--online", "--kubeconfig", &kubeconfig];
    if let Some(url) = &url {
        rewrap.extend(["--controller-url", url]);
    }
    rewrap.extend(["--in-place", &sealed_path]);
    kseal(&bin, &rewrap, &work)?;
    kseal(&bin, &["inspect", &sealed_path], &work)?;

    step("Applying the re-wrapped SealedSecret: it still unseals, now with the new key");
    apply(&client, &sealed).await?;
    wait_ready(&client, &new_key).await?;
    show_secret(&client).await?;

    step("Stopping the controller and the control plane");
    if let Some(mut c) = controller {
        c.terminate(Duration::from_secs(5));
    }
    drop(cp);
    println!(
        "demo finished in {:.0}s; nothing is left running",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs a command and shows it and its output.
fn run_shown(program: PathBuf, args: &[&str]) -> Result<()> {
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
        .output()
        .with_context(|| format!("running {name}"))?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("{name} failed");
    }
    Ok(())
}

/// Arguments for a kseal-controller process beside a local control plane:
/// its kubeconfig, HTTP on 127.0.0.1:`port`, probes on a free loopback port
/// (nobody probes it here), no scheduled key renewal.
pub fn local_controller_args(kubeconfig: &str, port: u16) -> Vec<OsString> {
    [
        "--kubeconfig",
        kubeconfig,
        "--http-addr",
        &format!("127.0.0.1:{port}"),
        "--health-addr",
        "127.0.0.1:0",
        "--key-renew-period",
        "0",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}
