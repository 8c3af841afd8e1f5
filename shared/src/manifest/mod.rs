//! Reading and writing manifests: plain `Secret`s in, `SealedSecret`s out,
//! and the way back. Multi-document YAML and JSON.

mod documents;
mod edit;
mod file;
mod plain_secret;
mod sealing;

use std::fmt;

pub use documents::{
    MAX_DOCUMENT_LEN, RawDocument, SourceFormat, parse_json, parse_yaml_document, split_yaml,
};
pub use file::{
    Document, DocumentKind, ManifestFile, OutputFormat, RenderError, render_documents, to_json,
    to_yaml,
};
pub use plain_secret::{PlainSecret, STRIPPED_ANNOTATIONS, SecretError, scrub};
pub use sealing::{
    KeyFailure, SealOptions, SealingError, merge_into, seal_secret, unseal, value_binding,
};

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
