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
    KEY_ID_LABEL, KEY_OPERATIONS_CONFIGMAP, KEY_STATE_LABEL, KEYS_DATA_KEY, KeyState,
    LAST_BACKUP_ANNOTATION, LastBackup, PUBLIC_KEYS_CONFIGMAP, PublishedKey,
    ROTATION_REQUEST_DATA_KEY, SEALING_KEY_LABEL, SEALING_KEY_SECRET_TYPE,
};
use kseal_shared::envelope::key_ids_in;
use kseal_shared::published::PublishedKeysError;
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::x25519::KeyId;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::args::{
    BackupArgs, KeysArgs, KeysCommand, ListKeysArgs, RestoreArgs, RetireArgs, RotateArgs,
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
    /// Key ids in the last backup, if one was recorded.
    last_backup: Option<BTreeSet<String>>,
}

async fn published_keys(client: &Client, cluster: &ClusterArgs) -> Result<ClusterKeys> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.controller_namespace);
    let config_map = api.get(PUBLIC_KEYS_CONFIGMAP).await.with_context(|| {
        format!(
            "cannot read ConfigMap {}/{PUBLIC_KEYS_CONFIGMAP} (is the kseal controller installed there?)",
            cluster.controller_namespace
        )
    })?;
    let text = config_map
        .data
        .as_ref()
        .and_then(|data| data.get(KEYS_DATA_KEY))
        .ok_or_else(|| anyhow!("ConfigMap {PUBLIC_KEYS_CONFIGMAP} has no {KEYS_DATA_KEY}"))?;
    let keys = serde_json::from_str(text).context(KEYS_DATA_KEY)?;
    // Recorded in the key-operations ConfigMap; earlier versions recorded
    // it on the public-key one.
    let operations: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster.controller_namespace);
    let recorded = operations
        .get_opt(KEY_OPERATIONS_CONFIGMAP)
        .await
        .ok()
        .flatten()
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
    let last_backup = recorded
        .and_then(|value| serde_json::from_str::<LastBackup>(&value).ok())
        .map(|backup| backup.key_ids.into_iter().collect());
    Ok(ClusterKeys { keys, last_backup })
}

/// Which SealedSecrets (namespace/name) have values sealed to each key id,
/// from their status and, for objects not reconciled yet, their values.
async fn key_users(client: &Client) -> Result<BTreeMap<String, Vec<String>>> {
    let api: Api<SealedSecret> = Api::all(client.clone());
    let list = api
        .list(&ListParams::default())
        .await
        .context("cannot list SealedSecrets")?;
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
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
        for id in ids {
            users.entry(id).or_default().push(name.clone());
        }
    }
    Ok(users)
}

fn list(args: ListKeysArgs) -> Result<()> {
    let (keys, users) = cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let keys = published_keys(&client, &args.cluster).await?;
        let users = key_users(&client).await?;
        Ok((keys, users))
    })?;
    let mut out = format!(
        "{:<18} {:<13} {:<22} {}\n",
        "KEY ID", "STATE", "CREATED", "SEALEDSECRETS"
    );
    for key in &keys.keys {
        let count = users.get(&key.id).map_or(0, Vec::len);
        // To the second: the controller records nanoseconds (to order
        // keys made in the same second), which only widen the column.
        let created = key
            .created
            .parse::<jiff::Timestamp>()
            .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| key.created.clone());
        out.push_str(&format!(
            "{:<18} {:<13} {:<22} {count}\n",
            key.id, key.state, created
        ));
    }
    write_stdout(out.as_bytes())?;
    let active = keys.keys.iter().find(|key| key.state == KeyState::Active);
    match (&keys.last_backup, active) {
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
            Err(err) => Err(anyhow!(err).context(format!("cannot request a rotation ({where_})"))),
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
                    "kseal: new active key published; the old key keeps decrypting. Re-wrap the repository to the new key: kseal rewrap --online --in-place PATH"
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
            .context(
                "cannot list the key Secrets (needs list on Secrets in the controller's namespace)",
            )?;
        for secret in matching {
            if args.delete {
                secrets
                    .delete(&secret.name_any(), &DeleteParams::default())
                    .await?;
            } else {
                let patch = serde_json::json!({"metadata": {"labels": {KEY_STATE_LABEL: KeyState::Retired.as_str()}}});
                secrets
                    .patch(
                        &secret.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
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
                "kseal: warning: could not record the backup in ConfigMap {KEY_OPERATIONS_CONFIGMAP}: {err}"
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

/// Puts backed-up keys into a cluster (a new one after a disaster, or the
/// same one after a deleted key). Existing keys are left as they are.
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
    // Say what will be installed before installing it: a backup is not
    // authenticated, so the operator should recognise these keys.
    for key in &plan {
        eprintln!(
            "kseal: key {} ({}), created {}: restoring as {}",
            key.key_id,
            key.recipient,
            key.created.as_deref().unwrap_or("(unknown)"),
            key.state
        );
    }
    cluster::block_on(async {
        let client = cluster::client(&args.cluster).await?;
        let secrets: Api<Secret> =
            Api::namespaced(client.clone(), &args.cluster.controller_namespace);
        let (mut created, mut present) = (Vec::new(), Vec::new());
        for key in &plan {
            let name = key.name.clone();
            let mut secret: Secret = serde_json::from_value(key.secret().clone())
                .map_err(|_| anyhow!("the backup holds a malformed Secret {name:?}"))?;
            secret.metadata.namespace = Some(args.cluster.controller_namespace.clone());
            let result = secrets.create(&PostParams::default(), &secret).await;
            if let Some(data) = secret.data.as_mut() {
                for value in data.values_mut() {
                    zeroize::Zeroize::zeroize(&mut value.0);
                }
            }
            match result {
                Ok(_) => created.push(name),
                Err(kube::Error::Api(status)) if status.code == 409 => present.push(name),
                Err(err) => {
                    return Err(anyhow!(err).context(format!("cannot create key Secret {name}")));
                }
            }
        }
        eprintln!(
            "kseal: restored {} key(s) into {}{}",
            created.len(),
            args.cluster.controller_namespace,
            if present.is_empty() {
                String::new()
            } else {
                format!("; {} already present", present.len())
            }
        );
        Ok(())
    })
}
