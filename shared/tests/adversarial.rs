//! Adversarial input to the library: every bit flip of a sealed value, at
//! the text level and inside its decoded fields; values moved between keys,
//! objects, namespaces and scopes at the SealedSecret level; YAML and JSON
//! bombs (aliases, nesting, size) that must fail clearly within bounded time
//! and memory.
//!
//! The bombs run in a child process (this test binary, re-executed for one
//! case) so their peak memory can be measured on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use kseal_shared::config::Config;
use kseal_shared::envelope::{Keyring, SealedValue, open};
use kseal_shared::manifest::{
    ManifestFile, PlainSecret, SealOptions, seal_secret, unseal, value_binding,
};
use kseal_shared::{
    binding::{Binding, Scope},
    error::SealError,
    sealed_secret::SealedSecret,
    secret::SecretBytes,
    x25519::Identity,
};

fn keyring(identities: &[&Identity]) -> Keyring {
    identities.iter().map(|i| (*i).clone()).collect()
}

/// Flips every bit of the text of a value sealed with `scope`, and checks
/// each is rejected.
fn assert_text_flips_rejected(sealed: &str, binding: &Binding<'_>, ring: &Keyring) -> usize {
    let bytes = sealed.as_bytes();
    let mut tried = 0;
    for position in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.to_vec();
            tampered[position] ^= 1 << bit;
            tried += 1;
            let Ok(text) = String::from_utf8(tampered) else {
                continue; // not UTF-8: no manifest can carry it
            };
            let opened = SealedValue::parse(&text).and_then(|value| open(&value, binding, ring));
            assert!(
                opened.is_err(),
                "text flip at byte {position} bit {bit} was accepted"
            );
        }
    }
    tried
}

/// Every single-bit flip of the text of a value, at every position, for
/// each scope and with one recipient (the two-recipient case is in
/// `envelope.rs`).
#[test]
fn every_text_bit_flip_is_rejected_in_every_scope() {
    let identity = Identity::generate();
    let ring = keyring(&[&identity]);
    for scope in Scope::ALL {
        let binding = Binding::new(scope, "ns", "name", "key");
        let sealed =
            kseal_shared::envelope::seal(b"flip me", &binding, &[identity.recipient().clone()])
                .unwrap()
                .encode();
        assert!(open(&SealedValue::parse(&sealed).unwrap(), &binding, &ring).is_ok());
        let tried = assert_text_flips_rejected(&sealed, &binding, &ring);
        assert_eq!(tried, sealed.len() * 8);
    }
}

/// Text-level flips mostly break base64 or the structure. These flip every
/// bit of the *decoded* wrapped key (the whole age file: header, stanzas,
/// MAC, payload), nonce and ciphertext and re-encode them, so every
/// tampered value is well-formed and must be caught by age's header MAC,
/// age's payload AEAD, or the value's AEAD.
#[test]
fn every_bit_flip_of_the_decoded_fields_is_rejected() {
    let a = Identity::generate();
    let b = Identity::generate();
    let binding = Binding::new(Scope::NamespaceWide, "ns", "", "key");
    let sealed = kseal_shared::envelope::seal(
        b"decoded flips",
        &binding,
        &[a.recipient().clone(), b.recipient().clone()],
    )
    .unwrap()
    .encode();
    // Opened with the second recipient only: flips in the first one's
    // stanza must be caught too.
    let ring = keyring(&[&b]);
    let fields: Vec<&str> = sealed.split(':').collect();
    assert_eq!(fields.len(), 8);
    // Wrapped key, nonce, commitment, ciphertext.
    let mut counts = [0usize; 4];
    for (slot, field) in [4, 5, 6, 7].into_iter().enumerate() {
        let decoded = BASE64_STANDARD.decode(fields[field]).unwrap();
        for position in 0..decoded.len() {
            for bit in 0..8 {
                let mut tampered = decoded.clone();
                tampered[position] ^= 1 << bit;
                let mut parts: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
                parts[field] = BASE64_STANDARD.encode(&tampered);
                let text = parts.join(":");
                let opened =
                    SealedValue::parse(&text).and_then(|value| open(&value, &binding, &ring));
                assert!(
                    opened.is_err(),
                    "flip in field {field} byte {position} bit {bit} was accepted"
                );
                counts[slot] += 1;
            }
        }
        assert_eq!(counts[slot], decoded.len() * 8);
    }
    // The wrapped key is a whole age file: two X25519 stanzas, the key-ids
    // stanza, the MAC and a 32-byte payload.
    assert!(counts[0] > 8 * 300, "{counts:?}");
    assert_eq!(counts[1], 24 * 8);
    assert_eq!(counts[2], 32 * 8);
}

