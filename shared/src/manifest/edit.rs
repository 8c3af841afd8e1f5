//! Surgical edits of sealed values in a document's text.
//!
//! `--merge-into`, `rewrap --in-place` and `regenerate` change values under
//! `spec.encryptedData`, and `--merge-into` the record of generated values
//! under `spec.generated` and the fields `spec.maxAge` and `spec.rollout`. Rewriting the whole document would lose the user's
//! comments, blank lines, key order and quoting; instead the parser's byte
//! spans locate each value, and only that value's text is replaced (a new key
//! is inserted after the mapping's last entry, in the same indentation or,
//! in JSON, as one more member). Every other byte stays. When the text is
//! not in a shape this can edit with certainty (aliases, block scalars,
//! escapes, an empty mapping, …), [`edit_encrypted_data`] returns `None` and
//! the caller re-renders the document.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// A document, or an item of a `List`, down to `spec.encryptedData`.
#[derive(Deserialize)]
struct Object {
    #[serde(default)]
    spec: Option<Spec>,
    #[serde(default)]
    items: Option<Vec<Object>>,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(rename = "encryptedData", default)]
    encrypted_data: Option<Spanned<Entries>>,
}

/// The entries of a mapping in text order, each with its spans.
struct Entries(Vec<(Spanned<String>, Spanned<String>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

/// A scalar as written: the whole token (quotes included) and its quote.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    range: Range<usize>,
    quote: Option<char>,
}

/// Finds the token of a scalar whose parsed value is `value` at `span`;
/// `None` unless the text is exactly the value, plain or in quotes without
/// escapes (so replacing it cannot change anything else).
fn token(text: &str, spanned: &Spanned<String>) -> Option<Token> {
    if spanned.referenced != spanned.defined {
        return None; // an alias or merge key: the text is elsewhere
    }
    let span = spanned.referenced.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let end = start.checked_add(usize::try_from(span.byte_len()?).ok()?)?;
    let raw = text.get(start..end)?;
    let value = spanned.value.as_str();
    for quote in ['"', '\''] {
        // The span may or may not include the quotes.
        if let Some(inner) = raw
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
            && raw.len() >= 2
        {
            return (inner == value && !inner.contains(['\\', quote, '\n'])).then_some(Token {
                range: start..end,
                quote: Some(quote),
            });
        }
        if text[..start].ends_with(quote) && text[end..].starts_with(quote) {
            return (raw == value && !raw.contains(['\\', quote, '\n'])).then_some(Token {
                range: start - 1..end + 1,
                quote: Some(quote),
            });
        }
    }
    (raw == value && !value.is_empty() && !raw.contains(['\n', '#', '"', '\''])).then_some(Token {
        range: start..end,
        quote: None,
    })
}

fn render_scalar(value: &str, quote: Option<char>) -> String {
    match quote {
        Some(quote) => format!("{quote}{value}{quote}"),
        None => value.to_owned(),
    }
}

/// Whether a data key can be written as a plain YAML scalar and read back as
/// the same string (not a number, boolean or null in YAML 1.1 or 1.2).
fn plain_key_is_safe(key: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~",
    ];
    key.as_bytes()
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !SPECIAL.contains(&key.to_ascii_lowercase().as_str())
}

/// Where a line starts: the byte after the `\n` before `at`, or 0.
fn line_start(text: &str, at: usize) -> usize {
    text[..at].rfind('\n').map_or(0, |at| at + 1)
}

/// Where the text of the line holding `at` ends (before `\r\n` or `\n`),
/// and the line end the file uses there; `None` on the last line without a
/// line end.
fn line_end(text: &str, at: usize) -> Option<(usize, &'static str)> {
    let end = text[at..].find('\n').map(|found| at + found)?;
    if text[..end].ends_with('\r') {
        Some((end - 1, "\r\n"))
    } else {
        Some((end, "\n"))
    }
}

/// The indentation before a token that starts its line (spaces only, as a
/// block mapping's keys are); `None` when anything else precedes it.
fn block_indent(text: &str, token: &Token) -> Option<String> {
    let indent = &text[line_start(text, token.range.start)..token.range.start];
    indent.chars().all(|c| c == ' ').then(|| indent.to_owned())
}

