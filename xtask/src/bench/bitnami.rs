//! The Bitnami controller driver: sealed-secrets v0.36.6 on the bench's
//! control plane, for `bench-e2e --compare bitnami`
//! ([`super::bitnami_compare`]): its controller built from the Go module
//! proxy (`go install …/cmd/controller@v0.36.6`) and `kubeseal` likewise,
//! both cached by version under `<cache>/bin/`; its CRD from the module;
//! the controller run as a local process.
//!
//! Bitnami's controller only runs in a cluster (`rest.InClusterConfig()`:
//! a ServiceAccount token and CA at `/var/run/secrets/kubernetes.io/
//! serviceaccount/`, `KUBERNETES_SERVICE_HOST`/`_PORT`). It is started in
//! a mount namespace of its own (`unshare --mount`) with a tmpfs over
//! `/run` holding those files, so the host's filesystem is never touched;
//! the token is a TokenRequest for ServiceAccount
//! `kube-system/sealed-secrets-controller`, bound to `cluster-admin` (its
//! RBAC does not change what it costs). Its keys live in `kube-system`
//! (`POD_NAMESPACE`), as in Bitnami's own manifests.
//!
//! `kubeseal --re-encrypt` reaches the controller through the API server's
//! service proxy, which cannot reach a process on the host; a small local
//! forwarder ([`Forwarder`]) stands in for the proxy: kubeseal's kubeconfig
//! points at it; it answers kubeseal's read of the controller's Service
//! with that Service as the API server holds it (created as Bitnami's
//! manifests do) and passes the proxied request to the controller's
//! `/v1/rotate`, unchanged but for the path.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kseal_testenv::ControlPlane;
use kseal_testenv::poll::wait_for;
use kseal_testenv::ports::{self, Port};
use kseal_testenv::process::Component;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use kseal_testenv::sealed_secrets::{MODULE, VERSION};

/// Where Bitnami's manifests install the controller and its keys.
pub const KEY_NAMESPACE: &str = "kube-system";
const SERVICE_ACCOUNT: &str = "sealed-secrets-controller";
/// The controller's Service name in Bitnami's manifests (kubeseal's default).
const SERVICE: &str = "sealed-secrets-controller";

/// The SealedSecret resource of `bitnami.com/v1alpha1`.
pub fn api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret"),
        "sealedsecrets",
    )
}

/// Bitnami's controller binary.
pub fn controller_binary() -> Result<PathBuf> {
    kseal_testenv::sealed_secrets::controller()
}

/// `kubeseal` (the same cache directory `cli/tests/migrate.rs` uses).
pub fn kubeseal_binary() -> Result<PathBuf> {
    kseal_testenv::sealed_secrets::kubeseal()
}

/// The CRD from the module's Helm chart (the module is in Go's module
/// cache once a binary is built from it).
fn crd() -> Result<CustomResourceDefinition> {
    let output = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .context("running go env")?;
    let cache = String::from_utf8(output.stdout)?.trim().to_owned();
    let path = Path::new(&cache)
        .join(format!("{MODULE}@{VERSION}"))
        .join("helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Installs the CRD and the ServiceAccount (bound to cluster-admin).
pub async fn setup(client: &Client) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd()?).await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), KEY_NAMESPACE);
    let mut account = ServiceAccount::default();
    account.metadata.name = Some(SERVICE_ACCOUNT.to_owned());
    accounts.create(&PostParams::default(), &account).await?;
    let binding = ClusterRoleBinding {
        metadata: kube::api::ObjectMeta {
            name: Some("bench-sealed-secrets-controller".to_owned()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: "cluster-admin".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: SERVICE_ACCOUNT.to_owned(),
            namespace: Some(KEY_NAMESPACE.to_owned()),
            ..Default::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await?;
    // The Service of Bitnami's manifests (kubeseal reads its port name).
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": SERVICE, "namespace": KEY_NAMESPACE},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
    }))?;
    Api::<Service>::namespaced(client.clone(), KEY_NAMESPACE)
        .create(&PostParams::default(), &service)
        .await?;
    wait_for(
        "the Bitnami CRD to be established",
        Duration::from_secs(60),
        || kseal_testenv::crd_established(client, "sealedsecrets.bitnami.com"),
    )
    .await?;
    Ok(())
}

