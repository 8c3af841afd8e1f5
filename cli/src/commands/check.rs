//! `kseal check`: plaintext Secret manifests must not be committed, sealed
//! values must not outlive their max age, and (`--secrets-in-env`)
//! workloads should read Secrets from files, not environment variables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use kseal_shared::config::Config;
use kseal_shared::envelope::SealedValue;
use kseal_shared::manifest::{
    DocumentKind, ManifestFile, SourceFormat, is_core_v1, list_items, parse_json_stream,
    parse_yaml_document, split_yaml,
};
use kseal_shared::rotation::MaxAge;
use serde_json::Value;

use crate::args::CheckArgs;
use crate::error::Findings;
use crate::io::{Source, write_report};
use crate::walk::{Extras, manifest_files_reporting};

pub fn run(args: CheckArgs) -> Result<()> {
    let mut found = Vec::new();
    let mut overdue = Vec::new();
    // Of the overdue values, those kseal generated (spec.generated):
    // `kseal regenerate --due` replaces them without a person.
    let mut overdue_generated = 0;
    // --secrets-in-env: the reads, for the lines and the example.
    let mut in_env: Vec<(String, crate::workloads::EnvRead)> = Vec::new();
    let mut pod_specs_unread = Vec::new();
    // SealedSecrets whose spec.maxAge does not parse: a field to fix, not
    // values to rotate.
    let mut bad_max_age = Vec::new();
    // Files whose ages were not checked (the whole-file reader refused
    // them): not checked, so an error of the check, not a finding.
    let mut ages_unchecked = Vec::new();
    let mut max_ages = MaxAges::default();
    let now = jiff::Timestamp::now();
    let ages = args.max_age.is_some() || args.rotation;
    // kseal's own temporary files too: one left by a write that was killed
    // may hold the plaintext of `kseal unseal -o`. What cannot be read is
    // reported with the rest and fails the gate at the end: one bad file
    // must not hide the findings of every other.
    // `-`: stdin, for what a tool renders (`kubectl kustomize DIR | kseal
    // check -`, `helm template … | kseal check -`).
    let (stdin, paths): (Vec<&PathBuf>, Vec<&PathBuf>) =
        args.paths.iter().partition(|path| path.as_os_str() == "-");
    let paths: Vec<PathBuf> = paths.into_iter().cloned().collect();
    let walk = manifest_files_reporting(&paths, Extras::ForTheGate, args.walk.ignore_files());
    let mut unreadable: Vec<String> = walk
        .unreadable
        .iter()
        .map(|err| format!("{err:#} (not checked)"))
        .collect();
    // Documents of a readable file that do not parse: each fails the gate.
    let mut unparsed = Vec::new();
    // Files and inline patches a kustomization names that cannot be read or
    // parsed.
    let mut kustomize_unchecked = Vec::new();
    let inputs: Vec<(PathBuf, bool, Source)> = stdin
        .iter()
        .take(1)
        .map(|_| (PathBuf::from("-"), false, Source::Stdin))
        .chain(walk.files.iter().map(|file| {
            (
                file.path.clone(),
                file.temporary,
                Source::File(file.path.clone()),
            )
        }))
        .collect();
    let files = &inputs;
    for (path, temporary, source) in &inputs {
        let path = path.clone();
        // Decoded exactly as `kseal seal` decodes (UTF-16 and BOMs, as
        // kubectl does): what seal would seal, check must see.
        let text = match source.read_like_kubectl() {
            Ok(text) => text,
            Err(err) => {
                unreadable.push(format!("{err:#} (not checked)"));
                continue;
            }
        };
        let left_by = if *temporary {
            " in a temporary file left by an interrupted kseal write (delete it)"
        } else {
            ""
        };
        let file = ManifestFile::new(&text);
        match file.objects() {
            Ok(objects) => {
                for object in &objects {
                    // Secrets, and Secrets inside any list (`SecretList`,
                    // a `List` in a `List`): every shape kubectl applies.
                    let mut names = Vec::new();
                    plaintext_secrets(&object.value, &mut names);
                    for name in names {
                        found.push(format!(
                            "{}: {}: plaintext Secret {name:?}{left_by}",
                            path.display(),
                            object.location()
                        ));
                    }
                    let at = format!("{}: {}", path.display(), object.location());
                    let kustomize = crate::kustomize::findings(&path, &object.value, &names_of);
                    kustomize.report_at(&at, &mut found, &mut kustomize_unchecked);
                    if args.secrets_in_env {
                        env_reads(&at, &object.value, &mut in_env, &mut pod_specs_unread);
                    }
                    if !ages {
                        continue;
                    }
                    // The SealedSecret, and any in a list below it (kubectl
                    // refuses a list in a list, and so does the reader
                    // above; a gate looks anyway).
                    let mut sealed = Vec::new();
                    sealed_secrets(&object.value, &mut sealed);
                    for value in &sealed {
                        let at = format!(
                            "{}: {}: {}",
                            path.display(),
                            object.location(),
                            object_name(value)
                        );
                        let spec = match spec_max_age(value) {
                            Ok(spec) => spec,
                            Err(problem) => {
                                bad_max_age.push(format!("{at}: {problem}"));
                                continue;
                            }
                        };
                        let rule = if args.max_age.is_some() {
                            None
                        } else {
                            max_ages.of(&path)?
                        };
                        let Some((max_age, source)) = effective_max_age(args.max_age, rule, spec)
                        else {
                            continue;
                        };
                        for (key, problem) in due_values(value, max_age, now) {
                            if is_generated(value, &key) {
                                overdue_generated += 1;
                            }
                            overdue.push(format!(
                                "{at}: {key}: {problem} (max age {max_age}, {source})"
                            ));
                        }
                    }
                }
            }
            // A file the whole-file reader refuses (concatenated JSON
            // values, a List in a List, a flow mapping `{kind: Secret, …}`
            // taken for JSON, …) is read again value by value or document
            // by document, as kubectl reads it. A document that does not
            // parse even so fails the gate: kubectl may well apply it
            // (duplicate keys, a template), and a guess at its text would
            // fail open.
            Err(err) => {
                if ages {
                    ages_unchecked.push(format!(
                        "{}: cannot read it, so no age was checked: {err}",
                        path.display()
                    ));
                }
                let (values, problems) = each_document(&text, file.format());
                for (location, value) in values {
                    let mut names = Vec::new();
                    plaintext_secrets(&value, &mut names);
                    for name in names {
                        found.push(format!(
                            "{}: {location}: plaintext Secret {name:?}{left_by}",
                            path.display(),
                        ));
                    }
                    let at = format!("{}: {location}", path.display());
                    let kustomize = crate::kustomize::findings(&path, &value, &names_of);
                    kustomize.report_at(&at, &mut found, &mut kustomize_unchecked);
                    if args.secrets_in_env {
                        env_reads(&at, &value, &mut in_env, &mut pod_specs_unread);
                    }
                }
                for problem in problems {
                    unparsed.push(format!(
                        "{}: cannot read: {problem} (not checked){left_by}",
                        path.display()
                    ));
                }
            }
        }
    }
    let env_lines: Vec<String> = in_env
        .iter()
        .map(|(at, read)| format!("{at}: {read}"))
        .collect();
    let mut out = String::new();
    for line in found
        .iter()
        .chain(&env_lines)
        .chain(&pod_specs_unread)
        .chain(&overdue)
        .chain(&ages_unchecked)
        .chain(&bad_max_age)
        .chain(&unparsed)
        .chain(&kustomize_unchecked)
        .chain(&unreadable)
    {
        out.push_str(line);
        out.push('\n');
    }
    write_report(out.as_bytes())?;
    if found.is_empty()
        && in_env.is_empty()
        && pod_specs_unread.is_empty()
        && overdue.is_empty()
        && ages_unchecked.is_empty()
        && bad_max_age.is_empty()
        && unparsed.is_empty()
        && kustomize_unchecked.is_empty()
        && unreadable.is_empty()
    {
        eprintln!(
            "kseal: {} file(s) checked: no plaintext Secret{}{}",
            files.len(),
            if ages {
                ", every sealed value within its max age"
            } else {
                ""
            },
            if args.secrets_in_env {
                ", no Secret read through environment variables"
            } else {
                ""
            }
        );
        return Ok(());
    }
    let mut failures = match (found.len(), overdue.len()) {
        (0, 0) => Vec::new(),
        (plaintext, 0) => vec![format!(
            "{plaintext} plaintext Secret(s) or kustomize secretGenerator(s) found: seal them with `kseal seal` and commit the SealedSecret instead"
        )],
        (0, due) => vec![format!(
            "{due} sealed value(s) due for rotation: {}",
            rotation_hint(due, overdue_generated, args.max_age)
        )],
        (plaintext, due) => vec![format!(
            "{plaintext} plaintext Secret(s) and {due} sealed value(s) due for rotation"
        )],
    };
    if let Some((_, first)) = in_env.first() {
        eprintln!("{}", crate::workloads::volume_example(first));
        failures.push(format!(
            "{} Secret read(s) through environment variables found (CIS Kubernetes Benchmark 5.4.1): mount the Secrets as files instead",
            in_env.len()
        ));
    }
    if !pod_specs_unread.is_empty() {
        failures.push(format!(
            "{} pod spec(s) could not be read, so were not checked for Secrets in the environment: a container, env or envFrom field of the wrong type as kseal reads YAML (1.2); kubectl reads YAML 1.1 (where an unquoted yes/no/on/off is a boolean, 0o17 a string), so it may read the field otherwise: fix it, or quote it",
            pod_specs_unread.len()
        ));
    }
    if !ages_unchecked.is_empty() {
        failures.push(format!(
            "{} file(s) could not be read as a whole, so the ages of their sealed values were not checked (a gate fails on what it cannot read)",
            ages_unchecked.len()
        ));
    }
    if !bad_max_age.is_empty() {
        failures.push(format!(
            "{} SealedSecret(s) with a spec.maxAge that does not parse, so their values' ages were not judged by it (fix the field: a whole number of hours, days or weeks, at most 100 years)",
            bad_max_age.len()
        ));
    }
    if !unparsed.is_empty() {
        failures.push(format!(
            "{} document(s) could not be parsed, so were not checked (kubectl may apply them; a gate fails on what it cannot read. A template? Exclude it with .ksealignore, or check what it renders: `helm template … | kseal check -`)",
            unparsed.len()
        ));
    }
    if !kustomize_unchecked.is_empty() {
        failures.push(format!(
            "{} file(s) or patch(es) a kustomization names could not be read or parsed, so were not checked (check what `kubectl kustomize` renders)",
            kustomize_unchecked.len()
        ));
    }
    if !unreadable.is_empty() {
        failures.push(format!(
            "{} path(s) could not be read, so were not checked (a gate fails on what it cannot read)",
            unreadable.len()
        ));
    }
    let message = failures.join("; and ");
    // What was not checked makes the answer incomplete: an error (exit 2)
    // even beside findings, as grep and ripgrep answer. Findings alone are
    // the gate's "no" (exit 1).
    let unchecked = !(pod_specs_unread.is_empty()
        && ages_unchecked.is_empty()
        && unparsed.is_empty()
        && kustomize_unchecked.is_empty()
        && unreadable.is_empty());
    if unchecked {
        bail!("{message}")
    }
    Err(Findings::new(message).into())
}

