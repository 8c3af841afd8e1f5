//! A plain Kubernetes `Secret`, parsed with our own checks so that no error
//! message quotes a value and every value lives in a zeroizing buffer.

use std::collections::BTreeMap;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::prelude::BASE64_STANDARD;
use serde_json::{Map, Value, json};
use zeroize::{Zeroize, Zeroizing};

use crate::binding::{MAX_VALUE_LEN, validate_key_name};
use crate::error::SealError;
use crate::secret::SecretBytes;

/// Annotations that can hold a copy of the whole object, plaintext included.
/// They are never carried into a SealedSecret.
pub const STRIPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "kapp.k14s.io/original",
    "kapp.k14s.io/original-diff",
];

/// The fields of a `v1` Secret.
const SECRET_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "stringData",
    "type",
    "immutable",
];

/// The fields of `ObjectMeta`; kseal keeps name, namespace, labels and
/// annotations and drops the rest (they make no sense in git).
const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The parts of a Secret kseal carries. Everything else in `metadata` (uid,
/// resourceVersion, creationTimestamp, managedFields, ownerReferences, …)
/// makes no sense in git and is dropped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlainSecret {
    /// `metadata.name` (empty when unset).
    pub name: String,
    /// `metadata.namespace` (empty when unset).
    pub namespace: String,
    /// `type`, when set.
    pub type_: Option<String>,
    /// `immutable`, when set.
    pub immutable: Option<bool>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `data` and `stringData` merged (stringData wins), decoded.
    pub data: BTreeMap<String, SecretBytes>,
}

/// Why a document is not a Secret kseal can seal. Names fields (paths such
/// as `data.password`), never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The document is not a mapping.
    #[error("the document is not a mapping")]
    NotAMapping,
    /// Another object than a `v1` `Secret`.
    #[error("expected apiVersion v1, kind Secret; found apiVersion {api_version:?}, kind {kind:?}")]
    NotASecret {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
    },
    /// A field kubectl's strict validation refuses (a typo such as
    /// `stringdata`).
    #[error("unknown field {0:?} in a Secret")]
    UnknownField(String),
    /// A field has the wrong type.
    #[error("{path} is not {expected}")]
    WrongType {
        /// The field's path.
        path: String,
        /// What it must be: `a string`, `a mapping`, `a boolean`.
        expected: &'static str,
    },
    /// A `data` value is not base64 as the API server decodes it.
    #[error("{0} is not valid base64")]
    NotBase64(String),
    /// A data key Kubernetes refuses.
    #[error("{0}")]
    InvalidKey(SealError),
    /// A value larger than a Secret holds.
    #[error("value of {key:?} is {len} bytes; a Secret holds at most 1 MiB")]
    ValueTooLarge {
        /// The data key.
        key: String,
        /// Its length in bytes.
        len: usize,
    },
    /// All values together larger than a Secret holds.
    #[error("the Secret's values total {0} bytes; a Secret holds at most 1 MiB")]
    TooLarge(usize),
}

fn wrong_type(path: impl Into<String>, expected: &'static str) -> SecretError {
    SecretError::WrongType {
        path: path.into(),
        expected,
    }
}

impl PlainSecret {
    /// Reads a core `v1` `Secret` (`apiVersion` `v1` or `/v1`, see
    /// [`super::is_core_v1`]) from a parsed document. The document's strings
    /// are wiped afterwards, whether or not it parses.
    pub fn from_value(mut value: Value) -> Result<Self, SecretError> {
        let result = Self::read(&value);
        scrub(&mut value);
        result
    }

