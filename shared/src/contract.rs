//! The contract between the `kseal` CLI and `kseal-controller`: everything
//! kseal puts on a cluster besides the `SealedSecret` resource itself
//! ([`crate::sealed_secret`]), and the bodies of the controller's HTTP API.
//!
//! On a cluster, kseal keeps:
//! * **sealing keys**: Secrets of type [`SEALING_KEY_SECRET_TYPE`] in the
//!   controller's namespace, labelled [`SEALING_KEY_LABEL`]`=true`, with
//!   their [`KeyState`] in [`KEY_STATE_LABEL`], their key id in
//!   [`KEY_ID_LABEL`], their creation time and public key in annotations, and
//!   the age identity file under [`IDENTITY_DATA_KEY`];
//! * **the public keys**: the ConfigMap [`PUBLIC_KEYS_CONFIGMAP`] in the
//!   controller's namespace, readable by every authenticated user, with an age
//!   recipients file ([`RECIPIENTS_DATA_KEY`]) and the list of
//!   [`PublishedKey`]s ([`KEYS_DATA_KEY`]). Only the controller writes it:
//!   it is what `kseal seal` trusts as the cluster's keys, so the controller
//!   restores it at once when anyone else changes it, and records there the
//!   ids of every key it has held ([`HELD_KEYS_ANNOTATION`]);
//! * **key operations**: the ConfigMap [`KEY_OPERATIONS_CONFIGMAP`] in the
//!   controller's namespace, which key operators may write: they ask for a
//!   new key there ([`ROTATION_REQUEST_DATA_KEY`]), the controller records
//!   the last request it served ([`ROTATION_SERVED_DATA_KEY`]), and
//!   `kseal keys backup` records what it saved ([`LAST_BACKUP_ANNOTATION`]);
//! * **owned Secrets**: the Secrets made from SealedSecrets carry
//!   [`OWNED_LABEL`]; a Secret annotated [`MANAGED_ANNOTATION`]`="true"` may
//!   be taken over.
//!
//! Every `kseal.dev/` label and annotation is the controller's
//! ([`RESERVED_PREFIX`]): a SealedSecret can never put one on a Secret, and
//! [`SecretPolicy`] says what else a SealedSecret may create.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SealError;
use crate::x25519::KeyId;

/// The prefix of every label and annotation kseal itself sets.
pub const RESERVED_PREFIX: &str = "kseal.dev/";

/// Label (value `"true"`) on every sealing-key Secret:
/// `kubectl get secrets -l kseal.dev/sealing-key`.
pub const SEALING_KEY_LABEL: &str = "kseal.dev/sealing-key";
/// Label with a sealing key's [`KeyState`].
pub const KEY_STATE_LABEL: &str = "kseal.dev/key-state";
/// Label with a sealing key's [`KeyId`]. Not the stanza tag inside every
/// wrapped key, one letter longer
/// ([`crate::envelope::KEY_IDS_STANZA_TAG`], `kseal.dev/key-ids`).
pub const KEY_ID_LABEL: &str = "kseal.dev/key-id";
/// Annotation with a sealing key's creation time (RFC 3339, UTC).
pub const KEY_CREATED_ANNOTATION: &str = "kseal.dev/created-at";
/// Annotation with a sealing key's public key (`age1…`).
pub const KEY_RECIPIENT_ANNOTATION: &str = "kseal.dev/recipient";
/// Annotation on a sealing-key Secret: the rotation request (a
/// [`ROTATION_REQUEST_DATA_KEY`] value) it was made for, or `scheduled`.
pub const KEY_MADE_FOR_REQUEST_ANNOTATION: &str = "kseal.dev/rotation-request";
/// The `type` of sealing-key Secrets.
pub const SEALING_KEY_SECRET_TYPE: &str = "kseal.dev/sealing-key";
/// The data key of a sealing-key Secret that holds its age identity file.
pub const IDENTITY_DATA_KEY: &str = "identity.txt";

/// The ConfigMap, in the controller's namespace, with the public keys.
pub const PUBLIC_KEYS_CONFIGMAP: &str = "kseal-public-keys";
/// Its data key with an age recipients file: what to seal to.
pub const RECIPIENTS_DATA_KEY: &str = "recipients.txt";
/// Its data key with the JSON list of [`PublishedKey`]s.
pub const KEYS_DATA_KEY: &str = "keys.json";
/// Annotation on the public-key ConfigMap: the ids of every key the
/// controller has published (comma-separated, oldest first, never shrinks).
/// With no key Secret left, it tells a cluster whose keys were lost from a
/// new install, so lost keys are never silently replaced.
pub const HELD_KEYS_ANNOTATION: &str = "kseal.dev/held-key-ids";

