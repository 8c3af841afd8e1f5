//! Splitting a manifest file into documents while keeping every byte of the
//! documents that are not rewritten.
//!
//! YAML forbids `---` (and `...`) followed by white space or end of line at
//! column 0 inside content, so a line-based split finds exactly the document
//! boundaries; like kubectl's splitter, `---` directly followed by `#` is one
//! too. A JSON file holds one value (an object, possibly a `List`), or for
//! [`parse_json_stream`] several concatenated ones, as kubectl reads them.

use serde_json::Value;

use super::ManifestError;

/// Kubernetes' own limit on a request body is 3 MiB; a manifest file with
/// many documents may be larger, but a single document above this is refused.
pub const MAX_DOCUMENT_LEN: usize = 16 * 1024 * 1024;

/// How a file's documents are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// YAML, one or more `---`-separated documents.
    Yaml,
    /// One JSON value.
    Json,
}

impl SourceFormat {
    /// JSON when the first non-blank character opens an object or array.
    pub fn detect(text: &str) -> Self {
        match text.trim_start().as_bytes().first() {
            Some(b'{') | Some(b'[') => SourceFormat::Json,
            _ => SourceFormat::Yaml,
        }
    }
}

/// One document of a file, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawDocument {
    /// 1-based position among the file's non-empty documents.
    pub index: usize,
    /// 1-based line of the document's first line in the file.
    pub first_line: usize,
    /// The `---` line that opened it (with its newline), or empty.
    pub separator: String,
    /// The document's text, without the separator.
    pub text: String,
    /// Whether the document holds nothing but comments and blank lines.
    pub empty: bool,
}

impl RawDocument {
    /// Leading comment lines, kept when the document is rewritten.
    pub fn leading_comments(&self) -> &str {
        let mut end = 0;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                end += line.len();
            } else {
                break;
            }
        }
        &self.text[..end]
    }
}

/// kubectl's YAML reader splits at a line starting with `---` followed by
/// end of line, white space or a comment (`---# note` included, which YAML
/// itself would not take for a marker): splitting there too keeps kseal's
/// documents kubectl's.
fn is_document_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n', '#']))
}

fn is_blank_or_comment(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "..."
    })
}

/// Splits YAML text into documents. Concatenating every document's
/// `separator` and `text` gives back the input exactly.
pub fn split_yaml(text: &str) -> Vec<RawDocument> {
    let mut documents = Vec::new();
    let mut separator = String::new();
    let mut body = String::new();
    let mut first_line = 1;
    let mut line_number = 0;
    for line in text.split_inclusive('\n') {
        line_number += 1;
        if is_document_marker(line, "---") {
            push_document(&mut documents, separator, body, first_line);
            // `--- {kind: Secret, …}`: a document may start on the marker's
            // own line; that content belongs to it, not to the separator.
            let rest = &line[3..];
            let content = rest.trim_start_matches([' ', '\t']);
            let inline = !content.trim().is_empty() && !content.starts_with('#');
            if inline {
                separator = line[..line.len() - content.len()].to_owned();
                body = content.to_owned();
                first_line = line_number;
            } else {
                separator = line.to_owned();
                body = String::new();
                first_line = line_number + 1;
            }
        } else {
            body.push_str(line);
        }
    }
    push_document(&mut documents, separator, body, first_line);
    let mut index = 0;
    for document in &mut documents {
        if !document.empty {
            index += 1;
            document.index = index;
        }
    }
    documents
}

fn push_document(out: &mut Vec<RawDocument>, separator: String, text: String, first_line: usize) {
    if separator.is_empty() && text.is_empty() {
        return;
    }
    let empty = is_blank_or_comment(&text);
    out.push(RawDocument {
        index: 0,
        first_line,
        separator,
        text,
        empty,
    });
}

/// Parses one YAML document into a generic value. Errors carry the line in
/// the file and never quote the document's content.
pub fn parse_yaml_document(document: &RawDocument) -> Result<Value, ManifestError> {
    if document.text.len() > MAX_DOCUMENT_LEN {
        return Err(ManifestError::at(document, None, "document too large"));
    }
    crate::yaml::from_str::<Value>(&document.text).map_err(|err| {
        let line = err
            .location()
            .map(|location| document.first_line + location.line().saturating_sub(1) as usize);
        ManifestError::at(document, line, yaml_error_message(&err))
    })
}

/// Where a YAML document reads differently under YAML 1.1's booleans
/// (`yes`, `no`, `on`, `off`, `y`, `n` unquoted), which kubectl uses (its
/// YAML library is YAML 1.1): the path of the first such value (a key or a
/// value), e.g. `stringData.enabled`. kseal reads YAML 1.2, where these are
/// strings; a Secret where the two differ would be stored differently (or
/// refused) by kubectl, so `seal` refuses it and asks for quotes.
///
/// Only the top-level `fields` given are compared (all when empty).
pub fn yaml11_boolean_path(
    document: &RawDocument,
    item: Option<usize>,
    value: &Value,
    fields: &[&str],
) -> Option<String> {
    // The same limits, read as kubectl reads it.
    let mut options = crate::yaml::options();
    options.strict_booleans = false;
    let mut legacy = serde_saphyr::from_str_with_options::<Value>(&document.text, options).ok()?;
    let other = match item {
        None => Some(&legacy),
        Some(item) => legacy.get("items").and_then(|items| items.get(item)),
    };
    let path = other.and_then(|other| {
        if fields.is_empty() {
            return first_difference(value, other, String::new());
        }
        fields
            .iter()
            .find_map(|field| match (value.get(field), other.get(field)) {
                (Some(a), Some(b)) => first_difference(a, b, (*field).to_owned()),
                (None, None) => None,
                _ => Some((*field).to_owned()),
            })
    });
    super::plain_secret::scrub(&mut legacy);
    path
}

fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => {
                        if let Some(found) = first_difference(value, other, join(key)) {
                            return Some(found);
                        }
                    }
                    None => return Some(join(key)),
                }
            }
            b.keys()
                .find(|key| !a.contains_key(*key))
                .map(|key| join(key))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, join(&i.to_string()))),
        (a, b) if a == b => None,
        _ => Some(path),
    }
}

/// The first line of serde-saphyr's message without its `line N column M:`
/// prefix (the caller reports the line relative to the file).
fn yaml_error_message(err: &serde_saphyr::Error) -> String {
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let without_position = match first.find(": ") {
        Some(at) if first.starts_with("line ") => &first[at + 2..],
        _ => first,
    };
    format!("invalid YAML: {without_position}")
}

/// Parses a JSON document; errors carry the line.
pub fn parse_json(text: &str) -> Result<Value, ManifestError> {
    if text.len() > MAX_DOCUMENT_LEN {
        return Err(ManifestError {
            document: 1,
            line: None,
            message: "document too large".into(),
        });
    }
    serde_json::from_str(text).map_err(|err| ManifestError {
        document: 1,
        line: Some(err.line()),
        message: format!("invalid JSON: {}", json_error_message(&err)),
    })
}

/// Parses a JSON stream: one or more concatenated values (JSON Lines, or
/// objects merely written one after the other), each with the 1-based line
/// it starts on. kubectl's decoder reads such a file value by value and
/// applies each, so a gate must see each. Errors name the value (as the
/// document) and the line.
pub fn parse_json_stream(text: &str) -> Result<Vec<(usize, Value)>, ManifestError> {
    if text.len() > MAX_DOCUMENT_LEN {
        return Err(ManifestError {
            document: 1,
            line: None,
            message: "document too large".into(),
        });
    }
    let mut values = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut start = 0;
    while let Some(next) = stream.next() {
        let value = next.map_err(|err| ManifestError {
            document: values.len() + 1,
            line: Some(err.line()),
            message: format!("invalid JSON: {}", json_error_message(&err)),
        })?;
        // The value starts after the white space that follows the previous.
        let skipped = text[start..].len() - text[start..].trim_start().len();
        let line = 1 + text[..start + skipped].matches('\n').count();
        values.push((line, value));
        start = stream.byte_offset();
    }
    Ok(values)
}

fn json_error_message(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Io => "read error".into(),
        // serde_json's syntax messages are fixed texts ("expected value",
        // "recursion limit exceeded", …) that never quote the input; drop
        // the position, which the caller reports.
        Category::Syntax => {
            let message = err.to_string();
            match message.rfind(" at line ") {
                Some(at) => message[..at].to_owned(),
                None => "syntax error".into(),
            }
        }
        // Data errors may quote a value ("invalid type: string \"…\"").
        Category::Data => "unexpected data".into(),
        Category::Eof => "unexpected end of input".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(documents: &[RawDocument]) -> String {
        documents
            .iter()
            .map(|d| format!("{}{}", d.separator, d.text))
            .collect()
    }

    #[test]
    fn split_keeps_every_byte() {
        let text = "# head\na: 1\n---\nb: 2\n--- # c\n\n---\nc: |\n  ---x\n  text\n...\n";
        let documents = split_yaml(text);
        assert_eq!(join(&documents), text);
        let non_empty: Vec<_> = documents.iter().filter(|d| !d.empty).collect();
        assert_eq!(non_empty.len(), 3);
        assert_eq!(non_empty[1].first_line, 4);
        assert_eq!(non_empty[2].index, 3);
        assert_eq!(non_empty[2].first_line, 8);
    }

    #[test]
    fn marker_needs_column_zero_and_a_break() {
        assert_eq!(split_yaml("a: 1\n ---\nb: ---x\n---x: 1\n").len(), 1);
    }

    /// kubectl (1.36) splits at `---#`; `---x` makes it refuse the file,
    /// and is no split here either.
    #[test]
    fn a_comment_right_after_the_marker_splits() {
        let text = "a: 1\n---# note\nkind: Secret\n---#\r\nb: 2\n";
        let documents = split_yaml(text);
        assert_eq!(join(&documents), text);
        let non_empty: Vec<_> = documents.iter().filter(|d| !d.empty).collect();
        assert_eq!(non_empty.len(), 3);
        assert_eq!(non_empty[1].text, "kind: Secret\n");
        assert_eq!(non_empty[1].first_line, 3);
        assert_eq!(non_empty[1].separator, "---# note\n");
    }

    #[test]
    fn a_json_stream_is_read_value_by_value() {
        let text = "{\"kind\": \"ConfigMap\"}\n\n  {\"kind\":\n \"Secret\"}{\"a\": 1}\n";
        let values = parse_json_stream(text).unwrap();
        let lines: Vec<_> = values.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 3, 4]);
        assert_eq!(values[1].1["kind"], "Secret");
        let err = parse_json_stream("{\"a\": 1}\n{\"b\": hunter2}\n").unwrap_err();
        assert_eq!((err.document, err.line), (2, Some(2)));
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn yaml_errors_name_the_file_line_without_content() {
        let documents = split_yaml("a: 1\n---\nkind: Secret\ndata:\n  k: [hunter2\n");
        let err = parse_yaml_document(&documents[1]).unwrap_err();
        assert_eq!(err.document, 2);
        assert!(err.line.is_some_and(|line| line >= 5), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn detects_json() {
        assert_eq!(SourceFormat::detect("  {\"a\":1}"), SourceFormat::Json);
        assert_eq!(SourceFormat::detect("a: 1"), SourceFormat::Yaml);
    }
}
