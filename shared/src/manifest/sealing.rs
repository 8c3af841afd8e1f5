//! Whole objects: a plain Secret sealed into a SealedSecret, a SealedSecret
//! unsealed back, values merged into an existing SealedSecret.

use std::collections::BTreeMap;

use kube::core::ObjectMeta;

use super::plain_secret::PlainSecret;
use crate::binding::{Binding, Scope};
use crate::envelope::{Keyring, SealedValue, open, seal};
use crate::error::SealError;
use crate::sealed_secret::{
    MAX_VALUES, SealedSecret, SealedSecretSpec, SecretTemplate, TemplateMetadata,
};
use crate::validation::{self, SecretNames};
use crate::x25519::Recipient;

/// How to seal a Secret.
#[derive(Clone, Copy, Debug)]
pub struct SealOptions<'a> {
    /// The scope every value is bound with.
    pub scope: Scope,
    /// Who can unseal: the data keys are wrapped to each.
    pub recipients: &'a [Recipient],
    /// Seal a Secret without any data (an error otherwise: usually a mistake).
    pub allow_empty_data: bool,
}

/// The binding of one value of a SealedSecret.
pub fn value_binding<'a>(sealed: &'a SealedSecret, key: &'a str) -> Binding<'a> {
    Binding::new(
        sealed.spec.scope,
        sealed.metadata.namespace.as_deref().unwrap_or_default(),
        sealed.metadata.name.as_deref().unwrap_or_default(),
        key,
    )
}

/// Why a Secret cannot be sealed, or merged into a SealedSecret. Messages
/// name fields and rules, never a value; callers add hints for their own
/// options (the CLI names its flags).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealingError {
    /// Names or keys Kubernetes would refuse (each problem, `; `-separated).
    #[error("{}", join_problems(.0))]
    Invalid(Vec<validation::ObjectError>),
    /// The Secret has no data, and empty data was not allowed.
    #[error("the Secret has no data")]
    NoData,
    /// More values than a SealedSecret may hold.
    #[error("{count} values; a SealedSecret holds at most {MAX_VALUES}")]
    TooManyValues {
        /// How many there would be.
        count: usize,
    },
    /// Merging a Secret of another name.
    #[error("the Secret is named {secret:?} but the SealedSecret {sealed:?}")]
    NameMismatch {
        /// The Secret's name.
        secret: String,
        /// The SealedSecret's name.
        sealed: String,
    },
    /// Merging a Secret of another namespace.
    #[error("the Secret is in namespace {secret:?} but the SealedSecret in {sealed:?}")]
    NamespaceMismatch {
        /// The Secret's namespace.
        secret: String,
        /// The SealedSecret's namespace.
        sealed: String,
    },
    /// Merging a Secret of another type than the SealedSecret's template
    /// (a type cannot change by a merge: the old values were sealed for
    /// the other).
    #[error(
        "the Secret is of type {secret:?} but the SealedSecret's template is of type {sealed:?}: a merge cannot change the type (leave the type out to merge into it, or seal a new object)"
    )]
    TypeMismatch {
        /// The Secret's type.
        secret: String,
        /// The template's type (`Opaque` when unset).
        sealed: String,
    },
    /// Sealing one value failed.
    #[error("{key}: {error}")]
    Value {
        /// The data key.
        key: String,
        /// Why.
        error: SealError,
    },
}

