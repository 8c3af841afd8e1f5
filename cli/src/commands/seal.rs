//! `kseal seal`: Secrets in, SealedSecrets out.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use kseal_shared::manifest::{
    DocumentKind, ManifestFile, OutputFormat, PlainSecret, SealOptions, merge_into,
    render_documents, seal_secret,
};
use kseal_shared::sealed_secret::SealedSecret;
use kseal_shared::{
    binding::{Binding, Scope},
    envelope::seal,
    secret::SecretBytes,
    x25519::Recipient,
};
use zeroize::Zeroizing;

use crate::args::{Format, ScopeArg, SealArgs};
use crate::error::UsageError;
use crate::io::{Privacy, Source, emit, write_atomic};
use crate::recipients;

pub fn run(args: SealArgs) -> Result<()> {
    let from_flags = !(args.from_literal.is_empty()
        && args.from_file.is_empty()
        && args.from_env_file.is_empty());
    if from_flags && args.file.is_some() {
        return Err(UsageError::new(
            "use either -f/--file or --from-literal/--from-file/--from-env-file, not both",
        )
        .into());
    }
    // The path .kseal.yaml rules match: where the result goes, else the input.
    let rule_path = args
        .output
        .as_deref()
        .or(args.merge_into.as_deref())
        .or(args.file.as_deref())
        .filter(|path| *path != Path::new("-"));
    let resolved = recipients::resolve_or_cluster(&args.recipients, rule_path, &args.cluster)?;
    let scope = args
        .scope
        .map(scope_of)
        .or(resolved.scope)
        .unwrap_or_default();

    if args.raw && !from_flags && args.file.is_none() {
        return seal_raw_stdin(&args, scope, &resolved.recipients);
    }

    let source = Source::from_arg(args.file.as_deref());
    let mut secrets = if from_flags {
        vec![secret_from_flags(&args)?]
    } else {
        read_secrets(&source)?
    };
    for secret in &mut secrets {
        fill_in(secret, &args)?;
        let stripped = secret.strip_leaky_annotations();
        if !stripped.is_empty() {
            eprintln!(
                "kseal: {}: dropped annotations that may contain plaintext: {}",
                secret.name,
                stripped.join(", ")
            );
        }
    }

    if args.raw {
        return seal_raw(&secrets, scope, &resolved.recipients);
    }
    if let Some(target) = &args.merge_into {
        return merge(target, &secrets, &resolved.recipients);
    }

    let options = SealOptions {
        scope,
        recipients: &resolved.recipients,
        allow_empty_data: args.allow_empty_data,
    };
    let mut sealed = Vec::with_capacity(secrets.len());
    for (index, secret) in secrets.iter().enumerate() {
        let sealed_secret = seal_secret(secret, options).map_err(|message| {
            anyhow!(
                "{}: Secret {} ({}): {message}",
                source.display(),
                index + 1,
                display_name(secret)
            )
        })?;
        sealed.push(serde_json::to_value(&sealed_secret)?);
    }
    let format = match args.format {
        Format::Yaml => OutputFormat::Yaml,
        Format::Json => OutputFormat::Json,
    };
    let text = render_documents(&sealed, format).map_err(|message| anyhow!(message))?;
    emit(args.output.as_deref(), text.as_bytes(), Privacy::Public)
}

pub fn scope_of(arg: ScopeArg) -> Scope {
    match arg {
        ScopeArg::Strict => Scope::Strict,
        ScopeArg::NamespaceWide => Scope::NamespaceWide,
        ScopeArg::ClusterWide => Scope::ClusterWide,
    }
}

fn display_name(secret: &PlainSecret) -> String {
    match (secret.namespace.as_str(), secret.name.as_str()) {
        (_, "") => "unnamed".into(),
        ("", name) => name.into(),
        (namespace, name) => format!("{namespace}/{name}"),
    }
}

/// Every document must be a Secret.
fn read_secrets(source: &Source) -> Result<Vec<PlainSecret>> {
    let text = source.read()?;
    let file = ManifestFile::new(&text);
    let objects = file
        .objects()
        .map_err(|err| anyhow!("{}: {err}", source.display()))?;
    if objects.is_empty() {
        bail!("{}: no Secret manifest found", source.display());
    }
    let mut secrets = Vec::with_capacity(objects.len());
    for object in objects {
        if let DocumentKind::Other { api_version, kind } = &object.kind {
            bail!(
                "{}: {}: expected a v1 Secret, found apiVersion {api_version:?}, kind {kind:?}",
                source.display(),
                object.location()
            );
        }
        if object.kind == DocumentKind::SealedSecret {
            bail!(
                "{}: {}: this is already a SealedSecret",
                source.display(),
                object.location()
            );
        }
        let location = object.location();
        let secret = PlainSecret::from_value(object.value)
            .map_err(|message| anyhow!("{}: {location}: {message}", source.display()))?;
        secrets.push(secret);
    }
    Ok(secrets)
}

