//! The cluster's published public keys, checked before anything is sealed
//! to them.
//!
//! The controller publishes its keys in the ConfigMap
//! [`PUBLIC_KEYS_CONFIGMAP`](crate::contract::PUBLIC_KEYS_CONFIGMAP): an age
//! recipients file ([`RECIPIENTS_DATA_KEY`](crate::contract::RECIPIENTS_DATA_KEY))
//! and the list of every key with its state
//! ([`KEYS_DATA_KEY`](crate::contract::KEYS_DATA_KEY)). Only the controller
//! may write it, and it restores it when someone else does; but a CLI that
//! seals to whatever the file says would wrap every new value to a
//! recipient an attacker appended in the moment before that. So the CLI
//! (and the controller, to tell tampering from a key change) checks that the
//! two agree the way the controller writes them:
//!
//! * every key in `keys.json` has a well-formed `age1…` recipient, and its
//!   id is that recipient's key id ([`KeyId::of_recipient_str`]);
//! * `recipients.txt` names exactly one recipient, and it is a key that
//!   `keys.json` lists as active (the controller publishes its newest active
//!   key only; two may be active for a moment during a rotation);
//! * no key id appears twice.
//!
//! An attacker who can rewrite both consistently can write the ConfigMap at
//! all, which the chart grants the controller alone; docs/security.md says
//! who that leaves.

use std::collections::BTreeSet;

use crate::contract::{KeyState, PublishedKey};
use crate::x25519::{KeyId, Recipient, parse_recipients_file};

/// Why the published keys cannot be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PublishedKeysError {
    /// `recipients.txt` names no recipient: the cluster has no active key.
    #[error("the cluster publishes no key to seal to (it has no active sealing key)")]
    NoActiveKey,
    /// `recipients.txt` does not parse.
    #[error("the published recipients file is not valid: {0}")]
    Recipients(String),
    /// `keys.json` does not parse.
    #[error("the published key list is not valid JSON: {0}")]
    KeyList(String),
    /// A key whose id is not its recipient's, or whose recipient is invalid.
    #[error("the published key list names key {id} with a recipient that is not that key's")]
    KeyMismatch {
        /// The key id as listed.
        id: String,
    },
    /// The same key id twice.
    #[error("the published key list names key {id} twice")]
    Duplicate {
        /// The key id.
        id: String,
    },
    /// More than one recipient to seal to.
    #[error("the published recipients file names {count} recipients; the controller publishes one")]
    TooManyRecipients {
        /// How many.
        count: usize,
    },
    /// A recipient that is not an active key of the list.
    #[error(
        "the published recipients file names key {id}, which the key list does not give as active"
    )]
    NotActive {
        /// Its key id.
        id: String,
    },
}

/// The published keys, checked: the recipient to seal to and every key.
#[derive(Debug, Clone)]
pub struct PublishedKeys {
    /// What to seal to: the active key (exactly one).
    pub recipient: Recipient,
    /// Every key the cluster holds, with its state, newest first.
    pub keys: Vec<PublishedKey>,
}

/// Checks `recipients.txt` against `keys.json` (see the module
/// documentation for the rules).
pub fn check(recipients_txt: &str, keys_json: &str) -> Result<PublishedKeys, PublishedKeysError> {
    let keys: Vec<PublishedKey> = serde_json::from_str(keys_json)
        .map_err(|err| PublishedKeysError::KeyList(err.to_string()))?;
    let mut seen = BTreeSet::new();
    let mut active = BTreeSet::new();
    for key in &keys {
        let parsed: Option<Recipient> = key.recipient.parse().ok();
        let matches = parsed.as_ref().is_some_and(|recipient| {
            key.id.parse::<KeyId>().ok() == Some(recipient.key_id())
                && recipient.to_string() == key.recipient
        });
        if !matches {
            return Err(PublishedKeysError::KeyMismatch { id: key.id.clone() });
        }
        if !seen.insert(key.id.clone()) {
            return Err(PublishedKeysError::Duplicate { id: key.id.clone() });
        }
        if key.state == KeyState::Active {
            active.insert(key.id.clone());
        }
    }
    let recipients = match parse_recipients_file(recipients_txt) {
        Ok(recipients) => recipients,
        Err(crate::x25519::KeyError::NoRecipients) => {
            return Err(PublishedKeysError::NoActiveKey);
        }
        Err(err) => return Err(PublishedKeysError::Recipients(err.to_string())),
    };
    let [recipient] = <[Recipient; 1]>::try_from(recipients).map_err(|recipients| {
        PublishedKeysError::TooManyRecipients {
            count: recipients.len(),
        }
    })?;
    let id = recipient.key_id().to_string();
    if !active.contains(&id) {
        return Err(PublishedKeysError::NotActive { id });
    }
    Ok(PublishedKeys { recipient, keys })
}

