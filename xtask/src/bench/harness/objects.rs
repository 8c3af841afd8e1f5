//! The generated objects: N Secrets of `values` values each, as Secrets
//! (the baseline) or sealed to the cluster's key, and their checks; trees
//! of object files, as a GitOps repository holds them.

use std::path::Path;

use anyhow::{Result, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kseal_shared::manifest::{PlainSecret, SealOptions, seal_secret};
use kseal_shared::{
    binding::Scope, sealed_secret::SealedSecret, secret::SecretBytes, x25519::Recipient,
};
use kube::Resource;

use super::cluster::NAMESPACE;

/// Bytes per generated value.
const VALUE_LEN: usize = 32;

/// The value of key `k` of object `i`: `VALUE_LEN` printable bytes.
pub fn value(i: usize, k: usize) -> String {
    let mut value = format!("v{i:06}-{k}-");
    while value.len() < VALUE_LEN {
        value.push(char::from(b'a' + ((i + k + value.len()) % 26) as u8));
    }
    value
}

/// The name of object `i`.
pub fn name(i: usize) -> String {
    format!("s{i:06}")
}

fn index_of(name: &str) -> Option<usize> {
    name.strip_prefix('s')?.parse().ok()
}

/// N Secrets in `namespace`, for the baseline.
pub fn baseline_secrets(namespace: &str, count: usize, values: usize) -> Vec<Secret> {
    (0..count)
        .map(|i| {
            let mut secret = Secret::default();
            secret.metadata.name = Some(name(i));
            secret.metadata.namespace = Some(namespace.to_owned());
            secret.type_ = Some("Opaque".to_owned());
            secret.data = Some(
                (0..values)
                    .map(|k| (format!("key{k}"), ByteString(value(i, k).into_bytes())))
                    .collect(),
            );
            secret
        })
        .collect()
}

/// Object `i` in [`NAMESPACE`], sealed to `recipients`.
fn sealed_secret(i: usize, values: usize, recipients: &[Recipient]) -> Result<SealedSecret> {
    seal(&name(i), (0..values).map(|k| value(i, k)), recipients)
}

/// A SealedSecret `name` in [`NAMESPACE`] (strict scope) holding the
/// `values` as `key0`, `key1`, …, sealed to `recipients`.
pub fn seal(
    name: &str,
    values: impl Iterator<Item = String>,
    recipients: &[Recipient],
) -> Result<SealedSecret> {
    let mut secret = PlainSecret {
        name: name.to_owned(),
        namespace: NAMESPACE.to_owned(),
        ..PlainSecret::default()
    };
    for (k, value) in values.enumerate() {
        secret
            .insert(&format!("key{k}"), SecretBytes::from(value.as_bytes()))
            .map_err(anyhow::Error::msg)?;
    }
    seal_secret(
        &secret,
        SealOptions {
            scope: Scope::Strict,
            recipients,
            allow_empty_data: false,
        },
    )
    .map_err(anyhow::Error::msg)
}

/// Makes `count` objects on every core, `make(i)` each, in order.
pub fn on_every_core<T: Send>(
    count: usize,
    make: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let indices: Vec<usize> = (0..count).collect();
    let make = &make;
    std::thread::scope(|scope| {
        let handles: Vec<_> = indices
            .chunks(count.div_ceil(threads).max(1))
            .map(|part| {
                scope.spawn(move || part.iter().map(|&i| make(i)).collect::<Result<Vec<T>>>())
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a sealing thread panicked"))??,
            );
        }
        Ok(all)
    })
}

/// Seals N objects on every core (before any clock starts).
pub fn sealed_secrets(
    count: usize,
    values: usize,
    recipients: &[Recipient],
) -> Result<Vec<SealedSecret>> {
    on_every_core(count, |i| sealed_secret(i, values, recipients))
}

/// Whether a Secret holds exactly the values of object `i`.
pub fn secret_correct(secret: &Secret, values: usize) -> bool {
    let Some(i) = secret.metadata.name.as_deref().and_then(index_of) else {
        return false;
    };
    let Some(data) = &secret.data else {
        return false;
    };
    data.len() == values
        && (0..values).all(|k| {
            data.get(&format!("key{k}"))
                .is_some_and(|v| v.0 == value(i, k).as_bytes())
        })
}

/// Whether a SealedSecret is `Ready=True` for its current generation.
pub fn sealed_ready(sealed: &SealedSecret) -> bool {
    sealed.status.as_ref().is_some_and(|status| {
        status.observed_generation.is_some()
            && status.observed_generation == sealed.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Writes each object to `<dir>/<name>.json` (one per file, as in a
/// GitOps repository); the files, in order.
pub fn write_tree<K>(dir: &Path, objects: &[K]) -> Result<Vec<std::path::PathBuf>>
where
    K: Resource + serde::Serialize,
{
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::with_capacity(objects.len());
    for object in objects {
        let name = object.meta().name.as_deref().unwrap_or_default();
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(object)?)?;
        files.push(file);
    }
    Ok(files)
}

/// The SealedSecrets of a tree's files (JSON or YAML).
pub fn read_tree(dir: &Path) -> Result<Vec<SealedSecret>> {
    let mut objects = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        objects.push(
            serde_json::from_str(&text)
                .or_else(|_| serde_saphyr::from_str(&text).map_err(anyhow::Error::from))?,
        );
    }
    Ok(objects)
}

/// Every file of the tree holds a SealedSecret whose values name only
/// `key_id`, and there are `n` of them.
pub fn check_tree(tree: &Path, n: usize, key_id: &str) -> Result<()> {
    let objects = read_tree(tree)?;
    for object in &objects {
        for value in object.spec.encrypted_data.values() {
            let parsed = kseal_shared::envelope::SealedValue::parse(value)?;
            let ids: Vec<String> = parsed.key_ids().iter().map(ToString::to_string).collect();
            if ids != [key_id] {
                bail!("a value is sealed to {ids:?}, not {key_id}");
            }
        }
    }
    if objects.len() != n {
        bail!("{} files, expected {n}", objects.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_names_and_checks() {
        assert_eq!(value(7, 2).len(), VALUE_LEN);
        assert_ne!(value(7, 2), value(7, 3));
        assert_eq!(index_of(&name(42)), Some(42));
        let secrets = baseline_secrets("ns", 3, 2);
        assert!(secrets.iter().all(|s| secret_correct(s, 2)));
        assert!(!secret_correct(&secrets[0], 3));
        let made = on_every_core(10, |i| Ok(i * 2)).unwrap();
        assert_eq!(made, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    }
}
