//! A manifest file as a sequence of documents that can be read, classified
//! and selectively rewritten: documents that are not replaced keep their
//! exact bytes.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use super::documents::{
    RawDocument, SourceFormat, parse_json, parse_yaml_document, split_yaml, yaml11_boolean_path,
};
use super::edit::{edit_encrypted_data, edit_generated, edit_spec_fields};
use super::{ManifestError, is_core_v1};
use crate::sealed_secret::{API_VERSION, KIND};

/// What a document (or an item of a `List`) holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DocumentKind {
    /// A kseal `SealedSecret`.
    SealedSecret,
    /// A core `v1` `Secret` (`apiVersion` `v1` or `/v1`: [`is_core_v1`]).
    Secret,
    /// Anything else.
    Other {
        /// Its `apiVersion` (empty when missing).
        api_version: String,
        /// Its `kind` (empty when missing).
        kind: String,
    },
}

impl DocumentKind {
    /// What `value` is, by `apiVersion` and `kind`, read as kubectl reads
    /// them. For an item of a list, see [`list_items`].
    pub fn of(value: &Value) -> Self {
        let field = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if api_version == API_VERSION && kind == KIND {
            DocumentKind::SealedSecret
        } else if is_core_v1(&api_version) && kind == "Secret" {
            DocumentKind::Secret
        } else {
            DocumentKind::Other { api_version, kind }
        }
    }
}

/// One Kubernetes object of a file: a document, or one item of a list
/// document (see [`list_items`]).
#[derive(Clone, Debug)]
pub struct Document {
    /// 1-based document index in the file.
    pub index: usize,
    /// 0-based item index when the object is an item of a list.
    pub item: Option<usize>,
    /// 1-based line where the document starts.
    pub line: usize,
    /// What the object is.
    pub kind: DocumentKind,
    /// The object as kubectl reads it: an item of a list without
    /// `apiVersion` and `kind` has the ones it takes from the list.
    pub value: Value,
}

impl Document {
    /// Where this object is, for messages: `document 2` or `document 2, item 3`.
    pub fn location(&self) -> String {
        match self.item {
            Some(item) => format!(
                "document {} (line {}), item {}",
                self.index,
                self.line,
                item + 1
            ),
            None => format!("document {} (line {})", self.index, self.line),
        }
    }

    /// An error about this object, located at it.
    pub fn error(&self, message: impl Into<String>) -> ManifestError {
        ManifestError {
            document: self.index,
            line: Some(self.line),
            message: match self.item {
                Some(item) => format!("item {}: {}", item + 1, message.into()),
                None => message.into(),
            },
        }
    }
}

/// Output encodings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// YAML documents separated by `---`.
    #[default]
    Yaml,
    /// One JSON object (a `List` for several).
    Json,
}

/// Where an object is in a file: document index and `List` item.
type ObjectKey = (usize, Option<usize>);

/// A parsed manifest file with pending replacements and value edits.
#[derive(Clone, Debug)]
pub struct ManifestFile {
    format: SourceFormat,
    raw: Vec<RawDocument>,
    replacements: BTreeMap<ObjectKey, Value>,
    /// Sealed values to set in an object's `spec.encryptedData`, by data key.
    edits: BTreeMap<ObjectKey, BTreeMap<String, String>>,
    /// Records to set (`Some`) or remove (`None`) in an object's
    /// `spec.generated`, by data key.
    generated: BTreeMap<ObjectKey, GeneratedChanges>,
    /// String fields to set in an object's `spec` (`maxAge`, `rollout`).
    spec_fields: BTreeMap<ObjectKey, BTreeMap<String, String>>,
}

/// Changes of one object's `spec.generated`: data key → how its value was
/// generated (`Some`), or `None` to remove the key's record.
pub type GeneratedChanges = BTreeMap<String, Option<String>>;

impl ManifestFile {
    /// Splits `text` into documents (parsed lazily by
    /// [`objects`](Self::objects)).
    pub fn new(text: &str) -> Self {
        let format = SourceFormat::detect(text);
        let raw = match format {
            SourceFormat::Yaml => split_yaml(text),
            SourceFormat::Json => vec![RawDocument {
                index: 1,
                first_line: 1,
                separator: String::new(),
                text: text.to_owned(),
                empty: false,
            }],
        };
        Self {
            format,
            raw,
            replacements: BTreeMap::new(),
            edits: BTreeMap::new(),
            generated: BTreeMap::new(),
            spec_fields: BTreeMap::new(),
        }
    }

