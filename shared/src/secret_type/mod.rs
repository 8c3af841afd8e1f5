//! The API server's rules for the built-in Secret types: which data keys
//! and annotations each type requires, and what `.dockercfg` and
//! `.dockerconfigjson` must hold.
//!
//! The rules are those of `ValidateSecret` in `k8s.io/kubernetes`
//! `pkg/apis/core/validation` (the release in `tests/versions.env`); every
//! type and every rule has a row in `cli/tests/kubectl_parity.rs`, checked
//! against the real API server (`kubectl create --dry-run=server`). A type
//! Kubernetes does not know (`Opaque`, `bootstrap.kubernetes.io/token`, any
//! custom one) has no rule.
//!
//! Two depths of checking:
//! * [`presence_problems`]: the keys and annotations each type requires,
//!   which a SealedSecret shows without being opened (`validate`, the
//!   controller);
//! * [`secret_problems`]: the same, and what the values hold, on plaintext
//!   about to be sealed (`seal`, `seal --merge-into`) or opened by the
//!   controller (`validate --online`).

pub mod go_json;

use std::collections::BTreeMap;

use crate::secret::SecretBytes;
use go_json::JsonProblem;

/// `kubernetes.io/service-account-token`.
pub const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
/// `kubernetes.io/dockercfg`.
pub const DOCKERCFG: &str = "kubernetes.io/dockercfg";
/// `kubernetes.io/dockerconfigjson`.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// `kubernetes.io/basic-auth`.
pub const BASIC_AUTH: &str = "kubernetes.io/basic-auth";
/// `kubernetes.io/ssh-auth`.
pub const SSH_AUTH: &str = "kubernetes.io/ssh-auth";
/// `kubernetes.io/tls`.
pub const TLS: &str = "kubernetes.io/tls";

/// The annotation a service-account-token Secret must carry, non-empty.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";

/// Why a Secret of a built-in type would be refused by the API server.
/// Names the type, the field and the rule, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// A data key the type requires is missing.
    #[error("type {type_} requires data[{key}], which is missing")]
    MissingKey {
        /// The Secret type.
        type_: &'static str,
        /// The data key.
        key: &'static str,
    },
    /// A data key the type requires is there but empty (`ssh-privatekey`).
    #[error("type {type_} requires data[{key}] to be non-empty")]
    EmptyKey {
        /// The Secret type.
        type_: &'static str,
        /// The data key.
        key: &'static str,
    },
    /// `kubernetes.io/basic-auth` without `username` and without `password`.
    #[error("type {BASIC_AUTH} requires data[username] or data[password] (either may be empty)")]
    MissingCredentials,
    /// A service-account-token Secret without the service account's name.
    #[error(
        "type {SERVICE_ACCOUNT_TOKEN} requires the annotation {SERVICE_ACCOUNT_NAME_ANNOTATION}, non-empty"
    )]
    MissingServiceAccountName,
    /// `.dockercfg` or `.dockerconfigjson` is not a JSON object.
    #[error("type {type_} requires data[{key}] to be a JSON object, but {problem}")]
    NotJsonObject {
        /// The Secret type.
        type_: &'static str,
        /// The data key.
        key: &'static str,
        /// What is wrong, with a byte offset at most.
        problem: JsonProblem,
    },
}

impl TypeError {
    /// The message without a byte position: for answers about values the
    /// asker may not hold (the controller's `/v1/verify`), which must not
    /// tell where a syntax error lies.
    pub fn without_position(&self) -> String {
        match self {
            TypeError::NotJsonObject { type_, key, .. } => {
                format!("type {type_} requires data[{key}] to be a JSON object, and it is not")
            }
            other => other.to_string(),
        }
    }
}

/// Whether the type's content rules read the value under `key` (the JSON
/// of `.dockercfg` / `.dockerconfigjson`, the length of `ssh-privatekey`).
pub fn reads_content(type_: Option<&str>, key: &str) -> bool {
    match requirement(type_) {
        Requirement::JsonObject(_, wanted) | Requirement::NonEmpty(_, wanted) => key == wanted,
        _ => false,
    }
}

