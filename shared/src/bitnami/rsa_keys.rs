//! Bitnami's private keys: exported `kubernetes.io/tls` Secrets (one, several,
//! or a `List` of them) or PEM files, PKCS#1 or PKCS#8.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::Value;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use super::BitnamiKeyError;
use crate::manifest::{SourceFormat, parse_json, parse_yaml_document, scrub, split_yaml};

/// The data key of a TLS Secret that holds the private key.
const TLS_KEY: &str = "tls.key";

/// One Bitnami private key. `Debug` shows where it came from and its size,
/// never the key.
pub struct BitnamiKey {
    key: RsaPrivateKey,
    origin: String,
    fingerprint: String,
}

impl BitnamiKey {
    fn new(key: RsaPrivateKey, origin: String) -> Self {
        // The public modulus identifies the key in messages; it is public.
        let digest = Sha256::digest(key.n().to_bytes_be());
        let fingerprint = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            key,
            origin,
            fingerprint,
        }
    }

    /// Where the key was read from, e.g. `document 1 (line 1), item 2
    /// (kube-system/sealed-secrets-keyx7k2p)`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Modulus size in bits (Bitnami's default is 4096).
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// First 8 bytes of SHA-256 of the public modulus, in hex: tells keys
    /// apart in messages without revealing anything.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub(crate) fn rsa(&self) -> &RsaPrivateKey {
        &self.key
    }
}

impl fmt::Debug for BitnamiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitnamiKey")
            .field("origin", &self.origin)
            .field("bits", &self.bits())
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// Every Bitnami private key given. Bitnami keeps each renewed key, and a
/// value names none of them, so decryption tries them in turn (the key that
/// worked last first).
#[derive(Default)]
pub struct BitnamiKeyring {
    keys: Vec<BitnamiKey>,
    last_hit: AtomicUsize,
}

impl fmt::Debug for BitnamiKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BitnamiKeyring")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl BitnamiKeyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every private key in `text`: a PEM file (PKCS#1 `RSA PRIVATE
    /// KEY` or PKCS#8 `PRIVATE KEY`; certificates are skipped), or YAML/JSON
    /// holding Secrets with `data.tls.key` (several documents and `List`s
    /// allowed). Keys already present are skipped. Returns how many keys were
    /// added. A file with no key is an error.
    pub fn add_text(&mut self, text: &str) -> Result<usize, BitnamiKeyError> {
        let found = if text.trim_start().starts_with("-----BEGIN") {
            parse_pem_keys(text, "")?
        } else {
            parse_secret_keys(text)?
        };
        if found.is_empty() {
            return Err(BitnamiKeyError::NoKeys);
        }
        let mut added = 0;
        for key in found {
            if !self.keys.iter().any(|k| k.key.n() == key.key.n()) {
                self.keys.push(key);
                added += 1;
            }
        }
        Ok(added)
    }

    /// The keys, in the order they were added.
    pub fn keys(&self) -> &[BitnamiKey] {
        &self.keys
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Indices of the keys in the order to try them: the last that worked
    /// first, then the others as given.
    pub(crate) fn try_order(&self) -> impl Iterator<Item = (usize, &BitnamiKey)> {
        let first = self.last_hit.load(Ordering::Relaxed).min(self.keys.len());
        self.keys
            .get(first)
            .map(|key| (first, key))
            .into_iter()
            .chain(
                self.keys
                    .iter()
                    .enumerate()
                    .filter(move |(index, _)| *index != first),
            )
    }

    pub(crate) fn remember(&self, index: usize) {
        self.last_hit.store(index, Ordering::Relaxed);
    }
}

/// Keys from every PEM private-key block of `text`.
fn parse_pem_keys(text: &str, origin: &str) -> Result<Vec<BitnamiKey>, BitnamiKeyError> {
    let mut keys = Vec::new();
    let mut block: Option<(String, Zeroizing<String>)> = None;
    let mut count = 0;
    for line in text.lines() {
        let line = line.trim();
        if let Some((label, body)) = &mut block {
            body.push_str(line);
            body.push('\n');
            if line == format!("-----END {label}-----") {
                count += 1;
                let location = if origin.is_empty() {
                    format!("PEM block {count}")
                } else {
                    format!("{origin}, PEM block {count}")
                };
                if let Some(key) = decode_pem_block(label, body, &location)? {
                    keys.push(BitnamiKey::new(key, location));
                }
                block = None;
            }
        } else if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            let mut body = Zeroizing::new(String::new());
            body.push_str(line);
            body.push('\n');
            block = Some((label.to_owned(), body));
        }
    }
    if let Some((label, _)) = block {
        let at = if origin.is_empty() { "PEM" } else { origin };
        return Err(BitnamiKeyError::Invalid {
            location: at.to_owned(),
            reason: format!("unterminated {label} block"),
        });
    }
    Ok(keys)
}