fn plain(namespace: &str, name: &str, values: &[(&str, &str)]) -> PlainSecret {
    let mut secret = PlainSecret {
        name: name.into(),
        namespace: namespace.into(),
        ..PlainSecret::default()
    };
    for (key, value) in values {
        secret
            .insert(key, SecretBytes::from(value.as_bytes()))
            .unwrap();
    }
    secret
}

fn opens(sealed: &SealedSecret, ring: &Keyring) -> Result<(), Vec<SealError>> {
    unseal(sealed, ring).map(drop).map_err(|err| match err {
        kseal_shared::manifest::UnsealError::Values(failures) => {
            failures.into_iter().map(|f| f.error).collect()
        }
        other => panic!("{other}"),
    })
}

/// Whole SealedSecrets edited the way an attacker with write access to git
/// (but no key) could: values moved between keys and objects, objects moved
/// between namespaces, `spec.scope` edited. Each is rejected exactly where
/// the scope says, and only with `DecryptFailed`.
#[test]
fn moved_values_are_rejected_exactly_where_the_scope_says() {
    let identity = Identity::generate();
    let ring = keyring(&[&identity]);
    let recipients = [identity.recipient().clone()];
    for scope in Scope::ALL {
        let seal = |secret: &PlainSecret| {
            seal_secret(
                secret,
                SealOptions {
                    scope,
                    recipients: &recipients,
                    allow_empty_data: false,
                },
            )
            .unwrap()
        };
        let original = seal(&plain("team-a", "db", &[("user", "u"), ("password", "p")]));
        let sibling = seal(&plain("team-a", "cache", &[("password", "c")]));
        assert!(opens(&original, &ring).is_ok(), "{scope}");
        let expect = |edited: &SealedSecret, allowed: bool, what: &str| match opens(edited, &ring) {
            Ok(()) => assert!(allowed, "{scope}: {what} was accepted"),
            Err(errors) => {
                assert!(!allowed, "{scope}: {what} was rejected: {errors:?}");
                assert!(
                    errors.iter().all(|e| *e == SealError::DecryptFailed),
                    "{scope}: {what}: {errors:?}"
                );
            }
        };

        // Between keys of the same object: never.
        let mut swapped = original.clone();
        let data = &mut swapped.spec.encrypted_data;
        let user = data["user"].clone();
        let password = data["password"].clone();
        data.insert("user".into(), password);
        data.insert("password".into(), user);
        expect(&swapped, false, "swapping two keys");
        let mut copied = original.clone();
        copied.spec.encrypted_data.insert(
            "password-copy".into(),
            original.spec.encrypted_data["password"].clone(),
        );
        copied.spec.encrypted_data.remove("password");
        expect(&copied, false, "copying a value to a new key");

        // Between objects: a value lifted into another object of the same
        // namespace opens only where the name is not bound.
        let mut lifted = sibling.clone();
        lifted.spec.encrypted_data.insert(
            "password".into(),
            original.spec.encrypted_data["password"].clone(),
        );
        expect(
            &lifted,
            !scope.binds_name(),
            "a value moved to another object",
        );
        let mut renamed = original.clone();
        renamed.metadata.name = Some("db-renamed".into());
        expect(&renamed, !scope.binds_name(), "renaming the object");

        // Between namespaces: only cluster-wide.
        let mut moved = original.clone();
        moved.metadata.namespace = Some("team-b".into());
        expect(
            &moved,
            !scope.binds_namespace(),
            "moving the object to another namespace",
        );
        let mut moved_and_renamed = moved.clone();
        moved_and_renamed.metadata.name = Some("other".into());
        expect(
            &moved_and_renamed,
            scope == Scope::ClusterWide,
            "moving and renaming the object",
        );

        // Editing spec.scope: never, widening or narrowing.
        for other in Scope::ALL.into_iter().filter(|other| *other != scope) {
            let mut rescoped = original.clone();
            rescoped.spec.scope = other;
            // A cluster-wide object may have no namespace; give the edited
            // one what its new scope needs, so only the scope differs.
            if rescoped.metadata.namespace.is_none() {
                rescoped.metadata.namespace = Some("team-a".into());
            }
            match opens(&rescoped, &ring) {
                Ok(()) => panic!("{scope} -> {other}: accepted"),
                Err(errors) => assert!(
                    errors.iter().all(|e| matches!(
                        e,
                        SealError::DecryptFailed | SealError::InvalidBinding(_)
                    )),
                    "{scope} -> {other}: {errors:?}"
                ),
            }
        }

        // The binding the controller would use is the one that was sealed.
        let binding = value_binding(&original, "password");
        assert_eq!(binding.scope, scope);
    }
}