fn join_problems(problems: &[validation::ObjectError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Seals every value of a Secret. The caller has already stripped leaky
/// annotations (see [`PlainSecret::strip_leaky_annotations`]).
pub fn seal_secret(
    secret: &PlainSecret,
    options: SealOptions<'_>,
) -> Result<SealedSecret, SealingError> {
    // The names Kubernetes would refuse, before anything is sealed (the
    // name and namespace are bound into every value).
    let mut problems = validation::object_problems(
        SecretNames {
            scope: options.scope,
            name: &secret.name,
            namespace: &secret.namespace,
            labels: &secret.labels,
            annotations: &secret.annotations,
        },
        secret.data.keys().map(String::as_str),
    );
    // The type's rules (a tls Secret needs tls.crt and tls.key, …): what
    // the API server would refuse after commit, review and sync.
    problems.extend(
        crate::secret_type::secret_problems(
            secret.type_.as_deref(),
            &secret.annotations,
            &secret.data,
        )
        .into_iter()
        .map(validation::ObjectError::from),
    );
    if !problems.is_empty() {
        return Err(SealingError::Invalid(problems));
    }
    if secret.data.is_empty() && !options.allow_empty_data {
        return Err(SealingError::NoData);
    }
    if secret.data.len() > MAX_VALUES {
        return Err(SealingError::TooManyValues {
            count: secret.data.len(),
        });
    }
    let mut encrypted_data = BTreeMap::new();
    for (key, value) in &secret.data {
        let binding = Binding::new(options.scope, &secret.namespace, &secret.name, key);
        let sealed = seal(value.expose(), &binding, options.recipients).map_err(|error| {
            SealingError::Value {
                key: key.clone(),
                error,
            }
        })?;
        encrypted_data.insert(key.clone(), sealed.encode());
    }
    let metadata =
        (!secret.labels.is_empty() || !secret.annotations.is_empty()).then(|| TemplateMetadata {
            labels: secret.labels.clone(),
            annotations: secret.annotations.clone(),
        });
    let template = (secret.type_.is_some() || secret.immutable.is_some() || metadata.is_some())
        .then(|| SecretTemplate {
            type_: secret.type_.clone(),
            immutable: secret.immutable,
            metadata,
        });
    Ok(SealedSecret {
        metadata: ObjectMeta {
            name: Some(secret.name.clone()),
            namespace: (!secret.namespace.is_empty()).then(|| secret.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: SealedSecretSpec {
            scope: options.scope,
            encrypted_data,
            template,
            max_age: None,
            ..Default::default()
        },
        status: None,
    })
}

/// Seals the Secret's values into an existing SealedSecret, adding or
/// replacing those keys; every other value stays byte-identical. Returns the
/// keys written.
pub fn merge_into(
    existing: &mut SealedSecret,
    secret: &PlainSecret,
    recipients: &[Recipient],
) -> Result<Vec<String>, SealingError> {
    // The target and the new keys must be well-formed (one definition, see
    // `validation`): values are bound to these names.
    let mut problems = validation::sealed_names_problems(existing);
    problems.extend(
        secret
            .data
            .keys()
            .filter_map(|key| crate::names::check_data_key(key).err())
            .map(validation::ObjectError::from),
    );
    // The type's rules on the merged object: the keys it requires, among
    // the old values and the new ones, and what the new values hold.
    let template = existing.spec.template.as_ref();
    let type_ = template.and_then(|template| template.type_.as_deref());
    fn or_opaque(type_: Option<&str>) -> &str {
        match type_ {
            None | Some("") => "Opaque",
            Some(type_) => type_,
        }
    }
    let same_type = |a: Option<&str>, b: Option<&str>| or_opaque(a) == or_opaque(b);
    if secret.type_.is_some() && !same_type(secret.type_.as_deref(), type_) {
        return Err(SealingError::TypeMismatch {
            secret: secret.type_.clone().unwrap_or_default(),
            sealed: type_.unwrap_or("Opaque").to_owned(),
        });
    }
    let empty = BTreeMap::new();
    let annotations = template
        .and_then(|template| template.metadata.as_ref())
        .map_or(&empty, |metadata| &metadata.annotations);
    problems.extend(
        crate::secret_type::content_problems(
            type_,
            annotations,
            |key| existing.spec.encrypted_data.contains_key(key) || secret.data.contains_key(key),
            |key| secret.data.get(key).map(crate::secret::SecretBytes::expose),
        )
        .into_iter()
        .map(validation::ObjectError::from),
    );
    if !problems.is_empty() {
        return Err(SealingError::Invalid(problems));
    }
    let name = existing.metadata.name.clone().unwrap_or_default();
    let namespace = existing.metadata.namespace.clone().unwrap_or_default();
    if !secret.name.is_empty() && secret.name != name {
        return Err(SealingError::NameMismatch {
            secret: secret.name.clone(),
            sealed: name,
        });
    }
    if !secret.namespace.is_empty() && secret.namespace != namespace {
        return Err(SealingError::NamespaceMismatch {
            secret: secret.namespace.clone(),
            sealed: namespace,
        });
    }
    let added = secret
        .data
        .keys()
        .filter(|key| !existing.spec.encrypted_data.contains_key(*key))
        .count();
    if existing.spec.encrypted_data.len() + added > MAX_VALUES {
        return Err(SealingError::TooManyValues {
            count: existing.spec.encrypted_data.len() + added,
        });
    }
    let mut written = Vec::new();
    for (key, value) in &secret.data {
        let binding = Binding::new(existing.spec.scope, &namespace, &name, key);
        let sealed =
            seal(value.expose(), &binding, recipients).map_err(|error| SealingError::Value {
                key: key.clone(),
                error,
            })?;
        existing
            .spec
            .encrypted_data
            .insert(key.clone(), sealed.encode());
        written.push(key.clone());
    }
    Ok(written)
}

/// Why one value of a SealedSecret could not be unsealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFailure {
    /// The data key.
    pub key: String,
    /// Why it does not open.
    pub error: SealError,
}

/// Why a SealedSecret could not be unsealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    /// More values than a SealedSecret may hold: refused before any value
    /// is opened (docs/format.md §7).
    #[error("{count} values; a SealedSecret holds at most {MAX_VALUES}, so none was opened")]
    TooManyValues {
        /// How many there are.
        count: usize,
    },
    /// These values did not open (every one is tried).
    #[error("{} value(s) could not be unsealed", .0.len())]
    Values(Vec<KeyFailure>),
}

/// Unseals every value; on failure reports each value that failed. An
/// object over [`MAX_VALUES`] is refused before any value is opened.
pub fn unseal(sealed: &SealedSecret, keyring: &Keyring) -> Result<PlainSecret, UnsealError> {
    let count = sealed.spec.encrypted_data.len();
    if count > MAX_VALUES {
        return Err(UnsealError::TooManyValues { count });
    }
    let template = sealed.spec.template.clone().unwrap_or_default();
    let template_metadata = template.metadata.unwrap_or_default();
    let mut secret = PlainSecret {
        name: sealed.metadata.name.clone().unwrap_or_default(),
        namespace: sealed.metadata.namespace.clone().unwrap_or_default(),
        type_: template.type_,
        immutable: template.immutable,
        labels: template_metadata.labels,
        annotations: template_metadata.annotations,
        data: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    for (key, encoded) in &sealed.spec.encrypted_data {
        let result = SealedValue::parse(encoded)
            .and_then(|value| open(&value, &value_binding(sealed, key), keyring));
        match result {
            Ok(plaintext) => {
                secret.data.insert(key.clone(), plaintext);
            }
            Err(error) => failures.push(KeyFailure {
                key: key.clone(),
                error,
            }),
        }
    }
    if failures.is_empty() {
        Ok(secret)
    } else {
        Err(UnsealError::Values(failures))
    }
}
