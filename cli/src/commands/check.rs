//! `kseal check`: plaintext Secret manifests must not be committed, and
//! sealed values must not outlive their max age.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use kseal_shared::config::Config;
use kseal_shared::envelope::SealedValue;
use kseal_shared::manifest::{DocumentKind, ManifestFile, split_yaml};
use kseal_shared::rotation::MaxAge;
use serde_json::Value;

use crate::args::CheckArgs;
use crate::io::{Source, manifest_files, write_stdout};

pub fn run(args: CheckArgs) -> Result<()> {
    let mut found = Vec::new();
    let mut overdue = Vec::new();
    let mut max_ages = MaxAges::default();
    let now = jiff::Timestamp::now();
    let ages = args.max_age.is_some() || args.rotation;
    let files = manifest_files(&args.paths)?;
    for path in &files {
        let path = path.clone();
        let source = Source::File(path.clone());
        let text = source.read()?;
        let file = ManifestFile::new(&text);
        match file.objects() {
            Ok(objects) => {
                for object in &objects {
                    // Secrets, and Secrets inside any list (`SecretList`,
                    // a `List` in a `List`): every shape kubectl applies.
                    let mut names = Vec::new();
                    plaintext_secrets(
                        &object.value,
                        object.kind == DocumentKind::Secret,
                        &mut names,
                    );
                    for name in names {
                        found.push(format!(
                            "{}: {}: plaintext Secret {name:?}",
                            path.display(),
                            object.location()
                        ));
                    }
                    if object.kind != DocumentKind::SealedSecret || !ages {
                        continue;
                    }
                    let at = format!(
                        "{}: {}: {}",
                        path.display(),
                        object.location(),
                        object_name(&object.value)
                    );
                    let spec = match spec_max_age(&object.value) {
                        Ok(spec) => spec,
                        Err(problem) => {
                            overdue.push(format!("{at}: {problem}"));
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
                    for (key, problem) in due_values(&object.value, max_age, now) {
                        overdue.push(format!(
                            "{at}: {key}: {problem} (max age {max_age}, {source})"
                        ));
                    }
                }
            }
            // Templates (Helm, …) are often not valid YAML: fall back to a
            // textual look at each document rather than let one slip by.
            // Ages cannot be read that way: a rotation gate fails the file.
            Err(err) => {
                if ages {
                    overdue.push(format!(
                        "{}: cannot read it, so no age was checked: {err}",
                        path.display()
                    ));
                }
                for document in split_yaml(&text).iter().filter(|d| !d.empty) {
                    if looks_like_plain_secret(&document.text) {
                        found.push(format!(
                            "{}: document {} (line {}): looks like a plaintext Secret (not parseable YAML)",
                            path.display(),
                            document.index,
                            document.first_line
                        ));
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for line in found.iter().chain(&overdue) {
        out.push_str(line);
        out.push('\n');
    }
    write_stdout(out.as_bytes())?;
    match (found.len(), overdue.len()) {
        (0, 0) => {
            eprintln!(
                "kseal: {} file(s) checked: no plaintext Secret{}",
                files.len(),
                if ages {
                    ", every sealed value within its max age"
                } else {
                    ""
                }
            );
            Ok(())
        }
        (plaintext, 0) => bail!(
            "{plaintext} plaintext Secret(s) found: seal them with `kseal seal` and commit the SealedSecret instead"
        ),
        (0, due) => bail!(
            "{due} sealed value(s) due for rotation: seal a new value for each (`kseal seal --merge-into FILE`)"
        ),
        (plaintext, due) => {
            bail!("{plaintext} plaintext Secret(s) and {due} sealed value(s) due for rotation")
        }
    }
}

/// The object's `spec.maxAge`, when it has a valid one.
fn spec_max_age(sealed: &Value) -> Result<Option<MaxAge>, String> {
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
fn effective_max_age(
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
struct MaxAges {
    configs: HashMap<PathBuf, Option<Config>>,
}

impl MaxAges {
    fn of(&mut self, file: &Path) -> Result<Option<MaxAge>> {
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
fn due_values(sealed: &Value, max_age: MaxAge, now: jiff::Timestamp) -> Vec<(String, String)> {
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

fn object_name(object: &Value) -> String {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    match (text("/metadata/namespace"), text("/metadata/name")) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_owned(),
        _ => "<unnamed>".to_owned(),
    }
}

/// Names of the plaintext Secrets in `value`: itself when it is one (as
/// `is_secret` says), and any in its `items`, at any depth.
fn plaintext_secrets(value: &Value, is_secret: bool, names: &mut Vec<String>) {
    if is_secret && has_data(value) {
        names.push(
            value["metadata"]["name"]
                .as_str()
                .unwrap_or("<unnamed>")
                .to_owned(),
        );
    }
    if let Some(Value::Array(items)) = value.get("items") {
        for item in items {
            let secret = item.get("kind").and_then(Value::as_str) == Some("Secret")
                && item.get("apiVersion").and_then(Value::as_str) == Some("v1");
            plaintext_secrets(item, secret, names);
        }
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

fn looks_like_plain_secret(text: &str) -> bool {
    let mut kind_secret = false;
    let mut data = false;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed
            .strip_prefix("kind:")
            .is_some_and(|kind| kind.trim().trim_matches(['"', '\'']) == "Secret")
        {
            kind_secret = true;
        }
        if trimmed.starts_with("data:") || trimmed.starts_with("stringData:") {
            data = true;
        }
    }
    kind_secret && data
}
