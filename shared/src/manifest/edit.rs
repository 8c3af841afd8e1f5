//! Surgical edits of sealed values in a document's text.
//!
//! `--merge-into` and `rewrap --in-place` change values under
//! `spec.encryptedData`. Rewriting the whole document would lose the user's
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
use serde::de::{Deserializer, MapAccess, Visitor};
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
    let mut options = serde_saphyr::options::Options::default();
    options.with_snippet = false;
    options.strict_booleans = true;
    let object: Object = serde_saphyr::from_str_with_options(text, options).ok()?;
    let object = match item {
        None => object,
        Some(item) => object.items?.into_iter().nth(item)?,
    };
    let mapping = object.spec?.encrypted_data?;
    let entries = &mapping.value.0;
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut last: Option<(Token, Token)> = None;
    for (key, value) in entries {
        let key_token = token(text, key)?;
        let value_token = token(text, value)?;
        if let Some(new) = changes.get(&key.value) {
            edits.push((
                value_token.range.clone(),
                render_scalar(new, value_token.quote),
            ));
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
        .filter(|(key, _)| !entries.iter().any(|(k, _)| &k.value == *key))
        .collect();
    if !added.is_empty() {
        let (last_key, last_value) = last?;
        let line_start = text[..last_key.range.start]
            .rfind('\n')
            .map_or(0, |at| at + 1);
        let indent = &text[line_start..last_key.range.start];
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
            if !indent.chars().all(|c| c == ' ') {
                return None;
            }
            let mut line_end = text[after..].find('\n').map(|at| after + at)?;
            // Keep the file's line ends: CRLF files get CRLF lines.
            let newline = if text[..line_end].ends_with('\r') {
                line_end -= 1;
                "\r\n"
            } else {
                "\n"
            };
            for (key, value) in &added {
                let key = if plain_key_is_safe(key) {
                    (*key).clone()
                } else {
                    format!("\"{key}\"")
                };
                let value = render_scalar(value, last_value.quote);
                insertion.push_str(&format!("{newline}{indent}{key}: {value}"));
            }
            edits.push((line_end..line_end, insertion));
        }
    }
    edits.sort_by_key(|(range, _)| range.start);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
