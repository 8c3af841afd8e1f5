//! Kubernetes' rules for the names a Secret carries, and the one definition
//! of a well-formed SealedSecret.
//!
//! The name and namespace are bound into every sealed value, so a name the
//! API server would refuse cannot be fixed later without the plaintext: every
//! command checks these rules before it seals, and `validate` checks them on
//! what is already sealed. The rules are those of `k8s.io/apimachinery`'s
//! `validation` package (`IsDNS1123Subdomain`, `IsDNS1123Label`,
//! `IsConfigMapKey`, `IsQualifiedName`, `IsValidLabelValue`) and of
//! `ValidateAnnotations`.

use std::collections::BTreeMap;
use std::fmt;

use crate::binding::Scope;
use crate::sealed_secret::SealedSecret;

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

/// Checks one label of a subdomain (or a namespace): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
/// `offset` is the label's position in the whole value, for messages.
fn check_label(label: &str, offset: usize) -> Result<(), Violation> {
    let bytes = label.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return Err(Violation::Character { position: offset });
    };
    if let Some(position) = bytes
        .iter()
        .position(|&b| !(is_lower_alnum(b) || b == b'-'))
    {
        return Err(Violation::Character {
            position: offset + char_position(label, position),
        });
    }
    if !is_lower_alnum(first) {
        return Err(Violation::Start);
    }
    if !is_lower_alnum(last) {
        return Err(Violation::End);
    }
    Ok(())
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
        if let Err(violation) = check_label(label, char_position(value, offset)) {
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
        check_label(namespace, 0).err()
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

/// The names of a Secret as they will be bound and created: the name (when
/// the scope binds it or it is given), the namespace (likewise), the data
/// keys, labels and annotations.
#[derive(Clone, Copy, Debug)]
pub struct SecretNames<'a> {
    /// The scope: whether a namespace is required.
    pub scope: Scope,
    /// `metadata.name` (empty when missing).
    pub name: &'a str,
    /// `metadata.namespace` (empty when missing).
    pub namespace: &'a str,
    /// Labels of the Secret (the template's, for a SealedSecret).
    pub labels: &'a BTreeMap<String, String>,
    /// Annotations of the Secret (the template's, for a SealedSecret).
    pub annotations: &'a BTreeMap<String, String>,
}

/// Why a SealedSecret (or a Secret about to be sealed) is not well-formed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// `metadata.name` is missing although every object needs one.
    #[error("metadata.name is missing")]
    MissingName,
    /// `metadata.namespace` is missing although the scope binds values to it.
    #[error("metadata.namespace is missing, but scope {0} binds values to it")]
    MissingNamespace(Scope),
    /// A name, key, label or annotation Kubernetes would refuse.
    #[error(transparent)]
    Name(#[from] NameError),
    /// `spec.maxAge` does not parse.
    #[error("spec.maxAge: {0}")]
    MaxAge(#[from] crate::rotation::MaxAgeError),
    /// `spec.rollout` is not one kseal knows.
    #[error(transparent)]
    Rollout(#[from] crate::sealed_secret::RolloutError),
    /// A `spec.generated` entry that does not parse, or names a key
    /// `spec.encryptedData` does not hold.
    #[error("spec.generated.{key}: {reason}")]
    Generated {
        /// The data key.
        key: String,
        /// What is wrong (never the entry's text: see
        /// [`crate::generate::GeneratorError`]).
        reason: String,
    },
    /// More template labels or annotations than kseal carries to a Secret
    /// ([`TEMPLATE_MAX_ENTRIES`]).
    #[error(
        "spec.template.metadata.{what} has {count} entries; kseal allows at most {TEMPLATE_MAX_ENTRIES}"
    )]
    TooManyTemplateEntries {
        /// `labels` or `annotations`.
        what: &'static str,
        /// How many there are.
        count: usize,
    },
    /// More problems than are worth keeping: the first
    /// [`MAX_PROBLEMS`] are listed, this counts the rest.
    #[error("and {count} more problems")]
    MoreProblems {
        /// How many were not listed.
        count: usize,
    },
    /// What the API server requires of the Secret's type (a
    /// `kubernetes.io/tls` Secret without `tls.key`, …), see
    /// [`crate::secret_type`].
    #[error(transparent)]
    Type(#[from] crate::secret_type::TypeError),
    /// More values than a SealedSecret may hold
    /// ([`crate::sealed_secret::MAX_VALUES`]); readers refuse the object
    /// before opening any of them (docs/format.md §7).
    #[error(
        "{count} values; a SealedSecret holds at most {}",
        crate::sealed_secret::MAX_VALUES
    )]
    TooManyValues {
        /// How many there are.
        count: usize,
    },
    /// Template annotations larger together than kseal carries to a Secret
    /// ([`TEMPLATE_ANNOTATIONS_MAX_TOTAL`]).
    #[error(
        "spec.template.metadata.annotations total {total} bytes (keys and values); kseal allows at most {TEMPLATE_ANNOTATIONS_MAX_TOTAL}"
    )]
    TemplateAnnotationsTooLarge {
        /// Their total size in bytes.
        total: usize,
    },
}

