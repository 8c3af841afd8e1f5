#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::binding::Scope;

fn identity() -> Identity {
    Identity::generate()
}

fn binding() -> Binding<'static> {
    Binding::new(Scope::Strict, "payments", "db", "password")
}

/// A v1 value, as kseal wrote them before v2 (the v1 sealer is gone; the
/// reader stays).
pub(super) fn seal_v1(
    plaintext: &[u8],
    binding: &Binding<'_>,
    recipients: &[Recipient],
) -> SealedValue {
    let data_key = DataKey::generate();
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = XChaCha20Poly1305::new(data_key.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &binding.associated_data_v1(),
            },
        )
        .unwrap();
    let (key_ids, wrapped_key) = wrap_data_key(&data_key, recipients).unwrap();
    SealedValue {
        key_ids,
        sealed_at: SEALED_AT_UNRECORDED,
        wrapped_key,
        nonce,
        commitment: None,
        ciphertext,
    }
}

#[test]
fn v2_is_written_and_round_trips_with_its_seal_time() {
    let id = identity();
    let before = jiff::Timestamp::now().as_second();
    let value = seal(b"hunter2", &binding(), &[id.recipient().clone()]).unwrap();
    let after = jiff::Timestamp::now().as_second();
    assert_eq!(value.version(), FormatVersion::V2);
    let encoded = value.encode();
    assert!(encoded.starts_with("kseal:v2:"));
    assert_eq!(encoded.split(':').count(), 8);
    let parsed = SealedValue::parse(&encoded).unwrap();
    assert_eq!(parsed, value);
    let sealed_at = parsed.sealed_at().unwrap().as_second();
    assert!((before..=after).contains(&sealed_at));
    let keyring = Keyring::new([id]);
    assert_eq!(
        open(&parsed, &binding(), &keyring).unwrap().expose(),
        b"hunter2"
    );
}

#[test]
fn rewrap_of_v2_changes_only_key_ids_and_wrapped_key() {
    let (a, b) = (identity(), identity());
    let value = seal_at(b"v", &binding(), &[a.recipient().clone()], 1_700_000_000).unwrap();
    let rewrapped = rewrap(
        &value,
        &binding(),
        &Keyring::new([a]),
        &[b.recipient().clone()],
    )
    .unwrap();
    let old: Vec<String> = value.encode().split(':').map(str::to_owned).collect();
    let new: Vec<String> = rewrapped.encode().split(':').map(str::to_owned).collect();
    for (index, (old, new)) in old.iter().zip(&new).enumerate() {
        // 2: key ids, 4: wrapped key.
        assert_eq!(old == new, index != 2 && index != 4, "field {index}");
    }
    assert_eq!(rewrapped.sealed_at_seconds(), 1_700_000_000);
    assert_eq!(
        open(&rewrapped, &binding(), &Keyring::new([b]))
            .unwrap()
            .expose(),
        b"v"
    );
}

#[test]
fn rewrap_upgrades_v1_without_inventing_a_seal_time() {
    let (a, b) = (identity(), identity());
    let v1 = seal_v1(b"old secret", &binding(), &[a.recipient().clone()]);
    assert_eq!(v1.version(), FormatVersion::V1);
    let reparsed = SealedValue::parse(&v1.encode()).unwrap();
    assert_eq!(reparsed, v1);
    assert_eq!(
        open(&reparsed, &binding(), &Keyring::new([a.clone()]))
            .unwrap()
            .expose(),
        b"old secret"
    );
    let upgraded = rewrap(
        &v1,
        &binding(),
        &Keyring::new([a]),
        &[b.recipient().clone()],
    )
    .unwrap();
    assert_eq!(upgraded.version(), FormatVersion::V2);
    assert_eq!(upgraded.sealed_at(), None);
    assert_eq!(upgraded.sealed_at_seconds(), SEALED_AT_UNRECORDED);
    assert_ne!(upgraded.nonce(), v1.nonce());
    assert_eq!(
        open(&upgraded, &binding(), &Keyring::new([b]))
            .unwrap()
            .expose(),
        b"old secret"
    );
}