// ---------------------------------------------------------------------------
// Bombs: run one case in a child process, measure time and peak memory.

/// Most memory a bomb may take (the child's peak RSS, the test binary's own
/// footprint included).
const MAX_PEAK_MIB: u64 = 256;
/// Most CPU time a bomb may take, in a debug build. CPU time, not wall
/// time: on a loaded 2-core machine the wall time of the same work varies
/// several-fold (the 200,000-document case took 50 s of wall time for a
/// fraction of that in CPU while other builds ran).
const MAX_CPU_TIME: Duration = Duration::from_secs(20);
/// Wall time after which a bomb counts as hung, whatever the load.
const HUNG: Duration = Duration::from_secs(300);

fn billion_laughs() -> String {
    let mut text = String::from(
        "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..10 {
        let prev = format!("*a{}", level - 1);
        let items = [prev.as_str(); 10].join(",");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text
}

fn secret_with(data_yaml: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: bomb\n  namespace: ns\n{data_yaml}")
}

/// The bomb cases: name → input text.
fn bomb(case: &str) -> String {
    match case {
        "billion-laughs" => billion_laughs(),
        "billion-laughs-in-secret" => secret_with(&format!(
            "stringData:\n  x: y\nmetadata2:\n{}",
            billion_laughs()
                .lines()
                .map(|l| format!("  {l}\n"))
                .collect::<String>()
        )),
        "deep-flow-nesting" => format!("a: {}{}", "[".repeat(200_000), "]".repeat(200_000)),
        "deep-block-nesting" => {
            let mut text = String::new();
            for depth in 0..5_000 {
                text.push_str(&" ".repeat(depth));
                text.push_str("a:\n");
            }
            text
        }
        "deep-json-nesting" => format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)),
        "huge-document" => secret_with(&format!(
            "stringData:\n  k: \"{}\"\n",
            "x".repeat(20 * 1024 * 1024)
        )),
        "huge-json" => format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"data\":{{\"k\":\"{}\"}}}}",
            "A".repeat(20 * 1024 * 1024)
        ),
        "many-documents" => "a: 1\n---\n".repeat(200_000),
        "many-keys" => {
            let mut text = String::from("stringData:\n");
            for i in 0..300_000 {
                text.push_str(&format!("  k{i}: v\n"));
            }
            secret_with(&text)
        }
        "config-billion-laughs" => {
            let mut text = String::from("creation_rules:\n");
            for line in billion_laughs().lines() {
                let (_, list) = line.split_once(": ").unwrap();
                text.push_str(&format!("  - recipients: {list}\n"));
            }
            text
        }
        other => panic!("unknown bomb {other}"),
    }
}

/// What the child does with a bomb: parse it the way the CLI does, and
/// report the outcome (never the content) on stdout.
fn detonate(case: &str) -> String {
    let text = bomb(case);
    if case.starts_with("config-") {
        return match Config::parse(Path::new("/nonexistent/.kseal.yaml"), &text) {
            Ok(_) => "ok".into(),
            Err(err) => format!("error: {err}"),
        };
    }
    let file = ManifestFile::new(&text);
    match file.objects() {
        Ok(objects) => {
            for object in objects {
                let _ = PlainSecret::from_value(object.value);
            }
            "ok".into()
        }
        Err(err) => format!("error: {err}"),
    }
}

/// CPU time this process has used (user + system), from /proc/self/stat
/// (fields 14 and 15, in USER_HZ = 100 ticks per second on Linux).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may contain spaces; fields after it are
    // counted from the closing parenthesis.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the name: state is field 3, so utime (14) and stime (15) are at
    // 11 and 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Not a test on its own: runs one bomb when re-executed by
/// [`bombs_fail_clearly_within_bounded_time_and_memory`].
#[test]
fn bomb_child() {
    let Ok(case) = std::env::var("KSEAL_BOMB_CASE") else {
        return;
    };
    let outcome = detonate(&case);
    println!("KSEAL_BOMB_OUTCOME={}", outcome.replace('\n', " "));
    println!("KSEAL_BOMB_PEAK_KIB={}", peak_rss_kib());
    println!("KSEAL_BOMB_CPU_MS={}", cpu_time().as_millis());
}