    /// Whether the file is YAML or JSON.
    pub fn format(&self) -> SourceFormat {
        self.format
    }

    /// Parses every non-empty document; lists (as kubectl reads them:
    /// [`list_items`]) are expanded into their items. Stops at the first
    /// document that does not parse.
    pub fn objects(&self) -> Result<Vec<Document>, ManifestError> {
        let mut objects = Vec::new();
        for raw in self.raw.iter().filter(|raw| !raw.empty) {
            let value = self.parse_raw(raw)?;
            if value.is_null() {
                continue;
            }
            if !value.is_object() {
                return Err(ManifestError::at(
                    raw,
                    None,
                    "the document is not a mapping",
                ));
            }
            if let Some(items) = list_items(&value) {
                for (item, value) in items.into_iter().enumerate() {
                    if nests_sealed_secrets(&value) {
                        return Err(ManifestError::at(
                            raw,
                            Some(item),
                            "a SealedSecret in a List inside a List: kseal reads one level of List; flatten it",
                        ));
                    }
                    objects.push(Document {
                        index: raw.index,
                        item: Some(item),
                        line: raw.first_line,
                        kind: DocumentKind::of(&value),
                        value: value.into_owned(),
                    });
                }
            } else {
                objects.push(Document {
                    index: raw.index,
                    item: None,
                    line: raw.first_line,
                    kind: DocumentKind::of(&value),
                    value,
                });
            }
        }
        Ok(objects)
    }

    /// For a YAML file: the path of the first value of this object that
    /// YAML 1.1 (kubectl's YAML) reads as a boolean where YAML 1.2 reads a
    /// string (see `documents::yaml11_boolean_path`); only the
    /// top-level `fields` given (all when empty).
    pub fn yaml11_boolean_path(&self, document: &Document, fields: &[&str]) -> Option<String> {
        if self.format != SourceFormat::Yaml {
            return None;
        }
        let raw = self
            .raw
            .iter()
            .find(|raw| !raw.empty && raw.index == document.index)?;
        yaml11_boolean_path(raw, document.item, &document.value, fields)
    }

    fn parse_raw(&self, raw: &RawDocument) -> Result<Value, ManifestError> {
        match self.format {
            SourceFormat::Yaml => parse_yaml_document(raw),
            SourceFormat::Json => parse_json(&raw.text),
        }
    }

