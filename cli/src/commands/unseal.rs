//! `kseal unseal`: SealedSecrets back to plain Secrets with a private key,
//! for recovery when the cluster is gone.

use anyhow::{Result, anyhow, bail};
use kseal_shared::manifest::{
    DocumentKind, ManifestFile, OutputFormat, UnsealError, render_documents, scrub, unseal,
};
use kseal_shared::sealed_secret::SealedSecret;
use zeroize::Zeroizing;

use crate::args::{Format, UnsealArgs};
use crate::io::{Privacy, Source, emit};
use crate::recipients;

pub fn run(args: UnsealArgs) -> Result<()> {
    let keyring = recipients::keyring(&args.identities.identities)?;
    let source = Source::from_arg(args.file.as_deref());
    let text = source.read()?;
    let objects = ManifestFile::new(&text)
        .objects()
        .map_err(|err| anyhow!("{}: {err}", source.display()))?;
    if objects.is_empty() {
        bail!("{}: no SealedSecret found", source.display());
    }
    let mut secrets = Vec::with_capacity(objects.len());
    let mut failed = 0;
    for object in &objects {
        if object.kind != DocumentKind::SealedSecret {
            bail!(
                "{}: {}: expected a kseal.dev/v1alpha1 SealedSecret",
                source.display(),
                object.location()
            );
        }
        let sealed: SealedSecret = kseal_shared::sealed_secret::from_document(&object.value)
            .map_err(|err| anyhow!("{}: {}: {err}", source.display(), object.location()))?;
        match unseal(&sealed, &keyring) {
            Ok(secret) => secrets.push(secret.to_manifest()),
            Err(UnsealError::TooManyValues { count }) => {
                failed += count;
                eprintln!(
                    "kseal: {}: {}: {}",
                    source.display(),
                    object.location(),
                    UnsealError::TooManyValues { count }
                );
            }
            Err(UnsealError::Values(failures)) => {
                for failure in failures {
                    failed += 1;
                    eprintln!(
                        "kseal: {}: {}: key {:?}: {}",
                        source.display(),
                        object.location(),
                        failure.key,
                        failure.error
                    );
                }
            }
        }
    }
    if failed > 0 {
        for secret in &mut secrets {
            scrub(secret);
        }
        bail!("{failed} value(s) could not be unsealed; nothing was written");
    }
    let format = match args.format {
        Format::Yaml => OutputFormat::Yaml,
        Format::Json => OutputFormat::Json,
    };
    let rendered = render_documents(&secrets, format).map(Zeroizing::new);
    for secret in &mut secrets {
        scrub(secret);
    }
    let text = rendered.map_err(|message| anyhow!(message))?;
    emit(args.output.as_deref(), text.as_bytes(), Privacy::Private)
}
