//! The command line, defined once: parsing, `--help`, completions and the
//! man page all come from these types.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use kseal_shared::sealed_secret::{ROLLOUT_ALL_CONSUMERS, ROLLOUT_ENV_CONSUMERS, Rollout};

use crate::cluster::ClusterArgs;

#[derive(Debug, Parser)]
#[command(
    name = "kseal",
    version,
    long_version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (commit ",
        env!("KSEAL_GIT_COMMIT"),
        ")"
    ),
    about = "Seal Kubernetes Secrets into SealedSecrets that are safe to commit",
    long_about = "kseal encrypts Kubernetes Secrets to a cluster's age public keys. The resulting \
SealedSecret manifests are safe to keep in git; only the cluster's controller (or someone \
holding a backed-up key) can turn them back into Secrets.",
    after_help = "Exit status: 0 on success, 1 on failure, 2 on a usage error. `check`, a gate, \
exits 1 when it finds something (a plaintext Secret, a value due for rotation, …; see `kseal \
check --help`) and 2 on every other failure (a path or document it could not read, a usage \
error, …), as grep and ripgrep do.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a new age X25519 identity (cluster or recovery key)
    Keygen(KeygenArgs),
    /// Seal Secret manifests (or literals and files) into SealedSecrets
    // Boxed: by far the largest (clippy::large_enum_variant).
    Seal(Box<SealArgs>),
    /// Decrypt SealedSecrets back into Secret manifests with a private key (recovery)
    Unseal(UnsealArgs),
    /// Re-wrap every value's data key to new recipients (offline), or from the cluster's old keys to its current one (--online)
    Rewrap(RewrapArgs),
    /// Convert Bitnami SealedSecrets into kseal SealedSecrets, offline
    Migrate(MigrateArgs),
    /// Show scope, names, key ids, format version and age of sealed values, without decrypting
    Inspect(InspectArgs),
    /// Check that SealedSecrets are well-formed (offline), or that the cluster can decrypt them (--online)
    Validate(ValidateArgs),
    /// Print the cluster's public keys as an age recipients file (for pinning in the repo)
    FetchKeys(FetchKeysArgs),
    /// Manage the cluster's sealing keys
    Keys(KeysArgs),
    /// Keep the cluster keys pinned in recipients files current (.kseal.yaml rules with `context:`)
    Pins(PinsArgs),
    /// Replace generated values (seal --generate) with new random ones: named keys, or those due for rotation
    Regenerate(RegenerateArgs),
    /// Find plaintext Secret manifests, sealed values due for rotation, and Secrets read through env (pre-commit, CI)
    Check(CheckArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff)
    #[command(hide = true)]
    Man,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Write the identity to FILE (created with mode 0600) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite FILE if it exists
    #[arg(long, requires = "output")]
    pub force: bool,
}