/// Two data keys, the same nonce and ciphertext, each wrapped to the same
/// recipient: what a malicious sealer commits, then changes only `W`.
struct TwoKeys {
    keyring: Keyring,
    recipient: Recipient,
    data_keys: [DataKey; 2],
    nonce: [u8; NONCE_LEN],
}

impl TwoKeys {
    fn new() -> Self {
        let id = identity();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        Self {
            recipient: id.recipient().clone(),
            keyring: Keyring::new([id]),
            data_keys: [DataKey::generate(), DataKey::generate()],
            nonce,
        }
    }

    fn wrapped(&self, which: usize) -> (Vec<KeyId>, Vec<u8>) {
        wrap_data_key(
            &self.data_keys[which],
            std::slice::from_ref(&self.recipient),
        )
        .unwrap()
    }
}

#[test]
fn v1_is_not_key_committing_one_ciphertext_opens_to_two_values() {
    let two = TwoKeys::new();
    let ciphertext = super::two_key::ciphertext(
        two.data_keys[0].expose(),
        two.data_keys[1].expose(),
        &two.nonce,
        &binding().associated_data_v1(),
    );
    let opened: Vec<Vec<u8>> = (0..2)
        .map(|which| {
            let (key_ids, wrapped_key) = two.wrapped(which);
            let value = SealedValue {
                key_ids,
                sealed_at: SEALED_AT_UNRECORDED,
                wrapped_key,
                nonce: two.nonce,
                commitment: None,
                ciphertext: ciphertext.clone(),
            };
            let value = SealedValue::parse(&value.encode()).unwrap();
            open(&value, &binding(), &two.keyring)
                .unwrap()
                .expose()
                .to_vec()
        })
        .collect();
    // The same nonce and ciphertext, two different values: a diff that
    // changes only the wrapped key changes the Secret.
    assert_ne!(opened[0], opened[1]);
}

#[test]
fn v2_rejects_the_two_key_ciphertext() {
    let two = TwoKeys::new();
    let sealed_at = 1_800_000_000;
    let derived = [
        commitment::derive(&two.data_keys[0], &two.nonce),
        commitment::derive(&two.data_keys[1], &two.nonce),
    ];
    let ciphertext = super::two_key::ciphertext(
        &derived[0].aead_key,
        &derived[1].aead_key,
        &two.nonce,
        &binding().associated_data_v2(sealed_at),
    );
    let value = |wrapped_by: usize, committed_to: usize| {
        let (key_ids, wrapped_key) = two.wrapped(wrapped_by);
        let value = SealedValue {
            key_ids,
            sealed_at,
            wrapped_key,
            nonce: two.nonce,
            commitment: Some(derived[committed_to].commitment),
            ciphertext: ciphertext.clone(),
        };
        SealedValue::parse(&value.encode()).unwrap()
    };
    let first = open(&value(0, 0), &binding(), &two.keyring).unwrap();
    // Only the wrapped key changed: refused before decryption.
    assert_eq!(
        open(&value(1, 0), &binding(), &two.keyring).unwrap_err(),
        SealError::CommitmentMismatch
    );
    assert_eq!(
        rewrap(
            &value(1, 0),
            &binding(),
            &two.keyring,
            std::slice::from_ref(&two.recipient)
        )
        .unwrap_err(),
        SealError::CommitmentMismatch
    );
    // The other value needs the other commitment: a field a review sees.
    let second = open(&value(1, 1), &binding(), &two.keyring).unwrap();
    assert_ne!(first.expose(), second.expose());
}

#[test]
fn a_changed_commitment_or_seal_time_is_refused() {
    let id = identity();
    let keyring = Keyring::new([id.clone()]);
    let value = seal_at(b"v", &binding(), &[id.recipient().clone()], 1_700_000_000).unwrap();
    let mut commitment = value.clone();
    if let Some(bytes) = commitment.commitment.as_mut() {
        bytes[0] ^= 1;
    }
    assert_eq!(
        open(&commitment, &binding(), &keyring).unwrap_err(),
        SealError::CommitmentMismatch
    );
    for sealed_at in [0, 1_700_000_001, 1_600_000_000] {
        let mut moved = value.clone();
        moved.sealed_at = sealed_at;
        let moved = SealedValue::parse(&moved.encode()).unwrap();
        assert_eq!(
            open(&moved, &binding(), &keyring).unwrap_err(),
            SealError::DecryptFailed,
            "{sealed_at}"
        );
    }
}