/// The key ids of the held-key-ids annotation
/// ([`HELD_KEYS_ANNOTATION`](crate::contract::HELD_KEYS_ANNOTATION) on the
/// published ConfigMap): every key the cluster has held, deleted keys
/// included, which `keys.json` no longer lists. Comma-separated; what is
/// not a key id is skipped (the controller skips it too).
pub fn held_key_ids(annotation: &str) -> Vec<KeyId> {
    let mut ids: Vec<KeyId> = Vec::new();
    for id in annotation
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
    {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::x25519::Identity;

    fn key(identity: &Identity, state: KeyState) -> PublishedKey {
        PublishedKey {
            id: identity.key_id().to_string(),
            recipient: identity.recipient().to_string(),
            created: "2026-12-01T00:00:00Z".into(),
            state,
        }
    }

    fn json(keys: &[PublishedKey]) -> String {
        serde_json::to_string(keys).unwrap()
    }

    fn file(recipients: &[&Identity]) -> String {
        let mut text = String::from("# kseal: public keys\n");
        for identity in recipients {
            text.push_str(&format!("{}\n", identity.recipient()));
        }
        text
    }

    #[test]
    fn what_the_controller_publishes_passes() {
        let (old, new) = (Identity::generate(), Identity::generate());
        let keys = [
            key(&new, KeyState::Active),
            key(&old, KeyState::DecryptOnly),
        ];
        let published = check(&file(&[&new]), &json(&keys)).unwrap();
        assert_eq!(published.recipient, *new.recipient());
        assert_eq!(published.keys.len(), 2);
        // Mid-rotation, two keys are active for a moment.
        let keys = [key(&new, KeyState::Active), key(&old, KeyState::Active)];
        assert!(check(&file(&[&old]), &json(&keys)).is_ok());
    }

    #[test]
    fn an_appended_recipient_is_refused() {
        let (cluster, attacker) = (Identity::generate(), Identity::generate());
        let keys = json(&[key(&cluster, KeyState::Active)]);
        assert_eq!(
            check(&file(&[&cluster, &attacker]), &keys).unwrap_err(),
            PublishedKeysError::TooManyRecipients { count: 2 }
        );
        // Replaced instead of appended.
        assert_eq!(
            check(&file(&[&attacker]), &keys).unwrap_err(),
            PublishedKeysError::NotActive {
                id: attacker.key_id().to_string()
            }
        );
    }

    #[test]
    fn a_recipient_listed_as_inactive_or_not_listed_is_refused() {
        let (active, old) = (Identity::generate(), Identity::generate());
        let keys = json(&[
            key(&active, KeyState::Active),
            key(&old, KeyState::DecryptOnly),
        ]);
        assert!(matches!(
            check(&file(&[&old]), &keys),
            Err(PublishedKeysError::NotActive { .. })
        ));
        let retired = json(&[key(&old, KeyState::Retired)]);
        assert!(matches!(
            check(&file(&[&old]), &retired),
            Err(PublishedKeysError::NotActive { .. })
        ));
    }

    #[test]
    fn a_key_list_entry_whose_id_is_not_its_recipients_is_refused() {
        let (cluster, attacker) = (Identity::generate(), Identity::generate());
        // The attacker's recipient under the cluster key's id.
        let mut forged = key(&attacker, KeyState::Active);
        forged.id = cluster.key_id().to_string();
        assert!(matches!(
            check(&file(&[&attacker]), &json(&[forged])),
            Err(PublishedKeysError::KeyMismatch { .. })
        ));
        let mut invalid = key(&cluster, KeyState::Active);
        invalid.recipient = "age1notarecipient".into();
        assert!(matches!(
            check(&file(&[&cluster]), &json(&[invalid])),
            Err(PublishedKeysError::KeyMismatch { .. })
        ));
        let twice = json(&[
            key(&cluster, KeyState::Active),
            key(&cluster, KeyState::DecryptOnly),
        ]);
        assert!(matches!(
            check(&file(&[&cluster]), &twice),
            Err(PublishedKeysError::Duplicate { .. })
        ));
    }

    #[test]
    fn held_key_ids_are_the_annotations_key_ids() {
        let (a, b) = (Identity::generate(), Identity::generate());
        let annotation = format!(
            "{}, {},{},not-an-id,,{}",
            a.key_id(),
            b.key_id(),
            a.key_id(),
            "0123456789ABCDEF"
        );
        assert_eq!(held_key_ids(&annotation), vec![a.key_id(), b.key_id()]);
        assert!(held_key_ids("").is_empty());
    }

    #[test]
    fn no_key_and_bad_files_are_errors() {
        let cluster = Identity::generate();
        assert_eq!(
            check(&file(&[]), "[]").unwrap_err(),
            PublishedKeysError::NoActiveKey
        );
        assert!(matches!(
            check(&file(&[&cluster]), "not json"),
            Err(PublishedKeysError::KeyList(_))
        ));
        assert!(matches!(
            check(
                "age1notarecipient\n",
                &json(&[key(&cluster, KeyState::Active)])
            ),
            Err(PublishedKeysError::Recipients(_))
        ));
    }
}
