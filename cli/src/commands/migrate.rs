//! `kseal migrate`: Bitnami SealedSecrets in, kseal SealedSecrets out,
//! offline, with the exported Bitnami private keys. The decryption and the
//! conversion live in `kseal_shared::bitnami`; this is file handling and
//! reporting. Plaintext exists only in memory, in zeroizing buffers.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kseal_shared::bitnami::{BitnamiKeyring, BitnamiSealedSecret, is_bitnami_sealed_secret};
use kseal_shared::manifest::{Document, ManifestFile};
use kseal_shared::validation;
use kseal_shared::x25519::Recipient;
use serde_json::Value;

use crate::args::MigrateArgs;
use crate::error::UsageError;
use crate::io::{Source, write_in_place, write_stdout};
use crate::recipients;
use crate::walk::{Extras, Unparseable, manifest_files, skippable};

#[derive(Debug, Default)]
struct Tally {
    objects: usize,
    values: usize,
    left_behind: usize,
    files_written: usize,
}

pub fn run(args: MigrateArgs) -> Result<()> {
    let stdin_keys = args
        .bitnami_keys
        .iter()
        .filter(|path| *path == Path::new("-"))
        .count();
    if stdin_keys > 1 {
        return Err(UsageError::new("--bitnami-key - (stdin) can be given only once").into());
    }
    let files = manifest_files(&args.paths, Extras::ManifestsOnly, args.walk.ignore_files())?;
    let single_file = args.paths.len() == 1 && files.len() == 1 && !args.paths[0].is_dir();
    if !args.in_place && !args.dry_run && !single_file {
        return Err(UsageError::new(
            "several files or a directory: pass --in-place to rewrite them (or --dry-run to see what would change)",
        )
        .into());
    }
    let keyring = load_keys(&args.bitnami_keys)?;

    let mut tally = Tally::default();
    let mut to_stdout: Option<Vec<u8>> = None;
    let cluster_keys = OnceCell::new();
    for file in &files {
        let path = &file.path;
        // `.kseal.yaml` rules match the file whose objects these are (a
        // symlink's target, not the link); a target out of the tree is
        // refused when written.
        let rendered = file.rule_path(false).and_then(|rule_path| {
            migrate_file(path, &rule_path, &keyring, &args, &cluster_keys, &mut tally)
        });
        // As rewrap: a template found in a tree, with no Bitnami object in
        // it, is skipped (and said so); one named, or one that mentions
        // Bitnami, is an error.
        let unreadable = rendered.as_ref().is_err_and(|err| {
            err.downcast_ref::<Unparseable>().is_some()
                && Source::File(path.clone())
                    .read()
                    .is_ok_and(|text| skippable(file, &text, "bitnami.com/"))
        });
        if unreadable {
            eprintln!(
                "kseal: {}: skipped: not YAML/JSON kseal can read, and no Bitnami object in it (a template?)",
                path.display()
            );
            continue;
        }
        match rendered {
            Ok(_) if args.dry_run => {}
            Ok(Some(text)) if args.in_place => match write_in_place(file, text.as_bytes()) {
                Ok(()) => tally.files_written += 1,
                // A symlink out of the tree: refused, and the run fails.
                Err(err) => {
                    tally.left_behind += 1;
                    eprintln!("kseal: {err:#}");
                }
            },
            // Without --in-place (one file): printed at the end, and only
            // if nothing was left behind: a failing command writes nothing
            // to its output.
            Ok(Some(text)) => to_stdout = Some(text.into_bytes()),
            Ok(None) if !args.in_place => {
                to_stdout = Some(Source::File(path.clone()).read()?.as_bytes().to_vec());
            }
            Ok(None) => {}
            Err(err) => {
                tally.left_behind += 1;
                eprintln!("kseal: {err:#}");
            }
        }
    }
    let verb = if args.dry_run {
        "would be migrated"
    } else {
        "migrated"
    };
    eprintln!(
        "kseal: {} SealedSecret(s) {verb} ({} value(s)), {} left behind; {} file(s) rewritten",
        tally.objects, tally.values, tally.left_behind, tally.files_written
    );
    if tally.left_behind > 0 {
        bail!(
            "{} SealedSecret(s) or file(s) could not be migrated{}",
            tally.left_behind,
            if to_stdout.is_some() {
                "; nothing was written to stdout"
            } else {
                ""
            }
        );
    }
    if let Some(text) = to_stdout {
        write_stdout(&text)?;
    }
    Ok(())
}

/// Every key of every file, in the order given.
fn load_keys(files: &[PathBuf]) -> Result<BitnamiKeyring> {
    let mut keyring = BitnamiKeyring::new();
    for file in files {
        let source = Source::from_arg(Some(file));
        let text = source.read()?;
        keyring
            .add_text(&text)
            .with_context(|| format!("{}: Bitnami key", source.display()))?;
    }
    Ok(keyring)
}