/// The ConfigMap, in the controller's namespace, through which operators
/// ask the controller for things. The controller creates it; the chart's
/// key-operator role may get and patch it, and nothing else of kseal's.
pub const KEY_OPERATIONS_CONFIGMAP: &str = "kseal-key-operations";
/// Its data key with which an operator asks for a new key now (`kseal keys
/// rotate`); every new value is one request, served once.
pub const ROTATION_REQUEST_DATA_KEY: &str = "rotate-requested-at";
/// Its data key where the controller records the last request it served:
/// a request equal to it is never served again, even when every key Secret
/// (which also records its request) is gone.
pub const ROTATION_SERVED_DATA_KEY: &str = "rotation-served";
/// Annotation on the key-operations ConfigMap (written by earlier versions
/// on the public-key ConfigMap, where it is still read): a [`LastBackup`] as
/// JSON.
pub const LAST_BACKUP_ANNOTATION: &str = "kseal.dev/last-backup";

/// Label (value `"true"`) on every Secret the controller made from a
/// SealedSecret.
pub const OWNED_LABEL: &str = "kseal.dev/owned";
/// Annotation (value `"true"`) with which a user lets kseal take over an
/// existing Secret of the same name.
pub const MANAGED_ANNOTATION: &str = "kseal.dev/managed";
/// Annotation on every Secret kseal makes: a MAC, under a key derived from
/// the cluster's key, over the Secret's namespace and name. A Secret left
/// without an owner (`--cascade=orphan`) is adopted by a new SealedSecret
/// of its name only when this verifies, so a copy of a kseal Secret made
/// elsewhere (which keeps [`OWNED_LABEL`]) is never taken over.
pub const ORIGIN_ANNOTATION: &str = "kseal.dev/origin";
/// Pod-template annotation the controller sets to restart a workload that
/// reads a changed Secret (`spec.rollout`), as `kubectl rollout restart`
/// sets `kubectl.kubernetes.io/restartedAt`: the time, RFC 3339 in UTC.
pub const RESTARTED_AT_ANNOTATION: &str = "kseal.dev/restarted-at";
/// Pod-template annotation set with [`RESTARTED_AT_ANNOTATION`]: which
/// SealedSecrets changed which data keys, `db: password,user; api: token`
/// (names only, never a value; cut to [`RESTARTED_FOR_MAX`] bytes).
pub const RESTARTED_FOR_ANNOTATION: &str = "kseal.dev/restarted-for";
/// The longest [`RESTARTED_FOR_ANNOTATION`] kseal writes, in bytes: a pod
/// template's annotations count towards the API server's 256 KiB limit
/// and are copied to every pod.
pub const RESTARTED_FOR_MAX: usize = 1024;
/// Annotation on an owned Secret: the label and annotation keys kseal last
/// copied onto it from `spec.template.metadata`, as JSON
/// (`{"labels":["team"],"annotations":["owner"]}`, each list sorted). A
/// key removed from the template is removed from the Secret only when this
/// record names it, so labels and annotations that others add survive.
/// Absent when the template has no labels or annotations.
pub const TEMPLATE_METADATA_ANNOTATION: &str = "kseal.dev/template-metadata";

/// The namespace the chart installs the controller in by default.
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "kseal-system";
/// The controller's Service name in the chart's default install.
pub const DEFAULT_CONTROLLER_SERVICE: &str = "kseal-controller";
/// The name of the Service port the HTTP API is served on (for the API
/// server's service proxy: `services/<name>:http/proxy/…`).
pub const HTTP_PORT_NAME: &str = "http";

/// `GET`: the public keys as [`PublicKeysResponse`].
pub const PUBLIC_KEYS_PATH: &str = "/v1/public-keys";
/// `POST` a SealedSecret (JSON or YAML): a [`VerifyResponse`].
pub const VERIFY_PATH: &str = "/v1/verify";
/// `POST` a SealedSecret: the same object re-wrapped to the current sealing
/// key (`200`, with [`REWRAPPED_HEADER`]), or [`ValueFailures`] (`422`).
pub const REWRAP_PATH: &str = "/v1/rewrap";
/// Response header of [`REWRAP_PATH`]: how many values were re-wrapped.
pub const REWRAPPED_HEADER: &str = "x-kseal-rewrapped";
/// `POST` a [`RewrapBatchRequest`] (JSON): a [`RewrapBatchResponse`]
/// (`200`), one result per object, in order. Many objects in one request,
/// for bulk re-wrapping after a rotation: at most
/// [`crate::sealed_secret::MAX_VALUES`] values and as many objects in all,
/// charged as one request and the sum of the objects' work.
pub const REWRAP_BATCH_PATH: &str = "/v1/rewrap-batch";