/// How to rotate `due` overdue values, `generated` of which kseal
/// generated: those with `kseal regenerate --due` (judged by the same
/// `--max-age`, when one was given), the others by sealing a new value.
fn rotation_hint(due: usize, generated: usize, max_age: Option<MaxAge>) -> String {
    const BY_HAND: &str = "seal a new value for each (`kseal seal --merge-into FILE`)";
    if generated == 0 {
        return BY_HAND.to_owned();
    }
    let regenerate = format!(
        "`kseal regenerate --due{} --in-place PATH`",
        max_age.map_or_else(String::new, |age| format!(" --max-age {age}"))
    );
    if generated == due {
        format!("all generated by kseal (spec.generated): replace them with {regenerate}")
    } else {
        format!(
            "{generated} generated by kseal (spec.generated): replace those with {regenerate}; for the other {}, {BY_HAND}",
            due - generated
        )
    }
}

/// Whether the value of `key` in this SealedSecret is one kseal generated
/// (named in `spec.generated`).
fn is_generated(sealed: &Value, key: &str) -> bool {
    sealed
        .get("spec")
        .and_then(|spec| spec.get("generated"))
        .and_then(|generated| generated.get(key))
        .is_some()
}

/// `--secrets-in-env`: the env reads of the workloads in `value` (at
/// `at`, for the lines), and each pod spec that could not be read.
fn env_reads(
    at: &str,
    value: &Value,
    reads: &mut Vec<(String, crate::workloads::EnvRead)>,
    unread: &mut Vec<String>,
) {
    for read in crate::workloads::secrets_in_env(value) {
        match read {
            Ok(read) => reads.push((at.to_owned(), read)),
            Err(problem) => unread.push(format!("{at}: cannot read: {problem}")),
        }
    }
}

