//! Kubernetes' rules for names: object names and namespaces (RFC 1123
//! subdomains and labels), Secret data keys, label and annotation keys
//! (qualified names), label values, the keys of an env file, and the API
//! server's limit on the size of an object's annotations. The rules are
//! those of `k8s.io/apimachinery`'s `validation` package
//! (`IsDNS1123Subdomain`, `IsDNS1123Label`, `IsConfigMapKey`,
//! `IsQualifiedName`, `IsValidLabelValue`, `IsEnvVarName`) and of
//! `ValidateAnnotations`.
//!
//! The name and namespace are bound into every sealed value, so a name the
//! API server would refuse cannot be fixed later without the plaintext: every
//! command checks these rules before it seals, and `validate` checks them on
//! what is already sealed (through [`crate::validation`], the definition of
//! a well-formed SealedSecret built on them). This module uses no other
//! module of the crate.

use std::collections::BTreeMap;
use std::fmt;

/// Longest RFC 1123 subdomain (Secret names, qualified-name prefixes, keys).
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// Longest RFC 1123 label (namespaces).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// Longest name part of a qualified name, and longest label value.
pub const QUALIFIED_NAME_MAX_LEN: usize = 63;
/// The API server's limit on the total size of an object's annotations
/// (keys plus values).
pub const ANNOTATIONS_MAX_TOTAL: usize = 256 * 1024;

/// A naming rule of Kubernetes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Object names: lowercase alphanumerics, `-` and `.`, each dot-separated
    /// part starting and ending alphanumeric, at most 253 characters.
    Dns1123Subdomain,
    /// Namespaces: lowercase alphanumerics and `-`, starting and ending
    /// alphanumeric, at most 63 characters.
    Dns1123Label,
    /// Secret data keys: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.`,
    /// `..` or starting with `..`.
    SecretKey,
    /// Label and annotation keys: `[prefix/]name`, the name at most 63
    /// characters of `[-._a-zA-Z0-9]` starting and ending alphanumeric, the
    /// prefix an RFC 1123 subdomain.
    QualifiedName,
    /// Label values: empty, or at most 63 characters of `[-._a-zA-Z0-9]`
    /// starting and ending alphanumeric.
    LabelValue,
    /// Keys of an env file: `[-._a-zA-Z][-._a-zA-Z0-9]*`, not `.`, `..` or
    /// starting with `..`.
    EnvVarName,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::Dns1123Subdomain => {
                "an RFC 1123 subdomain (lowercase letters, digits, '-' and '.', each part starting and ending with a letter or digit, at most 253 characters)"
            }
            Rule::Dns1123Label => {
                "an RFC 1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)"
            }
            Rule::SecretKey => {
                "a Secret data key (letters, digits, '-', '_' and '.', at most 253 characters, not '.' or '..' and not starting with '..')"
            }
            Rule::QualifiedName => {
                "a qualified name ([prefix/]name: the name at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit; the prefix an RFC 1123 subdomain)"
            }
            Rule::LabelValue => {
                "a label value (empty, or at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)"
            }
            Rule::EnvVarName => {
                "an environment variable name (letters, digits, '-', '_' and '.', not starting with a digit, not '.' or '..' and not starting with '..')"
            }
        })
    }
}

