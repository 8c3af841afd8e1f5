//! Reading Bitnami sealed-secrets, to migrate them to kseal.
//!
//! Bitnami's `SealedSecret` (`bitnami.com/v1alpha1`) seals each value of
//! `spec.encryptedData` on its own ("hybrid encryption", see their
//! `pkg/crypto/crypto.go`):
//!
//! ```text
//! base64( u16be(len(R)) ‖ R ‖ G )
//! R = RSA-OAEP(SHA-256, MGF1-SHA-256, label)(session key)   -- 32 random bytes
//! G = AES-256-GCM(session key, nonce = 12 zero bytes, no associated data)(value)
//! ```
//!
//! The OAEP label binds the scope: `namespace/name` (strict), `namespace`
//! (namespace-wide, annotation `sealedsecrets.bitnami.com/namespace-wide:
//! "true"`) or empty (cluster-wide, `sealedsecrets.bitnami.com/cluster-wide:
//! "true"`), taken from the SealedSecret's own `metadata`, as Bitnami's
//! controller does. There is no key id: every private key is tried in turn.
//!
//! The private keys are what `kubectl get secret -n kube-system -l
//! sealedsecrets.bitnami.com/sealed-secrets-key -o yaml` exports: Secrets of
//! type `kubernetes.io/tls` whose `tls.key` is a PEM RSA private key.
//!
//! This module only decrypts; nothing here writes Bitnami's format. Plaintext
//! lives in [`SecretBytes`](crate::secret::SecretBytes) and session keys in
//! zeroizing buffers; no error message carries a value or key material.

mod object;
mod rsa_keys;
mod value;

use thiserror::Error;

pub use object::{BitnamiSealedSecret, Migrated, is_bitnami_sealed_secret};
pub use rsa_keys::{BitnamiKey, BitnamiKeyring};
pub use value::{decrypt_value, oaep_label};

use crate::manifest::ManifestError;

/// API group of Bitnami's resources.
pub const GROUP: &str = "bitnami.com";
/// The only `apiVersion` of Bitnami's SealedSecret, as written in manifests.
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
/// `kind` of Bitnami's SealedSecret.
pub const KIND: &str = "SealedSecret";
/// Prefix of Bitnami's annotations; none of them means anything to kseal.
pub const ANNOTATION_PREFIX: &str = "sealedsecrets.bitnami.com/";
/// `"true"` on a SealedSecret: sealed for any name in its namespace.
pub const NAMESPACE_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/namespace-wide";
/// `"true"` on a SealedSecret: sealed for any namespace.
pub const CLUSTER_WIDE_ANNOTATION: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Label of the Secrets that hold Bitnami's private keys.
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";

/// Problems with a Bitnami key file. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BitnamiKeyError {
    /// The file does not parse as YAML/JSON.
    #[error("{0}")]
    Manifest(ManifestError),
    /// One key (a Secret, a PEM block) is unusable; `location` says which.
    #[error("{location}: {reason}")]
    Invalid {
        /// Which key (file, document, Secret name).
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// No RSA private key in the input.
    #[error(
        "no RSA private key found (expected the Secrets `kubectl get secret -n kube-system -l {KEY_LABEL} -o yaml` exports, one such Secret, or a PEM private key)"
    )]
    NoKeys,
}

/// Why one value of a Bitnami SealedSecret could not be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ValueError {
    /// The value is not base64.
    #[error("not valid base64")]
    NotBase64,
    /// Shorter than the RSA-wrapped session key it must start with.
    #[error("too short to be a Bitnami sealed value")]
    TooShort,
    /// No given key opens it.
    #[error(
        "none of the {tried} given Bitnami key(s) decrypts it (sealed with another key, or for another name, namespace or scope)"
    )]
    NoMatchingKey {
        /// How many keys were tried.
        tried: usize,
    },
    /// The session key opens but the AES-GCM value does not.
    #[error("the session key decrypts but the value does not (corrupted or tampered with)")]
    Corrupt,
    /// The session key has another length than kubeseal's 32 bytes.
    #[error("the session key is {0} bytes; kubeseal writes 32")]
    BadSessionKey(usize),
}