/// What a built-in type requires.
enum Requirement {
    /// Nothing (`Opaque`, an empty type, any type Kubernetes does not know).
    Nothing,
    /// The annotation [`SERVICE_ACCOUNT_NAME_ANNOTATION`], non-empty.
    ServiceAccountName,
    /// This key, holding a JSON object.
    JsonObject(&'static str, &'static str),
    /// `username` or `password`.
    Credentials,
    /// This key, non-empty.
    NonEmpty(&'static str, &'static str),
    /// Each of these keys, any value.
    Keys(&'static str, &'static [&'static str]),
}

fn requirement(type_: Option<&str>) -> Requirement {
    match type_.unwrap_or_default() {
        SERVICE_ACCOUNT_TOKEN => Requirement::ServiceAccountName,
        DOCKERCFG => Requirement::JsonObject(DOCKERCFG, ".dockercfg"),
        DOCKER_CONFIG_JSON => Requirement::JsonObject(DOCKER_CONFIG_JSON, ".dockerconfigjson"),
        BASIC_AUTH => Requirement::Credentials,
        SSH_AUTH => Requirement::NonEmpty(SSH_AUTH, "ssh-privatekey"),
        TLS => Requirement::Keys(TLS, &["tls.crt", "tls.key"]),
        _ => Requirement::Nothing,
    }
}

/// The rules a SealedSecret shows without being opened: the keys and
/// annotations its type requires. `has_key` says whether a data key is
/// there (a value's content is not looked at).
pub fn presence_problems(
    type_: Option<&str>,
    annotations: &BTreeMap<String, String>,
    has_key: impl Fn(&str) -> bool,
) -> Vec<TypeError> {
    match requirement(type_) {
        Requirement::Nothing => Vec::new(),
        Requirement::ServiceAccountName => annotations
            .get(SERVICE_ACCOUNT_NAME_ANNOTATION)
            .is_none_or(String::is_empty)
            .then_some(TypeError::MissingServiceAccountName)
            .into_iter()
            .collect(),
        Requirement::JsonObject(type_, key) | Requirement::NonEmpty(type_, key) => (!has_key(key))
            .then_some(TypeError::MissingKey { type_, key })
            .into_iter()
            .collect(),
        Requirement::Credentials => (!has_key("username") && !has_key("password"))
            .then_some(TypeError::MissingCredentials)
            .into_iter()
            .collect(),
        Requirement::Keys(type_, keys) => keys
            .iter()
            .filter(|key| !has_key(key))
            .map(|&key| TypeError::MissingKey { type_, key })
            .collect(),
    }
}

/// Every rule of the type, on values at hand: [`presence_problems`], then
/// what the values hold (a JSON object, a non-empty key). `value` gives a
/// data key's bytes; `None` for a key that is there but not at hand (a
/// sealed value not opened), which passes the content rules.
pub fn content_problems<'a>(
    type_: Option<&str>,
    annotations: &BTreeMap<String, String>,
    has_key: impl Fn(&str) -> bool,
    value: impl Fn(&str) -> Option<&'a [u8]>,
) -> Vec<TypeError> {
    let mut problems = presence_problems(type_, annotations, &has_key);
    if !problems.is_empty() {
        return problems;
    }
    match requirement(type_) {
        Requirement::JsonObject(type_, key) => {
            if let Some(Err(problem)) = value(key).map(go_json::check_object) {
                problems.push(TypeError::NotJsonObject {
                    type_,
                    key,
                    problem,
                });
            }
        }
        Requirement::NonEmpty(type_, key) if value(key).is_some_and(<[u8]>::is_empty) => {
            problems.push(TypeError::EmptyKey { type_, key });
        }
        _ => {}
    }
    problems
}

/// [`content_problems`] of a whole plaintext Secret.
pub fn secret_problems(
    type_: Option<&str>,
    annotations: &BTreeMap<String, String>,
    data: &BTreeMap<String, SecretBytes>,
) -> Vec<TypeError> {
    content_problems(
        type_,
        annotations,
        |key| data.contains_key(key),
        |key| data.get(key).map(SecretBytes::expose),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(keys: &[(&str, &[u8])]) -> BTreeMap<String, SecretBytes> {
        keys.iter()
            .map(|(key, value)| ((*key).to_owned(), SecretBytes::from(*value)))
            .collect()
    }

    #[test]
    fn each_type_s_rule() {
        let none = BTreeMap::new();
        let sa: BTreeMap<String, String> = [(
            SERVICE_ACCOUNT_NAME_ANNOTATION.to_owned(),
            "builder".to_owned(),
        )]
        .into();
        let empty_sa: BTreeMap<String, String> =
            [(SERVICE_ACCOUNT_NAME_ANNOTATION.to_owned(), String::new())].into();
        type Case<'a> = (
            Option<&'a str>,
            &'a BTreeMap<String, String>,
            Vec<(&'a str, &'a [u8])>,
            usize,
        );
        let cases: Vec<Case> = vec![
            (None, &none, vec![], 0),
            (Some("Opaque"), &none, vec![], 0),
            (Some("example.com/custom"), &none, vec![], 0),
            (Some("bootstrap.kubernetes.io/token"), &none, vec![], 0),
            (
                Some(TLS),
                &none,
                vec![("tls.crt", b""), ("tls.key", b"")],
                0,
            ),
            (Some(TLS), &none, vec![("tls.crt", b"c")], 1),
            (Some(TLS), &none, vec![], 2),
            (
                Some(DOCKER_CONFIG_JSON),
                &none,
                vec![(".dockerconfigjson", b"{}")],
                0,
            ),
            (
                Some(DOCKER_CONFIG_JSON),
                &none,
                vec![(".dockerconfigjson", b"nope")],
                1,
            ),
            (
                Some(DOCKER_CONFIG_JSON),
                &none,
                vec![(".dockercfg", b"{}")],
                1,
            ),
            (Some(DOCKERCFG), &none, vec![(".dockercfg", b"null")], 0),
            (Some(DOCKERCFG), &none, vec![(".dockercfg", b"[]")], 1),
            (Some(BASIC_AUTH), &none, vec![("password", b"")], 0),
            (Some(BASIC_AUTH), &none, vec![("username", b"u")], 0),
            (Some(BASIC_AUTH), &none, vec![("user", b"u")], 1),
            (Some(SSH_AUTH), &none, vec![("ssh-privatekey", b"k")], 0),
            (Some(SSH_AUTH), &none, vec![("ssh-privatekey", b"")], 1),
            (Some(SSH_AUTH), &none, vec![], 1),
            (Some(SERVICE_ACCOUNT_TOKEN), &sa, vec![], 0),
            (Some(SERVICE_ACCOUNT_TOKEN), &empty_sa, vec![], 1),
            (Some(SERVICE_ACCOUNT_TOKEN), &none, vec![("token", b"t")], 1),
        ];
        for (type_, annotations, values, expected) in cases {
            let problems = secret_problems(type_, annotations, &data(&values));
            assert_eq!(
                problems.len(),
                expected,
                "{type_:?} {values:?}: {problems:?}"
            );
        }
    }

    #[test]
    fn presence_does_not_open_values() {
        let none = BTreeMap::new();
        // A sealed .dockerconfigjson or ssh-privatekey is there: its content
        // is for whoever can open it.
        for (type_, key) in [
            (DOCKER_CONFIG_JSON, ".dockerconfigjson"),
            (SSH_AUTH, "ssh-privatekey"),
        ] {
            assert!(presence_problems(Some(type_), &none, |k| k == key).is_empty());
            assert_eq!(presence_problems(Some(type_), &none, |_| false).len(), 1);
        }
    }

    #[test]
    fn messages_name_type_and_key() {
        let none = BTreeMap::new();
        let problems = secret_problems(
            Some(DOCKER_CONFIG_JSON),
            &none,
            &data(&[(".dockerconfigjson", b"hunter2")]),
        );
        let message = problems[0].to_string();
        assert!(
            message.contains("kubernetes.io/dockerconfigjson"),
            "{message}"
        );
        assert!(message.contains("data[.dockerconfigjson]"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