/// What exactly breaks a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The value is empty.
    Empty,
    /// The value (or the checked part) is longer than allowed.
    TooLong {
        /// Its length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// A character the rule does not allow, at a 0-based character position.
    Character {
        /// 0-based character position.
        position: usize,
    },
    /// The value does not start with a letter or digit.
    Start,
    /// The value does not end with a letter or digit.
    End,
    /// `.`, `..` or a leading `..`: a key that would name a directory.
    DotPath,
    /// More than one `/` in a qualified name.
    Slashes,
    /// The prefix of a qualified name is empty.
    EmptyPrefix,
    /// The prefix of a qualified name is not an RFC 1123 subdomain.
    Prefix,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Empty => f.write_str("it is empty"),
            Violation::TooLong { len, max } => write!(f, "{len} characters, more than {max}"),
            Violation::Character { position } => {
                write!(f, "character {} is not allowed", position + 1)
            }
            Violation::Start => f.write_str("it does not start with a letter or digit"),
            Violation::End => f.write_str("it does not end with a letter or digit"),
            Violation::DotPath => f.write_str("'.', '..' and a leading '..' are not allowed"),
            Violation::Slashes => f.write_str("more than one '/'"),
            Violation::EmptyPrefix => f.write_str("the prefix before '/' is empty"),
            Violation::Prefix => f.write_str("the prefix before '/' is not an RFC 1123 subdomain"),
        }
    }
}

/// Which name of an object is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// `metadata.name`.
    Name,
    /// `metadata.namespace`.
    Namespace,
    /// A key of `data`/`stringData`/`encryptedData`.
    DataKey,
    /// A label key.
    LabelKey,
    /// The value of the label with this key.
    LabelValue(String),
    /// An annotation key.
    AnnotationKey,
    /// A key of an env file.
    EnvFileKey,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Name => f.write_str("metadata.name"),
            Field::Namespace => f.write_str("metadata.namespace"),
            Field::DataKey => f.write_str("data key name"),
            Field::LabelKey => f.write_str("label key"),
            Field::LabelValue(key) => write!(f, "value of label {key:?}"),
            Field::AnnotationKey => f.write_str("annotation key"),
            Field::EnvFileKey => f.write_str("env file key"),
        }
    }
}

/// A name Kubernetes would refuse. Names, keys and label values are not
/// secret; annotation values (which might be) are never quoted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A name breaks a rule.
    #[error("invalid {field} {value:?}: must be {rule}; {violation}")]
    Invalid {
        /// Which field.
        field: Field,
        /// The name as written (names are not secret).
        value: String,
        /// The rule it breaks.
        rule: Rule,
        /// How it breaks it.
        violation: Violation,
    },
    /// The annotations are too large together.
    #[error(
        "the annotations total {total} bytes (keys and values); Kubernetes allows at most {ANNOTATIONS_MAX_TOTAL}"
    )]
    AnnotationsTooLarge {
        /// Their size in bytes.
        total: usize,
    },
}

