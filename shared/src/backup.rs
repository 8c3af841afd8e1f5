//! Key backups: every sealing key of a cluster, as the key Secrets
//! themselves, in one age-encrypted file for an offline recovery key.
//!
//! The plaintext bundle is a `v1` `List` of Secrets (name, labels,
//! annotations, type, data) so that restoring is creating them again. It
//! exists only in memory, in zeroizing buffers.

use std::io::{Read, Write};

use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use crate::contract::SEALING_KEY_LABEL;
use crate::x25519::{Identity, Recipient};

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
}