/// The range that removes the lines from the one holding `first` to the
/// one holding `last`: from the end of the previous line's text to the end
/// of the last line's, so the last line's line end closes the previous
/// line and text inserted at the end of the last line still follows it.
fn lines_range(text: &str, first: &Token, last: &Token) -> Option<Range<usize>> {
    let start = line_start(text, first.range.start).checked_sub(1)?;
    let start = if text[..start].ends_with('\r') {
        start - 1
    } else {
        start
    };
    let (end, _) = line_end(text, last.range.end)?;
    Some(start..end)
}

/// A data key as a YAML block mapping key.
fn yaml_key(key: &str) -> String {
    if plain_key_is_safe(key) {
        key.to_owned()
    } else {
        format!("\"{key}\"")
    }
}

/// The text edits that set `changes` in one mapping (`Some`: add or
/// replace the entry's value; `None`: remove the entry) of `text`, whose
/// entries are `entries`. Values and keys contain nothing that needs
/// escaping. `None` when the text cannot be edited with certainty: a shape
/// not handled here (an empty or flow mapping, quoting with escapes), a
/// removal in JSON, or a mapping left empty.
fn entry_edits(
    text: &str,
    entries: &[(Spanned<String>, Spanned<String>)],
    changes: &BTreeMap<String, Option<String>>,
    json: bool,
) -> Option<Vec<(Range<usize>, String)>> {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut last: Option<(Token, Token)> = None;
    let mut kept = 0;
    for (key, value) in entries {
        let key_token = token(text, key)?;
        let value_token = token(text, value)?;
        match changes.get(&key.value) {
            Some(Some(new)) => {
                edits.push((
                    value_token.range.clone(),
                    render_scalar(new, value_token.quote),
                ));
                kept += 1;
            }
            Some(None) => {
                // Whole lines, in a block mapping only.
                if json {
                    return None;
                }
                block_indent(text, &key_token)?;
                edits.push((lines_range(text, &key_token, &value_token)?, String::new()));
            }
            None => kept += 1,
        }
        if last
            .as_ref()
            .is_none_or(|(_, v)| v.range.end < value_token.range.end)
        {
            last = Some((key_token, value_token));
        }
    }
    let added: Vec<(&String, &String)> = changes
        .iter()
        .filter_map(|(key, value)| Some((key, value.as_ref()?)))
        .filter(|(key, _)| !entries.iter().any(|(k, _)| &k.value == *key))
        .collect();
    if kept + added.len() == 0 {
        return None;
    }
    if !added.is_empty() {
        let (last_key, last_value) = last?;
        let indent = &text[line_start(text, last_key.range.start)..last_key.range.start];
        let after = last_value.range.end;
        let mut insertion = String::new();
        if json {
            // One more member after the last: `,` + newline + same indent.
            if !indent.chars().all(|c| c == ' ' || c == '\t') {
                return None;
            }
            for (key, value) in &added {
                insertion.push_str(&format!(",\n{indent}\"{key}\": \"{value}\""));
            }
            edits.push((after..after, insertion));
        } else {
            // A block mapping: each entry on its own line, at the same
            // indentation, after the last entry's line (its comment kept).
            let indent = block_indent(text, &last_key)?;
            // Keep the file's line ends: CRLF files get CRLF lines.
            let (line_end, newline) = line_end(text, after)?;
            for (key, value) in &added {
                let value = render_scalar(value, last_value.quote);
                insertion.push_str(&format!("{newline}{indent}{}: {value}", yaml_key(key)));
            }
            edits.push((line_end..line_end, insertion));
        }
    }
    Some(edits)
}

