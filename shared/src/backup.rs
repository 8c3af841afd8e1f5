//! Key backups: every sealing key of a cluster, as the key Secrets
//! themselves, in one age-encrypted file for an offline recovery key.
//!
//! The plaintext bundle is a `v1` `List` of Secrets (name, labels,
//! annotations, type, data) so that restoring is creating them again. It
//! exists only in memory, in zeroizing buffers.
//!
//! Backups are encrypted to a public recovery recipient, so anyone can write
//! one: they are not authenticated. Restoring therefore trusts nothing in
//! the bundle but the identities themselves ([`RestoredKey`]): key ids and
//! public keys are derived from them, labels and annotations are rebuilt,
//! and keys come back `decrypt-only` unless the operator asks to keep the
//! recorded states.

use std::io::{Read, Write};

use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;

use crate::contract::{
    IDENTITY_DATA_KEY, KEY_CREATED_ANNOTATION, KEY_ID_LABEL, KEY_RECIPIENT_ANNOTATION,
    KEY_STATE_LABEL, KeyState, SEALING_KEY_LABEL, SEALING_KEY_SECRET_TYPE,
};
use crate::x25519::{Identity, KeyId, Recipient, parse_identity_file};

/// Why a backup cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Backing up needs at least one recipient.
    #[error("no recipients to encrypt the backup to")]
    NoRecipients,
    /// age encryption failed.
    #[error("encryption failed")]
    Encrypt,
    /// No given identity opens the file.
    #[error(
        "the backup cannot be decrypted with the given identities (wrong key, or not a kseal backup)"
    )]
    Decrypt,
    /// The decrypted bundle is not what `bundle` writes.
    #[error("the backup is not a list of kseal key Secrets: {0}")]
    Format(String),
}

/// Builds the plaintext bundle from key Secrets (as JSON objects, e.g. from
/// the API). Only what restoring needs is kept.
pub fn bundle(secrets: &[Value]) -> Zeroizing<String> {
    let items: Vec<Value> = secrets
        .iter()
        .map(|secret| {
            let metadata = &secret["metadata"];
            let mut kept = Map::new();
            kept.insert("name".into(), metadata["name"].clone());
            for field in ["labels", "annotations"] {
                if metadata[field].is_object() {
                    kept.insert(field.into(), metadata[field].clone());
                }
            }
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": kept,
                "type": secret["type"].clone(),
                "data": secret["data"].clone(),
            })
        })
        .collect();
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    Zeroizing::new(serde_json::to_string_pretty(&list).unwrap_or_default())
}

/// Encrypts a bundle to the recipients as a binary age file.
pub fn encrypt(bundle: &str, recipients: &[Recipient]) -> Result<Vec<u8>, BackupError> {
    if recipients.is_empty() {
        return Err(BackupError::NoRecipients);
    }
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .iter()
            .map(|recipient| recipient.age() as &dyn age::Recipient),
    )
    .map_err(|_| BackupError::Encrypt)?;
    let mut out = Vec::new();
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|_| BackupError::Encrypt)?;
    writer
        .write_all(bundle.as_bytes())
        .and_then(|()| writer.finish().map(drop))
        .map_err(|_| BackupError::Encrypt)?;
    Ok(out)
}

/// Decrypts a backup and returns its key Secrets (JSON objects).
pub fn decrypt(file: &[u8], identities: &[Identity]) -> Result<Vec<Value>, BackupError> {
    let decryptor = age::Decryptor::new(file).map_err(|_| BackupError::Decrypt)?;
    let mut reader = decryptor
        .decrypt(
            identities
                .iter()
                .map(|identity| identity as &dyn age::Identity),
        )
        .map_err(|_| BackupError::Decrypt)?;
    let mut plaintext = Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|_| BackupError::Decrypt)?;
    let mut list: Value =
        serde_json::from_slice(&plaintext).map_err(|_| BackupError::Format("not JSON".into()))?;
    let items = match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => return Err(BackupError::Format("no items".into())),
    };
    crate::manifest::scrub(&mut list);
    for (index, item) in items.iter().enumerate() {
        let is_key = item["kind"] == "Secret"
            && item["metadata"]["labels"][SEALING_KEY_LABEL] == "true"
            && item["metadata"]["name"].is_string()
            && item["data"].is_object();
        if !is_key {
            return Err(BackupError::Format(format!(
                "item {} is not a key Secret",
                index + 1
            )));
        }
    }
    Ok(items)
}

