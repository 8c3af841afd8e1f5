//! What kustomize would turn into a Secret holding plaintext from the
//! repository, for `kseal check`: the kustomize side of the gate.
//!
//! kustomize reads a kustomization through Go's `encoding/json`, which
//! matches field names without regard to case, Unicode folds included
//! (`SecretGenerator`, `ſecretGenerator` and `secretgenerator` are all
//! `secretGenerator`): every field here is looked up that way
//! ([`fold`]). What is reported:
//!
//! * a `secretGenerator` (in a kustomization, or a builtin `SecretGenerator`
//!   config, in a file or under `generators`) with `literals` (plaintext in
//!   the file), `envs`/`env` or `files` (plaintext files beside it);
//! * a patch (under `patches`, `patchesStrategicMerge`, `patchesJson6902`,
//!   or a builtin patch transformer config under `transformers`) that sets
//!   `stringData`, or `data` of what may be a Secret, or a JSON 6902
//!   operation on `/data`, `/stringData`, `/kind`, `/apiVersion` or the
//!   whole object, and any patch allowed to change a kind: kustomize can
//!   make a Secret with plaintext out of an object that is none;
//! * `replacements` that write into a Secret or a `data`/`stringData`
//!   path, a `ReplacementTransformer`, and `helmCharts` (a chart rendered
//!   by kustomize): not followed, so reported ("render it and check the
//!   output");
//! * a `resources` entry naming a file the directory walk does not read
//!   (kustomize loads any name, `secret.txt` too): read as a walked file
//!   would be.
//!
//! Entries are read as kustomize reads them: a `patch` is always content,
//! a `generators`/`transformers` entry is content when it parses as a
//! mapping, else a file name. A file a kustomization names that cannot be
//! read or parsed is a finding too: the gate fails closed.
//!
//! A static reading cannot follow every way kustomize assembles objects
//! (bases outside the tree, remote bases, plugins): docs/inputs.md says so,
//! and shows the complete gate, `kubectl kustomize DIR | kseal check -`.

use std::path::Path;

use kseal_shared::manifest::{parse_yaml_document, split_yaml};
use serde_json::{Map, Value};

use crate::walk::KUSTOMIZATION_FILE_NAMES;

/// The most bytes of a file a kustomization names that are read.
const MAX_REFERENCED_FILE: u64 = 4 * 1024 * 1024;

/// A field name folded as Go's `encoding/json` folds it to match struct
/// fields (`appendFoldedName`: ASCII upper-cased, any other character
/// upper(lower(c)) by the simple case mappings).
pub fn fold(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_ascii() {
                return vec![c.to_ascii_uppercase()];
            }
            // Simple mappings only: where Rust's full mapping gives several
            // characters, Go's simple one keeps the character.
            let lower = match c {
                // LATIN CAPITAL LETTER I WITH DOT ABOVE: simple lowercase `i`.
                '\u{130}' => 'i',
                c => single(c.to_lowercase()).unwrap_or(c),
            };
            vec![single(lower.to_uppercase()).unwrap_or(lower)]
        })
        .collect()
}

fn single(mut chars: impl Iterator<Item = char>) -> Option<char> {
    let first = chars.next()?;
    chars.next().is_none().then_some(first)
}

/// Every value of `object` whose key folds to `name`'s fold (Go takes one
/// of them; the gate looks at all).
fn fields<'a>(object: &'a Value, name: &str) -> Vec<&'a Value> {
    let wanted = fold(name);
    object
        .as_object()
        .map(|map: &Map<String, Value>| {
            map.iter()
                .filter(|(key, _)| fold(key) == wanted)
                .map(|(_, value)| value)
                .collect()
        })
        .unwrap_or_default()
}

/// The strings of a field that is a list of strings, or one string.
fn strings(object: &Value, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for value in fields(object, name) {
        match value {
            Value::Array(items) => out.extend(items.iter().map(|item| {
                item.as_str()
                    .map_or_else(|| item.to_string(), str::to_owned)
            })),
            Value::String(item) if !item.is_empty() => out.push(item.clone()),
            _ => {}
        }
    }
    out
}

fn is_kustomization(path: &Path, value: &Value) -> bool {
    let by_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| KUSTOMIZATION_FILE_NAMES.contains(&name));
    let text = |name: &str| {
        fields(value, name)
            .into_iter()
            .find_map(Value::as_str)
            .map(fold)
    };
    let by_kind = text("apiVersion").is_some_and(|v| v.starts_with("KUSTOMIZE.CONFIG.K8S.IO/"))
        && text("kind").is_some_and(|kind| kind == "KUSTOMIZATION" || kind == "COMPONENT");
    by_name || by_kind
}