/// The object's `spec.maxAge`, when it has a valid one.
pub(crate) fn spec_max_age(sealed: &Value) -> Result<Option<MaxAge>, String> {
    match sealed.pointer("/spec/maxAge") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|err| format!("spec.maxAge: {err}")),
        Some(_) => Err("spec.maxAge must be a string such as 90d".to_owned()),
    }
}

/// The max age a SealedSecret's values are judged by, and where it came
/// from: `--max-age` when given; else the stricter of the file's
/// `.kseal.yaml` rule and the object's `spec.maxAge` (so CI is never more
/// lenient than the controller or the repository's rule).
pub(crate) fn effective_max_age(
    flag: Option<MaxAge>,
    rule: Option<MaxAge>,
    spec: Option<MaxAge>,
) -> Option<(MaxAge, &'static str)> {
    if let Some(flag) = flag {
        return Some((flag, "--max-age"));
    }
    match (rule, spec) {
        (Some(rule), Some(spec)) if spec.as_seconds() < rule.as_seconds() => {
            Some((spec, "spec.maxAge"))
        }
        (Some(rule), _) => Some((rule, ".kseal.yaml")),
        (None, Some(spec)) => Some((spec, "spec.maxAge")),
        (None, None) => None,
    }
}

/// The `.kseal.yaml` max age of each file's rule, configs loaded once per
/// directory.
#[derive(Default)]
pub(crate) struct MaxAges {
    configs: HashMap<PathBuf, Option<Config>>,
}

