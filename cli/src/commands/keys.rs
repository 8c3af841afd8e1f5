//! `kseal keys …`: the cluster's sealing keys through their lifecycle:
//! `active` (sealed to), `decrypt-only` (kept to decrypt), `retired` (no
//! longer decrypts). Rotation is done by the controller; the CLI never
//! handles a private key except to back keys up or restore them, and then
//! only in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kseal_shared::backup;
use kseal_shared::contract::{
    HELD_KEYS_ANNOTATION, KEY_ID_LABEL, KEY_OPERATIONS_CONFIGMAP, KEY_STATE_LABEL, KEYS_DATA_KEY,
    KeyState, LAST_BACKUP_ANNOTATION, LastBackup, PUBLIC_KEYS_CONFIGMAP, PublishedKey,
    ROTATION_REQUEST_DATA_KEY, SEALING_KEY_LABEL, SEALING_KEY_SECRET_TYPE,
};
use kseal_shared::envelope::{SealedValue, key_ids_in};
use kseal_shared::published::PublishedKeysError;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::KeyId;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::args::{
    BackupArgs, KeysArgs, KeysCommand, KeysListFormat, ListKeysArgs, RestoreArgs, RetireArgs,
    RotateArgs,
};
use crate::cluster::{self, ClusterArgs};
use crate::error::UsageError;
use crate::io::{Privacy, write_atomic, write_stdout};

pub fn run(args: KeysArgs) -> Result<()> {
    match args.command {
        KeysCommand::List(args) => list(args),
        KeysCommand::Rotate(args) => rotate(args),
        KeysCommand::Retire(args) => retire(args),
        KeysCommand::Backup(args) => backup_keys(args),
        KeysCommand::Restore(args) => restore(args),
    }
}

struct ClusterKeys {
    keys: Vec<PublishedKey>,
    /// Ids of every key the cluster has held ([`HELD_KEYS_ANNOTATION`]).
    held: BTreeSet<String>,
    /// Key ids in the last backup, if one was recorded.
    last_backup: Option<BTreeSet<String>>,
    /// Why the backup record could not be read, when it could not.
    backup_unreadable: Option<String>,
}

/// The public-key ConfigMap's keys and held key ids, and the last backup
/// recorded in the key-operations ConfigMap. Reads those two ConfigMaps
/// only: never a key Secret.
async fn published_keys(client: &Client, cluster: &ClusterArgs) -> Result<ClusterKeys> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.controller_namespace);
    let config_map = api
        .get(PUBLIC_KEYS_CONFIGMAP)
        .await
        .map_err(|err| cluster::public_keys_read_error(err, &cluster.controller_namespace))?;
    let text = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(KEYS_DATA_KEY))
        .ok_or_else(|| anyhow!("ConfigMap {PUBLIC_KEYS_CONFIGMAP} has no {KEYS_DATA_KEY}"))?;
    let keys = serde_json::from_str(text).context(KEYS_DATA_KEY)?;
    let held = config_map
        .annotations()
        .get(HELD_KEYS_ANNOTATION)
        .map(|ids| {
            ids.split(',')
                .map(str::trim)
                .filter(|id| id.parse::<KeyId>().is_ok())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    // Recorded in the key-operations ConfigMap; earlier versions recorded
    // it on the public-key one.
    let operations: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.controller_namespace);
    let (operations, backup_unreadable) = match operations.get_opt(KEY_OPERATIONS_CONFIGMAP).await {
        Ok(found) => (found, None),
        Err(kube::Error::Api(status)) if status.code == 403 => (
            None,
            Some(format!(
                "not allowed to read ConfigMap {}/{KEY_OPERATIONS_CONFIGMAP}",
                cluster.controller_namespace
            )),
        ),
        Err(err) => (
            None,
            Some(format!(
                "{KEY_OPERATIONS_CONFIGMAP}: {}",
                cluster::kube_error_text(&err)
            )),
        ),
    };
    let recorded = operations
        .and_then(|operations| {
            operations
                .annotations()
                .get(LAST_BACKUP_ANNOTATION)
                .cloned()
        })
        .or_else(|| {
            config_map
                .annotations()
                .get(LAST_BACKUP_ANNOTATION)
                .cloned()
        });
    let last_backup: Option<BTreeSet<String>> = recorded
        .and_then(|value| serde_json::from_str::<LastBackup>(&value).ok())
        .map(|backup| backup.key_ids.into_iter().collect());
    Ok(ClusterKeys {
        keys,
        held,
        backup_unreadable: backup_unreadable.filter(|_| last_backup.is_none()),
        last_backup,
    })
}