/// The kustomize side of the gate for one document: one line each, naming
/// generators, patches and files, never a value.
#[derive(Debug, Default)]
pub struct Report {
    /// What a build would turn into plaintext in a Secret, or may and is
    /// not followed (`kseal check` exits 1 for these).
    pub found: Vec<String>,
    /// Files and inline patches it names that cannot be read or parsed, so
    /// were not checked (`kseal check` exits 2 for these).
    pub not_checked: Vec<String>,
}

impl Report {
    /// Adds its lines, each prefixed with `at` (file and document), to the
    /// gate's findings and to what it could not check.
    pub fn report_at(self, at: &str, found: &mut Vec<String>, not_checked: &mut Vec<String>) {
        found.extend(self.found.into_iter().map(|line| format!("{at}: {line}")));
        not_checked.extend(
            self.not_checked
                .into_iter()
                .map(|line| format!("{at}: {line}")),
        );
    }
}

/// What kustomize would make a plaintext Secret from, in one parsed
/// document of `path`: one line each, naming generators, patches and
/// files, never a value. What it names but cannot read or parse is
/// reported apart: the gate could not check it. `plaintext` names the plaintext Secrets of an
/// object (the gate's own reading).
pub fn findings(path: &Path, value: &Value, plaintext: &dyn Fn(&Value) -> Vec<String>) -> Report {
    let mut out = Report::default();
    let dir = path.parent().unwrap_or(Path::new("."));
    // Builtin generator and transformer configs, wherever they are (a file
    // `generators:`/`transformers:` names, or any file in the tree).
    builtin_config_findings(value, dir, "kustomize:", &mut out);
    if !is_kustomization(path, value) {
        return out;
    }
    for (index, generator) in fields(value, "secretGenerator")
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .enumerate()
    {
        let name = fields(generator, "name")
            .into_iter()
            .find_map(Value::as_str)
            .map_or_else(|| format!("#{}", index + 1), |name| format!("{name:?}"));
        generator_findings(
            generator,
            dir,
            &format!("kustomize secretGenerator {name}"),
            &mut out,
        );
    }
    for field in ["generators", "transformers"] {
        for entry in strings(value, field) {
            match entry_documents(&entry, dir) {
                Ok(documents) => {
                    for document in documents {
                        builtin_config_findings(
                            &document,
                            dir,
                            &format!("kustomize {field}:"),
                            &mut out,
                        );
                    }
                }
                Err(problem) => out
                    .not_checked
                    .push(format!("kustomize {field}: {problem}")),
            }
        }
    }
    for field in ["patches", "patchesStrategicMerge", "patchesJson6902"] {
        for entry in fields(value, field)
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
        {
            patch_entry_findings(entry, dir, &format!("kustomize {field}"), &mut out);
        }
    }
    for replacement in fields(value, "replacements")
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
    {
        if replacement_may_write_secret(replacement) {
            out.found.push(
                "kustomize replacements: copies a value into a Secret or its data (not followed: check what `kubectl kustomize` renders, or exclude the kustomization with .ksealignore)"
                    .to_owned(),
            );
        }
    }
    for field in ["helmCharts", "helmChartInflationGenerator"] {
        if fields(value, field)
            .into_iter()
            .any(|charts| charts.as_array().is_some_and(|charts| !charts.is_empty()))
        {
            out.found.push(format!(
                "kustomize {field}: a Helm chart rendered by kustomize (not followed: check what `kubectl kustomize --enable-helm` renders, or exclude the kustomization with .ksealignore)"
            ));
        }
    }
    // Resources the walk does not read (another file name): kustomize
    // loads them all the same, so they are read here as the walk would.
    for entry in strings(value, "resources") {
        let resource = dir.join(&entry);
        if crate::walk::is_manifest_name(&resource) || !resource.is_file() {
            continue;
        }
        match file_documents(&resource) {
            Ok(documents) => {
                for document in documents {
                    for name in plaintext(&document) {
                        out.found.push(format!(
                            "kustomize resources: {entry}: plaintext Secret {name:?}"
                        ));
                    }
                    findings(&resource, &document, plaintext).report_at(
                        &format!("kustomize resources: {entry}"),
                        &mut out.found,
                        &mut out.not_checked,
                    );
                }
            }
            Err(problem) => out
                .not_checked
                .push(format!("kustomize resources: {problem}")),
        }
    }
    out
}

