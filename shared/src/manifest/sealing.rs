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

/// Seals every value of a Secret. The caller has already stripped leaky
/// annotations (see [`PlainSecret::strip_leaky_annotations`]).
pub fn seal_secret(secret: &PlainSecret, options: SealOptions<'_>) -> Result<SealedSecret, String> {
    // The names Kubernetes would refuse, before anything is sealed (the
    // name and namespace are bound into every value).
    let problems = validation::object_problems(
        SecretNames {
            scope: options.scope,
            name: &secret.name,
            namespace: &secret.namespace,
            labels: &secret.labels,
            annotations: &secret.annotations,
        },
        secret.data.keys().map(String::as_str),
    );
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(problems.join("; "));
    }
    if secret.data.is_empty() && !options.allow_empty_data {
        return Err("the Secret has no data (pass --allow-empty-data to seal it anyway)".into());
    }
    if secret.data.len() > MAX_VALUES {
        return Err(format!(
            "the Secret has {} data keys; a SealedSecret holds at most {MAX_VALUES}",
            secret.data.len()
        ));
    }
    let mut encrypted_data = BTreeMap::new();
    for (key, value) in &secret.data {
        let binding = Binding::new(options.scope, &secret.namespace, &secret.name, key);
        let sealed = seal(value.expose(), &binding, options.recipients)
            .map_err(|err| format!("{key}: {err}"))?;
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
) -> Result<Vec<String>, String> {
    // The target and the new keys must be well-formed (one definition, see
    // `validation`): values are bound to these names.
    let mut problems = validation::sealed_secret_problems(existing);
    problems.extend(
        secret
            .data
            .keys()
            .filter_map(|key| validation::check_data_key(key).err())
            .map(validation::ObjectError::from),
    );
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(problems.join("; "));
    }
    let name = existing.metadata.name.clone().unwrap_or_default();
    let namespace = existing.metadata.namespace.clone().unwrap_or_default();
    if !secret.name.is_empty() && secret.name != name {
        return Err(format!(
            "the Secret is named {:?} but the SealedSecret {:?}",
            secret.name, name
        ));
    }
    if !secret.namespace.is_empty() && secret.namespace != namespace {
        return Err(format!(
            "the Secret is in namespace {:?} but the SealedSecret in {:?}",
            secret.namespace, namespace
        ));
    }
    let added = secret
        .data
        .keys()
        .filter(|key| !existing.spec.encrypted_data.contains_key(*key))
        .count();
    if existing.spec.encrypted_data.len() + added > MAX_VALUES {
        return Err(format!(
            "the SealedSecret would hold {} values; at most {MAX_VALUES}",
            existing.spec.encrypted_data.len() + added
        ));
    }
    let mut written = Vec::new();
    for (key, value) in &secret.data {
        let binding = Binding::new(existing.spec.scope, &namespace, &name, key);
        let sealed =
            seal(value.expose(), &binding, recipients).map_err(|err| format!("{key}: {err}"))?;
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

/// Unseals every value; on failure reports each value that failed.
pub fn unseal(sealed: &SealedSecret, keyring: &Keyring) -> Result<PlainSecret, Vec<KeyFailure>> {
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
        Err(failures)
    }
}
