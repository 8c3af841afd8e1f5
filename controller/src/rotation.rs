//! Whether a SealedSecret's values are due for rotation: values older than
//! its `spec.maxAge` (re-seal them from the plaintext), and values sealed
//! only to keys that are no longer active (re-wrap them: `kseal rewrap
//! --stale`). Reported as conditions apart from `Ready`, which stays about
//! whether the Secret is in sync, and as two gauges.
//!
//! Computed from the values' public fields (seal time, key ids): no
//! decryption, so it costs a parse per value.

use std::collections::HashSet;

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
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: &'static str,
    /// For people: which data keys, and what to do. Never a value.
    pub message: String,
    /// Whether turning into this state is worth one Warning event (due, or
    /// a max age that does not parse; not "unverified", which `Ready`
    /// already reports).
    pub warn: bool,
}

impl Due {
    fn new(
        type_: &'static str,
        status: &'static str,
        reason: &'static str,
        message: String,
    ) -> Self {
        Self {
            type_,
            status,
            reason,
            warn: status == "True" || reason == "InvalidMaxAge",
            message,
        }
    }

    /// The values did not all open: their seal times and key ids are only
    /// what the text says, which anyone who can commit can edit.
    fn unverified(type_: &'static str) -> Self {
        Self::new(
            type_,
            "Unknown",
            "ValuesNotVerified",
            "not every value opened (see Ready), so seal times and keys are not verified"
                .to_owned(),
        )
    }
}

/// The rotation conditions of one object: `RotationDue` when it sets
/// `spec.maxAge`; `RewrapDue` when the cluster has an active key. Seal times
/// and key ids count only when `unsealed` (every value opened, so the AEAD
/// and the header MAC vouched for them); otherwise the conditions are
/// `Unknown`.
pub fn conditions(
    sealed: &CachedSealedSecret,
    keys: &KeySet,
    now: jiff::Timestamp,
    unsealed: bool,
) -> Vec<Due> {
    let mut conditions = Vec::with_capacity(2);
    match &sealed.max_age {
        None => {}
        Some(Err(err)) => conditions.push(Due::new(
            ROTATION_DUE,
            "Unknown",
            "InvalidMaxAge",
            format!("spec.maxAge: {err}"),
        )),
        Some(Ok(_)) if !unsealed => conditions.push(Due::unverified(ROTATION_DUE)),
        Some(Ok(max_age)) => {
            let overdue: Vec<String> = sealed
                .value_facts()
                .filter_map(|value| {
                    let verdict = max_age.verdict_at(value.sealed_at?, now);
                    verdict
                        .is_due()
                        .then(|| format!("{} ({verdict})", value.key))
                })
                .collect();
            conditions.push(if overdue.is_empty() {
                Due::new(
                    ROTATION_DUE,
                    "False",
                    "ValuesFresh",
                    format!("every value was sealed within {max_age}"),
                )
            } else {
                Due::new(
                    ROTATION_DUE,
                    "True",
                    "ValuesOverdue",
                    format!(
                        "{} value(s) older than spec.maxAge {max_age}: {}; rotate them (a new value, sealed with kseal seal --merge-into)",
                        overdue.len(),
                        named(&overdue)
                    ),
                )
            });
        }
    }
    let active = active_key_ids(keys);
    if !active.is_empty() {
        if !unsealed {
            conditions.push(Due::unverified(REWRAP_DUE));
            return conditions;
        }
        let stale: Vec<String> = sealed
            .value_facts()
            .filter(|value| is_stale(value.key_ids, &active))
            .map(|value| value.key.to_owned())
            .collect();
        conditions.push(if stale.is_empty() {
            Due::new(
                REWRAP_DUE,
                "False",
                "SealedToActiveKey",
                "every value is sealed to an active key".to_owned(),
            )
        } else {
            Due::new(
                REWRAP_DUE,
                "True",
                "SealedToInactiveKey",
                format!(
                    "{} value(s) sealed only to keys that are no longer active: {}; re-wrap them with kseal rewrap --stale --online",
                    stale.len(),
                    named(&stale)
                ),
            )
        });
    }
    conditions
}