/// Recipients for one file: `-r`/`-R`, else the `.kseal.yaml` rule for its
/// path, else the cluster's published keys (fetched once).
fn recipients_for(
    path: &Path,
    args: &MigrateArgs,
    cluster_keys: &OnceCell<Result<Vec<Recipient>, String>>,
) -> Result<Vec<Recipient>> {
    if let Some(resolved) = recipients::resolve(&args.recipients, Some(path))? {
        return Ok(resolved.recipients);
    }
    cluster_keys
        .get_or_init(|| {
            recipients::from_cluster(&args.cluster).map_err(|err| format!("{err:#}"))
        })
        .clone()
        .map_err(|err| {
            anyhow!(
                "no recipients: pass -r/--recipient or -R/--recipients-file, add a .kseal.yaml with creation_rules, or reach a cluster running kseal (--kubeconfig/--context): {err}"
            )
        })
}

/// Migrates every Bitnami SealedSecret of one file. Returns the new text if
/// anything was migrated. Objects that cannot be migrated are reported and
/// stay as they are.
/// `rule_path`: the path `.kseal.yaml` rules match for the file
/// ([`crate::walk::ManifestPath::rule_path`]).
fn migrate_file(
    path: &Path,
    rule_path: &Path,
    keyring: &BitnamiKeyring,
    args: &MigrateArgs,
    cluster_keys: &OnceCell<Result<Vec<Recipient>, String>>,
    tally: &mut Tally,
) -> Result<Option<String>> {
    let text = Source::File(path.to_owned()).read()?;
    let mut file = ManifestFile::new(&text);
    let objects = file
        .objects()
        .map_err(|err| anyhow::Error::new(Unparseable(format!("{}: {err}", path.display()))))?;
    let bitnami: Vec<&Document> = objects
        .iter()
        .filter(|object| is_bitnami_sealed_secret(&object.value))
        .collect();
    if bitnami.is_empty() {
        return Ok(None);
    }
    let recipients = match recipients_for(rule_path, args, cluster_keys) {
        Ok(recipients) => recipients,
        Err(err) => {
            // Nothing in this file can be sealed; count its objects.
            tally.left_behind += bitnami.len() - 1;
            return Err(err.context(format!(
                "{}: {} Bitnami SealedSecret(s) not migrated",
                path.display(),
                bitnami.len()
            )));
        }
    };
    for object in bitnami {
        let at = format!(
            "{}: {}: {}",
            path.display(),
            object.location(),
            display_name(&object.value)
        );
        let result = BitnamiSealedSecret::parse(&object.value)
            .and_then(|parsed| parsed.migrate(keyring, &recipients));
        let result = result.map_err(anyhow::Error::from).and_then(|migrated| {
            // Kubernetes' naming rules, as for every SealedSecret kseal writes.
            let problems = validation::sealed_secret_problems(&migrated.sealed);
            if problems.is_empty() {
                Ok(migrated)
            } else {
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                Err(anyhow!("{}", problems.join("; ")))
            }
        });
        let migrated = match result {
            Ok(migrated) => migrated,
            Err(err) => {
                tally.left_behind += 1;
                if args.dry_run {
                    println!("{at}: would not migrate: {err}");
                } else {
                    eprintln!("kseal: {at}: not migrated: {err}");
                }
                continue;
            }
        };
        tally.objects += 1;
        tally.values += migrated.keys.len();
        if args.dry_run {
            let fingerprints: Vec<&str> = migrated
                .bitnami_keys
                .iter()
                .filter_map(|index| keyring.keys().get(*index))
                .map(|key| key.fingerprint())
                .collect();
            println!(
                "{at}: would migrate ({}): keys {}{}",
                migrated.sealed.spec.scope,
                list_or_none(&migrated.keys),
                if fingerprints.is_empty() {
                    String::new()
                } else {
                    format!("; Bitnami key(s) {}", fingerprints.join(", "))
                }
            );
        }
        if !migrated.dropped_annotations.is_empty() {
            let note = format!(
                "dropped annotations: {}",
                migrated.dropped_annotations.join(", ")
            );
            if args.dry_run {
                println!("{at}: {note}");
            } else {
                eprintln!("kseal: {at}: {note}");
            }
        }
        file.replace(object, serde_json::to_value(&migrated.sealed)?);
    }
    if !file.has_replacements() {
        return Ok(None);
    }
    file.render()
        .map(Some)
        .map_err(|err| anyhow!("{}: {err}", path.display()))
}

/// `namespace/name` of a manifest object, for messages.
fn display_name(value: &Value) -> String {
    let metadata = |field: &str| {
        value
            .get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    match (metadata("namespace"), metadata("name")) {
        (_, "") => "unnamed".into(),
        ("", name) => name.into(),
        (namespace, name) => format!("{namespace}/{name}"),
    }
}

fn list_or_none(keys: &[String]) -> String {
    if keys.is_empty() {
        "(none)".into()
    } else {
        keys.join(", ")
    }
}