    /// The document's object (or `List`) with its replacements and value
    /// edits applied: what rendering it must produce.
    fn edited_value(
        &self,
        raw: &RawDocument,
        edits: &[(&Option<usize>, &BTreeMap<String, String>)],
        generated: &[(&Option<usize>, &GeneratedChanges)],
        spec_fields: &[(&Option<usize>, &BTreeMap<String, String>)],
    ) -> Result<Value, ManifestError> {
        let mut value = match self.replacements.get(&(raw.index, None)) {
            Some(value) => value.clone(),
            None => {
                let mut list = self.parse_raw(raw)?;
                if let Some(Value::Array(items)) = list.get_mut("items") {
                    for (item, value) in Self::in_document(&self.replacements, raw.index) {
                        if let Some(slot) = item.and_then(|item| items.get_mut(item)) {
                            *slot = value.clone();
                        }
                    }
                }
                list
            }
        };
        for (item, values) in edits {
            let object = match item {
                None => Some(&mut value),
                Some(item) => value
                    .get_mut("items")
                    .and_then(|items| items.get_mut(*item)),
            };
            if let Some(Value::Object(data)) = object
                .and_then(|object| object.get_mut("spec"))
                .and_then(Value::as_object_mut)
                .map(|spec| {
                    let data = spec
                        .entry("encryptedData")
                        .or_insert_with(|| Value::Object(serde_json::Map::new()));
                    if data.is_null() {
                        *data = Value::Object(serde_json::Map::new());
                    }
                    data
                })
            {
                for (key, sealed) in *values {
                    data.insert(key.clone(), Value::String(sealed.clone()));
                }
            }
        }
        for (item, changes) in generated {
            let object = match item {
                None => Some(&mut value),
                Some(item) => value
                    .get_mut("items")
                    .and_then(|items| items.get_mut(*item)),
            };
            let Some(spec) = object
                .and_then(|object| object.get_mut("spec"))
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let records = spec
                .entry("generated")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !records.is_object() {
                *records = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(records) = records {
                for (key, record) in *changes {
                    match record {
                        Some(record) => {
                            records.insert(key.clone(), Value::String(record.clone()));
                        }
                        None => {
                            records.shift_remove(key);
                        }
                    }
                }
                if records.is_empty() {
                    spec.shift_remove("generated");
                }
            }
        }
        for (item, fields) in spec_fields {
            let object = match item {
                None => Some(&mut value),
                Some(item) => value
                    .get_mut("items")
                    .and_then(|items| items.get_mut(*item)),
            };
            if let Some(spec) = object
                .and_then(|object| object.get_mut("spec"))
                .and_then(Value::as_object_mut)
            {
                for (field, text) in *fields {
                    spec.insert(field.clone(), Value::String(text.clone()));
                }
            }
        }
        Ok(value)
    }

    /// Replaces one object; takes effect in [`ManifestFile::render`].
    pub fn replace(&mut self, document: &Document, value: Value) {
        self.replacements
            .insert((document.index, document.item), value);
    }

    /// Sets sealed values (data key → value) in the `spec.encryptedData` of
    /// one SealedSecret, adding the keys it lacks; takes effect in
    /// [`ManifestFile::render`], which changes only those values' text
    /// where it can (comments, order, blank lines and quoting stay).
    pub fn set_encrypted_values(&mut self, document: &Document, values: BTreeMap<String, String>) {
        self.edits
            .entry((document.index, document.item))
            .or_default()
            .extend(values);
    }

    /// Records how the values of data keys of one SealedSecret were
    /// generated (`Some`: `hex:32`, …) or removes their records (`None`),
    /// in its `spec.generated`; takes effect in [`ManifestFile::render`],
    /// which, as for [`set_encrypted_values`](Self::set_encrypted_values),
    /// changes only those entries' text where it can. A `spec.generated`
    /// left empty is removed.
    pub fn set_generated(&mut self, document: &Document, changes: GeneratedChanges) {
        self.generated
            .entry((document.index, document.item))
            .or_default()
            .extend(changes);
    }

    /// Sets string fields of one SealedSecret's `spec` (field → value:
    /// `maxAge` → `90d`, `rollout` → `EnvConsumers`), replacing what they
    /// hold; takes effect in [`ManifestFile::render`], which, as for
    /// [`set_encrypted_values`](Self::set_encrypted_values), changes only
    /// those fields' text (or adds their lines) where it can.
    pub fn set_spec_fields(&mut self, document: &Document, fields: BTreeMap<String, String>) {
        self.spec_fields
            .entry((document.index, document.item))
            .or_default()
            .extend(fields);
    }

    /// Whether any object was replaced or edited since the file was read.
    pub fn has_replacements(&self) -> bool {
        !self.replacements.is_empty()
            || self.edits.values().any(|edits| !edits.is_empty())
            || self.generated.values().any(|changes| !changes.is_empty())
            || self.spec_fields.values().any(|fields| !fields.is_empty())
    }

    fn in_document<T>(
        map: &BTreeMap<ObjectKey, T>,
        index: usize,
    ) -> impl Iterator<Item = (&Option<usize>, &T)> {
        map.range((index, None)..=(index, Some(usize::MAX)))
            .map(|((_, item), value)| (item, value))
    }

    /// The file's text with replacements and edits applied. Untouched
    /// documents keep their bytes; value edits change only the values' text
    /// when the document's shape allows it; otherwise a rewritten YAML
    /// document keeps its leading comments.
    pub fn render(&self) -> Result<String, ManifestError> {
        self.render_reporting().map(|rendered| rendered.text)
    }

    /// As [`render`](Self::render), and which documents with edits (values,
    /// `spec.generated`, `spec` fields; not those [`replace`](Self::replace)d,
    /// which are rewritten by design) could not be edited in their text and
    /// were rewritten whole, losing their formatting and inline comments: a
    /// caller says so, so that the loss is never silent.
    pub fn render_reporting(&self) -> Result<Rendered, ManifestError> {
        let mut rewritten = Vec::new();
        let mut out = String::new();
        for raw in &self.raw {
            out.push_str(&raw.separator);
            let replaced = Self::in_document(&self.replacements, raw.index)
                .next()
                .is_some();
            let edits: Vec<_> = Self::in_document(&self.edits, raw.index)
                .filter(|(_, edits)| !edits.is_empty())
                .collect();
            let generated: Vec<_> = Self::in_document(&self.generated, raw.index)
                .filter(|(_, changes)| !changes.is_empty())
                .collect();
            let spec_fields: Vec<_> = Self::in_document(&self.spec_fields, raw.index)
                .filter(|(_, fields)| !fields.is_empty())
                .collect();
            if raw.empty
                || (!replaced && edits.is_empty() && generated.is_empty() && spec_fields.is_empty())
            {
                out.push_str(&raw.text);
                continue;
            }
            let value = self.edited_value(raw, &edits, &generated, &spec_fields)?;
            if !replaced {
                let json = self.format == SourceFormat::Json;
                let surgical = edits
                    .iter()
                    .try_fold(raw.text.clone(), |text, (item, values)| {
                        edit_encrypted_data(&text, **item, values, json)
                    })
                    .and_then(|text| {
                        generated.iter().try_fold(text, |text, (item, changes)| {
                            edit_generated(&text, **item, changes, json)
                        })
                    })
                    .and_then(|text| {
                        spec_fields.iter().try_fold(text, |text, (item, fields)| {
                            edit_spec_fields(&text, **item, fields, json)
                        })
                    });
                // Kept only when it reads back as exactly the intended
                // object: a shape the text editor misjudged (a flow mapping
                // closed on the last entry's line, say) must not put a value
                // elsewhere, or break the document, and report success.
                if let Some(text) = surgical {
                    let edited = RawDocument {
                        text: text.clone(),
                        ..raw.clone()
                    };
                    if self.parse_raw(&edited).ok().as_ref() == Some(&value) {
                        out.push_str(&text);
                        continue;
                    }
                }
                rewritten.push(format!("document {} (line {})", raw.index, raw.first_line));
            }
            match self.format {
                SourceFormat::Yaml => {
                    out.push_str(raw.leading_comments());
                    out.push_str(
                        &to_yaml(&value)
                            .map_err(|err| ManifestError::at(raw, None, err.to_string()))?,
                    );
                }
                SourceFormat::Json => {
                    out.push_str(&to_json(&value));
                    out.push('\n');
                }
            }
        }
        Ok(Rendered {
            text: out,
            rewritten,
        })
    }
}

/// A file's new text ([`ManifestFile::render_reporting`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The whole file.
    pub text: String,
    /// The documents that had edits the text could not take, rewritten
    /// whole (formatting and inline comments lost; comments before the
    /// document kept in YAML), as `document 2 (line 5)`.
    pub rewritten: Vec<String>,
}

