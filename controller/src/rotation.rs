//! Whether a SealedSecret's values are due for rotation: values older than
//! its `spec.maxAge` (re-seal them from the plaintext), and values sealed
//! only to keys that are no longer active (re-wrap them: `kseal rewrap
//! --stale`). Reported as conditions apart from `Ready`, which stays about
//! whether the Secret is in sync, and as gauges.
//!
//! A key stops being active when a newer one replaces it (a renewal, or
//! `kseal keys rotate`), and repositories that pin the cluster's public key
//! keep sealing to it until they refresh the pin. So a value sealed only to
//! keys no longer active is due for a re-wrap only once the newest of them
//! has been replaced for longer than the grace period
//! (`--rewrap-grace-period`); until then `RewrapDue` is `False` with reason
//! `WithinGracePeriod` and a message naming the key and the deadline.
//!
//! Computed from the values' public fields (seal time, key ids) and the key
//! set's creation times: no decryption, so it costs a parse per value.

use std::collections::HashSet;
use std::time::Duration;

use kseal_shared::x25519::KeyId;

use crate::cached::CachedSealedSecret;
use crate::conditions::{
    READY, REWRAP_DUE, ROTATION_DUE, SEALED_TO_INACTIVE_KEY, WITHIN_GRACE_PERIOD,
};
use crate::sealing_keys::KeySet;
use kseal_shared::contract::KeyState;

/// At most this many data keys are named in a condition message.
const NAMED: usize = 10;

/// One rotation condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
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
    /// When this condition changes by itself, with no change to the object
    /// or the keys: the earliest end of a grace period. The reconciler looks
    /// at the object again then (if that is sooner than its resync).
    pub recheck_at: Option<jiff::Timestamp>,
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
            recheck_at: None,
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
/// `spec.maxAge`; `RewrapDue` when the cluster has an active key, a value
/// sealed only to keys no longer active counting as due once `grace` has
/// passed since the newest of them was replaced. Seal times and key ids
/// count only when `unsealed` (every value opened, so the AEAD and the
/// header MAC vouched for them); otherwise the conditions are `Unknown`.
pub(crate) fn conditions(
    sealed: &CachedSealedSecret,
    keys: &KeySet,
    grace: Duration,
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
    let ages = KeyAges::new(keys);
    if ages.has_active() {
        if !unsealed {
            conditions.push(Due::unverified(REWRAP_DUE));
            return conditions;
        }
        let verdicts: Vec<(&str, Rewrap)> = sealed
            .value_facts()
            .map(|value| (value.key, ages.verdict(value.key_ids, grace, now)))
            .collect();
        conditions.push(rewrap_condition(&verdicts, grace));
    }
    conditions
}

/// `RewrapDue` from each value's verdict (data key, verdict).
fn rewrap_condition(verdicts: &[(&str, Rewrap)], grace: Duration) -> Due {
    let due: Vec<(&str, Rewrap)> = verdicts
        .iter()
        .filter(|(_, verdict)| matches!(verdict, Rewrap::Due { .. }))
        .copied()
        .collect();
    let waiting: Vec<(&str, Rewrap)> = verdicts
        .iter()
        .filter(|(_, verdict)| matches!(verdict, Rewrap::WithinGrace { .. }))
        .copied()
        .collect();
    let recheck_at = waiting
        .iter()
        .filter_map(|(_, verdict)| verdict.deadline())
        .min();
    let mut condition = if !due.is_empty() {
        let mut message = format!(
            "{} value(s) sealed only to keys that are no longer active: {}; re-wrap them with kseal rewrap --stale --online. {}",
            due.len(),
            data_keys(&due),
            past_grace(&due, grace),
        );
        if !waiting.is_empty() {
            message.push_str(&format!(
                " {} more value(s) are within the {} grace period: {}; {}.",
                waiting.len(),
                format_duration(grace),
                data_keys(&waiting),
                deadlines(&waiting),
            ));
        }
        Due::new(REWRAP_DUE, "True", SEALED_TO_INACTIVE_KEY, message)
    } else if let Some(deadline) = recheck_at {
        Due::new(
            REWRAP_DUE,
            "False",
            WITHIN_GRACE_PERIOD,
            format!(
                "{} value(s) sealed only to keys that are no longer active, within the {} grace period after the key was replaced: {}; {}. Refresh the pinned public key and re-wrap them with kseal rewrap --stale --online before {deadline}, when RewrapDue turns True.",
                waiting.len(),
                format_duration(grace),
                data_keys(&waiting),
                deadlines(&waiting),
            ),
        )
    } else {
        Due::new(
            REWRAP_DUE,
            "False",
            "SealedToActiveKey",
            "every value is sealed to an active key".to_owned(),
        )
    };
    condition.recheck_at = recheck_at;
    condition
}

