//! The HTTP API every replica serves: health, metrics, public keys, and the
//! verify and rewrap endpoints. Request bodies are size-limited and the two
//! endpoints that decrypt are rate-limited. No response ever carries
//! plaintext.
//!
//! Against slow and abusive clients ([`serve`], [`ServerLimits`]): headers
//! must arrive within a timeout (which also closes idle keep-alive
//! connections), bodies within another, connections are capped in number and
//! lifetime, and only a few bodies are buffered at once, so memory stays
//! bounded whatever clients do.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use futures::StreamExt;
use kseal_shared::envelope::{SealedValue, open, rewrap};
use kseal_shared::manifest::value_binding;
use kseal_shared::{KeyId, SealError, SealedSecret};

use crate::cached::CachedSealedSecret;
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::keys::KeyStore;
use crate::metrics::Metrics;

/// Limits of the HTTP server against slow, large and numerous requests.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers; an idle keep-alive
    /// connection is closed after this too.
    pub header_timeout: Duration,
    /// Time a client has to send a request body (408 after).
    pub body_timeout: Duration,
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
    /// Request bodies buffered at once (503 for more): with
    /// `max_body_bytes`, the most memory bodies can take.
    pub max_buffered_bodies: usize,
    /// A connection is closed (gracefully) after this long.
    pub max_connection_age: Duration,
}

impl ServerLimits {
    pub fn new(max_body_bytes: usize) -> Self {
        Self {
            max_body_bytes,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_buffered_bodies: 16,
            max_connection_age: Duration::from_secs(600),
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

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub keys: KeyStore,
    pub metrics: Arc<Metrics>,
    /// SealedSecrets as this replica's watch sees them (for metrics); empty
    /// on replicas that do not reconcile.
    pub sealed_secrets: Arc<Mutex<Vec<Store<CachedSealedSecret>>>>,
    pub limiter: Arc<RateLimiter>,
}

/// A token bucket shared by all clients of the decrypting endpoints.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            burst: rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    pub fn try_acquire(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    router_with_limits(state, ServerLimits::new(max_body_bytes))
}

pub fn router_with_limits(state: ApiState, limits: ServerLimits) -> Router {
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
        .route("/v1/public-keys", get(public_keys))
        .route("/v1/verify", post(verify))
        .route("/v1/rewrap", post(rewrap_handler))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(Extension(body_limits))
        .with_state(state)
}

/// Serves `router` on `listener` until the task is aborted, with
/// [`ServerLimits`]' header timeout, connection cap and connection age.
/// (`axum::serve` sets no timer, so hyper's header timeout would be off and
/// a client sending one header byte a minute would hold its connection
/// forever.) Never returns on its own: accept errors (e.g. out of file
/// descriptors) are logged and retried.
pub async fn serve(listener: tokio::net::TcpListener, router: Router, limits: ServerLimits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "HTTP accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
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
        });
    }
}

/// Reads a request body within the size limit and the body timeout, holding
/// one of the few buffered-body slots meanwhile.
async fn read_body(
    limits: &BodyLimits,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limits.max_bytes as u64) {
        return Err(too_large(limits.max_bytes));
    }
    let Ok(_slot) = limits.slots.try_acquire() else {
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
        Ok(result) => result,
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

async fn metrics(State(state): State<ApiState>) -> Response {
    let keys = state.keys.get();
    let mut by_key: std::collections::BTreeMap<String, i64> = Default::default();
    let mut stranded = 0;
    let stores = state
        .sealed_secrets
        .lock()
        .map(|slot| slot.clone())
        .unwrap_or_default();
    for store in stores {
        for sealed in store.state() {
            // Only well-formed key ids become label values: the field could
            // hold anything (plaintext pasted by mistake included).
            let ids: std::collections::BTreeSet<KeyId> = sealed
                .sealed_values()
                .filter_map(|value| value.split(':').nth(2))
                .flat_map(|ids| ids.split(','))
                .filter_map(|id| id.parse::<KeyId>().ok())
                .collect();
            for id in ids {
                *by_key.entry(id.to_string()).or_default() += 1;
            }
            if has_value_without_key(&sealed, &keys.keyring) {
                stranded += 1;
            }
        }
    }
    state.metrics.without_key.set(stranded);
    let by_key: Vec<(String, i64)> = by_key.into_iter().collect();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(&keys, &by_key),
    )
        .into_response()
}

/// Whether a value of the SealedSecret names only keys this replica does not
/// hold (lost or never had): it cannot be unsealed here.
fn has_value_without_key(sealed: &CachedSealedSecret, keyring: &kseal_shared::Keyring) -> bool {
    sealed.sealed_values().any(|value| {
        let ids = value.split(':').nth(2).unwrap_or_default();
        !ids.split(',')
            .filter_map(|id| id.parse::<KeyId>().ok())
            .any(|id| keyring.contains(&id))
    })
}

