//! Talking to a cluster: the published public keys (a ConfigMap any
//! authenticated user may read, so no service proxy is needed to seal), and
//! the controller's verify and rewrap endpoints, through the API server's
//! service proxy or a direct URL.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kseal_shared::contract::{
    DEFAULT_CONTROLLER_NAMESPACE, DEFAULT_CONTROLLER_SERVICE, ErrorResponse, HTTP_PORT_NAME,
    KEYS_DATA_KEY, PUBLIC_KEYS_CONFIGMAP, RECIPIENTS_DATA_KEY,
};
use kseal_shared::error_text;
use kseal_shared::published::{self, PublishedKeys, PublishedKeysError};
use kseal_shared::x25519::Recipient;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

#[derive(Debug, Args, Clone)]
pub struct ClusterArgs {
    /// Kubeconfig file [default: $KUBECONFIG, then ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use [default: the current context]
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace the kseal controller runs in
    #[arg(
        long,
        env = "KSEAL_CONTROLLER_NAMESPACE",
        default_value = DEFAULT_CONTROLLER_NAMESPACE
    )]
    pub controller_namespace: String,
    /// Name of the controller's Service (for the service proxy)
    #[arg(long, default_value = DEFAULT_CONTROLLER_SERVICE)]
    pub controller_service: String,
    /// Reach the controller directly at this URL (e.g. http://127.0.0.1:8080 after a port-forward) instead of through the API server's service proxy
    #[arg(long, value_name = "URL")]
    pub controller_url: Option<String>,
}

/// Runs a future on a fresh single-threaded runtime.
pub fn block_on<T>(future: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    runtime()?.block_on(future)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The kubeconfig file [`client`] reads, named for messages: `--kubeconfig`,
/// else a non-empty `$KUBECONFIG`, else `~/.kube/config` if it exists;
/// `None` when there is none.
pub fn kubeconfig_file(args: &ClusterArgs) -> Option<String> {
    match (&args.kubeconfig, std::env::var_os("KUBECONFIG")) {
        (Some(path), _) => Some(format!("--kubeconfig {}", path.display())),
        (None, Some(value)) if !value.is_empty() => Some(format!(
            "$KUBECONFIG {}",
            std::path::Path::new(&value).display()
        )),
        _ => std::env::var_os("HOME")
            .map(|home| std::path::Path::new(&home).join(".kube/config"))
            .filter(|default| default.exists())
            .map(|default| default.display().to_string()),
    }
}

pub async fn client(args: &ClusterArgs) -> Result<Client> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(kube_error)
                .with_context(|| format!("{}: cannot read the kubeconfig", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(kube_error)?
        }
        None => {
            // Say plainly that there is none, rather than a chain of "file
            // not found" errors with the path quoted twice.
            let Some(file) = kubeconfig_file(args) else {
                anyhow::bail!(
                    "this needs cluster access, and there is no kubeconfig: set $KUBECONFIG, pass --kubeconfig, or create ~/.kube/config"
                );
            };
            Config::from_kubeconfig(&options)
                .await
                .map_err(kube_error)
                .with_context(|| format!("cannot load the kubeconfig ({file})"))?
        }
    };
    Client::try_from(config)
        .map_err(kube_error)
        .context("cannot make a Kubernetes client from the kubeconfig")
}

/// A kube error (a request's, a kubeconfig's) for people, as an error to
/// return: [`kube_error_text`]. Its text says the whole cause chain, so it
/// has no source of its own (`{:#}` would say the causes twice).
pub fn kube_error(err: impl std::error::Error + 'static) -> anyhow::Error {
    anyhow::Error::msg(kube_error_text(&err))
}

/// A kube error (a request's, a kubeconfig's) in a sentence, never kube's
/// `Debug` forms, credentials or kubeconfig lines
/// ([`error_text::describe`]).
pub fn kube_error_text(err: &(dyn std::error::Error + 'static)) -> String {
    error_text::describe(err)
}

/// Which cluster [`client`] talks to, for messages: the kube context's
/// name (`--context`, else the kubeconfig's current context) and its API
/// server's URL. Read from the kubeconfig alone: no request, no
/// credential plugin run.
pub fn target(args: &ClusterArgs) -> Result<(String, String)> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    }
    .map_err(kube_error)?;
    let context = args
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .ok_or_else(|| anyhow!("the kubeconfig has no current context"))?;
    let server = kubeconfig
        .contexts
        .iter()
        .find(|named| named.name == context)
        .and_then(|named| named.context.as_ref())
        .and_then(|found| {
            kubeconfig
                .clusters
                .iter()
                .find(|named| named.name == found.cluster)
        })
        .and_then(|named| named.cluster.as_ref())
        .and_then(|cluster| cluster.server.clone())
        .ok_or_else(|| anyhow!("no server for context {context:?} in the kubeconfig"))?;
    Ok((context, without_userinfo(&server)))
}