/// Why a Bitnami SealedSecret cannot be migrated as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ObjectError {
    /// Another `apiVersion` than Bitnami's `bitnami.com/v1alpha1`.
    #[error("unsupported Bitnami SealedSecret apiVersion {0:?} (kseal reads {API_VERSION})")]
    UnsupportedVersion(String),
    /// The pre-v0.7 single-blob `spec.data`.
    #[error(
        "uses the deprecated single-blob spec.data format (sealed-secrets before v0.7), which kseal does not read; seal the Secret it produces in the cluster with `kseal seal` instead"
    )]
    LegacyData,
    /// `spec.template.data` templates, which kseal does not have.
    #[error(
        "spec.template.data templates key(s) {}, which kseal does not support; render them into plain values (unseal, edit, `kseal seal`)",
        .0.join(", ")
    )]
    TemplateData(Vec<String>),
    /// The object is not a usable SealedSecret.
    #[error("{0}")]
    Invalid(String),
    /// Some values do not decrypt, by data key.
    #[error("{}", describe_values(.0))]
    Values(Vec<(String, ValueError)>),
    /// Sealing the decrypted values for kseal failed.
    #[error("cannot seal for kseal: {0}")]
    Seal(crate::manifest::SealingError),
}

fn describe_values(failures: &[(String, ValueError)]) -> String {
    failures
        .iter()
        .map(|(key, error)| format!("key {key:?}: {error}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::{Aead, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce};
    use base64::Engine;
    use base64::prelude::BASE64_STANDARD;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
    use serde_json::{Value, json};
    use sha2::Sha256;

    use super::*;
    use crate::manifest::{DocumentKind, ManifestFile, unseal};
    use crate::{binding::Scope, envelope::Keyring, x25519::Identity};

    const KEY_A: &str = include_str!("testdata/key-a.pem");
    const KEY_A_PKCS1: &str = include_str!("testdata/key-a-pkcs1.pem");
    const KEY_B: &str = include_str!("testdata/key-b.pem");
    /// Written by kubeseal v0.36.6; see testdata/README.md.
    const SEALED: &str = include_str!("testdata/sealed.yaml");

    fn keyring(pems: &[&str]) -> BitnamiKeyring {
        let mut keyring = BitnamiKeyring::new();
        for pem in pems {
            keyring.add_text(pem).unwrap();
        }
        keyring
    }

    fn fixture() -> Vec<Value> {
        ManifestFile::new(SEALED)
            .objects()
            .unwrap()
            .into_iter()
            .map(|o| o.value)
            .collect()
    }

    /// Bitnami's HybridEncrypt, for values kubeseal cannot make (other
    /// labels, odd session keys).
    fn hybrid_encrypt(pem: &str, plaintext: &[u8], label: &str, session: &[u8]) -> String {
        let public = RsaPublicKey::from(RsaPrivateKey::from_pkcs8_pem(pem).unwrap());
        let padding = if label.is_empty() {
            Oaep::new::<Sha256>()
        } else {
            Oaep::new_with_label::<Sha256, _>(label)
        };
        let wrapped = public
            .encrypt(&mut rand::rngs::OsRng, padding, session)
            .unwrap();
        let mut out = (wrapped.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&wrapped);
        let key = [session, &[0u8; 32]].concat();
        let cipher = Aes256Gcm::new_from_slice(&key[..32]).unwrap();
        out.extend(cipher.encrypt(&Nonce::default(), plaintext).unwrap());
        BASE64_STANDARD.encode(out)
    }

    fn tls_secret(name: &str, pem: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "kube-system",
                         "labels": {KEY_LABEL: "active"}},
            "data": {"tls.crt": "", "tls.key": BASE64_STANDARD.encode(pem)}
        })
    }

    #[test]
    fn reads_pem_keys_pkcs1_and_pkcs8() {
        let mut keyring = BitnamiKeyring::new();
        assert_eq!(keyring.add_text(KEY_A).unwrap(), 1);
        // The same key in PKCS#1 is recognized as a duplicate.
        assert_eq!(keyring.add_text(KEY_A_PKCS1).unwrap(), 0);
        assert_eq!(keyring.len(), 1);
        assert_eq!(keyring.keys()[0].bits(), 2048);
        assert_eq!(keyring.keys()[0].origin(), "PEM block 1");
        // A certificate next to the key is skipped.
        let with_cert =
            format!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{KEY_B}");
        assert_eq!(keyring.add_text(&with_cert).unwrap(), 1);
        assert_eq!(keyring.keys()[1].origin(), "PEM block 2");
        assert_ne!(
            keyring.keys()[0].fingerprint(),
            keyring.keys()[1].fingerprint()
        );
    }

    #[test]
    fn reads_kubectl_exports() {
        let list = json!({"apiVersion": "v1", "kind": "List", "metadata": {},
            "items": [tls_secret("sealed-secrets-keyaaaaa", KEY_A),
                      tls_secret("sealed-secrets-keybbbbb", KEY_A_PKCS1),
                      tls_secret("sealed-secrets-keyccccc", KEY_B)]});
        let yaml = crate::manifest::to_yaml(&list).unwrap();
        let mut keyring = BitnamiKeyring::new();
        assert_eq!(keyring.add_text(&yaml).unwrap(), 2);
        assert_eq!(
            keyring.keys()[1].origin(),
            "document 1 (line 1), item 3 (kube-system/sealed-secrets-keyccccc), PEM block 1"
        );
        // One Secret, as JSON, and several YAML documents.
        let json = serde_json::to_string(&tls_secret("k", KEY_B)).unwrap();
        assert_eq!(BitnamiKeyring::new().add_text(&json).unwrap(), 1);
        let docs = format!(
            "{}---\n{}",
            crate::manifest::to_yaml(&tls_secret("a", KEY_A)).unwrap(),
            crate::manifest::to_yaml(&tls_secret("b", KEY_B)).unwrap()
        );
        assert_eq!(BitnamiKeyring::new().add_text(&docs).unwrap(), 2);
    }

    #[test]
    fn key_errors_name_the_place_and_no_material() {
        let err = |text: &str| {
            BitnamiKeyring::new()
                .add_text(text)
                .unwrap_err()
                .to_string()
        };
        assert!(err("").contains("no RSA private key"), "{}", err(""));
        let mut bad = tls_secret("broken", KEY_A);
        bad["data"]["tls.key"] = json!("not base64!");
        let yaml = format!("# keys\n---\n{}", crate::manifest::to_yaml(&bad).unwrap());
        let message = err(&yaml);
        assert_eq!(
            message,
            "document 1 (line 3) (kube-system/broken): data.tls.key is not valid base64"
        );
        // A damaged key: the message says which, quotes nothing.
        let damaged = KEY_A.replacen("MII", "MIJ", 1);
        let message = err(&damaged);
        assert!(
            message.contains("PEM block 1: not a valid PKCS#8"),
            "{message}"
        );
        assert!(!message.contains("MIJ"), "{message}");
        let message = err(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        assert!(message.contains("encrypted"), "{message}");
        let message = err("kind: ConfigMap\napiVersion: v1\n");
        assert!(message.contains("expected a v1 Secret"), "{message}");
        // Debug shows where a key came from, nothing of the key.
        let debug = format!("{:?}", keyring(&[KEY_A]));
        assert!(
            debug.contains("PEM block 1") && debug.contains("2048"),
            "{debug}"
        );
        assert!(debug.len() < 200, "{debug}");
    }

    #[test]
    fn migrates_what_kubeseal_wrote_in_every_scope() {
        let keyring = keyring(&[KEY_B, KEY_A]);
        let identity = Identity::generate();
        let recipients = [identity.recipient().clone()];
        let kseal_keys = Keyring::new([identity]);
        let objects = fixture();
        assert_eq!(objects.len(), 4);
        let scopes = [
            Scope::Strict,
            Scope::NamespaceWide,
            Scope::ClusterWide,
            Scope::Strict,
        ];
        for (value, scope) in objects.iter().zip(scopes) {
            assert!(is_bitnami_sealed_secret(value));
            assert_eq!(
                DocumentKind::of(value),
                DocumentKind::Other {
                    api_version: API_VERSION.into(),
                    kind: KIND.into()
                }
            );
            let bitnami = BitnamiSealedSecret::parse(value).unwrap();
            assert_eq!(bitnami.scope, scope);
            let migrated = bitnami.migrate(&keyring, &recipients).unwrap();
            assert_eq!(migrated.keys, ["bin", "password"]);
            assert_eq!(migrated.sealed.spec.scope, scope);
            // The scope annotation is now spec.scope: neither carried nor
            // reported as dropped.
            assert!(migrated.dropped_annotations.is_empty());
            assert_eq!(migrated.sealed.metadata.annotations, None);
            let secret = unseal(&migrated.sealed, &kseal_keys).unwrap();
            assert_eq!(secret.namespace, "app");
            assert_eq!(secret.data["bin"].expose(), &[0, 0xff, 0, 1]);
            assert_eq!(secret.data["password"].expose(), b"hunter2");
            assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
            assert_eq!(secret.labels["team"], "payments");
            assert_eq!(
                secret.annotations.keys().collect::<Vec<_>>(),
                ["note"],
                "Bitnami's annotations stay behind"
            );
        }
        // The last object was sealed with key B (given first), the others
        // with key A.
        let first = BitnamiSealedSecret::parse(&objects[0]).unwrap();
        let last = BitnamiSealedSecret::parse(&objects[3]).unwrap();
        assert_eq!(first.unseal(&keyring).unwrap().1, [1].into());
        assert_eq!(last.unseal(&keyring).unwrap().1, [0].into());
    }

    #[test]
    fn a_missing_key_fails_per_value() {
        let only_a = keyring(&[KEY_A]);
        let other = BitnamiSealedSecret::parse(&fixture()[3]).unwrap();
        let err = other.unseal(&only_a).unwrap_err();
        assert_eq!(
            err,
            ObjectError::Values(vec![
                ("bin".into(), ValueError::NoMatchingKey { tried: 1 }),
                ("password".into(), ValueError::NoMatchingKey { tried: 1 }),
            ])
        );
        assert!(
            err.to_string()
                .starts_with("key \"bin\": none of the 1 given"),
            "{err}"
        );
    }

    #[test]
    fn labels_bind_name_and_namespace_by_scope() {
        let keyring = keyring(&[KEY_A]);
        let objects = fixture();
        let moved = |index: usize, namespace: &str, name: &str| {
            let mut value = objects[index].clone();
            value["metadata"]["namespace"] = json!(namespace);
            value["metadata"]["name"] = json!(name);
            BitnamiSealedSecret::parse(&value).unwrap().unseal(&keyring)
        };
        // strict: neither may change.
        assert!(moved(0, "app", "other").is_err());
        assert!(moved(0, "elsewhere", "db").is_err());
        // namespace-wide: the name may change, the namespace not.
        assert!(moved(1, "app", "other").is_ok());
        assert!(moved(1, "elsewhere", "db").is_err());
        // cluster-wide: both may change.
        assert!(moved(2, "elsewhere", "other").is_ok());
        // Widening the scope by annotation does not open a strict value.
        let mut widened = objects[0].clone();
        widened["metadata"]["annotations"] = json!({CLUSTER_WIDE_ANNOTATION: "true"});
        assert!(
            BitnamiSealedSecret::parse(&widened)
                .unwrap()
                .unseal(&keyring)
                .is_err()
        );
    }

    #[test]
    fn tampering_is_detected() {
        let keyring = keyring(&[KEY_A]);
        let label = oaep_label(Scope::Strict, "ns", "n");
        let good = hybrid_encrypt(KEY_A, b"s3cr3t", &label, &[7; 32]);
        assert_eq!(
            decrypt_value(&keyring, &good, &label).unwrap().0.expose(),
            b"s3cr3t"
        );
        let mut bytes = BASE64_STANDARD.decode(&good).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let bad = BASE64_STANDARD.encode(&bytes);
        assert_eq!(
            decrypt_value(&keyring, &bad, &label).unwrap_err(),
            ValueError::Corrupt
        );
        assert_eq!(
            decrypt_value(&keyring, "AA==", &label).unwrap_err(),
            ValueError::TooShort
        );
        assert_eq!(
            decrypt_value(&keyring, "AAA", &label).unwrap_err(),
            ValueError::NotBase64
        );
        assert_eq!(
            decrypt_value(&keyring, "//8=", &label).unwrap_err(),
            ValueError::TooShort
        );
        let short_session = hybrid_encrypt(KEY_A, b"x", &label, &[7; 16]);
        assert_eq!(
            decrypt_value(&keyring, &short_session, &label).unwrap_err(),
            ValueError::BadSessionKey(16)
        );
        // Line breaks inside the base64 are tolerated, as Go does.
        let wrapped: String = good
            .as_bytes()
            .chunks(60)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert!(decrypt_value(&keyring, &wrapped, &label).is_ok());
    }

    fn object(spec: Value) -> Value {
        json!({"apiVersion": API_VERSION, "kind": KIND,
               "metadata": {"name": "n", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn unsupported_objects_are_refused() {
        let keyring = keyring(&[KEY_A]);
        let mut v1beta = object(json!({"encryptedData": {}}));
        v1beta["apiVersion"] = json!("bitnami.com/v1beta1");
        assert!(is_bitnami_sealed_secret(&v1beta));
        assert_eq!(
            BitnamiSealedSecret::parse(&v1beta).unwrap_err(),
            ObjectError::UnsupportedVersion("bitnami.com/v1beta1".into())
        );
        let legacy = object(json!({"data": "AAAA"}));
        assert_eq!(
            BitnamiSealedSecret::parse(&legacy).unwrap_err(),
            ObjectError::LegacyData
        );
        let label = oaep_label(Scope::Strict, "ns", "n");
        let value = hybrid_encrypt(KEY_A, b"pw", &label, &[1; 32]);
        let templated = object(json!({
            "encryptedData": {"pw": value, "unused": value},
            "template": {"data": {"dsn": "postgres://u:{{ .pw }}@db", "unused": null}}
        }));
        let parsed = BitnamiSealedSecret::parse(&templated).unwrap();
        assert_eq!(parsed.omitted_keys, ["unused"]);
        let err = parsed.unseal(&keyring).unwrap_err();
        assert_eq!(err, ObjectError::TemplateData(vec!["dsn".into()]));
        assert!(!err.to_string().contains("postgres"), "{err}");
        // Keys set to null are left out, as Bitnami does.
        let omitting = object(json!({
            "encryptedData": {"pw": value, "unused": value},
            "template": {"data": {"unused": null}}
        }));
        let (secret, _) = BitnamiSealedSecret::parse(&omitting)
            .unwrap()
            .unseal(&keyring)
            .unwrap();
        assert_eq!(secret.data.keys().collect::<Vec<_>>(), ["pw"]);
        // A strict object without a namespace cannot be bound.
        let mut no_namespace = object(json!({"encryptedData": {"pw": value}}));
        no_namespace["metadata"] = json!({"name": "n"});
        let err = BitnamiSealedSecret::parse(&no_namespace)
            .unwrap()
            .unseal(&keyring)
            .unwrap_err();
        assert!(
            err.to_string().contains("metadata.namespace is missing"),
            "{err}"
        );
        let err =
            BitnamiSealedSecret::parse(&object(json!({"encryptedData": {"k": 1}}))).unwrap_err();
        assert_eq!(err.to_string(), "spec.encryptedData.k is not a string");
    }

    #[test]
    fn object_metadata_is_carried_without_bitnami_annotations() {
        let keyring = keyring(&[KEY_A]);
        let label = oaep_label(Scope::NamespaceWide, "ns", "");
        let value = hybrid_encrypt(KEY_A, b"hunter2-canary", &label, &[2; 32]);
        let mut input = object(json!({
            "encryptedData": {"password": value},
            "template": {"immutable": true, "type": "Opaque", "metadata": {
                "name": "ignored", "creationTimestamp": null,
                "annotations": {"copy": "pw=hunter2-canary",
                                "sealedsecrets.bitnami.com/managed": "true",
                                NAMESPACE_WIDE_ANNOTATION: "true"}}}
        }));
        input["metadata"]["labels"] = json!({"app": "web"});
        input["metadata"]["annotations"] = json!({
            NAMESPACE_WIDE_ANNOTATION: "true",
            "argocd.argoproj.io/sync-wave": "-1",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        });
        let identity = Identity::generate();
        let migrated = BitnamiSealedSecret::parse(&input)
            .unwrap()
            .migrate(&keyring, &[identity.recipient().clone()])
            .unwrap();
        assert_eq!(
            migrated.dropped_annotations,
            [
                "copy",
                "kubectl.kubernetes.io/last-applied-configuration",
                "sealedsecrets.bitnami.com/managed"
            ]
        );
        let sealed = &migrated.sealed;
        assert_eq!(sealed.spec.scope, Scope::NamespaceWide);
        assert_eq!(sealed.metadata.labels.as_ref().unwrap()["app"], "web");
        assert_eq!(
            sealed
                .metadata
                .annotations
                .as_ref()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["argocd.argoproj.io/sync-wave"]
        );
        let template = sealed.spec.template.as_ref().unwrap();
        assert_eq!(template.immutable, Some(true));
        assert_eq!(template.metadata, None);
        let rendered = serde_json::to_string(&serde_json::to_value(sealed).unwrap()).unwrap();
        assert!(!rendered.contains("hunter2-canary"));
        assert!(!rendered.contains("bitnami"), "{rendered}");
    }
}