/// Which SealedSecrets use which keys.
struct KeyUsage {
    /// Per key id, the SealedSecrets (namespace/name, sorted) with values
    /// sealed to it: from their status and, for objects not reconciled
    /// yet, their values.
    users: BTreeMap<String, Vec<String>>,
    /// Per SealedSecret (namespace/name), the key ids of each of its values
    /// that parses.
    values: BTreeMap<String, Vec<BTreeSet<String>>>,
}

async fn key_usage(client: &Client) -> Result<KeyUsage> {
    let api: Api<SealedSecret> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(cluster::kube_error)
        .context("cannot list SealedSecrets")?;
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut values = BTreeMap::new();
    for sealed in list {
        let mut ids: BTreeSet<String> = sealed
            .status
            .as_ref()
            .map(|status| status.key_ids.iter().cloned().collect())
            .unwrap_or_default();
        ids.extend(
            key_ids_in(sealed.spec.encrypted_data.values().map(String::as_str))
                .iter()
                .map(KeyId::to_string),
        );
        let name = format!(
            "{}/{}",
            sealed.namespace().unwrap_or_default(),
            sealed.name_any()
        );
        let per_value: Vec<BTreeSet<String>> = sealed
            .spec
            .encrypted_data
            .values()
            .filter_map(|value| SealedValue::parse(value).ok())
            .map(|value| value.key_ids().iter().map(KeyId::to_string).collect())
            .collect();
        for id in ids {
            users.entry(id).or_default().push(name.clone());
        }
        values.insert(name, per_value);
    }
    for names in users.values_mut() {
        names.sort();
    }
    Ok(KeyUsage { users, values })
}

/// Which SealedSecrets (namespace/name) have values sealed to each key id.
async fn key_users(client: &Client) -> Result<BTreeMap<String, Vec<String>>> {
    Ok(key_usage(client).await?.users)
}

/// One row of `kseal keys list` (and one object of `-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyRow {
    id: String,
    /// `active`, `decrypt-only`, `retired`, or for a key the cluster does
    /// not hold: `deleted` (it held it once), `other` (never held, and every
    /// value sealed to it also to a key the cluster decrypts with: an
    /// offline recovery key, another cluster) or `unknown`.
    state: String,
    /// RFC 3339, as published.
    created: Option<String>,
    sealed_secrets: usize,
    users: Vec<String>,
}

/// A key that SealedSecrets use and the cluster does not hold: it held it
/// once (and it was deleted), or, as far as it records, never.
const DELETED: &str = "deleted";
const UNKNOWN: &str = "unknown";
/// A key the cluster never held, named only beside keys it decrypts with:
/// expected in the layout with an offline recovery key, so not a warning.
const OTHER: &str = "other";

/// The rows: every key the cluster publishes, in its order, then every key
/// id that SealedSecrets use but the cluster does not hold, by id.
fn key_rows(keys: &ClusterKeys, users: &BTreeMap<String, Vec<String>>) -> Vec<KeyRow> {
    let users_of = |id: &str| users.get(id).cloned().unwrap_or_default();
    let mut rows: Vec<KeyRow> = keys
        .keys
        .iter()
        .map(|key| KeyRow {
            id: key.id.clone(),
            state: key.state.as_str().to_owned(),
            created: key
                .created
                .parse::<jiff::Timestamp>()
                .is_ok()
                .then(|| key.created.clone()),
            sealed_secrets: users_of(&key.id).len(),
            users: users_of(&key.id),
        })
        .collect();
    for (id, names) in users {
        if keys.keys.iter().any(|key| &key.id == id) {
            continue;
        }
        let state = if keys.held.contains(id) {
            DELETED
        } else {
            UNKNOWN
        };
        rows.push(KeyRow {
            id: id.clone(),
            state: state.to_owned(),
            created: None,
            sealed_secrets: names.len(),
            users: names.clone(),
        });
    }
    rows
}

