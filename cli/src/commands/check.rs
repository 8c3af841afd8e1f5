//! `kseal check`: plaintext Secret manifests must not be committed.

use anyhow::{Result, bail};
use kseal_shared::manifest::{DocumentKind, ManifestFile, split_yaml};
use serde_json::Value;

use crate::args::CheckArgs;
use crate::io::{Source, manifest_files, write_stdout};

pub fn run(args: CheckArgs) -> Result<()> {
    let mut found = Vec::new();
    for path in manifest_files(&args.paths)? {
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
                }
            }
            // Templates (Helm, …) are often not valid YAML: fall back to a
            // textual look at each document rather than let one slip by.
            Err(_) => {
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
    for line in &found {
        out.push_str(line);
        out.push('\n');
    }
    write_stdout(out.as_bytes())?;
    if !found.is_empty() {
        bail!(
            "{} plaintext Secret(s) found: seal them with `kseal seal` and commit the SealedSecret instead",
            found.len()
        );
    }
    Ok(())
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