#[test]
fn seal_time_has_one_spelling() {
    for (field, expected) in [
        ("0", Some(0)),
        ("1", Some(1)),
        ("1700000000", Some(1_700_000_000)),
        ("253370764800", Some(MAX_SEALED_AT)),
        ("253370764801", None),
        ("253402300799", None),
        ("999999999999", None),
        ("1000000000000", None),
        ("01", None),
        ("00", None),
        ("", None),
        ("+1", None),
        ("-1", None),
        (" 1", None),
        ("1 ", None),
        ("1e9", None),
        ("0x10", None),
        ("１", None),
    ] {
        assert_eq!(parse_sealed_at(field).ok(), expected, "{field:?}");
    }
    assert!(
        seal_at(
            b"v",
            &binding(),
            &[identity().recipient().clone()],
            MAX_SEALED_AT + 1
        )
        .is_err()
    );
}

/// `check_rewrap_of` accepts exactly what `rewrap` makes of a value and
/// names what else changed: a value sealed afresh (another data key) in
/// its place, or one field of the payload edited.
#[test]
fn a_rewrap_is_told_from_a_substitute() {
    let (a, b) = (identity(), identity());
    let value = seal_at(b"v", &binding(), &[a.recipient().clone()], 1_700_000_000).unwrap();
    let keyring = Keyring::new([a.clone()]);
    let rewrapped = rewrap(&value, &binding(), &keyring, &[b.recipient().clone()]).unwrap();
    assert_eq!(rewrapped.check_rewrap_of(&value), Ok(()));
    // Sealed again, even with the same seal time, plaintext and binding:
    // another data key, so another commitment and nonce.
    let substitute = seal_at(b"v", &binding(), &[b.recipient().clone()], 1_700_000_000).unwrap();
    assert_eq!(
        substitute.check_rewrap_of(&value),
        Err(RewrapMismatch::Nonce)
    );
    let edit = |change: &dyn Fn(&mut SealedValue)| {
        let mut edited = rewrapped.clone();
        change(&mut edited);
        edited.check_rewrap_of(&value)
    };
    assert_eq!(edit(&|v| v.sealed_at += 1), Err(RewrapMismatch::SealedAt));
    assert_eq!(edit(&|v| v.nonce[0] ^= 1), Err(RewrapMismatch::Nonce));
    assert_eq!(
        edit(&|v| v.commitment = Some([7; COMMITMENT_LEN])),
        Err(RewrapMismatch::Commitment)
    );
    assert_eq!(
        edit(&|v| v.ciphertext[0] ^= 1),
        Err(RewrapMismatch::Ciphertext)
    );
    assert_eq!(edit(&|v| v.commitment = None), Err(RewrapMismatch::Version));

    // A v1 original: upgraded to v2, its seal time unrecorded, its length
    // kept.
    let old = seal_v1(b"v", &binding(), &[a.recipient().clone()]);
    let upgraded = rewrap(&old, &binding(), &keyring, &[b.recipient().clone()]).unwrap();
    assert_eq!(upgraded.check_rewrap_of(&old), Ok(()));
    assert_eq!(old.check_rewrap_of(&old), Err(RewrapMismatch::Version));
    let fresh = seal(b"v", &binding(), &[b.recipient().clone()]).unwrap();
    assert_eq!(fresh.check_rewrap_of(&old), Err(RewrapMismatch::SealedAt));
    let longer = seal_at(b"vv", &binding(), &[b.recipient().clone()], 0).unwrap();
    assert_eq!(
        longer.check_rewrap_of(&old),
        Err(RewrapMismatch::Ciphertext)
    );
    // The limit: another plaintext of the same length, sealed afresh with
    // the seal time unrecorded, passes. v1 is not key-committing, so
    // nothing without a key tells it from the upgrade; hence `kseal rewrap
    // --online` refuses to upgrade v1 values unless told to trust the
    // controller (`--trust-controller-for-v1`).
    let same_length = seal_at(b"w", &binding(), &[b.recipient().clone()], 0).unwrap();
    assert_eq!(same_length.check_rewrap_of(&old), Ok(()));
    assert_eq!(
        open(&same_length, &binding(), &Keyring::new([b.clone()]))
            .unwrap()
            .expose(),
        b"w"
    );
}