/// One key of a backup as it will be restored. Only the identity is taken
/// from the bundle as it is: the key id and public key are derived from it,
/// the Secret's labels and annotations are rebuilt. The Secret (with the
/// identity) is wiped when this is dropped.
pub struct RestoredKey {
    /// The key Secret's name, from the bundle.
    pub name: String,
    /// Derived from the identity.
    pub key_id: KeyId,
    /// Derived from the identity.
    pub recipient: Recipient,
    /// The recorded creation time, when it is a valid RFC 3339 time.
    pub created: Option<String>,
    /// The state the key is restored in.
    pub state: KeyState,
    secret: Value,
}

impl RestoredKey {
    /// The Secret to create (in the controller's namespace).
    pub fn secret(&self) -> &Value {
        &self.secret
    }
}

impl std::fmt::Debug for RestoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoredKey")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Drop for RestoredKey {
    fn drop(&mut self) {
        crate::manifest::scrub(&mut self.secret);
    }
}

/// Turns the items of a decrypted backup into the keys to restore. Every
/// key is `decrypt-only` unless `keep_states` (then the recorded state,
/// which must be a valid one). Errors name the item, never its content.
pub fn restore_plan(items: &[Value], keep_states: bool) -> Result<Vec<RestoredKey>, BackupError> {
    let mut keys = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let bad = |what: &str| BackupError::Format(format!("item {}: {what}", index + 1));
        if item["type"] != SEALING_KEY_SECRET_TYPE {
            return Err(bad("not a sealing-key Secret"));
        }
        let name = item["metadata"]["name"]
            .as_str()
            .filter(|name| !name.is_empty())
            .ok_or_else(|| bad("no name"))?
            .to_owned();
        let encoded = item["data"][IDENTITY_DATA_KEY]
            .as_str()
            .ok_or_else(|| bad("no identity"))?;
        let text = Zeroizing::new(
            BASE64_STANDARD
                .decode(encoded)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| bad("the identity is not base64 text"))?,
        );
        let identities = parse_identity_file(&text).map_err(|err| bad(&err.to_string()))?;
        let [identity] = identities.as_slice() else {
            return Err(bad("expected exactly one identity"));
        };
        let labels = &item["metadata"]["labels"];
        let state = if keep_states {
            labels[KEY_STATE_LABEL]
                .as_str()
                .and_then(|state| state.parse().ok())
                .ok_or_else(|| bad("no valid key state"))?
        } else {
            KeyState::DecryptOnly
        };
        let created = item["metadata"]["annotations"][KEY_CREATED_ANNOTATION]
            .as_str()
            .filter(|time| time.parse::<jiff::Timestamp>().is_ok())
            .map(str::to_owned);
        let key_id = identity.key_id();
        let recipient = identity.recipient().clone();
        let mut annotations = Map::new();
        annotations.insert(
            KEY_RECIPIENT_ANNOTATION.into(),
            recipient.to_string().into(),
        );
        if let Some(created) = &created {
            annotations.insert(KEY_CREATED_ANNOTATION.into(), created.clone().into());
        }
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": {
                    SEALING_KEY_LABEL: "true",
                    KEY_ID_LABEL: key_id.to_string(),
                    KEY_STATE_LABEL: state.as_str(),
                },
                "annotations": annotations,
            },
            "type": SEALING_KEY_SECRET_TYPE,
            "data": {IDENTITY_DATA_KEY: encoded},
        });
        keys.push(RestoredKey {
            name,
            key_id,
            recipient,
            created,
            state,
            secret,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_identity() {
        let recovery = Identity::generate();
        let secrets = vec![json!({
            "metadata": {"name": "kseal-key-1", "namespace": "kseal-system", "uid": "x",
                         "resourceVersion": "9", "labels": {SEALING_KEY_LABEL: "true"}},
            "type": "kseal.dev/sealing-key",
            "data": {"identity.txt": "QUdFLVNFQ1JFVC1LRVktMQ=="}
        })];
        let plaintext = bundle(&secrets);
        assert!(!plaintext.contains("resourceVersion"));
        let file = encrypt(&plaintext, &[recovery.recipient().clone()]).unwrap();
        assert!(!String::from_utf8_lossy(&file).contains("QUdFLVNFQ1JFVC1LRVktMQ"));
        let restored = decrypt(&file, &[recovery]).unwrap();
        assert_eq!(restored[0]["metadata"]["name"], "kseal-key-1");
        assert_eq!(
            restored[0]["data"]["identity.txt"],
            "QUdFLVNFQ1JFVC1LRVktMQ=="
        );
        assert!(matches!(
            decrypt(&file, &[Identity::generate()]),
            Err(BackupError::Decrypt)
        ));
    }

    #[test]
    fn restoring_trusts_only_the_identity() {
        use age::secrecy::ExposeSecret;
        let key = Identity::generate();
        let encoded = BASE64_STANDARD.encode(key.to_secret_string().expose_secret());
        // A forged bundle: claims another key id, an active state, extra
        // labels and annotations.
        let forged = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "kseal-key-x",
                         "labels": {SEALING_KEY_LABEL: "true", KEY_STATE_LABEL: "active",
                                    KEY_ID_LABEL: "0000000000000000", "evil": "yes"},
                         "annotations": {KEY_CREATED_ANNOTATION: "2999-01-01T00:00:00Z",
                                         KEY_RECIPIENT_ANNOTATION: "age1forged",
                                         "other": "x"}},
            "type": SEALING_KEY_SECRET_TYPE,
            "data": {IDENTITY_DATA_KEY: encoded},
        });
        let plan = restore_plan(std::slice::from_ref(&forged), false).unwrap();
        assert_eq!(plan[0].key_id, key.key_id());
        assert_eq!(plan[0].state, KeyState::DecryptOnly);
        let secret = plan[0].secret();
        assert_eq!(
            secret["metadata"]["labels"][KEY_STATE_LABEL],
            "decrypt-only"
        );
        assert_eq!(
            secret["metadata"]["labels"][KEY_ID_LABEL],
            key.key_id().to_string()
        );
        assert_eq!(
            secret["metadata"]["annotations"][KEY_RECIPIENT_ANNOTATION],
            key.recipient().to_string()
        );
        assert!(secret["metadata"]["labels"].get("evil").is_none());
        assert!(secret["metadata"]["annotations"].get("other").is_none());
        let kept = restore_plan(std::slice::from_ref(&forged), true).unwrap();
        assert_eq!(kept[0].state, KeyState::Active);

        let mut bad_state = forged.clone();
        bad_state["metadata"]["labels"][KEY_STATE_LABEL] = "ACTIVE".into();
        assert!(restore_plan(std::slice::from_ref(&bad_state), true).is_err());
        let mut other_type = forged.clone();
        other_type["type"] = "Opaque".into();
        assert!(restore_plan(&[other_type], false).is_err());
        let mut two = forged;
        let both = format!(
            "{}\n{}\n",
            key.to_secret_string().expose_secret(),
            Identity::generate().to_secret_string().expose_secret()
        );
        two["data"][IDENTITY_DATA_KEY] = BASE64_STANDARD.encode(both).into();
        let err = restore_plan(&[two], false).unwrap_err().to_string();
        assert!(err.contains("exactly one identity"), "{err}");
        assert!(!err.contains("AGE-SECRET-KEY"), "{err}");
    }
}