/// Where recipients come from when no flag gives them: `.kseal.yaml`.
#[derive(Debug, Args, Clone, Default)]
pub struct RecipientArgs {
    /// An age recipient (age1…) to seal to; repeatable
    #[arg(short = 'r', long = "recipient", value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Every recipient in FILE (age recipients-file format), as with -r; repeatable
    #[arg(short = 'R', long = "recipients-file", value_name = "FILE")]
    pub recipients_files: Vec<PathBuf>,
    /// Say on stderr where the recipients came from (flags, which .kseal.yaml and rule, or the cluster)
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct IdentityArgs {
    /// Private key file as written by `kseal keygen` or `age-keygen`; repeatable
    #[arg(short = 'i', long = "identity", value_name = "FILE", required = true)]
    pub identities: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the keys: id, state, creation time, and how many SealedSecrets use each
    List(ListKeysArgs),
    /// Have the controller generate a new active key now (the CLI never sees private keys)
    Rotate(RotateArgs),
    /// Retire a key so it no longer decrypts (refused while SealedSecrets still need it)
    Retire(RetireArgs),
    /// Export every key, in every state, encrypted to an offline recovery recipient
    Backup(BackupArgs),
    /// Put keys from a backup back into a (new) cluster
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Besides the keys the cluster holds, the list shows keys that SealedSecrets \
still use but the cluster no longer holds: state `deleted` when the cluster held the key once \
(kseal.dev/held-key-ids on its public-key ConfigMap); `other` for a key it never held that \
every value naming it pairs with a key the cluster decrypts with (an offline recovery key, \
another cluster's: expected, no warning); `unknown` otherwise (a warning names the \
SealedSecrets the cluster cannot decrypt). Reads only the public-key ConfigMaps and \
SealedSecrets, never a key Secret.

-o json prints an array, one object per row, in the table's order:
  [{\"id\": \"0123456789abcdef\", \"state\": \"active\", \"created\": \"2026-01-01T00:00:00Z\",
    \"sealedSecrets\": 2, \"users\": [\"app/api\", \"app/db\"]}]
state: active, decrypt-only, retired, deleted, other or unknown; created: RFC 3339, or null \
when not known (keys the cluster does not hold); sealedSecrets: how many SealedSecrets have values sealed to the \
key; users: those SealedSecrets as namespace/name, sorted. Warnings still go to stderr."
)]
pub struct ListKeysArgs {
    /// Output format: table, or json (see below)
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = KeysListFormat::Table)]
    pub output: KeysListFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `kseal keys list --output`.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum KeysListFormat {
    #[default]
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// The key id (16 hex digits, as `kseal keys list` shows)
    #[arg(value_name = "KEY_ID")]
    pub key_id: String,
    /// Retire even though SealedSecrets still need the key (they will fail to unseal)
    #[arg(long)]
    pub force: bool,
    /// Delete the key Secret instead of keeping it as retired (irreversible without a backup)
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Write the encrypted backup to FILE (mode 0600, atomically)
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file written by `kseal keys backup`
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The recovery identity the backup is encrypted to; repeatable
    #[arg(short = 'i', long = "identity", value_name = "FILE", required = true)]
    pub identities: Vec<PathBuf>,
    /// Restore each key in the state the backup records (active,
    /// decrypt-only, retired). Without it every key comes back
    /// decrypt-only: a backup is encrypted to a public key, so anyone could
    /// have written it, and a restored key should not become the one new
    /// Secrets are sealed to by accident
    #[arg(long)]
    pub keep_states: bool,
    /// Decrypt the backup and show, one line per key, what would be
    /// installed: its id, public key, creation time and state, and whether
    /// the cluster already has it or another Secret holds its name. Installs
    /// nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// How long to wait for the new key to be published
    #[arg(long, default_value_t = 60)]
    pub timeout_seconds: u64,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct FetchKeysArgs {
    /// Write the recipients file to FILE (atomically) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Yaml,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ScopeArg {
    Strict,
    NamespaceWide,
    ClusterWide,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Generated values (--generate KEY=SPEC) are random values that nobody sees: \
kseal draws them from the operating system's CSPRNG, seals them, and never prints, logs or \
writes them anywhere else. SPEC is hex:N or base64:N (N random bytes, hex or standard \
base64), alnum:N (N characters of [A-Za-z0-9], uniformly) or uuid (a random version 4 UUID); \
N from 1 to 4096. A SPEC must hold at least 128 bits of randomness: hex:16, base64:16, \
alnum:22 or more, or uuid (122 bits); --allow-weak allows less, for a legacy system that \
takes only a short PIN-like value. The SealedSecret records each in spec.generated (KEY: SPEC), so `kseal \
regenerate` can replace it with a new value of the same form; a key sealed later from \
another source loses its record. A key may come from one source only. Without -f, \
--generate builds the Secret from flags as --from-literal does (stdin is not read: a file \
redirected in is refused, a pipe warned about, rather than dropped); with -f FILE, or -f - for stdin, it adds to the one \
Secret of the manifest.

--rollout and --max-age set spec.rollout and spec.maxAge of every SealedSecret written, \
and with --merge-into replace them in the file, changing only that line. --max-age takes \
the place of the .kseal.yaml rule's max_age in spec.maxAge; `kseal check --rotation` still \
judges each value by the stricter of the two.

Examples:
  kseal seal -f secret.yaml -o sealed.yaml
  kubectl create secret generic db --from-literal=password=s3cr3t --dry-run=client -o yaml | kseal seal
  kseal seal --name db --namespace app --from-literal password=s3cr3t --merge-into sealed.yaml
  kseal seal --raw --name db --namespace app --from-file password=./pw.txt
  kseal seal --name db --namespace app --from-literal username=app --generate password=alnum:32 -o db.sealed.yaml
  kseal seal --name api --namespace app --generate signing-key=base64:32 --merge-into api.sealed.yaml
  kseal seal --name db --namespace app --generate password=alnum:32 --rollout EnvConsumers --max-age 90d -o db.sealed.yaml"
)]
pub struct SealArgs {
    /// Read Secret manifests from FILE (YAML or JSON, several documents allowed); `-` is stdin
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Write the SealedSecrets to FILE (atomically) instead of stdout
    #[arg(short, long, value_name = "FILE", conflicts_with = "merge_into")]
    pub output: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Where the values may be unsealed [default: from .kseal.yaml, else strict]
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Add a value KEY=VALUE; repeatable
    #[arg(long = "from-literal", value_name = "KEY=VALUE")]
    pub from_literal: Vec<String>,
    /// Add a value from a file, keyed by KEY or the file name, or every file of a directory; repeatable, comma-separated as in kubectl
    #[arg(long = "from-file", value_name = "[KEY=]PATH")]
    pub from_file: Vec<String>,
    /// Add every KEY=VALUE line of an env file (kubectl's rules); repeatable, comma-separated as in kubectl
    #[arg(long = "from-env-file", value_name = "PATH")]
    pub from_env_file: Vec<String>,
    /// Add a new random value under KEY, never shown: SPEC is hex:N, base64:N, alnum:N or uuid
    /// (see below); recorded in spec.generated; repeatable
    #[arg(long = "generate", value_name = "KEY=SPEC", conflicts_with = "raw")]
    pub generate: Vec<String>,
    /// Allow a --generate SPEC of fewer than 128 bits of randomness (hex:N or base64:N with N
    /// below 16, alnum:N below 22), for a legacy system that takes only a short value
    #[arg(long, requires = "generate")]
    pub allow_weak: bool,
    /// Name of the Secret (required with --from-*, fills in a manifest's missing name)
    #[arg(long)]
    pub name: Option<String>,
    /// Namespace of the Secret (required with --from-* unless cluster-wide)
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Secret type (default Opaque; with --merge-into, the SealedSecret's type, which a merge
    /// cannot change). With -f it fills in a manifest without `type`; a different one is an
    /// error
    #[arg(long = "type", value_name = "TYPE")]
    pub secret_type: Option<String>,
    /// Add or replace the given keys in this SealedSecret file, atomically; other values stay byte-identical
    #[arg(long = "merge-into", value_name = "FILE")]
    pub merge_into: Option<PathBuf>,
    /// Print only the sealed string of one value (needs exactly one value)
    #[arg(long, conflicts_with_all = ["merge_into", "format"])]
    pub raw: bool,
    /// With --raw and the value on stdin: the data key name to seal it for
    #[arg(long, value_name = "KEY", requires = "raw")]
    pub key: Option<String>,
    /// Seal a Secret that has no data (otherwise an error)
    #[arg(long)]
    pub allow_empty_data: bool,
    /// Set spec.rollout: which workloads the controller restarts when a value changes
    /// (EnvConsumers: those reading a changed key through env or subPath; AllConsumers: every
    /// reader; docs/rollout.md)
    #[arg(
        long,
        value_name = "WHICH",
        conflicts_with = "raw",
        value_parser = clap::builder::PossibleValuesParser::new([ROLLOUT_ENV_CONSUMERS, ROLLOUT_ALL_CONSUMERS])
            .try_map(|value| value.parse::<Rollout>())
    )]
    pub rollout: Option<Rollout>,
    /// Set spec.maxAge: how old a value may get before the controller reports it as due for
    /// rotation (hours, days or weeks: 90d, 2160h, 13w) [default: the .kseal.yaml rule's
    /// max_age]
    #[arg(long, value_name = "AGE", conflicts_with = "raw")]
    pub max_age: Option<kseal_shared::rotation::MaxAge>,
    /// Without -r/-R or a matching .kseal.yaml rule, the cluster's published keys are used
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    #[command(flatten)]
    pub identities: IdentityArgs,
    /// Read SealedSecrets from FILE; `-` is stdin
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Write the Secrets to FILE (mode 0600, atomically) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Offline, the new recipients come from -r/-R, else from the .kseal.yaml \
rule that matches each file's path (like `sops updatekeys`; for a symlink, its target's path, \
the file written).

Format v2 values keep their seal time, nonce, commitment and ciphertext byte for byte. \
Format v1 values are upgraded to v2 (every field changes; their seal time stays \
unrecorded), also when they are already sealed to the right keys.

Online, the controller replaces only its own keys' stanzas with one for its active key; \
every other recipient of a value (an offline recovery key, another cluster) is kept byte \
for byte, and the summary names the keys replaced and kept. Every answer must keep each \
value's ciphertext and other recipients and be wrapped to the key the cluster \
publishes, read through the kubeconfig (--kubeconfig, else $KUBECONFIG, else \
~/.kube/config; with --controller-url and no kubeconfig at all, only to the same keys as \
the other values, and a note says so). One answer that fails this stops the run before \
any file is written. Format v1 values are refused online before anything is sent (naming \
file, object and key): v1 is not key-committing, so the controller's upgrade of one cannot \
be told from another value sealed to the cluster's key. Upgrade them offline with -i, or \
pass --trust-controller-for-v1.

Offline, and online once every answer passed, each file is written on its own: a value \
that cannot be re-wrapped, or a file that cannot be written (a symlink out of the tree), \
is reported and left as it was, the other files are written, and the exit status is 1. \
Values count as re-wrapped only when their file was written.

Examples:
  kseal rewrap -i backup-key.txt -R cluster-keys.txt --in-place clusters/
  kseal rewrap -i prod-key.txt -i staging-key.txt --in-place clusters/   # .kseal.yaml rules
  kseal rewrap -i old.txt -r age1… sealed.yaml > rewrapped.yaml
  kseal rewrap --online --in-place clusters/prod/
  kseal rewrap --stale --online --in-place clusters/   # what RewrapDue reports"
)]
pub struct RewrapArgs {
    /// Private key file(s) that open the values now (offline re-wrap); repeatable
    #[arg(
        short = 'i',
        long = "identity",
        value_name = "FILE",
        required_unless_present = "online"
    )]
    pub identities: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Ask the cluster's controller to re-wrap to its current keys (it never wraps to recipients you choose); its answers are checked against the key the cluster publishes whenever a kubeconfig is found
    #[arg(long, conflicts_with_all = ["identities", "recipients", "recipients_files"])]
    pub online: bool,
    /// With --online, let the controller upgrade format v1 values too, taking its word for them:
    /// a v1 value is not key-committing, so whoever answers (a stand-in on --controller-url)
    /// could return another value sealed to the cluster's key and it would be written in its
    /// place. Without it, v1 values are refused; upgrade them offline with -i instead
    #[arg(long, requires = "online")]
    pub trust_controller_for_v1: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Only the values sealed to none of the current keys: with --online the cluster's
    /// active keys (what the controller's RewrapDue condition reports), else the new
    /// recipients (-r/-R or the file's .kseal.yaml rule). Everything else stays byte-identical
    #[arg(long)]
    pub stale: bool,
    /// Rewrite the files in place (atomically); required for directories and several files
    #[arg(long)]
    pub in_place: bool,
    /// Files or directories (searched for *.yaml, *.yml, *.json)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Replaces values that `kseal seal --generate` made (the keys in each \
