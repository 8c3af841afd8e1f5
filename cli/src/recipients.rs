//! Recipients and identities from flags, files and `.kseal.yaml`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kseal_shared::config::{CONFIG_FILE_NAME, Config};
use kseal_shared::x25519::{
    dedup_recipients, parse_identity_file, parse_recipients_file, plugin_recipient_hrp,
    plugin_refusal,
};
use kseal_shared::{
    binding::Scope,
    envelope::Keyring,
    x25519::{Identity, Recipient},
};

use crate::args::RecipientArgs;

/// Recipients and, when they came from a rule, the rule's scope and max age.
#[derive(Debug)]
pub struct Resolved {
    pub recipients: Vec<Recipient>,
    pub scope: Option<Scope>,
    pub max_age: Option<kseal_shared::rotation::MaxAge>,
    /// Where they came from, for messages: `-r/-R`, `.kseal.yaml
    /// creation_rules[1] (path_regex "^prod/")`, the cluster's keys.
    pub from: String,
}

/// Recipients from `-r`/`-R`, if any were given.
pub fn from_flags(args: &RecipientArgs) -> Result<Option<Vec<Recipient>>> {
    let mut recipients = Vec::new();
    for text in &args.recipients {
        // Named in full, which the parser's own (static) message cannot do
        // for every plugin; only the Bech32 part is ever quoted.
        if let Some(hrp) = plugin_recipient_hrp(text) {
            bail!("-r/--recipient: {}", plugin_refusal(&hrp));
        }
        recipients.push(text.parse::<Recipient>().context("-r/--recipient")?);
    }
    for file in &args.recipients_files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
        recipients
            .extend(parse_recipients_file(&text).with_context(|| file.display().to_string())?);
    }
    dedup_recipients(&mut recipients);
    Ok((!recipients.is_empty()).then_some(recipients))
}

/// Recipients from flags, or else from the first `.kseal.yaml` rule that
/// matches `path` (the file being written, or read); `None` when neither
/// flags nor a `.kseal.yaml` give any.
pub fn resolve(args: &RecipientArgs, path: Option<&Path>) -> Result<Option<Resolved>> {
    if let Some(recipients) = from_flags(args)? {
        note(args, || {
            format!("recipients from -r/-R: {}", key_ids(&recipients))
        });
        return Ok(Some(Resolved {
            recipients,
            scope: None,
            max_age: None,
            from: "-r/-R".to_owned(),
        }));
    }
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let Some(config) = Config::find(&cwd)? else {
        note(args, || {
            format!(
                "no {CONFIG_FILE_NAME} in {} (or above it up to the repository root, inside a git repository)",
                cwd.display()
            )
        });
        return Ok(None);
    };
    let absolute = path.map(|path| absolute(&cwd, path));
    let Some(rule) = config.rule_for(absolute.as_deref()) else {
        bail!(
            "no recipients: no creation rule in {} matches {}",
            config.path.display(),
            match path {
                Some(path) => path.display().to_string(),
                None => "stdin/stdout (name the output with -o, or add a rule without path_regex)"
                    .into(),
            }
        );
    };
    let mut recipients = rule.recipients.clone();
    dedup_recipients(&mut recipients);
    let from = format!(
        "{} creation_rules[{}] ({})",
        config.path.display(),
        rule.index,
        rule.path_regex
            .as_ref()
            .map_or("no path_regex".to_owned(), |regex| format!(
                "path_regex {:?}",
                regex.as_str()
            )),
    );
    note(args, || {
        format!(
            "recipients from {from}{}: {}",
            rule.scope
                .map_or(String::new(), |scope| format!(", scope {scope}")),
            key_ids(&recipients)
        )
    });
    Ok(Some(Resolved {
        recipients,
        scope: rule.scope,
        max_age: rule.max_age,
        from,
    }))
}

/// Recipients from flags, `.kseal.yaml`, or else the cluster's published
/// keys (through the kubeconfig).
pub fn resolve_or_cluster(
    args: &RecipientArgs,
    path: Option<&Path>,
    cluster: &crate::cluster::ClusterArgs,
) -> Result<Resolved> {
    if let Some(resolved) = resolve(args, path)? {
        return Ok(resolved);
    }
    cluster_fallback(args, cluster)
}

