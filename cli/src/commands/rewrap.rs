//! `kseal rewrap`: re-wrap data keys to new recipients with backed-up
//! identities, offline. Ciphertexts stay byte-identical; only key ids and
//! wrapped keys change.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use kseal_shared::envelope::{SealedValue, rewrap};
use kseal_shared::manifest::{DocumentKind, ManifestFile, value_binding};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::{KeyId, Keyring, Recipient};

use crate::UsageError;
use crate::args::RewrapArgs;
use crate::io::{Privacy, Source, manifest_files, write_atomic, write_stdout};
use crate::keys;

/// Show a progress bar from this many files on (and only on a terminal).
const PROGRESS_THRESHOLD: usize = 20;

#[derive(Debug, Default)]
struct Tally {
    rewrapped: usize,
    current: usize,
    failed: usize,
    files_written: usize,
}

pub fn run(args: RewrapArgs) -> Result<()> {
    let keyring = keys::keyring(&args.identities.identities)?;
    let Some(recipients) = keys::from_flags(&args.recipients)? else {
        return Err(UsageError::new(
            "rewrap needs the new recipients: -r/--recipient or -R/--recipients-file",
        )
        .into());
    };
    let files = manifest_files(&args.paths)?;
    let single_file = args.paths.len() == 1 && files.len() == 1 && !args.paths[0].is_dir();
    if !args.in_place && !single_file {
        return Err(UsageError::new(
            "several files or a directory: pass --in-place to rewrite them",
        )
        .into());
    }
    let target: Vec<KeyId> = recipients.iter().map(Recipient::key_id).collect();
    let progress = (files.len() >= PROGRESS_THRESHOLD).then(|| {
        let bar = indicatif::ProgressBar::new(files.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut tally = Tally::default();
    for path in &files {
        let rendered = rewrap_file(path, &keyring, &recipients, &target, &mut tally);
        match rendered {
            Ok(Some(text)) if args.in_place => {
                write_atomic(path, text.as_bytes(), Privacy::Public)?;
                tally.files_written += 1;
            }
            Ok(Some(text)) => write_stdout(text.as_bytes())?,
            Ok(None) if !args.in_place => {
                write_stdout(Source::File(path.clone()).read()?.as_bytes())?;
            }
            Ok(None) => {}
            Err(err) => {
                tally.failed += 1;
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
        "kseal: {} value(s) re-wrapped, {} already current, {} failed; {} file(s) rewritten",
        tally.rewrapped, tally.current, tally.failed, tally.files_written
    );
    if tally.failed > 0 {
        bail!(
            "{} value(s) or file(s) could not be re-wrapped",
            tally.failed
        );
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
fn rewrap_file(
    path: &Path,
    keyring: &Keyring,
    recipients: &[Recipient],
    target: &[KeyId],
    tally: &mut Tally,
) -> Result<Option<String>> {
    let text = Source::File(path.to_owned()).read()?;
    let mut file = ManifestFile::new(&text);
    let objects = file
        .objects()
        .map_err(|err| anyhow!("{}: {err}", path.display()))?;
    for object in objects
        .iter()
        .filter(|o| o.kind == DocumentKind::SealedSecret)
    {
        let sealed: SealedSecret = serde_json::from_value(object.value.clone())
            .map_err(|err| anyhow!("{}: {}: {err}", path.display(), object.location()))?;
        let mut encrypted = sealed.spec.encrypted_data.clone();
        let mut changed = false;
        for (key, encoded) in &sealed.spec.encrypted_data {
            let result = SealedValue::parse(encoded).and_then(|value| {
                if value.is_sealed_to(target) {
                    Ok(None)
                } else {
                    rewrap(&value, &value_binding(&sealed, key), keyring, recipients).map(Some)
                }
            });
            match result {
                Ok(None) => tally.current += 1,
                Ok(Some(value)) => {
                    encrypted.insert(key.clone(), value.encode());
                    tally.rewrapped += 1;
                    changed = true;
                }
                Err(err) => {
                    tally.failed += 1;
                    eprintln!(
                        "kseal: {}: {}: key {key:?}: {err}",
                        path.display(),
                        object.location()
                    );
                }
            }
        }
        if changed {
            let mut value = object.value.clone();
            value["spec"]["encryptedData"] = serde_json::to_value(&encrypted)?;
            file.replace(object, value);
        }
    }
    if !file.has_replacements() {
        return Ok(None);
    }
    file.render()
        .map(Some)
        .map_err(|err| anyhow!("{}: {err}", path.display()))
}