/// Lifecycle state of a sealing key, as the [`KEY_STATE_LABEL`] and
/// [`PublishedKey::state`] spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyState {
    /// Published for sealing (the newest active key).
    Active,
    /// Kept to decrypt what is still sealed to it.
    DecryptOnly,
    /// No longer used; does not decrypt.
    Retired,
}

impl KeyState {
    /// Every state, in lifecycle order.
    pub const ALL: [KeyState; 3] = [KeyState::Active, KeyState::DecryptOnly, KeyState::Retired];

    /// The label value: `active`, `decrypt-only` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::DecryptOnly => "decrypt-only",
            KeyState::Retired => "retired",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so `{:<13}` lines up columns (`kseal keys list`).
        f.pad(self.as_str())
    }
}

/// A string that is not a [`KeyState`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a key state (expected active, decrypt-only or retired)")]
pub struct UnknownKeyState;

impl FromStr for KeyState {
    type Err = UnknownKeyState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or(UnknownKeyState)
    }
}

/// One sealing key as published in [`KEYS_DATA_KEY`] and
/// [`PublicKeysResponse::keys`]. Public facts only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedKey {
    /// The key id (16 lowercase hex digits).
    pub id: String,
    /// The public key, `age1…`.
    pub recipient: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Lifecycle state.
    pub state: KeyState,
}

/// What the last `kseal keys backup` saved ([`LAST_BACKUP_ANNOTATION`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    /// When, RFC 3339.
    pub at: String,
    /// The key ids the backup holds.
    pub key_ids: Vec<String>,
}

/// Body of [`PUBLIC_KEYS_PATH`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeysResponse {
    /// The recipients to seal to (`age1…`).
    pub recipients: Vec<String>,
    /// Every key that is not retired.
    pub keys: Vec<PublishedKey>,
}

/// Why one sealed value cannot be opened (or re-wrapped) by the controller.
/// The same names are the SealedSecret's `Ready` condition reasons, Event
/// reasons and metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueFailureReason {
    /// Not a well-formed sealed value.
    MalformedValue,
    /// Sealed only to keys the controller does not hold.
    UnknownKey,
    /// Sealed only to keys that were retired.
    RetiredKey,
    /// Tampered with, or moved to another key, name, namespace or scope.
    DecryptFailed,
    /// The object cannot bind a value (e.g. no namespace for its scope, a
    /// bad data key name).
    InvalidSpec,
}

impl ValueFailureReason {
    /// Every reason.
    pub const ALL: [ValueFailureReason; 5] = [
        ValueFailureReason::MalformedValue,
        ValueFailureReason::UnknownKey,
        ValueFailureReason::RetiredKey,
        ValueFailureReason::DecryptFailed,
        ValueFailureReason::InvalidSpec,
    ];

    /// The one mapping from a decryption error to a reason. `is_retired`
    /// says whether the controller retired a key: a value none of whose keys
    /// is held is [`RetiredKey`](Self::RetiredKey) when one of them was
    /// retired, else [`UnknownKey`](Self::UnknownKey).
    pub fn of(error: &SealError, is_retired: impl Fn(&KeyId) -> bool) -> Self {
        match error {
            SealError::NoMatchingIdentity { key_ids } if key_ids.iter().any(is_retired) => {
                ValueFailureReason::RetiredKey
            }
            SealError::NoMatchingIdentity { .. } => ValueFailureReason::UnknownKey,
            SealError::DecryptFailed | SealError::UnwrapFailed | SealError::CommitmentMismatch => {
                ValueFailureReason::DecryptFailed
            }
            SealError::InvalidBinding(_) => ValueFailureReason::InvalidSpec,
            SealError::NotSealedValue
            | SealError::UnsupportedVersion(_)
            | SealError::Malformed(_)
            | SealError::NoRecipients
            | SealError::TooLarge
            | SealError::Internal(_) => ValueFailureReason::MalformedValue,
        }
    }

    /// The CamelCase name.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFailureReason::MalformedValue => "MalformedValue",
            ValueFailureReason::UnknownKey => "UnknownKey",
            ValueFailureReason::RetiredKey => "RetiredKey",
            ValueFailureReason::DecryptFailed => "DecryptFailed",
            ValueFailureReason::InvalidSpec => "InvalidSpec",
        }
    }
}

impl fmt::Display for ValueFailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The controller's verdict on one value in a [`VerifyResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueVerdict {
    /// Whether the value opens.
    pub ok: bool,
    /// Why not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<ValueFailureReason>,
    /// A message for people (never a value), when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Body of [`VERIFY_PATH`]'s answer (`200` when every value opens, else
