//! The HTTP API every replica serves: health, metrics, public keys, and the
//! verify and rewrap endpoints. Request bodies are size-limited and the two
//! endpoints that decrypt are rate-limited. No response ever carries
//! plaintext.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kseal_shared::envelope::{SealedValue, open, rewrap};
use kseal_shared::manifest::value_binding;
use kseal_shared::{KeyId, SealError, SealedSecret};
use kube::runtime::reflector::Store;
use serde_json::json;

use crate::keys::KeyStore;
use crate::metrics::Metrics;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub keys: KeyStore,
    pub metrics: Arc<Metrics>,
    /// SealedSecrets as this replica's watch sees them (for metrics); empty
    /// on replicas that do not reconcile.
    pub sealed_secrets: Arc<Mutex<Vec<Store<SealedSecret>>>>,
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
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/public-keys", get(public_keys))
        .route("/v1/verify", post(verify))
        .route("/v1/rewrap", post(rewrap_handler))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
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
    let stores = state
        .sealed_secrets
        .lock()
        .map(|slot| slot.clone())
        .unwrap_or_default();
    for store in stores {
        for sealed in store.state() {
            let ids: std::collections::BTreeSet<&str> = sealed
                .spec
                .encrypted_data
                .values()
                .filter_map(|value| value.split(':').nth(2))
                .flat_map(|ids| ids.split(','))
                .collect();
            for id in ids {
                *by_key.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
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

/// Parses a SealedSecret from a JSON or YAML body.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<SealedSecret, Box<Response>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let parsed = match essence {
        "application/json" => {
            serde_json::from_slice::<SealedSecret>(body).map_err(|err| err.to_string())
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => std::str::from_utf8(body)
            .map_err(|_| "body is not UTF-8".to_owned())
            .and_then(|text| {
                let mut options = serde_saphyr::options::Options::default();
                options.with_snippet = false;
                serde_saphyr::from_str_with_options::<SealedSecret>(text, options).map_err(|err| {
                    err.to_string()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                })
            }),
        other => {
            return Err(Box::new(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {other:?}; send application/json or application/yaml"
                ),
            )));
        }
    };
    let sealed = parsed.map_err(|message| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("not a SealedSecret: {message}"),
        ))
    })?;
    if sealed
        .metadata
        .name
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "metadata.name is required",
        )));
    }
    Ok(sealed)
}

fn reason(error: &SealError) -> &'static str {
    match error {
        SealError::NoMatchingIdentity { .. } => "UnknownKey",
        SealError::DecryptFailed | SealError::UnwrapFailed => "DecryptFailed",
        SealError::InvalidBinding(_) => "InvalidSpec",
        _ => "MalformedValue",
    }
}

/// `POST /v1/verify`: can this controller decrypt every value of the
/// SealedSecret (as found in its namespace, under its name)? Answers per key
/// with a reason, never with data.
async fn verify(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !state.limiter.try_acquire() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded; retry later",
        );
    }
    let sealed = match parse_body(&headers, &body) {
        Ok(sealed) => sealed,
        Err(response) => return *response,
    };
    let keys = state.keys.get();
    let mut values = serde_json::Map::new();
    let mut all_ok = !sealed.spec.encrypted_data.is_empty();
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
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !state.limiter.try_acquire() {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate limit exceeded; retry later",
        );
    }
    let mut sealed = match parse_body(&headers, &body) {
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