/// The most labels, and the most annotations, a SealedSecret's template may
/// carry to its Secret (also the CRD's `maxProperties`). Kubernetes itself
/// sets no count; kseal does because the controller holds templates in
/// memory, and whoever writes SealedSecrets must not choose how much.
pub const TEMPLATE_MAX_ENTRIES: usize = 64;
/// The most problems [`object_problems`] lists one by one: an object with
/// thousands of bad data keys must not cost thousands of copies of them
/// wherever it is checked (the controller keeps the problems per object).
pub const MAX_PROBLEMS: usize = 16;
/// The most bytes (keys and values) a template's annotations may total: a
/// quarter of what Kubernetes allows on an object
/// ([`ANNOTATIONS_MAX_TOTAL`]), for the same reason as
/// [`TEMPLATE_MAX_ENTRIES`].
pub const TEMPLATE_ANNOTATIONS_MAX_TOTAL: usize = 64 * 1024;

/// kseal's own limits on a template's labels and annotations (see
/// [`TEMPLATE_MAX_ENTRIES`]), on top of Kubernetes' rules.
pub fn template_limit_problems(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Vec<ObjectError> {
    let mut problems = Vec::new();
    for (what, count) in [("labels", labels.len()), ("annotations", annotations.len())] {
        if count > TEMPLATE_MAX_ENTRIES {
            problems.push(ObjectError::TooManyTemplateEntries { what, count });
        }
    }
    let total: usize = annotations
        .iter()
        .map(|(key, value)| key.len() + value.len())
        .sum();
    if total > TEMPLATE_ANNOTATIONS_MAX_TOTAL {
        problems.push(ObjectError::TemplateAnnotationsTooLarge { total });
    }
    problems
}

/// Checks the object-level names: name, namespace, labels and annotations.
/// Returns every problem, not only the first.
pub fn check_names(names: SecretNames<'_>) -> Vec<ObjectError> {
    let mut problems = Vec::new();
    if names.name.is_empty() {
        problems.push(ObjectError::MissingName);
    } else if let Err(err) = check_secret_name(names.name) {
        problems.push(err.into());
    }
    if names.namespace.is_empty() {
        if names.scope.binds_namespace() {
            problems.push(ObjectError::MissingNamespace(names.scope));
        }
    } else if let Err(err) = check_namespace(names.namespace) {
        problems.push(err.into());
    }
    if let Err(err) = check_labels(names.labels) {
        problems.push(err.into());
    }
    if let Err(err) = check_annotations(names.annotations) {
        problems.push(err.into());
    }
    problems
}

/// The one definition of a well-formed SealedSecret, used by `seal`,
/// `validate`, `inspect`, `rewrap`, `migrate` and the controller: a valid
/// name, a namespace when the scope binds it (valid when given), valid data
/// keys, template labels and annotations. An empty `encryptedData` is
/// well-formed: it makes a Secret without data, as `seal --allow-empty-data`
/// asks. Whether each sealed value parses is checked per value by the caller.
pub fn object_problems<'a>(
    names: SecretNames<'_>,
    keys: impl IntoIterator<Item = &'a str>,
) -> Vec<ObjectError> {
    let mut problems = check_names(names);
    problems.extend(template_limit_problems(names.labels, names.annotations));
    let mut more = 0;
    for key in keys {
        if let Err(err) = check_data_key(key) {
            if problems.len() < MAX_PROBLEMS {
                problems.push(err.into());
            } else {
                more += 1;
            }
        }
    }
    if more > 0 {
        problems.push(ObjectError::MoreProblems { count: more });
    }
    problems
}

/// [`object_problems`] of a SealedSecret, its value count
/// ([`crate::sealed_secret::MAX_VALUES`]) and the keys and annotations its
/// template's type requires ([`crate::secret_type::presence_problems`]):
/// everything that can be known without opening a value.
pub fn sealed_secret_problems(sealed: &SealedSecret) -> Vec<ObjectError> {
    let mut problems = sealed_names_problems(sealed);
    problems.extend(sealed_type_problems(sealed, |_| false));
    problems
}

/// [`sealed_secret_problems`] without the type's rules: for a merge, whose
/// new keys may be what the type requires.
pub fn sealed_names_problems(sealed: &SealedSecret) -> Vec<ObjectError> {
    let count = sealed.spec.encrypted_data.len();
    let mut problems: Vec<ObjectError> = (count > crate::sealed_secret::MAX_VALUES)
        .then_some(ObjectError::TooManyValues { count })
        .into_iter()
        .collect();
    problems.extend(sealed_object_problems(sealed));
    problems
}