impl MaxAges {
    pub(crate) fn of(&mut self, file: &Path) -> Result<Option<MaxAge>> {
        let absolute = std::path::absolute(file)?;
        let dir = absolute.parent().unwrap_or(Path::new("/")).to_owned();
        if !self.configs.contains_key(&dir) {
            let config = Config::find(&dir)?;
            self.configs.insert(dir.clone(), config);
        }
        Ok(self
            .configs
            .get(&dir)
            .and_then(Option::as_ref)
            .and_then(|config| config.rule_for(Some(&absolute)))
            .and_then(|rule| rule.max_age))
    }
}

/// The values of a SealedSecret that are due for rotation under `max_age`,
/// by data key, with why. A value whose age cannot be read (it does not
/// parse) is due too: a gate must not pass what it cannot read.
pub(crate) fn due_values(
    sealed: &Value,
    max_age: MaxAge,
    now: jiff::Timestamp,
) -> Vec<(String, String)> {
    let Some(values) = sealed
        .pointer("/spec/encryptedData")
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    values
        .iter()
        .filter_map(|(key, value)| {
            let parsed = match value.as_str().map(SealedValue::parse) {
                Some(Ok(parsed)) => parsed,
                Some(Err(err)) => {
                    return Some((key.clone(), format!("cannot tell its age: {err}")));
                }
                None => return Some((key.clone(), "cannot tell its age: not a string".to_owned())),
            };
            let verdict = max_age.verdict(&parsed, now);
            verdict.is_due().then(|| (key.clone(), verdict.to_string()))
        })
        .collect()
}

