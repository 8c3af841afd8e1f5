//! `kseal rewrap`: re-wrap data keys to new recipients, offline with
//! backed-up identities or online through the controller. v2 ciphertexts
//! stay byte-identical (only key ids and wrapped keys change); v1 values are
//! upgraded to v2, which changes every field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use kseal_shared::envelope::{FormatVersion, SealedValue, rewrap};
use kseal_shared::manifest::{DocumentKind, ManifestFile, value_binding};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::validation;
use kseal_shared::{
    envelope::Keyring,
    x25519::{KeyId, Recipient},
};

use super::rewrap_online::{self, ClusterKeyIds, ObjectResult, Prefetched, RecipientChanges};
use crate::args::{RecipientArgs, RewrapArgs};
use crate::error::UsageError;
use crate::io::{Source, write_in_place, write_stdout};
use crate::recipients;
use crate::walk::{Extras, Unparseable, manifest_files, skippable};

/// Show a progress bar from this many files on (and only on a terminal).
const PROGRESS_THRESHOLD: usize = 20;

#[derive(Debug, Default)]
struct Tally {
    rewrapped: usize,
    /// Of those, upgraded from format v1.
    upgraded: usize,
    current: usize,
    failed: usize,
    files_written: usize,
    /// Files with re-wrapped values that could not be written.
    files_not_written: usize,
    /// What the online re-wraps written did to the recipients.
    changes: RecipientChanges,
}

impl Tally {
    /// Adds one file's counts, once its fate is known: values count as
    /// re-wrapped only when the file holding them was written (or
    /// printed); otherwise they failed with it.
    fn add_file(&mut self, file: Tally, written: bool) {
        if written {
            self.rewrapped += file.rewrapped;
            self.upgraded += file.upgraded;
            self.changes.merge(&file.changes);
        } else {
            self.failed += file.rewrapped;
        }
        self.current += file.current;
        self.failed += file.failed;
    }
}

/// Where new wrapped keys come from.
enum Mode<'a> {
    /// Backed-up identities open the values; they are wrapped to the
    /// recipients of `-r`/`-R`, or else of each file's `.kseal.yaml` rule.
    Offline {
        keyring: Keyring,
        recipients: &'a RecipientArgs,
    },
    /// The cluster's controller re-wraps to its current keys; its answers
    /// for every file are fetched in bulk first.
    Online(Prefetched),
}

