//! Writes the committed test vectors (`shared/tests/vectors/v1.json`).
//!
//! `cargo run -p kseal-shared --example gen_vectors > shared/tests/vectors/v1.json`
//!
//! Sealing is randomized, so the vectors are checked by opening them: a new
//! run produces different (equally valid) sealed strings. Regenerate only
//! when the format changes, and bump the format version when it does.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use kseal_shared::age::secrecy::ExposeSecret;
use kseal_shared::envelope::seal;
use kseal_shared::{
    binding::{Binding, Scope},
    x25519::Identity,
};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let identities = [Identity::generate(), Identity::generate()];
    let [a, b] = &identities;
    let only_a = [a.recipient().clone()];
    let both = [a.recipient().clone(), b.recipient().clone()];
    let mut cases = Vec::new();
    let mut case = |comment: &str,
                    sealed_for: Binding<'_>,
                    opened_as: Binding<'_>,
                    recipients: &[kseal_shared::x25519::Recipient],
                    plaintext: &[u8],
                    expect: &str|
     -> Result<(), Box<dyn std::error::Error>> {
        let sealed = seal(plaintext, &sealed_for, recipients)?.encode();
        cases.push(json!({
            "comment": comment,
            "scope": opened_as.scope.as_str(),
            "namespace": opened_as.namespace,
            "name": opened_as.name,
            "key": opened_as.key,
            "sealed": sealed,
            "plaintext_base64": BASE64_STANDARD.encode(plaintext),
            "expect": expect,
        }));
        Ok(())
    };
    let strict = Binding::new(Scope::Strict, "payments", "db-credentials", "password");
    let ns_wide = Binding::new(Scope::NamespaceWide, "payments", "", "api-token");
    let cluster = Binding::new(Scope::ClusterWide, "", "", ".dockerconfigjson");
    case(
        "strict",
        strict,
        strict,
        &only_a,
        b"correct horse battery staple",
        "ok",
    )?;
    case(
        "namespace-wide, opened under another name",
        ns_wide,
        Binding {
            name: "anything",
            ..ns_wide
        },
        &only_a,
        b"tok_123",
        "ok",
    )?;
    case(
        "cluster-wide, opened in another namespace",
        cluster,
        Binding::new(Scope::ClusterWide, "elsewhere", "x", ".dockerconfigjson"),
        &only_a,
        br#"{"auths":{}}"#,
        "ok",
    )?;
    case(
        "binary value, two recipients",
        strict,
        strict,
        &both,
        &[0, 1, 2, 255, 254, 0],
        "ok",
    )?;
    case("empty value", strict, strict, &only_a, b"", "ok")?;
    case(
        "strict value moved to another name",
        strict,
        Binding {
            name: "other",
            ..strict
        },
        &only_a,
        b"x",
        "decrypt-failed",
    )?;
    case(
        "strict value moved to another namespace",
        strict,
        Binding {
            namespace: "other",
            ..strict
        },
        &only_a,
        b"x",
        "decrypt-failed",
    )?;
    case(
        "value moved to another data key",
        strict,
        Binding {
            key: "username",
            ..strict
        },
        &only_a,
        b"x",
        "decrypt-failed",
    )?;
    case(
        "scope widened from strict to cluster-wide",
        strict,
        Binding {
            scope: Scope::ClusterWide,
            ..strict
        },
        &only_a,
        b"x",
        "decrypt-failed",
    )?;
    case(
        "sealed to a key the verifier does not hold",
        strict,
        strict,
        &[Identity::generate().recipient().clone()],
        b"x",
        "no-matching-identity",
    )?;

    let aad = [strict, ns_wide, cluster]
        .iter()
        .map(|binding| {
            json!({
                "scope": binding.scope.as_str(),
                "namespace": binding.namespace,
                "name": binding.name,
                "key": binding.key,
                "associated_data_hex": hex(&binding.associated_data()),
            })
        })
        .collect::<Vec<_>>();

    let vectors = json!({
        "format": "kseal sealed value v1 (docs/format.md)",
        "identities": identities.iter().map(|i| i.to_secret_string().expose_secret().to_owned()).collect::<Vec<_>>(),
        "recipients": identities.iter().map(|i| json!({
            "recipient": i.recipient().to_string(),
            "key_id": i.key_id().to_string(),
        })).collect::<Vec<_>>(),
        "associated_data": aad,
        "cases": cases,
        "unsupported": [
            {"sealed": "kseal:v2:0011223344556677:AA==:AA==:AA==", "expect": "unsupported-version"},
            {"sealed": "AgBy3i4OJSWK+PiTySYZZA==", "expect": "not-a-sealed-value"},
        ],
    });
    println!("{}", serde_json::to_string_pretty(&vectors)?);
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
