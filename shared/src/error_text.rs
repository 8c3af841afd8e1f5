//! Errors as sentences for people: condition messages and Events (which
//! Argo CD and Flux show as they are), the CLI's errors, logs.
//!
//! Some dependencies put Rust `Debug` output in their `Display`: kube's
//! `Error::Api` ends with the `Debug` of the whole `Status` the API server
//! answered (`ApiError: … (Status { status: Some(Failure), … })`), and
//! hyper's client says `client error (Connect)`. [`describe`] walks an
//! error's cause chain and says it in words: for an API error, the HTTP
//! status code, reason and the server's message; for anything else, each
//! cause's `Display`, joined by `": "`, each said once.
//! [`crate::looks_like_rust_debug`] is what tests check messages with.

use std::error::Error;

use kube::core::Status;

/// The reason kube gives an error answer whose body was not a `Status`
/// (a proxy's or load balancer's text or HTML page).
const UNPARSED_BODY_REASON: &str = "Failed to parse error data";

/// At most this many characters of an answer that was not a `Status`.
const UNPARSED_BODY_MAX: usize = 200;

/// `err` and its causes as one sentence for people, with no Rust `Debug`
/// output in it: `the API server refused the request (422 Invalid): Secret
/// "db" is invalid: type: Invalid value: "kubernetes.io/tls": field is
/// immutable`, or `cannot connect: tcp connect error: Connection refused
/// (os error 111)`.
///
/// Works on any error: a `kube::Error`, kube's watcher and controller
/// errors, and errors that wrap them (each cause whose `Display` repeats
/// its source's is said once). Where the chain reaches the API server's
/// answer (a kube `Status`), that answer ends the sentence ([`api_status`]).
pub fn describe(err: &(dyn Error + 'static)) -> String {
    #[cfg(feature = "kube-client")]
    return describe_with(err, kube_in_words);
    #[cfg(not(feature = "kube-client"))]
    return describe_with(err, |_| None);
}

/// Whether nothing below `cause` may be said: the parse error under a
/// credential plugin's unparsable output quotes that output, where a token
/// sits ([`kube_in_words`] says the cause itself).
fn hides_its_sources(cause: &(dyn Error + 'static)) -> bool {
    #[cfg(feature = "kube-client")]
    return matches!(
        cause.downcast_ref::<kube::client::AuthError>(),
        Some(kube::client::AuthError::AuthExecParse(_))
    );
    #[cfg(not(feature = "kube-client"))]
    return {
        let _ = cause;
        false
    };
}

/// At most this many characters of what a failed credential plugin wrote.
#[cfg(feature = "kube-client")]
const PLUGIN_STDERR_MAX: usize = 1000;

/// kube's client errors whose `Display` holds `Debug` output or what must
/// not be shown, in words ([`describe_with`]):
/// - a failed credential plugin (`users[].user.exec`) comes with the
///   `Debug` of its command and environment and its whole output, stdout
///   as bytes (where a token would be): here, its exit status and stderr,
///   which says why;
/// - a plugin output or a kubeconfig that does not parse comes with the
///   lines around the error, which may hold a token: here, a sentence;
/// - a file not read is named by its path, not the `Debug` of it; the
///   kubeconfig file not at all (every caller names it).
#[cfg(feature = "kube-client")]
pub fn kube_in_words(cause: &(dyn Error + 'static)) -> Option<String> {
    use kube::client::AuthError;
    use kube::config::{KubeconfigError, LoadDataError};
    if let Some(err) = cause.downcast_ref::<AuthError>() {
        return match err {
            AuthError::AuthExecRun { out, .. } => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let stderr: String = stderr.trim().chars().take(PLUGIN_STDERR_MAX).collect();
                let failed = format!(
                    "the kubeconfig's credential plugin (users[].user.exec) failed ({})",
                    out.status
                );
                Some(if stderr.is_empty() {
                    failed
                } else {
                    format!("{failed}: {stderr}")
                })
            }
            AuthError::AuthExecParse(_) => Some(
                "the kubeconfig's credential plugin (users[].user.exec) printed something that is not an ExecCredential (its output is not shown: it may hold a token)"
                    .to_owned(),
            ),
            AuthError::ReadTokenFile(_, path) => Some(format!("cannot read {}", path.display())),
            _ => None,
        };
    }
    if let Some(LoadDataError::ReadFile(_, path)) = cause.downcast_ref::<LoadDataError>() {
        return Some(format!("cannot read {}", path.display()));
    }
    match cause.downcast_ref::<KubeconfigError>()? {
        KubeconfigError::ReadConfig(..) => Some(String::new()),
        KubeconfigError::Parse(_) => Some(
            "the kubeconfig is not a valid kubeconfig (YAML); the lines are not shown, they may hold credentials"
                .to_owned(),
        ),
        _ => None,
    }
}

/// [`describe`], with `special` saying some causes in its own words: where
/// it returns a text for a cause, that text is said instead of the cause's
/// `Display` (an empty one: nothing is; its sources still follow). For
/// types this crate does not depend on, e.g. the CLI's kube auth errors.
pub fn describe_with(
    err: &(dyn Error + 'static),
    special: impl Fn(&(dyn Error + 'static)) -> Option<String>,
) -> String {
    let mut chain: Vec<&(dyn Error + 'static)> = Vec::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        // Bounded: a source chain that loops would never end.
        if chain.len() == 32 {
            break;
        }
        chain.push(cause);
        if as_status(cause).is_some() || hides_its_sources(cause) {
            break;
        }
        next = cause.source();
    }
    let displays: Vec<String> = chain.iter().map(ToString::to_string).collect();
    // From the root cause up, so each cause knows how the rest is said.
    let mut parts: Vec<String> = Vec::new();
    for (index, cause) in chain.iter().enumerate().rev() {
        let text = if let Some(status) = as_status(*cause) {
            api_status(status)
        } else if let Some(text) = special(*cause) {
            if text.is_empty() {
                continue;
            }
            text
        } else {
            let mut own = displays[index].as_str();
            if let Some(source) = displays.get(index + 1) {
                let rest = parts.iter().rev().cloned().collect::<Vec<_>>().join(": ");
                if let Some(prefix) = own.strip_suffix(source.as_str()) {
                    // Says its source again (thiserror's `{0}`): said once.
                    own = prefix;
                } else if let Some(prefix) = own.strip_suffix(rest.as_str())
                    && !rest.is_empty()
                {
                    // Says its source in these words already.
                    own = prefix;
                } else if as_status(chain[index + 1]).is_some() {
                    // kube's `Error::Api`: `ApiError: … (Status { … })`;
                    // the Status says it all.
                    own = "";
                }
            }
            let own = own.trim_end_matches(|c: char| c == ':' || c.is_whitespace());
            if own.is_empty() || is_type_name(own) {
                continue;
            }
            in_words(own)
        };
        if parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        // Nothing but type names: better those than nothing.
        return displays.join(": ");
    }
    parts.reverse();
    parts.join(": ")
}

/// The API server's answer, if `cause` is one: kube's `Error::Api` and its
/// watcher's `WatchError` give their `Box<Status>` as their source.
fn as_status<'a>(cause: &'a (dyn Error + 'static)) -> Option<&'a Status> {
    cause
        .downcast_ref::<Status>()
        .or_else(|| cause.downcast_ref::<Box<Status>>().map(|status| &**status))
}

/// The API server's answer in a sentence: its HTTP status code and reason,
/// then its message, e.g. `the API server refused the request (409
/// Conflict): Operation cannot be fulfilled on secrets "db": the object has
/// been modified`. A 5xx answer `could not complete` the request; an answer
/// that was not a `Status` (a proxy's page) is named by its code and its
/// first line.
pub fn api_status(status: &Status) -> String {
    let message = status.message.trim();
    if status.reason == UNPARSED_BODY_REASON {
        let first_line: String = message
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(UNPARSED_BODY_MAX)
            .collect();
        return match (status.code, first_line.is_empty()) {
            (0, true) => "the API server answered with an error".to_owned(),
            (0, false) => format!("the API server answered with an error: {first_line}"),
            (code, true) => format!("the API server answered HTTP {code}"),
            (code, false) => format!("the API server answered HTTP {code}: {first_line}"),
        };
    }
    let what = if status.code >= 500 {
        "the API server could not complete the request"
    } else {
        "the API server refused the request"
    };
    let label = match (status.code, status.reason.trim()) {
        (0, "") => String::new(),
        (0, reason) => format!(" ({reason})"),
        (code, "") => format!(" ({code})"),
        (code, reason) => format!(" ({code} {reason})"),
    };
    if message.is_empty() {
        format!("{what}{label}")
    } else {
        format!("{what}{label}: {message}")
    }
}

/// A type's name standing for a cause (kube's `HyperError: …`,
/// `ServiceError: …` once the cause after it is taken off): says nothing.
fn is_type_name(text: &str) -> bool {
    text.len() > "Error".len()
        && text.ends_with("Error")
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// hyper's client says what failed with the `Debug` of its error kind
/// (`client error (Connect)`): in words.
fn in_words(text: &str) -> String {
    let Some(kind) = text
        .strip_prefix("client error (")
        .and_then(|rest| rest.strip_suffix(')'))
    else {
        return text.to_owned();
    };
    match kind {
        "Connect" => "cannot connect",
        "SendRequest" => "the request could not be sent",
        "Canceled" => "the request was canceled",
        "ChannelClosed" => "the connection was closed",
        "UserUnsupportedRequestMethod" => "the request method is not supported",
        "UserUnsupportedVersion" => "the HTTP version is not supported",
        "UserAbsoluteUriRequired" => "the request needs an absolute URI",
        _ => "the HTTP client failed",
    }
    .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::looks_like_rust_debug;

    fn status(code: u16, reason: &str, message: &str) -> Status {
        serde_json::from_value(serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
            "details": {"name": "db", "kind": "secrets", "causes": [
                {"reason": "FieldValueInvalid", "message": "Invalid value", "field": "type"}
            ]},
        }))
        .unwrap_or_default()
    }

    /// An error like kube's `Error::Api`: its `Display` has the `Debug` of
    /// the Status, its source is the Status.
    #[derive(Debug)]
    struct ApiLike(Box<Status>);

    impl std::fmt::Display for ApiLike {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "ApiError: {} ({:?})", self.0, self.0)
        }
    }

    impl Error for ApiLike {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    /// An error that says its source again, as thiserror's `{0}` does.
    #[derive(Debug)]
    struct Wrapping(&'static str, Box<dyn Error + 'static>);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.0, self.1)
        }
    }

    impl Error for Wrapping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    /// hyper-util's client error: `client error (Connect)`, with a source.
    #[derive(Debug)]
    struct HyperLike(std::io::Error);

    impl std::fmt::Display for HyperLike {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }

    impl Error for HyperLike {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    const IMMUTABLE: &str =
        "Secret \"db\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable";

    #[test]
    fn api_errors_say_code_reason_and_message() {
        let invalid = status(422, "Invalid", IMMUTABLE);
        let expected = format!("the API server refused the request (422 Invalid): {IMMUTABLE}");
        assert_eq!(api_status(&invalid), expected);
        let api = ApiLike(Box::new(invalid.clone()));
        assert!(looks_like_rust_debug(&api.to_string()), "{api}");
        assert_eq!(describe(&api), expected);
        // Wrapped, as kube's watcher wraps it: the wrapper's words, then
        // the answer, each once.
        let wrapped = Wrapping("failed to perform initial object list", Box::new(api));
        assert_eq!(
            describe(&wrapped),
            format!("failed to perform initial object list: {expected}")
        );
        // The Status itself, and a wrapper of it (the watcher's
        // `WatchError`), whose Display repeats the Status's.
        assert_eq!(describe(&invalid), expected);
        let watch = Wrapping(
            "error returned by apiserver during watch",
            Box::new(invalid),
        );
        assert_eq!(
            describe(&watch),
            format!("error returned by apiserver during watch: {expected}")
        );
        assert_eq!(
            api_status(&status(500, "InternalError", "etcd timeout")),
            "the API server could not complete the request (500 InternalError): etcd timeout"
        );
        assert_eq!(
            api_status(&status(404, "NotFound", "")),
            "the API server refused the request (404 NotFound)"
        );
        assert_eq!(
            api_status(&Status::failure("no way", "")),
            "the API server refused the request: no way"
        );
        // Not a Status: a proxy's page, named by its first line.
        let page = Status::failure("<html>\n<body>Bad Gateway</body>", UNPARSED_BODY_REASON)
            .with_code(502);
        assert_eq!(
            api_status(&page),
            "the API server answered HTTP 502: <html>"
        );
    }

    #[test]
    fn transport_errors_are_their_causes_in_words() {
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "Connection refused (os error 111)",
        );
        let chain = Wrapping("ServiceError", Box::new(HyperLike(refused)));
        let text = describe(&chain);
        assert_eq!(text, "cannot connect: Connection refused (os error 111)");
        assert!(!looks_like_rust_debug(&text), "{text}");
        // A cause said as its source says it: once.
        let twice = Wrapping(
            "cannot reach the controller",
            Box::new(Wrapping("tcp connect error", Box::new(std::fmt::Error))),
        );
        assert_eq!(
            describe(&twice),
            "cannot reach the controller: tcp connect error: an error occurred when formatting an argument"
        );
    }

    #[test]
    fn special_causes_are_said_in_their_own_words() {
        let inner = std::io::Error::other("plugin failed");
        let chain = Wrapping("auth", Box::new(inner));
        let text = describe_with(&chain, |cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .map(|_| "the credential plugin failed".to_owned())
        });
        assert_eq!(text, "auth: the credential plugin failed");
        // An empty text: the cause says nothing, its source does.
        let chain = Wrapping(
            "auth",
            Box::new(Wrapping("read", Box::new(std::fmt::Error))),
        );
        let text = describe_with(&chain, |cause| {
            cause
                .source()
                .is_some_and(|source| source.is::<std::fmt::Error>())
                .then(String::new)
        });
        assert_eq!(text, "auth: an error occurred when formatting an argument");
    }
}