/// The data keys of these values, a few of them named.
fn data_keys(values: &[(&str, Rewrap)]) -> String {
    let keys: Vec<String> = values.iter().map(|(key, _)| (*key).to_owned()).collect();
    named(&keys)
}

/// Each distinct sealing key of these values (the newest each is sealed
/// to), in the key set's order, with `describe`d facts.
fn by_sealing_key(values: &[(&str, Rewrap)], describe: impl Fn(&Rewrap) -> String) -> Vec<String> {
    let mut seen: Vec<Option<KeyId>> = Vec::new();
    let mut out = Vec::new();
    for (_, verdict) in values {
        let key = verdict.key();
        if !seen.contains(&key) {
            seen.push(key);
            out.push(describe(verdict));
        }
    }
    out
}

/// For values within the grace period: their keys, when each was
/// replaced, and the deadlines.
fn deadlines(values: &[(&str, Rewrap)]) -> String {
    let keys = by_sealing_key(values, |verdict| match verdict {
        Rewrap::WithinGrace {
            key,
            since,
            deadline,
        } => format!(
            "key {key} (replaced at {}, due at {deadline})",
            to_the_second(*since)
        ),
        _ => String::new(),
    });
    format!("they are sealed to {}", named(&keys))
}

/// For values past the grace period: their keys, and when it ended.
fn past_grace(values: &[(&str, Rewrap)], grace: Duration) -> String {
    let keys = by_sealing_key(values, |verdict| match verdict {
        Rewrap::Due {
            key: Some(key),
            deadline: Some(deadline),
        } => format!(
            "key {key} (the {} grace period ended at {deadline})",
            format_duration(grace)
        ),
        Rewrap::Due {
            key: Some(key),
            deadline: None,
        } if grace.is_zero() => format!("key {key} (replaced; no grace period is set)"),
        Rewrap::Due {
            key: Some(key),
            deadline: None,
        } => format!("key {key} (no grace period: when it was replaced is not known)"),
        _ => "keys that no longer decrypt or that this cluster never held".to_owned(),
    });
    format!("They are sealed to {}.", named(&keys))
}

/// Whether a value is due for a re-wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rewrap {
    /// It names an active key (or is not well-formed, or the cluster has
    /// no active key): nothing to do.
    Current,
    /// Sealed only to keys no longer active, the newest of which, `key`,
    /// was replaced at `since`: due at `deadline`, the end of the grace
    /// period.
    WithinGrace {
        key: KeyId,
        since: jiff::Timestamp,
        deadline: jiff::Timestamp,
    },
    /// Sealed only to keys no longer active, and due: the grace period
    /// (after `key`, the newest of them, was replaced) ended at `deadline`;
    /// no deadline when there is no grace period (zero, or not known when
    /// the key was replaced). No key when it names no key that still
    /// decrypts (such a value does not open: see `Ready`).
    Due {
        key: Option<KeyId>,
        deadline: Option<jiff::Timestamp>,
    },
}

impl Rewrap {
    /// Whether the value is due now (what `kseal_values_sealed_to_inactive_key` counts).
    #[cfg(test)]
    pub(crate) fn is_due(&self) -> bool {
        matches!(self, Rewrap::Due { .. })
    }

    fn key(&self) -> Option<KeyId> {
        match self {
            Rewrap::Current => None,
            Rewrap::WithinGrace { key, .. } => Some(*key),
            Rewrap::Due { key, .. } => *key,
        }
    }

