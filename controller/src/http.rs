//! The HTTP API every replica serves: health, metrics, public keys, and the
//! verify and rewrap endpoints (`router`); and the probe listener with
//! health and metrics only (`probe_router`), so a client of the API port
//! can never starve the kubelet's probes. No response ever carries plaintext.
//!
//! Against slow and abusive clients (`serve`, `ServerLimits`): headers
//! must arrive within a timeout (which also closes idle keep-alive
//! connections), bodies within another, connections are capped in number
//! (in all and per client address) and lifetime, and only a few bodies are
//! buffered at once, so memory stays bounded whatever clients do.
//!
//! `/metrics` is rendered at most once a second and the body shared by
//! concurrent scrapes, with one series per key the cluster holds whatever
//! SealedSecrets name (see the `metrics` module); on the API port scrapes
//! have a budget of their own (`ServerLimits::scrapes_per_second`).
//!
//! Against expensive requests: the decrypting endpoints take a request
//! token before reading the body, refuse objects with more than
//! [`MAX_VALUES`] values, then charge the work a request needs (see
//! `work_cost`) to a second budget before any X25519 operation, and do
//! the parsing and crypto in the `CryptoPool`, off the async workers.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::StreamExt;
use kseal_shared::contract::{
    ErrorResponse, PUBLIC_KEYS_PATH, PublicKeysResponse, REWRAP_BATCH_PATH, REWRAP_PATH,
    REWRAPPED_HEADER, RewrapBatchItem, RewrapBatchRequest, RewrapBatchResponse, VERIFY_PATH,
    ValueFailure, ValueFailureReason, ValueFailures, ValueVerdict, VerifyResponse,
};
use kseal_shared::envelope::{SealedValue, open, rewrap_replacing};
use kseal_shared::error::SealError;
use kseal_shared::manifest::value_binding;
use kseal_shared::sealed_secret::{MAX_VALUES, SealedSecret};
use kseal_shared::secret::SecretBytes;
use kseal_shared::x25519::KeyId;
use kube::runtime::reflector::Store;
use tokio::sync::OwnedSemaphorePermit;

use crate::cached::CachedSealedSecret;
use crate::crypto_pool::CryptoPool;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimiter;
use crate::sealing_keys::{KeyInfo, KeySet, KeyStore};
use kseal_shared::contract::KeyState;

/// Limits of the HTTP server against slow, large and numerous requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServerLimits {
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers; an idle keep-alive
    /// connection is closed after this too.
    pub header_timeout: Duration,
    /// Time a client has to send a request body (408 after).
    pub body_timeout: Duration,
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
    /// Connections served at once from one client (an IPv4 address or an
    /// IPv6 /64): one client cannot take the whole `max_connections`.
    pub max_connections_per_client: usize,
    /// Request bodies buffered at once (503 for more): with
    /// `max_body_bytes`, the most memory bodies can take.
    pub max_buffered_bodies: usize,
    /// A connection is closed (gracefully) after this long.
    pub max_connection_age: Duration,
    /// Scrapes of `/metrics` a second, all clients together (429 above);
    /// `None`: unlimited. A scrape costs little (the body is rendered at
    /// most once a second and shared), but the API port is open to every
    /// authenticated user through the service proxy.
    pub scrapes_per_second: Option<u32>,
}

impl ServerLimits {
    pub(crate) fn new(max_body_bytes: usize) -> Self {
        Self {
            max_body_bytes,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_connections_per_client: 64,
            max_buffered_bodies: 16,
            max_connection_age: Duration::from_secs(600),
            scrapes_per_second: Some(10),
        }
    }

    /// Limits of the probe listener: no bodies, few clients (the kubelet
    /// and a metrics scraper, which is never refused: only the node and
    /// the monitoring namespace may connect), short timeouts.
    pub(crate) fn probes() -> Self {
        Self {
            max_body_bytes: 0,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(5),
            max_connections: 64,
            max_connections_per_client: 64,
            max_buffered_bodies: 1,
            max_connection_age: Duration::from_secs(600),
            scrapes_per_second: None,
        }
    }
}