/// What `keys list` says on stderr about a key that SealedSecrets use and
/// the cluster does not hold: a warning naming the SealedSecrets it cannot
/// decrypt (a value sealed to this key and to no key the cluster can
/// decrypt with), or, when every such value is also sealed to a key it
/// holds (an offline recovery key beside the cluster's), a note.
fn missing_key_message(row: &KeyRow, keys: &ClusterKeys, usage: &KeyUsage) -> String {
    const SHOWN: usize = 5;
    let blocked = blocked_users(row, keys, usage);
    let (what, remedy) = if row.state == DELETED {
        (
            "is deleted: this cluster held it once and no longer does",
            "restore the key from a backup (kseal keys restore) or seal their values again",
        )
    } else {
        (
            "is unknown: this cluster does not hold it and, as far as it records, never did",
            "were they sealed for another cluster? If the key was this cluster's, restore it from a backup (kseal keys restore); else seal their values again",
        )
    };
    if blocked.is_empty() {
        return format!(
            "kseal: key {} {what}; the {} SealedSecret(s) sealed to it are also sealed to a key the cluster holds",
            row.id, row.sealed_secrets
        );
    }
    let mut names: Vec<String> = blocked
        .iter()
        .take(SHOWN)
        .map(|name| name.to_string())
        .collect();
    if blocked.len() > SHOWN {
        names.push(format!("and {} more", blocked.len() - SHOWN));
    }
    format!(
        "kseal: warning: key {} {what}; {} SealedSecret(s) sealed to it cannot be decrypted by this cluster: {}; {remedy}",
        row.id,
        blocked.len(),
        names.join(", ")
    )
}

/// The SealedSecrets of a key the cluster does not hold that the cluster
/// cannot decrypt: one of their values is sealed to this key and to no
/// key the cluster decrypts with.
fn blocked_users<'a>(row: &'a KeyRow, keys: &ClusterKeys, usage: &KeyUsage) -> Vec<&'a String> {
    let usable: BTreeSet<&str> = keys
        .keys
        .iter()
        .filter(|key| matches!(key.state, KeyState::Active | KeyState::DecryptOnly))
        .map(|key| key.id.as_str())
        .collect();
    row.users
        .iter()
        .filter(|name| {
            usage.values.get(*name).is_some_and(|values| {
                values.iter().any(|ids| {
                    ids.contains(&row.id) && ids.iter().all(|id| !usable.contains(id.as_str()))
                })
            })
        })
        .collect()
}

/// Lists the keys. Reads only the public-key and key-operations ConfigMaps
/// and the SealedSecrets: any user allowed those can run it, without
/// access to a key Secret.
fn list(args: ListKeysArgs) -> Result<()> {
    let (keys, usage) = cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let keys = published_keys(&client, &args.cluster).await?;
        let usage = key_usage(&client).await?;
        Ok((keys, usage))
    })?;
    let mut rows = key_rows(&keys, &usage.users);
    for row in &mut rows {
        if row.state == UNKNOWN && blocked_users(row, &keys, &usage).is_empty() {
            row.state = OTHER.to_owned();
        }
    }
    match args.output {
        KeysListFormat::Json => {
            let mut out = serde_json::to_string_pretty(&rows)?;
            out.push('\n');
            write_stdout(out.as_bytes())?;
        }
        KeysListFormat::Table => {
            let mut out = format!(
                "{:<18} {:<13} {:<22} {}\n",
                "KEY ID", "STATE", "CREATED", "SEALEDSECRETS"
            );
            for row in &rows {
                // To the second: the controller records nanoseconds (to
                // order keys made in the same second), which only widen
                // the column.
                let created = match &row.created {
                    Some(created) => created
                        .parse::<jiff::Timestamp>()
                        .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                        .unwrap_or_else(|_| created.clone()),
                    None => "-".to_owned(),
                };
                out.push_str(&format!(
                    "{:<18} {:<13} {:<22} {}\n",
                    row.id, row.state, created, row.sealed_secrets
                ));
            }
            write_stdout(out.as_bytes())?;
        }
    }
    for row in rows
        .iter()
        .filter(|row| row.state == DELETED || row.state == UNKNOWN)
    {
        eprintln!("{}", missing_key_message(row, &keys, &usage));
    }
    let active = keys.keys.iter().find(|key| key.state == KeyState::Active);
    match (&keys.last_backup, active) {
        (None, _) if keys.backup_unreadable.is_some() => eprintln!(
            "kseal: warning: cannot tell whether the keys are backed up: {}",
            keys.backup_unreadable.as_deref().unwrap_or_default()
        ),
        (None, _) => eprintln!(
            "kseal: warning: no key backup recorded; run `kseal keys backup --recipient age1… -o FILE`"
        ),
        (Some(backed_up), Some(active)) if !backed_up.contains(&active.id) => eprintln!(
            "kseal: warning: the active key {} is not in the last backup; run `kseal keys backup` again",
            active.id
        ),
        _ => {}
    }
    Ok(())
}