/// `text` with `edits` (ranges that do not overlap) applied.
fn apply(text: &str, mut edits: Vec<(Range<usize>, String)>) -> Option<String> {
    edits.sort_by_key(|(range, _)| (range.start, range.end));
    let mut out = String::with_capacity(text.len() + 256);
    let mut at = 0;
    for (range, replacement) in edits {
        if range.start < at {
            return None;
        }
        out.push_str(&text[at..range.start]);
        out.push_str(&replacement);
        at = range.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Sets `changes` (data key → new sealed value) in the `spec.encryptedData`
/// of the object at `item` (`None`: the document itself; `Some(i)`: item
/// `i` of a `List`) of one document's `text`, changing no other byte.
/// Sealed values and data keys contain no character that needs escaping.
/// Returns `None` when the text cannot be edited with certainty.
pub(crate) fn edit_encrypted_data(
    text: &str,
    item: Option<usize>,
    changes: &BTreeMap<String, String>,
    json: bool,
) -> Option<String> {
    let object: Object = crate::yaml::from_str(text).ok()?;
    let object = match item {
        None => object,
        Some(item) => object.items?.into_iter().nth(item)?,
    };
    let mapping = object.spec?.encrypted_data?;
    let changes: BTreeMap<String, Option<String>> = changes
        .iter()
        .map(|(key, value)| (key.clone(), Some(value.clone())))
        .collect();
    apply(text, entry_edits(text, &mapping.value.0, &changes, json)?)
}

/// A document, or an item of a `List`, down to the keys of `spec`.
#[derive(Deserialize)]
struct SpecObject {
    #[serde(default)]
    spec: Option<SpecKeys>,
    #[serde(default)]
    items: Option<Vec<SpecObject>>,
}

/// A mapping of strings under a key of `spec`, with the key's span.
type KeyedEntries = (Spanned<String>, Entries);

/// The two mappings of `spec` kseal edits, each with its key.
#[derive(Default)]
struct SpecKeys {
    encrypted_data: Option<KeyedEntries>,
    generated: Option<KeyedEntries>,
}

impl<'de> Deserialize<'de> for SpecKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;
        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = SpecKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpecKeys, A::Error> {
                let mut spec = SpecKeys::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        "encryptedData" => spec.encrypted_data = Some((key, map.next_value()?)),
                        "generated" => spec.generated = Some((key, map.next_value()?)),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(spec)
            }
        }
        deserializer.deserialize_map(SpecVisitor)
    }
}

/// Sets `changes` in the `spec.generated` of the object at `item` (as for
/// [`edit_encrypted_data`]) of one document's `text`: `Some(spec)` records
/// how a data key's value was generated, `None` removes the record. Every
/// other byte stays. A record left empty is removed with its key, and a
/// first record starts a `generated:` mapping after `encryptedData`'s last
/// entry (YAML block mappings only). Returns `None` when the text cannot
/// be edited with certainty.
pub(crate) fn edit_generated(
    text: &str,
    item: Option<usize>,
    changes: &BTreeMap<String, Option<String>>,
    json: bool,
) -> Option<String> {
    let object: SpecObject = crate::yaml::from_str(text).ok()?;
    let object = match item {
        None => object,
        Some(item) => object.items?.into_iter().nth(item)?,
    };
    let spec = object.spec?;
    match spec.generated {
        Some((key, entries)) => {
            let records = &entries.0;
            let removed_all = records
                .iter()
                .all(|(k, _)| matches!(changes.get(&k.value), Some(None)));
            let added = changes
                .iter()
                .any(|(k, v)| v.is_some() && !records.iter().any(|(r, _)| &r.value == k));
            if removed_all && !added && !json {
                // The last records go: so does `generated:`, with its lines.
                let key_token = token(text, &key)?;
                block_indent(text, &key_token)?;
                let last = records
                    .iter()
                    .filter_map(|(_, value)| token(text, value))
                    .max_by_key(|token| token.range.end)?;
                apply(
                    text,
                    vec![(lines_range(text, &key_token, &last)?, String::new())],
                )
            } else {
                apply(text, entry_edits(text, records, changes, json)?)
            }
        }
        None => {
            let added: Vec<(&String, &String)> = changes
                .iter()
                .filter_map(|(key, value)| Some((key, value.as_ref()?)))
                .collect();
            if added.is_empty() {
                return Some(text.to_owned());
            }
            if json {
                return None;
            }
            // After encryptedData's last entry, at its key's indentation;
            // the records at its entries' indentation.
            let (data_key, data) = spec.encrypted_data?;
            let spec_indent = block_indent(text, &token(text, &data_key)?)?;
            let mut entry_indent = None;
            let mut last: Option<Token> = None;
            for (key, value) in &data.0 {
                let key_token = token(text, key)?;
                entry_indent.get_or_insert(block_indent(text, &key_token)?);
                let value_token = token(text, value)?;
                if last
                    .as_ref()
                    .is_none_or(|v| v.range.end < value_token.range.end)
                {
                    last = Some(value_token);
                }
            }
            let entry_indent = entry_indent?;
            if entry_indent.len() <= spec_indent.len() {
                return None;
            }
            let (at, newline) = line_end(text, last?.range.end)?;
            let mut insertion = format!("{newline}{spec_indent}generated:");
            for (key, value) in added {
                insertion.push_str(&format!(
                    "{newline}{entry_indent}{}: {value}",
                    yaml_key(key)
                ));
            }
            apply(text, vec![(at..at, insertion)])
        }
    }
}