/// A URL without any `user:password@` in it, for messages.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// The cluster's published keys (what to seal to), checked the way
/// [`kseal_shared::published::check`] says: a recipient that someone other
/// than the controller added to the ConfigMap is refused, never sealed to.
pub fn fetch_published(args: &ClusterArgs) -> Result<(String, PublishedKeys)> {
    fetch_published_and_held(args).map(|(text, published, _)| (text, published))
}

/// Why the public-key ConfigMap could not be read, in a sentence that
/// names the likely cause: not there (no controller in that namespace),
/// not allowed, or the API server not reached. Uses the API server's
/// message, not kube's `Debug` of its Status.
pub fn public_keys_read_error(err: kube::Error, namespace: &str) -> anyhow::Error {
    let config_map = format!("ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}");
    match err {
        kube::Error::Api(status) if status.code == 404 => anyhow!(
            "{config_map} does not exist: is the kseal controller installed in namespace {namespace}, and running? (see --controller-namespace)"
        ),
        kube::Error::Api(status) if status.code == 403 => anyhow!(
            "not allowed to read {config_map}: {} (any authenticated user may, with the chart's RBAC)",
            status.message
        ),
        kube::Error::Api(status) => anyhow!(
            "cannot read {config_map}: {}",
            error_text::api_status(&status)
        ),
        other => kube_error(other).context(format!(
            "cannot read {config_map}: the API server was not reached"
        )),
    }
}

/// [`fetch_published`], with the ids of every key the cluster has held
/// (`kseal.dev/held-key-ids` on the same ConfigMap, from the same read):
/// deleted keys too, which `keys.json` no longer lists.
pub fn fetch_published_and_held(
    args: &ClusterArgs,
) -> Result<(String, PublishedKeys, Vec<kseal_shared::x25519::KeyId>)> {
    runtime()?.block_on(async {
        let client = client(args).await?;
        let api: Api<ConfigMap> = Api::namespaced(client, &args.controller_namespace);
        let config_map = api
            .get(PUBLIC_KEYS_CONFIGMAP)
            .await
            .map_err(|err| public_keys_read_error(err, &args.controller_namespace))?;
        let where_ = format!(
            "ConfigMap {}/{PUBLIC_KEYS_CONFIGMAP}",
            args.controller_namespace
        );
        let held = config_map
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(kseal_shared::contract::HELD_KEYS_ANNOTATION))
            .map(|ids| published::held_key_ids(ids))
            .unwrap_or_default();
        let mut data = config_map.data.unwrap_or_default();
        let (Some(recipients), Some(keys)) =
            (data.remove(RECIPIENTS_DATA_KEY), data.remove(KEYS_DATA_KEY))
        else {
            bail!("{where_} lacks {RECIPIENTS_DATA_KEY} or {KEYS_DATA_KEY}: is the kseal controller running?");
        };
        match published::check(&recipients, &keys) {
            Ok(published) => Ok((recipients, published, held)),
            Err(err @ PublishedKeysError::NoActiveKey) => Err(anyhow!(err).context(format!(
                "{where_}: if the cluster's keys were lost, restore them (`kseal keys restore`) or start over (`kseal keys rotate`)"
            ))),
            Err(err) => Err(anyhow!(err).context(format!(
                "{where_} does not hold together as the kseal controller writes it, so kseal does not use it; someone else may have changed it (the controller restores it at once: retry in a moment, and tell the cluster's admins)"
            ))),
        }
    })
}

/// The recipients file the controller publishes, checked (see
/// [`fetch_published`]).
pub fn fetch_recipients_text(args: &ClusterArgs) -> Result<String> {
    fetch_published(args).map(|(text, _)| text)
}

/// The cluster's sealing recipient (one: its active key), checked (see
/// [`fetch_published`]).
pub fn fetch_recipients(args: &ClusterArgs) -> Result<Vec<Recipient>> {
    fetch_published(args).map(|(_, published)| vec![published.recipient])
}

