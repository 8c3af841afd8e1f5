//! `kseal seal`: Secrets in, SealedSecrets out.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use kseal_shared::envelope::key_ids_in;
use kseal_shared::generate::Generator;
use kseal_shared::manifest::{
    DocumentKind, GeneratedChanges, ManifestFile, OutputFormat, PlainSecret, SealOptions,
    SealingError, merge_into, render_documents, seal_secret,
};
use kseal_shared::names;
use kseal_shared::rotation::MaxAge;
use kseal_shared::sealed_secret::{Rollout, SealedSecret};
use kseal_shared::validation::{self, ObjectError, SecretNames};
use kseal_shared::{
    binding::{Binding, Scope},
    envelope::seal,
    secret::SecretBytes,
    x25519::Recipient,
};

use crate::args::{Format, ScopeArg, SealArgs};
use crate::error::UsageError;
use crate::io::{Privacy, Source, emit, write_in_place};
use crate::recipients;
use crate::sources;
use crate::walk::ManifestPath;

pub fn run(args: SealArgs) -> Result<()> {
    let from_sources = !(args.from_literal.is_empty()
        && args.from_file.is_empty()
        && args.from_env_file.is_empty());
    if from_sources && args.file.is_some() {
        return Err(UsageError::new(
            "use either -f/--file or --from-literal/--from-file/--from-env-file, not both",
        )
        .into());
    }
    // Checked before anything is read or generated; a Secret built from
    // flags alone may hold only generated values.
    let generators = parse_generators(&args.generate, args.allow_weak)?;
    let from_flags = from_sources || (!generators.is_empty() && args.file.is_none());
    // Built from flags, the Secret takes nothing from stdin: a manifest
    // piped in would be dropped without a word.
    // A redirected file is refused; a pipe only warned about: whether data
    // comes cannot be known without waiting for a writer that may never
    // close it (a CI runner's stdin, a `while read` loop).
    if from_flags && args.file.is_none() {
        match crate::io::unread_stdin() {
            crate::io::UnreadStdin::FileData => {
                return Err(UsageError::new(stdin_not_read(from_sources)).into());
            }
            crate::io::UnreadStdin::Pipe => {
                eprintln!(
                    "kseal: warning: stdin is a pipe and is not read: {}",
                    stdin_not_read(from_sources)
                        .trim_start_matches("stdin holds data, and kseal did not read it: ")
                );
            }
            crate::io::UnreadStdin::Nothing => {}
        }
    }
    // The path .kseal.yaml rules match: where the result goes, else the
    // input. --merge-into through a symlink writes its target (in the
    // tree, or it is refused): the rule is the target's, never the link's,
    // so that a link cannot pick another rule's keys for the file it edits.
    let merge_target = match &args.merge_into {
        Some(path) if crate::walk::is_symlink(path) => {
            Some(ManifestPath::named(path)?.edit_target()?)
        }
        other => other.clone(),
    };
    let rule_path = args
        .output
        .as_deref()
        .or(merge_target.as_deref())
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
    // Which flag gave each key of a Secret built from flags, for messages.
    let mut origins = BTreeMap::new();
    let mut located = if from_flags {
        let (secret, from) = secret_from_flags(&args)?;
        origins = from;
        vec![Located {
            at: None,
            secret,
            yaml11_boolean: None,
        }]
    } else {
        read_secrets(&source)?
    };
    // Generated values join the one Secret (from flags, or of the
    // manifest); each is drawn here and only ever held zeroizing.
    let records: BTreeMap<String, String> = generators
        .iter()
        .map(|(key, generator)| (key.clone(), generator.to_string()))
        .collect();
    if !generators.is_empty() {
        let [only] = located.as_mut_slice() else {
            return Err(UsageError::new(format!(
                "--generate adds to one Secret; {} holds {}",
                source.display(),
                located.len()
            ))
            .into());
        };
        for (key, generator) in &generators {
            if only.secret.data.contains_key(key) {
                let other = if from_flags {
                    match origins.get(key) {
                        Some(origin) => format!("{origin} gives"),
                        None => "another flag gives".to_owned(),
                    }
                } else {
                    format!("{} has", source.display())
                };
                return Err(UsageError::new(format!(
                    "--generate {key}: {other} a value for {key:?} already (a key comes from one source)"
                ))
                .into());
            }
            sources::add_generated(&mut only.secret, key, generator.generate())
                .map_err(|err| UsageError::new(format!("{err:#}")))?;
        }
    }
    for Located { at, secret, .. } in &mut located {
        fill_in(secret, &args)?;
        // Names are bound into every value: refuse what Kubernetes would
        // refuse before anything is sealed. With --merge-into and --raw the
        // name and namespace may come from elsewhere; given ones must be valid.
        let whole = !args.raw && args.merge_into.is_none();
        check_names(at.as_deref(), secret, scope, whole)?;
        let stripped = secret.strip_leaky_annotations();
        if !stripped.is_empty() {
            eprintln!(
                "kseal: {}: dropped annotations that may contain plaintext: {}",
                secret.name,
                stripped.join(", ")
            );
        }
    }

    // Checked last, so that a Secret with another problem reports that one.
    let yaml11 = |item: &Located| match (&item.at, &item.yaml11_boolean) {
        (Some(at), Some(path)) => Err(anyhow!(
            "{at}: {path} is an unquoted yes/no/on/off/y/n, which kubectl reads as a boolean (YAML 1.1) and kseal as a string; quote it"
        )),
        _ => Ok(()),
    };
    if args.raw || args.merge_into.is_some() {
        located.iter().try_for_each(yaml11)?;
    }
    if args.raw {
        let secrets: Vec<PlainSecret> = located.into_iter().map(|item| item.secret).collect();
        return seal_raw(&secrets, scope, &resolved.recipients);
    }
    if let Some(target) = &args.merge_into {
        let secrets: Vec<PlainSecret> = located.into_iter().map(|item| item.secret).collect();
        let explicit_scope = args.scope.map(|_| scope);
        return merge(
            target,
            &secrets,
            &resolved.recipients,
            explicit_scope,
            &records,
            SpecFields {
                rollout: args.rollout,
                max_age: args.max_age,
            },
        );
    }

    let options = SealOptions {
        scope,
        recipients: &resolved.recipients,
        allow_empty_data: args.allow_empty_data,
    };
    let mut sealed = Vec::with_capacity(located.len());
    for (index, item) in located.iter().enumerate() {
        let at = item.at.clone().unwrap_or_else(|| {
            if from_flags {
                format!("the --from-* Secret ({})", display_name(&item.secret))
            } else {
                format!(
                    "{}: Secret {} ({})",
                    source.display(),
                    index + 1,
                    display_name(&item.secret)
                )
            }
        });
        let mut sealed_secret = seal_secret(&item.secret, options)
            .map_err(|err| anyhow!("{at}: {}", with_hint(&err)))?;
        // The repository's rotation rule (or --max-age) travels with the
        // object, so the controller reports it too (RotationDue).
        sealed_secret.spec.max_age = args
            .max_age
            .or(resolved.max_age)
            .map(|max_age| max_age.to_string());
        sealed_secret.spec.rollout = args.rollout.map(|rollout| rollout.to_string());
        // How the generated values were made (there is one Secret then).
        sealed_secret.spec.generated = records.clone();
        yaml11(item)?;
        let value = serde_json::to_value(&sealed_secret)?;
        warn_if_too_large_to_apply(&at, &value);
        sealed.push(value);
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

/// Client-side `kubectl apply` copies the whole object, as JSON, into its
/// `kubectl.kubernetes.io/last-applied-configuration` annotation, and the
/// API server holds an object's annotations to 256 KiB in all
/// ([`names::ANNOTATIONS_MAX_TOTAL`]): a SealedSecret larger than that
/// is refused by `kubectl apply`, though `kubectl apply --server-side`,
/// `kubectl create`, Flux and Argo CD with server-side apply take it.
/// Said on stderr when kseal writes one; not an error.
fn warn_if_too_large_to_apply(at: &str, object: &serde_json::Value) {
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    let size = serde_json::to_vec(object).map_or(0, |json| json.len()) + LAST_APPLIED.len();
    if size > names::ANNOTATIONS_MAX_TOTAL {
        eprintln!(
            "kseal: warning: {at}: the SealedSecret is {} KiB as JSON; client-side `kubectl apply` fails on objects over about 256 KiB (it copies the object into an annotation, and annotations are limited to 256 KiB): apply it with `kubectl apply --server-side`, Flux (server-side already), or Argo CD with the ServerSideApply=true sync option (docs/inputs.md)",
            size.div_ceil(1024)
        );
    }
}

/// Values sealed to other keys than the object's are almost always a
/// mistake (the wrong cluster's key): said on stderr, naming `what` was
/// sealed now ("the merged ones").
pub fn warn_if_other_keys(at: &str, sealed: &SealedSecret, recipients: &[Recipient], what: &str) {
    let before = key_ids_in(sealed.spec.encrypted_data.values().map(String::as_str));
    let after: std::collections::BTreeSet<_> = recipients.iter().map(Recipient::key_id).collect();
    if !before.is_empty() && before != after {
        let show = |ids: &std::collections::BTreeSet<kseal_shared::x25519::KeyId>| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        eprintln!(
            "kseal: warning: {at}: its values are sealed to key id(s) {}, {what} to {}",
            show(&before),
            show(&after)
        );
    }
}

/// `namespace/name` of a SealedSecret, for messages.
pub fn sealed_name(sealed: &SealedSecret) -> String {
    let name = sealed.metadata.name.as_deref().unwrap_or_default();
    match sealed.metadata.namespace.as_deref().unwrap_or_default() {
        "" => name.to_owned(),
        namespace => format!("{namespace}/{name}"),
    }
}

/// The library's error with this command's way out, where there is one.
fn with_hint(err: &SealingError) -> String {
    match err {
        SealingError::NoData => format!("{err} (pass --allow-empty-data to seal it anyway)"),
        SealingError::TooManyValues { .. } => format!("{err} (split the Secret)"),
        _ => err.to_string(),
    }
}

fn display_name(secret: &PlainSecret) -> String {
    match (secret.namespace.as_str(), secret.name.as_str()) {
        (_, "") => "unnamed".into(),
        ("", name) => name.into(),
        (namespace, name) => format!("{namespace}/{name}"),
    }
}

/// Kubernetes' naming rules ([`names`], through [`validation`] for a whole
/// object) on a Secret about to be sealed; every problem is reported, with
/// where the Secret came from. `whole`: the Secret is sealed as a new
/// object, so its name (and, when the scope binds it, namespace) must be
/// there; otherwise only what is given is checked.
fn check_names(at: Option<&str>, secret: &PlainSecret, scope: Scope, whole: bool) -> Result<()> {
    let keys = secret.data.keys().map(String::as_str);
    let problems = if whole {
        validation::object_problems(
            SecretNames {
                scope,
                name: &secret.name,
                namespace: &secret.namespace,
                labels: &secret.labels,
                annotations: &secret.annotations,
            },
            keys,
        )
    } else {
        let mut problems: Vec<ObjectError> = keys
            .filter_map(|key| names::check_data_key(key).err())
            .map(ObjectError::from)
            .collect();
        if !secret.name.is_empty() {
            problems.extend(
                names::check_secret_name(&secret.name)
                    .err()
                    .map(ObjectError::from),
            );
        }
        if !secret.namespace.is_empty() {
            problems.extend(
                names::check_namespace(&secret.namespace)
                    .err()
                    .map(ObjectError::from),
            );
        }
        problems
    };
    if problems.is_empty() {
        return Ok(());
    }
    // One line, however many problems: each message is a clause.
    let messages: Vec<String> = problems
        .iter()
        .map(|problem| match (problem, at) {
            (ObjectError::MissingName, Some(_)) => {
                "the Secret has no metadata.name (set it in the manifest or with --name)".to_owned()
            }
            (ObjectError::MissingNamespace(scope), Some(_)) => format!(
                "the Secret has no metadata.namespace, which scope {scope} needs (set it in the manifest or with --namespace, or use --scope cluster-wide)"
            ),
            (ObjectError::MissingName, None) => {
                "--name is required (the Secret built from flags has no name)".to_owned()
            }
            (ObjectError::MissingNamespace(scope), None) => format!(
                "--namespace is required by scope {scope} (or use --scope cluster-wide)"
            ),
            (other, _) => other.to_string(),
        })
        .collect();
    let message = messages.join("; ");
    let missing = problems.iter().any(|problem| {
        matches!(
            problem,
            ObjectError::MissingName | ObjectError::MissingNamespace(_)
        )
    });
    match at {
        Some(at) => bail!("{at}: {message}"),
        // Built from flags: a name or namespace missing is a flag missing.
        None if missing => Err(UsageError::new(message).into()),
        None => bail!("{message}"),
    }
}

/// Why `kseal seal` refuses data on stdin that it would not read.
fn stdin_not_read(from_sources: bool) -> &'static str {
    if from_sources {
        "stdin holds data, and kseal did not read it: --from-literal, --from-file and --from-env-file build a new Secret from flags alone, so a manifest piped in would be dropped. To seal a piped manifest, pass -f - without --from-* (--generate may add to it), then add other values with --merge-into; if stdin is not meant for kseal, run it with </dev/null"
    } else {
        "stdin holds data, and kseal did not read it: without -f, --generate builds a new Secret from flags alone, so a manifest piped in would be dropped. Pass -f - to add the generated values to the piped manifest; if stdin is not meant for kseal, run it with </dev/null"
    }
}

/// A Secret to seal, with where it came from (for messages) and, for a
/// YAML manifest, the first field kubectl's YAML 1.1 would read as a
/// boolean where kseal reads a string.
struct Located {
    at: Option<String>,
    secret: PlainSecret,
    yaml11_boolean: Option<String>,
}

/// Every document must be a Secret.
fn read_secrets(source: &Source) -> Result<Vec<Located>> {
    let text = source.read_like_kubectl()?;
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
        let location = format!("{}: {}", source.display(), object.location());
        // Only the values are held to kubectl's YAML 1.1 reading: that is
        // where it changes the sealed bytes. Elsewhere (`namespace: n`) kseal
        // keeps its YAML 1.2 reading.
        let yaml11_boolean = file.yaml11_boolean_path(&object, &["data", "stringData"]);
        let secret = PlainSecret::from_value(object.value)
            .map_err(|message| anyhow!("{location}: {message}"))?;
        secrets.push(Located {
            at: Some(location),
            secret,
            yaml11_boolean,
        });
    }
    Ok(secrets)
}

