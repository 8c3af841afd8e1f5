//! Whether a message holds Rust `Debug` output: for tests, here and in the
//! other crates ([`crate::looks_like_rust_debug`]). Says the messages of
//! [`crate::error_text`] are words.

use std::sync::LazyLock;

use regex::Regex;

/// Patterns of Rust `Debug` output: a struct (`Status {`, `Output {`), an
/// `Option` or `Result` (`Some(`, `None`, `Ok(`, `Err(`), a `Box(`, a tuple
/// struct (`ExitStatus(`, `Kind(NotFound)`), a byte vector (`[104, 101,
/// …]`), kube's and hyper's forms (`ErrorResponse`, `ApiError:`, `client
/// error (Connect)`).
const RUST_DEBUG_PATTERNS: &[&str] = &[
    r"ErrorResponse|ApiError:",
    r"\b[A-Z][A-Za-z0-9_]*(?:::[A-Za-z0-9_]+)* \{",
    r"\b(?:Some|Ok|Err|Box)\(",
    // `None`, but not the word ("None of the given identities…").
    r"(?:^|[^A-Za-z0-9_])None(?:$|[^A-Za-z0-9_ ]| $| [^a-z])",
    r"\b[A-Z][a-z0-9]+[A-Z][A-Za-z0-9]*\(",
    r"\b[A-Z][A-Za-z0-9]*\([A-Z]",
    r"\[\d{1,3}(?:, \d{1,3}){7,}",
    r"client error \([A-Z]",
];

/// [`RUST_DEBUG_PATTERNS`], compiled (every one compiles: tested).
static RUST_DEBUG: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    RUST_DEBUG_PATTERNS
        .iter()
        .filter_map(|pattern| Regex::new(pattern).ok())
        .collect()
});

/// Whether `text` holds what looks like Rust `Debug` output rather than
/// words: a struct (`Status { code: 422, … }`), `Some(…)`, `None`, `Ok(…)`,
/// `Err(…)`, `Box(…)`, a tuple struct (`ExitStatus(…)`, `Kind(NotFound)`),
/// a byte vector, or kube's and hyper's `Debug` forms (`ErrorResponse`,
/// `ApiError:`, `client error (Connect)`). A string quoted with `{:?}` is
/// not flagged.
///
/// For tests: every message that reaches a person (condition messages,
/// Events, HTTP error bodies, CLI errors) should give `false`; the
/// controller's integration tests check live conditions and Events with it.
/// A heuristic: it may flag a message that quotes such text on purpose.
pub fn looks_like_rust_debug(text: &str) -> bool {
    RUST_DEBUG.iter().any(|pattern| pattern.is_match(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_debug_is_recognised() {
        let debug = [
            format!(
                "{:?}",
                kube::core::Status::failure("field is immutable", "Invalid").with_code(422)
            ),
            "ApiError: field is immutable: Invalid (ErrorResponse { status: \"Failure\" })"
                .to_owned(),
            "value Some(\"x\")".to_owned(),
            "expected None".to_owned(),
            "key: None, other".to_owned(),
            "Ok(())".to_owned(),
            "Err(NotFound)".to_owned(),
            "Box(1)".to_owned(),
            "status ExitStatus(unix_wait_status(256))".to_owned(),
            "stderr: [101, 114, 114, 111, 114, 58, 32, 110, 111]".to_owned(),
            "client error (Connect)".to_owned(),
            format!(
                "{:?}",
                std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
            ),
            format!(
                "{:?}",
                std::process::Output {
                    status: std::process::ExitStatus::default(),
                    stdout: Vec::new(),
                    stderr: b"expired".to_vec(),
                }
            ),
        ];
        for text in &debug {
            assert!(looks_like_rust_debug(text), "not flagged: {text}");
        }
        let words = [
            "none of the given identities matches the value's key ids (0123456789abcdef)",
            "None of the given identities matches",
            "value \"password\" is malformed: not a kseal sealed value (expected \"kseal:v2:…\")",
            "the API server refused the request (422 Invalid): Secret \"db\" is invalid",
            "Secret \"db\" exists and is not owned by this SealedSecret",
            "spec.encryptedData has 2000 values; at most 1000 are accepted (split the Secret)",
            "cannot connect: tcp connect error: Connection refused (os error 111)",
            "retry in 30s (ports 1, 2, 3)",
            "",
        ];
        for text in words {
            assert!(!looks_like_rust_debug(text), "flagged: {text}");
        }
        assert_eq!(RUST_DEBUG.len(), RUST_DEBUG_PATTERNS.len());
    }
}
