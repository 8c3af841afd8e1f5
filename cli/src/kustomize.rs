//! What kustomize would turn into a Secret holding plaintext from the
//! repository, for `kseal check`: the kustomize side of the gate.
//!
//! kustomize reads a kustomization through Go's `encoding/json`, which
//! matches field names without regard to case, Unicode folds included
//! (`SecretGenerator`, `ſecretGenerator` and `secretgenerator` are all
//! `secretGenerator`): every field here is looked up that way
//! ([`fold`]). What is reported:
//!
//! * a `secretGenerator` (in a kustomization, or a `SecretGenerator`
//!   generator config, in a file or inline under `generators`) with
//!   `literals` (plaintext in the file), `envs`/`env` or `files`
//!   (plaintext files beside it);
//! * a patch (inline, or a file it names) that sets `data` or
//!   `stringData`, or changes an object's `kind`, or allows a kind change:
//!   kustomize can make a Secret with plaintext out of an object that is
//!   none;
//! * a `resources` entry naming a file the directory walk does not read
//!   (kustomize loads any name, `secret.txt` too) that holds a plaintext
//!   Secret.
//!
//! A static reading cannot follow every way kustomize assembles objects
//! (remote bases, plugins): docs/inputs.md says so, and shows the complete
//! gate, `kubectl kustomize DIR | kseal check -`.

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

/// What kustomize would make a plaintext Secret from, in one parsed
/// document of `path`: one line each, naming generators, patches and
/// files, never a value. `plaintext` names the plaintext Secrets of an
/// object (the gate's own reading).
pub fn findings(
    path: &Path,
    value: &Value,
    plaintext: &dyn Fn(&Value) -> Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    // A generator config of kustomize's builtin SecretGenerator, wherever
    // it is (a file `generators:` names, or any file in the tree).
    if is_secret_generator_config(value) {
        generator_findings(value, "kustomize SecretGenerator config", &mut out);
    }
    if !is_kustomization(path, value) {
        return out;
    }
    let dir = path.parent().unwrap_or(Path::new("."));
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
            &format!("kustomize secretGenerator {name}"),
            &mut out,
        );
    }
    // `generators:` entries inline (a YAML document in a string); files it
    // names are walked, or read here when not named like a manifest.
    for entry in strings(value, "generators") {
        // A generator config named like a manifest is read by the walk
        // (and reported there); others are read here.
        if !entry.contains('\n') && crate::walk::is_manifest_name(Path::new(&entry)) {
            continue;
        }
        for document in inline_documents(&entry, dir) {
            if is_secret_generator_config(&document) {
                generator_findings(
                    &document,
                    "kustomize generators: a SecretGenerator",
                    &mut out,
                );
            }
        }
    }
    // Patches: inline text, or the file they name.
    for (field, what) in [
        ("patches", "patches"),
        ("patchesStrategicMerge", "patchesStrategicMerge"),
        ("patchesJson6902", "patchesJson6902"),
    ] {
        for entry in fields(value, field)
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
        {
            let mut texts = Vec::new();
            match entry {
                Value::String(text) => texts.push(text.clone()),
                Value::Object(_) => {
                    texts.extend(
                        fields(entry, "patch")
                            .into_iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned),
                    );
                    texts.extend(
                        fields(entry, "path")
                            .into_iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned),
                    );
                    let kind_change = fields(entry, "options").into_iter().any(|options| {
                        fields(options, "allowKindChange")
                            .into_iter()
                            .any(|allow| allow == &Value::Bool(true))
                    });
                    if kind_change {
                        out.push(format!(
                            "kustomize {what}: a patch allowed to change an object's kind (a Secret may come of it; check it by hand, or exclude the kustomization with .ksealignore)"
                        ));
                    }
                }
                _ => {}
            }
            for text in texts {
                for document in inline_documents(&text, dir) {
                    if let Some(reason) = patch_makes_secret_data(&document) {
                        out.push(format!("kustomize {what}: a patch that {reason}"));
                    }
                }
            }
        }
    }
    // Resources the walk does not read (another file name): kustomize
    // loads them all the same.
    for entry in strings(value, "resources") {
        let resource = dir.join(&entry);
        if crate::walk::is_manifest_name(&resource) || !resource.is_file() {
            continue;
        }
        for document in file_documents(&resource) {
            for name in plaintext(&document) {
                out.push(format!(
                    "kustomize resources: {entry}: plaintext Secret {name:?}"
                ));
            }
        }
    }
    out
}

/// Whether `value` is a generator config of the builtin SecretGenerator.
fn is_secret_generator_config(value: &Value) -> bool {
    fields(value, "kind")
        .into_iter()
        .find_map(Value::as_str)
        .is_some_and(|kind| fold(kind) == "SECRETGENERATOR")
}

/// The plaintext sources of one secretGenerator (or SecretGenerator
/// config): `literals`, `envs`/`env`, `files`.
fn generator_findings(generator: &Value, what: &str, out: &mut Vec<String>) {
    let literals = strings(generator, "literals").len();
    if literals > 0 {
        out.push(format!(
            "{what}: {literals} plaintext value(s) in its literals"
        ));
    }
    for (field, kind) in [("envs", "env file"), ("env", "env file"), ("files", "file")] {
        let sources = strings(generator, field);
        if sources.is_empty() {
            continue;
        }
        // `files` entries may be `KEY=PATH`: the path is what is read.
        let sources: Vec<&str> = sources
            .iter()
            .map(|source| source.split_once('=').map_or(source.as_str(), |(_, p)| p))
            .collect();
        out.push(format!(
            "{what}: reads plaintext from {kind}(s) in {field}: {}",
            sources.join(", ")
        ));
    }
}

/// Why a patch document could give a Secret plaintext data: it sets
/// `data`/`stringData` (a strategic-merge patch), or it is a JSON 6902
/// patch whose operations write under `/data`, `/stringData` or `/kind`.
fn patch_makes_secret_data(document: &Value) -> Option<&'static str> {
    match document {
        Value::Object(_) => {
            let sets = |name: &str| {
                fields(document, name)
                    .into_iter()
                    .any(|field| field.as_object().is_some_and(|map| !map.is_empty()))
            };
            let kind = fields(document, "kind")
                .into_iter()
                .find_map(Value::as_str)
                .map(fold);
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
            if path.starts_with("/DATA") || path.starts_with("/STRINGDATA") {
                Some("writes data or stringData (JSON 6902)")
            } else if path == "/KIND" {
                Some("changes an object's kind (JSON 6902)")
            } else {
                None
            }
        }),
        _ => None,
    }
}

/// The documents of an entry that is either inline YAML (it has a line
/// break) or a file beside the kustomization.
fn inline_documents(entry: &str, dir: &Path) -> Vec<Value> {
    if entry.contains('\n') {
        return yaml_documents(entry);
    }
    let file = dir.join(entry);
    if file.is_file() {
        file_documents(&file)
    } else {
        Vec::new()
    }
}

fn file_documents(file: &Path) -> Vec<Value> {
    let small = std::fs::metadata(file).is_ok_and(|meta| meta.len() <= MAX_REFERENCED_FILE);
    match std::fs::read_to_string(file) {
        Ok(text) if small => yaml_documents(&text),
        _ => Vec::new(),
    }
}

fn yaml_documents(text: &str) -> Vec<Value> {
    split_yaml(text)
        .iter()
        .filter(|document| !document.empty)
        .filter_map(|document| parse_yaml_document(document).ok())
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