    fn read(value: &Value) -> Result<Self, SecretError> {
        let object = value.as_object().ok_or(SecretError::NotAMapping)?;
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        // `/v1` is core v1 too, as kubectl reads it: sealed like `v1`.
        if kind != "Secret" || !super::is_core_v1(api_version) {
            return Err(SecretError::NotASecret {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            });
        }
        let empty = Map::new();
        let metadata = match object.get("metadata") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(metadata)) => metadata,
            Some(_) => return Err(wrong_type("metadata", "a mapping")),
        };
        // kubectl validates strictly: an unknown field (a typo such as
        // `stringdata` or `lables`) is an error, not something to drop.
        if let Some(field) = object
            .keys()
            .find(|key| !SECRET_FIELDS.contains(&key.as_str()))
        {
            return Err(SecretError::UnknownField(field.clone()));
        }
        if let Some(field) = metadata
            .keys()
            .find(|key| !OBJECT_META_FIELDS.contains(&key.as_str()))
        {
            return Err(SecretError::UnknownField(format!("metadata.{field}")));
        }
        let mut secret = PlainSecret {
            name: optional_string(metadata, "name", "metadata.name")?.unwrap_or_default(),
            namespace: optional_string(metadata, "namespace", "metadata.namespace")?
                .unwrap_or_default(),
            type_: optional_string(object, "type", "type")?,
            immutable: match object.get("immutable") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(_) => return Err(wrong_type("immutable", "a boolean")),
            },
            labels: string_map(metadata, "labels", "metadata.labels")?,
            annotations: string_map(metadata, "annotations", "metadata.annotations")?,
            data: BTreeMap::new(),
        };
        if let Some(data) = map_field(object, "data")? {
            for (key, value) in data {
                // A null value is an empty one, as the API server stores it.
                let encoded = match value {
                    Value::Null => "",
                    value => value
                        .as_str()
                        .ok_or_else(|| wrong_type(format!("data.{key}"), "a string"))?,
                };
                let mut decoded = decode_data_value(encoded)
                    .ok_or_else(|| SecretError::NotBase64(format!("data.{key}")))?;
                let decoded_value = SecretBytes::new(std::mem::take(&mut decoded));
                secret.insert(key, decoded_value)?;
            }
        }
        // stringData wins over data, as on the API server.
        if let Some(string_data) = map_field(object, "stringData")? {
            for (key, value) in string_data {
                let text = match value {
                    Value::Null => "",
                    value => value
                        .as_str()
                        .ok_or_else(|| wrong_type(format!("stringData.{key}"), "a string"))?,
                };
                secret.insert(key, SecretBytes::from(text.as_bytes()))?;
            }
        }
        Ok(secret)
    }

    /// Adds or replaces a value after checking its key name and size.
    pub fn insert(&mut self, key: &str, value: SecretBytes) -> Result<(), SecretError> {
        validate_key_name(key).map_err(SecretError::InvalidKey)?;
        if value.len() > MAX_VALUE_LEN {
            return Err(SecretError::ValueTooLarge {
                key: key.to_owned(),
                len: value.len(),
            });
        }
        self.data.insert(key.to_owned(), value);
        let total: usize = self.data.values().map(SecretBytes::len).sum();
        if total > MAX_VALUE_LEN {
            return Err(SecretError::TooLarge(total));
        }
        Ok(())
    }

    /// Removes annotations that may contain plaintext: the known
    /// whole-object copies, and any annotation whose value contains one of the
    /// Secret's values. Returns the names of those removed.
    pub fn strip_leaky_annotations(&mut self) -> Vec<String> {
        let values: Vec<&[u8]> = self
            .data
            .values()
            .map(SecretBytes::expose)
            .filter(|value| value.len() >= 4)
            .collect();
        let leaky: Vec<String> = self
            .annotations
            .iter()
            .filter(|(key, value)| {
                STRIPPED_ANNOTATIONS.contains(&key.as_str())
                    || values
                        .iter()
                        .any(|secret| contains(value.as_bytes(), secret))
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in &leaky {
            if let Some(mut value) = self.annotations.remove(key) {
                value.zeroize();
            }
        }
        leaky
    }

    /// The Secret as a manifest (data base64-encoded). The caller owns the
    /// plaintext in the result and should [`scrub`] it when done.
    pub fn to_manifest(&self) -> Value {
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(self.name));
        if !self.namespace.is_empty() {
            metadata.insert("namespace".into(), json!(self.namespace));
        }
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), json!(self.labels));
        }
        if !self.annotations.is_empty() {
            metadata.insert("annotations".into(), json!(self.annotations));
        }
        let data: Map<String, Value> = self
            .data
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    Value::String(BASE64_STANDARD.encode(value.expose())),
                )
            })
            .collect();
        let mut manifest = Map::new();
        manifest.insert("apiVersion".into(), json!("v1"));
        manifest.insert("kind".into(), json!("Secret"));
        manifest.insert("metadata".into(), Value::Object(metadata));
        if let Some(type_) = &self.type_ {
            manifest.insert("type".into(), json!(type_));
        }
        if let Some(immutable) = self.immutable {
            manifest.insert("immutable".into(), json!(immutable));
        }
        manifest.insert("data".into(), Value::Object(data));
        Value::Object(manifest)
    }
}