/// A Secret built from `--from-literal`, `--from-file` and `--from-env-file`.
fn secret_from_flags(args: &SealArgs) -> Result<PlainSecret> {
    let mut secret = PlainSecret {
        type_: args.secret_type.clone(),
        ..PlainSecret::default()
    };
    for literal in &args.from_literal {
        let Some((key, value)) = literal.split_once('=') else {
            return Err(UsageError::new(format!(
                "--from-literal expects KEY=VALUE, got no '=' in the argument for key {:?}",
                literal
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "-._".contains(*c))
                    .collect::<String>()
            ))
            .into());
        };
        insert_new(
            &mut secret,
            key,
            SecretBytes::from(value.as_bytes()),
            "--from-literal",
        )?;
    }
    for spec in &args.from_file {
        let (key, path) = match spec.split_once('=') {
            Some((key, path)) => (key.to_owned(), PathBuf::from(path)),
            None => {
                let path = PathBuf::from(spec);
                let key = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .ok_or_else(|| {
                        UsageError::new(format!("--from-file {spec}: no file name to use as key"))
                    })?
                    .to_owned();
                (key, path)
            }
        };
        let bytes =
            std::fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        insert_new(&mut secret, &key, SecretBytes::new(bytes), "--from-file")?;
    }
    for path in &args.from_env_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?,
        );
        for (number, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                bail!(
                    "{}: line {}: expected KEY=VALUE",
                    path.display(),
                    number + 1
                );
            };
            insert_new(
                &mut secret,
                key.trim(),
                SecretBytes::from(value.as_bytes()),
                &format!("{} line {}", path.display(), number + 1),
            )?;
        }
    }
    Ok(secret)
}

fn insert_new(secret: &mut PlainSecret, key: &str, value: SecretBytes, origin: &str) -> Result<()> {
    if secret.data.contains_key(key) {
        bail!("{origin}: key {key:?} given twice");
    }
    secret
        .insert(key, value)
        .map_err(|message| anyhow!("{origin}: {message}"))
}

/// `--name`/`--namespace` fill in what a manifest lacks; a different value is
/// an error rather than a silent rename.
fn fill_in(secret: &mut PlainSecret, args: &SealArgs) -> Result<()> {
    for (field, flag, value) in [
        (&mut secret.name, "--name", &args.name),
        (&mut secret.namespace, "--namespace", &args.namespace),
    ] {
        match value {
            Some(value) if field.is_empty() => *field = value.clone(),
            Some(value) if field != value => {
                bail!("{flag} {value:?} differs from the manifest's {field:?}")
            }
            _ => {}
        }
    }
    Ok(())
}

/// `--raw`: exactly one value, printed as the bare sealed string.
fn seal_raw(secrets: &[PlainSecret], scope: Scope, recipients: &[Recipient]) -> Result<()> {
    let [secret] = secrets else {
        return Err(UsageError::new(
            "--raw seals exactly one value; the input holds several Secrets",
        )
        .into());
    };
    let mut values = secret.data.iter();
    let (Some((key, value)), None) = (values.next(), values.next()) else {
        return Err(UsageError::new(format!(
            "--raw seals exactly one value; the input holds {}",
            secret.data.len()
        ))
        .into());
    };
    print_raw(
        Binding::new(scope, &secret.namespace, &secret.name, key),
        value,
        recipients,
    )
}

/// `--raw --key K`: the value is read from stdin as is.
fn seal_raw_stdin(args: &SealArgs, scope: Scope, recipients: &[Recipient]) -> Result<()> {
    let Some(key) = &args.key else {
        return Err(UsageError::new(
            "--raw needs a value: --from-literal, --from-file, or stdin with --key",
        )
        .into());
    };
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
        .context("cannot read stdin")?;
    let value = SecretBytes::new(bytes);
    let name = args.name.clone().unwrap_or_default();
    let namespace = args.namespace.clone().unwrap_or_default();
    print_raw(
        Binding::new(scope, &namespace, &name, key),
        &value,
        recipients,
    )
}

fn print_raw(binding: Binding<'_>, value: &SecretBytes, recipients: &[Recipient]) -> Result<()> {
    binding.validate().map_err(|err| {
        UsageError::new(format!(
            "{err} (use --name/--namespace, or another --scope)"
        ))
    })?;
    let sealed = seal(value.expose(), &binding, recipients)?;
    crate::io::write_stdout(format!("{sealed}\n").as_bytes())
}

/// `--merge-into FILE`: add or replace keys in the SealedSecret in FILE.
fn merge(target: &Path, secrets: &[PlainSecret], recipients: &[Recipient]) -> Result<()> {
    let text = Source::File(target.to_owned()).read()?;
    let mut file = ManifestFile::new(&text);
    let objects = file
        .objects()
        .map_err(|err| anyhow!("{}: {err}", target.display()))?;
    let candidates: Vec<_> = objects
        .iter()
        .filter(|object| object.kind == DocumentKind::SealedSecret)
        .collect();
    for secret in secrets {
        let matching: Vec<_> = candidates
            .iter()
            .filter(|object| {
                let name = object.value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default();
                let namespace = object.value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default();
                (secret.name.is_empty() || secret.name == name)
                    && (secret.namespace.is_empty() || secret.namespace == namespace)
            })
            .collect();
        let object = match matching.as_slice() {
            [one] => *one,
            [] => bail!(
                "{}: no SealedSecret matching {} to merge into",
                target.display(),
                display_name(secret)
            ),
            _ => bail!(
                "{}: several SealedSecrets match {}; give --name and --namespace",
                target.display(),
                display_name(secret)
            ),
        };
        let mut sealed: SealedSecret = serde_json::from_value(object.value.clone())
            .map_err(|err| anyhow!("{}: {}: {err}", target.display(), object.location()))?;
        let written = merge_into(&mut sealed, secret, recipients)
            .map_err(|message| anyhow!("{}: {}: {message}", target.display(), object.location()))?;
        let mut value = object.value.clone();
        value["spec"]["encryptedData"] = serde_json::to_value(&sealed.spec.encrypted_data)?;
        file.replace(object, value);
        eprintln!(
            "kseal: {}: sealed {} into {}",
            target.display(),
            written.join(", "),
            display_name(secret)
        );
    }
    let rendered = file
        .render()
        .map_err(|err| anyhow!("{}: {err}", target.display()))?;
    write_atomic(target, rendered.as_bytes(), Privacy::Public)
}