/// What the body-reading endpoints share besides [`ApiState`].
#[derive(Clone)]
struct BodyLimits {
    max_bytes: usize,
    timeout: Duration,
    slots: Arc<tokio::sync::Semaphore>,
}

/// A body read within its limits, with the buffered-body slot it holds
/// until the request is answered (so bodies waiting for the crypto pool
/// count against [`ServerLimits::max_buffered_bodies`] too).
struct ReadBody {
    bytes: Bytes,
    _slot: OwnedSemaphorePermit,
}

/// What the HTTP handlers share.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub keys: KeyStore,
    pub metrics: Arc<Metrics>,
    /// SealedSecrets as this replica's watch sees them (for metrics); empty
    /// on replicas that do not reconcile.
    pub sealed_secrets: Arc<Mutex<Vec<Store<CachedSealedSecret>>>>,
    /// Requests to the decrypting endpoints, all clients together.
    pub limiter: Arc<RateLimiter>,
    /// Work of the decrypting endpoints (see [`work_cost`]), all clients
    /// together.
    pub work_limiter: Arc<RateLimiter>,
    /// Where parsing and crypto run (shared with the reconciler).
    pub crypto: CryptoPool,
}

pub(crate) fn router(state: ApiState, max_body_bytes: usize) -> Router {
    router_with_limits(state, ServerLimits::new(max_body_bytes))
}

pub(crate) fn router_with_limits(state: ApiState, limits: ServerLimits) -> Router {
    let body_limits = BodyLimits {
        max_bytes: limits.max_body_bytes,
        timeout: limits.body_timeout,
        slots: Arc::new(tokio::sync::Semaphore::new(
            limits.max_buffered_bodies.max(1),
        )),
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(PUBLIC_KEYS_PATH, get(public_keys))
        .route(VERIFY_PATH, post(verify))
        .route(REWRAP_PATH, post(rewrap_handler))
        .route(REWRAP_BATCH_PATH, post(rewrap_batch_handler))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(Extension(body_limits))
        .layer(Extension(scrape_budget(&limits)))
        .with_state(state)
}

fn scrape_budget(limits: &ServerLimits) -> ScrapeBudget {
    ScrapeBudget(
        limits
            .scrapes_per_second
            .map(|rate| Arc::new(RateLimiter::new(rate))),
    )
}

/// The probe listener's routes: `/healthz`, `/readyz` and `/metrics`, none
/// of which reads a body or decrypts.
pub(crate) fn probe_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(0))
        .layer(Extension(scrape_budget(&ServerLimits::probes())))
        .with_state(state)
}