/// `422`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyResponse {
    /// Whether every value opens (false for an object without values).
    pub decryptable: bool,
    /// One verdict per data key.
    pub values: BTreeMap<String, ValueVerdict>,
    /// What the API server would refuse of the opened values for the
    /// object's type (a `.dockerconfigjson` that is not a JSON object, an
    /// empty `ssh-privatekey`; [`crate::secret_type`]), one sentence each,
    /// naming the rule but no value or position. Empty (and left out) when
    /// there is none; answers of older controllers have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Why one value failed, in [`ValueFailures`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueFailure {
    /// The reason.
    pub reason: ValueFailureReason,
    /// A message for people (never a value).
    pub message: String,
}

/// Body of a [`REWRAP_PATH`] answer with status `422`: the values that
/// cannot be re-wrapped, by data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueFailures {
    /// What went wrong as a whole.
    pub error: String,
    /// The failing values.
    pub values: BTreeMap<String, ValueFailure>,
}

/// Body of a [`REWRAP_BATCH_PATH`] request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RewrapBatchRequest {
    /// The SealedSecrets to re-wrap.
    pub items: Vec<crate::sealed_secret::SealedSecret>,
}

/// Body of a [`REWRAP_BATCH_PATH`] answer: one item per object sent, in the
/// same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewrapBatchResponse {
    /// The results.
    pub items: Vec<RewrapBatchItem>,
}

/// The result for one object of a [`RewrapBatchRequest`]: its new
/// `encryptedData` (every value re-wrapped to the current sealing keys, or
/// unchanged if already sealed to them), or the values that cannot be
/// re-wrapped (then nothing of the object is returned, as with
/// [`REWRAP_PATH`]'s `422`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewrapBatchItem {
    /// The object's new `spec.encryptedData`, when no value failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypted_data: Option<BTreeMap<String, String>>,
    /// How many values were re-wrapped (the others were current).
    #[serde(default)]
    pub rewrapped: usize,
    /// The failing values, by data key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, ValueFailure>,
}

/// Body of every other error answer of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong (never a value).
    pub error: String,
}

/// Secret types a SealedSecret may not produce unless the cluster operator
/// allows them ([`SecretPolicy::allow_types`]): another controller takes a
/// Secret of the type for privileged configuration, so whoever may create a
/// SealedSecret in a namespace could otherwise feed that controller. Each
/// entry names the consumer it is for (docs/security.md, "The Secret
/// policy"). This list and [`DANGEROUS_METADATA_PREFIXES`] are the only
/// copies: the controller's flags accept exactly their entries, and
/// `controller/tests/secret_policy_lists.rs` holds the chart's schema,
/// values and README and docs/security.md to them.
pub const DANGEROUS_SECRET_TYPES: [&str; 6] = [
    // Kubernetes' token controller fills it with a long-lived token of the
    // service account its annotation names.
    "kubernetes.io/service-account-token",
    // Node bootstrap credentials (kube-apiserver's bootstrap authenticator).
    "bootstrap.kubernetes.io/token",
    // Helm's release records: a forged one changes what the next
    // `helm upgrade` does.
    "helm.sh/release.v1",
    // Cluster API's ClusterResourceSet applies the objects held in Secrets of
    // this type to workload clusters; the type is its only gate.
    "addons.cluster.x-k8s.io/resource-set",
    // Cluster API's own Secrets: workload clusters' kubeconfigs, CA and etcd
    // keys, found by name.
    "cluster.x-k8s.io/secret",
    // Linkerd multicluster: the service mirror connects to the remote
    // cluster whose kubeconfig a Secret of this type holds.
    "mirror.linkerd.io/remote-kubeconfig",
];