/// The API server's base64 (Go's `encoding/json` for `[]byte`, that is
/// `base64.StdEncoding`): the standard alphabet, padding required, `\r` and
/// `\n` skipped anywhere (values wrapped by `base64` at 76 columns), nothing
/// else skipped (a space is an error), and set bits after the last full
/// byte tolerated.
fn decode_data_value(encoded: &str) -> Option<Vec<u8>> {
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
    );
    let mut compact = Zeroizing::new(encoded.as_bytes().to_vec());
    compact.retain(|&b| b != b'\r' && b != b'\n');
    ENGINE.decode(&*compact).ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<String>, SecretError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(path, "a string")),
    }
}

fn map_field<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a Map<String, Value>>, SecretError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(wrong_type(field, "a mapping")),
    }
}

fn string_map(
    object: &Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<BTreeMap<String, String>, SecretError> {
    let Some(map) = map_field(object, field).map_err(|_| wrong_type(path, "a mapping"))? else {
        return Ok(BTreeMap::new());
    };
    map.iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key.clone(), s.clone())),
            _ => Err(wrong_type(format!("{path}.{key}"), "a string")),
        })
        .collect()
}

/// Overwrites every string in a JSON value with zeros before it is dropped,
/// so plaintext read from a manifest does not linger in freed memory.
pub fn scrub(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => {
            for (_, item) in map.iter_mut() {
                scrub(item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error as its message, which is what these tests check.
    fn secret(value: Value) -> Result<PlainSecret, String> {
        PlainSecret::from_value(value).map_err(|err| err.to_string())
    }

    #[test]
    fn data_and_string_data() {
        let parsed = secret(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "app", "labels": {"a": "b"},
                          "uid": "123", "resourceVersion": "9",
                          "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":\"hunter2\"}", "note": "x"}},
            "type": "kubernetes.io/basic-auth",
            "immutable": true,
            "data": {"bin": "AP8=", "user": "YWRtaW4="},
            "stringData": {"user": "root", "password": "hunter2"}
        }))
        .unwrap();
        assert_eq!(parsed.name, "db");
        assert_eq!(parsed.data["bin"].expose(), &[0, 255]);
        assert_eq!(parsed.data["user"].expose(), b"root");
        assert_eq!(parsed.data["password"].expose(), b"hunter2");
        assert_eq!(parsed.immutable, Some(true));
        let mut parsed = parsed;
        let stripped = parsed.strip_leaky_annotations();
        assert_eq!(
            stripped,
            vec!["kubectl.kubernetes.io/last-applied-configuration"]
        );
        assert!(parsed.annotations.contains_key("note"));
    }

    #[test]
    fn annotation_containing_a_value_is_stripped() {
        let mut parsed = secret(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x",
            "annotations": {"copy": "pw=s3cr3t!", "ok": "fine"}},
            "stringData": {"pw": "s3cr3t!"}
        }))
        .unwrap();
        assert_eq!(parsed.strip_leaky_annotations(), vec!["copy"]);
    }

    #[test]
    fn errors_do_not_quote_values() {
        let err = secret(json!({"apiVersion": "v1", "kind": "Secret", "data": {"k": "hunter2!"}}))
            .unwrap_err();
        assert!(err.contains("data.k is not valid base64"), "{err}");
        assert!(!err.contains("hunter2"));
        let err =
            secret(json!({"apiVersion": "v1", "kind": "Secret", "data": {"bad/key": "YQ=="}}))
                .unwrap_err();
        assert!(err.contains("invalid data key name"), "{err}");
        let err = secret(json!({"apiVersion": "v1", "kind": "ConfigMap"})).unwrap_err();
        assert!(err.contains("ConfigMap"), "{err}");
    }

    /// `/v1` is core v1 to kubectl (and to the API server, which stores
    /// the Secret as `v1`): sealed like `v1`. Other spellings are refused.
    #[test]
    fn core_v1_as_kubectl_reads_it() {
        let parsed = secret(json!({"apiVersion": "/v1", "kind": "Secret",
            "metadata": {"name": "db"}, "stringData": {"k": "v"}}))
        .unwrap();
        assert_eq!(parsed.data["k"].expose(), b"v");
        for api_version in ["core/v1", "v1/", "//v1", "V1", ""] {
            let err = secret(json!({"apiVersion": api_version, "kind": "Secret"})).unwrap_err();
            assert!(
                err.contains("expected apiVersion v1"),
                "{api_version:?}: {err}"
            );
        }
    }

    #[test]
    fn data_values_decode_as_the_api_server_does() {
        // (encoded, decoded or None for refused)
        let table: &[(&str, Option<&[u8]>)] = &[
            ("YWJj", Some(b"abc")),
            ("", Some(b"")),
            ("YQ==", Some(b"a")),
            ("YWI=", Some(b"ab")),
            ("YW\nJj", Some(b"abc")),
            ("YWJj\n", Some(b"abc")),
            ("YWJj\r\n", Some(b"abc")),
            ("\nY\rW\nJ\nj\n\n", Some(b"abc")),
            ("YQ=\n=", Some(b"a")),
            // Non-zero bits after the last byte: Go's decoder is not strict.
            ("YR==", Some(b"a")),
            ("YQ", None),
            ("YQ=", None),
            ("YQ===", None),
            (" YWJj", None),
            ("YWJj ", None),
            ("YW Jj", None),
            ("YW\tJj", None),
            ("YWJj=", None),
            ("YWJ-", None),
            ("YWJ_", None),
            ("YQ==YQ==", None),
        ];
        for (encoded, expected) in table {
            assert_eq!(
                decode_data_value(encoded).as_deref(),
                *expected,
                "{encoded:?}"
            );
        }
    }

    #[test]
    fn null_values_are_empty_and_unknown_fields_are_refused() {
        let parsed = secret(json!({"apiVersion": "v1", "kind": "Secret",
            "data": {"a": null}, "stringData": {"b": null}}))
        .unwrap();
        assert_eq!(parsed.data["a"].expose(), b"");
        assert_eq!(parsed.data["b"].expose(), b"");
        for (value, message) in [
            (
                json!({"apiVersion": "v1", "kind": "Secret", "stringdata": {}}),
                "unknown field \"stringdata\"",
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"lables": {}}}),
                "unknown field \"metadata.lables\"",
            ),
        ] {
            let err = secret(value).unwrap_err();
            assert!(err.contains(message), "{err}");
        }
        // What `kubectl get -o yaml` adds to metadata is known, and dropped.
        assert!(
            secret(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {
            "uid": "u", "resourceVersion": "1", "managedFields": [], "creationTimestamp": null}}))
            .is_ok()
        );
    }

    #[test]
    fn size_limit() {
        let big = "a".repeat(MAX_VALUE_LEN + 1);
        let err = secret(json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"k": big}}))
            .unwrap_err();
        assert!(err.contains("1 MiB"), "{err}");
        let half = "a".repeat(MAX_VALUE_LEN / 2 + 1);
        let err = secret(json!({"apiVersion": "v1", "kind": "Secret",
            "stringData": {"a": half, "b": half}}))
        .unwrap_err();
        assert!(err.contains("total"), "{err}");
    }

    #[test]
    fn round_trip_through_manifest() {
        let original = secret(json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "n", "namespace": "ns"},
            "type": "Opaque", "data": {"k": "AAEC"}
        }))
        .unwrap();
        assert_eq!(secret(original.to_manifest()).unwrap(), original);
    }
}