SealedSecret's spec.generated) with new random values of the same form, sealed to the \
same namespace, name, key and scope. Every other value stays byte for byte, and so does \
the rest of the file. The new values are never shown.

--key KEY: that key, in every SealedSecret given; a KEY that is not in the spec.generated \
of a SealedSecret holding it, or that no SealedSecret given generated, is an error naming \
it (nothing is written). --due: every generated value older than its max age: --max-age, \
else the stricter of the file's .kseal.yaml rule max_age and the object's spec.maxAge, as \
`kseal check --rotation` judges it (a value whose seal time was never recorded is due). \
Values that are due but were not generated by kseal are listed on stderr (object, key, \
age) and left as they are: rotate those by hand (`kseal seal --merge-into`).

The new values are sealed to the recipients `kseal seal` would use for the file: -r/-R, \
else the file's .kseal.yaml rule, else the cluster's published key. The rule is the one \
of the file written: for a symlink, its target's path. When those recipients are not the \
keys the object's values are sealed to now, nothing is written (exit 1): the object would \
hold values sealed to different keys, the sign of the wrong rule or cluster. After a key \
rotation (`kseal pins update`), pass --allow-recipient-change (and `kseal rewrap` the \
other values). A spec.generated form of fewer than 128 bits of randomness (hex:N or \
base64:N below 16, alnum:N below 22) is refused likewise unless --allow-weak is given.