#[test]
fn bombs_fail_clearly_within_bounded_time_and_memory() {
    if std::env::var("KSEAL_BOMB_CASE").is_ok() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let cases = [
        // (case, must be an error, words (`|`) of which the error has one)
        ("billion-laughs", true, "budget"),
        ("billion-laughs-in-secret", true, "budget"),
        ("deep-flow-nesting", true, "depth|recursion limit|nesting"),
        ("deep-block-nesting", true, "depth|recursion limit|nesting"),
        ("deep-json-nesting", true, "recursion limit"),
        ("huge-document", true, "too large"),
        ("huge-json", true, "too large"),
        ("many-documents", false, ""),
        ("many-keys", true, ""),
        ("config-billion-laughs", true, ".kseal.yaml"),
    ];
    let mut report = Vec::new();
    for (case, must_fail, word) in cases {
        let started = Instant::now();
        let output = std::process::Command::new(&exe)
            .args(["--exact", "bomb_child", "--nocapture", "--test-threads=1"])
            .env("KSEAL_BOMB_CASE", case)
            .output()
            .unwrap();
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{case}: the child failed (crash or abort): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|line| line.split_once(&format!("{name}=")).map(|(_, v)| v))
                .unwrap_or_else(|| panic!("{case}: no {name} in {stdout}"))
                .to_owned()
        };
        let outcome = field("KSEAL_BOMB_OUTCOME");
        let peak_mib = field("KSEAL_BOMB_PEAK_KIB").parse::<u64>().unwrap() / 1024;
        let cpu = Duration::from_millis(field("KSEAL_BOMB_CPU_MS").parse::<u64>().unwrap());
        report.push(format!(
            "{case}: {:.1}s CPU ({:.1}s wall), peak {peak_mib} MiB, {outcome}",
            cpu.as_secs_f64(),
            elapsed.as_secs_f64()
        ));
        assert!(
            cpu < MAX_CPU_TIME,
            "{case}: took {cpu:?} of CPU ({elapsed:?} wall; {outcome})"
        );
        assert!(elapsed < HUNG, "{case}: hung for {elapsed:?} ({outcome})");
        assert!(
            peak_mib < MAX_PEAK_MIB,
            "{case}: peak memory {peak_mib} MiB ({outcome})"
        );
        if must_fail {
            assert!(outcome.starts_with("error: "), "{case}: accepted");
            assert!(
                word.split('|')
                    .any(|word| outcome.to_lowercase().contains(&word.to_lowercase())),
                "{case}: unclear error: {outcome}"
            );
            assert!(!outcome.contains("lol\""), "{case}: the error quotes input");
            assert!(outcome.len() < 400, "{case}: error too long: {outcome}");
        }
    }
    // `cargo test -- --nocapture` shows the figures.
    println!("{}", report.join("\n"));
}

/// Inputs that are (or contain) secrets must not come back in errors: an
/// identity file given as a recipients file, and plaintext pasted where a
/// sealed value belongs, even dressed up as one of an unknown version.
#[test]
fn errors_do_not_echo_secrets() {
    use kseal_shared::age::secrecy::ExposeSecret;
    let identity = Identity::generate();
    let secret = identity.to_secret_string();
    let file = identity.to_keygen_file("2026-01-01T00:00:00Z");
    for text in [secret.expose_secret(), file.expose_secret()] {
        let err = kseal_shared::x25519::parse_recipients_file(text).unwrap_err();
        let message = err.to_string();
        assert!(!message.contains(secret.expose_secret()), "{message}");
        assert!(message.contains("private key"), "{message}");
        let err = text
            .lines()
            .last()
            .unwrap()
            .to_lowercase()
            .parse::<kseal_shared::x25519::Recipient>()
            .unwrap_err();
        assert!(
            !err.to_string()
                .to_lowercase()
                .contains(&secret.expose_secret().to_lowercase()[16..])
        );
    }
    for pasted in [
        "hunter2-pasted",
        "kseal:hunter2-pasted:x:y:z:w",
        "kseal:v1x:a:b:c:d",
    ] {
        let message = SealedValue::parse(pasted).unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains("v1x"), "{message}");
    }
    let message = SealedValue::parse("kseal:v3:a:b:c:d")
        .unwrap_err()
        .to_string();
    assert!(message.contains("\"v3\""), "{message}");
}