/// The objects of `value` when kubectl reads it as a list, each as kubectl
/// reads it; `None` when it is no list. kubectl's decoder reads every
/// mapping with an `items` field as a list, whatever its `apiVersion` and
/// `kind` (`v1 List`, `/v1 List`, `SecretList`, even a `ConfigMap` with
/// `items`), and applies the items, never the list itself; `items: null` is
/// a list of nothing. An item with neither `apiVersion` nor `kind` takes
/// the list's `apiVersion`, and its `kind` without the `List` suffix (an
/// item of a `SecretList` is a `Secret`). Checked against kubectl 1.36. An
/// `items` that is neither an array nor null makes kubectl refuse the
/// document; kseal reads such a document as one object.
pub fn list_items(value: &Value) -> Option<Vec<Cow<'_, Value>>> {
    let items: &[Value] = match value.get("items")? {
        Value::Array(items) => items,
        Value::Null => &[],
        _ => return None,
    };
    let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let item_kind = kind.strip_suffix("List").unwrap_or(kind);
    Some(
        items
            .iter()
            .map(|item| inherit(item, api_version, item_kind))
            .collect(),
    )
}

/// `item` with the list's `apiVersion` and item kind when it names neither
/// itself (a field that is not a string counts as missing, as in Go).
fn inherit<'a>(item: &'a Value, api_version: &str, kind: &str) -> Cow<'a, Value> {
    let names = |field: &str| {
        item.get(field)
            .and_then(Value::as_str)
            .is_some_and(|text| !text.is_empty())
    };
    let inherits = !names("apiVersion") && !names("kind");
    match item {
        Value::Object(fields) if inherits && (!api_version.is_empty() || !kind.is_empty()) => {
            let mut fields = fields.clone();
            for (field, inherited) in [("apiVersion", api_version), ("kind", kind)] {
                if !inherited.is_empty() {
                    fields.insert(field.to_owned(), Value::String(inherited.to_owned()));
                }
            }
            Cow::Owned(Value::Object(fields))
        }
        _ => Cow::Borrowed(item),
    }
}

