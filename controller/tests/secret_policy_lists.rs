//! The Secret policy's lists have one source, `kseal_shared::contract`
//! ([`DANGEROUS_SECRET_TYPES`], [`DANGEROUS_METADATA_PREFIXES`],
//! [`DANGEROUS_LABELS`]); everything that repeats them for people or for
//! Helm is checked against it here, entry for entry and in order: the
//! controller's flags (the values they accept are their help), the chart's
//! `values.schema.json` (which refused an allowed Argo CD prefix while they
//! were copied by hand), the lists in `values.yaml` and the chart README,
//! and the tables in docs/security.md. Like the CRD and man-page checks, no
//! cluster is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::{CommandFactory, Parser};
use kseal_controller::Settings;
use kseal_shared::contract::{
    DANGEROUS_LABELS, DANGEROUS_METADATA_PREFIXES, DANGEROUS_SECRET_TYPES,
};
use serde_json::Value;

fn read(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|err| panic!("{full}: {err}"))
}

fn types() -> Vec<String> {
    DANGEROUS_SECRET_TYPES.map(str::to_owned).to_vec()
}

fn prefixes() -> Vec<String> {
    DANGEROUS_METADATA_PREFIXES.map(str::to_owned).to_vec()
}

/// The `` `…` `` spans of `text`, in order.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_flags_accept_exactly_the_policy_lists() {
    let command = Settings::command();
    for (id, expected) in [
        ("allow_secret_types", types()),
        ("allow_metadata_prefixes", prefixes()),
    ] {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_id() == id)
            .unwrap_or_else(|| panic!("no argument {id}"));
        let accepted: Vec<String> = arg
            .get_possible_values()
            .iter()
            .map(|value| value.get_name().to_owned())
            .collect();
        assert_eq!(accepted, expected, "--{id}");
    }
    let parse = |arg: &str| Settings::try_parse_from(["kseal-controller", arg]);
    let settings =
        parse("--allow-metadata-prefixes=argocd.argoproj.io/secret-type,istio/multiCluster")
            .unwrap();
    assert_eq!(
        settings.allow_metadata_prefixes,
        ["argocd.argoproj.io/secret-type", "istio/multiCluster"]
    );
    // What would allow nothing (a typo, a prefix the policy does not know)
    // or what is never allowed is refused at start, not ignored.
    for wrong in [
        "--allow-metadata-prefixes=argocd.argoproj.io/",
        "--allow-metadata-prefixes=istio/multicluster",
        "--allow-metadata-prefixes=kseal.dev/",
        "--allow-secret-types=kseal.dev/sealing-key",
        "--allow-secret-types=Opaque",
    ] {
        assert!(parse(wrong).is_err(), "{wrong} accepted");
    }
}

#[test]
fn the_chart_schema_accepts_exactly_the_policy_lists() {
    let schema: Value = serde_json::from_str(&read("charts/kseal/values.schema.json")).unwrap();
    let policy = &schema["properties"]["secretPolicy"]["properties"];
    for (value, expected) in [
        ("allowSecretTypes", types()),
        ("allowMetadataPrefixes", prefixes()),
    ] {
        let allowed: Vec<String> = policy[value]["items"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("secretPolicy.{value}: no enum"))
            .iter()
            .map(|item| item.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(allowed, expected, "values.schema.json secretPolicy.{value}");
    }
}

#[test]
fn the_chart_values_list_the_policy_and_allow_nothing() {
    let text = read("charts/kseal/values.yaml");
    let values: Value = serde_saphyr::from_str(&text).unwrap();
    for (value, expected) in [
        ("allowSecretTypes", types()),
        ("allowMetadataPrefixes", prefixes()),
    ] {
        assert_eq!(
            values["secretPolicy"][value],
            serde_json::json!([]),
            "secretPolicy.{value}"
        );
        // The comment right above the value lists the entries as
        // `  #   - entry` lines.
        let lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|line| *line == format!("  {value}: []"))
            .unwrap_or_else(|| panic!("values.yaml: no `  {value}: []` line"));
        let listed: Vec<String> = lines[..at]
            .iter()
            .rev()
            .take_while(|line| line.trim_start().starts_with('#'))
            .filter_map(|line| line.strip_prefix("  #   - "))
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert_eq!(listed, expected, "values.yaml, the comment above {value}");
    }
}

#[test]
fn the_chart_readme_lists_the_policy() {
    let text = read("charts/kseal/README.md");
    for (value, mut expected) in [
        ("allowSecretTypes", types()),
        ("allowMetadataPrefixes", prefixes()),
    ] {
        let start = format!("| `secretPolicy.{value}` | `[]` |");
        let row = text
            .lines()
            .find(|line| line.starts_with(&start))
            .unwrap_or_else(|| panic!("chart README: no row {start}"));
        if value == "allowMetadataPrefixes" {
            expected.push(kseal_shared::contract::RESERVED_PREFIX.to_owned());
        }
        assert_eq!(
            backticked(&row[start.len()..]),
            expected,
            "chart README, row secretPolicy.{value}"
        );
    }
}

#[test]
fn the_security_doc_lists_the_policy() {
    let text = read("docs/security.md");
    let section = text
        .split("\n### The Secret policy\n")
        .nth(1)
        .expect("docs/security.md: no section \"### The Secret policy\"");
    let section = section.split("\n#").next().unwrap_or(section);
    // The first cell of each row of the table under `header`.
    let first_cells = |header: &str| -> Vec<String> {
        let mut lines = section
            .lines()
            .skip_while(|line| !line.starts_with(header))
            .skip(2);
        std::iter::from_fn(|| lines.next().filter(|line| line.starts_with('|')))
            .map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default();
                backticked(cell).into_iter().next().unwrap_or_default()
            })
            .collect()
    };
    assert_eq!(
        first_cells("| Secret type |"),
        types(),
        "docs/security.md, the table of Secret types"
    );
    assert_eq!(
        first_cells("| Key or key prefix |"),
        prefixes(),
        "docs/security.md, the table of keys"
    );
    for (key, value, type_) in DANGEROUS_LABELS {
        let label = format!("`{key}={value}`");
        assert!(
            section.contains(&label) && section.contains(&format!("`{type_}`")),
            "docs/security.md does not explain the label {label}"
        );
    }
}