/// Asks the controller for a new active key (RBAC: get and patch on the
/// key-operations ConfigMap in the controller's namespace) and waits until
/// it is published. Works on a cluster with no key too: that is how one
/// starts over after keys were lost.
fn rotate(args: RotateArgs) -> Result<()> {
    let cluster = &args.cluster;
    // None: no active key (lost keys); any other error is reported.
    let before = match cluster::fetch_published(cluster) {
        Ok((_, published)) => Some(published.recipient),
        Err(err) if matches!(err.downcast_ref(), Some(PublishedKeysError::NoActiveKey)) => None,
        Err(err) => return Err(err),
    };
    cluster::block_on(async {
        let client = cluster::client(cluster).await?;
        let api: Api<ConfigMap> = Api::namespaced(client, &cluster.controller_namespace);
        // Unique per request (nanoseconds): the controller serves each
        // value once.
        let request = jiff::Timestamp::now().to_string();
        let patch = serde_json::json!({"data": {ROTATION_REQUEST_DATA_KEY: request}});
        let where_ = format!(
            "ConfigMap {}/{KEY_OPERATIONS_CONFIGMAP}",
            cluster.controller_namespace
        );
        match api
            .patch(
                KEY_OPERATIONS_CONFIGMAP,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => bail!(
                "cannot request a rotation: {where_} does not exist; the kseal controller creates it when it leads (is it running, and of this version? earlier controllers took requests on {PUBLIC_KEYS_CONFIGMAP})"
            ),
            Err(kube::Error::Api(status)) if status.code == 403 => bail!(
                "cannot request a rotation: not allowed to patch {where_} (the chart's key-operator role grants it: rbac.keyOperatorSubjects)"
            ),
            Err(err) => {
                Err(cluster::kube_error(err)
                    .context(format!("cannot request a rotation ({where_})")))
            }
        }
    })?;
    eprintln!("kseal: rotation requested; waiting for the controller to publish the new key…");
    let deadline = Instant::now() + Duration::from_secs(args.timeout_seconds);
    loop {
        let now = cluster::fetch_published(cluster).map(|(_, published)| published.recipient);
        if let Ok(active) = &now
            && Some(active) != before.as_ref()
        {
            write_stdout(format!("{} {}\n", active.key_id(), active).as_bytes())?;
            if before.is_some() {
                eprintln!(
                    "kseal: new active key published; the old key keeps decrypting. Refresh the pinned keys (kseal pins update, when .kseal.yaml pins them), then re-wrap the repository to the new key, which keeps every other recipient: kseal rewrap --online --in-place PATH"
                );
            } else {
                eprintln!(
                    "kseal: new active key published. The cluster had no active key before: values sealed only to lost keys stay unreadable to it; restore those keys (kseal keys restore) or seal the values again from their plaintext"
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no new key was published within {}s: is the kseal controller running (and leading)? The request stays pending and is served when a controller leads; running `kseal keys rotate` again asks for one more key",
                args.timeout_seconds
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Retires a key: it stops decrypting. Refused while any SealedSecret still
/// has values sealed to it, unless forced.
fn retire(args: RetireArgs) -> Result<()> {
    let id: KeyId = args.key_id.parse().map_err(|_| {
        UsageError::new(format!("{:?} is not a key id (16 hex digits)", args.key_id))
    })?;
    let id = id.to_string();
    cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let keys = published_keys(&client, &args.cluster).await?;
        let Some(key) = keys.keys.iter().find(|key| key.id == id) else {
            bail!("no key {id} in this cluster (see `kseal keys list`)");
        };
        let active = |key: &&PublishedKey| key.state == KeyState::Active;
        if active(&key) && keys.keys.iter().filter(active).count() == 1 {
            bail!(
                "key {id} is the active key: rotate first (`kseal keys rotate`), re-wrap, then retire it"
            );
        }
        let users = key_users(&client).await?;
        if let Some(users) = users.get(&id) {
            if !args.force {
                for user in users {
                    eprintln!("kseal: {user} still has values sealed to key {id}");
                }
                bail!(
                    "refusing to retire key {id}: {} SealedSecret(s) still need it; re-wrap them (kseal rewrap --online) or pass --force",
                    users.len()
                );
            }
            eprintln!(
                "kseal: warning: retiring key {id} although {} SealedSecret(s) still need it (--force); they will report RetiredKey",
                users.len()
            );
        }
        let secrets: Api<Secret> =
            Api::namespaced(client.clone(), &args.cluster.controller_namespace);
        let matching = secrets
            .list(&ListParams::default().labels(&format!("{KEY_ID_LABEL}={id}")))
            .await
            .map_err(cluster::kube_error)
            .context(
                "cannot list the key Secrets (needs list on Secrets in the controller's namespace)",
            )?;
        for secret in matching {
            if args.delete {
                secrets
                    .delete(&secret.name_any(), &DeleteParams::default())
                    .await
                    .map_err(cluster::kube_error)
                    .with_context(|| format!("cannot delete key Secret {}", secret.name_any()))?;
            } else {
                let patch = serde_json::json!({"metadata": {"labels": {KEY_STATE_LABEL: KeyState::Retired.as_str()}}});
                secrets
                    .patch(
                        &secret.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await
                    .map_err(cluster::kube_error)
                    .with_context(|| format!("cannot retire key Secret {}", secret.name_any()))?;
            }
        }
        let done = if args.delete {
            "deleted"
        } else {
            "retired (kept; delete with --delete)"
        };
        eprintln!("kseal: key {id} {done}");
        Ok(())
    })
}

/// Exports every key, in every state, encrypted to offline recipients.
fn backup_keys(args: BackupArgs) -> Result<()> {
    let Some(recipients) = crate::recipients::from_flags(&args.recipients)? else {
        return Err(UsageError::new(
            "keys backup needs --recipient age1… (or -R FILE): an offline recovery key",
        )
        .into());
    };
    let (file, ids) = cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let secrets: Api<Secret> =
            Api::namespaced(client.clone(), &args.cluster.controller_namespace);
        let list = secrets
            .list(&ListParams::default().labels(&format!("{}=true", SEALING_KEY_LABEL)))
            .await
            .map_err(cluster::kube_error)
            .context("cannot read the key Secrets (needs get/list on Secrets in the controller's namespace)")?;
        let mut list = list;
        list.items
            .retain(|secret| secret.type_.as_deref() == Some(SEALING_KEY_SECRET_TYPE));
        if list.items.is_empty() {
            bail!(
                "no key Secrets in namespace {}",
                args.cluster.controller_namespace
            );
        }
        let ids: Vec<String> = list
            .items
            .iter()
            .filter_map(|secret| secret.labels().get(KEY_ID_LABEL).cloned())
            .collect();
        let mut values = Vec::with_capacity(list.items.len());
        for secret in &list.items {
            values.push(serde_json::to_value(secret)?);
        }
        let bundle = backup::bundle(&values);
        for value in &mut values {
            kseal_shared::manifest::scrub(value);
        }
        let file = backup::encrypt(&bundle, &recipients)?;
        Ok((file, ids))
    })?;
    write_atomic(&args.output, &file, Privacy::Private)?;
    // Record what the backup holds, so `keys list` can warn when a newer key
    // is missing from it.
    cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let api: Api<ConfigMap> = Api::namespaced(client, &args.cluster.controller_namespace);
        let record = serde_json::to_string(&LastBackup {
            at: jiff::Timestamp::now().to_string(),
            key_ids: ids.clone(),
        })?;
        let patch =
            serde_json::json!({"metadata": {"annotations": {LAST_BACKUP_ANNOTATION: record}}});
        if let Err(err) = api
            .patch(
                KEY_OPERATIONS_CONFIGMAP,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            eprintln!(
                "kseal: warning: could not record the backup in ConfigMap {KEY_OPERATIONS_CONFIGMAP}: {}",
                cluster::kube_error_text(&err)
            );
        }
        Ok(())
    })?;
    eprintln!(
        "kseal: {} key(s) backed up to {} ({}), encrypted to {} recipient(s)",
        ids.len(),
        args.output.display(),
        ids.join(", "),
        recipients.len()
    );
    Ok(())
}