/// Counts connections per client; see
/// [`ServerLimits::max_connections_per_client`].
#[derive(Clone, Default)]
struct ClientConnections(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection of a client, counted until dropped.
struct ClientSlot {
    clients: ClientConnections,
    client: IpAddr,
}

impl ClientConnections {
    /// Who a client is: its IPv4 address, or the /64 of its IPv6 address
    /// (one host usually holds a whole /64).
    fn client_of(address: IpAddr) -> IpAddr {
        match address.to_canonical() {
            IpAddr::V6(v6) => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
            v4 => v4,
        }
    }

    fn take(&self, address: IpAddr, max: usize) -> Option<ClientSlot> {
        let client = Self::client_of(address);
        let mut map = self.0.lock().ok()?;
        let count = map.entry(client).or_insert(0);
        if *count >= max.max(1) {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.clients.0.lock()
            && let Some(count) = map.get_mut(&self.client)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` until the task is aborted, with
/// [`ServerLimits`]' header timeout, connection caps and connection age.
/// (`axum::serve` sets no timer, so hyper's header timeout would be off and
/// a client sending one header byte a minute would hold its connection
/// forever.) Never returns on its own: accept errors (e.g. out of file
/// descriptors) are logged and retried.
pub(crate) async fn serve(listener: tokio::net::TcpListener, router: Router, limits: ServerLimits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let clients = ClientConnections::default();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "HTTP accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(client_slot) = clients.take(remote.ip(), limits.max_connections_per_client) else {
            tracing::debug!(%remote, "too many HTTP connections from this client; closing a new one");
            drop(stream);
            continue;
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "too many HTTP connections; closing a new one");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%remote, error = %err, "HTTP connection ended");
                    }
                }
                () = tokio::time::sleep(limits.max_connection_age) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.body_timeout, connection).await;
                }
            }
            drop(permit);
            drop(client_slot);
        });
    }
}

/// Reads a request body within the size limit and the body timeout, holding
/// one of the few buffered-body slots meanwhile (and after: see
/// [`ReadBody`]).
async fn read_body(
    limits: &BodyLimits,
    headers: &HeaderMap,
    body: Body,
) -> Result<ReadBody, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(too_large(limits.max_bytes));
    }
    let Ok(slot) = limits.slots.clone().try_acquire_owned() else {
        return Err(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests in progress; retry later",
        ));
    };
    let read = async {
        let mut buffer = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|_| error(StatusCode::BAD_REQUEST, "cannot read the body"))?;
            if buffer.len() + chunk.len() > limits.max_bytes {
                return Err(too_large(limits.max_bytes));
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buffer))
    };
    match tokio::time::timeout(limits.timeout, read).await {
        Ok(result) => result.map(|bytes| ReadBody { bytes, _slot: slot }),
        Err(_) => Err(error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {}s",
                limits.timeout.as_secs()
            ),
        )),
    }
}

fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {max} bytes"),
    )
}

async fn readyz(State(state): State<ApiState>) -> Response {
    if state.keys.loaded() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "keys not loaded yet\n").into_response()
    }
}

/// Scrapes of `/metrics` on one listener, all clients together; `None`:
/// not limited (see [`ServerLimits::scrapes_per_second`]).
#[derive(Clone)]
struct ScrapeBudget(Option<Arc<RateLimiter>>);

/// `GET /metrics`, from the body [`Metrics::exposition`] shares between
/// scrapes: counting every object is CPU work that grows with the cluster,
/// done at most once per [`crate::metrics::RENDER_INTERVAL`] on a blocking
/// thread, not on the async workers that answer the probes. A scrape over
/// the listener's budget is refused before anything else.
async fn metrics(
    State(state): State<ApiState>,
    Extension(budget): Extension<ScrapeBudget>,
) -> Response {
    if let Some(limiter) = &budget.0
        && !limiter.try_acquire()
    {
        return rate_limited();
    }
    let render_state = state.clone();
    match state
        .metrics
        .exposition(move || render_metrics(&render_state))
        .await
    {
        Some(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

/// The exposition for what this replica holds now.
fn render_metrics(state: &ApiState) -> String {
    let keys = state.keys.get();
    let stores = state
        .sealed_secrets
        .lock()
        .map(|slot| slot.clone())
        .unwrap_or_default();
    let objects: Vec<Arc<CachedSealedSecret>> =
        stores.iter().flat_map(|store| store.state()).collect();
    state
        .metrics
        .scrape(&keys, objects.iter().map(|sealed| &**sealed))
}

async fn public_keys(State(state): State<ApiState>) -> Response {
    let keys = state.keys.get();
    let recipients: Vec<String> = keys
        .sealing_recipients()
        .iter()
        .map(ToString::to_string)
        .collect();
    let keys = keys
        .keys
        .iter()
        .filter(|key| key.state != KeyState::Retired)
        .map(KeyInfo::published)
        .collect();
    axum::Json(PublicKeysResponse { recipients, keys }).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorResponse {
            error: message.into(),
        }),
    )
        .into_response()
}

/// Why a request body is not a SealedSecret this API can work on. The
/// messages never quote the body (it may be a plaintext Secret sent by
/// mistake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Neither JSON nor YAML (answered with 415).
    #[error("unsupported content type {0:?}; send application/json or application/yaml")]
    UnsupportedMediaType(String),
    /// Not a SealedSecret, or one without a name (answered with 400).
    #[error("{0}")]
    Invalid(String),
    /// More values than a SealedSecret may hold (answered with 413, before
    /// any other check).
    #[error("spec.encryptedData has {0} values; at most {MAX_VALUES} are accepted")]
    TooManyValues(usize),
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            BodyError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::Invalid(_) => StatusCode::BAD_REQUEST,
            BodyError::TooManyValues(_) => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// Parses the body of `POST /v1/verify` and `POST /v1/rewrap`: a
/// SealedSecret as JSON (the default when there is no content type) or YAML.
/// Public so the fuzz target exercises exactly this code.
pub fn parse_sealed_secret_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<SealedSecret, BodyError> {
    let content_type = content_type.unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let parsed = match essence {
        "application/json" => serde_json::from_slice::<SealedSecret>(body)
            .map_err(|err| redact_quoted(&err.to_string())),
        "application/yaml" | "application/x-yaml" | "text/yaml" => std::str::from_utf8(body)
            .map_err(|_| "body is not UTF-8".to_owned())
            .and_then(|text| {
                // A SealedSecret needs no anchors or aliases; with them a
                // 2 MiB body could expand to 64 MiB of scalars per request
                // (an OOM kill at the chart's limit with a few requests at
                // once).
                kseal_shared::yaml::from_str_without_aliases::<SealedSecret>(text).map_err(|err| {
                    redact_quoted(err.to_string().lines().next().unwrap_or_default())
                })
            }),
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(BodyError::UnsupportedMediaType(shown));
        }
    };
    let sealed =
        parsed.map_err(|message| BodyError::Invalid(format!("not a SealedSecret: {message}")))?;
    // Too many values is its own answer (413), as for a batch: the rest of
    // the definition is not worth checking on such an object.
    let count = sealed.spec.encrypted_data.len();
    if count > MAX_VALUES {
        return Err(BodyError::TooManyValues(count));
    }
    // The one definition of a well-formed SealedSecret (kseal_shared's
    // validation): names Kubernetes accepts, a namespace where the scope
    // binds one. Names are not secret; annotation values are never quoted.
    let problems = kseal_shared::validation::sealed_secret_problems(&sealed);
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(BodyError::Invalid(problems.join("; ")));
    }
    Ok(sealed)
}

/// Replaces every double-quoted string in a parser's message with `"…"`:
/// serde's "invalid type: string \"…\"" quotes the input, which may be a
/// plaintext Secret sent by mistake. Field names (in backticks) and
/// positions stay.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' {
            continue;
        }
        out.push('…');
        while let Some(inner) = chars.next() {
            match inner {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    out.push('"');
                    break;
                }
                _ => {}
            }
        }
    }
    out
}

/// The request's content type, for [`parse_sealed_secret_body`].
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("(not text)").to_owned())
}

/// Why a value failed, as the reconciler would say it.
fn failure(error: &SealError, keys: &KeySet) -> ValueFailure {
    ValueFailure {
        reason: ValueFailureReason::of(error, |id| keys.is_retired(id)),
        message: error.to_string(),
    }
}

/// The work a request asks for, in X25519 operations (~40 µs each): per
/// value, one per key it names that this replica holds (each is tried on
/// its own stanza only), at least one (parsing and the AEAD), plus, when
/// re-wrapping, two per recipient the value is wrapped to (an ephemeral key
/// and a Diffie-Hellman: a re-wrap measures ~3.2 unwraps, see
/// docs/benchmarks.md). Computed from the parsed values before any key is
/// used.
pub(crate) fn work_cost<'a>(
    values: impl IntoIterator<Item = &'a Result<SealedValue, SealError>>,
    keys: &KeySet,
    wrap_to: usize,
) -> u64 {
    values
        .into_iter()
        .map(|value| match value {
            Ok(value) => {
                let unwraps = value
                    .key_ids()
                    .iter()
                    .filter(|id| keys.keyring.contains(id))
                    .count();
                (unwraps.max(1) + 2 * wrap_to) as u64
            }
            Err(_) => 1,
        })
        .sum()
}

/// What both decrypting endpoints do first, on the async worker: take a
/// request token (before reading anything), then read the body within its
/// limits.
async fn accept(
    state: &ApiState,
    limits: &BodyLimits,
    headers: &HeaderMap,
    body: Body,
) -> Result<ReadBody, Response> {
    if !state.limiter.try_acquire() {
        return Err(rate_limited());
    }
    read_body(limits, headers, body).await
}

fn rate_limited() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate limit exceeded; retry later",
    )
}

fn over_work_budget(cost: u64) -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        format!("rate limit exceeded: this request costs {cost} key operations; retry later"),
    )
}

/// A request body's SealedSecret and its values, parsed (in key order).
type ParsedRequest = (SealedSecret, Vec<Result<SealedValue, SealError>>);

/// What both decrypting endpoints do next, in the crypto pool: parse the
/// body, refuse more than [`MAX_VALUES`] values, parse every value.
fn parse_request(content_type: Option<&str>, body: &[u8]) -> Result<ParsedRequest, Box<Response>> {
    let sealed = parse_sealed_secret_body(content_type, body)
        .map_err(|err| Box::new(error(err.status(), err.to_string())))?;
    let count = sealed.spec.encrypted_data.len();
    if count > MAX_VALUES {
        return Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("spec.encryptedData has {count} values; at most {MAX_VALUES} are accepted"),
        )));
    }
    let values = sealed
        .spec
        .encrypted_data
        .values()
        .map(|encoded| SealedValue::parse(encoded))
        .collect();
    Ok((sealed, values))
}

/// Runs a decrypting endpoint's work in the crypto pool; the body's slot is
/// held until it is done.
async fn in_pool(
    state: &ApiState,
    body: ReadBody,
    headers: &HeaderMap,
    work: fn(&ApiState, Option<&str>, &[u8]) -> Response,
) -> Response {
    let content_type = content_type(headers);
    let pool_state = state.clone();
    let result = state
        .crypto
        .run(move || {
            let ReadBody { bytes, _slot } = body;
            work(&pool_state, content_type.as_deref(), &bytes)
        })
        .await;
    result.unwrap_or_else(|err| {
        tracing::error!(error = %err, "request work failed");
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    })
}

/// `POST /v1/verify`: can this controller decrypt every value of the
/// SealedSecret (as found in its namespace, under its name)? Answers per key
/// with a reason, never with data.
async fn verify(
    State(state): State<ApiState>,
    Extension(limits): Extension<BodyLimits>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &limits, &headers, body).await {
        Ok(body) => in_pool(&state, body, &headers, verify_work).await,
        Err(response) => response,
    }
}

/// The blocking part of [`verify`].
fn verify_work(state: &ApiState, content_type: Option<&str>, body: &[u8]) -> Response {
    let (sealed, parsed) = match parse_request(content_type, body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let keys = state.keys.get();
    let cost = work_cost(&parsed, &keys, 0);
    if !state.work_limiter.try_charge(cost) {
        return over_work_budget(cost);
    }
    let mut values = BTreeMap::new();
    // An empty encryptedData is well-formed: nothing fails to decrypt.
    let mut all_ok = true;
    // The values the type's content rules read (`.dockerconfigjson`,
    // `ssh-privatekey`), kept only for that check; wiped on drop.
    let mut for_type_rules: BTreeMap<&str, SecretBytes> = BTreeMap::new();
    let type_ = sealed
        .spec
        .template
        .as_ref()
        .and_then(|template| template.type_.as_deref());
    for (key, value) in sealed.spec.encrypted_data.keys().zip(parsed) {
        let result =
            value.and_then(|value| open(&value, &value_binding(&sealed, key), &keys.keyring));
        let verdict = match result {
            Ok(plaintext) => {
                if kseal_shared::secret_type::reads_content(type_, key) {
                    for_type_rules.insert(key, plaintext);
                }
                ValueVerdict {
                    ok: true,
                    reason: None,
                    message: None,
                }
            }
            Err(err) => {
                all_ok = false;
                let ValueFailure { reason, message } = failure(&err, &keys);
                ValueVerdict {
                    ok: false,
                    reason: Some(reason),
                    message: Some(message),
                }
            }
        };
        values.insert(key.clone(), verdict);
    }
    // What the API server would refuse of the values' content (the keys
    // the type requires were checked with the object). Said without a
    // position: only whether the rule holds.
    let empty = BTreeMap::new();
    let problems: Vec<String> = kseal_shared::secret_type::content_problems(
        type_,
        sealed
            .spec
            .template
            .as_ref()
            .and_then(|template| template.metadata.as_ref())
            .map_or(&empty, |metadata| &metadata.annotations),
        |key| sealed.spec.encrypted_data.contains_key(key),
        |key| for_type_rules.get(key).map(SecretBytes::expose),
    )
    .iter()
    .map(kseal_shared::secret_type::TypeError::without_position)
    .collect();
    let status = if all_ok && problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        axum::Json(VerifyResponse {
            decryptable: all_ok,
            values,
            problems,
        }),
    )
        .into_response()
}

/// `POST /v1/rewrap`: the SealedSecret with every value's data key
/// re-wrapped from this cluster's keys to its current sealing key, every
/// other recipient (a recovery key, another cluster) kept byte for byte.
/// The caller cannot choose recipients; v2 ciphertexts stay byte-identical
/// (v1 values are upgraded to v2, sealed to the cluster's key only);
/// values already current are returned unchanged.
async fn rewrap_handler(
    State(state): State<ApiState>,
    Extension(limits): Extension<BodyLimits>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &limits, &headers, body).await {
        Ok(body) => in_pool(&state, body, &headers, rewrap_work).await,
        Err(response) => response,
    }
}

/// The blocking part of [`rewrap_handler`].
fn rewrap_work(state: &ApiState, content_type: Option<&str>, body: &[u8]) -> Response {
    let (mut sealed, parsed) = match parse_request(content_type, body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let keys = state.keys.get();
    let recipients = keys.sealing_recipients();
    if recipients.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no active sealing key");
    }
    let target: Vec<KeyId> = recipients.iter().map(|r| r.key_id()).collect();
    let cost = rewrap_cost(&parsed, &keys, &target);
    if !state.work_limiter.try_charge(cost) {
        return over_work_budget(cost);
    }
    let outcome = rewrap_object(&sealed, parsed, &keys, &recipients, &target);
    if !outcome.failures.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(ValueFailures {
                error: "some values cannot be re-wrapped here".to_owned(),
                values: outcome.failures,
            }),
        )
            .into_response();
    }
    sealed.spec.encrypted_data = outcome.encrypted_data;
    sealed.status = None;
    let mut response = axum::Json(&sealed).into_response();
    if let Ok(value) = outcome.rewrapped.to_string().parse() {
        response.headers_mut().insert(REWRAPPED_HEADER, value);
    }
    response
}

/// The work of re-wrapping these values: values already sealed to the
/// target in the current format cost nothing; the others (v1 values are
/// upgraded) are unwrapped and wrapped again.
fn rewrap_cost(parsed: &[Result<SealedValue, SealError>], keys: &KeySet, target: &[KeyId]) -> u64 {
    let own = keys.own_key_ids();
    let to_rewrap = parsed.iter().filter(|value| {
        !value
            .as_ref()
            .is_ok_and(|value| value.is_current_for_cluster(&own, target))
    });
    work_cost(to_rewrap, keys, target.len())
}

/// What re-wrapping one object's values gave.
struct RewrapOutcome {
    encrypted_data: BTreeMap<String, String>,
    rewrapped: usize,
    failures: BTreeMap<String, ValueFailure>,
}

/// Re-wraps every value of `sealed` (parsed as `parsed`, in key order) that
/// is not current for this cluster yet (sealed to `target`, to none of its
/// other keys, in the current format): this cluster's stanzas are replaced,
/// every other recipient's kept ([`rewrap_replacing`]); the work must have
/// been charged.
fn rewrap_object(
    sealed: &SealedSecret,
    parsed: Vec<Result<SealedValue, SealError>>,
    keys: &KeySet,
    recipients: &[kseal_shared::x25519::Recipient],
    target: &[KeyId],
) -> RewrapOutcome {
    let mut outcome = RewrapOutcome {
        encrypted_data: sealed.spec.encrypted_data.clone(),
        rewrapped: 0,
        failures: BTreeMap::new(),
    };
    let own = keys.own_key_ids();
    for (key, value) in sealed.spec.encrypted_data.keys().zip(parsed) {
        let result = value.and_then(|value| {
            if value.is_current_for_cluster(&own, target) {
                Ok(None)
            } else {
                rewrap_replacing(
                    &value,
                    &value_binding(sealed, key),
                    &keys.keyring,
                    &own,
                    recipients,
                )
                .map(Some)
            }
        });
        match result {
            Ok(Some(value)) => {
                outcome.encrypted_data.insert(key.clone(), value.encode());
                outcome.rewrapped += 1;
            }
            Ok(None) => {}
            Err(err) => {
                outcome.failures.insert(key.clone(), failure(&err, keys));
            }
        }
    }
    outcome
}

/// `POST /v1/rewrap-batch`: [`rewrap_handler`] for many objects in one
/// request (bulk re-wrapping after a rotation). The same limits hold for
/// the batch as a whole: one request token, the body limit, at most
/// [`MAX_VALUES`] values (and objects) in all, and the sum of the objects'
/// work charged at once before any key is used.
async fn rewrap_batch_handler(
    State(state): State<ApiState>,
    Extension(limits): Extension<BodyLimits>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match accept(&state, &limits, &headers, body).await {
        Ok(body) => in_pool(&state, body, &headers, rewrap_batch_work).await,
        Err(response) => response,
    }
}

/// The blocking part of [`rewrap_batch_handler`].
fn rewrap_batch_work(state: &ApiState, content_type: Option<&str>, body: &[u8]) -> Response {
    let media = content_type
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    if media
        .as_deref()
        .is_some_and(|media| media != "application/json")
    {
        let shown: String = media.unwrap_or_default().chars().take(64).collect();
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {shown:?}: send application/json"),
        );
    }
    let request: RewrapBatchRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(err) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a rewrap batch: {}", redact_quoted(&err.to_string())),
            );
        }
    };
    let total: usize = request
        .items
        .iter()
        .map(|sealed| sealed.spec.encrypted_data.len())
        .sum();
    if total > MAX_VALUES || request.items.len() > MAX_VALUES {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the batch has {} objects with {total} values; at most {MAX_VALUES} of each are accepted",
                request.items.len()
            ),
        );
    }
    for (index, sealed) in request.items.iter().enumerate() {
        let problems = kseal_shared::validation::sealed_secret_problems(sealed);
        if !problems.is_empty() {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return error(
                StatusCode::BAD_REQUEST,
                format!("item {index}: not a SealedSecret: {}", problems.join("; ")),
            );
        }
    }
    let keys = state.keys.get();
    let recipients = keys.sealing_recipients();
    if recipients.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no active sealing key");
    }
    let target: Vec<KeyId> = recipients.iter().map(|r| r.key_id()).collect();
    let parsed: Vec<Vec<Result<SealedValue, SealError>>> = request
        .items
        .iter()
        .map(|sealed| {
            sealed
                .spec
                .encrypted_data
                .values()
                .map(|encoded| SealedValue::parse(encoded))
                .collect()
        })
        .collect();
    let cost: u64 = parsed
        .iter()
        .map(|values| rewrap_cost(values, &keys, &target))
        .sum();
    if !state.work_limiter.try_charge(cost) {
        return over_work_budget(cost);
    }
    let items = request
        .items
        .iter()
        .zip(parsed)
        .map(|(sealed, parsed)| {
            let outcome = rewrap_object(sealed, parsed, &keys, &recipients, &target);
            if outcome.failures.is_empty() {
                RewrapBatchItem {
                    encrypted_data: Some(outcome.encrypted_data),
                    rewrapped: outcome.rewrapped,
                    failures: BTreeMap::new(),
                }
            } else {
                RewrapBatchItem {
                    encrypted_data: None,
                    rewrapped: 0,
                    failures: outcome.failures,
                }
            }
        })
        .collect();
    axum::Json(RewrapBatchResponse { items }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One client gets at most its share; another client is not affected;
    /// a closed connection frees its slot; an IPv6 /64 counts as one client
    /// and an IPv4-mapped address as its IPv4 address.
    #[test]
    fn connections_are_capped_per_client() {
        let clients = ClientConnections::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut held: Vec<ClientSlot> = (0..3).map(|_| clients.take(a, 3).unwrap()).collect();
        assert!(clients.take(a, 3).is_none());
        assert!(
            clients
                .take("::ffff:10.0.0.1".parse().unwrap(), 3)
                .is_none()
        );
        let other = clients.take(b, 3);
        assert!(other.is_some());
        held.pop();
        assert!(clients.take(a, 3).is_some());
        let v6 = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = clients.take(v6("2001:db8:1:2::1"), 1);
        assert!(first.is_some());
        assert!(clients.take(v6("2001:db8:1:2:ffff::9"), 1).is_none());
        assert!(clients.take(v6("2001:db8:1:3::1"), 1).is_some());
        drop((held, other, first));
        assert!(clients.0.lock().unwrap().is_empty(), "slots leaked");
    }

    #[test]
    fn body_errors_never_quote_values() {
        let body = br#"{"metadata":{"name":"x"},"spec":{"encryptedData":"hunter2-\"quoted\""}}"#;
        let err = parse_sealed_secret_body(Some("application/json"), body).unwrap_err();
        assert!(matches!(err, BodyError::Invalid(_)), "{err}");
        let message = err.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains("quoted"), "{message}");
        let yaml = b"metadata: {name: x}\nspec:\n  encryptedData: \"hunter2\"\n";
        let err = parse_sealed_secret_body(Some("application/yaml"), yaml).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = parse_sealed_secret_body(Some("text/plain"), b"{}").unwrap_err();
        assert_eq!(err, BodyError::UnsupportedMediaType("text/plain".into()));
        let err = parse_sealed_secret_body(None, br#"{"metadata":{},"spec":{"encryptedData":{}}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("metadata.name"), "{err}");
        assert_eq!(redact_quoted(r#"a "b\"c" d "e""#), r#"a "…" d "…""#);
    }

    /// Aliases would let a small YAML body expand many times over; bodies
    /// may hold none (JSON bodies cannot).
    #[test]
    fn yaml_bodies_may_not_expand() {
        let scalar = "A".repeat(64 * 1024);
        let mut body = format!(
            "metadata: {{name: x, namespace: n}}\nspec:\n  encryptedData:\n    k0: &a {scalar}\n"
        );
        for i in 1..33 {
            body.push_str(&format!("    k{i}: *a\n"));
        }
        let err = parse_sealed_secret_body(Some("application/yaml"), body.as_bytes()).unwrap_err();
        assert!(matches!(err, BodyError::Invalid(_)), "{err}");
        let plain = format!(
            "metadata: {{name: x, namespace: n}}\nspec:\n  encryptedData:\n    k0: {scalar}\n"
        );
        assert!(parse_sealed_secret_body(Some("application/yaml"), plain.as_bytes()).is_ok());
    }

    /// Bodies are YAML 1.2, as the CLI reads files: `yes` is not `true`
    /// (it was, before one reader served both).
    #[test]
    fn yaml_bodies_take_only_yaml_1_2_booleans() {
        let body = |immutable: &str| {
            format!(
                "metadata: {{name: x, namespace: n}}\nspec:\n  encryptedData: {{k: v}}\n  template: {{immutable: {immutable}}}\n"
            )
        };
        let parsed =
            parse_sealed_secret_body(Some("application/yaml"), body("true").as_bytes()).unwrap();
        assert_eq!(
            parsed.spec.template.and_then(|template| template.immutable),
            Some(true)
        );
        for yaml_1_1 in ["yes", "on", "y"] {
            let err = parse_sealed_secret_body(Some("application/yaml"), body(yaml_1_1).as_bytes())
                .unwrap_err();
            assert!(matches!(err, BodyError::Invalid(_)), "{yaml_1_1}: {err}");
        }
    }
}