    fn deadline(&self) -> Option<jiff::Timestamp> {
        match self {
            Rewrap::Current => None,
            Rewrap::WithinGrace { deadline, .. } => Some(*deadline),
            Rewrap::Due { deadline, .. } => *deadline,
        }
    }
}

/// The cluster's keys as re-wrapping sees them: the active ones, and since
/// when each key that still decrypts but no longer seals has been inactive
/// (the creation time of the next newer key, which replaced it). Built once
/// per key set snapshot; cheap (one entry per key Secret).
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyAges {
    active: HashSet<KeyId>,
    /// Keys that decrypt but do not seal, newest first (the key set's
    /// order).
    inactive: Vec<(KeyId, Option<jiff::Timestamp>)>,
}

impl KeyAges {
    pub(crate) fn new(keys: &KeySet) -> Self {
        let active = active_key_ids(keys);
        let mut inactive = Vec::new();
        for (index, key) in keys.keys.iter().enumerate() {
            // An older key still labelled active (for the moment between
            // a rotation and its demotion) no longer seals either.
            let Ok(id) = key.id.parse::<KeyId>() else {
                continue;
            };
            if key.state == KeyState::Retired || active.contains(&id) {
                continue;
            }
            // `keys` is newest first: the key before this one replaced it.
            // None when this is the newest key (it was never replaced, but
            // made inactive by hand) or that key's time does not parse.
            let since = index
                .checked_sub(1)
                .and_then(|newer| keys.keys.get(newer))
                .and_then(|newer| newer.created.parse::<jiff::Timestamp>().ok());
            inactive.push((id, since));
        }
        Self { active, inactive }
    }

    /// Whether the cluster has an active key (else nothing is stale).
    pub(crate) fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// Whether a value with these key ids (`None`: it does not parse, which
    /// is `Ready`'s business) is due for a re-wrap at `now`, with a grace
    /// period of `grace` after its newest key was replaced. The decision
    /// itself; [`conditions`] and the gauges both use it.
    pub(crate) fn verdict(
        &self,
        key_ids: Option<&[KeyId]>,
        grace: Duration,
        now: jiff::Timestamp,
    ) -> Rewrap {
        let Some(ids) = key_ids else {
            return Rewrap::Current;
        };
        if self.active.is_empty() || !is_stale(Some(ids), &self.active) {
            return Rewrap::Current;
        }
        // The newest key of the value that still decrypts. Retired keys
        // and keys the cluster never held do not count: they open nothing.
        let Some((key, since)) = self.inactive.iter().find(|(id, _)| ids.contains(id)) else {
            return Rewrap::Due {
                key: None,
                deadline: None,
            };
        };
        let key = *key;
        let since = match since {
            Some(since) if !grace.is_zero() => *since,
            _ => {
                return Rewrap::Due {
                    key: Some(key),
                    deadline: None,
                };
            }
        };
        let deadline = grace_deadline(since, grace);
        if now < deadline {
            Rewrap::WithinGrace {
                key,
                since,
                deadline,
            }
        } else {
            Rewrap::Due {
                key: Some(key),
                deadline: Some(deadline),
            }
        }
    }
}

/// The end of a grace period that starts at `since`, rounded up to a whole
/// second (the messages show it to the second; the condition turns at the
/// time they show). Saturates at the end of time.
pub(crate) fn grace_deadline(since: jiff::Timestamp, grace: Duration) -> jiff::Timestamp {
    let end = jiff::SignedDuration::try_from(grace)
        .ok()
        .and_then(|grace| since.checked_add(grace).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    end.round(
        jiff::TimestampRound::new()
            .smallest(jiff::Unit::Second)
            .mode(jiff::RoundMode::Ceil),
    )
    .unwrap_or(end)
}

/// How long from `now` until a condition that changes by itself at `at`
/// should be looked at again: a second after it (the condition has turned
/// by then whatever the timer's rounding), at least a second from now.
pub(crate) fn recheck_after(at: jiff::Timestamp, now: jiff::Timestamp) -> Option<Duration> {
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    wait.checked_add(Duration::from_secs(1))
}

/// A time shown to the second (key creation times carry nanoseconds).
fn to_the_second(time: jiff::Timestamp) -> jiff::Timestamp {
    time.round(
        jiff::TimestampRound::new()
            .smallest(jiff::Unit::Second)
            .mode(jiff::RoundMode::Trunc),
    )
    .unwrap_or(time)
}

/// A duration as the flags take it, in its largest whole unit: `14d`,
/// `36h`, `90m`, `45s` (else humantime's form, e.g. `1s 500ms`).
pub(crate) fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs();
    if duration.is_zero() {
        return "0".to_owned();
    }
    if duration.subsec_nanos() != 0 {
        return humantime::format_duration(duration).to_string();
    }
    for (unit, length) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds.is_multiple_of(length) {
            return format!("{}{unit}", seconds / length);
        }
    }
    format!("{seconds}s")
}

