//! Reading and writing manifests: plain `Secret`s in, `SealedSecret`s out,
//! and the way back. Multi-document YAML and JSON.

mod documents;
mod edit;
mod file;
mod plain_secret;
mod sealing;

use std::fmt;

pub use documents::{
    MAX_DOCUMENT_LEN, RawDocument, SourceFormat, parse_json, parse_json_stream,
    parse_yaml_document, split_yaml,
};
pub use file::{
    Document, DocumentKind, GeneratedChanges, ManifestFile, OutputFormat, RenderError, Rendered,
    list_items, render_documents, to_json, to_yaml,
};
pub use plain_secret::{PlainSecret, STRIPPED_ANNOTATIONS, SecretError, scrub};
pub use sealing::{
    KeyFailure, SealOptions, SealingError, UnsealError, merge_into, seal_secret, unseal,
    value_binding,
};

/// Whether `api_version` names the core group's `v1` as kubectl reads it.
/// kubectl splits `apiVersion` at its one `/` into group and version (Go's
/// `schema.ParseGroupVersion`), and the core group is the empty one: so
/// `v1` and `/v1` both name core v1. Every other spelling is refused by
/// kubectl or the API server (checked against both, 1.36): ` v1`, `V1`,
/// `core/v1`, `v1/`, `//v1`, and an empty apiVersion (kubectl maps it, the
/// server cannot route it).
pub fn is_core_v1(api_version: &str) -> bool {
    matches!(api_version, "v1" | "/v1")
}

/// A problem with one document of a manifest, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// 1-based document index within the file.
    pub document: usize,
    /// 1-based line within the file, when known.
    pub line: Option<usize>,
    /// What is wrong (never a quote of the input).
    pub message: String,
}

impl ManifestError {
    pub(crate) fn at(
        document: &RawDocument,
        line: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            document: document.index,
            line: line.or(Some(document.first_line)),
            message: message.into(),
        }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `apiVersion` as kubectl splits it (checked against kubectl and the
    /// API server 1.36): only `v1` and `/v1` name core v1.
    #[test]
    fn core_v1_is_read_as_kubectl_reads_it() {
        for yes in ["v1", "/v1"] {
            assert!(is_core_v1(yes), "{yes:?}");
        }
        for no in [
            "", "/", " v1", "v1 ", "V1", "core/v1", "v1/", "//v1", "/v1/", "apps/v1", "v2",
        ] {
            assert!(!is_core_v1(no), "{no:?}");
        }
    }
}