pub(crate) fn object_name(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    match (text("/metadata/namespace"), text("/metadata/name")) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => "<unnamed>".to_owned(),
    }
}

/// [`plaintext_secrets`] as a list, for the kustomize reader.
fn names_of(value: &Value) -> Vec<String> {
    let mut names = Vec::new();
    plaintext_secrets(value, &mut names);
    names
}

/// Names of the plaintext Secrets in `value`: itself when it is one, and
/// any in its items when kubectl reads it as a list, at any depth (every
/// object with `items`, whatever its kind; an item without `apiVersion`
/// and `kind` takes them from the list: see [`list_items`]).
fn plaintext_secrets(value: &Value, names: &mut Vec<String>) {
    if is_core_v1_secret(value) && has_data(value) {
        names.push(
            value["metadata"]["name"]
                .as_str()
                .unwrap_or("<unnamed>")
                .to_owned(),
        );
    }
    for item in list_items(value).unwrap_or_default() {
        plaintext_secrets(&item, names);
    }
}

/// Whether kubectl creates a core `v1` `Secret` from this object:
/// `apiVersion` as [`is_core_v1`] reads it, and `kind` matched exactly (the
/// API server refuses `secret`).
fn is_core_v1_secret(value: &Value) -> bool {
    value
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(is_core_v1)
        && value.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// The SealedSecrets in `value`, read as [`plaintext_secrets`] reads
/// Secrets: itself when it is one, and any among its items.
fn sealed_secrets(value: &Value, out: &mut Vec<Value>) {
    if DocumentKind::of(value) == DocumentKind::SealedSecret {
        out.push(value.clone());
    }
    for item in list_items(value).unwrap_or_default() {
        sealed_secrets(&item, out);
    }
}

fn has_data(secret: &Value) -> bool {
    ["data", "stringData"]
        .iter()
        .any(|field| match secret.get(*field) {
            Some(Value::Object(map)) => !map.is_empty(),
            _ => false,
        })
}

/// The documents of a file the whole-file reader refused, each read on its
/// own: (location, value) for those that parse, and the error of each that
/// does not. A JSON file is read as a stream of values (kubectl applies
/// each); when that fails, as YAML documents (YAML is a superset of JSON,
/// and kubectl applies a flow mapping `{kind: Secret, …}`).
fn each_document(text: &str, format: SourceFormat) -> (Vec<(String, Value)>, Vec<String>) {
    if format == SourceFormat::Json
        && let Ok(values) = parse_json_stream(text)
    {
        let values = values
            .into_iter()
            .enumerate()
            .map(|(i, (line, value))| (format!("document {} (line {line})", i + 1), value))
            .collect();
        return (values, Vec::new());
    }
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for document in split_yaml(text).iter().filter(|d| !d.empty) {
        match parse_yaml_document(document) {
            Ok(value) => values.push((
                format!("document {} (line {})", document.index, document.first_line),
                value,
            )),
            Err(err) => problems.push(err.to_string()),
        }
    }
    (values, problems)
}