/// What a cluster already has, for a restore: its Secrets' names (with the
/// key id of each sealing-key Secret) and the key ids it holds, read as
/// metadata only; or, when Secrets cannot be listed, the key ids it
/// publishes (names are then checked when installing).
struct InstalledKeys {
    /// Secret name → the key id it holds (`None`: not a sealing key).
    names: Option<BTreeMap<String, Option<String>>>,
    /// Key id → where it is and in which state.
    ids: BTreeMap<String, (String, String)>,
}

async fn installed_keys(client: &Client, cluster: &ClusterArgs) -> InstalledKeys {
    let namespace = &cluster.controller_namespace;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match secrets.list_metadata(&ListParams::default()).await {
        Ok(list) => {
            let mut names = BTreeMap::new();
            let mut ids = BTreeMap::new();
            for secret in list {
                let labels = secret.labels();
                let id = (labels.get(SEALING_KEY_LABEL).map(String::as_str) == Some("true"))
                    .then(|| labels.get(KEY_ID_LABEL).cloned())
                    .flatten();
                if let Some(id) = &id {
                    let state = labels.get(KEY_STATE_LABEL).cloned().unwrap_or_default();
                    ids.insert(
                        id.clone(),
                        (format!("Secret {namespace}/{}", secret.name_any()), state),
                    );
                }
                names.insert(secret.name_any(), id);
            }
            InstalledKeys {
                names: Some(names),
                ids,
            }
        }
        Err(err) => {
            eprintln!(
                "kseal: warning: cannot list the Secrets in {namespace} ({}); the keys the cluster has are taken from what it publishes, and a Secret already holding a key's name shows only when installing",
                match &err {
                    kube::Error::Api(status) if status.code == 403 => "not allowed".to_owned(),
                    other => cluster::kube_error_text(other),
                }
            );
            let ids = published_keys(client, cluster)
                .await
                .map(|keys| {
                    keys.keys
                        .into_iter()
                        .map(|key| {
                            let place = format!("published in {PUBLIC_KEYS_CONFIGMAP}");
                            (key.id, (place, key.state.as_str().to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            InstalledKeys { names: None, ids }
        }
    }
}

/// What a restore does with one key of the backup.
enum Disposition {
    /// Creates its Secret.
    Install,
    /// Leaves it: the cluster has this key (where, state).
    Present(String, String),
    /// Cannot: another Secret has its name (holding this key id, or none).
    Conflict(Option<String>),
}

impl InstalledKeys {
    fn disposition(&self, key: &backup::RestoredKey) -> Disposition {
        if let Some((place, state)) = self.ids.get(&key.key_id.to_string()) {
            return Disposition::Present(place.clone(), state.clone());
        }
        match self.names.as_ref().and_then(|names| names.get(&key.name)) {
            Some(holder) => Disposition::Conflict(holder.clone()),
            None => Disposition::Install,
        }
    }
}

/// `holds key X`, or `is not a kseal key`, for a Secret in the way.
fn holder_text(holder: &Option<String>) -> String {
    match holder {
        Some(id) => format!("holds key {id}"),
        None => "is not a kseal key Secret".to_owned(),
    }
}

/// Puts backed-up keys into a cluster (a new one after a disaster, or the
/// same one after a deleted key). Keys the cluster has are left as they
/// are. With `--dry-run`, says what it would do and installs nothing.
fn restore(args: RestoreArgs) -> Result<()> {
    let file = std::fs::read(&args.file)
        .with_context(|| format!("{}: cannot read", args.file.display()))?;
    let identities = crate::recipients::identities(&args.identities)?;
    let items =
        backup::decrypt(&file, &identities).with_context(|| args.file.display().to_string())?;
    let plan = backup::restore_plan(&items, args.keep_states);
    for mut item in items {
        kseal_shared::manifest::scrub(&mut item);
    }
    let plan = plan.with_context(|| args.file.display().to_string())?;
    let namespace = args.cluster.controller_namespace.clone();
    cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let installed = installed_keys(&client, &args.cluster).await;
        // Say what will be installed before installing it: a backup is not
        // authenticated, so the operator should recognise these keys.
        let dispositions: Vec<Disposition> =
            plan.iter().map(|key| installed.disposition(key)).collect();
        for (key, disposition) in plan.iter().zip(&dispositions) {
            let head = format!(
                "kseal: key {} ({}), created {}",
                key.key_id,
                key.recipient,
                key.created.as_deref().unwrap_or("(unknown)")
            );
            let secret = format!("Secret {namespace}/{}", key.name);
            match (disposition, args.dry_run) {
                (Disposition::Install, true) => {
                    eprintln!("{head}: would be restored as {} ({secret})", key.state)
                }
                (Disposition::Install, false) => eprintln!("{head}: restoring as {}", key.state),
                (Disposition::Present(place, state), _) => {
                    eprintln!("{head}: already in the cluster ({place}, {state}): left as it is")
                }
                (Disposition::Conflict(holder), dry_run) => eprintln!(
                    "{head}: conflict: {secret} already exists and {}: {}",
                    holder_text(holder),
                    if dry_run {
                        "would not be restored"
                    } else {
                        "not restored"
                    }
                ),
            }
        }
        let count =
            |wanted: fn(&Disposition) -> bool| dispositions.iter().filter(|d| wanted(d)).count();
        if args.dry_run {
            let present = count(|d| matches!(d, Disposition::Present(..)));
            let conflicts = count(|d| matches!(d, Disposition::Conflict(_)));
            eprintln!(
                "kseal: dry run, nothing installed: {} key(s) would be restored into {namespace}; {present} already present; {conflicts} conflict(s)",
                count(|d| matches!(d, Disposition::Install)),
            );
            return Ok(());
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let (mut created, mut present, mut conflicts) = (0usize, 0usize, 0usize);
        for (key, disposition) in plan.iter().zip(&dispositions) {
            match disposition {
                Disposition::Present(..) => {
                    present += 1;
                    continue;
                }
                Disposition::Conflict(_) => {
                    conflicts += 1;
                    continue;
                }
                Disposition::Install => {}
            }
            let name = key.name.clone();
            let mut secret: Secret = serde_json::from_value(key.secret().clone())
                .map_err(|_| anyhow!("the backup holds a malformed Secret {name:?}"))?;
            secret.metadata.namespace = Some(namespace.clone());
            let result = secrets.create(&PostParams::default(), &secret).await;
            if let Some(data) = secret.data.as_mut() {
                for value in data.values_mut() {
                    zeroize::Zeroize::zeroize(&mut value.0);
                }
            }
            match result {
                Ok(_) => {
                    created += 1;
                    eprintln!(
                        "kseal: installed key {} as {} (Secret {namespace}/{name})",
                        key.key_id, key.state
                    );
                }
                // Made since the list (or it could not be listed): the same
                // key, or another in the way.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    let holder = secrets.get_metadata(&name).await.ok().map(|found| {
                        (found.labels().get(SEALING_KEY_LABEL).map(String::as_str) == Some("true"))
                            .then(|| found.labels().get(KEY_ID_LABEL).cloned())
                            .flatten()
                    });
                    match holder {
                        Some(holder) if holder.as_deref() != Some(&*key.key_id.to_string()) => {
                            conflicts += 1;
                            eprintln!(
                                "kseal: key {}: conflict: Secret {namespace}/{name} already exists and {}: not restored",
                                key.key_id,
                                holder_text(&holder)
                            );
                        }
                        _ => {
                            present += 1;
                            eprintln!(
                                "kseal: key {}: Secret {namespace}/{name} already exists: left as it is",
                                key.key_id
                            );
                        }
                    }
                }
                Err(err) => {
                    return Err(cluster::kube_error(err)
                        .context(format!("cannot create key Secret {name}")));
                }
            }
        }
        eprintln!(
            "kseal: restored {created} key(s) into {namespace}{}{}",
            if present == 0 {
                String::new()
            } else {
                format!("; {present} already present")
            },
            if conflicts == 0 {
                String::new()
            } else {
                format!("; {conflicts} not restored: another Secret has its name")
            }
        );
        Ok(())
    })
}
