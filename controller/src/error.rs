//! Why a reconcile failed. Each variant has a stable [`Reason`], used as the
//! `Ready` condition's reason, the Event reason and a metric label. No
//! variant carries secret material.

use std::fmt::Display;

use kseal_shared::contract::ValueFailureReason;
use kseal_shared::error::SealError;
use kseal_shared::x25519::KeyId;

/// Declares [`Reason`] and its `ALL` list from one list of names, so the
/// two cannot disagree.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Why a reconcile failed, as a condition reason, Event reason and
        /// metric label (CamelCase, stable).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// Every reason, for pre-registering metric labels.
            pub(crate) const ALL: &'static [Reason] = &[$(Reason::$name,)*];

            /// The CamelCase name.
            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }
        }
    };
}

reasons! {
    /// See [`Error::DecryptFailed`].
    DecryptFailed,
    /// See [`Error::UnknownKey`].
    UnknownKey,
    /// See [`Error::RetiredKey`].
    RetiredKey,
    /// See [`Error::MalformedValue`].
    MalformedValue,
    /// See [`Error::InvalidSpec`].
    InvalidSpec,
    /// See [`Error::TooManyValues`].
    TooManyValues,
    /// See [`Error::SecretNotOwned`] and [`Error::SecretTakenDuringRecreate`].
    SecretNotOwned,
    /// See [`Error::SecretRejected`].
    SecretRejected,
    /// See [`Error::RecreatePending`].
    RecreatePending,
    /// See [`Error::PolicyDenied`].
    PolicyDenied,
    /// See [`Error::Kube`].
    KubernetesError,
    /// See [`Error::Serialization`].
    SerializationError,
    /// See [`Error::Internal`].
    InternalError,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ValueFailureReason> for Reason {
    fn from(reason: ValueFailureReason) -> Self {
        match reason {
            ValueFailureReason::MalformedValue => Reason::MalformedValue,
            ValueFailureReason::UnknownKey => Reason::UnknownKey,
            ValueFailureReason::RetiredKey => Reason::RetiredKey,
            ValueFailureReason::DecryptFailed => Reason::DecryptFailed,
            ValueFailureReason::InvalidSpec => Reason::InvalidSpec,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A value does not open: tampered, or moved to another key, name,
    /// namespace or scope than it was sealed for.
    #[error("value {key:?} cannot be decrypted: {source}")]
    DecryptFailed {
        key: String,
        #[source]
        source: SealError,
    },
    /// A value names only keys this controller does not have. `key_ids`
    /// names a few of them ([`named`]).
    #[error("value {key:?} is sealed to key(s) {key_ids} that this cluster does not hold")]
    UnknownKey { key: String, key_ids: String },
    /// A value is sealed only to keys that were retired. `key_ids` names a
    /// few of them ([`named`]).
    #[error(
        "value {key:?} is sealed to retired key(s) {key_ids}: re-wrap it to the active key (kseal rewrap), or restore the key"
    )]
    RetiredKey { key: String, key_ids: String },
    /// A value is not a well-formed sealed value.
    #[error("value {key:?} is malformed: {source}")]
    MalformedValue {
        key: String,
        #[source]
        source: SealError,
    },
    /// The SealedSecret itself is unusable (no namespace for its scope, bad key
    /// name, no values). Several problems: [`Error::invalid_spec`].
    #[error("invalid SealedSecret: {0}")]
    InvalidSpec(String),
    /// More values than any reader accepts
    /// ([`kseal_shared::sealed_secret::MAX_VALUES`]); refused before any
    /// decryption.
    #[error(
        "spec.encryptedData has {count} values; at most {max} are accepted (split the Secret)",
        max = kseal_shared::sealed_secret::MAX_VALUES
    )]
    TooManyValues { count: usize },
    /// A Secret with the same name exists and is not ours.
    #[error(
        "Secret {0:?} exists and is not owned by this SealedSecret; annotate it with kseal.dev/managed=\"true\" to let kseal take it over (it looks again every 30 seconds)"
    )]
    SecretNotOwned(String),
    /// Someone else created a Secret of the name between kseal deleting
    /// the Secret and creating it again (a re-create for a type change or
    /// new immutable data): theirs now, left alone.
    #[error(
        "Secret {0:?} was created by someone else between kseal deleting it and creating it again (its type or immutable data changed); find out who made it, then delete it to let kseal re-create it"
    )]
    SecretTakenDuringRecreate(String),
    /// A re-create waits: the Secret was deleted to be created again, and
    /// finalizers (named, a few: [`named`]) hold it until whoever set them
    /// removes them. Retried; the Secret's deletion also starts a reconcile.
    #[error(
        "Secret {name:?} is being re-created (its type or immutable data changed) and waits for its finalizers to be removed: {finalizers}"
    )]
    RecreatePending { name: String, finalizers: String },
    /// The API server (or an admission policy) refused the Secret kseal
    /// would write: invalid for its type (a `kubernetes.io/tls` Secret
    /// without `tls.key`), or forbidden. Needs a change to the object or
    /// the cluster. The message gives the server's causes, cut where they
    /// would quote a value (see [`rejection`]).
    #[error("the API server refused Secret {name:?} ({code}): {causes}")]
    SecretRejected {
        name: String,
        code: u16,
        causes: String,
    },
    /// Writing the Secret failed in a way that may pass (a conflict, a
    /// rate limit, a server error): retried. Said as [`rejection`] says it.
    #[error("writing Secret {name:?} failed ({code}): {causes}")]
    SecretWriteFailed {
        name: String,
        code: u16,
        causes: String,
    },
    /// The SealedSecret asks for a Secret the policy does not allow (a
    /// reserved or dangerous type, label or annotation), or lives in the
    /// controller's own namespace.
    #[error("refused by the Secret policy: {0}")]
    PolicyDenied(String),
    /// A Kubernetes API call failed (usually transient). Said in words
    /// ([`kseal_shared::error_text::describe`]): kube's own `Display` of an
    /// API error ends with the `Debug` of the server's answer, and this text
    /// is the `Ready` condition's message and the Warning Event's note.
    #[error("Kubernetes API error: {}", kseal_shared::error_text::describe(.0))]
    Kube(#[from] kube::Error),
    /// Serialization of an object failed.
    #[error("serialization error: {0}")]
    Serialization(#[from] serde_json::Error),
    /// A bug inside the controller (e.g. decrypting panicked); retried.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Why a value under data key `key` does not open, with the reason
    /// [`ValueFailureReason::of`] gives (the same as the HTTP API's).
    pub(crate) fn value_failure(
        key: &str,
        source: SealError,
        is_retired: impl Fn(&KeyId) -> bool,
    ) -> Self {
        let key = key.to_owned();
        // A value names up to MAX_RECIPIENTS (64) ids of its author's
        // choosing: all of them would not fit in an Event.
        let key_ids = match &source {
            SealError::NoMatchingIdentity { key_ids } => named(key_ids, ", "),
            _ => String::new(),
        };
        match ValueFailureReason::of(&source, is_retired) {
            ValueFailureReason::MalformedValue => Error::MalformedValue { key, source },
            ValueFailureReason::UnknownKey => Error::UnknownKey { key, key_ids },
            ValueFailureReason::RetiredKey => Error::RetiredKey { key, key_ids },
            ValueFailureReason::DecryptFailed => Error::DecryptFailed { key, source },
            ValueFailureReason::InvalidSpec => Error::InvalidSpec(source.to_string()),
        }
    }

    /// [`Error::InvalidSpec`] for an object's problems, the first few
    /// named ([`named`]): their number is its author's to choose.
    pub(crate) fn invalid_spec<T: Display>(problems: &[T]) -> Self {
        Error::InvalidSpec(named(problems, "; "))
    }

    /// The reason for conditions, events and metrics.
    pub(crate) fn reason(&self) -> Reason {
        match self {
            Error::DecryptFailed { .. } => Reason::DecryptFailed,
            Error::UnknownKey { .. } => Reason::UnknownKey,
            Error::RetiredKey { .. } => Reason::RetiredKey,
            Error::MalformedValue { .. } => Reason::MalformedValue,
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::TooManyValues { .. } => Reason::TooManyValues,
            Error::SecretNotOwned(_) | Error::SecretTakenDuringRecreate(_) => {
                Reason::SecretNotOwned
            }
            Error::SecretRejected { .. } => Reason::SecretRejected,
            Error::RecreatePending { .. } => Reason::RecreatePending,
            Error::SecretWriteFailed { .. } => Reason::KubernetesError,
            Error::PolicyDenied(_) => Reason::PolicyDenied,
            Error::Kube(_) => Reason::KubernetesError,
            Error::Serialization(_) => Reason::SerializationError,
            Error::Internal(_) => Reason::InternalError,
        }
    }

    /// Errors that retrying will not fix until something changes (the
    /// object, the keys, the Secret): retried slowly, never in a hot loop.
    pub(crate) fn is_permanent(&self) -> bool {
        // Only the answers that say the Secret itself is refused; anything
        // else from the API server may pass.
        !matches!(
            self,
            Error::Kube(_)
                | Error::Serialization(_)
                | Error::Internal(_)
                | Error::RecreatePending { .. }
                | Error::SecretWriteFailed { .. }
        )
    }
}

/// A failed write (create, replace, delete) of the Secret `name`. Every
/// answer of the API server is said by [`rejection`], which withholds any
/// message that `quotes_value` finds a value in: admission webhooks and
/// policies may quote the object they refuse. A refusal of the Secret
/// itself (a 4xx other than a conflict or a rate limit) is
/// [`Error::SecretRejected`], which needs a change; any other answer is
/// [`Error::SecretWriteFailed`], retried; no answer is [`Error::Kube`].
pub(crate) fn secret_write(
    name: &str,
    err: kube::Error,
    quotes_value: impl Fn(&str) -> bool,
) -> Error {
    let kube::Error::Api(status) = err else {
        return Error::Kube(err);
    };
    let name = name.to_owned();
    let causes = rejection(&status, quotes_value);
    let code = status.code;
    match code {
        400..=499 if !matches!(code, 404 | 408 | 409 | 429) => {
            Error::SecretRejected { name, code, causes }
        }
        _ => Error::SecretWriteFailed { name, code, causes },
    }
}

/// What the API server said is wrong with a Secret, without any value. The
/// API server replaces a Secret's values with `<secret contents redacted>`
/// in its messages, but some validators then quote their own parse error,
/// which can hold a value's bytes (`.dockerconfigjson`: `invalid character
/// 'Z' looking for beginning of value`): every message is cut after that
/// marker. Admission webhooks and policies write what they like: a message
/// in which `quotes_value` finds a value is withheld. The field paths of
/// the causes, each with its message, or the message alone when the
/// answer lists no causes.
pub(crate) fn rejection(
    status: &kube::core::Status,
    quotes_value: impl Fn(&str) -> bool,
) -> String {
    const REDACTED: &str = "<secret contents redacted>";
    let cut = |text: &str| {
        let text = match text.find(REDACTED) {
            // Closed as it was opened, when it was quoted.
            Some(at) if text[..at].ends_with('"') => format!("{}\"", &text[..at + REDACTED.len()]),
            Some(at) => text[..at + REDACTED.len()].to_owned(),
            None => text.to_owned(),
        };
        if quotes_value(&text) {
            "(the message is withheld: it quotes a value of the Secret)".to_owned()
        } else {
            text
        }
    };
    let causes: Vec<String> = status
        .details
        .iter()
        .flat_map(|details| &details.causes)
        .map(|cause| match cause.field.as_str() {
            "" => cut(&cause.message),
            field => format!("{field}: {}", cut(&cause.message)),
        })
        .collect();
    if causes.is_empty() {
        cut(&status.message)
    } else {
        named(&causes, "; ")
    }
}

/// At most this many entries of a list whose length a SealedSecret's
/// author chooses (key ids, problems) are named in a message; the others
/// are counted.
pub(crate) const NAMED: usize = 5;
/// At most this many bytes of one named entry: a problem quotes a name as
/// written, which is invalid, maybe because of its length.
pub(crate) const ENTRY_MAX: usize = 256;
/// The longest Event note the API server accepts (events.k8s.io/v1: 1,024
/// bytes); a longer one is refused with 422 and the Event is lost.
pub(crate) const EVENT_NOTE_MAX: usize = 1024;
/// The longest condition message written to a status: long enough for any
/// message the controller builds from bounded parts, short enough that an
/// object's author cannot make every watcher's copy of it large.
pub(crate) const CONDITION_MESSAGE_MAX: usize = 1024;

/// The first [`NAMED`] entries, each cut to [`ENTRY_MAX`] bytes, joined by
/// `separator`, then how many more there are: `a, b, c, d, e and 59 more`.
pub(crate) fn named<T: Display>(entries: &[T], separator: &str) -> String {
    let mut text = entries
        .iter()
        .take(NAMED)
        .map(|entry| bounded(entry.to_string(), ENTRY_MAX))
        .collect::<Vec<_>>()
        .join(separator);
    if entries.len() > NAMED {
        text.push_str(&format!(" and {} more", entries.len() - NAMED));
    }
    text
}

/// `text` cut to at most `max` bytes on a char boundary, ending in `…`
/// when it was cut.
pub(crate) fn bounded(mut text: String, max: usize) -> String {
    const MARK: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    if max >= MARK.len() {
        text.push_str(MARK);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use kseal_shared::error_text::describe;
    use kseal_shared::looks_like_rust_debug;

    /// A value naming 64 made-up key ids (as many as a value may) and an
    /// object with a thousand bad names: the messages name a few and count
    /// the rest, so an Event stays under the API server's limit whatever
    /// the author wrote.
    #[test]
    fn messages_name_a_few_of_what_the_author_chose() {
        let ids: Vec<KeyId> = (0..kseal_shared::envelope::MAX_RECIPIENTS)
            .map(|i| format!("{i:016x}").parse().unwrap())
            .collect();
        for retired in [false, true] {
            let err = Error::value_failure(
                "password",
                SealError::NoMatchingIdentity {
                    key_ids: ids.clone(),
                },
                |_| retired,
            );
            let message = err.to_string();
            assert!(
                message.contains(&format!("{}, {}", ids[0], ids[1])),
                "{message}"
            );
            assert!(message.contains(" and 59 more"), "{message}");
            assert!(!message.contains(&ids[5].to_string()), "{message}");
            assert!(message.len() < 300, "{} bytes: {message}", message.len());
        }
        // Each problem quotes a 10 KB name as written: cut to ENTRY_MAX.
        let problems: Vec<String> = (0..1000)
            .map(|i| format!("invalid data key name {:?}", "x".repeat(10_000 + i)))
            .collect();
        let message = Error::invalid_spec(&problems).to_string();
        assert!(message.contains(" and 995 more"), "{message}");
        assert_eq!(message.matches('…').count(), NAMED, "{message}");
        assert!(
            message.len() <= NAMED * (ENTRY_MAX + 2) + 64,
            "{} bytes",
            message.len()
        );
        // Few enough: every one named, nothing counted.
        let message = Error::invalid_spec(&problems[..2]).to_string();
        assert!(!message.contains("more"), "{message}");
        assert!(message.contains("; "), "{message}");
    }

    /// Cuts on a char boundary, marks the cut, and leaves short text be.
    #[test]
    fn bounded_cuts_on_a_char_boundary() {
        assert_eq!(bounded("short".to_owned(), 10), "short");
        assert_eq!(bounded("0123456789".to_owned(), 10), "0123456789");
        let cut = bounded("0123456789a".to_owned(), 10);
        assert_eq!(cut, "0123456…");
        assert_eq!(cut.len(), 10);
        // `é` is two bytes: never split.
        for max in 4..40 {
            let cut = bounded("é".repeat(30), max);
            assert!(cut.len() <= max, "{max}: {cut}");
            assert!(cut.ends_with('…'), "{max}: {cut}");
        }
        assert_eq!(bounded("abcdef".to_owned(), 2), "");
    }

    /// Every variant maps to a reason that is pre-registered as a metric
    /// label, and every value failure reason has a reconcile reason.
    #[test]
    fn every_error_has_a_registered_reason() {
        let id: KeyId = "0123456789abcdef".parse().unwrap();
        let errors = [
            Error::value_failure("k", SealError::DecryptFailed, |_| false),
            Error::value_failure(
                "k",
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                |_| false,
            ),
            Error::value_failure(
                "k",
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                |_| true,
            ),
            Error::value_failure("k", SealError::Malformed("x"), |_| false),
            Error::value_failure("k", SealError::InvalidBinding("x".into()), |_| false),
            Error::InvalidSpec("x".into()),
            Error::TooManyValues { count: 2000 },
            Error::Internal("x".into()),
            Error::SecretNotOwned("s".into()),
            Error::SecretTakenDuringRecreate("s".into()),
            Error::RecreatePending {
                name: "s".into(),
                finalizers: "example.com/hold".into(),
            },
            secret_write(
                "s",
                kube::Error::Api(Box::new(
                    kube::core::Status::failure("no", "Invalid").with_code(422),
                )),
                |_| false,
            ),
            Error::PolicyDenied("p".into()),
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
            Error::Serialization(serde_json::from_str::<u8>("x").unwrap_err()),
        ];
        let reasons: Vec<Reason> = errors.iter().map(Error::reason).collect();
        for reason in Reason::ALL {
            assert!(reasons.contains(reason), "no error has reason {reason}");
        }
        for reason in ValueFailureReason::ALL {
            assert_eq!(Reason::from(reason).as_str(), reason.as_str());
        }
        let metrics = crate::metrics::Metrics::new();
        let rendered = metrics.render(&Default::default(), &[]);
        for reason in Reason::ALL {
            assert!(
                rendered.contains(&format!("reason=\"{reason}\"")),
                "{reason} is not a metric label"
            );
        }
    }

    const IMMUTABLE: &str =
        "Secret \"db\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable";

    /// A kube API error as the API server sends it (a `Status`).
    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": {
                "name": "db",
                "kind": "secrets",
                "causes": [{
                    "reason": "FieldValueInvalid",
                    "message": "Invalid value: \"kubernetes.io/tls\": field is immutable",
                    "field": "type",
                }],
            },
            "code": code,
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    /// Every message a reconcile failure becomes (the `Ready` condition's
    /// message, the Warning Event's note, the log line) is words, never
    /// Rust `Debug` output: kube's `Display` of an API error ends with the
    /// `Debug` of the server's whole `Status`.
    #[test]
    fn no_message_holds_rust_debug_output() {
        let id: KeyId = "0123456789abcdef".parse().unwrap();
        let immutable = api_error(422, "Invalid", IMMUTABLE);
        // The test is worth having only while kube's own text has it.
        assert!(looks_like_rust_debug(&immutable.to_string()), "{immutable}");
        assert_eq!(
            Error::Kube(immutable).to_string(),
            format!(
                "Kubernetes API error: the API server refused the request (422 Invalid): {IMMUTABLE}"
            )
        );
        let errors = [
            Error::value_failure("k", SealError::DecryptFailed, |_| false),
            Error::value_failure(
                "k",
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                |_| false,
            ),
            Error::value_failure(
                "k",
                SealError::NoMatchingIdentity { key_ids: vec![id] },
                |_| true,
            ),
            Error::value_failure("k", SealError::Malformed("x"), |_| false),
            Error::value_failure("k", SealError::UnsupportedVersion("v9".into()), |_| false),
            Error::value_failure("k", SealError::InvalidBinding("x".into()), |_| false),
            Error::invalid_spec(&["invalid data key name \"a b\""]),
            Error::TooManyValues { count: 2000 },
            Error::Internal("decrypting panicked".into()),
            Error::SecretNotOwned("db".into()),
            Error::SecretTakenDuringRecreate("db".into()),
            secret_write("db", api_error(422, "Invalid", IMMUTABLE), |_| false),
            secret_write("db", api_error(409, "Conflict", "modified"), |_| false),
            Error::PolicyDenied("Secret type \"kseal.dev/sealing-key\" is reserved".into()),
            Error::Kube(api_error(422, "Invalid", IMMUTABLE)),
            Error::Kube(api_error(
                409,
                "Conflict",
                "Operation cannot be fulfilled on secrets \"db\": the object has been modified; please apply your changes to the latest version and try again",
            )),
            Error::Kube(api_error(403, "Forbidden", "secrets \"db\" is forbidden")),
            Error::Kube(api_error(500, "InternalError", "")),
            Error::Kube(api_error(0, "", "")),
            Error::Kube(kube::Error::LinesCodecMaxLineLengthExceeded),
            Error::Kube(kube::Error::SerdeError(
                serde_json::from_str::<u8>("x").unwrap_err(),
            )),
            Error::Kube(kube::Error::FromUtf8(
                String::from_utf8(vec![0xff]).unwrap_err(),
            )),
            Error::Kube(kube::Error::Service(Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "deadline has elapsed",
            )))),
            Error::Kube(kube::Error::HttpError(
                http::Request::get("\u{7f}").body(()).unwrap_err(),
            )),
            Error::Serialization(serde_json::from_str::<u8>("x").unwrap_err()),
        ];
        for err in &errors {
            let message = err.to_string();
            assert!(!looks_like_rust_debug(&message), "{message}");
            let described = describe(err);
            assert!(!looks_like_rust_debug(&described), "{described}");
            // The whole chain says each cause once.
            assert!(described.starts_with(&message), "{described} / {message}");
        }
        // As the watcher and the controller runtime wrap them (log lines).
        let watch = kube::runtime::watcher::Error::InitialListFailed(api_error(
            403,
            "Forbidden",
            "secrets is forbidden: User \"system:serviceaccount:kseal:kseal\" cannot list resource \"secrets\"",
        ));
        let kube::Error::Api(status) = api_error(410, "Expired", "too old resource version: 1 (5)")
        else {
            unreachable!()
        };
        let expired = kube::runtime::watcher::Error::WatchError(status);
        assert_eq!(
            describe(&expired),
            "error returned by apiserver during watch: the API server refused the request (410 Expired): too old resource version: 1 (5)"
        );
        let described = describe(&watch);
        assert_eq!(
            described,
            "failed to perform initial object list: the API server refused the request (403 Forbidden): secrets is forbidden: User \"system:serviceaccount:kseal:kseal\" cannot list resource \"secrets\""
        );
    }

    /// A transport failure (nothing listens on the port) is its causes in
    /// words: no `client error (Connect)`, no `Debug` of an io error.
    #[tokio::test]
    async fn transport_errors_are_words() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let err = client.apiserver_version().await.unwrap_err();
        let message = Error::Kube(err).to_string();
        assert!(!looks_like_rust_debug(&message), "{message}");
        assert!(message.starts_with("Kubernetes API error: "), "{message}");
        assert!(message.contains("refused"), "{message}");
    }

    /// A refused Secret is reported by its causes, never with what a
    /// validator quotes after the API server's redaction marker.
    #[test]
    fn rejections_never_quote_a_value() {
        let quoted = "Invalid value: \"<secret contents redacted>\": invalid character 'Z' looking for beginning of value";
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure",
            "message": format!("Secret \"db\" is invalid: data[.dockerconfigjson]: {quoted}"),
            "reason": "Invalid",
            "code": 422,
            "details": {"name": "db", "kind": "secrets", "causes": [
                {"reason": "FieldValueInvalid", "message": quoted, "field": "data[.dockerconfigjson]"},
                {"reason": "FieldValueRequired", "message": "Required value", "field": "data[tls.crt]"},
            ]},
        }))
        .unwrap();
        let err = secret_write("db", kube::Error::Api(Box::new(status.clone())), |_| false);
        assert_eq!(err.reason(), Reason::SecretRejected);
        assert!(err.is_permanent());
        let message = err.to_string();
        assert_eq!(
            message,
            "the API server refused Secret \"db\" (422): data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\"; data[tls.crt]: Required value"
        );
        // Without causes: the message, cut the same way.
        let mut bare = status;
        bare.details = None;
        let message = rejection(&bare, |_| false);
        assert!(!message.contains('Z'), "{message}");
        assert!(
            message.ends_with("<secret contents redacted>\""),
            "{message}"
        );
        // Anything else stays a transient API error.
        let conflict = kube::Error::Api(Box::new(
            kube::core::Status::failure("modified", "Conflict").with_code(409),
        ));
        assert_eq!(
            secret_write("db", conflict, |_| false).reason(),
            Reason::KubernetesError
        );
    }

    /// Whatever its code, a refusal whose message quotes a value (an
    /// admission policy's message expression) is withheld.
    #[test]
    fn refusals_that_quote_a_value_are_withheld() {
        for (code, reason, permanent) in [
            (403, "Forbidden", true),
            (413, "RequestEntityTooLarge", true),
            (400, "BadRequest", true),
            (409, "Conflict", false),
            (500, "InternalError", false),
        ] {
            let status = kube::core::Status::failure(
                "ValidatingAdmissionPolicy 'echo' denied request: refused, value is hunter2",
                reason,
            )
            .with_code(code);
            let err = secret_write("db", kube::Error::Api(Box::new(status)), |text| {
                text.contains("hunter2")
            });
            let message = err.to_string();
            assert!(!message.contains("hunter2"), "{code}: {message}");
            assert!(message.contains("withheld"), "{code}: {message}");
            assert_eq!(err.is_permanent(), permanent, "{code}");
        }
    }
}