/// A private key from one PEM block; `None` for blocks that are not private
/// keys (certificates).
fn decode_pem_block(
    label: &str,
    pem: &str,
    location: &str,
) -> Result<Option<RsaPrivateKey>, BitnamiKeyError> {
    let invalid = |reason: &str| BitnamiKeyError::Invalid {
        location: location.to_owned(),
        reason: reason.to_owned(),
    };
    // The decoders' errors describe ASN.1 structure, never the content; a
    // fixed message keeps it that way.
    match label {
        "RSA PRIVATE KEY" => RsaPrivateKey::from_pkcs1_pem(pem)
            .map(Some)
            .map_err(|_| invalid("not a valid PKCS#1 RSA private key")),
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_pem(pem)
            .map(Some)
            .map_err(|_| invalid("not a valid PKCS#8 RSA private key")),
        "ENCRYPTED PRIVATE KEY" => Err(invalid(
            "the private key is encrypted; decrypt it first (openssl pkey -in key.pem -out plain.pem)",
        )),
        other if other.ends_with("PRIVATE KEY") => Err(invalid(&format!(
            "{other} is not an RSA key; Bitnami keys are RSA"
        ))),
        _ => Ok(None),
    }
}

/// Keys from Secrets in YAML or JSON (documents, `List` items).
fn parse_secret_keys(text: &str) -> Result<Vec<BitnamiKey>, BitnamiKeyError> {
    let mut keys = Vec::new();
    match SourceFormat::detect(text) {
        SourceFormat::Json => {
            let mut value = parse_json(text).map_err(BitnamiKeyError::Manifest)?;
            let result = keys_of_document(&value, "document 1 (line 1)", &mut keys);
            scrub(&mut value);
            result?;
        }
        SourceFormat::Yaml => {
            let mut documents = split_yaml(text);
            let mut result = Ok(());
            for document in documents.iter().filter(|d| !d.empty) {
                let mut value = match parse_yaml_document(document) {
                    Ok(value) => value,
                    Err(err) => {
                        result = Err(BitnamiKeyError::Manifest(err));
                        break;
                    }
                };
                let location =
                    format!("document {} (line {})", document.index, document.first_line);
                let found = keys_of_document(&value, &location, &mut keys);
                scrub(&mut value);
                if found.is_err() {
                    result = found;
                    break;
                }
            }
            for document in &mut documents {
                document.text.zeroize();
            }
            result?;
        }
    }
    Ok(keys)
}

fn keys_of_document(
    value: &Value,
    location: &str,
    keys: &mut Vec<BitnamiKey>,
) -> Result<(), BitnamiKeyError> {
    if value.is_null() {
        return Ok(());
    }
    let is_list = value.get("kind").and_then(Value::as_str) == Some("List");
    match value.get("items") {
        Some(Value::Array(items)) if is_list => {
            for (index, item) in items.iter().enumerate() {
                keys_of_secret(item, &format!("{location}, item {}", index + 1), keys)?;
            }
            Ok(())
        }
        _ => keys_of_secret(value, location, keys),
    }
}

fn keys_of_secret(
    value: &Value,
    location: &str,
    keys: &mut Vec<BitnamiKey>,
) -> Result<(), BitnamiKeyError> {
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let metadata = |name: &str| {
        value
            .get("metadata")
            .and_then(|m| m.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let location = match (metadata("namespace"), metadata("name")) {
        (_, "") => location.to_owned(),
        ("", name) => format!("{location} ({name})"),
        (namespace, name) => format!("{location} ({namespace}/{name})"),
    };
    let invalid = |reason: String| BitnamiKeyError::Invalid {
        location: location.clone(),
        reason,
    };
    if field("apiVersion") != "v1" || field("kind") != "Secret" {
        return Err(invalid(format!(
            "expected a v1 Secret holding {TLS_KEY}, found apiVersion {:?}, kind {:?}",
            field("apiVersion"),
            field("kind")
        )));
    }
    let encoded = value.get("data").and_then(|d| d.get(TLS_KEY));
    let plain = value.get("stringData").and_then(|d| d.get(TLS_KEY));
    let pem = match (encoded, plain) {
        (_, Some(Value::String(pem))) => Zeroizing::new(pem.clone()),
        (Some(Value::String(encoded)), _) => {
            let compact: Zeroizing<String> = Zeroizing::new(
                encoded
                    .chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect(),
            );
            let bytes = Zeroizing::new(
                BASE64_STANDARD
                    .decode(compact.as_bytes())
                    .map_err(|_| invalid(format!("data.{TLS_KEY} is not valid base64")))?,
            );
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| invalid(format!("data.{TLS_KEY} is not a PEM text")))?;
            Zeroizing::new(text.to_owned())
        }
        _ => return Err(invalid(format!("the Secret has no data.{TLS_KEY}"))),
    };
    let found = parse_pem_keys(&pem, &location)?;
    if found.is_empty() {
        return Err(invalid(format!("data.{TLS_KEY} holds no PEM private key")));
    }
    keys.extend(found);
    Ok(())
}