/// A Secret built from `--from-literal`, `--from-file` and `--from-env-file`,
/// read as `kubectl create secret generic` reads them (see [`crate::sources`]),
/// and which flag gave each key (`--from-file ./pw.txt`; a literal's
/// argument is never shown: it holds the value).
fn secret_from_flags(args: &SealArgs) -> Result<(PlainSecret, BTreeMap<String, String>)> {
    let mut secret = PlainSecret {
        type_: args.secret_type.clone(),
        ..PlainSecret::default()
    };
    let mut origins = BTreeMap::new();
    let mut note = |secret: &PlainSecret, origin: &str| {
        for key in secret.data.keys() {
            if !origins.contains_key(key) {
                origins.insert(key.clone(), origin.to_owned());
            }
        }
    };
    for literal in &args.from_literal {
        sources::add_literal(&mut secret, literal)
            .map_err(|err| UsageError::new(format!("{err:#}")))?;
        note(&secret, "--from-literal");
    }
    for arg in &args.from_file {
        for source in sources::split_csv(arg)
            .map_err(|err| UsageError::new(format!("--from-file {err:#}")))?
        {
            sources::add_file_source(&mut secret, &source)?;
            note(&secret, &format!("--from-file {source}"));
        }
    }
    for arg in &args.from_env_file {
        for path in sources::split_csv(arg)
            .map_err(|err| UsageError::new(format!("--from-env-file {err:#}")))?
        {
            sources::add_env_file(&mut secret, Path::new(&path))?;
            note(&secret, &format!("--from-env-file {path}"));
        }
    }
    Ok((secret, origins))
}