fn invalid(field: Field, value: &str, rule: Rule, violation: Violation) -> NameError {
    NameError::Invalid {
        field,
        value: value.to_owned(),
        rule,
        violation,
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// One label of a subdomain, or a namespace, by RFC 1123:
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (a DNS label, not a Kubernetes label:
/// those are [`check_labels`]). `offset` is the label's position in the
/// whole value, for messages.
fn dns1123_label_violation(label: &str, offset: usize) -> Option<Violation> {
    let bytes = label.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return Some(Violation::Character { position: offset });
    };
    if let Some(position) = bytes
        .iter()
        .position(|&b| !(is_lower_alnum(b) || b == b'-'))
    {
        return Some(Violation::Character {
            position: offset + char_position(label, position),
        });
    }
    if !is_lower_alnum(first) {
        return Some(Violation::Start);
    }
    if !is_lower_alnum(last) {
        return Some(Violation::End);
    }
    None
}

/// The character index of a byte index (messages count characters).
fn char_position(text: &str, byte: usize) -> usize {
    text.get(..byte)
        .map_or(byte, |prefix| prefix.chars().count())
}

fn subdomain_violation(value: &str) -> Option<Violation> {
    if value.is_empty() {
        return Some(Violation::Empty);
    }
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        return Some(Violation::TooLong {
            len: value.chars().count(),
            max: DNS1123_SUBDOMAIN_MAX_LEN,
        });
    }
    let mut offset = 0;
    for label in value.split('.') {
        if let Some(violation) = dns1123_label_violation(label, char_position(value, offset)) {
            return Some(violation);
        }
        offset += label.len() + 1;
    }
    None
}

/// An RFC 1123 subdomain, as Kubernetes requires of a Secret's name.
pub fn check_secret_name(name: &str) -> Result<(), NameError> {
    match subdomain_violation(name) {
        None => Ok(()),
        Some(violation) => Err(invalid(
            Field::Name,
            name,
            Rule::Dns1123Subdomain,
            violation,
        )),
    }
}

/// An RFC 1123 label, as Kubernetes requires of a namespace.
pub fn check_namespace(namespace: &str) -> Result<(), NameError> {
    let violation = if namespace.is_empty() {
        Some(Violation::Empty)
    } else if namespace.len() > DNS1123_LABEL_MAX_LEN {
        Some(Violation::TooLong {
            len: namespace.chars().count(),
            max: DNS1123_LABEL_MAX_LEN,
        })
    } else {
        dns1123_label_violation(namespace, 0)
    };
    match violation {
        None => Ok(()),
        Some(violation) => Err(invalid(
            Field::Namespace,
            namespace,
            Rule::Dns1123Label,
            violation,
        )),
    }
}

/// Kubernetes' rule for Secret (and ConfigMap) data keys.
pub fn check_data_key(key: &str) -> Result<(), NameError> {
    let fail = |violation| Err(invalid(Field::DataKey, key, Rule::SecretKey, violation));
    if key.is_empty() {
        return fail(Violation::Empty);
    }
    if key.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        return fail(Violation::TooLong {
            len: key.chars().count(),
            max: DNS1123_SUBDOMAIN_MAX_LEN,
        });
    }
    if let Some(position) = key
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
    {
        return fail(Violation::Character {
            position: char_position(key, position),
        });
    }
    if key == "." || key.starts_with("..") {
        return fail(Violation::DotPath);
    }
    Ok(())
}

/// The rule for the keys of an env file (`IsEnvVarName`, which `kubectl
/// create secret --from-env-file` applies before the data key rule).
pub fn check_env_var_name(key: &str) -> Result<(), NameError> {
    let fail = |violation| Err(invalid(Field::EnvFileKey, key, Rule::EnvVarName, violation));
    let Some(&first) = key.as_bytes().first() else {
        return fail(Violation::Empty);
    };
    if let Some(position) = key
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
    {
        return fail(Violation::Character {
            position: char_position(key, position),
        });
    }
    if first.is_ascii_digit() {
        return fail(Violation::Start);
    }
    if key == "." || key.starts_with("..") {
        return fail(Violation::DotPath);
    }
    Ok(())
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters; empty
/// allowed only when `allow_empty`. `offset` positions messages.
fn name_part_violation(part: &str, offset: usize, allow_empty: bool) -> Option<Violation> {
    let bytes = part.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return (!allow_empty).then_some(Violation::Empty);
    };
    if part.len() > QUALIFIED_NAME_MAX_LEN {
        return Some(Violation::TooLong {
            len: part.chars().count(),
            max: QUALIFIED_NAME_MAX_LEN,
        });
    }
    if let Some(position) = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')))
    {
        return Some(Violation::Character {
            position: offset + char_position(part, position),
        });
    }
    if !first.is_ascii_alphanumeric() {
        return Some(Violation::Start);
    }
    if !last.is_ascii_alphanumeric() {
        return Some(Violation::End);
    }
    None
}

fn qualified_name_violation(key: &str) -> Option<Violation> {
    let mut parts = key.split('/');
    let (first, second, third) = (parts.next(), parts.next(), parts.next());
    match (first, second, third) {
        (_, _, Some(_)) => Some(Violation::Slashes),
        (Some(name), None, None) => name_part_violation(name, 0, false),
        (Some(prefix), Some(name), None) => {
            if prefix.is_empty() {
                Some(Violation::EmptyPrefix)
            } else if subdomain_violation(prefix).is_some() {
                Some(Violation::Prefix)
            } else {
                name_part_violation(name, char_position(key, prefix.len() + 1), false)
            }
        }
        (None, _, _) => Some(Violation::Empty),
    }
}

