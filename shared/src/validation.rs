//! The one definition of a well-formed SealedSecret (and of a Secret about
//! to be sealed): names Kubernetes accepts ([`crate::names`]), a namespace
//! where the scope binds one, kseal's own limits on values and templates,
//! `spec.maxAge`, `spec.rollout` and `spec.generated` that parse, and what
//! the Secret's type requires ([`crate::secret_type`]).

use std::collections::BTreeMap;

use crate::binding::Scope;
use crate::names::{
    NameError, check_annotations, check_data_key, check_labels, check_namespace, check_secret_name,
};
use crate::sealed_secret::SealedSecret;

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
/// ([`crate::names::ANNOTATIONS_MAX_TOTAL`]), for the same reason as
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