/// What the controller finds where a Pod's ServiceAccount would be.
async fn in_cluster_files(cp: &ControlPlane, client: &Client) -> Result<PathBuf> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), KEY_NAMESPACE);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(24 * 3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer: TokenRequest = accounts
        .create_subresource("token", SERVICE_ACCOUNT, &PostParams::default(), &request)
        .await
        .context("requesting a ServiceAccount token")?;
    let token = answer.status.and_then(|s| s.token).unwrap_or_default();
    if token.is_empty() {
        bail!("the TokenRequest returned no token");
    }
    let dir = cp.dir().join("bitnami-serviceaccount");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("token"), token)?;
    std::fs::write(dir.join("ca.crt"), cp.ca_cert_pem())?;
    std::fs::write(dir.join("namespace"), KEY_NAMESPACE)?;
    Ok(dir)
}

/// Bitnami's controller as a process, and where to reach it.
pub struct BitnamiController {
    pub process: Component,
    pub port: u16,
    pub metrics_port: u16,
    /// Both ports, reserved while the process may run (after `process`, so
    /// released once it is gone).
    _ports: [Port; 2],
}

impl BitnamiController {
    /// A controller at Bitnami's defaults plus `extra` flags (not started).
    pub async fn new(
        cp: &ControlPlane,
        client: &Client,
        binary: &Path,
        extra: &[String],
        log_name: &str,
    ) -> Result<Self> {
        let files = in_cluster_files(cp, client).await?;
        let ports = [ports::reserve()?, ports::reserve()?];
        let [port, metrics_port] = ports.each_ref().map(Port::get);
        let server: http::Uri = cp.server_url().parse()?;
        let (host, api_port) = (
            server.host().context("server URL without host")?.to_owned(),
            server.port_u16().context("server URL without port")?,
        );
        let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
        let mut command = vec![
            "exec".to_owned(),
            "env".to_owned(),
            format!("POD_NAMESPACE={KEY_NAMESPACE}"),
            format!("KUBERNETES_SERVICE_HOST={host}"),
            format!("KUBERNETES_SERVICE_PORT={api_port}"),
            quote(&binary.display().to_string()),
            format!("--listen-addr=127.0.0.1:{port}"),
            format!("--listen-metrics-addr=127.0.0.1:{metrics_port}"),
        ];
        command.extend(extra.iter().map(|a| quote(a)));
        let sa = "/run/secrets/kubernetes.io/serviceaccount";
        // A private mount namespace: the tmpfs over /run is this process's
        // alone and goes away with it.
        let script = format!(
            "mount -t tmpfs tmpfs /run && mkdir -p {sa} && cp {dir}/token {dir}/ca.crt {dir}/namespace {sa}/ && {command}",
            dir = quote(&files.display().to_string()),
            command = command.join(" ")
        );
        let args: Vec<OsString> = ["--mount", "--propagation", "private", "sh", "-c", &script]
            .iter()
            .map(OsString::from)
            .collect();
        Ok(Self {
            process: Component::new(
                "sealed-secrets-controller",
                PathBuf::from("unshare"),
                args,
                cp.dir().join(log_name),
            ),
            port,
            metrics_port,
            _ports: ports,
        })
    }

    pub fn pid(&self) -> Result<u32> {
        self.process
            .pid()
            .context("the Bitnami controller is not running")
    }

    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let host = format!("127.0.0.1:{}", self.port);
        kseal_testenv::http::request(&host, "GET", path, None, &[]).await
    }

    /// `sealed_secrets_controller_unseal_requests_total` (0 before the first).
    pub async fn unseal_requests(&self) -> Option<f64> {
        let host = format!("127.0.0.1:{}", self.metrics_port);
        let (status, body) =
            kseal_testenv::http::request(&host, "GET", "/metrics", None, &[]).await?;
        if status != 200 {
            return None;
        }
        Some(
            body.lines()
                .filter(|line| line.starts_with("sealed_secrets_controller_unseal_requests_total"))
                .filter_map(|line| line.split_whitespace().last()?.parse::<f64>().ok())
                .sum(),
        )
    }

    /// The PEM certificate it seals to (`/v1/cert.pem`), once it has a key.
    pub async fn cert(&self) -> Option<String> {
        let (status, body) = self.get("/v1/cert.pem").await?;
        (status == 200 && body.contains("BEGIN CERTIFICATE")).then_some(body)
    }
}

/// Whether a Bitnami SealedSecret is `Synced=True` for its generation.
pub fn synced(object: &DynamicObject) -> bool {
    let status = &object.data["status"];
    let generation = object.metadata.generation;
    status["observedGeneration"].as_i64() == generation
        && generation.is_some()
        && status["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Synced" && c["status"] == "True")
        })
}