/// A document, or an item of a `List`, down to the keys of `spec` that
/// [`edit_spec_fields`] reads.
#[derive(Deserialize)]
struct FieldsObject {
    #[serde(default)]
    spec: Option<SpecFields>,
    #[serde(default)]
    items: Option<Vec<FieldsObject>>,
}

/// A scalar entry of `spec`: its key and its value, with their spans.
type ScalarEntry = (Spanned<String>, Spanned<String>);

/// The string fields of `spec` [`edit_spec_fields`] sets, and the mapping
/// a new field may follow. A field of another shape (a mapping) fails the
/// parse, and the document is rendered anew.
#[derive(Default)]
struct SpecFields {
    encrypted_data: Option<KeyedEntries>,
    max_age: Option<ScalarEntry>,
    rollout: Option<ScalarEntry>,
}

impl<'de> Deserialize<'de> for SpecFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = SpecFields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpecFields, A::Error> {
                let mut spec = SpecFields::default();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    match key.value.as_str() {
                        "encryptedData" => spec.encrypted_data = Some((key, map.next_value()?)),
                        "maxAge" => spec.max_age = Some((key, map.next_value()?)),
                        "rollout" => spec.rollout = Some((key, map.next_value()?)),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(spec)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

/// Whether kseal writes field `a` of `spec` before field `b`.
fn written_before(a: &str, b: &str) -> bool {
    const ORDER: [&str; 4] = ["encryptedData", "maxAge", "rollout", "generated"];
    let rank = |field: &str| ORDER.iter().position(|known| *known == field);
    matches!((rank(a), rank(b)), (Some(a), Some(b)) if a < b)
}

/// Where a line can be added after a key of `spec` and what belongs to it:
/// the key's name, its token, and the token its text ends with (its value,
/// or its mapping's last value).
struct Anchor {
    name: &'static str,
    key: Token,
    end: Token,
}

/// Sets `fields` (`maxAge` or `rollout` → a string value) in the `spec` of
/// the object at `item` (as for [`edit_encrypted_data`]) of one document's
/// `text`: a field present has its value's text replaced; a field missing
/// is added on a line of its own at `spec`'s indentation, after the last
/// of the fields kseal writes before it (`encryptedData`, `maxAge`,
/// `rollout`, `generated`, in that order) that the document has (YAML
/// block mappings only).
/// Every other byte stays. The values contain nothing that needs quoting.
/// Returns `None` when the text cannot be edited with certainty (another
/// field, a flow mapping, an addition to JSON, …).
pub(crate) fn edit_spec_fields(
    text: &str,
    item: Option<usize>,
    fields: &BTreeMap<String, String>,
    json: bool,
) -> Option<String> {
    let object: FieldsObject = crate::yaml::from_str(text).ok()?;
    let object = match item {
        None => object,
        Some(item) => object.items?.into_iter().nth(item)?,
    };
    let spec = object.spec?;
    let mut anchors: Vec<Anchor> = Vec::new();
    if let Some((key, entries)) = &spec.encrypted_data {
        let key = token(text, key)?;
        let mut end: Option<Token> = None;
        for (entry_key, value) in &entries.0 {
            let entry_key = token(text, entry_key)?;
            let value = token(text, value)?;
            // A block mapping, its entries deeper than its key.
            if json || block_indent(text, &entry_key)?.len() <= block_indent(text, &key)?.len() {
                end = None;
                break;
            }
            if end
                .as_ref()
                .is_none_or(|end| end.range.end < value.range.end)
            {
                end = Some(value);
            }
        }
        if let Some(end) = end {
            anchors.push(Anchor {
                name: "encryptedData",
                key,
                end,
            });
        }
    }
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut added: Vec<(&str, &String)> = Vec::new();
    for (name, entry) in [("maxAge", &spec.max_age), ("rollout", &spec.rollout)] {
        let wanted = fields.get(name);
        match entry {
            Some((key, value)) => {
                let key = token(text, key)?;
                let value = token(text, value)?;
                if let Some(wanted) = wanted {
                    let quote = value.quote.or(json.then_some('"'));
                    edits.push((value.range.clone(), render_scalar(wanted, quote)));
                }
                anchors.push(Anchor {
                    name,
                    key,
                    end: value,
                });
            }
            None => {
                if let Some(wanted) = wanted {
                    added.push((name, wanted));
                }
            }
        }
    }
    // Only the fields this knows.
    if fields
        .keys()
        .any(|field| !matches!(field.as_str(), "maxAge" | "rollout"))
    {
        return None;
    }
    for (name, value) in added {
        if json {
            return None;
        }
        let anchor = anchors
            .iter()
            .filter(|anchor| written_before(anchor.name, name))
            .max_by_key(|anchor| anchor.end.range.end)?;
        let indent = block_indent(text, &anchor.key)?;
        let (at, newline) = line_end(text, anchor.end.range.end)?;
        edits.push((at..at, format!("{newline}{indent}{name}: {value}")));
    }
    apply(text, edits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn records(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect()
    }

    const WITH_RECORDS: &str = "spec:\n  encryptedData:\n    a: kseal:v2:a\n    b: kseal:v2:b # b\n    c: kseal:v2:c\n  # how\n  generated:\n    a: hex:32 # first\n    c: \"uuid\"\n  scope: strict\n";

    #[test]
    fn generated_records_are_replaced_added_and_removed_by_line() {
        let edited = edit_generated(
            WITH_RECORDS,
            None,
            &records(&[("a", Some("alnum:8")), ("b", Some("base64:16"))]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            WITH_RECORDS
                .replace("a: hex:32 # first", "a: alnum:8 # first")
                .replace("c: \"uuid\"\n", "c: \"uuid\"\n    b: \"base64:16\"\n")
        );
        let edited = edit_generated(WITH_RECORDS, None, &records(&[("a", None)]), false).unwrap();
        assert_eq!(edited, WITH_RECORDS.replace("    a: hex:32 # first\n", ""));
        // The last one removed while another is added: the addition stays
        // in the mapping.
        let edited = edit_generated(
            WITH_RECORDS,
            None,
            &records(&[("c", None), ("b", Some("uuid"))]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            WITH_RECORDS.replace("    c: \"uuid\"\n", "    b: \"uuid\"\n")
        );
        // Every record removed: `generated:` goes too (its comment above stays).
        let edited = edit_generated(
            WITH_RECORDS,
            None,
            &records(&[("a", None), ("c", None), ("z", None)]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            WITH_RECORDS.replace("  generated:\n    a: hex:32 # first\n    c: \"uuid\"\n", "")
        );
        // Nothing to do.
        assert_eq!(
            edit_generated(WITH_RECORDS, None, &records(&[("z", None)]), false).unwrap(),
            WITH_RECORDS
        );
    }

    #[test]
    fn a_first_record_starts_the_mapping_after_encrypted_data() {
        let text = "spec:\r\n  encryptedData:\r\n    a: kseal:v2:a\r\n    \"0\": kseal:v2:0 # zero\r\n  scope: strict\r\n";
        let edited = edit_generated(
            text,
            None,
            &records(&[("0", Some("hex:4")), ("a", Some("uuid")), ("x", None)]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            "spec:\r\n  encryptedData:\r\n    a: kseal:v2:a\r\n    \"0\": kseal:v2:0 # zero\r\n  generated:\r\n    \"0\": hex:4\r\n    a: uuid\r\n  scope: strict\r\n"
        );
        // In a list item.
        let text = "items:\n- spec:\n    encryptedData:\n      a: kseal:v2:a\n- spec:\n    encryptedData:\n      a: kseal:v2:a\n";
        let edited =
            edit_generated(text, Some(1), &records(&[("a", Some("uuid"))]), false).unwrap();
        assert_eq!(edited, format!("{text}    generated:\n      a: uuid\n"));
    }

    #[test]
    fn json_records_are_replaced_and_added_but_not_removed() {
        let text = "{\n  \"spec\": {\n    \"encryptedData\": {\n      \"a\": \"kseal:v2:a\"\n    },\n    \"generated\": {\n      \"a\": \"hex:2\"\n    }\n  }\n}\n";
        let edited = edit_generated(
            text,
            None,
            &records(&[("a", Some("uuid")), ("b", Some("hex:1"))]),
            true,
        )
        .unwrap();
        assert_eq!(
            edited,
            text.replace("\"hex:2\"", "\"uuid\",\n      \"b\": \"hex:1\"")
        );
        assert_eq!(
            edit_generated(text, None, &records(&[("a", None)]), true),
            None
        );
        let without = "{\n  \"spec\": {\n    \"encryptedData\": {\n      \"a\": \"kseal:v2:a\"\n    }\n  }\n}\n";
        assert_eq!(
            edit_generated(without, None, &records(&[("a", Some("uuid"))]), true),
            None
        );
    }

    #[test]
    fn replaces_only_the_value() {
        let text = "# top\nspec:\n  # above\n  encryptedData:\n    # above a\n    a: kseal:v1:old # trailing\n\n    'b': \"kseal:v1:b\"\n  scope: strict\n# end\n";
        let edited =
            edit_encrypted_data(text, None, &changes(&[("a", "kseal:v1:NEW")]), false).unwrap();
        assert_eq!(edited, text.replace("kseal:v1:old", "kseal:v1:NEW"));
        let edited =
            edit_encrypted_data(text, None, &changes(&[("b", "kseal:v1:NEW")]), false).unwrap();
        assert_eq!(edited, text.replace("\"kseal:v1:b\"", "\"kseal:v1:NEW\""));
    }

    #[test]
    fn adds_after_the_last_entry() {
        let text = "spec:\n  encryptedData:\n    a: kseal:v1:a # c\n    # after\n  scope: strict\n";
        let edited = edit_encrypted_data(
            text,
            None,
            &changes(&[("z", "kseal:v1:z"), ("1", "kseal:v1:1")]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            "spec:\n  encryptedData:\n    a: kseal:v1:a # c\n    \"1\": kseal:v1:1\n    z: kseal:v1:z\n    # after\n  scope: strict\n"
        );
    }

    #[test]
    fn crlf_files_get_crlf_lines() {
        let text = "spec:\r\n  encryptedData:\r\n    a: kseal:v1:a\r\n  scope: strict\r\n";
        let edited = edit_encrypted_data(
            text,
            None,
            &changes(&[("a", "kseal:v1:A"), ("b", "kseal:v1:b")]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            "spec:\r\n  encryptedData:\r\n    a: kseal:v1:A\r\n    b: kseal:v1:b\r\n  scope: strict\r\n"
        );
    }

    #[test]
    fn json_members() {
        let text = "{\n  \"spec\": {\n    \"encryptedData\": {\n      \"a\": \"kseal:v1:a\"\n    }\n  }\n}\n";
        let edited = edit_encrypted_data(
            text,
            None,
            &changes(&[("a", "kseal:v1:A"), ("b", "kseal:v1:b")]),
            true,
        )
        .unwrap();
        assert_eq!(
            edited,
            "{\n  \"spec\": {\n    \"encryptedData\": {\n      \"a\": \"kseal:v1:A\",\n      \"b\": \"kseal:v1:b\"\n    }\n  }\n}\n"
        );
    }

    #[test]
    fn list_items() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- spec:\n    encryptedData:\n      a: kseal:v1:a\n- spec:\n    encryptedData:\n      a: kseal:v1:a # second\n";
        let edited =
            edit_encrypted_data(text, Some(1), &changes(&[("a", "kseal:v1:X")]), false).unwrap();
        assert_eq!(
            edited,
            text.replace("kseal:v1:a # second", "kseal:v1:X # second")
        );
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        changes(pairs)
    }

    #[test]
    fn spec_fields_are_replaced_in_place_or_added_in_order() {
        // Replaced: only the value's text, quotes and comments kept.
        let text = "spec:\n  encryptedData:\n    a: kseal:v2:a\n  maxAge: \"30d\" # rule\n  rollout: AllConsumers\n  scope: strict\n";
        let edited = edit_spec_fields(
            text,
            None,
            &fields(&[("maxAge", "90d"), ("rollout", "EnvConsumers")]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            text.replace("\"30d\"", "\"90d\"")
                .replace("AllConsumers", "EnvConsumers")
        );
        // Added: after encryptedData (not generated), maxAge before
        // rollout, in the file's line ends.
        let text = "spec:\r\n  encryptedData:\r\n    a: kseal:v2:a # a\r\n  # how\r\n  generated:\r\n    a: uuid\r\n  scope: strict\r\n";
        let edited = edit_spec_fields(
            text,
            None,
            &fields(&[("rollout", "EnvConsumers"), ("maxAge", "13w")]),
            false,
        )
        .unwrap();
        assert_eq!(
            edited,
            text.replace(
                "    a: kseal:v2:a # a\r\n",
                "    a: kseal:v2:a # a\r\n  maxAge: 13w\r\n  rollout: EnvConsumers\r\n"
            )
        );
        // rollout after an existing maxAge; maxAge after encryptedData.
        let text = "spec:\n  encryptedData:\n    a: kseal:v2:a\n  maxAge: 90d\n  scope: strict\n";
        let edited =
            edit_spec_fields(text, None, &fields(&[("rollout", "EnvConsumers")]), false).unwrap();
        assert_eq!(
            edited,
            text.replace("maxAge: 90d\n", "maxAge: 90d\n  rollout: EnvConsumers\n")
        );
        let text = "items:\n- spec:\n    scope: strict\n    encryptedData:\n      a: kseal:v2:a\n";
        let edited = edit_spec_fields(text, Some(0), &fields(&[("maxAge", "1d")]), false).unwrap();
        assert_eq!(edited, format!("{text}    maxAge: 1d\n"));
        // JSON: replaced, never added.
        let json = "{\"spec\": {\"encryptedData\": {\"a\": \"kseal:v2:a\"}, \"maxAge\": \"30d\"}}";
        assert_eq!(
            edit_spec_fields(json, None, &fields(&[("maxAge", "90d")]), true).unwrap(),
            json.replace("30d", "90d")
        );
        assert_eq!(
            edit_spec_fields(json, None, &fields(&[("rollout", "EnvConsumers")]), true),
            None
        );
        // A plain scalar that is no string is replaced as one.
        let text = "spec:\n  encryptedData:\n    a: kseal:v2:a\n  maxAge: 90\n";
        assert_eq!(
            edit_spec_fields(text, None, &fields(&[("maxAge", "90d")]), false).unwrap(),
            text.replace("90\n", "90d\n")
        );
        // Shapes it does not edit: flow mappings, another field, a mapping.
        for (text, field) in [
            ("spec: {encryptedData: {a: kseal:v2:a}}\n", "maxAge"),
            ("spec:\n  encryptedData: {a: kseal:v2:a}\n", "maxAge"),
            ("spec:\n  encryptedData:\n    a: kseal:v2:a\n", "scope"),
            (
                "spec:\n  encryptedData:\n    a: kseal:v2:a\n  maxAge: {d: 90}\n",
                "maxAge",
            ),
        ] {
            assert_eq!(
                edit_spec_fields(text, None, &fields(&[(field, "90d")]), false),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_it_cannot_edit_with_certainty() {
        for text in [
            // an empty flow mapping, nowhere to add
            "spec:\n  encryptedData: {}\n",
            // an alias
            "x: &v kseal:v1:a\nspec:\n  encryptedData:\n    a: *v\n",
            // a block scalar
            "spec:\n  encryptedData:\n    a: |\n      kseal:v1:a\n",
            // escapes
            "spec:\n  encryptedData:\n    a: \"kseal:v1:\\x61\"\n",
        ] {
            assert_eq!(
                edit_encrypted_data(
                    text,
                    None,
                    &changes(&[("a", "kseal:v1:N"), ("b", "kseal:v1:b")]),
                    false
                ),
                None,
                "{text}"
            );
        }
    }
}