/// A sealer refuses to make a SealedSecret with more values than readers
/// accept (`MAX_VALUES`), whether sealing whole or merging into one, and
/// makes one with exactly that many.
#[test]
fn sealers_stop_at_max_values() {
    use kseal_shared::manifest::{SealingError, merge_into};
    use kseal_shared::sealed_secret::MAX_VALUES;
    let identity = Identity::generate();
    let recipients = [identity.recipient().clone()];
    let options = SealOptions {
        scope: Scope::Strict,
        recipients: &recipients,
        allow_empty_data: false,
    };
    let many = |count: usize| {
        let names: Vec<String> = (0..count).map(|i| format!("k{i}")).collect();
        let values: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
        plain("app", "many", &values)
    };
    let err = seal_secret(&many(MAX_VALUES + 1), options).unwrap_err();
    assert_eq!(
        err,
        SealingError::TooManyValues {
            count: MAX_VALUES + 1
        }
    );
    let mut full = seal_secret(&many(MAX_VALUES), options).unwrap();
    assert_eq!(full.spec.encrypted_data.len(), MAX_VALUES);
    // Replacing a value keeps the count; adding one goes over.
    merge_into(
        &mut full,
        &plain("app", "many", &[("k0", "w")]),
        &recipients,
    )
    .unwrap();
    let err = merge_into(
        &mut full,
        &plain("app", "many", &[("new", "w")]),
        &recipients,
    )
    .unwrap_err();
    assert_eq!(
        err,
        SealingError::TooManyValues {
            count: MAX_VALUES + 1
        }
    );
    assert_eq!(full.spec.encrypted_data.len(), MAX_VALUES);
}

/// A value's wrapped key holds at most `MAX_STANZAS` stanzas: one more (junk
/// stanzas added to a value with the most recipients) is refused as
/// malformed before any key is used; at the cap it is refused by v2's
/// stricter rule that nothing but the recipients' and the key-ids stanzas
/// may be there.
#[test]
fn stanzas_per_value_are_capped() {
    use kseal_shared::envelope::{MAX_RECIPIENTS, MAX_STANZAS, seal};
    let identities: Vec<Identity> = (0..MAX_RECIPIENTS).map(|_| Identity::generate()).collect();
    let recipients: Vec<_> = identities.iter().map(|i| i.recipient().clone()).collect();
    let ring = keyring(&[&identities[0]]);
    let binding = Binding::new(Scope::Strict, "app", "db", "password");
    let encoded = seal(b"p", &binding, &recipients).unwrap().encode();
    let fields: Vec<&str> = encoded.split(':').collect();
    let wrapped = BASE64_STANDARD.decode(fields[4]).unwrap();
    let header = b"age-encryption.org/v1\n";
    assert!(wrapped.starts_with(header));
    let count = wrapped.windows(3).filter(|w| *w == b"-> ").count();
    for (extra, refused) in [
        (MAX_STANZAS - count, false),
        (MAX_STANZAS - count + 1, true),
    ] {
        let mut padded = header.to_vec();
        for _ in 0..extra {
            padded.extend_from_slice(b"-> junk\n\n");
        }
        padded.extend_from_slice(&wrapped[header.len()..]);
        let mut parts: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
        parts[4] = BASE64_STANDARD.encode(&padded);
        let value = parts.join(":");
        let result = SealedValue::parse(&value).and_then(|v| open(&v, &binding, &ring).map(drop));
        let err = result.unwrap_err();
        assert_eq!(
            err == SealError::Malformed("wrapped data key has too many stanzas"),
            refused,
            "{} stanzas: {err:?}",
            count + extra
        );
    }
}

/// A key-ids field of any length costs constant work: more than 64 ids are
/// refused before any is parsed or compared (a 2 MiB field of distinct ids
/// once took seconds of quadratic duplicate checks). Counted in parse
/// outcomes, not timed: the field with 64 ids must reach the duplicate /
/// structure checks, the one with 65 must stop at the count.
#[test]
fn key_id_fields_are_bounded_before_parsing() {
    let ids = |count: usize| -> String {
        (0..count)
            .map(|i| format!("{i:016x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let value = |count: usize| format!("kseal:v1:{}:AAAA:AAAA:AAAA", ids(count));
    assert_eq!(
        SealedValue::parse(&value(65)),
        Err(SealError::Malformed("too many key ids"))
    );
    assert_eq!(
        SealedValue::parse(&value(100_000)),
        Err(SealError::Malformed("too many key ids"))
    );
    // 64 ids pass the count and fail later, on the wrapped key.
    assert_ne!(
        SealedValue::parse(&value(64)),
        Err(SealError::Malformed("too many key ids"))
    );
}