/// A label key: a qualified name.
pub fn check_label_key(key: &str) -> Result<(), NameError> {
    match qualified_name_violation(key) {
        None => Ok(()),
        Some(violation) => Err(invalid(
            Field::LabelKey,
            key,
            Rule::QualifiedName,
            violation,
        )),
    }
}

/// A label value.
pub fn check_label_value(key: &str, value: &str) -> Result<(), NameError> {
    match name_part_violation(value, 0, true) {
        None => Ok(()),
        Some(violation) => Err(invalid(
            Field::LabelValue(key.to_owned()),
            value,
            Rule::LabelValue,
            violation,
        )),
    }
}

/// An annotation key: a qualified name once lowercased (the API server
/// lowercases annotation keys before it checks them, unlike label keys).
pub fn check_annotation_key(key: &str) -> Result<(), NameError> {
    match qualified_name_violation(&key.to_ascii_lowercase()) {
        None => Ok(()),
        Some(violation) => Err(invalid(
            Field::AnnotationKey,
            key,
            Rule::QualifiedName,
            violation,
        )),
    }
}

/// Every label key and value.
pub fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), NameError> {
    for (key, value) in labels {
        check_label_key(key)?;
        check_label_value(key, value)?;
    }
    Ok(())
}

/// Every annotation key, and the total size of keys and values.
pub fn check_annotations(annotations: &BTreeMap<String, String>) -> Result<(), NameError> {
    let mut total = 0;
    for (key, value) in annotations {
        check_annotation_key(key)?;
        total += key.len() + value.len();
    }
    if total > ANNOTATIONS_MAX_TOTAL {
        return Err(NameError::AnnotationsTooLarge { total });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_or_violation(result: Result<(), NameError>) -> Option<Violation> {
        match result {
            Ok(()) => None,
            Err(NameError::Invalid { violation, .. }) => Some(violation),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn secret_names_are_rfc_1123_subdomains() {
        let long_ok = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        assert_eq!(long_ok.len(), 253);
        let long_bad = format!("{long_ok}e");
        let table: &[(&str, Option<Violation>)] = &[
            ("a", None),
            ("0", None),
            ("runner-token", None),
            ("a.b-c.d", None),
            ("my.secret.v2", None),
            (&long_ok, None),
            (&long_bad, Some(Violation::TooLong { len: 254, max: 253 })),
            ("", Some(Violation::Empty)),
            ("runnerToken", Some(Violation::Character { position: 6 })),
            ("Gitlab", Some(Violation::Character { position: 0 })),
            ("-a", Some(Violation::Start)),
            ("a-", Some(Violation::End)),
            ("a.-b", Some(Violation::Start)),
            ("a-.b", Some(Violation::End)),
            ("a..b", Some(Violation::Character { position: 2 })),
            (".a", Some(Violation::Character { position: 0 })),
            ("a.", Some(Violation::Character { position: 2 })),
            ("a_b", Some(Violation::Character { position: 1 })),
            ("a/b", Some(Violation::Character { position: 1 })),
            ("a b", Some(Violation::Character { position: 1 })),
            ("é", Some(Violation::Character { position: 0 })),
        ];
        for (name, expected) in table {
            assert_eq!(
                ok_or_violation(check_secret_name(name)),
                *expected,
                "{name:?}"
            );
        }
    }

    #[test]
    fn namespaces_are_rfc_1123_labels() {
        let ok63 = "a".repeat(63);
        let bad64 = "a".repeat(64);
        let table: &[(&str, Option<Violation>)] = &[
            ("a", None),
            ("team-a", None),
            ("0ns9", None),
            (&ok63, None),
            (&bad64, Some(Violation::TooLong { len: 64, max: 63 })),
            ("", Some(Violation::Empty)),
            ("Gitlab_Runners", Some(Violation::Character { position: 0 })),
            ("gitlab_runners", Some(Violation::Character { position: 6 })),
            ("a.b", Some(Violation::Character { position: 1 })),
            ("-a", Some(Violation::Start)),
            ("a-", Some(Violation::End)),
        ];
        for (namespace, expected) in table {
            assert_eq!(
                ok_or_violation(check_namespace(namespace)),
                *expected,
                "{namespace:?}"
            );
        }
    }

    #[test]
    fn data_keys_follow_the_config_map_key_rule() {
        let ok253 = "k".repeat(253);
        let bad254 = "k".repeat(254);
        let table: &[(&str, Option<Violation>)] = &[
            ("a", None),
            ("tls.crt", None),
            (".dockerconfigjson", None),
            ("A-b_c.D", None),
            ("-", None),
            ("_", None),
            (".a", None),
            ("a..b", None),
            ("a.", None),
            (&ok253, None),
            (&bad254, Some(Violation::TooLong { len: 254, max: 253 })),
            ("", Some(Violation::Empty)),
            (".", Some(Violation::DotPath)),
            ("..", Some(Violation::DotPath)),
            ("..a", Some(Violation::DotPath)),
            ("a/b", Some(Violation::Character { position: 1 })),
            ("a b", Some(Violation::Character { position: 1 })),
            ("a:b", Some(Violation::Character { position: 1 })),
            ("ä", Some(Violation::Character { position: 0 })),
        ];
        for (key, expected) in table {
            assert_eq!(ok_or_violation(check_data_key(key)), *expected, "{key:?}");
        }
    }

    #[test]
    fn label_and_annotation_keys_are_qualified_names() {
        let name63 = "n".repeat(63);
        let name64 = "n".repeat(64);
        let prefix253 = format!(
            "{}.{}.{}.{}",
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(61)
        );
        let with_prefix253 = format!("{prefix253}/x");
        let with_prefix254 = format!("{prefix253}e/x");
        let with_name63 = format!("example.com/{name63}");
        let with_name64 = format!("example.com/{name64}");
        // (key, as a label key, as an annotation key)
        let table: &[(&str, Option<Violation>, Option<Violation>)] = &[
            ("app", None, None),
            ("App_1.x-y", None, None),
            ("app.kubernetes.io/name", None, None),
            ("a/b", None, None),
            (&name63, None, None),
            (&with_name63, None, None),
            (&with_prefix253, None, None),
            (
                &name64,
                Some(Violation::TooLong { len: 64, max: 63 }),
                Some(Violation::TooLong { len: 64, max: 63 }),
            ),
            (
                &with_name64,
                Some(Violation::TooLong { len: 64, max: 63 }),
                Some(Violation::TooLong { len: 64, max: 63 }),
            ),
            (
                &with_prefix254,
                Some(Violation::Prefix),
                Some(Violation::Prefix),
            ),
            // Annotation keys are lowercased before the check; label keys not.
            ("Example.com/x", Some(Violation::Prefix), None),
            ("", Some(Violation::Empty), Some(Violation::Empty)),
            (
                "/x",
                Some(Violation::EmptyPrefix),
                Some(Violation::EmptyPrefix),
            ),
            (
                "example.com/",
                Some(Violation::Empty),
                Some(Violation::Empty),
            ),
            ("a/b/c", Some(Violation::Slashes), Some(Violation::Slashes)),
            ("-app", Some(Violation::Start), Some(Violation::Start)),
            ("app-", Some(Violation::End), Some(Violation::End)),
            ("app.", Some(Violation::End), Some(Violation::End)),
            ("_app", Some(Violation::Start), Some(Violation::Start)),
            (
                "a b",
                Some(Violation::Character { position: 1 }),
                Some(Violation::Character { position: 1 }),
            ),
            (
                "x.io/a:b",
                Some(Violation::Character { position: 6 }),
                Some(Violation::Character { position: 6 }),
            ),
            ("-x.io/a", Some(Violation::Prefix), Some(Violation::Prefix)),
        ];
        for (key, label, annotation) in table {
            assert_eq!(
                ok_or_violation(check_label_key(key)),
                *label,
                "label {key:?}"
            );
            assert_eq!(
                ok_or_violation(check_annotation_key(key)),
                *annotation,
                "annotation {key:?}"
            );
        }
    }

    #[test]
    fn env_file_keys() {
        let table: &[(&str, Option<Violation>)] = &[
            ("A", None),
            ("my.env-name", None),
            ("MY_ENV.NAME", None),
            ("_1", None),
            ("-x", None),
            (".x", None),
            ("", Some(Violation::Empty)),
            ("1A", Some(Violation::Start)),
            ("A B", Some(Violation::Character { position: 1 })),
            ("A ", Some(Violation::Character { position: 1 })),
            ("\u{feff}A", Some(Violation::Character { position: 0 })),
            ("A:B", Some(Violation::Character { position: 1 })),
            (".", Some(Violation::DotPath)),
            ("..", Some(Violation::DotPath)),
            ("..x", Some(Violation::DotPath)),
        ];
        for (key, expected) in table {
            assert_eq!(
                ok_or_violation(check_env_var_name(key)),
                *expected,
                "{key:?}"
            );
        }
    }

    #[test]
    fn label_values() {
        let ok63 = "v".repeat(63);
        let bad64 = "v".repeat(64);
        let table: &[(&str, Option<Violation>)] = &[
            ("", None),
            ("v", None),
            ("v1.2_3-x", None),
            ("UPPER", None),
            (&ok63, None),
            (&bad64, Some(Violation::TooLong { len: 64, max: 63 })),
            ("-v", Some(Violation::Start)),
            ("v-", Some(Violation::End)),
            ("v.", Some(Violation::End)),
            ("a/b", Some(Violation::Character { position: 1 })),
            ("a b", Some(Violation::Character { position: 1 })),
        ];
        for (value, expected) in table {
            assert_eq!(
                ok_or_violation(check_label_value("k", value)),
                *expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn annotations_total_size() {
        let key = "note";
        let at_limit = BTreeMap::from([(
            key.to_owned(),
            "x".repeat(ANNOTATIONS_MAX_TOTAL - key.len()),
        )]);
        assert_eq!(check_annotations(&at_limit), Ok(()));
        let over = BTreeMap::from([(
            key.to_owned(),
            "x".repeat(ANNOTATIONS_MAX_TOTAL - key.len() + 1),
        )]);
        assert_eq!(
            check_annotations(&over),
            Err(NameError::AnnotationsTooLarge {
                total: ANNOTATIONS_MAX_TOTAL + 1
            })
        );
        // Spread over several annotations too.
        let split = BTreeMap::from([
            ("a".to_owned(), "x".repeat(ANNOTATIONS_MAX_TOTAL / 2)),
            ("b".to_owned(), "x".repeat(ANNOTATIONS_MAX_TOTAL / 2)),
        ]);
        assert!(check_annotations(&split).is_err());
    }

    #[test]
    fn messages_name_the_field_and_the_rule() {
        let err = check_namespace("Gitlab_Runners").unwrap_err().to_string();
        assert!(
            err.contains("invalid metadata.namespace \"Gitlab_Runners\""),
            "{err}"
        );
        assert!(err.contains("RFC 1123 label"), "{err}");
        assert!(!err.contains("--"), "no CLI flags in library errors: {err}");
        let err = check_secret_name("runnerToken").unwrap_err().to_string();
        assert!(
            err.contains("RFC 1123 subdomain") && err.contains("character 7"),
            "{err}"
        );
    }
}