async fn public_keys(State(state): State<ApiState>) -> Response {
    let keys = state.keys.get();
    let recipients: Vec<String> = keys
        .sealing_recipients()
        .iter()
        .map(ToString::to_string)
        .collect();
    let published: Vec<_> = keys
        .keys
        .iter()
        .filter(|key| key.state != crate::keys::KeyState::Retired)
        .collect();
    axum::Json(json!({ "recipients": recipients, "keys": published })).into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
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
}

impl BodyError {
    fn status(&self) -> StatusCode {
        match self {
            BodyError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            BodyError::Invalid(_) => StatusCode::BAD_REQUEST,
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
                let mut options = serde_saphyr::options::Options::default();
                options.with_snippet = false;
                serde_saphyr::from_str_with_options::<SealedSecret>(text, options).map_err(|err| {
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

/// Parses a SealedSecret from a JSON or YAML body.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<SealedSecret, Box<Response>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("(not text)"));
    parse_sealed_secret_body(content_type, body)
        .map_err(|err| Box::new(error(err.status(), err.to_string())))
}

fn reason(error: &SealError) -> &'static str {
    match error {
        SealError::NoMatchingIdentity { .. } => "UnknownKey",
        SealError::DecryptFailed | SealError::UnwrapFailed => "DecryptFailed",
        SealError::InvalidBinding(_) => "InvalidSpec",
        _ => "MalformedValue",
    }
}

/// What both decrypting endpoints do first: take a rate-limit token (before
/// reading anything), read the body within its limits, parse it.
async fn accept(
    state: &ApiState,
    limits: &BodyLimits,
    headers: &HeaderMap,
    body: Body,
) -> Result<SealedSecret, Box<Response>> {
    if !state.limiter.try_acquire() {
        return Err(Box::new(error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded; retry later",
        )));
    }
    let body = read_body(limits, headers, body).await.map_err(Box::new)?;
    parse_body(headers, &body)
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
    let sealed = match accept(&state, &limits, &headers, body).await {
        Ok(sealed) => sealed,
        Err(response) => return *response,
    };
    let keys = state.keys.get();
    let mut values = serde_json::Map::new();
    // An empty encryptedData is well-formed: nothing fails to decrypt.
    let mut all_ok = true;
    for (key, encoded) in &sealed.spec.encrypted_data {
        let result = SealedValue::parse(encoded)
            .and_then(|value| open(&value, &value_binding(&sealed, key), &keys.keyring).map(drop));
        let verdict = match result {
            Ok(()) => json!({"ok": true}),
            Err(err) => {
                all_ok = false;
                json!({"ok": false, "reason": reason(&err), "message": err.to_string()})
            }
        };
        values.insert(key.clone(), verdict);
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    (
        status,
        axum::Json(json!({"decryptable": all_ok, "values": values})),
    )
        .into_response()
}

/// `POST /v1/rewrap`: the SealedSecret with every value's data key
/// re-wrapped to this cluster's current sealing keys. The caller cannot
/// choose recipients; ciphertexts stay byte-identical; values already
/// sealed to the current keys are returned unchanged.
async fn rewrap_handler(
    State(state): State<ApiState>,
    Extension(limits): Extension<BodyLimits>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut sealed = match accept(&state, &limits, &headers, body).await {
        Ok(sealed) => sealed,
        Err(response) => return *response,
    };
    let keys = state.keys.get();
    let recipients = keys.sealing_recipients();
    if recipients.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "no active sealing key");
    }
    let target: Vec<KeyId> = recipients.iter().map(|r| r.key_id()).collect();
    let mut failures = serde_json::Map::new();
    let mut rewrapped = 0;
    let mut updated = sealed.spec.encrypted_data.clone();
    for (key, encoded) in &sealed.spec.encrypted_data {
        let result = SealedValue::parse(encoded).and_then(|value| {
            if value.is_sealed_to(&target) {
                Ok(None)
            } else {
                rewrap(
                    &value,
                    &value_binding(&sealed, key),
                    &keys.keyring,
                    &recipients,
                )
                .map(Some)
            }
        });
        match result {
            Ok(Some(value)) => {
                updated.insert(key.clone(), value.encode());
                rewrapped += 1;
            }
            Ok(None) => {}
            Err(err) => {
                failures.insert(
                    key.clone(),
                    json!({"reason": reason(&err), "message": err.to_string()}),
                );
            }
        }
    }
    if !failures.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(
                json!({"error": "some values cannot be re-wrapped here", "values": failures}),
            ),
        )
            .into_response();
    }
    sealed.spec.encrypted_data = updated;
    sealed.status = None;
    let mut response = axum::Json(&sealed).into_response();
    if let Ok(value) = rewrapped.to_string().parse() {
        response.headers_mut().insert("x-kseal-rewrapped", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