pub fn run(args: RewrapArgs) -> Result<()> {
    let online = args.online;
    let mut mode = if online {
        // Filled in below, once the files are known.
        Mode::Online(Prefetched::default())
    } else {
        let keyring = recipients::keyring(&args.identities)?;
        // Checked once up front: flags, or a .kseal.yaml to take them from.
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        if recipients::from_flags(&args.recipients)?.is_none()
            && kseal_shared::config::Config::find(&cwd)?.is_none()
        {
            return Err(UsageError::new(
                "rewrap needs the new recipients: -r/--recipient, -R/--recipients-file, a .kseal.yaml with creation_rules, or --online",
            )
            .into());
        }
        Mode::Offline {
            keyring,
            recipients: &args.recipients,
        }
    };
    // --stale online: the keys the cluster seals to now; values naming none
    // of them are the stale ones. (Offline: the new recipients, per file.)
    let cluster_keys: Option<ClusterKeyIds> = if args.stale && args.online {
        Some(ClusterKeyIds::fetch(&args.cluster)?)
    } else {
        None
    };
    let active = cluster_keys.as_ref().map(|keys| &keys.active);
    let files = manifest_files(&args.paths, Extras::ManifestsOnly, args.walk.ignore_files())?;
    let single_file = args.paths.len() == 1 && files.len() == 1 && !args.paths[0].is_dir();
    if !args.in_place && !single_file {
        return Err(UsageError::new(
            "several files or a directory: pass --in-place to rewrite them",
        )
        .into());
    }
    let progress = (files.len() >= PROGRESS_THRESHOLD).then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if online {
        mode = Mode::Online(rewrap_online::prefetch(
            &files,
            &args.cluster,
            cluster_keys.as_ref(),
            args.trust_controller_for_v1,
        )?);
    }
    let mut tally = Tally::default();
    let mut to_stdout: Option<Vec<u8>> = None;
    for file in &files {
        let path = &file.path;
        let mut counted = Tally::default();
        // `.kseal.yaml` rules match the file whose values these are (a
        // symlink's target, not the link); a target out of the tree is
        // refused when written.
        let rendered = file.rule_path(false).and_then(|rule_path| {
            rewrap_file(
                path,
                &rule_path,
                &mut mode,
                args.stale,
                active,
                &mut counted,
            )
        });
        let unreadable = rendered.as_ref().is_err_and(|err| {
            err.downcast_ref::<Unparseable>().is_some()
                && Source::File(path.clone())
                    .read()
                    .is_ok_and(|text| skippable(file, &text, "kseal.dev/"))
        });
        if unreadable {
            report(
                &progress,
                format!(
                    "kseal: {}: skipped: not YAML/JSON kseal can read, and no kseal object in it (a template?)",
                    path.display()
                ),
            );
            if let Some(bar) = &progress {
                bar.inc(1);
            }
            continue;
        }
        // Each file on its own (offline and online alike): one that fails
        // is reported and left as it was, and the run goes on.
        match rendered {
            Ok(Some(text)) if args.in_place => match write_in_place(file, text.as_bytes()) {
                Ok(()) => {
                    tally.files_written += 1;
                    tally.add_file(counted, true);
                }
                // A symlink out of the tree: refused, and the run fails.
                Err(err) => {
                    tally.files_not_written += 1;
                    tally.add_file(counted, false);
                    report(&progress, format!("kseal: {err:#}"));
                }
            },
            // Without --in-place (one file): printed at the end, and only
            // if nothing failed, so `kseal rewrap f > out` never leaves a
            // copy that was not re-wrapped.
            Ok(Some(text)) => {
                to_stdout = Some(text.into_bytes());
                tally.add_file(counted, true);
            }
            Ok(None) if !args.in_place => {
                to_stdout = Some(Source::File(path.clone()).read()?.as_bytes().to_vec());
                tally.add_file(counted, true);
            }
            Ok(None) => tally.add_file(counted, true),
            // Nothing of the file is written: what was re-wrapped in it
            // before the error failed with it.
            Err(err) => {
                tally.failed += 1;
                tally.add_file(counted, false);
                report(&progress, format!("kseal: {err:#}"));
            }
        }
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    eprintln!(
        "kseal: {} value(s) re-wrapped, {} already current, {} failed; {} file(s) rewritten{}",
        tally.rewrapped,
        tally.current,
        tally.failed,
        tally.files_written,
        if tally.files_not_written > 0 {
            format!(", {} not written", tally.files_not_written)
        } else {
            String::new()
        }
    );
    if tally.failed > 0 && tally.files_written > 0 {
        eprintln!(
            "kseal: each file is written on its own: the files rewritten keep their new values, and what failed is as it was (run again once it is fixed)"
        );
    }
    let known_cluster_keys = match &mode {
        Mode::Online(prefetched) => prefetched.cluster_keys(),
        Mode::Offline { .. } => None,
    };
    for line in tally.changes.summary(known_cluster_keys) {
        eprintln!("{line}");
    }
    if tally.upgraded > 0 {
        eprintln!(
            "kseal: {} of them upgraded from format v1 to v2: every field of those values changed, and their seal time was never recorded (re-seal them from the plaintext to start their age)",
            tally.upgraded
        );
    }
    if tally.failed > 0 {
        bail!(
            "{} value(s) or file(s) could not be re-wrapped{}",
            tally.failed,
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

fn report(progress: &Option<indicatif::ProgressBar>, line: String) {
    match progress {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    }
}

/// Re-wraps every value of every SealedSecret in one file. Returns the new
/// text if anything changed. Values that fail are reported and left as they
/// were (each value is self-contained, so the file stays consistent).
/// `rule_path`: the path `.kseal.yaml` rules match for it
/// ([`crate::walk::ManifestPath::rule_path`]).
fn rewrap_file(
    path: &Path,
    rule_path: &Path,
    mode: &mut Mode<'_>,
    stale: bool,
    active: Option<&HashSet<KeyId>>,
    tally: &mut Tally,
) -> Result<Option<String>> {
    let text = Source::File(path.to_owned()).read()?;
    let mut file = ManifestFile::new(&text);
    let objects = file
        .objects()
        .map_err(|err| anyhow::Error::new(Unparseable(format!("{}: {err}", path.display()))))?;
    let mut file_recipients: Option<(Vec<Recipient>, Vec<KeyId>)> = None;
    let sealed_objects = objects
        .iter()
        .filter(|o| o.kind == DocumentKind::SealedSecret);
    for (ordinal, object) in sealed_objects.enumerate() {
        let sealed: SealedSecret = kseal_shared::sealed_secret::from_document(&object.value)
            .map_err(|err| anyhow!("{}: {}: {err}", path.display(), object.location()))?;
        // Kubernetes' naming rules: a SealedSecret the API server would
        // refuse is reported, not re-wrapped.
        let problems = validation::sealed_secret_problems(&sealed);
        if !problems.is_empty() {
            tally.failed += 1;
            for problem in &problems {
                eprintln!(
                    "kseal: {}: {}: {problem}",
                    path.display(),
                    object.location()
                );
            }
            continue;
        }
        // Offline: the flags' recipients, or the rule for this file's path;
        // looked up once per file, at its first SealedSecret.
        if let (
            Mode::Offline {
                recipients: flags, ..
            },
            None,
        ) = (&*mode, &file_recipients)
        {
            let recipients = recipients::resolve(flags, Some(rule_path))?
                .map(|resolved| resolved.recipients)
                .ok_or_else(|| {
                    anyhow!(
                        "{}: no recipients: pass -r/-R or add a .kseal.yaml rule for this path",
                        path.display()
                    )
                })?;
            let target: Vec<KeyId> = recipients.iter().map(Recipient::key_id).collect();
            file_recipients = Some((recipients, target));
        }
        // --stale: only values naming none of the current keys (the
        // cluster's active keys online, the new recipients offline); an
        // object without one is left alone.
        let current: Option<HashSet<&KeyId>> = match (&file_recipients, active) {
            _ if !stale => None,
            (Some((_, target)), None) => Some(target.iter().collect()),
            (_, Some(active)) => Some(active.iter().collect()),
            (None, None) => None,
        };
        let is_stale = |encoded: &String| match &current {
            None => true,
            Some(current) => SealedValue::parse(encoded)
                .is_ok_and(|value| !value.key_ids().iter().any(|id| current.contains(id))),
        };
        if !sealed.spec.encrypted_data.values().any(is_stale) {
            tally.current += sealed.spec.encrypted_data.len();
            continue;
        }
        let result = match (&mut *mode, &file_recipients) {
            (Mode::Offline { keyring, .. }, Some((recipients, target))) => {
                rewrap_offline(&sealed, keyring, recipients, target, &is_stale)
            }
            (Mode::Offline { .. }, None) => bail!("internal error: no recipients resolved"),
            (Mode::Online(prefetched), _) => prefetched
                .take(path, ordinal, &sealed)
                .map_err(|err| anyhow!("{}: {}: {err:#}", path.display(), object.location()))?,
        };
        tally.rewrapped += result.rewrapped;
        tally.upgraded += result.upgraded;
        tally.changes.merge(&result.changes);
        tally.current += result.current;
        tally.failed += result.failures.len();
        for (key, message) in &result.failures {
            eprintln!(
                "kseal: {}: {}: key {key:?}: {message}",
                path.display(),
                object.location()
            );
        }
        let changed: BTreeMap<String, String> = result
            .encrypted
            .into_iter()
            .filter(|(key, value)| sealed.spec.encrypted_data.get(key) != Some(value))
            .collect();
        if !changed.is_empty() {
            file.set_encrypted_values(object, changed);
        }
    }
    if !file.has_replacements() {
        return Ok(None);
    }
    let rendered = file
        .render_reporting()
        .map_err(|err| anyhow!("{}: {err}", path.display()))?;
    for location in &rendered.rewritten {
        eprintln!(
            "kseal: {}",
            super::regenerate::rewritten_whole(path, location)
        );
    }
    Ok(Some(rendered.text))
}

fn rewrap_offline(
    sealed: &SealedSecret,
    keyring: &Keyring,
    recipients: &[Recipient],
    target: &[KeyId],
    selected: &dyn Fn(&String) -> bool,
) -> ObjectResult {
    let mut result = ObjectResult {
        encrypted: sealed.spec.encrypted_data.clone(),
        rewrapped: 0,
        upgraded: 0,
        current: 0,
        failures: Vec::new(),
        changes: RecipientChanges::default(),
    };
    for (key, encoded) in &sealed.spec.encrypted_data {
        let outcome = SealedValue::parse(encoded).and_then(|value| {
            if value.is_current_for(target) || !selected(encoded) {
                Ok(None)
            } else {
                let upgraded = value.version() == FormatVersion::V1;
                rewrap(&value, &value_binding(sealed, key), keyring, recipients)
                    .map(|value| Some((value, upgraded)))
            }
        });
        match outcome {
            Ok(None) => result.current += 1,
            Ok(Some((value, upgraded))) => {
                result.encrypted.insert(key.clone(), value.encode());
                result.rewrapped += 1;
                result.upgraded += usize::from(upgraded);
            }
            Err(err) => result.failures.push((key.clone(), err.to_string())),
        }
    }
    result
}