/// A response from the controller's API.
pub struct ApiResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// POSTs a JSON body to the controller (`/v1/verify`, `/v1/rewrap`).
pub fn controller_post(args: &ClusterArgs, path: &str, body: Vec<u8>) -> Result<ApiResponse> {
    ControllerApi::connect(args)?.post(path, body)
}

/// The controller's HTTP API, for many requests over one client (and its
/// pooled connections): directly at `--controller-url`, or through the API
/// server's service proxy.
pub struct ControllerApi {
    runtime: tokio::runtime::Runtime,
    client: Client,
    /// Prefix of every path: empty, or the service proxy's.
    base: String,
}

impl ControllerApi {
    pub fn connect(args: &ClusterArgs) -> Result<Self> {
        let runtime = runtime()?;
        let (client, base) = runtime.block_on(async {
            match &args.controller_url {
                Some(url) => {
                    let base: http::Uri = url
                        .parse()
                        .with_context(|| format!("--controller-url {url:?}"))?;
                    let client = Client::try_from(Config::new(base)).map_err(kube_error)?;
                    anyhow::Ok((client, String::new()))
                }
                None => {
                    let client = client(args).await?;
                    let base = format!(
                        "/api/v1/namespaces/{}/services/{}:{HTTP_PORT_NAME}/proxy",
                        args.controller_namespace, args.controller_service
                    );
                    Ok((client, base))
                }
            }
        })?;
        Ok(Self {
            runtime,
            client,
            base,
        })
    }

    /// POSTs a JSON body to `path` (e.g. `/v1/rewrap`); a 404 (or an
    /// empty 503: the proxy found no endpoint) is an error saying where the
    /// controller was looked for.
    pub fn post(&self, path: &str, body: Vec<u8>) -> Result<ApiResponse> {
        let response = self.send(path, body)?;
        let status = response.status;
        if status == 404 || status == 503 && response.body.is_empty() {
            bail!(
                "the kseal controller did not answer at {}{path} (HTTP {status}); check --controller-namespace/--controller-service or use --controller-url",
                self.base
            );
        }
        Ok(response)
    }

    /// POSTs a JSON body to `path` and returns whatever status it gets.
    pub fn send(&self, path: &str, body: Vec<u8>) -> Result<ApiResponse> {
        let uri = format!("{}{path}", self.base);
        self.runtime.block_on(async {
            let request = http::Request::post(&uri)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(kube::client::Body::from(body))
                .context("building the request")?;
            let response = self
                .client
                .send(request)
                .await
                .map_err(kube_error)
                .with_context(|| format!("cannot reach the kseal controller ({uri})"))?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect_bytes()
                .await
                .map_err(kube_error)
                .with_context(|| format!("cannot read the kseal controller's answer ({uri})"))?
                .to_vec();
            Ok(ApiResponse { status, body })
        })
    }
}

/// The `error` field of a JSON error answer, or the raw text.
pub fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorResponse>(body)
        .map(|answer| answer.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).chars().take(300).collect())
}

#[cfg(test)]
mod target_tests {
    #[test]
    fn server_urls_are_shown_without_credentials() {
        for (url, shown) in [
            ("https://10.0.0.1:6443", "https://10.0.0.1:6443"),
            (
                "https://admin:hunter2@k8s.example/api",
                "https://k8s.example/api",
            ),
            ("https://t@k8s.example", "https://k8s.example"),
            ("k8s.example:6443", "k8s.example:6443"),
        ] {
            assert_eq!(super::without_userinfo(url), shown);
        }
    }
}