/// Label and annotation key prefixes a SealedSecret may not put on its
/// Secret unless the operator allows them ([`SecretPolicy::allow_prefixes`]):
/// with such a key, another controller copies the Secret elsewhere or takes
/// it for privileged configuration. A whole key is listed as its own prefix
/// (it then also covers longer keys, which no consumer reads). Matching is
/// byte for byte, as the consumers match: the API server accepts a key's
/// prefix part in lower case only and never changes a key, and the name part
/// is case-sensitive (`istio/multicluster` is not `istio/multiCluster`, and
/// istiod ignores it). Keys are checked as labels and as annotations alike.
pub const DANGEROUS_METADATA_PREFIXES: [&str; 16] = [
    // Replicators: copy a Secret's data into other namespaces on request,
    // or another namespace's Secret into this one (`replicate-from`,
    // `reflects`).
    "replicator.v1.mittwald.de/",
    "reflector.v1.k8s.emberstack.com/",
    "kubed.appscode.com/",
    // Rancher copies a Secret with this label from a project's namespace
    // into every namespace of the project.
    "management.cattle.io/project-scoped-secret",
    // The annotations that tie a token Secret to a service account.
    "kubernetes.io/service-account.",
    // Argo CD reads Secrets with this label as cluster and repository
    // credentials.
    "argocd.argoproj.io/secret-type",
    // istiod reads Secrets with this label as remote clusters' kubeconfigs
    // and connects to them.
    "istio/multiCluster",
    // Kiali's remote-cluster Secrets (its default label), kubeconfigs too.
    "kiali.io/multiCluster",
    // cert-manager's cainjector copies `ca.crt` into the webhook, APIService
    // and CRD configurations that ask for it: from a Secret they name if it
    // is annotated `allow-direct-injection`, from a Certificate's Secret if
    // that is annotated `certificate-name` with the Certificate's name.
    "cert-manager.io/",
    // Cluster API's controllers cache, and so use, only Secrets labelled
    // `cluster.x-k8s.io/cluster-name`: workload clusters' kubeconfigs and
    // CAs.
    "cluster.x-k8s.io/",
    // Grafana's sidecar (kiwigrid k8s-sidecar; the Grafana chart's default
    // labels, any value) provisions Secrets so labelled as alerting rules
    // and contact points, dashboards, data sources, notifiers and plugins.
    "grafana_alert",
    "grafana_dashboard",
    "grafana_datasource",
    "grafana_notifier",
    "grafana_plugin",
    // Bitnami sealed-secrets takes a TLS Secret with this label in its
    // namespace for a sealing key and publishes it to every sealer, where
    // its controller still runs next to kseal's.
    "sealedsecrets.bitnami.com/sealed-secrets-key",
];

/// Labels (key, value) with which another tool takes a Secret for its own
/// record whatever its type, and the dangerous type whose allowance also
/// allows the label: Helm finds release records by `owner=helm` (then
/// `name`, `status`) and never checks the type, so a forged record needs
/// only the label.
pub const DANGEROUS_LABELS: [(&str, &str, &str); 1] = [("owner", "helm", "helm.sh/release.v1")];

/// What a SealedSecret may create: the Secret's type and the labels and
/// annotations of `spec.template`. `spec.template` is not authenticated (it
/// can be edited without the plaintext), so creating a SealedSecret in a
/// namespace is creating a Secret there, within this policy.
///
/// Always refused: the sealing-key type and any [`RESERVED_PREFIX`] label or
/// annotation. Refused unless allowed: [`DANGEROUS_SECRET_TYPES`],
/// [`DANGEROUS_METADATA_PREFIXES`] and [`DANGEROUS_LABELS`]. Everything else
/// is allowed: a deny-list of the consumers known to trust a Secret for its
/// type or keys, because templates carry labels and annotations of every
/// kind and the consumers of most are harmless or chosen per cluster (why
/// not an allow-list, and how an operator adds one: docs/security.md, "The
/// Secret policy").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretPolicy {
    /// Dangerous types the operator allows anyway.
    pub allow_types: BTreeSet<String>,
    /// Dangerous label/annotation prefixes the operator allows anyway.
    pub allow_prefixes: BTreeSet<String>,
}

/// Why [`SecretPolicy::check`] refuses a Secret. Names only keys and types,
/// which are public.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    /// The type of kseal's own sealing keys.
    #[error("Secret type {0:?} is reserved for kseal's sealing keys")]
    ReservedType(String),
    /// A dangerous type the operator has not allowed.
    #[error(
        "Secret type {0:?} is not allowed from a SealedSecret unless the cluster operator allows it"
    )]
    DeniedType(String),
    /// A `kseal.dev/` label or annotation.
    #[error("{what} {key:?} is reserved for kseal itself")]
    ReservedKey {
        /// `label` or `annotation`.
        what: &'static str,
        /// The key.
        key: String,
    },
    /// A label another tool reads as its own record.
    #[error(
        "label {key}={value} makes the Secret a {type_} record to other tools; not allowed from a SealedSecret unless the cluster operator allows that type"
    )]
    DeniedLabel {
        /// The label key.
        key: String,
        /// Its value.
        value: String,
        /// The type whose allowance allows it.
        type_: &'static str,
    },
    /// A dangerous prefix the operator has not allowed.
    #[error(
        "{what} {key:?} is not allowed from a SealedSecret unless the cluster operator allows the prefix {prefix:?}"
    )]
    DeniedPrefix {
        /// `label` or `annotation`.
        what: &'static str,
        /// The key.
        key: String,
        /// The dangerous prefix it starts with.
        prefix: &'static str,
    },
}