/// Whether the controller's last word on this generation is `Ready=True`:
/// every value opened, so what the gauges read from the values' text is
/// vouched for.
pub(crate) fn is_unsealed(sealed: &CachedSealedSecret) -> bool {
    sealed.status.as_ref().is_some_and(|status| {
        status.observed_generation == sealed.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == READY && c.status == "True")
    })
}

/// The key ids the cluster seals to now.
pub(crate) fn active_key_ids(keys: &KeySet) -> HashSet<KeyId> {
    keys.sealing_recipients()
        .iter()
        .map(|recipient| recipient.key_id())
        .collect()
}

/// Whether a well-formed value (its key ids) names none of the active
/// keys. A value that does not parse (`None`) is `Ready`'s business, not
/// rotation's.
pub(crate) fn is_stale(key_ids: Option<&[KeyId]>, active: &HashSet<KeyId>) -> bool {
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

    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use kseal_shared::age::secrecy::ExposeSecret;
    use kseal_shared::contract::{
        IDENTITY_DATA_KEY, KEY_CREATED_ANNOTATION, KEY_STATE_LABEL, SEALING_KEY_SECRET_TYPE,
    };

    use super::*;

    /// The API server must admit exactly the max ages the controller reads.
    #[test]
    fn the_crd_pattern_is_the_max_age_grammar() {
        let crd = serde_json::to_value(kseal_shared::sealed_secret::custom_resource_definition())
            .unwrap();
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

    fn key_secret(identity: &Identity, state: KeyState, created: &str) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some(format!("kseal-key-{}", identity.key_id()));
        secret.metadata.labels = Some(BTreeMap::from([(
            KEY_STATE_LABEL.to_owned(),
            state.as_str().to_owned(),
        )]));
        secret.metadata.annotations = Some(BTreeMap::from([(
            KEY_CREATED_ANNOTATION.to_owned(),
            created.to_owned(),
        )]));
        secret.type_ = Some(SEALING_KEY_SECRET_TYPE.to_owned());
        let file = identity.to_keygen_file(created);
        secret.data = Some(BTreeMap::from([(
            IDENTITY_DATA_KEY.to_owned(),
            ByteString(file.expose_secret().as_bytes().to_vec()),
        )]));
        secret
    }

    fn time(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    /// Four keys, renewed every 30 days (creation times with nanoseconds,
    /// as the controller writes them): `k1` made 2025-01-01, replaced by
    /// `k2` on 2025-01-31, replaced by `k3` (active) on 2025-03-02; `old`,
    /// the oldest, retired.
    struct Keys {
        set: KeySet,
        old: Identity,
        k1: Identity,
        k2: Identity,
        k3: Identity,
    }

    const K2_MADE: &str = "2025-01-31T00:00:00.123456789Z";
    const K3_MADE: &str = "2025-03-02T12:30:00.987654321Z";

    fn keys() -> Keys {
        let [old, k1, k2, k3] = [(); 4].map(|()| Identity::generate());
        let set = KeySet::from_secrets(&[
            key_secret(&k1, KeyState::DecryptOnly, "2025-01-01T00:00:00.5Z"),
            key_secret(&k3, KeyState::Active, K3_MADE),
            key_secret(&old, KeyState::Retired, "2024-12-01T00:00:00Z"),
            key_secret(&k2, KeyState::DecryptOnly, K2_MADE),
        ]);
        assert_eq!(set.keys.len(), 4, "{:?}", set.problems);
        Keys {
            set,
            old,
            k1,
            k2,
            k3,
        }
    }

    #[test]
    fn a_value_sealed_to_an_inactive_key_is_due_once_the_grace_period_after_its_newest_key_ends() {
        let Keys {
            set,
            old,
            k1,
            k2,
            k3,
        } = keys();
        let ages = KeyAges::new(&set);
        let grace = 14 * DAY;
        let verdict = |ids: &[&Identity], now: jiff::Timestamp| {
            let ids: Vec<KeyId> = ids.iter().map(|id| id.key_id()).collect();
            ages.verdict(Some(&ids), grace, now)
        };
        // k2 stopped being active when k3 was made; its grace period ends
        // 14 days later, rounded up to the second.
        let k2_deadline = time("2025-03-16T12:30:01Z");
        assert_eq!(grace_deadline(time(K3_MADE), grace), k2_deadline);
        let within = Rewrap::WithinGrace {
            key: k2.key_id(),
            since: time(K3_MADE),
            deadline: k2_deadline,
        };
        let due_k2 = Rewrap::Due {
            key: Some(k2.key_id()),
            deadline: Some(k2_deadline),
        };
        let just_before = k2_deadline - jiff::SignedDuration::from_nanos(1);
        let moments = [
            time(K3_MADE),
            time("2025-03-03T00:00:00Z"),
            just_before,
            k2_deadline,
            k2_deadline + jiff::SignedDuration::from_secs(1),
        ];
        for (now, expected) in moments
            .into_iter()
            .zip([within, within, within, due_k2, due_k2])
        {
            assert_eq!(verdict(&[&k2], now), expected, "{now}");
        }
        // The newest of a value's keys counts: sealed to k1 (whose grace
        // ended on 2025-02-14) and to k2, it waits for k2's.
        let now = time("2025-03-10T00:00:00Z");
        assert_eq!(verdict(&[&k1, &k2], now), within);
        assert_eq!(verdict(&[&k2, &k1], now), within);
        assert_eq!(
            verdict(&[&k1], now),
            Rewrap::Due {
                key: Some(k1.key_id()),
                deadline: Some(time("2025-02-14T00:00:01Z")),
            }
        );
        assert_eq!(
            verdict(&[&k1], time("2025-02-14T00:00:00.123456788Z")),
            Rewrap::WithinGrace {
                key: k1.key_id(),
                since: time(K2_MADE),
                deadline: time("2025-02-14T00:00:01Z"),
            }
        );
        // Sealed to the active key (with others or not): current.
        assert_eq!(verdict(&[&k3], now), Rewrap::Current);
        assert_eq!(verdict(&[&k1, &k3], now), Rewrap::Current);
        // A retired key, or one the cluster never held, has no grace of its
        // own (such a value opens only with another key, or not at all).
        let stranger = Identity::generate();
        assert_eq!(verdict(&[&old, &k2], now), within);
        assert_eq!(verdict(&[&stranger, &k2], now), within);
        let nothing_held = Rewrap::Due {
            key: None,
            deadline: None,
        };
        assert_eq!(verdict(&[&old], now), nothing_held);
        assert_eq!(verdict(&[&stranger], now), nothing_held);
        // No grace period: due at once, as before the grace period existed.
        let ids = [k2.key_id()];
        assert_eq!(
            ages.verdict(Some(&ids), Duration::ZERO, time(K3_MADE)),
            Rewrap::Due {
                key: Some(k2.key_id()),
                deadline: None,
            }
        );
        // Not well-formed: Ready's business.
        assert_eq!(ages.verdict(None, grace, now), Rewrap::Current);
        assert!(due_k2.is_due() && !within.is_due() && !Rewrap::Current.is_due());
    }

    /// Between a rotation and the demotion of the previous key, both are
    /// labelled active; only the newest seals, and the other's grace
    /// period has begun.
    #[test]
    fn an_older_key_still_labelled_active_is_within_its_grace_period() {
        let [previous, new] = [(); 2].map(|()| Identity::generate());
        let set = KeySet::from_secrets(&[
            key_secret(&previous, KeyState::Active, "2025-01-01T00:00:00Z"),
            key_secret(&new, KeyState::Active, K3_MADE),
        ]);
        let ids = [previous.key_id()];
        assert_eq!(
            KeyAges::new(&set).verdict(Some(&ids), 14 * DAY, time(K3_MADE)),
            Rewrap::WithinGrace {
                key: previous.key_id(),
                since: time(K3_MADE),
                deadline: time("2025-03-16T12:30:01Z"),
            }
        );
    }

    #[test]
    fn without_a_replacement_or_an_active_key_there_is_no_grace() {
        let [newest, active] = [(); 2].map(|()| Identity::generate());
        // The newest key made decrypt-only by hand: nothing replaced it, so
        // there is no time to count the grace period from.
        let set = KeySet::from_secrets(&[
            key_secret(&newest, KeyState::DecryptOnly, "2025-02-01T00:00:00Z"),
            key_secret(&active, KeyState::Active, "2025-01-01T00:00:00Z"),
        ]);
        let ids = [newest.key_id()];
        assert_eq!(
            KeyAges::new(&set).verdict(Some(&ids), 14 * DAY, time("2025-02-02T00:00:00Z")),
            Rewrap::Due {
                key: Some(newest.key_id()),
                deadline: None,
            }
        );
        // No active key: nothing is stale.
        let set = KeySet::from_secrets(&[key_secret(
            &newest,
            KeyState::DecryptOnly,
            "2025-02-01T00:00:00Z",
        )]);
        let ages = KeyAges::new(&set);
        assert!(!ages.has_active());
        assert_eq!(
            ages.verdict(Some(&ids), 14 * DAY, time("2025-02-02T00:00:00Z")),
            Rewrap::Current
        );
    }

    /// An object in app/db with one value per (data key, recipients).
    fn sealed_to(values: &[(&str, &[&Identity])]) -> CachedSealedSecret {
        let encrypted_data = values
            .iter()
            .map(|(key, ids)| {
                let binding = Binding::new(Scope::Strict, "app", "db", key);
                let recipients: Vec<_> = ids.iter().map(|id| id.recipient().clone()).collect();
                let value = seal_at(b"v", &binding, &recipients, 1_735_689_600).unwrap();
                ((*key).to_owned(), value.encode())
            })
            .collect();
        let mut sealed = SealedSecret::new(
            "db",
            SealedSecretSpec {
                encrypted_data,
                ..SealedSecretSpec::default()
            },
        );
        sealed.metadata.namespace = Some("app".into());
        sealed.into()
    }

    #[test]
    fn rewrap_due_waits_for_the_grace_period_and_says_until_when() {
        let Keys {
            set, k1, k2, k3, ..
        } = keys();
        let grace = 14 * DAY;
        let rewrap = |sealed: &CachedSealedSecret, grace: Duration, now: &str| -> Due {
            let mut all = conditions(sealed, &set, grace, time(now), true);
            assert_eq!(all.len(), 1);
            all.remove(0)
        };
        let (k1_id, k2_id) = (k1.key_id().to_string(), k2.key_id().to_string());

        // Sealed from a pin of k2 the day after k3 replaced it.
        let pinned = sealed_to(&[("password", &[&k2]), ("user", &[&k2]), ("url", &[&k3])]);
        let within = rewrap(&pinned, grace, "2025-03-03T00:00:00Z");
        assert_eq!(
            (within.status, within.reason, within.warn),
            ("False", WITHIN_GRACE_PERIOD, false)
        );
        assert_eq!(within.recheck_at, Some(time("2025-03-16T12:30:01Z")));
        assert_eq!(
            within.message,
            format!(
                "2 value(s) sealed only to keys that are no longer active, within the 14d grace period after the key was replaced: password, user; they are sealed to key {k2_id} (replaced at 2025-03-02T12:30:00Z, due at 2025-03-16T12:30:01Z). Refresh the pinned public key and re-wrap them with kseal rewrap --stale --online before 2025-03-16T12:30:01Z, when RewrapDue turns True."
            )
        );
        // The same, a second before and at the deadline.
        let before = rewrap(&pinned, grace, "2025-03-16T12:30:00Z");
        assert_eq!(before, within);
        let due = rewrap(&pinned, grace, "2025-03-16T12:30:01Z");
        assert_eq!(
            (due.status, due.reason, due.warn, due.recheck_at),
            ("True", SEALED_TO_INACTIVE_KEY, true, None)
        );
        assert_eq!(
            due.message,
            format!(
                "2 value(s) sealed only to keys that are no longer active: password, user; re-wrap them with kseal rewrap --stale --online. They are sealed to key {k2_id} (the 14d grace period ended at 2025-03-16T12:30:01Z)."
            )
        );
        // No grace period: due at once.
        let at_once = rewrap(&pinned, Duration::ZERO, K3_MADE);
        assert_eq!(
            (
                at_once.status,
                at_once.reason,
                at_once.warn,
                at_once.recheck_at
            ),
            ("True", SEALED_TO_INACTIVE_KEY, true, None)
        );
        assert!(
            at_once.message.ends_with(&format!(
                "They are sealed to key {k2_id} (replaced; no grace period is set)."
            )),
            "{}",
            at_once.message
        );

        // One value past its grace period (k1), one within (k2): due, and
        // the reconciler looks again when k2's grace period ends.
        let mixed = sealed_to(&[("a", &[&k1]), ("b", &[&k1, &k2]), ("c", &[&k3])]);
        let due = rewrap(&mixed, grace, "2025-03-03T00:00:00Z");
        assert_eq!(
            (due.status, due.reason, due.warn),
            ("True", SEALED_TO_INACTIVE_KEY, true)
        );
        assert_eq!(due.recheck_at, Some(time("2025-03-16T12:30:01Z")));
        assert_eq!(
            due.message,
            format!(
                "1 value(s) sealed only to keys that are no longer active: a; re-wrap them with kseal rewrap --stale --online. They are sealed to key {k1_id} (the 14d grace period ended at 2025-02-14T00:00:01Z). 1 more value(s) are within the 14d grace period: b; they are sealed to key {k2_id} (replaced at 2025-03-02T12:30:00Z, due at 2025-03-16T12:30:01Z)."
            )
        );
        // Every value sealed to the active key.
        let current = rewrap(&sealed_to(&[("a", &[&k3])]), grace, "2025-03-03T00:00:00Z");
        assert_eq!(
            (
                current.status,
                current.reason,
                current.warn,
                current.recheck_at
            ),
            ("False", "SealedToActiveKey", false, None)
        );
        // Values that did not all open: unknown, whatever the grace.
        let unverified = conditions(&pinned, &set, grace, time("2025-03-03T00:00:00Z"), false);
        assert_eq!(unverified[0].reason, "ValuesNotVerified");
        assert_eq!(unverified[0].recheck_at, None);
    }

    #[test]
    fn durations_read_as_the_flags_take_them() {
        for (duration, text) in [
            (Duration::ZERO, "0"),
            (14 * DAY, "14d"),
            (Duration::from_secs(36 * 3_600), "36h"),
            (Duration::from_secs(90 * 60), "90m"),
            (Duration::from_secs(45), "45s"),
            (Duration::from_millis(1_500), "1s 500ms"),
        ] {
            assert_eq!(format_duration(duration), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), duration, "{text}");
        }
        // A grace period nothing can reach ends at the end of time.
        assert_eq!(
            grace_deadline(time(K3_MADE), Duration::from_secs(u64::MAX)),
            jiff::Timestamp::MAX
        );
        // Looked at again a second after the deadline; at once if it passed.
        let now = time("2025-03-16T12:00:00Z");
        assert_eq!(
            recheck_after(time("2025-03-16T12:30:01Z"), now),
            Some(Duration::from_secs(1_802))
        );
        assert_eq!(
            recheck_after(time("2025-03-16T11:00:00Z"), now),
            Some(Duration::from_secs(1))
        );
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
                summary(conditions(&sealed, &keys, Duration::ZERO, at, unsealed)),
                vec![expected],
                "{max_age} {days} {unsealed}"
            );
        }
    }
}