/// The findings of a builtin generator or transformer config
/// (`apiVersion: builtin` or a plugin's; by kind).
fn builtin_config_findings(value: &Value, dir: &Path, what: &str, out: &mut Report) {
    let Some(kind) = fields(value, "kind")
        .into_iter()
        .find_map(Value::as_str)
        .map(fold)
    else {
        return;
    };
    match kind.as_str() {
        "SECRETGENERATOR" => {
            generator_findings(value, dir, &format!("{what} a SecretGenerator config"), out);
        }
        "PATCHTRANSFORMER" | "PATCHSTRATEGICMERGETRANSFORMER" | "PATCHJSON6902TRANSFORMER" => {
            patch_entry_findings(value, dir, &format!("{what} a patch transformer"), out);
        }
        "REPLACEMENTTRANSFORMER" => out.found.push(format!(
            "{what} a ReplacementTransformer (not followed: check what `kubectl kustomize` renders, or exclude the kustomization with .ksealignore)"
        )),
        "HELMCHARTINFLATIONGENERATOR" => out.found.push(format!(
            "{what} a Helm chart rendered by kustomize (not followed: check what `kubectl kustomize --enable-helm` renders)"
        )),
        _ => {}
    }
}

/// One patch entry: a string (a `patchesStrategicMerge` entry: content or
/// a file), or a mapping with `patch` (always content), `path` (a file),
/// `target` and `options` (also the fields of a patch transformer).
fn patch_entry_findings(entry: &Value, dir: &Path, what: &str, out: &mut Report) {
    let mut documents = Vec::new();
    let mut target_kind = None;
    match entry {
        Value::String(text) => match entry_documents(text, dir) {
            Ok(found) => documents.extend(found),
            Err(problem) => out.not_checked.push(format!("{what}: {problem}")),
        },
        Value::Object(_) => {
            target_kind = fields(entry, "target")
                .into_iter()
                .flat_map(|target| fields(target, "kind"))
                .find_map(Value::as_str)
                .map(fold);
            for text in fields(entry, "patch").into_iter().filter_map(Value::as_str) {
                match yaml_documents(text) {
                    Ok(found) => documents.extend(found),
                    Err(()) => out.not_checked.push(format!(
                        "{what}: an inline patch kseal cannot parse (not checked: check what `kubectl kustomize` renders)"
                    )),
                }
            }
            for file in fields(entry, "path").into_iter().filter_map(Value::as_str) {
                match file_documents(&dir.join(file)) {
                    Ok(found) => documents.extend(found),
                    Err(problem) => out.not_checked.push(format!("{what}: {problem}")),
                }
            }
            // A kind change needs the option; anything but `false` may be
            // taken for true (kustomize reads YAML 1.1: `yes`, `on`).
            let kind_change = fields(entry, "options").into_iter().any(|options| {
                fields(options, "allowKindChange")
                    .into_iter()
                    .any(|allow| !matches!(allow, Value::Bool(false) | Value::Null))
            });
            if kind_change {
                out.found.push(format!(
                    "{what}: a patch allowed to change an object's kind (a Secret may come of it; check what `kubectl kustomize` renders, or exclude the kustomization with .ksealignore)"
                ));
            }
        }
        _ => {}
    }
    for document in documents {
        if let Some(reason) = patch_makes_secret_data(&document, target_kind.as_deref()) {
            out.found.push(format!("{what}: a patch that {reason}"));
        }
    }
}

/// Whether a replacement may write into a Secret: a target that selects
/// kind Secret (or no kind), or a field path under `data`/`stringData`.
/// A replacement in a file (`path`) is not followed: it counts.
fn replacement_may_write_secret(replacement: &Value) -> bool {
    if !fields(replacement, "path").is_empty() {
        return true;
    }
    fields(replacement, "targets")
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .any(|target| {
            let kind = fields(target, "select")
                .into_iter()
                .flat_map(|select| fields(select, "kind"))
                .find_map(Value::as_str)
                .map(fold);
            let data_path = strings(target, "fieldPaths").iter().any(|path| {
                let path = fold(path);
                path.starts_with("DATA") || path.starts_with("STRINGDATA")
            });
            kind.is_none_or(|kind| kind == "SECRET") || data_path
        })
}

/// The plaintext sources of one secretGenerator (or SecretGenerator
/// config): `literals`, `envs`/`env`, `files`. A source is named only when
/// it is a file beside the kustomization (an entry that is none may be a
/// value written in the wrong field).
fn generator_findings(generator: &Value, dir: &Path, what: &str, out: &mut Report) {
    let literals = strings(generator, "literals").len();
    if literals > 0 {
        out.found.push(format!(
            "{what}: {literals} plaintext value(s) in its literals"
        ));
    }
    for (field, kind) in [("envs", "env file"), ("env", "env file"), ("files", "file")] {
        let sources = strings(generator, field);
        if sources.is_empty() {
            continue;
        }
        // `files` entries may be `KEY=PATH`: the path is what is read.
        let (files, others): (Vec<&str>, Vec<&str>) = sources
            .iter()
            .map(|source| source.split_once('=').map_or(source.as_str(), |(_, p)| p))
            .partition(|source| dir.join(source).is_file());
        let mut named = files.join(", ");
        if !others.is_empty() {
            if !named.is_empty() {
                named.push_str(", ");
            }
            named.push_str(&format!(
                "{} not shown (no such file here; a value in the wrong field?)",
                others.len()
            ));
        }
        out.found.push(format!(
            "{what}: reads plaintext from {kind}(s) in {field}: {named}"
        ));
    }
}

