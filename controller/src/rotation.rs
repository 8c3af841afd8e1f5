//! Whether a SealedSecret's values are due for rotation: values older than
//! its `spec.maxAge` (re-seal them from the plaintext), and values sealed
//! only to keys that are no longer active (re-wrap them: `kseal rewrap
//! --stale`). Reported as conditions apart from `Ready`, which stays about
//! whether the Secret is in sync, and as two gauges.
//!
//! Computed from the values' public fields (seal time, key ids): no
//! decryption, so it costs a parse per value.

use std::collections::HashSet;

use kseal_shared::envelope::SealedValue;
use kseal_shared::x25519::KeyId;

use crate::cached::CachedSealedSecret;
use crate::sealing_keys::KeySet;

/// Condition type: a value is older than `spec.maxAge`.
pub const ROTATION_DUE: &str = "RotationDue";
/// Condition type: a value is sealed only to keys no longer active.
pub const REWRAP_DUE: &str = "RewrapDue";

/// At most this many data keys are named in a condition message.
const NAMED: usize = 10;

/// One rotation condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// [`ROTATION_DUE`] or [`REWRAP_DUE`].
    pub type_: &'static str,
    /// Whether something is due (the condition's status is `True`).
    pub is_due: bool,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For people: which data keys, and what to do. Never a value.
    pub message: String,
}

impl Due {
    /// `True` or `False`.
    pub fn status(&self) -> &'static str {
        if self.is_due { "True" } else { "False" }
    }
}

/// The rotation conditions of one object: `RotationDue` when it sets
/// `spec.maxAge`; `RewrapDue` when the cluster has an active key.
pub fn conditions(sealed: &CachedSealedSecret, keys: &KeySet, now: jiff::Timestamp) -> Vec<Due> {
    let mut conditions = Vec::with_capacity(2);
    if let Some(max_age) = sealed.max_age {
        let overdue: Vec<String> = sealed
            .encrypted_data()
            .filter_map(|(key, value)| {
                let verdict = max_age.verdict(&SealedValue::parse(value).ok()?, now);
                verdict.is_due().then(|| format!("{key} ({verdict})"))
            })
            .collect();
        conditions.push(if overdue.is_empty() {
            Due {
                type_: ROTATION_DUE,
                is_due: false,
                reason: "ValuesFresh",
                message: format!("every value was sealed within {max_age}"),
            }
        } else {
            Due {
                type_: ROTATION_DUE,
                is_due: true,
                reason: "ValuesOverdue",
                message: format!(
                    "{} value(s) older than spec.maxAge {max_age}: {}; rotate them (a new value, sealed with kseal seal --merge-into)",
                    overdue.len(),
                    named(&overdue)
                ),
            }
        });
    }
    let active = active_key_ids(keys);
    if !active.is_empty() {
        let stale: Vec<String> = sealed
            .encrypted_data()
            .filter(|(_, value)| is_stale(value, &active))
            .map(|(key, _)| key.to_owned())
            .collect();
        conditions.push(if stale.is_empty() {
            Due {
                type_: REWRAP_DUE,
                is_due: false,
                reason: "SealedToActiveKey",
                message: "every value is sealed to an active key".to_owned(),
            }
        } else {
            Due {
                type_: REWRAP_DUE,
                is_due: true,
                reason: "SealedToInactiveKey",
                message: format!(
                    "{} value(s) sealed only to keys that are no longer active: {}; re-wrap them with kseal rewrap --stale",
                    stale.len(),
                    named(&stale)
                ),
            }
        });
    }
    conditions
}

/// The key ids the cluster seals to now.
pub fn active_key_ids(keys: &KeySet) -> HashSet<KeyId> {
    keys.sealing_recipients()
        .iter()
        .map(|recipient| recipient.key_id())
        .collect()
}

/// Whether a well-formed value names none of the active keys. A value that
/// does not parse is `Ready`'s business, not rotation's.
pub fn is_stale(value: &str, active: &HashSet<KeyId>) -> bool {
    SealedValue::parse(value)
        .is_ok_and(|value| !value.key_ids().iter().any(|id| active.contains(id)))
}

fn named(keys: &[String]) -> String {
    let mut text = keys
        .iter()
        .take(NAMED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > NAMED {
        text.push_str(&format!(" and {} more", keys.len() - NAMED));
    }
    text
}