#[cfg(test)]
mod read_error_tests {
    use super::{kube_error, public_keys_read_error};
    use kseal_shared::looks_like_rust_debug;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": message,
        }))
        .unwrap_or_default();
        kube::Error::Api(Box::new(status))
    }

    /// Each cause in a sentence of its own, the API server's message
    /// quoted, never kube's `Debug` of the Status.
    #[test]
    fn each_cause_is_named_without_debug_output() {
        let cases = [
            (
                api_error(
                    404,
                    "NotFound",
                    "configmaps \"kseal-public-keys\" not found",
                ),
                "ConfigMap kseal-system/kseal-public-keys does not exist: is the kseal controller installed in namespace kseal-system, and running? (see --controller-namespace)",
            ),
            (
                api_error(403, "Forbidden", "User \"x\" cannot get resource"),
                "not allowed to read ConfigMap kseal-system/kseal-public-keys: User \"x\" cannot get resource (any authenticated user may, with the chart's RBAC)",
            ),
            (
                api_error(500, "InternalError", "etcd timeout"),
                "cannot read ConfigMap kseal-system/kseal-public-keys: the API server could not complete the request (500 InternalError): etcd timeout",
            ),
        ];
        for (error, expected) in cases {
            let message = format!("{:#}", public_keys_read_error(error, "kseal-system"));
            assert_eq!(message, expected);
            assert!(!looks_like_rust_debug(&message), "{message}");
        }
    }

    /// kube's errors as the CLI shows them (`kseal: error: {:#}`): the API
    /// server's code, reason and message; a transport failure's causes; a
    /// credential plugin's stderr. Never `Debug` output (kube's `Display`
    /// of an API error has the `Status`'s, of a failed plugin its output's,
    /// stdout bytes and all).
    #[test]
    fn kube_errors_are_sentences() {
        let immutable = "Secret \"db\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable";
        let message = format!(
            "{:#}",
            kube_error(api_error(422, "Invalid", immutable)).context("cannot create key Secret db")
        );
        assert_eq!(
            message,
            format!(
                "cannot create key Secret db: the API server refused the request (422 Invalid): {immutable}"
            )
        );
        let output = std::process::Output {
            status: std::process::ExitStatus::default(),
            stdout: b"{\"status\":{\"token\":\"hunter2\"}}".to_vec(),
            stderr: b"ERROR: the SSO session has expired\n".to_vec(),
        };
        let plugin = kube::Error::Auth(kube::client::AuthError::AuthExecRun {
            cmd: "aws".to_owned(),
            out: Box::new(output),
        });
        assert!(looks_like_rust_debug(&plugin.to_string()), "{plugin}");
        let message = format!("{:#}", kube_error(plugin));
        assert!(!looks_like_rust_debug(&message), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert_eq!(
            message,
            "auth error: the kubeconfig's credential plugin (users[].user.exec) failed (exit status: 0): ERROR: the SSO session has expired"
        );
        // Output or a kubeconfig that does not parse: kube quotes the lines
        // around the error, where a token sits; said without them.
        let bad_yaml = "apiVersion: v1\nkind: Config\nusers:\n- name: u\n  user:\n    token: SUPERSECRET-TOKEN\n    exec: [5\n";
        let unparsed = kube::config::Kubeconfig::from_yaml(bad_yaml).unwrap_err();
        let parse = serde_saphyr::from_str::<std::collections::BTreeMap<String, u8>>(
            "token: SUPERSECRET-TOKEN\n",
        )
        .unwrap_err();
        let plugin_output =
            kube::Error::Auth(kube::client::AuthError::AuthExecParse(Box::new(parse)));
        for (err, expected) in [
            (
                kube_error(unparsed),
                "the kubeconfig is not a valid kubeconfig (YAML)",
            ),
            (
                kube_error(plugin_output),
                "printed something that is not an ExecCredential",
            ),
        ] {
            let message = format!("{err:#}");
            assert!(!message.contains("SUPERSECRET"), "{message}");
            assert!(message.contains(expected), "{message}");
        }
        // A kubeconfig that is not there: said by the io error, the file
        // named by the caller (not as kube's `'"/path"'`).
        let missing = kube::config::Kubeconfig::read_from("/nonexistent/kubeconfig").unwrap_err();
        assert!(looks_like_rust_debug(&format!("{missing:?}")));
        let message = format!(
            "{:#}",
            kube_error(missing).context("/nonexistent/kubeconfig: cannot read the kubeconfig")
        );
        assert_eq!(
            message,
            "/nonexistent/kubeconfig: cannot read the kubeconfig: No such file or directory (os error 2)"
        );
    }

    /// Nothing listens: the causes in words, not `client error (Connect)`.
    #[tokio::test]
    async fn transport_errors_are_sentences() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        // As anyhow would say kube's error: hyper's `client error (Connect)`.
        let err = client.apiserver_version().await.unwrap_err();
        let raw = format!("{:#}", anyhow::Error::from(err));
        assert!(looks_like_rust_debug(&raw), "{raw}");
        let err = client.apiserver_version().await.unwrap_err();
        let message = format!("{:#}", public_keys_read_error(err, "kseal-system"));
        assert!(!looks_like_rust_debug(&message), "{message}");
        assert!(
            message.starts_with(
                "cannot read ConfigMap kseal-system/kseal-public-keys: the API server was not reached: cannot connect: "
            ),
            "{message}"
        );
    }
}