/// Seals one Secret (JSON) with `kubeseal --cert`, offline; the
/// SealedSecret as JSON.
pub fn kubeseal_seal(kubeseal: &Path, cert: &Path, secret: &[u8]) -> Result<serde_json::Value> {
    use std::io::Write;
    let mut child = Command::new(kubeseal)
        .arg("--cert")
        .arg(cert)
        .args(["-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running kubeseal")?;
    child
        .stdin
        .take()
        .context("kubeseal stdin")?
        .write_all(secret)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!("kubeseal: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// A kubeconfig for `kubeseal --re-encrypt` that reaches the controller
/// through a [`Forwarder`] on `port` (plain HTTP on loopback).
pub fn forwarder_kubeconfig(dir: &Path, port: u16) -> Result<PathBuf> {
    let path = dir.join("kubeseal-forwarder.kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: f\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             users:\n- name: f\n  user: {{}}\ncontexts:\n- name: f\n  context: {{cluster: f, user: f}}\ncurrent-context: f\n"
        ),
    )?;
    Ok(path)
}

/// Stands in for the API server's service proxy in front of the Bitnami
/// controller: rewrites the path of each request to
/// `/api/v1/namespaces/kube-system/services/…sealed-secrets-controller…/proxy/X`
/// into `/X` and passes the connection through. Loopback only; stops when
/// dropped.
pub struct Forwarder {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Forwarder {
    pub async fn start(client: &Client, controller_port: u16) -> Result<Self> {
        let service = Api::<Service>::namespaced(client.clone(), KEY_NAMESPACE)
            .get(SERVICE)
            .await?;
        let mut service = serde_json::to_value(&service)?;
        service["apiVersion"] = "v1".into();
        service["kind"] = "Service".into();
        let service = std::sync::Arc::new(serde_json::to_string(&service)?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = forward(&mut inbound, controller_port, &service).await;
                });
            }
        });
        Ok(Self { port, task })
    }
}

async fn forward(
    inbound: &mut tokio::net::TcpStream,
    controller_port: u16,
    service: &str,
) -> Result<()> {
    // Keep-alive: answer the Service reads, until the proxied request.
    loop {
        let head = read_head(inbound).await?;
        if head.is_empty() {
            return Ok(());
        }
        let line = head.lines().next().unwrap_or_default().to_owned();
        if line.starts_with("GET ") && !line.contains("/proxy") {
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{service}",
                service.len()
            );
            inbound.write_all(answer.as_bytes()).await?;
            continue;
        }
        return proxy(inbound, controller_port, &head).await;
    }
}

/// Reads a request head (empty at end of stream).
async fn read_head(inbound: &mut tokio::net::TcpStream) -> Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if inbound.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Ok(String::new());
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

async fn proxy(
    inbound: &mut tokio::net::TcpStream,
    controller_port: u16,
    text: &str,
) -> Result<()> {
    // The proxied request: its path rewritten, sent with `Connection:
    // close`, the rest passed through.
    let (line, rest) = text.split_once("\r\n").context("no request line")?;
    let mut parts = line.splitn(3, ' ');
    let (method, path, version) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let proxy = format!("/api/v1/namespaces/{KEY_NAMESPACE}/services/");
    let path = match path.strip_prefix(&proxy) {
        Some(tail) if tail.contains(SERVICE) => tail
            .split_once("/proxy")
            .map(|(_, p)| p.to_owned())
            .unwrap_or_default(),
        _ => path.to_owned(),
    };
    let headers: String = rest
        .split("\r\n")
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
        .map(|h| format!("{h}\r\n"))
        .collect::<String>()
        .trim_end()
        .to_owned();
    let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", controller_port)).await?;
    outbound
        .write_all(
            format!("{method} {path} {version}\r\nConnection: close\r\n{headers}\r\n\r\n")
                .as_bytes(),
        )
        .await?;
    tokio::io::copy_bidirectional(inbound, &mut outbound).await?;
    Ok(())
}

/// `kubeseal --re-encrypt` of one file, in place, through the forwarder.
pub fn kubeseal_reencrypt(kubeseal: &Path, kubeconfig: &Path, file: &Path) -> Result<()> {
    let input = std::fs::File::open(file)?;
    let output = Command::new(kubeseal)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--re-encrypt", "-o", "json"])
        .args([
            "--controller-namespace",
            KEY_NAMESPACE,
            "--controller-name",
            SERVICE,
        ])
        .stdin(input)
        .output()
        .context("running kubeseal --re-encrypt")?;
    if !output.status.success() || output.stdout.is_empty() {
        bail!(
            "kubeseal --re-encrypt {}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(file, output.stdout)?;
    Ok(())
}