/// `--generate KEY=SPEC` arguments, split at the first `=` and the SPEC
/// parsed ([`Generator`]); a KEY given twice is refused. Nothing of an
/// argument without `=` is shown (it may be a value typed in the wrong
/// place), nor a SPEC that is not one ([`Generator`]'s errors show only
/// what is safe).
///
/// A SPEC of fewer than [`kseal_shared::generate::MIN_BITS`] bits of
/// randomness is refused unless `allow_weak` (`--allow-weak`).
fn parse_generators(args: &[String], allow_weak: bool) -> Result<Vec<(String, Generator)>> {
    let mut generators: Vec<(String, Generator)> = Vec::with_capacity(args.len());
    for arg in args {
        let Some((key, spec)) = arg.split_once('=').filter(|(key, _)| !key.is_empty()) else {
            return Err(UsageError::new(format!(
                "--generate expects KEY=SPEC (SPEC: hex:N, base64:N, alnum:N or uuid), got {} (argument not shown: it may be a value)",
                if arg.starts_with('=') {
                    "an empty key"
                } else {
                    "no '='"
                }
            ))
            .into());
        };
        let generator: Generator = spec
            .parse()
            .map_err(|err| UsageError::new(format!("--generate {key}=…: {err}")))?;
        if !allow_weak && let Err(weak) = generator.check_strength() {
            return Err(UsageError::new(format!(
                "--generate {key}=…: {weak} (--allow-weak allows it, for a legacy system that takes only a short value)"
            ))
            .into());
        }
        if generators.iter().any(|(seen, _)| seen == key) {
            return Err(UsageError::new(format!("--generate: key {key:?} given twice")).into());
        }
        generators.push((key.to_owned(), generator));
    }
    Ok(generators)
}