/// Why a patch document could give a Secret plaintext data: it sets
/// `stringData`, or `data` of what may be a Secret (its target's kind, else
/// its own, is Secret or not given); or it is a JSON 6902 patch whose
/// operations write the whole object, `/data`, `/stringData`, `/kind` or
/// `/apiVersion`.
fn patch_makes_secret_data(document: &Value, target_kind: Option<&str>) -> Option<&'static str> {
    match document {
        Value::Object(_) => {
            let sets = |name: &str| {
                fields(document, name)
                    .into_iter()
                    .any(|field| field.as_object().is_some_and(|map| !map.is_empty()))
            };
            let own_kind = fields(document, "kind")
                .into_iter()
                .find_map(Value::as_str)
                .map(fold);
            let kind = target_kind.map(str::to_owned).or(own_kind);
            if sets("stringData") {
                Some("sets stringData (plaintext)")
            } else if sets("data") && kind.as_deref().is_none_or(|kind| kind == "SECRET") {
                Some("sets Secret data")
            } else {
                None
            }
        }
        Value::Array(operations) => operations.iter().find_map(|operation| {
            let path = fields(operation, "path")
                .into_iter()
                .find_map(Value::as_str)?;
            let path = fold(path);
            if path.is_empty() || path == "/" {
                Some("replaces a whole object (JSON 6902)")
            } else if path.starts_with("/DATA") || path.starts_with("/STRINGDATA") {
                Some("writes data or stringData (JSON 6902)")
            } else if path == "/KIND" || path == "/APIVERSION" {
                Some("changes an object's kind or apiVersion (JSON 6902)")
            } else {
                None
            }
        }),
        _ => None,
    }
}

/// The documents of a `generators`/`transformers`/`patchesStrategicMerge`
/// entry, read as kustomize reads it: content when it parses as YAML into
/// a mapping or a list, else the name of a file beside the kustomization
/// (a directory, another kustomization, is walked on its own).
fn entry_documents(entry: &str, dir: &Path) -> Result<Vec<Value>, String> {
    if let Ok(documents) = yaml_documents(entry)
        && documents
            .iter()
            .any(|document| document.is_object() || document.is_array())
    {
        return Ok(documents);
    }
    let file = dir.join(entry.trim());
    if file.is_file() {
        file_documents(&file)
    } else {
        Ok(Vec::new())
    }
}

/// A file a kustomization names, decoded as the walk decodes manifests
/// (UTF-8, UTF-16 with a BOM). One that cannot be read, is too large or
/// does not parse is an error: the gate fails closed on it.
fn file_documents(file: &Path) -> Result<Vec<Value>, String> {
    let not_checked = |why: &str| format!("{}: {why} (not checked)", file.display());
    match std::fs::metadata(file) {
        Ok(meta) if meta.len() > MAX_REFERENCED_FILE => {
            return Err(not_checked(&format!(
                "larger than {MAX_REFERENCED_FILE} bytes"
            )));
        }
        Ok(_) => {}
        Err(_) => return Err(not_checked("cannot read")),
    }
    let text = crate::io::Source::File(file.to_owned())
        .read_like_kubectl()
        .map_err(|_| not_checked("cannot read it as text"))?;
    yaml_documents(&text).map_err(|()| not_checked("cannot parse it"))
}

/// Every document of `text`; `Err` when one does not parse.
fn yaml_documents(text: &str) -> Result<Vec<Value>, ()> {
    split_yaml(text)
        .iter()
        .filter(|document| !document.empty)
        .map(|document| parse_yaml_document(document).map_err(drop))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Go's `encoding/json` field matching: `bytes.EqualFold`-like on the
    /// folded names.
    #[test]
    fn names_fold_as_go_folds_them() {
        for (a, b) in [
            ("secretGenerator", "SecretGenerator"),
            ("secretGenerator", "SECRETGENERATOR"),
            ("secretGenerator", "\u{17f}ecretGenerator"),
            ("kind", "\u{212a}ind"),
            ("literals", "L\u{131}terals"),
            ("literals", "L\u{130}terals"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} / {b}");
        }
        assert_ne!(fold("literals"), fold("literal"));
        assert_ne!(fold("files"), fold("fi\u{df}es"));
    }
}