/// The age crate's own reading of a wrapped data key, for comparison.
fn age_opens(value: &SealedValue, identity: &Identity) -> Option<Vec<u8>> {
    use std::io::Read;
    let decryptor = age::Decryptor::new(value.wrapped_key()).ok()?;
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .ok()?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).ok()?;
    Some(out)
}

fn own(ids: &[&Identity]) -> HashSet<KeyId> {
    ids.iter().map(|id| id.recipient().key_id()).collect()
}

#[test]
fn rewrap_replacing_keeps_other_recipients_byte_for_byte() {
    let (old, new, recovery, other) = (identity(), identity(), identity(), identity());
    // Every position of the cluster's stanza among the others.
    let orders: [Vec<&Identity>; 3] = [
        vec![&old, &recovery, &other],
        vec![&recovery, &old, &other],
        vec![&recovery, &other, &old],
    ];
    for order in orders {
        let recipients: Vec<Recipient> = order.iter().map(|i| i.recipient().clone()).collect();
        let value = seal(b"hunter2", &binding(), &recipients).unwrap();
        let cluster = own(&[&old, &new]);
        let rewrapped = rewrap_replacing(
            &value,
            &binding(),
            &Keyring::new([old.clone()]),
            &cluster,
            &[new.recipient().clone()],
        )
        .unwrap();
        // The new key takes the old one's place; the others keep theirs.
        let expected: Vec<KeyId> = order
            .iter()
            .map(|i| {
                if std::ptr::eq(*i, &old) {
                    new.recipient().key_id()
                } else {
                    i.recipient().key_id()
                }
            })
            .collect();
        assert_eq!(rewrapped.key_ids(), expected.as_slice());
        assert_eq!(
            (
                rewrapped.sealed_at_seconds(),
                rewrapped.nonce(),
                rewrapped.commitment(),
                rewrapped.ciphertext()
            ),
            (
                value.sealed_at_seconds(),
                value.nonce(),
                value.commitment(),
                value.ciphertext()
            )
        );
        let reparsed = SealedValue::parse(&rewrapped.encode()).unwrap();
        assert_eq!(reparsed, rewrapped);
        // Everyone but the replaced key opens it, with kseal and with age.
        for (holder, opens) in [
            (&new, true),
            (&recovery, true),
            (&other, true),
            (&old, false),
        ] {
            let result = open(&reparsed, &binding(), &Keyring::new([holder.clone()]));
            assert_eq!(result.is_ok(), opens);
            if opens {
                assert_eq!(result.unwrap().expose(), b"hunter2");
            }
            assert_eq!(age_opens(&reparsed, holder).is_some(), opens);
        }
        let changes = reparsed.rewrap_changes(&value);
        assert_eq!(changes.fresh, vec![new.recipient().key_id()]);
        assert_eq!(
            changes.kept,
            vec![recovery.recipient().key_id(), other.recipient().key_id()]
        );
        assert_eq!(changes.dropped, vec![old.recipient().key_id()]);
        // Nothing left to do: re-wrapping again changes nothing.
        let target = [new.recipient().key_id()];
        assert!(reparsed.is_current_for_cluster(&cluster, &target));
        assert!(!value.is_current_for_cluster(&cluster, &target));
    }
}