/// Whether the controller's last word on this generation is `Ready=True`:
/// every value opened, so what the gauges read from the values' text is
/// vouched for.
pub fn is_unsealed(sealed: &CachedSealedSecret) -> bool {
    sealed.status.as_ref().is_some_and(|status| {
        status.observed_generation == sealed.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == crate::reconcile::READY && c.status == "True")
    })
}

/// The key ids the cluster seals to now.
pub fn active_key_ids(keys: &KeySet) -> HashSet<KeyId> {
    keys.sealing_recipients()
        .iter()
        .map(|recipient| recipient.key_id())
        .collect()
}

/// Whether a well-formed value (its key ids) names none of the active
/// keys. A value that does not parse (`None`) is `Ready`'s business, not
/// rotation's.
pub fn is_stale(key_ids: Option<&[KeyId]>, active: &HashSet<KeyId>) -> bool {
    key_ids.is_some_and(|ids| !ids.iter().any(|id| active.contains(id)))
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kseal_shared::binding::{Binding, Scope};
    use kseal_shared::envelope::seal_at;
    use kseal_shared::rotation::MAX_AGE_PATTERN;
    use kseal_shared::sealed_secret::{SealedSecret, SealedSecretSpec};
    use kseal_shared::x25519::Identity;
    use kube::CustomResourceExt;

    use super::*;

    /// The API server must admit exactly the max ages the controller reads.
    #[test]
    fn the_crd_pattern_is_the_max_age_grammar() {
        let crd = serde_json::to_value(SealedSecret::crd()).unwrap();
        let pattern = crd
            .pointer(
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/maxAge/pattern",
            )
            .and_then(serde_json::Value::as_str);
        assert_eq!(pattern, Some(MAX_AGE_PATTERN));
    }

    fn object(max_age: &str, sealed_days_ago: u64, now: u64, id: &Identity) -> CachedSealedSecret {
        let binding = Binding::new(Scope::Strict, "app", "db", "k");
        let value = seal_at(
            b"v",
            &binding,
            std::slice::from_ref(id.recipient()),
            now - sealed_days_ago * 86_400,
        )
        .unwrap();
        let mut sealed = SealedSecret::new(
            "db",
            SealedSecretSpec {
                encrypted_data: [("k".to_owned(), value.encode())].into(),
                max_age: Some(max_age.to_owned()),
                ..SealedSecretSpec::default()
            },
        );
        sealed.metadata.namespace = Some("app".into());
        sealed.into()
    }

    #[test]
    fn conditions_trust_seal_times_only_once_the_values_opened() {
        let id = Identity::generate();
        let keys = KeySet::default();
        let now = 1_800_000_000;
        let at = jiff::Timestamp::from_second(now as i64).unwrap();
        let summary = |conditions: Vec<Due>| -> Vec<(&str, &str, bool)> {
            conditions
                .iter()
                .map(|c| (c.status, c.reason, c.warn))
                .collect()
        };
        // (max age, days old, every value opened) → RotationDue
        for (max_age, days, unsealed, expected) in [
            ("30d", 45, true, ("True", "ValuesOverdue", true)),
            ("30d", 10, true, ("False", "ValuesFresh", false)),
            ("30d", 45, false, ("Unknown", "ValuesNotVerified", false)),
            ("30d", 10, false, ("Unknown", "ValuesNotVerified", false)),
            // Not admitted by the CRD any more, but never a decode failure.
            ("0d", 10, true, ("Unknown", "InvalidMaxAge", true)),
            ("90 days", 10, true, ("Unknown", "InvalidMaxAge", true)),
        ] {
            let sealed = object(max_age, days, now, &id);
            assert_eq!(
                summary(conditions(&sealed, &keys, at, unsealed)),
                vec![expected],
                "{max_age} {days} {unsealed}"
            );
        }
    }
}