/// `--name`/`--namespace`/`--type` fill in what a manifest lacks; a
/// different value is an error rather than a silent rename.
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
    match (&args.secret_type, &secret.type_) {
        (Some(given), None) => secret.type_ = Some(given.clone()),
        (Some(given), Some(written)) if given != written => {
            bail!("--type {given:?} differs from the manifest's type {written:?}")
        }
        _ => {}
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
    // The names given are bound into the value: Kubernetes' rules first.
    let given = PlainSecret {
        name: name.clone(),
        namespace: namespace.clone(),
        data: [(key.clone(), SecretBytes::default())].into(),
        ..PlainSecret::default()
    };
    check_names(None, &given, scope, false)?;
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

/// The `spec` fields `--rollout` and `--max-age` set.
#[derive(Debug, Clone, Copy)]
struct SpecFields {
    rollout: Option<Rollout>,
    max_age: Option<MaxAge>,
}

/// `--merge-into FILE`: add or replace keys in the SealedSecret in FILE.
/// Seals the Secrets' values into the matching SealedSecrets of `target`.
/// Values take the target's scope; a `--scope` that says otherwise is an
/// error, not silently dropped.
/// `records`: data key → generator of the values generated; a key written
/// and not among them loses its `spec.generated` record. `fields`: the
/// `spec` fields given by flags, set (or replaced) in each SealedSecret
/// merged into.
fn merge(
    target: &Path,
    secrets: &[PlainSecret],
    recipients: &[Recipient],
    explicit_scope: Option<Scope>,
    records: &BTreeMap<String, String>,
    fields: SpecFields,
) -> Result<()> {
    let text = Source::File(target.to_owned()).read().map_err(|err| {
        let missing = err.chain().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
        });
        if missing {
            anyhow!(
                "{err:#} (--merge-into adds to an existing SealedSecret file; to create a new one, use -o {} instead)",
                target.display()
            )
        } else {
            err
        }
    })?;
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
        let at = format!("{}: {}", target.display(), object.location());
        let mut sealed: SealedSecret = kseal_shared::sealed_secret::from_document(&object.value)
            .map_err(|err| anyhow!("{at}: {err}"))?;
        // The type's rules are checked on the merged object (merge_into):
        // the keys merged may be the ones the type requires.
        let problems = validation::sealed_names_problems(&sealed);
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(|p| format!("{at}: {p}")).collect();
            bail!("{}", lines.join("\n"));
        }
        if let Some(scope) = explicit_scope.filter(|scope| *scope != sealed.spec.scope) {
            return Err(UsageError::new(format!(
                "{at}: --scope {scope}, but the SealedSecret's values are {} (a merged value takes the object's scope)",
                sealed.spec.scope
            ))
            .into());
        }
        warn_if_other_keys(&at, &sealed, recipients, "the merged ones");
        let written = merge_into(&mut sealed, secret, recipients)
            .map_err(|err| anyhow!("{at}: {}", with_hint(&err)))?;
        let values = written
            .iter()
            .filter_map(|key| {
                let value = sealed.spec.encrypted_data.get(key)?;
                Some((key.clone(), value.clone()))
            })
            .collect();
        // spec.generated follows: a generated value records its form, any
        // other value written loses the record of the one it replaced.
        let mut changes = GeneratedChanges::new();
        let mut dropped = Vec::new();
        for key in &written {
            match records.get(key) {
                Some(record) if sealed.spec.generated.get(key) != Some(record) => {
                    sealed.spec.generated.insert(key.clone(), record.clone());
                    changes.insert(key.clone(), Some(record.clone()));
                }
                Some(_) => {}
                None => {
                    if sealed.spec.generated.remove(key).is_some() {
                        changes.insert(key.clone(), None);
                        dropped.push(key.as_str());
                    }
                }
            }
        }
        // spec.rollout and spec.maxAge, when given and not already so.
        let mut set = BTreeMap::new();
        if let Some(rollout) = fields.rollout.map(|rollout| rollout.to_string())
            && sealed.spec.rollout.as_deref() != Some(rollout.as_str())
        {
            sealed.spec.rollout = Some(rollout.clone());
            set.insert("rollout".to_owned(), rollout);
        }
        if let Some(max_age) = fields.max_age.map(|max_age| max_age.to_string())
            && sealed.spec.max_age.as_deref() != Some(max_age.as_str())
        {
            sealed.spec.max_age = Some(max_age.clone());
            set.insert("maxAge".to_owned(), max_age);
        }
        warn_if_too_large_to_apply(&at, &serde_json::to_value(&sealed)?);
        file.set_encrypted_values(object, values);
        if !changes.is_empty() {
            file.set_generated(object, changes);
        }
        let fields_set: Vec<String> = set
            .iter()
            .map(|(field, value)| format!("spec.{field}: {value}"))
            .collect();
        if !set.is_empty() {
            file.set_spec_fields(object, set);
        }
        let generated: Vec<String> = written
            .iter()
            .filter_map(|key| Some(format!("{key} ({})", records.get(key)?)))
            .collect();
        eprintln!(
            "kseal: {}: sealed {} into {}{}{}{}",
            target.display(),
            written.join(", "),
            sealed_name(&sealed),
            if generated.is_empty() {
                String::new()
            } else {
                format!("; generated: {}", generated.join(", "))
            },
            if dropped.is_empty() {
                String::new()
            } else {
                format!("; no longer recorded as generated: {}", dropped.join(", "))
            },
            if fields_set.is_empty() {
                String::new()
            } else {
                format!("; set {}", fields_set.join(", "))
            }
        );
    }
    let rendered = file
        .render_reporting()
        .map_err(|err| anyhow!("{}: {err}", target.display()))?;
    // A symlink is merged into at its target, and stays a link.
    write_in_place(&ManifestPath::named(target)?, rendered.text.as_bytes())?;
    // Said once written: the document lost its formatting and comments.
    for location in &rendered.rewritten {
        eprintln!(
            "kseal: {}",
            super::regenerate::rewritten_whole(target, location)
        );
    }
    Ok(())
}