Without --in-place (one file), the result is printed on stdout, and only when nothing \
failed. With --in-place each changed file is rewritten atomically; unchanged files are \
not touched. A summary on stderr names each value replaced (file, object, key, form, \
why). Exit status: 0 when everything asked for was done, also when nothing was due or \
no SealedSecret was found (said on stderr); 1 when a SealedSecret, key or file could not be handled (nothing is written then); 2 on a \
usage error.

Examples:
  kseal regenerate --key password clusters/prod/demo/db.sealed.yaml > new.yaml
  kseal regenerate --key password --in-place clusters/prod/demo/db.sealed.yaml
  kseal regenerate --due --in-place .        # a scheduled CI job: open a PR from the diff
  kseal regenerate --due --max-age 30d --in-place clusters/"
)]
// One of --key and --due, or both.
#[command(group(ArgGroup::new("which").required(true).multiple(true).args(["keys", "due"])))]
pub struct RegenerateArgs {
    /// Replace the generated value of this data key (in every SealedSecret given); repeatable
    #[arg(long = "key", value_name = "KEY")]
    pub keys: Vec<String>,
    /// Replace every generated value older than its max age (see below)
    #[arg(long)]
    pub due: bool,
    /// With --due: judge every value by AGE (hours, days or weeks: 90d, 2160h, 13w), whatever
    /// .kseal.yaml and spec.maxAge say
    #[arg(long, value_name = "AGE", requires = "due")]
    pub max_age: Option<kseal_shared::rotation::MaxAge>,
    /// Rewrite the files in place (atomically); required for directories and several files
    #[arg(long)]
    pub in_place: bool,
    /// Seal the new values even when the recipients for the file are not the keys the
    /// object's values are sealed to (after a key rotation: `kseal pins update`)
    #[arg(long)]
    pub allow_recipient_change: bool,
    /// Regenerate a value whose spec.generated form holds fewer than 128 bits of randomness
    /// (hex:N or base64:N with N below 16, alnum:N below 22)
    #[arg(long)]
    pub allow_weak: bool,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Files or directories (searched for *.yaml, *.yml, *.json)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Without -r/-R or a matching .kseal.yaml rule, the cluster's published keys are used
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Recipients come from -r/-R, else from the .kseal.yaml rule that matches each \
file (for a symlink, its target). Name, namespace, scope and template (type, labels, annotations, immutable) are kept from \
the Bitnami object; Bitnami's own annotations are dropped. An object that cannot be migrated \
(no given key opens a value, spec.template.data, the legacy spec.data format, an unknown \
version) is reported and left as it is; the others are migrated, and the exit status is 1.

Examples:
  kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml > bitnami-keys.yaml
  kseal migrate --bitnami-key bitnami-keys.yaml -R cluster.pub --dry-run clusters/
  kseal migrate --bitnami-key bitnami-keys.yaml -R cluster.pub --in-place clusters/
  kseal migrate --bitnami-key tls.key -r age1… app/db-sealed.yaml > app/db.yaml"
)]
pub struct MigrateArgs {
    /// Bitnami private keys: what `kubectl get secret -n kube-system -l
    /// sealedsecrets.bitnami.com/sealed-secrets-key -o yaml` exports, one such Secret, or a PEM
    /// private key; repeatable; `-` is stdin
    #[arg(long = "bitnami-key", value_name = "FILE", required = true)]
    pub bitnami_keys: Vec<PathBuf>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// Rewrite the files in place (atomically); required for directories and several files
    #[arg(long)]
    pub in_place: bool,
    /// Print, per object, what would be migrated (scope, name, keys) or why not; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Files or directories (searched for *.yaml, *.yml, *.json)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Without -r/-R or a matching .kseal.yaml rule, the cluster's published keys are used
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum InspectFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
// -r means something else here: the keys values should be sealed to now.
#[command(mut_arg("recipients", |arg| {
    arg.help("A current key (age1…), for --stale; repeatable")
}))]
pub struct InspectArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = InspectFormat::Text)]
    pub format: InspectFormat,
    /// List only values not sealed to exactly the current keys (from -r/-R, .kseal.yaml, or
    /// the cluster), or still in format v1: what `kseal rewrap` would change; exit 1 if any
    #[arg(long)]
    pub stale: bool,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Files or directories; `-` or nothing reads stdin
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories; `-` or nothing reads stdin
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also ask the cluster's controller whether it can decrypt every value
    #[arg(long)]
    pub online: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub walk: WalkArgs,
}