/// Whether a list item is itself a list holding a SealedSecret at some
/// depth. kubectl (1.36) refuses a list in a list (`… is not a list`), and
/// kseal reads and edits one level: such a file is refused rather than
/// passed over.
fn nests_sealed_secrets(list_item: &Value) -> bool {
    list_items(list_item).is_some_and(|items| {
        items.iter().any(|item| {
            DocumentKind::of(item) == DocumentKind::SealedSecret || nests_sealed_secrets(item)
        })
    })
}

/// Serializing a document as YAML failed (the serializer's message; the
/// values are JSON, so this is not expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("YAML output: {0}")]
pub struct RenderError(String);

/// Serializes one object as a YAML document (no `---`), long strings on one
/// line so sealed values diff cleanly.
pub fn to_yaml(value: &Value) -> Result<String, RenderError> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options).map_err(|err| RenderError(err.to_string()))
}

/// Pretty JSON.
pub fn to_json(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Renders objects as one output stream: YAML documents separated by `---`,
/// or JSON (one object, or a `v1` `List` of several).
pub fn render_documents(values: &[Value], format: OutputFormat) -> Result<String, RenderError> {
    match format {
        OutputFormat::Yaml => {
            let mut out = String::new();
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&to_yaml(value)?);
            }
            Ok(out)
        }
        OutputFormat::Json => {
            let mut out = match values {
                [one] => to_json(one),
                many => to_json(&serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": many,
                })),
            };
            out.push('\n');
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn untouched_documents_keep_their_bytes() {
        let text = "# keep me\napiVersion: v1\nkind: ConfigMap   # odd spacing\nmetadata: {name: c}\n---\n# comment\napiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: s}\nspec: {encryptedData: {}}\n";
        let mut file = ManifestFile::new(text);
        let objects = file.objects().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].kind, DocumentKind::SealedSecret);
        assert_eq!(file.render().unwrap(), text);
        file.replace(&objects[1], json!({"apiVersion": "kseal.dev/v1alpha1", "kind": "SealedSecret", "metadata": {"name": "t"}}));
        let rendered = file.render().unwrap();
        assert!(
            rendered.starts_with("# keep me\napiVersion: v1\nkind: ConfigMap   # odd spacing\n")
        );
        assert!(rendered.contains("---\n# comment\napiVersion: kseal.dev/v1alpha1"));
        assert!(rendered.contains("name: t"));
    }

    #[test]
    fn list_items_are_objects() {
        let text = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret"},{"apiVersion":"v1","kind":"ConfigMap"}]}"#;
        let mut file = ManifestFile::new(text);
        let objects = file.objects().unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].kind, DocumentKind::Secret);
        file.replace(&objects[0], json!({"replaced": true}));
        let rendered: Value = serde_json::from_str(&file.render().unwrap()).unwrap();
        assert_eq!(rendered["items"][0], json!({"replaced": true}));
        assert_eq!(rendered["items"][1]["kind"], "ConfigMap");
    }

    /// Lists as kubectl reads them (checked against kubectl 1.36 with
    /// `kubectl label --local -f FILE -o yaml`, which prints what it
    /// flattened): `/v1` is core v1, any object with `items` is a list, and
    /// an item naming neither apiVersion nor kind takes the list's.
    #[test]
    fn lists_are_read_as_kubectl_reads_them() {
        let sealed = r#"{"apiVersion":"kseal.dev/v1alpha1","kind":"SealedSecret","metadata":{"name":"s"},"spec":{"encryptedData":{"a":"V"}}}"#;
        let kinds = |text: &str| -> Vec<DocumentKind> {
            ManifestFile::new(text)
                .objects()
                .unwrap()
                .into_iter()
                .map(|object| object.kind)
                .collect()
        };
        let other = |api_version: &str, kind: &str| DocumentKind::Other {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        };
        // `/v1` names core v1: a `/v1 List` is a list, a `/v1 Secret` a Secret.
        assert_eq!(
            kinds(&format!(
                r#"{{"apiVersion":"/v1","kind":"List","items":[{sealed},{{"apiVersion":"/v1","kind":"Secret"}}]}}"#
            )),
            [DocumentKind::SealedSecret, DocumentKind::Secret]
        );
        // Any object with `items`, whatever its kind, is a list.
        for list in [
            r#""apiVersion":"v1","kind":"ConfigMap""#,
            r#""apiVersion":"example.com/v1","kind":"Whatever""#,
            r#""apiVersion":"kseal.dev/v1alpha1","kind":"SealedSecret""#,
        ] {
            assert_eq!(
                kinds(&format!(r#"{{{list},"items":[{sealed}]}}"#)),
                [DocumentKind::SealedSecret],
                "{list}"
            );
        }
        // `items: null` is a list of nothing.
        assert_eq!(
            kinds(r#"{"apiVersion":"v1","kind":"List","items":null}"#),
            []
        );
        // An item naming neither apiVersion nor kind takes the list's, the
        // kind without `List`; one naming either keeps what it names.
        let text = r#"{"apiVersion":"/v1","kind":"SecretList","items":[{"metadata":{"name":"a"}},{"kind":"Secret"},{"apiVersion":"v1"},{"apiVersion":"","kind":5}]}"#;
        let objects = ManifestFile::new(text).objects().unwrap();
        assert_eq!(objects[0].kind, DocumentKind::Secret);
        assert_eq!(objects[0].value["apiVersion"], "/v1");
        assert_eq!(objects[0].value["kind"], "Secret");
        assert_eq!(objects[1].kind, other("", "Secret"));
        assert_eq!(objects[2].kind, other("v1", ""));
        assert_eq!(objects[3].kind, DocumentKind::Secret);
        assert_eq!(
            kinds(
                r#"{"apiVersion":"kseal.dev/v1alpha1","kind":"SealedSecretList","items":[{"metadata":{"name":"s"}}]}"#
            ),
            [DocumentKind::SealedSecret]
        );
        // `List` less `List` is no kind: kubectl refuses such an item.
        assert_eq!(
            kinds(r#"{"apiVersion":"v1","kind":"List","items":[{"metadata":{"name":"s"}}]}"#),
            [other("v1", "")]
        );
        // An `items` that is not a list (kubectl refuses the document).
        assert_eq!(
            kinds(r#"{"apiVersion":"v1","kind":"ConfigMap","items":{}}"#),
            [other("v1", "ConfigMap")]
        );
        // A SealedSecret in a list in a list: kubectl refuses it, so does kseal.
        let nested = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{{"apiVersion":"v1","kind":"ConfigMap","items":[{sealed}]}}]}}"#
        );
        let err = ManifestFile::new(&nested).objects().unwrap_err();
        assert!(err.message.contains("List inside a List"), "{err}");
    }

    /// An item that takes its kind from the list is edited in place, and
    /// keeps naming no kind: the text changes only where the value does.
    #[test]
    fn items_of_lists_are_edited_as_written() {
        let text = "apiVersion: /v1\nkind: List\nitems:\n- apiVersion: kseal.dev/v1alpha1\n  kind: SealedSecret\n  metadata: {name: a}\n  spec:\n    encryptedData:\n      k: OLD\n---\napiVersion: kseal.dev/v1alpha1\nkind: SealedSecretList\nitems:\n- metadata: {name: b}\n  spec:\n    encryptedData:\n      k: OLD # b\n";
        let mut file = ManifestFile::new(text);
        let objects = file.objects().unwrap();
        assert_eq!(objects.len(), 2);
        for object in &objects {
            assert_eq!(object.kind, DocumentKind::SealedSecret);
            file.set_encrypted_values(object, BTreeMap::from([("k".to_owned(), "NEW".to_owned())]));
        }
        assert_eq!(file.render().unwrap(), text.replace("OLD", "NEW"));
    }

    /// Values and their `spec.generated` records change together, in
    /// place; every other byte stays. Where the text cannot be edited in
    /// place (a record removed in JSON), the document is rendered anew and
    /// reads back as intended.
    #[test]
    fn generated_records_change_with_their_values() {
        let text = "# db\napiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db}\nspec:\n  encryptedData:\n    a: A # keep\n    b: B\n  scope: strict\n---\nkind: ConfigMap\n";
        let mut file = ManifestFile::new(text);
        let objects = file.objects().unwrap();
        file.set_encrypted_values(
            &objects[0],
            BTreeMap::from([
                ("b".to_owned(), "B2".to_owned()),
                ("c".to_owned(), "C".to_owned()),
            ]),
        );
        file.set_generated(
            &objects[0],
            BTreeMap::from([
                ("c".to_owned(), Some("hex:32".to_owned())),
                ("b".to_owned(), None),
            ]),
        );
        assert!(file.has_replacements());
        let rendered = file.render().unwrap();
        assert_eq!(
            rendered,
            text.replace(
                "    b: B\n",
                "    b: B2\n    c: C\n  generated:\n    c: hex:32\n"
            )
        );
        // Again: c replaced by a value of another form, b generated.
        let mut file = ManifestFile::new(&rendered);
        let objects = file.objects().unwrap();
        file.set_generated(
            &objects[0],
            BTreeMap::from([
                ("c".to_owned(), None),
                ("b".to_owned(), Some("uuid".to_owned())),
            ]),
        );
        assert_eq!(
            file.render().unwrap(),
            rendered.replace("    c: hex:32\n", "    b: uuid\n")
        );

        let json = "{\n  \"apiVersion\": \"kseal.dev/v1alpha1\",\n  \"kind\": \"SealedSecret\",\n  \"metadata\": {\"name\": \"db\"},\n  \"spec\": {\n    \"encryptedData\": {\"a\": \"A\", \"b\": \"B\"},\n    \"generated\": {\"a\": \"uuid\", \"b\": \"hex:1\"}\n  }\n}\n";
        let mut file = ManifestFile::new(json);
        let objects = file.objects().unwrap();
        file.set_generated(&objects[0], BTreeMap::from([("a".to_owned(), None)]));
        let again: Value = serde_json::from_str(&file.render().unwrap()).unwrap();
        assert_eq!(again["spec"]["generated"], json!({"b": "hex:1"}));
        assert_eq!(again["spec"]["encryptedData"], json!({"a": "A", "b": "B"}));
        let mut file = ManifestFile::new(json);
        file.set_generated(
            &objects[0],
            BTreeMap::from([("a".to_owned(), None), ("b".to_owned(), None)]),
        );
        let again: Value = serde_json::from_str(&file.render().unwrap()).unwrap();
        assert!(again["spec"].get("generated").is_none(), "{again}");
    }

    #[test]
    fn long_strings_stay_on_one_line() {
        let long = format!("kseal:v1:{}", "A".repeat(300));
        let yaml = to_yaml(&json!({"k": long})).unwrap();
        assert_eq!(yaml.lines().count(), 1, "{yaml}");
    }

    /// Shapes the text editor misjudges never put a value outside
    /// `encryptedData` or break the document: the edit is checked by
    /// reading it back, and the document re-rendered when it differs.
    #[test]
    fn edits_read_back_as_the_intended_object() {
        let shapes = [
            // A flow mapping closed on its last entry's line.
            "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec:\n  encryptedData: {\n    password: V}\n  scope: strict\n",
            // A flow mapping closed on a line of its own, no trailing comma.
            "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec:\n  encryptedData: {\n    password: V\n  }\n  scope: strict\n",
            // The ordinary block shape, edited in place.
            "apiVersion: kseal.dev/v1alpha1\nkind: SealedSecret\nmetadata: {name: db, namespace: prod}\nspec:\n  # values\n  encryptedData:\n    password: V\n  scope: strict\n",
        ];
        for text in shapes {
            let mut file = ManifestFile::new(text);
            let objects = file.objects().unwrap();
            file.set_encrypted_values(
                &objects[0],
                BTreeMap::from([("user".to_owned(), "U".to_owned())]),
            );
            let rendered = file.render().unwrap();
            let again = ManifestFile::new(&rendered).objects().unwrap();
            let spec = &again[0].value["spec"];
            assert_eq!(spec["encryptedData"]["user"], "U", "{rendered}");
            assert_eq!(spec["encryptedData"]["password"], "V", "{rendered}");
            assert!(spec.get("user").is_none(), "{rendered}");
            assert_eq!(spec["scope"], "strict", "{rendered}");
        }
        // The block shape keeps its comment: the edit was surgical.
        let mut file = ManifestFile::new(shapes[2]);
        let objects = file.objects().unwrap();
        file.set_encrypted_values(
            &objects[0],
            BTreeMap::from([("user".to_owned(), "U".to_owned())]),
        );
        assert!(file.render().unwrap().contains("  # values\n"));
    }
}