#[test]
fn rewrap_replacing_replaces_every_cluster_key_with_the_active_one() {
    let (a, b, c, recovery) = (identity(), identity(), identity(), identity());
    let value = seal(
        b"v",
        &binding(),
        &[
            a.recipient().clone(),
            recovery.recipient().clone(),
            b.recipient().clone(),
        ],
    )
    .unwrap();
    let cluster = own(&[&a, &b, &c]);
    let rewrapped = rewrap_replacing(
        &value,
        &binding(),
        &Keyring::new([b.clone()]),
        &cluster,
        &[c.recipient().clone()],
    )
    .unwrap();
    assert_eq!(
        rewrapped.key_ids(),
        &[c.recipient().key_id(), recovery.recipient().key_id()]
    );
    // A value already sealed to the active key and an old one: the old
    // one goes, the active one is wrapped afresh.
    let both = seal(
        b"v",
        &binding(),
        &[a.recipient().clone(), c.recipient().clone()],
    )
    .unwrap();
    let target = [c.recipient().key_id()];
    assert!(!both.is_current_for_cluster(&cluster, &target));
    let rewrapped = rewrap_replacing(
        &both,
        &binding(),
        &Keyring::new([c.clone()]),
        &cluster,
        &[c.recipient().clone()],
    )
    .unwrap();
    assert_eq!(rewrapped.key_ids(), &target);
    // Sealed to the active key and a recovery key: current.
    let current = seal(
        b"v",
        &binding(),
        &[recovery.recipient().clone(), c.recipient().clone()],
    )
    .unwrap();
    assert!(current.is_current_for_cluster(&cluster, &target));
    // Without the active key it is not, whatever else it names.
    let recovery_only = seal(b"v", &binding(), &[recovery.recipient().clone()]).unwrap();
    assert!(!recovery_only.is_current_for_cluster(&cluster, &target));
}

/// The caller cannot add, swap or drop a recipient: any change to a kept
/// stanza breaks the header MAC the cluster verifies first.
#[test]
fn rewrap_replacing_refuses_a_header_the_file_key_did_not_make() {
    let (cluster_key, recovery, attacker, new) = (identity(), identity(), identity(), identity());
    let value = seal(
        b"secret",
        &binding(),
        &[
            cluster_key.recipient().clone(),
            recovery.recipient().clone(),
        ],
    )
    .unwrap();
    let file = AgeFile::parse(value.wrapped_key(), MAX_STANZAS).unwrap();
    let copy = |s: &Stanza| Stanza {
        tag: s.tag.clone(),
        args: s.args.clone(),
        body: s.body.clone(),
    };
    let x25519: Vec<Stanza> = file
        .stanzas
        .iter()
        .filter(|s| s.tag == X25519_STANZA_TAG)
        .map(copy)
        .collect();
    // The attacker's own stanza wraps a file key of its choosing.
    let attacker_key = FileKey::init_with_mut(|key| rand::rngs::OsRng.fill_bytes(key));
    let (attacker_stanza, _) =
        age::Recipient::wrap_file_key(attacker.recipient().age(), &attacker_key).unwrap();
    let ids = |list: &[&Identity]| -> Vec<KeyId> {
        list.iter().map(|i| i.recipient().key_id()).collect()
    };
    let forged_headers: Vec<(Vec<KeyId>, Vec<Stanza>)> = vec![
        // The recovery stanza swapped for the attacker's.
        (
            ids(&[&cluster_key, &attacker]),
            vec![copy(&x25519[0]), copy(&attacker_stanza[0])],
        ),
        // The attacker's added.
        (
            ids(&[&cluster_key, &recovery, &attacker]),
            vec![
                copy(&x25519[0]),
                copy(&x25519[1]),
                copy(&attacker_stanza[0]),
            ],
        ),
        // The recovery stanza dropped.
        (ids(&[&cluster_key]), vec![copy(&x25519[0])]),
    ];
    for (key_ids, mut stanzas) in forged_headers {
        stanzas.push(key_ids_stanza(&key_ids));
        // The payload and the old MAC line kept: the MAC no longer matches.
        let mut wrapped_key = b"age-encryption.org/v1\n".to_vec();
        for stanza in &stanzas {
            super::wrapped_key::write_stanza(&mut wrapped_key, stanza);
        }
        let original = value.wrapped_key();
        let mac_line = original.windows(4).position(|w| w == b"--- ").unwrap();
        wrapped_key.extend_from_slice(&original[mac_line..]);
        let forged = SealedValue {
            key_ids,
            wrapped_key,
            ..value.clone()
        };
        let forged = SealedValue::parse(&forged.encode()).unwrap();
        let result = rewrap_replacing(
            &forged,
            &binding(),
            &Keyring::new([cluster_key.clone()]),
            &own(&[&cluster_key, &new]),
            &[new.recipient().clone()],
        );
        assert_eq!(result.unwrap_err(), SealError::UnwrapFailed);
    }
}