/// How a command walks the directories it is given.
#[derive(Debug, Args, Clone, Copy)]
pub struct WalkArgs {
    /// Read no .ksealignore file: take every file the walk finds (by default, in a directory
    /// given, .ksealignore files in gitignore syntax exclude paths, each named on stderr)
    #[arg(long)]
    pub no_ignore: bool,
}

impl WalkArgs {
    /// Whether the walk reads `.ksealignore` files.
    pub fn ignore_files(self) -> crate::walk::IgnoreFiles {
        if self.no_ignore {
            crate::walk::IgnoreFiles::Skip
        } else {
            crate::walk::IgnoreFiles::Read
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "As a pre-commit hook (.pre-commit-config.yaml):
  - repo: local
    hooks:
      - id: kseal-check
        name: no plaintext Secrets
        entry: kseal check
        language: system
        files: \\.(ya?ml|json)$|(^|/)\\.kseal-|(^|/)Kustomization$
        exclude: (^|/)charts/.+/templates/

(`(^|/)\\.kseal-` passes kseal's own temporary files too, which only a killed write
leaves and which may hold a Secret.) Files are decoded as `kseal seal` decodes them
(UTF-8, or UTF-16 with a byte-order mark); a file check cannot read (a dangling symlink,
a Helm template, other bytes) is reported with every other finding, and fails the check
(exit status 2, see below).
Kustomizations count too: a secretGenerator with literals, envs or files is plaintext,
and so is a patch that sets data or stringData; `kubectl kustomize DIR | kseal check -`
checks what kustomize renders, whatever way it got there.

In a directory walked, .ksealignore files (gitignore syntax; read here, below, and above
up to the repository's top) exclude paths, each named on stderr; a path named on the
command line is always read. --no-ignore reads none of them.

As a CI gate on rotation: `kseal check --rotation clusters/` (each file's
.kseal.yaml max_age and each object's spec.maxAge) or `kseal check --max-age
90d clusters/` lists every value sealed longer ago, and fails. Values whose
seal time was never recorded (format v1, or upgraded from v1), sealed more
than an hour in the future, or that do not parse count as due. Rotate a value
by sealing a new one: `kseal seal --from-literal KEY=NEW --merge-into FILE`.
Without --rotation or --max-age, ages are not looked at: the pre-commit hook
above stays about plaintext only. Values kseal generated (spec.generated) can be
rotated without anyone choosing a value: `kseal regenerate --due --in-place DIR`.

--secrets-in-env also fails on every workload (Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob, Pod, ReplicationController) whose
containers or init containers read a Secret through environment variables
(env[].valueFrom.secretKeyRef, envFrom[].secretRef), naming file, workload,
container, variable (or envFrom prefix), Secret and key. CIS Kubernetes
Benchmark 5.4.1 advises files instead: environment variables end up in crash
dumps, logs and child processes, and never change while the container runs.
Mount the Secret as a volume and read the file:

  containers:
    - name: app
      env:
        - name: DB_PASSWORD_FILE      # many images read *_FILE
          value: /etc/db-credentials/password
      volumeMounts:
        - name: db-credentials
          mountPath: /etc/db-credentials
          readOnly: true
  volumes:
    - name: db-credentials
      secret:
        secretName: db-credentials
        defaultMode: 0440             # with the pod's securityContext.fsGroup

Exit status: 0 when everything was checked and nothing found; 1 when something was found (a
plaintext Secret or secretGenerator, a value due for rotation, a spec.maxAge that does not
parse, with --secrets-in-env a Secret read through environment variables) and everything
was checked; 2 when something could not be checked (a path that cannot be read, a document
or pod spec that cannot be parsed), even beside findings, or on any other error (a usage
error, a bad .kseal.yaml, …), as grep and ripgrep do.")]
pub struct CheckArgs {
    /// Files or directories to scan; `-` reads stdin (what `kubectl kustomize DIR` or `helm
    /// template` renders)
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Also fail on every sealed value older than AGE (hours, days or weeks: 90d, 2160h,
    /// 13w), whatever .kseal.yaml and spec.maxAge say
    #[arg(long, value_name = "AGE")]
    pub max_age: Option<kseal_shared::rotation::MaxAge>,
    /// Also fail on every sealed value older than its max age: the stricter of the file's
    /// .kseal.yaml rule `max_age` and the object's spec.maxAge (what the controller
    /// reports as RotationDue)
    #[arg(long, conflicts_with = "max_age")]
    pub rotation: bool,
    /// Also fail on every workload that reads a Secret through environment variables
    /// (secretKeyRef, envFrom): CIS Kubernetes Benchmark 5.4.1 (see below)
    #[arg(long)]
    pub secrets_in_env: bool,
    #[command(flatten)]
    pub walk: WalkArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(
    after_help = "A .kseal.yaml rule with `context: <kube context>` says that its \
recipients_file pins the public sealing key of that context's cluster:

  creation_rules:
    - path_regex: ^clusters/prod/
      recipients_file: keys/prod.txt     # the prod cluster's key + an offline recovery key
      context: prod

Clusters renew their key (every 30 days by default; `kseal keys rotate` makes one at once), \
and the pinned key goes stale. `kseal pins update` rewrites each such file to its cluster's \
active key; `kseal pins check` fails while a file names a key its cluster no longer seals to.

Each context is looked up in the kubeconfig (--kubeconfig, else $KUBECONFIG, else \
~/.kube/config), and only the cluster's published keys are read (ConfigMap \
kseal-public-keys in --controller-namespace, which every authenticated user may read), \
checked as `kseal seal` checks them. A line of a file is the cluster's when it names one of \
the cluster's keys: any key of its key list (active, decrypt-only or retired), or a key it \
held once and deleted (kseal.dev/held-key-ids). Every other line (an offline recovery key, \
another cluster's key, comments, blank lines) is never changed.

Examples:
  kseal pins check                    # CI: every rule with a context
  kseal pins update                   # after a renewal; review and commit the diff
  kseal pins update keys/prod.txt     # only this file"
)]
pub struct PinsArgs {
    #[command(subcommand)]
    pub command: PinsCommand,
}

#[derive(Debug, Subcommand)]
pub enum PinsCommand {
    /// Rewrite each pinned recipients file to its cluster's active key, keeping every other line
    Update(PinsUpdateArgs),
    /// Fail when a pinned recipients file names a key its cluster no longer seals to (CI)
    Check(PinsCheckArgs),
}

/// Which pin files, and how to reach their clusters (`kseal pins …`).
#[derive(Debug, Args)]
#[command(mut_arg("context", |arg| {
    arg.help("Only the rules with this context [default: every rule with a context]")
}))]
#[command(mut_arg("kubeconfig", |arg| {
    arg.help("Kubeconfig in which each rule's context is looked up [default: $KUBECONFIG, then ~/.kube/config]")
}))]
#[command(mut_arg("controller_namespace", |arg| {
    arg.help("Namespace the kseal controller runs in, on every cluster")
}))]
#[command(mut_arg("controller_service", |arg| arg.hide(true)))]
#[command(mut_arg("controller_url", |arg| arg.hide(true)))]
pub struct PinsTargetArgs {
    /// The .kseal.yaml to read [default: the one `kseal seal` uses: searched from the working
    /// directory upward to the repository root]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Only these recipients files (as the rules name them, e.g. keys/prod.txt) [default: the
    /// recipients_file of every rule with a context]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    // Each rule's context replaces --context when its cluster is asked.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Every line that names one of the cluster's keys is replaced by one \
line with its active key, at the position of the first, under a comment kseal owns:

