//! Reading YAML that anyone may have written: manifests, `.kseal.yaml`, the
//! controller's request bodies. One place sets serde-saphyr's options for
//! all of them, so the rules and limits are written once.
//!
//! Every reader here:
//! * never quotes the input in an error (serde-saphyr's snippets are off):
//!   the lines around an error may hold plaintext or a token;
//! * reads YAML 1.2 core booleans: `yes`, `no`, `on`, `off`, `y` and `n` are
//!   strings (where kubectl, a YAML 1.1 reader, would differ, `seal` asks
//!   for quotes: [`crate::manifest::ManifestFile::yaml11_boolean_path`]);
//! * stops with an error at the limits below, so a small input cannot cost
//!   much memory or time (alias bombs, deep nesting, many nodes).
//!
//! Files ([`from_str`], [`options`]) may use anchors, aliases and merge
//! keys (`<<`), which people write and kubectl reads (docs/inputs.md):
//! within [`MAX_ALIASES`] and [`MAX_ANCHORS`], and the parser's own rule
//! that from 100 aliases on there are at most 10 per anchor. Request bodies
//! ([`from_str_without_aliases`]) may hold no anchor or alias at all: a
//! SealedSecret needs none, and a body's parse then costs no more than the
//! body (see `controller/src/http.rs`).
//!
//! The size of the text itself is the caller's to limit (a manifest
//! document: [`crate::manifest::MAX_DOCUMENT_LEN`]; a request body: the
//! controller's body limit).

use serde::Deserialize;
use serde_saphyr::Budget;
use serde_saphyr::options::Options;

/// The deepest nesting of mappings and sequences, in levels (a document
/// that is one mapping is 1 deep). The parser recurses per level; a
/// Kubernetes object nests about a dozen deep (a `List` of Deployments down
/// to a container's `env` entry).
pub const MAX_DEPTH: usize = 64;
/// The most nodes (scalars, mappings and sequences) in one parse. Each
/// costs memory however short its text; a SealedSecret at its limit of
/// 1,024 values has a few thousand.
pub const MAX_NODES: usize = 250_000;
/// The most bytes of scalar text (keys and values, after aliases are
/// expanded) in one parse: 64 MiB, four times the largest manifest
/// document ([`crate::manifest::MAX_DOCUMENT_LEN`]), whatever the aliases
/// expand to.
pub const MAX_SCALAR_BYTES: usize = 64 * 1024 * 1024;
/// The most aliases (`*name`) in a file's document.
pub const MAX_ALIASES: usize = 50_000;
/// The most anchors (`&name`) in a file's document.
pub const MAX_ANCHORS: usize = 50_000;

/// The limits every reader shares (set here rather than left to the
/// parser's defaults, so an upgrade of serde-saphyr cannot move them).
fn budget() -> Budget {
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ANCHORS;
    budget
}

/// Without anchors and aliases, scalars cannot outgrow the text; an
/// explicit cap of `max_scalar_bytes` (the text's length) says so.
fn budget_without_aliases(max_scalar_bytes: usize) -> Budget {
    let mut budget = budget();
    budget.max_aliases = 0;
    budget.max_anchors = 0;
    budget.max_total_scalar_bytes = max_scalar_bytes;
    budget
}

fn options_with(budget: Budget) -> Options {
    let mut options = Options::default();
    options.with_snippet = false;
    options.strict_booleans = true;
    options.budget = Some(budget);
    options
}

/// The options for a YAML file's document (see the module docs): for
/// callers that need serde-saphyr's own entry points, and may change one
/// option with a reason (the YAML 1.1 comparison of
/// [`crate::manifest::ManifestFile::yaml11_boolean_path`]).
pub fn options() -> Options {
    options_with(budget())
}

/// Parses one document of a YAML file with [`options`].
pub fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options())
}