impl SecretPolicy {
    /// Checks the type, labels and annotations a SealedSecret asks for
    /// (`type_` is `Opaque` when unset).
    pub fn check<'a>(
        &self,
        type_: &str,
        labels: impl IntoIterator<Item = (&'a String, &'a String)>,
        annotations: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), PolicyViolation> {
        if type_ == SEALING_KEY_SECRET_TYPE || type_.starts_with(RESERVED_PREFIX) {
            return Err(PolicyViolation::ReservedType(type_.to_owned()));
        }
        if DANGEROUS_SECRET_TYPES.contains(&type_) && !self.allow_types.contains(type_) {
            return Err(PolicyViolation::DeniedType(type_.to_owned()));
        }
        let labels: Vec<(&String, &String)> = labels.into_iter().collect();
        for (key, value) in &labels {
            if let Some((_, _, allowed_by)) = DANGEROUS_LABELS
                .iter()
                .find(|(k, v, _)| key.as_str() == *k && value.as_str() == *v)
                && !self.allow_types.contains(*allowed_by)
            {
                return Err(PolicyViolation::DeniedLabel {
                    key: (*key).clone(),
                    value: (*value).clone(),
                    type_: allowed_by,
                });
            }
        }
        let keys = labels
            .into_iter()
            .map(|(key, _)| ("label", key))
            .chain(annotations.into_iter().map(|key| ("annotation", key)));
        for (what, key) in keys {
            if key.starts_with(RESERVED_PREFIX) {
                return Err(PolicyViolation::ReservedKey {
                    what,
                    key: key.clone(),
                });
            }
            // Any matching prefix the operator has not allowed refuses the
            // key, so allowing a broader prefix never allows a narrower one.
            if let Some(prefix) = DANGEROUS_METADATA_PREFIXES
                .iter()
                .find(|prefix| key.starts_with(**prefix) && !self.allow_prefixes.contains(**prefix))
            {
                return Err(PolicyViolation::DeniedPrefix {
                    what,
                    key: key.clone(),
                    prefix,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_states_round_trip_through_their_label_values() {
        for state in KeyState::ALL {
            assert_eq!(state.as_str().parse::<KeyState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{state}\""));
        }
        assert_eq!("Active".parse::<KeyState>(), Err(UnknownKeyState));
    }

    #[test]
    fn every_seal_error_has_a_value_reason() {
        let id: KeyId = "0123456789abcdef".parse().unwrap();
        let cases = [
            (
                SealError::NotSealedValue,
                ValueFailureReason::MalformedValue,
            ),
            (
                SealError::UnsupportedVersion("v9".into()),
                ValueFailureReason::MalformedValue,
            ),
            (
                SealError::Malformed("x"),
                ValueFailureReason::MalformedValue,
            ),
            (SealError::NoRecipients, ValueFailureReason::MalformedValue),
            (
                SealError::InvalidBinding("x".into()),
                ValueFailureReason::InvalidSpec,
            ),
            (
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                ValueFailureReason::UnknownKey,
            ),
            (SealError::UnwrapFailed, ValueFailureReason::DecryptFailed),
            (SealError::DecryptFailed, ValueFailureReason::DecryptFailed),
            (SealError::TooLarge, ValueFailureReason::MalformedValue),
            (SealError::Internal("x"), ValueFailureReason::MalformedValue),
        ];
        for (error, reason) in cases {
            assert_eq!(ValueFailureReason::of(&error, |_| false), reason, "{error}");
        }
        let retired = SealError::NoMatchingIdentity { key_ids: vec![id] };
        assert_eq!(
            ValueFailureReason::of(&retired, |candidate| *candidate == id),
            ValueFailureReason::RetiredKey
        );
        for reason in ValueFailureReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{reason}\""));
        }
    }

    #[test]
    fn verdicts_keep_their_wire_shape() {
        let ok = ValueVerdict {
            ok: true,
            reason: None,
            message: None,
        };
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#"{"ok":true}"#);
        let backup: LastBackup =
            serde_json::from_str(r#"{"at":"2026-01-01T00:00:00Z","keyIds":["a"]}"#).unwrap();
        assert_eq!(backup.key_ids, ["a"]);
    }

    #[test]
    fn policy_refuses_what_a_sealed_secret_must_not_create() {
        let none: [&String; 0] = [];
        let no_labels: [(&String, &String); 0] = [];
        let owned = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let valued = |keys: &[String]| {
            keys.iter()
                .map(|key| match key.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (key.clone(), "x".to_owned()),
                })
                .collect::<Vec<_>>()
        };
        let default = SecretPolicy::default();
        // (type, labels, annotations, refused?)
        let cases: &[(&str, &[&str], &[&str], bool)] = &[
            ("Opaque", &["app"], &["note"], false),
            ("kubernetes.io/tls", &[], &[], false),
            ("kubernetes.io/dockerconfigjson", &[], &[], false),
            ("kseal.dev/sealing-key", &[], &[], true),
            ("kseal.dev/anything", &[], &[], true),
            ("kubernetes.io/service-account-token", &[], &[], true),
            ("bootstrap.kubernetes.io/token", &[], &[], true),
            ("helm.sh/release.v1", &[], &[], true),
            ("Opaque", &["kseal.dev/sealing-key"], &[], true),
            ("Opaque", &["kseal.dev/key-state"], &[], true),
            ("Opaque", &[], &["kseal.dev/created-at"], true),
            ("Opaque", &[], &["kseal.dev/managed"], true),
            (
                "Opaque",
                &["kseal.devx/ok"],
                &["example.com/kseal.dev/ok"],
                false,
            ),
            (
                "Opaque",
                &[],
                &["replicator.v1.mittwald.de/replicate-to"],
                true,
            ),
            (
                "Opaque",
                &[],
                &["reflector.v1.k8s.emberstack.com/reflection-allowed"],
                true,
            ),
            ("Opaque", &["kubed.appscode.com/sync"], &[], true),
            ("Opaque", &[], &["kubernetes.io/service-account.name"], true),
            // Helm's release records by label, whatever the type.
            (
                "Opaque",
                &["owner=helm", "name=app", "status=deployed"],
                &[],
                true,
            ),
            ("Opaque", &["owner=team-a"], &[], false),
            (
                "Opaque",
                &["argocd.argoproj.io/secret-type=cluster"],
                &[],
                true,
            ),
        ];
        for (type_, labels, annotations, refused) in cases {
            let (labels, annotations) = (valued(&owned(labels)), owned(annotations));
            let result = default.check(type_, labels.iter().map(|(k, v)| (k, v)), &annotations);
            assert_eq!(
                result.is_err(),
                *refused,
                "{type_} {labels:?} {annotations:?}: {result:?}"
            );
        }
        let allowing = SecretPolicy {
            allow_types: ["kubernetes.io/service-account-token".to_owned()].into(),
            allow_prefixes: ["replicator.v1.mittwald.de/".to_owned()].into(),
        };
        assert!(
            allowing
                .check("kubernetes.io/service-account-token", no_labels, none)
                .is_ok()
        );
        let replicate = owned(&["replicator.v1.mittwald.de/replicate-to"]);
        assert!(allowing.check("Opaque", no_labels, &replicate).is_ok());
        let helm = valued(&owned(&["owner=helm"]));
        let helm = || helm.iter().map(|(k, v)| (k, v));
        assert!(default.check("Opaque", helm(), none).is_err());
        let helm_allowed = SecretPolicy {
            allow_types: ["helm.sh/release.v1".to_owned()].into(),
            ..SecretPolicy::default()
        };
        assert!(helm_allowed.check("Opaque", helm(), none).is_ok());
        // Reserved stays reserved whatever is allowed.
        let reserved = SecretPolicy {
            allow_types: ["kseal.dev/sealing-key".to_owned()].into(),
            allow_prefixes: ["kseal.dev/".to_owned()].into(),
        };
        assert!(
            reserved
                .check("kseal.dev/sealing-key", no_labels, none)
                .is_err()
        );
        let label = valued(&owned(&["kseal.dev/sealing-key"]));
        assert!(
            reserved
                .check("Opaque", label.iter().map(|(k, v)| (k, v)), none)
                .is_err()
        );
    }

    /// The consumers closed after review (security issue #23, item 5): each
    /// is refused by default as the consumer spells it, naming the entry
    /// that the operator can allow on its own; allowing one allows no other.
    #[test]
    fn policy_closes_the_known_consumers() {
        let none: [&String; 0] = [];
        let no_labels: [(&String, &String); 0] = [];
        // (label or annotation, key, value, the entry that refuses it)
        let keys: &[(&str, &str, &str, &str)] = &[
            ("label", "istio/multiCluster", "true", "istio/multiCluster"),
            (
                "label",
                "kiali.io/multiCluster",
                "true",
                "kiali.io/multiCluster",
            ),
            (
                "annotation",
                "cert-manager.io/allow-direct-injection",
                "true",
                "cert-manager.io/",
            ),
            (
                "annotation",
                "cert-manager.io/certificate-name",
                "webhook",
                "cert-manager.io/",
            ),
            ("label", "grafana_datasource", "1", "grafana_datasource"),
            ("label", "grafana_dashboard", "1", "grafana_dashboard"),
            ("label", "grafana_alert", "", "grafana_alert"),
            ("label", "grafana_notifier", "1", "grafana_notifier"),
            ("label", "grafana_plugin", "1", "grafana_plugin"),
            (
                "label",
                "cluster.x-k8s.io/cluster-name",
                "prod",
                "cluster.x-k8s.io/",
            ),
            (
                "label",
                "management.cattle.io/project-scoped-secret",
                "p-abcde",
                "management.cattle.io/project-scoped-secret",
            ),
            (
                "label",
                "sealedsecrets.bitnami.com/sealed-secrets-key",
                "active",
                "sealedsecrets.bitnami.com/sealed-secrets-key",
            ),
            // The same keys as the other kind of metadata: refused too.
            (
                "annotation",
                "istio/multiCluster",
                "true",
                "istio/multiCluster",
            ),
            (
                "label",
                "cert-manager.io/allow-direct-injection",
                "true",
                "cert-manager.io/",
            ),
        ];
        let default = SecretPolicy::default();
        for (what, key, value, entry) in keys {
            let (key, value) = (key.to_string(), value.to_string());
            let check = |policy: &SecretPolicy| match *what {
                "label" => policy.check("Opaque", [(&key, &value)], none),
                _ => policy.check("Opaque", no_labels, [&key]),
            };
            assert_eq!(
                check(&default),
                Err(PolicyViolation::DeniedPrefix {
                    what,
                    key: key.clone(),
                    prefix: entry,
                }),
                "{what} {key}"
            );
            let allowing = |entry: &str| SecretPolicy {
                allow_prefixes: [entry.to_owned()].into(),
                ..SecretPolicy::default()
            };
            assert_eq!(check(&allowing(entry)), Ok(()), "{what} {key}");
            for other in DANGEROUS_METADATA_PREFIXES.iter().filter(|o| *o != entry) {
                assert!(check(&allowing(other)).is_err(), "{key} allowed by {other}");
            }
        }
        for type_ in [
            "addons.cluster.x-k8s.io/resource-set",
            "cluster.x-k8s.io/secret",
            "mirror.linkerd.io/remote-kubeconfig",
        ] {
            assert_eq!(
                default.check(type_, no_labels, none),
                Err(PolicyViolation::DeniedType(type_.to_owned()))
            );
            let allowing = SecretPolicy {
                allow_types: [type_.to_owned()].into(),
                ..SecretPolicy::default()
            };
            assert_eq!(allowing.check(type_, no_labels, none), Ok(()));
        }
        // What templates ordinarily carry stays allowed, next to the entries
        // above: other keys of the same tools, other prefixes that end like
        // them, and a name part in another case (consumers match exactly).
        let labels = [
            "app",
            "team",
            "app.kubernetes.io/name",
            "app.kubernetes.io/part-of",
            "clusterctl.cluster.x-k8s.io/move",
            "controller.cert-manager.io/fao",
            "trust.cert-manager.io/bundle",
            "istio.io/rev",
            "istio/multicluster",
            "grafana",
            "kustomize.toolkit.fluxcd.io/name",
        ];
        let annotations = [
            "argocd.argoproj.io/sync-wave",
            "argocd.argoproj.io/compare-options",
            "helm.sh/resource-policy",
            "reloader.stakater.com/match",
            "kubernetes.io/description",
            "meta.helm.sh/release-name",
        ];
        let labels: Vec<(String, String)> = labels
            .iter()
            .map(|key| (key.to_string(), "x".to_owned()))
            .collect();
        let annotations: Vec<String> = annotations.iter().map(|key| key.to_string()).collect();
        assert_eq!(
            default.check("Opaque", labels.iter().map(|(k, v)| (k, v)), &annotations),
            Ok(())
        );
    }

    /// Every entry is the start of a key the API server accepts, so none is
    /// dead for a typo (an upper-case prefix part, a space).
    #[test]
    fn every_dangerous_prefix_can_start_a_real_key() {
        for entry in DANGEROUS_METADATA_PREFIXES {
            let key = format!("{entry}x");
            assert!(
                crate::names::check_label_key(&key).is_ok(),
                "{entry:?} starts no valid key"
            );
        }
        for (key, value, type_) in DANGEROUS_LABELS {
            assert!(crate::names::check_label_key(key).is_ok());
            assert!(crate::names::check_label_value(key, value).is_ok());
            assert!(DANGEROUS_SECRET_TYPES.contains(&type_));
        }
    }
}