  # kseal: active key 9c8d7e6f5a4b3c2d of context prod, pinned 2026-05-01T09:00:00Z
  age1…

The comment replaces the previous one (and `kseal fetch-keys`' `# key id …` comments about \
the cluster's keys); no other line changes, line ends (LF or CRLF) included. The line under \
kseal's comment is replaced even when the cluster no longer lists its key. A key that only \
the cluster's record of held keys names (a deleted key, as far as that record goes) is \
kept: that record is an annotation, and a recovery key's id is public; `pins check` names \
it, remove it by hand. A file with no line of the cluster gets the comment and the key \
appended at the end; a missing file is an error (create it with the recovery key's line \
first: a misspelt recipients_file must not become a pin without it). A file that pins \
exactly the active key already is not written, so running it twice changes nothing. Files are written atomically and keep their mode; a symlink is \
written at its target, which must be inside the .kseal.yaml's directory tree.

One line per file and context on stderr, then a summary:
  keys/prod.txt: context prod: 1a2b3c4d5e6f7a8b -> 9c8d7e6f5a4b3c2d
  keys/staging.txt: context staging: up to date

A context that cannot be read (a cluster down, no such context) fails only its files: \
every other file is still updated, and the exit status is 1.

Values sealed before the update stay sealed to the old key (which still decrypts until it \
is retired); re-wrap them: `kseal rewrap --stale --online --context prod --in-place \
clusters/prod/`."
)]
pub struct PinsUpdateArgs {
    #[command(flatten)]
    pub target: PinsTargetArgs,
}