/// A v1 value cannot keep stanzas (its upgrade makes a new data key): it
/// is sealed to the cluster's key alone, and the changes say what was
/// dropped.
#[test]
fn rewrap_replacing_a_v1_value_reports_the_dropped_recipients() {
    let (old, new, recovery) = (identity(), identity(), identity());
    let v1 = seal_v1(
        b"old",
        &binding(),
        &[old.recipient().clone(), recovery.recipient().clone()],
    );
    let upgraded = rewrap_replacing(
        &v1,
        &binding(),
        &Keyring::new([old.clone()]),
        &own(&[&old, &new]),
        &[new.recipient().clone()],
    )
    .unwrap();
    assert_eq!(upgraded.version(), FormatVersion::V2);
    assert_eq!(upgraded.key_ids(), &[new.recipient().key_id()]);
    let changes = upgraded.rewrap_changes(&v1);
    assert!(changes.kept.is_empty());
    assert_eq!(
        changes.dropped,
        vec![old.recipient().key_id(), recovery.recipient().key_id()]
    );
}

// ---- Every reader check is needed (docs/format.md §10) ----
//
// The checks of §4 are switched off one at a time (`switch::without`): a
// reader without any one of them must get at least one committed vector
// wrong, and that vector is one of the check's own rule. So every rule, and
// every separate check within a rule, has a vector that no other check
// refuses the same way.

mod every_check {
    use std::collections::{BTreeMap, BTreeSet};
    use std::str::FromStr;

    use serde_json::Value;

    use super::super::{ReaderCheck, switch};
    use super::*;

    /// One value vector of `tests/vectors/v2.json`.
    struct Vector {
        rule: String,
        comment: String,
        sealed: String,
        scope: Scope,
        namespace: String,
        name: String,
        key: String,
        expect: String,
        plaintext: Option<Vec<u8>>,
    }

    fn text(value: &Value, field: &str) -> String {
        value[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} missing in a vector"))
            .to_owned()
    }

    fn vectors() -> (Keyring, Vec<Vector>) {
        let file: Value =
            serde_json::from_str(include_str!("../../tests/vectors/v2.json")).unwrap();
        let keyring: Keyring = file["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|identity| Identity::from_str(identity.as_str().unwrap()).unwrap())
            .collect();
        let vectors = file["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|case| Vector {
                rule: text(case, "rule"),
                comment: text(case, "comment"),
                sealed: match case.get("sealed_fill") {
                    Some(fill) => format!(
                        "{}{}{}",
                        text(fill, "prefix"),
                        text(fill, "fill")
                            .repeat(usize::try_from(fill["count"].as_u64().unwrap()).unwrap()),
                        text(fill, "suffix")
                    ),
                    None => text(case, "sealed"),
                },
                scope: Scope::from_str(&text(case, "scope")).unwrap(),
                namespace: text(case, "namespace"),
                name: text(case, "name"),
                key: text(case, "key"),
                expect: text(case, "expect"),
                plaintext: case["plaintext_base64"]
                    .as_str()
                    .map(|text| BASE64_STANDARD.decode(text).unwrap()),
            })
            .collect();
        (keyring, vectors)
    }