/// The keys and annotations the template's type requires, counting a data
/// key as there when the SealedSecret holds it or `also_has` says so (the
/// keys a merge adds).
pub fn sealed_type_problems(
    sealed: &SealedSecret,
    also_has: impl Fn(&str) -> bool,
) -> Vec<ObjectError> {
    let empty = BTreeMap::new();
    let template = sealed.spec.template.as_ref();
    let annotations = template
        .and_then(|template| template.metadata.as_ref())
        .map_or(&empty, |metadata| &metadata.annotations);
    crate::secret_type::presence_problems(
        template.and_then(|template| template.type_.as_deref()),
        annotations,
        |key| sealed.spec.encrypted_data.contains_key(key) || also_has(key),
    )
    .into_iter()
    .map(ObjectError::from)
    .collect()
}

fn sealed_object_problems(sealed: &SealedSecret) -> Vec<ObjectError> {
    let empty = BTreeMap::new();
    let template_metadata = sealed
        .spec
        .template
        .as_ref()
        .and_then(|template| template.metadata.as_ref());
    object_problems(
        SecretNames {
            scope: sealed.spec.scope,
            name: sealed.metadata.name.as_deref().unwrap_or_default(),
            namespace: sealed.metadata.namespace.as_deref().unwrap_or_default(),
            labels: template_metadata.map_or(&empty, |metadata| &metadata.labels),
            annotations: template_metadata.map_or(&empty, |metadata| &metadata.annotations),
        },
        sealed.spec.encrypted_data.keys().map(String::as_str),
    )
    .into_iter()
    .chain(sealed.spec.parsed_max_age().err().map(ObjectError::from))
    .chain(sealed.spec.parsed_rollout().err().map(ObjectError::from))
    .chain(generated_problems(sealed))
    .collect()
}

/// `spec.generated`: each entry parses and names a value the object holds.
fn generated_problems(sealed: &SealedSecret) -> Vec<ObjectError> {
    sealed
        .spec
        .generated
        .iter()
        .filter_map(|(key, spec)| {
            let reason = match spec.parse::<crate::generate::Generator>() {
                Err(err) => err.to_string(),
                Ok(_) if !sealed.spec.encrypted_data.contains_key(key) => {
                    "no such key in spec.encryptedData".to_owned()
                }
                Ok(_) => return None,
            };
            Some(ObjectError::Generated {
                key: key.clone(),
                reason,
            })
        })
        .take(MAX_PROBLEMS)
        .collect()
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

    #[test]
    fn sealed_secret_problems_lists_each() {
        let mut sealed = SealedSecret::new("runnerToken", Default::default());
        sealed.metadata.namespace = Some("Gitlab_Runners".into());
        sealed
            .spec
            .encrypted_data
            .insert("..x".into(), "kseal:v1:x".into());
        let problems = sealed_secret_problems(&sealed);
        assert_eq!(problems.len(), 3, "{problems:?}");
        // Empty data is well-formed.
        let mut ok = SealedSecret::new("db", Default::default());
        ok.metadata.namespace = Some("app".into());
        assert!(sealed_secret_problems(&ok).is_empty());
        ok.metadata.namespace = None;
        assert_eq!(
            sealed_secret_problems(&ok),
            vec![ObjectError::MissingNamespace(Scope::Strict)]
        );
    }

    #[test]
    fn generated_records_name_held_keys_in_a_known_form() {
        let mut sealed = SealedSecret::new("db", crate::sealed_secret::SealedSecretSpec::default());
        sealed.metadata.namespace = Some("app".into());
        sealed
            .spec
            .encrypted_data
            .insert("password".into(), "kseal:v2:x".into());
        let problems = |generated: &[(&str, &str)]| -> Vec<String> {
            let mut sealed = sealed.clone();
            sealed.spec.generated = generated
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            generated_problems(&sealed)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        for good in ["alnum:32", "hex:1", "base64:4096", "uuid"] {
            assert!(problems(&[("password", good)]).is_empty(), "{good}");
        }
        let missing = problems(&[("other", "uuid")]);
        assert_eq!(
            missing,
            ["spec.generated.other: no such key in spec.encryptedData"]
        );
        for bad in ["alnum:0", "hex:4097", "uuid:4", "hunter2-secret", ""] {
            let found = problems(&[("password", bad)]);
            assert_eq!(found.len(), 1, "{bad}");
            assert!(
                found[0].starts_with("spec.generated.password: "),
                "{found:?}"
            );
            if bad.len() > 8 {
                assert!(!found[0].contains(bad), "{found:?}");
            }
        }
    }
}