/// `kseal pins check --output`.
#[derive(Debug, Clone, Copy, ValueEnum, Default, PartialEq, Eq)]
pub enum PinsOutput {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Fails (exit status 1) when a pinned file names a key of its cluster \
that the cluster no longer seals to (decrypt-only, retired, or deleted: held once, no longer \
listed), lacks the cluster's active key, names no key at all, or has a line that is not a \
recipient; and when a context cannot be read (fail closed: a cluster that cannot be asked \
is not taken as current). One line per problem on stdout, naming file, line and key:

  keys/prod.txt:3: key 1a2b3c4d5e6f7a8b of context prod is decrypt-only: the cluster no \
longer seals to it (renewed or rotated); its active key is 9c8d7e6f5a4b3c2d (kseal pins update)
  keys/prod.txt: lacks the active key 9c8d7e6f5a4b3c2d of context prod (kseal pins update)

Files that pass are named on stderr. `kseal pins update` fixes every problem but an invalid \
line and an unreachable context.

-o json prints one object instead:
  {\"checked\": [{\"file\": \"keys/prod.txt\", \"context\": \"prod\", \"activeKeyId\": \"9c8d…\"}],
   \"problems\": [{\"file\": \"keys/prod.txt\", \"line\": 3, \"context\": \"prod\",
                 \"keyId\": \"1a2b…\", \"problem\": \"decrypt-only\", \"message\": \"…\"}]}
problem: decrypt-only, retired, deleted, missing-active, no-key, invalid-line, unreadable or \
unreachable; line and keyId are null when the problem has none; activeKeyId is null when \
the context could not be read."
)]
pub struct PinsCheckArgs {
    #[command(flatten)]
    pub target: PinsTargetArgs,
    /// Output format: text, or json (see below)
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = PinsOutput::Text)]
    pub output: PinsOutput,
}