    /// The error category names of docs/format.md §4.
    fn category(error: &SealError) -> &'static str {
        match error {
            SealError::NotSealedValue => "not-a-kseal-value",
            SealError::UnsupportedVersion(_) => "unsupported-version",
            SealError::Malformed(_) => "malformed",
            SealError::InvalidBinding(_) => "binding-invalid",
            SealError::NoMatchingIdentity { .. } => "no-matching-identity",
            SealError::UnwrapFailed => "unwrap-failed",
            SealError::CommitmentMismatch => "commitment-mismatch",
            SealError::DecryptFailed => "decrypt-failed",
            _ => "not a reader error",
        }
    }

    /// Whether the reader, as switched now, gives the recorded result.
    fn as_recorded(vector: &Vector, keyring: &Keyring) -> bool {
        let binding = Binding::new(vector.scope, &vector.namespace, &vector.name, &vector.key);
        let result =
            SealedValue::parse(&vector.sealed).and_then(|value| open(&value, &binding, keyring));
        match result {
            Ok(plaintext) => {
                vector.expect == "ok" && vector.plaintext.as_deref() == Some(plaintext.expose())
            }
            Err(err) => vector.expect == category(&err),
        }
    }

    /// The first vector of `rule` that a reader without `checks` gets wrong.
    fn changed<'a>(
        checks: &[ReaderCheck],
        rule: &str,
        vectors: &'a [Vector],
        keyring: &Keyring,
    ) -> Option<&'a Vector> {
        switch::without(checks, || {
            vectors
                .iter()
                .filter(|vector| vector.rule == rule)
                .find(|vector| !as_recorded(vector, keyring))
        })
    }

    /// With every check on, each vector gives its recorded result, and each
    /// refused one is refused by a check of the rule it names: the first
    /// rule, in §4's order, that it breaks.
    #[test]
    fn each_negative_vector_is_refused_by_its_own_rule() {
        let (keyring, vectors) = vectors();
        for vector in &vectors {
            switch::take_broken();
            assert!(as_recorded(vector, &keyring), "{}", vector.comment);
            let broken = switch::take_broken();
            if vector.expect != "ok" {
                let last = broken.last().unwrap_or_else(|| {
                    panic!("{}: refused by no switchable check", vector.comment)
                });
                assert_eq!(last.rule(), vector.rule, "{}: {last:?}", vector.comment);
            }
        }
    }

    /// Every check (and every rule) switched off alone changes the outcome
    /// of a vector of its rule, and the checks' rules are exactly the rules
    /// the vectors name (`ok` aside): a check cannot be added without a
    /// vector, nor a rule without a check.
    #[test]
    fn every_reader_check_is_needed() {
        let (keyring, vectors) = vectors();
        let vector_rules: BTreeSet<&str> = vectors
            .iter()
            .map(|vector| vector.rule.as_str())
            .filter(|rule| *rule != "ok")
            .collect();
        let check_rules: BTreeSet<&str> =
            ReaderCheck::ALL.iter().map(|check| check.rule()).collect();
        assert_eq!(check_rules, vector_rules);
        // The stanza cap is a bound, not a check: the rules allow no more
        // (64 X25519 stanzas, the key-ids stanza, v1's two others).
        assert_eq!(MAX_STANZAS, MAX_RECIPIENTS + 1 + 2);

        let mut unneeded = Vec::new();
        for check in ReaderCheck::ALL {
            match changed(&[*check], check.rule(), &vectors, &keyring) {
                Some(vector) => eprintln!("{check:?}: {}", vector.comment),
                None => unneeded.push(format!("{check:?}")),
            }
        }
        let mut by_rule: BTreeMap<&str, Vec<ReaderCheck>> = BTreeMap::new();
        for check in ReaderCheck::ALL {
            by_rule.entry(check.rule()).or_default().push(*check);
        }
        for (rule, checks) in &by_rule {
            if changed(checks, rule, &vectors, &keyring).is_none() {
                unneeded.push(format!("rule {rule}"));
            }
        }
        assert!(
            unneeded.is_empty(),
            "switched off, these change no vector of their rule: {unneeded:?}"
        );
    }
}