/// What [`resolve_or_cluster`] does when neither flags nor `.kseal.yaml`
/// name recipients: the cluster's published keys, or an error that says
/// every way recipients could be given.
pub fn cluster_fallback(
    args: &RecipientArgs,
    cluster: &crate::cluster::ClusterArgs,
) -> Result<Resolved> {
    match from_cluster(cluster) {
        Ok(recipients) => Ok({
            note(args, || {
                format!(
                    "recipients published by the cluster in {}/{}: {}",
                    cluster.controller_namespace,
                    kseal_shared::contract::PUBLIC_KEYS_CONFIGMAP,
                    key_ids(&recipients)
                )
            });
            Resolved {
                recipients,
                scope: None,
                max_age: None,
                from: format!(
                    "the keys published by the cluster in {}/{}",
                    cluster.controller_namespace,
                    kseal_shared::contract::PUBLIC_KEYS_CONFIGMAP
                ),
            }
        }),
        // The cluster answered, and what it publishes was refused: that is
        // the news, not how else recipients could be given.
        Err(err) if refused_published_keys(&err) => bail!(
            "no recipients: the cluster was reached, but its published keys were refused: {err:#}; to seal without the cluster, pass -r/--recipient or -R/--recipients-file, or add a {CONFIG_FILE_NAME} with creation_rules"
        ),
        Err(err) => bail!(
            "no recipients: pass -r/--recipient or -R/--recipients-file, add a {CONFIG_FILE_NAME} with creation_rules, or reach a cluster running kseal (--kubeconfig/--context): {err:#}"
        ),
    }
}

/// The cluster's sealing recipient (its active key, checked: see
/// [`crate::cluster::fetch_published`]), for a command that seals to it
/// because nothing else named recipients. Says so on stderr, always: which
/// key, and which cluster the kube context points at, so that sealing to
/// whatever cluster is current is never silent.
pub fn from_cluster(cluster: &crate::cluster::ClusterArgs) -> Result<Vec<Recipient>> {
    let (_, published) = crate::cluster::fetch_published(cluster)?;
    let id = published.recipient.key_id();
    match crate::cluster::target(cluster) {
        Ok((context, server)) => eprintln!(
            "kseal: sealing to key {id} (active) of the cluster in kube context {context:?} ({server})"
        ),
        Err(_) => {
            eprintln!("kseal: sealing to key {id} (active) of the cluster the kubeconfig points at")
        }
    }
    Ok(vec![published.recipient])
}

/// Whether fetching the cluster's keys failed because the cluster answered
/// with published keys that do not hold together (see
/// [`kseal_shared::published::check`]), rather than not answering.
fn refused_published_keys(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| cause.is::<kseal_shared::published::PublishedKeysError>())
}

/// A `--verbose` note on stderr (public facts only: paths, rules, key ids).
fn note(args: &RecipientArgs, message: impl FnOnce() -> String) {
    if args.verbose {
        eprintln!("kseal: {}", message());
    }
}

/// `key ids a, b` for notes.
fn key_ids(recipients: &[Recipient]) -> String {
    let ids: Vec<String> = recipients
        .iter()
        .map(|recipient| recipient.key_id().to_string())
        .collect();
    format!("key id(s) {}", ids.join(", "))
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    // Canonicalize what exists (the directory) so symlinks such as /tmp on
    // macOS compare equal to the config's location.
    match (joined.parent(), joined.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|parent| parent.join(name))
            .unwrap_or(joined),
        _ => joined,
    }
}

/// Loads every identity of every file into one keyring.
pub fn keyring(files: &[PathBuf]) -> Result<Keyring> {
    Ok(identities(files)?.into_iter().collect())
}

/// Every identity of every file, in order.
pub fn identities(files: &[PathBuf]) -> Result<Vec<Identity>> {
    let mut identities = Vec::new();
    for file in files {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("{}: cannot read", file.display()))?,
        );
        identities.extend(parse_identity_file(&text).with_context(|| file.display().to_string())?);
    }
    Ok(identities)
}