/// Parses a request body: [`options`] without anchors or aliases, and at
/// most as many bytes of scalars as the body has.
pub fn from_str_without_aliases<'de, T: Deserialize<'de>>(
    text: &'de str,
) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, options_with(budget_without_aliases(text.len())))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::de::IgnoredAny;

    use super::*;

    fn parses(text: &str) -> Result<(), String> {
        from_str::<IgnoredAny>(text)
            .map(drop)
            .map_err(|err| err.to_string())
    }

    fn parses_without_aliases(text: &str, max_scalar_bytes: usize) -> Result<(), String> {
        serde_saphyr::from_str_with_options::<IgnoredAny>(
            text,
            options_with(budget_without_aliases(max_scalar_bytes)),
        )
        .map(drop)
        .map_err(|err| err.to_string())
    }

    /// `depth` flow sequences, one inside the other.
    fn nested(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn nesting_stops_past_max_depth() {
        assert_eq!(parses(&nested(MAX_DEPTH)), Ok(()));
        let err = parses(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(err.contains("depth"), "{err}");
        // Block mappings count the same.
        let block = |depth: usize| -> String {
            (0..depth)
                .map(|level| format!("{}a:\n", " ".repeat(level)))
                .collect::<String>()
                + &" ".repeat(depth)
                + "x\n"
        };
        assert_eq!(parses(&block(MAX_DEPTH)), Ok(()));
        let err = parses(&block(MAX_DEPTH + 1)).unwrap_err();
        assert!(err.contains("depth"), "{err}");
    }

    #[test]
    fn nodes_stop_past_max_nodes() {
        // One sequence node and its scalars.
        let sequence = |scalars: usize| format!("[{}]", vec!["a"; scalars].join(","));
        assert_eq!(parses(&sequence(MAX_NODES - 1)), Ok(()));
        let err = parses(&sequence(MAX_NODES)).unwrap_err();
        assert!(err.contains("node"), "{err}");
    }

    #[test]
    fn scalar_text_stops_past_max_scalar_bytes() {
        // An anchored quarter of the budget and three aliases of it: the
        // whole budget, in a document a quarter as long.
        let quarter = "x".repeat(MAX_SCALAR_BYTES / 4);
        let at_limit = format!("[&q {quarter}, *q, *q, *q]");
        assert_eq!(parses(&at_limit), Ok(()));
        let err = parses(&format!("[&q {quarter}, *q, *q, *q, y]")).unwrap_err();
        assert!(err.contains("scalar"), "{err}");
    }

    #[test]
    fn files_may_use_aliases_up_to_max_aliases() {
        assert_eq!(
            from_str::<BTreeMap<String, String>>("a: &v x\nb: *v\n").unwrap(),
            BTreeMap::from([
                ("a".to_owned(), "x".to_owned()),
                ("b".to_owned(), "x".to_owned())
            ])
        );
        // Ten aliases per anchor: the most the parser's ratio rule allows.
        let document = |aliases: usize| {
            let anchors = aliases.div_ceil(10);
            let mut text = String::from("[");
            for anchor in 0..anchors {
                text.push_str(&format!("&a{anchor} x,"));
            }
            for alias in 0..aliases {
                text.push_str(&format!("*a{},", alias % anchors));
            }
            text.push(']');
            text
        };
        assert_eq!(parses(&document(MAX_ALIASES)), Ok(()));
        let err = parses(&document(MAX_ALIASES + 1)).unwrap_err();
        assert!(err.contains("alias"), "{err}");
        // Many aliases of few anchors (a billion laughs) stop well before.
        let laughs = format!("[&a x, {}]", vec!["*a"; 101].join(","));
        let err = parses(&laughs).unwrap_err();
        assert!(err.to_lowercase().contains("ratio"), "{err}");
    }

    #[test]
    fn files_may_use_anchors_up_to_max_anchors() {
        let document = |anchors: usize| {
            let items: Vec<String> = (0..anchors).map(|n| format!("&a{n} x")).collect();
            format!("[{}]", items.join(","))
        };
        assert_eq!(parses(&document(MAX_ANCHORS)), Ok(()));
        let err = parses(&document(MAX_ANCHORS + 1)).unwrap_err();
        assert!(err.contains("anchor"), "{err}");
    }

    #[test]
    fn request_bodies_hold_no_anchor_or_alias() {
        let plain = "a: x\nb: x\n";
        assert_eq!(
            from_str_without_aliases::<BTreeMap<String, String>>(plain)
                .map(|map| map.len())
                .map_err(|err| err.to_string()),
            Ok(2)
        );
        for text in ["a: &v x\n", "a: &v x\nb: *v\n", "a: &v {k: x}\n<<: *v\n"] {
            assert!(
                from_str_without_aliases::<IgnoredAny>(text).is_err(),
                "{text:?}"
            );
            // The same text is a file's right.
            assert_eq!(parses(text), Ok(()), "{text:?}");
        }
    }

    #[test]
    fn request_bodies_hold_no_more_scalar_bytes_than_the_body() {
        // A body that is one scalar: exactly as many scalar bytes as bytes.
        let body = "abc";
        assert_eq!(from_str_without_aliases::<String>(body).unwrap(), "abc");
        assert_eq!(parses_without_aliases(body, body.len()), Ok(()));
        let err = parses_without_aliases(body, body.len() - 1).unwrap_err();
        assert!(err.contains("scalar"), "{err}");
    }

    #[test]
    fn errors_never_quote_the_input() {
        let text = "token: SUPERSECRET\nbad: [\n";
        let err = from_str::<IgnoredAny>(text).unwrap_err().to_string();
        assert!(!err.contains("SUPERSECRET"), "{err}");
        let err = from_str_without_aliases::<IgnoredAny>(text)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SUPERSECRET"), "{err}");
    }

    #[test]
    fn booleans_are_yaml_1_2() {
        let map: BTreeMap<String, serde_json::Value> = from_str("a: yes\nb: n\nc: true\n").unwrap();
        assert_eq!(map["a"], "yes");
        assert_eq!(map["b"], "n");
        assert_eq!(map["c"], true);
    }
}
